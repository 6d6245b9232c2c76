"""Reduction loop order on the C backend: kept dims outside and a register (SIMD) accumulator
when the innermost dim is reduced (NCHW bias gradients), a streaming pass into scratch
accumulators when it is kept (column sums)."""

import numpy as np
import pytest

import graphc as gc

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
    source = sess.compile([nchw_bias, sq_mean, peak, cols]).source
    kernels = source.split("/* k")[1:]
    by_root = {k.split(":")[0]: k for k in kernels}
    sums = [body for name, body in by_root.items() if name.endswith("_sum")]
    assert any("omp simd reduction(+:acc)" in b and "gc_ws" not in b for b in sums)
    assert any("tmp[" in b and "gc_ws" in b for b in sums)  # the column sums stream
    # the same results on every run (a fixed accumulation order)
    again = sess.run([nchw_bias, sq_mean, peak, cols], {x: xv})
    for a, b in zip(got, again):
        np.testing.assert_array_equal(a, b)
