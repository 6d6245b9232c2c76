"""Lowering of conv2d and its backward passes: calls of the conv2d template.

The forward pass and the backward-data pass may carry a fused epilogue (bias and
activation; the activation-derivative mask of the layer below), applied by the
template to each image's output: as the GEMM stores it (forward) or right after
col2im (backward data).
"""

from __future__ import annotations

from ..ir.graph import Tensor
from ..ops.conv import Conv2D, Conv2DBackwardData, Conv2DBackwardFilter
from .elementwise import lower_epilogue
from .fusion import Group, host_output
from .ir import Expr, Lit, Ptr, TemplateCall, size
from .memplan import Plan
from .registry import lowers

#: the index variables of a conv epilogue: image, channel, flat position in the image
IMAGE_AXES = [("n", 1), ("i", 1), ("j", 2)]


def conv_shape(x: Tensor, w_shape: tuple, attrs: dict) -> tuple[tuple[str, Expr], ...]:
    """The sizes of a conv2d template call: input x (N, C, H, W), filters (O, C, KH, KW)."""
    (sh, sw), (ph, pw) = attrs["stride"], attrs["padding"]
    n, c, h, w = x.shape
    values = (size(n), c, h, w, w_shape[0], w_shape[2], w_shape[3], sh, sw, ph, pw)
    names = ("N", "C", "H", "W", "O", "KH", "KW", "SH", "SW", "PH", "PW")
    return tuple((k, v if not isinstance(v, int) else Lit(v)) for k, v in zip(names, values))


def _call(group: Group, plan: Plan, fn: str, x: Tensor, w_shape, a: Tensor, b: Tensor,
          epilogue_ok: bool) -> list:
    node = group.root
    out = host_output(group) if group.members else node
    epi = None
    if group.members and epilogue_ok:
        epi = lower_epilogue(group, plan, IMAGE_AXES, out, node, per_image=True)
    args = (Ptr(plan.buffer(a), Lit(0)), Ptr(plan.buffer(b), Lit(0)),
            Ptr(plan.buffer(out), Lit(0), written=True))
    return [TemplateCall("conv2d", fn, node.dtype, args, conv_shape(x, w_shape, node.attrs),
                         workspace=True, epilogue=epi)]


@lowers(Conv2D)
def lower_conv2d(group: Group, plan: Plan) -> list:
    x, w = group.root.inputs
    return _call(group, plan, "conv2d_forward", x, w.shape, x, w, True)


@lowers(Conv2DBackwardData)
def lower_conv2d_backward_data(group: Group, plan: Plan) -> list:
    gy, w = group.root.inputs
    return _call(group, plan, "conv2d_backward_data", group.root, w.shape, gy, w, True)


@lowers(Conv2DBackwardFilter)
def lower_conv2d_backward_filter(group: Group, plan: Plan) -> list:
    x, gy = group.root.inputs
    return _call(group, plan, "conv2d_backward_filter", x, group.root.shape, x, gy, False)
