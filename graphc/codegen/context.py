"""What every kernel emitter needs: pointers, C types and sizes of values."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir.graph import Tensor
from .cprinter import CTYPES, Flavour
from .fusion import source_of
from .memplan import Plan


def dim(d) -> str:
    """A dimension as C text: the batch size is ``N``."""
    return "N" if d is None else str(int(d))


def prod(dims) -> str:
    """Product of dimensions as C text (constants folded)."""
    const, syms = 1, []
    for d in dims:
        if d is None or d == "N":
            syms.append("N")
        elif isinstance(d, str) and not d.isdigit():
            syms.append(f"({d})")
        else:
            const *= int(d)
    if const == 0:
        return "0"
    parts = ([str(const)] if const != 1 or not syms else []) + syms
    return "*".join(f"(int64_t){p}" if p == "N" else p for p in parts) or "1"


def strides(shape) -> list[str]:
    """Row-major element strides of a shape, as C text."""
    return [prod(shape[k + 1:]) for k in range(len(shape))]


@dataclass
class Context:
    """Resolves values to C pointer expressions inside a kernel function.

    Kernel functions all take ``(N, step, arena, feeds, vars, consts, err)``;
    a value lives in one of the last four.
    """

    plan: Plan
    flavour: Flavour
    feeds: list[Tensor] = field(default_factory=list)
    variables: list[Tensor] = field(default_factory=list)
    constants: list[Tensor] = field(default_factory=list)
    #: C expressions of scratch bytes template calls need (the arena's tail)
    workspaces: list[str] = field(default_factory=list)

    def _index(self, table: list[Tensor], node: Tensor) -> int:
        for k, t in enumerate(table):
            if t is node:
                return k
        table.append(node)
        return len(table) - 1

    def ptr(self, node: Tensor, const: bool = True) -> str:
        """A typed pointer to ``node``'s data."""
        src = source_of(node)
        ctype = CTYPES[src.dtype]
        q = "const " if const else ""
        kind = src.op.name
        if kind == "placeholder":
            return f"(({q}{ctype} *)feeds[{self._index(self.feeds, src)}])"
        if kind == "variable":
            return f"(({q}{ctype} *)vars[{self._index(self.variables, src)}])"
        if kind == "constant":
            return f"(({q}{ctype} *)consts[{self._index(self.constants, src)}])"
        var = self.plan.variable_for(src)
        if var is not None:  # an optimizer update written straight into its variable
            return self.ptr(var, const)
        j = self.plan.output_index(src)
        if j is not None:  # written straight into the caller's output array
            return f"(({q}{ctype} *)((void *const *)arena)[{j}])"
        return f"(({q}{ctype} *)(arena + {self.plan.offset(src)}))"

    @staticmethod
    def ctype(node: Tensor) -> str:
        return CTYPES[node.dtype]

    @staticmethod
    def size(node: Tensor) -> str:
        return prod(node.shape)

    @staticmethod
    def nbytes(node: Tensor) -> str:
        return f"(size_t)({prod(node.shape)})*{np.dtype(node.dtype).itemsize}"
