"""Reducing loss functions over graphc's elementwise/per-example loss ops.

Each loss builds the per-element (or per-example) op from :mod:`graphc.ops.nn`
and reduces it: ``reduction="mean"`` (default; over every element, the
run-time batch size included), ``"sum"`` or ``"none"`` (the unreduced tensor).

Example::

    import graphc as gc
    loss = gc.losses.softmax_cross_entropy(logits, y)            # scalar mean
    per_example = gc.losses.mse(pred, target, reduction="none")
    train = gc.optim.SGD(0.1).minimize(loss + gc.regularizers.l2(net.parameters, 1e-4))
"""

from __future__ import annotations

import numpy as np

from ..ir import dtypes as _dt
from ..ir import shapes as _sh
from ..ir.errors import DTypeError, ShapeError, at, user_site
from ..ir.graph import Tensor, as_tensor
from ..ops import nn as _ops
from ..ops.reduce import mean
from ..ops.reduce import sum as _sum

__all__ = ["reduce", "mse", "mae", "huber", "softmax_cross_entropy", "binary_cross_entropy",
           "REDUCTIONS"]

REDUCTIONS = ("mean", "sum", "none")


def reduce(values: Tensor, reduction: str = "mean") -> Tensor:
    """Reduce a loss tensor: ``"mean"`` or ``"sum"`` over all elements, or ``"none"``.

    Example::

        total = gc.losses.reduce(gc.mse(pred, target), "sum")
    """
    if reduction == "mean":
        return mean(values)
    if reduction == "sum":
        return _sum(values)
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _check(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _pair(name: str, pred, target) -> tuple[Tensor, Tensor]:
    """Tensors for (pred, target); a NumPy target takes pred's dtype; ranks must match."""
    pred = as_tensor(pred)
    if not _dt.is_float(pred.dtype):
        raise DTypeError(f"{name}: predictions must be float, got {pred.dtype}{at(user_site())}")
    target = as_tensor(target, dtype=pred.dtype, graph=pred.graph)
    if target.ndim not in (0, pred.ndim):
        # (N, 1) against (N,) would broadcast to (N, N): almost always a bug
        raise ShapeError(f"{name}: predictions {_sh.fmt(pred.shape)} and targets "
                         f"{_sh.fmt(target.shape)} differ in rank; reshape one of them"
                         f"{at(user_site())}")
    return pred, target


def mse(pred, target, reduction: str = "mean") -> Tensor:
    """Mean squared error: reduce((pred - target)**2).

    Example::

        loss = gc.losses.mse(net(x), t)
    """
    _check(reduction)
    return reduce(_ops.mse(*_pair("mse", pred, target)), reduction)


def mae(pred, target, reduction: str = "mean") -> Tensor:
    """Mean absolute error: reduce(|pred - target|).

    Example::

        loss = gc.losses.mae(net(x), t, reduction="sum")
    """
    _check(reduction)
    return reduce(_ops.mae(*_pair("mae", pred, target)), reduction)


def huber(pred, target, delta: float = 1.0, reduction: str = "mean") -> Tensor:
    """Huber loss: d**2 / 2 where |d| <= delta, else delta (|d| - delta / 2); d = pred - target.

    Example::

        loss = gc.losses.huber(q_values, q_targets, delta=1.0)
    """
    _check(reduction)
    if not float(delta) > 0:
        raise ValueError(f"huber: delta must be positive, got {delta}")
    return reduce(_ops.huber(*_pair("huber", pred, target), delta=float(delta)), reduction)


def softmax_cross_entropy(logits, labels, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy per example, then reduced over the examples.

    ``labels`` are int class ids of shape (N,) or one-hot/probability rows
    of shape (N, K) (a NumPy float array takes the logits' dtype).

    Example::

        loss = gc.losses.softmax_cross_entropy(logits, y)      # y: int64 (N,)
    """
    _check(reduction)
    logits = as_tensor(logits)
    if not isinstance(labels, Tensor):
        arr = np.asarray(labels)
        labels = as_tensor(arr, dtype=logits.dtype if arr.dtype.kind == "f" else None,
                           graph=logits.graph)
    return reduce(_ops.softmax_cross_entropy(logits, labels), reduction)


def binary_cross_entropy(logits, targets, reduction: str = "mean") -> Tensor:
    """Sigmoid binary cross-entropy on logits (stable for any logits).

    Per element: softplus(z) - z t = -(t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))).

    Example::

        loss = gc.losses.binary_cross_entropy(net(x), t)       # t in [0, 1]
    """
    _check(reduction)
    logits, targets = _pair("binary_cross_entropy", logits, targets)
    return reduce(_ops.sigmoid_cross_entropy(logits, targets), reduction)
