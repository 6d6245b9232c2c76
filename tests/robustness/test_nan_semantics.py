"""NaN, infinities and signed zeros through every elementwise op and reduction graphc
exports, on every backend, against PyTorch's behaviour written down as a table.

PyTorch is not installed: each expected value is a NumPy formula of what PyTorch's
documentation and kernels give. NumPy agrees with PyTorch for most ops; where they differ
the table says so and follows PyTorch:

* ``relu``: PyTorch's ``relu(nan)`` is NaN (NumPy has no relu; graphc gave 0 before).
* ``softplus``: PyTorch switches to ``x`` above its threshold 20 (same specials).
* ``sum``/``mean``/``cumsum`` of -0.0s: PyTorch accumulates from +0.0 and gives +0.0;
  NumPy starts from the first element and gives -0.0.
* ``logsumexp`` of a row holding +inf: +inf (NumPy's naive formula agrees; PyTorch masks
  the infinite maximum).
* ``var``/``std``: a row holding an infinity is NaN (inf - inf in the deviations), as
  PyTorch's Welford kernel gives; a row of -0.0s has variance +0.0.
* ``max``/``min``/``argmax``/``maximum``/``minimum``: NaN propagates (``argmax`` points at the
  first NaN), as in NumPy; C's ``fmax`` would drop it.
* ``gelu`` (both forms) and ``silu`` at -inf: -0.0, the limit with the sign that large
  finite negative inputs give (graphc computes ``max(x, -FLT_MAX) * factor``). PyTorch's
  kernels give NaN there today (``-inf * 0``; for ``gelu(+inf)`` too), which its issues
  #185770, #187293, #160876 call bugs; the open fixes (PRs #192318, #195197) return the
  limits 0 and +inf, as graphc does (up to the sign of 0).
* ``erf``: NumPy has none; the expected values come from ``math.erf``.
* ``sigmoid_cross_entropy`` at an infinite logit: PyTorch's
  ``binary_cross_entropy_with_logits`` computes ``(1 - t) x + log1p(exp(-|x|)) +
  max(-x, 0)`` (+inf at x = +inf, t = 0); graphc's ``softplus(x) - x t`` gives
  inf - inf*0 = NaN there (:data:`KNOWN_DIFFERENCES`, pinned so that a change is noticed).

One graph per backend holds every op, the special values in one array: a unary op sees
all of them, a binary op every pair of them.

At a tie of 0.0 and -0.0, ``maximum``/``minimum`` return the second operand (NumPy,
and PyTorch's vectorised kernels); ``relu(-0.0)`` is +0.0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import graphc as gc
import graphc.ops.elemwise
import graphc.ops.elemwise_math
import graphc.ops.nn
import graphc.ops.reduce
import graphc.ops.stats

NAN, INF = np.nan, np.inf
SPECIALS = np.array([NAN, INF, -INF, -0.0, 0.0, 1.5, -2.0, 0.5, 30.0], np.float32)
#: a unary op's input; a binary op's inputs: every pair of specials
X = SPECIALS
PX, PY = np.repeat(SPECIALS, len(SPECIALS)), np.tile(SPECIALS, len(SPECIALS))
#: rows a reduction runs along (axis 1) and over (axis None)
ROWS = np.array([[1.0, NAN, 2.0], [INF, 1.0, -INF], [-0.0, -0.0, -0.0], [-INF, -INF, -INF],
                 [INF, 2.0, INF], [0.5, -2.0, 1.5], [3.0, NAN, NAN]], np.float32)

SELU_A, SELU_S = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _f32(fn):
    """``fn`` evaluated in float32, as PyTorch would, with NumPy's warnings off."""
    def run(*args):
        with np.errstate(all="ignore"):
            return fn(*(np.asarray(a, np.float32) for a in args))
    return run


def _softplus(x):  # torch.nn.functional.softplus(x, beta=1, threshold=20)
    return np.where(x > 20, x, np.log1p(np.exp(x)))


_erf = np.vectorize(math.erf, otypes=[np.float32])


def _gelu(x, approximate="none"):  # torch.nn.functional.gelu, with the limit at -inf (see above)
    if approximate == "tanh":
        y = 0.5 * x * (1 + np.tanh(np.float32(math.sqrt(2 / math.pi)) * (x + np.float32(0.044715) * x**3)))
    else:
        y = x * 0.5 * (1 + _erf(x * np.float32(math.sqrt(0.5))))
    return np.where(x == -INF, -0.0, y)


def _silu(x):  # torch.nn.functional.silu, with the limit at -inf
    return np.where(x == -INF, -0.0, x / (1 + np.exp(-x)))


def _huber(p, t, delta=1.0):  # torch.nn.functional.huber_loss(reduction="none")
    d = np.abs(p - t)
    return np.where(d < delta, 0.5 * (p - t) ** 2, delta * (d - 0.5 * delta))


def _bce_logits(x, t):  # torch.nn.functional.binary_cross_entropy_with_logits(reduction="none")
    return (1 - t) * x + np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x)))


def _logsumexp(r, axis):  # torch.logsumexp: the maximum subtracted where it is finite
    m = np.max(r, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    return np.squeeze(np.log(np.sum(np.exp(r - m), axis=axis, keepdims=True)) + m, axis=axis)


def _from_zero(s):  # a torch float sum starts from +0.0
    return s + 0.0


#: name -> (how many operands: 1, 2, or "rows"; graphc call; PyTorch's result as NumPy)
UNARY = {
    "abs": (gc.abs, np.abs),
    "negative": (gc.negative, np.negative),
    "relu": (gc.relu, lambda x: np.where(np.isnan(x), x, np.maximum(x, 0.0))),
    "sigmoid": (gc.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (gc.tanh, np.tanh),
    "exp": (gc.exp, np.exp),
    "log": (gc.log, np.log),
    "sqrt": (gc.sqrt, np.sqrt),
    "square": (gc.square, np.square),
    "softplus": (gc.softplus, _softplus),
    "leaky_relu": (lambda x: gc.leaky_relu(x, 0.01), lambda x: np.where(x > 0, x, x * 0.01)),
    "elu": (gc.elu, lambda x: np.where(x > 0, x, np.expm1(x))),
    "selu": (gc.selu, lambda x: SELU_S * np.where(x > 0, x, SELU_A * np.expm1(x))),
    "hard_tanh": (gc.hard_tanh, lambda x: np.where(np.isnan(x), x, np.clip(x, -1, 1))),
    "clip": (lambda x: gc.clip(x, 0.25, 1.0), lambda x: np.where(np.isnan(x), x, np.clip(x, 0.25, 1.0))),
    "dropout": (lambda x: gc.dropout(x, 0.5, training=gc.constant(False)), lambda x: x),
    "sin": (gc.sin, np.sin),
    "cos": (gc.cos, np.cos),
    "log1p": (gc.log1p, np.log1p),
    "expm1": (gc.expm1, np.expm1),
    "erf": (gc.erf, _erf),
    "gelu": (gc.gelu, _gelu),
    "gelu tanh": (lambda x: gc.gelu(x, approximate="tanh"), lambda x: _gelu(x, "tanh")),
    "silu": (gc.silu, _silu),
}
BINARY = {
    "add": (gc.add, np.add),
    "subtract": (gc.subtract, np.subtract),
    "multiply": (gc.multiply, np.multiply),
    "divide": (gc.divide, np.divide),
    "power": (gc.power, np.power),
    "maximum": (gc.maximum, np.maximum),
    "minimum": (gc.minimum, np.minimum),
    "less": (gc.less, np.less),
    "less_equal": (gc.less_equal, np.less_equal),
    "greater": (gc.greater, np.greater),
    "greater_equal": (gc.greater_equal, np.greater_equal),
    "equal": (gc.equal, np.equal),
    "not_equal": (gc.not_equal, np.not_equal),
    "where": (lambda c, y: gc.where(c, y, 7.0), lambda c, y: np.where(c != 0, y, 7.0)),
    "mse": (gc.mse, lambda p, t: (p - t) ** 2),
    "mae": (gc.mae, lambda p, t: np.abs(p - t)),
    "huber": (gc.huber, _huber),
    "sigmoid_cross_entropy": (gc.sigmoid_cross_entropy, _bce_logits),
}
REDUCTIONS = {
    "sum": (lambda r, a: gc.sum(r, axis=a), lambda r, a: _from_zero(np.sum(r, axis=a))),
    "mean": (lambda r, a: gc.mean(r, axis=a), lambda r, a: _from_zero(np.mean(r, axis=a))),
    "max": (lambda r, a: gc.max(r, axis=a), lambda r, a: np.max(r, axis=a)),
    "min": (lambda r, a: gc.min(r, axis=a), lambda r, a: np.min(r, axis=a)),
    "prod": (lambda r, a: gc.prod(r, axis=a), lambda r, a: np.prod(r, axis=a)),
    "var": (lambda r, a: gc.var(r, axis=a), lambda r, a: np.var(r, axis=a)),
    "std": (lambda r, a: gc.std(r, axis=a, ddof=1), lambda r, a: np.std(r, axis=a, ddof=1)),
    "argmax": (lambda r, a: gc.argmax(r, axis=a), lambda r, a: np.argmax(r, axis=a)),
    "logsumexp": (lambda r, a: gc.logsumexp(r, axis=a), _logsumexp),
    "cumsum": (lambda r, a: gc.cumsum(r, axis=-1 if a is None else a),
               lambda r, a: _from_zero(np.cumsum(r, axis=-1 if a is None else a))),
    "softmax": (lambda r, a: gc.softmax(r, axis=-1 if a is None else a),
                lambda r, a: np.exp(r - _logsumexp(r, 1)[:, None])),
    "log_softmax": (lambda r, a: gc.log_softmax(r, axis=-1 if a is None else a),
                    lambda r, a: r - _logsumexp(r, 1)[:, None]),
}

#: op -> (where graphc differs from PyTorch, graphc's value there) (see above)
KNOWN_DIFFERENCES = {"sigmoid_cross_entropy": (lambda x, t: np.isinf(x), lambda x, t: _softplus(x) - x * t)}

#: exported functions of the op modules that are no elementwise op or reduction of values
NOT_IN_TABLE = {
    "elementwise": "the user's own formula (tests/robustness/test_code_strings.py)",
    "cast": "a dtype conversion",
    "broadcast_to": "moves values, no arithmetic",
    "broadcast_like": "moves values, no arithmetic",
    "softmax_cross_entropy": "int labels; its NaN rows follow log_softmax",
}


def test_every_exported_op_is_in_the_table():
    modules = {graphc.ops.elemwise.__name__, graphc.ops.elemwise_math.__name__, graphc.ops.reduce.__name__,
               graphc.ops.nn.__name__, graphc.ops.stats.__name__}
    exported = {n for n in gc.__all__ if getattr(getattr(gc, n), "__module__", None) in modules
                and callable(getattr(gc, n)) and not isinstance(getattr(gc, n), type)}
    covered = set(UNARY) | set(BINARY) | set(REDUCTIONS) | set(NOT_IN_TABLE)
    assert exported - covered == set(), "add these ops to the NaN table"
    rows = set(UNARY) | set(BINARY) | set(REDUCTIONS)  # ("gelu tanh": a variant of gelu)
    assert {row.split()[0] for row in rows} <= exported


def _expected_binary(name, fn):
    out = _f32(fn)(PX, PY)
    if name in KNOWN_DIFFERENCES:
        where, graphc_value = KNOWN_DIFFERENCES[name]
        out = np.where(where(PX, PY), _f32(graphc_value)(PX, PY), out)
    return out


def _same(got, want) -> bool:
    """NaN where PyTorch gives NaN, the same infinities and signed zeros, finite values to
    float32 rounding (libm and graphc's expf differ in the last bits)."""
    got = np.asarray(got)
    want = np.asarray(want, np.float64 if got.dtype.kind == "f" else got.dtype)
    if got.shape != want.shape:
        return False
    if got.dtype.kind != "f":
        return bool(np.array_equal(got, want))
    g = got.astype(np.float64)
    if not np.array_equal(np.isnan(g), np.isnan(want)):
        return False
    ok = ~np.isnan(want)
    g, w = g[ok], want[ok]
    if not np.array_equal(np.isinf(g), np.isinf(w)) or not np.array_equal(g[np.isinf(w)], w[np.isinf(w)]):
        return False
    zero = w == 0
    if not (np.all(g[zero] == 0) and np.array_equal(np.signbit(g[zero]), np.signbit(w[zero]))):
        return False
    return bool(np.allclose(g, w, rtol=3e-6, atol=1e-30))


def test_specials_follow_pytorch(backend):
    with gc.Graph() as g:
        x = gc.placeholder((len(X),), name="x")
        px, py = gc.placeholder((len(PX),), name="px"), gc.placeholder((len(PY),), name="py")
        rows = gc.placeholder((None, ROWS.shape[1]), name="rows")
        fetch, want = {}, {}
        for name, (build, ref) in UNARY.items():
            fetch[name], want[name] = build(x), _f32(ref)(X)
        for name, (build, ref) in BINARY.items():
            fetch[name], want[name] = build(px, py), _expected_binary(name, ref)
        for name, (build, ref) in REDUCTIONS.items():
            for axis in (1, None):
                with np.errstate(all="ignore"):
                    want[f"{name} axis={axis}"] = ref(ROWS, axis)
                fetch[f"{name} axis={axis}"] = build(rows, axis)
    names = list(fetch)
    values = gc.Session(g, backend=backend).run([fetch[n] for n in names],
                                                {x: X, px: PX, py: PY, rows: ROWS})
    wrong = [n for n, v in zip(names, values) if not _same(v, want[n])]
    assert wrong == [], {n: (values[names.index(n)], want[n]) for n in wrong}


#: d/dx of sum(op(x, y)), PyTorch's rules: relu' is 1 at NaN (threshold_backward keeps the
#: gradient where the output is not <= 0); maximum/minimum give both operands the gradient
#: at a NaN (graphc: the first operand at a tie, PyTorch halves it); d(x**y)/dx is 0 where
#: y == 0 and d(x**y)/dy is 0 where x == 0 and y >= 0; |x|' is sign(x), NaN at NaN.
GRADS = {
    "relu": (lambda a, b: gc.relu(a), lambda a, b: (np.where(a <= 0, 0.0, 1.0), 0 * b)),
    "maximum": (gc.maximum, lambda a, b: (np.where(a < b, 0.0, 1.0), np.where(a >= b, 0.0, 1.0))),
    "minimum": (gc.minimum, lambda a, b: (np.where(a > b, 0.0, 1.0), np.where(a <= b, 0.0, 1.0))),
    "power": (gc.power, lambda a, b: (np.where(b == 0, 0.0, b * np.power(a, b - 1)),
                                      np.where((a == 0) & (b >= 0), 0.0, np.power(a, b) * np.log(a)))),
    "abs": (lambda a, b: gc.abs(a), lambda a, b: (np.sign(a), 0 * b)),
}


def test_gradients_at_specials_follow_pytorch(backend):
    with gc.Graph() as g:
        px, py = gc.placeholder((len(PX),), name="px"), gc.placeholder((len(PY),), name="py")
        fetch = {n: gc.grad(gc.sum(build(px, py)), [px, py]) for n, (build, _) in GRADS.items()}
    names = list(fetch)
    values = gc.Session(g, backend=backend).run([t for n in names for t in fetch[n]], {px: PX, py: PY})
    wrong = {}
    for k, n in enumerate(names):
        for j, want in enumerate(_f32(GRADS[n][1])(PX, PY)):
            if n in ("relu", "abs") and j == 1:
                continue
            if not _same(values[2 * k + j], want):
                wrong[f"{n} d/d{'xy'[j]}"] = (values[2 * k + j], want)
    assert wrong == {}


def test_max_and_argmax_of_an_empty_axis_are_errors(backend):
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        with pytest.raises(gc.ShapeError, match=r"max: cannot reduce over axis 1 of size 0[\s\S]*test_nan"):
            gc.max(gc.placeholder((2, 0)), axis=1)
        with pytest.raises(gc.ShapeError, match="argmax: cannot reduce over axis 0 of size 0"):
            gc.argmax(gc.placeholder((0, 2)))
        m, a = gc.max(x, axis=0), gc.argmax(x, axis=0)
        s, mean, lse = gc.sum(x, axis=0), gc.mean(x, axis=0), gc.logsumexp(x, axis=0)
    sess = gc.Session(g, backend=backend)
    empty = {x: np.zeros((0, 3), np.float32)}
    for t in (m, a):
        with pytest.raises(gc.GraphcError, match=r"over an empty axis: the batch has 0 rows[\s\S]*test_nan"):
            sess.run(t, empty)
    got = sess.run([s, mean, lse], empty)  # PyTorch: 0, NaN, -inf
    np.testing.assert_array_equal(got[0], [0, 0, 0])
    assert np.isnan(got[1]).all() and (got[2] == -np.inf).all()
    np.testing.assert_array_equal(sess.run(m, {x: np.ones((2, 3), np.float32)}), [1, 1, 1])


def test_min_prod_var_std_of_an_empty_axis_follow_pytorch(backend):
    """min: an error like max; prod: 1; var/std: NaN (0 / max(0, 0 - ddof)), static or
    over a batch of 0 rows."""
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        with pytest.raises(gc.ShapeError, match=r"min: cannot reduce over axis 1 of size 0: an empty axis "
                                                r"has no minimum[\s\S]*test_nan"):
            gc.min(gc.placeholder((2, 0)), axis=1)
        e = gc.placeholder((2, 0), name="e")
        static = [gc.prod(e, axis=1), gc.var(e, axis=1), gc.std(e, axis=1, ddof=1)]
        m = gc.min(x, axis=0)
        batch = [gc.prod(x, axis=0), gc.var(x, axis=0), gc.std(x, axis=0, ddof=1), gc.var(x)]
    sess = gc.Session(g, backend=backend)
    empty = {x: np.zeros((0, 3), np.float32), e: np.zeros((2, 0), np.float32)}
    with pytest.raises(gc.GraphcError, match=r"min \(.*\) over an empty axis: the batch has 0 rows "
                                             r"\(shape \(N, 3\)\), which have no minimum[\s\S]*test_nan"):
        sess.run(m, empty)
    p, v, s = sess.run(static, empty)
    bp, bv, bs, ball = sess.run(batch, empty)
    np.testing.assert_array_equal(p, [1, 1])
    np.testing.assert_array_equal(bp, [1, 1, 1])
    assert np.isnan(np.concatenate([v, s, bv, bs, [ball]])).all()
    np.testing.assert_array_equal(sess.run(m, {x: np.array([[2, 1, 3], [1, 2, 3]], np.float32)}), [1, 1, 3])
