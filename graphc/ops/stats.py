"""Statistics composed from reductions: ``var`` and ``std``.

Two passes, never ``E[x^2] - E[x]^2`` (which cancels catastrophically): the mean first,
then the sum of squared deviations, which the C backend computes in one reduction kernel
(the subtraction and square fused as its prologue, accumulated in float64). Gradients
come from the composition.

As in PyTorch (``torch.var(x, dim, correction=ddof)``) the divisor is
``max(0, n - ddof)``: over an empty axis, or where ``ddof >= n``, the result is
0 / 0 = NaN when the deviations are all zero (one element with ``ddof=1``) and +inf
otherwise. ``std`` is ``sqrt(var)``; its gradient where the variance is 0 is NaN, as in
PyTorch (sqrt's infinite slope at 0 times zero deviations).
"""

from __future__ import annotations

import math

from ..ir import dtypes as _dt
from ..ir.errors import ArgumentError, DTypeError, located
from ..ir.graph import Tensor, as_tensor
from .elemwise import maximum, sqrt, square
from .reduce import count, mean, reduce_axes
from .reduce import sum as _sum


def _check_ddof(op: str, ddof) -> None:
    if isinstance(ddof, bool) or not isinstance(ddof, (int, float)) or not math.isfinite(ddof):
        raise located(ArgumentError(f"{op}: ddof must be a finite number, got {ddof!r}"))


def var(x, axis=None, keepdims: bool = False, ddof: float = 0) -> Tensor:
    """Variance over ``axis`` (None: all axes): the sum of squared deviations from the
    mean divided by ``max(0, n - ddof)`` (``ddof=1``: the unbiased estimate).

    Example::

        gc.var(x, axis=1)          # [[1, 2, 3, 4]] -> [1.25]
        gc.var(x, axis=1, ddof=1)  # [[1, 2, 3, 4]] -> [1.6667]
    """
    x = as_tensor(x)
    _check_ddof("var", ddof)
    if not _dt.is_float(x.dtype):
        raise located(DTypeError(f"var: needs a float tensor, got {x.dtype}; use gc.cast"))
    axes = reduce_axes("var", x, axis)
    deviations = x - mean(x, axes, keepdims=True)
    if ddof == 0:  # the division happens inside the reduction kernel (one kernel less)
        return mean(square(deviations), axes, keepdims=keepdims)
    n = count(x, axes)
    if isinstance(n, float):
        divisor = max(0.0, n - ddof)
    else:  # the batch axis: n is counted at run time
        divisor = maximum(n - float(ddof), 0.0)
    return _sum(square(deviations), axes, keepdims=keepdims) / divisor


def std(x, axis=None, keepdims: bool = False, ddof: float = 0) -> Tensor:
    """Standard deviation, ``sqrt(var(x, axis, keepdims, ddof))``; its gradient is NaN
    where the variance is 0 (as in PyTorch).

    Example::

        gc.std(x, axis=1)          # [[1, 3]] -> [1.0]
    """
    _check_ddof("std", ddof)
    return sqrt(var(x, axis, keepdims, ddof))
