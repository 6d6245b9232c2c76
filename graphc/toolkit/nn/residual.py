"""ResidualBlock: the two-convolution residual block of ResNet-18/34 (torchvision's BasicBlock).

Example::

    import graphc as gc
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 1, 8, 8), name="x")
        h = gc.nn.Conv2D(16, 3, padding=1)(x)                     # (None, 16, 8, 8)
        h = gc.nn.ResidualBlock(16)(h)                            # identity shortcut
        h = gc.nn.ResidualBlock(32, stride=2)(h)                  # projection, (None, 32, 4, 4)
"""

from __future__ import annotations

from collections.abc import Callable

from ...ir import dtypes as _dt
from ...ir import shapes as _sh
from ...ir.errors import DTypeError, GraphcError, ShapeError, at, user_site
from ...ir.graph import Tensor
from ...ir.scopes import name_scope
from ...ops.elemwise import relu
from .._args import bad_value, integer, number
from .base import Layer, unique_tensors
from .layers import Conv2D
from .norm import BatchNorm


class ResidualBlock(Layer):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`` on NCHW input.

    ``conv1`` is 3x3 with ``stride`` and ``conv2`` 3x3 with stride 1, both
    padding 1, ``channels`` filters and no bias (the BatchNorm that follows
    has a shift). The shortcut is the identity when the output has the
    input's shape; when ``stride != 1`` or the input has another channel
    count it is a projection, a 1x1 convolution with ``stride`` (no bias)
    followed by a BatchNorm, as in torchvision's ``BasicBlock`` ("option B"
    of He et al. 2016). ``projection=True`` forces the projection, ``False``
    forbids it (a ShapeError when the shapes differ); ``None`` decides.

    Sub-layers live in the block's scope (``"residual_block"`` by default),
    named as torchvision's attributes: ``conv1``, ``bn1``, ``conv2``, ``bn2``
    and ``downsample/0`` (the 1x1 conv), ``downsample/1`` (its BatchNorm).
    Conv weights are OIHW like ``torch.nn.Conv2d.weight``
    (``kernel_init``, default He normal); a BatchNorm's ``gamma``/``beta``
    are torch's ``weight``/``bias`` (``momentum`` uses Keras' convention:
    torch's 0.1 is 0.9 here). The BatchNorms follow the learning phase
    (batch statistics in training, running ones in evaluation), and, like
    a BatchNorm, a block is applied once (a new block for another input).
    Output: (N, channels, ceil(H / stride), ceil(W / stride)).

    Example::

        block = gc.nn.ResidualBlock(32, stride=2)
        h = block(h)                         # (None, 16, 8, 8) -> (None, 32, 4, 4)
        assert block.downsample is not None  # a projection: the shape changed
        print(block.parameters[0].name)      # "residual_block/conv1/W"
    """

    default_name = "residual_block"

    def __init__(self, channels: int, stride: int = 1, projection: bool | None = None,
                 momentum: float = 0.9, eps: float = 1e-5,
                 kernel_init: str | Callable = "he_normal", name: str | None = None) -> None:
        super().__init__(name)
        owner = "ResidualBlock"
        self.channels = integer(owner, "channels", channels, low=1)
        self.stride = integer(owner, "stride", stride, low=1)
        if projection not in (None, True, False):
            raise bad_value(f"{owner}: projection must be None, True or False, got {projection!r}")
        self.projection = projection
        self.momentum = number(owner, "momentum", momentum, low=0.0, high=1.0)
        self.eps = number(owner, "eps", eps, low=0.0, low_open=True)
        self.kernel_init = kernel_init
        self.conv1 = self._conv(3, self.stride, 1, "conv1")
        self.bn1 = BatchNorm(self.momentum, self.eps, name="bn1")
        self.conv2 = self._conv(3, 1, 1, "conv2")
        self.bn2 = BatchNorm(self.momentum, self.eps, name="bn2")
        self.downsample: tuple[Conv2D, BatchNorm] | None = None
        self._applied = False

    def _conv(self, k: int, stride: int, padding: int, name: str) -> Conv2D:
        return Conv2D(self.channels, k, stride=stride, padding=padding, use_bias=False,
                      kernel_init=self.kernel_init, name=name)

    def _check(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] is None:
            raise ShapeError(f"ResidualBlock {self.name!r}: expects NCHW input with a known "
                             f"channel count, got shape {_sh.fmt(x.shape)}{at(user_site())}")
        if not _dt.is_float(x.dtype):
            raise DTypeError(f"ResidualBlock {self.name!r}: needs a float input, got "
                             f"{x.dtype}; use gc.cast{at(user_site())}")

    def build(self, x):  # checks and the shortcut kind, before the block counts as built
        self._check(x)
        changes = self.stride != 1 or x.shape[1] != self.channels
        if self.projection is False and changes:
            raise ShapeError(f"ResidualBlock {self.name!r}: projection=False needs an identity "
                             f"shortcut, but input {_sh.fmt(x.shape)} becomes {self.channels} "
                             f"channels with stride {self.stride}{at(user_site())}")
        if changes if self.projection is None else self.projection:
            self.downsample = (self._conv(1, self.stride, 0, "0"),
                               BatchNorm(self.momentum, self.eps, name="1"))

    def forward(self, x):
        # refuse a second call before any op is made (each BatchNorm is applied once)
        if self._applied:
            raise GraphcError(f"ResidualBlock {self.name!r} was already applied once; its "
                              f"BatchNorm statistics belong to that call: use a new block"
                              f"{at(user_site())}")
        self._check(x)
        h = relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        if self.downsample is None:
            shortcut = x
        else:
            with name_scope("downsample"):
                conv, bn = self.downsample
                shortcut = bn(conv(x))
        self._applied = True
        return relu(h + shortcut)

    @property
    def layers(self) -> list[Layer]:
        """The sub-layers: conv1, bn1, conv2, bn2, then the projection's conv and BatchNorm."""
        return [self.conv1, self.bn1, self.conv2, self.bn2, *(self.downsample or ())]

    @property
    def variables(self) -> list[Tensor]:
        return unique_tensors(v for layer in self.layers for v in layer.variables)

    def extra_repr(self) -> str:
        shortcut = "" if self.projection is None else f", projection={self.projection}"
        return f"{self.channels}, stride={self.stride}{shortcut}"
