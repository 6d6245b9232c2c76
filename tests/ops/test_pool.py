"""graphc/ops/pool.py: max_pool2d and avg_pool2d (PyTorch semantics) and their backward
ops as graph ops (max_pool2d_backward, max_pool2d_select, avg_pool2d_backward).

Cases (``gradcheck.case``): the formulas gather each window explicitly (max pooling
pads with -inf and routes to the window's first maximum, NumPy's ``argmax`` order;
average pooling counts padded zeros); the harness checks every element forward, the
static shape with the batch axis ``None``, finite differences on the NumPy backend
(distinct data: no ties) and C against NumPy in one compiled fetch set. The tie and
NaN cases put ties/NaNs in the windows on purpose and give the routing as
``grad_ref``. The NumPy references are checked against naive loops in test_windows.py.
"""

import numpy as np
import pytest
from graphc_tests_ops_gradcheck import In, case, quick_on_c

import graphc as gc
from graphc.ir.graph import make
from graphc.ops.pool import AvgPool2DBackward, MaxPool2DBackward, MaxPool2DSelect


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def params(k, s, p):
    k = pair(k)
    return k, (k if s is None else pair(s)), pair(p)


def windows(x, k, s, p, fill):
    """(N, C, OH, OW, KH*KW) windows of ``x`` padded with ``fill``, and the padded shape."""
    (kh, kw), (sh, sw), (ph, pw) = params(k, s, p)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    oh, ow = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    win = np.empty(x.shape[:2] + (oh, ow, kh * kw))
    for i in range(oh):
        for j in range(ow):
            win[:, :, i, j] = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(*x.shape[:2], -1)
    return win, xp.shape


def scatter(cols, x_shape, k, s, p):
    """Adjoint of :func:`windows` (without the fill): add each window value back, crop."""
    (kh, kw), (sh, sw), (ph, pw) = params(k, s, p)
    gxp = np.zeros(x_shape[:2] + (x_shape[2] + 2 * ph, x_shape[3] + 2 * pw))
    for i in range(cols.shape[2]):
        for j in range(cols.shape[3]):
            gxp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += cols[:, :, i, j].reshape(
                *x_shape[:2], kh, kw)
    return gxp[:, :, ph:ph + x_shape[2], pw:pw + x_shape[3]]


def np_max_pool(x, k, s, p):
    return windows(x, k, s, p, -np.inf)[0].max(-1)  # NaN propagates


def first_max(x, k, s, p):
    """One-hot (over each window) of its first maximum; a NaN counts as the maximum."""
    win = windows(x, k, s, p, -np.inf)[0]
    return np.argmax(win, axis=-1)[..., None] == np.arange(win.shape[-1])


def np_max_pool_backward(x, gy, k, s, p):
    return scatter(first_max(x, k, s, p) * gy[..., None], x.shape, k, s, p)


def np_max_pool_select(x, v, k, s, p):
    return (first_max(x, k, s, p) * windows(v, k, s, p, 0.0)[0]).sum(-1)


def np_avg_pool(x, k, s, p):
    return windows(x, k, s, p, 0.0)[0].mean(-1)


def np_avg_pool_backward(gy, x_shape, k, s, p):
    (kh, kw), _, _ = params(k, s, p)
    return scatter(np.repeat(gy[..., None] / (kh * kw), kh * kw, axis=-1), x_shape, k, s, p)


CONFIGS = {  # name -> ((C, H, W), kernel, stride, padding)
    "2x2": ((3, 6, 6), 2, None, 0),
    "3x3 s2 p1": ((2, 7, 5), 3, 2, 1),
    "2x3 s1 p(1,1)": ((2, 5, 6), (2, 3), 1, (1, 1)),
    "3x2 s(2,1) floor": ((2, 6, 5), (3, 2), (2, 1), 0),
}


def attrs(k, s, p, **more):
    k, s, p = params(k, s, p)
    return {"kernel": k, "stride": s, "padding": p, **more}


def out_shape(chw, k, s, p):
    (kh, kw), (sh, sw), (ph, pw) = params(k, s, p)
    return (None, chw[0], (chw[1] + 2 * ph - kh) // sh + 1, (chw[2] + 2 * pw - kw) // sw + 1)


def pool_cases(name, chw, k, s, p):
    x, gy = In((None, *chw), kind="distinct"), In(out_shape(chw, k, s, p))
    return [
        case(f"max_pool2d {name}", lambda t: gc.max_pool2d(t, k, s, p), lambda a: np_max_pool(a, k, s, p),
             x, norm=True),
        case(f"avg_pool2d {name}", lambda t: gc.avg_pool2d(t, k, s, p), lambda a: np_avg_pool(a, k, s, p),
             In((None, *chw)), norm=True),
        # the backward ops, with their own gradients checked (the data's is zero almost everywhere)
        case(f"max_pool2d_backward {name}", lambda t, g: make(MaxPool2DBackward, [t, g], attrs(k, s, p)),
             lambda a, g: np_max_pool_backward(a, g, k, s, p), x, gy, norm=True),
        case(f"max_pool2d_select {name}", lambda t, v: make(MaxPool2DSelect, [t, v], attrs(k, s, p)),
             lambda a, v: np_max_pool_select(a, v, k, s, p), x, In((None, *chw)), norm=True),
        case(f"avg_pool2d_backward {name}",
             lambda g: make(AvgPool2DBackward, [g], attrs(k, s, p, input_hw=chw[1:])),
             lambda g: np_avg_pool_backward(g, (g.shape[0], *chw), k, s, p), gy, norm=True),
    ]


TIES = In((None, 2, 4, 5), 0, 3, kind="int")  # values 0, 1, 2: ties in most windows
CASES = [c for name, config in CONFIGS.items() for c in pool_cases(name, *config)] + [
    case("max_pool2d ties: first maximum, overlapping windows",
         lambda t: gc.max_pool2d(t, 2, stride=1), lambda a: np_max_pool(a, 2, 1, 0), TIES, norm=True,
         grad_ref=lambda a, r: [np_max_pool_backward(a, r, 2, 1, 0)]),
    case("max_pool2d ties, padded", lambda t: gc.max_pool2d(t, 3, 2, 1), lambda a: np_max_pool(a, 3, 2, 1),
         TIES, norm=True, grad_ref=lambda a, r: [np_max_pool_backward(a, r, 3, 2, 1)]),
    case("max_pool2d all negative, padded", lambda t: gc.max_pool2d(t, 3, 1, 1),
         lambda a: np_max_pool(a, 3, 1, 1), In((None, 2, 4, 3), -3, -1, kind="distinct"), norm=True),
    case("max_pool2d NaN", lambda t: gc.max_pool2d(t, 2, 1), lambda a: np_max_pool(a, 2, 1, 0),
         In((None, 2, 4, 5), kind="nan"), norm=True,
         grad_ref=lambda a, r: [np_max_pool_backward(a, r, 2, 1, 0)]),
    case("max_pool2d''", lambda t: gc.grad(gc.sum(gc.square(gc.max_pool2d(t, 3, 2, 1))), t),
         lambda a: np_max_pool_backward(a, 2 * np_max_pool(a, 3, 2, 1), 3, 2, 1),
         In((None, 2, 5, 4), kind="distinct"), norm=True),
    case("avg_pool2d''", lambda t: gc.grad(gc.sum(gc.square(gc.avg_pool2d(t, 3, 2, 1))), t),
         lambda a: np_avg_pool_backward(2 * np_avg_pool(a, 3, 2, 1), a.shape, 3, 2, 1),
         In((None, 2, 5, 4)), norm=True),
]


CASES = quick_on_c(CASES, "max_pool2d 3x3 s2 p1", "avg_pool2d 3x3 s2 p1")


@pytest.mark.parametrize("case", CASES)
def test_op(case, backend, check_op):
    check_op(case, backend)
