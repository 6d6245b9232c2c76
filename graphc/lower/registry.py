"""Which function lowers a kernel: one registration per op class, in the op family's
lowering module (``@lowers(MatMul)`` in :mod:`graphc.lower.linalg` ...).

Fused elementwise loops and the reductions of kind REDUCTION are lowered by kind
(:mod:`graphc.lower.elementwise`, :mod:`graphc.lower.reduce`); every other op that
becomes a kernel registers here.

Example::

    @lowers(OneHot)
    def lower_one_hot(group: Group, plan: Plan) -> list:
        ...           # the kernel's statements
"""

from __future__ import annotations

from collections.abc import Callable

#: op class -> function(group, plan) returning the kernel's statements
LOWERINGS: dict[type, Callable] = {}


def lowers(*op_classes: type, nested: bool = False) -> Callable:
    """Register the decorated function as the lowering of ``op_classes``; ``nested``: it
    also takes the function that lowers a nested program (a scan's body) the same way."""

    def register(fn: Callable) -> Callable:
        fn.nested = nested
        for cls in op_classes:
            if cls in LOWERINGS:
                raise RuntimeError(f"{cls.__name__} has two lowerings")
            LOWERINGS[cls] = fn
        return fn

    return register


def lowering_of(op) -> Callable | None:
    """The registered lowering of ``op``'s class (or of its nearest registered base)."""
    for cls in type(op).__mro__:
        if cls in LOWERINGS:
            return LOWERINGS[cls]
    return None
