"""Lowering of conv2d and its backward passes: calls of the conv2d template.

The forward pass and the backward-data pass may carry a fused epilogue (bias and
activation; the activation-derivative mask of the layer below), applied by the
template to each image's output: as the GEMM stores it (forward) or right after
col2im (backward data).
"""

from __future__ import annotations

from ..ir.errors import GraphcError, at
from ..ir.graph import Tensor
from ..ops.conv import Conv2D, Conv2DBackwardData, Conv2DBackwardFilter
from .elementwise import lower_epilogue
from .fusion import Group, host_output
from .ir import Expr, Lit, Ptr, TemplateCall, size
from .memplan import Plan
from .registry import lowers

#: the index variables of a conv epilogue: image, channel, flat position in the image
IMAGE_AXES = [("n", 1), ("i", 1), ("j", 2)]

#: the conv2d/pool2d templates index within one image in C ``int`` (see kernels/common.h)
INT_MAX = 2**31 - 1


def window_out(n: int, k: int, stride: int, pad: int) -> int:
    """Output size of a window sliding over ``n`` elements (as the templates compute it)."""
    span = n + 2 * pad - k
    return 0 if span < 0 else span // stride + 1


def check_image_sizes(node: Tensor, sizes: dict[str, int]) -> None:
    """Refuse, at compile time, an image whose per-image sizes (``sizes``: what, elements)
    reach 2**31: the templates do per-image index arithmetic in 32 bits (only the batch,
    which crosses images, is 64-bit)."""
    big = {k: v for k, v in sizes.items() if v > INT_MAX}
    if big:
        what = ", ".join(f"{k} = {v}" for k, v in big.items())
        raise GraphcError(f"{node.op.label(node.attrs)} ({node.name}): one image is too large for "
                          f"the C backend ({what}; at most 2**31 - 1 elements per image, input "
                          f"shape {tuple(node.inputs[0].shape)}){at(node.site)}")


def _check_conv(node: Tensor, x_shape: tuple, w_shape: tuple, attrs: dict) -> None:
    (sh, sw), (ph, pw) = attrs["stride"], attrs["padding"]
    _, c, h, w = x_shape
    o, _, kh, kw = w_shape
    oh, ow = window_out(h, kh, sh, ph), window_out(w, kw, sw, pw)
    hp, wp = h + 2 * ph, w + 2 * pw
    check_image_sizes(node, {"C": c, "O": o, "C*H*W": c * h * w, "C*(H+2PH)*(W+2PW)": c * hp * wp,
                             "H+2PH": hp, "W+2PW": wp, "O*OH*OW": o * oh * ow,
                             "C*KH*KW*OH*OW": c * kh * kw * oh * ow, "O*C*KH*KW": o * c * kh * kw})


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
    _check_conv(node, x.shape, w_shape, node.attrs)
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
