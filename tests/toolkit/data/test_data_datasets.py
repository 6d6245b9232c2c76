"""Tests for the bundled digits and the synthetic datasets."""

from __future__ import annotations

import numpy as np
import pytest

from graphc.toolkit.data import (
    CROSS,
    cross_images,
    has_cross,
    load_digits,
    regression_line,
    spirals,
    two_moons,
    xor,
)


def test_load_digits_shapes_and_ranges():
    pytest.importorskip("sklearn")
    x, y = load_digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert y.shape == (1797,) and y.dtype == np.int64
    assert set(np.unique(y).tolist()) == set(range(10))


def test_has_cross_semantics():
    img = np.zeros((6, 6), np.float32)
    assert not has_cross(img)
    img[2:5, 3] = 1
    img[3, 2:5] = 1
    assert has_cross(img)  # a plus centred at (3, 3)
    full = np.ones((3, 3))
    assert has_cross(full)  # corner pixels do not matter
    for r, c in [(0, 1), (1, 0), (1, 1), (1, 2), (2, 1)]:
        broken = img.copy()
        broken[r + 2, c + 2] = 0
        assert not has_cross(broken), (r, c)  # any missing arm pixel: no cross
    edge = np.zeros((6, 6))
    edge[0, 0:3] = 1
    edge[0:2, 1] = 1  # a "T" cut off by the border is not a cross
    assert not has_cross(edge)
    batch = np.stack([img, np.zeros((6, 6)), edge])
    assert has_cross(batch).tolist() == [True, False, False]
    assert has_cross(batch[:, None]).tolist() == [True, False, False]
    assert CROSS.sum() == 5


def test_cross_images_labels_match_detector():
    x, y = cross_images(400, seed=0)
    assert x.shape == (400, 1, 6, 6) and x.dtype == np.float32 and y.dtype == np.int64
    assert set(np.unique(x).tolist()) <= {0.0, 1.0}
    assert y.sum() == 200  # about half positive (exactly n // 2)
    np.testing.assert_array_equal(has_cross(x), y == 1)  # no accidental crosses in negatives
    # planted crosses do not change the pixel-count distribution much
    assert abs(x[y == 1].sum((1, 2, 3)).mean() - x[y == 0].sum((1, 2, 3)).mean()) < 1.0
    x2, y2 = cross_images(400, seed=0)
    np.testing.assert_array_equal(x, x2)
    xb, yb = cross_images(50, size=9, seed=3, density=0.6)  # dense noise: many to break
    np.testing.assert_array_equal(has_cross(xb), yb == 1)
    with pytest.raises(ValueError):
        cross_images(4, size=2)


def test_xor_moons_spirals_regression():
    x, y = xor()
    assert x.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]] and y.tolist() == [0, 1, 1, 0]
    x, y = xor(100, noise=0.05, seed=1)
    assert x.shape == (100, 2) and np.array_equal(y, (x[:, 0] > 0.5) ^ (x[:, 1] > 0.5))
    x, y = two_moons(301, noise=0.1, seed=0)
    assert x.shape == (301, 2) and x.dtype == np.float32 and np.bincount(y).tolist() == [150, 151]
    x0, _ = two_moons(10, noise=0.0)
    assert np.all(np.abs(x0) <= 2.0)
    x, y = spirals(90, classes=3, seed=0)
    assert x.shape == (90, 2) and np.bincount(y).tolist() == [30, 30, 30]
    x, y = regression_line(40, slope=3.0, intercept=-1.0, noise=0.0)
    assert x.shape == (40, 1) and y.shape == (40, 1)
    np.testing.assert_allclose(y, 3.0 * x - 1.0, atol=1e-6)
    assert -1 <= x.min() and x.max() <= 1
