"""The fusion node's frame path without ROS, for recorded data: what the node would publish for a bag.

The same :class:`~sage_ros.stream.intake.FrameIntake` as the node's inputs (stream guards, pairing, RGB to
BGR, the passthrough decision), then the node's :class:`~sage_core.pipeline.FramePipeline` and output
encoding, as in ``FusionNode._fuse_and_publish``.
Two differences, both because nothing is live: every pair is fused (no worker that keeps only the
newest job), and "now" is the bag's log time of the message (when the recorder received it), which
drives the stamp checks and, with ``on_stale: passthrough``, when a camera counts as stale.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sage_core.alignment import Aligner, AlignmentPlan
from sage_core.cameras import Camera
from sage_core.fuser import Fuser
from sage_core.pipeline import FramePipeline
from sage_core.thermal import ThermalNormalizer
from sage_ros.bags.messages import BagHeader, Decoded
from sage_ros.codec.image import CAMERA_ENCODINGS, BadImage, to_output_encoding
from sage_ros.stream.intake import FrameIntake
from sage_ros.parameters import FusionParams
from sage_ros.stream.pairing import Stamped
from sage_ros.stream.worker import Frame, Job



@dataclass(frozen=True)
class FusedImage:
    """One output image in the output encoding's layout, with the header of the camera it takes."""

    image: np.ndarray
    encoding: str
    header: BagHeader
    passthrough: bool = False
    plan: AlignmentPlan | None = None  # how the reference camera's pixels became the output's (pairs only)


def build_pipeline(params: FusionParams) -> FramePipeline:
    """The node's pipeline for these parameters (model, thermal normalisation, alignment)."""
    return FramePipeline(Fuser.from_options(params.inference_options()), ThermalNormalizer(params.thermal_config()),
                         Aligner(params.alignment_config()))


class OfflineFusion:
    """Feed it each camera message in log-time order (:meth:`offer`); it returns what the node would publish."""

    def __init__(self, params: FusionParams, pipeline: FramePipeline | None = None) -> None:
        self.params = params
        self.pipeline = pipeline or build_pipeline(params)
        self.adopted: list[str] = []  # changes of clock, encoding or size the guards adopted (the node logs them)
        self.intake = FrameIntake(params, self._on_pair, self._on_single, self._is_stale, self._bad,
                                  self.adopted.append)
        self.bad: Counter[str] = Counter()  # kind -> messages dropped
        self.first_bad: dict[str, str] = {}  # kind -> the first such message's explanation
        self.counts: Counter[str] = Counter()  # pairs, fused, passthrough, inference_errors
        self.fuse_seconds = 0.0
        self._outputs: list[FusedImage] = []
        self._arrivals: dict[Camera, int] = {}
        self._started_ns: int | None = None
        self._now_ns = 0

    @property
    def unpaired(self) -> int:
        return self.intake.pairer.unpaired

    def _bad(self, source: str, kind: str, message: str) -> None:
        self.bad[kind] += 1
        self.first_bad.setdefault(kind, f"{source}: {message}")

    def offer(self, camera: Camera, log_ns: int, decode: Callable[[tuple[str, ...]], Decoded]) -> list[FusedImage]:
        """One message of ``camera`` logged at ``log_ns``; ``decode(allowed encodings)`` turns it into pixels
        (raising BadImage). Returns the images the node would publish in answer, often none."""
        if self._started_ns is None:
            self._started_ns = log_ns
        self._now_ns = log_ns
        self._arrivals[camera] = log_ns  # a bad message still shows the camera is alive, as in the node
        try:
            decoded = decode(CAMERA_ENCODINGS[camera])
        except BadImage as exc:
            self._bad(camera.label, exc.kind, str(exc))
        else:
            self.intake.accept(camera, decoded.array, decoded.encoding, decoded.header, decoded.header.stamp_ns,
                               log_ns)
        outputs, self._outputs = self._outputs, []
        return outputs

    def _is_stale(self, camera: Camera) -> bool:
        last = self._arrivals.get(camera, self._started_ns)
        return (self._now_ns - last) / 1e9 > self.params.stale_timeout

    def _on_single(self, camera: Camera, frame: Frame) -> None:
        self.counts["passthrough"] += 1
        self._process(Job({camera: frame}))

    def _on_pair(self, thermal: Stamped, rgb: Stamped) -> None:
        self.counts["pairs"] += 1
        self._process(Job.pair(thermal.item, rgb.item))

    def _process(self, job: Job) -> None:
        """The node's worker step, in line; a failure is counted, like the node's inference_error."""
        started = time.perf_counter()
        try:
            self._outputs.append(self._fuse(job))
        except Exception as exc:  # noqa: BLE001 - one bad pair must not end a long bag, as in the node
            self.counts["inference_errors"] += 1
            self._bad("pair", "inference_error", f"{type(exc).__name__}: {exc}")
        finally:
            self.fuse_seconds += time.perf_counter() - started

    def _fuse(self, job: Job) -> FusedImage:
        encoding = self.params.output_encoding
        if job.is_pair:
            reference = job.frames[self.pipeline.reference]
            out = self.pipeline.fuse(job.frames[Camera.THERMAL].array, job.frames[Camera.RGB].array,
                                     gray=encoding == "mono8")
            self.counts["fused"] += 1
        else:
            ((camera, reference),) = job.frames.items()
            out = self.pipeline.passthrough(camera, reference.array,
                                            self.intake.sizes.get(camera.other, reference.size))
        plan = (self.pipeline.aligner.plan(job.frames[Camera.THERMAL].size, job.frames[Camera.RGB].size)
                if job.is_pair else None)
        return FusedImage(to_output_encoding(out, encoding), encoding, reference.header, not job.is_pair, plan)

    def finish(self) -> None:
        """End of the bag: what still waits for a partner never gets one (counted as unpaired)."""
        self.intake.finish()
