"""Indexing and assembling ops: gather/take (and gather's adjoint, a scatter-add),
stack, split, pad, tril/triu.

gather and its gradient are ops of their own; the others are compositions of
expand_dims, concat, slicing, slice_grad and where, whose gradients follow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..ir import dtypes as _dt
from ..ir import shapes as _sh
from ..ir.errors import ArgumentError, DTypeError, located, shape_error
from ..ir.graph import Op, Tensor, as_tensor, make
from .elemwise import where
from .leaves import constant
from .shape import SliceGrad, concat, expand_dims, reshape, slice_grad, slice_of


def _check_indices(op: str, indices: np.ndarray, depth: int) -> None:
    """The NumPy side of the run-time check the lowering makes (same message)."""
    flat = indices.reshape(-1)
    bad = np.flatnonzero((flat < 0) | (flat >= depth))
    if bad.size:
        j = int(bad[0])
        raise IndexError(f"index {int(flat[j])} (element {j} of the indices, flat) is out of "
                         f"range [0, {depth}); negative indices are refused")


def _gather_shape(x_shape: tuple, idx_shape: tuple, axis: int) -> tuple:
    return x_shape[:axis] + idx_shape + x_shape[axis + 1:]


class Gather(Op):
    """``np.take(x, indices, axis)`` for int ``indices`` of any shape, each in
    ``[0, x.shape[axis])`` (checked at run time: the step fails naming the index)."""

    name = "gather"
    can_fail = True

    def infer(self, inputs, axis):
        x, idx = inputs
        if not _dt.is_int(idx.dtype):
            raise DTypeError(f"gather: indices must be int32/int64, got {idx.dtype}")
        return _gather_shape(x.shape, idx.shape, axis), x.dtype

    def reference(self, ctx, node, x, idx):
        axis = node.attrs["axis"]
        _check_indices(self.name, idx, x.shape[axis])
        return np.take(x, idx.astype(np.int64), axis=axis)

    def grad(self, node, g):
        x, idx = node.inputs
        return [gather_grad(g, idx, node.attrs["axis"], x.shape), None]


class GatherGrad(Op):
    """Zeros of ``shape`` with the rows of ``g`` added at ``indices`` along ``axis``
    (duplicate indices accumulate, in index order): the adjoint of gather."""

    name = "gather_grad"
    can_fail = True  # it may run without the forward gather, so it checks too

    def infer(self, inputs, axis, shape):
        g, idx = inputs
        if not _dt.is_int(idx.dtype):
            raise DTypeError(f"gather_grad: indices must be int32/int64, got {idx.dtype}")
        if g.shape != _gather_shape(tuple(shape), idx.shape, axis):
            raise shape_error("gather_grad", f"the gradient does not fit a gather of {_sh.fmt(shape)} "
                              f"along axis {axis}", g.shape, idx.shape)
        return tuple(shape), g.dtype

    def reference(self, ctx, node, g, idx):
        axis = node.attrs["axis"]
        shape = _sh.bind(node.shape, ctx.batch)
        _check_indices("gather", idx, shape[axis])
        out = np.zeros(shape, node.dtype)
        moved = np.moveaxis(out, axis, 0)  # a view: add.at along the first axis
        rows = np.moveaxis(g.reshape(shape[:axis] + (-1,) + shape[axis + 1:]), axis, 0)
        np.add.at(moved, idx.reshape(-1).astype(np.int64), rows)
        return out

    def grad(self, node, g):
        return [gather(g, node.inputs[1], node.attrs["axis"]), None]


def _axis(op: str, axis, ndim: int, shape: tuple) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise located(shape_error(op, f"axis {axis!r} out of range", shape))
    return int(axis) % ndim


def gather(x, indices, axis: int = 0) -> Tensor:
    """Take the entries of ``x`` at int ``indices`` along ``axis`` (``tf.gather``,
    ``np.take``): the result has shape ``x.shape[:axis] + indices.shape +
    x.shape[axis+1:]``. Indices outside ``[0, x.shape[axis])``, negative ones included,
    fail the step at run time. The gradient scatter-adds into ``x`` (repeated indices
    accumulate); none flows to ``indices``. (``torch.gather`` is another op:
    ``np.take_along_axis``; ``torch.index_select`` is this one for 1-D indices.)

    Example (an embedding lookup): ``gather(table, ids)`` with ``table`` (V, D) and
    ``ids`` (None, T) int64 is (None, T, D).
    """
    x, indices = as_tensor(x), as_tensor(indices)
    if x.ndim == 0:
        raise located(shape_error("gather", "cannot index a scalar", x.shape))
    axis = _axis("gather", axis, x.ndim, x.shape)
    return make(Gather, [x, indices], {"axis": axis})


def gather_grad(g, indices, axis: int, shape: tuple) -> Tensor:
    """Zeros of ``shape`` with ``g`` scatter-added at ``indices`` along ``axis``."""
    return make(GatherGrad, [as_tensor(g), as_tensor(indices)], {"axis": int(axis), "shape": tuple(shape)})


def take(x, indices, axis: int | None = None) -> Tensor:
    """``np.take``: :func:`gather` along ``axis``, or with ``axis=None`` from ``x``
    flattened (which needs a static shape).

    Example: ``take(x, idx)`` of a (3, 4) ``x`` reads ``x.reshape(-1)[idx]``.
    """
    x = as_tensor(x)
    if axis is None:
        if None in x.shape:
            raise located(shape_error("take", "axis=None flattens x, which needs a static shape; "
                                      "give an axis", x.shape))
        x = reshape(x, (_sh.size(x.shape),))
        axis = 0
    return gather(x, indices, axis)


def stack(tensors: Sequence, axis: int = 0) -> Tensor:
    """Join tensors of one shape along a new axis (``np.stack``).

    Example: ``stack([a, b], axis=1)`` of two (None, 4) tensors is (None, 2, 4).
    """
    xs = [as_tensor(t) for t in tensors]
    if not xs:
        raise located(shape_error("stack", "needs at least one tensor"))
    if any(t.shape != xs[0].shape for t in xs):
        raise located(shape_error("stack", "all tensors must have the same shape", *(t.shape for t in xs)))
    ndim = xs[0].ndim + 1
    axis = _axis("stack", axis, ndim, xs[0].shape)
    return concat([expand_dims(t, axis) for t in xs], axis=axis)


def split(x, num_or_sizes, axis: int = 0) -> list[Tensor]:
    """Split ``x`` along ``axis``: into ``num_or_sizes`` equal parts (an int, which must
    divide the axis), or into parts of the listed sizes, which must add up to the axis
    (``torch.split`` with sizes, ``tf.split``). Returns a list of tensors.

    Example: ``i, f, g, o = split(gates, 4, axis=1)`` of a (None, 4H) tensor.
    """
    x = as_tensor(x)
    if x.ndim == 0:
        raise located(shape_error("split", "cannot split a scalar", x.shape))
    axis = _axis("split", axis, x.ndim, x.shape)
    d = x.shape[axis]
    if d is None:
        raise located(shape_error("split", "cannot split the batch axis", x.shape))
    if isinstance(num_or_sizes, (int, np.integer)) and not isinstance(num_or_sizes, bool):
        n = int(num_or_sizes)
        if n <= 0 or d % n:
            raise located(shape_error("split", f"axis {axis} of size {d} cannot be split into {n} "
                                      "equal parts; give a list of sizes", x.shape))
        sizes = [d // n] * n
    else:
        sizes = [int(s) for s in num_or_sizes]
        if not sizes or any(s < 0 for s in sizes) or sum(sizes) != d:
            raise located(shape_error("split", f"sizes {sizes} must be >= 0 and add up to {d}, the "
                                      f"size of axis {axis}", x.shape))
    out, start = [], 0
    for s in sizes:
        index = [(None, None, None)] * x.ndim
        index[axis] = (start, start + s, 1)
        out.append(x if s == d else slice_of(x, tuple(index)))
        start += s
    return out


def _piece(t: Tensor) -> tuple | None:
    """(shape, axis, start, stop) when ``t`` is a slice_grad placing its input at
    ``start:stop`` of one static axis (whole along the others), as split's pieces are."""
    if type(t.op) is not SliceGrad:
        return None
    index, shape = t.attrs["index"], t.attrs["shape"]
    cut = [k for k, i in enumerate(index) if i != (None, None, None)]
    if len(cut) != 1 or len(index) != len(shape):
        return None
    (k,), i = cut, index[cut[0]]
    if isinstance(i, int) or i[2] not in (None, 1) or shape[k] is None:
        return None
    start, stop, _ = slice(*i).indices(shape[k])
    return (shape, k, start, stop) if stop > start else None


def join_slice_grads(terms: list[Tensor]) -> list[Tensor]:
    """The gradient terms of one tensor with the slice_grads of adjacent pieces of one
    axis (split's, concat's inputs...) joined by one concat, so that split's gradient
    is a concat rather than a sum of zero-padded pieces (used by ``gc.grad`` when it
    adds up the terms). Other terms are kept as they are."""
    groups: dict[tuple, list] = {}
    rest = []
    for t in terms:
        p = _piece(t)
        if p is None:
            rest.append(t)
        else:
            groups.setdefault((p[0], p[1], t.dtype), []).append((p[2], p[3], t))
    for (shape, axis, _), pieces in groups.items():
        pieces.sort(key=lambda p: p[:2])
        runs = [[pieces[0]]]
        for p in pieces[1:]:
            if p[0] == runs[-1][-1][1]:
                runs[-1].append(p)
            else:
                runs.append([p])
        for run in runs:
            if len(run) == 1:
                rest.append(run[0][2])
                continue
            joined = concat([t.inputs[0] for _, _, t in run], axis=axis)
            start, stop = run[0][0], run[-1][1]
            if (start, stop) != (0, shape[axis]):
                index = [(None, None, None)] * len(shape)
                index[axis] = (start, stop, 1)
                joined = slice_grad(joined, tuple(index), shape)
            rest.append(joined)
    return rest


def pad(x, pad_width, value: float = 0.0) -> Tensor:
    """Constant padding (``np.pad(x, pad_width, constant_values=value)``): ``pad_width``
    holds one ``(before, after)`` pair per axis (or one pair for every axis). The batch
    axis takes only ``(0, 0)``. The gradient is the slice of the unpadded part.

    Example: ``pad(x, ((0, 0), (1, 1), (2, 0)))`` of (None, 3, 4) is (None, 5, 6).
    """
    x = as_tensor(x)
    try:
        pairs = np.broadcast_to(np.asarray(pad_width), (x.ndim, 2))
    except ValueError:
        raise located(ArgumentError(f"pad: pad_width {pad_width!r} is not one (before, after) pair "
                                    f"per axis of {_sh.fmt(x.shape)}")) from None
    if pairs.dtype.kind not in "iu" or (pairs < 0).any():
        raise located(ArgumentError(f"pad: pad_width {pad_width!r} must be non-negative ints"))
    pairs = [(int(a), int(b)) for a, b in pairs]
    if any(d is None and p != (0, 0) for d, p in zip(x.shape, pairs)):
        raise located(shape_error("pad", f"the batch axis cannot be padded (pad_width {pairs})", x.shape))
    if all(p == (0, 0) for p in pairs):
        return x
    index = tuple((None, None, None) if d is None else (a, a + d, 1) for d, (a, _) in zip(x.shape, pairs))
    shape = tuple(d if d is None else a + d + b for d, (a, b) in zip(x.shape, pairs))
    out = slice_grad(x, index, shape)  # zeros with x in place
    if value == 0:
        return out
    inside = np.zeros(tuple(1 if d is None else d for d in shape), bool)
    inside[tuple(slice(None) if d is None else slice(a, a + d) for d, (a, _) in zip(x.shape, pairs))] = True
    return where(constant(inside, "bool"), out, constant(value, x.dtype))


def _band(op: str, x, k: int, lower: bool) -> Tensor:
    x = as_tensor(x)
    if x.ndim < 2 or None in x.shape[-2:]:
        raise located(shape_error(op, "needs static last two axes (a matrix or a stack of them)", x.shape))
    rows, cols = x.shape[-2:]
    mask = np.tri(rows, cols, int(k), dtype=bool)
    if not lower:
        mask = ~np.tri(rows, cols, int(k) - 1, dtype=bool)
    return where(constant(mask, "bool"), x, constant(0, x.dtype))


def tril(x, k: int = 0) -> Tensor:
    """The lower triangle of the last two axes: entries above diagonal ``k`` set to 0
    (``torch.tril``); the gradient is masked the same way.

    Example (a causal mask): ``where(tril(ones) > 0, scores, -1e9)``.
    """
    return _band("tril", x, k, True)


def triu(x, k: int = 0) -> Tensor:
    """The upper triangle of the last two axes: entries below diagonal ``k`` set to 0
    (``torch.triu``)."""
    return _band("triu", x, k, False)
