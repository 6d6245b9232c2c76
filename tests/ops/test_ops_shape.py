"""Shape ops: reshape, transpose/.T, flatten, concat, expand_dims, squeeze, one_hot, slicing."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc

DTYPES = ["float32", "float64"]

# name -> (graph function, NumPy formula) on a (3, 4, 5) input
STATIC = {
    "reshape": (lambda t: gc.reshape(t, (12, 5)), lambda x: x.reshape(12, 5)),
    "reshape_-1": (lambda t: gc.reshape(t, (-1, 10)), lambda x: x.reshape(-1, 10)),
    "reshape_mid_-1": (lambda t: gc.reshape(t, (5, -1, 2)), lambda x: x.reshape(5, -1, 2)),
    "reshape_flat": (lambda t: gc.reshape(t, (60,)), lambda x: x.reshape(60)),
    "transpose": (gc.transpose, lambda x: x.transpose()),
    "transpose_axes": (lambda t: gc.transpose(t, (1, 2, 0)), lambda x: x.transpose(1, 2, 0)),
    "transpose_neg_axes": (lambda t: gc.transpose(t, (0, -1, -2)),
                           lambda x: x.transpose(0, 2, 1)),
    "T": (lambda t: t.T, lambda x: x.T),
    "T_2d": (lambda t: t[0].T, lambda x: x[0].T),
    "flatten": (gc.flatten, lambda x: x.reshape(x.shape[0], -1)),
    "expand_dims_0": (lambda t: gc.expand_dims(t, 0), lambda x: x[None]),
    "expand_dims_2": (lambda t: gc.expand_dims(t, 2), lambda x: x[:, :, None]),
    "expand_dims_-1": (lambda t: gc.expand_dims(t, -1), lambda x: x[..., None]),
    "squeeze": (lambda t: gc.squeeze(t[:, 1:2, :]), lambda x: x[:, 1, :]),
    "squeeze_axis": (lambda t: gc.squeeze(gc.reshape(t, (3, 1, 4, 5, 1)), axis=1),
                     lambda x: x.reshape(3, 4, 5, 1)),
    "squeeze_all": (lambda t: gc.squeeze(t[0:1, 2:3, :]), lambda x: x[0, 2, :]),
    "slice": (lambda t: t[1:3, ::2], lambda x: x[1:3, ::2]),
    "slice_int": (lambda t: t[-1, 1], lambda x: x[-1, 1]),
    "slice_mixed": (lambda t: t[:, 1, 4:0:-2], lambda x: x[:, 1, 4:0:-2]),
    "slice_reverse": (lambda t: t[::-1], lambda x: x[::-1]),
    "slice_last": (lambda t: t[:, :, 2], lambda x: x[:, :, 2]),
    "concat_0": (lambda t: gc.concat([t, t[1:], t[:1]], axis=0),
                 lambda x: np.concatenate([x, x[1:], x[:1]], axis=0)),
    "concat_-1": (lambda t: gc.concat([t[:, :, :2], t * 2.0], axis=-1),
                  lambda x: np.concatenate([x[:, :, :2], x * 2], axis=-1)),
}

# name -> (graph function, NumPy formula) on a (N, 3, 4) input with a None batch
BATCHED = {
    "reshape_None": (lambda t: gc.reshape(t, (None, 12)), lambda x: x.reshape(-1, 12)),
    "reshape_-1": (lambda t: gc.reshape(t, (-1, 2, 6)), lambda x: x.reshape(-1, 2, 6)),
    "reshape_None_3d": (lambda t: gc.reshape(t, (None, 4, 3)), lambda x: x.reshape(-1, 4, 3)),
    "transpose": (gc.transpose, lambda x: x.transpose()),
    "transpose_axes": (lambda t: gc.transpose(t, (0, 2, 1)), lambda x: x.transpose(0, 2, 1)),
    "transpose_batch_moved": (lambda t: gc.transpose(t, (1, 0, 2)),
                              lambda x: x.transpose(1, 0, 2)),
    "T": (lambda t: t.T, lambda x: x.T),
    "flatten": (gc.flatten, lambda x: x.reshape(x.shape[0], -1)),
    "flatten_4d": (lambda t: gc.flatten(gc.reshape(t, (None, 3, 2, 2))),
                   lambda x: x.reshape(x.shape[0], 12)),
    "concat_1": (lambda t: gc.concat([t, gc.square(t)], axis=1),
                 lambda x: np.concatenate([x, x * x], axis=1)),
    "concat_-1": (lambda t: gc.concat([t[:, :, 1:], t, t], axis=-1),
                  lambda x: np.concatenate([x[:, :, 1:], x, x], axis=-1)),
    "expand_dims_1": (lambda t: gc.expand_dims(t, 1), lambda x: x[:, None]),
    "expand_dims_0": (lambda t: gc.expand_dims(t, 0), lambda x: x[None]),
    "squeeze": (lambda t: gc.squeeze(gc.expand_dims(t, 2), axis=2), lambda x: x),
    "squeeze_slice": (lambda t: gc.squeeze(t[:, 1:2]), lambda x: x[:, 1]),
    "slice": (lambda t: t[:, 1:3, ::2], lambda x: x[:, 1:3, ::2]),
    "slice_int": (lambda t: t[:, -1], lambda x: x[:, -1]),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(STATIC))
def test_shape_op_forward(helpers, name, dtype):
    fn, ref = STATIC[name]
    x = helpers.rand(np.random.default_rng(0), (3, 4, 5), dtype)
    out = helpers.run(fn, x)
    helpers.assert_close(out, ref(x.astype(np.float64)), dtype, what=name)


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("name", list(BATCHED))
def test_shape_op_forward_batch_none(helpers, name, batch):
    fn, ref = BATCHED[name]
    x = helpers.rand(np.random.default_rng(batch), (batch, 3, 4), "float32")
    out = helpers.run(fn, x, batch=True)
    helpers.assert_close(out, ref(x.astype(np.float64)), "float32", what=name)


def test_static_shapes():
    with gc.Graph():
        x = gc.placeholder((None, 3, 4))
        assert gc.reshape(x, (-1, 12)).shape == (None, 12)
        assert gc.flatten(x).shape == (None, 12)
        assert x.T.shape == (4, 3, None)
        assert gc.transpose(x, (1, 0, 2)).shape == (3, None, 4)
        assert gc.expand_dims(x, -1).shape == (None, 3, 4, 1)
        assert gc.concat([x, x], axis=2).shape == (None, 3, 8)
        assert x[:, 1:3, ::2].shape == (None, 2, 2)
        assert x[:, 0].shape == (None, 4)
        y = gc.placeholder((3, 4, 5))
        assert gc.reshape(y, (-1, 10)).shape == (6, 10)
        assert y[1:3, ::2].shape == (2, 2, 5)
        assert gc.squeeze(y[:1]).shape == (4, 5)


def test_multi_input_concat(helpers):
    rng = np.random.default_rng(1)
    a, b, c = (helpers.rand(rng, (7, k), "float32") for k in (1, 3, 2))
    out = helpers.run(lambda p, q, r: gc.concat([p, q, r], axis=1), a, b, c, batch=True)
    helpers.assert_close(out, np.concatenate([a, b, c], axis=1).astype(np.float64), "float32")
    helpers.gradcheck(lambda p, q, r: gc.concat([p, gc.tanh(q), r], axis=-1), a, b, c,
                      batch=True)
    a, b = helpers.rand(rng, (2, 3)), helpers.rand(rng, (4, 3))
    out = helpers.run(lambda p, q: gc.concat([p, q], axis=0), a, b)
    helpers.assert_close(out, np.concatenate([a, b]))
    helpers.gradcheck(lambda p, q: gc.concat([q, p, q], axis=0), a, b)


@pytest.mark.parametrize("label_dtype", ["int32", "int64"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_hot(helpers, dtype, label_dtype):
    rng = np.random.default_rng(2)
    for batch in (1, 7):
        y = rng.integers(0, 5, size=(batch,)).astype(label_dtype)
        out = helpers.run(lambda t: gc.one_hot(t, 5, dtype=dtype), y, batch=True)
        assert out.dtype == np.dtype(dtype) and out.shape == (batch, 5)
        np.testing.assert_array_equal(out, np.eye(5)[y])
    y2 = rng.integers(0, 4, size=(3, 2)).astype(label_dtype)
    out = helpers.run(lambda t: gc.one_hot(t, 4), y2)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.eye(4)[y2])
    out = helpers.run(lambda t: gc.one_hot(t, 3), np.array([0, 3, -1, 2], label_dtype))
    np.testing.assert_array_equal(out, [[1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 1]])


# -- gradients ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(STATIC))
def test_shape_op_gradient(helpers, name):
    fn, _ = STATIC[name]
    helpers.gradcheck(fn, helpers.rand(np.random.default_rng(3), (3, 4, 5)))


@pytest.mark.parametrize("name", list(BATCHED))
def test_shape_op_gradient_batch_none(helpers, name):
    fn, _ = BATCHED[name]
    for batch in (1, 7):
        helpers.gradcheck(fn, helpers.rand(np.random.default_rng(batch), (batch, 3, 4)),
                          batch=True)


@st.composite
def slices(draw):
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    index = []
    for d in shape[:draw(st.integers(1, len(shape)))]:
        if draw(st.booleans()):
            index.append(draw(st.integers(-d, d - 1)))
        else:
            start = draw(st.one_of(st.none(), st.integers(-d - 1, d)))
            stop = draw(st.one_of(st.none(), st.integers(-d - 1, d + 1)))
            step = draw(st.one_of(st.none(), st.sampled_from([1, 2, 3, -1, -2])))
            index.append(slice(start, stop, step))
    return shape, tuple(index)


@settings(max_examples=30, deadline=None, database=None)
@given(case=slices(), seed=st.integers(0, 2**16))
def test_slicing_matches_numpy(helpers, case, seed):
    shape, index = case
    x = helpers.rand(np.random.default_rng(seed), shape)
    expected = x[index]  # may be empty (e.g. x[3:1])
    helpers.assert_close(helpers.run(lambda t: t[index], x), expected, what=str(index))
    helpers.gradcheck(lambda t: t[index] * 1.0, x, seed=seed)


def test_slice_second_order(helpers):
    """The slice gradient (slice_grad) has a gradient too."""
    x = helpers.rand(np.random.default_rng(4), (4, 5))
    helpers.gradcheck(lambda t: gc.grad(gc.sum(gc.square(t[1:3, ::2])), t), x)
    helpers.gradcheck(lambda t: gc.grad(gc.sum(gc.tanh(gc.concat([t, t[:, 1:]], axis=1))), t),
                      x, batch=True)


def test_one_hot_has_no_gradient(helpers):
    with gc.Graph() as g:
        y = gc.placeholder((None,), "int64")
        x = gc.placeholder((None, 3), "float64")
        gx = gc.grad(gc.sum(gc.one_hot(y, 3, dtype="float64") * x), x)
    out = gc.Session(g).run(gx, {y: np.array([2, 0]), x: np.ones((2, 3))})
    np.testing.assert_array_equal(out, [[0, 0, 1], [1, 0, 0]])
