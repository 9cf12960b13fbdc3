"""One bag in, one bag out: the two cameras fused as the node would, the input topics copied through.

    result = fuse_bag("run1", "run1_fused", FusionParams())      # what ``sage-fuse --bag`` runs

The fused stream goes to ``/fused/image`` (``sensor_msgs/Image`` in the node's output encoding), each
message with the reference camera's stamp and frame_id and logged at the reference message's log time,
and, when the bag holds the reference camera's camera_info, ``/fused/camera_info`` as the node publishes it.
Copied topics keep their bytes, definitions, QoS and log times (nothing is re-serialised).
"""

from __future__ import annotations

import functools
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from sage_core.cameras import Camera
from sage_ros.bags.messages import (
    CAMERA_INFO,
    IMAGE,
    camera_info_message,
    decode_image,
    first_encoding,
    image_message,
    read_camera_info,
)
from sage_ros.bags.offline import OfflineFusion
from sage_ros.bags.storage import InputBag, OutputBag
from sage_ros.bags.topics import ImageTopic, TopicError, choose_depth_topic, choose_topics
from sage_ros.codec.camera_info import fused_camera_info_fields
from sage_ros.codec.header import stamp_ns
from sage_ros.parameters import FusionParams
from sage_ros.stream.frame_path import FusedFrame
from sage_ros.topic_names import FUSED_CAMERA_INFO, FUSED_IMAGE, sibling_camera_info

#: Where the fused stream goes in the output bag: the node's topics, at the root.
FUSED_TOPIC, FUSED_INFO_TOPIC = f"/{FUSED_IMAGE}", f"/{FUSED_CAMERA_INFO}"


@dataclass
class BagFusionResult:
    source: Path
    output: Path
    topics: dict[Camera, ImageTopic]
    model: str
    depth_topic: ImageTopic | None = None  # use_depth: the depth image registered to the rgb camera
    published: int = 0  # messages on /fused/image (fused pairs and passthrough images)
    camera_infos: int = 0  # messages on /fused/camera_info (fused pairs, when the reference camera has one)
    pairs: int = 0
    passthrough: int = 0
    copied: int = 0  # input messages copied through
    not_copied: list[str] = field(default_factory=list)  # topics left out, with the reason
    bad: Counter = field(default_factory=Counter)  # kind -> dropped messages
    first_bad: dict[str, str] = field(default_factory=dict)
    unpaired: int = 0
    inference_errors: int = 0
    fuse_seconds: float = 0.0  # in the pipeline (thermal normalisation, alignment, model)
    seconds: float = 0.0  # reading, decoding, fusing and writing: the whole pass over the bag, model loaded
    adopted: list[str] = field(default_factory=list)
    time_offset: str = ""  # the camera time offset applied at the end and the last estimate, for people
    with_depth: int = 0  # pairs fused with a depth image (use_depth)
    without_depth: int = 0


def _choose(source: InputBag, thermal_topic: str | None, rgb_topic: str | None) -> dict[Camera, ImageTopic]:
    def encoding_of(topic: str) -> str:
        first = source.first(topic)
        return first_encoding(*first) if first else ""

    chosen = choose_topics(source.topics, thermal_topic, rgb_topic, encoding_of)
    empty = [t.name for t in chosen.values() if t.count == 0]
    if empty:
        raise TopicError(f"{source.path}: topic {', '.join(empty)} holds no messages")
    return chosen


def _copies(source: InputBag, out: OutputBag, result: BagFusionResult) -> dict[int, object]:
    """Input connection id -> output connection, for every topic that can be copied."""
    copies = {}
    for conn in source.connections:
        if conn.topic in (FUSED_TOPIC, FUSED_INFO_TOPIC):  # a bag fused before: its old stream would mix in
            result.not_copied.append(f"{conn.topic} (replaced by this run's fused stream)")
            continue
        target = out.copy_topic(conn)
        if target is None:
            result.not_copied.append(f"{conn.topic} ({conn.msgtype}: the bag holds no definition of this type)")
        else:
            copies[conn.id] = target
    return copies


def camera_info_topic(source: InputBag, image_topic: ImageTopic) -> str | None:
    """The camera's sensor_msgs/CameraInfo topic in the bag (the image topic's sibling ``camera_info``), or None."""
    name = sibling_camera_info(image_topic.base)
    return name if source.topics.get(name, ("", 0))[0] == CAMERA_INFO else None


class FusedStream:
    """What the node would publish, written to the output bag: ``/fused/image`` and, when the bag holds
    the reference camera's camera_info, ``/fused/camera_info`` (cropped and scaled like the image)."""

    def __init__(self, out: OutputBag, info_topic: str | None) -> None:
        self.out = out
        self.image_conn = out.add_topic(FUSED_TOPIC, IMAGE)
        self.info_conn = out.add_topic(FUSED_INFO_TOPIC, CAMERA_INFO) if info_topic else None
        self.published = self.camera_infos = 0

    def write(self, image: FusedFrame) -> None:
        header = image.header
        self.out.write(self.image_conn, header.log_ns,
                       image_message(image.image, image.encoding, stamp_ns(header), header.frame_id))
        self.published += 1
        if image.plan is not None and image.lens is not None and self.info_conn is not None:
            fields = fused_camera_info_fields(image.lens, image.plan, *image.image.shape[:2])
            self.out.write(self.info_conn, header.log_ns, camera_info_message(fields, stamp_ns(header),
                                                                               header.frame_id))
            self.camera_infos += 1


def fuse_bag(source_path: str | os.PathLike, out_path: str | os.PathLike, params: FusionParams, *,
             thermal_topic: str | None = None, rgb_topic: str | None = None, storage: str | None = None,
             copy: bool = True, overwrite: bool = False, progress: bool = False,
             fusion: OfflineFusion | None = None, depth_topic: str | None = None) -> BagFusionResult:
    """Fuse a bag into a new one; raises SageError subclasses (BagError, TopicError, ParameterError) on bad input.
    With ``params.use_depth``, ``depth_topic`` (or the bag's depth image topic) is the rgb frames' depth."""
    with InputBag(source_path) as source:
        topics = _choose(source, thermal_topic, rgb_topic)
        depth = choose_depth_topic(source.topics, depth_topic) if params.use_depth else None
        out = OutputBag(out_path, storage, overwrite)  # refuses an existing output before the model loads
        fusion = fusion or OfflineFusion(params)
        result = BagFusionResult(source.path, out.path, topics, fusion.pipeline.fuser.description, depth)
        camera_of = {topic.name: camera for camera, topic in topics.items()}
        depth_info = camera_info_topic(source, depth) if depth else None
        # Both cameras' camera_info: each rectifies its camera's images; the reference's describes the output.
        info_topics = {camera: name for camera, topic in topics.items()
                       if (name := camera_info_topic(source, topic)) is not None}
        info_of = {name: camera for camera, name in info_topics.items()}
        depth_topics = {depth.name, depth_info} - {None} if depth else set()
        wanted = None if copy else set(camera_of) | set(info_of) | depth_topics
        with out:
            copies = _copies(source, out, result) if copy else {}
            fused = FusedStream(out, info_topics.get(fusion.pipeline.reference))
            messages = tqdm(source.messages(wanted), total=source.count(wanted), unit="msg", disable=not progress,
                            desc=f"fusing {topics[Camera.THERMAL].name} + {topics[Camera.RGB].name}")
            started = time.perf_counter()
            for conn, log_ns, raw in messages:
                if conn.id in copies:
                    out.write(copies[conn.id], log_ns, raw)
                    result.copied += 1
                if conn.topic in info_of and (info := read_camera_info(raw)) is not None:
                    fusion.offer_info(info_of[conn.topic], info)
                if depth_info is not None and conn.topic == depth_info and (info := read_camera_info(raw)) is not None:
                    fusion.offer_depth_info(info)
                if depth is not None and conn.topic == depth.name:
                    for image in fusion.offer_depth(log_ns, functools.partial(decode_image, conn.msgtype, raw, log_ns)):
                        fused.write(image)
                    continue
                camera = camera_of.get(conn.topic)
                if camera is None:
                    continue
                for image in fusion.offer(camera, log_ns, functools.partial(decode_image, conn.msgtype, raw, log_ns)):
                    fused.write(image)
            for image in fusion.finish():  # the pairs still waiting to be proven best
                fused.write(image)
            result.published, result.camera_infos = fused.published, fused.camera_infos
        result.seconds = time.perf_counter() - started  # the rename of the finished bag included
    stats = fusion.stats
    result.pairs, result.passthrough = stats.pairs, stats.passthrough
    result.inference_errors, result.unpaired = stats.inference_failures, fusion.unpaired
    result.bad, result.first_bad, result.adopted = stats.bad.counts(), stats.bad.first(), fusion.adopted
    result.time_offset = fusion.time_offset_summary()
    result.fuse_seconds = fusion.fuse_seconds
    if fusion.depth is not None:
        result.with_depth, result.without_depth = fusion.depth.with_depth, fusion.depth.without_depth
    return result


def report(result: BagFusionResult) -> str:
    """What a run did, for people: a few lines."""
    seconds = result.seconds
    thermal, rgb = result.topics[Camera.THERMAL], result.topics[Camera.RGB]
    fused = result.published - result.passthrough
    lines = [f"sage-fuse: {thermal.name} + {rgb.name} from {result.source} -> {FUSED_TOPIC} in {result.output}: "
             f"{result.published} images ({fused} fused pairs, {result.passthrough} passthrough) in {seconds:.2f} s: "
             f"{fused / seconds if seconds > 0 else 0:.1f} pairs/s (reading, decoding, fusing, writing), "
             f"{1000 * result.fuse_seconds / max(1, result.published):.1f} ms fusing per image; "
             f"model {result.model}"]
    copied = f"copied {result.copied} input messages" if result.copied else "input topics not copied"
    if result.not_copied:
        copied += f"; not copied: {', '.join(result.not_copied)}"
    infos = f"{result.camera_infos} on {FUSED_INFO_TOPIC}" if result.camera_infos else f"no {FUSED_INFO_TOPIC} " \
        "(no camera_info of the reference camera in the bag)"
    lines.append(f"sage-fuse: {copied}; {infos}; unpaired messages {result.unpaired}")
    if result.bad:
        kinds = ", ".join(f"{kind} {count} (first: {result.first_bad[kind]})" for kind, count in result.bad.items())
        lines.append(f"sage-fuse: dropped {sum(result.bad.values())} bad messages, as the node would: {kinds}")
    lines += [f"sage-fuse: adopted {change}" for change in result.adopted]
    lines.append(f"sage-fuse: camera time offset {result.time_offset}")
    if result.depth_topic is not None:
        lines.append(f"sage-fuse: depth {result.depth_topic.name}: {result.with_depth} pairs registered per pixel, "
                     f"{result.without_depth} without a depth within slop (at registration_distance)")
    return "\n".join(lines)
