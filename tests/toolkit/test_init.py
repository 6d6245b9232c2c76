"""gc.init: statistics, orthogonality, fans, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from graphc import init

SEEDED = [init.glorot_uniform, init.glorot_normal, init.he_uniform, init.he_normal,
          init.lecun_normal, init.orthogonal, init.small_uniform]


def test_fans_dense_and_conv():
    assert init.fans((784, 10)) == (784, 10)
    assert init.fans((16, 3, 5, 5)) == (75, 400)
    assert init.fans((7,)) == (7, 7)
    assert init.fans(()) == (1, 1)


@pytest.mark.parametrize("fn, var", [
    (init.glorot_uniform, lambda fi, fo: 2.0 / (fi + fo)),
    (init.glorot_normal, lambda fi, fo: 2.0 / (fi + fo)),
    (init.he_uniform, lambda fi, fo: 2.0 / fi),
    (init.he_normal, lambda fi, fo: 2.0 / fi),
    (init.lecun_normal, lambda fi, fo: 1.0 / fi),
    (init.small_uniform, lambda fi, fo: 0.05 ** 2 / 3),
])
@pytest.mark.parametrize("shape", [(400, 300), (64, 32, 3, 3)])
def test_variance_and_mean(fn, var, shape):
    w = fn(shape, seed=0, dtype="float64")
    assert w.shape == shape and w.dtype == np.float64
    want = var(*init.fans(shape))
    assert abs(w.var() / want - 1) < 0.03
    assert abs(w.mean()) < 0.03 * np.sqrt(want)


def test_uniform_limits():
    w = init.glorot_uniform((300, 200), seed=1)
    assert np.abs(w).max() <= np.sqrt(6 / 500)
    assert np.abs(w).max() > 0.99 * np.sqrt(6 / 500)
    s = init.small_uniform((1000,), seed=1, scale=0.01)
    assert np.abs(s).max() <= 0.01


@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (50, 50), (8, 4, 3, 3)])
def test_orthogonal(shape):
    q = init.orthogonal(shape, seed=3, dtype="float64").reshape(shape[0], -1)
    rows, cols = q.shape
    gram = q.T @ q if rows >= cols else q @ q.T
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=1e-12)
    g2 = init.orthogonal(shape, seed=3, dtype="float64", gain=2.0).reshape(rows, -1)
    np.testing.assert_allclose(g2, 2 * q, atol=1e-12)
    with pytest.raises(ValueError):
        init.orthogonal((5,), seed=0)


@pytest.mark.parametrize("fn", SEEDED)
def test_deterministic_by_seed_and_dtype(fn):
    a = fn((20, 10), seed=7)
    b = fn((20, 10), seed=7)
    c = fn((20, 10), seed=8)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_zeros_ones_and_get():
    np.testing.assert_array_equal(init.zeros((2, 3)), 0.0)
    np.testing.assert_array_equal(init.ones((2,), dtype="float64"), 1.0)
    assert init.get("glorot_uniform") is init.glorot_uniform
    assert init.get("kaiming_normal") is init.he_normal

    def custom(shape, seed, dtype):
        return np.full(shape, 3.0, dtype)

    assert init.get(custom) is custom
    with pytest.raises(ValueError, match="unknown initializer"):
        init.get("nope")
    with pytest.raises(TypeError):
        init.he_normal((3, 3), seed=0, dtype="int32")
