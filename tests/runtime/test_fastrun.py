"""Session.run's per-step path (runtime.fastrun): a repeated call is checked as strictly
as the first one, and its results are the same as the full path's."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc

LR, MOMENTUM = 0.1, 0.9


def _model(seed: int = 0):
    rng = np.random.default_rng(seed)
    g = gc.Graph()
    with g:
        x = gc.placeholder((None, 4), name="x")
        y = gc.placeholder((None,), dtype="int32", name="y")
        w = gc.variable(rng.standard_normal((4, 3)).astype(np.float32), name="w")
        logits = x @ w
        loss = gc.mean(gc.softmax_cross_entropy(logits, y))
        train = gc.optim.SGD(LR, momentum=MOMENTUM).minimize(loss)
    return g, x, y, w, logits, loss, train


def _batch(rng, n: int):
    return (rng.standard_normal((n, 4)).astype(np.float32),
            rng.integers(0, 3, n).astype(np.int32))


def _reference(w, xv, yv):
    """NumPy: logits, mean softmax cross-entropy, and its gradient for w (float64)."""
    z = xv.astype(np.float64) @ w
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(len(yv)), yv]).mean()
    p[np.arange(len(yv)), yv] -= 1
    return z, loss, xv.T.astype(np.float64) @ p / len(yv)


def test_repeated_training_matches_numpy_across_batch_sizes(backend):
    g, x, y, w, logits, loss, train = _model()
    sess = gc.Session(g, backend=backend)
    rng = np.random.default_rng(1)
    wv, buf = w.value.astype(np.float64), np.zeros((4, 3))
    for n in [5, 5, 5, 1, 1, 7, 5, 7, 7]:  # repeated calls, and batch size changes
        xv, yv = _batch(rng, n)
        z, want, gw = _reference(wv, xv, yv)
        got_loss, got_logits = sess.run([loss, logits], {x: xv, y: yv})
        np.testing.assert_allclose(got_loss, want, rtol=1e-5)
        np.testing.assert_allclose(got_logits, z, rtol=1e-5, atol=1e-6)
        assert sess.run(train, {x: xv, y: yv}) is None
        buf = MOMENTUM * buf + gw
        wv = wv - LR * buf
        np.testing.assert_allclose(sess.get_value(w), wv, rtol=1e-5, atol=1e-6)
    assert sess.step == 18


def test_fetch_order_twice_and_structures(backend):
    g, x, y, w, logits, loss, train = _model()
    sess = gc.Session(g, backend=backend)
    rng = np.random.default_rng(2)
    for _ in range(3):
        xv, yv = _batch(rng, 6)
        z, want, _ = _reference(w.value.astype(np.float64), xv, yv)
        feed = {x: xv, y: yv}
        a_loss, a_logits = sess.run([loss, logits], feed)
        b_logits, b_loss = sess.run((logits, loss), feed)
        one, two = sess.run([logits, logits], feed)
        named = sess.run({"z": logits, "l": loss}, feed)
        only = sess.run(logits, feed)
        for got in (a_logits, b_logits, one, two, named["z"], only):
            np.testing.assert_allclose(got, z, rtol=1e-5, atol=1e-6)
        for got in (a_loss, b_loss, named["l"]):
            np.testing.assert_allclose(got, want, rtol=1e-5)
        assert list(named) == ["z", "l"] and isinstance(b_logits, np.ndarray)
        assert not np.shares_memory(one, two)  # the same tensor twice: two arrays


def test_results_are_not_overwritten_by_the_next_call(backend):
    g, x, y, w, logits, loss, train = _model()
    sess = gc.Session(g, backend=backend)
    rng = np.random.default_rng(3)
    kept = []
    for _ in range(4):
        xv, yv = _batch(rng, 5)
        out = sess.run([logits, loss], {x: xv, y: yv})
        kept.append((_reference(w.value.astype(np.float64), xv, yv), out))
    for (z, lo, _), out in kept:  # every earlier result still holds its own values
        np.testing.assert_allclose(out[0], z, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out[1], lo, rtol=1e-5)
    assert not np.shares_memory(kept[0][1][0], kept[1][1][0])


def test_feeds_by_name_converted_and_strided(backend):
    g, x, y, w, logits, loss, train = _model()
    sess = gc.Session(g, backend=backend)
    rng = np.random.default_rng(4)
    xv, yv = _batch(rng, 6)
    z = _reference(w.value.astype(np.float64), xv, yv)[0]
    wide = np.repeat(xv, 2, axis=1)[:, ::2]  # the same values, not contiguous
    feeds = [{x: xv}, {"x": xv}, {"x": xv}, {x: xv.astype(np.float64)},
             {x: xv.astype(np.float64)}, {x: wide}, {x: wide}, {"x": xv.tolist()},
             {x: xv, "x": xv}, {x: xv}]
    for feed in feeds:
        np.testing.assert_allclose(sess.run(logits, feed), z, rtol=1e-5, atol=1e-6)
    with g:  # the graph grows: names still mean the same placeholders
        gc.placeholder((None, 2), name="x")
    np.testing.assert_allclose(sess.run(logits, {"x": xv}), z, rtol=1e-5, atol=1e-6)
    with pytest.raises(gc.FeedError, match="x_1"):
        sess.run(logits, {"x": xv, "x_1": xv})


def _bad_feeds(x, y, xv, yv):
    big = yv.astype(np.int64)
    big[1] = 2**40
    huge = xv.astype(np.float64)
    huge[0, 0] = 1e300
    return {
        "fixed dim": {x: xv[:, :3].copy(), y: yv},
        "rank": {x: xv.reshape(-1), y: yv},
        "batch disagrees": {x: xv, y: yv[:-1].copy()},
        "float into int": {x: xv, y: yv.astype(np.float32)},
        "int out of range": {x: xv, y: big},
        "float overflow": {x: huge, y: yv},
        "missing": {x: xv},
        "unknown name": {x: xv, "yy": yv},
        "bool into float": {x: xv > 0, y: yv},
        "strings": {x: xv.astype(str), y: yv},
    }


@pytest.mark.parametrize("check_numerics", [False, True])
def test_every_bad_feed_still_fails_after_good_calls(backend, check_numerics):
    g, x, y, w, logits, loss, train = _model()
    rng = np.random.default_rng(5)
    xv, yv = _batch(rng, 6)
    warm = gc.Session(g, backend=backend, check_numerics=check_numerics)
    for _ in range(3):
        warm.run([loss, train], {x: xv, y: yv})
    before, step = warm.get_value(w), warm.step
    for what, feed in _bad_feeds(x, y, xv, yv).items():
        if what == "bool into float":
            continue  # (bool converts to float: tested separately below)
        fresh = gc.Session(g, backend=backend, check_numerics=check_numerics)
        with pytest.raises(gc.GraphcError) as want:
            fresh.run([loss, train], feed)
        with pytest.raises(type(want.value)) as got:
            warm.run([loss, train], feed)
        assert str(got.value) == str(want.value), what
        np.testing.assert_array_equal(warm.get_value(w), before)
        assert warm.step == step, what
        # the good call right after still runs the step
        warm.run([loss, train], {x: xv, y: yv})
        before, step = warm.get_value(w), warm.step
    assert "x" in str(got.value) or "y" in str(got.value)


def test_error_names_placeholder_shapes_and_line():
    g, x, y, w, logits, loss, train = _model()
    sess = gc.Session(g, backend="numpy")
    rng = np.random.default_rng(6)
    xv, yv = _batch(rng, 6)
    sess.run(train, {x: xv, y: yv})
    with pytest.raises(gc.FeedError) as e:
        sess.run(train, {x: xv[:, :3].copy(), y: yv})
    msg = str(e.value)
    assert "feed for x" in msg and "(N, 4)" in msg and "(6, 3)" in msg
    assert "test_fastrun.py" in msg
    with pytest.raises(gc.DTypeError, match="feed for y .*float32.*int32"):
        sess.run(train, {x: xv, y: yv.astype(np.float32)})


@pytest.mark.needs_c
def test_nan_feed_under_check_numerics_after_good_calls():
    g, x, y, w, logits, loss, train = _model()
    sess = gc.Session(g, backend="c", check_numerics=True)
    rng = np.random.default_rng(7)
    xv, yv = _batch(rng, 4)
    for _ in range(3):
        sess.run(train, {x: xv, y: yv})
    before, step = sess.get_value(w), sess.step
    bad = xv.copy()
    bad[2, 1] = np.nan
    with pytest.raises(gc.NumericsError, match="NaN"):
        sess.run(train, {x: bad, y: yv})
    np.testing.assert_array_equal(sess.get_value(w), before)
    assert sess.step == step
    sess.run(train, {x: xv, y: yv})
    assert sess.step == step + 1


def test_training_flag_and_state_changes(backend):
    g = gc.Graph()
    with g:
        x = gc.placeholder((None, 8), name="x")
        v = gc.variable(np.ones(8, np.float32), name="v")
        out = gc.dropout(x * v, 0.5, seed=3)
    sess = gc.Session(g, backend=backend)
    xv = np.random.default_rng(8).uniform(1, 2, (5, 8)).astype(np.float32)
    for _ in range(3):
        np.testing.assert_allclose(sess.run(out, {x: xv}), xv, rtol=1e-6)  # eval: identity
        dropped = sess.run(out, {x: xv}, training=True)
        assert (dropped == 0).any()
        kept = dropped != 0
        np.testing.assert_allclose(dropped[kept], 2 * xv[kept], rtol=1e-6)
    sess.set_value(v, np.full(8, 3.0, np.float32))  # a new state array: the step reads it
    np.testing.assert_allclose(sess.run(out, {x: xv}), 3 * xv, rtol=1e-6)
    assert sess.verify(out, {x: xv}).ok
    np.testing.assert_allclose(sess.run(out, {x: xv}), 3 * xv, rtol=1e-6)


def test_bool_into_float_and_lists_run_the_same(backend):
    g, x, y, w, logits, loss, train = _model()
    sess = gc.Session(g, backend=backend)
    mask = np.random.default_rng(9).random((3, 4)) > 0.5
    want = mask.astype(np.float64) @ w.value.astype(np.float64)
    for _ in range(3):
        np.testing.assert_allclose(sess.run(logits, {x: mask}), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(sess.run(logits, {x: mask.tolist()}), want, rtol=1e-5,
                                   atol=1e-6)


def test_repeated_calls_skip_the_full_check_and_read_feeds_afresh(backend, monkeypatch):
    from graphc.runtime import feeds

    full = feeds.check
    calls = []
    monkeypatch.setattr(feeds, "check", lambda *a, **k: calls.append(1) or full(*a, **k))
    g, x, y, w, logits, loss, train = _model()
    sess = gc.Session(g, backend=backend)
    xv, yv = _batch(np.random.default_rng(10), 5)
    feed = {x: xv, y: yv}
    sess.run([logits, loss], feed)
    assert len(calls) == 1
    for _ in range(3):
        xv[...] = np.random.default_rng(len(calls)).standard_normal(xv.shape)  # in place
        z = _reference(w.value.astype(np.float64), xv, yv)[0]
        np.testing.assert_allclose(sess.run([logits, loss], feed)[0], z, rtol=1e-5, atol=1e-6)
    assert len(calls) == 1  # the per-step path
    with pytest.raises(gc.FeedError):
        sess.run([logits, loss], {x: xv[:, :2].copy(), y: yv})
    assert len(calls) == 2  # a feed that differs goes the full way
    sess.verify_runs = True  # verify=True checks every run: never the per-step path
    sess.run([logits, loss], feed)
    assert len(calls) >= 3
