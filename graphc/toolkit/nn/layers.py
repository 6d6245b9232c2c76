"""Core layers: Dense, Conv2D, pooling, Flatten, Dropout.

Images are NCHW and filters OIHW, as in ``gc.conv2d``. Every layer returns
graph tensors made of ordinary graphc ops.

Example::

    import graphc as gc
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 1, 28, 28), name="x")
        h = gc.nn.Conv2D(8, 3, padding=1, activation="relu")(x)   # (None, 8, 28, 28)
        h = gc.nn.MaxPool2D(2)(h)                                  # (None, 8, 14, 14)
        logits = gc.nn.Dense(10)(gc.nn.Dropout(0.25)(gc.nn.Flatten()(h)))
"""

from __future__ import annotations

from collections.abc import Callable

from ...ir import shapes as _sh
from ...ir.errors import ShapeError, at, user_site
from ...ops import conv as _conv
from ...ops import nn as _nnops
from ...ops import pool as _pool
from ...ops.conv import pair
from ...ops.linalg import matmul
from ...ops.shape import flatten, reshape
from .._args import integer, number
from .base import Activation, Layer, get_activation


def _activate(act: Activation | None, y):
    return y if act is None else act(y)


class Dense(Layer):
    """Fully connected: ``activation(x @ W + b)``, W of shape (in_features, units).

    Parameters are ``"<scope>/W"`` (``kernel_init``, default Glorot uniform)
    and ``"<scope>/b"`` (zeros) when ``use_bias``.

    Example::

        h = gc.nn.Dense(128, activation="relu")(x)     # x: (None, 784)
    """

    default_name = "dense"

    def __init__(self, units: int, activation: None | str | Callable = None,
                 use_bias: bool = True, kernel_init: str | Callable = "glorot_uniform",
                 bias_init: str | Callable = "zeros", name: str | None = None) -> None:
        super().__init__(name)
        self.units = integer("Dense", "units", units, low=1)
        self.activation = get_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_init, self.bias_init = kernel_init, bias_init
        self.W = self.b = None

    def build(self, x):
        fan_in = self._input_dim(x, -1, "feature")
        self.W = self.add_weight("W", (fan_in, self.units), self.kernel_init, x)
        if self.use_bias:
            self.b = self.add_weight("b", (self.units,), self.bias_init, x)

    def forward(self, x):
        y = matmul(x, self.W)
        if self.b is not None:
            y = y + self.b
        return _activate(self.activation, y)

    def extra_repr(self) -> str:
        return f"{self.units}"


class Conv2D(Layer):
    """2-D convolution on NCHW input with OIHW filters ``"<scope>/W"``, plus bias.

    The bias ``"<scope>/b"`` has shape (filters,) and is broadcast as
    (1, filters, 1, 1). Output size: floor((H + 2 padding - k) / stride) + 1.

    Example::

        h = gc.nn.Conv2D(16, kernel_size=3, padding=1, activation="relu")(x)
    """

    default_name = "conv2d"

    def __init__(self, filters: int, kernel_size, stride=1, padding=0,
                 activation: None | str | Callable = None, use_bias: bool = True,
                 kernel_init: str | Callable = "glorot_uniform",
                 bias_init: str | Callable = "zeros", name: str | None = None) -> None:
        super().__init__(name)
        self.filters = integer("Conv2D", "filters", filters, low=1)
        self.kernel_size, self.stride, self.padding = pair(kernel_size), stride, padding
        self.activation = get_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_init, self.bias_init = kernel_init, bias_init
        self.W = self.b = None

    def build(self, x):
        if x.ndim != 4:
            raise ShapeError(f"Conv2D: expects NCHW input, got shape {_sh.fmt(x.shape)}"
                             f"{at(user_site())}")
        channels = self._input_dim(x, 1, "channel")
        self.W = self.add_weight("W", (self.filters, channels) + self.kernel_size,
                                 self.kernel_init, x)
        if self.use_bias:
            self.b = self.add_weight("b", (self.filters,), self.bias_init, x)

    def forward(self, x):
        y = _conv.conv2d(x, self.W, stride=self.stride, padding=self.padding)
        if self.b is not None:
            y = y + reshape(self.b, (1, self.filters, 1, 1))
        return _activate(self.activation, y)

    def extra_repr(self) -> str:
        return (f"{self.filters}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}")


class MaxPool2D(Layer):
    """Max pooling (pads with -inf; ``stride`` defaults to ``kernel_size``).

    Example::

        h = gc.nn.MaxPool2D(2)(h)          # halves H and W
    """

    default_name = "max_pool2d"

    def __init__(self, kernel_size, stride=None, padding=0, name: str | None = None) -> None:
        super().__init__(name)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return _pool.max_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return f"{self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2D(MaxPool2D):
    """Average pooling over the full window (padded zeros counted).

    Example::

        h = gc.nn.AvgPool2D(2)(h)
    """

    default_name = "avg_pool2d"

    def forward(self, x):
        return _pool.avg_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding)


class Flatten(Layer):
    """Keep axis 0 (the batch) and flatten the rest: (N, C, H, W) -> (N, C*H*W).

    Example::

        h = gc.nn.Flatten()(h)
    """

    default_name = "flatten"

    def forward(self, x):
        return flatten(x)


class Dropout(Layer):
    """``gc.dropout`` driven by the graph's learning phase.

    Active only when the session runs in training mode
    (``sess.run(..., training=True)``, or by default when an optimizer step
    is fetched); in evaluation it is the identity. Each Dropout layer call
    draws its own mask seed from the graph.

    Example::

        h = gc.nn.Dropout(0.5)(h)
    """

    default_name = "dropout"

    def __init__(self, rate: float, name: str | None = None) -> None:
        super().__init__(name)
        self.rate = number("Dropout", "rate", rate, low=0.0, high=1.0, high_open=True)

    def forward(self, x):
        if self.rate == 0.0:
            return x
        return _nnops.dropout(x, self.rate)

    def extra_repr(self) -> str:
        return f"{self.rate:g}"
