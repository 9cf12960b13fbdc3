"""The temporal stability metric (issue 23, goal 2): flow-based warping error of a stream (sage_core, no ROS)."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from sage_core.errors import FusionInputError
from sage_core.eval.temporal import TemporalStability, valid_mask
from sage_core.video_files import read_clip

CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "m3svd_clips"


def _texture(h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).random((h // 4, w // 4)).astype(np.float32)
    return (cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC) * 200 + 25).clip(0, 255)


def _panning(frames: int = 8, step: int = 2) -> list[np.ndarray]:
    """A textured scene moving right by ``step`` pixels a frame (the reference's motion)."""
    wide = _texture(120, 160 + frames * step)
    return [wide[:, i * step:i * step + 160].astype(np.uint8) for i in range(frames)][::-1]


def test_a_stream_that_moves_with_the_scene_scores_near_zero_and_flicker_scores_high():
    frames = _panning()
    metric = TemporalStability()
    for index, frame in enumerate(frames):
        flicker = np.clip(frame.astype(np.int16) + (12 if index % 2 else -12), 0, 255).astype(np.uint8)
        boiling = np.clip(frame + np.random.default_rng(index).normal(0, 8, frame.shape), 0, 255).astype(np.uint8)
        metric.add(frame, {"same": frame, "flicker": flicker, "boiling": boiling})
    summary = metric.summary()
    assert summary["same"]["warping_error"] < 2.0 and summary["same"]["pairs"] == len(frames) - 1
    assert summary["flicker"]["warping_error"] > 20.0 and summary["flicker"]["brightness_flicker"] > 20.0
    assert summary["boiling"]["warping_error"] > 8.0 and summary["boiling"]["brightness_flicker"] < 2.0


def test_a_static_stream_over_moving_content_is_not_stable():
    """Warping follows the reference's motion: a stream that stays still while the scene moves has error."""
    frames = _panning()
    metric = TemporalStability()
    for frame in frames:
        metric.add(frame, {"frozen": frames[0], "moving": frame})
    summary = metric.summary()
    assert summary["frozen"]["warping_error"] > 3 * summary["moving"]["warping_error"]


def test_occluded_and_outside_pixels_are_left_out():
    h, w = 20, 30
    grid = np.dstack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
    forward = np.zeros((h, w, 2), np.float32)
    forward[..., 0] = 3.0
    backward = -forward
    mask = valid_mask(forward, backward, grid)
    assert not mask[:, :3].any() and mask[:, 3:].all()  # the left columns came from outside frame t
    backward[5, 10] = (0.0, 6.0)  # a pixel whose round trip does not close
    assert not valid_mask(forward, backward, grid)[5, 10]


def test_mismatched_and_non_8_bit_frames_are_refused():
    metric = TemporalStability()
    with pytest.raises(FusionInputError, match="8-bit"):
        metric.add(np.zeros((8, 8), np.uint8), {"a": np.zeros((8, 8), np.float32)})
    with pytest.raises(FusionInputError, match="reference"):
        metric.add(np.zeros((8, 8), np.uint8), {"a": np.zeros((8, 9), np.uint8)})


def _two_cameras(frames: int = 8, step: int = 2, speed: int = 3, size: int = 40):
    """Visible: a texture panning right. Thermal: its own texture panning alike, and a textured object only
    the thermal camera sees, moving left. Fused: the visible with the thermal object pasted over it."""
    visible = _panning(frames, step)
    wide = _texture(120, 160 + frames * step, seed=1) * 0.5 + 40
    thermal_scene = [wide[:, i * step:i * step + 160] for i in range(frames)][::-1]
    thing = _texture(size, size, seed=2)
    thermal, fused = [], []
    for index in range(frames):
        th, fu = thermal_scene[index].copy(), visible[index].astype(np.float32)
        x = 100 - index * speed
        th[40:40 + size, x:x + size] = thing
        fu[40:40 + size, x:x + size] = thing
        thermal.append(th.astype(np.uint8))
        fused.append(fu.astype(np.uint8))
    return visible, thermal, fused


def test_thermal_only_content_is_judged_by_the_thermal_flow_under_the_two_source_error():
    visible, thermal, fused = _two_cameras()
    metric, primary_only = TemporalStability(), TemporalStability()
    for index in range(len(visible)):
        flicker = np.clip(fused[index].astype(np.int16) + (12 if index % 2 else -12), 0, 255).astype(np.uint8)
        streams = {"visible": visible[index], "thermal": thermal[index], "fused": fused[index], "flicker": flicker}
        metric.add(visible[index], streams, second_reference=thermal[index])
        primary_only.add(visible[index], streams)
    summary, primary = metric.summary(), primary_only.summary()
    fused_s = summary["fused"]
    assert fused_s["warping_error"] > 12.0 and fused_s["source_flow_error"] < 10.0
    assert fused_s["warping_error"] > 2 * fused_s["source_flow_error"]
    assert summary["thermal"]["warping_error"] > 2 * summary["thermal"]["source_flow_error"]
    assert summary["flicker"]["source_flow_error"] > 20.0  # flicker moves with neither camera
    assert summary["visible"]["source_flow_error"] <= summary["visible"]["warping_error"]
    # The primary measure is the same with or without the second reference, and its keys are unchanged.
    for name, values in primary.items():
        assert set(values) == {"warping_error", "relative_error", "brightness_flicker", "pairs"}
        assert {k: summary[name][k] for k in values} == values


def test_kept_maps_hold_each_steps_two_source_error_per_pixel():
    visible, thermal, fused = _two_cameras()
    metric = TemporalStability(keep_maps=True)
    squared = 0.0
    for index in range(len(visible)):
        metric.add(visible[index], {"fused": fused[index]}, second_reference=thermal[index])
        if index == 0:
            assert metric.maps == {}  # no previous frame: nothing scored
        else:
            squared += float(metric.maps["fused"].sum(dtype=np.float64))
            assert metric.maps["fused"].shape == visible[index].shape and np.isfinite(metric.maps["fused"]).all()
    stream = metric.streams["fused"]
    assert squared > 0 and squared == pytest.approx(stream.source_squared, rel=1e-6)


def test_a_second_reference_of_another_shape_or_at_some_steps_only_is_refused():
    frame = np.zeros((8, 8), np.uint8)
    with pytest.raises(FusionInputError, match="second reference is 9x8, expected the reference's 8x8"):
        TemporalStability().add(frame, {"a": frame}, second_reference=np.zeros((8, 9), np.uint8))
    metric = TemporalStability()
    metric.add(frame, {"a": frame}, second_reference=frame)
    with pytest.raises(FusionInputError, match="every step or at none"):
        metric.add(frame, {"a": frame})


@pytest.mark.skipif(not (CLIPS / "0111_1716" / "ir.mp4").is_file(), reason="m3svd clips not present")
def test_a_real_clip_reads_as_registered_pairs():
    pairs = list(read_clip(CLIPS / "0111_1716", limit=3))
    assert len(pairs) == 3
    ir, vis = pairs[0]
    assert ir.dtype == np.uint8 and ir.ndim == 2 and vis.shape == ir.shape + (3,)


def _write_clip(folder: Path, frames: list[np.ndarray]) -> None:
    folder.mkdir(parents=True)
    for name, colour in (("ir.mp4", False), ("vis.mp4", True)):
        writer = cv2.VideoWriter(str(folder / name), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120), True)
        assert writer.isOpened()
        for frame in frames:
            image = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            writer.write(image if colour else 255 - image)
        writer.release()


def test_evaluate_reports_temporal_stability_for_clips(tmp_path, capsys):
    from tests.helpers import training_main

    _write_clip(tmp_path / "clip", _panning(frames=6))
    out = tmp_path / "out"
    code = training_main("evaluate", ["--clips", str(tmp_path / "clip"), "--method", "avg=baseline:average",
                                      "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "temporal.json").read_text())["clip"]
    assert set(summary) == {"visible", "thermal", "avg"} and summary["avg"]["pairs"] == 5
    assert summary["visible"]["warping_error"] < 10 and summary["avg"]["source_flow_error"] < 10
    table = (out / "temporal.md").read_text()
    assert "| avg |" in table and "two-source flow" in table
