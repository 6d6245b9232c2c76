"""Shape ops: reshape, transpose, concat, slicing, broadcasting, one_hot."""

from __future__ import annotations

import numpy as np

from ..ir import dtypes as _dt
from ..ir import shapes as _sh
from ..ir.errors import DTypeError, located, shape_error
from ..ir.graph import Kind, Op, Tensor, as_tensor, make


def _bind(shape, ctx):
    return tuple(ctx.batch if d is None else d for d in shape)


class Reshape(Op):
    name = "reshape"
    kind = Kind.VIEW

    def infer(self, inputs, shape):
        x = inputs[0]
        free = [i for i, d in enumerate(shape) if d is None or d == -1]
        if len(free) > 1:
            raise shape_error("reshape", f"target {shape} has more than one -1/None", x.shape)
        known = _sh.size(tuple(d for d in shape if d not in (None, -1)))
        total = _sh.size(x.shape)
        if total is None:  # batch-sized input: the free target dim carries the batch
            rest = _sh.size(tuple(d for d in x.shape if d is not None))
            if not free or rest % max(known, 1) or x.shape.count(None) != 1:
                raise shape_error("reshape", f"cannot reshape a batch-sized tensor to {shape}; "
                                  "put None (or -1) where the batch size goes", x.shape)
            if rest != known:
                raise shape_error("reshape", f"target {shape} does not keep the "
                                  "per-example size", x.shape)
            return tuple(None if i in free else d for i, d in enumerate(shape)), x.dtype
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
    """Reshape; ``-1`` or ``None`` marks the dimension that takes the rest (the batch)."""
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
            out.append(make(Slice, [g], {"index": tuple(index)}))
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


class Slice(Op):
    """Basic indexing with ints and step slices: ``x[1:3, :, 0]``."""

    name = "slice"

    def infer(self, inputs, index):
        x, shape = inputs[0], []
        for d, i in zip(x.shape, index + ((None, None, None),) * (x.ndim - len(index))):
            if isinstance(i, int):
                if d is None or not -d <= i < d:
                    raise shape_error("slice", f"index {i} out of range", x.shape)
            elif d is None:
                if i != (None, None, None):
                    raise shape_error("slice", "the batch axis can only be taken whole", x.shape)
                shape.append(None)
            else:
                shape.append(len(range(*slice(*i).indices(d))))
        return tuple(shape), x.dtype

    def reference(self, ctx, node, x):
        return x[_slices(node.attrs["index"])]

    def grad(self, node, g):
        return [make(SliceGrad, [g], {"index": node.attrs["index"], "shape": node.inputs[0].shape})]


class SliceGrad(Op):
    """Scatter ``g`` into zeros of ``shape`` at ``index`` (the adjoint of slice)."""

    name = "slice_grad"

    def infer(self, inputs, index, shape):
        return tuple(shape), inputs[0].dtype

    def reference(self, ctx, node, g):
        out = np.zeros(_bind(node.shape, ctx), node.dtype)
        out[_slices(node.attrs["index"])] = g
        return out

    def grad(self, node, g):
        return [make(Slice, [g], {"index": node.attrs["index"]})]


def getitem(x: Tensor, index) -> Tensor:
    """``x[...]`` with ints and slices (no fancy indexing)."""
    if not isinstance(index, tuple):
        index = (index,)
    out = []
    for i in index:
        if isinstance(i, (int, np.integer)) and not isinstance(i, bool):
            out.append(int(i))
        elif isinstance(i, slice):
            out.append((i.start, i.stop, i.step))
        else:
            raise located(DTypeError(f"slice: index {i!r} is not supported; use ints and "
                                     "slices"))
    if len(out) > x.ndim:
        raise located(shape_error("slice", f"too many indices ({len(out)})", x.shape))
    # negative ints count from the end; out-of-range ones are left for infer to reject
    norm = [i + d if isinstance(i, int) and d and -d <= i < 0 else i
            for d, i in zip(x.shape, out)]
    return make(Slice, [x], {"index": tuple(norm)})


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
