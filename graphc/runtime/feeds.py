"""Validation of feed dicts, and the one conversion of user values to a graph dtype.

:func:`convert` is shared by feeds, ``Session.set_value`` and ``Session.load``: a
value either converts exactly (up to float rounding) or is refused; it never wraps.

Example::

    convert(np.int64(2**32 + 3), "int32", "feed for i")   # FeedError: out of range
    convert([1, 2], "float32", "feed for x")              # array([1., 2.], float32)
"""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np

from ..ir import shapes as _sh
from ..ir.errors import DTypeError, FeedError, GraphcError, at
from ..ir.graph import Graph, Kind, Tensor

_ACCEPTS = {  # target dtype kind -> NumPy kinds that may be converted to it
    "f": "fiub",
    "i": "iub",
    "b": "b",
}


def convert(value: Any, dtype: str, what: str, site: str | None = None,
            range_error: type[GraphcError] = FeedError) -> np.ndarray:
    """``value`` as an array of ``dtype``; never a wrap or a silent overflow.

    Floats are refused by int and bool targets, ints by bool targets (DTypeError); an
    int outside the target's range, or a finite float that would overflow to inf, raises
    ``range_error``. ``what`` starts the message (``"feed for x"``). The array is
    returned as is when it already has the dtype.
    """
    want = np.dtype(dtype)
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise DTypeError(f"{what}: cannot convert {type(value).__name__} to an array "
                         f"({exc}){at(site)}") from None
    if arr.dtype == object:
        arr = _python_ints(arr, want, what, site, range_error)
    if arr.dtype.kind not in _ACCEPTS[want.kind]:
        raise DTypeError(f"{what}: a {arr.dtype} value cannot be converted to {dtype}"
                         f"{_hint(arr.dtype, want)}{at(site)}")
    if arr.dtype == want:
        return arr
    if want.kind == "i" and arr.dtype.kind in "iu" and arr.size:
        _check_int_range(int(arr.min()), int(arr.max()), want, what, site, range_error)
    if want.kind == "f" and arr.dtype.kind == "f" and arr.dtype.itemsize > want.itemsize:
        with np.errstate(over="ignore"):
            out = arr.astype(want)
        if not np.isfinite(out).all():  # NaN/inf stay NaN/inf; a finite value must stay finite
            overflow = np.isinf(out) & np.isfinite(arr)
            if overflow.any():
                bad = float(arr[overflow].flat[0])
                raise range_error(f"{what}: {bad:g} overflows {dtype} (largest finite "
                                  f"{np.finfo(want).max:.6g}){at(site)}")
        return out
    return arr.astype(want)


def _python_ints(arr: np.ndarray, want: np.dtype, what: str, site, range_error) -> np.ndarray:
    """An object array of Python ints (too large for int64/uint64): range-checked exactly
    for an int target, as float64 (then checked like any float) for a float target."""
    items = arr.ravel().tolist()
    if not items or not all(isinstance(v, (int, np.integer)) for v in items):
        raise DTypeError(f"{what}: cannot convert a value of mixed or unknown type to "
                         f"{want.name}{at(site)}")
    if want.kind == "f":
        try:
            return np.array([float(v) for v in items], np.float64).reshape(arr.shape)
        except OverflowError:
            raise range_error(f"{what}: an integer overflows {want.name}{at(site)}") from None
    if want.kind == "i":
        _check_int_range(min(items), max(items), want, what, site, range_error)
        return np.array(items, want).reshape(arr.shape)
    raise DTypeError(f"{what}: an integer value cannot be converted to {want.name}{at(site)}")


def _check_int_range(lo: int, hi: int, want: np.dtype, what: str, site, range_error) -> None:
    info = np.iinfo(want)
    bad = hi if hi > info.max else lo if lo < info.min else None
    if bad is not None:
        raise range_error(f"{what}: {bad} is out of the range of {want.name} "
                          f"[{info.min}, {info.max}]; it would wrap around{at(site)}")


def _hint(got: np.dtype, want: np.dtype) -> str:
    if got.kind == "f" and want.kind == "i":
        return " (floats are not truncated silently: round and cast them first)"
    return ""


def resolve(graph: Graph, feed: dict | None) -> dict[Tensor, Any]:
    """Map feed keys (placeholders, or their names) to placeholders."""
    out: dict[Tensor, Any] = {}
    by_name = None
    for key, value in (feed or {}).items():
        if isinstance(key, str):
            if by_name is None:
                by_name = {p.name: p for p in graph.placeholders()}
            if key not in by_name:
                raise FeedError(f"feed: no placeholder named {key!r}"
                                f"{close_names(key, by_name, 'placeholders')}")
            key = by_name[key]
        if not isinstance(key, Tensor) or key.op.kind is not Kind.PLACEHOLDER:
            raise FeedError(f"feed: key {key!r} is not a placeholder; only placeholders are fed")
        if key.graph is not graph:
            raise FeedError(f"feed: placeholder {key.name} belongs to another graph{at(key.site)}")
        out[key] = value
    return out


def close_names(name: str, names, what: str) -> str:
    """`` (did you mean ...?)`` or the list of ``names`` when none is close."""
    names = sorted(names)
    close = [n for n in names if n.lower() == name.lower()]
    close += [n for n in difflib.get_close_matches(name, names, n=5) if n not in close]
    if close:
        return f" (did you mean {', '.join(map(repr, close))}?)"
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    return f" ({what}: {shown or 'none'})"


def check(needed: list[Tensor], feed: dict[Tensor, Any], defaults: dict[Tensor, Any],
          extra: list[Tensor] = (), free: set[int] = frozenset()
          ) -> tuple[dict[Tensor, np.ndarray], int | None]:
    """Convert and validate feeds; return them with the batch size (or None).

    ``needed`` placeholders must be fed (or have a default); ``extra`` are other fed
    placeholders, checked the same way. The None dimensions of all of them agree on
    the batch size, except those of placeholders whose ``id`` is in ``free`` (fed but
    unrelated to the fetch set: one feed dict can serve several fetch sets); those
    are still checked for dtype, rank and fixed dimensions, and give the batch size
    only when nothing else does and they agree on it (a gradient that is zeros of
    shape (None, 3) depends on no placeholder); otherwise the batch size is None.
    Raises FeedError/DTypeError naming the placeholder and where it was defined.
    """
    arrays: dict[Tensor, np.ndarray] = {}
    batch: int | None = None
    batch_from: Tensor | None = None
    loose: dict[int, Tensor] = {}  # batch sizes fed to placeholders in ``free``
    for p in list(needed) + list(extra):
        constrains = id(p) not in free
        if p in feed:
            value = feed[p]
        elif p in defaults:
            value = defaults[p]
        else:
            raise FeedError(f"placeholder {p.name} {_sh.fmt(p.shape)} needs a value: pass it in "
                            f"the feed dict{at(p.site)}")
        arr = convert(value, p.dtype, f"feed for {p.name} ({p.dtype})", p.site)
        if arr.ndim != len(p.shape):
            raise FeedError(f"feed for {p.name}: expected rank {len(p.shape)} "
                            f"{_sh.fmt(p.shape)}, got shape {arr.shape}{at(p.site)}")
        for want, got in zip(p.shape, arr.shape):
            if want is None:
                if not constrains:
                    loose.setdefault(got, p)
                elif batch is None:
                    batch, batch_from = got, p
                elif got != batch:
                    raise FeedError(f"feed for {p.name}: batch size {got} differs from "
                                    f"{batch} fed to {batch_from.name} (every None dimension is "
                                    f"the same batch size){at(p.site)}")
            elif want != got:
                raise FeedError(f"feed for {p.name}: expected shape {_sh.fmt(p.shape)}, "
                                f"got {arr.shape}{at(p.site)}")
        arrays[p] = arr
    if batch is None and len(loose) == 1:
        batch = next(iter(loose))
    return arrays, batch


def aligned_copy(value, dtype) -> np.ndarray:
    """A C-contiguous copy of ``value`` whose data starts on a 64-byte (cache line)
    boundary: threads of a compiled step that update disjoint rows of a variable then
    never write to one cache line (NumPy's own allocations are only 16-byte aligned).
    The session's variable values are such copies."""
    a = np.asarray(value, dtype=dtype)
    buf = np.empty(a.nbytes + 64, np.uint8)
    start = -buf.ctypes.data % 64
    out = buf[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out
