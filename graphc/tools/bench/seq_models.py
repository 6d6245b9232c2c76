"""The sequence models that ``graphc bench`` times, each with a hand-written NumPy twin.

* a Transformer encoder layer: input (B, T, d) -> ``gc.nn.TransformerEncoderLayer(d, heads,
  ff)`` (post-norm, ReLU, no dropout) -> mean over T -> dense ``classes`` -> mean softmax
  cross-entropy, SGD with momentum: :func:`build_transformer`, :class:`NumpyTransformer`;
* an LSTM: input (B, T, F) -> ``gc.nn.LSTM(H)`` (PyTorch layout: ``weight_ih`` (4H, F),
  ``weight_hh`` (4H, H), ``bias_ih``, ``bias_hh``, gates i, f, g, o) -> last output ->
  dense ``classes`` -> cross-entropy: :func:`build_lstm` (``unrolled=True``: the same
  LSTM unrolled from plain ops, for when ``gc.nn.LSTM`` is missing and to test the twin),
  :class:`NumpyLSTM` (one GEMM for every input projection, BPTT by hand).

Both twins are written as an expert would: 2-D BLAS matmuls on reshaped operands,
preallocated buffers for the large intermediates, the backward pass derived by hand.
The graphc model's parameters (``model["params"]``, in the order of :data:`TRANSFORMER_KEYS`
or :data:`LSTM_KEYS`) start from the graph's initializers; :func:`initial_values` reads them
so that a twin starts from the same weights.

Example::

    >>> import numpy as np, graphc as gc
    >>> from graphc.tools.bench.models import compare_step
    >>> from graphc.tools.bench.seq_models import NumpyTransformer, build_transformer, initial_values
    >>> m = build_transformer(seq=3, dim=8, heads=2, ff=16)
    >>> twin = NumpyTransformer(initial_values(m), batch=2, seq=3, heads=2)
    >>> x = np.random.default_rng(0).standard_normal((2, 3, 8)).astype(np.float32)
    >>> compare_step(gc.Session(m["graph"], backend="numpy"), m, twin, x, np.array([1, 7])) < 1e-4
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import graphc as gc

from .models import Model, NumpyModel

__all__ = [
    "LSTM_KEYS", "LSTM_SIZES", "SEQ_LR", "SEQ_MOMENTUM", "TRANSFORMER_KEYS", "TRANSFORMER_SIZES",
    "NumpyLSTM", "NumpyTransformer", "build_lstm", "build_transformer", "has_lstm",
    "initial_values", "lstm_flops", "transformer_flops",
]

#: The bench's Transformer step: batch, sequence, model width, heads, feed-forward width.
TRANSFORMER_SIZES = dict(batch=32, seq=64, dim=128, heads=4, ff=512)
#: The bench's LSTM step: batch, sequence, input features, hidden units.
LSTM_SIZES = dict(batch=64, seq=32, features=32, hidden=128)
#: SGD learning rate and momentum of both models; classes of the dense head.
SEQ_LR, SEQ_MOMENTUM, CLASSES = 0.01, 0.9, 10
#: Parameter names (suffixes of the variables' names), in the order of ``model["params"]``.
TRANSFORMER_KEYS = ("in_proj_weight", "in_proj_bias", "out_proj/weight", "out_proj/bias",
                    "linear1/W", "linear1/b", "linear2/W", "linear2/b", "norm1/weight",
                    "norm1/bias", "norm2/weight", "norm2/bias", "head/W", "head/b")
LSTM_KEYS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "head/W", "head/b")
_EPS = 1e-5  # LayerNorm's


def has_lstm() -> bool:
    """Whether this graphc has ``gc.nn.LSTM``.

    Example::

        >>> has_lstm() in (True, False)
        True
    """
    return hasattr(gc.nn, "LSTM")


def initial_values(model: Model) -> list[np.ndarray]:
    """The initial values of ``model["params"]`` (what a new Session starts from), copied.

    Example::

        >>> [a.shape for a in initial_values(build_lstm(seq=2, features=3, hidden=4,
        ...                                             unrolled=True))]
        [(16, 3), (16, 4), (16,), (16,), (4, 10), (10,)]
    """
    return [np.array(v.value) for v in model["params"]]


def _ordered(variables: Sequence, keys: Sequence[str]) -> list:
    """``variables`` in the order of ``keys`` (each the end of exactly one name)."""
    out = []
    for key in keys:
        hits = [v for v in variables if v.name == key or v.name.endswith("/" + key)]
        if len(hits) != 1:
            raise RuntimeError(f"bench model: expected one parameter named .../{key}, found "
                               f"{[v.name for v in hits]} among {[v.name for v in variables]}")
        out.append(hits[0])
    return out


def _finish(g, x, y, logits, params: list, extra: dict) -> Model:
    """Loss, SGD-with-momentum step and the :mod:`.models` model dict."""
    with g:
        loss = gc.mean(gc.softmax_cross_entropy(logits, y))
        optimizer = gc.optim.SGD(SEQ_LR, momentum=SEQ_MOMENTUM)
        train = optimizer.minimize(loss, var_list=params)
    return dict(graph=g, x=x, y=y, logits=logits, loss=loss, train=train, params=params,
                optimizer=optimizer, slots=[optimizer.slot(v, "momentum") for v in params],
                **extra)


# =============================================================================== Transformer
def build_transformer(seq: int = 64, dim: int = 128, heads: int = 4, ff: int = 512,
                      seed: int = 0) -> Model:
    """The Transformer-encoder-layer classifier and its training step (SGD, momentum 0.9).

    Returns :func:`~graphc.tools.bench.models.build_mlp`'s keys (``x`` is float32
    (None, seq, dim)); ``params`` follow :data:`TRANSFORMER_KEYS`.

    Example::

        >>> m = build_transformer(seq=4, dim=8, heads=2, ff=16)
        >>> m["x"].shape, len(m["params"])
        ((None, 4, 8), 14)
    """
    with gc.Graph(seed=seed) as g:
        x = gc.placeholder((None, seq, dim), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        enc = gc.nn.TransformerEncoderLayer(dim, heads, ff)
        head = gc.nn.Dense(CLASSES, name="head")
        logits = head(gc.mean(enc(x), axis=1))
    return _finish(g, x, y, logits, _ordered(enc.parameters + head.parameters, TRANSFORMER_KEYS),
                   {"net": enc, "head": head})


def transformer_flops(batch: int, seq: int, dim: int, ff: int) -> float:
    """FLOPs of the matmuls of one training step (no gradient for the input).

    Example::

        >>> round(transformer_flops(32, 64, 128, 512) / 1e9, 2)
        2.42
    """
    n = batch * seq
    qkv, attn, out, ffn = 6.0 * n * dim * dim, 4.0 * n * seq * dim, 2.0 * n * dim * dim, \
        4.0 * n * dim * ff
    return 3 * (qkv + attn + out + ffn) - qkv      # forward + weight and data gradients


def _layer_norm(r: np.ndarray, gamma: np.ndarray, beta: np.ndarray, xhat: np.ndarray,
                rstd: np.ndarray, out: np.ndarray) -> None:
    """LayerNorm over the last axis of ``r`` (N, d) into ``out``, keeping ``xhat`` and ``rstd``."""
    np.subtract(r, r.mean(axis=1, keepdims=True), out=xhat)
    np.square(xhat, out=out)
    np.mean(out, axis=1, keepdims=True, out=rstd)
    rstd += np.float32(_EPS)
    np.sqrt(rstd, out=rstd)
    np.reciprocal(rstd, out=rstd)
    xhat *= rstd
    np.multiply(xhat, gamma, out=out)
    out += beta


def _layer_norm_grad(dy: np.ndarray, xhat: np.ndarray, rstd: np.ndarray,
                     gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of LayerNorm: input (into ``dy``'s buffer), weight, bias."""
    dgamma, dbeta = np.einsum("nd,nd->d", dy, xhat), dy.sum(axis=0)
    dy *= gamma                                           # d xhat
    proj = np.einsum("nd,nd->n", dy, xhat)[:, None] * np.float32(1.0 / dy.shape[1])
    dy -= dy.mean(axis=1, keepdims=True)
    dy -= xhat * proj
    dy *= rstd
    return dy, dgamma, dbeta


def _softmax_xent(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy of logits ``z`` (B, C) and its gradient (overwrites ``z``)."""
    n = len(z)
    rows = np.arange(n)
    z -= z.max(axis=1, keepdims=True)
    picked = z[rows, y]
    np.exp(z, out=z)
    total = z.sum(axis=1)
    loss = float(np.mean(np.log(total) - picked))
    z /= total[:, None]
    z[rows, y] -= 1.0
    z *= np.float32(1.0 / n)
    return loss, z


class NumpyTransformer(NumpyModel):
    """:func:`build_transformer`'s step by hand for one batch size; buffers preallocated.

    ``params`` in the order of :data:`TRANSFORMER_KEYS` (:func:`initial_values`).

    Example::

        >>> m = build_transformer(seq=4, dim=8, heads=2, ff=16)
        >>> twin = NumpyTransformer(initial_values(m), batch=2, seq=4, heads=2)
        >>> loss = twin.step(np.zeros((2, 4, 8), np.float32), np.array([0, 3]))
    """

    def __init__(self, params: Sequence[np.ndarray], batch: int, seq: int, heads: int,
                 lr: float = SEQ_LR, momentum: float = SEQ_MOMENTUM) -> None:
        super().__init__(params, lr, momentum)
        d, ff = self.p[0].shape[1], self.p[4].shape[1]
        self.shape = (batch, seq, heads, d // heads)
        n = batch * seq
        f32 = lambda *s: np.empty(s, np.float32)  # noqa: E731
        self.qkv, self.dqkv = f32(n, 3 * d), f32(n, 3 * d)
        self.heads, self.dheads = f32(3, batch, heads, seq, d // heads), \
            f32(3, batch, heads, seq, d // heads)
        self.att, self.datt = f32(batch, heads, seq, seq), f32(batch, heads, seq, seq)
        self.oh, self.o = f32(batch, heads, seq, d // heads), f32(n, d)
        self.r1, self.h1, self.r2, self.h2 = f32(n, d), f32(n, d), f32(n, d), f32(n, d)
        self.xhat1, self.xhat2, self.rstd1, self.rstd2 = f32(n, d), f32(n, d), f32(n, 1), \
            f32(n, 1)
        self.f1, self.df1 = f32(n, ff), f32(n, ff)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One SGD step on ``(x, y)`` (x: (batch, seq, d)); returns the mean loss."""
        (w_in, b_in, w_o, b_o, w1, b1, w2, b2, g1, be1, g2, be2, wh, bh) = self.p
        b, t, h, dh = self.shape
        d = h * dh
        xs = x.reshape(b * t, d)
        scale = np.float32(1.0 / np.sqrt(dh))
        # ---------------------------------------------------------------- forward
        np.matmul(xs, w_in.T, out=self.qkv)
        self.qkv += b_in
        np.copyto(self.heads, self.qkv.reshape(b, t, 3, h, dh).transpose(2, 0, 3, 1, 4))
        q, k, v = self.heads
        att = self.att
        np.matmul(q, k.swapaxes(2, 3), out=att)
        att *= scale
        att -= att.max(axis=3, keepdims=True)
        np.exp(att, out=att)
        att /= att.sum(axis=3, keepdims=True)
        np.matmul(att, v, out=self.oh)
        np.copyto(self.o.reshape(b, t, h, dh), self.oh.transpose(0, 2, 1, 3))
        np.matmul(self.o, w_o.T, out=self.r1)
        self.r1 += b_o
        self.r1 += xs
        _layer_norm(self.r1, g1, be1, self.xhat1, self.rstd1, self.h1)
        np.matmul(self.h1, w1, out=self.f1)
        self.f1 += b1
        np.maximum(self.f1, 0, out=self.f1)
        np.matmul(self.f1, w2, out=self.r2)
        self.r2 += b2
        self.r2 += self.h1
        _layer_norm(self.r2, g2, be2, self.xhat2, self.rstd2, self.h2)
        pooled = self.h2.reshape(b, t, d).mean(axis=1)
        loss, dz = _softmax_xent(pooled @ wh + bh, y)
        # ---------------------------------------------------------------- backward
        g_wh, g_bh = pooled.T @ dz, dz.sum(axis=0)
        dr2 = self.r2                                     # reuse as the gradient buffer
        dr2.reshape(b, t, d)[...] = (dz @ (wh.T * np.float32(1.0 / t)))[:, None, :]
        dr2, g_g2, g_be2 = _layer_norm_grad(dr2, self.xhat2, self.rstd2, g2)
        g_w2, g_b2 = self.f1.T @ dr2, dr2.sum(axis=0)
        np.matmul(dr2, w2.T, out=self.df1)
        self.df1 *= self.f1 > 0
        g_w1, g_b1 = self.h1.T @ self.df1, self.df1.sum(axis=0)
        dh1 = self.r1
        np.matmul(self.df1, w1.T, out=dh1)
        dh1 += dr2
        da, g_g1, g_be1 = _layer_norm_grad(dh1, self.xhat1, self.rstd1, g1)
        g_wo, g_bo = da.T @ self.o, da.sum(axis=0)
        do = self.o
        np.matmul(da, w_o, out=do)
        np.copyto(self.oh, do.reshape(b, t, h, dh).transpose(0, 2, 1, 3))
        dq, dk, dv = self.dheads
        np.matmul(att.swapaxes(2, 3), self.oh, out=dv)
        np.matmul(self.oh, v.swapaxes(2, 3), out=self.datt)
        ds = self.datt                                    # softmax backward, then the scale
        ds -= np.einsum("bhij,bhij->bhi", ds, att)[..., None]
        ds *= att
        ds *= scale
        np.matmul(ds, k, out=dq)
        np.matmul(ds.swapaxes(2, 3), q, out=dk)
        np.copyto(self.dqkv.reshape(b, t, 3, h, dh), self.dheads.transpose(1, 3, 0, 2, 4))
        g_win, g_bin = self.dqkv.T @ xs, self.dqkv.sum(axis=0)
        self._update([g_win, g_bin, g_wo, g_bo, g_w1, g_b1, g_w2, g_b2, g_g1, g_be1, g_g2, g_be2,
                      g_wh, g_bh])
        return loss


# =============================================================================== LSTM
def build_lstm(seq: int = 32, features: int = 32, hidden: int = 128, unrolled: bool = False,
               seed: int = 0) -> Model:
    """The LSTM classifier (last output -> dense) and its training step (SGD, momentum 0.9).

    ``unrolled=False`` uses ``gc.nn.LSTM(hidden)``; ``unrolled=True`` builds the same
    recurrence step by step from matmul, sigmoid, tanh and slicing, with PyTorch's
    initialisation U(-1/sqrt(H), 1/sqrt(H)). ``params`` follow :data:`LSTM_KEYS`.

    Example::

        >>> m = build_lstm(seq=3, features=2, hidden=4, unrolled=True)
        >>> [v.shape for v in m["params"][:2]]
        [(16, 2), (16, 4)]
    """
    with gc.Graph(seed=seed) as g:
        x = gc.placeholder((None, seq, features), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        if unrolled:
            last, params = _unrolled_lstm(x, hidden, seed)
        else:
            lstm = gc.nn.LSTM(hidden)
            outputs, _ = lstm(x)
            last, params = outputs[:, -1, :], lstm.parameters
        head = gc.nn.Dense(CLASSES, name="head")
        logits = head(last)
    return _finish(g, x, y, logits, _ordered(params + head.parameters, LSTM_KEYS),
                   {"head": head, "unrolled": unrolled})


def _unrolled_lstm(x, hidden: int, seed: int) -> tuple:
    """The LSTM over ``x`` (N, T, F) from plain ops: the last output and the parameters."""
    rng = np.random.default_rng(seed)
    bound, features, h4 = 1.0 / np.sqrt(hidden), x.shape[2], 4 * hidden
    with gc.name_scope("lstm"):
        params = [gc.variable(rng.uniform(-bound, bound, shape).astype(np.float32), name=name)
                  for name, shape in (("weight_ih", (h4, features)), ("weight_hh", (h4, hidden)),
                                      ("bias_ih", (h4,)), ("bias_hh", (h4,)))]
    w_ih, w_hh, b_ih, b_hh = params
    h = c = None
    for t in range(x.shape[1]):
        gates = gc.matmul(x[:, t, :], w_ih, transpose_b=True) + b_ih + b_hh
        if h is not None:
            gates = gates + gc.matmul(h, w_hh, transpose_b=True)
        i, f, g, o = gc.split(gates, 4, axis=1)
        i, f, g, o = gc.sigmoid(i), gc.sigmoid(f), gc.tanh(g), gc.sigmoid(o)
        c = i * g if c is None else f * c + i * g
        h = o * gc.tanh(c)
    return h, params


def lstm_flops(batch: int, seq: int, features: int, hidden: int) -> float:
    """FLOPs of the matmuls of one training step (no gradient for the input).

    Example::

        >>> round(lstm_flops(64, 32, 32, 128) / 1e9, 2)
        0.94
    """
    inputs, recurrent = 8.0 * batch * seq * features * hidden, 8.0 * batch * seq * hidden * hidden
    return 2 * inputs + 3 * recurrent


def _sigmoid(a: np.ndarray) -> None:
    np.negative(a, out=a)
    np.exp(a, out=a)
    a += 1.0
    np.reciprocal(a, out=a)


class NumpyLSTM(NumpyModel):
    """:func:`build_lstm`'s step by hand (time-major buffers, one batch size).

    The input projections of every step are one GEMM; the recurrence runs one
    (B, H) x (H, 4H) GEMM per step forward and one per step backward; the weight
    gradients are one GEMM each over all steps. ``params`` follow :data:`LSTM_KEYS`.

    Example::

        >>> m = build_lstm(seq=3, features=2, hidden=4, unrolled=True)
        >>> twin = NumpyLSTM(initial_values(m), batch=2, seq=3)
        >>> loss = twin.step(np.ones((2, 3, 2), np.float32), np.array([0, 1]))
    """

    def __init__(self, params: Sequence[np.ndarray], batch: int, seq: int, lr: float = SEQ_LR,
                 momentum: float = SEQ_MOMENTUM) -> None:
        super().__init__(params, lr, momentum)
        h4, features = self.p[0].shape
        hidden = h4 // 4
        self.shape = (batch, seq, features, hidden)
        self.xt = np.empty((seq, batch, features), np.float32)
        self.gates = np.empty((seq, batch, h4), np.float32)     # activations i, f, g, o
        self.dgates = np.empty((seq, batch, h4), np.float32)    # pre-activation gradients
        self.hs = np.zeros((seq + 1, batch, hidden), np.float32)
        self.cs = np.zeros((seq + 1, batch, hidden), np.float32)
        self.tc = np.empty((seq, batch, hidden), np.float32)    # tanh(c_t)
        self.tmp = np.empty((batch, h4), np.float32)
        self.dh, self.dc = np.empty((batch, hidden), np.float32), np.empty((batch, hidden),
                                                                             np.float32)
        self.u = np.empty((batch, hidden), np.float32)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One SGD step on ``(x, y)`` (x: (batch, seq, features)); returns the mean loss."""
        w_ih, w_hh, b_ih, b_hh, wd, bd = self.p
        b, t_len, f_in, hd = self.shape
        gates, dgates, hs, cs, tc, u = self.gates, self.dgates, self.hs, self.cs, self.tc, self.u
        np.copyto(self.xt, x.transpose(1, 0, 2))
        flat = gates.reshape(t_len * b, 4 * hd)
        np.matmul(self.xt.reshape(t_len * b, f_in), w_ih.T, out=flat)
        flat += b_ih + b_hh
        for t in range(t_len):                            # forward
            g = gates[t]
            np.matmul(hs[t], w_hh.T, out=self.tmp)
            g += self.tmp
            _sigmoid(g[:, :2 * hd])
            np.tanh(g[:, 2 * hd:3 * hd], out=g[:, 2 * hd:3 * hd])
            _sigmoid(g[:, 3 * hd:])
            i, f, gg, o = g[:, :hd], g[:, hd:2 * hd], g[:, 2 * hd:3 * hd], g[:, 3 * hd:]
            np.multiply(f, cs[t], out=cs[t + 1])
            np.multiply(i, gg, out=u)
            cs[t + 1] += u
            np.tanh(cs[t + 1], out=tc[t])
            np.multiply(o, tc[t], out=hs[t + 1])
        loss, dz = _softmax_xent(hs[t_len] @ wd + bd, y)
        g_wd, g_bd = hs[t_len].T @ dz, dz.sum(axis=0)
        dh, dc = self.dh, self.dc
        np.matmul(dz, wd.T, out=dh)
        dc[...] = 0.0
        for t in reversed(range(t_len)):                  # backpropagation through time
            g, dg = gates[t], dgates[t]
            i, f, gg, o = g[:, :hd], g[:, hd:2 * hd], g[:, 2 * hd:3 * hd], g[:, 3 * hd:]
            di, df, dgg, do = dg[:, :hd], dg[:, hd:2 * hd], dg[:, 2 * hd:3 * hd], dg[:, 3 * hd:]
            np.multiply(dh, tc[t], out=do)                # d o
            np.multiply(tc[t], tc[t], out=u)              # dc += dh o (1 - tanh(c)^2)
            np.subtract(1.0, u, out=u)
            u *= o
            u *= dh
            dc += u
            np.subtract(1.0, o, out=u)                    # sigmoid': o (1 - o)
            do *= u
            do *= o
            np.multiply(dc, gg, out=di)
            np.subtract(1.0, i, out=u)
            di *= u
            di *= i
            np.multiply(dc, cs[t], out=df)
            np.subtract(1.0, f, out=u)
            df *= u
            df *= f
            np.multiply(gg, gg, out=u)
            np.subtract(1.0, u, out=u)
            np.multiply(dc, i, out=dgg)
            dgg *= u
            dc *= f
            np.matmul(dg, w_hh, out=dh)
        dflat = dgates.reshape(t_len * b, 4 * hd)
        g_wih = dflat.T @ self.xt.reshape(t_len * b, f_in)
        g_whh = dflat.T @ hs[:t_len].reshape(t_len * b, hd)
        g_b = dflat.sum(axis=0)
        self._update([g_wih, g_whh, g_b, g_b.copy(), g_wd, g_bd])
        return loss
