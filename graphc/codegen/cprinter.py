"""One code printer for scalar sympy expressions, with a C and a CUDA flavour.

The flavours differ only in a small table; float32 code uses ``F`` literals
and the ``f`` math functions (``expf``, ``logf`` ...), so nothing is silently
promoted to double.

Example::

    print_expr(sympy.exp(A[0]) * 0.5, {A[0]: "x"}, "float32")
    # '0.5F*expf(x)'
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy
from sympy.codegen.ast import float32, float64, real
from sympy.printing.c import C99CodePrinter

from ..ir.rng import INDEX_MUL, SEED_MUL, STEP_MUL
from ..ops import scalar as S


@dataclass(frozen=True)
class Flavour:
    """What differs between targets."""

    name: str
    inline: str  # qualifier of helper functions
    restrict: str


C = Flavour("c", "static inline", "restrict")
CUDA = Flavour("cuda", "__device__ __forceinline__", "__restrict__")

CTYPES = {"float32": "float", "float64": "double", "int32": "int32_t", "int64": "int64_t",
          "bool": "uint8_t"}


class _Printer(C99CodePrinter):
    """C99 printer with graphc's functions, single-line ternaries and cheap powers."""

    def __init__(self, dtype: str) -> None:
        alias = float32 if dtype == "float32" else float64
        super().__init__({"type_aliases": {real: alias}, "strict": True})
        self.sfx = "f" if dtype == "float32" else ""
        self.flat = "0"  # C name of the flat element index (dropout hashes it)

    def _print_sigmoid(self, expr):
        return f"gc_sigmoid{self.sfx}({self._print(expr.args[0])})"

    def _print_exp(self, expr):
        # float32: graphc's own expf, which the loop vectorizer can inline (libm's cannot be)
        if self.sfx:
            return f"gc_expf({self._print(expr.args[0])})"
        return f"exp({self._print(expr.args[0])})"

    def _print_softplus(self, expr):
        return f"gc_softplus{self.sfx}({self._print(expr.args[0])})"

    def _print_Float(self, expr):
        # what sympy prints (9 or 17 significant digits), without its slow per-literal
        # precision computation (~20 ms the first time, ~0.1 ms after)
        text = ("%.9g" if self.sfx else "%.17g") % float(expr)
        if not any(c in text for c in ".ein"):
            text += ".0"
        return text + ("F" if self.sfx else "")

    def _print_sign(self, expr):
        a = self._print(expr.args[0])
        return f"(({a}) > 0 ? 1 : (({a}) < 0 ? -1 : 0))"

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
            prod = "*".join([b] * abs(int(e)))
            return f"({prod})" if e > 0 else f"(1/({prod}))"
        return super()._print_Pow(expr)

    def _print_dropout(self, expr):
        x, training, seed, rate = expr.args
        return (f"gc_dropout{self.sfx}({self._print(x)}, {self._print(training)}, {int(seed)}u, step, "
                f"(uint32_t)({self.flat}), {float(rate)!r})")

    # sympy prints true/false, which C only has with <stdbool.h>; sympy.cse can leave
    # them in conditions (e.g. ITE(t0, t0, True) from the gradient of maximum)
    def _print_BooleanTrue(self, expr):
        return "1"

    def _print_BooleanFalse(self, expr):
        return "0"

    def _print_Relational(self, expr):
        return f"({self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)})"


_PRINTERS: dict[str, _Printer] = {}


def print_expr(expr: sympy.Expr, names: dict[sympy.Symbol, str], dtype: str,
               flat: str = "0") -> str:
    """C text of ``expr`` in ``dtype`` arithmetic, symbols renamed by ``names``.

    ``flat`` names the C variable holding the flat element index (for dropout).
    """
    if dtype not in _PRINTERS:
        _PRINTERS[dtype] = _Printer(dtype if dtype in ("float32", "float64") else "float64")
    _PRINTERS[dtype].flat = flat
    text = _PRINTERS[dtype].doprint(expr.xreplace({s: sympy.Symbol(n, real=True)
                                                   for s, n in names.items()}))
    if dtype not in ("float32", "float64"):  # integer arithmetic: no float literals
        text = text.replace(".0F", "").replace(".0", "")
    return text


def helpers(flavour: Flavour) -> str:
    """Inline helper functions the printed expressions call."""
    q = flavour.inline
    return f"""
/* 2**k as a float, for -126 <= k <= 127 */
{q} float gc_pow2if(int32_t k) {{
    union {{ uint32_t u; float f; }} b = {{(uint32_t)(k + 127) << 23}}; return b.f;
}}
/* expf without libm: within about 1 ulp (subnormal results included), exact 0/inf/NaN at
 * the ends; branch-free, so loops calling it vectorize (-fno-trapping-math lets GCC
 * if-convert the selects). exp(x) = 2**k * exp(r), k = round(x / ln 2), |r| <= ln(2)/2,
 * r by a two-constant Cody-Waite reduction, exp(r) by a degree-7 minimax polynomial. */
{q} float gc_expf(float x) {{
    float k = (x * 1.44269504088896341F + 12582912.0F) - 12582912.0F;
    k = k > 129.0F ? 129.0F : (k < -151.0F ? -151.0F : k);
    float r = x - k * 0.693359375F;
    r = r + k * 2.12194440e-4F;
    float p = 1.9875691500e-4F;
    p = p * r + 1.3981999507e-3F;
    p = p * r + 8.3334519073e-3F;
    p = p * r + 4.1665795894e-2F;
    p = p * r + 1.6666665459e-1F;
    p = p * r + 5.0000001201e-1F;
    p = p * r * r + r + 1.0F;
    int32_t ki = (int32_t)k, half = ki / 2;   /* two factors keep 2**k normal down to 2**-151 */
    float y = p * gc_pow2if(half) * gc_pow2if(ki - half);
    y = x > 88.7228394F ? INFINITY : y;
    y = x < -104.0F ? 0.0F : y;
    return x != x ? x : y;
}}
{q} float gc_sigmoidf(float x) {{
    float e = gc_expf(-fabsf(x)); return x >= 0 ? 1.0F / (1.0F + e) : e / (1.0F + e);
}}
{q} double gc_sigmoid(double x) {{
    double e = exp(-fabs(x)); return x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}}
{q} float gc_softplusf(float x) {{ return fmaxf(x, 0.0F) + log1pf(gc_expf(-fabsf(x))); }}
{q} double gc_softplus(double x) {{ return fmax(x, 0.0) + log1p(exp(-fabs(x))); }}
{q} uint32_t gc_fmix32(uint32_t h) {{
    h ^= h >> 16; h *= 0x85EBCA6Bu; h ^= h >> 13; h *= 0xC2B2AE35u; return h ^ (h >> 16);
}}
/* Counter-based RNG, bit-identical to graphc.rng.uniform: hash(seed, step, index). */
{q} float gc_uniform(uint32_t seed, uint64_t step, uint32_t index) {{
    uint32_t key = (uint32_t)((uint64_t)seed * {SEED_MUL}u + step * {STEP_MUL}u);
    uint32_t h = gc_fmix32((index * {INDEX_MUL}u) ^ key);
    return (float)(gc_fmix32(h ^ key) >> 8) * (1.0F / 16777216.0F);
}}
{q} float gc_dropoutf(float x, int training, uint32_t seed, uint64_t step, uint32_t i,
                     double rate) {{
    if (!training) return x;
    return gc_uniform(seed, step, i) >= (float)rate ? x * (float)(1.0 / (1.0 - rate)) : 0.0F;
}}
{q} double gc_dropout(double x, int training, uint32_t seed, uint64_t step, uint32_t i,
                      double rate) {{
    if (!training) return x;
    return gc_uniform(seed, step, i) >= (float)rate ? x * (1.0 / (1.0 - rate)) : 0.0;
}}
"""


def symbols(n: int) -> tuple[sympy.Symbol, ...]:
    """The input symbols of elementwise expressions (re-exported for codegen)."""
    return S.A[:n]
