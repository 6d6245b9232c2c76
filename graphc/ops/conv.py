"""conv2d and 2-D pooling (NCHW activations, OIHW filters), PyTorch semantics.

Backward passes are ops of their own (``conv2d_backward_data`` ...), each
with a gradient, so ``grad`` of ``grad`` works through convolutions too. The
NumPy references live in :mod:`graphc.reference.conv`.
"""

from __future__ import annotations

from .. import dtypes as _dt
from ..errors import ArgumentError, DTypeError
from ..graph import Tensor, as_tensor, make, shape_error
from ..reference import conv as ref
from .base import Op, located, register


def _pair(v) -> tuple[int, int]:
    try:
        return ref.pair(v)
    except (TypeError, ValueError) as exc:
        raise located(ArgumentError(f"conv/pool: bad size {v!r} ({exc}); use an int or "
                                    "an (h, w) pair")) from None


def _out_hw(op, x, kernel, stride, padding):
    try:
        return ref.conv2d_output_hw(x.shape[2], x.shape[3], kernel, stride, padding)
    except (ValueError, TypeError) as exc:
        raise shape_error(op, str(exc), x.shape) from None


def _check_image(op: str, *ts: Tensor) -> str:
    for t in ts:
        if t.ndim != 4:
            raise shape_error(op, "expects 4-D NCHW tensors", *(t.shape for t in ts))
        if any(d is None for d in t.shape[1:]):
            raise shape_error(op, "only the batch axis may be None", t.shape)
    dtype = _dt.join(op, [t.dtype for t in ts])
    if not _dt.is_float(dtype):
        raise DTypeError(f"{op}: needs float tensors, got {dtype}")
    return dtype


@register
class Conv2D(Op):
    name = "conv2d"

    def infer(self, inputs, stride, padding):
        x, w = inputs
        dtype = _check_image("conv2d", x, w)
        if x.shape[1] != w.shape[1]:
            raise shape_error("conv2d", f"input has {x.shape[1]} channels but the filter "
                              f"expects {w.shape[1]} (filters are OIHW)", x.shape, w.shape)
        oh, ow = _out_hw("conv2d", x, w.shape[2:], stride, padding)
        return (x.shape[0], w.shape[0], oh, ow), dtype

    def compute(self, ctx, node, x, w):
        return ref.conv2d(x, w, node.attrs["stride"], node.attrs["padding"])

    def grad(self, node, g):
        x, w = node.inputs
        s, p = node.attrs["stride"], node.attrs["padding"]
        return [conv2d_backward_data(g, w, x.shape[2:], s, p),
                conv2d_backward_filter(x, g, w.shape[2:], s, p)]


@register
class Conv2DBackwardData(Op):
    name = "conv2d_backward_data"

    def infer(self, inputs, input_hw, stride, padding):
        gy, w = inputs
        dtype = _check_image(self.name, gy, w)
        return (gy.shape[0], w.shape[1]) + tuple(input_hw), dtype

    def compute(self, ctx, node, gy, w):
        a = node.attrs
        return ref.conv2d_backward_data(gy, w, a["input_hw"], a["stride"], a["padding"])

    def grad(self, node, g):
        gy, w = node.inputs
        s, p = node.attrs["stride"], node.attrs["padding"]
        return [conv2d(g, w, s, p), conv2d_backward_filter(g, gy, w.shape[2:], s, p)]


@register
class Conv2DBackwardFilter(Op):
    name = "conv2d_backward_filter"

    def infer(self, inputs, kernel_hw, stride, padding):
        x, gy = inputs
        dtype = _check_image(self.name, x, gy)
        return (gy.shape[1], x.shape[1]) + tuple(kernel_hw), dtype

    def compute(self, ctx, node, x, gy):
        a = node.attrs
        return ref.conv2d_backward_filter(x, gy, a["kernel_hw"], a["stride"], a["padding"])

    def grad(self, node, g):
        x, gy = node.inputs
        s, p = node.attrs["stride"], node.attrs["padding"]
        return [conv2d_backward_data(gy, g, x.shape[2:], s, p), conv2d(x, g, s, p)]


def conv2d(x, w, stride=1, padding=0) -> Tensor:
    """2-D cross-correlation: x (N, C, H, W), w (O, C, KH, KW) -> (N, O, OH, OW).

    OH = floor((H + 2 padding - KH) / stride) + 1, zero padding.

    Example::

        y = gc.conv2d(x, w, stride=1, padding=1)   # "same" size for 3x3 filters
    """
    return make(Conv2D, [as_tensor(x), as_tensor(w)],
                {"stride": _pair(stride), "padding": _pair(padding)})


def conv2d_backward_data(gy, w, input_hw, stride=1, padding=0) -> Tensor:
    """Gradient of conv2d with respect to its input (a transposed convolution)."""
    return make(Conv2DBackwardData, [gy, w], {"input_hw": tuple(input_hw),
                                              "stride": _pair(stride), "padding": _pair(padding)})


def conv2d_backward_filter(x, gy, kernel_hw, stride=1, padding=0) -> Tensor:
    """Gradient of conv2d with respect to its filter."""
    return make(Conv2DBackwardFilter, [x, gy], {"kernel_hw": tuple(kernel_hw),
                                                "stride": _pair(stride), "padding": _pair(padding)})


# -- pooling -------------------------------------------------------------------------------

def _pool_attrs(kernel_size, stride, padding):
    k = _pair(kernel_size)
    return {"kernel": k, "stride": k if stride is None else _pair(stride), "padding": _pair(padding)}


def _check_pool(op, x, a):
    dtype = _check_image(op, x)
    if any(p > k // 2 for p, k in zip(a["padding"], a["kernel"])):
        raise shape_error(op, f"padding {a['padding']} must be at most half the kernel "
                          f"{a['kernel']}", x.shape)
    return dtype


@register
class MaxPool2D(Op):
    name = "max_pool2d"

    def infer(self, inputs, kernel, stride, padding):
        x = inputs[0]
        dtype = _check_pool(self.name, x, {"kernel": kernel, "padding": padding})
        return x.shape[:2] + _out_hw(self.name, x, kernel, stride, padding), dtype

    def compute(self, ctx, node, x):
        a = node.attrs
        return ref.max_pool2d(x, a["kernel"], a["stride"], a["padding"])

    def grad(self, node, g):
        return [make(MaxPool2DBackward, [node.inputs[0], g], node.attrs)]


@register
class MaxPool2DBackward(Op):
    """Route each window's gradient to its first maximum."""

    name = "max_pool2d_backward"

    def infer(self, inputs, kernel, stride, padding):
        return inputs[0].shape, inputs[1].dtype

    def compute(self, ctx, node, x, gy):
        a = node.attrs
        return ref.max_pool2d_backward(x, gy, a["kernel"], a["stride"], a["padding"])

    def grad(self, node, g):
        # Linear in gy; piecewise constant in x (zero gradient almost everywhere).
        return [None, make(MaxPool2DSelect, [node.inputs[0], g], node.attrs)]


@register
class MaxPool2DSelect(Op):
    """For each window, the value of ``g`` at the first maximum of ``x``."""

    name = "max_pool2d_select"

    def infer(self, inputs, kernel, stride, padding):
        x = inputs[0]
        return x.shape[:2] + _out_hw(self.name, x, kernel, stride, padding), inputs[1].dtype

    def compute(self, ctx, node, x, gx):
        a = node.attrs
        return ref.max_pool2d_select(x, gx, a["kernel"], a["stride"], a["padding"])

    def grad(self, node, g):
        return [None, make(MaxPool2DBackward, [node.inputs[0], g], node.attrs)]


@register
class AvgPool2D(Op):
    name = "avg_pool2d"

    def infer(self, inputs, kernel, stride, padding):
        x = inputs[0]
        dtype = _check_pool(self.name, x, {"kernel": kernel, "padding": padding})
        return x.shape[:2] + _out_hw(self.name, x, kernel, stride, padding), dtype

    def compute(self, ctx, node, x):
        a = node.attrs
        return ref.avg_pool2d(x, a["kernel"], a["stride"], a["padding"])

    def grad(self, node, g):
        x = node.inputs[0]
        return [make(AvgPool2DBackward, [g], dict(node.attrs, input_hw=x.shape[2:]))]


@register
class AvgPool2DBackward(Op):
    name = "avg_pool2d_backward"

    def infer(self, inputs, kernel, stride, padding, input_hw):
        gy = inputs[0]
        return gy.shape[:2] + tuple(input_hw), gy.dtype

    def compute(self, ctx, node, gy):
        a = node.attrs
        return ref.avg_pool2d_backward(gy, a["input_hw"], a["kernel"], a["stride"], a["padding"])

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
