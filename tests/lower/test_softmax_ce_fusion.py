"""Softmax cross-entropy forward + backward in one C kernel (fusion: the gradient op joins
the forward's kernel).

The C backend must agree with the NumPy reference element by element (loss, d logits,
a whole MLP training step), the fused kernel must actually be formed (one kernel holds
the forward and the gradient node; no softmax / one_hot kernel is left), and an
out-of-range label must still be a clear error that leaves the session usable.
"""

import numpy as np
import pytest

import graphc as gc

pytestmark = pytest.mark.needs_c

RTOL = {"float32": 1e-5, "float64": 1e-10}


def assert_agree(c, ref, dtype, what=""):
    """Every element within the contract's relative tolerance (tiny absolute floor)."""
    c, ref = np.asarray(c), np.asarray(ref)
    assert c.dtype == ref.dtype == np.dtype(dtype), what
    assert c.shape == ref.shape, what
    assert np.all(np.isfinite(c)), what
    atol = RTOL[dtype] * 1e-2 * max(1.0, float(np.max(np.abs(ref), initial=0.0)))
    np.testing.assert_allclose(c, ref, rtol=RTOL[dtype], atol=atol, err_msg=what)


def _run_both(build, feeds_of):
    """Build the graph once per backend; run the same feeds; return (c values, numpy values,
    c kernel list)."""
    out = {}
    for backend in ("c", "numpy"):
        with gc.Graph(seed=0) as g:
            phs, fetches = build()
        sess = gc.Session(g, backend=backend)
        out[backend] = (sess.run(fetches, feeds_of(phs)), sess, fetches)
    (c_vals, c_sess, c_fetches), (n_vals, _, _) = out["c"], out["numpy"]
    return c_vals, n_vals, c_sess.compile(c_fetches).kernels


def _fused(kernels):
    return [k for k in kernels if k["kind"] == "softmax_cross_entropy"
            and any("softmax_cross_entropy_grad" in n for n in k["nodes"])]


def _labels(rng, kind, rows, classes, dtype):
    if kind == "ids":
        return rng.integers(0, classes, size=rows).astype(np.int64)
    if kind == "ids32":
        return rng.integers(0, classes, size=rows).astype(np.int32)
    p = rng.uniform(0.1, 1.0, size=(rows, classes))
    return (p / p.sum(-1, keepdims=True) if kind == "probs" else p).astype(dtype)


@pytest.mark.slow
@pytest.mark.parametrize("kind, classes", [("ids", 1), ("ids32", 10), ("probs", 3),
                                           ("unnormalized", 130), ("ids", 130)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_loss_and_gradient_agree(dtype, classes, kind):
    rng = np.random.default_rng(classes)
    float_labels = kind in ("probs", "unnormalized")

    def build():
        z = gc.placeholder((None, classes), dtype, name="z")
        y = gc.placeholder((None, classes) if float_labels else (None,),
                           {"ids": "int64", "ids32": "int32"}.get(kind, dtype), name="y")
        per = gc.softmax_cross_entropy(z, y)
        loss = gc.mean(per)
        wrt = [z, y] if float_labels else [z]
        return (z, y), [loss, per] + gc.grad(loss, wrt)

    for rows in (1, 7, 33):
        z = (rng.uniform(-3, 3, size=(rows, classes))).astype(dtype)
        y = _labels(rng, kind, rows, classes, dtype)
        c, n, kernels = _run_both(build, lambda phs, z=z, y=y: {phs[0]: z, phs[1]: y})
        for name, a, b in zip(["loss", "per-example", "d logits", "d labels"], c, n):
            assert_agree(a, b, dtype, f"{name} rows={rows} classes={classes} {kind}")
        assert len(_fused(kernels)) == 1, kernels
        assert not [k for k in kernels if k["kind"] in ("softmax", "one_hot",
                                                        "softmax_cross_entropy_grad")], kernels


def _mlp(batch_labels="int64", momentum=0.9):
    rng = np.random.default_rng(0)
    x = gc.placeholder((None, 12), name="x")
    y = gc.placeholder((None,), dtype=batch_labels, name="y")
    w1 = gc.variable((rng.standard_normal((12, 16)) * 0.3).astype(np.float32), name="w1")
    b1 = gc.variable((rng.standard_normal(16) * 0.1).astype(np.float32), name="b1")
    w2 = gc.variable((rng.standard_normal((16, 5)) * 0.3).astype(np.float32), name="w2")
    b2 = gc.variable((rng.standard_normal(5) * 0.1).astype(np.float32), name="b2")
    logits = gc.relu(x @ w1 + b1) @ w2 + b2
    loss = gc.mean(gc.softmax_cross_entropy(logits, y))
    train = gc.optim.SGD(0.1, momentum=momentum).minimize(loss)
    return x, y, [w1, b1, w2, b2], loss, train


def test_mlp_training_step_fused_and_agrees():
    rng = np.random.default_rng(1)
    data = [(rng.standard_normal((n, 12)).astype(np.float32), rng.integers(0, 5, size=n))
            for n in (32, 7, 32, 1)]
    results = {}
    for backend in ("c", "numpy"):
        with gc.Graph() as g:
            x, y, params, loss, train = _mlp()
        sess = gc.Session(g, backend=backend)
        losses = [sess.run([loss, train], {x: xb, y: yb})[0] for xb, yb in data]
        results[backend] = (losses, [sess.get_value(p) for p in params])
        if backend == "c":
            kernels = sess.compile([loss, train]).kernels
    (lc, pc), (ln, pn) = results["c"], results["numpy"]
    for step, (a, b) in enumerate(zip(lc, ln)):
        assert_agree(a, b, "float32", f"loss at step {step}")
    for k, (a, b) in enumerate(zip(pc, pn)):
        # four steps of SGD momentum: rounding differences compound, norm-relative 1e-4
        assert np.linalg.norm(a - b) <= 1e-4 * np.linalg.norm(b), f"parameter {k}"
    fused = _fused(kernels)
    assert len(fused) == 1, kernels
    assert fused[0]["nodes"] == ["softmax_cross_entropy", "grad/softmax_cross_entropy_grad"]
    assert set(fused[0]["stores"]) == set(fused[0]["nodes"])
    for k in kernels:
        assert k["kind"] not in ("softmax", "one_hot", "softmax_cross_entropy_grad"), kernels
        assert not any(n.split("/")[-1].startswith(("softmax", "one_hot")) for n in k["nodes"]
                       if k is not fused[0]), kernels


def test_gradients_of_a_step_agree_every_element():
    rng = np.random.default_rng(2)
    xb = rng.standard_normal((9, 12)).astype(np.float32)
    yb = rng.integers(0, 5, size=9)

    def build():
        x, y, params, loss, _ = _mlp()
        return (x, y), [loss] + gc.grad(loss, params)

    c, n, kernels = _run_both(build, lambda phs: {phs[0]: xb, phs[1]: yb})
    for k, (a, b) in enumerate(zip(c, n)):
        scale = np.linalg.norm(b)
        assert scale > 0
        # matmul-fed values: the contract's norm-relative tolerance for every element
        assert np.max(np.abs(a - b)) <= 1e-4 * max(scale, 1e-30), f"fetch {k}"
    assert len(_fused(kernels)) == 1


def test_not_fused_when_g_depends_on_the_loss():
    """g = 2 * loss * ...: the gradient kernel must wait for the loss (still correct)."""
    rng = np.random.default_rng(3)
    z = rng.uniform(-2, 2, size=(6, 4))
    y = rng.integers(0, 4, size=6)

    def build():
        zp = gc.placeholder((None, 4), "float64")
        yp = gc.placeholder((None,), "int64")
        loss = gc.mean(gc.square(gc.softmax_cross_entropy(zp, yp)))
        return (zp, yp), [loss, gc.grad(loss, zp)]

    c, n, kernels = _run_both(build, lambda phs: {phs[0]: z, phs[1]: y})
    for a, b in zip(c, n):
        assert_agree(a, b, "float64")
    assert not _fused(kernels)
    assert [k["kind"] for k in kernels].count("softmax_cross_entropy_grad") == 1


def test_two_losses_two_fused_kernels():
    rng = np.random.default_rng(4)
    z1, z2 = rng.uniform(-2, 2, size=(5, 3)), rng.uniform(-2, 2, size=(5, 7))
    y1, y2 = rng.integers(0, 3, size=5), rng.integers(0, 7, size=5)

    def build():
        a, b = gc.placeholder((None, 3), "float64"), gc.placeholder((None, 7), "float64")
        ya, yb = gc.placeholder((None,), "int64"), gc.placeholder((None,), "int64")
        loss = gc.mean(gc.softmax_cross_entropy(a, ya)) + 0.5 * gc.sum(gc.softmax_cross_entropy(b, yb))
        return (a, b, ya, yb), [loss] + gc.grad(loss, [a, b])

    c, n, kernels = _run_both(build, lambda phs: dict(zip(phs, [z1, z2, y1, y2])))
    for a, b in zip(c, n):
        assert_agree(a, b, "float64")
    assert len(_fused(kernels)) == 2


def test_gradient_only_fetch():
    """Without the loss fetched, the gradient op runs on its own (no forward kernel)."""
    rng = np.random.default_rng(5)
    z = rng.uniform(-2, 2, size=(4, 6)).astype(np.float32)
    y = rng.integers(0, 6, size=4)

    def build():
        zp, yp = gc.placeholder((None, 6)), gc.placeholder((None,), "int64")
        return (zp, yp), [gc.grad(gc.mean(gc.softmax_cross_entropy(zp, yp)), zp)]

    c, n, kernels = _run_both(build, lambda phs: {phs[0]: z, phs[1]: y})
    assert_agree(c[0], n[0], "float32")
    assert [k["kind"] for k in kernels].count("softmax_cross_entropy_grad") == 1
    assert not [k for k in kernels if k["kind"] in ("softmax_cross_entropy", "softmax", "one_hot")]


@pytest.mark.parametrize("backend", ["numpy", "c"])
@pytest.mark.parametrize("bad", [-1, 5, 7])
def test_label_out_of_range_is_clear_and_session_survives(backend, bad):
    with gc.Graph() as g:
        x, y, params, loss, train = _mlp()
    sess = gc.Session(g, backend=backend)
    rng = np.random.default_rng(6)
    xb = rng.standard_normal((8, 12)).astype(np.float32)
    yb = rng.integers(0, 5, size=8)
    before = [sess.get_value(p) for p in params]
    bad_y = yb.copy()
    bad_y[3] = bad
    with pytest.raises(gc.GraphcError) as info:
        sess.run([loss, train], {x: xb, y: bad_y})
    msg = str(info.value)
    assert "out of range" in msg and "softmax_cross_entropy" in msg, msg
    assert "test_softmax_ce_fusion.py" in msg, msg  # the user's line
    if backend == "c":
        assert f"label {bad} of row 3" in msg, msg
    for p, v in zip(params, before):  # no update was committed
        np.testing.assert_array_equal(sess.get_value(p), v)
    # still usable: a good batch runs and trains
    l0, _ = sess.run([loss, train], {x: xb, y: yb})
    l1 = sess.run(loss, {x: xb, y: yb})
    assert np.isfinite(l0) and l1 < l0
