"""Session: fetch structures, feed validation, state, save/load, training flag."""

from __future__ import annotations

import os

import numpy as np
import pytest

import graphc as gc
from graphc.runtime.checkpoint import read as read_checkpoint

HERE = os.path.basename(__file__)


def _model():
    g = gc.Graph()
    with g:
        x = gc.placeholder((None, 3), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        W = gc.variable(np.full((3, 2), 0.1, np.float32), name="W")
        b = gc.variable(np.zeros(2, np.float32), name="b")
        logits = x @ W + b
        loss = gc.mean(gc.softmax_cross_entropy(logits, y))
        train = gc.optim.SGD(lr=0.5, momentum=0.9).minimize(loss)
    return g, x, y, W, b, logits, loss, train


XB = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
YB = (XB[:, 0] > 0).astype(np.int64)


def test_fetch_structures(backend):
    g, x, y, W, b, logits, loss, train = _model()
    sess = gc.Session(g, backend=backend)
    feed = {x: XB, y: YB}
    one = sess.run(loss, feed)
    assert isinstance(one, np.ndarray) and one.shape == () and one.dtype == np.float32
    lst = sess.run([loss, train], feed)
    assert isinstance(lst, list) and lst[1] is None
    tup = sess.run((loss, logits), feed)
    assert isinstance(tup, tuple) and tup[1].shape == (8, 2)
    d = sess.run({"loss": loss}, feed)
    assert set(d) == {"loss"}


def test_training_reduces_loss_and_owns_state(backend):
    g, x, y, W, b, logits, loss, train = _model()
    sess = gc.Session(g, backend=backend)
    feed = {x: XB, y: YB}
    first = sess.run(loss, feed)
    for _ in range(20):
        sess.run(train, feed)
    assert sess.run(loss, feed) < first
    assert not np.allclose(sess.get_value(W), 0.1)
    np.testing.assert_array_equal(W.value, np.full((3, 2), 0.1, np.float32))  # the graph's init is untouched
    other = gc.Session(g, backend=backend)
    np.testing.assert_array_equal(other.get_value(W), np.full((3, 2), 0.1, np.float32))


def test_feeding_by_name_and_batch_size_change(backend):
    g, x, y, W, b, logits, loss, train = _model()
    sess = gc.Session(g, backend=backend)
    for n in (64, 17, 1, 64):
        out = sess.run(logits, {"x": np.ones((n, 3), np.float32)})
        assert out.shape == (n, 2)


def test_missing_placeholder_names_it_and_its_line():
    g, x, y, W, b, logits, loss, train = _model()
    sess = gc.Session(g, backend="numpy")
    with pytest.raises(gc.FeedError) as info:
        sess.run(loss, {x: XB})
    assert "placeholder y" in str(info.value) and HERE in str(info.value)


@pytest.mark.parametrize("bad, exc, words", [
    (np.ones((8, 4), np.float32), gc.FeedError, ["x", "(N, 3)", "(8, 4)"]),
    (np.ones((8,), np.float32), gc.FeedError, ["rank 2"]),
    (np.array([["a", "b", "c"]]), gc.DTypeError, ["x", "float32"]),
])
def test_bad_feeds_are_clear_and_leave_the_session_usable(bad, exc, words):
    g, x, y, W, b, logits, loss, train = _model()
    sess = gc.Session(g, backend="numpy")
    sess.run(train, {x: XB, y: YB})
    w_before, step_before = sess.get_value(W), sess.step
    with pytest.raises(exc) as info:
        sess.run([loss, train], {x: bad, y: YB[: len(bad)]})
    for w in words:
        assert w in str(info.value)
    np.testing.assert_array_equal(sess.get_value(W), w_before)
    assert sess.step == step_before
    sess.run(train, {x: XB, y: YB})  # still usable


def test_float_feed_to_int_placeholder_and_batch_mismatch():
    g, x, y, W, b, logits, loss, train = _model()
    sess = gc.Session(g, backend="numpy")
    with pytest.raises(gc.DTypeError, match="int64"):
        sess.run(loss, {x: XB, y: YB.astype(np.float32)})
    with pytest.raises(gc.FeedError, match="batch size"):
        sess.run(loss, {x: XB, y: YB[:5]})


def test_run_time_error_names_the_node_and_leaves_state():
    g, x, y, W, b, logits, loss, train = _model()
    sess = gc.Session(g, backend="numpy")
    w0 = sess.get_value(W)
    with pytest.raises(gc.GraphcError) as info:
        sess.run([loss, train], {x: XB, y: np.full(8, 7)})  # label 7 out of range
    assert "softmax_cross_entropy" in str(info.value) and HERE in str(info.value)
    np.testing.assert_array_equal(sess.get_value(W), w0)


def test_check_numerics_names_the_node():
    with gc.Graph() as g:
        x = gc.placeholder((2,), name="x")
        y = gc.log(x)  # numerics-marker
        z = y * 2.0
    sess = gc.Session(g, check_numerics=True, backend="numpy")
    with pytest.raises(gc.NumericsError) as info:
        sess.run(z, {x: np.array([1.0, -1.0], np.float32)})
    assert "log" in str(info.value) and HERE in str(info.value)
    assert np.isnan(gc.Session(g, backend="numpy").run(z, {x: np.array([1.0, -1.0], np.float32)})[1])


def test_set_value_checks_shape_and_dtype():
    g, x, y, W, *_ = _model()
    sess = gc.Session(g, backend="numpy")
    with pytest.raises(gc.ShapeError):
        sess.set_value(W, np.ones((2, 3)))
    sess.set_value(W, np.ones((3, 2)))
    assert sess.get_value(W).dtype == np.float32
    with pytest.raises(gc.GraphcError):
        sess.get_value(x)


def test_save_and_load_round_trip_with_optimizer_state(tmp_path):
    g, x, y, W, b, logits, loss, train = _model()
    sess = gc.Session(g, backend="numpy")
    feed = {x: XB, y: YB}
    for _ in range(3):
        sess.run(train, feed)
    path = tmp_path / "model.npz"
    sess.save(path)
    expected_next = [sess.run([loss, train], feed)[0] for _ in range(3)]
    fresh = gc.Session(g, backend="numpy")
    fresh.load(path)
    got_next = [fresh.run([loss, train], feed)[0] for _ in range(3)]
    np.testing.assert_array_equal(got_next, expected_next)  # momentum buffers restored too
    values, step = read_checkpoint(path)
    assert {"W", "b", "SGD/W/momentum"} <= set(values) and step == 3


def test_load_rejects_mismatched_files_without_partial_update(tmp_path):
    g, x, y, W, b, *_ = _model()
    sess = gc.Session(g, backend="numpy")
    bad = tmp_path / "bad.npz"
    np.savez(bad, W=np.zeros((3, 2)), b=np.zeros(5))
    with pytest.raises(gc.ShapeError):
        sess.load(bad)
    np.testing.assert_array_equal(sess.get_value(W), np.full((3, 2), 0.1, np.float32))


def test_training_flag_defaults_to_whether_an_update_runs():
    with gc.Graph() as g:
        x = gc.placeholder((None, 100), name="x")
        w = gc.variable(np.ones(100, np.float32))
        y = gc.dropout(x * w, 0.5)
        loss = gc.sum(y)
        train = gc.optim.SGD(lr=0.0001).minimize(loss)
    sess = gc.Session(g, backend="numpy")
    ones = np.ones((4, 100), np.float32)
    np.testing.assert_array_equal(sess.run(y, {x: ones}), ones)  # evaluation: identity
    dropped = sess.run(y, {x: ones}, training=True)
    assert 0.3 < np.mean(dropped == 0) < 0.7
    assert set(np.unique(dropped)) <= {0.0, 2.0}
    out, _ = sess.run([y, train], {x: ones})  # an update op is fetched: training
    assert np.any(out == 0)


def test_results_are_bit_identical_across_runs(backend):
    def trained():
        g, x, y, W, b, logits, loss, train = _model()
        sess = gc.Session(g, backend=backend)
        losses = [sess.run([loss, train], {x: XB, y: YB})[0] for _ in range(5)]
        return np.array(losses), sess.get_value(W)

    (l1, w1), (l2, w2) = trained(), trained()
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(w1, w2)


def test_unknown_backend_and_auto():
    g, *_ = _model()
    with pytest.raises(gc.GraphcError, match="not available"):
        gc.Session(g, backend="tpu")
    sess = gc.Session(g, backend="auto")
    assert sess.backend in ("numpy", "c", "cuda")
    assert "picked" in sess.backend_choice


def test_compiles_each_fetch_set_once():
    g, x, y, W, b, logits, loss, train = _model()
    sess = gc.Session(g, backend="numpy")
    for n in (4, 8, 4):
        sess.run([loss, train], {x: XB[:n], y: YB[:n]})
    assert len(sess._compiled) == 1


def test_compiled_fetch_set_exposes_source_kernels_and_arena(backend):
    g, x, y, W, b, logits, loss, train = _model()
    compiled = gc.Session(g, backend=backend).compile([loss, train])
    if backend == "numpy":
        assert compiled.source is None and compiled.kernels == [] and compiled.arena_bytes(8) == 0
        return
    assert "gc_run" in compiled.source and "gc_arena_bytes" in compiled.source
    names = [k["name"] for k in compiled.kernels]
    assert len(names) == len(set(names)) and all(k["nodes"] for k in compiled.kernels)
    assert any(k["kind"] == "matmul" and len(k["nodes"]) > 1 for k in compiled.kernels)
    assert compiled.arena_bytes(64) > compiled.arena_bytes(1) > 0


def test_variable_state_is_cache_line_aligned(backend, tmp_path):
    """Every variable array the session owns starts on a 64-byte boundary (threads of a
    compiled step that update disjoint rows never share a cache line), through set_value,
    load and the updates of a step."""
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        w = gc.variable(np.ones((3, 5), np.float32), name="w")
        b = gc.variable(np.zeros(5), name="b")
        loss = gc.mean(gc.square(x @ w + gc.cast(b, "float32")))
        train = gc.optim.SGD(0.1, momentum=0.9).minimize(loss)
    sess = gc.Session(g, backend=backend)

    def aligned():
        return all(sess._state(v).ctypes.data % 64 == 0 for v in g.variables())

    assert aligned()
    sess.run([loss, train], {x: np.ones((4, 3), np.float32)})
    assert aligned()
    sess.set_value(w, np.arange(15).reshape(3, 5))
    assert aligned() and sess.get_value(w).dtype == np.float32
    sess.save(tmp_path / "m.npz")
    sess.load(tmp_path / "m.npz")
    assert aligned()
    np.testing.assert_array_equal(sess.get_value(w), np.arange(15).reshape(3, 5))
