"""Seeded weight initializers that return NumPy arrays.

Every initializer has the signature ``init(shape, seed=0, dtype="float32")``
and is deterministic in ``seed``. Fan-in and fan-out follow the usual
conventions: a dense kernel is ``(in, out)``; a convolution filter is OIHW
``(out_channels, in_channels, kh, kw)`` with the receptive field counted in
both fans (see :func:`fans`). Layers in :mod:`graphc.nn` call them with
``graph.next_seed()``, so one graph seed fixes every parameter.

Example::

    import graphc as gc
    W = gc.init.glorot_uniform((784, 10), seed=0)          # np.ndarray, float32
    w = gc.init.he_normal((16, 3, 3, 3), seed=1, dtype="float64")
    init = gc.init.get("orthogonal")                        # by name
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..ir.errors import DTypeError, at, user_site
from ._args import bad_type, bad_value

Shape = tuple[int, ...]
Initializer = Callable[..., np.ndarray]

__all__ = [
    "fans", "zeros", "ones", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
    "lecun_normal", "orthogonal", "small_uniform", "standard_normal", "get",
]


def fans(shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight shape.

    - ``()``: (1, 1); ``(n,)``: (n, n);
    - dense ``(in, out)``: (in, out);
    - conv OIHW ``(O, I, *kernel)``: (I * prod(kernel), O * prod(kernel)).

    Example::

        assert gc.init.fans((16, 3, 5, 5)) == (75, 400)
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(int(seed) & 0xFFFFFFFFFFFFFFFF)


def _finish(arr: np.ndarray, dtype) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise DTypeError(f"initializers make float arrays, got dtype {dt}{at(user_site())}")
    return np.ascontiguousarray(arr, dtype=dt)


def zeros(shape, seed: int = 0, dtype="float32") -> np.ndarray:
    """All zeros (``seed`` is ignored). Example: ``gc.init.zeros((10,))``."""
    return np.zeros(tuple(shape), dtype=np.dtype(dtype))


def ones(shape, seed: int = 0, dtype="float32") -> np.ndarray:
    """All ones (``seed`` is ignored). Example: ``gc.init.ones((10,))``."""
    return np.ones(tuple(shape), dtype=np.dtype(dtype))


def glorot_uniform(shape, seed: int = 0, dtype="float32") -> np.ndarray:
    """Glorot/Xavier uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)).

    The variance is 2 / (fan_in + fan_out).

    Example::

        W = gc.init.glorot_uniform((256, 128), seed=3)
    """
    fan_in, fan_out = fans(shape)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return _finish(_rng(seed).uniform(-limit, limit, size=tuple(shape)), dtype)


def glorot_normal(shape, seed: int = 0, dtype="float32") -> np.ndarray:
    """Glorot/Xavier normal: N(0, 2 / (fan_in + fan_out)) (not truncated).

    Example::

        W = gc.init.glorot_normal((256, 128), seed=3)
    """
    fan_in, fan_out = fans(shape)
    std = math.sqrt(2.0 / (fan_in + fan_out))
    return _finish(_rng(seed).normal(0.0, std, size=tuple(shape)), dtype)


def he_uniform(shape, seed: int = 0, dtype="float32") -> np.ndarray:
    """He/Kaiming uniform for ReLU: U(-a, a), a = sqrt(6 / fan_in) (variance 2 / fan_in).

    Example::

        w = gc.init.he_uniform((32, 16, 3, 3), seed=0)
    """
    fan_in, _ = fans(shape)
    limit = math.sqrt(6.0 / fan_in)
    return _finish(_rng(seed).uniform(-limit, limit, size=tuple(shape)), dtype)


def he_normal(shape, seed: int = 0, dtype="float32") -> np.ndarray:
    """He/Kaiming normal for ReLU: N(0, 2 / fan_in) (not truncated).

    Example::

        w = gc.init.he_normal((32, 16, 3, 3), seed=0)
    """
    fan_in, _ = fans(shape)
    return _finish(_rng(seed).normal(0.0, math.sqrt(2.0 / fan_in), size=tuple(shape)), dtype)


def lecun_normal(shape, seed: int = 0, dtype="float32") -> np.ndarray:
    """LeCun normal (for SELU): N(0, 1 / fan_in).

    Example::

        W = gc.init.lecun_normal((64, 64), seed=0)
    """
    fan_in, _ = fans(shape)
    return _finish(_rng(seed).normal(0.0, math.sqrt(1.0 / fan_in), size=tuple(shape)), dtype)


def orthogonal(shape, seed: int = 0, dtype="float32", gain: float = 1.0) -> np.ndarray:
    """A (semi-)orthogonal matrix, scaled by ``gain`` (Saxe et al. 2013).

    The weight is viewed as a ``(shape[0], prod(shape[1:]))`` matrix Q (OIHW
    filters: one row per output channel); its columns are orthonormal when it
    is tall (Q^T Q = I) and its rows when it is wide (Q Q^T = I). The sign of
    each direction is fixed by the QR diagonal, so the draw is uniform (Haar).

    Example::

        Q = gc.init.orthogonal((64, 32), seed=0)
        assert np.allclose(Q.T @ Q, np.eye(32), atol=1e-5)
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2:
        raise bad_value(f"orthogonal: needs a shape with at least 2 dims, got {shape}")
    rows, cols = shape[0], math.prod(shape[1:])
    a = _rng(seed).normal(0.0, 1.0, size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    d = np.sign(np.diag(r))
    q = q * np.where(d == 0, 1.0, d)
    if rows < cols:
        q = q.T
    return _finish(gain * q.reshape(shape), dtype)


def small_uniform(shape, seed: int = 0, dtype="float32", scale: float = 0.05) -> np.ndarray:
    """U(-scale, scale): the classic small random start (default ``scale=0.05``).

    Example::

        W = gc.init.small_uniform((10, 10), seed=0, scale=0.01)
    """
    return _finish(_rng(seed).uniform(-scale, scale, size=tuple(shape)), dtype)


def standard_normal(shape, seed: int = 0, dtype="float32") -> np.ndarray:
    """N(0, 1): ``torch.nn.Embedding``'s initialization (Keras draws U(-0.05, 0.05),
    ``"small_uniform"``).

    Example::

        E = gc.init.standard_normal((1000, 32), seed=0)
    """
    return _finish(_rng(seed).standard_normal(tuple(shape)), dtype)


_BY_NAME: dict[str, Initializer] = {
    f.__name__: f for f in (zeros, ones, glorot_uniform, glorot_normal, he_uniform, he_normal,
                            lecun_normal, orthogonal, small_uniform)
}
_BY_NAME.update(xavier_uniform=glorot_uniform, xavier_normal=glorot_normal,
                kaiming_uniform=he_uniform, kaiming_normal=he_normal)


def get(init: str | Initializer) -> Initializer:
    """Resolve an initializer given by name (``"he_normal"``) or pass a callable through.

    A callable must accept ``(shape, seed, dtype)`` and return an array of that shape.

    Example::

        init = gc.init.get("glorot_uniform")
        W = init((3, 4), seed=0, dtype="float32")
    """
    if callable(init):
        return init
    if not isinstance(init, str):
        raise bad_type(f"an initializer is a name or a callable, got {type(init).__name__}")
    if init in _BY_NAME:
        return _BY_NAME[init]
    raise bad_value(f"unknown initializer {init!r}; choose one of {', '.join(sorted(_BY_NAME))} "
                    "or pass a callable (shape, seed, dtype) -> array")
