"""The offline synthetic scenes used to prove detection and segmentation."""

import numpy as np

from focalnet.data.synthetic import CATEGORIES, make_scenes


def test_scenes_are_reproducible_and_consistent():
    a = make_scenes(6, seed=3, size=(96, 128))
    b = make_scenes(6, seed=3, size=(96, 128))
    ids = {c["id"] for c in CATEGORIES}
    for s, t in zip(a, b):
        np.testing.assert_array_equal(s.image, t.image)
        np.testing.assert_array_equal(s.masks, t.masks)
        assert s.image.shape == (96, 128, 3) and s.image.dtype == np.uint8
        assert len(s.labels) == len(s.masks) == len(s.boxes) >= 1
        assert set(s.labels.tolist()) <= ids
        for m, box in zip(s.masks, s.boxes):
            ys, xs = np.nonzero(m)
            assert m.sum() >= 16
            np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        # visible masks never overlap, and the semantic mask agrees with them
        assert (s.masks.sum(0) <= 1).all()
        sem = s.semantic_mask()
        for m, lab in zip(s.masks, s.labels):
            assert (sem[m] == lab).all()
    assert not np.array_equal(a[0].image, make_scenes(1, seed=4, size=(96, 128))[0].image)
