"""Validation of feed dicts against the placeholders a fetch set needs."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir import shapes as _sh
from ..ir.errors import DTypeError, FeedError, at
from ..ir.graph import Graph, Kind, Tensor

_ACCEPTS = {  # placeholder dtype kind -> NumPy kinds that may be fed to it
    "f": "fiub",
    "i": "iub",
    "b": "b",
}


def resolve(graph: Graph, feed: dict | None) -> dict[Tensor, Any]:
    """Map feed keys (placeholders, or their names) to placeholders."""
    out: dict[Tensor, Any] = {}
    by_name = None
    for key, value in (feed or {}).items():
        if isinstance(key, str):
            if by_name is None:
                by_name = {p.name: p for p in graph.placeholders()}
            if key not in by_name:
                raise FeedError(f"feed: no placeholder named {key!r} (placeholders: "
                                f"{', '.join(sorted(by_name)) or 'none'})")
            key = by_name[key]
        if not isinstance(key, Tensor) or key.op.kind is not Kind.PLACEHOLDER:
            raise FeedError(f"feed: key {key!r} is not a placeholder; only placeholders are fed")
        if key.graph is not graph:
            raise FeedError(f"feed: placeholder {key.name} belongs to another graph{at(key.site)}")
        out[key] = value
    return out


def check(needed: list[Tensor], feed: dict[Tensor, Any],
          defaults: dict[Tensor, Any]) -> tuple[dict[Tensor, np.ndarray], int | None]:
    """Convert and validate feeds; return them with the batch size (or None).

    Raises FeedError/DTypeError naming the placeholder and where it was defined.
    """
    arrays: dict[Tensor, np.ndarray] = {}
    batch: int | None = None
    batch_from: Tensor | None = None
    for p in needed:
        if p in feed:
            value = feed[p]
        elif p in defaults:
            value = defaults[p]
        else:
            raise FeedError(f"placeholder {p.name} {_sh.fmt(p.shape)} needs a value: pass it in "
                            f"the feed dict{at(p.site)}")
        arr = _convert(p, value)
        if arr.ndim != len(p.shape):
            raise FeedError(f"feed for {p.name}: expected rank {len(p.shape)} "
                            f"{_sh.fmt(p.shape)}, got shape {arr.shape}{at(p.site)}")
        for want, got in zip(p.shape, arr.shape):
            if want is None:
                if batch is None:
                    batch, batch_from = got, p
                elif got != batch:
                    raise FeedError(f"feed for {p.name}: batch size {got} differs from "
                                    f"{batch} fed to {batch_from.name} (every None dimension is "
                                    f"the same batch size){at(p.site)}")
            elif want != got:
                raise FeedError(f"feed for {p.name}: expected shape {_sh.fmt(p.shape)}, "
                                f"got {arr.shape}{at(p.site)}")
        arrays[p] = arr
    return arrays, batch


def _convert(p: Tensor, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise DTypeError(f"feed for {p.name}: cannot convert {type(value).__name__} to an "
                         f"array ({exc}){at(p.site)}") from None
    want = np.dtype(p.dtype)
    if arr.dtype.kind not in _ACCEPTS[want.kind]:
        raise DTypeError(f"feed for {p.name}: a {arr.dtype} array cannot be fed to a "
                         f"{p.dtype} placeholder{at(p.site)}")
    if arr.dtype != want:
        arr = arr.astype(want)
    return arr
