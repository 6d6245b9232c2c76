"""The dtypes graphc knows, and the promotion rule between them."""

from __future__ import annotations

import numpy as np

from .errors import DTypeError

FLOATS = ("float32", "float64")
INTS = ("int32", "int64")
SUPPORTED = FLOATS + INTS + ("bool",)


def normalize(dtype) -> str:
    """Return the canonical dtype name (``"float32"``...) or raise DTypeError."""
    try:
        name = np.dtype(dtype).name
    except TypeError as exc:
        raise DTypeError(f"unknown dtype {dtype!r}; graphc supports {', '.join(SUPPORTED)}") from exc
    if name not in SUPPORTED:
        raise DTypeError(f"dtype {name} is not supported; graphc supports {', '.join(SUPPORTED)}")
    return name


def is_float(dtype: str) -> bool:
    return dtype in FLOATS


def is_int(dtype: str) -> bool:
    return dtype in INTS


def join(op: str, dtypes: list[str], where: str = "") -> str:
    """The common dtype of an op's operands.

    Operands must agree exactly: graphc never promotes float32 to float64 (or
    int to float) silently; ``gc.cast`` says so explicitly. ``bool`` operands
    join any other dtype as 0/1 values of that dtype.
    """
    kinds = [d for d in dtypes if d != "bool"]
    if not kinds:
        return "bool"
    first = kinds[0]
    for d in kinds[1:]:
        if d != first:
            raise DTypeError(
                f"{op}: operand dtypes {', '.join(dtypes)} differ; graphc does not promote "
                f"implicitly, use gc.cast(x, {first!r}) or gc.cast(x, {d!r}){where}"
            )
    return first
