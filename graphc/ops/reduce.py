"""Reductions: sum, mean, max, argmax, logsumexp (and the element count)."""

from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from .. import shapes as _sh
from ..errors import DTypeError
from ..graph import Tensor, as_tensor, make, shape_error
from .base import Op, located, register
from .shape_ops import broadcast_like, reshape


def _reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


class _Reduce(Op):
    """Shared shape rule: attrs ``axes`` (normalized tuple) and ``keepdims``."""

    float_only = False

    def infer(self, inputs, axes, keepdims):
        x = inputs[0]
        if self.float_only and not _dt.is_float(x.dtype):
            raise DTypeError(f"{self.name}: needs a float tensor, got {x.dtype}; use gc.cast")
        dtype = "int64" if x.dtype == "bool" else x.dtype
        return _reduced_shape(x.shape, axes, keepdims), dtype

    def label(self, attrs):
        return self.name


def _axes(op: str, x: Tensor, axis):
    axes = _sh.normalize_axes(axis, x.ndim)
    if axes is None:
        raise located(shape_error(op, f"axis {axis} out of range for {x.ndim} dims", x.shape))
    return axes


def _keep(g: Tensor, x: Tensor, axes, keepdims: bool) -> Tensor:
    """``g`` reshaped to the keepdims shape, then broadcast like ``x``."""
    if not keepdims:
        g = reshape(g, _reduced_shape(x.shape, axes, True))
    return broadcast_like(g, x)


@register
class Sum(_Reduce):
    name = "sum"

    def compute(self, ctx, node, x):
        return np.sum(x, axis=node.attrs["axes"], keepdims=node.attrs["keepdims"], dtype=node.dtype)

    def grad(self, node, g):
        return [_keep(g, node.inputs[0], node.attrs["axes"], node.attrs["keepdims"])]


@register
class Mean(_Reduce):
    name = "mean"
    float_only = True

    def compute(self, ctx, node, x):
        return np.mean(x, axis=node.attrs["axes"], keepdims=node.attrs["keepdims"], dtype=node.dtype)

    def grad(self, node, g):
        x, axes = node.inputs[0], node.attrs["axes"]
        return [_keep(g, x, axes, node.attrs["keepdims"]) / count(x, axes)]


@register
class Max(_Reduce):
    name = "max"

    def compute(self, ctx, node, x):
        return np.max(x, axis=node.attrs["axes"], keepdims=node.attrs["keepdims"])

    def grad(self, node, g):
        # Ties share the gradient equally (as TensorFlow's reduce_max does).
        from .elemwise import cast, equal

        x, axes, keep = node.inputs[0], node.attrs["axes"], node.attrs["keepdims"]
        hit = cast(equal(x, _keep(node, x, axes, keep)), x.dtype)
        share = hit / sum(hit, axes, keepdims=True)
        return [_keep(g, x, axes, keep) * share]


@register
class LogSumExp(_Reduce):
    name = "logsumexp"
    float_only = True

    def compute(self, ctx, node, x):
        axes, keep = node.attrs["axes"], node.attrs["keepdims"]
        if x.size == 0:
            return np.log(np.sum(np.exp(x), axis=axes, keepdims=keep))
        m = np.max(x, axis=axes, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        out = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
        return out if keep else np.squeeze(out, axis=axes)

    def grad(self, node, g):
        from .elemwise import exp

        x, axes, keep = node.inputs[0], node.attrs["axes"], node.attrs["keepdims"]
        return [_keep(g, x, axes, keep) * exp(x - _keep(node, x, axes, keep))]


def _reduce(op: Op, x, axis, keepdims: bool) -> Tensor:
    x = as_tensor(x)
    return make(op, [x], {"axes": _axes(op.name, x, axis), "keepdims": bool(keepdims)})


def sum(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - the contract's name
    """Sum over ``axis`` (None: all axes)."""
    return _reduce(Sum, x, axis, keepdims)


def mean(x, axis=None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (None: all axes); the batch size is counted at run time."""
    return _reduce(Mean, x, axis, keepdims)


def max(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Maximum over ``axis``; tied maxima share the gradient."""
    return _reduce(Max, x, axis, keepdims)


def logsumexp(x, axis=None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) computed stably (max subtracted)."""
    return _reduce(LogSumExp, x, axis, keepdims)


@register
class ArgMax(Op):
    name = "argmax"
    differentiable = False

    def infer(self, inputs, axis, keepdims):
        x = inputs[0]
        if axis is None:
            return ((1,) * x.ndim if keepdims else ()), "int64"
        return _reduced_shape(x.shape, (axis,), keepdims), "int64"

    def compute(self, ctx, node, x):
        return np.argmax(x, axis=node.attrs["axis"], keepdims=node.attrs["keepdims"]).astype(np.int64)

    def grad(self, node, g):
        return [None]


def argmax(x, axis=None, keepdims: bool = False) -> Tensor:
    """Index of the (first) maximum along ``axis`` (None: of the flattened tensor)."""
    x = as_tensor(x)
    if axis is not None:
        axis = _axes("argmax", x, axis)[0]
    return make(ArgMax, [x], {"axis": axis, "keepdims": bool(keepdims)})


@register
class Count(Op):
    """The number of elements of a static shape over ``axes`` (``None``: batch size).

    It reads no tensor: only the run-time batch size.
    """

    name = "count"
    differentiable = False
    pure = False  # depends on the batch size: never constant-folded

    def infer(self, inputs, shape, axes, dtype):
        return (), dtype

    def compute(self, ctx, node, *values):
        dims = [ctx.batch if node.attrs["shape"][a] is None else node.attrs["shape"][a]
                for a in node.attrs["axes"]]
        return np.array(np.prod(dims), dtype=node.dtype)

    def grad(self, node, g):
        return []


def count(x: Tensor, axes) -> Tensor | float:
    """Element count over ``axes``: a Python number when static, else a node."""
    n = _sh.size(tuple(x.shape[a] for a in axes))
    if n is not None:
        return float(n)
    return make(Count, [], {"shape": x.shape, "axes": tuple(axes), "dtype": x.dtype}, graph=x.graph)
