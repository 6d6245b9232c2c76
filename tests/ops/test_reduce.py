"""graphc/ops/reduce.py: sum, mean, max, min, prod, logsumexp, argmax, cumsum, the element
count, broadcast_to; graphc/ops/stats.py: var, std.

Cases (``gradcheck.case``): an independent NumPy formula and input recipes each; the
harness checks every element forward (float32: 1e-4 relative to the norm, these are
reductions), the static shape/dtype for each batch size, and the gradient (finite
differences on the NumPy backend, C against NumPy in one compiled fetch set). Axes
cover None, ints, negative ints, tuples, keepdims and the batch axis (``mean`` over it
counts N at run time: the ``count`` op). ``max``/``min`` get distinct data, except in the
tie cases, whose gradient (tied extrema share it) is given as ``grad_ref``; ``prod`` gets
magnitudes in [0.5, 1.5), except in the zero case (exclusive products as ``grad_ref``).
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


def np_exclusive_prod(x, axis):
    """The product of the other elements along ``axis``, by brute force (exact at zeros)."""
    x = np.moveaxis(x, axis, -1)
    out = np.stack([np.prod(np.delete(x, i, axis=-1), axis=-1) for i in range(x.shape[-1])], -1)
    return np.moveaxis(out, -1, axis)


REDUCE = {"sum": (gc.sum, np.sum), "mean": (gc.mean, np.mean), "max": (gc.max, np.max),
          "logsumexp": (gc.logsumexp, np_logsumexp), "min": (gc.min, np.min), "prod": (gc.prod, np.prod),
          "var": (gc.var, np.var), "std": (gc.std, np.std)}
#: input recipes other than the default uniform data
DATA = {"max": {"kind": "distinct"}, "min": {"kind": "distinct"},
        "prod": {"low": 0.5, "high": 1.5, "kind": "nonzero"}}
#: (axis, keepdims) on a (N, 3, 4) input: all axes, one axis, a negative axis, a tuple
#: with the batch axis, the batch axis alone
AXES = [(None, False), (1, True), (-1, False), ((0, 2), False), (0, True)]


def reduce_case(name, axis, keepdims, shape=(None, 3, 4)):
    fn, ref = REDUCE[name]
    data = In(shape, **DATA.get(name, {}))
    return case(f"{name} axis={axis}{' keepdims' if keepdims else ''} {shape}",
                lambda t: fn(t, axis=axis, keepdims=keepdims),
                lambda x: ref(x, axis=axis, keepdims=keepdims), data, norm=True)


# std over the batch axis alone: batch 1 has variance 0, where std's gradient is NaN
CASES = [reduce_case(name, axis, keep) for name in REDUCE for axis, keep in AXES
         if not (name == "std" and axis == 0)] + [
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
    case("min ties share", lambda t: gc.min(t, axis=1), lambda x: np.min(x, axis=1),
         In((None, 4), -1, 2, kind="int"), norm=True,
         grad_ref=lambda x, r: [(x == x.min(1, keepdims=True)) / (x == x.min(1, keepdims=True)).sum(
             1, keepdims=True) * r[:, None]]),
    case("min propagates NaN", lambda t: [gc.min(t, axis=1), gc.min(t)], lambda x: [np.min(x, 1), np.min(x)],
         In((None, 5), kind="nan"), norm=True, grad=False),
    case("min(exp(x)) prologue", lambda t: gc.min(gc.exp(t), axis=-1), lambda x: np.min(np.exp(x), -1),
         In((None, 5, 3), kind="distinct"), norm=True),
    # integers in [-1, 2): rows with no zero, one zero and several zeros
    case("prod with zeros", lambda t: gc.prod(t, axis=1), lambda x: np.prod(x, axis=1),
         In((None, 4), -1, 2, kind="int"), norm=True,
         grad_ref=lambda x, r: [np_exclusive_prod(x, 1) * r[:, None]]),
    case("prod(x * 2) prologue, column products", lambda t: gc.prod(t * 2.0, axis=0),
         lambda x: np.prod(x * 2, axis=0), In((5, 3), 0.5, 1.5, kind="nonzero"), norm=True),
    case("var ddof=1 axis=1", lambda t: gc.var(t, axis=1, ddof=1), lambda x: np.var(x, axis=1, ddof=1),
         In((None, 3, 4)), norm=True),
    case("std ddof=1 axis=(0, 2) keepdims", lambda t: gc.std(t, axis=(0, 2), keepdims=True, ddof=1),
         lambda x: np.std(x, axis=(0, 2), keepdims=True, ddof=1), In((None, 3, 4)), norm=True),
    # far from 0: E[x^2] - E[x]^2 would lose every digit in float32; two passes keep them
    case("var of values far from 0", lambda t: [gc.var(t, axis=1), gc.std(t)],
         lambda x: [np.var(x, axis=1), np.std(x)], In((None, 6), 1000.0, 1001.0), norm=True),
    case("int64 sum and max", lambda t: [gc.sum(t, axis=0), gc.max(t, axis=1), gc.sum(t)],
         lambda a: [a.sum(0), a.max(1), a.sum()], In((None, 4), -100, 100, kind="int", dtype="int64")),
    case("int64 min", lambda t: [gc.min(t, axis=0), gc.min(t)], lambda a: [a.min(0), a.min()],
         In((None, 4), -100, 100, kind="int", dtype="int64")),
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
    _second("prod", lambda y: np.prod(y, 1, keepdims=True) / y),
    _second("var", lambda y: 2 * (y - y.mean(1, keepdims=True)) / 3),
    _second("std", lambda y: (y - y.mean(1, keepdims=True)) / (3 * y.std(1, keepdims=True))),
]


CASES = quick_on_c(CASES, "sum axis=(0, 2) (None, 3, 4)", "mean axis=0 keepdims (None, 3, 4)",
                   "max axis=1 keepdims (None, 3, 4)", "logsumexp axis=-1 (None, 3, 4)",
                   "argmax axis=1 keepdims", "min axis=1 keepdims (None, 3, 4)",
                   "prod axis=(0, 2) (None, 3, 4)", "var axis=-1 (None, 3, 4)", "prod with zeros")


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


def test_prod_gradient_is_exact_at_zeros(backend):
    """No zero: prod / x; one zero: the others' product at the zero only; two zeros: 0
    (the exclusive products, as PyTorch's prod_backward), also on the compiled backend."""
    with gc.Graph() as g:
        x = gc.placeholder((None, 4), "float64")
        gx = gc.grad(gc.sum(gc.prod(x, axis=1)), x)
    rows = np.array([[2.0, 3, 4, 5], [2, 0, 4, 5], [0, 3, 0, 5], [-0.0, 1, 1, 1]])
    got = gc.Session(g, backend=backend).run(gx, {x: rows})
    np.testing.assert_array_equal(got, [[60, 40, 30, 24], [0, 40, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]])


def test_var_std_divisor_follows_pytorch(backend):
    """The divisor is max(0, n - ddof): 0/0 = NaN for one element with ddof=1, +inf when
    ddof >= n and the deviations are not all 0; the same with n counted at run time."""
    with gc.Graph() as g:
        x = gc.placeholder((None, 2), "float64")
        outs = [gc.var(x, axis=1, ddof=2),
                gc.var(x, axis=0, ddof=3), gc.std(x, axis=0, ddof=1), gc.var(x, axis=1, ddof=0.5)]
    rows = np.array([[1.0, 3.0], [2.0, 2.0]])
    v2, v0, s0, vh = gc.Session(g, backend=backend).run(outs, {x: rows})
    np.testing.assert_array_equal(v2, [np.inf, np.nan])  # deviations (1, 1) and (0, 0), n - ddof = 0
    np.testing.assert_array_equal(v0, [np.inf, np.inf])  # n = 2 rows, ddof 3: max(0, -1) = 0
    np.testing.assert_allclose(s0, [np.sqrt(0.5), np.sqrt(0.5)], rtol=1e-15)
    np.testing.assert_allclose(vh, [2 / 1.5, 0.0], rtol=1e-15)


def test_std_gradient_at_zero_variance_is_nan(backend):
    """sqrt's infinite slope at 0 times zero deviations: NaN, as PyTorch's std backward."""
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), "float64")
        gx = gc.grad(gc.sum(gc.std(x, axis=1)), x)
    got = gc.Session(g, backend=backend).run(gx, {x: np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 3.0]])})
    assert np.isnan(got[0]).all()
    np.testing.assert_allclose(got[1], np.array([-1, 0, 1]) / (3 * np.sqrt(2 / 3)), atol=1e-15)


def test_var_std_refuse_bad_arguments():
    """Errors name the op and the user's line."""
    with gc.Graph():
        x = gc.placeholder((None, 3))
        with pytest.raises(gc.ArgumentError, match=r"var: ddof must be a finite number, got 'a'[\s\S]*test_"):
            gc.var(x, ddof="a")
        with pytest.raises(gc.ArgumentError, match="std: ddof must be a finite number, got nan"):
            gc.std(x, ddof=float("nan"))
        with pytest.raises(gc.DTypeError, match="var: needs a float tensor, got int64"):
            gc.var(gc.placeholder((3,), "int64"))
        with pytest.raises(gc.DTypeError, match="prod: needs a float tensor, got int64"):
            gc.prod(gc.placeholder((3,), "int64"))
        with pytest.raises(gc.ShapeError, match="var: axis 2 out of range"):
            gc.var(x, axis=2)
