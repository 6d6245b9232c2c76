"""``gc.nn``: Keras/PyTorch-style layers built from graph tensors.

Layers create their parameters as ``gc.variable``s on the first call and
return ordinary graph tensors, so autodiff, fusion and DOT export keep
working. Dropout and BatchNorm follow the graph's learning phase, chosen per
``Session.run`` (``training=True/False``) without rebuilding the graph.

Example::

    import numpy as np
    import graphc as gc

    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 3), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        net = gc.nn.Sequential([
            gc.nn.Dense(16, activation="relu"), gc.nn.BatchNorm(), gc.nn.Dropout(0.2),
            gc.nn.Dense(2),
        ])
        loss = gc.losses.softmax_cross_entropy(net(x), y)
        train = gc.optim.Adam(1e-2).minimize(loss)
    sess = gc.Session(g)
    sess.run([loss, train], {x: np.ones((4, 3), np.float32), y: np.zeros(4, np.int64)})
"""

from .attention import MultiHeadAttention, TransformerEncoderLayer
from .base import Layer, Sequential, count_parameters, get_activation
from .embedding import Embedding
from .layers import AvgPool2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D
from .norm import BatchNorm, LayerNorm
from .recurrent import GRU, LSTM, RNN, Bidirectional
from .residual import ResidualBlock

__all__ = [
    "Layer", "Sequential", "count_parameters", "get_activation", "Dense", "Conv2D",
    "MaxPool2D", "AvgPool2D", "Flatten", "Dropout", "BatchNorm", "LayerNorm", "Embedding",
    "MultiHeadAttention", "TransformerEncoderLayer", "ResidualBlock",
    "RNN", "LSTM", "GRU", "Bidirectional",
]
