"""Scalar math for elementwise ops, as sympy expressions.

An elementwise node carries a sympy expression over the symbols ``a0, a1, ...``
(its inputs). Derivatives come from ``sympy.diff``; the NumPy reference
evaluates the expression through ``sympy.lambdify``; the compiled backends print
the same expression. Two numerically delicate functions are sympy functions
of their own, so they are evaluated stably and differentiate to each other:
``sigmoid' = sigmoid (1 - sigmoid)`` and ``softplus' = sigmoid``.

Conventions at kinks: relu'(0) = 0, |x|'(0) = sign(0) = 0, the gradient of
``maximum``/``minimum`` at a tie goes to the first operand, and Dirac deltas
(second derivatives of kinks) are 0.

NaN propagates as in PyTorch: ``maximum``/``minimum`` (functions of their own: sympy
would simplify a NaN test away, its symbols being real) give NaN when either operand is
NaN, and both operands then receive the gradient; ``power(x, y)`` differentiates as
PyTorch's ``pow``: d/dx is 0 where y == 0 (also at x == 0) and d/dy is 0 where x == 0
and y >= 0.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import sympy
from sympy.codegen.cfunctions import expm1, log1p
from sympy.core.relational import Relational
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.logic.boolalg import Boolean, BooleanAtom

#: Input symbols of elementwise expressions (real-valued).
A = sympy.symbols("a0:16", real=True)
#: Symbols the gradient builder uses for the output gradient and the output.
G, Y = sympy.symbols("g y", real=True)


class sigmoid(sympy.Function):  # noqa: N801 - sympy function naming
    """Logistic function 1 / (1 + exp(-x)), evaluated without overflow."""

    is_real = True

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)


class softplus(sympy.Function):  # noqa: N801
    """log(1 + exp(x)), evaluated without overflow."""

    is_real = True

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])


class _Extremum(sympy.Function):
    """maximum/minimum: the gradient goes to the operand that wins (at a tie, the first;
    at a NaN, both). ``_losing(a, b)`` is (a loses, b loses) as sympy conditions."""

    nargs = 2
    is_real = True

    @staticmethod
    def _losing(a, b):
        raise NotImplementedError

    def fdiff(self, argindex=1):
        return sympy.Piecewise((0, self._losing(*self.args)[argindex - 1]), (1, True))


class maximum(_Extremum):  # noqa: N801
    """The larger of two values; NaN if either is NaN (at a tie of 0 and -0: the second)."""

    @staticmethod
    def _losing(a, b):
        return a < b, a >= b


class minimum(_Extremum):  # noqa: N801
    """The smaller of two values; NaN if either is NaN (at a tie of 0 and -0: the second)."""

    @staticmethod
    def _losing(a, b):
        return a > b, a <= b


class power(sympy.Function):  # noqa: N801
    """x ** y for a tensor exponent, with PyTorch's gradient at the edges (see above)."""

    nargs = 2
    is_real = True

    def fdiff(self, argindex=1):
        x, y = self.args
        if argindex == 1:
            return sympy.Piecewise((0, sympy.Eq(y, 0)), (y * power(x, y - 1), True))
        return sympy.Piecewise((0, sympy.And(sympy.Eq(x, 0), y >= 0)), (power(x, y) * sympy.log(x), True))


class dropout(sympy.Function):  # noqa: N801
    """dropout(x, training, seed, rate) of the element at the kernel's current flat
    index and step: the same counter-based hash as the reference (graphc.ir.rng).
    Only code printers know it (the reference evaluates the Dropout op itself)."""

    nargs = 4


def _np_sigmoid(x):
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _np_softplus(x):
    x = np.asarray(x)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _np_erf(x):
    """erf elementwise (NumPy has none; math.erf is accurate to about 1 ulp)."""
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.float64
    return np.asarray(np.frompyfunc(math.erf, 1, 1)(x), dtype=dtype)


def _np_maximum(a, b):
    a, b = np.broadcast_arrays(a, b)
    return np.where((a > b) | (a != a), a, b)


def _np_minimum(a, b):
    a, b = np.broadcast_arrays(a, b)
    return np.where((a < b) | (a != a), a, b)


_NUMPY_FUNCS = {
    "sigmoid": _np_sigmoid,
    "softplus": _np_softplus,
    "maximum": _np_maximum,
    "minimum": _np_minimum,
    "power": np.power,
    "DiracDelta": lambda x, *k: np.zeros_like(x),
    "sign": np.sign,
    "erf": _np_erf,  # (lambdify's default, math.erf, takes no arrays)
}


@functools.lru_cache(maxsize=4096)
def numpy_function(expr: sympy.Expr, nin: int):
    """A NumPy function of ``nin`` arrays evaluating ``expr`` (cached)."""
    return sympy.lambdify(A[:nin], expr, modules=[_NUMPY_FUNCS, "numpy"])


def evaluate(expr: sympy.Expr, values: list[np.ndarray], dtype: str) -> np.ndarray:
    """Evaluate an elementwise expression with NumPy broadcasting, in ``dtype``."""
    shape = np.broadcast_shapes(*(np.shape(v) for v in values)) if values else ()
    # (broadcast views: lambdify's And/Or stack their operands, which must agree in shape)
    out = numpy_function(expr, len(values))(*(np.broadcast_to(v, shape) for v in values))
    out = np.asarray(out)
    if out.shape != shape:
        out = np.broadcast_to(out, shape)
    return np.array(out, dtype=dtype, copy=True) if out.dtype != dtype else out


#: the functions a user's formula may call: both the NumPy reference and the C printer
#: know them (an undefined ``sympy.Function("system")`` is neither)
FUNCTIONS = (sympy.exp, sympy.log, sympy.tanh, sympy.sinh, sympy.cosh, sympy.sin, sympy.cos,
             sympy.tan, sympy.atan, sympy.asin, sympy.acos, sympy.Abs, sympy.sign,
             sympy.floor, sympy.ceiling, sympy.erf, expm1, log1p, sigmoid, softplus, maximum, minimum, power)
#: what else a formula may be made of
_STRUCTURE = (sympy.Add, sympy.Mul, sympy.Pow, sympy.Number, sympy.NumberSymbol, sympy.Piecewise,
              ExprCondPair, Relational, sympy.And, sympy.Or, sympy.Not, BooleanAtom)


def formula_problem(expr, n: int) -> str | None:
    """Why ``expr`` cannot be the formula of an elementwise op of ``n`` inputs, or None.

    It must be a sympy expression (never a string: nothing is parsed or evaluated) whose
    symbols are among graphc's ``a0 .. a{n-1}`` and whose functions are in
    :data:`FUNCTIONS`.
    """
    if not isinstance(expr, (sympy.Expr, Boolean)):
        return (f"the formula must be a sympy expression over graphc's a0, a1 ... "
                f"(graphc.ops.elemwise.a0), got {type(expr).__name__}")
    for e in sympy.preorder_traversal(expr):
        if isinstance(e, sympy.Symbol):
            if e not in A[:n]:
                hint = (f"{e} is not graphc's {e} (a real symbol: use graphc.ops.scalar.A)"
                        if e.name in {a.name for a in A[:n]} else
                        f"its {n} input(s) are {', '.join(a.name for a in A[:n])}")
                return f"the formula uses the symbol {e}: {hint}"
        elif e is sympy.zoo or e is sympy.I:
            return f"the formula has the value {e}, which is not a real number (1/0? use a tensor)"
        elif isinstance(e, sympy.Piecewise) and e.args[-1].cond != sympy.true:
            return "a Piecewise needs a last branch (value, True): what else is the value?"
        elif not isinstance(e, _STRUCTURE + FUNCTIONS):
            name = getattr(e.func, "__name__", type(e).__name__)
            return (f"the formula uses {name}, which graphc cannot evaluate (functions: "
                    f"{', '.join(f.__name__ for f in FUNCTIONS)})")
    return None


_EXPENSIVE = (sympy.exp, sympy.log, sympy.tanh, sigmoid, softplus, sympy.sqrt)


def transcendental(expr: sympy.Expr) -> bool:
    """The formula calls exp, log, tanh, sigmoid, erf, sin ... (more than arithmetic)."""
    return bool(expr.has(sympy.exp, sympy.log, sympy.tanh, sympy.erf, sympy.sin, sympy.cos,
                         sigmoid, softplus, expm1, log1p))


def cost(expr: sympy.Expr) -> int:
    """A rough evaluation cost: transcendental calls dominate."""
    calls = sum(1 for e in sympy.preorder_traversal(expr)
                if isinstance(e, sympy.Function) or (e.is_Pow and not e.exp.is_Integer))
    return 10 * calls + sympy.count_ops(expr)


def derivative(expr: sympy.Expr, i: int) -> sympy.Expr:
    """d expr / d a_i, rewritten in terms of the output ``Y`` where cheaper.

    For example sigmoid gives ``y*(1 - y)``, tanh ``1 - y**2`` and exp ``y``.
    """
    d = sympy.diff(expr, A[i])
    # powsimp: x**a * a / x -> a * x**(a - 1), finite at x = 0
    d = sympy.powsimp(d.replace(sympy.DiracDelta, lambda *a: sympy.S.Zero))
    # pi in erf' = 2 exp(-x**2) / sqrt(pi): a literal of the dtype (C's M_PI is a double)
    d = d.xreplace({c: sympy.Float(c.evalf(20), 17) for c in d.atoms(sympy.NumberSymbol)})
    if d.is_Number:
        return d
    in_y = d.subs(expr, Y)
    if in_y.has(Y) and cost(in_y) < cost(d) and _divides_by(in_y) <= _divides_by(d):
        return in_y
    return d


def _divides_by(expr: sympy.Expr) -> set:
    """Input symbols that occur in a denominator (a rewrite must not add any:
    ``a0**a1 -> a1*y/a0`` would turn the gradient of x**2 at 0 into NaN)."""
    out = set()
    for e in sympy.preorder_traversal(expr):
        if e.is_Pow and e.exp.is_negative:
            out |= e.base.free_symbols & set(A)
    return out
