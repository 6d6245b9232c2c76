"""Elementwise math functions and smooth activations: sin, cos, log1p, expm1, erf, gelu, silu.

Each is one :func:`~graphc.ops.elemwise.elementwise` formula, like ``relu`` or
``sigmoid``: the NumPy reference, the C code (``sinf``/``erff``... in float32) and the
gradient (``sympy.diff``) all come from it, and the nodes fuse with their neighbours.

``gelu`` and ``silu`` multiply ``x`` by a factor that is exactly 0 at ``x = -inf``; the
naive product ``-inf * 0`` would be NaN (as in PyTorch's kernels today). Here ``x`` enters
that product as ``maximum(x, -FLT_MAX)``: the same value for every finite float32 ``x``
(and for every float64 ``x`` whose factor is not already 0), so ``gelu(-inf)`` and
``silu(-inf)`` are -0.0, the limit with the sign large negative inputs give; NaN stays NaN.

Example::

    h = gc.gelu(x @ w1 + b1)                        # exact, erf form
    h = gc.gelu(x @ w1 + b1, approximate="tanh")    # PyTorch's tanh approximation
    y = gc.silu(h) + gc.log1p(gc.exp(z))
"""

from __future__ import annotations

import math

import sympy
from sympy.codegen.cfunctions import expm1 as _expm1
from sympy.codegen.cfunctions import log1p as _log1p

from ..ir.errors import ArgumentError, located
from ..ir.graph import Tensor
from . import scalar as S
from .elemwise import a0, elementwise

#: the largest finite float32: ``maximum(x, -_BIG)`` is ``x`` for finite inputs, finite at -inf
_BIG = sympy.Float(3.4028234663852886e38, 17)
_SQRT1_2 = sympy.Float(math.sqrt(0.5), 17)
_SQRT_2_OVER_PI = sympy.Float(math.sqrt(2 / math.pi), 17)
_KAPPA = sympy.Float("0.044715", 17)


def sin(x) -> Tensor:
    """Sine (radians); derivative cos(x).

    Example::

        y = gc.sin(2.0 * t)
    """
    return elementwise("sin", sympy.sin(a0), [x])


def cos(x) -> Tensor:
    """Cosine (radians); derivative -sin(x).

    Example::

        y = gc.cos(t)
    """
    return elementwise("cos", sympy.cos(a0), [x])


def log1p(x) -> Tensor:
    """log(1 + x), accurate for small ``x``; derivative 1 / (1 + x).

    Example::

        y = gc.log1p(gc.exp(-gc.abs(z)))
    """
    return elementwise("log1p", _log1p(a0), [x])


def expm1(x) -> Tensor:
    """exp(x) - 1, accurate for small ``x``; derivative exp(x).

    Example::

        y = gc.expm1(1e-6 * t)
    """
    return elementwise("expm1", _expm1(a0), [x])


def erf(x) -> Tensor:
    """The error function 2/sqrt(pi) * integral of exp(-t**2) from 0 to x;
    derivative 2/sqrt(pi) * exp(-x**2).

    Example::

        phi = 0.5 * (1.0 + gc.erf(x / 2 ** 0.5))   # the normal CDF
    """
    return elementwise("erf", sympy.erf(a0), [x])


def _finite_below(x: sympy.Expr) -> sympy.Expr:
    """``x`` with -inf replaced by -FLT_MAX (see the module docstring)."""
    return S.maximum(x, -_BIG)


def gelu(x, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit, as ``torch.nn.functional.gelu``.

    ``approximate="none"``: ``x * 0.5 * (1 + erf(x / sqrt(2)))``; ``"tanh"``:
    ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x**3)))``. Each form's gradient is
    its own exact derivative. gelu(+inf) = +inf, gelu(-inf) = -0.0, NaN stays NaN.

    Example::

        h = gc.gelu(x, approximate="tanh")
    """
    if approximate == "none":
        body = _finite_below(a0) * sympy.Float(0.5) * (1 + sympy.erf(a0 * _SQRT1_2))
    elif approximate == "tanh":
        inner = _SQRT_2_OVER_PI * (a0 + _KAPPA * a0**3)
        body = sympy.Float(0.5) * _finite_below(a0) * (1 + sympy.tanh(inner))
    else:
        raise located(ArgumentError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}"))
    return elementwise("gelu" if approximate == "none" else "gelu_tanh", body, [x])


def silu(x) -> Tensor:
    """x * sigmoid(x) (also called swish), as ``torch.nn.functional.silu``; derivative
    sigmoid(x) (1 + x (1 - sigmoid(x))). silu(+inf) = +inf, silu(-inf) = -0.0.

    Example::

        h = gc.silu(x @ w + b)
    """
    return elementwise("silu", _finite_below(a0) * S.sigmoid(a0), [x])
