"""Reduction loop order on the C backend: kept dims outside and a register (SIMD) accumulator
when the innermost dim is reduced (NCHW bias gradients), a streaming pass into scratch
accumulators when it is kept (column sums)."""

import numpy as np
import pytest

import graphc as gc
from graphc.lower import ir

pytestmark = pytest.mark.needs_c


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_reductions_over_outer_and_inner_axes_agree_with_numpy(dtype):
    rng = np.random.default_rng(11)
    xv = rng.standard_normal((7, 5, 3, 33)).astype(dtype)
    with gc.Graph() as g:
        x = gc.placeholder((None, 5, 3, 33), dtype=dtype, name="x")
        nchw_bias = gc.sum(x, axis=(0, 2, 3))     # kept dim in the middle, innermost reduced
        sq_mean = gc.mean(x * x, axis=(0, 3))       # prologue, two kept dims
        peak = gc.max(x, axis=(0, 2, 3))
        cols = gc.sum(x, axis=(0, 1, 2))             # innermost dim kept
    sess = gc.Session(g, backend="c")
    got = sess.run([nchw_bias, sq_mean, peak, cols], {x: xv})
    x64 = xv.astype(np.float64)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got[0], x64.sum(axis=(0, 2, 3)), rtol=tol, atol=tol)
    np.testing.assert_allclose(got[1], (x64 * x64).mean(axis=(0, 3)), rtol=tol, atol=tol)
    np.testing.assert_array_equal(got[2], xv.max(axis=(0, 2, 3)))
    np.testing.assert_allclose(got[3], x64.sum(axis=(0, 1, 2)), rtol=tol, atol=tol)
    lowered = sess.compile([nchw_bias, sq_mean, peak, cols]).executable.lowered
    sums = [list(ir.walk(k.body)) for k in lowered.kernels if k.kind == "sum"]
    simd = [any(isinstance(s, ir.Loop) and s.reduce == (("+", "acc"),) for s in body) for body in sums]
    streams = [any(isinstance(s, ir.Scratch) for s in body) for body in sums]
    assert any(a and not b for a, b in zip(simd, streams))  # a register accumulator per output
    assert any(b and not a for a, b in zip(simd, streams))  # the column sums stream into scratch
    # the same results on every run (a fixed accumulation order)
    again = sess.run([nchw_bias, sq_mean, peak, cols], {x: xv})
    for a, b in zip(got, again):
        np.testing.assert_array_equal(a, b)
