"""The models that ``graphc bench`` and ``graphc demo`` time, each with a NumPy twin.

Two families, each a graphc graph built from given initial weights (so that both sides
start equal) and a hand-written NumPy implementation of the same computation:

* an MLP, ``sizes[0] -> ... -> sizes[-1]``, ReLU between the layers, mean softmax
  cross-entropy, SGD (with or without momentum): :func:`init_mlp`, :func:`build_mlp`,
  :class:`NumpyMLP` (preallocated buffers, ``np.matmul(out=)``, in-place updates);
* a CNN, ``1 x image x image -> conv c1 3x3 pad 1 + ReLU + max-pool 2 -> conv c2 3x3 pad 1
  + ReLU + max-pool 2 -> dense classes``: :func:`init_cnn`, :func:`build_cnn`,
  :class:`NumpyCNN` (NHWC, im2col + one BLAS call per convolution: :mod:`.nhwc`).

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

from .nhwc import (
    CnnBuffers,
    add_bias,
    col2im,
    filter_from_matrix,
    filter_matrix,
    filter_taps,
    im2col,
    max_pool2x2,
    max_pool2x2_backward,
    max_pool_quarters,
    max_pool_quarters_backward,
)

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


def cnn_flops(batch: int, params: Sequence[np.ndarray] | None = None,
              train: bool = True) -> float:
    """FLOPs of the convolutions and the dense layer in one CNN training step.

    Forward, data gradient (none for the input image) and filter gradient; with
    ``train=False`` the forward pass only (inference).

    Example::

        >>> round(cnn_flops(64) / 1e6, 1), round(cnn_flops(64, train=False) / 1e6, 1)
        (104.2, 37.1)
    """
    params = init_cnn() if params is None else params
    (c1, c0, kh, kw), (c2, *_), (features, classes) = (params[0].shape, params[2].shape,
                                                       params[4].shape)
    side = _cnn_image(params)
    conv1 = 2.0 * batch * c1 * side * side * c0 * kh * kw
    conv2 = 2.0 * batch * c2 * (side // 2) ** 2 * c1 * kh * kw
    dense = 2.0 * batch * features * classes
    return 2 * conv1 + 3 * conv2 + 3 * dense if train else conv1 + conv2 + dense


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
    """:func:`build_cnn`'s forward pass and training step, NumPy written for speed.

    NHWC activations; each convolution is an im2col copy of a strided window view and
    one BLAS GEMM, its filter gradient one GEMM, its data gradient one (per-tap stacked)
    ``np.matmul`` and a col2im of shifted-slice adds; 2x2 max pooling is ``np.maximum``
    of strided views taken before the bias and ReLU (exactly equal, on a quarter of the
    data), its gradient a first-maximum mask (:mod:`graphc.tools.bench.nhwc`); bias
    gradients are GEMVs. The first convolution, which needs no data gradient, orders
    its im2col rows by pooling-window quarter, so its pooling and pooling gradient work
    on four contiguous blocks. Buffers are preallocated per batch size. The weights ``p``
    keep graphc's layouts (OIHW filters, dense rows in the (C, H, W) order of Flatten)
    and are permuted into GEMM operands on every call.

    Example::

        >>> twin = NumpyCNN(init_cnn(8, (4, 8)))
        >>> twin.forward(np.zeros((2, 1, 8, 8), np.float32)).shape
        (2, 10)
    """

    def __init__(self, params: Sequence[np.ndarray], lr: float = CNN_LR,
                 momentum: float = CNN_MOMENTUM) -> None:
        super().__init__(params, lr, momentum)
        self.side = _cnn_image(self.p)
        (c1, c0, kh, kw), (c2, *_), (features, classes) = (a.shape for a in self.p[::2])
        self.w1m = np.empty((kh * kw * c0, c1), np.float32)      # GEMM operands
        self.w2m = np.empty((kh * kw * c1, c2), np.float32)
        self.w2taps = np.empty((kh, kw, c2, c1), np.float32)
        self.wdh = np.empty((features, classes), np.float32)     # dense rows in (H, W, C)
        self.g = [np.empty_like(a) for a in self.p]
        self.g_w1m, self.g_w2m = np.empty_like(self.w1m), np.empty_like(self.w2m)
        self.g_wdh = np.empty_like(self.wdh)
        self._bufs: dict[int, CnnBuffers] = {}
        self._b: CnnBuffers | None = None

    def _dense_rows(self, src: np.ndarray, dst: np.ndarray, to_hwc: bool) -> None:
        """Permute dense-weight rows between (C, H, W) (graphc's Flatten) and (H, W, C)."""
        chw = (self.p[2].shape[0], self.side // 4, self.side // 4, src.shape[1])
        hwc = (chw[1], chw[2], chw[0], chw[3])
        if to_hwc:
            np.copyto(dst.reshape(hwc), src.reshape(chw).transpose(1, 2, 0, 3))
        else:
            np.copyto(dst.reshape(chw), src.reshape(hwc).transpose(2, 0, 1, 3))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The logits (a new array) for images ``x`` (N, C, H, W)."""
        return self._forward(x).copy()

    def _forward(self, x: np.ndarray) -> np.ndarray:
        """The logits, in a buffer; keeps the activations for the backward pass."""
        w1, b1, w2, b2, wd, bd = self.p
        n, side, h2, (kh, kw) = len(x), self.side, self.side // 2, w1.shape[2:]
        b = self._bufs.get(n)
        if b is None:
            b = self._bufs[n] = CnnBuffers(n, side, [a.shape for a in self.p[::2]])
        self._b = b
        filter_matrix(w1, self.w1m)
        filter_matrix(w2, self.w2m)
        self._dense_rows(wd, self.wdh, to_hwc=True)
        np.copyto(b.xp[:, kh // 2:kh // 2 + side, kw // 2:kw // 2 + side], x.transpose(0, 2, 3, 1))
        # pool(relu(r + b)) == relu(pool(r) + b) exactly (rounding is monotonic): the
        # bias and ReLU go on the pooled quarter; the step adds the bias to r later
        np.matmul(im2col(b.xp, kh, kw, b.cols1, pooled=True), self.w1m, out=b.r1)
        max_pool_quarters(b.r1.reshape(4, *b.p1.shape), b.p1)     # into the padded buffer
        np.maximum(add_bias(b.p1w, b1), 0, out=b.p1w)         # p1, rows of h2 * c1
        np.matmul(im2col(b.p1p, kh, kw, b.cols2), self.w2m, out=b.r2)
        max_pool2x2(b.r2.reshape(n, h2, h2, -1), b.p2, b.rows2)
        p2 = b.p2.reshape(n * h2 // 2, -1)
        np.maximum(add_bias(p2, b2), 0, out=p2)
        np.matmul(b.p2.reshape(n, -1), self.wdh, out=b.z)
        b.z += bd
        return b.z

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One SGD step on ``(x, y)``; returns the mean loss."""
        z = self._forward(x)
        b, g = self._b, self.g
        n, h2 = len(x), self.side // 2
        dz = b.dz                                             # softmax cross-entropy
        np.max(z, axis=1, out=b.rowmax)
        np.subtract(z, b.rowmax[:, None], out=dz)
        np.exp(dz, out=dz)
        np.sum(dz, axis=1, out=b.rowsum)
        loss = float(np.mean(np.log(b.rowsum) - (z[b.rows, y] - b.rowmax)))
        dz /= b.rowsum[:, None]
        dz[b.rows, y] -= 1.0
        dz *= np.float32(1.0 / n)
        np.matmul(b.p2.reshape(n, -1).T, dz, out=self.g_wdh)  # dense
        self._dense_rows(self.g_wdh, g[4], to_hwc=False)
        np.sum(dz, axis=0, out=g[5])
        np.matmul(dz, self.wdh.T, out=b.g_f)
        g_p2 = b.g_f.reshape(b.p2.shape)
        g_p2 *= np.greater(b.p2, 0, out=b.pos2)               # ReLU folded in: max > 0
        add_bias(b.r2.reshape(n * h2, -1), self.p[3])  # conv + bias: its ties decide the argmax
        max_pool2x2_backward(b.r2.reshape(n, h2, h2, -1), b.p2, g_p2,     # pool2, conv2
                             b.g_r2.reshape(n, h2, h2, -1), b.hit2, b.taken2)
        np.matmul(b.ones[:len(b.g_r2)], b.g_r2, out=g[3])
        np.matmul(b.cols2.T, b.g_r2, out=self.g_w2m)
        filter_from_matrix(self.g_w2m, g[2])
        np.matmul(b.g_r2, filter_taps(self.p[2], self.w2taps), out=b.g_taps)
        col2im(b.g_taps, b.g_p1p)
        b.g_p1 *= np.greater(b.p1, 0, out=b.pos1)             # ReLU folded in
        add_bias(b.r1.reshape(4 * n * h2, -1), self.p[1])
        max_pool_quarters_backward(b.r1.reshape(4, *b.p1.shape), b.p1, b.g_p1,   # pool1, conv1
                                   b.g_r1.reshape(4, *b.p1.shape), b.hit1, b.taken1)
        np.matmul(b.ones, b.g_r1, out=g[1])
        np.matmul(b.cols1.T, b.g_r1, out=self.g_w1m)
        filter_from_matrix(self.g_w1m, g[0])
        self._update(g)
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
