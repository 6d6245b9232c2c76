"""Shape ops: reshape, transpose, concat, slicing, broadcasting, one_hot."""

from __future__ import annotations

import math

import numpy as np

from ..ir import dtypes as _dt
from ..ir import shapes as _sh
from ..ir.errors import DTypeError, ShapeError, located, shape_error
from ..ir.graph import Kind, Op, Tensor, as_tensor, make


def _bind(shape, ctx):
    return tuple(ctx.batch if d is None else d for d in shape)


def _count(n: int, k: int) -> str:
    """``N*N*12``: a size of ``N**k * n`` elements, as messages show it."""
    return "*".join(["N"] * k + ([str(n)] if n != 1 or not k else []))


def _batch_target(have: tuple, shape: tuple) -> tuple:
    """The target of reshaping a batch-sized tensor. Every ``None`` is the same batch
    size N, so ``have`` holds ``N**k * n`` elements: each ``None`` of the target takes
    one N, a ``-1`` (at most one) takes what is left, which must be a whole number or
    exactly N (a shape cannot hold ``2*N`` in one dimension)."""
    k, n = have.count(None), _sh.size(tuple(d for d in have if d is not None))
    j, m = shape.count(None), _sh.size(tuple(d for d in shape if d not in (None, -1)))
    rest = k - j
    if shape.count(-1) > 1:
        raise shape_error("reshape", f"target {_sh.fmt(shape)} has more than one -1", have)
    if -1 not in shape:
        if rest == 0 and n == m:
            return shape
        hint = "; put None where the batch size goes" if j == 0 else ""
        raise shape_error("reshape", f"cannot reshape {_count(n, k)} elements (N: the batch "
                          f"size) to {_sh.fmt(shape)}, which holds {_count(m, j)}{hint}", have)
    if rest == 0 and m and n % m == 0:
        return tuple(n // m if d == -1 else d for d in shape)
    if rest == 1 and n == m:
        return tuple(None if d == -1 else d for d in shape)
    raise shape_error("reshape", f"the -1 of {_sh.fmt(shape)} would hold {_count(n, k)} / {_count(m, j)} "
                      "elements; a dimension is a number or the whole batch size N", have)


class Reshape(Op):
    name = "reshape"
    kind = Kind.VIEW

    def infer(self, inputs, shape):
        x = inputs[0]
        if any(d is not None and d < -1 for d in shape):
            raise shape_error("reshape", f"target {shape} has a negative dimension", x.shape)
        if None in x.shape:
            return _batch_target(x.shape, shape), x.dtype
        free = [i for i, d in enumerate(shape) if d is None or d == -1]
        if len(free) > 1:  # a static input: None, like -1, takes the rest
            raise shape_error("reshape", f"target {shape} has more than one -1/None", x.shape)
        known = _sh.size(tuple(d for d in shape if d not in (None, -1)))
        total = _sh.size(x.shape)
        if free:
            if known == 0 or total % known:
                raise shape_error("reshape", f"cannot reshape {total} elements to {shape}", x.shape)
            shape = tuple(total // known if i in free else d for i, d in enumerate(shape))
        elif known != total:
            raise shape_error("reshape", f"cannot reshape {total} elements to {shape}", x.shape)
        return tuple(shape), x.dtype

    def reference(self, ctx, node, x):
        return x.reshape(_bind(node.shape, ctx))

    def grad(self, node, g):
        return [reshape(g, node.inputs[0].shape)]


def reshape(x, shape) -> Tensor:
    """Reshape. On a tensor holding the batch size, each ``None`` of ``shape`` is the
    batch size N (every ``None`` of a graph is the same N) and one ``-1`` may take the
    rest; on a static tensor, ``None`` or ``-1`` marks the dimension that takes the rest.

    Example: ``reshape(x, (None, 12))`` for ``x`` of shape ``(None, 3, 4)``.
    """
    x = as_tensor(x)
    shape = tuple(None if d is None else int(d) for d in shape)
    if shape == x.shape:
        return x
    return make(Reshape, [x], {"shape": shape})


class Transpose(Op):
    name = "transpose"

    def infer(self, inputs, axes):
        x = inputs[0]
        if sorted(axes) != list(range(x.ndim)):
            raise shape_error("transpose", f"axes {axes} are not a permutation of {x.ndim} dims", x.shape)
        return tuple(x.shape[a] for a in axes), x.dtype

    def reference(self, ctx, node, x):
        return np.transpose(x, node.attrs["axes"])

    def grad(self, node, g):
        return [transpose(g, tuple(np.argsort(node.attrs["axes"]).tolist()))]


def transpose(x, axes=None) -> Tensor:
    """Permute dimensions; default reverses them (``x.T``)."""
    x = as_tensor(x)
    axes = tuple(range(x.ndim))[::-1] if axes is None else tuple(int(a) % max(x.ndim, 1) for a in axes)
    if axes == tuple(range(x.ndim)):
        return x
    return make(Transpose, [x], {"axes": axes})


def flatten(x) -> Tensor:
    """Keep axis 0, flatten the rest: (N, C, H, W) -> (N, C*H*W)."""
    x = as_tensor(x)
    rest = _sh.size(x.shape[1:])
    if rest is None:
        raise located(shape_error("flatten", "only axis 0 may be the batch size", x.shape))
    return reshape(x, (x.shape[0], rest))


def expand_dims(x, axis: int) -> Tensor:
    """Insert a dimension of size 1 at ``axis``."""
    x = as_tensor(x)
    if not -x.ndim - 1 <= axis <= x.ndim:
        raise located(shape_error("expand_dims", f"axis {axis} out of range", x.shape))
    axis = axis % (x.ndim + 1)
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


def squeeze(x, axis=None) -> Tensor:
    """Remove dimensions of size 1 (all of them, or those in ``axis``)."""
    x = as_tensor(x)
    axes = _sh.normalize_axes(axis, x.ndim) if axis is not None else tuple(
        i for i, d in enumerate(x.shape) if d == 1)
    if axes is None or any(x.shape[a] != 1 for a in axes):
        raise located(shape_error("squeeze", f"axis {axis} is not of size 1", x.shape))
    return reshape(x, tuple(d for i, d in enumerate(x.shape) if i not in axes))


class Concat(Op):
    name = "concat"

    def infer(self, inputs, axis):
        first = inputs[0]
        for t in inputs[1:]:
            if t.ndim != first.ndim or any(
                    a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != axis):
                raise shape_error("concat", f"shapes differ outside axis {axis}",
                                  *(i.shape for i in inputs))
        if any(t.shape[axis] is None for t in inputs):
            raise shape_error("concat", "cannot concatenate along the batch axis",
                              *(i.shape for i in inputs))
        dtype = _dt.join("concat", [t.dtype for t in inputs])
        shape = list(first.shape)
        shape[axis] = sum(t.shape[axis] for t in inputs)
        return tuple(shape), dtype

    def reference(self, ctx, node, *xs):
        return np.concatenate(xs, axis=node.attrs["axis"])

    def grad(self, node, g):
        axis, start, out = node.attrs["axis"], 0, []
        for x in node.inputs:
            index = [(None, None, None)] * g.ndim
            index[axis] = (start, start + x.shape[axis], 1)
            start += x.shape[axis]
            out.append(slice_of(g, tuple(index)))
        return out


def concat(xs, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    xs = [as_tensor(x) for x in xs]
    if not xs:
        raise located(shape_error("concat", "needs at least one tensor"))
    axis = _sh.normalize_axes(axis, xs[0].ndim)
    if axis is None:
        raise located(shape_error("concat", "axis out of range", *(x.shape for x in xs)))
    return make(Concat, xs, {"axis": axis[0]})


def _slices(index):
    return tuple(i if isinstance(i, int) else slice(*i) for i in index)


def _text(i) -> str:
    """An index entry as the user wrote it: ``1:3``, ``::-1``, ``-1``."""
    if isinstance(i, int):
        return str(i)
    a, b, c = ("" if v is None else str(v) for v in i)
    return f"{a}:{b}" + (f":{c}" if c else "")


def batch_rows(i, shape: tuple = ()) -> tuple[int | None, tuple[int, int], int, int]:
    """How index entry ``i`` (an int or a (start, stop, step) triple) takes rows of the
    batch axis: (rows taken, None for all N; the first row at ``k*N + c`` as (k, c); the
    step; the batch size the index needs). The number of rows must be a number or N: a
    shape cannot hold N - 1 in one dimension."""
    if isinstance(i, int):
        return 1, ((0, i) if i >= 0 else (1, i)), 1, (i + 1 if i >= 0 else -i)
    step = 1 if i[2] is None else i[2]
    if step == 0:
        raise shape_error("slice", "slice step cannot be zero", *[shape][:len(shape)])

    def bound(v, default):
        return default if v is None else (0, v) if v >= 0 else (1, v)

    first = bound(i[0], (0, 0) if step > 0 else (1, -1))
    stop = bound(i[1], (1, 0) if step > 0 else (0, -1))  # (0, -1): before row 0, never wraps
    if abs(step) == 1 and (first, stop) == (((0, 0), (1, 0)) if step > 0 else ((1, -1), (0, -1))):
        return None, first, step, 0  # the whole axis, maybe reversed
    if first[0] != stop[0]:
        raise shape_error("slice", f"[{_text(i)}] on the batch axis would take a number of rows "
                          "that depends on the batch size N (only N itself fits in a shape); take "
                          "the axis whole (:, ::-1) or a fixed number of rows (1:3, -2:, :4)",
                          *[shape][:len(shape)])
    rows = range(first[1], stop[1], step)
    need = 0 if not rows else max(rows) + 1 if first[0] == 0 else -min(rows)
    return len(rows), first, step, need


def batch_need(shape, index) -> tuple[int, str]:
    """(the batch size an index needs, the entries on the batch axis that need it)."""
    need, what = 0, []
    for d, i in zip(shape, index):
        if d is None:
            n = batch_rows(i)[3]
            if n:
                need, what = max(need, n), what + [_text(i)]
    return need, ", ".join(what)


def _check_batch(shape, index, batch: int) -> None:
    need, what = batch_need(shape, index)
    if batch < need:
        raise IndexError(f"[{what}] on the batch axis needs a batch of at least {need} rows, "
                         f"got a batch of {batch}")


def full_index(index, ndim: int) -> tuple:
    """``index`` with a whole-axis entry for each axis it leaves out."""
    return tuple(index) + ((None, None, None),) * (ndim - len(index))


class Slice(Op):
    """Basic indexing with ints and step slices: ``x[1:3, :, 0]``. On the batch axis an
    index takes the axis whole (``:``, ``::-1``) or a fixed number of rows (``1:3``, ``-1``),
    which the batch must have at run time (:class:`BatchSlice`)."""

    name = "slice"

    def infer(self, inputs, index):
        x, shape = inputs[0], []
        for d, i in zip(x.shape, full_index(index, x.ndim)):
            if d is None:
                rows = batch_rows(i, x.shape)[0]
                if not isinstance(i, int):
                    shape.append(rows)
            elif isinstance(i, int):
                if not -d <= i < d:
                    raise shape_error("slice", f"index {i} out of range", x.shape)
            elif i[2] == 0:
                raise shape_error("slice", "slice step cannot be zero", x.shape)
            else:
                shape.append(len(range(*slice(*i).indices(d))))
        return tuple(shape), x.dtype

    def reference(self, ctx, node, x):
        if self.can_fail:
            _check_batch(node.inputs[0].shape, node.attrs["index"], ctx.batch)
        return x[_slices(node.attrs["index"])]

    def grad(self, node, g):
        return [slice_grad(g, node.attrs["index"], node.inputs[0].shape)]


class BatchSlice(Slice):
    """A slice taking a fixed number of rows of the batch axis: it fails at run time when
    the batch has fewer rows than the index needs (NumPy would return fewer rows)."""

    can_fail = True


class SliceGrad(Op):
    """Scatter ``g`` into zeros of ``shape`` at ``index`` (the adjoint of slice)."""

    name = "slice_grad"

    def infer(self, inputs, index, shape):
        return tuple(shape), inputs[0].dtype

    def reference(self, ctx, node, g):
        if self.can_fail:
            _check_batch(node.shape, node.attrs["index"], ctx.batch)
        out = np.zeros(_bind(node.shape, ctx), node.dtype)
        out[_slices(node.attrs["index"])] = g
        return out

    def grad(self, node, g):
        return [slice_of(g, node.attrs["index"])]


class BatchSliceGrad(SliceGrad):
    """The adjoint of :class:`BatchSlice`, with the same run-time check (it may run
    without the forward slice, whose value the gradient does not need)."""

    can_fail = True


def _takes_rows(shape, index) -> bool:
    """Whether ``index`` takes part of the batch axis (a run-time check is needed); a bad
    index is left for the shape rule to report."""
    try:
        return any(d is None and batch_rows(i)[3] for d, i in zip(shape, index))
    except ShapeError:
        return False


class SliceView(Slice):
    """A slice that elementwise kernels read in place, with strides (no copy): the same
    value as :class:`Slice`; the lowering makes it where every reader is elementwise
    (``graphc.lower.views``)."""

    kind = Kind.VIEW


class FlatPart(Op):
    """Elements ``[offset, offset + size)`` of a 1-D tensor read as ``shape``: a view of a
    contiguous run (a gradient in the vector an allreduce averages), which every kernel
    reads in place through a buffer starting at the run (``graphc.lower.memplan``)."""

    name = "flat_part"
    kind = Kind.VIEW
    differentiable = False  # (made after the gradients: an allreduce's output is read so)

    def infer(self, inputs, offset, shape):
        (x,) = inputs
        size = math.prod(shape)
        if x.ndim != 1 or None in x.shape or not 0 <= offset <= x.shape[0] - size:
            raise shape_error("flat_part", f"elements {offset}..{offset + size} of a 1-D tensor",
                              x.shape)
        return tuple(shape), x.dtype

    def reference(self, ctx, node, x):
        a = node.attrs
        return x[a["offset"]:a["offset"] + math.prod(a["shape"])].reshape(a["shape"])

    def label(self, attrs):
        return f"flat_part[{attrs['offset']}]"


def flat_part(x: Tensor, offset: int, shape: tuple) -> Tensor:
    """The view :class:`FlatPart` of ``x`` (1-D, fixed size).

    Example::

        dW = flat_part(bucket, 10, (3, 4))      # bucket[10:22] as a 3 x 4 matrix
    """
    return make(FlatPart, [x], {"offset": int(offset), "shape": tuple(int(d) for d in shape)})


def slice_of(x: Tensor, index: tuple) -> Tensor:
    """``x[index]`` for an index of ints and (start, stop, step) triples, one per axis
    from the first (as :func:`getitem` normalizes them)."""
    return make(BatchSlice if _takes_rows(x.shape, index) else Slice, [x], {"index": index})


def slice_grad(g: Tensor, index: tuple, shape: tuple) -> Tensor:
    """Zeros of ``shape`` with ``g`` at ``index`` (the adjoint of :func:`slice_of`)."""
    cls = BatchSliceGrad if _takes_rows(shape, index) else SliceGrad
    return make(cls, [g], {"index": index, "shape": shape})


def getitem(x: Tensor, index) -> Tensor:
    """``x[...]`` with ints and slices (no fancy indexing).

    On the batch axis (``None``) an index takes the axis whole or a fixed number of
    rows, checked at run time: ``x[1:3]`` of a ``(None, 5)`` tensor is ``(2, 5)`` and
    fails when the batch has fewer than 3 rows; ``x[1:]`` (N - 1 rows) is refused.
    """
    if not isinstance(index, tuple):
        index = (index,)
    out = []
    for i in index:
        if isinstance(i, (int, np.integer)) and not isinstance(i, bool):
            out.append(int(i))
        elif isinstance(i, slice):
            if not all(v is None or isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                       for v in (i.start, i.stop, i.step)):
                raise located(DTypeError(f"slice: bounds of {i!r} must be ints or None"))
            out.append(tuple(None if v is None else int(v) for v in (i.start, i.stop, i.step)))
        else:
            raise located(DTypeError(f"slice: index {i!r} is not supported; use ints and "
                                     "slices"))
    if len(out) > x.ndim:
        raise located(shape_error("slice", f"too many indices ({len(out)})", x.shape))
    # negative ints count from the end; out-of-range ones are left for infer to reject
    norm = [i + d if isinstance(i, int) and d and -d <= i < 0 else i
            for d, i in zip(x.shape, out)]
    return slice_of(x, tuple(norm))


class OneHot(Op):
    name = "one_hot"
    differentiable = False

    def infer(self, inputs, depth, dtype):
        if not _dt.is_int(inputs[0].dtype):
            raise DTypeError(f"one_hot: labels must be int32/int64, got {inputs[0].dtype}")
        return inputs[0].shape + (depth,), dtype

    def reference(self, ctx, node, labels):
        depth = node.attrs["depth"]
        return (labels[..., None] == np.arange(depth)).astype(node.dtype)

    def grad(self, node, g):
        return [None]


def one_hot(labels, depth: int, dtype: str = "float32") -> Tensor:
    """Class ids (int) -> one-hot rows of length ``depth`` (ids out of range give 0s)."""
    return make(OneHot, [as_tensor(labels)], {"depth": int(depth), "dtype": _dt.normalize(dtype)})
