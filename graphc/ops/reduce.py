"""Reductions (sum, mean, max, min, prod, argmax, logsumexp, the element count) and their
adjoint, broadcasting (``broadcast_to``; ``sum_to`` sums a gradient back to an operand's
shape). ``var``/``std`` are composed from these in :mod:`graphc.ops.stats`.

Over an empty axis, as in PyTorch: ``sum`` is 0, ``prod`` 1, ``mean`` NaN, ``logsumexp``
-inf, and ``max``/``min``/``argmax`` have no value: a ShapeError where the op is defined
when the axis has a static size of 0, a run-time error (naming the op and its line) when
it is the batch axis and the batch has 0 rows.
"""

from __future__ import annotations

import numpy as np

from ..ir import dtypes as _dt
from ..ir import shapes as _sh
from ..ir.errors import DTypeError, located, shape_error
from ..ir.graph import Kind, Op, Tensor, as_tensor, make
from .elemwise import cast, equal, exp, where
from .shape import reshape


def _reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


class _Reduce(Op):
    """Shared shape rule: attrs ``axes`` (normalized tuple) and ``keepdims``.

    Reductions of kind REDUCTION say how they combine elements (``combine``: ``"sum"``,
    ``"prod"``, ``"max"`` or ``"min"``, the last two propagating NaN) and whether the
    result is divided by the element count (``average``); the lowering needs nothing else.
    """

    float_only = False
    combine = "sum"
    average = False

    def infer(self, inputs, axes, keepdims):
        x = inputs[0]
        if self.float_only and not _dt.is_float(x.dtype):
            raise DTypeError(f"{self.name}: needs a float tensor, got {x.dtype}; use gc.cast")
        dtype = "int64" if x.dtype == "bool" else x.dtype
        return _reduced_shape(x.shape, axes, keepdims), dtype

    def label(self, attrs):
        return self.name


def reduce_axes(op: str, x: Tensor, axis):
    """``axis`` of a reduction ``op`` over ``x`` as a normalized tuple (a ShapeError at the
    user's line when out of range)."""
    axes = _sh.normalize_axes(axis, x.ndim)
    if axes is None:
        raise located(shape_error(op, f"axis {axis} out of range for {x.ndim} dims", x.shape))
    return axes


def _from_zero(total):
    """A float sum as an accumulator started at +0.0 (the C kernels and PyTorch) gives it:
    NumPy starts from the first element, so its sum of -0.0s is -0.0."""
    return total + total.dtype.type(0) if total.dtype.kind == "f" else total


def _keep(g: Tensor, x: Tensor, axes, keepdims: bool) -> Tensor:
    """``g`` reshaped to the keepdims shape, then broadcast like ``x``."""
    if not keepdims:
        g = reshape(g, _reduced_shape(x.shape, axes, True))
    return broadcast_like(g, x)


class Sum(_Reduce):
    name = "sum"
    kind = Kind.REDUCTION

    def reference(self, ctx, node, x):
        with np.errstate(invalid="ignore", over="ignore"):  # inf + -inf is NaN, as in C
            return _from_zero(np.sum(x, axis=node.attrs["axes"], keepdims=node.attrs["keepdims"],
                                     dtype=node.dtype))

    def grad(self, node, g):
        return [_keep(g, node.inputs[0], node.attrs["axes"], node.attrs["keepdims"])]


def _empty(x: np.ndarray, axes) -> bool:
    """Whether the reduced axes of ``x`` hold no element."""
    return any(x.shape[a] == 0 for a in axes)


class Mean(_Reduce):
    name = "mean"
    kind = Kind.REDUCTION
    float_only = True
    average = True

    def reference(self, ctx, node, x):
        axes, keep = node.attrs["axes"], node.attrs["keepdims"]
        if _empty(x, axes):  # 0 / 0 (np.mean would warn)
            return np.full(_reduced_shape(x.shape, axes, keep), np.nan, node.dtype)
        with np.errstate(invalid="ignore", over="ignore"):
            return _from_zero(np.mean(x, axis=axes, keepdims=keep, dtype=node.dtype))

    def grad(self, node, g):
        x, axes = node.inputs[0], node.attrs["axes"]
        return [_keep(g, x, axes, node.attrs["keepdims"]) / count(x, axes)]


def no_maximum(node: Tensor) -> str:
    """The run-time error of max/min/argmax over a batch of 0 rows (both backends say it)."""
    what = "minimum" if getattr(node.op, "combine", "") == "min" else "maximum"
    return (f"{node.op.name} ({node.name}) over an empty axis: the batch has 0 rows "
            f"(shape {_sh.fmt(node.inputs[0].shape)}), which have no {what}")


class Max(_Reduce):
    name = "max"
    kind = Kind.REDUCTION
    combine = "max"

    _numpy = staticmethod(np.max)

    def reference(self, ctx, node, x):
        if _empty(x, node.attrs["axes"]):
            raise ValueError(no_maximum(node))
        return self._numpy(x, axis=node.attrs["axes"], keepdims=node.attrs["keepdims"])

    def grad(self, node, g):
        # Ties share the gradient equally (as TensorFlow's reduce_max does).
        x, axes, keep = node.inputs[0], node.attrs["axes"], node.attrs["keepdims"]
        hit = cast(equal(x, _keep(node, x, axes, keep)), x.dtype)
        share = hit / sum(hit, axes, keepdims=True)
        return [_keep(g, x, axes, keep) * share]


class BatchMax(Max):
    """``max`` over the batch axis: its kernel fails when the batch has 0 rows."""

    can_fail = True


class Min(Max):
    name = "min"
    combine = "min"
    _numpy = staticmethod(np.min)


class BatchMin(Min):
    """``min`` over the batch axis: its kernel fails when the batch has 0 rows."""

    can_fail = True


class Prod(_Reduce):
    name = "prod"
    kind = Kind.REDUCTION
    float_only = True  # an int64 product overflows quickly; the kernel accumulates in float64
    combine = "prod"

    def reference(self, ctx, node, x):
        with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 is NaN, as in C
            out = np.prod(x, axis=node.attrs["axes"], keepdims=node.attrs["keepdims"], dtype=np.float64)
        return np.asarray(out).astype(node.dtype)

    def grad(self, node, g):
        # d prod / d x_i is the product of the other elements, exact at zeros (as PyTorch's
        # prod_backward): no zero: prod / x_i; one zero: the product of the non-zeros at
        # the zero, 0 elsewhere; two or more zeros: 0 everywhere.
        x, axes, keep = node.inputs[0], node.attrs["axes"], node.attrs["keepdims"]
        zero = equal(x, 0.0)
        zeros = sum(cast(zero, x.dtype), axes, keepdims=True)
        others = prod(where(zero, 1.0, x), axes, keepdims=True)  # the non-zeros' product
        d = where(zero, where(equal(zeros, 1.0), others, 0.0),
                  where(equal(zeros, 0.0), others / where(zero, 1.0, x), 0.0))
        return [_keep(g, x, axes, keep) * d]


class LogSumExp(_Reduce):
    name = "logsumexp"
    float_only = True

    def reference(self, ctx, node, x):
        axes, keep = node.attrs["axes"], node.attrs["keepdims"]
        if x.size == 0:
            with np.errstate(divide="ignore"):  # log(0) = -inf: the empty axis
                return np.log(np.sum(np.exp(x), axis=axes, keepdims=keep))
        m = np.max(x, axis=axes, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # -inf rows, NaN
            out = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
        return out if keep else np.squeeze(out, axis=axes)

    def grad(self, node, g):
        x, axes, keep = node.inputs[0], node.attrs["axes"], node.attrs["keepdims"]
        return [_keep(g, x, axes, keep) * exp(x - _keep(node, x, axes, keep))]


def _reduce(op: Op, x, axis, keepdims: bool) -> Tensor:
    x = as_tensor(x)
    return make(op, [x], {"axes": reduce_axes(op.name, x, axis), "keepdims": bool(keepdims)})


def sum(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - the contract's name
    """Sum over ``axis`` (None: all axes)."""
    return _reduce(Sum, x, axis, keepdims)


def mean(x, axis=None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (None: all axes); the batch size is counted at run time."""
    return _reduce(Mean, x, axis, keepdims)


def _has_maximum(op: str, x: Tensor, axes) -> bool:
    """Refuse a static empty axis (max/min/argmax have no value there, as in PyTorch); True
    when the batch axis is reduced, so the kernel checks the batch size at run time."""
    dims = [x.shape[a] for a in axes]
    if 0 in dims:
        what = "minimum" if op == "min" else "maximum"
        raise located(shape_error(op, f"cannot reduce over axis {axes[dims.index(0)]} of size 0: "
                                      f"an empty axis has no {what}", x.shape))
    return None in dims


def _extreme(op: type, batch_op: type, x, axis, keepdims: bool) -> Tensor:
    """max or min (``op``), or its batch-checking twin when the batch axis is reduced."""
    x = as_tensor(x)
    axes = reduce_axes(op.name, x, axis)
    return make(batch_op if _has_maximum(op.name, x, axes) else op, [x],
                {"axes": axes, "keepdims": bool(keepdims)})


def max(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Maximum over ``axis`` (NaN if the axis holds a NaN); tied maxima share the gradient.

    An empty axis has no maximum: a ShapeError here, or a run-time error for a batch of 0.
    """
    return _extreme(Max, BatchMax, x, axis, keepdims)


def min(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Minimum over ``axis`` (NaN if the axis holds a NaN); tied minima share the gradient.

    An empty axis has no minimum: a ShapeError here, or a run-time error for a batch of 0.

    Example::

        gc.min(x, axis=1)         # [[3, 1, 2]] -> [1]
    """
    return _extreme(Min, BatchMin, x, axis, keepdims)


def prod(x, axis=None, keepdims: bool = False) -> Tensor:
    """Product over ``axis`` (float tensors; 1 over an empty axis), accumulated in float64.
    Its gradient is the product of the other elements, exact where ``x`` has zeros.

    Example::

        gc.prod(x, axis=1)        # [[2, 3, 4]] -> [24]
    """
    return _reduce(Prod, x, axis, keepdims)


def logsumexp(x, axis=None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) computed stably (max subtracted)."""
    return _reduce(LogSumExp, x, axis, keepdims)


class ArgMax(Op):
    name = "argmax"
    differentiable = False

    def infer(self, inputs, axis, keepdims):
        x = inputs[0]
        if axis is None:
            return ((1,) * x.ndim if keepdims else ()), "int64"
        return _reduced_shape(x.shape, (axis,), keepdims), "int64"

    def reference(self, ctx, node, x):
        axis = node.attrs["axis"]
        if x.size == 0 if axis is None else x.shape[axis] == 0:
            raise ValueError(no_maximum(node))
        return np.argmax(x, axis=axis, keepdims=node.attrs["keepdims"]).astype(np.int64)

    def grad(self, node, g):
        return [None]


class BatchArgMax(ArgMax):
    """``argmax`` over the batch axis: its kernel fails when the batch has 0 rows."""

    can_fail = True


def argmax(x, axis=None, keepdims: bool = False) -> Tensor:
    """Index of the (first) maximum along ``axis`` (None: of the flattened tensor); a NaN
    counts as the maximum. An empty axis is an error, as for :func:`max`."""
    x = as_tensor(x)
    if axis is not None:
        axis = reduce_axes("argmax", x, axis)[0]
    batch = _has_maximum("argmax", x, tuple(range(x.ndim)) if axis is None else (axis,))
    return make(BatchArgMax if batch else ArgMax, [x], {"axis": axis, "keepdims": bool(keepdims)})


class CumSum(Op):
    """Running sums along ``axis`` (``reverse``: from the end, the suffix sums)."""

    name = "cumsum"

    def infer(self, inputs, axis, reverse):
        x = inputs[0]
        if x.dtype == "bool":
            raise DTypeError("cumsum: needs a numeric tensor, got bool; use gc.cast")
        if x.shape[axis] is None:
            raise shape_error("cumsum", "cannot run along the batch axis", x.shape)
        return x.shape, x.dtype

    def reference(self, ctx, node, x):
        axis, dt = node.attrs["axis"], node.dtype
        with np.errstate(invalid="ignore", over="ignore"):  # inf + -inf is NaN, as in C
            if node.attrs["reverse"]:
                return _from_zero(np.flip(np.cumsum(np.flip(x, axis), axis=axis, dtype=dt), axis))
            return _from_zero(np.cumsum(x, axis=axis, dtype=dt))

    def grad(self, node, g):
        # y_i = sum_{j <= i} x_j, so dL/dx_j = sum_{i >= j} g_i: the reverse running sum
        return [make(CumSum, [g], {"axis": node.attrs["axis"], "reverse": not node.attrs["reverse"]})]

    def label(self, attrs):
        return "cumsum_reverse" if attrs["reverse"] else "cumsum"


def cumsum(x, axis: int = -1, reverse: bool = False) -> Tensor:
    """Running sums of ``x`` along ``axis`` (``reverse=True``: summing from the end).

    Example::

        gc.cumsum(x, axis=1)      # [[1, 2, 3]] -> [[1, 3, 6]]
    """
    x = as_tensor(x)
    return make(CumSum, [x], {"axis": reduce_axes("cumsum", x, axis)[0], "reverse": bool(reverse)})


class Count(Op):
    """The number of elements of a static shape over ``axes`` (``None``: batch size).

    It reads no tensor: only the run-time batch size.
    """

    name = "count"
    differentiable = False
    pure = False  # depends on the batch size: never constant-folded
    batch_only = True  # ... but one step has one batch size: CSE merges equal counts

    def infer(self, inputs, shape, axes, dtype):
        return (), dtype

    def reference(self, ctx, node, *values):
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


# -- broadcasting, the adjoint of summation --------------------------------------------------

class BroadcastTo(Op):
    """``x`` broadcast to a static shape whose ``None`` is the run-time batch size.

    Only the shape is needed, so no tensor is kept alive just for its shape.
    """

    name = "broadcast_to"
    kind = Kind.ELEMENTWISE

    def infer(self, inputs, shape):
        x = inputs[0]
        if _sh.broadcast([x.shape, shape]) != tuple(shape):
            raise shape_error("broadcast_to", "cannot broadcast", x.shape, shape)
        return tuple(shape), x.dtype

    def reference(self, ctx, node, x):
        return np.broadcast_to(x, _sh.bind(node.shape, ctx.batch))

    def scalar(self, node, args):
        return args[0]

    def grad(self, node, g):
        return [sum_to(g, node.inputs[0].shape)]


def broadcast_to(x, shape) -> Tensor:
    """``x`` broadcast to ``shape`` (``None``: the batch size)."""
    x = as_tensor(x)
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return make(BroadcastTo, [x], {"shape": shape})


def broadcast_like(x, like: Tensor) -> Tensor:
    """``x`` broadcast to the shape of ``like`` (which may hold the batch size)."""
    return broadcast_to(x, like.shape)


def sum_to(g: Tensor, shape: tuple) -> Tensor:
    """Sum ``g`` down to ``shape`` (the gradient of broadcasting): the one place it happens."""
    if g.shape == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    if lead:
        g = sum(g, axis=tuple(range(lead)))
    ones = tuple(i for i, d in enumerate(shape) if d == 1 and g.shape[i] != 1)
    if ones:
        g = sum(g, axis=ones, keepdims=True)
    return g
