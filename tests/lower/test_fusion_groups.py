"""Elementwise grouping: independent same-shape chains share one loop."""

import numpy as np
import pytest

import graphc as gc
from graphc.ir.program import Program
from graphc.lower.fusion import fuse
from graphc.transforms.passes import optimize


def _chain(n: int, dtype: str):
    with gc.Graph() as g:
        x = gc.placeholder((None, n), dtype=dtype, name="x")
        w = gc.placeholder((None, n), dtype=dtype, name="w")
        b = gc.placeholder((None, n), dtype=dtype, name="b")
        y = gc.relu(x * w + b) * 0.5 + gc.sigmoid(x)
    return g, (x, w, b), y


def test_a_node_reading_only_leaves_joins_the_open_group():
    g, _, y = _chain(7, "float32")
    kernels = fuse(optimize(Program([y])))
    assert len(kernels) == 1, [k.name for k in kernels]
    assert [n.name for n in kernels[0].stores] == [y.name]


@pytest.mark.needs_c
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_chain_agrees_with_numpy(dtype):
    g, (x, w, b), y = _chain(33, dtype)
    rng = np.random.default_rng(11)
    feed = {t: rng.standard_normal((7, 33)).astype(dtype) for t in (x, w, b)}
    got = gc.Session(g, backend="c").run(y, feed)
    ref = gc.Session(g, backend="numpy").run(y, feed)
    tol = 1e-5 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)
