"""2-D max and average pooling (NCHW), PyTorch semantics, with their backward passes.

Max pooling pads with -inf and sends the gradient to the first maximum of each
window (row-major order; a NaN counts as the maximum); average pooling pads with
zeros and divides by the full window. Padding must be at most half the kernel.
Each op's NumPy reference is the ``*_reference`` function next to it.
"""

from __future__ import annotations

import numpy as np

from ..ir.errors import shape_error
from ..ir.graph import Op, Tensor, as_tensor, make
from . import windows as W
from .conv import check_image, out_hw, pair

# -- pooling -------------------------------------------------------------------------------

def _pool_attrs(kernel_size, stride, padding):
    k = pair(kernel_size)
    return {"kernel": k, "stride": k if stride is None else pair(stride), "padding": pair(padding)}


def _check_pool(op, x, a):
    dtype = check_image(op, x)
    if any(p > k // 2 for p, k in zip(a["padding"], a["kernel"])):
        raise shape_error(op, f"padding {a['padding']} must be at most half the kernel "
                          f"{a['kernel']}", x.shape)
    return dtype


# -- NumPy references ------------------------------------------------------------

def _pool_input(name: str, a, kernel, stride, padding):
    """``a`` as a 4-D array and the normalized, validated (kernel, stride, padding)."""
    (a,) = W.images(**{name: a})
    k, s, p = W.params(kernel, stride, padding)
    W.check_pool_padding(k, p)
    return a, k, s, p


def _max_pool_first_argmax(
    x: np.ndarray, kernel: W.IntPair, stride: W.IntPair | None, padding: W.IntPair
) -> tuple[np.ndarray, np.ndarray]:
    """Max-pool values and the flat ``h * W + w`` index of each window's first argmax.

    The index refers to the unpadded ``(H, W)`` plane and never points at a
    padded position (even if all real values of a window are ``-inf``).  If a
    window contains NaN the value is NaN and the index is its first NaN.
    """
    x, k, s, p = _pool_input("x", x, kernel, stride, padding)
    n, c, h, w = x.shape
    oh, ow = W.output_hw(h, w, k, s, p)
    win = W.windows(W.pad(x, p, W.lowest(x.dtype)), k, s)  # (N, C, OH, OW, KH, KW)
    m = win.max(axis=(4, 5))
    hit = win == m[..., None, None]
    if np.issubdtype(x.dtype, np.floating):
        hit |= np.isnan(win)
    valid = np.zeros((h + 2 * p[0], w + 2 * p[1]), dtype=bool)
    valid[p[0] : p[0] + h, p[1] : p[1] + w] = True
    hit &= W.sliding_window_view(valid, k)[:: s[0], :: s[1]]  # (OH, OW, KH, KW)
    first = hit.reshape(n, c, oh, ow, k[0] * k[1]).argmax(axis=-1)  # first True
    di, dj = np.divmod(first, k[1])
    rows = np.arange(oh)[:, None] * s[0] + di - p[0]
    cols = np.arange(ow)[None, :] * s[1] + dj - p[1]
    return m, rows * w + cols


def max_pool2d_reference(
    x: np.ndarray, kernel: W.IntPair, stride: W.IntPair | None = None, padding: W.IntPair = 0
) -> np.ndarray:
    """2-D max pooling (PyTorch ``max_pool2d``, ``ceil_mode=False``, dilation 1).

    Padding is ``-inf`` (never selected); ``stride=None`` means ``stride=kernel``;
    ``padding`` must be ``<= kernel // 2``.

    Returns:
        ``(N, C, OH, OW)`` array of ``x``'s dtype.
    """
    x, k, s, p = _pool_input("x", x, kernel, stride, padding)
    W.output_hw(x.shape[2], x.shape[3], k, s, p)
    win = W.windows(W.pad(x, p, W.lowest(x.dtype)), k, s)
    return np.ascontiguousarray(win.max(axis=(4, 5)))


def max_pool2d_backward_reference(x: np.ndarray, gy: np.ndarray, kernel: W.IntPair,
                                  stride: W.IntPair | None = None, padding: W.IntPair = 0) -> np.ndarray:
    """Gradient of :func:`max_pool2d_reference` with respect to ``x``.

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


def max_pool2d_select_reference(x: np.ndarray, gx_like: np.ndarray, kernel: W.IntPair,
                                stride: W.IntPair | None = None, padding: W.IntPair = 0) -> np.ndarray:
    """Adjoint of :func:`max_pool2d_backward_reference` with respect to ``gy``.

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


def _avg_dtype(dtype: np.dtype) -> np.dtype:
    return dtype if np.issubdtype(dtype, np.inexact) else np.dtype(np.float64)


def avg_pool2d_reference(
    x: np.ndarray, kernel: W.IntPair, stride: W.IntPair | None = None, padding: W.IntPair = 0
) -> np.ndarray:
    """2-D average pooling (PyTorch ``avg_pool2d``, ``count_include_pad=True``).

    Zero padding; every window is divided by ``kh * kw``.  ``stride=None``
    means ``stride=kernel``; ``padding`` must be ``<= kernel // 2``.

    Returns:
        ``(N, C, OH, OW)`` array of ``x``'s dtype (float64 for integer input).
    """
    x, k, s, p = _pool_input("x", x, kernel, stride, padding)
    W.output_hw(x.shape[2], x.shape[3], k, s, p)
    dtype = _avg_dtype(x.dtype)
    win = W.windows(W.pad(x.astype(dtype, copy=False), p), k, s)
    return np.ascontiguousarray(win.sum(axis=(4, 5)) / (k[0] * k[1]), dtype=dtype)


def avg_pool2d_backward_reference(gy: np.ndarray, input_hw: W.IntPair, kernel: W.IntPair,
                                  stride: W.IntPair | None = None, padding: W.IntPair = 0) -> np.ndarray:
    """Gradient of :func:`avg_pool2d_reference` with respect to its input.

    Each ``gy`` element contributes ``gy / (kh * kw)`` to every real input
    position of its window (padded positions are dropped); rows/columns that
    no window touches get 0.

    Returns:
        ``(N, C, H, W)`` array of ``gy``'s dtype (float64 for integer input).
    """
    gy, k, s, p = _pool_input("gy", gy, kernel, stride, padding)
    h, w = W.pair(input_hw)
    oh, ow = W.output_hw(h, w, k, s, p)
    if gy.shape[2:] != (oh, ow):
        raise ValueError(f"gy shape {gy.shape} does not match the pool output size {(oh, ow)}")
    dtype = _avg_dtype(gy.dtype)
    g = gy.astype(dtype, copy=False) / (k[0] * k[1])
    cols = np.broadcast_to(g[..., None, None], (*g.shape, k[0], k[1]))
    return W.scatter_windows(cols, (h + 2 * p[0], w + 2 * p[1]), k, s, p, (h, w))


# -- the ops ---------------------------------------------------------------------

class _Pool(Op):
    """A pooling op: attrs ``kernel``, ``stride``, ``padding``; its NumPy reference
    (``numpy``) takes the input arrays, then those three."""

    numpy: staticmethod

    def reference(self, ctx, node, *values):
        a = node.attrs
        return type(self).numpy(*values, a["kernel"], a["stride"], a["padding"])


class _PoolForward(_Pool):
    def infer(self, inputs, kernel, stride, padding):
        x = inputs[0]
        dtype = _check_pool(self.name, x, {"kernel": kernel, "padding": padding})
        return x.shape[:2] + out_hw(self.name, x, kernel, stride, padding), dtype


class MaxPool2D(_PoolForward):
    name = "max_pool2d"
    numpy = staticmethod(max_pool2d_reference)

    def grad(self, node, g):
        return [make(MaxPool2DBackward, [node.inputs[0], g], node.attrs)]


class MaxPool2DBackward(_Pool):
    """Route each window's gradient to its first maximum."""

    name = "max_pool2d_backward"
    numpy = staticmethod(max_pool2d_backward_reference)

    def infer(self, inputs, kernel, stride, padding):
        return inputs[0].shape, inputs[1].dtype

    def grad(self, node, g):
        # Linear in gy; piecewise constant in x (zero gradient almost everywhere).
        return [None, make(MaxPool2DSelect, [node.inputs[0], g], node.attrs)]


class MaxPool2DSelect(_Pool):
    """For each window, the value of ``g`` at the first maximum of ``x``."""

    name = "max_pool2d_select"
    numpy = staticmethod(max_pool2d_select_reference)

    def infer(self, inputs, kernel, stride, padding):
        x = inputs[0]
        return x.shape[:2] + out_hw(self.name, x, kernel, stride, padding), inputs[1].dtype

    def grad(self, node, g):
        return [None, make(MaxPool2DBackward, [node.inputs[0], g], node.attrs)]


class AvgPool2D(_PoolForward):
    name = "avg_pool2d"
    numpy = staticmethod(avg_pool2d_reference)

    def grad(self, node, g):
        x = node.inputs[0]
        return [make(AvgPool2DBackward, [g], dict(node.attrs, input_hw=x.shape[2:]))]


class AvgPool2DBackward(Op):
    """Spread each window's gradient evenly over it (attr ``input_hw``: the image size)."""

    name = "avg_pool2d_backward"

    def infer(self, inputs, kernel, stride, padding, input_hw):
        gy = inputs[0]
        return gy.shape[:2] + tuple(input_hw), gy.dtype

    def reference(self, ctx, node, gy):
        a = node.attrs
        return avg_pool2d_backward_reference(gy, a["input_hw"], a["kernel"], a["stride"], a["padding"])

    def grad(self, node, g):
        a = {k: v for k, v in node.attrs.items() if k != "input_hw"}
        return [make(AvgPool2D, [g], a)]


def max_pool2d(x, kernel_size, stride=None, padding=0) -> Tensor:
    """Max pooling; pads with -inf; stride defaults to ``kernel_size``.

    The gradient goes to the first maximum of each window.
    """
    return make(MaxPool2D, [as_tensor(x)], _pool_attrs(kernel_size, stride, padding))


def avg_pool2d(x, kernel_size, stride=None, padding=0) -> Tensor:
    """Average pooling over the full window (padded zeros counted)."""
    return make(AvgPool2D, [as_tensor(x)], _pool_attrs(kernel_size, stride, padding))
