"""matmul (2-D, batched with broadcasting, transposed operands), conv2d, max/avg pooling,
and the gradients of their backward ops (grad of grad)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc

DTYPES = ["float32", "float64"]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# -- independent NumPy formulas (direct loops over output positions) -------------------------

def np_conv2d(x, w, stride=1, padding=0):
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    n, c, h, wd = x.shape
    o, c2, kh, kw = w.shape
    assert c == c2
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    return out


def np_pool(x, kernel, stride=None, padding=0, mode="max"):
    (kh, kw) = _pair(kernel)
    (sh, sw) = _pair(kernel if stride is None else stride)
    (ph, pw) = _pair(padding)
    n, c, h, wd = x.shape
    fill = -np.inf if mode == "max" else 0.0
    xp = np.full((n, c, h + 2 * ph, wd + 2 * pw), fill)
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            out[:, :, i, j] = win.max(axis=(2, 3)) if mode == "max" else win.sum(
                axis=(2, 3)) / (kh * kw)
    return out


# -- matmul -----------------------------------------------------------------------------------

MATMUL_CASES = [  # (a shape, b shape, transpose_a, transpose_b)
    ((3, 4), (4, 5), False, False),
    ((4, 3), (4, 5), True, False),
    ((3, 4), (5, 4), False, True),
    ((4, 3), (5, 4), True, True),
    ((2, 3, 4), (4, 5), False, False),
    ((3, 4), (2, 4, 5), False, False),
    ((2, 1, 3, 4), (5, 4, 2), False, False),
    ((1, 3, 4), (6, 4, 2), False, False),
    ((2, 4, 3), (2, 5, 4), True, True),
    ((2, 1, 4, 3), (3, 4, 2), True, False),
    ((3, 2, 4), (1, 5, 4), False, True),
]


def _np_matmul(a, b, ta, tb):
    a = np.swapaxes(a, -1, -2) if ta else a
    b = np.swapaxes(b, -1, -2) if tb else b
    return np.matmul(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MATMUL_CASES, ids=str)
def test_matmul_forward(helpers, case, dtype):
    sa, sb, ta, tb = case
    rng = np.random.default_rng(0)
    a, b = helpers.rand(rng, sa, dtype), helpers.rand(rng, sb, dtype)
    out = helpers.run(lambda p, q: gc.matmul(p, q, transpose_a=ta, transpose_b=tb), a, b)
    expected = _np_matmul(a.astype(np.float64), b.astype(np.float64), ta, tb)
    helpers.assert_close(out, expected, dtype, norm=True, what=str(case))


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_operator_and_batch_none(helpers, dtype):
    rng = np.random.default_rng(1)
    for n in (1, 7):
        x, w = helpers.rand(rng, (n, 6), dtype), helpers.rand(rng, (6, 3), dtype)
        out = helpers.run(lambda p, q: p @ q, x, w, batch=[True, False])
        helpers.assert_close(out, x.astype(np.float64) @ w, dtype, norm=True)
        # batched: (N, 2, 6) @ (6, 3) and (N, 3, 6)^T-free (N, 6, 3)^T
        xb = helpers.rand(rng, (n, 2, 6), dtype)
        out = helpers.run(lambda p, q: p @ q, xb, w, batch=[True, False])
        helpers.assert_close(out, xb.astype(np.float64) @ w, dtype, norm=True)
        out = helpers.run(lambda p: gc.matmul(p, p, transpose_b=True), xb, batch=True)
        x64 = xb.astype(np.float64)
        helpers.assert_close(out, x64 @ np.swapaxes(x64, 1, 2), dtype, norm=True)
    assert out.shape == (7, 2, 2)


@pytest.mark.parametrize("case", MATMUL_CASES, ids=str)
def test_matmul_gradient(helpers, case):
    sa, sb, ta, tb = case
    rng = np.random.default_rng(2)
    helpers.gradcheck(lambda p, q: gc.matmul(p, q, transpose_a=ta, transpose_b=tb),
                      helpers.rand(rng, sa), helpers.rand(rng, sb))


@pytest.mark.parametrize("n", [1, 7])
def test_matmul_gradient_batch_none(helpers, n):
    rng = np.random.default_rng(3)
    x, w = helpers.rand(rng, (n, 4)), helpers.rand(rng, (4, 3))
    helpers.gradcheck(lambda p, q: p @ q, x, w, batch=[True, False])
    helpers.gradcheck(lambda p, q: gc.matmul(q, p, transpose_a=True, transpose_b=True),
                      x, helpers.rand(rng, (4, 3)), batch=[True, False])
    xb = helpers.rand(rng, (n, 2, 4))
    helpers.gradcheck(lambda p, q: p @ q, xb, w, batch=[True, False])
    helpers.gradcheck(lambda p: gc.matmul(p, p, transpose_a=True), xb, batch=True)


def test_matmul_second_order(helpers):
    rng = np.random.default_rng(4)
    x, w = helpers.rand(rng, (7, 4)), helpers.rand(rng, (4, 3))
    helpers.gradcheck(lambda p, q: gc.grad(gc.sum(gc.tanh(p @ q)), q), x, w, batch=[True, False])
    helpers.gradcheck(lambda p, q: gc.grad(gc.sum(gc.square(p @ q)), p), x, w)


# -- conv2d -----------------------------------------------------------------------------------

CONV_CASES = [  # (x shape, w shape, stride, padding)
    ((2, 3, 6, 5), (4, 3, 3, 3), 1, 0),
    ((2, 3, 6, 5), (4, 3, 3, 3), 1, 1),
    ((2, 2, 7, 7), (3, 2, 3, 3), 2, 1),
    ((1, 2, 6, 7), (2, 2, 2, 3), (2, 1), (1, 0)),
    ((2, 1, 5, 5), (2, 1, 1, 1), 1, 0),
    ((2, 2, 5, 6), (1, 2, 3, 2), 3, (0, 2)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d_forward(helpers, case, dtype):
    sx, sw, stride, padding = case
    rng = np.random.default_rng(5)
    x, w = helpers.rand(rng, sx, dtype), helpers.rand(rng, sw, dtype)
    out = helpers.run(lambda p, q: gc.conv2d(p, q, stride=stride, padding=padding), x, w)
    expected = np_conv2d(x.astype(np.float64), w.astype(np.float64), stride, padding)
    helpers.assert_close(out, expected, dtype, norm=True, what=str(case))


@pytest.mark.parametrize("n", [1, 7])
def test_conv2d_forward_batch_none(helpers, n):
    rng = np.random.default_rng(6)
    x, w = helpers.rand(rng, (n, 2, 5, 5), "float32"), helpers.rand(rng, (3, 2, 3, 3), "float32")
    out = helpers.run(lambda p, q: gc.conv2d(p, q, padding=1), x, w, batch=[True, False])
    helpers.assert_close(out, np_conv2d(x.astype(np.float64), w.astype(np.float64), 1, 1),
                         "float32", norm=True)


@st.composite
def conv_case(draw):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 1)), draw(st.integers(0, 1))
    h = draw(st.integers(max(1, kh - 2 * ph), 5))
    w = draw(st.integers(max(1, kw - 2 * pw), 5))
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    return (n, c, h, w), (o, c, kh, kw), (sh, sw), (ph, pw)


@settings(max_examples=15, deadline=None, database=None)
@given(case=conv_case(), seed=st.integers(0, 2**16))
def test_conv2d_gradient(helpers, case, seed):
    sx, sw, stride, padding = case
    rng = np.random.default_rng(seed)
    x, w = helpers.rand(rng, sx), helpers.rand(rng, sw)
    expected = np_conv2d(x, w, stride, padding)
    out = helpers.run(lambda p, q: gc.conv2d(p, q, stride=stride, padding=padding), x, w)
    helpers.assert_close(out, expected, norm=True)
    helpers.gradcheck(lambda p, q: gc.conv2d(p, q, stride=stride, padding=padding), x, w,
                      seed=seed)


@pytest.mark.parametrize("case", CONV_CASES[:4], ids=str)
def test_conv2d_gradient_cases(helpers, case):
    sx, sw, stride, padding = case
    rng = np.random.default_rng(7)
    helpers.gradcheck(lambda p, q: gc.conv2d(p, q, stride=stride, padding=padding),
                      helpers.rand(rng, (1,) + sx[1:]), helpers.rand(rng, sw), batch=[True, False])


@pytest.mark.parametrize("case", CONV_CASES[:4], ids=str)
def test_conv2d_backward_ops_gradients(helpers, case):
    """conv2d_backward_data / conv2d_backward_filter have FD-correct gradients."""
    sx, sw, stride, padding = case
    rng = np.random.default_rng(8)
    x, w = helpers.rand(rng, sx), helpers.rand(rng, sw)
    gy = helpers.rand(rng, np_conv2d(x, w, stride, padding).shape)

    def data(g_, w_, x_):  # = conv2d_backward_data(g_, w_), linear in g_ and w_
        return gc.grad(gc.sum(gc.conv2d(x_, w_, stride, padding) * g_), x_)

    def filt(x_, g_, w_):  # = conv2d_backward_filter(x_, g_), linear in x_ and g_
        return gc.grad(gc.sum(gc.conv2d(x_, w_, stride, padding) * g_), w_)

    _, g = helpers.gradcheck(data, gy, w, x, wrt=[0, 1])
    assert {"conv2d_backward_data", "conv2d_backward_filter", "conv2d"} <= _op_names(g)
    _, g = helpers.gradcheck(filt, x, gy, w, wrt=[0, 1])
    assert {"conv2d_backward_filter", "conv2d_backward_data", "conv2d"} <= _op_names(g)
    # a Hessian-vector product through a nonlinearity
    helpers.gradcheck(lambda p, q: gc.grad(gc.sum(gc.tanh(gc.conv2d(p, q, stride, padding))), q),
                      x, w)


def _op_names(g):
    return {n.op.name for n in g.nodes}


# -- pooling ----------------------------------------------------------------------------------

POOL_CASES = [  # (x shape, kernel, stride, padding)
    ((2, 3, 6, 6), 2, None, 0),
    ((2, 2, 7, 5), 3, 2, 1),
    ((1, 2, 5, 6), (2, 3), 1, (1, 1)),
    ((2, 1, 7, 7), 3, None, 1),
    ((2, 2, 6, 5), (3, 2), (2, 1), 0),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_pool_forward(helpers, case, mode, dtype):
    sx, kernel, stride, padding = case
    pool = gc.max_pool2d if mode == "max" else gc.avg_pool2d
    x = helpers.rand(np.random.default_rng(9), sx, dtype)
    out = helpers.run(lambda p: pool(p, kernel, stride=stride, padding=padding), x)
    expected = np_pool(x.astype(np.float64), kernel, stride, padding, mode)
    # max pooling selects elements: exact; average pooling is a reduction
    helpers.assert_close(out, expected, dtype, norm=mode == "avg", what=f"{mode} {case}")


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("n", [1, 7])
def test_pool_forward_batch_none(helpers, mode, n):
    pool = gc.max_pool2d if mode == "max" else gc.avg_pool2d
    x = helpers.rand(np.random.default_rng(10), (n, 2, 5, 5), "float32")
    out = helpers.run(lambda p: pool(p, 3, stride=2, padding=1), x, batch=True)
    helpers.assert_close(out, np_pool(x.astype(np.float64), 3, 2, 1, mode), "float32",
                         norm=mode == "avg")


def test_pool_padding_semantics(helpers):
    """Max pooling pads with -inf (all-negative input stays negative); average pooling
    divides by the full window, padded zeros counted."""
    x = -np.ones((1, 1, 2, 2))
    out = helpers.run(lambda p: gc.max_pool2d(p, 3, stride=1, padding=1), x)
    np.testing.assert_array_equal(out, -np.ones((1, 1, 2, 2)))
    out = helpers.run(lambda p: gc.avg_pool2d(p, 3, stride=1, padding=1), x)
    np.testing.assert_allclose(out, np.full((1, 1, 2, 2), -4 / 9), rtol=1e-12)
    assert helpers.run(lambda p: gc.max_pool2d(p, 2), np.zeros((1, 1, 5, 5))).shape == (
        1, 1, 2, 2)  # floor((5 - 2) / 2) + 1


def test_max_pool_gradient_goes_to_first_maximum(helpers):
    x = np.array([[[[1.0, 1.0, 0.0, 2.0],
                    [1.0, 0.0, 2.0, 2.0]]]])
    out = helpers.run(lambda p: gc.grad(gc.sum(gc.max_pool2d(p, 2)), p), x)
    np.testing.assert_array_equal(out, [[[[1, 0, 0, 1], [0, 0, 0, 0]]]])
    # overlapping windows accumulate at a shared maximum
    x = np.array([[[[0.0, 5.0, 0.0], [0.0, 0.0, 0.0]]]])
    out = helpers.run(lambda p: gc.grad(gc.sum(gc.max_pool2d(p, 2, stride=1)), p), x)
    np.testing.assert_array_equal(out, [[[[0, 2, 0], [0, 0, 0]]]])


@st.composite
def pool_case(draw):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 6))
    w = draw(st.integers(max(1, kw - 2 * pw), 6))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 2)), h, w), (kh, kw), stride, (ph, pw)


@settings(max_examples=15, deadline=None, database=None)
@given(case=pool_case(), mode=st.sampled_from(["max", "avg"]), seed=st.integers(0, 2**16))
def test_pool_gradient(helpers, case, mode, seed):
    sx, kernel, stride, padding = case
    pool = gc.max_pool2d if mode == "max" else gc.avg_pool2d
    x = helpers.distinct(np.random.default_rng(seed), sx)  # no ties inside a window
    out = helpers.run(lambda p: pool(p, kernel, stride=stride, padding=padding), x)
    helpers.assert_close(out, np_pool(x, kernel, stride, padding, mode), norm=True)
    helpers.gradcheck(lambda p: pool(p, kernel, stride=stride, padding=padding), x, seed=seed)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool_gradient_batch_none(helpers, mode):
    pool = gc.max_pool2d if mode == "max" else gc.avg_pool2d
    for n in (1, 7):
        x = helpers.distinct(np.random.default_rng(n), (n, 2, 5, 4))
        helpers.gradcheck(lambda p: pool(p, 3, stride=2, padding=1), x, batch=True)


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_max_pool_backward_and_select_gradients(helpers, case):
    """max_pool2d_backward (gradient wrt gy: max_pool2d_select) and max_pool2d_select
    (gradient wrt its second input: max_pool2d_backward), checked by FD."""
    sx, kernel, stride, padding = case
    rng = np.random.default_rng(11)
    x = helpers.distinct(rng, sx)
    gy = helpers.rand(rng, np_pool(x, kernel, stride, padding).shape)
    v = helpers.rand(rng, sx)

    def backward(x_, g_):  # max_pool2d_backward(x_, g_)
        return gc.grad(gc.sum(gc.max_pool2d(x_, kernel, stride, padding) * g_), x_)

    def select(x_, g_, v_):  # max_pool2d_select(x_, v_)
        return gc.grad(gc.sum(backward(x_, g_) * v_), g_)

    _, g = helpers.gradcheck(backward, x, gy)  # wrt x: zero almost everywhere
    assert {"max_pool2d_backward", "max_pool2d_select"} <= _op_names(g)
    _, g = helpers.gradcheck(select, x, gy, v, wrt=[0, 2])
    assert _op_names(g) >= {"max_pool2d_select", "max_pool2d_backward"}
    # select picks v at each window's first maximum
    sel = helpers.run(select, x, gy, v)
    np.testing.assert_allclose(sel, _np_select(x, v, kernel, stride, padding), rtol=1e-12)


def _np_select(x, v, kernel, stride, padding):
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(kernel if stride is None else stride), \
        _pair(padding)
    n, c, h, w = x.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = np.zeros((n, c, oh, ow))
    for a in range(n):
        for b in range(c):
            for i in range(oh):
                for j in range(ow):
                    best = None
                    for di in range(kh):
                        for dj in range(kw):
                            r, s = i * sh + di - ph, j * sw + dj - pw
                            if 0 <= r < h and 0 <= s < w and (best is None or x[a, b, r, s] > best):
                                best, out[a, b, i, j] = x[a, b, r, s], v[a, b, r, s]
    return out


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_avg_pool_backward_gradient(helpers, case):
    sx, kernel, stride, padding = case
    rng = np.random.default_rng(12)
    x = helpers.rand(rng, sx)
    gy = helpers.rand(rng, np_pool(x, kernel, stride, padding, "avg").shape)

    def backward(g_, x_):  # avg_pool2d_backward(g_)
        return gc.grad(gc.sum(gc.avg_pool2d(x_, kernel, stride, padding) * g_), x_)

    _, g = helpers.gradcheck(backward, gy, x)
    assert "avg_pool2d_backward" in _op_names(g)
    helpers.gradcheck(lambda p: gc.grad(gc.sum(gc.square(
        gc.avg_pool2d(p, kernel, stride, padding))), p), x)


def test_cnn_block_second_order(helpers):
    """grad of grad through conv -> relu -> max pool -> avg pool -> matmul."""
    rng = np.random.default_rng(13)
    x = helpers.rand(rng, (2, 2, 6, 6))
    w = helpers.rand(rng, (3, 2, 3, 3)) * 0.5
    v = helpers.rand(rng, (3, 2))

    def net(x_, w_, v_):
        h = gc.tanh(gc.conv2d(x_, w_, padding=1))
        h = gc.avg_pool2d(gc.max_pool2d(h, 2), 3, stride=1, padding=1)
        y = gc.flatten(gc.avg_pool2d(h, 3)) @ v_
        return gc.grad(gc.sum(gc.softplus(y)), w_)

    helpers.gradcheck(net, x, w, v, rtol=1e-5, atol=1e-6)
