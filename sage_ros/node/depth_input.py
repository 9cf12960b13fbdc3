"""The fusion node's optional depth input (``use_depth``): ``rgb/depth`` and its camera_info, raw or compressed.

A depth image registered to the rgb camera (RealSense's ``aligned_depth_to_color``) comes on ``rgb/depth``
(``sensor_msgs/Image``, transport ``raw``) or ``rgb/depth/compressedDepth`` / ``rgb/depth/compressed``
(``depth_transport``), image_transport's naming from the resolved base topic, as the cameras' inputs:
``-r rgb/depth:=/camera/aligned_depth_to_color/image_raw`` moves its camera_info to
``/camera/aligned_depth_to_color/camera_info`` too. Raw messages are converted on the executor, compressed
ones on a thread of their own; ``16UC1`` / ``mono16`` millimetres and ``32FC1`` metres are taken (NaN: no
depth), anything else is counted as a bad message of kind ``depth_<kind>`` and dropped. The depth
camera_info must describe the rgb camera's image (its size and camera matrix): one that does not is counted
as ``depth_camera_info`` (the depth is not registered to the rgb camera). Kept images go to the
:class:`~sage_ros.stream.depth_pairing.DepthMatcher`, which pairs them with the rgb frames.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from sage_core.cameras import Camera
from sage_ros.codec.cdr import image_from_cdr
from sage_ros.codec.compressed import decode_compressed
from sage_ros.codec.encodings import DEPTH_ENCODINGS, BadImage
from sage_ros.codec.header import stamp_ns
from sage_ros.codec.image import image_to_array
from sage_ros.parameters import FusionParams
from sage_ros.stream.decode_queue import DecodeQueue
from sage_ros.stream.depth_pairing import DepthMatcher, registration_problem
from sage_ros.stream.frames import Frame, Job
from sage_ros.stream.intake import FrameIntake
from sage_ros.stream.lenses import CameraLenses
from sage_ros.stream.stats import FusionStats
from sage_ros.topic_names import DEPTH_IMAGE, sibling_camera_info, transport_topic


class DepthInput:
    """The depth subscriptions of one activation of the node; see the module docstring."""

    def __init__(self, node, params: FusionParams, submit: Callable[[Job], None], lenses: CameraLenses,
                 intake: FrameIntake, stats: FusionStats, wanted: Callable[[], bool], clock: Callable[[], int]) -> None:
        """``submit(job)``: where each pair goes with its depth; ``wanted()``: whether anybody needs the output;
        ``clock()``: now in ns on the node's clock."""
        self.node, self.lenses, self.clock = node, lenses, clock
        self._wanted, self._report_bad = wanted, stats.bad.report
        #: Pairs each fused pair (``matcher.add_pair``) with its rgb frame's depth.
        self.matcher = DepthMatcher(params.slop, params.queue_size, params.stale_timeout, submit, stats.bad.report,
                                    lambda: intake.size_of(Camera.RGB), node.get_logger().warning)
        self._registered = True  # whether the latest depth camera_info describes the rgb image
        self.decoder: DecodeQueue | None = None
        reliability = (ReliabilityPolicy.BEST_EFFORT if params.qos_reliability == "best_effort"
                       else ReliabilityPolicy.RELIABLE)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=params.qos_depth, reliability=reliability)
        base = node.resolve_topic_name(DEPTH_IMAGE)
        if params.depth_transport == "raw":
            self.subscription = node.create_subscription(Image, base, self._on_raw, qos, raw=True)
        else:
            self.decoder = DecodeQueue("sage_fusion_decode_depth", self._decode, lambda: None,
                                       lambda exc: self._bad("decode_error", repr(exc)))
            self.decoder.start()
            self.subscription = node.create_subscription(
                CompressedImage, transport_topic(base, params.depth_transport), self._on_compressed, qos)
        self.info_subscription = node.create_subscription(CameraInfo, sibling_camera_info(base), self._on_info, qos)
        node.get_logger().info(f"registering per pixel by the depth on {self.subscription.topic_name}, at "
                               f"registration_distance where it has none")

    def diagnostics(self) -> list[tuple[str, str]]:
        """The depth input's /diagnostics key-values."""
        return self.matcher.diagnostics(self.clock())

    def close(self) -> None:
        self.node.destroy_subscription(self.subscription)
        self.node.destroy_subscription(self.info_subscription)
        if self.decoder is not None:
            self.decoder.stop()

    def _bad(self, kind: str, message: str) -> None:
        self._report_bad("depth", f"depth_{kind}", message)

    def _on_info(self, info) -> None:
        problem = registration_problem(info, self.lenses.info(Camera.RGB))
        self._registered = problem is None
        if problem is not None:
            self._bad("camera_info", f"{problem}; depth images are dropped until it does")

    def _on_raw(self, data: bytes) -> None:
        if not self._wanted():
            return
        msg = image_from_cdr(data)
        try:
            array = image_to_array(msg, DEPTH_ENCODINGS, finite=False)
        except BadImage as exc:
            self._bad(exc.kind, str(exc))
            return
        self._accept(array, msg.encoding, msg.header)

    def _on_compressed(self, msg) -> None:
        if self._wanted() and self.decoder is not None:
            self.decoder.put(msg)

    def _decode(self, msg) -> None:
        try:
            array, encoding = decode_compressed(msg.format, msg.data, DEPTH_ENCODINGS, finite=False)
        except BadImage as exc:
            self._bad(exc.kind, str(exc))
            return
        self._accept(array, encoding, msg.header)

    def _accept(self, array: np.ndarray, encoding: str, header) -> None:
        if self._registered:
            self.matcher.add_depth(Frame(array, header, encoding), stamp_ns(header), self.clock())
