"""What lowered statements refer to: the scalars and buffers a function must name.

A renderer declares, at the top of each function it writes, the context scalars
(``N``, ``step``) and the arrays the body uses; :func:`references` finds them in
the order the code first uses them, so the declarations read in that order.

Example::

    names, bufs = references(kernel.body)
    "N" in names, [b.name for b, written in bufs.values()]
"""

from __future__ import annotations

import functools

import sympy

from ..ops.scalar import dropout
from . import ir


def _statement_exprs(s) -> list:
    """The expressions directly inside statement ``s`` (not those of nested statements)."""
    if isinstance(s, (ir.Let, ir.Set)):
        return [s.value]
    if isinstance(s, ir.Store):
        return [s.index, s.value]
    if isinstance(s, ir.Loop):
        return [s.extent] + ([s.threads] if s.threads is not None else [])
    if isinstance(s, ir.If):
        return [s.cond]
    if isinstance(s, ir.Zero):
        return [s.count]
    if isinstance(s, ir.Copy):
        return [s.count, s.dst_offset, s.src_offset]
    if isinstance(s, ir.Scratch):
        return [s.count, s.offset]
    if isinstance(s, ir.Fail):
        return [p for p in s.parts if not isinstance(p, str)]
    if isinstance(s, ir.Print):
        return [p for p in s.parts if not isinstance(p, str)] + [s.data, s.count]
    if isinstance(s, ir.TemplateCall):
        return list(s.args) + [v for _, v in s.shape]
    if isinstance(s, ir.Subprogram):
        return [*s.feeds, *s.outs, s.offset, ir.N, ir.Sym("step")]
    return []


def references(stmts: list, exprs: list = ()) -> tuple[set[str], dict[str, tuple[ir.Buffer, bool]]]:
    """What ``stmts`` (and the loose expressions ``exprs``) refer to: the scalar names
    (loop variables, locals, ``N``, ``step``) and the buffers, name -> (buffer, written),
    in the order the code first uses them. Scratch buffers are left out; the arena
    offsets of the buffers count as used (they may use N)."""
    names: set[str] = set()
    bufs: dict[str, tuple[ir.Buffer, bool]] = {}

    def note(buf: ir.Buffer, written: bool) -> None:
        if buf.place.kind != "scratch":
            bufs[buf.name] = (buf, written or bufs.get(buf.name, (buf, False))[1])

    def visit(todo: list) -> None:  # a stack, so that buffers keep their first-use order
        todo.reverse()
        while todo:
            x = todo.pop()
            if isinstance(x, ir.Sym):
                names.add(x.name)
            elif isinstance(x, ir.Math):
                names.update(_math_names(x.expr))
            elif isinstance(x, (ir.Load, ir.Ptr)):
                note(x.buf, isinstance(x, ir.Ptr) and x.written)
            todo += reversed(ir.children(x))

    for s in ir.walk(stmts):
        visit(_statement_exprs(s))
        if isinstance(s, (ir.Store, ir.Zero)):
            note(s.buf, True)
        elif isinstance(s, ir.Copy):
            note(s.dst, True)
            note(s.src, False)
    visit(list(exprs))
    visit([b.place.offset for b, _ in bufs.values() if b.place.offset is not None])
    return names, bufs


@functools.lru_cache(maxsize=4096)
def _math_names(expr: sympy.Expr) -> frozenset[str]:
    """The locals a formula reads, and ``step`` when it draws random numbers."""
    names = {str(sym) for sym in expr.free_symbols}
    return frozenset(names | {"step"} if expr.has(dropout) else names)
