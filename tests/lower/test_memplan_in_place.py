"""Optimizer updates are written straight into their variables when nothing reads the old
value afterwards; leaf-only producers (``0.9 * velocity``) join the group that uses them."""

import numpy as np
import pytest

import graphc as gc
from graphc.lower import ir

pytestmark = pytest.mark.needs_c


def _mlp(dtype="float32"):
    rng = np.random.default_rng(0)
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 13), dtype=dtype, name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        w1 = gc.variable((rng.standard_normal((13, 9)) * 0.3).astype(dtype), name="w1")
        b1 = gc.variable(rng.standard_normal(9).astype(dtype) * 0.1, name="b1")
        w2 = gc.variable((rng.standard_normal((9, 4)) * 0.3).astype(dtype), name="w2")
        logits = gc.relu(x @ w1 + b1) @ w2
        loss = gc.mean(gc.softmax_cross_entropy(logits, y))
        train = gc.optim.SGD(0.1, momentum=0.9).minimize(loss)
    return g, x, y, loss, train, [w1, b1, w2]


def _commits(lowered) -> list:
    """The copies into variables when the step finishes."""
    return [s for s in lowered.finish if isinstance(s, ir.Copy) and s.dst.place.kind == "var"]


def _feed(x, y, n, seed, bad=False):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    if bad:
        labels[n // 2] = 4
    return {x: rng.standard_normal((n, 13)).astype(x.dtype), y: labels}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_updates_are_written_in_place_and_agree_with_numpy(dtype):
    g, x, y, loss, train, params = _mlp(dtype)
    sess_c, sess_n = gc.Session(g, backend="c"), gc.Session(g, backend="numpy")
    lowered = sess_c.compile([loss, train]).executable.lowered
    assert not _commits(lowered), "every update is computed into its variable"
    alone = [k for k in lowered.kernels
             if k.kind == "elementwise" and all(n.attrs.get("fn") == "mul" for n in k.nodes)]
    assert not alone, "0.9 * velocity is computed inside the update kernel, not on its own"
    # the weight-gradient matmuls hand their product to the update in scratch (owns_store):
    # their epilogue stores the updates and returns nothing for the GEMM to store
    owned = [k for k in lowered.kernels if k.epilogue is not None and k.epilogue.result is None]
    assert len(owned) == 2 and all(k.kind == "matmul" for k in owned)
    tol = 1e-5 if dtype == "float32" else 1e-10
    # batches 400 and 777 make K span several GEMM depth blocks (KC = 384 / 256): partial
    # sums then go through the product's buffer before the last block reaches the hook
    for step, n in enumerate((7, 8, 400, 777, 9)):
        feed = _feed(x, y, n, step)
        lc, _ = sess_c.run([loss, train], feed)
        ln, _ = sess_n.run([loss, train], feed)
        np.testing.assert_allclose(lc, ln, rtol=tol)
        for p in params:
            np.testing.assert_allclose(sess_c.get_value(p), sess_n.get_value(p), rtol=tol, atol=tol)


def test_a_failing_step_leaves_the_variables_untouched():
    g, x, y, loss, train, params = _mlp()
    sess = gc.Session(g, backend="c")
    sess.run([loss, train], _feed(x, y, 8, 0))
    before = [sess.get_value(p).copy() for p in params]
    with pytest.raises(gc.GraphcError, match="out of range"):
        sess.run([loss, train], _feed(x, y, 8, 1, bad=True))
    for p, b in zip(params, before):
        np.testing.assert_array_equal(sess.get_value(p), b)


def test_check_numerics_keeps_the_commit_at_the_end():
    g, x, y, loss, train, params = _mlp()
    sess = gc.Session(g, backend="c", check_numerics=True)
    assert len(_commits(sess.compile([loss, train]).executable.lowered)) >= len(params)
    before = [sess.get_value(p).copy() for p in params]
    feed = _feed(x, y, 8, 2)
    feed[x][3, 5] = np.nan
    with pytest.raises(gc.NumericsError):
        sess.run([loss, train], feed)
    for p, b in zip(params, before):
        np.testing.assert_array_equal(sess.get_value(p), b)


def test_a_variable_read_after_its_update_is_not_written_in_place():
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), dtype="float64", name="x")
        w = gc.variable(np.array([0.5, -1.0, 2.0]), name="w")
        new_w = w - 0.1 * gc.sum(x, axis=0)
        later = gc.sum(x * w)  # reads the old w after new_w is computed
        step = gc.assign(w, new_w)
    sess = gc.Session(g, backend="c")
    X = np.random.default_rng(3).standard_normal((5, 3))
    got = sess.run([later, step], {x: X})[0]
    np.testing.assert_allclose(got, np.sum(X * np.array([0.5, -1.0, 2.0])), rtol=1e-12)
    np.testing.assert_allclose(sess.get_value(w), np.array([0.5, -1.0, 2.0]) - 0.1 * X.sum(0),
                               rtol=1e-12)


def test_swapping_two_variables_in_one_step():
    """a := b and b := a read both old values (snapshots in the workspace, no malloc)."""
    with gc.Graph() as g:
        a = gc.variable(np.arange(5, dtype=np.float32), name="a")
        b = gc.variable(np.arange(5, 10, dtype=np.float32), name="b")
        swap = gc.group(gc.assign(a, b), gc.assign(b, a))
        total = gc.sum(a * 2.0)
    sess = gc.Session(g, backend="c")
    sess.run(swap)
    np.testing.assert_array_equal(sess.get_value(a), np.arange(5, 10))
    np.testing.assert_array_equal(sess.get_value(b), np.arange(5))
    sess.run(swap)
    np.testing.assert_array_equal(sess.get_value(a), np.arange(5))
    assert sess.run(total) == 20.0
    finish = sess.compile([swap]).executable.lowered.finish
    assert sum(isinstance(s, ir.Scratch) for s in finish) == 2  # both old values set aside


def test_generated_kernels_never_allocate():
    """Reductions in any axis order and logsumexp use the arena workspace, not malloc."""
    rng = np.random.default_rng(5)
    xv = rng.standard_normal((4, 3, 5))
    with gc.Graph() as g:
        x = gc.placeholder((None, 3, 5), dtype="float64", name="x")
        s0 = gc.sum(x * x, axis=(0, 2))      # kept dim in the middle: general order
        m0 = gc.max(x, axis=0)
        lse = gc.logsumexp(x, axis=1)
    sess = gc.Session(g, backend="c")
    got = sess.run([s0, m0, lse], {x: xv})
    np.testing.assert_allclose(got[0], (xv * xv).sum(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(got[1], xv.max(axis=0), rtol=1e-12)
    ref = np.log(np.exp(xv - xv.max(1, keepdims=True)).sum(1)) + xv.max(1)
    np.testing.assert_allclose(got[2], ref, rtol=1e-12)
    compiled = sess.compile([s0, m0, lse])
    generated = compiled.source.split("} gc_ctx;")[1]  # after the pasted helpers and templates
    assert "malloc" not in generated
    assert any(isinstance(s, ir.Scratch) for k in compiled.executable.lowered.kernels
               for s in ir.walk(k.body))
