"""The fusion node's camera inputs: subscriptions (raw or compressed), conversion and the input guards.

Per camera the node subscribes to ``<camera>/image`` (``sensor_msgs/Image``, transport ``raw``) or
``<camera>/image/compressed`` / ``<camera>/image/compressedDepth`` (``sensor_msgs/CompressedImage``,
transports ``compressed`` / ``compressedDepth``: the image_transport naming), and to
``<camera>/camera_info``. As image_transport does (since Kilted), the base topic is resolved first
(namespace and remaps applied) and the transport and camera_info names are derived from the result,
so ``-r thermal/image:=/flir/image`` moves ``/flir/image/compressed`` and ``/flir/camera_info`` too.
A raw message is converted on the executor thread from its serialized bytes
(``image_from_cdr``: one copy and a few checks); a compressed one is decoded on a thread of its camera
(:class:`~sage_ros.stream.decode_queue.DecodeQueue`), so JPEG/PNG decoding never holds up the executor.
Either way the image then goes to the node's :class:`~sage_ros.stream.intake.FrameIntake` (guards, pairing).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from sage_core.cameras import Camera
from sage_ros.codec.cdr import image_from_cdr
from sage_ros.codec.compressed import decode_compressed
from sage_ros.codec.encodings import CAMERA_ENCODINGS, BadImage
from sage_ros.codec.header import stamp_ns
from sage_ros.codec.image import image_to_array
from sage_ros.parameters import FusionParams
from sage_ros.stream.decode_queue import DecodeQueue
from sage_ros.stream.intake import FrameIntake
from sage_ros.stream.lenses import CameraLenses
from sage_ros.stream.stats import FusionStats
from sage_ros.topic_names import image_topic, sibling_camera_info, transport_topic


class ImageInputs:
    """Subscriptions of both cameras for one activation of the node, feeding a :class:`FrameIntake`.

    ``wanted()`` says whether anybody needs the output (when not, messages are counted and skipped
    before any work); ``report_bad(camera_label, kind, message)`` counts and logs a rejected message.
    """

    def __init__(self, node, params: FusionParams, stats: FusionStats, intake: FrameIntake, lenses: CameraLenses,
                 wanted: Callable[[], bool], report_bad: Callable[[str, str, str], None],
                 clock: Callable[[], int]) -> None:
        """``clock()``: now in ns on the node's clock, which the stamp checks compare stamps with;
        ``lenses`` gets each camera_info (rectification, fused/camera_info)."""
        self.node, self.stats, self.intake, self.lenses, self.clock = node, stats, intake, lenses, clock
        self._wanted, self._report_bad = wanted, report_bad
        self.decoders: dict[Camera, DecodeQueue] = {}
        self.subscriptions = {}
        self._info_subscriptions = []
        try:
            self._subscribe(params)
        except BaseException:
            self.close()  # what was made before the failure
            raise

    def _subscribe(self, p) -> None:
        reliability = (ReliabilityPolicy.BEST_EFFORT if p.qos_reliability == "best_effort"
                       else ReliabilityPolicy.RELIABLE)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=p.qos_depth, reliability=reliability)
        for camera in Camera:
            transport, base = p.transport(camera), self.node.resolve_topic_name(image_topic(camera.label))
            if transport != "raw":  # compressed or compressedDepth: CompressedImage on <camera>/image/<transport>
                decoder = DecodeQueue(f"sage_fusion_decode_{camera.label}",
                                      lambda msg, c=camera: self._decode(c, msg),
                                      lambda: self.stats.count("decode_dropped"),
                                      lambda exc, c=camera: self._report_bad(c.label, "decode_error", repr(exc)))
                decoder.start()
                self.decoders[camera] = decoder
                self.subscriptions[camera] = self.node.create_subscription(
                    CompressedImage, transport_topic(base, transport),
                    lambda msg, c=camera: self._on_compressed(c, msg), qos)
            else:
                # Serialized (raw=True): rclpy's own conversion would copy the pixels three times.
                self.subscriptions[camera] = self.node.create_subscription(
                    Image, base, lambda data, c=camera: self._on_raw(c, data), qos, raw=True)
            self._info_subscriptions.append(self.node.create_subscription(
                CameraInfo, sibling_camera_info(base),
                lambda msg, c=camera: self.lenses.offer(c, msg), qos))

    def close(self) -> None:
        """Unsubscribe and stop the decoders (what they hold is dropped)."""
        for subscription in [*self.subscriptions.values(), *self._info_subscriptions]:
            self.node.destroy_subscription(subscription)
        for decoder in self.decoders.values():
            decoder.stop()

    # ----- executor and decoder threads ---------------------------------------------------------

    def _arrived(self, camera: Camera) -> bool:
        """Count the arrival (staleness needs it even when idle); whether to process the message."""
        self.stats.arrived(camera.label)
        if self._wanted():
            return True
        self.stats.count("skipped_idle")
        return False

    def _on_raw(self, camera: Camera, data: bytes) -> None:
        if not self._arrived(camera):
            return
        msg = image_from_cdr(data)  # never raises: a malformed payload raises BadImage in image_to_array
        try:
            array = image_to_array(msg, CAMERA_ENCODINGS[camera])
        except BadImage as exc:
            self._report_bad(camera.label, exc.kind, str(exc))
            return
        self._accept(camera, array, msg.encoding, msg.header)

    def _on_compressed(self, camera: Camera, msg: CompressedImage) -> None:
        if self._arrived(camera):
            self.decoders[camera].put(msg)

    def _decode(self, camera: Camera, msg: CompressedImage) -> None:
        """Decoder thread: the compressed image, checked like a raw one."""
        try:
            array, encoding = decode_compressed(msg.format, msg.data, allowed=CAMERA_ENCODINGS[camera])
        except BadImage as exc:  # BadCompressedImage is one, with the kind counted
            self._report_bad(camera.label, exc.kind, str(exc))
            return
        self._accept(camera, array, encoding, msg.header)

    def _accept(self, camera: Camera, array: np.ndarray, encoding: str, header) -> None:
        self.intake.accept(camera, array, encoding, header, stamp_ns(header), self.clock())
