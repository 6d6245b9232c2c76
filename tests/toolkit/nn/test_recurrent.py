"""gc.nn.RNN, LSTM, GRU and Bidirectional: forward values against a NumPy implementation
of PyTorch's equations, final states, stacked and two-way layers, float64 gradients
against finite differences, PyTorch equivalence (where torch is installed), refusals."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc import nn


def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def _reference(kind, x, w, layers=1, directions=1, state=None, act=np.tanh):
    """PyTorch's batch-first RNN/LSTM/GRU in NumPy, ``w`` keyed by torch's state_dict names.
    Returns (outputs, h_n, c_n) with h_n/c_n of shape (layers * directions, N, H)."""
    n, steps, _ = x.shape
    hidden = w["weight_hh_l0"].shape[1]
    h0, c0 = state if state is not None else (np.zeros((layers * directions, n, hidden)),) * 2
    inp, hs, cs = x, [], []
    for k in range(layers):
        outs = []
        for d in range(directions):
            s = f"_l{k}" + ("_reverse" if d else "")
            wi, wh, bi, bh = (w[p + s] for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            h, c = h0[k * directions + d], c0[k * directions + d]
            ys = np.zeros((n, steps, hidden))
            for t in (range(steps - 1, -1, -1) if d else range(steps)):
                gi, gh = inp[:, t] @ wi.T + bi, h @ wh.T + bh
                if kind == "rnn":
                    h = act(gi + gh)
                elif kind == "lstm":
                    i, f, g, o = np.split(gi + gh, 4, axis=1)
                    c = _sig(f) * c + _sig(i) * np.tanh(g)
                    h = _sig(o) * np.tanh(c)
                else:
                    (ir, iz, i_n), (hr, hz, h_n) = np.split(gi, 3, axis=1), np.split(gh, 3, axis=1)
                    r, z = _sig(ir + hr), _sig(iz + hz)
                    n_ = np.tanh(i_n + r * h_n)
                    h = (1 - z) * n_ + z * h
                ys[:, t] = h
            outs.append(ys)
            hs.append(h)
            cs.append(c)
        inp = np.concatenate(outs, axis=-1)
    return inp, np.stack(hs), np.stack(cs)


_KINDS = {"rnn": lambda h, **kw: nn.RNN(h, **kw), "rnn_relu": lambda h, **kw: nn.RNN(
    h, nonlinearity="relu", **kw), "lstm": lambda h, **kw: nn.LSTM(h, **kw),
    "gru": lambda h, **kw: nn.GRU(h, **kw)}
_GATES = {"rnn": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def _build(kind, hidden, steps, feats, dtype="float32", with_state=False, batch=None, **kw):
    with gc.Graph(seed=3) as g:
        x = gc.placeholder((batch, steps, feats), dtype=dtype, name="x")
        layer = _KINDS[kind](hidden, **kw)
        count = layer.num_layers * (2 if kw.get("bidirectional") else 1)
        shape = (None, hidden) if count == 1 else (count, None, hidden)
        init = None
        if with_state:
            init = tuple(gc.placeholder(shape, dtype=dtype, name=f"s{i}")
                         for i in range(2 if kind == "lstm" else 1))
        out, state = layer(x, None if init is None else (init if kind == "lstm" else init[0]))
    return g, x, layer, out, state, init


def _run(sess, layer, kind, x, out, state, xv, init=(), init_v=()):
    feed = {x: xv, **dict(zip(init, init_v))}
    fetch = [out, *(state if kind == "lstm" else (state,))]
    got = sess.run(fetch, feed)
    weights = {k: sess.get_value(v).astype(np.float64) for k, v in layer.torch_names().items()}
    return got, weights


@pytest.mark.parametrize("kind", list(_KINDS))
def test_one_layer_matches_pytorchs_equations_with_names_and_init(backend, kind):
    rng = np.random.default_rng(0)
    n, steps, feats, hidden = 3, 5, 4, 6
    g, x, layer, out, state, init = _build(kind, hidden, steps, feats, with_state=True)
    gates = _GATES[kind]
    scope = "rnn" if kind.startswith("rnn") else kind
    assert [p.name for p in layer.parameters] == [f"{scope}/{p}" for p in (
        "weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    assert [p.shape for p in layer.parameters] == [(gates * hidden, feats), (gates * hidden, hidden),
                                                   (gates * hidden,), (gates * hidden,)]
    assert out.shape == (None, steps, hidden)
    assert all(s.shape == (None, hidden) for s in (state if kind == "lstm" else (state,)))
    sess = gc.Session(g, backend=backend)
    flat = np.concatenate([sess.get_value(p).ravel() for p in layer.parameters])
    bound = 1 / np.sqrt(hidden)           # PyTorch's U(-1/sqrt(H), 1/sqrt(H))
    assert np.abs(flat).max() <= bound and np.abs(flat).max() > 0.8 * bound
    assert flat.std() > 0.45 * bound

    xv = rng.normal(size=(n, steps, feats)).astype(np.float32)
    init_v = [rng.normal(size=(n, hidden)).astype(np.float32) for _ in init]
    got, w = _run(sess, layer, kind, x, out, state, xv, init, init_v)
    state_v = [v[None].astype(np.float64) for v in init_v] + [np.zeros((1, n, hidden))]
    ref = _reference(kind.split("_")[0], xv.astype(np.float64), w, state=state_v[:2],
                     act=(lambda v: np.maximum(v, 0)) if kind == "rnn_relu" else np.tanh)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[1], ref[1][0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[0][:, -1], got[1], rtol=0, atol=0)   # h_n is the last output
    if kind == "lstm":
        np.testing.assert_allclose(got[2], ref[2][0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_two_layers_two_ways_match_pytorchs_stacking_and_state_order(backend, kind):
    if kind == "gru" and backend != "numpy":
        pytest.skip("one kind per compiled backend keeps the suite short; the LSTM covers it")
    rng = np.random.default_rng(1)
    n, steps, feats, hidden = 2, 4, 3, 5
    g, x, layer, out, state, init = _build(kind, hidden, steps, feats, with_state=True,
                                           num_layers=2, bidirectional=True)
    names = [p.name for p in layer.parameters]
    assert names[4:8] == [f"{kind}/{p}_l0_reverse" for p in ("weight_ih", "weight_hh", "bias_ih",
                                                             "bias_hh")]
    assert layer.weights["weight_ih_l1"].shape == (_GATES[kind] * hidden, 2 * hidden)
    assert out.shape == (None, steps, 2 * hidden)
    assert all(s.shape == (4, None, hidden) for s in (state if kind == "lstm" else (state,)))
    sess = gc.Session(g, backend=backend)
    xv = rng.normal(size=(n, steps, feats)).astype(np.float32)
    init_v = [rng.normal(size=(4, n, hidden)).astype(np.float32) for _ in init]
    got, w = _run(sess, layer, kind, x, out, state, xv, init, init_v)
    state_v = [v.astype(np.float64) for v in init_v] + [np.zeros((4, n, hidden))]
    ref = _reference(kind, xv.astype(np.float64), w, layers=2, directions=2, state=state_v[:2])
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # the reverse direction's final state is its output at t = 0, the forward one's at T-1
    h_n = got[1]
    np.testing.assert_array_equal(h_n[3], got[0][:, 0, hidden:])
    np.testing.assert_array_equal(h_n[2], got[0][:, -1, :hidden])


def test_bidirectional_wrapper_is_the_bidirectional_flag():
    rng = np.random.default_rng(2)
    xv = rng.normal(size=(2, 6, 3)).astype(np.float32)
    runs = []
    for wrap in (True, False):
        with gc.Graph(seed=5) as g:
            x = gc.placeholder((None, 6, 3), name="x")
            layer = nn.Bidirectional(nn.RNN(4)) if wrap else nn.RNN(4, bidirectional=True)
            out, h = layer(x)
        assert out.shape == (None, 6, 8) and h.shape == (2, None, 4)
        assert [p.name for p in layer.parameters][4:6] == ["rnn/weight_ih_reverse",
                                                          "rnn/weight_hh_reverse"]
        runs.append(gc.Session(g, backend="numpy").run([out, h], {x: xv}))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    # with the forward weights copied into the reverse ones, the reverse half of the
    # output is the forward half of the time-reversed input, reversed back (aligned at t)
    sess = gc.Session(g, backend="numpy")
    names = layer.torch_names()
    for key in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        sess.set_value(names[key + "_reverse"], sess.get_value(names[key]))
    fwd, back = sess.run(out, {x: xv}), sess.run(out, {x: xv[:, ::-1].copy()})
    np.testing.assert_allclose(fwd[..., 4:], back[:, ::-1, :4], rtol=1e-6, atol=1e-6)
    assert not np.allclose(fwd[..., :4], fwd[..., 4:], atol=1e-3)


@pytest.mark.parametrize("kind, kw", [("lstm", {}), ("gru", {"bidirectional": True})])
def test_float64_gradients_match_finite_differences(backend, fd_grad, kind, kw):
    rng = np.random.default_rng(4)
    n, steps, feats, hidden = 2, 4, 2, 3
    g, x, layer, out, state, _ = _build(kind, hidden, steps, feats, dtype="float64", batch=n, **kw)
    h_n = state[0] if kind == "lstm" else state
    with g:
        r1 = gc.constant(rng.normal(size=(n, steps, out.shape[-1])))
        r2 = gc.constant(rng.normal(size=(n, hidden) if h_n.ndim == 2 else (2, n, hidden)))
        extra = gc.sum(state[1] * state[1]) if kind == "lstm" else 0.0
        loss = gc.sum(gc.tanh(out) * r1) + gc.sum(h_n * r2) + extra
        grads = gc.grad(loss, [x, *layer.parameters])
    sess = gc.Session(g, backend=backend)
    xv = rng.normal(size=(n, steps, feats))
    got = sess.run(grads, {x: xv})
    np.testing.assert_allclose(got[0], fd_grad(lambda: sess.run(loss, {x: xv}), xv),
                               rtol=1e-6, atol=1e-8)
    for p, gp in zip(layer.parameters, got[1:]):
        value = sess.get_value(p).copy()

        def f(p=p, value=value):
            sess.set_value(p, value)
            return sess.run(loss, {x: xv})

        want = fd_grad(f, value)
        sess.set_value(p, value)                  # fd_grad leaves the last probe set
        np.testing.assert_allclose(gp, want, rtol=1e-6, atol=1e-8, err_msg=p.name)


def test_dropout_between_layers_acts_only_in_training():
    xv = np.random.default_rng(6).normal(size=(4, 5, 3)).astype(np.float32)
    runs = []
    for rate in (0.0, 0.5):
        with gc.Graph(seed=0) as g:
            x = gc.placeholder((None, 5, 3), name="x")
            out, _ = nn.GRU(6, num_layers=2, dropout=rate)(x)
        sess = gc.Session(g, backend="numpy")
        runs.append([sess.run(out, {x: xv}, training=t) for t in (False, True)])
    (plain, plain_train), (infer, train) = runs
    np.testing.assert_array_equal(plain, plain_train)
    np.testing.assert_allclose(infer, plain, rtol=1e-6, atol=1e-7)   # same weights, no dropout
    assert np.abs(train - infer).max() > 1e-2


def test_graph_size_does_not_grow_with_the_sequence_length():
    def count(steps):
        with gc.Graph(seed=0) as g:
            x = gc.placeholder((None, steps, 3), name="x")
            out, (h, c) = nn.Bidirectional(nn.LSTM(4, num_layers=2))(x)
            gc.grad(gc.sum(out) + gc.sum(h * c), g.trainable_variables())
        return len(g.nodes)

    assert count(3) == count(40)


def test_matches_torch_modules_after_loading_their_state_dicts():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    xv = rng.normal(size=(3, 7, 4)).astype(np.float32)
    cases = [(lambda: nn.RNN(5, nonlinearity="relu", num_layers=2),
              torch.nn.RNN(4, 5, num_layers=2, nonlinearity="relu", batch_first=True)),
             (lambda: nn.Bidirectional(nn.LSTM(5, num_layers=2)),
              torch.nn.LSTM(4, 5, num_layers=2, batch_first=True, bidirectional=True)),
             (lambda: nn.GRU(5), torch.nn.GRU(4, 5, batch_first=True))]
    torch.manual_seed(0)
    for make, module in cases:
        with gc.Graph(seed=0) as g:
            x = gc.placeholder((None, 7, 4), name="x")
            layer = make()
            out, state = layer(x)
        state_dict = module.state_dict()
        assert set(layer.torch_names()) == set(state_dict)
        sess = gc.Session(g, backend="numpy")
        layer.load_torch_state_dict(sess, state_dict)
        with torch.no_grad():
            t_out, t_state = module(torch.from_numpy(xv))
        got = sess.run([out, *(state if isinstance(state, tuple) else (state,))], {x: xv})
        want = [t_out, *(t_state if isinstance(t_state, tuple) else (t_state,))]
        for a, b in zip(got, want):
            b = b.numpy()
            np.testing.assert_allclose(a, b.reshape(a.shape), rtol=1e-5, atol=1e-5)


def test_refusals_change_nothing():
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 5, 3), name="x")
        before = len(g.trainable_variables())
        with pytest.raises(gc.ShapeError, match=r"\(N, T, F\)"):
            nn.LSTM(4)(gc.placeholder((None, 3)))
        with pytest.raises(gc.ShapeError, match="static T"):
            nn.GRU(4)(gc.placeholder((None, None, 3)))
        with pytest.raises(gc.DTypeError, match="float"):
            nn.RNN(4)(gc.placeholder((None, 5, 3), dtype="int64"))
        with pytest.raises(gc.ShapeError, match="initial state"):
            nn.GRU(4, num_layers=2)(x, gc.placeholder((None, 4)))
        with pytest.raises(gc.ArgumentTypeError, match=r"\(h0, c0\)"):
            nn.LSTM(4)(x, gc.placeholder((None, 4)))
        assert len(g.trainable_variables()) == before          # nothing was built
        with pytest.raises(gc.ArgumentError, match="nonlinearity"):
            nn.RNN(4, nonlinearity="sigmoid")
        with pytest.raises(gc.ArgumentTypeError, match="wraps an RNN"):
            nn.Bidirectional(nn.Dense(3))
        built = nn.LSTM(4)
        with pytest.raises(gc.ArgumentError, match="before its first call"):
            built.torch_names()
        built(x)
        with pytest.raises(gc.ArgumentError, match="already built"):
            nn.Bidirectional(built)
        with pytest.raises(gc.DTypeError, match="built for float32"):
            built(gc.placeholder((None, 5, 3), dtype="float64"))
    sess = gc.Session(g, backend="numpy")
    names = built.torch_names()
    values = {k: sess.get_value(v).copy() for k, v in names.items()}
    bad = {k: np.ones(v.shape) for k, v in names.items()}
    bad["weight_hh_l0"] = np.ones((4, 4))
    with pytest.raises(gc.ShapeError, match="weight_hh_l0"):
        built.load_torch_state_dict(sess, bad)
    del bad["weight_hh_l0"]
    with pytest.raises(gc.ArgumentError, match="missing"):
        built.load_torch_state_dict(sess, bad)
    for k, v in names.items():
        np.testing.assert_array_equal(sess.get_value(v), values[k])
