"""graphc/ops/indexing.py: gather/take (and gather_grad, the scatter-add), stack, split,
pad, tril/triu.

Cases (``gradcheck.case``) against NumPy formulas with int index tensors full of
repeats (duplicates must accumulate in the gradient); then the run-time index check
(out of range and negative indices fail the step and change no state), an embedding
trained one SGD step, and the refusals at graph-building time.
"""

import re

import numpy as np
import pytest
from graphc_tests_ops_gradcheck import In, case, quick_on_c

import graphc as gc


def ids(shape, high, dtype="int64"):
    """Int indices in [0, high): with these small ranges, repeats are the rule."""
    return In(shape, 0, high, kind="int", dtype=dtype)


def _scatter_add(shape, axis, idx, rows):
    out = np.zeros(shape)
    np.add.at(np.moveaxis(out, axis, 0), idx.reshape(-1),
              np.moveaxis(rows.reshape(shape[:axis] + (-1,) + shape[axis + 1:]), axis, 0))
    return out


def _pad(x, width, value):
    return np.pad(x, width, constant_values=value)


CASES = [
    case("gather embedding (V, D) by (None, T)", lambda t, i: gc.gather(t, i), lambda t, i: t[i],
         In((6, 3)), ids((None, 5), 6)),
    case("gather axis 1 int32 (2, 3) indices", lambda x, i: gc.gather(x, i, axis=1),
         lambda x, i: np.take(x, i, axis=1), In((None, 4, 3)), ids((2, 3), 4, "int32")),
    case("gather axis -1 scalar index", lambda x, i: gc.gather(x, i, axis=-1),
         lambda x, i: np.take(x, i, axis=-1), In((3, 4, 5)), ids((), 5)),
    case("gather on the batch axis", lambda x, i: gc.gather(x, i, axis=0),
         lambda x, i: x[i], In((None, 3)), ids((4,), 1)),
    case("gather by batch ids along axis 1: two None axes", lambda x, i: gc.gather(x, i, axis=1),
         lambda x, i: np.take(x, i, axis=1), In((None, 4, 3)), ids((None,), 4)),
    case("take axis=None", lambda x, i: gc.take(x, i), lambda x, i: np.take(x, i),
         In((3, 4)), ids((None, 2), 12)),
    case("take axis 2", lambda x, i: gc.take(x, i, axis=2), lambda x, i: np.take(x, i, axis=2),
         In((None, 2, 5)), ids((3,), 5)),
    # second order: gather_grad's gradient is a gather
    case("gather_grad'", lambda t, i: gc.grad(gc.sum(gc.square(gc.gather(t, i))), t),
         lambda t, i: _scatter_add(t.shape, 0, i, 2 * t[i]), In((5, 2)), ids((None, 3), 5)),
    case("gather_grad' axis 1", lambda x, i: gc.grad(gc.sum(gc.tanh(gc.gather(x, i, axis=1))), x),
         lambda x, i: _scatter_add(x.shape, 1, i, 1 - np.tanh(np.take(x, i, axis=1)) ** 2),
         In((None, 4, 2)), ids((3, 2), 4)),
    case("stack axis 0", lambda a, b: gc.stack([a, b, a]), lambda a, b: np.stack([a, b, a]),
         In((None, 3)), In((None, 3))),
    case("stack axis 1", lambda a, b: gc.stack([a, gc.tanh(b)], axis=1),
         lambda a, b: np.stack([a, np.tanh(b)], axis=1), In((None, 3, 2)), In((None, 3, 2))),
    case("stack axis -1", lambda a: gc.stack([a, a * a], axis=-1), lambda a: np.stack([a, a * a], -1),
         In((2, 3))),
    case("split 3 axis 1", lambda x: gc.split(x, 3, axis=1), lambda x: np.split(x, 3, axis=1),
         In((None, 6, 2))),
    case("split sizes axis -1", lambda x: gc.split(x, [1, 0, 3], axis=-1),
         lambda x: [x[..., :1], x[..., 1:1], x[..., 1:]], In((None, 2, 4))),
    case("pad zeros", lambda x: gc.pad(x, ((0, 0), (1, 2), (0, 1))),
         lambda x: _pad(x, ((0, 0), (1, 2), (0, 1)), 0.0), In((None, 3, 2))),
    case("pad value 1.5 static", lambda x: gc.pad(x, ((2, 1), (0, 3)), value=1.5),
         lambda x: _pad(x, ((2, 1), (0, 3)), 1.5), In((2, 3))),
    case("pad one pair for every axis", lambda x: gc.pad(x, (1, 2), value=-1.0),
         lambda x: _pad(x, (1, 2), -1.0), In((3, 2))),
    case("tril", gc.tril, np.tril, In((None, 4, 5))),
    case("tril k=-1", lambda x: gc.tril(x, -1), lambda x: np.tril(x, -1), In((5, 4))),
    case("triu k=1", lambda x: gc.triu(x, 1), lambda x: np.triu(x, 1), In((None, 2, 4, 3))),
    case("triu k=-2", lambda x: gc.triu(x, k=-2), lambda x: np.triu(x, -2), In((4, 4))),
]

CASES = quick_on_c(CASES, "gather embedding (V, D) by (None, T)", "gather_grad' axis 1", "stack axis 1",
                   "split 3 axis 1", "pad value 1.5 static", "tril")


@pytest.mark.parametrize("case", CASES)
def test_op(case, backend, check_op):
    check_op(case, backend)


def test_static_shapes():
    with gc.Graph():
        table = gc.placeholder((10, 4))
        i = gc.placeholder((None, 7), "int64")
        x = gc.placeholder((None, 3, 6))
        assert gc.gather(table, i).shape == (None, 7, 4)
        assert gc.gather(x, i, axis=2).shape == (None, 3, None, 7)
        assert gc.take(table, i).shape == (None, 7)
        assert gc.stack([x, x], axis=-1).shape == (None, 3, 6, 2)
        assert [t.shape for t in gc.split(x, [2, 4], axis=2)] == [(None, 3, 2), (None, 3, 4)]
        assert gc.pad(x, ((0, 0), (1, 1), (2, 0))).shape == (None, 5, 8)
        assert gc.tril(x).shape == (None, 3, 6)


def _embedding_step():
    with gc.Graph(seed=1) as g:
        ids_ = gc.placeholder((None, 4), "int64", name="ids")
        y = gc.placeholder((None, 4, 3), "float64", name="y")
        table = gc.variable(np.random.default_rng(3).normal(size=(5, 3)), name="table")
        out = gc.gather(table, ids_)
        line = _line() - 1
        loss = gc.sum(out * y)
        train = gc.optim.SGD(lr=0.5).minimize(loss)
    return g, ids_, y, table, out, loss, train, line


def _line():
    import inspect
    return inspect.currentframe().f_back.f_lineno


def test_embedding_training_step(backend):
    """(N, T) ids into a (V, D) table: one SGD step adds -lr * y at each id, repeats
    accumulate (ids 2 and 0 appear several times, 4 never)."""
    g, ids_, y, table, out, loss, train, _ = _embedding_step()
    sess = gc.Session(g, backend=backend)
    t0 = sess.get_value(table).copy()
    idx = np.array([[2, 0, 2, 1], [3, 2, 0, 0], [1, 1, 2, 3]])
    ys = np.random.default_rng(4).uniform(-1, 1, size=(3, 4, 3))
    value, _ = sess.run([out, train], {ids_: idx, y: ys})
    np.testing.assert_array_equal(value, t0[idx])
    expected = t0 - 0.5 * _scatter_add(t0.shape, 0, idx, ys)
    np.testing.assert_allclose(sess.get_value(table), expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(sess.get_value(table)[4], t0[4])


@pytest.mark.parametrize("bad", [5, -1])
def test_index_out_of_range_fails_the_step_and_changes_nothing(backend, bad):
    """A bad id fails the training step with the op, the index, the range and the user's
    line; the table and the step counter stay as they were."""
    g, ids_, y, table, out, loss, train, line = _embedding_step()
    sess = gc.Session(g, backend=backend)
    feed = {ids_: np.array([[0, 1, 2, 3], [4, 3, 2, 1]]), y: np.ones((2, 4, 3))}
    sess.run([loss, train], feed)
    before, step = sess.get_value(table).copy(), sess.step
    feed[ids_] = np.array([[0, 1, 2, 3], [4, 3, bad, 1]])
    for fetches in ([loss, train], out):
        with pytest.raises(gc.GraphcError) as info:
            sess.run(fetches, feed)
        msg = str(info.value)
        assert "gather" in msg and f"index {bad} (element 6 " in msg and "out of range [0, 5)" in msg, msg
        if fetches is out:
            assert re.search(rf"test_indexing\.py:{line}\b", msg), msg
        np.testing.assert_array_equal(sess.get_value(table), before)
        assert sess.step == step


def test_refusals():
    with gc.Graph():
        x = gc.placeholder((None, 6))
        with pytest.raises(gc.DTypeError, match="gather: indices must be int"):
            gc.gather(x, gc.placeholder((2,)), axis=1)
        with pytest.raises(gc.ShapeError, match="gather: axis 2 out of range"):
            gc.gather(x, gc.constant([0]), axis=2)
        with pytest.raises(gc.ShapeError, match="take: axis=None flattens x"):
            gc.take(x, gc.constant([0]))
        with pytest.raises(gc.ShapeError, match="cannot be split into 4 equal parts"):
            gc.split(x, 4, axis=1)
        with pytest.raises(gc.ShapeError, match=r"must be >= 0 and add up to 6"):
            gc.split(x, [2, 2], axis=1)
        with pytest.raises(gc.ShapeError, match="cannot split the batch axis"):
            gc.split(x, 2, axis=0)
        with pytest.raises(gc.ShapeError, match="batch axis cannot be padded"):
            gc.pad(x, ((1, 0), (0, 0)))
        with pytest.raises(gc.ArgumentError, match="must be non-negative ints"):
            gc.pad(x, ((0, 0), (-1, 0)))
        with pytest.raises(gc.ArgumentError, match="one .before, after. pair per axis"):
            gc.pad(x, ((0, 0), (1, 1), (1, 1)))
        with pytest.raises(gc.ShapeError, match="stack: all tensors must have the same shape"):
            gc.stack([x, x[:, 1:]])
        with pytest.raises(gc.ShapeError, match="tril: needs static last two axes"):
            gc.tril(x)
        with pytest.raises(gc.ShapeError, match="triu: needs static last two axes"):
            gc.triu(gc.placeholder((4,)))


def test_split_gradient_is_one_concat():
    """The gradients of split's pieces join into one concat (no zero-padded slice_grad
    per piece); pieces next to each other join even when some are unused."""
    with gc.Graph() as g:
        x = gc.placeholder((None, 8), "float64")
        a, b, c, d = gc.split(x, 4, axis=1)
        gx = gc.grad(gc.sum(a * 1.0 + gc.tanh(b) + c * c + d * 2.0), x)
        gx_gap = gc.grad(gc.sum(gc.tanh(b) + c * c), x)
    fwd = {n.id for n in g.nodes if n.op.name == "slice"}
    names = [n.op.name for n in gc.ir.program.toposort([gx]) if n.id not in fwd]
    assert "concat" in names and "slice_grad" not in names, names
    names = [n.op.name for n in gc.ir.program.toposort([gx_gap]) if n.id not in fwd]
    assert names.count("slice_grad") == 1 and "concat" in names, names
    value = np.random.default_rng(5).uniform(-1, 1, size=(3, 8))
    for backend in ("numpy", "c"):
        out, gap = gc.Session(g, backend=backend).run([gx, gx_gap], {x: value})
        t = 1 - np.tanh(value[:, 2:4]) ** 2
        ones, zeros, c2 = np.ones((3, 2)), np.zeros((3, 2)), 2 * value[:, 4:6]
        np.testing.assert_allclose(out, np.hstack([ones, t, c2, 2 * ones]))
        np.testing.assert_allclose(gap, np.hstack([zeros, t, c2, zeros]))
