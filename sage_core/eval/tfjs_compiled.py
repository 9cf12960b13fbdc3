"""A TF.js graph's convolutional part compiled into a plain PyTorch module: NCHW, weights in PyTorch's layout.

:class:`~sage_core.eval.tfjs_graph.TfjsGraph` runs the graph op by op as TensorFlow defines it, in NHWC, with
a layout change around every convolution: right for checking against TF.js, slow for training through it.
:class:`CompiledGraph` walks the same graph once, for the nodes some outputs need, and keeps a list of steps
on NCHW tensors: convolution weights permuted to OIHW once, SAME padding as the convolution's own padding where
it is symmetric (stride 1) and one explicit pad where TensorFlow puts the odd pixel after (stride 2), scalar
constants as Python floats, reductions and concatenations on the NCHW axes, and the hard-swish pattern
``x * relu6(x + 3) * (1/6)`` as one ``F.hardswish``. Batch norm is already folded in the graph (its convolutions
carry a bias). The result computes the same function (``tests/test_detector_cache.py`` checks it against the
op-by-op graph) for any input whose sides are multiples of 32: the neck's upsampling sizes, fixed in the graph
for its 512x512 input, are taken relative to the input here, so a 256x256 crop runs too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from sage_core.eval.tfjs_graph import TfjsGraph, _attr, _same_pad, resize_bilinear_legacy


@dataclass
class Step:
    """One node: ``op``, the slots of its tensor inputs, and what it needs besides (weights, numbers)."""

    op: str
    inputs: list[int]
    args: dict = field(default_factory=dict)


def _is_const(graph: TfjsGraph, ref: str) -> bool:
    return ref.partition(":")[0] in graph._const_names


class CompiledGraph(nn.Module):
    """``forward(x NCHW, float RGB 0..255) -> tuple of NCHW outputs`` (the graph's ``outputs``, in order)."""

    def __init__(self, graph: TfjsGraph, outputs: tuple[str, ...]) -> None:
        super().__init__()
        dims = graph.signature["inputs"][graph.inputs[0]]["tensorShape"]["dim"]
        self.design = (int(dims[1]["size"]), int(dims[2]["size"]))  # the input size the graph's constants assume
        self.weights = nn.ParameterList()
        self.steps: list[Step] = []
        slots: dict[str, int] = {}
        for node in graph._order(outputs):
            refs = [r for r in node.get("input", []) if not r.startswith("^")]
            if node["op"] == "Placeholder":
                slots[node["name"]] = -1
                continue
            step = self._compile(graph, node, refs, slots)
            if step is None:  # an identity: the node is its input's slot
                slots[node["name"]] = slots[refs[0].partition(":")[0]]
                continue
            self.steps.append(step)
            slots[node["name"]] = len(self.steps) - 1
        self.outputs = [slots[o.partition(":")[0]] for o in outputs]
        self._fuse_hardswish()

    def _weight(self, tensor: torch.Tensor) -> int:
        self.weights.append(nn.Parameter(tensor.detach().clone().float().contiguous(), requires_grad=False))
        return len(self.weights) - 1

    def _compile(self, graph: TfjsGraph, node: dict, refs: list[str], slots: dict[str, int]) -> Step | None:
        op = node["op"]
        tensors = [slots[r.partition(":")[0]] for r in refs if not _is_const(graph, r)]
        consts = [graph._value({}, r) for r in refs if _is_const(graph, r)]
        if op == "Identity":
            return None
        if op in ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"):
            return self._conv(node, tensors, consts)
        if op in ("Add", "AddV2", "Mul", "Sub"):
            if consts and consts[0].numel() != 1:
                raise NotImplementedError(f"{node['name']}: {op} with a non-scalar constant")
            scalar = float(consts[0]) if consts else None
            return Step(op.replace("V2", ""), tensors, {"scalar": scalar, "const_first": _is_const(graph, refs[0])})
        if op in ("Relu", "Relu6", "Sigmoid"):
            return Step(op, tensors)
        if op == "Mean":
            axes = [{1: 2, 2: 3, 3: 1}[int(a)] for a in consts[0].reshape(-1)]
            return Step("Mean", tensors, {"dims": axes, "keep": bool(_attr(node, "keep_dims", False))})
        if op == "ConcatV2":
            if int(consts[-1]) != 3:
                raise NotImplementedError(f"{node['name']}: concatenation on axis {int(consts[-1])}")
            return Step("Concat", tensors)
        if op == "ResizeBilinear":
            size = [int(v) for v in consts[0]]
            return Step("Resize", tensors, {"fraction": (size[0] / self.design[0], size[1] / self.design[1])})
        raise NotImplementedError(f"{node['name']}: op {op} in the convolutional part")

    def _conv(self, node: dict, tensors: list[int], consts: list[torch.Tensor]) -> Step:
        weight, extras = consts[0], list(consts[1:])
        strides, dilations = _attr(node, "strides", [1, 1, 1, 1]), _attr(node, "dilations", [1, 1, 1, 1])
        kh, kw, cin, cout = weight.shape
        depthwise = "Depthwise" in node["op"]
        w = weight.permute(2, 3, 0, 1).reshape(cin * cout, 1, kh, kw) if depthwise else weight.permute(3, 2, 0, 1)
        fused = _attr(node, "fused_ops", []) or []
        bias = self._weight(extras.pop(0)) if fused and fused[0] == "BiasAdd" else None
        activation = next((f for f in fused[1:]), None)
        if fused[1:] and (len(fused) > 2 or activation not in ("Relu", "Relu6")):
            raise NotImplementedError(f"{node['name']}: fused ops {fused}")
        padding = _attr(node, "padding")
        if padding not in ("SAME", "VALID"):
            raise NotImplementedError(f"{node['name']}: padding {padding}")
        stride, dilation = (strides[1], strides[2]), (dilations[1], dilations[2])
        symmetric = padding == "VALID" or (stride == (1, 1) and kh % 2 == 1 and kw % 2 == 1)
        pad = (0, 0) if padding == "VALID" else (dilation[0] * (kh - 1) // 2, dilation[1] * (kw - 1) // 2)
        return Step("Conv", tensors, {"weight": self._weight(w), "bias": bias, "stride": stride,
                                      "dilation": dilation, "groups": cin if depthwise else 1,
                                      "padding": pad if symmetric else None, "kernel": (kh, kw),
                                      "activation": activation})

    def _fuse_hardswish(self) -> None:
        """MobileNetV3's ``c * x * relu6(x + 3)`` (hard-swish) and ``c * relu6(x + 3)`` (hard-sigmoid), with ``c``
        TF.js's float16 1/6, as one ``F.hardswish`` / ``F.hardsigmoid`` times ``6 c`` (two passes instead of four);
        the steps left unused are dropped."""
        def shifted_relu6(slot: int) -> int | None:  # relu6(x + 3) -> x's slot
            relu6 = self.steps[slot] if slot >= 0 else None
            add = self.steps[relu6.inputs[0]] if relu6 is not None and relu6.op == "Relu6" and relu6.inputs[0] >= 0 \
                else None
            ok = add is not None and add.op == "Add" and add.args.get("scalar") == 3.0
            return add.inputs[0] if ok else None

        for index, step in enumerate(self.steps):
            if step.op != "Mul":
                continue
            if step.args.get("scalar") is not None:  # c * relu6(x + 3)
                x = shifted_relu6(step.inputs[0])
                if x is not None:
                    self.steps[index] = Step("Hardsigmoid", [x], {"scale": 6.0 * step.args["scalar"]})
                continue
            for left, right in (step.inputs, step.inputs[::-1]):  # (c * x) * relu6(x + 3)
                scaled = self.steps[left] if left >= 0 else None
                if scaled is None or scaled.op != "Mul" or scaled.args.get("scalar") is None:
                    continue
                x = shifted_relu6(right)
                if x is not None and scaled.inputs == [x]:
                    self.steps[index] = Step("Hardswish", [x], {"scale": 6.0 * scaled.args["scalar"]})
                    break
        self._drop_unused()

    def _drop_unused(self) -> None:
        """Keep only the steps the outputs depend on, renumbering their inputs."""
        needed, stack = set(), list(self.outputs)
        while stack:
            slot = stack.pop()
            if slot >= 0 and slot not in needed:
                needed.add(slot)
                stack += self.steps[slot].inputs
        new_slot = {old: new for new, old in enumerate(sorted(needed))}
        new_slot[-1] = -1
        self.steps = [Step(s.op, [new_slot[i] for i in s.inputs], s.args)
                      for i, s in enumerate(self.steps) if i in needed]
        self.outputs = [new_slot[o] for o in self.outputs]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        height, width = x.shape[2], x.shape[3]
        values: list[torch.Tensor] = []
        for step in self.steps:
            args = [x if i < 0 else values[i] for i in step.inputs]
            values.append(self._run(step, args, height, width))
        return tuple(values[i] for i in self.outputs)

    def _run(self, step: Step, a: list[torch.Tensor], height: int, width: int) -> torch.Tensor:
        op, p = step.op, step.args
        if op == "Conv":
            return self._run_conv(p, a[0])
        if op in ("Add", "Mul", "Sub"):
            other = p["scalar"] if p["scalar"] is not None else a[1]
            first, second = (other, a[0]) if p["const_first"] else (a[0], other)
            return first + second if op == "Add" else first * second if op == "Mul" else first - second
        if op == "Hardswish":
            return F.hardswish(a[0]) * p["scale"]
        if op == "Hardsigmoid":
            return F.hardsigmoid(a[0]) * p["scale"]
        if op == "Relu":
            return torch.relu(a[0])
        if op == "Relu6":
            return F.relu6(a[0])
        if op == "Sigmoid":
            return torch.sigmoid(a[0])
        if op == "Mean":
            return a[0].mean(dim=p["dims"], keepdim=p["keep"])
        if op == "Concat":
            return torch.cat(a, dim=1)
        if op == "Resize":
            size = (round(height * p["fraction"][0]), round(width * p["fraction"][1]))
            return resize_bilinear_legacy(a[0].permute(0, 2, 3, 1), *size).permute(0, 3, 1, 2)
        raise NotImplementedError(op)

    def _run_conv(self, p: dict, x: torch.Tensor) -> torch.Tensor:
        padding = p["padding"]
        if padding is None:
            top, bottom = _same_pad(x.shape[2], p["kernel"][0], p["stride"][0], p["dilation"][0])
            left, right = _same_pad(x.shape[3], p["kernel"][1], p["stride"][1], p["dilation"][1])
            x, padding = F.pad(x, (left, right, top, bottom)), (0, 0)
        bias = self.weights[p["bias"]] if p["bias"] is not None else None
        y = F.conv2d(x, self.weights[p["weight"]], bias, p["stride"], padding, p["dilation"], p["groups"])
        if p["activation"] == "Relu":
            return torch.relu(y)
        return F.relu6(y) if p["activation"] == "Relu6" else y
