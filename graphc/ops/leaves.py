"""Leaves of the graph: placeholders (fed), variables (state), constants.

The leaf ops themselves are part of the IR (:mod:`graphc.ir.op`); these are the
functions users call to create them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir import dtypes as _dt
from ..ir.errors import DTypeError, ShapeError, located
from ..ir.graph import Placeholder, Tensor, Variable, constant_node, make


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

    ``value`` is the initial value; its dtype is kept (float64 stays float64, a
    NumPy scalar or 0-d array included) unless ``dtype`` is given; only a Python
    float, which carries no dtype, becomes float32.

    Example::

        W = gc.variable(np.zeros((784, 10), np.float32), name="W")
    """
    arr = np.array(value, dtype=dtype, copy=True)
    if arr.dtype == np.float16 or arr.dtype.kind == "c":
        raise located(DTypeError(f"variable: dtype {arr.dtype} is not supported"))
    if dtype is None and arr.dtype.kind == "f" and isinstance(value, float) and not isinstance(
            value, np.generic):  # only Python floats are weak; NumPy scalars keep their dtype
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
    try:
        return constant_node(value, dtype=dtype, name=name)
    except DTypeError as exc:
        raise located(exc) from None
