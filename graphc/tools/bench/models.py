"""``graphc bench`` workloads: the MLP and CNN training graphs and their hand-written NumPy steps.

Importable on its own (``python -c "from graphc.tools.bench.models import build_mlp"``): the
compile probe of ``graphc bench`` builds the MLP graph in a fresh process.
"""

from __future__ import annotations

import time

from .timing import _rel

MLP_SIZES = (784, 256, 128, 10)
MLP_LR, MLP_MOMENTUM = 0.01, 0.9
CNN_LR, CNN_MOMENTUM = 0.01, 0.9
EW_SHAPE = (4096, 1024)
#: Training inputs are N(0, INPUT_SCALE**2): with unit-variance 784-feature inputs the
#: first layer's curvature (~|x|^2 = 784) times lr 0.01 exceeds 2 and the benchmark
#: loops (thousands of steps over a few batches) diverge to NaN.
INPUT_SCALE = 0.1


# =============================================================================== graphs
def _init_mlp(seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    params = []
    for a, b in zip(MLP_SIZES[:-1], MLP_SIZES[1:]):
        params.append((rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(np.float32))
        params.append((0.01 * rng.standard_normal(b)).astype(np.float32))
    return params


def build_mlp(params=None) -> dict:
    """The 784-256-128-10 ReLU MLP, mean softmax cross-entropy, SGD momentum 0.9."""
    import graphc as gc

    params = _init_mlp() if params is None else params
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, MLP_SIZES[0]), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        variables, h = [], x
        for i in range(len(MLP_SIZES) - 1):
            w = gc.variable(params[2 * i], name=f"W{i}")
            b = gc.variable(params[2 * i + 1], name=f"b{i}")
            variables += [w, b]
            h = h @ w + b
            if i < len(MLP_SIZES) - 2:
                h = gc.relu(h)
        loss = gc.mean(gc.softmax_cross_entropy(h, y))
        opt = gc.optim.SGD(MLP_LR, momentum=MLP_MOMENTUM)
        train = opt.minimize(loss)
    return dict(graph=g, x=x, y=y, loss=loss, train=train, params=variables,
                slots=_momentum_slots(opt, variables))


def _momentum_slots(opt, variables) -> list:
    """The optimizer's momentum buffer of each variable (None where it cannot be found)."""
    state = getattr(opt, "state", {})
    return [next((s for name, s in state.items() if name.endswith(f"/{v.name}/momentum")), None)
            for v in variables]


class _NumpyModel:
    """Weights ``p`` and momentum buffers ``v`` of a hand-written NumPy model."""

    p: list
    v: list

    def snapshot(self) -> list:
        return [a.copy() for a in self.p + self.v]

    def restore(self, snap: list) -> None:
        for dst, src in zip(self.p + self.v, snap):
            dst[...] = src


class NumpyMLP(_NumpyModel):
    """The same MLP step by hand: preallocated buffers, matmul(out=), in-place updates."""

    def __init__(self, params, batch: int) -> None:
        import numpy as np

        self.np = np
        self.p = [a.copy() for a in params]
        self.v = [np.zeros_like(a) for a in params]  # momentum buffers
        self.g = [np.empty_like(a) for a in params]
        sizes, f32 = MLP_SIZES, np.float32
        self.h = [np.empty((batch, s), f32) for s in sizes[1:]]      # layer outputs
        self.d = [np.empty((batch, s), f32) for s in sizes[1:]]      # their gradients
        self.mask = [np.empty((batch, s), bool) for s in sizes[1:-1]]
        self.rowmax = np.empty(batch, f32)
        self.rowsum = np.empty(batch, f32)
        self.rows = np.arange(batch)
        self.lr = f32(MLP_LR)
        self.mom = f32(MLP_MOMENTUM)

    def step(self, x, y) -> float:
        np, p, g, v, h, d = self.np, self.p, self.g, self.v, self.h, self.d
        n, nl = len(x), len(MLP_SIZES) - 1
        a = x
        for i in range(nl):                                   # forward
            np.matmul(a, p[2 * i], out=h[i])
            h[i] += p[2 * i + 1]
            if i < nl - 1:
                np.maximum(h[i], 0, out=h[i])
            a = h[i]
        z, dz = h[-1], d[-1]                                  # softmax cross-entropy
        np.max(z, axis=1, out=self.rowmax)
        np.subtract(z, self.rowmax[:, None], out=dz)
        np.exp(dz, out=dz)
        np.sum(dz, axis=1, out=self.rowsum)
        picked = z[self.rows, y] - self.rowmax
        loss = float(np.mean(np.log(self.rowsum) - picked))
        dz /= self.rowsum[:, None]
        dz[self.rows, y] -= 1.0
        dz *= np.float32(1.0 / n)
        for i in reversed(range(nl)):                         # backward
            inp = x if i == 0 else h[i - 1]
            np.matmul(inp.T, d[i], out=g[2 * i])
            np.sum(d[i], axis=0, out=g[2 * i + 1])
            if i > 0:
                np.matmul(d[i], p[2 * i].T, out=d[i - 1])
                np.greater(h[i - 1], 0, out=self.mask[i - 1])
                d[i - 1] *= self.mask[i - 1]
        for pk, vk, gk in zip(p, v, g):                       # SGD momentum, in place
            vk *= self.mom
            vk += gk
            np.multiply(vk, self.lr, out=gk)
            pk -= gk
        return loss


_POOL = 8  # distinct batches cycled through by the training-step benchmarks


def _cycle(fn, items):
    """A no-argument callable applying ``fn`` to ``items`` in turn."""
    state = {"k": 0}

    def call():
        k = state["k"]
        state["k"] = (k + 1) % len(items)
        return fn(items[k])

    return call


def _session_reset(sess, graph):
    """A callable restoring every variable (weights, optimizer slots) of ``sess``."""
    snap = {v: sess.get_value(v) for v in graph.variables()}

    def reset():
        for v, a in snap.items():
            sess.set_value(v, a)

    return reset


def _step_diff(sess, model: dict, init: list, ref: _NumpyModel, loss_g, loss_n: float) -> float:
    """Largest relative difference after one step from the same weights: the loss, the
    momentum buffers (= the gradients after one step) and the new weights."""
    diffs = [abs(float(loss_g) - loss_n) / max(abs(loss_n), 1e-30)]
    for v, slot, p0, p, g in zip(model["params"], model["slots"], init, ref.p, ref.v):
        diffs.append(_rel(sess.get_value(v), p))
        if slot is not None:
            diffs.append(_rel(sess.get_value(slot), g))
        else:  # no slot found: the update itself (float32 cancellation makes this coarser)
            diffs.append(_rel(sess.get_value(v) - p0, p - p0))
    return max(diffs)


def _finite_note(sess, variables, arrays) -> str:
    """Empty, or a warning when training diverged while being timed."""
    import numpy as np

    bad = [name for name, ok in (
        ("graphc", all(np.isfinite(sess.get_value(v)).all() for v in variables)),
        ("NumPy", all(np.isfinite(a).all() for a in arrays))) if not ok]
    return f"WARNING: non-finite weights after timing ({', '.join(bad)})" if bad else ""


def _mlp_flops(batch: int) -> float:
    layers = list(zip(MLP_SIZES[:-1], MLP_SIZES[1:]))
    fwd = sum(2.0 * batch * a * b for a, b in layers)
    data_grads = sum(2.0 * batch * a * b for a, b in layers[1:])  # no gradient for the input
    return 2 * fwd + data_grads


def _init_cnn(seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)

    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    return [he((8, 1, 3, 3), 9), np.zeros(8, np.float32),
            he((16, 8, 3, 3), 72), np.zeros(16, np.float32),
            he((16 * 7 * 7, 10), 784), np.zeros(10, np.float32)]


def build_cnn(params=None) -> dict:
    """1x28x28 -> conv8 3x3 p1 + ReLU + pool2 -> conv16 3x3 p1 + ReLU + pool2 -> dense 10."""
    import graphc as gc

    params = _init_cnn() if params is None else params
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 1, 28, 28), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        w1, b1, w2, b2, wd, bd = (gc.variable(a, name=n) for a, n in
                                  zip(params, ("c1/W", "c1/b", "c2/W", "c2/b", "d/W", "d/b")))
        h = gc.relu(gc.conv2d(x, w1, padding=1) + gc.reshape(b1, (1, 8, 1, 1)))
        h = gc.max_pool2d(h, 2)
        h = gc.relu(gc.conv2d(h, w2, padding=1) + gc.reshape(b2, (1, 16, 1, 1)))
        h = gc.max_pool2d(h, 2)
        logits = gc.flatten(h) @ wd + bd
        loss = gc.mean(gc.softmax_cross_entropy(logits, y))
        opt = gc.optim.SGD(CNN_LR, momentum=CNN_MOMENTUM)
        train = opt.minimize(loss)
    params = [w1, b1, w2, b2, wd, bd]
    return dict(graph=g, x=x, y=y, loss=loss, train=train, params=params,
                slots=_momentum_slots(opt, params))


class NumpyCNN(_NumpyModel):
    """The same CNN step in NumPy: the conv and pooling ops' NumPy references (im2col via
    sliding windows + tensordot), in-place SGD."""

    def __init__(self, params) -> None:
        import numpy as np

        from ...ops import conv, pool

        self.np, self.conv, self.pool = np, conv, pool
        self.p = [a.copy() for a in params]
        self.v = [np.zeros_like(a) for a in params]

    def step(self, x, y) -> float:
        np, conv, pool = self.np, self.conv, self.pool
        w1, b1, w2, b2, wd, bd = self.p
        n = len(x)
        r1 = conv.conv2d_reference(x, w1, padding=1)
        r1 += b1[:, None, None]
        np.maximum(r1, 0, out=r1)
        p1 = pool.max_pool2d_reference(r1, 2)
        r2 = conv.conv2d_reference(p1, w2, padding=1)
        r2 += b2[:, None, None]
        np.maximum(r2, 0, out=r2)
        p2 = pool.max_pool2d_reference(r2, 2)
        f = p2.reshape(n, -1)
        z = f @ wd
        z += bd
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1)
        loss = float(np.mean(np.log(s) - z[np.arange(n), y]))
        e /= s[:, None]
        e[np.arange(n), y] -= 1.0
        e *= np.float32(1.0 / n)
        g_wd, g_bd = f.T @ e, e.sum(axis=0)
        g_p2 = (e @ wd.T).reshape(p2.shape)
        g_r2 = pool.max_pool2d_backward_reference(r2, g_p2, 2)
        g_r2 *= r2 > 0
        g_b2 = g_r2.sum(axis=(0, 2, 3))
        g_w2 = conv.conv2d_backward_filter_reference(p1, g_r2, (3, 3), padding=1)
        g_p1 = conv.conv2d_backward_data_reference(g_r2, w2, (14, 14), padding=1)
        g_r1 = pool.max_pool2d_backward_reference(r1, g_p1, 2)
        g_r1 *= r1 > 0
        g_b1 = g_r1.sum(axis=(0, 2, 3))
        g_w1 = conv.conv2d_backward_filter_reference(x, g_r1, (3, 3), padding=1)
        lr, mom = np.float32(CNN_LR), np.float32(CNN_MOMENTUM)
        for pk, vk, gk in zip(self.p, self.v, (g_w1, g_b1, g_w2, g_b2, g_wd, g_bd)):
            vk *= mom
            vk += gk
            pk -= lr * vk
        return loss


def _cnn_flops(batch: int) -> float:
    c1 = 2.0 * batch * 8 * 28 * 28 * 1 * 9
    c2 = 2.0 * batch * 16 * 14 * 14 * 8 * 9
    dense = 2.0 * batch * 784 * 10
    return 2 * c1 + 3 * c2 + 3 * dense  # no data gradient for the input image


def kernel_profile(sess, fetches: list, feed: dict, runs: int = 50, settle: float = 0.3) -> dict:
    """Session.profile of one training step, as plain numbers for the report and JSON.

    Sleeps ``settle`` seconds first: BLAS threads of the NumPy reference step that just ran
    keep spinning for a while and would steal a core from the profiled steps."""
    time.sleep(settle)
    prof = sess.profile(fetches, feed, runs=runs)
    return {"batch": prof.batch, "runs": prof.runs, "step_us": prof.total_seconds * 1e6,
            "kernels_us": prof.kernel_seconds * 1e6,
            "rows": [{"name": r["name"], "nodes": r["nodes"], "us": r["seconds"] * 1e6,
                      "share": r["share"]} for r in prof.rows]}


def fused_kernels(compiled) -> list[dict]:
    """Kernels of a compiled fetch set that hold more than one graph node."""
    exe = getattr(compiled, "executable", compiled)
    return [k for k in getattr(exe, "kernel_list", []) if len(k["nodes"]) > 1]
