"""The frozen detector's targets, computed once per image and window and kept on disk: a look-up in training.

For each image, the detector sees each camera exactly as the downstream benchmark shows it (the visible BGR
image as RGB, the thermal as gray repeated to RGB, 0..255, TensorFlow's legacy bilinear resize to its input),
cut into the fixed windows of :mod:`sage_core.train.detector_windows`. Per window, the two cameras' heat-maps
make the label-free target as in the detection term (``teacher.detection``, ``train/detection.py``): per cell
and class the larger (``max``) or the mean of the two, cells under ``min_score`` set to 0, and the box sizes of
the camera with the higher score at each cell. Stored as float16, one file per image, under a key of the
detector's files, the settings and the image's pixels; two of the three detector passes of a training step
become a look-up.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sage_core.atomic import atomic_path
from sage_core.errors import ConfigError
from sage_core.train.detection import combine_targets
from sage_core.train.detector_windows import Window, gather, legacy_axis, windows
from sage_core.train.detectors import DEFAULT_OUTPUTS, DetectorOutput, detector_kind


class WindowDetector:
    """A frozen TF.js detector (``centernet:PATH`` or ``PATH.json``) on windows of its input: RGB 0..255 NCHW whose
    sides are multiples of 32 in, the heat-map of ``classes`` and the box sizes out. Weights frozen; gradients flow
    to the input."""

    def __init__(self, spec: str, classes: list[int] | None, device: torch.device | str = "cpu") -> None:
        from sage_core.eval.tfjs_compiled import CompiledGraph
        from sage_core.eval.tfjs_graph import TfjsGraph

        kind, path = detector_kind(spec)
        if kind != "tfjs":
            raise ConfigError(f"detector: {spec}: detector-in-the-loop training on windows takes a TF.js graph "
                              "(centernet:PATH or PATH.json)")
        if not path.is_file():
            raise ConfigError(f"detector: {path} not found (npm ci in benchmarks/downstream fetches CenterNet)")
        self.path = path
        graph = TfjsGraph(path)
        dims = graph.signature["inputs"][graph.inputs[0]]["tensorShape"]["dim"]
        self.input_size = (int(dims[1]["size"]), int(dims[2]["size"]))
        self.net = CompiledGraph(graph, DEFAULT_OUTPUTS["tfjs"]).to(device).eval().requires_grad_(False)
        self.classes = list(classes) if classes else None

    def key(self) -> str:
        """Digest of the graph's JSON and weight files: a changed detector gets new targets."""
        digest = hashlib.sha256(self.path.read_bytes())
        for shard in sorted(self.path.parent.glob(self.path.stem + "*.bin")):
            digest.update(shard.read_bytes())
        return digest.hexdigest()[:16]

    def __call__(self, rgb255: torch.Tensor) -> DetectorOutput:
        heat, sizes = self.net(rgb255.contiguous(memory_format=torch.channels_last))
        return DetectorOutput(heat[:, self.classes] if self.classes else heat, sizes)


@dataclass(frozen=True)
class TargetSettings:
    """How targets are made: the window grid and the two cameras' combination (``train/detection.py``)."""

    window: int = 256
    stride: int = 128
    rule: str = "max"
    min_score: float = 0.05

    def tag(self) -> str:
        return f"w{self.window}s{self.stride}{self.rule}{self.min_score:g}"


@dataclass
class WindowTargets:
    """One image's targets: ``heat`` (K, C, n, n) and ``sizes`` (K, 4, n, n) float16, window k = ``windows[k]``."""

    windows: list[Window]
    heat: np.ndarray
    sizes: np.ndarray


def detector_input(image_rgb: np.ndarray, input_size: tuple[int, int]) -> torch.Tensor:
    """H x W x 3 RGB uint8 -> (1, 3, h, w) float 0..255 resized as @vladmandic/human does (legacy bilinear)."""
    x = torch.from_numpy(np.ascontiguousarray(image_rgb)).permute(2, 0, 1)[None].float()
    return gather(gather(x, 2, legacy_axis(x.shape[2], input_size[0])), 3, legacy_axis(x.shape[3], input_size[1]))


def camera_views(ir: np.ndarray, vis_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark's two inputs as RGB uint8: the visible image, and the thermal (H x W uint8) as gray RGB."""
    return np.ascontiguousarray(vis_bgr[:, :, ::-1]), np.repeat(ir[:, :, None], 3, axis=2)


class TargetCache:
    """Targets per image from disk, or computed with ``detector`` and stored (see the module docstring)."""

    def __init__(self, root: str | os.PathLike, detector: WindowDetector, settings: TargetSettings) -> None:
        classes = "-".join(map(str, detector.classes)) if detector.classes else "all"
        self.root = Path(root) / f"{detector.key()}_{settings.tag()}_c{classes}"
        self.root.mkdir(parents=True, exist_ok=True)
        self.detector, self.settings = detector, settings
        self.windows = windows(detector.input_size, settings.window, settings.stride)
        self.hits = self.misses = 0

    def targets(self, ir: np.ndarray, vis_bgr: np.ndarray) -> WindowTargets:
        """``ir`` H x W uint8, ``vis_bgr`` H x W x 3 uint8 -> this image's :class:`WindowTargets`."""
        digest = hashlib.sha256(np.ascontiguousarray(ir).tobytes() + np.ascontiguousarray(vis_bgr).tobytes())
        path = self.root / f"{digest.hexdigest()[:24]}_{ir.shape[0]}x{ir.shape[1]}.npz"
        if path.is_file():
            self.hits += 1
            with np.load(path) as saved:
                return WindowTargets(self.windows, saved["heat"], saved["sizes"])
        self.misses += 1
        heat, sizes = self._compute(ir, vis_bgr)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, heat=heat, sizes=sizes)
        return WindowTargets(self.windows, heat, sizes)

    def _compute(self, ir: np.ndarray, vis_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = []
        with torch.no_grad():
            for view in camera_views(ir, vis_bgr):
                frame = detector_input(view, self.detector.input_size)
                crops = torch.cat([frame[:, :, w.top:w.top + w.size, w.left:w.left + w.size] for w in self.windows])
                outputs.append(self.detector(crops))
        s = self.settings
        combined = combine_targets(outputs[0], outputs[1], s.rule, s.min_score, peak_score=1.0)
        return combined.heatmap.half().numpy(), combined.sizes.half().numpy()
