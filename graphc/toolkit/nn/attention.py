"""Attention layers: MultiHeadAttention and TransformerEncoderLayer (batch-first).

Both are made of ordinary graph ops (batched ``matmul`` over (N, heads),
``softmax``, ``reshape``/``transpose``, ``where`` for the causal mask), so
autodiff and both backends work on them unchanged. Parameter names and
layouts follow ``torch.nn.MultiheadAttention`` / ``torch.nn.TransformerEncoderLayer``.

Example::

    import graphc as gc
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 16, 32), name="x")            # (N, T, dim)
        h = gc.nn.TransformerEncoderLayer(32, 4, 64)(x)          # (None, 16, 32)
        y = gc.nn.MultiHeadAttention(32, 4, causal=True)(h)      # decoder-style
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...ir import shapes as _sh
from ...ir.errors import DTypeError, ShapeError, at, user_site
from ...ir.graph import Tensor, as_tensor
from ...ops import nn as _nnops
from ...ops.elemwise import relu, where
from ...ops.elemwise_math import gelu
from ...ops.indexing import split
from ...ops.leaves import constant
from ...ops.linalg import matmul
from ...ops.shape import reshape, transpose
from .._args import bad_value, choice, integer, number
from .base import Layer, check_sequence, unique_tensors
from .layers import Dense, Dropout
from .norm import LayerNorm


class MultiHeadAttention(Layer):
    """Multi-head scaled dot-product attention on batch-first (N, T, dim) inputs.

    ``mha(x)`` is self-attention; ``mha(q, kv)`` attends from ``q`` (N, Tq, dim)
    to ``kv`` (N, Tk, dim) (keys and values from the same tensor). Per head h
    of size ``dh = dim // heads``::

        Q, K, V = x Wq^T + bq, kv Wk^T + bk, kv Wv^T + bv     # split into heads
        head_h = softmax(Q_h K_h^T / sqrt(dh)) V_h
        out = concat_h(head_h) Wo^T + bo

    Parameters, laid out and named as ``torch.nn.MultiheadAttention``'s (so values
    copied with ``set_value`` give the same outputs): ``"<scope>/in_proj_weight"``
    (3 dim, dim) holding Wq, Wk, Wv stacked (Glorot uniform),
    ``"<scope>/in_proj_bias"`` (3 dim,), ``"<scope>/out_proj/weight"`` (dim, dim)
    and ``"<scope>/out_proj/bias"`` (dim,) (biases zero). ``causal=True`` lets
    position t attend only to positions <= t (masked scores are -inf, as in
    PyTorch; every row keeps its diagonal, so no row is all masked); it needs
    Tq == Tk. The time axes must be static; the batch may be ``None``.
    ``dropout`` drops attention weights in training mode.

    Example::

        mha = gc.nn.MultiHeadAttention(64, heads=8, causal=True)
        y = mha(x)                      # x: (None, 20, 64) -> (None, 20, 64)
        z = gc.nn.MultiHeadAttention(64, 8)(y, memory)     # cross-attention
    """

    default_name = "mha"

    def __init__(self, dim: int, heads: int, causal: bool = False, dropout: float = 0.0,
                 name: str | None = None) -> None:
        super().__init__(name)
        self.dim = integer("MultiHeadAttention", "dim", dim, low=1)
        self.heads = integer("MultiHeadAttention", "heads", heads, low=1)
        if self.dim % self.heads:
            raise bad_value(f"MultiHeadAttention: dim ({self.dim}) must be divisible by "
                            f"heads ({self.heads})")
        if not isinstance(causal, bool):
            raise bad_value(f"MultiHeadAttention: causal must be True or False, got {causal!r}")
        self.causal = causal
        self.dropout = number("MultiHeadAttention", "dropout", dropout, low=0.0, high=1.0,
                              high_open=True)
        self.in_proj_weight = self.in_proj_bias = None
        self.out_proj_weight = self.out_proj_bias = None
        self._kv: Tensor | None = None

    def __call__(self, query: Any, key_value: Any = None) -> Tensor:
        self._kv = None if key_value is None else as_tensor(key_value)
        try:
            return super().__call__(query)
        finally:
            self._kv = None

    def _check_all(self, x: Tensor) -> Tensor:
        kv = x if self._kv is None else self._kv
        check_sequence(f"MultiHeadAttention {self.name!r}", x, self.dim, "query")
        if kv is not x:
            check_sequence(f"MultiHeadAttention {self.name!r}", kv, self.dim, "key_value")
            if kv.dtype != x.dtype:
                raise DTypeError(f"MultiHeadAttention {self.name!r}: query is {x.dtype} but "
                                 f"key_value is {kv.dtype}{at(user_site())}")
            if self.causal and kv.shape[1] != x.shape[1]:
                raise ShapeError(f"MultiHeadAttention {self.name!r}: causal attention needs "
                                 f"as many keys as queries, got query {_sh.fmt(x.shape)} and "
                                 f"key_value {_sh.fmt(kv.shape)}{at(user_site())}")
        return kv

    def build(self, x):
        self._check_all(x)
        e = self.dim
        self.in_proj_weight = self.add_weight("in_proj_weight", (3 * e, e), "glorot_uniform", x)
        self.in_proj_bias = self.add_weight("in_proj_bias", (3 * e,), "zeros", x)
        self.out_proj_weight = self.add_weight("out_proj/weight", (e, e), "glorot_uniform", x)
        self.out_proj_bias = self.add_weight("out_proj/bias", (e,), "zeros", x)

    def _heads(self, t: Tensor) -> Tensor:  # (N, T, dim) -> (N, heads, T, dh)
        n, steps = t.shape[0], t.shape[1]
        return transpose(reshape(t, (n, steps, self.heads, self.dim // self.heads)), (0, 2, 1, 3))

    def forward(self, x):
        kv = self._check_all(x)
        if x.dtype != self.in_proj_weight.dtype:
            raise DTypeError(f"MultiHeadAttention {self.name!r}: was built for "
                             f"{self.in_proj_weight.dtype} input, got {x.dtype}{at(user_site())}")
        wq, wk, wv = split(self.in_proj_weight, 3, axis=0)
        bq, bk, bv = split(self.in_proj_bias, 3, axis=0)
        q = self._heads(matmul(x, wq, transpose_b=True) + bq)
        k = self._heads(matmul(kv, wk, transpose_b=True) + bk)
        v = self._heads(matmul(kv, wv, transpose_b=True) + bv)
        scores = matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(self.dim // self.heads))
        if self.causal:
            steps = x.shape[1]
            keep = constant(np.tri(steps, steps, dtype=bool), "bool")
            scores = where(keep, scores, constant(-np.inf, scores.dtype))
        weights = _nnops.softmax(scores, axis=-1)
        if self.dropout > 0.0:
            weights = _nnops.dropout(weights, self.dropout)
        heads = transpose(matmul(weights, v), (0, 2, 1, 3))          # (N, Tq, heads, dh)
        merged = reshape(heads, (x.shape[0], x.shape[1], self.dim))
        return matmul(merged, self.out_proj_weight, transpose_b=True) + self.out_proj_bias

    def extra_repr(self) -> str:
        extra = ", causal=True" if self.causal else ""
        return f"{self.dim}, heads={self.heads}{extra}"


class TransformerEncoderLayer(Layer):
    """One Transformer encoder block, structured as ``torch.nn.TransformerEncoderLayer``
    with ``batch_first=True``.

    Post-norm (default)::

        x = norm1(x + drop(self_attn(x)))
        x = norm2(x + drop(linear2(drop(act(linear1(x))))))

    pre-norm (``norm_first=True``): ``x = x + drop(self_attn(norm1(x)))``, then
    ``x = x + drop(ff(norm2(x)))``. ``act`` is ``"relu"`` or ``"gelu"`` (exact).
    Sub-layers live in the layer's scope: ``self_attn`` (a
    :class:`MultiHeadAttention`, ``causal`` passed on, attention dropout =
    ``dropout``), ``linear1``/``linear2`` (:class:`Dense`; note ``W`` is
    (in, out), the transpose of PyTorch's ``weight``), ``norm1``/``norm2``
    (:class:`LayerNorm`, ``eps``). Dropout is active only in training mode.

    Example::

        enc = gc.nn.TransformerEncoderLayer(64, heads=4, ff_dim=256, dropout=0.1)
        h = enc(gc.nn.Embedding(1000, 64)(ids))     # ids: (None, T) -> (None, T, 64)
    """

    default_name = "transformer_encoder_layer"

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float = 0.0,
                 norm_first: bool = False, activation: str = "relu", eps: float = 1e-5,
                 causal: bool = False, name: str | None = None) -> None:
        super().__init__(name)
        owner = "TransformerEncoderLayer"
        self.ff_dim = integer(owner, "ff_dim", ff_dim, low=1)
        self.rate = number(owner, "dropout", dropout, low=0.0, high=1.0, high_open=True)
        if not isinstance(norm_first, bool):
            raise bad_value(f"{owner}: norm_first must be True or False, got {norm_first!r}")
        self.norm_first = norm_first
        self.activation = choice(owner, "activation", activation, ("relu", "gelu"))
        self.self_attn = MultiHeadAttention(dim, heads, causal=causal, dropout=self.rate,
                                            name="self_attn")
        self.dim, self.heads = self.self_attn.dim, self.self_attn.heads
        self.linear1 = Dense(self.ff_dim, name="linear1")
        self.linear2 = Dense(self.dim, name="linear2")
        self.norm1 = LayerNorm(self.dim, eps=eps, name="norm1")
        self.norm2 = LayerNorm(self.dim, eps=eps, name="norm2")
        self.drop, self.drop1, self.drop2 = (Dropout(self.rate, name=f"dropout{s}")
                                             for s in ("", "1", "2"))

    def _ff(self, x: Tensor) -> Tensor:
        h = self.linear1(x)
        h = relu(h) if self.activation == "relu" else gelu(h)
        return self.drop2(self.linear2(self.drop(h)))

    def build(self, x):  # refuse a bad input before the layer counts as built
        check_sequence(f"TransformerEncoderLayer {self.name!r}", x, self.dim)

    def forward(self, x):
        if self.norm_first:
            x = x + self.drop1(self.self_attn(self.norm1(x)))
            return x + self._ff(self.norm2(x))
        x = self.norm1(x + self.drop1(self.self_attn(x)))
        return self.norm2(x + self._ff(x))

    @property
    def variables(self) -> list[Tensor]:
        return unique_tensors(v for layer in (self.self_attn, self.linear1, self.linear2, self.norm1,
                                       self.norm2) for v in layer.variables)

    def extra_repr(self) -> str:
        return (f"{self.dim}, heads={self.heads}, ff_dim={self.ff_dim}, dropout={self.rate:g}, "
                f"norm_first={self.norm_first}, activation={self.activation!r}")
