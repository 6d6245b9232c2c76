"""Pure NumPy reference implementations of 2-D convolution and pooling.

These functions are the executable specification that the other backends are
checked against.  Conventions (PyTorch defaults):

* activations are NCHW, filters are OIHW (``(O, C, KH, KW)``);
* ``kernel``, ``stride`` and ``padding`` accept an ``int`` or a ``(h, w)``
  pair (see :func:`pair`);
* the output size is ``floor((H + 2 * p - k) / s) + 1`` per spatial axis;
  input rows/columns that no window touches (because of the floor) receive a
  zero gradient;
* convolution pads with zeros, max pooling pads with ``-inf`` (a padded
  position is never selected), average pooling pads with zeros and always
  divides by the full window size ``kh * kw`` (``count_include_pad=True``);
* the max-pooling gradient goes to the *first* maximum of each window in
  row-major ``(kh, kw)`` order; overlapping windows accumulate;
* pooling requires ``padding <= kernel // 2`` (as PyTorch does), so every
  window contains at least one real input element;
* results keep the (promoted) input dtype, e.g. float32 in -> float32 out.

Everything is vectorised with ``sliding_window_view`` + ``tensordot``; the
only Python loops are over the ``kh * kw`` kernel offsets in the scatters.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_backward_data",
    "conv2d_backward_filter",
    "conv2d_output_hw",
    "max_pool2d",
    "max_pool2d_backward",
    "max_pool2d_select",
    "pair",
]

IntPair = int | Sequence[int]


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
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


def _params(
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


def _check_pool_padding(k: tuple[int, int], p: tuple[int, int]) -> None:
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"pooling padding {p} must be at most half the kernel size {k}")


def _check_4d(name: str, a: np.ndarray) -> None:
    if a.ndim != 4:
        raise ValueError(f"{name} must be 4-D, got shape {a.shape}")


def _pad(x: np.ndarray, p: tuple[int, int], value: float = 0) -> np.ndarray:
    """Pad the two trailing (spatial) axes of ``x`` with ``value``."""
    if p == (0, 0):
        return x
    return np.pad(
        x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), mode="constant", constant_values=value
    )


def _windows(xp: np.ndarray, k: tuple[int, int], s: tuple[int, int]) -> np.ndarray:
    """Read-only strided view ``(N, C, OH, OW, KH, KW)`` of the windows of ``xp``."""
    return sliding_window_view(xp, k, axis=(2, 3))[:, :, :: s[0], :: s[1]]


def _scatter_windows(
    cols: np.ndarray,
    padded_hw: tuple[int, int],
    k: tuple[int, int],
    s: tuple[int, int],
    p: tuple[int, int],
    input_hw: tuple[int, int],
) -> np.ndarray:
    """Adjoint of :func:`_windows` followed by un-padding.

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


def _lowest(dtype: np.dtype) -> float | int:
    """Max-pool padding value: -inf for floats, the minimum for integers."""
    if np.issubdtype(dtype, np.floating):
        return -np.inf
    if np.issubdtype(dtype, np.integer):
        return int(np.iinfo(dtype).min)
    raise TypeError(f"unsupported dtype for max pooling: {dtype}")


# --------------------------------------------------------------------------
# convolution
# --------------------------------------------------------------------------
def conv2d_output_hw(
    h: int, w: int, kernel: IntPair, stride: IntPair = 1, padding: IntPair = 0
) -> tuple[int, int]:
    """Spatial output size ``(oh, ow)`` of a convolution / pooling window.

    ``o = floor((i + 2 * p - k) / s) + 1`` for each spatial axis.

    Raises:
        ValueError: if the parameters are invalid or the output would be empty.
    """
    k, s, p = _params(kernel, stride, padding)
    oh = (h + 2 * p[0] - k[0]) // s[0] + 1
    ow = (w + 2 * p[1] - k[1]) // s[1] + 1
    if oh < 1 or ow < 1:
        raise ValueError(
            f"output size would be {(oh, ow)} for input {(h, w)}, kernel {k}, stride {s}, "
            f"padding {p}"
        )
    return oh, ow


def conv2d(x: np.ndarray, w: np.ndarray, stride: IntPair = 1, padding: IntPair = 0) -> np.ndarray:
    """2-D cross-correlation (PyTorch ``conv2d`` without bias, groups=1, dilation=1).

    ``y[n, o, i, j] = sum_{c, a, b} xpad[n, c, i*sh + a, j*sw + b] * w[o, c, a, b]``

    Args:
        x: input ``(N, C, H, W)``.
        w: filters ``(O, C, KH, KW)``.
        stride: int or ``(sh, sw)``.
        padding: int or ``(ph, pw)``; zero padding.

    Returns:
        ``(N, O, OH, OW)`` array of dtype ``result_type(x, w)``.
    """
    x = np.asarray(x)
    w = np.asarray(w)
    _check_4d("x", x)
    _check_4d("w", w)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"channel mismatch: x {x.shape} vs w {w.shape}")
    k = (w.shape[2], w.shape[3])
    k, s, p = _params(k, stride, padding)
    conv2d_output_hw(x.shape[2], x.shape[3], k, s, p)
    dtype = np.result_type(x, w)
    win = _windows(_pad(x, p), k, s)  # (N, C, OH, OW, KH, KW)
    y = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))  # (N, OH, OW, O)
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2), dtype=dtype)


def conv2d_backward_data(
    gy: np.ndarray,
    w: np.ndarray,
    input_hw: IntPair,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> np.ndarray:
    """Gradient of :func:`conv2d` with respect to its input ``x``.

    Args:
        gy: output gradient ``(N, O, OH, OW)``.
        w: filters ``(O, C, KH, KW)``.
        input_hw: ``(H, W)`` of the forward input (needed because of the floor
            in the output-size formula; untouched rows/columns get 0).
        stride, padding: as in the forward call.

    Returns:
        ``(N, C, H, W)`` array of dtype ``result_type(gy, w)``.
    """
    gy = np.asarray(gy)
    w = np.asarray(w)
    _check_4d("gy", gy)
    _check_4d("w", w)
    h, wd = pair(input_hw)
    k = (w.shape[2], w.shape[3])
    k, s, p = _params(k, stride, padding)
    oh, ow = conv2d_output_hw(h, wd, k, s, p)
    if gy.shape[1] != w.shape[0] or gy.shape[2:] != (oh, ow):
        raise ValueError(
            f"gy shape {gy.shape} does not match w {w.shape} and output size {(oh, ow)}"
        )
    dtype = np.result_type(gy, w)
    cols = np.tensordot(gy, w, axes=([1], [0]))  # (N, OH, OW, C, KH, KW)
    cols = cols.transpose(0, 3, 1, 2, 4, 5).astype(dtype, copy=False)
    return _scatter_windows(cols, (h + 2 * p[0], wd + 2 * p[1]), k, s, p, (h, wd))


def conv2d_backward_filter(
    x: np.ndarray,
    gy: np.ndarray,
    kernel_hw: IntPair,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> np.ndarray:
    """Gradient of :func:`conv2d` with respect to the filters ``w``.

    Args:
        x: forward input ``(N, C, H, W)``.
        gy: output gradient ``(N, O, OH, OW)``.
        kernel_hw: ``(KH, KW)`` (or int) of the filters.
        stride, padding: as in the forward call.

    Returns:
        ``(O, C, KH, KW)`` array of dtype ``result_type(x, gy)``.
    """
    x = np.asarray(x)
    gy = np.asarray(gy)
    _check_4d("x", x)
    _check_4d("gy", gy)
    k, s, p = _params(kernel_hw, stride, padding)
    oh, ow = conv2d_output_hw(x.shape[2], x.shape[3], k, s, p)
    if gy.shape[0] != x.shape[0] or gy.shape[2:] != (oh, ow):
        raise ValueError(f"gy shape {gy.shape} does not match x {x.shape} / output {(oh, ow)}")
    dtype = np.result_type(x, gy)
    win = _windows(_pad(x, p), k, s)  # (N, C, OH, OW, KH, KW)
    gw = np.tensordot(gy, win, axes=([0, 2, 3], [0, 2, 3]))  # (O, C, KH, KW)
    return np.ascontiguousarray(gw, dtype=dtype)


# --------------------------------------------------------------------------
# max pooling
# --------------------------------------------------------------------------
def _max_pool_first_argmax(
    x: np.ndarray, kernel: IntPair, stride: IntPair | None, padding: IntPair
) -> tuple[np.ndarray, np.ndarray]:
    """Max-pool values and the flat ``h * W + w`` index of each window's first argmax.

    The index refers to the unpadded ``(H, W)`` plane and never points at a
    padded position (even if all real values of a window are ``-inf``).  If a
    window contains NaN the value is NaN and the index is its first NaN.
    """
    x = np.asarray(x)
    _check_4d("x", x)
    k, s, p = _params(kernel, stride, padding)
    _check_pool_padding(k, p)
    n, c, h, w = x.shape
    oh, ow = conv2d_output_hw(h, w, k, s, p)
    win = _windows(_pad(x, p, _lowest(x.dtype)), k, s)  # (N, C, OH, OW, KH, KW)
    m = win.max(axis=(4, 5))
    hit = win == m[..., None, None]
    if np.issubdtype(x.dtype, np.floating):
        hit |= np.isnan(win)
    valid = np.zeros((h + 2 * p[0], w + 2 * p[1]), dtype=bool)
    valid[p[0] : p[0] + h, p[1] : p[1] + w] = True
    hit &= sliding_window_view(valid, k)[:: s[0], :: s[1]]  # (OH, OW, KH, KW)
    first = hit.reshape(n, c, oh, ow, k[0] * k[1]).argmax(axis=-1)  # first True
    di, dj = np.divmod(first, k[1])
    rows = np.arange(oh)[:, None] * s[0] + di - p[0]
    cols = np.arange(ow)[None, :] * s[1] + dj - p[1]
    return m, rows * w + cols


def max_pool2d(
    x: np.ndarray, kernel: IntPair, stride: IntPair | None = None, padding: IntPair = 0
) -> np.ndarray:
    """2-D max pooling (PyTorch ``max_pool2d``, ``ceil_mode=False``, dilation 1).

    Padding is ``-inf`` (never selected); ``stride=None`` means ``stride=kernel``;
    ``padding`` must be ``<= kernel // 2``.

    Returns:
        ``(N, C, OH, OW)`` array of ``x``'s dtype.
    """
    x = np.asarray(x)
    _check_4d("x", x)
    k, s, p = _params(kernel, stride, padding)
    _check_pool_padding(k, p)
    conv2d_output_hw(x.shape[2], x.shape[3], k, s, p)
    win = _windows(_pad(x, p, _lowest(x.dtype)), k, s)
    return np.ascontiguousarray(win.max(axis=(4, 5)))


def max_pool2d_backward(
    x: np.ndarray,
    gy: np.ndarray,
    kernel: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
) -> np.ndarray:
    """Gradient of :func:`max_pool2d` with respect to ``x``.

    Each ``gy`` element is routed to the first maximum (row-major ``(kh, kw)``
    order) of its window; overlapping windows accumulate.

    Returns:
        ``x``-shaped array of dtype ``result_type(x, gy)``.
    """
    x = np.asarray(x)
    gy = np.asarray(gy)
    _, flat = _max_pool_first_argmax(x, kernel, stride, padding)
    if gy.shape != flat.shape:
        raise ValueError(f"gy shape {gy.shape} does not match the pool output {flat.shape}")
    n, c, h, w = x.shape
    dtype = np.result_type(x, gy)
    gx = np.zeros(n * c * h * w, dtype=dtype)
    base = (np.arange(n * c) * (h * w)).reshape(n, c, 1, 1)
    np.add.at(gx, (flat + base).ravel(), gy.astype(dtype, copy=False).ravel())
    return gx.reshape(x.shape)


def max_pool2d_select(
    x: np.ndarray,
    gx_like: np.ndarray,
    kernel: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
) -> np.ndarray:
    """Adjoint of :func:`max_pool2d_backward` with respect to ``gy``.

    For each window returns ``gx_like`` (``x``-shaped) at that window's
    first-argmax position of ``x``, so that
    ``<max_pool2d_backward(x, gy), G> == <gy, max_pool2d_select(x, G)>``.
    ``max_pool2d_select(x, x) == max_pool2d(x)`` (NaN-free inputs).

    Returns:
        pool-output-shaped ``(N, C, OH, OW)`` array of ``gx_like``'s dtype.
    """
    x = np.asarray(x)
    gx_like = np.asarray(gx_like)
    if gx_like.shape != x.shape:
        raise ValueError(f"gx_like shape {gx_like.shape} must equal x shape {x.shape}")
    _, flat = _max_pool_first_argmax(x, kernel, stride, padding)
    n, c, oh, ow = flat.shape
    out = np.take_along_axis(gx_like.reshape(n, c, -1), flat.reshape(n, c, -1), axis=2)
    return out.reshape(n, c, oh, ow)


# --------------------------------------------------------------------------
# average pooling
# --------------------------------------------------------------------------
def _avg_dtype(dtype: np.dtype) -> np.dtype:
    return dtype if np.issubdtype(dtype, np.inexact) else np.dtype(np.float64)


def avg_pool2d(
    x: np.ndarray, kernel: IntPair, stride: IntPair | None = None, padding: IntPair = 0
) -> np.ndarray:
    """2-D average pooling (PyTorch ``avg_pool2d``, ``count_include_pad=True``).

    Zero padding; every window is divided by ``kh * kw``.  ``stride=None``
    means ``stride=kernel``; ``padding`` must be ``<= kernel // 2``.

    Returns:
        ``(N, C, OH, OW)`` array of ``x``'s dtype (float64 for integer input).
    """
    x = np.asarray(x)
    _check_4d("x", x)
    k, s, p = _params(kernel, stride, padding)
    _check_pool_padding(k, p)
    conv2d_output_hw(x.shape[2], x.shape[3], k, s, p)
    dtype = _avg_dtype(x.dtype)
    win = _windows(_pad(x.astype(dtype, copy=False), p), k, s)
    return np.ascontiguousarray(win.sum(axis=(4, 5)) / (k[0] * k[1]), dtype=dtype)


def avg_pool2d_backward(
    gy: np.ndarray,
    input_hw: IntPair,
    kernel: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
) -> np.ndarray:
    """Gradient of :func:`avg_pool2d` with respect to its input.

    Each ``gy`` element contributes ``gy / (kh * kw)`` to every real input
    position of its window (padded positions are dropped); rows/columns that
    no window touches get 0.

    Returns:
        ``(N, C, H, W)`` array of ``gy``'s dtype (float64 for integer input).
    """
    gy = np.asarray(gy)
    _check_4d("gy", gy)
    k, s, p = _params(kernel, stride, padding)
    _check_pool_padding(k, p)
    h, w = pair(input_hw)
    oh, ow = conv2d_output_hw(h, w, k, s, p)
    if gy.shape[2:] != (oh, ow):
        raise ValueError(f"gy shape {gy.shape} does not match the pool output size {(oh, ow)}")
    dtype = _avg_dtype(gy.dtype)
    g = gy.astype(dtype, copy=False) / (k[0] * k[1])
    cols = np.broadcast_to(g[..., None, None], (*g.shape, k[0], k[1]))
    return _scatter_windows(cols, (h + 2 * p[0], w + 2 * p[1]), k, s, p, (h, w))
