"""graphc/ops/reduce.py: sum, mean, max, logsumexp, argmax, cumsum, the element count,
broadcast_to.

Cases (``gradcheck.case``): an independent NumPy formula and input recipes each; the
harness checks every element forward (float32: 1e-4 relative to the norm, these are
reductions), the static shape/dtype for each batch size, and the gradient (finite
differences on the NumPy backend, C against NumPy in one compiled fetch set). Axes
cover None, ints, negative ints, tuples, keepdims and the batch axis (``mean`` over it
counts N at run time: the ``count`` op). ``max`` gets distinct data, except in the
tie case, whose gradient (tied maxima share it) is given as ``grad_ref``.
"""

import numpy as np
import pytest
from graphc_tests_ops_gradcheck import In, case, quick_on_c

import graphc as gc


def np_logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def np_softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


REDUCE = {"sum": (gc.sum, np.sum), "mean": (gc.mean, np.mean), "max": (gc.max, np.max),
          "logsumexp": (gc.logsumexp, np_logsumexp)}
#: (axis, keepdims) on a (N, 3, 4) input: all axes, one axis, a negative axis, a tuple
#: with the batch axis, the batch axis alone
AXES = [(None, False), (1, True), (-1, False), ((0, 2), False), (0, True)]


def reduce_case(name, axis, keepdims, shape=(None, 3, 4)):
    fn, ref = REDUCE[name]
    data = In(shape, kind="distinct") if name == "max" else In(shape)
    return case(f"{name} axis={axis}{' keepdims' if keepdims else ''} {shape}",
                lambda t: fn(t, axis=axis, keepdims=keepdims),
                lambda x: ref(x, axis=axis, keepdims=keepdims), data, norm=True)


CASES = [reduce_case(name, axis, keep) for name in REDUCE for axis, keep in AXES] + [
    # long rows: vector loops with remainders on the compiled backends
    reduce_case(name, 1, False, shape=(7, 33)) for name in REDUCE
] + [
    case("sum(square(x) * 0.5) prologue", lambda t: gc.sum(gc.square(t) * 0.5, axis=1),
         lambda x: np.sum(x * x * 0.5, axis=1), In((None, 33)), norm=True),
    case("max(exp(x)) prologue", lambda t: gc.max(gc.exp(t), axis=-1), lambda x: np.max(np.exp(x), -1),
         In((None, 5, 3), kind="distinct"), norm=True),
    case("logsumexp of large values", lambda t: gc.logsumexp(t, axis=1), lambda x: np_logsumexp(x, 1),
         In((None, 3), -1e4, 1e4), norm=True,
         grad_ref=lambda x, r: [np_softmax(x, 1) * r[:, None]]),
    case("max ties share", lambda t: gc.max(t, axis=1), lambda x: np.max(x, axis=1),
         In((None, 4), -1, 2, kind="int"), norm=True,  # 3 values in 4 columns: ties
         grad_ref=lambda x, r: [(x == x.max(1, keepdims=True)) / (x == x.max(1, keepdims=True)).sum(
             1, keepdims=True) * r[:, None]]),
    case("max propagates NaN", lambda t: [gc.max(t, axis=1), gc.max(t)], lambda x: [np.max(x, 1), np.max(x)],
         In((None, 5), kind="nan"), norm=True, grad=False),
    case("int64 sum and max", lambda t: [gc.sum(t, axis=0), gc.max(t, axis=1), gc.sum(t)],
         lambda a: [a.sum(0), a.max(1), a.sum()], In((None, 4), -100, 100, kind="int", dtype="int64")),
    case("bool sum", lambda t: [gc.sum(t), gc.sum(t, axis=1)],
         lambda b: [b.sum(dtype=np.int64), b.sum(1, dtype=np.int64)],
         In((None, 4), kind="bool", dtype="bool")),
    case("broadcast_to", gc.broadcast_like, lambda x, y: np.broadcast_to(x, y.shape),
         In((1, 4)), In((None, 3, 4), diff=False)),
]

# cumsum: running sums along a static axis, from the start or (reverse) from the end
CASES += [
    case("cumsum axis=-1", lambda t: gc.cumsum(t), lambda x: np.cumsum(x, -1), In((None, 6))),
    case("cumsum axis=1 reverse", lambda t: gc.cumsum(t, axis=1, reverse=True),
         lambda x: np.flip(np.cumsum(np.flip(x, 1), 1), 1), In((None, 5, 3))),
    case("cumsum axis=0 static, long", lambda t: gc.cumsum(t, axis=0), lambda x: np.cumsum(x, 0), In((33, 3)),
         norm=True),
    case("cumsum int64", lambda t: gc.cumsum(t, axis=1), lambda x: np.cumsum(x, 1),
         In((None, 4), -100, 100, kind="int", dtype="int64")),
]

# argmax: few distinct values, so ties (the first maximum wins) are everywhere
ARGMAX = [(None, False), (None, True), (0, False), (1, True), (-1, False)]
CASES += [
    case(f"argmax axis={axis}{' keepdims' if keep else ''}", lambda t, a=axis, k=keep: gc.argmax(t, a, k),
         lambda x, a=axis, k=keep: np.argmax(x, a, keepdims=k), In((None, 5), 0, 4, kind="int"))
    for axis, keep in ARGMAX
] + [
    case("argmax int64", lambda t: gc.argmax(t, axis=1), lambda x: np.argmax(x, 1),
         In((None, 5), 0, 4, kind="int", dtype="int64")),
]


# second order: [d/dx sum(r(tanh x, axis=1)^2)] for the smooth reductions
def _second(name, d_reduce):
    fn, ref = REDUCE[name]
    return case(f"{name}''", lambda t: gc.grad(gc.sum(gc.square(fn(gc.tanh(t), axis=1))), t),
                lambda x: 2 * ref(np.tanh(x), axis=1, keepdims=True) * d_reduce(np.tanh(x))
                * (1 - np.tanh(x) ** 2), In((None, 3)), norm=True)


CASES += [
    _second("sum", np.ones_like),
    _second("mean", lambda y: np.full_like(y, 1 / 3)),
    _second("logsumexp", lambda y: np_softmax(y, 1)),
]


CASES = quick_on_c(CASES, "sum axis=(0, 2) (None, 3, 4)", "mean axis=0 keepdims (None, 3, 4)",
                   "max axis=1 keepdims (None, 3, 4)", "logsumexp axis=-1 (None, 3, 4)",
                   "argmax axis=1 keepdims")


@pytest.mark.parametrize("case", CASES)
def test_op(case, backend, check_op):
    check_op(case, backend)


def test_logsumexp_of_equal_large_values():
    """Ties at large magnitude: m + log(k) in both dtypes; the gradient 1/k in float64 (in
    float32 it is exp(x - y) with y rounded at 1e4, about 5e-4 off, as in other libraries)."""
    for dtype, rtol in (("float64", 1e-12), ("float32", 1e-6)):
        with gc.Graph() as g:
            p = gc.placeholder((2, 3), dtype)
            y = gc.logsumexp(p, axis=1)
            gx = gc.grad(gc.sum(y), p)
        x = np.array([[1e4, 1e4, -1e4], [-1e4, -1e4, -1e4]], dtype)
        out, grad = gc.Session(g, backend="numpy").run([y, gx], {p: x})
        np.testing.assert_allclose(out, [1e4 + np.log(2), -1e4 + np.log(3)], rtol=rtol)
        if dtype == "float64":
            np.testing.assert_allclose(grad, [[0.5, 0.5, 0], [1 / 3] * 3], rtol=rtol)


def test_argmax_has_no_gradient():
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), "float64")
        gx = gc.grad(gc.sum(gc.cast(gc.argmax(x, axis=1), "float64")) + gc.sum(x * 0.0), x)
    out = gc.Session(g, backend="numpy").run(gx, {x: np.arange(6.0).reshape(2, 3)})
    np.testing.assert_array_equal(out, np.zeros((2, 3)))
