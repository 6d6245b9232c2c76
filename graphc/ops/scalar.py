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
"""

from __future__ import annotations

import functools

import numpy as np
import sympy

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


_NUMPY_FUNCS = {
    "sigmoid": _np_sigmoid,
    "softplus": _np_softplus,
    "DiracDelta": lambda x, *k: np.zeros_like(x),
    "sign": np.sign,
}


@functools.lru_cache(maxsize=4096)
def numpy_function(expr: sympy.Expr, nin: int):
    """A NumPy function of ``nin`` arrays evaluating ``expr`` (cached)."""
    return sympy.lambdify(A[:nin], expr, modules=[_NUMPY_FUNCS, "numpy"])


def evaluate(expr: sympy.Expr, values: list[np.ndarray], dtype: str) -> np.ndarray:
    """Evaluate an elementwise expression with NumPy broadcasting, in ``dtype``."""
    out = numpy_function(expr, len(values))(*values)
    shape = np.broadcast_shapes(*(np.shape(v) for v in values)) if values else ()
    out = np.asarray(out)
    if out.shape != shape:
        out = np.broadcast_to(out, shape)
    return np.array(out, dtype=dtype, copy=True) if out.dtype != dtype else out


_EXPENSIVE = (sympy.exp, sympy.log, sympy.tanh, sigmoid, softplus, sympy.sqrt)


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
