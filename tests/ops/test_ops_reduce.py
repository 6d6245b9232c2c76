"""Reductions: sum, mean, max (axis None/int/tuple, keepdims), argmax, logsumexp."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphc as gc

DTYPES = ["float32", "float64"]
AXES = [None, 0, 1, -1, (0, 2), (1, 2), (-1, 0), (0, 1, 2)]


def _np_logsumexp(x, axis, keepdims):
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


REDUCE = {
    "sum": (gc.sum, np.sum),
    "mean": (gc.mean, np.mean),
    "max": (gc.max, np.max),
    "logsumexp": (gc.logsumexp, _np_logsumexp),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("name", list(REDUCE))
def test_reduce_forward(helpers, name, axis, keepdims, dtype):
    fn, ref = REDUCE[name]
    x = helpers.rand(np.random.default_rng(0), (3, 4, 5), dtype)
    out = helpers.run(lambda t: fn(t, axis=axis, keepdims=keepdims), x)
    expected = ref(x.astype(np.float64), axis=axis, keepdims=keepdims)
    helpers.assert_close(out, expected, dtype, norm=True, what=f"{name} axis={axis}")


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("axis", [None, 0, 1, (0, 2), -1])
@pytest.mark.parametrize("name", list(REDUCE))
def test_reduce_forward_batch_none(helpers, name, axis, batch):
    """Reducing over (and not over) the run-time batch axis; mean counts N at run time."""
    fn, ref = REDUCE[name]
    x = helpers.rand(np.random.default_rng(batch), (batch, 3, 2), "float32")
    for keepdims in (False, True):
        out = helpers.run(lambda t, k=keepdims: fn(t, axis=axis, keepdims=k), x, batch=True)
        helpers.assert_close(out, ref(x.astype(np.float64), axis=axis, keepdims=keepdims),
                             "float32", norm=True, what=f"{name} axis={axis}")


def test_integer_and_bool_reductions(helpers):
    rng = np.random.default_rng(1)
    a = rng.integers(-100, 100, size=(7, 4)).astype(np.int64)
    b = rng.uniform(size=(7, 4)) > 0.3
    s, m, sb = helpers.run(lambda p, q: [gc.sum(p, axis=0), gc.max(p, axis=1), gc.sum(q)],
                           a, b, batch=True)
    np.testing.assert_array_equal(s, a.sum(axis=0))
    np.testing.assert_array_equal(m, a.max(axis=1))
    assert s.dtype == np.int64 and m.dtype == np.int64
    assert sb == b.sum() and sb.dtype == np.int64


@pytest.mark.parametrize("dtype", DTYPES + ["int64"])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_argmax(helpers, axis, keepdims, dtype):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 4, size=(7, 5)).astype(dtype)  # ties: the first maximum wins
    out = helpers.run(lambda t: gc.argmax(t, axis=axis, keepdims=keepdims), x)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, np.argmax(x, axis=axis, keepdims=keepdims))
    out = helpers.run(lambda t: gc.argmax(t, axis=axis, keepdims=keepdims), x, batch=True)
    np.testing.assert_array_equal(out, np.argmax(x, axis=axis, keepdims=keepdims))


def test_argmax_has_no_gradient():
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), "float64")
        gx = gc.grad(gc.sum(gc.cast(gc.argmax(x, axis=1), "float64")) + gc.sum(x * 0.0), x)
    out = gc.Session(g).run(gx, {x: np.arange(6.0).reshape(2, 3)})
    np.testing.assert_array_equal(out, np.zeros((2, 3)))


def test_logsumexp_large_values(helpers):
    out = helpers.run(gc.logsumexp, np.array([1000.0, 1000.0]))
    np.testing.assert_allclose(out, 1000.0 + np.log(2.0), rtol=1e-12)
    out = helpers.run(gc.logsumexp, np.array([1000.0, 1000.0], np.float32))
    np.testing.assert_allclose(out, 1000.0 + np.log(2.0), rtol=1e-6)
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])
    out = helpers.run(lambda t: gc.logsumexp(t, axis=1), x)
    np.testing.assert_allclose(out, [1e4, -1e4 + np.log(3.0)], rtol=1e-12)
    with gc.Graph() as g:
        p = gc.placeholder((2, 3), "float64")
        gx = gc.grad(gc.sum(gc.logsumexp(p, axis=1)), p)
    grad = gc.Session(g).run(gx, {p: x})
    np.testing.assert_allclose(grad, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-12)


# -- gradients ------------------------------------------------------------------------------

@st.composite
def shape_and_axis(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    axis = draw(st.one_of(
        st.none(),
        st.integers(-len(shape), len(shape) - 1),
        st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape),
                 unique=True).map(tuple)))
    return shape, axis


@settings(max_examples=12, deadline=None, database=None)
@given(case=shape_and_axis(), keepdims=st.booleans(), seed=st.integers(0, 2**16))
@pytest.mark.parametrize("name", list(REDUCE))
def test_reduce_gradient(helpers, name, case, keepdims, seed):
    fn, _ = REDUCE[name]
    shape, axis = case
    x = helpers.distinct(np.random.default_rng(seed), shape)  # no ties for max
    helpers.gradcheck(lambda t: fn(t, axis=axis, keepdims=keepdims), x, seed=seed)


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 2), -1])
@pytest.mark.parametrize("name", list(REDUCE))
def test_reduce_gradient_batch_none(helpers, name, axis):
    fn, _ = REDUCE[name]
    for batch in (1, 7):
        x = helpers.distinct(np.random.default_rng(batch), (batch, 3, 2))
        for keepdims in (False, True):
            helpers.gradcheck(lambda t, k=keepdims: fn(t, axis=axis, keepdims=k), x, batch=True)


def test_max_gradient_ties_share():
    """Tied maxima share the gradient (documented in gc.max)."""
    with gc.Graph() as g:
        x = gc.placeholder((2, 3), "float64")
        gx = gc.grad(gc.sum(gc.max(x, axis=1)), x)
    out = gc.Session(g).run(gx, {x: np.array([[1.0, 3.0, 3.0], [5.0, 5.0, 5.0]])})
    np.testing.assert_allclose(out, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])


@pytest.mark.parametrize("name", ["sum", "mean", "logsumexp"])
def test_reduce_second_order(helpers, name):
    fn, _ = REDUCE[name]
    x = helpers.rand(np.random.default_rng(3), (7, 3))
    helpers.gradcheck(lambda t: gc.grad(gc.sum(gc.square(fn(gc.tanh(t), axis=1))), t), x,
                      batch=True)
