"""gc.scan: forward against NumPy loops, backpropagation through time against finite
differences, grad of grad, captures, nesting, the C loop, and the errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

import graphc as gc
from graphc.backends.c.library import render
from graphc.ir.errors import GraphcError, ShapeError
from graphc.ir.program import Program, toposort
from graphc.lower import lower
from graphc.transforms.passes import optimize

N, T, F, H = 3, 5, 4, 6


def _rnn(T_=T, dtype="float64", reverse=False):
    rng = np.random.default_rng(0)
    with gc.Graph(seed=1) as g:
        x = gc.placeholder((None, T_, F), dtype=dtype, name="x")
        W = gc.variable((rng.normal(size=(F, H)) * 0.5).astype(dtype), name="W")
        U = gc.variable((rng.normal(size=(H, H)) * 0.5).astype(dtype), name="U")
        h0 = gc.placeholder((None, H), dtype=dtype, name="h0")

        def step(h, x_t):
            h = gc.tanh(x_t @ W + h @ U)
            return h, h * 2.0

        h_last, hs = gc.scan(step, h0, x, reverse=reverse)
        loss = gc.sum(hs * hs) + gc.sum(h_last)
    return g, dict(x=x, W=W, U=U, h0=h0, h_last=h_last, hs=hs, loss=loss)


def _rnn_numpy(W, U, x, h0, reverse=False):
    h, hs = h0, [None] * x.shape[1]
    for t in (reversed(range(x.shape[1])) if reverse else range(x.shape[1])):
        h = np.tanh(x[:, t] @ W + h @ U)
        hs[t] = 2 * h
    hs = np.stack(hs, 1)
    return (hs * hs).sum() + h.sum(), hs, h


def _numeric(f, value, eps=1e-6):
    out = np.zeros_like(value)
    for idx in np.ndindex(value.shape):
        up, down = value.copy(), value.copy()
        up[idx] += eps
        down[idx] -= eps
        out[idx] = (f(up) - f(down)) / (2 * eps)
    return out


@pytest.mark.parametrize("reverse", [False, True])
def test_rnn_forward_matches_a_numpy_loop(backend, reverse):
    g, m = _rnn(dtype="float32", reverse=reverse)
    rng = np.random.default_rng(1)
    x, h0 = rng.normal(size=(N, T, F)).astype("f"), rng.normal(size=(N, H)).astype("f")
    sess = gc.Session(g, backend=backend)
    hs, h_last = sess.run([m["hs"], m["h_last"]], {m["x"]: x, m["h0"]: h0})
    _, want_hs, want_h = _rnn_numpy(sess.get_value(m["W"]), sess.get_value(m["U"]), x, h0, reverse)
    assert hs.shape == (N, T, H) and h_last.shape == (N, H)
    np.testing.assert_allclose(hs, want_hs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h_last, want_h, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reverse", [False, True])
def test_backprop_through_time_matches_finite_differences(backend, reverse):
    g, m = _rnn(reverse=reverse)
    with g:
        grads = gc.grad(m["loss"], [m["W"], m["U"], m["x"], m["h0"]])
    rng = np.random.default_rng(2)
    x, h0 = rng.normal(size=(N, T, F)), rng.normal(size=(N, H))
    sess = gc.Session(g, backend=backend)
    got = sess.run(grads, {m["x"]: x, m["h0"]: h0})
    W, U = sess.get_value(m["W"]), sess.get_value(m["U"])
    wants = [_numeric(lambda v: _rnn_numpy(v, U, x, h0, reverse)[0], W),
             _numeric(lambda v: _rnn_numpy(W, v, x, h0, reverse)[0], U),
             _numeric(lambda v: _rnn_numpy(W, U, v, h0, reverse)[0], x),
             _numeric(lambda v: _rnn_numpy(W, U, x, v, reverse)[0], h0)]
    for have, want in zip(got, wants):
        np.testing.assert_allclose(have, want, rtol=1e-6, atol=1e-7)


def test_tuple_carries_sequences_and_outputs_with_grad_of_grad(backend):
    rng = np.random.default_rng(3)
    with gc.Graph() as g:
        x = gc.placeholder((None, 4, 3), dtype="float64")
        s = gc.placeholder((4, None, 3), dtype="float64")  # a second sequence, time first
        w = gc.variable(rng.normal(size=(3,)) * 0.5)
        c0 = gc.zeros_like(x[:, 0, :])

        def step(carry, xs_t):
            a, b = carry
            x_t, s_t = xs_t
            a = gc.sin(a * w + x_t)
            b = b + a * s_t
            return (a, b), (a * b, b - a)

        (a_last, b_last), (y1, y2) = gc.scan(step, (c0, c0), (x, gc.transpose(s, (1, 0, 2))))
        loss = gc.sum(y1) + gc.sum(y2 * y2) + gc.sum(a_last * b_last)
        gw, = gc.grad(loss, [w])
        hess, = gc.grad(gc.sum(gw * gw), [w])
    xv, sv = rng.normal(size=(2, 4, 3)), rng.normal(size=(4, 2, 3))

    def f(wv):
        a = b = np.zeros((2, 3))
        total = 0.0
        for t in range(4):
            a = np.sin(a * wv + xv[:, t])
            b = b + a * sv[t]
            total += (a * b).sum() + ((b - a) ** 2).sum()
        return total + (a * b).sum()

    sess = gc.Session(g, backend=backend)
    wv = sess.get_value(w)
    lv, gv, hv = sess.run([loss, gw, hess], {x: xv, s: sv})
    assert lv == pytest.approx(f(wv), rel=1e-12)
    np.testing.assert_allclose(gv, _numeric(f, wv), rtol=1e-6)
    want = _numeric(lambda v: (_numeric(f, v, 1e-4) ** 2).sum(), wv, 1e-4)
    np.testing.assert_allclose(hv, want, rtol=1e-4)


def test_a_variable_made_inside_the_step_lives_in_the_users_graph_and_trains(backend):
    with gc.Graph(seed=3) as g:
        x = gc.placeholder((None, 3, 2), name="x")
        dense = gc.nn.Dense(2, use_bias=False)

        def step(h, x_t):
            h = gc.tanh(dense(x_t) + h)
            return h, h

        h_last, _ = gc.scan(step, gc.zeros_like(x[:, 0, :]), x)
        loss = gc.mean(gc.square(h_last - 0.5))
        train = gc.optim.SGD(0.5).minimize(loss)
    assert [v.graph for v in g.trainable_variables()] == [g]
    sess = gc.Session(g, backend=backend)
    xv = np.random.default_rng(4).normal(size=(8, 3, 2)).astype("f")
    first = sess.run(loss, {x: xv})
    for _ in range(20):
        sess.run(train, {x: xv})
    assert sess.run(loss, {x: xv}) < 0.5 * first


def test_nested_scans(backend):
    with gc.Graph() as g:
        x = gc.placeholder((None, 3, 4), dtype="float64")  # (N, outer T, inner T)
        w = gc.variable(np.array(0.7))

        def outer(acc, row):  # row (N, 4): an inner scan over its elements
            inner_last, _ = gc.scan(lambda c, v: (c * w + v, c), acc, row, axis=1)
            return inner_last, inner_last

        last, per_row = gc.scan(outer, gc.zeros_like(x[:, 0, 0]), x)
        gw, = gc.grad(gc.sum(per_row), [w])
    xv = np.random.default_rng(5).normal(size=(2, 3, 4))

    def f(wv):
        acc, rows = np.zeros(2), []
        for t in range(3):
            for k in range(4):
                acc = acc * wv + xv[:, t, k]
            rows.append(acc)
        return np.stack(rows, 1)

    got, grad_w = gc.Session(g, backend=backend).run([per_row, gw], {x: xv})
    np.testing.assert_allclose(got, f(0.7), rtol=1e-12)
    assert grad_w == pytest.approx((f(0.7 + 1e-6).sum() - f(0.7 - 1e-6).sum()) / 2e-6, rel=1e-6)


@pytest.mark.needs_c
def test_the_body_compiles_once_whatever_the_length():
    sources = {}
    for length in (4, 256):
        g, m = _rnn(T_=length)
        with g:
            grads = gc.grad(m["loss"], [m["W"], m["U"]])
        lowered = lower(optimize(Program([m["loss"], *grads])))
        sources[length] = render(lowered).key_source
        assert sum(k.kind == "scan" for k in lowered.kernels) == 2  # forward, backward
    a, b = (re.sub(r"\d+", "#", sources[k]) for k in (4, 256))
    assert a == b  # the same code: only numbers (the length, sizes) differ


def test_check_numerics_names_the_body_node(backend):
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        h_last, _ = gc.scan(lambda h, x_t: (h + gc.log(x_t), h), gc.zeros_like(x[:, 0]), x)
    sess = gc.Session(g, backend=backend, check_numerics=True)
    assert sess.run(h_last, {x: np.ones((2, 3), "f")}) == pytest.approx([0, 0])
    with pytest.raises(gc.NumericsError, match="NaN produced by log"):
        sess.run(h_last, {x: np.array([[1, 1, -1], [1, 1, 1]], "f")})


def test_a_failing_body_fails_the_step_and_changes_nothing(backend):
    with gc.Graph() as g:
        ids = gc.placeholder((None, 3), dtype="int64", name="ids")
        table = gc.variable(np.arange(8.0, dtype="f").reshape(4, 2), name="table")

        def step(h, i_t):
            return h + gc.gather(table, i_t), h

        h_last, _ = gc.scan(step, gc.zeros_like(gc.gather(table, ids[:, 0])), ids)
        train = gc.optim.SGD(0.1).minimize(gc.sum(h_last))
    sess = gc.Session(g, backend=backend)
    good = np.array([[0, 1, 2], [3, 3, 3]])
    np.testing.assert_allclose(sess.run(h_last, {ids: good}), [[6, 9], [18, 21]])
    before = sess.get_value(table).copy()
    with pytest.raises(GraphcError, match="gather"):
        sess.run(train, {ids: np.array([[0, 1, 2], [3, 9, 3]])})
    np.testing.assert_array_equal(sess.get_value(table), before)


def test_errors_name_the_problem_and_the_line():
    with gc.Graph():
        x = gc.placeholder((None, 3, 2))
        h0 = gc.zeros_like(x[:, 0, :])
        with pytest.raises(ShapeError, match=r"(?s)new carry 0 is \(N, 1\).*test_scan.py"):
            gc.scan(lambda h, x_t: (gc.sum(h, axis=1, keepdims=True), h), h0, x)
        with pytest.raises(ShapeError, match="one static, non-zero length"):
            gc.scan(lambda h, xs_t: (h, h), h0, (x, gc.placeholder((None, 4, 2))))
        with pytest.raises(GraphcError, match="returned 1 new carry tensors, expected 2"):
            gc.scan(lambda c, x_t: (c[0], x_t), (h0, h0), x)
        v = gc.variable(np.zeros(2, "f"))
        with pytest.raises(GraphcError, match="cannot change state"):
            gc.scan(lambda h, x_t: (h, gc.assign(v, x_t[0])), h0, x)
        with pytest.raises(GraphcError, match="makes a placeholder"):
            gc.scan(lambda h, x_t: (h + gc.placeholder((None, 2)), h), h0, x)
        with pytest.raises(ShapeError, match="axis 3 is out of range"):
            gc.scan(lambda h, x_t: (h, h), h0, x, axis=3)


def test_work_that_is_the_same_every_step_runs_once_before_the_loop(backend):
    rng = np.random.default_rng(6)
    with gc.Graph() as g:
        x = gc.placeholder((None, 4, 3), dtype="float64")
        W = gc.variable(rng.normal(size=(3, 3)))

        def step(h, x_t):
            Wt = gc.transpose(W) * 0.5  # the same at every step: hoisted
            return gc.tanh(x_t @ Wt + h @ Wt), gc.dropout(h, 0.5)  # dropout: random, stays

        last, _ = gc.scan(step, gc.zeros_like(x[:, 0, :]), x)
        gW, = gc.grad(gc.sum(last), [W])
    scan = next(n for n in g.nodes if n.op.name == "scan")
    body = scan.attrs["body"]
    inside = {n.op.label(n.attrs) for n in toposort(body.outputs)}
    assert "transpose" not in inside and "mul" not in inside and "dropout(0.5)" in inside
    # W * 0.5 transposed, captured once; the learning phase for dropout
    assert sorted(c.op.name for c in body.captured) == ["elemwise", "placeholder"]
    xv = rng.normal(size=(2, 4, 3))
    sess = gc.Session(g, backend=backend)
    Wv = sess.get_value(W)

    def f(w):
        h = np.zeros((2, 3))
        for t in range(4):
            h = np.tanh(xv[:, t] @ (w.T * 0.5) + h @ (w.T * 0.5))
        return h.sum()

    np.testing.assert_allclose(sess.run(gW, {x: xv}), _numeric(f, Wv), rtol=1e-6)


def test_a_weights_gradient_is_one_gemm_over_all_steps_not_a_carry():
    g, m = _rnn()
    with g:
        gW, gU = gc.grad(m["loss"], [m["W"], m["U"]])
    # dU = sum_t h_{t-1}^T dz_t: the stored carries and the emitted dz, one GEMM after the loop
    assert gU.op.name == "matmul_sum" and gW.op.name == "matmul_sum"
    backward = next(n for n in toposort([gU]) if n.op.name == "scan" and n.attrs["reverse"])
    assert backward.attrs["carries"] == 1  # only dh: no (F, H) or (H, H) accumulators
    assert any(i.op.name == "scan_output" and i.attrs["what"] == "carries 0" for i in gU.inputs)
    assert gW.inputs[0].op.name == "transpose"  # x itself (time-major), not a copy per step
    # both GEMMs read the one stacked dz: the body returns it twice, the scan stores it once
    assert gW.inputs[1].attrs["index"] == gU.inputs[1].attrs["index"]


def test_the_gradients_body_reads_the_stored_activations_instead_of_computing_them():
    rng = np.random.default_rng(7)
    with gc.Graph() as g:
        x = gc.placeholder((None, 4, 3), dtype="float64")
        W = gc.variable(rng.normal(size=(3, 6)))
        U = gc.variable(rng.normal(size=(3, 6)))

        def step(h, x_t):  # a gated cell: sigmoid and tanh, derivatives in their own values
            gate, cand = gc.split(x_t @ W + h @ U, 2, axis=-1)
            return gc.sigmoid(gate) * gc.tanh(cand), None

        last, _ = gc.scan(step, gc.zeros_like(x[:, 0, :]), x)
        loss = gc.sum(last * last)
        gW, gU = gc.grad(loss, [W, U])
    program = optimize(Program([gW, gU]))
    scans = [n for n in program.nodes if n.op.name == "scan"]
    backward = next(n for n in scans if n.attrs["reverse"])
    inside = [n.attrs["fn"] for n in toposort(backward.attrs["body"].outputs) if n.op.name == "elemwise"]
    assert "sigmoid" not in inside and "tanh" not in inside  # only their derivatives
    # the forward pass stores the sigmoid and tanh values, not the matmul nothing reads
    stored = {n.attrs["what"] for n in program.nodes if n.op.name == "scan_output"}
    assert sorted(w for w in stored if w.startswith("saved")) == ["saved 2", "saved 3"]
    # sigmoid(gate) and tanh(cand); h_{t-1} and x_t feed the weight gradients' GEMMs only
    assert backward.attrs["sequences"] == 2
    # W and U (x_t W + h U; dz W^T, dz U^T) are packed once per scan, outside the loops
    for scan in scans:
        names = [n.op.name for n in toposort(scan.attrs["body"].outputs)]
        assert "matmul_packed" in names and "pack_b" not in names
    # the gradient's seed (1.0 broadcast to the batch) stays a literal in the loop, not an
    # array hoisted out and read at every step
    assert "broadcast_to" not in {c.op.name for c in backward.attrs["body"].captured}
    packs = sorted(n.attrs["transpose"] for n in program.nodes if n.op.name == "pack_b")
    assert packs == [False, False, True, True]
    xv = rng.normal(size=(2, 4, 3))

    def f(w, u):
        h = np.zeros((2, 3))
        for t in range(4):
            z = xv[:, t] @ w + h @ u
            h = 1 / (1 + np.exp(-z[:, :3])) * np.tanh(z[:, 3:])
        return (h * h).sum()

    sessions = {b: gc.Session(g, backend=b) for b in ("numpy", "c")}
    Wv, Uv = sessions["numpy"].get_value(W), sessions["numpy"].get_value(U)
    want = [_numeric(lambda w: f(w, Uv), Wv), _numeric(lambda u: f(Wv, u), Uv)]
    for sess in sessions.values():
        for got, expected in zip(sess.run([gW, gU], {x: xv}), want):
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)
