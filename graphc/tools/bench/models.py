"""The models that ``graphc bench`` and ``graphc demo`` time, each with a NumPy twin.

Two families, each a graphc graph built from given initial weights (so that both sides
start equal) and a hand-written NumPy implementation of the same computation:

* an MLP, ``sizes[0] -> ... -> sizes[-1]``, ReLU between the layers, mean softmax
  cross-entropy, SGD (with or without momentum): :func:`init_mlp`, :func:`build_mlp`,
  :class:`NumpyMLP` (preallocated buffers, ``np.matmul(out=)``, in-place updates);
* a CNN, ``1 x image x image -> conv c1 3x3 pad 1 + ReLU + max-pool 2 -> conv c2 3x3 pad 1
  + ReLU + max-pool 2 -> dense classes``: :func:`init_cnn`, :func:`build_cnn`,
  :class:`NumpyCNN` (the conv and pooling ops' NumPy references, forward and backward).

:func:`compare_step` runs one training step on both sides and returns their largest
relative difference: the "max rel diff" column of the reports.

Example::

    >>> import numpy as np, graphc as gc
    >>> from graphc.tools.bench.models import NumpyMLP, build_mlp, compare_step, init_mlp
    >>> init = init_mlp((64, 32, 10))
    >>> model = build_mlp(init)
    >>> sess = gc.Session(model["graph"], backend="numpy")
    >>> x = np.zeros((4, 64), np.float32); y = np.arange(4)
    >>> compare_step(sess, model, NumpyMLP(init, batch=4), x, y) < 1e-5
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import isqrt

import numpy as np
from numpy.typing import ArrayLike

import graphc as gc
from graphc.ops.conv import (
    conv2d_backward_data_reference,
    conv2d_backward_filter_reference,
    conv2d_reference,
)
from graphc.ops.pool import max_pool2d_backward_reference, max_pool2d_reference

__all__ = [
    "CNN_LR", "CNN_MOMENTUM", "INPUT_SCALE", "MLP_LR", "MLP_MOMENTUM", "MLP_SIZES", "NumpyCNN",
    "NumpyMLP", "NumpyModel", "build_cnn", "build_mlp", "cnn_flops", "compare_step",
    "finite_note", "init_cnn", "init_mlp", "max_rel_diff", "mlp_flops",
]

#: The bench's MLP: layer widths, SGD learning rate and momentum.
MLP_SIZES = (784, 256, 128, 10)
MLP_LR, MLP_MOMENTUM = 0.01, 0.9
#: The bench's CNN: SGD learning rate and momentum (sizes: :func:`init_cnn`'s defaults).
CNN_LR, CNN_MOMENTUM = 0.01, 0.9
#: Training inputs are N(0, INPUT_SCALE**2): with unit-variance 784-feature inputs the
#: first layer's curvature (~|x|^2 = 784) times lr 0.01 exceeds 2 and the benchmark
#: loops (thousands of steps over a few batches) diverge to NaN.
INPUT_SCALE = 0.1

Model = dict  # graph, x, y, logits, loss, train, params, slots, optimizer, net


def max_rel_diff(a: ArrayLike, b: ArrayLike) -> float:
    """``max |a - b| / max |b|`` in float64 (0 where both are 0).

    Example::

        >>> max_rel_diff([1.0, 2.0], [1.0, 2.5])
        0.2
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def _he(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def _given(value: np.ndarray) -> Callable[..., np.ndarray]:
    """A gc.nn initializer that returns ``value`` (the layers check its shape)."""
    return lambda shape, seed=0, dtype="float32": value


def _momentum_slots(opt, variables: list) -> list:
    """The optimizer's momentum buffer of each variable (None where it has none)."""
    return [opt.slot(v, "momentum") for v in variables]


def _finish(g, x, y, net, optimizer, extra: dict | None = None) -> Model:
    """Loss, training op and parameters of ``net`` applied to ``x`` (inside graph ``g``)."""
    with g:
        logits = net(x)
        loss = gc.mean(gc.softmax_cross_entropy(logits, y))
        train = optimizer.minimize(loss)
    params = net.parameters
    return dict(graph=g, x=x, y=y, net=net, logits=logits, loss=loss, train=train,
                params=params, optimizer=optimizer, slots=_momentum_slots(optimizer, params),
                **(extra or {}))


# =============================================================================== MLP
def init_mlp(sizes: Sequence[int] = MLP_SIZES, seed: int = 0) -> list[np.ndarray]:
    """He-normal weights and small random biases ``[W0, b0, W1, b1, ...]`` (float32).

    Example::

        >>> [a.shape for a in init_mlp((4, 3, 2))]
        [(4, 3), (3,), (3, 2), (2,)]
    """
    rng = np.random.default_rng(seed)
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        params.append(_he(rng, (a, b), a))
        params.append((0.01 * rng.standard_normal(b)).astype(np.float32))
    return params


def build_mlp(params: list[np.ndarray] | None = None, lr: float = MLP_LR,
              momentum: float = MLP_MOMENTUM) -> Model:
    """The MLP with these initial weights (default :func:`init_mlp`), one SGD step op.

    Returns a dict: ``graph``, placeholders ``x`` (float32 (None, sizes[0])) and ``y``
    (int64 labels), ``net``, ``logits``, ``loss``, ``train``, ``params`` (the variables,
    in the order of ``params``), ``optimizer``, ``slots`` (momentum buffers or None), ``lr``.

    Example::

        >>> m = build_mlp(init_mlp((64, 64, 10), seed=1), lr=0.1, momentum=0.0)
        >>> sess = gc.Session(m["graph"])       # doctest: +SKIP
        >>> sess.run([m["loss"], m["train"]], {m["x"]: xb, m["y"]: yb})   # doctest: +SKIP
    """
    params = init_mlp() if params is None else params
    n_layers = len(params) // 2
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, params[0].shape[0]), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        net = gc.nn.Sequential([
            gc.nn.Dense(params[2 * i].shape[1], activation="relu" if i < n_layers - 1 else None,
                        kernel_init=_given(params[2 * i]), bias_init=_given(params[2 * i + 1]))
            for i in range(n_layers)])
        optimizer = gc.optim.SGD(lr, momentum=momentum)
    return _finish(g, x, y, net, optimizer, {"lr": lr})


def mlp_flops(batch: int, sizes: Sequence[int] = MLP_SIZES) -> float:
    """FLOPs of the matmuls of one MLP training step (no gradient for the input).

    Example::

        >>> mlp_flops(1, (2, 3))
        24.0
    """
    layers = list(zip(sizes[:-1], sizes[1:]))
    forward = sum(2.0 * batch * a * b for a, b in layers)
    data_grads = sum(2.0 * batch * a * b for a, b in layers[1:])
    return 2 * forward + data_grads


# =============================================================================== CNN
def init_cnn(image: int = 28, channels: tuple[int, int] = (8, 16), classes: int = 10,
             seed: int = 0) -> list[np.ndarray]:
    """He-normal filters and dense weights, zero biases: ``[W1, b1, W2, b2, Wd, bd]``.

    ``image`` (the side of the square 1-channel input) must be divisible by 4.

    Example::

        >>> [a.shape for a in init_cnn(8, (16, 32))][::2]
        [(16, 1, 3, 3), (32, 16, 3, 3), (128, 10)]
    """
    if image % 4:
        raise ValueError(f"init_cnn: image must be divisible by 4, got {image}")
    rng = np.random.default_rng(seed)
    c1, c2 = channels
    features = c2 * (image // 4) ** 2
    return [_he(rng, (c1, 1, 3, 3), 9), np.zeros(c1, np.float32),
            _he(rng, (c2, c1, 3, 3), 9 * c1), np.zeros(c2, np.float32),
            _he(rng, (features, classes), features), np.zeros(classes, np.float32)]


def _cnn_image(params: Sequence[np.ndarray]) -> int:
    """The input side that :func:`init_cnn` made ``params`` for."""
    return 4 * isqrt(params[4].shape[0] // params[2].shape[0])


def build_cnn(params: list[np.ndarray] | None = None,
              optimizer: Callable[[], gc.optim.Optimizer] | None = None) -> Model:
    """The CNN with these initial weights (default :func:`init_cnn`) and its training step.

    ``optimizer`` makes the optimizer inside the graph (default SGD with lr
    :data:`CNN_LR`, momentum :data:`CNN_MOMENTUM`), e.g. Adam with an lr placeholder.
    Returns the same keys as :func:`build_mlp` but ``lr``.

    Example::

        >>> c = build_cnn(init_cnn(8, (16, 32)),
        ...               lambda: gc.optim.Adam(gc.schedules.lr_placeholder()))
        >>> c["optimizer"].lr.name
        'lr'
    """
    params = init_cnn() if params is None else params
    w1, b1, w2, b2, wd, bd = params
    image = _cnn_image(params)
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 1, image, image), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        net = gc.nn.Sequential([
            gc.nn.Conv2D(len(b1), 3, padding=1, activation="relu", kernel_init=_given(w1),
                         bias_init=_given(b1)),
            gc.nn.MaxPool2D(2),
            gc.nn.Conv2D(len(b2), 3, padding=1, activation="relu", kernel_init=_given(w2),
                         bias_init=_given(b2)),
            gc.nn.MaxPool2D(2),
            gc.nn.Flatten(),
            gc.nn.Dense(len(bd), kernel_init=_given(wd), bias_init=_given(bd))])
        opt = optimizer() if optimizer else gc.optim.SGD(CNN_LR, momentum=CNN_MOMENTUM)
    return _finish(g, x, y, net, opt)


def cnn_flops(batch: int, params: Sequence[np.ndarray] | None = None) -> float:
    """FLOPs of the convolutions and the dense layer in one CNN training step.

    Forward, data gradient (none for the input image) and filter gradient.

    Example::

        >>> round(cnn_flops(64) / 1e6, 1)       # MFLOP at batch 64
        104.2
    """
    params = init_cnn() if params is None else params
    (c1, _, kh, kw), (c2, *_), (features, classes) = (params[0].shape, params[2].shape,
                                                      params[4].shape)
    side = _cnn_image(params)
    conv1 = 2.0 * batch * c1 * side * side * kh * kw
    conv2 = 2.0 * batch * c2 * (side // 2) ** 2 * c1 * kh * kw
    dense = 2.0 * batch * features * classes
    return 2 * conv1 + 3 * conv2 + 3 * dense


# =============================================================================== NumPy twins
class NumpyModel:
    """Weights ``p`` and momentum buffers ``v`` of a NumPy twin; ``step(x, y) -> loss``.

    Example::

        >>> twin = NumpyMLP(init_mlp((4, 3)), batch=2)
        >>> snap = twin.snapshot()
        >>> loss = twin.step(np.ones((2, 4), np.float32), np.array([0, 2]))
        >>> twin.restore(snap)                  # back to the weights before the step
    """

    def __init__(self, params: Sequence[np.ndarray], lr: float, momentum: float) -> None:
        self.p = [np.array(a, np.float32) for a in params]
        self.v = [np.zeros_like(a) for a in self.p]
        self.lr, self.momentum = np.float32(lr), np.float32(momentum)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError

    def snapshot(self) -> list[np.ndarray]:
        """Copies of the weights and momentum buffers (for :meth:`restore`)."""
        return [a.copy() for a in self.p + self.v]

    def restore(self, snap: list[np.ndarray]) -> None:
        """Put back what :meth:`snapshot` saved, in place."""
        for dst, src in zip(self.p + self.v, snap):
            dst[...] = src

    def _update(self, grads: Sequence[np.ndarray]) -> None:
        """SGD, in place: ``v = momentum v + g; p -= lr v`` (``p -= lr g`` without momentum).

        Overwrites ``grads``."""
        for pk, vk, gk in zip(self.p, self.v, grads):
            if self.momentum:
                vk *= self.momentum
                vk += gk
                np.multiply(vk, self.lr, out=gk)
            else:
                gk *= self.lr
            pk -= gk


class NumpyMLP(NumpyModel):
    """:func:`build_mlp`'s step by hand for one batch size: buffers preallocated.

    Example::

        >>> twin = NumpyMLP(init_mlp((64, 32, 10)), batch=8, lr=0.1, momentum=0.0)
        >>> loss = twin.step(np.zeros((8, 64), np.float32), np.arange(8))
    """

    def __init__(self, params: Sequence[np.ndarray], batch: int, lr: float = MLP_LR,
                 momentum: float = MLP_MOMENTUM) -> None:
        super().__init__(params, lr, momentum)
        self.g = [np.empty_like(a) for a in self.p]
        widths = [w.shape[1] for w in self.p[::2]]
        self.h = [np.empty((batch, s), np.float32) for s in widths]      # layer outputs
        self.d = [np.empty((batch, s), np.float32) for s in widths]      # their gradients
        self.mask = [np.empty((batch, s), bool) for s in widths[:-1]]
        self.rowmax = np.empty(batch, np.float32)
        self.rowsum = np.empty(batch, np.float32)
        self.rows = np.arange(batch)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One SGD step on ``(x, y)`` (exactly ``batch`` rows); returns the mean loss."""
        p, g, h, d = self.p, self.g, self.h, self.d
        n, nl = len(x), len(h)
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
            np.matmul((x if i == 0 else h[i - 1]).T, d[i], out=g[2 * i])
            np.sum(d[i], axis=0, out=g[2 * i + 1])
            if i > 0:
                np.matmul(d[i], p[2 * i].T, out=d[i - 1])
                np.greater(h[i - 1], 0, out=self.mask[i - 1])
                d[i - 1] *= self.mask[i - 1]
        self._update(g)
        return loss


class NumpyCNN(NumpyModel):
    """:func:`build_cnn`'s forward pass and training step with the ops' NumPy references.

    Example::

        >>> twin = NumpyCNN(init_cnn(8, (4, 8)))
        >>> twin.forward(np.zeros((2, 1, 8, 8), np.float32)).shape
        (2, 10)
    """

    def __init__(self, params: Sequence[np.ndarray], lr: float = CNN_LR,
                 momentum: float = CNN_MOMENTUM) -> None:
        super().__init__(params, lr, momentum)
        self._acts: tuple = ()

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The logits for images ``x`` (N, 1, H, W); keeps the activations for :meth:`step`."""
        w1, b1, w2, b2, wd, bd = self.p
        r1 = conv2d_reference(x, w1, padding=1)
        r1 += b1[:, None, None]
        np.maximum(r1, 0, out=r1)
        p1 = max_pool2d_reference(r1, 2)
        r2 = conv2d_reference(p1, w2, padding=1)
        r2 += b2[:, None, None]
        np.maximum(r2, 0, out=r2)
        p2 = max_pool2d_reference(r2, 2)
        f = p2.reshape(len(x), -1)
        z = f @ wd
        z += bd
        self._acts = (x, r1, p1, r2, p2, f)
        return z

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One SGD step on ``(x, y)``; returns the mean loss."""
        z = self.forward(x)
        x, r1, p1, r2, p2, f = self._acts
        w2, wd = self.p[2], self.p[4]
        n = len(x)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1)
        loss = float(np.mean(np.log(s) - z[np.arange(n), y]))
        e /= s[:, None]
        e[np.arange(n), y] -= 1.0
        e *= np.float32(1.0 / n)
        g_wd, g_bd = f.T @ e, e.sum(axis=0)
        g_r2 = max_pool2d_backward_reference(r2, (e @ wd.T).reshape(p2.shape), 2)
        g_r2 *= r2 > 0
        g_w2 = conv2d_backward_filter_reference(p1, g_r2, w2.shape[2:], padding=1)
        g_p1 = conv2d_backward_data_reference(g_r2, w2, p1.shape[2:], padding=1)
        g_r1 = max_pool2d_backward_reference(r1, g_p1, 2)
        g_r1 *= r1 > 0
        g_w1 = conv2d_backward_filter_reference(x, g_r1, self.p[0].shape[2:], padding=1)
        self._update([g_w1, g_r1.sum(axis=(0, 2, 3)), g_w2, g_r2.sum(axis=(0, 2, 3)), g_wd, g_bd])
        return loss


# =============================================================================== checks
def compare_step(sess: gc.Session, model: Model, twin: NumpyModel, x: np.ndarray,
                 y: np.ndarray) -> float:
    """One training step on both sides; their largest relative difference.

    ``sess`` (on ``model["graph"]``) and ``twin`` must hold the same weights. Compares
    the loss, the new weights and the momentum buffers (= the gradients after one step;
    without momentum, the weight updates, which float32 cancellation makes coarser).

    Example::

        >>> compare_step(sess, model, NumpyMLP(init, batch=64), xb, yb)   # doctest: +SKIP
        3.1e-07
    """
    before = [a.copy() for a in twin.p]
    loss_g, _ = sess.run([model["loss"], model["train"]], {model["x"]: x, model["y"]: y})
    loss_n = twin.step(x, y)
    diffs = [abs(float(loss_g) - loss_n) / max(abs(loss_n), 1e-30)]
    for v, slot, p0, p, buf in zip(model["params"], model["slots"], before, twin.p, twin.v):
        new = sess.get_value(v)
        diffs.append(max_rel_diff(new, p))
        if slot is not None:
            diffs.append(max_rel_diff(sess.get_value(slot), buf))
        else:
            diffs.append(max_rel_diff(new - p0, p - p0))
    return max(diffs)


def finite_note(sess: gc.Session, model: Model, twin: NumpyModel) -> str:
    """Empty, or a warning naming the side whose weights are no longer finite.

    Example::

        >>> finite_note(sess, model, twin)      # doctest: +SKIP
        ''
    """
    bad = [name for name, ok in (
        ("graphc", all(np.isfinite(sess.get_value(v)).all() for v in model["params"])),
        ("NumPy", all(np.isfinite(a).all() for a in twin.p))) if not ok]
    return f"WARNING: non-finite weights after timing ({', '.join(bad)})" if bad else ""
