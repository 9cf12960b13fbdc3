"""A generated thermal + visible night scene, so demos and tests need no dataset files.

The visible camera sees a dark street (facades, lit windows, road markings,
sensor noise) in which people and a car are nearly invisible; the thermal
camera sees the same geometry softly, with the people and the car's engine and
wheels hot. Targets move with time ``t`` (seconds), so a sequence looks like a
video. Deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sage_core.color import gray_to_uint8

#: Raw counts of a typical 16-bit radiometric camera: background and hot-target levels.
_COUNTS_COLD, _COUNTS_SPAN = 7200, 1800


@dataclass(frozen=True)
class ScenePair:
    """One frame: thermal in [0, 1] (float32 H x W) and visible BGR uint8."""

    thermal: np.ndarray
    visible: np.ndarray

    @property
    def thermal_mono8(self) -> np.ndarray:
        return gray_to_uint8(self.thermal)

    @property
    def thermal_mono16(self) -> np.ndarray:
        """Raw-count style 16-bit thermal, as radiometric cameras publish (``mono16``)."""
        return (_COUNTS_COLD + self.thermal * _COUNTS_SPAN).round().astype(np.uint16)


class SyntheticScene:
    """Street at night with walking people and a passing car."""

    def __init__(self, width: int = 640, height: int = 512, seed: int = 0) -> None:
        if width < 64 or height < 64:
            raise ValueError(f"synthetic scene needs at least 64x64 pixels, got {width}x{height}")
        self.width, self.height = width, height
        self.rng = np.random.default_rng(seed)
        self._build_static()

    def _build_static(self) -> None:
        w, h, rng = self.width, self.height, self.rng
        horizon = int(h * 0.55)
        vis = np.zeros((h, w, 3), np.float32)
        thermal = np.zeros((h, w), np.float32)
        sky = np.linspace(0.10, 0.04, horizon, dtype=np.float32)[:, None]
        vis[:horizon] = sky[..., None] * np.array([1.3, 0.9, 0.7], np.float32)  # BGR: bluish sky
        thermal[:horizon] = 0.18
        # Facades with windows: strong visible texture, mild thermal contrast.
        x = 0
        while x < w:
            bw = int(rng.integers(w // 10, w // 4))
            top = int(rng.integers(int(h * 0.12), int(h * 0.35)))
            shade = float(rng.uniform(0.10, 0.22))
            vis[top:horizon, x:x + bw] = shade * np.array([0.9, 1.0, 1.1], np.float32)
            thermal[top:horizon, x:x + bw] = 0.30 + 0.05 * rng.random()
            for wy in range(top + 8, horizon - 12, 22):
                for wx in range(x + 6, x + bw - 10, 18):
                    lit = rng.random() < 0.35
                    colour = np.array([0.35, 0.75, 0.95] if lit else [0.05, 0.05, 0.06], np.float32)
                    vis[wy:wy + 10, wx:wx + 8] = colour
                    thermal[wy:wy + 10, wx:wx + 8] += 0.08 if lit else 0.02
            x += bw + int(rng.integers(2, 12))
        # Road with dashed lane markings and kerb.
        vis[horizon:] = np.array([0.07, 0.07, 0.08], np.float32)
        thermal[horizon:] = np.linspace(0.36, 0.44, h - horizon, dtype=np.float32)[:, None]
        lane_y = int(h * 0.8)
        for lx in range(0, w, 60):
            vis[lane_y:lane_y + 4, lx:lx + 30] = 0.6
            thermal[lane_y:lane_y + 4, lx:lx + 30] -= 0.03
        vis[horizon:horizon + 3] = 0.3
        # Street lights: bright halos in the visible image only.
        for lx in range(w // 6, w, w // 3):
            cv2.circle(vis, (lx, int(h * 0.2)), 4, (0.8, 0.95, 1.0), -1)
            halo = np.zeros((h, w), np.float32)
            cv2.circle(halo, (lx, int(h * 0.2)), max(8, w // 24), 1.0, -1)
            vis += cv2.GaussianBlur(halo, (0, 0), w / 40)[..., None] * np.array([0.10, 0.18, 0.25], np.float32)
        texture = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.2)
        vis *= (1.0 + 0.25 * texture)[..., None]
        self._vis = vis
        self._thermal = cv2.GaussianBlur(thermal, (0, 0), 1.5)
        self._people = [(float(rng.uniform(0, w)), float(rng.uniform(20, 45)) * (1 if rng.random() < 0.5 else -1),
                         float(rng.uniform(0.9, 1.1))) for _ in range(3)]

    def _draw_person(self, vis: np.ndarray, thermal: np.ndarray, cx: float, scale: float) -> None:
        feet = int(self.height * 0.78)
        height = int(self.height * 0.22 * scale)
        cx = int(cx)
        hip = feet - int(height * 0.45)
        torso = ((cx, feet - int(height * 0.65)), (max(2, height // 10), max(3, height // 5)))
        head = ((cx, feet - int(height * 0.92)), max(2, height // 13))
        limb = max(2, height // 16)
        # Warm in thermal; dark clothing that barely differs from the road in visible.
        for image, body_value, head_value in ((thermal, 0.86, 0.95), (vis, (0.09, 0.08, 0.08), (0.10, 0.10, 0.12))):
            cv2.ellipse(image, torso[0], torso[1], 0, 0, 360, body_value, -1)
            cv2.circle(image, head[0], head[1], head_value, -1)
            for dx in (-height // 12, height // 12):
                cv2.line(image, (cx, hip), (cx + dx, feet), body_value, limb)

    def _draw_car(self, vis: np.ndarray, thermal: np.ndarray, x: float) -> None:
        h, w = self.height, self.width
        car_w, car_h = w // 5, h // 9
        left, bottom = int(x), int(h * 0.92)
        cv2.rectangle(vis, (left, bottom - car_h), (left + car_w, bottom), (0.06, 0.05, 0.05), -1)
        cv2.rectangle(thermal, (left, bottom - car_h), (left + car_w, bottom), 0.5, -1)
        cv2.rectangle(thermal, (left + car_w * 3 // 4, bottom - car_h * 2 // 3), (left + car_w, bottom - car_h // 4),
                      0.92, -1)  # engine bay
        for wheel_x in (left + car_w // 5, left + car_w * 4 // 5):
            cv2.circle(thermal, (wheel_x, bottom), car_h // 3, 0.8, -1)
            cv2.circle(vis, (wheel_x, bottom), car_h // 3, (0.03, 0.03, 0.03), -1)
        cv2.circle(vis, (left + car_w - 2, bottom - car_h // 2), 3, (0.7, 0.9, 1.0), -1)  # headlight

    def frame(self, t: float = 0.0) -> ScenePair:
        """Render the scene at time ``t`` seconds."""
        vis, thermal = self._vis.copy(), self._thermal.copy()
        w = self.width
        for x0, speed, scale in self._people:
            self._draw_person(vis, thermal, (x0 + speed * t) % w, scale)
        self._draw_car(vis, thermal, (t * 90.0) % (w * 1.4) - w * 0.2)
        frame_rng = np.random.default_rng(int(t * 1000) + 1)
        thermal = cv2.GaussianBlur(thermal, (0, 0), 1.0) + frame_rng.normal(0, 0.01, thermal.shape).astype(np.float32)
        vis = vis + frame_rng.normal(0, 0.012, vis.shape).astype(np.float32)
        return ScenePair(thermal=np.clip(thermal, 0, 1), visible=gray_to_uint8(vis))
