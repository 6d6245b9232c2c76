"""The code printer of elementwise math: sympy expressions as C-style text for a target.

Targets differ only in their table (:class:`~graphc.render.cstyle.CStyle`): the
names of graphc's scalar functions (sigmoid, softplus, exp, dropout) per dtype.
float32 code uses ``F`` literals and the ``f`` math functions (``logf`` ...), so
nothing is silently promoted to double; integer arithmetic prints no float literals.

Example::

    MathPrinter(C, "float32").text(sympy.exp(a) * 0.5, index="i0")
    # '0.5F*gc_expf(a)'
"""

from __future__ import annotations

import sympy
from sympy.codegen.ast import float32, float64, real
from sympy.printing.c import C99CodePrinter

from ..ir.dtypes import FLOATS
from ..ir.errors import GraphcError


def float_literal(value: float, dtype: str) -> str:
    """C text of a finite float constant as sympy would print it (9 significant digits
    and an ``F`` suffix for float32, 17 for float64), without its slow per-literal
    precision computation."""
    f32 = dtype == "float32"
    text = ("%.9g" if f32 else "%.17g") % value
    if not any(c in text for c in ".ein"):
        text += ".0"
    return text + ("F" if f32 else "")


class MathPrinter(C99CodePrinter):
    """C99 printing with graphc's functions, single-line ternaries and cheap powers.

    ``names`` maps graphc's scalar functions to the target's names for this dtype:
    ``{"exp": "gc_expf", "sigmoid": "gc_sigmoidf", ...}``.
    """

    def __init__(self, names: dict[str, str], dtype: str) -> None:
        self.float_dtype = dtype if dtype in FLOATS else "float64"
        alias = float32 if self.float_dtype == "float32" else float64
        super().__init__({"type_aliases": {real: alias}, "strict": True})
        self.names = names
        self.integer = dtype not in FLOATS
        self.index = "0"  # C text of the flat element index (dropout hashes it)

    def text(self, expr: sympy.Expr, index: str = "0") -> str:
        """C text of ``expr``; ``index`` is the flat element index."""
        self.index = index
        with sympy.evaluate(False):  # the formula is printed as composed, never re-folded
            out = self.doprint(expr)
        if self.integer:  # integer arithmetic: no float literals
            out = out.replace(".0F", "").replace(".0", "")
        return out

    def _call(self, fn: str, expr, name: str | None = None) -> str:
        return f"{name or self.names[fn]}({', '.join(self._print(a) for a in expr.args)})"

    def _print_sigmoid(self, expr):
        return self._call("sigmoid", expr)

    def _print_softplus(self, expr):
        return self._call("softplus", expr)

    def _print_exp(self, expr):
        return self._call("exp", expr)

    def _print_tanh(self, expr):  # a target may have its own (C: gc_tanhf vectorizes)
        return self._call("tanh", expr) if "tanh" in self.names else self._print_Function(expr)

    def _named(self, fn: str, expr) -> str:
        """A scalar.h helper the target's table may not list: gc_<fn>f / gc_<fn>."""
        name = self.names.get(fn) or f"gc_{fn}{'f' if self.float_dtype == 'float32' else ''}"
        return self._call(fn, expr, name)

    def _print_maximum(self, expr):
        return self._named("max", expr)

    def _print_minimum(self, expr):
        return self._named("min", expr)

    def _print_power(self, expr):
        return self._print(sympy.Pow(*expr.args, evaluate=False))

    def _print_dropout(self, expr):
        x, training, seed, rate = expr.args
        return (f"{self.names['dropout']}({self._print(x)}, {self._print(training)}, {int(seed)}u, "
                f"step, (uint32_t)({self.index}), {float(rate)!r})")

    def _print_Float(self, expr):
        return float_literal(float(expr), self.float_dtype)

    def _print_Infinity(self, expr):
        return "INFINITY"

    def _print_NegativeInfinity(self, expr):
        return "(-INFINITY)"

    def _print_NaN(self, expr):
        return "NAN"

    def _print_ComplexInfinity(self, expr):  # sympy's 1/0 has no sign, so no IEEE value
        raise GraphcError(f"elementwise formula {expr} has no IEEE value (sympy folded a "
                          "division by zero): write the division with a tensor operand")

    def _print_sign(self, expr):
        a = self._print(expr.args[0])
        if self.integer:
            return f"(({a}) > 0 ? 1 : (({a}) < 0 ? -1 : 0))"
        return f"(({a}) > 0 ? 1 : (({a}) < 0 ? -1 : (({a}) == 0 ? 0 : ({a}))))"  # sign(NaN) = NaN

    def _print_Piecewise(self, expr):
        out = self._print(expr.args[-1].expr)
        if expr.args[-1].cond != sympy.true:
            raise ValueError("Piecewise without a default branch")
        for branch in reversed(expr.args[:-1]):
            out = f"(({self._print(branch.cond)}) ? ({self._print(branch.expr)}) : ({out}))"
        return out

    def _print_Pow(self, expr):
        base, e = expr.base, expr.exp
        if e.is_Integer and 1 <= abs(int(e)) <= 4:
            b = self.parenthesize(base, sympy.printing.precedence.PRECEDENCE["Mul"])
            product = "*".join([b] * abs(int(e)))
            return f"({product})" if e > 0 else f"(1/({product}))"
        return super()._print_Pow(expr)

    # sympy prints true/false, which C only has with <stdbool.h>; sympy.cse can leave
    # them in conditions (e.g. ITE(t0, t0, True) from the gradient of maximum)
    def _print_BooleanTrue(self, expr):
        return "1"

    def _print_BooleanFalse(self, expr):
        return "0"

    def _print_Relational(self, expr):
        return f"({self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)})"
