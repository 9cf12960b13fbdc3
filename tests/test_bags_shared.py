"""Bag fusion on real pairs from ../shared (skipped with the reason when absent): both storages, raw and JPEG."""

from __future__ import annotations

import numpy as np
import pytest

from sage_core.fuser import Fuser
from sage_core.options import InferenceOptions
from sage_ros.bags.fuse_bag import FUSED_TOPIC, fuse_bag
from sage_ros.bags.recording import PairStreams, write_pair_bag
from sage_ros.harness.pairs import dataset_input_pairs
from sage_ros.parameters import FusionParams
from tests.bag_helpers import expected_fused, fusion, jpeg_roundtrip, on, read_bag


@pytest.fixture(scope="module")
def tno_pairs(tno):
    """Three TNO pairs of one size (a stream keeps its size), thermal mono8 as the demo sends dataset pairs."""
    by_size: dict[tuple, list] = {}
    for pair in dataset_input_pairs(tno, 25):
        by_size.setdefault(pair.thermal.shape, []).append(pair)
    chosen = max(by_size.values(), key=len)[:3]
    return [(p.thermal, p.thermal_encoding, p.visible) for p in chosen]


@pytest.fixture(scope="module")
def fuser():
    return Fuser.from_options(InferenceOptions(device="cpu", backend="torch"))


@pytest.mark.parametrize("storage,rgb_transport", [("mcap", "raw"), ("sqlite3", "raw"), ("mcap", "jpeg"),
                                                   ("sqlite3", "jpeg")])
def test_dataset_pairs_through_a_bag_match_the_pipeline(tmp_path, fuser, tno_pairs, storage, rgb_transport):
    write_pair_bag(tmp_path / "in", tno_pairs, PairStreams(rgb_transport=rgb_transport), storage=storage)
    result = fuse_bag(tmp_path / "in", tmp_path / "out", FusionParams(), storage=storage, fusion=fusion(fuser))
    assert result.published == len(tno_pairs) and not result.bad
    sent = tno_pairs if rgb_transport == "raw" else [(t, e, jpeg_roundtrip(v)) for t, e, v in tno_pairs]
    fused = on(read_bag(tmp_path / "out"), FUSED_TOPIC)
    for message, expected in zip(fused, expected_fused(fuser, FusionParams(), sent), strict=True):
        assert np.array_equal(message.image(), expected)
