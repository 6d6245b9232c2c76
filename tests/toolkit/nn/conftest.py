"""Fixtures of the layer tests: ``fd_grad``, central finite differences."""

from __future__ import annotations

import numpy as np
import pytest


def _fd_grad(f, arr: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central finite differences of the scalar ``f()`` w.r.t. ``arr`` (changed in place
    and restored)."""
    out = np.zeros_like(arr)
    for i in np.ndindex(arr.shape):
        old = arr[i]
        arr[i] = old + eps
        hi = f()
        arr[i] = old - eps
        lo = f()
        arr[i] = old
        out[i] = (hi - lo) / (2 * eps)
    return out


@pytest.fixture
def fd_grad():
    """``fd_grad(f, arr)``: d f() / d arr by central differences (float64 layer gradients)."""
    return _fd_grad
