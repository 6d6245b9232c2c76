"""graphc/ops/windows.py and the NumPy references of graphc/ops/conv.py and
graphc/ops/pool.py (``*_reference``) against independent naive loops.

The naive definitions loop over every index (n, o, c, oh, ow, kh, kw) in float64. The
references are compared with them on a small set of configurations chosen to find bugs:
strides, paddings (also more than half the kernel for conv), non-square kernels,
strides and paddings, outputs that leave input rows untouched (the floor), 1x1 windows,
kernels as large as the (padded) input, size-1 axes, N/C/O of 1 and more, in float32
and float64; the adjoint identities (<conv(x, w), g> = <x, conv_bwd_data(g, w)> =
<w, conv_bwd_filter(x, g)>, and the pooling ones) tie the backward references to the
forward ones. Targeted tests cover ties and NaNs in max pooling (the first maximum
wins; a NaN is the maximum), padding never being selected, untouched rows getting
zero gradient, average pooling counting padded zeros, and argument validation.
The graph ops built on these references are tested in test_conv.py and test_pool.py.
"""

from __future__ import annotations

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
from graphc.ops.windows import output_hw, pair

DTYPES = [np.float64, np.float32]
TOL = {
    np.float64: {"rtol": 1e-10, "atol": 1e-12},
    np.float32: {"rtol": 1e-5, "atol": 1e-5},
}


# ---------------------------------------------------------------------------
# naive definitions: explicit loops over every index, in float64
# ---------------------------------------------------------------------------
def _p2(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def naive_out_hw(h, w, k, s, p):
    return (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1


def taps(hw, k, s, p):
    """Every ``(i, j, a, b, r, q)``: output ``(i, j)`` reads kernel offset ``(a, b)`` at input
    row ``r``, column ``q`` -- real (unpadded) positions only, offsets in row-major order."""
    oh, ow = naive_out_hw(*hw, k, s, p)
    for i in range(oh):
        for j in range(ow):
            for a in range(k[0]):
                for b in range(k[1]):
                    r, q = i * s[0] + a - p[0], j * s[1] + b - p[1]
                    if 0 <= r < hw[0] and 0 <= q < hw[1]:
                        yield i, j, a, b, r, q


def naive_conv2d(x, w, s, p):
    (n_, c_, *hw), (o_, _, *k) = x.shape, w.shape
    y = np.zeros((n_, o_, *naive_out_hw(*hw, k, s, p)))
    for i, j, a, b, r, q in taps(hw, k, s, p):
        for n, o, c in np.ndindex(n_, o_, c_):
            y[n, o, i, j] += float(x[n, c, r, q]) * float(w[o, c, a, b])
    return y


def naive_conv2d_backward_data(gy, w, hw, s, p):
    (n_, o_, _, _), (_, c_, *k) = gy.shape, w.shape
    gx = np.zeros((n_, c_, *hw))
    for i, j, a, b, r, q in taps(hw, k, s, p):
        for n, o, c in np.ndindex(n_, o_, c_):
            gx[n, c, r, q] += float(gy[n, o, i, j]) * float(w[o, c, a, b])
    return gx


def naive_conv2d_backward_filter(x, gy, k, s, p):
    (n_, c_, *hw), o_ = x.shape, gy.shape[1]
    gw = np.zeros((o_, c_, *k))
    for i, j, a, b, r, q in taps(hw, k, s, p):
        for n, o, c in np.ndindex(n_, o_, c_):
            gw[o, c, a, b] += float(gy[n, o, i, j]) * float(x[n, c, r, q])
    return gw


def naive_max_windows(x, k, s, p):
    """Per window: the max value and (row, col) of the first max over real positions
    (row-major (kh, kw) order; padding is -inf, never selected); a NaN is the maximum
    (the first NaN)."""
    n_, c_, *hw = x.shape
    val = np.zeros((n_, c_, *naive_out_hw(*hw, k, s, p)))
    pos = np.zeros(val.shape + (2,), dtype=int)
    for n, c in np.ndindex(n_, c_):
        best = {}
        for i, j, _, _, r, q in taps(hw, k, s, p):
            v, old = float(x[n, c, r, q]), best.get((i, j))
            if old is None or (not np.isnan(old[0]) and (np.isnan(v) or v > old[0])):
                best[i, j] = v, (r, q)
        for (i, j), (v, where) in best.items():
            val[n, c, i, j], pos[n, c, i, j] = v, where
    return val, pos


def naive_max_pool2d(x, k, s, p):
    return naive_max_windows(x, k, s, p)[0]


def naive_max_pool2d_backward(x, gy, k, s, p):
    pos = naive_max_windows(x, k, s, p)[1]
    gx = np.zeros(x.shape)
    for n, c, i, j in np.ndindex(gy.shape):
        gx[(n, c, *pos[n, c, i, j])] += gy[n, c, i, j]
    return gx


def naive_max_pool2d_select(x, g, k, s, p):
    pos = naive_max_windows(x, k, s, p)[1]
    out = np.zeros(pos.shape[:4])
    for n, c, i, j in np.ndindex(out.shape):
        out[n, c, i, j] = g[(n, c, *pos[n, c, i, j])]
    return out


def naive_avg_pool2d(x, k, s, p):
    n_, c_, *hw = x.shape
    y = np.zeros((n_, c_, *naive_out_hw(*hw, k, s, p)))
    for i, j, _, _, r, q in taps(hw, k, s, p):
        for n, c in np.ndindex(n_, c_):
            y[n, c, i, j] += float(x[n, c, r, q]) / (k[0] * k[1])
    return y


def naive_avg_pool2d_backward(gy, hw, k, s, p):
    n_, c_ = gy.shape[:2]
    gx = np.zeros((n_, c_, *hw))
    for i, j, _, _, r, q in taps(hw, k, s, p):
        for n, c in np.ndindex(n_, c_):
            gx[n, c, r, q] += float(gy[n, c, i, j]) / (k[0] * k[1])
    return gx


# ---------------------------------------------------------------------------
# configurations
# ---------------------------------------------------------------------------
CONV_CONFIGS = [  # ((N, C, O), (H, W), kernel, stride, padding)
    ((2, 3, 2), (5, 5), 3, 1, 1),  # "same" padding
    ((2, 3, 2), (7, 5), (3, 2), (2, 1), (1, 0)),  # non-square kernel, stride, padding
    ((2, 3, 2), (7, 7), 2, 3, 0),  # floor: rows/cols 2, 5, 6 untouched
    ((1, 2, 3), (6, 7), 3, 2, 2),  # padding > kernel // 2, and the floor
    ((2, 3, 2), (4, 4), 1, 1, 0),  # 1x1
    ((2, 2, 3), (5, 3), 1, 2, 1),  # 1x1 strided and padded: border outputs read only padding
    ((1, 1, 1), (1, 7), (1, 3), (1, 2), (0, 1)),  # a size-1 axis, N = C = O = 1
    ((2, 3, 2), (3, 7), 3, 3, 0),  # the kernel spans the height: one output row
    ((2, 2, 2), (2, 2), 3, 1, 1),  # a kernel larger than the input, padded to fit
]
POOL_CONFIGS = [  # ((N, C), (H, W), kernel, stride, padding); padding <= kernel // 2
    ((2, 3), (6, 6), 2, None, 0),  # stride defaults to the kernel
    ((2, 3), (7, 5), 3, 2, 1),  # padded, overlapping windows
    ((1, 2), (5, 6), (2, 3), 1, (1, 1)),  # non-square, stride 1
    ((2, 2), (7, 7), 2, 3, 0),  # floor: untouched rows/cols
    ((2, 3), (7, 5), (3, 2), (2, 1), (1, 0)),  # non-square everything
    ((1, 1), (1, 7), (1, 3), (1, 2), (0, 1)),  # a size-1 axis
    ((2, 2), (4, 4), 1, 1, 0),  # 1x1 windows
]


def _ids(config):
    return "-".join(str(v).replace(" ", "") for v in config)


def _rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _std(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _check(actual, expected, dtype, what):
    assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    np.testing.assert_allclose(actual, expected, **TOL[dtype], err_msg=what)


def _check_inner(a, b, scale, dtype, what):
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert abs(a - b) <= tol * scale, f"{what}: {a} != {b}"


def _dot(a, b):
    return float(np.sum(a.astype(np.float64) * b.astype(np.float64)))


# ---------------------------------------------------------------------------
# convolution
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", CONV_CONFIGS, ids=_ids)
def test_conv2d_references(config, dtype):
    """Forward, backward-data and backward-filter against the naive loops, and the
    adjoint identities between them."""
    (n, c, o), hw, k, s, p = config
    k2, s2, p2 = _p2(k), _p2(s), _p2(p)
    rng = _rng("conv", config, np.dtype(dtype).name)
    x, w = _std(rng, (n, c, *hw), dtype), _std(rng, (o, c, *k2), dtype)
    gy = _std(rng, (n, o, *naive_out_hw(*hw, k2, s2, p2)), dtype)
    y, gx = conv2d(x, w, s, p), conv2d_backward_data(gy, w, hw, s, p)
    gw = conv2d_backward_filter(x, gy, k, s, p)
    _check(y, naive_conv2d(x, w, s2, p2), dtype, "conv2d")
    _check(gx, naive_conv2d_backward_data(gy, w, hw, s2, p2), dtype, "conv2d_backward_data")
    _check(gw, naive_conv2d_backward_filter(x, gy, k2, s2, p2), dtype, "conv2d_backward_filter")
    scale = float(np.abs(x).sum() * np.abs(w).sum() * np.abs(gy).sum())
    _check_inner(_dot(y, gy), _dot(x, gx), scale, dtype, "<conv(x, w), g> = <x, bwd_data(g, w)>")
    _check_inner(_dot(y, gy), _dot(w, gw), scale, dtype, "<conv(x, w), g> = <w, bwd_filter(x, g)>")


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


# ---------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------
def _pool_data(config, dtype):
    (n, c), hw, k, s, p = config
    rng = _rng("pool", config, np.dtype(dtype).name)
    x = _std(rng, (n, c, *hw), dtype)
    gy = _std(rng, (n, c, *output_hw(*hw, k, k if s is None else s, p)), dtype)
    return x, gy, _std(rng, x.shape, dtype)


def _naive_params(config):
    _, _, k, s, p = config
    return _p2(k), _p2(k if s is None else s), _p2(p)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", POOL_CONFIGS, ids=_ids)
def test_max_pool2d_references(config, dtype):
    """Forward, backward and select against the naive loops; select(x, x) = forward;
    <backward(x, gy), g> = <gy, select(x, g)>."""
    _, _, k, s, p = config
    x, gy, g = _pool_data(config, dtype)
    kk, ss, pp = _naive_params(config)
    y, gx, sel = max_pool2d(x, k, s, p), max_pool2d_backward(x, gy, k, s, p), max_pool2d_select(x, g, k, s, p)
    _check(y, naive_max_pool2d(x, kk, ss, pp), dtype, "max_pool2d")
    _check(gx, naive_max_pool2d_backward(x, gy, kk, ss, pp), dtype, "max_pool2d_backward")
    _check(sel, naive_max_pool2d_select(x, g, kk, ss, pp), dtype, "max_pool2d_select")
    _check(max_pool2d_select(x, x, k, s, p), y.astype(np.float64), dtype, "max_pool2d_select(x, x)")
    _check_inner(_dot(gx, g), _dot(gy, sel), float(np.abs(gy).sum() * np.abs(g).max()), dtype,
                 "<max_pool2d_backward(x, gy), g> = <gy, max_pool2d_select(x, g)>")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", POOL_CONFIGS, ids=_ids)
def test_avg_pool2d_references(config, dtype):
    """Forward and backward against the naive loops; <avg(x), gy> = <x, backward(gy)>."""
    _, hw, k, s, p = config
    x, gy, _ = _pool_data(config, dtype)
    kk, ss, pp = _naive_params(config)
    y, gx = avg_pool2d(x, k, s, p), avg_pool2d_backward(gy, hw, k, s, p)
    _check(y, naive_avg_pool2d(x, kk, ss, pp), dtype, "avg_pool2d")
    _check(gx, naive_avg_pool2d_backward(gy, hw, kk, ss, pp), dtype, "avg_pool2d_backward")
    _check_inner(_dot(y, gy), _dot(x, gx), float(np.abs(x).sum() * np.abs(gy).max()), dtype,
                 "<avg_pool2d(x), gy> = <x, avg_pool2d_backward(gy)>")


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
        _check(gx, naive_max_pool2d_backward(x, gy, (3, 3), (1, 1), (1, 1)), dtype, "ties")
        # window (0, 0) covers rows/cols -1..1 -> first real element is (0, 0)
        assert gx[0, 0, 0, 0] == pytest.approx(
            gy[0, 0, 0, 0] + gy[0, 0, 0, 1] + gy[0, 0, 1, 0] + gy[0, 0, 1, 1], rel=1e-5
        )


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_nan_is_the_maximum(dtype):
    """A window with a NaN gives NaN; its gradient and select go to the first NaN."""
    rng = _rng("nan", np.dtype(dtype).name)
    x = _std(rng, (2, 3, 5, 6), dtype)
    x[rng.uniform(size=x.shape) < 0.15] = np.nan
    x[0, 0, 0, :2] = np.nan  # two NaNs in one window: the first one wins
    gy = _std(rng, (2, 3, 3, 3), dtype)
    g = _std(rng, x.shape, dtype)
    for k, s, p in ((2, 2, 0), (3, 2, 1)):
        y = max_pool2d(x, k, s, p)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(naive_max_pool2d(x, (k, k), (s, s), (p, p))))
        assert np.isnan(y).any() and not np.isnan(y).all()
        gy_ = gy[:, :, :y.shape[2], :y.shape[3]]
        _check(max_pool2d_backward(x, gy_, k, s, p),
               naive_max_pool2d_backward(x, gy_, (k, k), (s, s), (p, p)), dtype, f"backward k={k}")
        _check(max_pool2d_select(x, g, k, s, p), naive_max_pool2d_select(x, g, (k, k), (s, s), (p, p)),
               dtype, f"select k={k}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kps", [(3, 1, 1), (2, 2, 1)])
def test_max_pool2d_never_selects_padding(kps, dtype):
    k, s, p = kps
    rng = _rng("neg", kps, np.dtype(dtype).name)
    x = (-(np.abs(rng.standard_normal((2, 3, 5, 4))) + 1.0)).astype(dtype)
    y = max_pool2d(x, k, s, p)
    assert np.all(y <= -1.0)  # a zero (or -inf) pad would have won / leaked
    _check(y, naive_max_pool2d(x, (k, k), (s, s), (p, p)), dtype, "max_pool2d")
    gy = _std(rng, y.shape, dtype)
    gx = max_pool2d_backward(x, gy, k, s, p)
    _check(gx, naive_max_pool2d_backward(x, gy, (k, k), (s, s), (p, p)), dtype, "backward")
    np.testing.assert_allclose(gx.sum(), gy.sum(), rtol=1e-5)  # no mass lost to pads
    assert np.all(np.isfinite(max_pool2d_select(x, x, k, s, p)))

    # even an all -inf input routes every gradient to a real (first) element
    x = np.full((1, 2, 4, 5), -np.inf, dtype=dtype)
    y = max_pool2d(x, k, s, p)
    assert np.all(y == -np.inf)
    gy = np.ones(y.shape, dtype=dtype)
    gx = max_pool2d_backward(x, gy, k, s, p)
    _check(gx, naive_max_pool2d_backward(x, gy, (k, k), (s, s), (p, p)), dtype, "backward, all -inf")
    assert gx.sum() == gy.sum()


def test_max_pool2d_backward_untouched_is_zero():
    x = _std(_rng("untouched-max"), (1, 2, 7, 7), np.float64)
    gx = max_pool2d_backward(x, np.ones((1, 2, 2, 2)), 2, 3)
    for idx in (2, 5, 6):
        assert np.all(gx[:, :, idx, :] == 0) and np.all(gx[:, :, :, idx] == 0)
    assert gx.sum() == 8.0


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


def test_pool_stride_defaults_to_kernel():
    x = _std(_rng("default-stride"), (2, 3, 7, 5), np.float64)
    np.testing.assert_array_equal(max_pool2d(x, 2), max_pool2d(x, 2, 2))
    np.testing.assert_array_equal(avg_pool2d(x, 3, None, 1), avg_pool2d(x, 3, 3, 1))
    assert max_pool2d(x, 2).shape == (2, 3, 3, 2)


# ---------------------------------------------------------------------------
# windows.py helpers and argument validation
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
    with pytest.raises(TypeError):
        pair(True)


def test_output_hw():
    assert output_hw(7, 3, 3, 1, 0) == (5, 1)
    assert output_hw(7, 5, 2, 3, 0) == (2, 2)  # floor
    assert output_hw(7, 5, (3, 2), (2, 1), (1, 0)) == (4, 4)
    assert output_hw(1, 1, 3, 2, 1) == (1, 1)
    for bad in ((2, 5, 3, 1, 0), (5, 5, 3, 0, 0), (5, 5, 0, 1, 0), (5, 5, 3, 1, -1)):
        with pytest.raises(ValueError):
            output_hw(*bad)


@pytest.mark.parametrize("hw,k,s,p", [((1, 7), 3, 1, 0), ((7, 3), (1, 5), 2, 0)])
def test_empty_output_raises(hw, k, s, p):
    x = np.ones((1, 1, *hw))
    with pytest.raises(ValueError):
        conv2d(x, np.ones((1, 1, *_p2(k))), s, p)
    with pytest.raises(ValueError):
        max_pool2d(x, k, s, p)
    with pytest.raises(ValueError):
        avg_pool2d(x, k, s, p)


def test_pool_padding_over_half_the_kernel_raises():
    hw, k, s, p = (7, 7), 3, 1, 2
    x = np.ones((1, 1, *hw))
    gy = np.ones((1, 1, *output_hw(*hw, k, s, p)))
    for f in (lambda: max_pool2d(x, k, s, p), lambda: max_pool2d_backward(x, gy, k, s, p),
              lambda: max_pool2d_select(x, x, k, s, p), lambda: avg_pool2d(x, k, s, p),
              lambda: avg_pool2d_backward(gy, hw, k, s, p)):
        with pytest.raises(ValueError):
            f()
