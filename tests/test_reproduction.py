"""The released student through our pipeline reproduces the released fused images."""

import numpy as np

from sage_core.fuser import Fuser
from sage_core.image_files import dataset_pairs, read_image, read_pair


def test_official_student_reproduces_released_outputs(official_checkpoint, m3fd):
    fuser = Fuser.from_weights(official_checkpoint, device="cpu")
    pairs = dataset_pairs(m3fd)
    assert len(pairs) == 6
    for pair in pairs:
        fused = fuser.fuse(*read_pair(pair))
        reference = read_image(m3fd / "reference" / "sage_official" / f"{pair.stem}.png")
        assert fused.shape == reference.shape
        diff = np.abs(fused.astype(np.int16) - reference.astype(np.int16))
        assert diff.max() <= 1, f"{pair.stem}: max difference {diff.max()} grey levels"
        assert (diff > 0).mean() < 1e-3, f"{pair.stem}: {100 * (diff > 0).mean():.3f} % of values differ"
