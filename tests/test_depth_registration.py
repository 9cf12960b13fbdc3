"""Per-pixel registration from depth on rendered rigs (sage_core.depth_registration, sage_core.rig_alignment):
a pure rotation needs no depth, a depth plane is its homography, near edges land within a pixel, and what
the thermal camera cannot see is left out rather than copied from the surface hiding it."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from sage_core.alignment import AlignmentConfig
from sage_core.depth_registration import ThermalLookup, depth_in_metres, largest_per_cell
from sage_core.errors import ConfigError, FusionInputError
from sage_core.parallax_scene import COUNTS_AT_ZERO, COUNTS_PER_DEGREE, ParallaxScene, Person, depth_image, make_rig
from sage_core.rig_alignment import RigAligner

RGB_SIZE, THERMAL_SIZE = (320, 240), (320, 256)
#: Between the background's (under 16 C) and the person's (over 33 C) thermal counts.
HOT = COUNTS_AT_ZERO + COUNTS_PER_DEGREE * 25


def full_grid(rig, distance: float = math.inf) -> RigAligner:
    """An aligner whose output grid is the RGB grid (no crop), so maps index RGB pixels directly."""
    return RigAligner(AlignmentConfig(crop_to_valid=False), rig, distance)


def far_maps(rig, distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Where the plane homography at ``distance`` samples the thermal image for each RGB pixel."""
    w, h = rig.rgb.size
    pixels = np.stack(np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)), -1)
    mapped = cv2.perspectiveTransform(pixels.reshape(1, -1, 2), np.linalg.inv(rig.homography(distance)))[0]
    return mapped[:, 0].reshape(h, w), mapped[:, 1].reshape(h, w)


@pytest.fixture(scope="module")
def near_person():
    """A person 1 m away in front of a wall at 12 m, seen by a 5 cm rig, with a realistic depth image."""
    rig = make_rig(RGB_SIZE, THERMAL_SIZE, baseline=0.05)
    scene = ParallaxScene([Person(-0.05, 1.0)], wall=8.0)
    rendered = scene.render(rig)
    return rig, scene, rendered, depth_image(scene, rendered, seed=3)


def test_a_pure_rotation_needs_no_depth():
    rig = make_rig(RGB_SIZE, THERMAL_SIZE, baseline=0.0, yaw_deg=2.0, roll_deg=1.0)
    depth = np.random.default_rng(0).uniform(0.5, 30, (RGB_SIZE[1], RGB_SIZE[0])).astype(np.float32)
    depth[::7] = 0  # holes too
    _, maps = full_grid(rig, 3.0).depth_maps(THERMAL_SIZE, depth)
    expected_x, expected_y = far_maps(rig, math.inf)
    assert np.abs(maps.map_x - expected_x).max() < 1e-3 and np.abs(maps.map_y - expected_y).max() < 1e-3
    assert not maps.occluded.any()


@pytest.mark.parametrize("plane", [0.8, 4.0])
def test_a_known_depth_plane_gives_the_planes_homography(plane):
    rig = make_rig(RGB_SIZE, THERMAL_SIZE, baseline=0.07, yaw_deg=1.5, roll_deg=-0.7)
    millimetres = np.full((RGB_SIZE[1], RGB_SIZE[0]), round(plane * 1000), np.uint16)
    _, maps = full_grid(rig).depth_maps(THERMAL_SIZE, millimetres)
    expected_x, expected_y = far_maps(rig, plane)
    assert np.abs(maps.map_x - expected_x).max() < 2e-3 and np.abs(maps.map_y - expected_y).max() < 2e-3
    # Without depth (all holes), the registration distance's plane is the same mapping.
    _, fallback = full_grid(rig, plane).depth_maps(THERMAL_SIZE, np.zeros_like(millimetres))
    assert np.abs(fallback.map_x - expected_x).max() < 2e-3 and not fallback.measured.any()
    far_x, _ = far_maps(rig, math.inf)
    assert np.abs(maps.map_x - far_x).mean() > 1.0  # and the far plane is not (the test can fail)


def person_edges(image_mask: np.ndarray) -> np.ndarray:
    """Left and right edge (x of the first and last pixel) of the mask in each row, as rows x 2 (NaN: none)."""
    left = np.argmax(image_mask, axis=1).astype(float)
    right = image_mask.shape[1] - 1 - np.argmax(image_mask[:, ::-1], axis=1).astype(float)
    edges = np.column_stack([left, right])
    edges[~image_mask.any(axis=1)] = np.nan
    return edges


def inside_thermal_view(rig, rendered) -> np.ndarray:
    """RGB pixels whose 3-D point projects inside the thermal image."""
    r, t = rig.extrinsics.rotation, rig.extrinsics.translation
    with np.errstate(invalid="ignore"):
        q = ((rendered.rgb_view.points - t) @ r) @ rig.thermal.k.T
        x, y = q[..., 0] / q[..., 2], q[..., 1] / q[..., 2]
        w, h = rig.thermal.size
        return (x >= 1) & (x <= w - 2) & (y >= 1) & (y <= h - 2)


def test_per_pixel_depth_puts_a_near_objects_thermal_edges_within_a_pixel(near_person):
    rig, _, rendered, depth = near_person
    seen = inside_thermal_view(rig, rendered)[:, 60:260].all(axis=1)  # rows the thermal camera sees around the person
    assert seen.sum() > 150
    truth = person_edges(rendered.rgb_view.ids == 2)[seen]
    registered, _ = full_grid(rig).align_depth(rendered.thermal, rendered.rgb, depth)
    error = np.abs(person_edges(registered > HOT)[seen] - truth)
    assert not np.isnan(error).any()
    assert np.median(error) <= 1.0 and np.percentile(error, 90) <= 1.0, np.percentile(error, [50, 90, 100])
    far, _ = full_grid(rig)(rendered.thermal, rendered.rgb)  # the far plane's homography: today's
    assert np.nanmedian(np.abs(person_edges(far > HOT)[seen] - truth)) > 5.0


def test_thermal_pixels_hidden_by_a_nearer_surface_are_left_out_not_copied(near_person):
    rig, scene, rendered, depth = near_person
    view = rendered.rgb_view
    inside = inside_thermal_view(rig, rendered)
    hidden = (view.ids < 2) & (view.ids >= 0) & inside & ~scene.visible_from(rig.extrinsics.translation, view.points)
    assert hidden.sum() > 500  # the band beside the person that only the rgb camera sees
    aligner = full_grid(rig)
    registered, _ = aligner.align_depth(rendered.thermal, rendered.rgb, depth)
    assert (registered[hidden] > HOT).mean() < 0.05
    assert (registered[hidden] == 0).mean() > 0.9  # left out: no thermal value at all
    visible_background = (view.ids < 2) & (view.ids >= 0) & ~hidden & inside
    assert (registered[visible_background] == 0).mean() < 0.2  # and the rest of the background is there
    # Warped by depth without the occlusion test, the person's heat is painted on that band a second time.
    plan, maps = aligner.depth_maps(THERMAL_SIZE, depth)
    assert maps.occluded[hidden].mean() > 0.9
    naive = ThermalLookup(rig, np.eye(3), RGB_SIZE, occlusion_px=1e9)
    copied = naive.warp(rendered.thermal, naive.maps(depth_in_metres(depth), math.inf))
    assert (copied[hidden & maps.measured] > HOT).mean() > 0.8


def test_the_crop_and_size_do_not_change_with_the_distance():
    rig = make_rig(RGB_SIZE, THERMAL_SIZE, baseline=0.05)
    far, near = RigAligner(AlignmentConfig(), rig), RigAligner(AlignmentConfig(), rig).at_distance(1.0)
    far_plan, near_plan = far.plan(THERMAL_SIZE, RGB_SIZE), near.plan(THERMAL_SIZE, RGB_SIZE)
    assert far_plan.crop == near_plan.crop and far_plan.output_size == near_plan.output_size
    assert not np.allclose(far_plan.other_to_output, near_plan.other_to_output)
    thermal_reference = RigAligner(AlignmentConfig(reference="thermal"), rig, 1.0)
    plan = thermal_reference.plan(THERMAL_SIZE, RGB_SIZE)  # the rgb image goes onto the thermal grid
    x0, y0, _, _ = plan.crop
    point = np.array([[100.0, 80.0]])
    rgb_point = cv2.perspectiveTransform(point.reshape(1, 1, 2), rig.homography(1.0))[0]
    assert np.allclose(cv2.perspectiveTransform(rgb_point.reshape(1, 1, 2), plan.other_to_output)[0],
                       point - [x0, y0], atol=1e-6)
    with pytest.raises(FusionInputError, match="needs the rgb camera as the reference"):
        thermal_reference.align_depth(np.zeros(THERMAL_SIZE[::-1], np.uint16), np.zeros((*RGB_SIZE[::-1], 3), np.uint8),
                                      np.zeros(RGB_SIZE[::-1], np.uint16))


def test_depth_images_are_checked():
    assert np.allclose(depth_in_metres(np.array([[0, 1500]], np.uint16)), [[0.0, 1.5]])
    assert depth_in_metres(np.array([[np.nan, 2.5, -1.0, np.inf]], np.float32)).tolist() == [[0.0, 2.5, 0.0, 0.0]]
    with pytest.raises(FusionInputError, match="uint16 \\(mm\\) or float32 \\(m\\)"):
        depth_in_metres(np.zeros((4, 4), np.uint8))
    rig = make_rig(RGB_SIZE, THERMAL_SIZE)
    aligner = RigAligner(AlignmentConfig(), rig)
    with pytest.raises(FusionInputError, match="depth image is 160x120 but the rgb image is 320x240"):
        aligner.align_depth(np.zeros(THERMAL_SIZE[::-1], np.uint16), np.zeros((*RGB_SIZE[::-1], 3), np.uint8),
                            np.zeros((120, 160), np.uint16))
    with pytest.raises(FusionInputError, match="thermal image is 160x128 but its camera_info"):
        aligner.plan((160, 128), RGB_SIZE)
    with pytest.raises(ConfigError, match="a homography and a rig"):
        RigAligner(AlignmentConfig(homography=np.eye(3).ravel().tolist()), rig)


def test_the_z_buffer_is_the_same_by_ufunc_at_and_by_sorting():
    """The z-buffer's two ways (np.maximum.at where NumPy >= 1.25 makes it fast, sort and reduce before)."""
    rng = np.random.default_rng(5)
    cells = np.sort(rng.integers(0, 500, 4000)).astype(np.int32)
    cells[::7] = rng.integers(0, 500, cells[::7].size)  # nearly in order, as the scan gives them
    values = rng.random(cells.size).astype(np.float32)
    by_at = largest_per_cell(cells, values, 600, by_sorting=False)
    assert np.array_equal(by_at, largest_per_cell(cells, values, 600, by_sorting=True))
    assert by_at[500:].max() == 0 and by_at[cells[0]] == values[cells == cells[0]].max()
    assert not largest_per_cell(cells[:0], values[:0], 10, by_sorting=True).any()
