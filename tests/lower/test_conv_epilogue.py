"""conv2d forward with a fused elementwise epilogue (bias, activation) on the C backend.

An elementwise group that only reads a conv2d's output becomes the conv's
epilogue: ``gc_sconv2d_forward_hook`` / ``gc_dconv2d_forward_hook``
(graphc/backends/c/kernels/conv2d.h) apply it inside the GEMM as each output tile is stored.
Every test checks that the fusion fired (one ``conv2d_ew`` kernel holding the
add and the activation, no separate elementwise kernel) and compares every
element with the NumPy backend, with the numerical contract's tolerances
(float32 1e-5 relative elementwise, float64 1e-10; see
tests/backends/test_c_agreement.py). Sizes are odd; data is random, never zero.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import graphc as gc
from graphc.lower import ir

DTYPES = ["float32", "float64"]
RTOL = {"float32": 1e-5, "float64": 1e-10}
BATCHES = (1, 7)


pytestmark = pytest.mark.needs_c

ACTIVATIONS = {
    "relu": gc.relu,
    "sigmoid": gc.sigmoid,
    "leaky_relu": lambda t: gc.leaky_relu(t, 0.1),
    "tanh": gc.tanh,
}

#: (C, O, H, W, kernel, stride, padding, activation)
CONFIGS = [
    (3, 5, 7, 7, 3, 1, 1, "relu"),
    (1, 3, 9, 6, 3, 2, 0, "sigmoid"),
    (5, 1, 7, 7, 3, 2, 1, "leaky_relu"),
    (3, 5, 9, 6, 1, 1, 0, "relu"),        # 1x1 / stride 1 / no padding: the plain-GEMM path
    (5, 3, 9, 6, 2, 1, 0, "tanh"),
    (1, 5, 7, 7, 1, 2, 1, "relu"),        # 1x1 but strided and padded: the im2col path
    (16, 32, 31, 29, 3, 1, 1, "relu"),    # big enough for threads inside the GEMM at batch 1
]


def _rand(rng, shape, dtype, low=0.25, high=1.5):
    """Random values bounded away from zero, with random signs."""
    mag = rng.uniform(low, high, size=shape)
    sign = np.where(rng.random(size=shape) < 0.5, -1.0, 1.0)
    return (mag * sign).astype(dtype)


def _close(got, ref, dtype, what):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    scale = np.maximum(np.abs(ref), 1.0 if dtype == "float32" else 1e-3)
    bad = np.abs(got - ref) > RTOL[dtype] * 10 * scale
    assert not bad.any(), (f"{what}: {int(bad.sum())} of {bad.size} elements differ, max abs diff "
                           f"{np.max(np.abs(got - ref)):.3g}")


def _compare(graph, fetches, feeds_for, dtype, what=""):
    c, n = gc.Session(graph, backend="c"), gc.Session(graph, backend="numpy")
    for batch in BATCHES:
        feed = feeds_for(batch)
        got, ref = c.run(list(fetches), feed), n.run(list(fetches), feed)
        for k, (a, b) in enumerate(zip(got, ref)):
            _close(a, b, dtype, f"{what} output {k} ({fetches[k].name}), batch {batch}")
        again = c.run(list(fetches), feed)  # bit-identical run to run
        assert all(np.array_equal(a, b) for a, b in zip(got, again)), f"{what}: not deterministic"
    return c.compile(list(fetches))


def _template_calls(compiled, fn: str) -> list:
    """The lowered step's calls of template function ``fn``."""
    return [s for k in compiled.executable.lowered.kernels for s in ir.walk(k.body)
            if isinstance(s, ir.TemplateCall) and s.fn == fn]


def _conv_kernels(compiled):
    return [k for k in compiled.kernels if k["kind"] == "conv2d"]


def _assert_fused(compiled, conv_nodes: list[list[str]]):
    """Each list (a conv2d and its epilogue nodes) is one conv2d kernel; no elementwise kernel."""
    kernels = _conv_kernels(compiled)
    for names in conv_nodes:
        hits = [k for k in kernels if k["nodes"][0] == names[0]]
        assert len(hits) == 1, f"no conv2d kernel for {names[0]}: {compiled.kernels}"
        assert hits[0]["nodes"] == names, hits[0]
        assert hits[0]["name"].endswith("_conv2d_ew"), hits[0]
    assert not [k for k in compiled.kernels if k["kind"] == "elementwise"], compiled.kernels


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_bias_activation_fused(dtype):
    rng = np.random.default_rng(1)
    with gc.Graph(seed=0) as g:
        xs, outs, expect = [], [], []
        for j, (c, o, h, w, k, s, p, act) in enumerate(CONFIGS):
            x = gc.placeholder((None, c, h, w), dtype=dtype, name=f"x{j}")
            wt = gc.variable(_rand(rng, (o, c, k, k), dtype) / np.sqrt(c * k * k).astype(dtype),
                             name=f"w{j}")
            b = gc.variable(_rand(rng, (o,), dtype), name=f"b{j}")
            z = gc.conv2d(x, wt, stride=s, padding=p)
            a = z + gc.reshape(b, (1, o, 1, 1))
            y = ACTIVATIONS[act](a)
            xs.append(x)
            outs.append(y)
            expect.append([z.name, a.name, y.name])

    def feeds(batch):
        return {x: _rand(np.random.default_rng(batch), (batch,) + x.shape[1:], dtype) for x in xs}

    compiled = _compare(g, outs, feeds, dtype, "conv+bias+act")
    _assert_fused(compiled, expect)
    calls = _template_calls(compiled, "conv2d_forward")
    assert len(calls) == len(CONFIGS) and all(c.epilogue is not None for c in calls), \
        "an un-fused conv call is left in the step"
    generated = compiled.source.split("} gc_ctx;")[1]  # after the pasted templates
    assert len(re.findall(r"^static void k\d+_conv2d_ew_epilogue_tile\(", generated, re.M)) == len(CONFIGS)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_output_also_fetched(dtype):
    """The raw conv value and the epilogue value are both stored (and both right)."""
    rng = np.random.default_rng(2)
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 3, 9, 6), dtype=dtype, name="x")
        wt = gc.variable(_rand(rng, (5, 3, 3, 3), dtype), name="w")
        b = gc.variable(_rand(rng, (5,), dtype), name="b")
        z = gc.conv2d(x, wt, stride=1, padding=1)
        a = z + gc.reshape(b, (1, 5, 1, 1))
        y = gc.relu(a)
        y2 = gc.sigmoid(a) * 2.5  # a second value stored by the epilogue

    def feeds(batch):
        return {x: _rand(np.random.default_rng(batch), (batch, 3, 9, 6), dtype)}

    compiled = _compare(g, [z, y, a, y2], feeds, dtype, "conv fetched")
    (k,) = _conv_kernels(compiled)
    assert k["nodes"][0] == "conv2d" and {a.name, y.name} <= set(k["nodes"]), k
    assert {z.name, y.name, a.name, y2.name} <= set(k["stores"]), k
    assert not [k for k in compiled.kernels if k["kind"] == "elementwise"], compiled.kernels


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_epilogue_broadcast_patterns(dtype):
    """Loads broadcast over (N, O, OH, OW) in ways that do and do not collapse OH, OW."""
    rng = np.random.default_rng(3)
    oh, ow = 5, 3  # 9x6 image, 3x3 kernel, stride 2, padding 1
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 3, 9, 6), dtype=dtype, name="x")
        r = gc.placeholder((None, 5, oh, ow), dtype=dtype, name="r")   # residual: full shape
        wt = gc.variable(_rand(rng, (5, 3, 3, 3), dtype), name="w")
        row = gc.variable(_rand(rng, (1, 1, 1, ow), dtype), name="row")    # j % OW
        col = gc.variable(_rand(rng, (oh, 1), dtype), name="col")          # j / OW (2-D, aligned right)
        plane = gc.variable(_rand(rng, (oh, ow), dtype), name="plane")     # j
        per_img = gc.placeholder((None, 1, 1, 1), dtype=dtype, name="s")   # n
        chan_row = gc.variable(_rand(rng, (5, 1, ow), dtype), name="cr")   # i and j % OW
        z = gc.conv2d(x, wt, stride=2, padding=1)
        y = gc.tanh(((z * row + col) - plane) * per_img + chan_row + r) + 0.5

    def feeds(batch):
        q = np.random.default_rng(batch)
        return {x: _rand(q, (batch, 3, 9, 6), dtype), r: _rand(q, (batch, 5, oh, ow), dtype),
                per_img: _rand(q, (batch, 1, 1, 1), dtype)}

    compiled = _compare(g, [y], feeds, dtype, "broadcast loads")
    (k,) = _conv_kernels(compiled)
    assert len(k["nodes"]) > 5 and k["name"].endswith("_conv2d_ew"), k
    assert not [k for k in compiled.kernels if k["kind"] == "elementwise"], compiled.kernels
    src = compiled.source.split("} gc_ctx;")[1]
    assert re.search(r"\bj % 3\b", src) and re.search(r"\bj / 3\b", src)


def test_nn_conv2d_layer_fuses():
    """What gc.nn.Conv2D builds (conv + reshaped bias + activation) fuses."""
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 3, 7, 7), name="x")
        y = gc.nn.Conv2D(5, kernel_size=3, padding=1, activation="relu")(x)
    compiled = gc.Session(g, backend="c").compile([y])
    (k,) = _conv_kernels(compiled)
    assert len(k["nodes"]) == 3 and k["name"].endswith("_conv2d_ew"), k
    assert len(compiled.kernels) == 1, compiled.kernels
    (call,) = _template_calls(compiled, "conv2d_forward")
    assert call.epilogue is not None


#: second conv of a conv->act->conv chain: (C, O, H, W, kernel, stride, padding, activation)
CHAINS = [
    (3, 5, 9, 6, 3, 2, 1, "relu"),
    (5, 3, 7, 7, 1, 1, 0, "leaky_relu"),  # pointwise: backward data is a plain GEMM into gx
    (3, 4, 7, 7, 2, 2, 0, "sigmoid"),     # floor: rows/columns no window touches
    (16, 32, 31, 29, 3, 1, 1, "tanh"),    # threads inside the GEMM at batch 1
]


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_data_activation_mask_fused(dtype):
    """conv -> act -> conv: the act' mask runs inside the second conv's backward-data pass.

    The loss is fetched too, so the forward computes act(conv + b) (stored by the first
    conv's epilogue) and the mask reads it together with the backward-data output.
    """
    rng = np.random.default_rng(6)
    with gc.Graph(seed=0) as g:
        xs, wrt, losses = [], [], []
        for j, (c, o, h, w, k, s, p, act) in enumerate(CHAINS):
            x = gc.placeholder((None, 2, h, w), dtype=dtype, name=f"x{j}")
            w1 = gc.variable(_rand(rng, (c, 2, 3, 3), dtype) * 0.3, name=f"w1_{j}")
            b1 = gc.variable(_rand(rng, (c,), dtype) * 0.3, name=f"b1_{j}")
            w2 = gc.variable(_rand(rng, (o, c, k, k), dtype) * 0.3, name=f"w2_{j}")
            hid = ACTIVATIONS[act](gc.conv2d(x, w1, padding=1) + gc.reshape(b1, (1, c, 1, 1)))
            z = gc.conv2d(hid, w2, stride=s, padding=p)
            r = gc.placeholder(z.shape, dtype=dtype, name=f"r{j}")
            losses.append(gc.sum(z * r))
            xs += [x, r]
            wrt += [w1, b1, x]
        total = sum(losses[1:], losses[0])
        grads = gc.grad(total, wrt)

    def feeds(batch):
        q = np.random.default_rng(batch)
        return {t: _rand(q, (batch,) + t.shape[1:], dtype) for t in xs}

    # gradients sum over pixels and channels: compare by norm, as test_c_agreement does
    c, n = gc.Session(g, backend="c"), gc.Session(g, backend="numpy")
    tol = 1e-4 if dtype == "float32" else 1e-10
    fetches = [total] + grads
    for batch in BATCHES:
        for t, a, b in zip([total] + wrt, c.run(fetches, feeds(batch)), n.run(fetches, feeds(batch))):
            err = np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)
            assert err < tol, f"{t.name} (loss or its gradient), batch {batch}: relative diff {err:.3g}"
    compiled = c.compile(fetches)
    fused = [k for k in compiled.kernels if k["kind"] == "conv2d_backward_data" and len(k["nodes"]) > 1]
    assert len(fused) == len(CHAINS), compiled.kernels
    assert all(k["name"].endswith("_conv2d_backward_data_ew") and "'" in k["nodes"][1] for k in fused)
    generated = compiled.source.split("} gc_ctx;")[1]
    assert len(re.findall(r"^static void k\d+_conv2d_backward_data_ew_epilogue_tile\(", generated,
                          re.M)) == len(CHAINS)
    calls = _template_calls(compiled, "conv2d_backward_data")
    assert sum(c.epilogue is not None for c in calls) == len(CHAINS)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES)
def test_cnn_training_steps_agree(dtype):
    """conv->relu->maxpool->conv->relu->maxpool->flatten->dense, softmax CE, SGD momentum."""
    rng = np.random.default_rng(4)
    init = [_rand(rng, (5, 3, 3, 3), dtype) * 0.3, _rand(rng, (5,), dtype) * 0.1,
            _rand(rng, (7, 5, 3, 3), dtype) * 0.2, _rand(rng, (7,), dtype) * 0.1,
            _rand(rng, (7 * 2 * 2, 4), dtype) * 0.2, _rand(rng, (4,), dtype) * 0.1]

    def build():
        with gc.Graph(seed=0) as g:
            x = gc.placeholder((None, 3, 9, 9), dtype=dtype, name="x")
            lab = gc.placeholder((None,), dtype="int64", name="y")
            w1, b1, w2, b2, wd, bd = (gc.variable(a.copy(), name=f"v{j}") for j, a in enumerate(init))
            h = gc.relu(gc.conv2d(x, w1, padding=1) + gc.reshape(b1, (1, 5, 1, 1)))
            h = gc.max_pool2d(h, 2)
            h = gc.relu(gc.conv2d(h, w2, stride=1, padding=1) + gc.reshape(b2, (1, 7, 1, 1)))
            h = gc.max_pool2d(h, 2)
            logits = gc.flatten(h) @ wd + bd
            loss = gc.mean(gc.softmax_cross_entropy(logits, lab))
            train = gc.optim.SGD(0.05, momentum=0.9).minimize(loss)
        return g, x, lab, loss, train, [w1, b1, w2, b2, wd, bd]

    g, x, lab, loss, train, params = build()
    sc, sn = gc.Session(g, backend="c"), gc.Session(g, backend="numpy")
    data = np.random.default_rng(5)
    for step in range(4):
        batch = 7 if step % 2 == 0 else 1
        feed = {x: _rand(data, (batch, 3, 9, 9), dtype), lab: data.integers(0, 4, size=batch)}
        lc, _ = sc.run([loss, train], feed)
        ln, _ = sn.run([loss, train], feed)
        tol = 1e-4 if dtype == "float32" else 1e-9
        np.testing.assert_allclose(lc, ln, rtol=tol, atol=tol, err_msg=f"loss, step {step}")
        for p in params:
            a, b = sc.get_value(p), sn.get_value(p)
            err = np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)
            assert err < tol, f"{p.name} after step {step}: relative difference {err:.3g}"
    compiled = sc.compile([loss, train])
    convs = _conv_kernels(compiled)
    assert len(convs) == 2 and all(k["name"].endswith("_conv2d_ew") for k in convs), compiled.kernels
    assert all("relu" in " ".join(k["nodes"]) for k in convs), convs
