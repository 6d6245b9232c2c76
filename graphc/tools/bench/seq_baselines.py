"""PyTorch eager and JAX (``jax.jit``) versions of the bench's sequence-model steps.

Used only where ``torch`` / ``jax`` import (neither is a dependency of graphc). Each
function takes the model kind (``"transformer"`` or ``"lstm"``), the initial parameter
values in the order of :data:`~.seq_models.TRANSFORMER_KEYS` / :data:`~.seq_models.LSTM_KEYS`,
the batches ``[(x, y), ...]``, the sizes, the learning rate and momentum, and returns
``(call, reset)`` (``call()`` runs one SGD-with-momentum step on the next batch and
waits for it; ``reset()`` restores the initial weights and zero momentum) or, when
the library is missing, the reason as a string.

Example::

    >>> from graphc.tools.bench.seq_baselines import torch_step
    >>> made = torch_step("lstm", values, pool, LSTM_SIZES, 0.01, 0.9)    # doctest: +SKIP
    >>> "not installed" in made if isinstance(made, str) else callable(made[0])   # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .timing import cycle

__all__ = ["jax_step", "torch_step"]

Made = tuple[Callable[[], object], Callable[[], None]] | str


def torch_step(kind: str, values: list[np.ndarray], pool: list, sizes: dict, lr: float,
               momentum: float) -> Made:
    """The PyTorch eager step (``torch.nn`` modules, ``torch.optim.SGD``), or why not."""
    try:
        import torch
    except ImportError:
        return "not installed"
    nn = torch.nn
    if kind == "transformer":
        body = nn.TransformerEncoderLayer(sizes["dim"], sizes["heads"], sizes["ff"], dropout=0.0,
                                          batch_first=True)
        a = body.self_attn
        targets = [a.in_proj_weight, a.in_proj_bias, a.out_proj.weight, a.out_proj.bias,
                   body.linear1.weight, body.linear1.bias, body.linear2.weight, body.linear2.bias,
                   body.norm1.weight, body.norm1.bias, body.norm2.weight, body.norm2.bias]
        transposed = {4, 6}                               # graphc Dense W is (in, out)
        features = lambda x: body(x).mean(dim=1)          # noqa: E731
    else:
        body = nn.LSTM(sizes["features"], sizes["hidden"], batch_first=True)
        targets = [body.weight_ih_l0, body.weight_hh_l0, body.bias_ih_l0, body.bias_hh_l0]
        transposed = set()
        features = lambda x: body(x)[0][:, -1, :]         # noqa: E731
    head = nn.Linear(values[-2].shape[0], values[-2].shape[1])
    targets += [head.weight, head.bias]
    transposed.add(len(targets) - 2)
    init = [torch.from_numpy(np.ascontiguousarray(v.T if k in transposed else v))
            for k, v in enumerate(values)]
    opt = torch.optim.SGD(targets, lr=lr, momentum=momentum)
    batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in pool]

    def step(xy: tuple) -> float:
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(head(features(xy[0])), xy[1])
        loss.backward()
        opt.step()
        return loss.item()

    def reset() -> None:
        with torch.no_grad():
            for p, v in zip(targets, init):
                p.copy_(v)
        opt.state.clear()

    reset()
    return cycle(step, batches), reset


def _layer_norm(jnp, x, g, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / jnp.sqrt(var + 1e-5) * g + b


def _jax_features(jax, jnp, kind: str, p: list, x, heads: int):
    """The model before its dense head, in jax.numpy (graphc's layouts)."""
    if kind == "transformer":
        w_in, b_in, w_o, b_o, w1, b1, w2, b2, g1, be1, g2, be2 = p[:12]
        n, t, d = x.shape
        split = lambda a: a.reshape(n, t, heads, d // heads).transpose(0, 2, 1, 3)  # noqa: E731
        q, k, v = (split(a) for a in jnp.split(x @ w_in.T + b_in, 3, axis=-1))
        att = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // heads), axis=-1)
        o = (att @ v).transpose(0, 2, 1, 3).reshape(n, t, d)
        h1 = _layer_norm(jnp, x + o @ w_o.T + b_o, g1, be1)
        h2 = _layer_norm(jnp, h1 + jax.nn.relu(h1 @ w1 + b1) @ w2 + b2, g2, be2)
        return h2.mean(axis=1)
    w_ih, w_hh, b_ih, b_hh = p[:4]
    hidden = w_hh.shape[1]

    def cell(carry, gx):
        h, c = carry
        i, f, g, o = jnp.split(gx + h @ w_hh.T, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), None

    gx = jnp.swapaxes(x, 0, 1) @ w_ih.T + (b_ih + b_hh)      # (T, N, 4H): one GEMM
    zeros = jnp.zeros((x.shape[0], hidden), x.dtype)
    (h, _), _ = jax.lax.scan(cell, (zeros, zeros), gx)
    return h


def jax_step(kind: str, values: list[np.ndarray], pool: list, sizes: dict, lr: float,
             momentum: float) -> Made:
    """The ``jax.jit`` step (functional SGD with momentum), or why not."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return "not installed"

    def loss_fn(p, x, y):
        logits = _jax_features(jax, jnp, kind, p, x, sizes.get("heads", 1)) @ p[-2] + p[-1]
        picked = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
        return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)

    @jax.jit
    def update(p, v, x, y):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        v = [momentum * vk + gk for vk, gk in zip(v, g)]
        return loss, [pk - lr * vk for pk, vk in zip(p, v)], v

    state: dict = {}
    batches = [(jnp.asarray(x), jnp.asarray(y.astype(np.int32))) for x, y in pool]

    def step(xy: tuple) -> object:
        loss, state["p"], state["v"] = update(state["p"], state["v"], *xy)
        return loss.block_until_ready()

    def reset() -> None:
        state["p"] = [jnp.asarray(v) for v in values]
        state["v"] = [jnp.zeros_like(a) for a in state["p"]]

    reset()
    return cycle(step, batches), reset
