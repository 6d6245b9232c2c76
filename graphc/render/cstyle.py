"""One renderer for C-style targets: lowered statements and expressions as source text.

A target is a subclass of :class:`CStyle` that fills in its table: C types, the
names of math functions per dtype, how a loop is spread over threads or SIMD
lanes, how a kernel fails, how it calls a hand-written template. The render
loop below is shared; a target overrides only what its table cannot say.

Example::

    class MyTarget(CStyle):
        name = "c"
        ...
    print("\\n".join(MyTarget().block(kernel.body)))
"""

from __future__ import annotations

import math
from typing import ClassVar

from ..ir.dtypes import FLOATS
from ..lower import ir
from .printer import MathPrinter, float_literal

#: C operator precedence (smaller binds tighter)
_PRECEDENCE = {"*": 3, "/": 3, "%": 3, "+": 4, "-": 4, "<": 6, "<=": 6, ">": 6, ">=": 6,
               "==": 7, "!=": 7, "&&": 11, "||": 12}


class CStyle:
    """The table of a C-style target, and the render loop that reads it."""

    name: ClassVar[str] = "cstyle"
    #: graphc dtype -> the target's element type
    types: ClassVar[dict[str, str]] = {"float32": "float", "float64": "double", "int32": "int32_t",
                                       "int64": "int64_t", "bool": "uint8_t"}
    #: qualifier of the small functions generated code calls (epilogue element functions)
    inline: ClassVar[str] = "static inline"
    #: neutral function name -> (float32 name, float64 name); math the printer does not
    #: know by itself, and helpers of the statement renderer
    functions: ClassVar[dict[str, tuple[str, str]]] = {}
    #: positive infinity
    infinity: ClassVar[str] = "INFINITY"
    #: a threaded loop below this much work runs on one thread
    parallel_min_work: ClassVar[int] = 1 << 15

    def __init__(self) -> None:
        self._printers: dict[str, MathPrinter] = {}

    # -- expressions -------------------------------------------------------------------------
    def ctype(self, dtype: str) -> str:
        return self.types[dtype]

    def function(self, fn: str, dtype: str) -> str:
        f32, f64 = self.functions[fn]
        return f32 if dtype == "float32" else f64

    def expr(self, e: ir.Expr) -> str:
        """Source text of an expression."""
        return self._expr(e)[0]

    def _expr(self, e: ir.Expr) -> tuple[str, int]:
        """(text, precedence of its outermost operator: 0 for atoms)."""
        if isinstance(e, ir.Sym):
            return e.name, 0
        if isinstance(e, ir.Lit):
            return self.literal(e), 0 if not (isinstance(e.value, (int, float)) and e.value < 0) else 2
        if isinstance(e, ir.Bin):
            p = _PRECEDENCE[e.op]
            a, pa = self._expr(e.a)
            b, pb = self._expr(e.b)
            a = f"({a})" if pa > p else a
            b = f"({b})" if pb > p or (pb == p and e.op in "-/%") else b
            return f"{a} {e.op} {b}", p
        if isinstance(e, (ir.Not, ir.Neg)):
            a, pa = self._expr(e.a)
            return ("!" if isinstance(e, ir.Not) else "-") + (f"({a})" if pa else a), 2
        if isinstance(e, ir.Call):
            return f"{self.function(e.fn, e.dtype)}({', '.join(self.expr(a) for a in e.args)})", 0
        if isinstance(e, ir.Select):
            return f"({self.expr(e.cond)}) ? ({self.expr(e.a)}) : ({self.expr(e.b)})", 13
        if isinstance(e, ir.Cast):
            a, pa = self._expr(e.a)
            return f"({self.ctype(e.dtype)})" + (f"({a})" if pa else a), 2
        if isinstance(e, ir.Load):
            return f"{e.buf.name}[{self.expr(e.index)}]", 0
        if isinstance(e, ir.Ptr):
            if e.offset == ir.ZERO:
                return e.buf.name, 0
            off, po = self._expr(e.offset)
            return f"{e.buf.name} + " + (f"({off})" if po > 4 else off), 4
        if isinstance(e, ir.Math):  # (its precedence is unknown: parenthesized when nested)
            return self.printer(e.dtype).text(e.expr, self.expr(e.index)), 13
        raise TypeError(f"cannot render {e!r}")

    def literal(self, e: ir.Lit) -> str:
        v = e.value
        if e.dtype in FLOATS:
            if math.isinf(v):
                return self.infinity if v > 0 else f"-{self.infinity}"
            return float_literal(v, e.dtype)
        if e.dtype == "bool":
            return "1" if v else "0"
        return str(int(v))

    def printer(self, dtype: str) -> MathPrinter:
        if dtype not in self._printers:
            names = {fn: self.function(fn, dtype if dtype in FLOATS else "float64")
                     for fn in ("exp", "tanh", "sigmoid", "softplus", "dropout") if fn in self.functions}
            self._printers[dtype] = MathPrinter(names, dtype)
        return self._printers[dtype]

    # -- statements ----------------------------------------------------------------------------
    def block(self, stmts: list, indent: str = "    ") -> list[str]:
        """Source lines of a statement list."""
        out: list[str] = []
        for s in stmts:
            out += [indent + line for line in self.stmt(s)]
        return out

    def stmt(self, s) -> list[str]:
        if isinstance(s, ir.Let):
            const = "" if s.mutable else "const "
            return [f"{const}{self.ctype(s.dtype)} {s.name} = {self.expr(s.value)};"]
        if isinstance(s, ir.Set):
            return [f"{s.name} = {self.expr(s.value)};"]
        if isinstance(s, ir.Store):
            return [f"{s.buf.name}[{self.expr(s.index)}] = {self.expr(s.value)};"]
        if isinstance(s, ir.Loop):
            head = f"for (int64_t {s.var} = 0; {s.var} < {self.expr(s.extent)}; {s.var}++) {{"
            return self.loop_pragmas(s) + [head] + self.block(s.body) + ["}"]
        if isinstance(s, ir.If):
            out = [f"if ({self.expr(s.cond)}) {{"] + self.block(s.then)
            if s.orelse:
                out += ["} else {"] + self.block(s.orelse)
            return out + ["}"]
        if isinstance(s, ir.Block):
            return ["{"] + self.block(s.body) + ["}"]
        if isinstance(s, ir.Continue):
            return ["continue;"]
        if isinstance(s, ir.Zero):
            return [f"memset({s.buf.name}, 0, sizeof({self.ctype(s.buf.dtype)}) * "
                    f"(size_t)({self.expr(s.count)}));"]
        if isinstance(s, ir.Copy):
            dst = self.expr(ir.Ptr(s.dst, s.dst_offset))
            src = self.expr(ir.Ptr(s.src, s.src_offset))
            return [f"memmove({dst}, {src}, sizeof({self.ctype(s.dst.dtype)}) * "
                    f"(size_t)({self.expr(s.count)}));"]
        if isinstance(s, ir.Scratch):
            return self.scratch(s)
        if isinstance(s, ir.Fail):
            return self.fail(s)
        if isinstance(s, ir.Print):
            return self.print_line(s)
        if isinstance(s, ir.TemplateCall):
            return self.template_call(s)
        if isinstance(s, ir.Subprogram):
            return self.subprogram(s)
        raise TypeError(f"cannot render {s!r}")

    # -- what each target says ------------------------------------------------------------------
    def loop_pragmas(self, loop: ir.Loop) -> list[str]:
        """Lines before a loop that spread it over threads / SIMD lanes."""
        raise NotImplementedError

    def threaded(self, loop: ir.Loop) -> tuple[bool, str | None]:
        """Whether ``loop`` runs on threads, and the run-time condition (None: always).

        Decided at generation time when the work is a known number."""
        if loop.threads is None:
            return False, None
        if isinstance(loop.threads, ir.Lit):
            return loop.threads.value >= self.parallel_min_work, None
        return True, f"{self.expr(loop.threads)} >= {self.parallel_min_work}"

    def scratch(self, s: ir.Scratch) -> list[str]:
        raise NotImplementedError

    def fail(self, s: ir.Fail) -> list[str]:
        raise NotImplementedError

    def print_line(self, s: ir.Print) -> list[str]:
        raise NotImplementedError

    def template_call(self, s: ir.TemplateCall) -> list[str]:
        raise NotImplementedError

    def subprogram(self, s: ir.Subprogram) -> list[str]:
        """Run a nested program (a scan body's step) with its tables."""
        raise NotImplementedError
