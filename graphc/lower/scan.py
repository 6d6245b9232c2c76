"""Lowering of ``gc.scan``: the body is lowered once, as a program of its own, and the
scan's kernel runs it once per step in a loop inside the one native call.

No step copies anything: a carry whose history (the carry each step started from, which
a gradient replays from) the program keeps lives in that history, each step reading row
``t`` and writing the next; the other carries live in two halves of a scratch array each
(step ``s`` reads half ``s % 2`` and writes the other); the sequences are read and the
stacked outputs written in place through pointers to row ``t``. The body's own arena
follows the carries in the kernel's scratch memory. Code size and compile time do not
depend on the sequence length.

Example::

    lowered = lower(optimize(Program([hs])))   # one kernel "k1_scan_fused" running s1_step
"""

from __future__ import annotations

import numpy as np

from ..ir.program import Program
from ..transforms.scan import Scan
from .fusion import Group
from .ir import (
    Bin,
    Block,
    Buffer,
    Copy,
    Expr,
    Let,
    Lit,
    Loop,
    Place,
    Ptr,
    Scratch,
    Subprogram,
    Sym,
    add,
    mul,
    prod,
)
from .memplan import Plan
from .registry import lowers


def _align(e: Expr) -> Expr:
    """``e`` bytes rounded up to a multiple of 64."""
    return e if isinstance(e, Lit) and e.value % 64 == 0 else mul(Bin("/", add(e, Lit(63)), Lit(64)), Lit(64))


@lowers(Scan, nested=True)
def lower_scan(group: Group, plan: Plan, nested) -> list:
    node = group.root
    a = node.attrs
    body, nc, nx, ny, length = a["body"], a["carries"], a["sequences"], a["outputs"], a["length"]
    init, xs, caps = node.inputs[:nc], node.inputs[nc:nc + nx], node.inputs[nc + nx:]
    kept = {m.attrs["index"]: m for m in group.members if m in group.stores}
    ys = [j for j in range(ny) if nc + j in kept]
    program: Program = body.program(list(range(nc)) + [nc + j for j in ys])
    lowered = nested(program, f"{group.name}_")
    t, s = Sym("t"), Sym("s")
    cur, nxt = Sym("half"), Bin("-", Lit(1), Sym("half"))

    # A carry whose history is kept lives in it: step s reads row t and writes the next row
    # (the last step writes the scratch half the final carry is copied from); the others
    # alternate between the two halves of their scratch array.
    history = [kept.get(nc + ny + i) for i in range(nc)]
    first = Lit(length - 1 if a["reverse"] else 0)
    stmts: list = []
    offset: Expr = Lit(0)
    carries = []
    for i, (c, h) in enumerate(zip(init, history)):
        count, item = prod(c.shape), np.dtype(c.dtype).itemsize
        buf = Buffer(f"carry{i}", c.dtype, Place("scratch"))
        at = Lit(offset.value // item) if isinstance(offset, Lit) else Bin("/", offset, Lit(item))
        stmts.append(Scratch(buf.name, c.dtype, mul(count, Lit(2)), at))
        stmts.append(Copy(buf, plan.buffer(c), count) if h is None  # where step 0 reads it
                     else Copy(plan.buffer(h), plan.buffer(c), count, mul(first, count)))
        carries.append((buf, count))
        offset = _align(add(offset, mul(count, Lit(2 * item))))

    t_next = Bin("-", t, Lit(1)) if a["reverse"] else add(t, Lit(1))
    where = {}  # body input (by id) -> pointer for this step
    for (buf, count), h, p in zip(carries, history, body.inputs[:nc]):
        where[p.id] = Ptr(buf, mul(cur, count)) if h is None else Ptr(plan.buffer(h), mul(t, count))
    for x, p in zip(xs, body.inputs[nc:nc + nx]):
        where[p.id] = Ptr(plan.buffer(x), mul(t, prod(x.shape[1:])))
    for c, p in zip(caps, body.inputs[nc + nx:]):
        where[p.id] = Ptr(plan.buffer(c), Lit(0))
    ys_out = [Ptr(plan.buffer(kept[nc + j]), mul(t, prod(kept[nc + j].shape[1:])), written=True)
              for j in ys]

    def run(last: bool) -> Subprogram:
        outs = [Ptr(buf, mul(nxt, count), written=True) if h is None or last
                else Ptr(plan.buffer(h), mul(t_next, count), written=True)
                for (buf, count), h in zip(carries, history)]
        return Subprogram(group.name, lowered, tuple(where[f.id] for f in lowered.feeds),
                          tuple(outs + ys_out), tuple(plan.constant_index(c) for c in lowered.constants),
                          offset)

    def at_step(step: Expr) -> list:
        return [Let("t", "int64", Bin("-", Lit(length - 1), step) if a["reverse"] else step),
                Let("half", "int64", Bin("%", step, Lit(2)))]

    if any(h is not None for h in history):
        stmts.append(Loop("s", Lit(length - 1), at_step(s) + [run(False)]))
        stmts.append(Block(at_step(Lit(length - 1)) + [run(True)]))
    else:
        stmts.append(Loop("s", Lit(length), at_step(s) + [run(True)]))
    for i, (buf, count) in enumerate(carries):
        if i in kept:
            stmts.append(Copy(plan.buffer(kept[i]), buf, count, src_offset=mul(Lit(length % 2), count)))
    return stmts
