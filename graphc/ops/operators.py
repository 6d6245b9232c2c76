"""Python operators on graph tensors: ``+ - * / ** @``, unary ``-``, comparisons,
``.T`` and ``x[...]``, installed on :class:`~graphc.ir.graph.Tensor` when
``graphc`` is imported (the IR itself knows no ops).

Example::

    y = (x @ W + b).T[0]        # matmul, add, transpose, slice
"""

from __future__ import annotations

from ..ir.graph import Tensor
from . import elemwise, linalg, shape

_BINARY = {"add": elemwise.add, "sub": elemwise.subtract, "mul": elemwise.multiply,
           "truediv": elemwise.divide, "pow": elemwise.power, "matmul": linalg.matmul}
_COMPARE = {"lt": elemwise.less, "le": elemwise.less_equal, "gt": elemwise.greater,
            "ge": elemwise.greater_equal}


def _method(fn, reflected: bool = False):
    if reflected:
        return lambda self, other: fn(other, self)
    return lambda self, other: fn(self, other)


def install() -> None:
    """Attach the operators to Tensor (idempotent)."""
    for dunder, fn in _BINARY.items():
        setattr(Tensor, f"__{dunder}__", _method(fn))
        setattr(Tensor, f"__r{dunder}__", _method(fn, reflected=True))
    for dunder, fn in _COMPARE.items():
        setattr(Tensor, f"__{dunder}__", _method(fn))
    Tensor.__neg__ = elemwise.negative
    Tensor.__pos__ = lambda self: self
    Tensor.__getitem__ = shape.getitem
    Tensor.T = property(lambda self: shape.transpose(self))


install()
