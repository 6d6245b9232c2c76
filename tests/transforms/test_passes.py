"""Each optimization pass changes the program as intended and keeps values."""

from __future__ import annotations

import numpy as np

import graphc as gc
from graphc.ir.program import Program
from graphc.ops.linalg import matmul_sum
from graphc.transforms.passes import PASSES, algebraic, constant_folding, cse, dce, optimize, stability


def values(program: Program, feed, g):
    """Run a program with the reference interpreter (no passes)."""
    from graphc.backends.reference import ReferenceExecutable as NumpyExecutable
    from graphc.runtime.session import _StepContext

    state = {v: v.value for v in program.variables}
    return NumpyExecutable(program).run(feed, state, _StepContext(0, None))


def test_pass_order_is_a_named_list():
    names = [n for n, _ in PASSES]
    assert names[0] == "stability" and names[-1] == "dce"
    assert {"constant_folding", "cse", "algebraic"} <= set(names)


def test_constant_folding_evaluates_constant_subgraphs():
    with gc.Graph() as g:
        x = gc.placeholder((3,), dtype="float64")
        c = gc.exp(gc.constant(np.array([0.0, 1.0, 2.0]))) * 2.0
        y = x + c
    p = Program([y])
    folded = dce(constant_folding(p))
    assert p.count("elemwise:exp") == 1 and folded.count("elemwise:exp") == 0
    assert folded.count("constant") == 1
    feed = {x: np.array([1.0, 2.0, 3.0])}
    np.testing.assert_allclose(values(folded, feed, g)[0], values(p, feed, g)[0], rtol=1e-15)


def test_cse_merges_identical_nodes():
    with gc.Graph() as g:
        x = gc.placeholder((4,), dtype="float64")
        y = gc.tanh(x) + gc.tanh(x)
    p = Program([y])
    merged = dce(cse(p))
    assert p.count("elemwise:tanh") == 2 and merged.count("elemwise:tanh") == 1
    feed = {x: np.linspace(-1, 1, 4)}
    np.testing.assert_allclose(values(merged, feed, g)[0], values(p, feed, g)[0])


def test_cse_keeps_random_ops_apart():
    with gc.Graph():
        x = gc.placeholder((4,))
        y = gc.dropout(x, 0.5, seed=1) + gc.dropout(x, 0.5, seed=1)
    assert dce(cse(Program([y]))).count("dropout") == 2


def test_cse_merges_the_two_gradients_of_grad_and_minimize():
    # an explicit gc.grad beside minimize's own gradient: both divide by the batch size
    # (a `count` node, impure only through N), so the whole gradient is computed once
    with gc.Graph():
        x = gc.placeholder((None, 3))
        w = gc.variable(np.ones((3, 1), np.float32))
        loss = gc.mean(x @ w)
        (gw,) = gc.grad(loss, [w])
        train = gc.optim.SGD(0.1).minimize(loss)
    p = Program([loss, gw, train])
    assert p.count("count") == 2
    merged = optimize(p)
    assert merged.count("count") == 1 and merged.count("matmul") == 2  # forward, one gradient


def test_dce_removes_dead_nodes():
    with gc.Graph():
        x = gc.placeholder((4,), dtype="float64")
        y = gc.sigmoid(x) * 1.0  # the rewrite x*1 -> x leaves the constant 1 unused
    p = algebraic(Program([y]))
    assert p.count("elemwise:mul") == 0 and p.count("constant") == 1  # listed, but dead
    pruned = dce(p)
    assert pruned.count("constant") == 0
    assert len(pruned) == 2


def test_algebraic_identities():
    with gc.Graph() as g:
        x = gc.placeholder((3,), dtype="float64")
        inner = (x * 1.0 + -0.0) / 1.0 - 0.0
        y = -(-inner)  # noqa: B002 - double negation is the point
        z = 1.0 * x + gc.constant(np.full((2, 3), -0.0))  # broadcasting add: must stay
        w = x + 0.0  # not x: -0.0 + 0.0 is +0.0
    p = dce(algebraic(Program([y, z, w])))
    assert p.outputs[0] is x
    assert p.count("elemwise:add") == 2 and p.outputs[1].shape == (2, 3)
    feed = {x: np.array([1.0, -2.0, -0.0])}
    out = values(p, feed, g)
    np.testing.assert_array_equal(out[0], feed[x])
    np.testing.assert_array_equal(out[1], np.broadcast_to(feed[x], (2, 3)))
    assert not np.signbit(out[2][2])


def test_stability_rewrites():
    with gc.Graph() as g:
        x = gc.placeholder((2, 3), dtype="float64")
        a = gc.log(gc.softmax(x))
        b = gc.log(gc.sigmoid(x))
    p = dce(stability(Program([a, b])))
    assert p.count("log_softmax") == 1 and p.count("softmax") == 0
    assert p.count("elemwise:softplus") == 1 and p.count("elemwise:sigmoid") == 0
    big = np.array([[1000.0, -1000.0, 0.0], [-800.0, 5.0, 800.0]])
    out_a, out_b = values(p, {x: big}, g)
    assert np.all(np.isfinite(out_a)) and np.all(np.isfinite(out_b))
    np.testing.assert_allclose(out_a[0], [0.0, -2000.0, -1000.0])
    np.testing.assert_allclose(out_b[0], [0.0, -1000.0, -np.log(2)])
    small = np.random.default_rng(0).standard_normal((2, 3))
    ref = values(Program([a, b]), {x: small}, g)
    for got, want in zip(values(p, {x: small}, g), ref):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_optimize_keeps_training_values_equal():
    rng = np.random.default_rng(1)
    with gc.Graph():
        x = gc.placeholder((None, 4), dtype="float64")
        W = gc.variable(rng.standard_normal((4, 3)))
        loss = gc.mean(gc.log(gc.softmax(x @ W)) * -1.0)
        (gw,) = gc.grad(loss, [W])
    raw = Program([loss, gw])
    opt = optimize(raw)
    assert len(opt) < len(raw)
    feed = {x: rng.standard_normal((5, 4))}
    from graphc.backends.reference import ReferenceExecutable as NumpyExecutable
    from graphc.runtime.session import _StepContext

    def run(p):
        return NumpyExecutable(p).run(feed, {W: W.value}, _StepContext(0, 5))

    for got, want in zip(run(opt), run(raw)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_passes_do_not_touch_the_users_graph():
    with gc.Graph() as g:
        x = gc.placeholder((3,))
        y = gc.log(gc.sigmoid(x)) * 1.0
    before = list(g.nodes)
    optimize(Program([y]))
    assert g.nodes == before


def test_weight_gradients_sharing_an_operand_become_one_wider_gemm():
    rng = np.random.default_rng(3)
    with gc.Graph() as g:
        dz = gc.placeholder((6, None, 16), dtype="float64", name="dz")   # read once
        x = gc.placeholder((6, None, 3), dtype="float64", name="x")
        h = gc.placeholder((6, None, 4), dtype="float64", name="h")
        dw_x, dw_h = matmul_sum(dz, x), matmul_sum(dz, h) * 2.0
        small = matmul_sum(x, h)  # its own first operand: left alone
    program = optimize(Program([dw_x, dw_h, small]))
    sums = [n for n in program.nodes if n.op.name == "matmul_sum"]
    assert sorted(n.shape for n in sums) == [(3, 4), (16, 7)]
    feed = {dz: rng.normal(size=(6, 5, 16)), x: rng.normal(size=(6, 5, 3)), h: rng.normal(size=(6, 5, 4))}
    want = [np.einsum("tnk,tnj->kj", feed[dz], feed[x]), 2 * np.einsum("tnk,tnj->kj", feed[dz], feed[h]),
            np.einsum("tnk,tnj->kj", feed[x], feed[h])]
    for backend in ("numpy", "c"):
        got = gc.Session(g, backend=backend).run([dw_x, dw_h, small], feed)
        for have, expect in zip(got, want):
            np.testing.assert_allclose(have, expect, rtol=1e-12, atol=1e-12)
