"""A rendered thermal + RGB-D rig with a baseline: people and vehicles at known depths, with the truth.

Benchmarks, tests and the demo need rigs whose answer is known. The scene lives in the RGB camera's optical
frame (x right, y down, z forward, metres): a ground plane below the cameras, a far wall, and people
(upright cylinders) and vehicles (boxes, seen from behind, with glass the depth camera cannot see) at given
distances. Both cameras are ray-cast at their pixel centres from their own poses (the rig's extrinsics), so
the thermal image shows exactly the parallax and the occlusions a real rig has. The depth image is the RGB
camera's, as an RGB-D camera's ``aligned_depth_to_color`` has it (:func:`depth_image`): millimetres, noise
growing with the square of the distance, nothing beyond its range or on glass, holes where the depth
camera's second view cannot see (the band beside near objects), flying pixels on edges, speckle dropouts.
Deterministic for a given seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from sage_core.rig import CameraView, Rig, RigExtrinsics, rotation_from_quaternion

#: Surface ids in the rendered id images: sky (nothing hit), ground, wall; objects are 2, 3, ... in order.
SKY, GROUND, WALL = -1, 0, 1
#: 16-bit thermal counts: COUNTS_AT_ZERO + COUNTS_PER_DEGREE * temperature (a radiometric camera's raw output).
COUNTS_AT_ZERO, COUNTS_PER_DEGREE = 7000.0, 40.0


@dataclass(frozen=True)
class Person:
    """An upright cylinder standing on the ground: ``x`` across (m), ``z`` its front's distance (m)."""

    x: float
    z: float
    radius: float = 0.25
    height: float = 1.75
    temperature: float = 33.0


@dataclass(frozen=True)
class Vehicle:
    """A box seen from behind: ``x`` its centre across, ``z`` its rear's distance (m); glass on the upper rear."""

    x: float
    z: float
    width: float = 1.8
    height: float = 1.5
    length: float = 4.5
    temperature: float = 22.0


def pinhole(size: tuple[int, int], hfov_deg: float) -> np.ndarray:
    """Camera matrix of an ideal pinhole camera of ``size`` (w, h) and horizontal field of view."""
    w, h = size
    f = (w / 2) / math.tan(math.radians(hfov_deg) / 2)
    return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])


def make_rig(rgb_size: tuple[int, int] = (640, 480), thermal_size: tuple[int, int] = (640, 512),
             baseline: float = 0.05, rgb_hfov: float = 70.0, thermal_hfov: float = 50.0,
             yaw_deg: float = 0.5, roll_deg: float = 0.3) -> Rig:
    """A thermal camera ``baseline`` m to the right of the RGB camera, turned a little (yaw about y, roll about z)."""
    half_yaw, half_roll = math.radians(yaw_deg) / 2, math.radians(roll_deg) / 2
    yaw = rotation_from_quaternion([0, math.sin(half_yaw), 0, math.cos(half_yaw)])
    roll = rotation_from_quaternion([0, 0, math.sin(half_roll), math.cos(half_roll)])
    extrinsics = RigExtrinsics(yaw @ roll, [baseline, 0.0, 0.0], "rendered rig")
    return Rig(extrinsics, CameraView(pinhole(thermal_size, thermal_hfov), np.eye(3), thermal_size, "thermal"),
               CameraView(pinhole(rgb_size, rgb_hfov), np.eye(3), rgb_size, "rgb"))


@dataclass
class View:
    """One camera's render: per pixel the surface id, the 3-D point (RGB frame) and its depth in this camera."""

    ids: np.ndarray  # int H x W (SKY: nothing)
    points: np.ndarray  # float64 H x W x 3, RGB frame
    depth: np.ndarray  # float64 H x W: z in this camera's frame (inf: sky)


@dataclass
class RenderedRig:
    rig: Rig
    thermal: np.ndarray  # uint16 counts, thermal size
    rgb: np.ndarray  # BGR uint8, rgb size
    thermal_view: View
    rgb_view: View
    glass: np.ndarray  # bool, rgb size: pixels on vehicle glass


class ParallaxScene:
    """Ground, a far wall and ``objects``; cast rays at it and render a rig's two cameras."""

    def __init__(self, objects: list[Person | Vehicle], camera_height: float = 1.2, wall: float = 45.0,
                 seed: int = 0) -> None:
        self.objects, self.camera_height, self.wall, self.seed = list(objects), camera_height, wall, seed

    def cast(self, origin: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For rays ``origin + s * directions`` (N x 3, RGB frame): the nearest hit's ``s`` (inf: none) and id."""
        o, d = np.asarray(origin, np.float64), directions
        best = np.full(len(d), np.inf)
        ids = np.full(len(d), SKY, np.int32)

        def take(s: np.ndarray, surface: int) -> None:
            closer = (s > 1e-9) & (s < best)
            best[closer], ids[closer] = s[closer], surface

        with np.errstate(divide="ignore", invalid="ignore"):
            take(np.where(d[:, 1] > 0, (self.camera_height - o[1]) / d[:, 1], np.inf), GROUND)
            take(np.where(d[:, 2] > 0, (self.wall - o[2]) / d[:, 2], np.inf), WALL)
            for index, item in enumerate(self.objects):
                hit = self._cylinder(o, d, item) if isinstance(item, Person) else self._box(o, d, item)
                take(hit, index + 2)
        return best, ids

    def _cylinder(self, o: np.ndarray, d: np.ndarray, person: Person) -> np.ndarray:
        cx, cz = person.x, person.z + person.radius
        a = d[:, 0] ** 2 + d[:, 2] ** 2
        b = 2 * (d[:, 0] * (o[0] - cx) + d[:, 2] * (o[2] - cz))
        c = (o[0] - cx) ** 2 + (o[2] - cz) ** 2 - person.radius ** 2
        disc = b * b - 4 * a * c
        s = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
        y = o[1] + s * d[:, 1]
        ok = (disc >= 0) & (y >= self.camera_height - person.height) & (y <= self.camera_height)
        return np.where(ok, s, np.inf)

    def _box(self, o: np.ndarray, d: np.ndarray, car: Vehicle) -> np.ndarray:
        low = np.array([car.x - car.width / 2, self.camera_height - car.height, car.z])
        high = np.array([car.x + car.width / 2, self.camera_height, car.z + car.length])
        t1, t2 = (low - o) / d, (high - o) / d
        near, far = np.minimum(t1, t2).max(axis=1), np.maximum(t1, t2).min(axis=1)
        return np.where((near <= far) & (far > 0), near, np.inf)

    def view(self, camera: CameraView, rotation: np.ndarray, origin: np.ndarray) -> View:
        """Render ``camera`` posed at ``origin`` with ``rotation`` (its frame -> the RGB frame)."""
        w, h = camera.size
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        rays = np.stack([xs.ravel(), ys.ravel(), np.ones(w * h)], axis=1) @ np.linalg.inv(camera.k).T
        s, ids = self.cast(origin, rays @ rotation.T)
        points = origin + s[:, None] * (rays @ rotation.T)
        return View(ids.reshape(h, w), points.reshape(h, w, 3), s.reshape(h, w))

    def temperature(self, points: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Degrees Celsius of each surface point: warm people (hotter heads), vehicles with hot exhaust and wheels."""
        x, y, z = points[..., 0], points[..., 1], points[..., 2]
        feet = self.camera_height
        t = np.where(ids == GROUND, 14.0 + 1.5 * np.sin(0.7 * x) * np.cos(0.4 * z), -20.0)
        t = np.where(ids == WALL, 9.0 + 2.0 * (np.sin(1.3 * x) > 0.6), t)
        for index, item in enumerate(self.objects):
            mine = ids == index + 2
            if isinstance(item, Person):
                value = item.temperature + 3.0 * (y < feet - item.height + 0.25)
            else:
                hot = (y > feet - 0.45) & (np.abs(x - (item.x - item.width / 3)) < 0.12)
                value = item.temperature + 35.0 * hot + 8.0 * (y > feet - 0.6)
            t = np.where(mine, value, t)
        return t

    def colour(self, points: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """BGR texture of each point (asphalt, bricks, clothes, paint and glass), uint8."""
        x, y, z = points[..., 0], points[..., 1], points[..., 2]
        with np.errstate(invalid="ignore"):
            checker = ((np.floor(x * 2) + np.floor(z * 2)) % 2).astype(np.float64)
            bricks = ((np.floor(y * 4) % 2) * 0.5 + np.floor(x * 2 + 0.5 * (np.floor(y * 4) % 2)) % 2)
        grey = np.where(ids == GROUND, 70 + 25 * checker, 200.0)
        grey = np.where(ids == WALL, 110 + 40 * bricks, grey)
        image = np.stack([grey, grey, grey], axis=-1)
        for index, item in enumerate(self.objects):
            mine = ids == index + 2
            if isinstance(item, Person):
                upper = y < self.camera_height - 0.9
                paint = np.where(upper[..., None], [40, 60, 170], [90, 50, 30])
            else:
                paint = np.where((y < self.camera_height - 0.9)[..., None], [60, 50, 45], [50, 140, 200])
            image = np.where(mine[..., None], paint, image)
        image[ids == SKY] = (230, 200, 170)
        noise = np.random.default_rng(self.seed).normal(0, 4, image.shape)
        return np.clip(image + noise, 0, 255).astype(np.uint8)

    def glass(self, points: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Pixels on a vehicle's rear window (upper rear face, inside its frame)."""
        out = np.zeros(ids.shape, bool)
        for index, item in enumerate(self.objects):
            if isinstance(item, Vehicle):
                x, y = points[..., 0], points[..., 1]
                out |= ((ids == index + 2) & (np.abs(points[..., 2] - item.z) < 1e-6)
                        & (y < self.camera_height - 0.95) & (y > self.camera_height - item.height + 0.1)
                        & (np.abs(x - item.x) < item.width / 2 - 0.15))
        return out

    def render(self, rig: Rig) -> RenderedRig:
        """Both cameras of ``rig`` (their views must be unrectified pinholes, as :func:`make_rig` makes them)."""
        rgb_view = self.view(rig.rgb, np.eye(3), np.zeros(3))
        thermal_view = self.view(rig.thermal, rig.extrinsics.rotation, rig.extrinsics.translation)
        counts = COUNTS_AT_ZERO + COUNTS_PER_DEGREE * self.temperature(thermal_view.points, thermal_view.ids)
        thermal = np.clip(np.round(counts), 0, 65535).astype(np.uint16)
        return RenderedRig(rig, thermal, self.colour(rgb_view.points, rgb_view.ids), thermal_view, rgb_view,
                           self.glass(rgb_view.points, rgb_view.ids))

    def visible_from(self, origin: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Whether each point (... x 3, RGB frame) is seen from ``origin``: nothing nearer on the way."""
        flat = points.reshape(-1, 3)
        finite = np.all(np.isfinite(flat), axis=1)
        s, _ = self.cast(origin, np.where(finite[:, None], flat - origin, [0.0, 0.0, 1.0]))
        return (finite & (s >= 1 - 1e-6)).reshape(points.shape[:-1])


@dataclass(frozen=True)
class DepthCamera:
    """An RGB-D camera's depth, registered to the RGB camera: its range, noise and the second view's offset."""

    max_range: float = 12.0
    noise_per_m2: float = 0.005  # sigma (m) = noise_per_m2 * Z^2: a stereo camera's 0.08 px disparity noise
    second_view: float = -0.05  # m across (x): where its second imager sits; the holes are on the far side
    flying: float = 0.5  # share of edge pixels given a depth between the two sides
    dropouts: float = 0.003  # share of pixels starting a speckle hole


def depth_image(scene: ParallaxScene, rendered: RenderedRig, camera: DepthCamera | None = None,
                seed: int = 0) -> np.ndarray:
    """``16UC1`` millimetres on the RGB grid, 0 where there is no depth; see the module docstring."""
    camera = camera or DepthCamera()
    rng = np.random.default_rng(seed)
    view = rendered.rgb_view
    z = np.where(view.ids == SKY, 0.0, view.points[..., 2])
    z = z + rng.normal(0, 1, z.shape) * camera.noise_per_m2 * z * z
    edges = cv2.dilate(z, np.ones((3, 3), np.uint8)) - cv2.erode(z, np.ones((3, 3), np.uint8)) > 0.1 * z
    flying = edges & (rng.random(z.shape) < camera.flying)
    low, high = cv2.erode(z, np.ones((3, 3), np.uint8)), cv2.dilate(z, np.ones((3, 3), np.uint8))
    z = np.where(flying, low + rng.random(z.shape) * (high - low), z)
    hidden = ~scene.visible_from(np.array([camera.second_view, 0.0, 0.0]), view.points)
    speckles = cv2.dilate((rng.random(z.shape) < camera.dropouts).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    holes = (view.ids == SKY) | (z > camera.max_range) | hidden | rendered.glass | speckles
    return np.where(holes, 0, np.round(z * 1000)).astype(np.uint16)
