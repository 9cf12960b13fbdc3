"""The fusion node's camera inputs: subscriptions (raw or compressed), conversion and the input guards.

Per camera the node subscribes to ``<camera>/image`` (``sensor_msgs/Image``, transport ``raw``) or
``<camera>/image/compressed`` / ``<camera>/image/compressedDepth`` (``sensor_msgs/CompressedImage``,
transports ``compressed`` / ``compressedDepth``: the image_transport naming), and to ``<camera>/camera_info``. A raw message is converted on the
executor thread from its serialized bytes (``image_from_cdr``: one copy and a few checks); a compressed one is decoded on a thread of its camera
(:class:`DecodeQueue`), so JPEG/PNG decoding never holds up the executor. Either way the image then
goes to the node's :class:`~sage_ros.stream.intake.FrameIntake` (guards, pairing), under one lock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from sage_core.cameras import Camera
from sage_ros.codec.compressed import decode_compressed
from sage_ros.codec.image import CAMERA_ENCODINGS, BadImage, image_from_cdr, image_to_array, stamp_ns
from sage_ros.stream.intake import FrameIntake

#: Compressed messages kept per camera while its decoder is busy; older ones are dropped (and counted).
DECODE_QUEUE_DEPTH = 2


class DecodeQueue(threading.Thread):
    """One camera's compressed messages, decoded in arrival order on a thread of their own.

    Holds at most ``depth`` undecoded messages: when decoding falls behind, the oldest is dropped
    (``on_drop``), so latency stays bounded, as with the inference worker.
    """

    def __init__(self, camera: Camera, handle: Callable[[CompressedImage], None], on_drop: Callable[[], None],
                 on_error: Callable[[Exception], None], depth: int = DECODE_QUEUE_DEPTH) -> None:
        super().__init__(name=f"sage_fusion_decode_{camera.label}", daemon=True)
        self._handle, self._on_drop, self._on_error = handle, on_drop, on_error
        self._queue: deque[CompressedImage] = deque()
        self._depth = depth
        self._wake = threading.Condition()
        self._stopping = False

    def put(self, msg: CompressedImage) -> None:
        with self._wake:
            if len(self._queue) >= self._depth:
                self._queue.popleft()
                self._on_drop()
            self._queue.append(msg)
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self.join(timeout=5.0)

    def run(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                msg = self._queue.popleft()
            try:
                self._handle(msg)
            except Exception as exc:  # noqa: BLE001 - one message must not end the camera's decoding
                self._on_error(exc)


class ImageInputs:
    """Subscriptions of both cameras for one activation of the node, feeding a :class:`FrameIntake`.

    ``wanted()`` says whether anybody needs the output (when not, messages are counted and skipped
    before any work); ``report_bad(camera_label, kind, message)`` counts and logs a rejected message.
    """

    def __init__(self, node, params, stats, intake: FrameIntake, wanted: Callable[[], bool],
                 report_bad: Callable[[str, str, str], None]) -> None:
        self.node, self.stats, self.intake = node, stats, intake
        self._wanted, self._report_bad = wanted, report_bad
        self.camera_info: dict[Camera, CameraInfo] = {}
        self.lock = threading.Lock()  # the intake is not thread-safe; decoder threads feed it too
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
            transport = p.transport(camera)
            if transport != "raw":  # compressed or compressedDepth: CompressedImage on <camera>/image/<transport>
                decoder = DecodeQueue(camera, lambda msg, c=camera: self._decode(c, msg),
                                      lambda: self.stats.count("decode_dropped"),
                                      lambda exc, c=camera: self._report_bad(c.label, "decode_error", repr(exc)))
                decoder.start()
                self.decoders[camera] = decoder
                self.subscriptions[camera] = self.node.create_subscription(
                    CompressedImage, f"{camera.label}/image/{transport}",
                    lambda msg, c=camera: self._on_compressed(c, msg), qos)
            else:
                # Serialized (raw=True): rclpy's own conversion would copy the pixels three times.
                self.subscriptions[camera] = self.node.create_subscription(
                    Image, f"{camera.label}/image", lambda data, c=camera: self._on_raw(c, data), qos, raw=True)
            self._info_subscriptions.append(self.node.create_subscription(
                CameraInfo, f"{camera.label}/camera_info", lambda msg, c=camera: self.camera_info.__setitem__(c, msg),
                qos))

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
        with self.lock:
            self.intake.accept(camera, array, encoding, header, stamp_ns(header), time.monotonic_ns())
