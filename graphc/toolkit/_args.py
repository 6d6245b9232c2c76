"""Checks of the toolkit's non-tensor arguments (a learning rate, a layer size, a
fraction ...). A bad value is an :class:`ArgumentError` (also ``ValueError``), a value
of the wrong type an :class:`ArgumentTypeError` (also ``TypeError``); both name the
owner, the argument, the value and the user's line.

Example::

    lr = number("SGD", "lr", lr, low=0.0, low_open=True)   # 0.0: "SGD: lr must be > 0"
    units = integer("Dense", "units", units, low=1)
"""

from __future__ import annotations

import math
import numbers

from ..ir.errors import ArgumentError, ArgumentTypeError, at, user_site


def bad_value(message: str) -> ArgumentError:
    """An ArgumentError with the user's line."""
    return ArgumentError(f"{message}{at(user_site())}")


def bad_type(message: str) -> ArgumentTypeError:
    """An ArgumentTypeError with the user's line."""
    return ArgumentTypeError(f"{message}{at(user_site())}")


def _range(low, high, low_open: bool, high_open: bool) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {low:g}"
    if low is None:
        return f"{'<' if high_open else '<='} {high:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def number(owner: str, name: str, value, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float, refused unless it is a real number (not a bool), not NaN,
    and within the range (``low``/``high``; ``*_open``: the bound itself is excluded)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise bad_type(f"{owner}: {name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    inside = not math.isnan(v) and (
        low is None or (v > low if low_open else v >= low)) and (
        high is None or (v < high if high_open else v <= high))
    if not inside:
        raise bad_value(f"{owner}: {name} must be {_range(low, high, low_open, high_open)}, "
                        f"got {value!r}")
    return v


def integer(owner: str, name: str, value, low: int | None = None) -> int:
    """``value`` as an int (an integral number; not a bool, not 2.5), at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise bad_type(f"{owner}: {name} must be an int, got {type(value).__name__} {value!r}")
    if low is not None and int(value) < low:
        raise bad_value(f"{owner}: {name} must be >= {low}, got {value!r}")
    return int(value)


def choice(owner: str, name: str, value, options) -> object:
    """``value`` if it is one of ``options``, else an ArgumentError listing them."""
    if not isinstance(value, str) or value not in options:
        shown = ", ".join(repr(o) for o in options)
        raise bad_value(f"{owner}: {name} must be one of {shown}, got {value!r}")
    return value
