"""Shared fixtures: ``backend`` runs a test on every available backend."""

from __future__ import annotations

import pytest

import graphc as gc
from graphc.backends import get_backend

BACKENDS = ("numpy", "c", "cuda")


def _available(name: str) -> str | None:
    try:
        get_backend(name)
    except gc.GraphcError as exc:
        return str(exc)
    return None


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """The name of a backend to run on; skipped where that backend is unavailable."""
    why = _available(request.param)
    if why:
        pytest.skip(f"backend {request.param!r} unavailable: {why}")
    return request.param
