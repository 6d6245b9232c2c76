"""Static shapes: tuples of ints where ``None`` is the batch size.

All ``None`` dimensions of a graph stand for the same run-time batch size ``N``,
so ``(None, 3) + (None, 3)`` is ``(None, 3)`` and the C backend can take ``N``
as one argument.
"""

from __future__ import annotations

from collections.abc import Iterable

Shape = tuple


def broadcast(shapes: Iterable[Shape]) -> Shape | None:
    """NumPy broadcasting of static shapes; ``None`` (batch) broadcasts with 1.

    Returns ``None`` when the shapes are incompatible.
    """
    shapes = list(shapes)
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(ndim):
        dims = [s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0]
        real = {d for d in dims if d != 1}
        if len(real) > 1:
            return None
        out.append(real.pop() if real else 1)
    return tuple(out)


def normalize_axes(axis, ndim: int) -> tuple[int, ...] | None:
    """Turn ``axis`` (None, int or sequence) into sorted non-negative axes.

    Returns ``None`` if an axis is out of range.
    """
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    out = []
    for a in axis:
        a = int(a)
        if not -ndim <= a < ndim:
            return None
        out.append(a % ndim)
    return tuple(sorted(set(out)))


def size(shape: Shape) -> int | None:
    """Number of elements, or ``None`` if a dimension is the batch size."""
    n = 1
    for d in shape:
        if d is None:
            return None
        n *= d
    return n


def fmt(shape: Shape) -> str:
    """``(None, 784)`` -> ``"(N, 784)"``: how shapes appear in messages."""
    dims = ["N" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def bind(shape: Shape, batch: int) -> tuple[int, ...]:
    """Replace the batch dimension by its run-time value."""
    return tuple(batch if d is None else d for d in shape)
