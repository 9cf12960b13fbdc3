"""Simulated camera streams for the pairer: the robot scenarios of issue 21, shared by the tests and
``benchmarks/bench_pairing.py``. No ROS, no images: each message is (arrival, camera, stamp).

A :class:`Rig` is two :class:`CameraStream`\\ s (rate, stamp offset, transport latency, stamp jitter,
dropped frames, repeated stamps, swapped deliveries); :func:`run` feeds its messages in arrival order
to a pairer, firing the pairer's deadline as the intake's timer would, and :func:`closest_sets`
gives what an oracle that sees every stamp would pair (each message of the slower camera with the
closest one of the faster camera), the achievable mean difference.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from sage_core.cameras import Camera

MS = 1_000_000
START_NS = 1_000 * 1_000_000_000  # far from zero, as real stamps are


@dataclass(frozen=True)
class CameraStream:
    camera: Camera
    rate_hz: float
    offset_ms: float = 0.0  # stamp offset against the other camera's grid
    latency_ms: float = 0.0  # capture to arrival
    jitter_ms: float = 0.0  # stamps uniformly within +-jitter of the grid
    drop: frozenset[int] = frozenset()  # frame indices never delivered
    repeat: frozenset[int] = frozenset()  # frame indices delivered twice with the same stamp
    swap_pairs: bool = False  # frames 2k and 2k+1 arrive in swapped order

    @property
    def period_ns(self) -> int:
        return round(1e9 / self.rate_hz)

    def messages(self, seconds: float, rng: random.Random) -> list[tuple[int, Camera, int]]:
        """(arrival ns, camera, stamp ns) of each delivered frame."""
        out = []
        for index in range(int(seconds * self.rate_hz)):
            stamp = START_NS + index * self.period_ns + round(self.offset_ms * MS)
            stamp += round(rng.uniform(-self.jitter_ms, self.jitter_ms) * MS)
            arrival = stamp + round(self.latency_ms * MS)
            if self.swap_pairs:  # the odd frame overtakes the even one
                arrival += self.period_ns + 1 if index % 2 == 0 else -self.period_ns
            if index in self.drop:
                continue
            out.append((arrival, self.camera, stamp))
            if index in self.repeat:
                out.append((arrival + 1, self.camera, stamp))
        return out


@dataclass(frozen=True)
class Rig:
    name: str
    thermal: CameraStream
    rgb: CameraStream
    seconds: float = 4.0
    slop: float = 0.05
    queue_size: int = 10
    seed: int = 0

    @property
    def slower_period_ns(self) -> int:
        return max(self.thermal.period_ns, self.rgb.period_ns)

    def messages(self) -> list[tuple[int, Camera, int]]:
        rng = random.Random(self.seed)
        return sorted(self.thermal.messages(self.seconds, rng) + self.rgb.messages(self.seconds, rng))


@dataclass
class Outcome:
    pairs: list[tuple[int, int]] = field(default_factory=list)  # (thermal stamp, rgb stamp)
    waits_ns: list[int] = field(default_factory=list)  # decision latency of each pair (the new pairer)
    unpaired: int = 0
    reported: dict[str, int] = field(default_factory=dict)

    @property
    def differences_ms(self) -> list[float]:
        return [abs(t - r) / MS for t, r in self.pairs]


def run(rig: Rig, make_pairer: Callable[..., object]) -> Outcome:
    """Feed the rig's messages in arrival order to ``make_pairer(queue_size, slop, on_pair)``. A pairer with
    ``next_deadline_ns`` has its deadline fired when it comes (the intake's timer)."""
    outcome = Outcome()
    pairer = make_pairer(rig.queue_size, rig.slop, lambda t, r: outcome.pairs.append((t.stamp_ns, r.stamp_ns)))
    timed = hasattr(pairer, "next_deadline_ns")
    for arrival, camera, stamp in rig.messages():
        while timed and (due := pairer.next_deadline_ns) is not None and due <= arrival:
            pairer.expire(due)
        if timed:
            pairer.add(camera, stamp, None, arrival)
        else:
            pairer.add(camera, stamp, None)
    if timed:
        pairer.drain()  # the end of the streams, as the intake's finish()
        outcome.waits_ns = list(pairer.waits_ns)
        outcome.reported = dict(pairer.counts)
    outcome.unpaired = pairer.unpaired
    return outcome


def closest_sets(rig: Rig) -> list[tuple[int, int]]:
    """What an oracle that sees every stamp pairs: each delivered message of the slower camera with the closest
    delivered message of the faster camera, when each is the other's closest, within slop (thermal, rgb)."""
    stamps: dict[Camera, list[int]] = {Camera.THERMAL: [], Camera.RGB: []}
    for _, camera, stamp in rig.messages():
        if stamp not in stamps[camera]:
            stamps[camera].append(stamp)
    slow = Camera.THERMAL if rig.thermal.period_ns >= rig.rgb.period_ns else Camera.RGB
    sets = []
    def nearest(stamp: int, among: list[int]) -> int | None:
        return min(among, key=lambda s: abs(s - stamp), default=None)

    for stamp in sorted(stamps[slow]):
        partner = nearest(stamp, stamps[slow.other])
        if partner is None or nearest(partner, stamps[slow]) != stamp:
            continue  # mutual nearest only: no message is used twice
        if abs(partner - stamp) <= round(rig.slop * 1e9):
            sets.append((stamp, partner) if slow is Camera.THERMAL else (partner, stamp))
    return sets


def robot_rigs() -> list[Rig]:
    """The robot cases of issue 21."""
    T, R = Camera.THERMAL, Camera.RGB
    return [
        Rig("30 Hz, one rgb frame dropped", CameraStream(T, 30, offset_ms=2),
            CameraStream(R, 30, drop=frozenset({10}))),
        Rig("thermal 30 Hz, rgb 10 Hz", CameraStream(T, 30, offset_ms=5), CameraStream(R, 10)),
        Rig("rgb 30 Hz, thermal 9 Hz", CameraStream(T, 9, offset_ms=4), CameraStream(R, 30)),
        Rig("rgb 30 Hz late (45 ms), thermal 9 Hz (5 ms)", CameraStream(T, 9, offset_ms=4, latency_ms=5),
            CameraStream(R, 30, latency_ms=45)),
        Rig("30 Hz, stamps +-8 ms", CameraStream(T, 30, jitter_ms=8, latency_ms=10),
            CameraStream(R, 30, jitter_ms=8, latency_ms=20), seed=7),
        Rig("30 Hz, rgb out of order", CameraStream(T, 30, offset_ms=3, latency_ms=5),
            CameraStream(R, 30, latency_ms=5, swap_pairs=True)),
        Rig("30 Hz, repeated thermal stamps", CameraStream(T, 30, offset_ms=2, repeat=frozenset({5, 6, 20})),
            CameraStream(R, 30)),
    ]
