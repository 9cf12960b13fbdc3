"""Frozen detectors for the detection term (:mod:`sage_core.train.detection`): one protocol, two file kinds.

The protocol: a detector takes an RGB batch ``(N, 3, H, W)``, float in [0, 1], and returns
:class:`DetectorOutput`: ``heatmap`` ``(N, C, h, w)``, per-class object-centre probabilities in
[0, 1] (after the sigmoid, as CenterNet's heat-map), and optionally ``sizes`` ``(N, K, h, w)``, the
box geometry predicted at each cell: width and height (K = 2), or distances from the centre to the
four sides (K = 4: human's CenterNet, ``x1 = 4 cx - s0, y1 = 4 cy - s1, x2 = 4 cx + s2, y2 = 4 cy + s3``
in input pixels); any unit, the loss is relative. It must be differentiable with respect to its
input; its weights are frozen here.

- ``centernet:PATH`` or ``PATH.json``: a TF.js graph model (the downstream benchmark's CenterNet,
  ``node_modules/@vladmandic/human/models/centernet.json``) run by :mod:`sage_core.eval.tfjs_graph`;
  the wrapper does what @vladmandic/human does before the graph: RGB x 255, TF's legacy bilinear
  resize to the graph's input size, NHWC. Outputs are graph node names.
- ``torchscript:PATH`` or ``PATH.pt`` / ``.ts``: a user's TorchScript module, called on the [0, 1]
  RGB batch; it returns the heat-map tensor, a ``(heatmap, sizes)`` tuple, or a dict (keys: outputs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sage_core.errors import ConfigError

KEY = "teacher.detection"
TFJS_PREFIXES = ("centernet:", "tfjs:")
TORCHSCRIPT_PREFIXES = ("torchscript:",)
TORCHSCRIPT_SUFFIXES = (".pt", ".ts", ".ptl")
#: CenterNet's (human's centernet.json) heat-map and box-size nodes; a dict-returning TorchScript's keys.
DEFAULT_OUTPUTS = {"tfjs": ("tower_0/keypoints", "tower_0/wh"), "torchscript": ("heatmap", "sizes")}


@dataclass
class DetectorOutput:
    """What a detector returns on one batch: see the module docstring for shapes and ranges."""

    heatmap: torch.Tensor
    sizes: torch.Tensor | None = None


def detector_kind(spec: str) -> tuple[str, Path]:
    """``teacher.detection.detector`` -> (``tfjs`` | ``torchscript``, file path); ConfigError if neither."""
    for prefixes, kind in ((TFJS_PREFIXES, "tfjs"), (TORCHSCRIPT_PREFIXES, "torchscript")):
        for prefix in prefixes:
            if spec.startswith(prefix):
                return kind, Path(spec[len(prefix):])
    path = Path(spec)
    if path.suffix == ".json":
        return "tfjs", path
    if path.suffix in TORCHSCRIPT_SUFFIXES:
        return "torchscript", path
    raise ConfigError(f"{KEY}.detector: cannot tell the kind of {spec!r}; expected centernet:PATH or a TF.js "
                      f"PATH.json, or a TorchScript file ({', '.join(TORCHSCRIPT_SUFFIXES)}, or torchscript:PATH)")


class TfjsDetector(nn.Module):
    """A TF.js graph detector behind the protocol: [0, 1] NCHW RGB in, NCHW outputs out.

    The graph runs as a :class:`~sage_core.eval.tfjs_compiled.CompiledGraph` (NCHW, channels-last memory, the
    same function as the op-by-op graph, several times faster to train through); ``compiled=False``: op by op in
    NHWC as TensorFlow defines it (the reference; ``benchmarks/bench_detection_training.py`` times both)."""

    def __init__(self, model_json: Path, outputs: tuple[str, ...], compiled: bool = True) -> None:
        super().__init__()
        from sage_core.eval.tfjs_compiled import CompiledGraph  # reads JSON + weights only when this kind is used
        from sage_core.eval.tfjs_graph import TfjsGraph

        try:
            graph = TfjsGraph(model_json)
        except (OSError, ValueError, KeyError, NotImplementedError) as exc:
            raise ConfigError(f"{KEY}.detector: {model_json} is not a TF.js graph model this runner executes: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        names = {node["name"] for node in graph.nodes}
        missing = [o for o in outputs if o.partition(":")[0] not in names]
        if missing:
            sigmoids = sorted(n["name"] for n in graph.nodes if n["op"] == "Sigmoid")
            raise ConfigError(f"{KEY}.outputs: {', '.join(missing)} not in {model_json.name} "
                              f"(its Sigmoid nodes: {', '.join(sigmoids) or 'none'})")
        self.outputs = tuple(outputs)
        self.size = _input_size(graph)
        self.graph = None if compiled else graph
        try:
            self.net = CompiledGraph(graph, self.outputs) if compiled else None
        except NotImplementedError as exc:
            raise ConfigError(f"{KEY}.detector: {model_json}: {exc}") from None

    def forward(self, rgb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.graph is not None:
            return self._forward_graph(rgb)
        x = rgb * 255.0  # human feeds RGB float 0..255
        if self.size is not None and tuple(x.shape[2:]) != self.size:
            x = resize_legacy(x, self.size)  # what human's tf.image.resizeBilinear does
        return self.net(x.contiguous(memory_format=torch.channels_last))

    def _forward_graph(self, rgb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from sage_core.eval.tfjs_graph import resize_bilinear_legacy

        x = rgb.permute(0, 2, 3, 1) * 255.0
        if self.size is not None and tuple(x.shape[1:3]) != self.size:
            x = resize_bilinear_legacy(x, *self.size)
        values = self.graph(x, self.outputs)
        return tuple(values[name].permute(0, 3, 1, 2) for name in self.outputs)


def _input_size(graph) -> tuple[int, int] | None:
    """The placeholder's fixed (H, W) from the graph's signature; None when it is not fixed."""
    inputs = graph.signature.get("inputs", {})
    spec = inputs.get(graph.inputs[0], {}) if graph.inputs else {}
    dims = [int(d.get("size", -1)) for d in spec.get("tensorShape", {}).get("dim", [])]
    return (dims[1], dims[2]) if len(dims) == 4 and dims[1] > 0 and dims[2] > 0 else None


def resize_legacy(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TensorFlow's legacy bilinear resize of an NCHW batch (differentiable)."""
    from sage_core.train.detector_windows import gather, legacy_axis

    return gather(gather(x, 2, legacy_axis(x.shape[2], size[0])), 3, legacy_axis(x.shape[3], size[1]))


def _load_torchscript(path: Path, device: torch.device) -> nn.Module:
    try:
        return torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"{KEY}.detector: {path} is not a TorchScript model: "
                          f"{str(exc).splitlines()[0]}") from None


class FrozenDetector:
    """A loaded detector, frozen (eval mode, no weight gradients), returning :class:`DetectorOutput`.

    Gradients still flow to the input image. ``input_size`` (H, W): the batch is resized to it first
    (bilinear); ``classes``: the heat-map channels kept (None: all).
    """

    def __init__(self, net: nn.Module, outputs: tuple[str, ...], input_size: tuple[int, int] | None = None,
                 classes: list[int] | None = None) -> None:
        self.net = net.eval()
        for parameter in self.net.parameters():  # ScriptModules have no requires_grad_()
            parameter.requires_grad_(False)
        self.outputs, self.input_size, self.classes = outputs, input_size, classes
        self._checked = False

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.net.parameters())

    def __call__(self, rgb: torch.Tensor) -> DetectorOutput:
        if self.input_size is not None and tuple(rgb.shape[2:]) != self.input_size:
            rgb = F.interpolate(rgb, size=self.input_size, mode="bilinear", align_corners=False)
        output = self._as_output(self.net(rgb))
        if not self._checked:  # once: the shapes and ranges do not change between batches
            self._check(output, rgb.shape[0])
            self._checked = True
        if self.classes is not None:
            output.heatmap = output.heatmap[:, self.classes]
        return output

    def _as_output(self, raw) -> DetectorOutput:
        if isinstance(raw, torch.Tensor):
            return DetectorOutput(raw)
        if isinstance(raw, dict):
            missing = [k for k in self.outputs[:1] if k not in raw]
            if missing:
                raise ConfigError(f"{KEY}.outputs: the detector's dict has no {missing[0]!r} (keys: "
                                  f"{', '.join(map(str, raw))})")
            sizes = raw.get(self.outputs[1]) if len(self.outputs) > 1 else None
            return DetectorOutput(raw[self.outputs[0]], sizes)
        if isinstance(raw, (tuple, list)) and raw and all(isinstance(t, torch.Tensor) for t in raw):
            return DetectorOutput(raw[0], raw[1] if len(raw) > 1 and len(self.outputs) > 1 else None)
        raise ConfigError(f"{KEY}.detector: expected a heat-map tensor, a (heatmap, sizes) tuple or a dict, "
                          f"got {type(raw).__name__}")

    def _check(self, output: DetectorOutput, n: int) -> None:
        heat = output.heatmap
        if heat.ndim != 4 or heat.shape[0] != n:
            raise ConfigError(f"{KEY}.detector: expected an (N={n}, C, h, w) heat-map, got {tuple(heat.shape)}")
        low, high = float(heat.detach().min()), float(heat.detach().max())
        if low < 0.0 or high > 1.0:
            raise ConfigError(f"{KEY}.detector: heat-map values in [{low:.3g}, {high:.3g}]; expected "
                              "probabilities in [0, 1] (apply the sigmoid inside the detector)")
        if self.classes is not None and (min(self.classes) < 0 or max(self.classes) >= heat.shape[1]):
            raise ConfigError(f"{KEY}.classes: {self.classes} outside the detector's {heat.shape[1]} classes")
        sizes = output.sizes
        if sizes is not None and (sizes.ndim != 4 or sizes.shape[0] != n or sizes.shape[2:] != heat.shape[2:]):
            raise ConfigError(f"{KEY}.detector: expected (N={n}, K, {heat.shape[2]}, {heat.shape[3]}) box sizes, "
                              f"got {tuple(sizes.shape)}")


def load_detector(spec: str, outputs: list[str] | None, input_size: tuple[int, int] | None,
                  classes: list[int] | None, device: torch.device, compiled: bool = True) -> FrozenDetector:
    """The frozen detector ``spec`` names (see :func:`detector_kind`), on ``device``; ``compiled``: see
    :class:`TfjsDetector`."""
    kind, path = detector_kind(spec)
    if not path.is_file():
        raise ConfigError(f"{KEY}.detector: {path} not found")
    names = tuple(outputs) if outputs else DEFAULT_OUTPUTS[kind]
    net = TfjsDetector(path, names, compiled) if kind == "tfjs" else _load_torchscript(path, device)
    return FrozenDetector(net.to(device), names, input_size, classes)
