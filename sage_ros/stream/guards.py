"""Plausibility checks of each camera stream before pairing: stamps, encoding and resolution.

A single message with a stamp a day in the future, or one 32FC1 frame inside a mono16 stream, must
not starve pairing or ruin the picture. Each guard rejects what does not fit the stream so far (the
node counts it as a bad message of a named kind) and adopts a deliberate change (a camera
rebooted with a new clock, a bag restarted, a driver reconfigured) once ``adopt_after`` consecutive
messages agree on it. Pure Python, free of ROS, unit-tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sage_core.cameras import Camera


@dataclass(frozen=True)
class Verdict:
    """What to do with one message: accept it (``adopted`` when it completed a change), or reject it."""

    accepted: bool
    kind: str = ""  # the bad-message kind when rejected
    message: str = ""
    adopted: bool = False


ACCEPT = Verdict(True)


@dataclass
class _Clock:
    stamp_ns: int  # the last accepted stamp
    arrival_ns: int  # when it arrived (the node's clock, or the bag's log time)

    def expected(self, now_ns: int) -> int:
        """Where this stream's stamps should be now, if its clock runs like ours."""
        return self.stamp_ns + (now_ns - self.arrival_ns)


@dataclass
class StampGuard:
    """Rejects stamps far from both cameras' recent clocks; adopts a consistent jump after ``adopt_after``.

    A stamp is plausible when it lies within ``max_jump_s`` of where its own stream's clock, or the
    other camera's, should be now (last stamp + time since it arrived): a camera that pauses and
    resumes, or starts late, is fine. Stamps of zero or less are never valid.
    """

    max_jump_s: float = 1.0
    adopt_after: int = 5
    _clocks: dict[Camera, _Clock] = field(default_factory=dict)
    _candidates: dict[Camera, list[_Clock]] = field(default_factory=dict)

    def check(self, camera: Camera, stamp_ns: int, now_ns: int) -> Verdict:
        if stamp_ns <= 0:
            return Verdict(False, "invalid_stamp", f"stamp {stamp_ns / 1e9:.3f} s: the driver sets no header.stamp")
        limit = int(self.max_jump_s * 1e9)
        own, other = self._clocks.get(camera), self._clocks.get(camera.other)
        if own is None or any(abs(stamp_ns - c.expected(now_ns)) <= limit for c in (own, other) if c is not None):
            self._clocks[camera] = _Clock(stamp_ns, now_ns)
            self._candidates.pop(camera, None)
            return ACCEPT
        candidates = self._candidates.setdefault(camera, [])
        if candidates and abs(stamp_ns - candidates[-1].expected(now_ns)) > limit:
            candidates.clear()  # not consistent with the previous odd stamps either: start counting again
        candidates.append(_Clock(stamp_ns, now_ns))
        if len(candidates) >= self.adopt_after:
            self._clocks[camera] = candidates[-1]
            del self._candidates[camera]
            return Verdict(True, "clock_jump", f"stamps jumped by {(stamp_ns - own.expected(now_ns)) / 1e9:+.3f} s "
                           f"for {self.adopt_after} messages in a row: adopted as the camera's new clock",
                           adopted=True)
        jump = (stamp_ns - own.expected(now_ns)) / 1e9
        return Verdict(False, "stamp_jump", f"stamp {stamp_ns / 1e9:.3f} s is {jump:+.3f} s from this camera's "
                       f"clock and not within {self.max_jump_s} s of the other camera's; adopted if "
                       f"{self.adopt_after} consistent messages follow")


@dataclass
class FormatGuard:
    """Rejects a change of encoding or resolution within a stream; adopts it after ``adopt_after`` messages."""

    adopt_after: int = 5
    _formats: dict[Camera, tuple[str, int, int]] = field(default_factory=dict)
    _candidates: dict[Camera, tuple[tuple[str, int, int], int]] = field(default_factory=dict)

    def check(self, camera: Camera, encoding: str, width: int, height: int) -> Verdict:
        new = (encoding, width, height)
        current = self._formats.setdefault(camera, new)
        if new == current:
            self._candidates.pop(camera, None)
            return ACCEPT
        seen, count = self._candidates.get(camera, (new, 0))
        count = count + 1 if seen == new else 1
        self._candidates[camera] = (new, count)
        kind = "encoding_change" if encoding != current[0] else "size_change"
        described = f"{encoding} {width}x{height} after {current[0]} {current[1]}x{current[2]}"
        if count >= self.adopt_after:
            self._formats[camera] = new
            del self._candidates[camera]
            return Verdict(True, kind, f"{described} for {count} messages in a row: adopted", adopted=True)
        return Verdict(False, kind, f"{described}; adopted if {self.adopt_after} such messages follow in a row")

    def format_of(self, camera: Camera) -> tuple[str, int, int] | None:
        return self._formats.get(camera)
