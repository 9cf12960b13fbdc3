"""A TF.js graph model (``model.json`` + weight shards) executed by PyTorch, op by op, differentiably.

Written for the downstream detector of the benchmark (CenterNet, MobileNetV3 backbone, from the npm
package @vladmandic/human: ``models/centernet.json``), so that it can be run, and back-propagated
through, next to a fusion model in training. It reads the graph JSON and the binary weights itself
(float16-quantised weights are widened to float32, as TF.js does) and implements the ops that graph
uses, with TensorFlow's semantics where they differ from PyTorch's: SAME padding (asymmetric at
stride 2), legacy bilinear resize (``align_corners=False, half_pixel_centers=False``), NHWC layout.
An op it does not know raises at load time, with its name.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

_DTYPES = {"float32": (np.float32, 4), "int32": (np.int32, 4), "float16": (np.float16, 2),
           "uint8": (np.uint8, 1), "uint16": (np.uint16, 2), "bool": (np.bool_, 1)}


def load_weights(manifest: list[dict], folder: Path) -> dict[str, np.ndarray]:
    """The weights a TF.js manifest describes -> {name: array}, dequantised (float16, or uint8/16 affine)."""
    out = {}
    for group in manifest:
        data = b"".join((folder / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            quant = spec.get("quantization")
            stored = quant["dtype"] if quant else spec["dtype"]
            np_type, size = _DTYPES[stored]
            count = int(np.prod(spec["shape"], dtype=np.int64))
            values = np.frombuffer(data, np_type, count, offset).reshape(spec["shape"])
            offset += count * size
            if quant and stored != "float16":
                values = values.astype(np.float32) * quant["scale"] + quant["min"]
            out[spec["name"]] = values.astype(_DTYPES[spec["dtype"]][0]) if quant else values.copy()
    return out


def _attr(node: dict, key: str, default=None):
    value = node.get("attr", {}).get(key)
    if value is None:
        return default
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "list" in value:
        items = value["list"]
        if "s" in items:
            return [base64.b64decode(s).decode() for s in items["s"]]
        return [int(v) for v in items.get("i", [])] or [float(v) for v in items.get("f", [])]
    for kind in ("i", "f", "b", "type"):
        if kind in value:
            return int(value[kind]) if kind == "i" else value[kind]
    return default


def _same_pad(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME padding for one axis: (before, after), the extra pixel after."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _conv(node: dict, x: torch.Tensor, weight: torch.Tensor, depthwise: bool) -> torch.Tensor:
    """NHWC conv with TF weights (HWIO, or H W C M for depthwise) and TF padding."""
    strides, dilations = _attr(node, "strides", [1, 1, 1, 1]), _attr(node, "dilations", [1, 1, 1, 1])
    kh, kw, cin, cout = weight.shape
    if depthwise:
        w, groups = weight.permute(2, 3, 0, 1).reshape(cin * cout, 1, kh, kw), cin
    else:
        w, groups = weight.permute(3, 2, 0, 1), 1
    x = x.permute(0, 3, 1, 2)
    if _attr(node, "padding") == "SAME":
        top, bottom = _same_pad(x.shape[2], kh, strides[1], dilations[1])
        left, right = _same_pad(x.shape[3], kw, strides[2], dilations[2])
        x = F.pad(x, (left, right, top, bottom))
    elif _attr(node, "padding") != "VALID":
        raise NotImplementedError(f"{node['name']}: padding {_attr(node, 'padding')}")
    y = F.conv2d(x, w, stride=(strides[1], strides[2]), dilation=(dilations[1], dilations[2]), groups=groups)
    return y.permute(0, 2, 3, 1)


def _fused(node: dict, y: torch.Tensor, args: list[torch.Tensor]) -> torch.Tensor:
    for op in _attr(node, "fused_ops", []):
        if op == "BiasAdd":
            y = y + args.pop(0)
        elif op == "Relu":
            y = torch.relu(y)
        elif op == "Relu6":
            y = torch.clamp(y, 0, 6)
        else:
            raise NotImplementedError(f"{node['name']}: fused op {op}")
    return y


def resize_bilinear_legacy(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """tf.image.resizeBilinear with align_corners=False, half_pixel_centers=False on NHWC (source = dest * scale)."""
    def axis(size_in: int, size_out: int):
        src = torch.arange(size_out, dtype=torch.float64, device=x.device) * (size_in / size_out)
        low = torch.clamp(torch.floor(src).long(), max=size_in - 1)
        high = torch.clamp(low + 1, max=size_in - 1)
        return low, high, (src - low).to(x.dtype)
    y0, y1, fy = axis(x.shape[1], height)
    x0, x1, fx = axis(x.shape[2], width)
    top = x[:, y0] + (x[:, y1] - x[:, y0]) * fy[None, :, None, None]
    return top[:, :, x0] + (top[:, :, x1] - top[:, :, x0]) * fx[None, None, :, None]


def _strided_slice(node: dict, x, begin, end, strides):
    if any(_attr(node, k, 0) for k in ("ellipsis_mask", "new_axis_mask", "shrink_axis_mask")):
        raise NotImplementedError(f"{node['name']}: StridedSlice with ellipsis/new-axis/shrink masks")
    begin_mask, end_mask = _attr(node, "begin_mask", 0), _attr(node, "end_mask", 0)
    index = []
    for d, (b, e, s) in enumerate(zip(begin.tolist(), end.tolist(), strides.tolist())):
        index.append(slice(None if begin_mask >> d & 1 else b, None if end_mask >> d & 1 else e, s))
    return x[tuple(index)]


def _run_op(node: dict, a: list):
    op = node["op"]
    if op in ("Identity",):
        return a[0]
    if op in ("Add", "AddV2"):
        return a[0] + a[1]
    if op == "Sub":
        return a[0] - a[1]
    if op == "Mul":
        return a[0] * a[1]
    if op == "Relu":
        return torch.relu(a[0])
    if op == "Relu6":
        return torch.clamp(a[0], 0, 6)
    if op == "Sigmoid":
        return torch.sigmoid(a[0])
    if op in ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"):
        return _fused(node, _conv(node, a[0], a[1], "Depthwise" in op), list(a[2:]))
    if op == "Mean":
        return a[0].mean(dim=[int(v) for v in a[1].reshape(-1)], keepdim=bool(_attr(node, "keep_dims", False)))
    if op == "ResizeBilinear":
        if _attr(node, "align_corners", False) or _attr(node, "half_pixel_centers", False):
            raise NotImplementedError(f"{node['name']}: ResizeBilinear other than TF's legacy mode")
        return resize_bilinear_legacy(a[0], *(int(v) for v in a[1]))
    if op == "MaxPool":
        k, s = _attr(node, "ksize"), _attr(node, "strides")
        x = a[0].permute(0, 3, 1, 2)
        if _attr(node, "padding") == "SAME":
            top, bottom = _same_pad(x.shape[2], k[1], s[1])
            left, right = _same_pad(x.shape[3], k[2], s[2])
            x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, (k[1], k[2]), (s[1], s[2])).permute(0, 2, 3, 1)
    if op == "ConcatV2":
        return torch.cat(list(a[:-1]), dim=int(a[-1]))
    if op == "Reshape":
        return a[0].reshape([int(v) for v in a[1].reshape(-1)])
    if op == "ExpandDims":
        return a[0].unsqueeze(int(a[1]))
    if op == "Cast":
        target = {"DT_FLOAT": torch.float32, "DT_INT32": torch.int64, "DT_BOOL": torch.bool}[_attr(node, "DstT")]
        return a[0].to(target if target is not torch.float32 else torch.float32)
    if op == "Equal":
        return a[0] == a[1]
    if op == "FloorDiv":
        return torch.div(a[0], a[1], rounding_mode="floor")
    if op == "FloorMod":
        return torch.remainder(a[0], a[1])
    if op == "TopKV2":
        values, indices = torch.topk(a[0], int(a[1]), dim=-1, sorted=True)
        return values, indices
    if op == "GatherV2":
        return torch.index_select(a[0], int(a[2]), a[1].reshape(-1).long()).reshape(
            *a[0].shape[:int(a[2])], *a[1].shape, *a[0].shape[int(a[2]) + 1:])
    if op == "StridedSlice":
        return _strided_slice(node, *a)
    raise NotImplementedError(f"{node['name']}: op {op}")


SUPPORTED_OPS = frozenset({
    "Const", "Placeholder", "Identity", "Add", "AddV2", "Sub", "Mul", "Relu", "Relu6", "Sigmoid", "Conv2D",
    "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative", "Mean", "ResizeBilinear", "MaxPool",
    "ConcatV2", "Reshape", "ExpandDims", "Cast", "Equal", "FloorDiv", "FloorMod", "TopKV2", "GatherV2",
    "StridedSlice"})


class TfjsGraph(torch.nn.Module):
    """The graph of ``model.json`` as a module: ``forward(inputs NHWC) -> {output name: tensor}``.

    Float constants are parameters (frozen by default, ``requires_grad_`` to fine-tune); the
    computation is differentiable wherever the ops are (the convolutional part, not TopK/Gather).
    """

    def __init__(self, model_json: str | Path) -> None:
        super().__init__()
        path = Path(model_json)
        graph = json.loads(path.read_text())
        self.signature = graph.get("signature", {})
        nodes = graph["modelTopology"]["node"]
        unknown = sorted({n["op"] for n in nodes} - SUPPORTED_OPS)
        if unknown:
            raise NotImplementedError(f"{path.name} uses ops this runner lacks: {', '.join(unknown)}")
        weights = load_weights(graph["weightsManifest"], path.parent)
        self.constants = torch.nn.ParameterDict()
        self._const_names: dict[str, str] = {}
        for n, (name, value) in enumerate(weights.items()):
            tensor = torch.from_numpy(np.ascontiguousarray(value))
            if tensor.dtype == torch.int32:
                tensor = tensor.long()
            self.constants[f"c{n}"] = torch.nn.Parameter(tensor, requires_grad=False)
            self._const_names[name] = f"c{n}"
        self.nodes = [n for n in nodes if n["op"] != "Const"]
        self.inputs = [n["name"] for n in self.nodes if n["op"] == "Placeholder"]
        self._orders: dict[tuple[str, ...], list[dict]] = {}

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.nodes:
            counts[n["op"]] = counts.get(n["op"], 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    def _value(self, values: dict, ref: str):
        name, _, index = ref.partition(":")
        if name in self._const_names:
            return self.constants[self._const_names[name]]
        value = values[name]
        return value[int(index or 0)] if isinstance(value, tuple) else value

    def forward(self, images: torch.Tensor, outputs: tuple[str, ...] = ("tower_0/keypoints", "tower_0/wh"),
                given: dict[str, torch.Tensor] | None = None) -> dict:
        """Runs the nodes ``outputs`` depend on, in dependency order; ``images`` feeds the placeholder; ``given``:
        nodes' values computed elsewhere (NHWC), which are used as they are (and what only they need is skipped)."""
        values: dict[str, object] = {self.inputs[0]: images, **(given or {})}
        for node in self._order(outputs, tuple(given or ())):
            if node["op"] != "Placeholder" and node["name"] not in values:
                refs = [r for r in node.get("input", []) if not r.startswith("^")]
                values[node["name"]] = _run_op(node, [self._value(values, r) for r in refs])
        return {name: self._value(values, name) for name in outputs}

    def _order(self, outputs: tuple[str, ...], given: tuple[str, ...] = ()) -> list[dict]:
        """The non-constant nodes ``outputs`` need (not those only ``given`` nodes need), each after its inputs
        (depth-first post-order)."""
        key = (tuple(outputs), tuple(sorted(given)))
        if key not in self._orders:
            by_name = {n["name"]: n for n in self.nodes}
            order, done, stack = [], set(given), [(o.partition(":")[0], False) for o in reversed(outputs)]
            while stack:
                name, expanded = stack.pop()
                if name in done or name not in by_name:
                    continue
                if expanded:
                    done.add(name)
                    order.append(by_name[name])
                    continue
                stack.append((name, True))
                stack += [(r.lstrip("^").partition(":")[0], False) for r in by_name[name].get("input", [])]
            self._orders[key] = order
        return self._orders[key]
