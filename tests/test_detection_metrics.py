"""AP50 and the paired bootstrap of the downstream benchmark, on hand-made cases worked out by hand,
and a 3-pair smoke run of benchmarks/bench_downstream.py when ../shared and node/npm are present."""

from __future__ import annotations

import importlib.util
import shutil
import sys

import numpy as np
import pytest
from conftest import DATASETS, REPO, require_shared

from sage_core.eval.detection import (
    PooledMatches,
    PostProcess,
    bootstrap_weights,
    iou_matrix,
    load_yolo_labels,
    match_image,
    paired_difference,
    postprocess,
    union_labels,
)

A, B, C, D = [0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60], [80, 80, 90, 90]


def ap(*images) -> float:
    """images: (boxes, scores, ground truth) triples -> pooled AP50."""
    return PooledMatches([match_image(np.array(b), np.array(s), np.array(g)) for b, s, g in images]).average_precision()


def test_perfect_detections_give_one():
    assert ap(([A, B], [0.9, 0.8], [A, B])) == pytest.approx(1.0)


def test_false_positive_between_hits_all_point_interpolation():
    # ranks: TP (p 1, r .5), FP (p .5, r .5), TP (p 2/3, r 1) -> .5 * 1 + .5 * 2/3
    assert ap(([A, C, B], [0.9, 0.8, 0.7], [A, B])) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_precision_is_interpolated_from_higher_recall():
    # TP (p 1, r 1/3), FP, TP (p 2/3, r 2/3), TP (p 3/4, r 1): the 2/3 step is counted at 3/4
    assert ap(([A, C, B, D], [0.9, 0.8, 0.7, 0.6], [A, B, D])) == pytest.approx((1 + 3 / 4 + 3 / 4) / 3)


def test_second_detection_of_a_taken_box_is_a_false_positive():
    # the 0.8 box hits A again: same curve as a plain false positive
    assert ap(([A, A, B], [0.9, 0.8, 0.6], [A, B])) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_missed_box_caps_recall():
    assert ap(([A], [0.9], [A, B])) == pytest.approx(0.5)


def test_iou_threshold_is_inclusive_at_one_half():
    assert iou_matrix([[0, 0, 10, 5]], [A])[0, 0] == pytest.approx(0.5)
    assert ap(([[0, 0, 10, 5]], [0.9], [A])) == pytest.approx(1.0)
    assert ap(([[0, 0, 10, 4.9]], [0.9], [A])) == pytest.approx(0.0)


def test_detections_are_pooled_across_images_by_score():
    # image 2's 0.9 false positive outranks image 1's 0.5 hit: p 0 then .5 at r .5 -> .25
    assert ap(([A], [0.5], [A]), ([C], [0.9], [B])) == pytest.approx(0.25)


def test_no_ground_truth_is_undefined_and_no_detections_is_zero():
    assert np.isnan(ap(([A], [0.9], np.zeros((0, 4)))))
    assert ap((np.zeros((0, 4)), np.zeros(0), [A])) == 0.0


def test_weights_equal_duplicated_images():
    one, two = ([A], [0.5], [A]), ([C], [0.9], [B])
    weighted = PooledMatches([match_image(*map(np.array, im)) for im in (one, two)]).average_precision(np.array([2, 1]))
    # by hand: FP (p 0, r 0), TP x2 (p 2/3 at r 2/3) -> 2/3 * 2/3
    assert weighted == pytest.approx(4 / 9)
    assert ap(one, one, two) == pytest.approx(4 / 9)


def test_bootstrap_weights_are_seeded_counts():
    w = bootstrap_weights(5, 200, seed=3)
    assert w.shape == (200, 5) and np.all(w.sum(axis=1) == 5)
    assert np.array_equal(w, bootstrap_weights(5, 200, seed=3))
    assert not np.array_equal(w, bootstrap_weights(5, 200, seed=4))


def test_paired_bootstrap_of_a_method_against_itself_is_zero():
    pool = PooledMatches([match_image(np.array([A, C]), np.array([0.9, 0.8]), np.array([A, B]))] * 4)
    interval = paired_difference(pool, pool, bootstrap_weights(4, 100))
    assert (interval.difference, interval.low, interval.high) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_interval_by_hand():
    # perfect minus a method right on image 1 (TP .95) and wrong-first on image 2 (FP .9, TP .8):
    # draws {1,1}: 0, {1,2}: 1 - 5/6, {2,2}: 1 - 1/2, with odds 1/4, 1/2, 1/4
    perfect = PooledMatches([match_image(np.array([A]), np.array([0.9]), np.array([A]))] * 2)
    flawed = PooledMatches([match_image(np.array([A]), np.array([0.95]), np.array([A])),
                            match_image(np.array([C, B]), np.array([0.9, 0.8]), np.array([B]))])
    weights = bootstrap_weights(2, 1000, seed=0)
    interval = paired_difference(perfect, flawed, weights)
    assert interval.difference == pytest.approx(1 / 6)
    assert (interval.low, interval.high) == (pytest.approx(0.0), pytest.approx(0.5))
    draws = perfect.average_precision(weights) - flawed.average_precision(weights)
    assert set(np.round(draws, 6)) == {0.0, round(1 / 6, 6), 0.5}
    assert draws.mean() == pytest.approx(0.5 * 1 / 6 + 0.25 * 0.5, abs=0.03)


def test_postprocess_folds_coco_classes_then_suppresses_per_class_or_across_classes():
    raw = np.array([[0, 0, 10, 10, 0.9, 2],    # car
                    [0, 0, 10, 10, 0.8, 7],    # truck on the same box: car after folding, suppressed
                    [20, 20, 30, 30, 0.7, 5],  # bus -> car
                    [50, 50, 60, 60, 0.6, 0],  # person
                    [0, 0, 10, 9, 0.55, 0],    # person on the car's box: kept per class, not across classes
                    [70, 70, 80, 80, 0.01, 0],  # under the score floor
                    [90, 90, 99, 99, 0.5, 16]])  # dog: not a task class
    per_class = postprocess(raw, PostProcess(min_score=0.05, iou_threshold=0.4, max_detections=100))
    assert per_class["car"][1].tolist() == [0.9, 0.7]
    assert per_class["person"][1].tolist() == [0.6, 0.55]
    assert per_class["person"][0].tolist() == [[50, 50, 60, 60], [0, 0, 10, 9]]
    agnostic = postprocess(raw, PostProcess(min_score=0.05, iou_threshold=0.4, nms="agnostic"))
    assert agnostic["car"][1].tolist() == [0.9, 0.7] and agnostic["person"][1].tolist() == [0.6]
    assert len(postprocess(raw, PostProcess(max_detections=1, nms="agnostic"))["person"][1]) == 0
    assert postprocess(raw, PostProcess(max_detections=1))["person"][1].tolist() == [0.6]


def test_yolo_labels_and_union(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("0 0.5 0.5 0.25 0.5\n2 0.1 0.1 0.1 0.1\n")
    boxes = load_yolo_labels(path, 640, 480)
    assert boxes["person"].tolist() == [[240, 120, 400, 360]]
    assert boxes["car"] == pytest.approx(np.array([[32, 24, 96, 72]]))
    assert load_yolo_labels(tmp_path / "missing.txt", 640, 480)["person"].shape == (0, 4)
    other = {"person": np.array([[241, 121, 401, 361], [0, 0, 5, 5]]), "car": np.zeros((0, 4)),
             "bicycle": np.zeros((0, 4))}
    merged = union_labels(boxes, other)
    assert merged["person"].tolist() == [[240, 120, 400, 360], [0, 0, 5, 5]]
    assert len(merged["car"]) == 1


def _bench():
    require_shared(DATASETS / "msrs180" / "labels" / "fusion")
    if "bench_downstream" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_downstream", REPO / "benchmarks" / "bench_downstream.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_downstream"] = module
        spec.loader.exec_module(module)
    return sys.modules["bench_downstream"]


def test_benchmark_smoke_on_three_pairs(tmp_path):
    """Runs the real detector (TF.js in Node) on 3 pairs. Needs ../shared and node + npm; when
    benchmarks/downstream/node_modules is missing its npm ci needs the npm registry (about 350 MB)."""
    bench = _bench()
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} on PATH for the TF.js detector")
    assert bench.main(["--smoke", "--out", str(tmp_path), "--cache", str(tmp_path / "cache")]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "| person, all | 3 |" in report and "minus **average**" in report
    assert (tmp_path / "night_detections.png").stat().st_size > 10_000


def test_tf_same_padding_and_legacy_resize_by_hand():
    import torch

    from sage_core.eval.tfjs_graph import _same_pad, resize_bilinear_legacy
    assert _same_pad(512, 3, 2) == (0, 1)  # TF puts the odd pixel after; PyTorch's padding=1 would not
    assert _same_pad(512, 3, 1) == (1, 1) and _same_pad(5, 1, 1) == (0, 0)
    # 2 -> 4 pixels: sources 0, .5, 1, 1.5 (clamped): 0, .5, 1, 1; not PyTorch's half-pixel 0, .25, .75, 1
    x = torch.tensor([0.0, 1.0]).reshape(1, 1, 2, 1)
    assert resize_bilinear_legacy(x, 1, 4).flatten().tolist() == [0.0, 0.5, 1.0, 1.0]


def test_torch_centernet_matches_tfjs_on_a_pair(centernet_json):
    """The detector converted to PyTorch gives TF.js's detections (needs ../shared and the npm packages)."""
    bench = _bench()
    model = centernet_json
    from sage_core.eval.centernet import TorchCenterNet
    ir, vis = bench.read_pair("00858N")
    image = bench.make_baseline("average").fuse(ir, vis)
    tfjs = bench.TfjsDetector()
    try:
        ref = tfjs(image)
    finally:
        tfjs.close()
    ours = TorchCenterNet(model)(image)
    assert np.array_equal(ours[:, 5], ref[:, 5])
    assert np.abs(ours[:, :4] - ref[:, :4]).max() < 0.01 and np.abs(ours[:, 4] - ref[:, 4]).max() < 1e-4
