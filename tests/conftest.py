"""Shared fixtures: ``backend`` runs a test on every available backend.

``pytestmark = pytest.mark.needs_c`` (or the mark on one test) skips, with the reason,
where the C backend is unavailable (no compiler and nothing cached).

The quick subset (``-m "not slow"``) runs every backend-parametrized test on the NumPy
reference backend; their compiled variants (each a C compile) run in the full suite.
"""

from __future__ import annotations

import os

import pytest

# The suite runs one worker per core (pyproject: -n auto), each running 2-thread OpenMP
# kernels: threads that wait by sleeping instead of spinning keep one worker's barrier from
# stalling on a core the other one holds. (Set before any OpenMP runtime is loaded.)
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

from graphc.backends import why_unavailable

BACKENDS = ("numpy", "c", "cuda")


@pytest.fixture(params=[pytest.param(b, marks=() if b == "numpy" else pytest.mark.slow)
                        for b in BACKENDS])
def backend(request) -> str:
    """The name of a backend to run on; skipped where that backend is unavailable."""
    why = why_unavailable(request.param)
    if why:
        pytest.skip(f"backend {request.param!r} unavailable: {why}")
    return request.param


def pytest_runtest_setup(item) -> None:
    if item.get_closest_marker("needs_c") is not None:
        why = why_unavailable("c")
        if why:
            pytest.skip(f"backend 'c' unavailable: {why}")
