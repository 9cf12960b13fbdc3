"""Which image topic of a bag is the thermal camera and which the RGB one.

Given topics are checked (present, an image type). Otherwise a topic is thermal-like or RGB-like by the
words of its name (``/flir/image_raw``, ``/camera/color/image_raw``) or, when its name says neither, by
the encoding of its first message (16-bit or float: thermal; colour: RGB). A camera recorded both raw
and compressed counts once, as its raw topic (lossless). Anything but exactly one of each is an error
that lists the image topics, so the user can pass ``--thermal-topic`` and ``--rgb-topic``. A depth image
topic (its name says ``depth``: ``/camera/aligned_depth_to_color/image_raw``) is never taken for a camera;
with ``use_depth`` it is the depth input (:func:`choose_depth_topic`: the one aligned to colour, or the only one).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sage_core.cameras import Camera
from sage_core.errors import SageError
from sage_ros.bags.messages import COMPRESSED, IMAGE_TYPES

THERMAL_WORDS = {"thermal", "therm", "ir", "lwir", "mwir", "swir", "nir", "flir", "boson", "lepton", "infrared",
                 "seek", "tau", "radiometric"}
RGB_WORDS = {"rgb", "color", "colour", "visible", "vis", "camera", "cam", "bgr", "zed", "realsense", "webcam"}
#: A first message in one of these says "thermal" when the topic name says neither camera.
THERMAL_LIKE_ENCODINGS = {"mono16", "16UC1", "32FC1"}
#: ... and one in these says "RGB".
RGB_LIKE_ENCODINGS = {"rgb8", "bgr8", "rgba8", "bgra8", "rgb16", "bgr16"}
TRANSPORT_SUFFIXES = ("/compressed", "/compressedDepth")
#: A topic whose name has this word is a depth image, not a camera's; "aligned" marks one registered to colour.
DEPTH_WORD, ALIGNED_WORD = "depth", "aligned"


class TopicError(SageError):
    """The bag's topics do not give one thermal and one RGB image stream; the message lists them."""


@dataclass(frozen=True)
class ImageTopic:
    name: str
    msgtype: str
    count: int

    @property
    def compressed(self) -> bool:
        return self.msgtype == COMPRESSED

    @property
    def base(self) -> str:
        """The camera's topic without the image_transport suffix."""
        for suffix in TRANSPORT_SUFFIXES:
            if self.compressed and self.name.endswith(suffix):
                return self.name[: -len(suffix)]
        return self.name

    def describe(self) -> str:
        return f"{self.name} ({self.msgtype}, {self.count} messages)"


def words(topic: str) -> set[str]:
    return {w for w in re.split(r"[/_\-.\s]+", topic.lower()) if w}


def by_name(topic: str) -> Camera | None:
    found = words(topic)
    if found & THERMAL_WORDS:  # a thermal camera's topic often says "camera" too: thermal wins
        return Camera.THERMAL
    return Camera.RGB if found & RGB_WORDS else None


def by_encoding(encoding: str) -> Camera | None:
    if encoding in THERMAL_LIKE_ENCODINGS:
        return Camera.THERMAL
    return Camera.RGB if encoding in RGB_LIKE_ENCODINGS else None


def _listing(topics: dict[str, tuple[str, int]]) -> str:
    images = [ImageTopic(n, t, c).describe() for n, (t, c) in sorted(topics.items()) if t in IMAGE_TYPES]
    return ", ".join(images) if images else "none"


def _given_topic(role: str, name: str, topics: dict[str, tuple[str, int]]) -> ImageTopic:
    if name not in topics:
        raise TopicError(f"{role} topic {name} is not in the bag; its image topics: {_listing(topics)}")
    msgtype, count = topics[name]
    if msgtype not in IMAGE_TYPES:
        raise TopicError(f"{role} topic {name} has type {msgtype}; expected {' or '.join(IMAGE_TYPES)}")
    return ImageTopic(name, msgtype, count)


def _candidates(topics: dict[str, tuple[str, int]], taken: set[str]) -> list[ImageTopic]:
    """Image topics not already chosen, one per camera: the raw topic when it is recorded compressed too."""
    images = [ImageTopic(n, t, c) for n, (t, c) in sorted(topics.items()) if t in IMAGE_TYPES and n not in taken]
    raw_bases = {t.base for t in images if not t.compressed}
    return [t for t in images if not (t.compressed and t.base in raw_bases) and t.base not in taken
            and DEPTH_WORD not in words(t.base)]


def choose_depth_topic(topics: dict[str, tuple[str, int]], given: str | None) -> ImageTopic:
    """The depth image topic: ``given`` (checked), or the one whose name says depth and aligned (to colour), or the
    only one whose name says depth; TopicError listing the image topics otherwise."""
    if given:
        return _given_topic("depth", given, topics)
    images = [ImageTopic(n, t, c) for n, (t, c) in sorted(topics.items()) if t in IMAGE_TYPES]
    raw_bases = {t.base for t in images if not t.compressed}
    depths = [t for t in images if DEPTH_WORD in words(t.base) and not (t.compressed and t.base in raw_bases)]
    aligned = [t for t in depths if ALIGNED_WORD in words(t.base)]
    for found in (aligned, depths):
        if len(found) == 1:
            return found[0]
    raise TopicError(f"cannot tell which image topic is the depth registered to the rgb camera (depth-like: "
                     f"{', '.join(t.name for t in depths) or 'none'}); image topics: {_listing(topics)}; pass "
                     "--depth-topic")


def choose_topics(topics: dict[str, tuple[str, int]], thermal: str | None, rgb: str | None,
                  encoding_of: Callable[[str], str]) -> dict[Camera, ImageTopic]:
    """The thermal and RGB topics; ``topics`` maps name -> (type, message count), ``encoding_of(name)``
    reads a topic's first encoding (asked only when names do not tell)."""
    chosen = {camera: _given_topic(camera.label, name, topics)
              for camera, name in ((Camera.THERMAL, thermal), (Camera.RGB, rgb)) if name}
    missing = [camera for camera in Camera if camera not in chosen]
    if not missing:
        if chosen[Camera.THERMAL].name == chosen[Camera.RGB].name:
            raise TopicError(f"thermal and rgb topic are both {thermal}; expected two different topics")
        return chosen
    taken = {t.name for t in chosen.values()} | {t.base for t in chosen.values()}
    candidates = _candidates(topics, taken)
    kinds = {t.name: by_name(t.name) for t in candidates}
    for t in candidates:
        if kinds[t.name] is None:
            kinds[t.name] = by_encoding(encoding_of(t.name))
    for camera in missing:
        matching = [t for t in candidates if kinds[t.name] is camera]
        if len(matching) != 1:
            found = "none" if not matching else ", ".join(t.name for t in matching)
            raise TopicError(f"cannot tell which image topic is the {camera.label} camera ({camera.label}-like: "
                             f"{found}); image topics: {_listing(topics)}; expected exactly one thermal-like and "
                             f"one RGB-like topic: pass --thermal-topic and --rgb-topic")
        chosen[camera] = matching[0]
    return chosen
