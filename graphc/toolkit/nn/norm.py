"""Normalization layers: BatchNorm (mode chosen at run time by the learning phase)
and LayerNorm (per position over the last axis, the same in training and evaluation).

One graph serves training and evaluation: the statistics used are
``gc.where(graph.learning_phase(), batch_stat, running_stat)``, so
``sess.run(..., training=True/False)`` switches modes without rebuilding or
recompiling anything new. The running statistics are non-trainable variables
updated by an op registered with ``graph.add_update``; every optimizer step
built *after* the layer (``opt.minimize(loss)``) runs it.

Example::

    import graphc as gc
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 8), name="x")
        h = gc.nn.BatchNorm()(gc.nn.Dense(16)(x))
        loss = gc.mean(gc.square(h))
        train = gc.optim.SGD(0.1).minimize(loss)      # also updates the running stats
    sess = gc.Session(g)
    sess.run(train, {x: xb})                           # training mode (an update is fetched)
    h_eval = sess.run(h, {x: xb})                      # evaluation mode: running stats
"""

from __future__ import annotations

from ...ir import dtypes as _dt
from ...ir import shapes as _sh
from ...ir.errors import DTypeError, GraphcError, ShapeError, at, user_site
from ...ir.graph import Tensor
from ...ops.elemwise import sqrt, square, where
from ...ops.reduce import mean
from ...ops.shape import reshape
from ...ops.state import assign, group
from .._args import integer, number
from .base import Layer


class BatchNorm(Layer):
    """Normalize over every axis but the feature ``axis``, then scale and shift.

    ``y = gamma (x - mu) / sqrt(var + eps) + beta`` where (mu, var) are the
    batch mean and biased batch variance in training and the running
    statistics in evaluation. After each training step
    ``running = momentum * running + (1 - momentum) * batch`` (Keras'
    convention: ``momentum=0.9`` keeps 90% of the old value; the running
    variance tracks the biased batch variance).

    ``axis`` defaults to 1: the features of (N, C) and the channels of
    (N, C, H, W) (and of (N, C, L)); pass ``axis=-1`` for channels-last data.
    Variables: ``"<scope>/gamma"`` (ones) and ``"<scope>/beta"`` (zeros),
    trainable; ``"<scope>/running_mean"`` (zeros) and
    ``"<scope>/running_var"`` (ones), not trainable.

    A BatchNorm layer may be called once (one set of running statistics
    per call site); use a new layer for another input.

    Example::

        h = gc.nn.BatchNorm(momentum=0.9)(gc.nn.Conv2D(16, 3, padding=1)(x))
    """

    default_name = "batchnorm"

    def __init__(self, momentum: float = 0.9, eps: float = 1e-5, axis: int | None = None,
                 name: str | None = None) -> None:
        super().__init__(name)
        self.momentum = number("BatchNorm", "momentum", momentum, low=0.0, high=1.0)
        self.eps = number("BatchNorm", "eps", eps, low=0.0, low_open=True)
        self.axis = axis
        self.gamma = self.beta = self.running_mean = self.running_var = None
        self.update: Tensor | None = None

    def build(self, x):
        if x.ndim < 2:
            raise ShapeError(f"BatchNorm: needs a batch axis and a feature axis, got shape "
                             f"{x.shape}{at(user_site())}")
        axis = 1 if self.axis is None else self.axis
        if not -x.ndim <= axis < x.ndim:
            raise ShapeError(f"BatchNorm: axis {axis} out of range for shape {x.shape}"
                             f"{at(user_site())}")
        self.axis = axis % x.ndim
        c = self._input_dim(x, self.axis, "feature")
        self.gamma = self.add_weight("gamma", (c,), "ones", x)
        self.beta = self.add_weight("beta", (c,), "zeros", x)
        self.running_mean = self.add_weight("running_mean", (c,), "zeros", x, trainable=False)
        self.running_var = self.add_weight("running_var", (c,), "ones", x, trainable=False)

    def forward(self, x):
        if self.update is not None:
            raise GraphcError(f"BatchNorm {self.name!r} was already applied once; its running "
                              f"statistics belong to that call: use a new BatchNorm layer"
                              f"{at(user_site())}")
        axes = tuple(i for i in range(x.ndim) if i != self.axis)
        bshape = tuple(-1 if i == self.axis else 1 for i in range(x.ndim))

        def bcast(t: Tensor) -> Tensor:  # (C,) -> broadcastable against x
            if self.axis == x.ndim - 1:
                return t
            return reshape(t, tuple(t.shape[0] if d == -1 else d for d in bshape))

        graph = x.graph
        phase = graph.learning_phase()
        batch_mean = mean(x, axis=axes)
        batch_var = mean(square(x - bcast(batch_mean)), axis=axes)
        mu = where(phase, batch_mean, self.running_mean)
        var = where(phase, batch_var, self.running_var)
        scale = self.gamma / sqrt(var + self.eps)
        y = (x - bcast(mu)) * bcast(scale) + bcast(self.beta)

        m = self.momentum
        with graph.derived("update", user_site()):
            new_mean = m * self.running_mean + (1.0 - m) * batch_mean
            new_var = m * self.running_var + (1.0 - m) * batch_var
            self.update = group(
                assign(self.running_mean, where(phase, new_mean, self.running_mean)),
                assign(self.running_var, where(phase, new_var, self.running_var)),
                name="update",
            )
        graph.add_update(self.update)
        return y

    def extra_repr(self) -> str:
        return f"momentum={self.momentum:g}, eps={self.eps:g}"


class LayerNorm(Layer):
    """Normalize each position over the last axis, then scale and shift:
    ``y = (x - mean) / sqrt(var + eps) * weight + bias``, as
    ``torch.nn.LayerNorm(dim, eps)``.

    ``mean`` and the biased ``var`` are taken over the last axis, which must
    have size ``dim``; any leading axes (a ``None`` batch, a time axis) are
    kept. Parameters, of shape (dim,) and named as in PyTorch:
    ``"<scope>/weight"`` (gamma, ones) and ``"<scope>/bias"`` (beta, zeros);
    the scope is ``"layer_norm"`` by default. The layer is made of ordinary ops
    (mean, square, sqrt), so its gradient comes from autodiff and the C backend
    fuses it; it may be called on several inputs (shared parameters).

    Example::

        h = gc.nn.LayerNorm(64)(x)          # x: (None, T, 64) -> (None, T, 64)
    """

    default_name = "layer_norm"

    def __init__(self, dim: int, eps: float = 1e-5, name: str | None = None) -> None:
        super().__init__(name)
        self.dim = integer("LayerNorm", "dim", dim, low=1)
        self.eps = number("LayerNorm", "eps", eps, low=0.0, low_open=True)
        self.weight = self.bias = None

    @property
    def gamma(self) -> Tensor | None:
        """The scale, ``weight``."""
        return self.weight

    @property
    def beta(self) -> Tensor | None:
        """The shift, ``bias``."""
        return self.bias

    def _check(self, x: Tensor) -> None:
        if x.ndim == 0 or x.shape[-1] != self.dim:
            raise ShapeError(f"LayerNorm {self.name!r}: expects input whose last axis has size "
                             f"{self.dim}, got shape {_sh.fmt(x.shape)}{at(user_site())}")
        if not _dt.is_float(x.dtype):
            raise DTypeError(f"LayerNorm {self.name!r}: needs a float input, got {x.dtype}; "
                             f"use gc.cast{at(user_site())}")

    def build(self, x):
        self._check(x)
        self.weight = self.add_weight("weight", (self.dim,), "ones", x)
        self.bias = self.add_weight("bias", (self.dim,), "zeros", x)

    def forward(self, x):
        self._check(x)
        if x.dtype != self.weight.dtype:
            raise DTypeError(f"LayerNorm {self.name!r}: was built for {self.weight.dtype} "
                             f"input, got {x.dtype}{at(user_site())}")
        centered = x - mean(x, axis=-1, keepdims=True)
        var = mean(square(centered), axis=-1, keepdims=True)
        return centered / sqrt(var + self.eps) * self.weight + self.bias

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps:g}"
