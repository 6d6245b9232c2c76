"""Neural-network ops: softmax family, losses, dropout.

softmax, log_softmax and softmax_cross_entropy are ops of their own (stable
NumPy references, gradients built from graph ops). The gradient of
softmax_cross_entropy w.r.t. the logits is one op too, softmax_cross_entropy_grad
(differentiable itself), so that a compiled backend computes it in one row pass with
the forward loss (``SoftmaxCrossEntropyGrad.joins`` the forward's kernel). The
elementwise losses are sympy expressions like any other elementwise op.
"""

from __future__ import annotations

import numpy as np
import sympy

from ..ir import dtypes as _dt
from ..ir import rng
from ..ir import shapes as _sh
from ..ir.errors import ArgumentError, DTypeError, located, shape_error
from ..ir.graph import Kind, Op, Tensor, as_tensor, get_default_graph, make
from . import scalar as S
from .elemwise import elementwise, exp
from .reduce import sum as _sum
from .shape import expand_dims, one_hot

a0, a1 = S.A[:2]


def _float_input(op: str, x: Tensor) -> None:
    if not _dt.is_float(x.dtype):
        raise DTypeError(f"{op}: needs a float tensor, got {x.dtype}")


def _np_log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    z = x - m
    with np.errstate(divide="ignore", invalid="ignore"):  # rows of -inf or NaN: as C gives
        return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


class _SoftmaxBase(Op):
    def infer(self, inputs, axis):
        _float_input(self.name, inputs[0])
        return inputs[0].shape, inputs[0].dtype


class Softmax(_SoftmaxBase):
    name = "softmax"

    def log_of(self, node):
        return log_softmax(node.inputs[0], axis=node.attrs["axis"])

    def reference(self, ctx, node, x):
        return np.exp(_np_log_softmax(x, node.attrs["axis"])).astype(node.dtype)

    def grad(self, node, g):
        y, axis = node, node.attrs["axis"]
        return [y * (g - _sum(g * y, axis, keepdims=True))]


class LogSoftmax(_SoftmaxBase):
    name = "log_softmax"

    def reference(self, ctx, node, x):
        return _np_log_softmax(x, node.attrs["axis"]).astype(node.dtype)

    def grad(self, node, g):
        axis = node.attrs["axis"]
        return [g - exp(node) * _sum(g, axis, keepdims=True)]


def _axis(op, x, axis):
    if not -x.ndim <= axis < x.ndim:
        raise located(shape_error(op, f"axis {axis} out of range", x.shape))
    return axis % x.ndim


def softmax(x, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis``, computed with the max subtracted."""
    x = as_tensor(x)
    return make(Softmax, [x], {"axis": _axis("softmax", x, axis)})


def log_softmax(x, axis: int = -1) -> Tensor:
    """x - logsumexp(x) along ``axis``; finite for any finite logits."""
    x = as_tensor(x)
    return make(LogSoftmax, [x], {"axis": _axis("log_softmax", x, axis)})


def _check_ce_inputs(op: str, logits: Tensor, labels: Tensor) -> None:
    _float_input(op, logits)
    if logits.ndim < 1:
        raise shape_error(op, "logits need a class axis", logits.shape)
    if _dt.is_int(labels.dtype):
        if labels.shape != logits.shape[:-1]:
            raise shape_error(op, "int labels must have the logits' shape without "
                              "the class axis", logits.shape, labels.shape)
    elif labels.dtype == logits.dtype:
        if labels.shape != logits.shape:
            raise shape_error(op, "probability labels must have the logits' shape",
                              logits.shape, labels.shape)
    else:
        raise DTypeError(f"{op}: labels must be int class ids or {logits.dtype} "
                         f"probabilities, got {labels.dtype}")


class SoftmaxCrossEntropy(Op):
    """Per-example -sum(p * log_softmax(logits)) over the last axis.

    ``labels`` are int class ids (N,) or probabilities/one-hot rows (N, K).
    """

    name = "softmax_cross_entropy"
    can_fail = True  # a label out of range

    def infer(self, inputs):
        logits, labels = inputs
        _check_ce_inputs(self.name, logits, labels)
        return logits.shape[:-1], logits.dtype

    def reference(self, ctx, node, logits, labels):
        logp = _np_log_softmax(logits, -1)
        if labels.dtype.kind in "iu":
            _np_check_labels(self.name, labels, logits.shape[-1])
            out = -np.take_along_axis(logp, labels[..., None].astype(np.int64), -1)[..., 0]
        else:
            out = -np.sum(labels * logp, axis=-1)
        return out.astype(node.dtype)

    def grad(self, node, g):
        logits, labels = node.inputs
        d_logits = softmax_cross_entropy_grad(logits, labels, g)
        d_labels = -expand_dims(g, -1) * log_softmax(logits) if _dt.is_float(labels.dtype) else None
        return [d_logits, d_labels]


def softmax_cross_entropy(logits, labels) -> Tensor:
    """Per-example softmax cross-entropy, numerically stable.

    Example::

        loss = gc.mean(gc.softmax_cross_entropy(logits, y))   # y: int64 (N,)
    """
    return make(SoftmaxCrossEntropy, [as_tensor(logits), as_tensor(labels)])


def _np_check_labels(op: str, labels: np.ndarray, k: int) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise IndexError(f"{op}: label out of range [0, {k})")


def _labels_as_probs(logits: Tensor, labels: Tensor):
    """(p, mass): the label distribution and its row sum (1 for int class ids)."""
    if _dt.is_float(labels.dtype):
        return labels, _sum(labels, -1, keepdims=True)
    return one_hot(labels, logits.shape[-1], logits.dtype), 1.0


class SoftmaxCrossEntropyGrad(Op):
    """d softmax_cross_entropy(logits, labels) / d logits, scaled by the per-example ``g``:
    ``g[..., None] * (softmax(logits) * mass - p)`` with ``p`` the one-hot rows of int
    labels (``mass`` = 1) or the probability labels (``mass`` = their row sum).

    One op (not a softmax, a one_hot and an elementwise kernel) so that the C backend
    computes it in one pass per row, fused with the forward loss when both are needed.
    """

    name = "softmax_cross_entropy_grad"
    can_fail = True
    joins = SoftmaxCrossEntropy  # one row pass computes the loss and its gradient
    shares_inputs = 2  # the same logits and labels

    def infer(self, inputs):
        logits, labels, g = inputs
        _check_ce_inputs(self.name, logits, labels)
        if g.shape != logits.shape[:-1]:
            raise shape_error(self.name, "g must have the per-example loss shape (the logits' "
                              "shape without the class axis)", logits.shape, g.shape)
        if g.dtype != logits.dtype:
            raise DTypeError(f"{self.name}: g must be {logits.dtype}, got {g.dtype}")
        return logits.shape, logits.dtype

    def reference(self, ctx, node, logits, labels, g):
        s = np.exp(_np_log_softmax(logits, -1))
        if labels.dtype.kind in "iu":
            _np_check_labels("softmax_cross_entropy", labels, logits.shape[-1])
            p = (labels[..., None] == np.arange(logits.shape[-1])).astype(logits.dtype)
            mass = 1
        else:
            p, mass = labels, np.sum(labels, axis=-1, keepdims=True)
        return (g[..., None] * (s * mass - p)).astype(node.dtype)

    def grad(self, node, gy):
        # out = ge * (mass * s - p), s = softmax(logits), ge = g[..., None]
        logits, labels, g = node.inputs
        p, mass = _labels_as_probs(logits, labels)
        s = softmax(logits)
        ge = expand_dims(g, -1)
        gys = _sum(gy * s, -1, keepdims=True)
        d_logits = ge * mass * s * (gy - gys)
        d_labels = ge * (gys - gy) if _dt.is_float(labels.dtype) else None
        d_g = _sum(gy * (s * mass - p), -1)
        return [d_logits, d_labels, d_g]


def softmax_cross_entropy_grad(logits, labels, g) -> Tensor:
    """The gradient of ``softmax_cross_entropy(logits, labels)`` w.r.t. the logits, for the
    per-example output gradient ``g`` (shape: the logits' without the class axis)."""
    return make(SoftmaxCrossEntropyGrad, [as_tensor(logits), as_tensor(labels), as_tensor(g)])


def _shape_of(value) -> tuple:
    return value.shape if isinstance(value, Tensor) else np.shape(value)


def check_loss_operands(op: str, pred, target) -> None:
    """The one rule of the elementwise losses (``gc.mse`` ... and ``gc.losses``): float
    predictions, and operands that broadcast to the shape of one of them. ``(N, 1)``
    against ``(N,)`` would broadcast to ``(N, N)``: refused, naming both shapes.

    Example::

        check_loss_operands("mse", pred, target)   # ShapeError for (N, 1) vs (N,)
    """
    if isinstance(pred, Tensor) and not _dt.is_float(pred.dtype):
        raise located(DTypeError(f"{op}: predictions must be float, got {pred.dtype}; use gc.cast"))
    p, t = tuple(_shape_of(pred)), tuple(_shape_of(target))
    out = _sh.broadcast([p, t])
    if out is not None and out not in (p, t):
        fix = ("gc.squeeze(pred, axis=-1)" if p[-1:] == (1,) else
               "gc.squeeze(target, axis=-1)" if t[-1:] == (1,) else "gc.reshape")
        raise located(shape_error(
            op, f"predictions {_sh.fmt(p)} and targets {_sh.fmt(t)} would broadcast to "
            f"{_sh.fmt(out)}, larger than both (one loss per pair of rows); give them the same "
            f"shape ({fix}); for all pairs on purpose, write gc.square(a - b)", p, t))


def sigmoid_cross_entropy(logits, targets) -> Tensor:
    """Elementwise binary cross-entropy on logits: softplus(z) - z t (no overflow).

    Example: ``gc.mean(gc.sigmoid_cross_entropy(logits, t))`` for ``t`` in [0, 1].
    """
    check_loss_operands("sigmoid_cross_entropy", logits, targets)
    return elementwise("sigmoid_cross_entropy", S.softplus(a0) - a0 * a1, [logits, targets])


def mse(pred, target) -> Tensor:
    """Elementwise squared error (pred - target)**2; ``gc.losses.mse`` reduces it.

    ``target`` may broadcast to ``pred``'s shape (or ``pred`` to ``target``'s); operands
    that would broadcast to a larger shape, such as (N, 1) and (N,), are refused.

    Example: ``gc.mean(gc.mse(pred, t))``
    """
    check_loss_operands("mse", pred, target)
    return elementwise("mse", (a0 - a1) ** 2, [pred, target])


def mae(pred, target) -> Tensor:
    """Elementwise absolute error |pred - target| (shapes as for :func:`mse`)."""
    check_loss_operands("mae", pred, target)
    return elementwise("mae", sympy.Abs(a0 - a1), [pred, target])


def huber(pred, target, delta: float = 1.0) -> Tensor:
    """Elementwise Huber loss: quadratic within ``delta``, linear outside (shapes as for
    :func:`mse`)."""
    check_loss_operands("huber", pred, target)
    if not float(delta) > 0:
        raise located(ArgumentError(f"huber: delta must be positive, got {delta}"))
    d, k = a0 - a1, sympy.Float(delta)
    body = sympy.Piecewise((d**2 / 2, sympy.Abs(d) <= k), (k * (sympy.Abs(d) - k / 2), True))
    return elementwise("huber", body, [pred, target])


class Dropout(Op):
    """x * mask / (1 - rate), mask = uniform(seed, step, index) >= rate.

    The mask depends only on (seed, step, element index), so the gradient is
    the same op applied to the output gradient, and every backend reproduces it.
    """

    name = "dropout"
    kind = Kind.ELEMENTWISE
    pure = False

    def infer(self, inputs, rate, seed):
        x, training = inputs
        _float_input("dropout", x)
        return x.shape, x.dtype

    def reference(self, ctx, node, x, training):
        if not bool(training):
            return x
        rate = node.attrs["rate"]
        u = rng.uniform(node.attrs["seed"], ctx.step, x.size).reshape(x.shape)
        scale = np.asarray(1.0 / (1.0 - rate), dtype=x.dtype)
        return np.where(u >= np.float32(rate), x * scale, np.zeros((), x.dtype))

    def scalar(self, node, args):
        return S.dropout(args[0], args[1], sympy.Integer(node.attrs["seed"]),
                         sympy.Float(node.attrs["rate"]))

    def grad(self, node, g):
        return [make(Dropout, [g, node.inputs[1]], node.attrs), None]

    def label(self, attrs):
        return f"dropout({attrs['rate']:g})"


def dropout(x, rate: float, training=None, seed: int | None = None) -> Tensor:
    """Zero elements with probability ``rate`` and scale the rest by 1/(1-rate).

    Active only in training mode: ``training`` is a bool scalar tensor, by
    default the graph's learning phase (``Session.run(..., training=True)``;
    by default True exactly when an optimizer step is fetched).
    """
    x = as_tensor(x)
    if not 0.0 <= rate < 1.0:
        raise located(ArgumentError(f"dropout: rate must be in [0, 1), got {rate}"))
    graph = x.graph or get_default_graph()
    if training is None:
        training = graph.learning_phase()
    seed = graph.next_seed() if seed is None else int(seed)
    return make(Dropout, [x, as_tensor(training, dtype="bool", graph=graph)],
                {"rate": float(rate), "seed": seed})
