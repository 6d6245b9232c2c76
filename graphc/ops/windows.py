"""NumPy helpers shared by the references of conv2d and pooling: window views and
their adjoint, padding, and the output-size rule.

Conventions (PyTorch defaults): activations are NCHW, filters OIHW; ``kernel``,
``stride`` and ``padding`` accept an int or an ``(h, w)`` pair (:func:`pair`);
the output size is ``floor((H + 2 p - k) / s) + 1`` per spatial axis, and input
rows/columns that no window touches receive a zero gradient. Everything is
vectorised with ``sliding_window_view``; the only Python loops are over the
``kh * kw`` kernel offsets in :func:`scatter_windows`.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

IntPair = int | Sequence[int]

def pair(v: IntPair) -> tuple[int, int]:
    """Normalise an int or a length-2 sequence of ints to an ``(h, w)`` tuple.

    Raises:
        TypeError: if ``v`` (or one of its items) is not an integer.
        ValueError: if ``v`` is a sequence whose length is not 2.
    """
    if isinstance(v, bool) or (isinstance(v, Sequence) and any(isinstance(i, bool) for i in v)):
        raise TypeError(f"expected an int or a pair of ints, got {v!r}")
    if isinstance(v, Sequence) and not isinstance(v, str):
        if len(v) != 2:
            raise ValueError(f"expected a pair of ints, got {v!r}")
        return operator.index(v[0]), operator.index(v[1])
    if isinstance(v, np.ndarray) and v.shape == (2,):
        return operator.index(v[0]), operator.index(v[1])
    try:
        i = operator.index(v)
    except TypeError:
        raise TypeError(f"expected an int or a pair of ints, got {v!r}") from None
    return i, i


def params(
    kernel: IntPair, stride: IntPair | None, padding: IntPair
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Normalise and validate kernel/stride/padding (stride None -> kernel)."""
    k = pair(kernel)
    s = k if stride is None else pair(stride)
    p = pair(padding)
    if min(k) < 1:
        raise ValueError(f"kernel size must be >= 1, got {k}")
    if min(s) < 1:
        raise ValueError(f"stride must be >= 1, got {s}")
    if min(p) < 0:
        raise ValueError(f"padding must be >= 0, got {p}")
    return k, s, p


def check_pool_padding(k: tuple[int, int], p: tuple[int, int]) -> None:
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"pooling padding {p} must be at most half the kernel size {k}")


def check_4d(name: str, a: np.ndarray) -> None:
    if a.ndim != 4:
        raise ValueError(f"{name} must be 4-D, got shape {a.shape}")


def images(**arrays) -> list[np.ndarray]:
    """The keyword arrays as NumPy arrays in order, each checked to be 4-D (NCHW or OIHW)."""
    out = []
    for name, a in arrays.items():
        a = np.asarray(a)
        check_4d(name, a)
        out.append(a)
    return out


def pad(x: np.ndarray, p: tuple[int, int], value: float = 0) -> np.ndarray:
    """Pad the two trailing (spatial) axes of ``x`` with ``value``."""
    if p == (0, 0):
        return x
    return np.pad(
        x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), mode="constant", constant_values=value
    )


def windows(xp: np.ndarray, k: tuple[int, int], s: tuple[int, int]) -> np.ndarray:
    """Read-only strided view ``(N, C, OH, OW, KH, KW)`` of the windows of ``xp``."""
    return sliding_window_view(xp, k, axis=(2, 3))[:, :, :: s[0], :: s[1]]


def scatter_windows(cols: np.ndarray, padded_hw: tuple[int, int], k: tuple[int, int], s: tuple[int, int],
                    p: tuple[int, int], input_hw: tuple[int, int]) -> np.ndarray:
    """Adjoint of :func:`windows` followed by un-padding.

    ``cols`` has shape ``(N, C, OH, OW, KH, KW)``; every window value is added
    to the input position it was read from; padded positions are dropped.
    """
    n, c, oh, ow, kh, kw = cols.shape
    hp, wp = padded_hw
    gxp = np.zeros((n, c, hp, wp), dtype=cols.dtype)
    for i in range(kh):
        rows = slice(i, i + s[0] * (oh - 1) + 1, s[0])
        for j in range(kw):
            cols_ = slice(j, j + s[1] * (ow - 1) + 1, s[1])
            gxp[:, :, rows, cols_] += cols[:, :, :, :, i, j]
    h, w = input_hw
    return np.ascontiguousarray(gxp[:, :, p[0] : p[0] + h, p[1] : p[1] + w])


def lowest(dtype: np.dtype) -> float | int:
    """Max-pool padding value: -inf for floats, the minimum for integers."""
    if np.issubdtype(dtype, np.floating):
        return -np.inf
    if np.issubdtype(dtype, np.integer):
        return int(np.iinfo(dtype).min)
    raise TypeError(f"unsupported dtype for max pooling: {dtype}")


def output_hw(
    h: int, w: int, kernel: IntPair, stride: IntPair = 1, padding: IntPair = 0
) -> tuple[int, int]:
    """Spatial output size ``(oh, ow)`` of a convolution / pooling window.

    ``o = floor((i + 2 * p - k) / s) + 1`` for each spatial axis.

    Raises:
        ValueError: if the parameters are invalid or the output would be empty.
    """
    k, s, p = params(kernel, stride, padding)
    oh = (h + 2 * p[0] - k[0]) // s[0] + 1
    ow = (w + 2 * p[1] - k[1]) // s[1] + 1
    if oh < 1 or ow < 1:
        raise ValueError(
            f"output size would be {(oh, ow)} for input {(h, w)}, kernel {k}, stride {s}, "
            f"padding {p}"
        )
    return oh, ow
