"""Tests for graphc.reference.conv against independent naive-loop definitions."""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

from graphc.ops.conv import conv2d_backward_data_reference as conv2d_backward_data
from graphc.ops.conv import conv2d_backward_filter_reference as conv2d_backward_filter
from graphc.ops.conv import conv2d_reference as conv2d
from graphc.ops.pool import avg_pool2d_backward_reference as avg_pool2d_backward
from graphc.ops.pool import avg_pool2d_reference as avg_pool2d
from graphc.ops.pool import max_pool2d_backward_reference as max_pool2d_backward
from graphc.ops.pool import max_pool2d_reference as max_pool2d
from graphc.ops.pool import max_pool2d_select_reference as max_pool2d_select
from graphc.ops.windows import output_hw as conv2d_output_hw
from graphc.ops.windows import pair

DTYPES = [np.float64, np.float32]
TOL = {
    np.float64: {"rtol": 1e-10, "atol": 1e-12},
    np.float32: {"rtol": 1e-5, "atol": 1e-5},
}


# ---------------------------------------------------------------------------
# naive definitions: explicit loops over n, o, c, oh, ow, kh, kw (float64)
# ---------------------------------------------------------------------------
def _p2(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def naive_out_hw(h, w, k, s, p):
    return (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1


def naive_conv2d(x, w, s, p):
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    n_, c_, h_, w_ = x.shape
    o_, _, kh_, kw_ = w.shape
    oh_, ow_ = naive_out_hw(h_, w_, (kh_, kw_), s, p)
    y = np.zeros((n_, o_, oh_, ow_))
    for n in range(n_):
        for o in range(o_):
            for i in range(oh_):
                for j in range(ow_):
                    acc = 0.0
                    for c in range(c_):
                        for a in range(kh_):
                            for b in range(kw_):
                                r = i * s[0] + a - p[0]
                                q = j * s[1] + b - p[1]
                                if 0 <= r < h_ and 0 <= q < w_:
                                    acc += x[n, c, r, q] * w[o, c, a, b]
                    y[n, o, i, j] = acc
    return y


def naive_conv2d_backward_data(gy, w, hw, s, p):
    gy = gy.astype(np.float64)
    w = w.astype(np.float64)
    n_, o_, oh_, ow_ = gy.shape
    _, c_, kh_, kw_ = w.shape
    h_, w_ = hw
    gx = np.zeros((n_, c_, h_, w_))
    for n in range(n_):
        for o in range(o_):
            for c in range(c_):
                for i in range(oh_):
                    for j in range(ow_):
                        for a in range(kh_):
                            for b in range(kw_):
                                r = i * s[0] + a - p[0]
                                q = j * s[1] + b - p[1]
                                if 0 <= r < h_ and 0 <= q < w_:
                                    gx[n, c, r, q] += gy[n, o, i, j] * w[o, c, a, b]
    return gx


def naive_conv2d_backward_filter(x, gy, k, s, p):
    x = x.astype(np.float64)
    gy = gy.astype(np.float64)
    n_, c_, h_, w_ = x.shape
    _, o_, oh_, ow_ = gy.shape
    gw = np.zeros((o_, c_, k[0], k[1]))
    for n in range(n_):
        for o in range(o_):
            for c in range(c_):
                for i in range(oh_):
                    for j in range(ow_):
                        for a in range(k[0]):
                            for b in range(k[1]):
                                r = i * s[0] + a - p[0]
                                q = j * s[1] + b - p[1]
                                if 0 <= r < h_ and 0 <= q < w_:
                                    gw[o, c, a, b] += gy[n, o, i, j] * x[n, c, r, q]
    return gw


def naive_max_windows(x, k, s, p):
    """Per window: max value and (row, col) of the first max over real positions."""
    x = x.astype(np.float64)
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = naive_out_hw(h_, w_, k, s, p)
    val = np.zeros((n_, c_, oh_, ow_))
    pos = np.zeros((n_, c_, oh_, ow_, 2), dtype=int)
    for n in range(n_):
        for c in range(c_):
            for i in range(oh_):
                for j in range(ow_):
                    best, where = None, None
                    for a in range(k[0]):
                        for b in range(k[1]):
                            r = i * s[0] + a - p[0]
                            q = j * s[1] + b - p[1]
                            if not (0 <= r < h_ and 0 <= q < w_):
                                continue  # padding is -inf: never selected
                            if best is None or x[n, c, r, q] > best:
                                best, where = x[n, c, r, q], (r, q)
                    val[n, c, i, j] = best
                    pos[n, c, i, j] = where
    return val, pos


def naive_max_pool2d(x, k, s, p):
    return naive_max_windows(x, k, s, p)[0]


def naive_max_pool2d_backward(x, gy, k, s, p):
    _, pos = naive_max_windows(x, k, s, p)
    gx = np.zeros(x.shape)
    n_, c_, oh_, ow_ = gy.shape
    for n in range(n_):
        for c in range(c_):
            for i in range(oh_):
                for j in range(ow_):
                    r, q = pos[n, c, i, j]
                    gx[n, c, r, q] += gy[n, c, i, j]
    return gx


def naive_max_pool2d_select(x, g, k, s, p):
    _, pos = naive_max_windows(x, k, s, p)
    n_, c_, oh_, ow_ = pos.shape[:4]
    out = np.zeros((n_, c_, oh_, ow_))
    for n in range(n_):
        for c in range(c_):
            for i in range(oh_):
                for j in range(ow_):
                    r, q = pos[n, c, i, j]
                    out[n, c, i, j] = g[n, c, r, q]
    return out


def naive_avg_pool2d(x, k, s, p):
    x = x.astype(np.float64)
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = naive_out_hw(h_, w_, k, s, p)
    y = np.zeros((n_, c_, oh_, ow_))
    for n in range(n_):
        for c in range(c_):
            for i in range(oh_):
                for j in range(ow_):
                    acc = 0.0
                    for a in range(k[0]):
                        for b in range(k[1]):
                            r = i * s[0] + a - p[0]
                            q = j * s[1] + b - p[1]
                            if 0 <= r < h_ and 0 <= q < w_:
                                acc += x[n, c, r, q]
                    y[n, c, i, j] = acc / (k[0] * k[1])
    return y


def naive_avg_pool2d_backward(gy, hw, k, s, p):
    gy = gy.astype(np.float64)
    n_, c_, oh_, ow_ = gy.shape
    gx = np.zeros((n_, c_, hw[0], hw[1]))
    for n in range(n_):
        for c in range(c_):
            for i in range(oh_):
                for j in range(ow_):
                    for a in range(k[0]):
                        for b in range(k[1]):
                            r = i * s[0] + a - p[0]
                            q = j * s[1] + b - p[1]
                            if 0 <= r < hw[0] and 0 <= q < hw[1]:
                                gx[n, c, r, q] += gy[n, c, i, j] / (k[0] * k[1])
    return gx


# ---------------------------------------------------------------------------
# parameter grids
# ---------------------------------------------------------------------------
N, C, O = 2, 3, 2
SHAPES = [(7, 3), (3, 7), (1, 7)]  # non-square, odd, including a size-1 axis
GRID = list(itertools.product(SHAPES, (1, 2, 3), (1, 2, 3), (0, 1, 2)))
TUPLE_CASES = [  # (hw, kernel, stride, padding) with non-square parameters
    ((7, 5), (3, 2), (2, 1), (1, 0)),
    ((5, 7), (1, 3), (1, 2), (0, 1)),
    ((7, 3), (2, 3), (3, 2), (1, 1)),
]


def _conv_ok(hw, k, s, p):
    oh, ow = naive_out_hw(*hw, _p2(k), _p2(s), _p2(p))
    return oh >= 1 and ow >= 1


def _pool_ok(hw, k, s, p):
    k2, p2 = _p2(k), _p2(p)
    return _conv_ok(hw, k, s, p) and p2[0] <= k2[0] // 2 and p2[1] <= k2[1] // 2


def _ids(case):
    hw, k, s, p = case
    return f"hw{hw[0]}x{hw[1]}-k{k}-s{s}-p{p}".replace(" ", "")


CONV_CASES = [c for c in GRID if _conv_ok(*c)] + TUPLE_CASES
POOL_CASES = [c for c in GRID if _pool_ok(*c)] + TUPLE_CASES
BAD_CONV = [c for c in GRID if not _conv_ok(*c)]
BAD_POOL = [c for c in GRID if _conv_ok(*c) and not _pool_ok(*c)]


def _rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _std(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _conv_data(case, dtype):
    hw, k, s, p = case
    k2 = _p2(k)
    rng = _rng("conv", case, np.dtype(dtype).name)
    x = _std(rng, (N, C, *hw), dtype)
    w = _std(rng, (O, C, *k2), dtype)
    gy = _std(rng, (N, O, *naive_out_hw(*hw, k2, _p2(s), _p2(p))), dtype)
    return x, w, gy


def _pool_data(case, dtype):
    hw, k, s, p = case
    rng = _rng("pool", case, np.dtype(dtype).name)
    x = _std(rng, (N, C, *hw), dtype)
    gy = _std(rng, (N, C, *naive_out_hw(*hw, _p2(k), _p2(s), _p2(p))), dtype)
    g = _std(rng, x.shape, dtype)
    return x, gy, g


def _check(actual, expected, dtype):
    assert actual.dtype == np.dtype(dtype)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, **TOL[dtype])


def _check_inner(a, b, scale, dtype):
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert abs(a - b) <= tol * scale, (a, b)


def _dot(a, b):
    return float(np.sum(a.astype(np.float64) * b.astype(np.float64)))


# ---------------------------------------------------------------------------
# helpers / argument handling
# ---------------------------------------------------------------------------
def test_pair():
    assert pair(3) == (3, 3)
    assert pair(np.int64(2)) == (2, 2)
    assert pair((2, 3)) == (2, 3)
    assert pair([1, 4]) == (1, 4)
    with pytest.raises(ValueError):
        pair((1, 2, 3))
    with pytest.raises(TypeError):
        pair(1.5)


def test_output_hw():
    assert conv2d_output_hw(7, 3, 3, 1, 0) == (5, 1)
    assert conv2d_output_hw(7, 5, 2, 3, 0) == (2, 2)  # floor
    assert conv2d_output_hw(7, 5, (3, 2), (2, 1), (1, 0)) == (4, 4)
    assert conv2d_output_hw(1, 1, 3, 2, 1) == (1, 1)
    with pytest.raises(ValueError):
        conv2d_output_hw(2, 5, 3, 1, 0)
    with pytest.raises(ValueError):
        conv2d_output_hw(5, 5, 3, 0, 0)


@pytest.mark.parametrize("case", BAD_CONV, ids=_ids)
def test_invalid_output_size_raises(case):
    hw, k, s, p = case
    x = np.ones((1, 1, *hw))
    with pytest.raises(ValueError):
        conv2d_output_hw(*hw, k, s, p)
    with pytest.raises(ValueError):
        conv2d(x, np.ones((1, 1, k, k)), s, p)


@pytest.mark.parametrize("case", BAD_POOL, ids=_ids)
def test_pool_padding_too_large_raises(case):
    hw, k, s, p = case
    x = np.ones((1, 1, *hw))
    gy = np.ones((1, 1, *conv2d_output_hw(*hw, k, s, p)))
    for f in (
        lambda: max_pool2d(x, k, s, p),
        lambda: max_pool2d_backward(x, gy, k, s, p),
        lambda: max_pool2d_select(x, x, k, s, p),
        lambda: avg_pool2d(x, k, s, p),
        lambda: avg_pool2d_backward(gy, hw, k, s, p),
    ):
        with pytest.raises(ValueError):
            f()


def test_pool_stride_defaults_to_kernel():
    x = _std(_rng("default-stride"), (2, 3, 7, 5), np.float64)
    np.testing.assert_array_equal(max_pool2d(x, 2), max_pool2d(x, 2, 2))
    np.testing.assert_array_equal(avg_pool2d(x, 3, None, 1), avg_pool2d(x, 3, 3, 1))
    assert max_pool2d(x, 2).shape == (2, 3, 3, 2)


# ---------------------------------------------------------------------------
# convolution vs naive
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=_ids)
def test_conv2d(case, dtype):
    _hw, _k, s, p = case
    x, w, _gy = _conv_data(case, dtype)
    _check(conv2d(x, w, s, p), naive_conv2d(x, w, _p2(s), _p2(p)), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=_ids)
def test_conv2d_backward_data(case, dtype):
    hw, _k, s, p = case
    _x, w, gy = _conv_data(case, dtype)
    expected = naive_conv2d_backward_data(gy, w, hw, _p2(s), _p2(p))
    _check(conv2d_backward_data(gy, w, hw, s, p), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=_ids)
def test_conv2d_backward_filter(case, dtype):
    _hw, k, s, p = case
    x, _w, gy = _conv_data(case, dtype)
    expected = naive_conv2d_backward_filter(x, gy, _p2(k), _p2(s), _p2(p))
    _check(conv2d_backward_filter(x, gy, k, s, p), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=_ids)
def test_conv2d_adjoint(case, dtype):
    hw, k, s, p = case
    x, w, gy = _conv_data(case, dtype)
    a = _dot(conv2d(x, w, s, p), gy)
    b = _dot(x, conv2d_backward_data(gy, w, hw, s, p))
    c = _dot(w, conv2d_backward_filter(x, gy, k, s, p))
    scale = float(np.abs(x).sum() * np.abs(w).sum() * np.abs(gy).sum())
    _check_inner(a, b, scale, dtype)
    _check_inner(a, c, scale, dtype)


def test_conv2d_backward_data_untouched_is_zero():
    # H=7, k=2, s=3: windows cover rows/cols {0,1,3,4}; 2, 5, 6 are never read.
    rng = _rng("untouched-conv")
    w = _std(rng, (2, 3, 2, 2), np.float64)
    gy = _std(rng, (2, 2, 2, 2), np.float64)
    gx = conv2d_backward_data(gy, w, (7, 7), 3, 0)
    assert gx.shape == (2, 3, 7, 7)
    for idx in (2, 5, 6):
        assert np.all(gx[:, :, idx, :] == 0) and np.all(gx[:, :, :, idx] == 0)
    assert np.all(gx[:, :, :2, :2] != 0)


def _fd_grad(f, a, eps=1e-6):
    g = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        old = a[idx]
        a[idx] = old + eps
        fp = f()
        a[idx] = old - eps
        fm = f()
        a[idx] = old
        g[idx] = (fp - fm) / (2 * eps)
    return g


FD_CASES = [((7, 3), 3, 2, 1), ((5, 7), 2, 3, 2), ((7, 5), (3, 2), (2, 1), (1, 0))]
POOL_FD_CASES = [((7, 3), 3, 2, 1), ((5, 7), 2, 3, 1), ((7, 5), (3, 2), (2, 1), (1, 0))]


@pytest.mark.parametrize("case", FD_CASES, ids=_ids)
def test_conv2d_finite_differences(case):
    hw, k, s, p = case
    x, w, gy = _conv_data(case, np.float64)

    def loss():
        return float(np.sum(conv2d(x, w, s, p) * gy))

    np.testing.assert_allclose(
        conv2d_backward_data(gy, w, hw, s, p), _fd_grad(loss, x), rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(
        conv2d_backward_filter(x, gy, k, s, p), _fd_grad(loss, w), rtol=1e-6, atol=1e-7
    )


# ---------------------------------------------------------------------------
# max pooling vs naive
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=_ids)
def test_max_pool2d(case, dtype):
    _hw, k, s, p = case
    x, _gy, _g = _pool_data(case, dtype)
    k2, s2, p2 = _p2(k), _p2(s), _p2(p)
    val, _ = naive_max_windows(x, k2, s2, p2)
    _check(max_pool2d(x, k, s, p), val, dtype)
    _check(max_pool2d_select(x, x, k, s, p), val, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=_ids)
def test_max_pool2d_backward_and_select(case, dtype):
    _hw, k, s, p = case
    x, gy, g = _pool_data(case, dtype)
    k2, s2, p2 = _p2(k), _p2(s), _p2(p)
    _check(max_pool2d_backward(x, gy, k, s, p), naive_max_pool2d_backward(x, gy, k2, s2, p2), dtype)
    _check(max_pool2d_select(x, g, k, s, p), naive_max_pool2d_select(x, g, k2, s2, p2), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=_ids)
def test_max_pool2d_adjoint(case, dtype):
    _hw, k, s, p = case
    x, gy, g = _pool_data(case, dtype)
    a = _dot(max_pool2d_backward(x, gy, k, s, p), g)
    b = _dot(gy, max_pool2d_select(x, g, k, s, p))
    _check_inner(a, b, float(np.abs(gy).sum() * np.abs(g).max()), dtype)


@pytest.mark.parametrize("case", POOL_FD_CASES, ids=_ids)
def test_max_pool2d_finite_differences(case):
    _hw, k, s, p = case
    x, gy, _ = _pool_data(case, np.float64)

    def loss():
        return float(np.sum(max_pool2d(x, k, s, p) * gy))

    np.testing.assert_allclose(
        max_pool2d_backward(x, gy, k, s, p), _fd_grad(loss, x), rtol=1e-6, atol=1e-7
    )


def test_max_pool2d_ties_go_to_first_element():
    # non-overlapping constant windows: everything to the window's top-left
    x = np.full((1, 2, 4, 6), 1.5)
    gy = np.arange(1.0, 13.0).reshape(1, 2, 2, 3)
    gx = max_pool2d_backward(x, gy, 2)
    expected = np.zeros_like(x)
    expected[:, :, ::2, ::2] = gy
    np.testing.assert_array_equal(gx, expected)
    np.testing.assert_array_equal(
        max_pool2d_select(x, np.arange(48.0).reshape(x.shape), 2),
        np.arange(48.0).reshape(x.shape)[:, :, ::2, ::2],
    )

    # partial tie inside a window: earliest (kh, kw) position in row-major order
    x = np.array([[[[1.0, 5.0], [5.0, 2.0]]]])
    np.testing.assert_array_equal(
        max_pool2d_backward(x, np.ones((1, 1, 1, 1)), 2), [[[[0.0, 1.0], [0.0, 0.0]]]]
    )

    # overlapping constant windows with padding: first *real* element, accumulated
    for dtype in DTYPES:
        x = np.full((2, 3, 5, 4), -0.25, dtype=dtype)
        gy = _std(_rng("ties", np.dtype(dtype).name), (2, 3, 5, 4), dtype)
        gx = max_pool2d_backward(x, gy, 3, 1, 1)
        _check(gx, naive_max_pool2d_backward(x, gy, (3, 3), (1, 1), (1, 1)), dtype)
        # window (0, 0) covers rows/cols -1..1 -> first real element is (0, 0)
        # window (i, j) interior starts at (i-1, j-1)
        assert gx[0, 0, 0, 0] == pytest.approx(
            gy[0, 0, 0, 0] + gy[0, 0, 0, 1] + gy[0, 0, 1, 0] + gy[0, 0, 1, 1], rel=1e-5
        )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kps", [(3, 1, 1), (2, 2, 1), (3, 2, 1), (2, 1, 1)])
def test_max_pool2d_never_selects_padding(kps, dtype):
    k, s, p = kps
    rng = _rng("neg", kps, np.dtype(dtype).name)
    x = (-(np.abs(rng.standard_normal((2, 3, 5, 4))) + 1.0)).astype(dtype)
    y = max_pool2d(x, k, s, p)
    assert np.all(y <= -1.0)  # a zero (or -inf) pad would have won / leaked
    _check(y, naive_max_pool2d(x, (k, k), (s, s), (p, p)), dtype)
    gy = _std(rng, y.shape, dtype)
    gx = max_pool2d_backward(x, gy, k, s, p)
    _check(gx, naive_max_pool2d_backward(x, gy, (k, k), (s, s), (p, p)), dtype)
    np.testing.assert_allclose(gx.sum(), gy.sum(), rtol=1e-5)  # no mass lost to pads
    assert np.all(np.isfinite(max_pool2d_select(x, x, k, s, p)))

    # even an all -inf input routes every gradient to a real (first) element
    x = np.full((1, 2, 4, 5), -np.inf, dtype=dtype)
    y = max_pool2d(x, k, s, p)
    assert np.all(y == -np.inf)
    gy = np.ones(y.shape, dtype=dtype)
    gx = max_pool2d_backward(x, gy, k, s, p)
    _check(gx, naive_max_pool2d_backward(x, gy, (k, k), (s, s), (p, p)), dtype)
    assert gx.sum() == gy.sum()


def test_max_pool2d_backward_untouched_is_zero():
    x = _std(_rng("untouched-max"), (1, 2, 7, 7), np.float64)
    gx = max_pool2d_backward(x, np.ones((1, 2, 2, 2)), 2, 3)
    for idx in (2, 5, 6):
        assert np.all(gx[:, :, idx, :] == 0) and np.all(gx[:, :, :, idx] == 0)
    assert gx.sum() == 8.0


# ---------------------------------------------------------------------------
# average pooling vs naive
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=_ids)
def test_avg_pool2d(case, dtype):
    _hw, k, s, p = case
    x, _gy, _ = _pool_data(case, dtype)
    _check(avg_pool2d(x, k, s, p), naive_avg_pool2d(x, _p2(k), _p2(s), _p2(p)), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=_ids)
def test_avg_pool2d_backward(case, dtype):
    hw, k, s, p = case
    _x, gy, _ = _pool_data(case, dtype)
    expected = naive_avg_pool2d_backward(gy, hw, _p2(k), _p2(s), _p2(p))
    _check(avg_pool2d_backward(gy, hw, k, s, p), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=_ids)
def test_avg_pool2d_adjoint(case, dtype):
    hw, k, s, p = case
    x, gy, _ = _pool_data(case, dtype)
    a = _dot(avg_pool2d(x, k, s, p), gy)
    b = _dot(x, avg_pool2d_backward(gy, hw, k, s, p))
    _check_inner(a, b, float(np.abs(x).sum() * np.abs(gy).max()), dtype)


@pytest.mark.parametrize("case", POOL_FD_CASES, ids=_ids)
def test_avg_pool2d_finite_differences(case):
    hw, k, s, p = case
    x, gy, _ = _pool_data(case, np.float64)

    def loss():
        return float(np.sum(avg_pool2d(x, k, s, p) * gy))

    np.testing.assert_allclose(
        avg_pool2d_backward(gy, hw, k, s, p), _fd_grad(loss, x), rtol=1e-6, atol=1e-7
    )


def test_avg_pool2d_counts_padding():
    x = np.ones((1, 1, 3, 4))
    y = avg_pool2d(x, 3, 1, 1)
    expected = np.array([[4, 6, 6, 4], [6, 9, 9, 6], [4, 6, 6, 4]], dtype=np.float64) / 9.0
    np.testing.assert_allclose(y[0, 0], expected, rtol=1e-15)
    gx = avg_pool2d_backward(np.ones((1, 1, 3, 4)), (3, 4), 3, 1, 1)
    np.testing.assert_allclose(gx[0, 0], expected, rtol=1e-15)  # symmetric stencil


def test_avg_pool2d_backward_untouched_is_zero():
    gx = avg_pool2d_backward(np.ones((1, 2, 2, 2)), (7, 7), 2, 3)
    for idx in (2, 5, 6):
        assert np.all(gx[:, :, idx, :] == 0) and np.all(gx[:, :, :, idx] == 0)
    np.testing.assert_allclose(gx.sum(), 8.0)
