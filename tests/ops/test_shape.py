"""graphc/ops/shape.py: reshape (and flatten, expand_dims, squeeze), transpose, concat,
slicing (and its adjoint slice_grad), one_hot.

Cases (``gradcheck.case``): a NumPy formula and input recipes each; the harness checks
every element forward in both dtypes with the static shape (``None`` batch axis at two
batch sizes), finite differences on the NumPy backend and C against NumPy. A hypothesis
test draws random basic indexes (ints, steps, negative bounds, empty results).
"""

import numpy as np
import pytest
from graphc_tests_ops_gradcheck import Case, In, case, check_numpy, quick_on_c
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.ops.shape import flat_part

BATCH = In((None, 3, 4))
STATIC = In((3, 4, 5))


def shape_case(name, fn, ref, x=BATCH, **options):
    return case(name, fn, ref, x, **options)


CASES = [
    shape_case("reshape (None, 12)", lambda t: gc.reshape(t, (None, 12)), lambda x: x.reshape(-1, 12)),
    shape_case("reshape (-1, 2, 6)", lambda t: gc.reshape(t, (-1, 2, 6)), lambda x: x.reshape(-1, 2, 6)),
    shape_case("reshape (5, -1, 2)", lambda t: gc.reshape(t, (5, -1, 2)), lambda x: x.reshape(5, -1, 2),
               STATIC),
    shape_case("flatten", lambda t: gc.flatten(gc.reshape(t, (None, 3, 2, 2))),
               lambda x: x.reshape(x.shape[0], 12)),
    shape_case("expand_dims 1", lambda t: gc.expand_dims(t, 1), lambda x: x[:, None]),
    shape_case("expand_dims -1", lambda t: gc.expand_dims(t, -1), lambda x: x[..., None], STATIC),
    shape_case("squeeze axis", lambda t: gc.squeeze(gc.reshape(t, (3, 1, 4, 5, 1)), axis=1),
               lambda x: x.reshape(3, 4, 5, 1), STATIC),
    shape_case("squeeze all", lambda t: gc.squeeze(t[0:1, 2:3, :]), lambda x: x[0, 2, :], STATIC),
    shape_case("transpose (reverse)", gc.transpose, lambda x: x.transpose(), STATIC),
    shape_case(".T with the batch axis", lambda t: t.T, lambda x: x.T),
    shape_case("transpose (0, 2, 1)", lambda t: gc.transpose(t, (0, 2, 1)), lambda x: x.transpose(0, 2, 1)),
    shape_case("transpose batch moved", lambda t: gc.transpose(t, (1, 0, 2)), lambda x: x.transpose(1, 0, 2)),
    shape_case("transpose negative axes", lambda t: gc.transpose(t, (0, -1, -2)),
               lambda x: x.transpose(0, 2, 1), STATIC),
    shape_case("slice [:, 1:3, ::2]", lambda t: t[:, 1:3, ::2], lambda x: x[:, 1:3, ::2]),
    shape_case("slice [:, -1]", lambda t: t[:, -1], lambda x: x[:, -1]),
    shape_case("slice [:, 1, 4:0:-2]", lambda t: t[:, 1, 4:0:-2], lambda x: x[:, 1, 4:0:-2], STATIC),
    shape_case("slice [::-1]", lambda t: t[::-1], lambda x: x[::-1], STATIC),
    shape_case("concat axis 1", lambda t: gc.concat([t, gc.square(t)], axis=1),
               lambda x: np.concatenate([x, x * x], axis=1)),
    shape_case("concat axis -1", lambda t: gc.concat([t[:, :, 1:], t, t], axis=-1),
               lambda x: np.concatenate([x[:, :, 1:], x, x], axis=-1)),
    shape_case("concat axis 0", lambda t: gc.concat([t, t[1:], t[:1]], axis=0),
               lambda x: np.concatenate([x, x[1:], x[:1]], axis=0), STATIC),
    case("concat three inputs", lambda p, q, r: gc.concat([p, gc.tanh(q), r], axis=-1),
         lambda a, b, c: np.concatenate([a, np.tanh(b), c], axis=-1), In((None, 1)), In((None, 3)),
         In((None, 2))),
    # second order: slice_grad and concat's slices have gradients too
    shape_case("slice_grad'", lambda t: gc.grad(gc.sum(gc.square(t[1:3, ::2])), t),
               lambda x: _scatter(2 * x[1:3, ::2], x.shape, np.s_[1:3, ::2]), In((4, 5))),
    shape_case("concat'", lambda t: gc.grad(gc.sum(gc.tanh(gc.concat([t, t[:, 1:]], axis=1))), t),
               lambda x: (1 - np.tanh(x) ** 2) + _scatter(1 - np.tanh(x[:, 1:]) ** 2, x.shape,
                                                          np.s_[:, 1:]), In((None, 4))),
    # one_hot: ids out of range give zero rows
    case("one_hot", lambda y: gc.one_hot(y, 5), lambda y: np.eye(5, dtype=np.float32)[y],
         In((None,), 0, 5, kind="int", dtype="int64"), out_dtype="float32"),
    case("one_hot float64 int32 (3, 2)", lambda y: gc.one_hot(y, 4, dtype="float64"),
         lambda y: np.eye(4)[y], In((3, 2), 0, 4, kind="int", dtype="int32"), out_dtype="float64"),
    case("one_hot out of range", lambda y: gc.one_hot(y, 3),
         lambda y: (y[:, None] == np.arange(3)).astype(np.float32),
         In((None,), -1, 5, kind="int", dtype="int64"), out_dtype="float32"),
    case("one_hot * x", lambda y, x: gc.one_hot(y, 3, dtype=x.dtype) * x, lambda y, x: np.eye(3)[y] * x,
         In((None,), 0, 3, kind="int", dtype="int64"), In((None, 3))),
]


def _scatter(values, shape, index):
    out = np.zeros(shape)
    out[index] = values
    return out


CASES += [  # a run of a vector read as a matrix in place (an allreduce's averaged gradients)
    case("flat_part 2..14 as (3, 4), then 2 x", lambda t: flat_part(gc.tanh(t), 2, (3, 4)) * 2.0,
         lambda x: np.tanh(x[2:14]).reshape(3, 4) * 2, In((20,)), grad=False, c={"grad": False}),
]

CASES = quick_on_c(CASES, "reshape (-1, 2, 6)", "transpose batch moved", "slice [:, 1:3, ::2]",
                   "concat three inputs", "one_hot out of range", "flat_part 2..14 as (3, 4), then 2 x")


@pytest.mark.parametrize("case", CASES)
def test_op(case, backend, check_op):
    check_op(case, backend)


@st.composite
def basic_indexes(draw):
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


@settings(max_examples=15, deadline=None, database=None, derandomize=True)
@given(drawn=basic_indexes())
def test_slicing_random_indexes(drawn):
    """x[index] for random basic indexes (possibly empty): forward and finite differences
    (slice_grad scatters back), NumPy backend."""
    shape, index = drawn
    check_numpy(Case(f"x{list(index)}", lambda t: t[index] * 1.0, lambda x: x[index], (In(shape),)))


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
        assert gc.reshape(y, (3, 4, 5)) is y and gc.transpose(y, (0, 1, 2)) is y  # no nodes
