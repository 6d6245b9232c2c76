"""conv2d and its two backward passes (NCHW activations, OIHW filters), PyTorch semantics.

Each op's NumPy reference is the ``*_reference`` function next to it. Backward
passes are ops of their own (``conv2d_backward_data`` ...), each with a gradient,
so ``grad`` of ``grad`` works through convolutions too.

Example::

    y = gc.conv2d(x, w, stride=1, padding=1)           # graph op
    conv2d_reference(xa, wa, 1, 1)                      # the same on NumPy arrays
"""

from __future__ import annotations

import numpy as np

from ..ir import dtypes as _dt
from ..ir.errors import ArgumentError, DTypeError, located, shape_error
from ..ir.graph import Op, Tensor, as_tensor, make
from . import windows as W


def pair(v) -> tuple[int, int]:
    try:
        return W.pair(v)
    except (TypeError, ValueError) as exc:
        raise located(ArgumentError(f"conv/pool: bad size {v!r} ({exc}); use an int or "
                                    "an (h, w) pair")) from None


def out_hw(op, x, kernel, stride, padding):
    try:
        return W.output_hw(x.shape[2], x.shape[3], kernel, stride, padding)
    except (ValueError, TypeError) as exc:
        raise shape_error(op, str(exc), x.shape) from None


def check_image(op: str, *ts: Tensor) -> str:
    for t in ts:
        if t.ndim != 4:
            raise shape_error(op, "expects 4-D NCHW tensors", *(t.shape for t in ts))
        if any(d is None for d in t.shape[1:]):
            raise shape_error(op, "only the batch axis may be None", t.shape)
    dtype = _dt.join(op, [t.dtype for t in ts])
    if not _dt.is_float(dtype):
        raise DTypeError(f"{op}: needs float tensors, got {dtype}")
    return dtype


# -- NumPy references ------------------------------------------------------------

def conv2d_reference(x: np.ndarray, w: np.ndarray, stride: W.IntPair = 1,
                     padding: W.IntPair = 0) -> np.ndarray:
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
    x, w = W.images(x=x, w=w)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"channel mismatch: x {x.shape} vs w {w.shape}")
    k = (w.shape[2], w.shape[3])
    k, s, p = W.params(k, stride, padding)
    W.output_hw(x.shape[2], x.shape[3], k, s, p)
    dtype = np.result_type(x, w)
    win = W.windows(W.pad(x, p), k, s)  # (N, C, OH, OW, KH, KW)
    y = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))  # (N, OH, OW, O)
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2), dtype=dtype)


def conv2d_backward_data_reference(gy: np.ndarray, w: np.ndarray, input_hw: W.IntPair, stride: W.IntPair = 1,
                                   padding: W.IntPair = 0) -> np.ndarray:
    """Gradient of :func:`conv2d_reference` with respect to its input ``x``.

    Args:
        gy: output gradient ``(N, O, OH, OW)``.
        w: filters ``(O, C, KH, KW)``.
        input_hw: ``(H, W)`` of the forward input (needed because of the floor
            in the output-size formula; untouched rows/columns get 0).
        stride, padding: as in the forward call.

    Returns:
        ``(N, C, H, W)`` array of dtype ``result_type(gy, w)``.
    """
    gy, w = W.images(gy=gy, w=w)
    h, wd = W.pair(input_hw)
    k = (w.shape[2], w.shape[3])
    k, s, p = W.params(k, stride, padding)
    oh, ow = W.output_hw(h, wd, k, s, p)
    if gy.shape[1] != w.shape[0] or gy.shape[2:] != (oh, ow):
        raise ValueError(
            f"gy shape {gy.shape} does not match w {w.shape} and output size {(oh, ow)}"
        )
    dtype = np.result_type(gy, w)
    cols = np.tensordot(gy, w, axes=([1], [0]))  # (N, OH, OW, C, KH, KW)
    cols = cols.transpose(0, 3, 1, 2, 4, 5).astype(dtype, copy=False)
    return W.scatter_windows(cols, (h + 2 * p[0], wd + 2 * p[1]), k, s, p, (h, wd))


def conv2d_backward_filter_reference(x: np.ndarray, gy: np.ndarray, kernel_hw: W.IntPair,
                                     stride: W.IntPair = 1, padding: W.IntPair = 0) -> np.ndarray:
    """Gradient of :func:`conv2d_reference` with respect to the filters ``w``.

    Args:
        x: forward input ``(N, C, H, W)``.
        gy: output gradient ``(N, O, OH, OW)``.
        kernel_hw: ``(KH, KW)`` (or int) of the filters.
        stride, padding: as in the forward call.

    Returns:
        ``(O, C, KH, KW)`` array of dtype ``result_type(x, gy)``.
    """
    x, gy = W.images(x=x, gy=gy)
    k, s, p = W.params(kernel_hw, stride, padding)
    oh, ow = W.output_hw(x.shape[2], x.shape[3], k, s, p)
    if gy.shape[0] != x.shape[0] or gy.shape[2:] != (oh, ow):
        raise ValueError(f"gy shape {gy.shape} does not match x {x.shape} / output {(oh, ow)}")
    dtype = np.result_type(x, gy)
    win = W.windows(W.pad(x, p), k, s)  # (N, C, OH, OW, KH, KW)
    gw = np.tensordot(gy, win, axes=([0, 2, 3], [0, 2, 3]))  # (O, C, KH, KW)
    return np.ascontiguousarray(gw, dtype=dtype)


# -- the ops ---------------------------------------------------------------------

class _Conv(Op):
    """A convolution op: two images in, attrs ``stride``, ``padding`` and (the backward
    passes) the size the forward's other input had; ``numpy`` is its NumPy reference,
    taking the two arrays, that size, then stride and padding."""

    numpy: staticmethod
    size_attr: str | None = None

    def reference(self, ctx, node, a, b):
        size = (node.attrs[self.size_attr],) if self.size_attr else ()
        return type(self).numpy(a, b, *size, *self.geometry(node))

    @staticmethod
    def geometry(node: Tensor) -> tuple:
        """The (stride, padding) of a conv node."""
        return node.attrs["stride"], node.attrs["padding"]


class Conv2D(_Conv):
    name = "conv2d"
    numpy = staticmethod(conv2d_reference)

    def hosts_epilogue(self, node):
        return True

    def infer(self, inputs, stride, padding):
        x, w = inputs
        dtype = check_image("conv2d", x, w)
        if x.shape[1] != w.shape[1]:
            raise shape_error("conv2d", f"input has {x.shape[1]} channels but the filter "
                              f"expects {w.shape[1]} (filters are OIHW)", x.shape, w.shape)
        oh, ow = out_hw("conv2d", x, w.shape[2:], stride, padding)
        return (x.shape[0], w.shape[0], oh, ow), dtype

    def grad(self, node, g):
        (x, w), (s, p) = node.inputs, self.geometry(node)
        return [conv2d_backward_data(g, w, x.shape[2:], s, p),
                conv2d_backward_filter(x, g, w.shape[2:], s, p)]


class Conv2DBackwardData(_Conv):
    """d conv2d / d x: a transposed convolution of the output gradient by the filters."""

    name = "conv2d_backward_data"
    numpy = staticmethod(conv2d_backward_data_reference)
    size_attr = "input_hw"

    def hosts_epilogue(self, node):
        return True  # applied per image right after col2im

    def infer(self, inputs, input_hw, stride, padding):
        gy, w = inputs
        return (gy.shape[0], w.shape[1]) + tuple(input_hw), check_image(self.name, gy, w)

    def grad(self, node, g):
        (gy, w), (s, p) = node.inputs, self.geometry(node)
        return [conv2d(g, w, s, p), conv2d_backward_filter(g, gy, w.shape[2:], s, p)]


class Conv2DBackwardFilter(_Conv):
    """d conv2d / d w: the correlation of the input with the output gradient."""

    name = "conv2d_backward_filter"
    numpy = staticmethod(conv2d_backward_filter_reference)
    size_attr = "kernel_hw"

    def infer(self, inputs, kernel_hw, stride, padding):
        x, gy = inputs
        return (gy.shape[1], x.shape[1]) + tuple(kernel_hw), check_image(self.name, x, gy)

    def grad(self, node, g):
        (x, gy), (s, p) = node.inputs, self.geometry(node)
        return [conv2d_backward_data(gy, g, x.shape[2:], s, p), conv2d(x, g, s, p)]


def conv2d(x, w, stride=1, padding=0) -> Tensor:
    """2-D cross-correlation: x (N, C, H, W), w (O, C, KH, KW) -> (N, O, OH, OW).

    OH = floor((H + 2 padding - KH) / stride) + 1, zero padding.

    Example::

        y = gc.conv2d(x, w, stride=1, padding=1)   # "same" size for 3x3 filters
    """
    return make(Conv2D, [as_tensor(x), as_tensor(w)],
                {"stride": pair(stride), "padding": pair(padding)})


def conv2d_backward_data(gy, w, input_hw, stride=1, padding=0) -> Tensor:
    """Gradient of conv2d with respect to its input (a transposed convolution)."""
    return make(Conv2DBackwardData, [gy, w], {"input_hw": tuple(input_hw),
                                              "stride": pair(stride), "padding": pair(padding)})


def conv2d_backward_filter(x, gy, kernel_hw, stride=1, padding=0) -> Tensor:
    """Gradient of conv2d with respect to its filter."""
    return make(Conv2DBackwardFilter, [x, gy], {"kernel_hw": tuple(kernel_hw),
                                                "stride": pair(stride), "padding": pair(padding)})
