"""Elementwise ops: one generic op whose node carries a sympy expression.

``relu``, ``sigmoid``, ``+`` ... all create :data:`Elemwise` nodes; the
``fn`` attr names the function for people and for rewrite patterns, the
``expr`` attr (over inputs ``a0, a1, ...``) is the math. Gradients are new
Elemwise nodes whose expressions come from ``sympy.diff``.

Example::

    y = gc.leaky_relu(x, alpha=0.1)
    y.attrs["expr"]   # Piecewise((a0, a0 > 0), (0.1*a0, True))
"""

from __future__ import annotations

import numpy as np
import sympy
from sympy.codegen.cfunctions import expm1

from ..ir import dtypes as _dt
from ..ir import shapes as _sh
from ..ir.errors import ArgumentError, DTypeError, located, shape_error
from ..ir.graph import Kind, Op, Tensor, as_tensor, make
from . import scalar as S

a0, a1, a2 = S.A[:3]

#: kinds: "any" works on ints and floats, "float" needs floats, "cmp" gives bool,
#: "where" takes a condition first.
_KINDS = ("any", "float", "cmp", "where")


class Elemwise(Op):
    name = "elemwise"
    kind = Kind.ELEMENTWISE

    def infer(self, inputs, fn, expr, kind):
        if not isinstance(expr, sympy.Basic):  # (gc.elementwise checks it fully)
            raise ArgumentError(f"{fn}: the formula must be a sympy expression, got {type(expr).__name__}")
        shape = _sh.broadcast(i.shape for i in inputs)
        if shape is None:
            raise shape_error(fn, "operands cannot be broadcast together", *(i.shape for i in inputs))
        operands = inputs[1:] if kind == "where" else inputs
        dtype = _dt.join(fn, [i.dtype for i in operands])
        if kind == "float" and not _dt.is_float(dtype):
            raise DTypeError(f"{fn}: needs float32 or float64 operands, got "
                             f"{', '.join(i.dtype for i in inputs)}; use gc.cast")
        if kind == "cmp":
            dtype = "bool"
        elif dtype == "bool" and kind != "where":
            raise DTypeError(f"{fn}: needs numeric operands, got bool; use gc.cast")
        return shape, dtype

    def reference(self, ctx, node, *values):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            return S.evaluate(node.attrs["expr"], list(values), node.dtype)

    def scalar(self, node, args):
        return node.attrs["expr"].xreplace(dict(zip(S.A, args)))

    def log_of(self, node):
        if node.attrs["fn"] == "sigmoid":  # log(sigmoid(x)) = -softplus(-x)
            return negative(softplus(negative(node.inputs[0])))
        return None

    def grad(self, node, g):
        expr, kind = node.attrs["expr"], node.attrs["kind"]
        grads: list[Tensor | None] = []
        for i, x in enumerate(node.inputs):
            if kind == "cmp" or (kind == "where" and i == 0) or not _dt.is_float(x.dtype):
                grads.append(None)
                continue
            grads.append(_times_derivative(node, g, S.derivative(expr, i), f"{node.attrs['fn']}'{i}"))
        return grads

    def label(self, attrs):
        return attrs["fn"]


def _times_derivative(node: Tensor, g: Tensor, d: sympy.Expr, fn: str) -> Tensor | None:
    """The node ``g * d`` where ``d`` is over the inputs of ``node`` and its output Y."""
    if d == 0:
        return None
    if d == 1:
        return g
    if d == -1:
        return negative(g)
    used = [j for j, s in enumerate(S.A[:len(node.inputs)]) if d.has(s)]
    inputs = [g] + [node.inputs[j] for j in used] + ([node] if d.has(S.Y) else [])
    subs = {S.A[j]: S.A[k + 1] for k, j in enumerate(used)}
    if d.has(S.Y):
        subs[S.Y] = S.A[len(used) + 1]
    body = S.A[0] * d.xreplace(subs)
    return make(Elemwise, inputs, {"fn": fn, "expr": body, "kind": "float"})


def elementwise(fn: str, expr: sympy.Expr, inputs: list, kind: str = "float") -> Tensor:
    """Create an elementwise node computing ``expr`` over ``inputs``.

    This is how to add an elementwise op: write its scalar formula over the
    symbols ``a0, a1, ...`` and the gradient follows by ``sympy.diff``. ``fn`` is a
    plain name; ``expr`` a sympy expression (never a string: nothing is parsed or run)
    whose symbols are among ``a0 .. a{n-1}`` for ``n`` inputs and whose functions graphc
    knows (:data:`graphc.ops.scalar.FUNCTIONS`); anything else is an ArgumentError.

    Example::

        from graphc.ops.elemwise import a0, a1
        y = gc.elementwise('lerp_half', (a0 + a1) * 0.5, [x, z])
    """
    if not isinstance(fn, str) or not fn.isidentifier() or not fn.isascii():
        raise located(ArgumentError(f"elementwise: the name must be a plain identifier, got {fn!r}"))
    if not isinstance(inputs, (list, tuple)) or not 1 <= len(inputs) <= len(S.A):
        raise located(ArgumentError(f"elementwise {fn}: inputs must be a list of 1 to {len(S.A)} "
                                    f"tensors, got {type(inputs).__name__}"))
    if kind not in _KINDS:
        raise located(ArgumentError(f"elementwise {fn}: kind must be one of {', '.join(_KINDS)}, "
                                    f"got {kind!r}"))
    problem = S.formula_problem(expr, len(inputs))
    if problem is not None:
        raise located(ArgumentError(f"elementwise {fn}: {problem}"))
    # pi, E ... as float literals: the C printer would declare them as double constants
    expr = expr.xreplace({c: sympy.Float(c.evalf(20), 17) for c in expr.atoms(sympy.NumberSymbol)})
    return make(Elemwise, list(inputs), {"fn": fn, "expr": expr, "kind": kind})


# -- arithmetic and comparisons ---------------------------------------------------------

def add(x, y) -> Tensor:
    """``x + y`` with NumPy broadcasting."""
    return elementwise("add", a0 + a1, [x, y], "any")


def subtract(x, y) -> Tensor:
    """``x - y``."""
    return elementwise("sub", a0 - a1, [x, y], "any")


def multiply(x, y) -> Tensor:
    """``x * y``."""
    return elementwise("mul", a0 * a1, [x, y], "any")


def divide(x, y) -> Tensor:
    """``x / y`` (float tensors)."""
    return elementwise("div", a0 / a1, [x, y], "float")


def power(x, y) -> Tensor:
    """``x ** y``; a Python number exponent is folded into the formula."""
    if isinstance(y, (int, float)) and not isinstance(y, bool):
        p = sympy.Integer(y) if float(y).is_integer() else sympy.Float(y)
        return elementwise("pow", a0**p, [x], "float")
    return elementwise("pow", S.power(a0, a1), [x, y], "float")


def negative(x) -> Tensor:
    """``-x``."""
    return elementwise("neg", -a0, [x], "any")


def less(x, y) -> Tensor:
    """``x < y`` as a bool tensor (no gradient)."""
    return elementwise("less", sympy.StrictLessThan(a0, a1), [x, y], "cmp")


def less_equal(x, y) -> Tensor:
    """``x <= y`` as a bool tensor."""
    return elementwise("less_equal", sympy.LessThan(a0, a1), [x, y], "cmp")


def greater(x, y) -> Tensor:
    """``x > y`` as a bool tensor."""
    return elementwise("greater", sympy.StrictGreaterThan(a0, a1), [x, y], "cmp")


def greater_equal(x, y) -> Tensor:
    """``x >= y`` as a bool tensor."""
    return elementwise("greater_equal", sympy.GreaterThan(a0, a1), [x, y], "cmp")


def equal(x, y) -> Tensor:
    """Elementwise ``x == y`` as a bool tensor (``==`` on tensors is identity)."""
    return elementwise("equal", sympy.Eq(a0, a1, evaluate=False), [x, y], "cmp")


def not_equal(x, y) -> Tensor:
    """Elementwise ``x != y`` as a bool tensor."""
    return elementwise("not_equal", sympy.Ne(a0, a1, evaluate=False), [x, y], "cmp")


def where(cond, x, y) -> Tensor:
    """``x`` where ``cond`` is true (non-zero), else ``y``; no gradient to ``cond``."""
    return elementwise("where", sympy.Piecewise((a1, sympy.Ne(a0, 0)), (a2, True)),
                       [cond, x, y], "where")


def maximum(x, y) -> Tensor:
    """Elementwise maximum, NaN where either operand is NaN (as in PyTorch); at ties the
    gradient goes to ``x``, at a NaN to both."""
    return elementwise("maximum", S.maximum(a0, a1), [x, y])


def minimum(x, y) -> Tensor:
    """Elementwise minimum, NaN where either operand is NaN; at ties the gradient goes to
    ``x``, at a NaN to both."""
    return elementwise("minimum", S.minimum(a0, a1), [x, y])


# -- activations and math -----------------------------------------------------------------

def relu(x) -> Tensor:
    """max(x, 0); relu(NaN) = NaN and relu'(NaN) = 1 (as in PyTorch), relu'(0) = 0."""
    return elementwise("relu", sympy.Piecewise((0, a0 <= 0), (a0, True)), [x])


def sigmoid(x) -> Tensor:
    """1 / (1 + exp(-x)), stable for large |x|; derivative y (1 - y)."""
    return elementwise("sigmoid", S.sigmoid(a0), [x])


def tanh(x) -> Tensor:
    """Hyperbolic tangent; derivative 1 - y**2."""
    return elementwise("tanh", sympy.tanh(a0), [x])


def exp(x) -> Tensor:
    """e**x."""
    return elementwise("exp", sympy.exp(a0), [x])


def log(x) -> Tensor:
    """Natural logarithm.

    ``log(softmax(z))`` and ``log(sigmoid(z))`` are built as ``log_softmax(z)``
    and ``-softplus(-z)`` right away, so their gradients are stable too (the
    ``stability`` pass does the same for graphs built otherwise).
    """
    stable = x.op.log_of(x) if isinstance(x, Tensor) else None
    return stable if stable is not None else elementwise("log", sympy.log(a0), [x])


def sqrt(x) -> Tensor:
    """Square root; derivative 1 / (2 y)."""
    return elementwise("sqrt", sympy.sqrt(a0), [x])


def abs(x) -> Tensor:  # noqa: A001 - the contract's name
    """|x|; gradient sign(x), 0 at 0."""
    return elementwise("abs", sympy.Abs(a0), [x], "any")


def square(x) -> Tensor:
    """x**2."""
    return elementwise("square", a0**2, [x], "any")


def softplus(x) -> Tensor:
    """log(1 + exp(x)) without overflow; derivative sigmoid(x)."""
    return elementwise("softplus", S.softplus(a0), [x])


def leaky_relu(x, alpha: float = 0.01) -> Tensor:
    """x for x > 0, alpha * x otherwise."""
    return elementwise("leaky_relu", sympy.Piecewise((a0, a0 > 0), (sympy.Float(alpha) * a0, True)), [x])


def elu(x, alpha: float = 1.0) -> Tensor:
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    return elementwise("elu", sympy.Piecewise((a0, a0 > 0), (sympy.Float(alpha) * expm1(a0), True)), [x])


_SELU_ALPHA = sympy.Float("1.6732632423543772848170429916717")
_SELU_SCALE = sympy.Float("1.0507009873554804934193349852946")


def selu(x) -> Tensor:
    """scale * elu(x, alpha) with the self-normalizing constants."""
    body = _SELU_SCALE * sympy.Piecewise((a0, a0 > 0), (_SELU_ALPHA * expm1(a0), True))
    return elementwise("selu", body, [x])


def hard_tanh(x) -> Tensor:
    """x clipped to [-1, 1]; gradient 1 inside, 0 outside."""
    return elementwise("hard_tanh", sympy.Piecewise((-1, a0 < -1), (1, a0 > 1), (a0, True)), [x])


def clip(x, low: float | None = None, high: float | None = None) -> Tensor:
    """``x`` limited to ``[low, high]`` (None: no bound on that side); NaN stays NaN.

    The gradient is 1 where ``low <= x <= high`` (and at NaN) and 0 outside. With
    ``low > high`` every value is ``high``, as in ``torch.clamp`` and ``np.clip``.

    Example::

        y = gc.clip(x, 0.0, 6.0)     # relu6
    """
    if low is not None and high is not None and low > high:
        low = high
    branches = []
    if low is not None:
        branches.append((sympy.Float(low), a0 < sympy.Float(low)))
    if high is not None:
        branches.append((sympy.Float(high), a0 > sympy.Float(high)))
    if not branches:
        return as_tensor(x)
    return elementwise("clip", sympy.Piecewise(*branches, (a0, True)), [x])


# -- dtype conversion ---------------------------------------------------------------------


class Cast(Op):
    name = "cast"

    def infer(self, inputs, dtype):
        return inputs[0].shape, _dt.normalize(dtype)

    def reference(self, ctx, node, x):
        return x.astype(node.dtype)

    def grad(self, node, g):
        x = node.inputs[0]
        return [cast(g, x.dtype) if _dt.is_float(x.dtype) and _dt.is_float(node.dtype) else None]

    def label(self, attrs):
        return f"cast:{attrs['dtype']}"


def cast(x, dtype: str) -> Tensor:
    """Convert ``x`` to ``dtype`` (the only way dtypes change)."""
    x = as_tensor(x)
    if x.dtype == _dt.normalize(dtype):
        return x
    return make(Cast, [x], {"dtype": _dt.normalize(dtype)})
