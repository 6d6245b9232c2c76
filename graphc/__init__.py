"""graphc: a define-then-run deep-learning graph compiler.

Declare a static graph, differentiate it symbolically, run it with a Session.

Example::

    import numpy as np
    import graphc as gc

    with gc.Graph() as g:
        x = gc.placeholder((None, 2), name="x")
        W = gc.variable(np.ones((2, 1), np.float32), name="W")
        loss = gc.mean(gc.square(x @ W))
        train = gc.optim.SGD(lr=0.1).minimize(loss)
    sess = gc.Session(g)
    sess.run([loss, train], {x: np.ones((4, 2), np.float32)})
"""

__version__ = "0.1.0"

from . import distributed
from .env import short_openmp_spin
from .ir.dot import to_dot
from .ir.errors import (
    ArgumentError,
    ArgumentTypeError,
    CheckpointError,
    DTypeError,
    FeedError,
    GraphcError,
    NumericsError,
    ShapeError,
    VerifyError,
)
from .ir.graph import Graph, Tensor, get_default_graph
from .ir.html import to_html
from .ir.scopes import name_scope
from .ops import operators  # noqa: F401 - installs + - * / @ ... on Tensor
from .ops.conv import conv2d
from .ops.debug import check, check_finite, print  # noqa: A004 - gc.print, as tf.print
from .ops.elemwise import (
    abs,
    add,
    cast,
    clip,
    divide,
    elementwise,
    elu,
    equal,
    exp,
    greater,
    greater_equal,
    hard_tanh,
    leaky_relu,
    less,
    less_equal,
    log,
    maximum,
    minimum,
    multiply,
    negative,
    not_equal,
    power,
    relu,
    selu,
    sigmoid,
    softplus,
    sqrt,
    square,
    subtract,
    tanh,
    where,
)
from .ops.elemwise_math import cos, erf, expm1, gelu, log1p, silu, sin
from .ops.indexing import gather, pad, split, stack, take, tril, triu
from .ops.leaves import constant, placeholder, variable
from .ops.linalg import matmul
from .ops.nn import (
    dropout,
    huber,
    log_softmax,
    mae,
    mse,
    sigmoid_cross_entropy,
    softmax,
    softmax_cross_entropy,
)
from .ops.pool import avg_pool2d, max_pool2d
from .ops.reduce import argmax, broadcast_like, broadcast_to, cumsum, logsumexp, max, mean, min, prod, sum
from .ops.shape import concat, expand_dims, flatten, one_hot, reshape, squeeze, transpose
from .ops.state import assign, group
from .ops.stats import std, var
from .runtime.session import Session
from .toolkit import data, init, losses, nn, optim, regularizers, schedules, train
from .transforms.autodiff import grad, zeros_like
from .transforms.scan import scan

short_openmp_spin()  # before any compiled step loads the OpenMP runtime

__all__ = [
    "__version__", "optim", "grad", "zeros_like", "to_dot", "GraphcError", "ShapeError", "ArgumentError",
    "ArgumentTypeError", "CheckpointError", "name_scope", "to_html", "scan", "distributed",
    "DTypeError", "FeedError", "NumericsError", "VerifyError", "Graph", "Tensor", "get_default_graph",
    "conv2d", "max_pool2d", "avg_pool2d", "abs", "add", "cast", "divide", "elementwise", "elu",
    "equal", "exp", "greater", "greater_equal", "hard_tanh", "leaky_relu", "less", "less_equal",
    "log", "maximum", "minimum", "multiply", "negative", "not_equal", "power", "relu", "selu",
    "sigmoid", "softplus", "sqrt", "square", "subtract", "tanh", "where", "constant",
    "placeholder", "variable", "matmul", "dropout", "huber", "log_softmax", "mae", "mse",
    "sigmoid_cross_entropy", "softmax", "softmax_cross_entropy", "argmax", "logsumexp", "max",
    "mean", "sum", "min", "prod", "var", "std", "cumsum", "clip", "broadcast_like", "broadcast_to",
    "concat", "expand_dims",
    "flatten", "one_hot", "reshape", "squeeze", "transpose", "gather", "take", "stack", "split", "pad",
    "tril", "triu",
    "sin", "cos", "log1p", "expm1", "erf", "gelu", "silu",
    "assign", "group", "Session", "data", "train",
    "init", "losses", "nn", "regularizers", "schedules", "print", "check", "check_finite",
]
