"""Slices read in place and concatenations written in place.

A slice whose every reader is elementwise becomes a strided view; a concatenation whose
parts only it reads has the fused loops that compute them store straight into its buffer.

``split(z, 4, axis=-1)`` of an LSTM's gates, ``x[:, :, :1]``: copying each slice into a
buffer of its own costs a kernel and a pass over memory, and splits the elementwise work
that follows into one loop per slice. Where every reader of a slice is an elementwise
node (its loops, a matmul's epilogue or a reduction's prologue compute their load indices
from :func:`layout`), the slice becomes a :class:`~graphc.ops.shape.SliceView`: no kernel,
its readers load the sliced elements from the source buffer through offset and strides.

The same holds the other way for ``concat``: the four gate gradients of an LSTM's
backward step, computed by one fused loop, are stored into the rows of ``dz`` where the
concatenation would copy them (:func:`concat_in_place`: the concat's kernel does nothing).

Example::

    program = strided_views(program)   # before fusion; the debug build keeps copies
    parts = concat_in_place(fuse(program), program)   # after it
"""

from __future__ import annotations

from ..ir.graph import Kind, Tensor
from ..ir.program import Program, clone
from ..ops.shape import Concat, Slice, SliceView, full_index
from ..ops.state import Assign
from .fusion import Group, assigned_values, reader_counts
from .ir import ZERO, Expr, Lit, add, mul, prod, strides


def _viewable(node: Tensor) -> bool:
    """A slice of forward steps (or single positions) that takes each batch axis whole."""
    if type(node.op) is not Slice or isinstance(node.inputs[0].op, SliceView):
        return False
    x = node.inputs[0]
    for d, i in zip(x.shape, full_index(node.attrs["index"], x.ndim)):
        if d is None:
            if isinstance(i, int) or tuple(i) != (None, None, None):
                return False
        elif not isinstance(i, int) and range(*slice(*i).indices(d)).step < 0:
            return False
    return True


def strided_views(program: Program) -> Program:
    """``program`` with each slice that only elementwise nodes read made a view."""
    readers: dict[int, list[Tensor]] = {}
    for n in program.nodes:
        for i in n.inputs:
            readers.setdefault(i.id, []).append(n)
    kept = {o.id for o in program.outputs}
    kept |= {n.inputs[1].id for n in program.nodes if isinstance(n.op, Assign)}
    chosen = {n.id for n in program.nodes if _viewable(n) and n.id not in kept and readers.get(n.id)
              and all(r.op.kind is Kind.ELEMENTWISE for r in readers[n.id])}
    if not chosen:
        return program
    new: dict[int, Tensor] = {}
    nodes = []
    for n in program.nodes:
        inputs = tuple(new.get(i.id, i) for i in n.inputs)
        if n.id in chosen:
            m = clone(n, inputs)
            m.op = SliceView()
        elif any(a is not b for a, b in zip(inputs, n.inputs)):
            m = clone(n, inputs)
        else:
            m = n
        new[n.id] = m
        nodes.append(m)
    return Program([new.get(o.id, o) for o in program.outputs], nodes)


def layout(t: Tensor) -> tuple[Expr, list[Expr]]:
    """(offset, strides) of ``t``'s elements in its buffer: row-major from 0, or for a
    :class:`SliceView` the sliced positions of its source."""
    if not isinstance(t.op, SliceView):
        return ZERO, strides(t.shape)
    x = t.inputs[0]
    offset, out = [], []
    for d, i, s in zip(x.shape, full_index(t.attrs["index"], x.ndim), strides(x.shape)):
        if d is None:
            out.append(s)
            continue
        if isinstance(i, int):  # one position: the axis is gone
            offset.append(mul(Lit(i % d), s))
            continue
        taken = range(*slice(*i).indices(d))
        offset.append(mul(Lit(taken.start), s))
        out.append(mul(Lit(taken.step), s))
    return add(*offset) if offset else ZERO, out


def concat_in_place(groups: list[Group], program: Program) -> dict[int, tuple[Tensor, Expr]]:
    """The parts of concatenations stored straight into them: part id -> (the concat, the
    part's first element in it). A concat that is not assigned qualifies when each part is
    a distinct value of its dtype stored by a fused elementwise loop over the part's shape,
    read by nothing else and neither fetched nor assigned; the concat's kernel then does
    nothing (:mod:`.shape`) and the loops store through :func:`part_strides`."""
    readers = reader_counts(program)
    assigned = {v.id for _, v in assigned_values(program)}
    kept = assigned | {o.id for o in program.outputs}
    loop_stored = {n.id for g in groups if g.root is None for n in g.stores if n.shape == g.shape}
    parts: dict[int, tuple[Tensor, Expr]] = {}
    for g in groups:
        c = g.root  # (a fetched concat is fine: its parts go straight to the output array)
        if c is None or not isinstance(c.op, Concat) or g.members or c.id in assigned:
            continue
        ids = [x.id for x in c.inputs]
        if len(set(ids)) != len(ids) or not all(
                x.id in loop_stored and readers.get(x.id) == 1 and x.id not in kept
                and x.dtype == c.dtype for x in c.inputs):
            continue
        axis, start = c.attrs["axis"], 0
        inner = prod(c.shape[axis + 1:])
        for x in c.inputs:
            parts[x.id] = (c, mul(Lit(start), inner))
            start += x.shape[axis]
    return parts


def part_strides(concat: Tensor) -> list[Expr]:
    """The strides of a part's elements in its concatenation's buffer (the concat's own)."""
    return strides(concat.shape)
