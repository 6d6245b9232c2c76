"""The batch axis in shape ops and gradients: tensors with two ``None`` axes (every
``None`` is the same batch size N), and slices that take rows of the batch axis.

Two ``None`` axes: every gradient that reshapes (reductions without keepdims,
softmax cross-entropy, expand_dims, squeeze, reshape itself) must build a target whose
size is known from N alone, on every backend (issue #11, item 6). Cases go through the
op-case harness (``gradcheck.py``): forward against a NumPy formula at two batch sizes,
float64 finite differences on the NumPy backend, C against NumPy.

Slicing the batch axis (item 13): a fixed number of rows (``x[1:3]``, ``x[-1]``) has a
static shape and is checked against the batch size at run time on every backend; the
whole axis (``:``, ``::-1``) keeps ``None``; a batch-dependent count (``x[1:]``) is
refused where it is written.
"""

import numpy as np
import pytest
from graphc_tests_ops_gradcheck import In, case, quick_on_c

import graphc as gc
from graphc.ops.nn import softmax_cross_entropy_grad

SQUARE = In((None, None, 3))  # (N, N, 3)
IDS = In((None, None), 0, 4, kind="int", dtype="int64")


def np_log_softmax(z):
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


TWO_BATCH_AXES = [
    case("sum(sum(x*x, 2)) (N, N, 3)", lambda t: gc.sum(gc.sum(gc.square(t), axis=2)),
         lambda x: (x * x).sum(), SQUARE),
    case("sum axis=2 (N, N, 3)", lambda t: gc.sum(t, axis=2), lambda x: x.sum(2), SQUARE),
    case("mean axis=(0, 1) (N, N, 3)", lambda t: gc.mean(gc.square(t), axis=(0, 1)),
         lambda x: (x * x).mean((0, 1)), SQUARE),
    case("mean (N, N, 3)", lambda t: gc.mean(gc.square(t)), lambda x: (x * x).mean(), SQUARE),
    case("max axis=-1 (N, N, 3)", lambda t: gc.max(t, axis=-1), lambda x: x.max(-1),
         In((None, None, 3), kind="distinct")),
    case("logsumexp axis=1 (N, N, 3)", lambda t: gc.logsumexp(t, axis=1),
         lambda x: np.log(np.exp(x).sum(1)), SQUARE),
    case("softmax (N, N, 3)", gc.softmax, lambda x: np.exp(np_log_softmax(x)), SQUARE),
    case("softmax_cross_entropy int labels (N, N, 4)", gc.softmax_cross_entropy,
         lambda z, y: -np.take_along_axis(np_log_softmax(z), y[..., None], -1)[..., 0],
         In((None, None, 4)), IDS),
    case("softmax_cross_entropy prob labels (N, N, 4)", gc.softmax_cross_entropy,
         lambda z, p: -(p * np_log_softmax(z)).sum(-1), In((None, None, 4)),
         In((None, None, 4), kind="probs")),
    case("softmax_cross_entropy_grad (N, N, 4)", lambda z, g: softmax_cross_entropy_grad(
        z, gc.argmax(z, axis=-1), g), lambda z, g: g[..., None] * (
        np.exp(np_log_softmax(z)) - (z == z.max(-1, keepdims=True))), In((None, None, 4), kind="distinct"),
        In((None, None))),
    case("expand_dims 1 (N, N, 3)", lambda t: gc.expand_dims(t, 1), lambda x: x[:, None], SQUARE),
    case("squeeze (N, 1, N, 3)", lambda t: gc.squeeze(gc.expand_dims(t, 1), axis=1) * 2.0,
         lambda x: 2 * x, SQUARE),
    case("reshape (N, 3, N)", lambda t: gc.reshape(t, (None, 3, None)),
         lambda x: x.reshape(x.shape[0], 3, x.shape[0]), SQUARE),
    case("reshape (N, N, -1, 1)", lambda t: gc.reshape(t, (None, None, -1, 1)), lambda x: x[..., None],
         SQUARE),
    case("transpose (1, 0, 2) (N, N, 3)", lambda t: gc.transpose(t, (1, 0, 2)),
         lambda x: x.transpose(1, 0, 2), SQUARE),
    case("matmul (N, N, 3) @ (3, 2)", lambda t, w: t @ w, lambda x, w: x @ w, SQUARE, In((3, 2)),
         norm=True),
    case("x[-1] (N, N, 3)", lambda t: t[-1], lambda x: x[-1], SQUARE),
]

BATCH_ROWS = In((None, 5))  # the harness runs batches of 1 and 7, differences at 2

# squared: a gradient that does not read x would leave the batch size of a static-shaped
# fetch unknown to the session
BATCH_SLICES = [
    case("x[0:1, ::2]**2 (N, 5)", lambda t: gc.square(t[0:1, ::2]), lambda x: x[0:1, ::2] ** 2,
         BATCH_ROWS),
    case("x[-1]**2 (N, 5)", lambda t: gc.square(t[-1]), lambda x: x[-1] ** 2, BATCH_ROWS),
    case("x[:-2:-1, 1:]**2 (N, 5)", lambda t: gc.square(t[:-2:-1, 1:]), lambda x: x[:-2:-1, 1:] ** 2,
         BATCH_ROWS),
    case("x[::-1] (N, 5)", lambda t: t[::-1], lambda x: x[::-1], BATCH_ROWS),
    case("x[0] * x[-1] (N, 5)", lambda t: t[0] * t[-1], lambda x: x[0] * x[-1], BATCH_ROWS),
    case("x[0:1]'' (N, 5)", lambda t: gc.grad(gc.sum(gc.square(t[0:1]) * t[0:1]), t),
         lambda x: np.concatenate([3 * x[:1] ** 2, np.zeros_like(x[1:])]), BATCH_ROWS),
]

CASES = quick_on_c(TWO_BATCH_AXES + BATCH_SLICES, "sum(sum(x*x, 2)) (N, N, 3)",
                   "softmax_cross_entropy int labels (N, N, 4)", "x[0:1, ::2]**2 (N, 5)")


@pytest.mark.parametrize("case", CASES)
def test_op(case, backend, check_op):
    check_op(case, backend)


def test_reshape_counts_each_batch_axis():
    """Each None of a target is N: sizes are compared as N**k * n, and a -1 takes a number
    or exactly N; N*N*3 elements never fit a shape with one N."""
    with gc.Graph():
        x = gc.placeholder((None, None, 3))
        assert gc.reshape(gc.sum(x, axis=2), (None, None, 1)).shape == (None, None, 1)
        assert gc.reshape(x, (None, -1, None)).shape == (None, 3, None)
        assert gc.reshape(x, (-1, None, 3)).shape == (None, None, 3)
        for bad in [(None, -1), (None, 3), (None, None, 2), (-1, 3), (None, None, None, 3)]:
            with pytest.raises(gc.ShapeError, match="reshape") as info:
                gc.reshape(x, bad)
            assert "(N, N, 3)" in str(info.value) and "test_batch_axes.py" in str(info.value)
        y = gc.placeholder((12,))
        assert gc.reshape(y, (None, 3)).shape == (4, 3)  # a static input: None takes the rest


def test_static_shapes_of_batch_slices():
    with gc.Graph():
        x = gc.placeholder((None, 5))
        assert x[1:3, ::2].shape == (2, 3)  # the README's example
        assert x[-2:].shape == (2, 5) and x[:4].shape == (4, 5) and x[3:1].shape == (0, 5)
        assert x[2::-1].shape == (3, 5) and x[0].shape == (5,)
        assert x[::-1].shape == x[0:].shape == x[:].shape == (None, 5)


@pytest.mark.parametrize("index", [np.s_[1:], np.s_[:-1], np.s_[::2], np.s_[-3:2], np.s_[-1:0:-1]])
def test_batch_dependent_row_counts_are_refused(index):
    with gc.Graph() as g:
        x = gc.placeholder((None, 5))
        before = list(g.nodes)
        with pytest.raises(gc.ShapeError) as info:
            x[index]  # noqa: B018 - the expression under test
    msg = str(info.value)
    assert "slice" in msg and "depends on the batch size" in msg and "(N, 5)" in msg
    assert "test_batch_axes.py" in msg and g.nodes == before


def test_too_small_a_batch_fails_naming_the_slice_and_changes_no_state(backend):
    """x[2:4] needs 4 rows: a batch of 3 is a GraphcError naming the op, the rows needed,
    the batch size and the user's line, and the failing training step updates nothing;
    the gradient alone (which does not need the forward slice) checks too."""
    with gc.Graph() as g:
        x = gc.placeholder((None, 2), dtype="float64")
        W = gc.variable(np.ones((2, 2)), name="W")
        loss = gc.sum(gc.square((x @ W)[2:4]))
        train = gc.optim.SGD(lr=0.1).minimize(loss)
        (gx,) = gc.grad(gc.sum(x[2:4]), [x])  # slice_grad of ones: x[2:4] is not computed
        total = gc.sum(x)
    sess = gc.Session(g, backend=backend)
    ok = sess.run([loss, gx], {x: np.ones((4, 2))})
    assert ok[0] == 16.0 and np.array_equal(ok[1], [[0, 0], [0, 0], [1, 1], [1, 1]])
    for fetches in ([loss, train], [gx, total]):
        with pytest.raises(gc.GraphcError) as info:
            sess.run(fetches, {x: np.ones((3, 2))})
        msg = str(info.value)
        assert "slice" in msg and "[2:4]" in msg and "at least 4 rows" in msg
        assert "batch of 3" in msg and "test_batch_axes.py" in msg
    assert np.array_equal(sess.get_value(W), np.ones((2, 2)))


def test_issue_example_two_batch_axes(backend):
    """The issue's graph: gc.grad(sum(sum(x, axis=2)), [x]) for x (None, None, 3), and the
    gradients of expand_dims, squeeze and softmax_cross_entropy, built and run."""
    with gc.Graph() as g:
        x = gc.placeholder((None, None, 3), dtype="float64")
        y = gc.placeholder((None, None), dtype="int64")
        loss = gc.sum(gc.sum(x, axis=2))
        others = gc.sum(gc.squeeze(gc.expand_dims(x, 0), 0) * 2.0) + gc.sum(
            gc.softmax_cross_entropy(x, y))
        gx, gx2 = gc.grad(loss, [x]) + gc.grad(others, [x])
    X = np.arange(12.0).reshape(2, 2, 3) / 10
    Y = np.array([[0, 1], [2, 0]])
    _, got, _, got2 = gc.Session(g, backend=backend).run([loss, gx, others, gx2], {x: X, y: Y})
    np.testing.assert_array_equal(got, np.ones((2, 2, 3)))
    soft = np.exp(X) / np.exp(X).sum(-1, keepdims=True)
    np.testing.assert_allclose(got2, 2.0 + soft - np.eye(3)[Y], rtol=1e-12)
