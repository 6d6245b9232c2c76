"""``Session.explain``: kernels in run order with their nodes and lines, the arena and its
biggest buffers, FLOPs and bytes per kernel, one kernel's generated source."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.runtime.explain import node_flops

HERE = "test_explain.py"


def _mlp():
    """(N, 5) @ (5, 7) + b -> relu -> (N, 7) @ (7, 3): loss and an SGD step."""
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 5), name="x")
        W1 = gc.variable(np.ones((5, 7), np.float32), name="W1")
        b1 = gc.variable(np.zeros(7, np.float32), name="b1")
        W2 = gc.variable(np.ones((7, 3), np.float32), name="W2")
        h = gc.relu(x @ W1 + b1)
        out = h @ W2
        loss = gc.mean(out * out)
        train = gc.optim.SGD(0.01).minimize(loss)
    return g, x, h, out, loss, train


@pytest.mark.needs_c
def test_kernels_in_run_order_with_nodes_lines_and_arena():
    g, x, h, out, loss, train = _mlp()
    sess = gc.Session(g, backend="c")
    ex = sess.explain([loss, train], batch=16)
    compiled = sess.compile([loss, train])
    assert [k["name"] for k in ex.kernels] == [k["name"] for k in compiled.kernels]
    assert [k["nodes"] for k in ex.kernels] == [k["nodes"] for k in compiled.kernels]
    assert all(line and HERE in line for k in ex.kernels for line in k["lines"])
    text = str(ex)
    positions = [text.index(k["name"]) for k in ex.kernels]
    assert positions == sorted(positions)  # printed in run order
    # the arena: what the compiled step allocates at that batch size, biggest buffers first
    assert ex.batch == 16 and ex.arena_bytes == compiled.arena_bytes(16)
    assert 0 < ex.value_bytes <= ex.arena_bytes
    assert ex.buffers and ex.arena_values >= len(ex.buffers)
    sizes = [b["bytes"] for b in ex.buffers]
    assert sizes == sorted(sizes, reverse=True)
    for b in ex.buffers:
        assert b["bytes"] == int(np.prod(b["shape"])) * np.dtype(b["dtype"]).itemsize
        assert 0 <= b["offset"] and b["offset"] + b["bytes"] <= ex.value_bytes
        assert b["written_by"] in [k["name"] for k in ex.kernels]
    # the (16, 7) relu output is stored for the backward pass: the biggest value here
    assert ex.buffers[0]["shape"] == (16, 7)
    assert "arena: " in text and ex.buffers[0]["name"] in text


@pytest.mark.needs_c
def test_kernel_source_is_that_kernels_c_function_only():
    g, x, h, out, loss, train = _mlp()
    sess = gc.Session(g, backend="c")
    names = [k["name"] for k in sess.explain([loss, train]).kernels]
    fused = next(n for n in names if "matmul_ew" in n)  # has an epilogue function too
    ex = sess.explain([loss, train], kernel=fused)
    assert ex.kernel == fused and ex.source in sess.compile([loss, train]).source
    assert f"static void {fused}(const gc_ctx *g)" in ex.source
    assert f"{fused}_epilogue(" in ex.source
    assert ex.source.rstrip().endswith("}")
    for other in names:
        if other != fused:
            assert f"{other}(" not in ex.source
    assert ex.source.strip() in str(ex)
    # a node's name finds the kernel that fused it
    assert sess.explain([loss, train], kernel=ex.kernels[names.index(fused)]["nodes"][-1]).kernel == fused


def test_unknown_kernel_is_a_clear_error_listing_the_kernels(backend):
    g, x, h, out, loss, train = _mlp()
    sess = gc.Session(g, backend=backend)
    names = [k["name"] for k in sess.explain([loss, train]).kernels]
    with pytest.raises(gc.ArgumentError) as info:
        sess.explain([loss, train], kernel="k99_nothing")
    message = str(info.value)
    assert "no kernel named 'k99_nothing'" in message and HERE in message
    assert all(n in message for n in names)


def test_matmul_flops_are_2mnk_and_bytes_are_loads_plus_stores(backend):
    with gc.Graph() as g:
        x = gc.placeholder((None, 6), name="x")
        W = gc.variable(np.ones((6, 4), np.float32), name="W")
        y = x @ W
    ex = gc.Session(g, backend=backend).explain(y, batch=10)
    (k,) = ex.kernels
    assert k["flops"] == 2 * 10 * 4 * 6 == ex.flops
    assert k["load_bytes"] == (10 * 6 + 6 * 4) * 4 and k["store_bytes"] == 10 * 4 * 4
    assert k["bytes"] == k["load_bytes"] + k["store_bytes"]


def test_flop_estimates_of_other_ops():
    with gc.Graph():
        x = gc.placeholder((None, 3, 8, 8))
        w = gc.variable(np.ones((4, 3, 3, 3), np.float32))
        y = gc.conv2d(x, w, padding=1)  # (N, 4, 8, 8)
        a = gc.placeholder((5, 2, 3))
        b = gc.placeholder((5, 4, 3))
        bt = gc.matmul(a, b, transpose_b=True)  # (5, 2, 4), K = 3
        e = gc.sigmoid(x) * 2.0 - x  # an elemwise node per operation: sigmoid, mul, sub
        s = gc.sum(x)
        gx = gc.grad(gc.sum(y), [x, w])
    assert node_flops(y, 2) == 2 * (2 * 4 * 8 * 8) * (3 * 3 * 3)
    assert node_flops(gx[0], 2) == node_flops(y, 2) == node_flops(gx[1], 2)  # data, filter grads
    assert node_flops(bt) == 2 * 5 * 2 * 4 * 3
    assert node_flops(e, 2) == node_flops(e.inputs[0], 2) == 2 * 3 * 8 * 8
    sig = e.inputs[0].inputs[0]
    assert sig.op.name == "elemwise" and node_flops(sig, 2) >= 2 * 3 * 8 * 8
    assert node_flops(s, 2) == 2 * 3 * 8 * 8
    assert node_flops(gc.reshape(x, (-1, 192)), 2) == 0


def test_numpy_backend_reports_each_node_without_arena_or_source():
    g, x, h, out, loss, train = _mlp()
    sess = gc.Session(g, backend="numpy")
    compiled = sess.compile([loss, train])
    ex = sess.explain([loss, train], batch=4)
    computing = [n.name for n in compiled.program.nodes if not n.op.kind.is_leaf]
    assert [k["name"] for k in ex.kernels] == computing
    assert all(k["nodes"] == [k["name"]] for k in ex.kernels)
    assert ex.arena_bytes == 0 and ex.buffers == [] and ex.source is None
    matmul = next(k for k in ex.kernels if k["kind"] == "matmul")
    assert matmul["flops"] == 2 * 4 * 7 * 5
    assert "arena: none" in str(ex)
    one = sess.explain([loss, train], kernel=matmul["name"])
    assert one.source is None and "no generated source" in str(one)


def test_batch_defaults_to_the_latest_run_and_is_checked():
    g, x, h, out, loss, train = _mlp()
    sess = gc.Session(g, backend="numpy")
    assert sess.explain(out).batch == 1
    sess.run(out, {x: np.ones((6, 5), np.float32)})
    assert sess.explain(out).batch == 6
    with pytest.raises(gc.ArgumentError, match="batch"):
        sess.explain(out, batch=-1)
    with gc.Graph() as static:
        c = gc.placeholder((2, 2)) * 3.0
    assert gc.Session(static, backend="numpy").explain(c, batch=9).batch is None  # no None dim


def test_explain_runs_nothing_and_changes_no_state(backend):
    g, x, h, out, loss, train = _mlp()
    sess = gc.Session(g, backend=backend)
    before = {v.name: sess.get_value(v) for v in g.variables()}
    sess.explain([loss, train], batch=3)
    assert sess.step == 0
    for v in g.variables():
        np.testing.assert_array_equal(sess.get_value(v), before[v.name])
