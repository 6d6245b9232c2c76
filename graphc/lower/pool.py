"""Lowering of 2-D pooling: calls of the pool2d template (PyTorch semantics)."""

from __future__ import annotations

from ..ir.graph import Tensor
from ..ops.pool import AvgPool2D, AvgPool2DBackward, MaxPool2D, MaxPool2DBackward, MaxPool2DSelect
from .conv import check_image_sizes, window_out
from .fusion import Group
from .ir import Lit, Ptr, TemplateCall, size
from .memplan import Plan
from .registry import lowers

#: op class -> the template function; its array arguments are the node's inputs, then the node
_FUNCTIONS = {MaxPool2D: "max_pool2d_forward", AvgPool2D: "avg_pool2d_forward",
              MaxPool2DBackward: "max_pool2d_backward", AvgPool2DBackward: "avg_pool2d_backward",
              MaxPool2DSelect: "max_pool2d_select"}


def pool_shape(x: Tensor, attrs: dict):
    """The sizes of a pool2d template call for the input image x (N, C, H, W)."""
    (kh, kw), (sh, sw), (ph, pw) = attrs["kernel"], attrs["stride"], attrs["padding"]
    n, c, h, w = x.shape
    names = ("N", "C", "H", "W", "KH", "KW", "SH", "SW", "PH", "PW")
    values = (size(n),) + tuple(Lit(v) for v in (c, h, w, kh, kw, sh, sw, ph, pw))
    return tuple(zip(names, values))


@lowers(*_FUNCTIONS)
def lower_pool(group: Group, plan: Plan) -> list:
    node = group.root
    # the input image: the first input, or (avg-pool backward) the node itself
    image = node if isinstance(node.op, AvgPool2DBackward) else node.inputs[0]
    arrays = (*node.inputs, node)
    args = tuple(Ptr(plan.buffer(t), Lit(0), written=t is node) for t in arrays)
    (kh, kw), (sh, sw), (ph, pw) = (node.attrs[k] for k in ("kernel", "stride", "padding"))
    _, c, h, w = image.shape
    oh, ow = window_out(h, kh, sh, ph), window_out(w, kw, sw, pw)
    check_image_sizes(node, {"C": c, "H*W": h * w, "(H+2PH)*(W+2PW)": (h + 2 * ph) * (w + 2 * pw),
                             "OH*OW": oh * ow, "KH*KW": kh * kw})
    fn = _FUNCTIONS[type(node.op)]
    return [TemplateCall("pool2d", fn, node.dtype, args, pool_shape(image, node.attrs))]
