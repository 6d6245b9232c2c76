"""Checks the hand-written C kernel templates in ``kernels/`` against NumPy.

Each test module is a tiny cffi extension that ``#include``s the headers (gemm.h, conv2d.h,
pool2d.h), compiled into pytest's tmp dir three ways:

* ``native``   -- ``-O3 -march=native -fopenmp`` (AVX-512 or AVX2 path on x86),
* ``avx2``     -- ``-O3 -march=haswell`` (the AVX2 path; x86 only, skipped elsewhere),
* ``portable`` -- ``-O2 -march=x86-64`` (16-byte GCC vectors, the fallback path).

GEMM results are compared with a float64 NumPy product, conv/pool results with
``graphc.reference.conv``; every element must be within ``rtol * rms(reference)``
(float32 rtol 1e-4, float64 1e-10).
"""

from __future__ import annotations

import importlib.util
import itertools
import platform
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

cffi = pytest.importorskip("cffi")


import graphc.backends.c  # noqa: E402

KERNELS_DIR = Path(graphc.backends.c.__file__).parent / "kernels"

RTOL = {np.float32: 1e-4, np.float64: 1e-10}
CT = {np.float32: "float", np.float64: "double"}
PFX = {np.float32: "s", np.float64: "d"}

_GEMM_DECL = """
size_t gc_{p}gemm_workspace_size(int M, int N, int K);
size_t gc_{p}gemm_serial_workspace_size(int M, int N, int K);
size_t gc_{p}gemm_batched_workspace_size(int batch, int M, int N, int K);
void gc_{p}gemm(int transA, int transB, int M, int N, int K, {t} alpha, const {t} *A,
    ptrdiff_t lda, const {t} *B, ptrdiff_t ldb, {t} beta, {t} *C, ptrdiff_t ldc,
    void *ws, size_t ws_bytes);
void gc_{p}gemm_serial(int transA, int transB, int M, int N, int K, {t} alpha,
    const {t} *A, ptrdiff_t lda, const {t} *B, ptrdiff_t ldb, {t} beta, {t} *C,
    ptrdiff_t ldc, void *ws, size_t ws_bytes);
void gc_{p}gemm_batched(int batch, int transA, int transB, int M, int N, int K, {t} alpha,
    const {t} *A, ptrdiff_t lda, ptrdiff_t strideA, const {t} *B, ptrdiff_t ldb,
    ptrdiff_t strideB, {t} beta, {t} *C, ptrdiff_t ldc, ptrdiff_t strideC,
    void *ws, size_t ws_bytes);
void test_{p}gemm_bias_relu(int transA, int transB, int M, int N, int K, {t} alpha,
    const {t} *A, ptrdiff_t lda, const {t} *B, ptrdiff_t ldb, {t} beta, {t} *C,
    ptrdiff_t ldc, void *ws, size_t ws_bytes, const void *ectx);
void test_{p}gemm_hook_bias_relu(int transA, int transB, int M, int N, int K, {t} alpha,
    const {t} *A, ptrdiff_t lda, const {t} *B, ptrdiff_t ldb, {t} beta, {t} *C,
    ptrdiff_t ldc, void *ws, size_t ws_bytes, const {t} *bias, int owns, {t} *out);
"""
_CONV_ARGS = "int N, int C, int H, int W, int O, int KH, int KW, int SH, int SW, int PH, int PW"
_POOL_ARGS = "int N, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW"
_CONV_DECL = """
size_t gc_{p}conv2d_forward_workspace_size({ca});
size_t gc_{p}conv2d_backward_data_workspace_size({ca});
size_t gc_{p}conv2d_backward_filter_workspace_size({ca});
void gc_{p}conv2d_forward({ca}, const {t} *x, const {t} *w, {t} *y, void *ws, size_t wsb);
void gc_{p}conv2d_backward_data({ca}, const {t} *gy, const {t} *w, {t} *gx, void *ws,
    size_t wsb);
void gc_{p}conv2d_backward_filter({ca}, const {t} *x, const {t} *gy, {t} *gw, void *ws,
    size_t wsb);
void gc_{p}max_pool2d_forward({pa}, const {t} *x, {t} *y);
void gc_{p}max_pool2d_backward({pa}, const {t} *x, const {t} *gy, {t} *gx);
void gc_{p}max_pool2d_forward_idx({pa}, const {t} *x, {t} *y, int32_t *idx);
void gc_{p}max_pool2d_backward_idx({pa}, const int32_t *idx, const {t} *gy, {t} *gx);
void gc_{p}avg_pool2d_forward({pa}, const {t} *x, {t} *y);
void gc_{p}avg_pool2d_backward({pa}, const {t} *gy, {t} *gx);
"""
_CDEF = (
    "".join(
        (_GEMM_DECL + _CONV_DECL).format(p=p, t=t, ca=_CONV_ARGS, pa=_POOL_ARGS)
        for p, t in (("s", "float"), ("d", "double"))
    )
    + """
const char *test_isa(void);
void test_set_threads(int n);
int test_max_threads(void);
"""
)
_SOURCE = r"""
#include "gemm.h"
#include "conv2d.h"
#include "pool2d.h"
/* fused epilogue variants: v + bias[j], then relu */
#define TEST_BIAS_RELU(v, b) ((v) + (b) > 0 ? (v) + (b) : 0)
#define TEST_EPI_S(i, j, v, ctx) TEST_BIAS_RELU(v, ((const float *)(ctx))[j])
#define TEST_EPI_D(i, j, v, ctx) TEST_BIAS_RELU(v, ((const double *)(ctx))[j])
GC_DEFINE_SGEMM(test_sgemm_bias_relu, TEST_EPI_S)
GC_DEFINE_DGEMM(test_dgemm_bias_relu, TEST_EPI_D)
/* the run-time hook: relu(v + bias[j] + i / 64) on each block of final values, written
 * in place (owns == 0) or, as an owning hook, to out (row stride ldo) */
#define TEST_HOOK(p, T)                                                                      \
    typedef struct {                                                                         \
        gc_epi_fn fn;                                                                        \
        int owns_store;                                                                      \
        const T *bias;                                                                       \
        T *out;                                                                              \
        ptrdiff_t ldo;                                                                       \
    } test_##p##hook_t;                                                                      \
    static void test_##p##hook(const void *e, int i0, int j0, int m, int n, void *cv,        \
                               ptrdiff_t ldc) {                                              \
        const test_##p##hook_t *h = (const test_##p##hook_t *)e;                             \
        T *c = (T *)cv;                                                                      \
        for (int i = 0; i < m; i++)                                                          \
            for (int j = 0; j < n; j++) {                                                    \
                T v = c[i * ldc + j] + h->bias[j0 + j] + (T)(i0 + i) / 64;                   \
                v = v > 0 ? v : 0;                                                           \
                if (h->owns_store)                                                           \
                    h->out[(ptrdiff_t)(i0 + i) * h->ldo + j0 + j] = v;                       \
                else                                                                         \
                    c[i * ldc + j] = v;                                                      \
            }                                                                                \
    }                                                                                        \
    static void test_##p##gemm_hook_bias_relu(int ta, int tb, int M, int N, int K, T alpha,  \
            const T *A, ptrdiff_t lda, const T *B, ptrdiff_t ldb, T beta, T *C,              \
            ptrdiff_t ldc, void *ws, size_t ws_bytes, const T *bias, int owns, T *out) {     \
        test_##p##hook_t h = {test_##p##hook, owns, bias, out, N};                           \
        gc_##p##gemm_hook(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ws,          \
                          ws_bytes, &h);                                                     \
    }
TEST_HOOK(s, float)
TEST_HOOK(d, double)
static const char *test_isa(void) { return GC_GEMM_ISA; }
static void test_set_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}
static int test_max_threads(void) { return gc_max_threads(); }
"""

_IS_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
# name: (compiler flags, expected GC_GEMM_ISA or None for "whatever -march=native gives");
# the portable build also leaves out OpenMP, to check the headers compile and run without it.
VARIANTS = {
    "native": (["-O3", "-march=native", "-fopenmp"], None),
    "avx2": (["-O3", "-march=haswell", "-mtune=generic", "-fopenmp"], "avx2"),
    "portable": (["-O2", "-march=x86-64"], "portable"),
}


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _have_compiler() -> str | None:
    cc = sysconfig.get_config_var("CC") or "cc"
    for name in (cc.split()[0], "cc", "gcc", "clang"):
        if shutil.which(name):
            return name
    return None


def _build(tmp: Path, name: str, flags: list[str], source: str = _SOURCE, cdef: str = _CDEF):
    if _have_compiler() is None:
        pytest.skip("no C compiler found")
    for header in ("gemm.h", "conv2d.h", "pool2d.h"):
        assert (KERNELS_DIR / header).is_file(), f"{header} missing from {KERNELS_DIR}"
    ffi = cffi.FFI()
    ffi.cdef(cdef)
    ffi.set_source(
        name,
        source,
        include_dirs=[str(KERNELS_DIR)],
        extra_compile_args=[*flags, "-Wall", "-Wextra", "-Wno-unused-parameter"],
        extra_link_args=["-fopenmp"] if "-fopenmp" in flags else [],
    )
    so = ffi.compile(tmpdir=str(tmp), verbose=False)  # a compile error is a failure
    spec = importlib.util.spec_from_file_location(name, so)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules[name] = mod
    return mod


@pytest.fixture(scope="module", params=list(VARIANTS))
def lib(request, tmp_path_factory):
    flags, isa = VARIANTS[request.param]
    if isa is not None and not _IS_X86:
        pytest.skip("x86-only compile flags")
    if isa == "avx2" and not {"avx2", "fma"} <= _cpu_flags():
        pytest.skip("this CPU cannot run AVX2+FMA code")
    mod = _build(tmp_path_factory.mktemp(request.param), f"_gc_kernels_{request.param}", flags)
    got = mod.ffi.string(mod.lib.test_isa()).decode()
    if isa is not None:
        assert got == isa, f"{request.param} build compiled the {got} path"
    orig = mod.lib.test_max_threads()
    mod.lib.test_set_threads(2)  # exercise the threaded split even on 1-core machines
    yield mod
    mod.lib.test_set_threads(orig)  # the OpenMP setting is process-wide: restore it


def ptr(mod, a: np.ndarray):
    return mod.ffi.cast(f"{CT[a.dtype.type]} *", a.ctypes.data)


def assert_close(got: np.ndarray, ref: np.ndarray, dtype, what: str = "") -> None:
    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    scale = float(np.sqrt(np.mean(ref**2))) if ref.size else 0.0
    tol = RTOL[dtype] * max(scale, 1e-30)
    err = np.abs(got - ref)
    bad = ~(err <= tol)  # NaN counts as bad
    if bad.any():
        idx = np.unravel_index(np.argmax(np.where(bad, np.nan_to_num(err, nan=np.inf), 0)), ref.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())}/{ref.size} elements off; worst at {idx}: "
            f"got {got[idx]!r} want {ref[idx]!r} (tol {tol:.3g})"
        )


# ---------------------------------------------------------------------------- GEMM
def _opmat(rng, rows, cols, trans, dtype, pad):
    """op(X) of shape (rows, cols); the stored array (maybe transposed, ld padded)."""
    stored_shape = (cols, rows) if trans else (rows, cols)
    big = rng.standard_normal((stored_shape[0], stored_shape[1] + pad)).astype(dtype)
    view = big[:, : stored_shape[1]]
    op = view.T if trans else view
    return big, op, stored_shape[1] + pad


def _run_gemm(mod, dtype, ta, tb, m, n, k, alpha, beta, pad=0, ws_mode="exact", seed=0):
    rng = np.random.default_rng(seed)
    p = PFX[dtype]
    abig, aop, lda = _opmat(rng, m, k, ta, dtype, pad)
    bbig, bop, ldb = _opmat(rng, k, n, tb, dtype, pad)
    cbig = rng.standard_normal((m, n + pad)).astype(dtype)
    if beta == 0:
        cbig[:, :n] = np.nan  # must never be read
    outside = cbig[:, n:].copy()
    c0 = cbig[:, :n].astype(np.float64)
    ref = alpha * (aop.astype(np.float64) @ bop.astype(np.float64))
    if beta != 0:
        ref = ref + beta * c0
    L = mod.lib
    need = getattr(L, f"gc_{p}gemm_workspace_size")(m, n, k)
    if ws_mode == "exact":
        ws = np.empty(need + 1, np.uint8)[1:]  # misaligned on purpose
        wsp, wsb = mod.ffi.cast("void *", ws.ctypes.data), need
    elif ws_mode == "small":
        half = max(1, need // 2)
        ws = np.empty(half, np.uint8)
        wsp, wsb = mod.ffi.cast("void *", ws.ctypes.data), half
    else:
        wsp, wsb = mod.ffi.NULL, 0
    getattr(L, f"gc_{p}gemm")(
        ta,
        tb,
        m,
        n,
        k,
        alpha,
        ptr(mod, abig),
        lda,
        ptr(mod, bbig),
        ldb,
        beta,
        ptr(mod, cbig),
        n + pad,
        wsp,
        wsb,
    )
    assert_close(cbig[:, :n], ref, dtype, f"{p}gemm ta={ta} tb={tb} {m}x{n}x{k} a={alpha} b={beta}")
    np.testing.assert_array_equal(cbig[:, n:], outside)  # columns past N untouched


SIZES = (1, 7, 33, 130)
ALPHA_BETA = ((1.0, 0.0), (-0.5, 1.0), (2.0, 0.3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_all_transposes_and_sizes(lib, dtype):
    for i, (ta, tb, m, n, k) in enumerate(itertools.product((0, 1), (0, 1), SIZES, SIZES, SIZES)):
        alpha, beta = ALPHA_BETA[i % 3]
        _run_gemm(lib, dtype, ta, tb, m, n, k, alpha, beta, pad=i % 2 * 3, seed=i)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_gemm_crosses_cache_blocks(lib, dtype, ta, tb):
    # larger than MC (rows), NC (cols, 512/384) and KC (depth, 384/256), none a multiple
    _run_gemm(lib, dtype, ta, tb, 157, 531, 401, 1.5, 0.5, pad=5, seed=7)


@pytest.mark.parametrize("ws_mode", ["exact", "small", "null"])
def test_gemm_workspace_modes(lib, ws_mode):
    for dtype in (np.float32, np.float64):
        _run_gemm(lib, dtype, 0, 1, 200, 190, 150, 1.0, 0.0, ws_mode=ws_mode, seed=3)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_gemm_thread_counts(lib, threads):
    lib.lib.test_set_threads(threads)
    try:
        for dtype in (np.float32, np.float64):
            _run_gemm(lib, dtype, 0, 0, 130, 300, 260, 1.0, 1.0, seed=threads)
            _run_gemm(lib, dtype, 1, 1, 13, 700, 90, 1.0, 0.0, seed=threads)  # wide: split N
    finally:
        lib.lib.test_set_threads(2)


def test_gemm_degenerate(lib):
    L, ffi = lib.lib, lib.ffi
    # K == 0: C = beta * C ; alpha == 0: A/B not read
    c = np.arange(6, dtype=np.float32).reshape(2, 3)
    L.gc_sgemm(0, 0, 2, 3, 0, 1.0, ffi.NULL, 1, ffi.NULL, 3, 2.0, ptr(lib, c), 3, ffi.NULL, 0)
    np.testing.assert_array_equal(c, 2 * np.arange(6).reshape(2, 3))
    L.gc_sgemm(0, 0, 2, 3, 4, 0.0, ffi.NULL, 4, ffi.NULL, 3, 0.0, ptr(lib, c), 3, ffi.NULL, 0)
    np.testing.assert_array_equal(c, 0)
    # M == 0 / N == 0: nothing touched
    L.gc_dgemm(0, 0, 0, 3, 4, 1.0, ffi.NULL, 4, ffi.NULL, 3, 0.0, ffi.NULL, 3, ffi.NULL, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_batched(lib, dtype):
    rng = np.random.default_rng(1)
    p = PFX[dtype]
    L = lib.lib
    for batch, (m, n, k), ta, tb, share_b in [
        (5, (33, 7, 130), 0, 1, False),
        (1, (130, 33, 7), 1, 0, False),
        (4, (64, 70, 50), 1, 1, True),
        (3, (1, 1, 1), 0, 0, False),
    ]:
        a = rng.standard_normal((batch, k, m) if ta else (batch, m, k)).astype(dtype)
        b = rng.standard_normal((1 if share_b else batch,) + ((n, k) if tb else (k, n)))
        b = b.astype(dtype)
        c = rng.standard_normal((batch, m, n)).astype(dtype)
        aop = a.transpose(0, 2, 1) if ta else a
        bop = b.transpose(0, 2, 1) if tb else b
        ref = 0.5 * np.matmul(aop.astype(np.float64), bop.astype(np.float64)) + 2.0 * c
        need = getattr(L, f"gc_{p}gemm_batched_workspace_size")(batch, m, n, k)
        ws = np.empty(need, np.uint8)
        getattr(L, f"gc_{p}gemm_batched")(
            batch,
            ta,
            tb,
            m,
            n,
            k,
            0.5,
            ptr(lib, a),
            a.shape[2],
            a.shape[1] * a.shape[2],
            ptr(lib, b),
            b.shape[2],
            0 if share_b else b.shape[1] * b.shape[2],
            2.0,
            ptr(lib, c),
            n,
            m * n,
            lib.ffi.cast("void *", ws.ctypes.data),
            need,
        )
        assert_close(c, ref, dtype, f"batched {batch} {m}x{n}x{k}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_fused_epilogue_variant(lib, dtype):
    rng = np.random.default_rng(5)
    p = PFX[dtype]
    for m, n, k in [(7, 33, 130), (157, 531, 401)]:  # the second has several K blocks
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((n, k)).astype(dtype)
        bias = rng.standard_normal(n).astype(dtype)
        c = rng.standard_normal((m, n)).astype(dtype)
        ref = np.maximum(a.astype(np.float64) @ b.T.astype(np.float64) + 0.5 * c + bias, 0)
        getattr(lib.lib, f"test_{p}gemm_bias_relu")(
            0,
            1,
            m,
            n,
            k,
            1.0,
            ptr(lib, a),
            k,
            ptr(lib, b),
            k,
            0.5,
            ptr(lib, c),
            n,
            lib.ffi.NULL,
            0,
            lib.ffi.cast("void *", bias.ctypes.data),
        )
        assert_close(c, ref, dtype, "bias+relu epilogue")


@pytest.mark.parametrize("owns", [0, 1], ids=["in_place", "owns_store"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_run_time_hook(lib, dtype, owns):
    """gc_?gemm_hook calls the hook once on every block of final values with its global
    (i0, j0): stored in C first (owns_store 0), or only in scratch for the hook to store
    (owns_store 1; C then holds at most partial sums, when K spans several depth blocks)."""
    rng = np.random.default_rng(6)
    p = PFX[dtype]
    kc = 384 if dtype == np.float32 else 256  # GC_?GEMM_KC: 401 takes two depth blocks
    for m, n, k in [(7, 33, 130), (157, 531, 401), (64, 96, 64), (5, 9, 0), (1, 1, 1)]:
        a = rng.standard_normal((k, m)).astype(dtype)  # read transposed in place
        b = rng.standard_normal((k, n)).astype(dtype)
        bias = rng.standard_normal(n).astype(dtype)
        c = rng.standard_normal((m, n)).astype(dtype)
        c0 = c.copy()
        out = np.full((m, n), np.nan, dtype)
        rows = np.arange(m, dtype=np.float64)[:, None] / 64
        ref = np.maximum(a.T.astype(np.float64) @ b.astype(np.float64) + 0.5 * c + bias + rows, 0)
        getattr(lib.lib, f"test_{p}gemm_hook_bias_relu")(
            1, 0, m, n, k, 1.0, ptr(lib, a), m, ptr(lib, b), n, 0.5, ptr(lib, c), n,
            lib.ffi.NULL, 0, ptr(lib, bias), owns, ptr(lib, out))
        if not owns:
            assert_close(c, ref, dtype, f"hook epilogue {m}x{n}x{k}")
            assert np.isnan(out).all()
        else:
            assert_close(out, ref, dtype, f"owning hook epilogue {m}x{n}x{k}")
            if 0 < k <= kc:  # one depth block: the GEMM never wrote C
                np.testing.assert_array_equal(c, c0)


def test_gemm_default_epilogue_macro(tmp_path):
    """GC_EPILOGUE(i, j, v) defined before the include fuses into gc_sgemm/gc_dgemm."""
    src = '#define GC_EPILOGUE(i, j, v) ((v) * 2 + (i) * 1000 + (j))\n#include "gemm.h"\n'
    cdef = _GEMM_DECL.format(p="s", t="float").split("void test_sgemm_bias_relu")[0]
    mod = _build(tmp_path, "_gc_kernels_epi", ["-O1", "-fopenmp"], source=src, cdef=cdef)
    rng = np.random.default_rng(2)
    m, n, k = 45, 70, 500
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c = np.full((m, n), np.nan, np.float32)
    mod.lib.gc_sgemm(0, 0, m, n, k, 1.0, ptr(mod, a), k, ptr(mod, b), n, 0.0, ptr(mod, c), n, mod.ffi.NULL, 0)
    ii, jj = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
    ref = 2 * (a.astype(np.float64) @ b) + ii * 1000 + jj
    # tolerance relative to the product, not to the (large) index offsets
    err = np.abs(c - ref).max()
    assert err <= 1e-4 * 2 * np.sqrt(np.mean((a.astype(np.float64) @ b) ** 2)) + 1e-3, err


# ---------------------------------------------------------------------------- conv
from graphc.ops import conv as _conv  # noqa: E402
from graphc.ops import pool as _pool  # noqa: E402
from graphc.ops import windows as _windows  # noqa: E402


class ref_conv:  # noqa: N801 - the old module's names, for this file until it is rewritten
    conv2d_output_hw = staticmethod(_windows.output_hw)
    conv2d = staticmethod(_conv.conv2d_reference)
    conv2d_backward_data = staticmethod(_conv.conv2d_backward_data_reference)
    conv2d_backward_filter = staticmethod(_conv.conv2d_backward_filter_reference)
    max_pool2d = staticmethod(_pool.max_pool2d_reference)
    max_pool2d_backward = staticmethod(_pool.max_pool2d_backward_reference)
    avg_pool2d = staticmethod(_pool.avg_pool2d_reference)
    avg_pool2d_backward = staticmethod(_pool.avg_pool2d_backward_reference)
    _max_pool_first_argmax = staticmethod(_pool._max_pool_first_argmax)

# (N, C, H, W, O, (KH, KW), (SH, SW), (PH, PW))
CONV_CASES = [
    (2, 3, 7, 7, 4, (3, 3), (1, 1), (1, 1)),
    (3, 2, 8, 9, 5, (3, 2), (2, 1), (1, 0)),
    (2, 4, 5, 6, 3, (1, 1), (1, 1), (0, 0)),  # pointwise: no im2col
    (2, 3, 10, 11, 2, (3, 3), (3, 3), (0, 0)),  # floor leaves rows/cols untouched
    (1, 2, 2, 3, 3, (4, 5), (1, 2), (2, 2)),  # kernel larger than the input
    (4, 16, 16, 16, 32, (3, 3), (1, 1), (1, 1)),  # threads over the batch
    (1, 16, 20, 20, 24, (3, 3), (1, 1), (1, 1)),  # one image: threads inside the GEMM
    (5, 1, 13, 13, 7, (5, 5), (2, 2), (2, 2)),
    (2, 40, 6, 6, 300, (3, 3), (1, 1), (1, 1)),  # O and C*KH*KW beyond the GEMM blocks
]


def _conv_call(lib, dtype, kind, case, a, b, out):
    n, c, h, w, o, (kh, kw), (sh, sw), (ph, pw) = case
    p = PFX[dtype]
    args = (n, c, h, w, o, kh, kw, sh, sw, ph, pw)
    need = getattr(lib.lib, f"gc_{p}conv2d_{kind}_workspace_size")(*args)
    ws = np.empty(need + 3, np.uint8)[3:]
    getattr(lib.lib, f"gc_{p}conv2d_{kind}")(
        *args,
        ptr(lib, a),
        ptr(lib, b),
        ptr(lib, out),
        lib.ffi.cast("void *", ws.ctypes.data),
        need,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c[:5])))
def test_conv2d_forward_and_backward(lib, dtype, case):
    n, c, h, w, o, k, s, pd = case
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c, *k)).astype(dtype)
    oh, ow = ref_conv.conv2d_output_hw(h, w, k, s, pd)
    gy = rng.standard_normal((n, o, oh, ow)).astype(dtype)

    y = np.full((n, o, oh, ow), np.nan, dtype)
    _conv_call(lib, dtype, "forward", case, x, wt, y)
    assert_close(y, ref_conv.conv2d(x.astype(np.float64), wt.astype(np.float64), s, pd), dtype, "conv fwd")

    gx = np.full(x.shape, np.nan, dtype)
    _conv_call(lib, dtype, "backward_data", case, gy, wt, gx)
    ref = ref_conv.conv2d_backward_data(gy.astype(np.float64), wt.astype(np.float64), (h, w), s, pd)
    assert_close(gx, ref, dtype, "conv bwd data")

    gw = np.full(wt.shape, np.nan, dtype)
    _conv_call(lib, dtype, "backward_filter", case, x, gy, gw)
    ref = ref_conv.conv2d_backward_filter(x.astype(np.float64), gy.astype(np.float64), k, s, pd)
    assert_close(gw, ref, dtype, "conv bwd filter")


def test_conv2d_null_workspace_and_determinism(lib):
    case = (6, 8, 12, 12, 16, (3, 3), (1, 1), (1, 1))
    n, c, h, w, o, (kh, kw), (sh, sw), (ph, pw) = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    gy = rng.standard_normal((n, o, h, w)).astype(np.float32)
    outs = []
    for _ in range(3):
        gw = np.empty((o, c, kh, kw), np.float32)
        lib.lib.gc_sconv2d_backward_filter(
            n, c, h, w, o, kh, kw, sh, sw, ph, pw, ptr(lib, x), ptr(lib, gy), ptr(lib, gw), lib.ffi.NULL, 0
        )
        outs.append(gw)
    assert all(np.array_equal(outs[0], g) for g in outs[1:])
    ref = ref_conv.conv2d_backward_filter(x.astype(np.float64), gy.astype(np.float64), 3, 1, 1)
    assert_close(outs[0], ref, np.float32, "bwd filter, ws NULL")


# ---------------------------------------------------------------------------- pooling
# (N, C, H, W, k, s, p)
POOL_CASES = [
    (2, 3, 8, 8, (2, 2), (2, 2), (0, 0)),
    (2, 2, 7, 9, (3, 3), (2, 2), (1, 1)),  # overlapping windows + padding
    (1, 3, 6, 5, (3, 3), (1, 1), (1, 1)),
    (2, 2, 7, 7, (2, 2), (2, 2), (0, 0)),  # floor: last row/col untouched
    (3, 2, 9, 8, (3, 2), (2, 1), (1, 0)),
    (1, 1, 1, 1, (1, 1), (1, 1), (0, 0)),
    (8, 16, 32, 32, (3, 3), (2, 2), (1, 1)),  # enough work for threads
    # unpadded pooling takes the whole-row fast path: overlapping, strided, odd shapes,
    (2, 3, 9, 11, (3, 3), (1, 2), (0, 0)),
    (1, 2, 5, 40, (2, 3), (2, 3), (0, 0)),
    (8, 16, 28, 28, (2, 2), (2, 2), (0, 0)),  # the CNN's pool, with threads
    (1, 1, 2, 1100, (2, 2), (2, 2), (0, 0)),  # a row wider than GC_POOL_ROW: per window
    (2, 2, 9, 12, (3, 3), (3, 3), (0, 0)),  # windows tile the plane: dense backward
]


def _pool_args(case):
    n, c, h, w, (kh, kw), (sh, sw), (ph, pw) = case
    return (n, c, h, w, kh, kw, sh, sw, ph, pw)


def _check_pool(lib, dtype, case, x):
    n, c, h, w, k, s, pd = case
    p = PFX[dtype]
    L = lib.lib
    args = _pool_args(case)
    oh, ow = ref_conv.conv2d_output_hw(h, w, k, s, pd)
    rng = np.random.default_rng(1)
    gy = rng.standard_normal((n, c, oh, ow)).astype(dtype)

    y = np.full((n, c, oh, ow), 7.0, dtype)
    getattr(L, f"gc_{p}max_pool2d_forward")(*args, ptr(lib, x), ptr(lib, y))
    ref = ref_conv.max_pool2d(x, k, s, pd)
    np.testing.assert_array_equal(y, ref)  # max is exact
    idx = np.full((n, c, oh, ow), -1, np.int32)
    y2 = np.empty_like(y)
    getattr(L, f"gc_{p}max_pool2d_forward_idx")(
        *args, ptr(lib, x), ptr(lib, y2), lib.ffi.cast("int32_t *", idx.ctypes.data)
    )
    np.testing.assert_array_equal(y2, ref)
    _, flat = ref_conv._max_pool_first_argmax(x, k, s, pd)
    np.testing.assert_array_equal(idx, flat)

    gx = np.full(x.shape, np.nan, dtype)
    getattr(L, f"gc_{p}max_pool2d_backward")(*args, ptr(lib, x), ptr(lib, gy), ptr(lib, gx))
    ref = ref_conv.max_pool2d_backward(x, gy, k, s, pd)
    assert_close(gx, ref, dtype, "max pool bwd")
    gx[...] = np.nan
    getattr(L, f"gc_{p}max_pool2d_backward_idx")(
        *args, lib.ffi.cast("int32_t *", idx.ctypes.data), ptr(lib, gy), ptr(lib, gx)
    )
    assert_close(gx, ref, dtype, "max pool bwd (idx)")

    if np.isfinite(x).all():
        ya = np.full((n, c, oh, ow), np.nan, dtype)
        getattr(L, f"gc_{p}avg_pool2d_forward")(*args, ptr(lib, x), ptr(lib, ya))
        assert_close(ya, ref_conv.avg_pool2d(x.astype(np.float64), k, s, pd), dtype, "avg fwd")
        gx[...] = np.nan
        getattr(L, f"gc_{p}avg_pool2d_backward")(*args, ptr(lib, gy), ptr(lib, gx))
        ref = ref_conv.avg_pool2d_backward(gy.astype(np.float64), (h, w), k, s, pd)
        assert_close(gx, ref, dtype, "avg bwd")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "x".join(map(str, c[:4])))
def test_pool2d(lib, dtype, case):
    n, c, h, w = case[:4]
    rng = np.random.default_rng(h * 31 + w)
    _check_pool(lib, dtype, case, rng.standard_normal((n, c, h, w)).astype(dtype))
    # many ties: the gradient must go to the FIRST maximum of each window
    _check_pool(lib, dtype, case, rng.integers(0, 3, (n, c, h, w)).astype(dtype))


@pytest.mark.parametrize("k,st,pad", [(3, 2, 1), (3, 2, 0), (2, 2, 0)],
                         ids=["padded", "unpadded_fast_path", "tiled_2x2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_inf_and_nan(lib, dtype, k, st, pad):
    case = (1, 2, 6, 6, (k, k), (st, st), (pad, pad))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 6, 6)).astype(dtype)
    x[0, 0, :2, :2] = -np.inf  # a window of -inf only (plus -inf padding if padded)
    x[0, 1, 3, 2] = np.nan
    x[0, 1, 3, 4] = np.nan
    x[0, 1, 0, 0] = np.inf
    with np.errstate(invalid="ignore"):
        p = PFX[dtype]
        args = _pool_args(case)
        oh, ow = ref_conv.conv2d_output_hw(6, 6, (k, k), (st, st), (pad, pad))
        y = np.empty((1, 2, oh, ow), dtype)
        getattr(lib.lib, f"gc_{p}max_pool2d_forward")(*args, ptr(lib, x), ptr(lib, y))
        np.testing.assert_array_equal(y, ref_conv.max_pool2d(x, k, st, pad))
        idx = np.empty((1, 2, oh, ow), np.int32)
        getattr(lib.lib, f"gc_{p}max_pool2d_forward_idx")(
            *args, ptr(lib, x), ptr(lib, y), lib.ffi.cast("int32_t *", idx.ctypes.data)
        )
        np.testing.assert_array_equal(idx, ref_conv._max_pool_first_argmax(x, k, st, pad)[1])
        gy = rng.standard_normal(y.shape).astype(dtype)
        gx = np.empty_like(x)
        getattr(lib.lib, f"gc_{p}max_pool2d_backward")(*args, ptr(lib, x), ptr(lib, gy), ptr(lib, gx))
        np.testing.assert_allclose(gx, ref_conv.max_pool2d_backward(x, gy, k, st, pad), rtol=1e-6)


def test_avx512_path_compiles(tmp_path):
    """The AVX-512 micro-kernels (MR = 12, incl. the edge-panel variants) compile even on a
    machine that cannot run them (the AVX2 and portable paths also run, above)."""
    cc = _have_compiler()
    if cc is None or not _IS_X86:
        pytest.skip("needs an x86 C compiler")
    src = tmp_path / "avx512.c"
    src.write_text('#include "gemm.h"\n#include "conv2d.h"\n#include "pool2d.h"\n'
                   '_Static_assert(GC_GEMM_MR == 12, "the AVX-512 path");\n'
                   "void f(float *a, float *b, float *c, void *w, size_t n) {\n"
                   "    gc_sgemm(0, 0, 13, 70, 9, 1.f, a, 9, b, 70, 0.f, c, 70, w, n);\n}\n")
    proc = subprocess.run([cc, "-O2", "-march=skylake-avx512", "-fopenmp", "-Wall", "-Wextra",
                           "-Werror", "-Wno-unused-parameter", f"-I{KERNELS_DIR}", "-c",
                           str(src), "-o", str(tmp_path / "avx512.o")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
