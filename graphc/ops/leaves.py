"""Leaves of the graph: placeholders (fed), variables (state), constants."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import dtypes as _dt
from ..errors import DTypeError, ShapeError
from ..graph import Tensor, make
from .base import Op, located, register


class _Leaf(Op):
    differentiable = False

    def infer(self, inputs, **attrs):
        return attrs["shape"], attrs["dtype"]

    def grad(self, node, g):
        return []


@register
class Placeholder(_Leaf):
    name = "placeholder"
    pure = False


@register
class Variable(_Leaf):
    name = "variable"
    pure = False


@register
class Constant(_Leaf):
    name = "constant"

    def compute(self, ctx, node):
        raise AssertionError("constants are read from node.value")


def placeholder(shape, dtype: str = "float32", name: str | None = None) -> Tensor:
    """A value fed at run time. ``None`` in ``shape`` is the batch size.

    Example::

        x = gc.placeholder((None, 784), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
    """
    shape = tuple(shape)
    for d in shape:
        if d is not None and (not isinstance(d, (int, np.integer)) or d < 0):
            raise located(ShapeError(f"placeholder: bad dimension {d!r} in shape {shape}; "
                                     "use non-negative ints or None for the batch size"))
    shape = tuple(None if d is None else int(d) for d in shape)
    return make(Placeholder, [], {"shape": shape, "dtype": _dt.normalize(dtype)},
                name=name or "placeholder")


def variable(value: Any, name: str | None = None, trainable: bool = True,
             dtype: str | None = None) -> Tensor:
    """Trainable (or, with ``trainable=False``, plain) state owned by a Session.

    ``value`` is the initial value; its dtype is kept (float64 stays float64)
    unless ``dtype`` is given.

    Example::

        W = gc.variable(np.zeros((784, 10), np.float32), name="W")
    """
    arr = np.array(value, dtype=dtype, copy=True)
    if arr.dtype == np.float16 or arr.dtype.kind == "c":
        raise located(DTypeError(f"variable: dtype {arr.dtype} is not supported"))
    if dtype is None and arr.dtype.kind == "f" and np.ndim(value) == 0 and not isinstance(
            value, np.ndarray):
        arr = arr.astype(np.float32)
    dt = _dt.normalize(arr.dtype)
    node = make(Variable, [], {"shape": arr.shape, "dtype": dt, "trainable": bool(trainable)},
                name=name or "variable")
    arr.setflags(write=False)
    node.value = arr
    return node


def constant(value: Any, dtype: str | None = None, name: str | None = None) -> Tensor:
    """A fixed value baked into the graph.

    Python floats become float32 and ints int64 unless ``dtype`` says otherwise.
    """
    if dtype is None and isinstance(value, (bool, int, float)) and not isinstance(value, np.generic):
        dtype = "bool" if isinstance(value, bool) else "int64" if isinstance(value, int) else "float32"
    arr = np.array(value, dtype=dtype)
    if dtype is not None and arr.dtype.kind in "iu" and isinstance(value, float) and value != int(value):
        raise located(DTypeError(f"constant: {value!r} does not fit dtype {dtype}"))
    dt = _dt.normalize(arr.dtype)
    node = make(Constant, [], {"shape": arr.shape, "dtype": dt, "cid": _const_key(arr)},
                name=name or "const")
    arr.setflags(write=False)
    node.value = arr
    return node


def _const_key(arr: np.ndarray):
    """A hashable identity for a constant: its bytes when small, else unique."""
    if arr.size <= 64:
        return (arr.dtype.str, arr.shape, arr.tobytes())
    return ("large", id(arr))

