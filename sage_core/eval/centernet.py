"""The downstream benchmark's detector (CenterNet, TF.js graph) in PyTorch: a BGR image in, the graph's raw rows out.

The convolutional part runs compiled (:mod:`sage_core.eval.tfjs_compiled`, NCHW), the graph's own decoding (top
100 heat-map peaks -> boxes) op by op (:mod:`sage_core.eval.tfjs_graph`); ``compiled=False`` runs every node op by
op. ``benchmarks/bench_downstream.py --check-torch`` compares it with TF.js on the same inputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sage_core.eval.tfjs_compiled import CompiledGraph
from sage_core.eval.tfjs_graph import TfjsGraph, resize_bilinear_legacy


class TorchCenterNet:
    """The downstream benchmark's detector in PyTorch: BGR uint8 image in, raw (100, 6) rows out
    (x1, y1, x2, y2 in image pixels, score, COCO class index), as the TF.js runner returns them.

    Pre-processing as @vladmandic/human: RGB float 0..255, legacy bilinear resize to the graph's input.
    """

    #: The convolutional part's outputs, which the graph's decoding (top-100 peaks -> boxes) reads.
    HEADS = ("tower_0/keypoints", "tower_0/wh")

    def __init__(self, model_json: str | Path, device: str = "cpu", compiled: bool = True) -> None:
        self.graph = TfjsGraph(model_json).to(device).eval()
        self.device = torch.device(device)
        dims = self.graph.signature["inputs"][self.graph.inputs[0]]["tensorShape"]["dim"]
        self.size = (int(dims[1]["size"]), int(dims[2]["size"]))
        #: compiled: the convolutional part as sage_core.eval.tfjs_compiled.CompiledGraph (NCHW, the form training
        #: uses), the decoding op by op; else every node op by op.
        self.compiled = None
        if compiled:
            self.compiled = CompiledGraph(self.graph, self.HEADS).to(device).eval()

    def preprocess(self, rgb: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) RGB float 0..255 -> the graph's (N, 512, 512, 3) input (differentiable)."""
        return resize_bilinear_legacy(rgb, *self.size)

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        rgb = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).to(self.device, torch.float32)[None]
        with torch.inference_mode():
            x = self.preprocess(rgb)
            given = None
            if self.compiled is not None:
                heads = self.compiled(x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last))
                given = {name: t.permute(0, 2, 3, 1).contiguous() for name, t in zip(self.HEADS, heads)}
            rows = self.graph(x, ("tower_0/detections",), given)["tower_0/detections"][0]
        rows = rows.double().cpu().numpy()
        h, w = bgr.shape[:2]
        rows[:, [0, 2]] *= w / self.size[1]
        rows[:, [1, 3]] *= h / self.size[0]
        return rows
