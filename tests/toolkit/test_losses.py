"""gc.losses: values against NumPy formulas, reductions, finite-difference gradients."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc import losses

RNG = np.random.default_rng(0)
P = RNG.normal(size=(6, 4))
T = RNG.normal(size=(6, 4))
LABELS = RNG.integers(0, 4, size=6)
BIN = (RNG.uniform(size=(6, 4)) > 0.5).astype(np.float64)


def _huber(d, delta):
    a = np.abs(d)
    return np.where(a <= delta, 0.5 * d**2, delta * (a - 0.5 * delta))


def _log_softmax(z):
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


CASES = {  # name: (builder(pred, target, reduction), per-element NumPy reference, target)
    "mse": (losses.mse, lambda p: (p - T) ** 2, T),
    "mae": (losses.mae, lambda p: np.abs(p - T), T),
    "huber": (lambda p, t, reduction: losses.huber(p, t, delta=0.7, reduction=reduction),
              lambda p: _huber(p - T, 0.7), T),
    "bce": (losses.binary_cross_entropy, lambda p: np.logaddexp(0, p) - p * BIN, BIN),
    "sce_ids": (losses.softmax_cross_entropy,
                lambda p: -_log_softmax(p)[np.arange(6), LABELS], LABELS),
    "sce_onehot": (losses.softmax_cross_entropy,
                   lambda p: -(np.eye(4)[LABELS] * _log_softmax(p)).sum(-1), np.eye(4)[LABELS]),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_values_match_numpy(name, reduction):
    build, ref, target = CASES[name]
    with gc.Graph() as g:
        x = gc.placeholder(P.shape, dtype="float64")
        out = build(x, target, reduction=reduction)
    got = gc.Session(g, backend="numpy").run(out, {x: P})
    per = ref(P)
    want = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    assert got.shape == np.shape(want) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradients_match_finite_differences(name, reduction):
    build, ref, target = CASES[name]
    with gc.Graph() as g:
        x = gc.placeholder(P.shape, dtype="float64")
        (gx,) = gc.grad(build(x, target, reduction=reduction), [x])
    got = gc.Session(g, backend="numpy").run(gx, {x: P})
    red = np.mean if reduction == "mean" else np.sum
    eps = 1e-6
    want = np.zeros_like(P)
    for i in np.ndindex(P.shape):
        hi, lo = P.copy(), P.copy()
        hi[i] += eps
        lo[i] -= eps
        want[i] = (red(ref(hi)) - red(ref(lo))) / (2 * eps)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


def test_bce_is_stable_for_large_logits():
    z = np.array([[-1000.0, 1000.0, 0.0]])
    t = np.array([[1.0, 0.0, 1.0]])
    with gc.Graph() as g:
        x = gc.placeholder((1, 3), dtype="float64")
        out = losses.binary_cross_entropy(x, t, reduction="none")
    got = gc.Session(g, backend="numpy").run(out, {x: z})
    np.testing.assert_allclose(got, [[1000.0, 1000.0, np.log(2)]])


def test_mean_over_a_run_time_batch_and_float32_targets():
    with gc.Graph() as g:
        x = gc.placeholder((None, 2))
        t = gc.placeholder((None, 2))
        out = losses.mse(x, t)
    xb, tb = np.ones((3, 2), np.float32), np.zeros((3, 2), np.float32)
    assert out.shape == () and out.dtype == "float32"
    assert gc.Session(g, backend="numpy").run(out, {x: xb, t: tb}) == pytest.approx(1.0)


def test_errors():
    with gc.Graph():
        x = gc.placeholder((None, 1))
        t = gc.placeholder((None,))
        with pytest.raises(gc.ShapeError, match=r"\(N, 1\) and targets \(N,\) would broadcast to \(N, N\)"):
            losses.mse(x, t)
        with pytest.raises(ValueError, match="reduction"):
            losses.mae(x, x, reduction="avg")
        with pytest.raises(ValueError):
            losses.huber(x, x, delta=0.0)
        with pytest.raises(ValueError, match="reduction"):
            losses.reduce(x, "max")
