"""graphc's own float32 exp and tanh (gc_expf, gc_tanhf, printed for every float32 ``exp``
and ``tanh``) against float64 NumPy.

They replace libm's expf and tanhf so fused loops vectorize; gc_expf must stay within ~1 ulp
over the whole range, subnormal results included, gc_tanhf within a few; both are exact at
0, +-inf and NaN.
"""

import numpy as np
import pytest

import graphc as gc

pytestmark = pytest.mark.needs_c


def _exp_c(values: np.ndarray) -> np.ndarray:
    with gc.Graph() as g:
        x = gc.placeholder((values.size,), name="x")
        y = gc.exp(x)
    sess = gc.Session(g, backend="c")
    assert "gc_expf(" in sess.compile(y).source
    return sess.run(y, {x: values})


def test_gc_expf_is_within_one_ulp_over_the_whole_range():
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.uniform(-104.5, 89.0, 200_000), np.linspace(-104.5, 89.0, 100_001),
                        rng.standard_normal(10_000) * 1e-3]).astype(np.float32)
    y = _exp_c(x)
    ref = np.exp(x.astype(np.float64))
    with np.errstate(over="ignore"):
        ref32 = ref.astype(np.float32)
    normal = np.isfinite(ref32) & (ref32 >= np.finfo(np.float32).tiny)
    ulps = np.abs(y[normal] - ref[normal]) / np.spacing(ref32[normal]).astype(np.float64)
    assert ulps.max() <= 1.5, f"max error {ulps.max():.2f} ulp at x={x[normal][ulps.argmax()]!r}"
    sub = ~normal & np.isfinite(ref32)  # subnormal or zero results: absolute error of one step
    assert np.all(np.abs(y[sub] - ref[sub]) <= 2 * np.float64(2.0**-149))
    over = ~np.isfinite(ref32)
    assert np.all(np.isinf(y[over]))


def test_gc_expf_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 88.72, 88.73, -87.3, -103.9, -150.0, 1e-30,
                  -1e-30], np.float32)
    y = _exp_c(x)
    with np.errstate(over="ignore"):
        ref = np.exp(x.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(y[ok], ref[ok], rtol=2.5e-7, atol=2e-45)
    assert y[2] == np.inf and y[3] == 0.0 and y[0] == 1.0


def test_sigmoid_and_softplus_built_on_gc_expf_stay_accurate_at_the_tails():
    x = np.linspace(-120, 120, 4801).astype(np.float32)
    with gc.Graph() as g:
        t = gc.placeholder((x.size,), name="t")
        s, p = gc.sigmoid(t), gc.softplus(t)
    got_s, got_p = gc.Session(g, backend="c").run([s, p], {t: x})
    x64 = x.astype(np.float64)
    ref_s = 1 / (1 + np.exp(-x64))
    ref_p = np.logaddexp(0, x64)
    np.testing.assert_allclose(got_s, ref_s, rtol=1e-6, atol=1e-45)
    np.testing.assert_allclose(got_p, ref_p, rtol=1e-6, atol=1e-45)


def test_gc_tanhf_is_within_a_few_ulps_and_exact_at_the_ends():
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.uniform(-12, 12, 200_000), np.linspace(-1, 1, 100_001),
                        rng.standard_normal(10_000) * 1e-4, [0.625, -0.625, 0.62499994, 1e-30],
                        ]).astype(np.float32)
    with gc.Graph() as g:
        t = gc.placeholder((x.size,), name="t")
        y = gc.tanh(t)
    sess = gc.Session(g, backend="c")
    source = sess.compile(y).source
    assert "gc_tanhf(" in source[source.index("static void k0_"):]  # the kernel calls it
    got = sess.run(y, {t: x})
    ref = np.tanh(x.astype(np.float64))
    ulps = np.abs(got - ref) / np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    assert ulps.max() <= 3, f"max error {ulps.max():.2f} ulp at x={x[ulps.argmax()]!r}"
    ends = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 50.0, -50.0], np.float32)
    got = sess.run(y, {t: np.resize(ends, x.size)})[:ends.size]
    np.testing.assert_array_equal(got[[0, 2, 3, 5, 6]], [0, 1, -1, 1, -1])
    assert np.signbit(got[1]) and np.isnan(got[4])
