"""Elementwise ops: arithmetic operators, comparisons, activations, where, cast.

Forward values are compared with NumPy formulas written here (float32 and
float64, every element); gradients with central finite differences (float64).
"""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphc as gc

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
DTYPES = ["float32", "float64"]
FAST = settings(max_examples=6, deadline=None, database=None)


def _elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


# name -> (graph function, NumPy formula, (low, high) of the test data, kinks)
UNARY = {
    "neg": (lambda x: -x, lambda x: -x, (-3, 3), ()),
    "relu": (gc.relu, lambda x: np.maximum(x, 0.0), (-3, 3), (0.0,)),
    "sigmoid": (gc.sigmoid, lambda x: 1.0 / (1.0 + np.exp(-x)), (-6, 6), ()),
    "tanh": (gc.tanh, np.tanh, (-3, 3), ()),
    "exp": (gc.exp, np.exp, (-3, 3), ()),
    "log": (gc.log, np.log, (0.2, 4), ()),
    "sqrt": (gc.sqrt, np.sqrt, (0.2, 4), ()),
    "abs": (gc.abs, np.abs, (-3, 3), (0.0,)),
    "square": (gc.square, lambda x: x * x, (-3, 3), ()),
    "softplus": (gc.softplus, lambda x: np.log(1.0 + np.exp(x)), (-6, 6), ()),
    "leaky_relu": (gc.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), (-3, 3), (0.0,)),
    "leaky_relu_0.2": (lambda x: gc.leaky_relu(x, alpha=0.2),
                       lambda x: np.where(x > 0, x, 0.2 * x), (-3, 3), (0.0,)),
    "elu": (gc.elu, lambda x: _elu(x, 1.0), (-3, 3), (0.0,)),
    "elu_0.7": (lambda x: gc.elu(x, alpha=0.7), lambda x: _elu(x, 0.7), (-3, 3), (0.0,)),
    "selu": (gc.selu, lambda x: SELU_SCALE * _elu(x, SELU_ALPHA), (-3, 3), (0.0,)),
    "hard_tanh": (gc.hard_tanh, lambda x: np.clip(x, -1.0, 1.0), (-3, 3), (-1.0, 1.0)),
}

# name -> (graph function of two tensors, NumPy formula)
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "div": (lambda a, b: a / b, lambda a, b: a / b),
    "pow": (lambda a, b: a ** b, lambda a, b: a ** b),
    "maximum": (gc.maximum, np.maximum),
    "minimum": (gc.minimum, np.minimum),
}

COMPARE = {
    "less": (lambda a, b: a < b, np.less),
    "less_equal": (lambda a, b: a <= b, np.less_equal),
    "greater": (lambda a, b: a > b, np.greater),
    "greater_equal": (lambda a, b: a >= b, np.greater_equal),
    "equal": (gc.equal, np.equal),
    "not_equal": (gc.not_equal, np.not_equal),
}


def _binary_data(helpers, name, rng, sa, sb, dtype):
    """Operands valid for ``name``: no zero divisors, positive pow bases, no ties."""
    if name == "div":
        a = helpers.rand(rng, sa, dtype)
        b = (rng.choice([-1.0, 1.0], size=sb) * rng.uniform(0.5, 2.0, size=sb)).astype(dtype)
    elif name == "pow":
        a = helpers.rand(rng, sa, dtype, 0.5, 2.0)
        b = helpers.rand(rng, sb, dtype, -2.0, 2.0)
    elif name in ("maximum", "minimum"):  # a on a 0.2 grid, b in between: gaps >= 0.06
        a = (rng.integers(-10, 10, size=sa) * 0.2 + rng.uniform(0, 0.02, size=sa)).astype(dtype)
        b = (rng.integers(-10, 10, size=sb) * 0.2 + 0.1
             + rng.uniform(0, 0.02, size=sb)).astype(dtype)
    else:
        a = helpers.rand(rng, sa, dtype)
        b = helpers.rand(rng, sb, dtype)
    return np.asarray(a, dtype=dtype), np.asarray(b, dtype=dtype)


BROADCAST_PAIRS = [((3, 1), (4,)), ((2, 3, 4), (3, 1)), ((4,), (2, 1, 4)), ((), (2, 3)),
                   ((2, 1, 3), (1, 4, 1))]
shape_pairs = st.one_of(
    st.sampled_from(BROADCAST_PAIRS),
    hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3).map(
        lambda r: r.input_shapes),
)


# -- forward ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_forward(helpers, name, dtype):
    fn, ref, (lo, hi), _ = UNARY[name]
    rng = np.random.default_rng(1)
    x = helpers.rand(rng, (3, 5, 4), dtype, lo, hi)
    out = helpers.run(fn, x)
    helpers.assert_close(out, ref(x.astype(np.float64)), dtype, what=name)


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softplus", "elu", "hard_tanh"])
def test_unary_forward_batch_none(helpers, name, batch):
    fn, ref, (lo, hi), _ = UNARY[name]
    x = helpers.rand(np.random.default_rng(batch), (batch, 3, 2), "float32", lo, hi)
    out = helpers.run(fn, x, batch=True)
    helpers.assert_close(out, ref(x.astype(np.float64)), "float32", what=name)


@FAST
@given(shapes=shape_pairs, name=st.sampled_from(list(BINARY)), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**16))
@example(shapes=((3, 1), (4,)), name="add", dtype="float32", seed=0)
@example(shapes=((2, 3, 4), (3, 1)), name="div", dtype="float64", seed=0)
def test_binary_forward_broadcasting(helpers, shapes, name, dtype, seed):
    fn, ref = BINARY[name]
    a, b = _binary_data(helpers, name, np.random.default_rng(seed), *shapes, dtype)
    out = helpers.run(fn, a, b)
    helpers.assert_close(out, ref(a.astype(np.float64), b.astype(np.float64)), dtype, what=name)


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("name", list(BINARY))
def test_binary_forward_batch_none(helpers, name, batch):
    fn, ref = BINARY[name]
    rng = np.random.default_rng(batch + 10)
    a, b = _binary_data(helpers, name, rng, (batch, 3), (batch, 1), "float64")
    out = helpers.run(fn, a, b, batch=True)  # (N, 3) with (N, 1)
    helpers.assert_close(out, ref(a, b), what=name)
    a, b = _binary_data(helpers, name, rng, (batch, 2, 3), (3,), "float32")
    out = helpers.run(fn, a, b, batch=[True, False])  # (N, 2, 3) with (3,)
    helpers.assert_close(out, ref(a.astype(np.float64), b.astype(np.float64)), what=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_python_scalar_operands(helpers, dtype):
    x = helpers.rand(np.random.default_rng(3), (7, 3), dtype, 0.5, 2.0)
    outs = helpers.run(lambda t: [t + 2.0, 2.0 + t, t - 0.5, 3.0 - t, t * 3, 3 * t, t / 4.0,
                                  1.0 / t, t ** 2, t ** 0.5, t ** -1.5, 2.0 ** t, -t, +t],
                       x, batch=True)
    x = x.astype(np.float64)
    refs = [x + 2, 2 + x, x - 0.5, 3 - x, x * 3, 3 * x, x / 4, 1 / x, x ** 2, np.sqrt(x),
            x ** -1.5, 2.0 ** x, -x, x]
    for i, (o, r) in enumerate(zip(outs, refs)):
        helpers.assert_close(o, r, dtype, what=f"scalar op #{i}")


def test_integer_arithmetic(helpers):
    rng = np.random.default_rng(4)
    a = rng.integers(-50, 50, size=(4, 3)).astype(np.int64)
    b = rng.integers(1, 9, size=(3,)).astype(np.int64)
    outs = helpers.run(lambda p, q: [p + q, p - q, p * q, -p, gc.abs(p), gc.square(p), p * 2],
                       a, b)
    for o, r in zip(outs, [a + b, a - b, a * b, -a, np.abs(a), a * a, a * 2]):
        assert o.dtype == np.int64
        np.testing.assert_array_equal(o, r)


@pytest.mark.parametrize("dtype", DTYPES + ["int64"])
@pytest.mark.parametrize("name", list(COMPARE))
def test_comparisons(helpers, name, dtype):
    fn, ref = COMPARE[name]
    rng = np.random.default_rng(5)
    # few distinct values so that ties occur, with broadcasting and a None batch
    a = rng.integers(-2, 3, size=(7, 4)).astype(dtype)
    b = rng.integers(-2, 3, size=(4,)).astype(dtype)
    out = helpers.run(fn, a, b, batch=[True, False])
    assert out.dtype == np.bool_
    np.testing.assert_array_equal(out, ref(a, b))
    assert (out == ref(a, b)).all() and out.any() and not out.all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_where_forward(helpers, dtype):
    rng = np.random.default_rng(6)
    x = helpers.rand(rng, (7, 1, 4), dtype)
    y = helpers.rand(rng, (3, 1), dtype)
    c = rng.uniform(size=(7, 3, 4)) > 0.5
    out = helpers.run(gc.where, c, x, y, batch=[True, True, False])
    helpers.assert_close(out, np.where(c, x.astype(np.float64), y.astype(np.float64)), dtype)
    # a comparison as the condition
    out = helpers.run(lambda p, q: gc.where(p > q, p, q * 2.0), x, y)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    helpers.assert_close(out, np.where(x64 > y64, x64, y64 * 2), dtype)


@pytest.mark.parametrize("src,dst", [("float32", "float64"), ("float64", "float32"),
                                     ("float64", "int64"), ("float32", "int32"),
                                     ("int64", "float32"), ("int32", "float64"),
                                     ("bool", "float32"), ("int64", "int32")])
def test_cast_forward(helpers, src, dst):
    rng = np.random.default_rng(7)
    x = (rng.uniform(-50, 50, size=(7, 3)) if src.startswith("float")
         else rng.integers(-50, 50, size=(7, 3)) if src.startswith("int")
         else rng.uniform(size=(7, 3)) > 0.5).astype(src)
    out = helpers.run(lambda t: gc.cast(t, dst), x, batch=True)
    assert out.dtype == np.dtype(dst)
    np.testing.assert_array_equal(out, x.astype(dst))
    with gc.Graph():
        t = gc.placeholder((2,), dtype=src)
        assert gc.cast(t, src) is t  # a cast to the same dtype is no node


# -- gradients ----------------------------------------------------------------------------

@settings(max_examples=6, deadline=None, database=None)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=3), seed=st.integers(0, 2**16))
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_gradient(helpers, name, shape, seed):
    fn, _, (lo, hi), kinks = UNARY[name]
    x = helpers.rand(np.random.default_rng(seed), shape, "float64", lo, hi, away_from=kinks)
    helpers.gradcheck(fn, x, seed=seed)


@pytest.mark.parametrize("name", list(UNARY))
def test_unary_gradient_batch_none(helpers, name):
    fn, _, (lo, hi), kinks = UNARY[name]
    x = helpers.rand(np.random.default_rng(8), (7, 2), "float64", lo, hi, away_from=kinks)
    helpers.gradcheck(fn, x, batch=True)


@settings(max_examples=25, deadline=None, database=None)
@given(shapes=shape_pairs, name=st.sampled_from(list(BINARY)), seed=st.integers(0, 2**16))
@example(shapes=((3, 1), (4,)), name="mul", seed=0)
@example(shapes=((2, 3, 4), (3, 1)), name="pow", seed=1)
@example(shapes=((2, 3, 4), (3, 1)), name="maximum", seed=2)
@example(shapes=((3, 1), (4,)), name="div", seed=3)
def test_binary_gradient_broadcasting(helpers, shapes, name, seed):
    fn, _ = BINARY[name]
    a, b = _binary_data(helpers, name, np.random.default_rng(seed), *shapes, "float64")
    helpers.gradcheck(fn, a, b, seed=seed)


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_gradient_batch_none(helpers, name):
    fn, _ = BINARY[name]
    a, b = _binary_data(helpers, name, np.random.default_rng(9), (7, 3), (7, 1), "float64")
    helpers.gradcheck(fn, a, b, batch=True)
    a, b = _binary_data(helpers, name, np.random.default_rng(9), (1, 2, 3), (3,), "float64")
    helpers.gradcheck(fn, a, b, batch=[True, False])


def test_scalar_operand_gradients(helpers):
    x = helpers.rand(np.random.default_rng(10), (7, 3), "float64", 0.5, 2.0)
    for fn in (lambda t: 3.0 - t, lambda t: 1.0 / t, lambda t: t ** 3, lambda t: t ** 0.5,
               lambda t: t ** -1.5, lambda t: 2.0 ** t, lambda t: t * t * t - 2.0 * t):
        helpers.gradcheck(fn, x, batch=True)


def test_min_max_tie_gradient_goes_to_first(helpers):
    x = np.array([1.0, 2.0, 3.0])
    with gc.Graph() as g:
        a = gc.placeholder((3,), "float64")
        b = gc.placeholder((3,), "float64")
        ga, gb = gc.grad(gc.sum(gc.maximum(a, b)), [a, b])
        ha, hb = gc.grad(gc.sum(gc.minimum(a, b)), [a, b])
    out = gc.Session(g).run([ga, gb, ha, hb], {a: x, b: x})
    for first, second in (out[:2], out[2:]):
        np.testing.assert_array_equal(first, [1, 1, 1])
        np.testing.assert_array_equal(second, [0, 0, 0])


def test_where_gradient(helpers):
    rng = np.random.default_rng(11)
    c = rng.uniform(size=(7, 3, 4)) > 0.5
    x = helpers.rand(rng, (7, 1, 4))
    y = helpers.rand(rng, (3, 1))
    helpers.gradcheck(gc.where, c, x, y, batch=[True, True, False])
    helpers.gradcheck(lambda p, q: gc.where(p > 0.3, gc.tanh(p), p * q),
                      helpers.rand(rng, (3, 4), away_from=[0.3]), helpers.rand(rng, (4,)))


def test_comparisons_have_no_gradient(helpers):
    x = helpers.rand(np.random.default_rng(12), (7, 3), away_from=[0.0])
    with gc.Graph() as g:
        p = gc.placeholder((None, 3), "float64")
        mask = gc.cast(p > 0.0, "float64")
        gx = gc.grad(gc.sum(mask * p), p)
    np.testing.assert_array_equal(gc.Session(g).run(gx, {p: x}), (x > 0).astype(np.float64))
    helpers.gradcheck(lambda t: gc.cast(t >= 0.0, "float64") * gc.square(t), x, batch=True)


def test_cast_gradient(helpers):
    rng = np.random.default_rng(13)
    x = helpers.rand(rng, (7, 3), "float32")
    r = helpers.rand(rng, (7, 3), "float64")
    with gc.Graph() as g:
        p = gc.placeholder((None, 3), "float32")
        q = gc.placeholder((None, 3), "float64")
        gx = gc.grad(gc.sum(gc.cast(p, "float64") * q), p)
    out = gc.Session(g).run(gx, {p: x, q: r})
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, r.astype(np.float32))
    # float64 -> float32 -> float64 is differentiable too (FD on a coarse, exact grid)
    helpers.gradcheck(lambda t: gc.cast(gc.cast(t, "float32"), "float64") * 3.0,
                      np.arange(-3, 3, 0.5).reshape(4, 3), eps=2.0 ** -8, rtol=1e-5)


# -- second order ---------------------------------------------------------------------------

SECOND_ORDER = ["sigmoid", "tanh", "exp", "log", "sqrt", "square", "softplus", "elu", "selu",
                "elu_0.7", "neg"]


@pytest.mark.parametrize("name", SECOND_ORDER)
def test_second_derivative(helpers, name):
    """gc.grad of gc.grad: the FD check of x -> f'(x) checks f''."""
    fn, _, (lo, hi), kinks = UNARY[name]
    x = helpers.rand(np.random.default_rng(14), (7, 3), "float64", lo, hi, away_from=kinks)
    helpers.gradcheck(lambda t: gc.grad(gc.sum(fn(t)), t), x, batch=True)


@pytest.mark.parametrize("name", ["mul", "div", "pow", "sub"])
def test_second_derivative_binary(helpers, name):
    fn, _ = BINARY[name]
    a, b = _binary_data(helpers, name, np.random.default_rng(15), (3, 4), (4,), "float64")
    helpers.gradcheck(lambda p, q: gc.grad(gc.sum(fn(p, q) * fn(p, q)), p), a, b)
    helpers.gradcheck(lambda p, q: gc.grad(gc.sum(gc.tanh(fn(p, q))), q), a, b)
