"""Session.profile: per-kernel timings, with the session's state left as it was."""

import numpy as np
import pytest

import graphc as gc
from graphc.ir.errors import FeedError, GraphcError


def _model():
    rng = np.random.default_rng(0)
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 12), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        w1 = gc.variable(rng.standard_normal((12, 16)).astype(np.float32) * 0.3, name="w1")
        b1 = gc.variable(np.zeros(16, np.float32), name="b1")
        w2 = gc.variable(rng.standard_normal((16, 3)).astype(np.float32) * 0.3, name="w2")
        h = gc.relu(x @ w1 + b1)
        loss = gc.mean(gc.softmax_cross_entropy(h @ w2, y))
        train = gc.optim.SGD(0.1, momentum=0.9).minimize(loss)
    xb = rng.standard_normal((20, 12)).astype(np.float32)
    yb = rng.integers(0, 3, 20)
    return g, x, y, loss, train, [w1, b1, w2], {x: xb, y: yb}


def test_profile_times_every_kernel_and_restores_the_session(backend):
    g, x, y, loss, train, weights, feed = _model()
    sess = gc.Session(g, backend=backend)
    sess.run([loss, train], feed)  # one real step: momentum buffers are non-zero
    before = {v: sess.get_value(v) for v in g.variables()}
    prof = sess.profile([loss, train], feed, runs=5)
    assert sess.step == 1
    for v, value in before.items():  # weights and optimizer slots restored
        np.testing.assert_array_equal(sess.get_value(v), value)
    # the next step is the one that would have run without profiling
    twin = gc.Session(g, backend=backend)
    twin.run([loss, train], feed)
    np.testing.assert_array_equal(sess.run([loss, train], feed)[0],
                                  twin.run([loss, train], feed)[0])

    assert prof.backend == backend and prof.batch == 20 and prof.runs == 5
    units = sess.compile([loss, train]).executable.timed_units
    assert [r["name"] for r in prof.rows] == [u["name"] for u in units]
    if backend == "c":  # one row per fused kernel, then the final copies / commits
        kernels = sess.compile([loss, train]).kernels
        assert [r["name"] for r in prof.rows[:-1]] == [k["name"] for k in kernels]
        assert [r["nodes"] for r in prof.rows[:-1]] == [k["nodes"] for k in kernels]
    else:  # one row per computing node
        assert "matmul" in [r["name"] for r in prof.rows]
    assert all(r["seconds"] >= 0.0 for r in prof.rows)
    assert prof.kernel_seconds > 0.0 and prof.total_seconds > 0.0
    assert sum(r["share"] for r in prof.rows) == pytest.approx(1.0)
    text = str(prof)
    assert f"backend {backend}, batch 20" in text
    assert all(r["name"] in text for r in prof.rows)


def test_profile_of_an_inference_fetch_and_bad_arguments(backend):
    g, x, y, loss, train, weights, feed = _model()
    sess = gc.Session(g, backend=backend)
    prof = sess.profile(loss, feed, runs=2)
    assert prof.runs == 2 and prof.rows
    with pytest.raises(GraphcError, match="runs must be >= 1"):
        sess.profile(loss, feed, runs=0)
    with pytest.raises(FeedError, match="placeholder y"):
        sess.profile(loss, {x: feed[x]})
    assert sess.step == 0


def test_a_failing_profiled_step_changes_nothing(backend):
    g, x, y, loss, train, weights, feed = _model()
    sess = gc.Session(g, backend=backend, check_numerics=True)
    sess.run([loss, train], feed)
    before = {v: sess.get_value(v) for v in g.variables()}
    bad = dict(feed)
    bad[x] = feed[x].copy()
    bad[x][3, 4] = np.nan
    with pytest.raises(gc.NumericsError):
        sess.profile([loss, train], bad, runs=3)
    assert sess.step == 1
    for v, value in before.items():
        np.testing.assert_array_equal(sess.get_value(v), value)
