"""A synthetic raw thermal sequence for testing tone mapping: issue 23's hot-object scene.

A 16-bit scene with a textured background between 7400 and 7800 counts, a person at 8300 and, from
frame ``hot_from`` on, a hot engine block at 11000 counts covering 12 % of the view; optional global
drift (the camera warming up) and sensor noise. The masks say which pixels are background, person
and the person's surroundings, so a test or benchmark can measure what the picture does to each.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BACKGROUND = (7400.0, 7800.0)
PERSON = 8300.0
ENGINE = 11000.0
ENGINE_AREA = 0.12


@dataclass
class HotObjectScene:
    """Frames and masks of the scene at ``width`` x ``height`` (issue 23: 640 x 512)."""

    width: int = 640
    height: int = 512
    hot_from: int = 30
    noise: float = 4.0  # sensor noise, counts (one sigma)
    drift_per_frame: float = 0.0  # global offset added per frame, counts

    def __post_init__(self) -> None:
        h, w = self.height, self.width
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        # A smooth gradient plus a gentle texture, scaled to fill the background's range.
        pattern = 0.55 * x / w + 0.25 * y / h + 0.2 * (0.5 + 0.5 * np.sin(2 * np.pi * x / (w / 6.5))
                                                       * np.sin(2 * np.pi * y / (h / 8.5)))
        # Ranked, so the background's counts are spread evenly over its range (as in the measurement).
        pattern = np.argsort(np.argsort(pattern.ravel())).reshape(h, w) / (h * w - 1.0)
        self._background = BACKGROUND[0] + (BACKGROUND[1] - BACKGROUND[0]) * pattern
        self.person = np.zeros((h, w), bool)  # an upright person left of centre, 1.5 % of the view
        cy, cx, ry, rx = 0.55 * h, 0.3 * w, 0.16 * h, 0.03 * w
        self.person[((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0] = True
        side_w = int(round(w * np.sqrt(ENGINE_AREA * 1.25)))
        side_h = int(round(ENGINE_AREA * w * h / side_w))
        self.engine = np.zeros((h, w), bool)  # lower right, clear of the person
        self.engine[h - side_h - h // 16:h - h // 16, w - side_w - w // 16:w - w // 16] = True
        near = cv2.dilate(self.person.astype(np.uint8), np.ones((41, 41), np.uint8)).astype(bool)
        clear = ~cv2.dilate((self.person | self.engine).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        self.surroundings = near & clear
        self.background = clear  # away from both objects' blurred edges
        self._clean: dict[bool, np.ndarray] = {}  # the noiseless frame without and with the engine

    def frame(self, index: int, dtype: type = np.uint16) -> np.ndarray:
        """Raw counts of frame ``index`` (deterministic noise), rounded to ``dtype`` when it is integer."""
        hot = index >= self.hot_from
        if hot not in self._clean:
            scene = self._background.copy()
            scene[self.person] = PERSON
            if hot:
                scene[self.engine] = ENGINE
            self._clean[hot] = cv2.GaussianBlur(scene, (0, 0), 1.2)  # the optics: objects have soft edges
        scene = self._clean[hot] + self.drift_per_frame * index
        if self.noise > 0:
            scene += np.random.default_rng(index).normal(0.0, self.noise, scene.shape)
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            return np.clip(np.rint(scene), info.min, info.max).astype(dtype)
        return scene.astype(dtype)


def grey_stats(scene: HotObjectScene, unit: np.ndarray) -> dict[str, float]:
    """What a viewer sees of a normalised frame ([0, 1]) in grey levels: background mean and std, the person's
    mean, its surroundings' mean, and the fraction of the person's pixels clipped white."""
    grey = np.clip(unit.astype(np.float64), 0.0, 1.0) * 255.0
    background, person = grey[scene.background], grey[scene.person]
    return {"background_mean": float(background.mean()), "background_std": float(background.std()),
            "person": float(person.mean()), "surroundings": float(grey[scene.surroundings].mean()),
            "person_clipped": float(np.mean(person >= 254.5))}
