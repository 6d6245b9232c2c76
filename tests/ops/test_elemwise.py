"""graphc/ops/elemwise.py and elemwise_math.py: arithmetic operators, comparisons,
activations, math functions (sin ... erf, gelu, silu), clip, where, cast.

Each op is a case (``gradcheck.case``): an independent NumPy formula written here and
input recipes; the harness checks every element forward in float32 and float64, the
static shape/dtype, and the gradient (finite differences in float64 on the NumPy
backend; C against NumPy in one compiled fetch set per module, see ``conftest.py``).
Kink and tie cases put the data on the kink on purpose and give the convention's
gradient (``grad_ref``) instead of finite differences; second-order cases differentiate
``gc.grad``. A small hypothesis test draws random broadcast shapes for binary ops.
"""

import math
import re

import numpy as np
import pytest
import sympy
from graphc_tests_ops_gradcheck import Case, In, case, check_numpy, quick_on_c
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphc as gc
from graphc.backends.c.target import CTarget

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def np_elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


np_erf = np.vectorize(math.erf, otypes=[np.float64])


def np_gelu(x):
    return x * 0.5 * (1 + np_erf(x / math.sqrt(2)))


def np_gelu_tanh(x):  # PyTorch's approximate="tanh"
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def np_gelu_tanh_derivative(x):
    t = np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x * x)


def unary(name, fn, ref, low=-3.0, high=3.0, kinks=(), shape=(None, 5)):
    return case(name, fn, ref, In(shape, low, high, kinks=kinks))


UNARY = [
    unary("neg", lambda x: -x, lambda x: -x),
    unary("relu", gc.relu, lambda x: np.maximum(x, 0.0), kinks=(0.0,)),
    unary("sigmoid", gc.sigmoid, np_sigmoid, -6, 6),
    unary("tanh", gc.tanh, np.tanh),
    unary("tanh 0-d", gc.tanh, np.tanh, shape=()),
    unary("exp", gc.exp, np.exp, shape=(2, 3, 4)),
    unary("log", gc.log, np.log, 0.2, 4),
    unary("sqrt", gc.sqrt, np.sqrt, 0.2, 4),
    unary("abs", gc.abs, np.abs, kinks=(0.0,)),
    unary("square", gc.square, lambda x: x * x),
    unary("softplus", gc.softplus, lambda x: np.logaddexp(0.0, x), -6, 6),
    unary("leaky_relu", gc.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), kinks=(0.0,)),
    unary("leaky_relu 0.2", lambda x: gc.leaky_relu(x, alpha=0.2),
          lambda x: np.where(x > 0, x, 0.2 * x), kinks=(0.0,)),
    unary("elu", gc.elu, np_elu, kinks=(0.0,)),
    unary("elu 0.7", lambda x: gc.elu(x, alpha=0.7), lambda x: np_elu(x, 0.7), kinks=(0.0,)),
    unary("selu", gc.selu, lambda x: SELU_SCALE * np_elu(x, SELU_ALPHA), kinks=(0.0,)),
    unary("hard_tanh", gc.hard_tanh, lambda x: np.clip(x, -1.0, 1.0), kinks=(-1.0, 1.0)),
    unary("clip", lambda x: gc.clip(x, -1.0, 0.5), lambda x: np.clip(x, -1.0, 0.5), kinks=(-1.0, 0.5)),
    unary("clip low only", lambda x: gc.clip(x, low=0.0), lambda x: np.maximum(x, 0.0), kinks=(0.0,)),
    unary("clip high only", lambda x: gc.clip(x, high=6.0), lambda x: np.minimum(x, 6.0), -3, 9, (6.0,)),
    unary("clip low > high", lambda x: gc.clip(x, 1.0, 0.5), lambda x: np.clip(x, 1.0, 0.5), kinks=(0.5,)),
    case("clip NaN", lambda x: gc.clip(x, -1.0, 1.0), lambda x: np.clip(x, -1.0, 1.0),
         In((None, 5), kind="nan"), grad=False),
    unary("sin", gc.sin, np.sin, -6, 6),
    unary("cos", gc.cos, np.cos, -6, 6),
    unary("log1p", gc.log1p, np.log1p, -0.9, 3),
    unary("log1p tiny", gc.log1p, np.log1p, -1e-7, 1e-7),  # log(1 + x) would lose every digit
    unary("expm1", gc.expm1, np.expm1),
    unary("expm1 tiny", gc.expm1, np.expm1, -1e-7, 1e-7),
    unary("erf", gc.erf, np_erf),
    unary("gelu", gc.gelu, np_gelu, -5, 5),
    unary("gelu tanh", lambda x: gc.gelu(x, approximate="tanh"), np_gelu_tanh, -5, 5),
    unary("silu", gc.silu, lambda x: x / (1 + np.exp(-x)), -6, 6),
    # +-1e4: no overflow (the derivatives are formulas: finite differences lose too much there)
    case("sigmoid large", gc.sigmoid, lambda x: np.exp(-np.logaddexp(0, -x)), In((None, 5), -1e4, 1e4),
         grad_ref=lambda x, r: [np.exp(-np.logaddexp(0, -x) - np.logaddexp(0, x)) * r]),
    case("softplus large", gc.softplus, lambda x: np.logaddexp(0, x), In((None, 5), -1e4, 1e4),
         grad_ref=lambda x, r: [np.exp(-np.logaddexp(0, -x)) * r]),
    case("log(sigmoid) large (rewritten stable)", lambda t: gc.log(gc.sigmoid(t)),
         lambda x: -np.logaddexp(0, -x), In((None, 5), -1e4, 1e4),
         grad_ref=lambda x, r: [np.exp(-np.logaddexp(0, x)) * r]),
]

# name -> (graph function, formula, recipe of a, recipe of b) for binary operators; the
# recipes keep divisors away from 0 and bases of pow positive.
ANY, NONZERO, POSITIVE = {}, {"low": 0.5, "high": 2.0, "kind": "nonzero"}, {"low": 0.5, "high": 2.0}
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, ANY, ANY),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, ANY, ANY),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, ANY, ANY),
    "div": (lambda a, b: a / b, lambda a, b: a / b, ANY, NONZERO),
    "pow": (lambda a, b: a ** b, lambda a, b: a ** b, POSITIVE, ANY),
    "maximum": (gc.maximum, np.maximum, ANY, ANY),
    "minimum": (gc.minimum, np.minimum, ANY, ANY),
}
BROADCASTS = {"N,3|3": ((None, 3), (3,)), "N,4,1|1,5": ((None, 4, 1), (1, 5))}
BINARY_CASES = [
    case(f"{name} [{pattern}]", fn, ref, In(sa, **ka), In(sb, **kb))
    for name, (fn, ref, ka, kb) in BINARY.items() for pattern, (sa, sb) in BROADCASTS.items()
] + [
    case("sub [N,1|N,3]", lambda a, b: a - b, lambda a, b: a - b, In((None, 1)), In((None, 3))),
    case("div [2,3,4|scalar]", lambda a, b: a / b, lambda a, b: a / b, In((2, 3, 4)), In((), **NONZERO)),
]

# Python numbers as operands: the tensor's dtype wins (float32 stays float32)
SCALAR_OPERANDS = {
    "x + 2": (lambda t: t + 2.0, lambda x: x + 2), "2 - x": (lambda t: 2.0 - t, lambda x: 2 - x),
    "x * 3": (lambda t: t * 3, lambda x: x * 3), "3 * x": (lambda t: 3 * t, lambda x: 3 * x),
    "x / 4": (lambda t: t / 4.0, lambda x: x / 4), "1 / x": (lambda t: 1.0 / t, lambda x: 1 / x),
    "x ** 3": (lambda t: t ** 3, lambda x: x ** 3), "x ** 0.5": (lambda t: t ** 0.5, np.sqrt),
    "x ** -1.5": (lambda t: t ** -1.5, lambda x: x ** -1.5),
    "2 ** x": (lambda t: 2.0 ** t, lambda x: 2.0 ** x),
    "cubic": (lambda t: t * t * t - 2.0 * t, lambda x: x ** 3 - 2 * x),
}
SCALAR_CASES = [case(name, fn, ref, In((None, 3), 0.5, 2.0)) for name, (fn, ref) in SCALAR_OPERANDS.items()]

COMPARE = {
    "less": (lambda a, b: a < b, np.less), "less_equal": (lambda a, b: a <= b, np.less_equal),
    "greater": (lambda a, b: a > b, np.greater),
    "greater_equal": (lambda a, b: a >= b, np.greater_equal),
    "equal": (gc.equal, np.equal), "not_equal": (gc.not_equal, np.not_equal),
}
TIES = In((None, 4), -2, 3, kind="int")  # small integers: ties and zeros on purpose
COMPARE_CASES = [
    case(name, fn, ref, TIES, In((4,), -2, 3, kind="int")) for name, (fn, ref) in COMPARE.items()
] + [
    case("comparisons int64", lambda a, b: [fn(a, b) for fn, _ in COMPARE.values()],
         lambda a, b: [ref(a, b) for _, ref in COMPARE.values()],
         In((None, 4), -2, 3, kind="int", dtype="int64"), In((4,), -2, 3, kind="int", dtype="int64")),
]


INT_CASES = [
    case(f"{dt} arithmetic", lambda p, q: [p + q, p - q, p * q, -p, gc.abs(p), gc.square(p), p * 2],
         lambda a, b: [a + b, a - b, a * b, -a, np.abs(a), a * a, a * 2],
         In((None, 3), -50, 50, kind="int", dtype=dt), In((3,), 1, 9, kind="int", dtype=dt))
    for dt in ("int64", "int32")
]

WHERE_CASES = [
    case("where", gc.where, np.where, In((None, 3, 4), kind="bool", dtype="bool"), In((None, 1, 4)),
         In((3, 1))),
    case("where(x > y, tanh x, x * y)", lambda p, q: gc.where(p > q, gc.tanh(p), p * q),
         lambda x, y: np.where(x > y, np.tanh(x), x * y), In((None, 4)), In((4,))),
]

CASTS = [("float32", "float64"), ("float64", "float32"), ("float64", "int64"), ("float32", "int32"),
         ("int64", "float32"), ("int32", "float64"), ("bool", "float32"), ("int64", "int32")]


def cast_input(src):
    kind = "bool" if src == "bool" else "uniform" if src.startswith("float") else "int"
    return In((None, 3), -50, 50, kind=kind, dtype=src)


CAST_CASES = [
    case(f"cast {src}->{dst}", lambda t, d=dst: gc.cast(t, d), lambda x, d=dst: x.astype(d),
         cast_input(src), out_dtype=dst)
    for src, dst in CASTS
] + [
    # float32 <-> float64 inside a float graph: its gradient is cast back; integer data and
    # eps = 2**-8 keep x +- eps exact in float32, so the finite differences are exact
    case("cast round trip", lambda t: gc.cast(gc.cast(t, "float64" if t.dtype == "float32" else "float32")
                                              * 3.0, t.dtype),
         lambda x: 3 * x, In((None, 3), -3, 4, kind="int"), fd={"eps": 2.0 ** -8, "rtol": 1e-9}),
    case("cast int64 * x", lambda i, x: gc.cast(i, x.dtype) * x, lambda i, x: i * x,
         In((None, 3), -5, 5, kind="int", dtype="int64"), In((None, 3))),
]

# -- kinks and ties: the data sits on them; the documented gradient is the formula -------------

KINK = In((None, 5), -2, 3, kind="int")  # integers in [-2, 2]: 0 and +-1 are all there
KINK_CASES = [
    case("relu at kinks", gc.relu, lambda x: np.maximum(x, 0), KINK,
         grad_ref=lambda x, r: [(x > 0) * r]),  # relu'(0) = 0
    case("abs at kinks", gc.abs, np.abs, KINK, grad_ref=lambda x, r: [np.sign(x) * r]),  # |x|'(0) = 0
    case("leaky_relu at kinks", lambda t: gc.leaky_relu(t, 0.1), lambda x: np.where(x > 0, x, 0.1 * x),
         KINK, grad_ref=lambda x, r: [np.where(x > 0, 1.0, 0.1) * r]),
    case("hard_tanh at kinks", gc.hard_tanh, lambda x: np.clip(x, -1, 1), KINK,
         grad_ref=lambda x, r: [(np.abs(x) <= 1) * r]),  # 1 on the closed interval
    case("clip at kinks", lambda t: gc.clip(t, -1.0, 1.0), lambda x: np.clip(x, -1, 1), KINK,
         grad_ref=lambda x, r: [(np.abs(x) <= 1) * r]),  # 1 on the closed interval
    case("elu at kinks", gc.elu, np_elu, KINK, grad_ref=lambda x, r: [np.where(x > 0, 1.0, np.exp(x)) * r]),
    case("maximum ties", gc.maximum, np.maximum, KINK, In((5,), -2, 3, kind="int"),
         grad_ref=lambda a, b, r: [(a >= b) * r, ((a < b) * r).sum(0)]),  # ties: to the first
    case("minimum ties", gc.minimum, np.minimum, KINK, In((5,), -2, 3, kind="int"),
         grad_ref=lambda a, b, r: [(a <= b) * r, ((a > b) * r).sum(0)]),
]

# -- second order: gc.grad of gc.grad; the formula is the first derivative -------------------

FIRST_DERIVATIVES = {  # name -> (op, f', data range)
    "sigmoid": (gc.sigmoid, lambda x: np_sigmoid(x) * (1 - np_sigmoid(x)), (-4, 4)),
    "tanh": (gc.tanh, lambda x: 1 - np.tanh(x) ** 2, (-3, 3)),
    "exp": (gc.exp, np.exp, (-3, 3)),
    "log": (gc.log, lambda x: 1 / x, (0.5, 4)),
    "sqrt": (gc.sqrt, lambda x: 0.5 / np.sqrt(x), (0.5, 4)),
    "square": (gc.square, lambda x: 2 * x, (-3, 3)),
    "softplus": (gc.softplus, np_sigmoid, (-4, 4)),
    "elu": (gc.elu, lambda x: np.where(x > 0, 1.0, np.exp(x)), (-3, 3)),
    "elu 0.7": (lambda t: gc.elu(t, 0.7), lambda x: np.where(x > 0, 1.0, 0.7 * np.exp(x)), (-3, 3)),
    "selu": (gc.selu, lambda x: SELU_SCALE * np.where(x > 0, 1.0, SELU_ALPHA * np.exp(x)), (-3, 3)),
    "neg": (lambda t: -t, lambda x: -np.ones_like(x), (-3, 3)),
    "erf": (gc.erf, lambda x: 2 / math.sqrt(math.pi) * np.exp(-x * x), (-3, 3)),
    "gelu": (gc.gelu, lambda x: 0.5 * (1 + np_erf(x / math.sqrt(2))) + x * np.exp(-x * x / 2)
             / math.sqrt(2 * math.pi), (-3, 3)),
    "gelu tanh": (lambda t: gc.gelu(t, approximate="tanh"), np_gelu_tanh_derivative, (-3, 3)),
    "silu": (gc.silu, lambda x: np_sigmoid(x) * (1 + x * (1 - np_sigmoid(x))), (-4, 4)),
}
SECOND_ORDER_CASES = [
    case(f"{name}'", lambda t, f=f: gc.grad(gc.sum(f(t)), t), d, In((None, 3), lo, hi, kinks=(0.0,)))
    for name, (f, d, (lo, hi)) in FIRST_DERIVATIVES.items()
]
# binary: [d/da sum(f^2), d/db sum(tanh f)] with f = a op b, b broadcast over rows
PARTIALS = {  # name -> (f, df/da, df/db)
    "mul": (lambda a, b: a * b, lambda a, b: b, lambda a, b: a),
    "sub": (lambda a, b: a - b, lambda a, b: np.ones_like(a * b), lambda a, b: -np.ones_like(a * b)),
    "div": (lambda a, b: a / b, lambda a, b: 1 / b + 0 * a, lambda a, b: -a / b ** 2),
    "pow": (lambda a, b: a ** b, lambda a, b: b * a ** (b - 1), lambda a, b: a ** b * np.log(a)),
}


def _second_order_binary(name, f, fa, fb):
    def graph(p, q):
        return [gc.grad(gc.sum(f(p, q) * f(p, q)), p), gc.grad(gc.sum(gc.tanh(f(p, q))), q)]

    def formula(a, b):
        return [2 * f(a, b) * fa(a, b), ((1 - np.tanh(f(a, b)) ** 2) * fb(a, b)).sum(0)]

    ka, kb = BINARY[name][2:]
    return case(f"{name}''", graph, formula, In((None, 4), **ka), In((4,), **kb))


SECOND_ORDER_CASES += [_second_order_binary(n, *fs) for n, fs in PARTIALS.items()]

CASES = quick_on_c(UNARY + BINARY_CASES + SCALAR_CASES + COMPARE_CASES + INT_CASES + WHERE_CASES
                   + CAST_CASES + KINK_CASES + SECOND_ORDER_CASES,
                   "relu", "pow [N,3|3]", "maximum ties", "where", "less_equal", "cast round trip", "tanh'",
                   "gelu", "gelu tanh'")


@pytest.mark.parametrize("case", CASES)
def test_op(case, backend, check_op):
    check_op(case, backend)


# -- beyond the cases ------------------------------------------------------------------------

shape_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)


@settings(max_examples=12, deadline=None, database=None, derandomize=True)
@given(shapes=shape_pairs, name=st.sampled_from(sorted(BINARY)))
def test_binary_broadcasting_random_shapes(shapes, name):
    """Any broadcastable pair of shapes: forward, finite differences (the gradient sums
    back to each operand's shape), NumPy backend."""
    fn, ref, ka, kb = BINARY[name]
    sa, sb = shapes.input_shapes
    check_numpy(Case(f"{name} {sa}|{sb}", fn, ref, (In(sa, **ka), In(sb, **kb))))


def test_cast_to_same_dtype_is_no_node():
    with gc.Graph() as g:
        t = gc.placeholder((2,), dtype="int32")
        n = len(g.nodes)
        assert gc.cast(t, "int32") is t and len(g.nodes) == n


def test_comparisons_have_no_gradient():
    """A comparison feeding a cast is a constant mask for gc.grad."""
    x = np.array([[-1.5, 0.5, 2.0]])
    with gc.Graph() as g:
        p = gc.placeholder((None, 3), "float64")
        gx = gc.grad(gc.sum(gc.cast(p > 0.0, "float64") * p), p)
    np.testing.assert_array_equal(gc.Session(g, backend="numpy").run(gx, {p: x}), [[0, 1, 1]])


def test_cast_gradient_keeps_the_input_dtype():
    """d/dx of cast(x: float32 -> float64) * r is r rounded to float32, a float32 array."""
    r = np.array([[0.1, -2.5, 1 / 3]])
    with gc.Graph() as g:
        p = gc.placeholder((None, 3), "float32")
        q = gc.placeholder((None, 3), "float64")
        gx = gc.grad(gc.sum(gc.cast(p, "float64") * q), p)
    out = gc.Session(g, backend="numpy").run(gx, {p: np.ones((1, 3), np.float32), q: r})
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, r.astype(np.float32))


def test_gelu_tanh_is_close_to_exact_but_not_equal():
    x = np.linspace(-4, 4, 81)
    with gc.Graph() as g:
        p = gc.placeholder((81,), "float64")
        exact, approx = gc.gelu(p), gc.gelu(p, approximate="tanh")
    e, a = gc.Session(g, backend="numpy").run([exact, approx], {p: x})
    assert 1e-5 < np.max(np.abs(e - a)) < 1e-3
    with pytest.raises(gc.ArgumentError, match="gelu: approximate must be 'none' or 'tanh'"):
        gc.gelu(p, approximate="fast")


def test_math_functions_print_float32_c_functions():
    """float32 C code calls sinf, erff, expm1f ... and never a double function or a double
    constant such as M_PI (erf' = 2 exp(-x**2) / sqrt(pi)), also in gradients."""
    with gc.Graph():
        p = gc.placeholder((3,), "float32")
        ys = [gc.sin(p), gc.cos(p), gc.log1p(p), gc.expm1(p), gc.erf(p), gc.gelu(p),
              gc.gelu(p, approximate="tanh"), gc.silu(p)]
        nodes = ys + [d for y in ys for d in [gc.grad(gc.sum(y), p)]]
    text = " ".join(CTarget().printer("float32").text(_formula(n)) for n in nodes)
    for fn in ("sin", "cos", "log1p", "expm1", "erf", "tanh", "exp", "sqrt", "pow"):
        assert f"{fn}(" not in text.replace(f"gc_{fn}", ""), (fn, text)
    for fn in ("sinf", "cosf", "log1pf", "expm1f", "erff", "tanhf", "gc_expf"):
        assert f"{fn}(" in text, fn
    assert "M_" not in text
    floats = [w for w in re.findall(r"\d[\d.]*(?:e[-+]?\d+)?F?", text) if "." in w or "e" in w]
    assert floats and all(w.endswith("F") for w in floats), floats


def _formula(t):
    """The expression of the elementwise node ``t`` (or of the one node feeding it)."""
    while t.op.name != "elemwise":
        t = t.inputs[0]
    expr = t.attrs["expr"]
    assert isinstance(expr, sympy.Basic)
    return expr
