"""A counter-based random number generator: uniform(seed, step, index).

Each value is a hash of (seed, step, element index) in uint32 arithmetic, so
the compiled backends reproduce the NumPy reference bit for bit, in any
order and on any number of threads. The mixing function is the finalizer of
MurmurHash3 (fmix32).

Example::

    u = uniform(seed=7, step=0, n=4)   # float32 values in [0, 1)
"""

from __future__ import annotations

import numpy as np

#: Constants shared with the compiled backends (defined for their code from these values).
SEED_MUL, STEP_MUL, INDEX_MUL = 0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D
FMIX1, FMIX2 = 0x85EBCA6B, 0xC2B2AE35


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(FMIX1)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(FMIX2)
    return h ^ (h >> np.uint32(16))


def hash32(seed: int, step: int, index: np.ndarray) -> np.ndarray:
    """uint32 hash of (seed, step, index) for an array of element indices."""
    with np.errstate(over="ignore"):
        key = np.uint32((seed * SEED_MUL + step * STEP_MUL) & 0xFFFFFFFF)
        h = _fmix32(index.astype(np.uint32) * np.uint32(INDEX_MUL) ^ key)
        return _fmix32(h ^ key)


def uniform(seed: int, step: int, n: int) -> np.ndarray:
    """``n`` float32 values in [0, 1) with 24 random bits each."""
    bits = hash32(seed, step, np.arange(n, dtype=np.uint32)) >> np.uint32(8)
    return bits.astype(np.float32) * np.float32(1.0 / (1 << 24))
