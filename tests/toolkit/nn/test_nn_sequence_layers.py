"""gc.nn.Embedding and gc.nn.LayerNorm: names, forward values against NumPy, gradients
(scatter-add; float64 finite differences), a training step, refusals."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc import nn


def _scatter(shape, ids, rows):
    out = np.zeros(shape)
    np.add.at(out, ids.reshape(-1), rows.reshape(-1, shape[1]))
    return out


# -- Embedding ------------------------------------------------------------------------------

def test_embedding_forward_is_a_row_lookup_with_pytorch_names_and_init(backend):
    with gc.Graph(seed=0) as g:
        ids = gc.placeholder((None, 6), dtype="int64", name="ids")
        emb = nn.Embedding(300, 5)
        out = emb(ids)
        big = nn.Embedding(1000, 40)
    assert out.shape == (None, 6, 5) and out.dtype == "float32"
    assert [p.name for p in emb.parameters] == ["embedding/weight"]
    assert emb.weight.shape == (300, 5) and nn.count_parameters(emb) == 1500
    sess = gc.Session(g, backend=backend)
    table = sess.get_value(emb.weight)
    # N(0, 1), as torch.nn.Embedding: 1500 draws
    assert abs(table.mean()) < 0.1 and 0.9 < table.std() < 1.1
    rng = np.random.default_rng(1)
    for n in (1, 4):
        idx = rng.integers(0, 8, size=(n, 6))   # few distinct ids: duplicates on purpose
        idx[0, :2] = 299                         # the last row
        np.testing.assert_array_equal(sess.run(out, {ids: idx}), table[idx])
    assert big.weight is None                    # not called: not built
    with gc.Graph(seed=0):
        ids3 = gc.placeholder((2, 3, 4), dtype="int32")
        assert nn.Embedding(9, 7)(ids3).shape == (2, 3, 4, 7)    # ids of any shape


def test_embedding_gradient_is_the_scatter_add_of_the_upstream_gradient(backend, fd_grad):
    rng = np.random.default_rng(2)
    idx = np.array([[2, 0, 2, 1], [3, 2, 0, 0]])          # 4 never read, 2 three times
    R = rng.normal(size=(2, 4, 3))
    with gc.Graph(seed=0) as g:
        ids = gc.placeholder((2, 4), dtype="int64", name="ids")
        emb = nn.Embedding(5, 3, dtype="float64")
        h = emb(ids)
        loss = gc.sum(gc.tanh(h) * gc.constant(R))
        (grad,) = gc.grad(loss, [emb.weight])
    assert emb.weight.dtype == "float64"
    sess = gc.Session(g, backend=backend)
    table = sess.get_value(emb.weight).copy()
    got = sess.run(grad, {ids: idx})
    upstream = R * (1 - np.tanh(table[idx]) ** 2)
    np.testing.assert_allclose(got, _scatter(table.shape, idx, upstream), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(got[4], 0.0)
    ref = gc.Session(g, backend="numpy")
    ref.set_value(emb.weight, table)

    def value():
        ref.set_value(emb.weight, table)
        return float(ref.run(loss, {ids: idx}))

    np.testing.assert_allclose(got, fd_grad(value, table), rtol=1e-6, atol=1e-9)


def _classifier(lr=0.5):
    with gc.Graph(seed=3) as g:
        ids = gc.placeholder((None, 5), dtype="int64", name="ids")
        y = gc.placeholder((None,), dtype="int64", name="y")
        emb = nn.Embedding(10, 4)
        dense = nn.Dense(3)
        logits = dense(gc.mean(emb(ids), axis=1))
        loss = gc.losses.softmax_cross_entropy(logits, y)
        train = gc.optim.SGD(lr).minimize(loss)
    return g, ids, y, emb, dense, loss, train


def test_one_training_step_moves_only_the_rows_that_were_used(backend):
    g, ids, y, emb, dense, loss, train = _classifier()
    sess = gc.Session(g, backend=backend)
    t0, w0 = sess.get_value(emb.weight).copy(), sess.get_value(dense.W).copy()
    idx = np.array([[1, 1, 7, 3, 1], [3, 7, 7, 0, 1], [0, 0, 0, 0, 0]])
    sess.run([loss, train], {ids: idx, y: np.array([0, 2, 1])})
    t1 = sess.get_value(emb.weight)
    used = np.unique(idx)
    unused = np.setdiff1d(np.arange(10), used)
    np.testing.assert_array_equal(t1[unused], t0[unused])
    assert np.all(np.abs(t1[used] - t0[used]).max(axis=1) > 1e-6)
    assert not np.allclose(sess.get_value(dense.W), w0)


def test_out_of_range_id_fails_the_step_and_changes_nothing(backend):
    g, ids, y, emb, dense, loss, train = _classifier()
    sess = gc.Session(g, backend=backend)
    good = np.array([[1, 2, 3, 4, 5], [9, 8, 7, 6, 0]])
    sess.run([loss, train], {ids: good, y: np.array([0, 1])})
    before, step = sess.get_value(emb.weight).copy(), sess.step
    for bad in (10, -1):
        idx = good.copy()
        idx[1, 2] = bad
        with pytest.raises(gc.GraphcError) as info:
            sess.run([loss, train], {ids: idx, y: np.array([0, 1])})
        msg = str(info.value)
        assert "gather" in msg and f"index {bad} (element 7 " in msg and "[0, 10)" in msg, msg
        np.testing.assert_array_equal(sess.get_value(emb.weight), before)
        assert sess.step == step


def test_embedding_refusals():
    for kwargs in ({"num": 0, "dim": 3}, {"num": 4, "dim": -1}, {"num": 4, "dim": 3,
                                                                   "dtype": "int32"}):
        with pytest.raises(gc.ArgumentError):
            nn.Embedding(**kwargs)
    with pytest.raises(gc.ArgumentTypeError, match="Embedding: num must be an int"):
        nn.Embedding(2.5, 3)
    with gc.Graph() as g:
        emb = nn.Embedding(4, 3)
        with pytest.raises(gc.DTypeError, match=r"Embedding 'embedding': ids must be int.*"
                                                r"float32 of shape \(N, 2\)"):
            emb(gc.placeholder((None, 2)))
        assert not emb.built and emb.weight is None and g.variables() == []
        emb(gc.placeholder((None, 2), dtype="int32"))
        assert [v.name for v in g.variables()] == ["embedding/weight"]


# -- LayerNorm ------------------------------------------------------------------------------

def _layer_norm_ref(x, w, b, eps=1e-5):
    """torch.nn.LayerNorm's formula: biased variance over the last axis."""
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def test_layer_norm_forward_matches_the_torch_formula(backend):
    rng = np.random.default_rng(5)
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 3, 8), name="x")
        ln = nn.LayerNorm(8, eps=1e-3)
        y = ln(x)
    assert y.shape == (None, 3, 8)
    assert [p.name for p in ln.parameters] == ["layer_norm/weight", "layer_norm/bias"]
    assert ln.gamma is ln.weight and ln.beta is ln.bias
    sess = gc.Session(g, backend=backend)
    np.testing.assert_array_equal(sess.get_value(ln.weight), 1.0)
    np.testing.assert_array_equal(sess.get_value(ln.bias), 0.0)
    w, b = rng.normal(size=8).astype(np.float32), rng.normal(size=8).astype(np.float32)
    sess.set_value(ln.weight, w)
    sess.set_value(ln.bias, b)
    for n in (1, 4):
        xb = rng.normal(3.0, 2.0, size=(n, 3, 8)).astype(np.float32)
        want = _layer_norm_ref(xb.astype(np.float64), w, b, eps=1e-3)
        np.testing.assert_allclose(sess.run(y, {x: xb}), want, rtol=1e-5, atol=1e-5)
        # the same in evaluation mode: no running statistics
        np.testing.assert_array_equal(sess.run(y, {x: xb}, training=True),
                                      sess.run(y, {x: xb}, training=False))
    if backend == "c":  # made of fusable ops: a handful of kernels, not one per op
        assert len(sess.explain(y).kernels) <= 5


def test_layer_norm_gradients_match_finite_differences_float64(backend, fd_grad):
    rng = np.random.default_rng(6)
    R = rng.normal(size=(2, 3, 4))
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((2, 3, 4), dtype="float64", name="x")
        ln = nn.LayerNorm(4)
        loss = gc.sum(gc.tanh(ln(x)) * gc.constant(R))
        grads = gc.grad(loss, [x, ln.weight, ln.bias])
    assert ln.weight.dtype == "float64"
    params = {ln.weight: rng.normal(size=4), ln.bias: rng.normal(size=4)}
    xb = rng.normal(size=(2, 3, 4))
    sess, ref = gc.Session(g, backend=backend), gc.Session(g, backend="numpy")
    for var, value in params.items():
        sess.set_value(var, value)
    got = sess.run(grads, {x: xb})

    def value():
        for var, arr in params.items():
            ref.set_value(var, arr)
        return float(ref.run(loss, {x: xb}))

    np.testing.assert_allclose(got[0], fd_grad(value, xb), rtol=1e-6, atol=1e-8)
    for var, gv in zip(params, got[1:]):
        np.testing.assert_allclose(gv, fd_grad(value, params[var]), rtol=1e-6, atol=1e-8)


def test_layer_norm_refusals():
    for kwargs in ({"dim": 0}, {"dim": -3}, {"dim": 4, "eps": 0.0}, {"dim": 4, "eps": -1e-5},
                   {"dim": 4, "eps": float("nan")}):
        with pytest.raises(gc.ArgumentError, match="LayerNorm: "):
            nn.LayerNorm(**kwargs)
    with pytest.raises(gc.ArgumentTypeError):
        nn.LayerNorm(4.0)
    with gc.Graph() as g:
        ln = nn.LayerNorm(4)
        msg = r"LayerNorm 'layer_norm': expects input whose last axis has size 4, got shape "
        with pytest.raises(gc.ShapeError, match=msg + r"\(N, 3, 5\)"):
            ln(gc.placeholder((None, 3, 5)))
        assert not ln.built and g.variables() == []          # a failed call changes nothing
        with pytest.raises(gc.ShapeError, match=msg + r"\(\)"):
            ln(gc.constant(1.0))
        with pytest.raises(gc.DTypeError, match="needs a float input, got int64"):
            ln(gc.placeholder((2, 4), dtype="int64"))
        ln(gc.placeholder((None, 4)))
        with pytest.raises(gc.ShapeError, match=msg + r"\(N, 2\)"):  # built: checked per call
            ln(gc.placeholder((None, 2)))
        with pytest.raises(gc.DTypeError, match="built for float32 input, got float64"):
            ln(gc.placeholder((None, 4), dtype="float64"))
        assert len(g.variables()) == 2
