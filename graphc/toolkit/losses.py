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

from ..ir.errors import ArgumentError, at, user_site
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
    _check(reduction)
    if reduction == "mean":
        return mean(values)
    if reduction == "sum":
        return _sum(values)
    return values


def _check(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ArgumentError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}"
                            f"{at(user_site())}")


def _pair(name: str, pred, target) -> tuple[Tensor, Tensor]:
    """Tensors for (pred, target) under the elementwise losses' one rule
    (:func:`graphc.ops.nn.check_loss_operands`); a NumPy target takes pred's dtype."""
    pred = as_tensor(pred)
    _ops.check_loss_operands(name, pred, target)
    return pred, as_tensor(target, dtype=pred.dtype, graph=pred.graph)


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
