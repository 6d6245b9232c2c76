"""The sizes of a compiled step at one batch size, in Python integers (they never wrap).

Generated code does its index and size arithmetic in 64-bit integers; this module is what
makes that safe: before a step runs at batch size N, :func:`step_bytes` computes the bytes
of every value the step defines, of the planned arena and of every scratch array, and
refuses (a :class:`~graphc.ir.errors.GraphcError` naming the value, its shape and N) any
that a signed 64-bit size cannot hold. A value that fits has an element count, and so
every index into it, that fits too.

Example::

    step_bytes(lowered, batch=64)   # arena + scratch bytes, or GraphcError
    evaluate(lowered.arena_bytes, 64)
"""

from __future__ import annotations

import numpy as np

from ..ir.errors import GraphcError, at
from ..ir.graph import Tensor
from . import ir
from .memplan import byte_size

#: the largest size (bytes, elements, offsets) generated code can hold: int64_t / ptrdiff_t
SIZE_MAX = 2**63 - 1

_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
        "/": lambda a, b: a // b, "%": lambda a, b: a % b}


def evaluate(e: ir.Expr, batch: int) -> int:
    """The value of a size expression (literals, ``N``, ``+ - * / %`` on non-negative
    integers) at batch size ``batch``, exactly."""
    if isinstance(e, ir.Lit):
        return int(e.value)
    if isinstance(e, ir.Sym) and e.name == "N":
        return batch
    if isinstance(e, ir.Bin) and e.op in _OPS:
        return _OPS[e.op](evaluate(e.a, batch), evaluate(e.b, batch))
    raise TypeError(f"not a size expression: {e!r}")


def value_bytes(node: Tensor, batch: int) -> int:
    """Bytes of ``node``'s value at batch size ``batch`` (every ``None`` dimension is N)."""
    power, unit = byte_size(node)
    return unit * batch**power


def _shape(node: Tensor, batch: int) -> tuple:
    return tuple(batch if d is None else d for d in node.shape)


def step_bytes(program: ir.LoweredProgram, batch: int) -> int:
    """Bytes of the planned arena plus the largest scratch array at batch size ``batch``.

    Raises:
        GraphcError: when a value of the step, the arena or a scratch array would need
            more than :data:`SIZE_MAX` bytes at this batch size.
    """
    nodes = {n.id: n for k in program.kernels for n in k.nodes}
    for t in (*program.feeds, *program.outputs):
        nodes.setdefault(t.id, t)
    for node in nodes.values():
        if node.dtype is not None and value_bytes(node, batch) > SIZE_MAX:
            raise GraphcError(
                f"{node.op.label(node.attrs)} ({node.name}): at batch size {batch} its value of "
                f"shape {_shape(node, batch)} would need {value_bytes(node, batch)} bytes, more "
                f"than a 64-bit size holds{at(node.site)}")
    scratch = 0
    for stmts in [k.body for k in program.kernels] + [program.finish]:
        for s in ir.walk(stmts):
            if isinstance(s, ir.Scratch):
                n = evaluate(ir.add(s.offset, s.count), batch) * np.dtype(s.dtype).itemsize
                scratch = max(scratch, n)
            elif isinstance(s, ir.Subprogram):  # a scan body's arena, after the kernel's arrays
                scratch = max(scratch, evaluate(s.offset, batch) + step_bytes(s.program, batch))
    arena = evaluate(program.arena_bytes, batch)
    if arena + scratch + 64 > SIZE_MAX:
        big = max(nodes.values(), key=lambda n: value_bytes(n, batch) if n.dtype else -1)
        raise GraphcError(
            f"at batch size {batch} the step's scratch memory would need {arena + scratch} bytes, "
            f"more than a 64-bit size holds (its largest value: {big.op.label(big.attrs)} "
            f"({big.name}) of shape {_shape(big, batch)}){at(big.site)}")
    return arena + scratch
