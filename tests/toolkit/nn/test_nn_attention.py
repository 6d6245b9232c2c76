"""gc.nn.MultiHeadAttention and gc.nn.TransformerEncoderLayer: forward values against a
NumPy reference with the layers' own weights (None batch, causal mask, cross-attention,
post-norm and pre-norm), float64 finite-difference gradients, a training step that gives
the same loss on both backends, refusals."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc import nn


def _softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _mha_ref(x, kv, w_in, b_in, w_out, b_out, heads, causal=False):
    n, tq, e = x.shape
    tk, dh = kv.shape[1], e // heads
    wq, wk, wv = np.split(w_in, 3)
    bq, bk, bv = np.split(b_in, 3)

    def split_heads(t):
        return t.reshape(n, t.shape[1], heads, dh).transpose(0, 2, 1, 3)

    q, k, v = (split_heads(a @ w.T + b) for a, w, b in ((x, wq, bq), (kv, wk, bk), (kv, wv, bv)))
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh)
    if causal:
        s = np.where(np.tri(tq, tk, dtype=bool), s, -np.inf)
    out = (_softmax(s) @ v).transpose(0, 2, 1, 3).reshape(n, tq, e)
    return out @ w_out.T + b_out


def _randomize(sess, layer, rng, scale=0.5):
    """Give every parameter of ``layer`` random values (zero biases would hide bugs)."""
    values = {}
    for p in layer.parameters:
        values[p] = rng.normal(scale=scale, size=p.shape).astype(p.dtype)
        sess.set_value(p, values[p])
    return values


def _mha_weights(values, mha):
    return (values[mha.in_proj_weight], values[mha.in_proj_bias], values[mha.out_proj_weight],
            values[mha.out_proj_bias])


def test_mha_forward_matches_numpy_with_pytorch_names_and_a_none_batch(backend):
    rng = np.random.default_rng(0)
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 5, 8), name="x")
        mem = gc.placeholder((None, 3, 8), name="mem")
        mha = nn.MultiHeadAttention(8, heads=2)
        y = mha(x)
        cross = nn.MultiHeadAttention(8, heads=4)
        z = cross(x, mem)
    assert y.shape == (None, 5, 8) and z.shape == (None, 5, 8)
    assert [p.name for p in mha.parameters] == [
        "mha/in_proj_weight", "mha/in_proj_bias", "mha/out_proj/weight", "mha/out_proj/bias"]
    assert mha.in_proj_weight.shape == (24, 8) and nn.count_parameters(mha) == 4 * 8 * 8 + 4 * 8
    sess = gc.Session(g, backend=backend)
    vals = _randomize(sess, mha, rng)
    cvals = _randomize(sess, cross, rng)
    for n in (1, 3):
        xb = rng.normal(size=(n, 5, 8)).astype(np.float32)
        mb = rng.normal(size=(n, 3, 8)).astype(np.float32)
        got_y, got_z = sess.run([y, z], {x: xb, mem: mb})
        np.testing.assert_allclose(got_y, _mha_ref(xb, xb, *_mha_weights(vals, mha), 2),
                                   rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got_z, _mha_ref(xb, mb, *_mha_weights(cvals, cross), 4),
                                   rtol=1e-4, atol=1e-5)


def test_causal_mha_ignores_the_future_and_matches_the_masked_reference(backend):
    rng = np.random.default_rng(1)
    T = 6
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, T, 4), name="x")
        mha = nn.MultiHeadAttention(4, heads=2, causal=True)
        y = mha(x)
    sess = gc.Session(g, backend=backend)
    vals = _randomize(sess, mha, rng)
    xb = rng.normal(size=(2, T, 4)).astype(np.float32)
    base = sess.run(y, {x: xb})
    np.testing.assert_allclose(base, _mha_ref(xb, xb, *_mha_weights(vals, mha), 2, causal=True),
                               rtol=1e-4, atol=1e-5)
    assert np.isfinite(base).all()
    for t in range(T - 1):
        moved = xb.copy()
        moved[:, t + 1:] += rng.normal(scale=3.0, size=moved[:, t + 1:].shape)
        out = sess.run(y, {x: moved})
        np.testing.assert_array_equal(out[:, :t + 1], base[:, :t + 1])
        assert not np.allclose(out[:, t + 1:], base[:, t + 1:])


@pytest.mark.parametrize("causal", [False, True])
def test_mha_gradients_match_finite_differences_float64(backend, causal, fd_grad):
    rng = np.random.default_rng(2)
    R = rng.normal(size=(2, 3, 4))
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((2, 3, 4), dtype="float64", name="x")
        mha = nn.MultiHeadAttention(4, heads=2, causal=causal)
        loss = gc.sum(gc.tanh(mha(x)) * gc.constant(R))
        params = mha.parameters
        grads = gc.grad(loss, [x] + params)
    assert mha.in_proj_weight.dtype == "float64"
    values = {p: rng.normal(scale=0.7, size=p.shape) for p in params}
    xb = rng.normal(size=(2, 3, 4))
    sess, ref = gc.Session(g, backend=backend), gc.Session(g, backend="numpy")
    for p, v in values.items():
        sess.set_value(p, v)
    got = sess.run(grads, {x: xb})
    assert all(np.isfinite(gv).all() for gv in got)   # the -inf mask gives no NaN gradients

    def value():
        for p, v in values.items():
            ref.set_value(p, v)
        return float(ref.run(loss, {x: xb}))

    np.testing.assert_allclose(got[0], fd_grad(value, xb), rtol=1e-6, atol=1e-8)
    for p, gv in zip(params, got[1:]):
        np.testing.assert_allclose(gv, fd_grad(value, values[p]), rtol=1e-6, atol=1e-8)


def _layer_norm(x, w, b, eps=1e-5):
    c = x - x.mean(-1, keepdims=True)
    return c / np.sqrt((c * c).mean(-1, keepdims=True) + eps) * w + b


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_matches_pytorch_formula(backend, norm_first):
    from math import erf
    rng = np.random.default_rng(3)
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 4, 8), name="x")
        enc = nn.TransformerEncoderLayer(8, heads=2, ff_dim=12, norm_first=norm_first,
                                         activation="gelu")
        y = enc(x)
    assert y.shape == (None, 4, 8) and nn.count_parameters(enc) == (
        4 * 64 + 4 * 8) + (8 * 12 + 12) + (12 * 8 + 8) + 4 * 8
    assert [p.name for p in enc.parameters][::4] == [
        "transformer_encoder_layer/self_attn/in_proj_weight",
        "transformer_encoder_layer/linear1/W", "transformer_encoder_layer/norm1/weight"]
    sess = gc.Session(g, backend=backend)
    v = _randomize(sess, enc, rng)
    xb = rng.normal(size=(3, 4, 8)).astype(np.float32)
    got = sess.run(y, {x: xb}, training=False)

    x64 = xb.astype(np.float64)
    gelu = np.vectorize(lambda t: 0.5 * t * (1 + erf(t / np.sqrt(2))))

    def sa(t):
        return _mha_ref(t, t, *_mha_weights(v, enc.self_attn), 2)

    def ff(t):
        h = gelu(t @ v[enc.linear1.W] + v[enc.linear1.b])
        return h @ v[enc.linear2.W] + v[enc.linear2.b]

    def n1(t):
        return _layer_norm(t, v[enc.norm1.weight], v[enc.norm1.bias])

    def n2(t):
        return _layer_norm(t, v[enc.norm2.weight], v[enc.norm2.bias])

    if norm_first:
        h = x64 + sa(n1(x64))
        want = h + ff(n2(h))
    else:
        h = n1(x64 + sa(x64))
        want = n2(h + ff(h))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_tiny_transformer_classifier_trains_the_same_on_numpy_and_c():
    from graphc.backends import why_unavailable
    if why_unavailable("c"):
        pytest.skip("backend 'c' unavailable")
    rng = np.random.default_rng(4)
    idx = rng.integers(0, 11, size=(6, 5))
    lab = rng.integers(0, 3, size=6)
    losses = {}
    for backend in ("numpy", "c"):
        with gc.Graph(seed=7) as g:
            ids = gc.placeholder((None, 5), dtype="int64", name="ids")
            y = gc.placeholder((None,), dtype="int64", name="y")
            h = nn.Embedding(11, 8)(ids)
            h = nn.TransformerEncoderLayer(8, heads=2, ff_dim=16, dropout=0.0)(h)
            logits = nn.Dense(3)(gc.mean(h, axis=1))
            loss = gc.mean(gc.softmax_cross_entropy(logits, y))
            train = gc.optim.Adam(1e-2).minimize(loss)
        sess = gc.Session(g, backend=backend)
        seen = [float(sess.run([loss, train], {ids: idx, y: lab})[0]) for _ in range(3)]
        losses[backend] = seen
        assert seen[-1] < seen[0]              # it learns
    np.testing.assert_allclose(losses["c"], losses["numpy"], rtol=1e-4)


def test_attention_refusals():
    for args in ((6, 4), (0, 1), (4, 0)):
        with pytest.raises(gc.ArgumentError, match="MultiHeadAttention: "):
            nn.MultiHeadAttention(*args)
    with pytest.raises(gc.ArgumentError, match="divisible"):
        nn.MultiHeadAttention(6, 4)
    with pytest.raises(gc.ArgumentError):
        nn.MultiHeadAttention(4, 2, causal="yes")
    with pytest.raises(gc.ArgumentError):
        nn.MultiHeadAttention(4, 2, dropout=1.0)
    with pytest.raises(gc.ArgumentTypeError):
        nn.MultiHeadAttention(4.0, 2)
    with pytest.raises(gc.ArgumentError, match="divisible"):
        nn.TransformerEncoderLayer(6, 4, 8)
    for kwargs in ({"ff_dim": 0}, {"dropout": -0.1}, {"activation": "tanh"},
                   {"norm_first": "yes"}):
        with pytest.raises(gc.ArgumentError, match="TransformerEncoderLayer: "):
            nn.TransformerEncoderLayer(**{"dim": 4, "heads": 2, "ff_dim": 8, **kwargs})
    with gc.Graph():
        mha = nn.MultiHeadAttention(4, 2, causal=True)
        for shape in ((None, 4), (None, 3, 5), (None, None, 4)):
            with pytest.raises(gc.ShapeError, match="MultiHeadAttention"):
                mha(gc.placeholder(shape))
        assert not mha.built                      # a failed call builds nothing
        with pytest.raises(gc.DTypeError):
            mha(gc.placeholder((None, 3, 4), dtype="int64"))
        x = gc.placeholder((None, 3, 4))
        with pytest.raises(gc.ShapeError, match="as many keys"):
            mha(x, gc.placeholder((None, 2, 4)))
        assert mha(x).shape == (None, 3, 4)
        enc = nn.TransformerEncoderLayer(4, 2, 8)
        with pytest.raises(gc.ShapeError, match="TransformerEncoderLayer"):
            enc(gc.placeholder((None, 3, 5)))
        assert not enc.built and enc(x).shape == (None, 3, 4)


@pytest.mark.parametrize("norm_first", [False, True])
def test_values_copied_from_pytorch_give_pytorch_outputs(norm_first):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    T, E = 5, 8
    tmha = torch.nn.MultiheadAttention(E, 2, batch_first=True)
    tenc = torch.nn.TransformerEncoderLayer(E, 2, 12, dropout=0.0, activation="gelu",
                                            batch_first=True, norm_first=norm_first)
    with torch.no_grad():                  # PyTorch zeroes the biases: make them count
        for p in list(tmha.parameters()) + list(tenc.parameters()):
            p.normal_(0.0, 0.5)
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, T, E), name="x")
        mha = nn.MultiHeadAttention(E, 2, causal=True)
        enc = nn.TransformerEncoderLayer(E, 2, 12, activation="gelu", norm_first=norm_first)
        y, z = mha(x), enc(x)
    sess = gc.Session(g, backend="numpy")

    def copy(dst, src, transpose=False):
        value = src.detach().numpy()
        sess.set_value(dst, value.T if transpose else value)

    for layer, tl in ((mha, tmha), (enc.self_attn, tenc.self_attn)):
        copy(layer.in_proj_weight, tl.in_proj_weight)
        copy(layer.in_proj_bias, tl.in_proj_bias)
        copy(layer.out_proj_weight, tl.out_proj.weight)
        copy(layer.out_proj_bias, tl.out_proj.bias)
    for mine, theirs in ((enc.linear1, tenc.linear1), (enc.linear2, tenc.linear2)):
        copy(mine.W, theirs.weight, transpose=True)
        copy(mine.b, theirs.bias)
    for mine, theirs in ((enc.norm1, tenc.norm1), (enc.norm2, tenc.norm2)):
        copy(mine.weight, theirs.weight)
        copy(mine.bias, theirs.bias)
    xb = np.random.default_rng(5).normal(size=(3, T, E)).astype(np.float32)
    tx = torch.from_numpy(xb)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(T)
    tenc.eval()
    with torch.no_grad():
        want_y = tmha(tx, tx, tx, attn_mask=mask, need_weights=False)[0].numpy()
        want_z = tenc(tx).numpy()
    got_y, got_z = sess.run([y, z], {x: xb}, training=False)
    np.testing.assert_allclose(got_y, want_y, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_z, want_z, rtol=1e-4, atol=1e-4)
