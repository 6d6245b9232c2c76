"""Overflow-sized shapes: sizes are 64-bit and checked; what does not fit is a GraphcError
naming the value, its shape and the batch size, raised before any native code runs or any
memory is allocated; nothing here allocates more than a few kilobytes."""

from __future__ import annotations

import importlib.util
import subprocess
import sysconfig

import numpy as np
import pytest

import graphc as gc
from graphc import env
from graphc.backends.c import templates
from graphc.ir.errors import GraphcError

cffi = pytest.importorskip("cffi")

ROWS = 2**31 + 1  # more rows than a C int counts


def _wide_reduction():
    """x (N, 0) holds nothing, but its per-example sum y is (N,) float32."""
    g = gc.Graph()
    with g:
        x = gc.placeholder((None, 0))
        y = gc.sum(x * 2.0, axis=1)
        total = gc.sum(y + 1.0)
    return g, x, y, total


def test_empty_feed_of_huge_batch_needs_no_memory(backend):
    """(2**58, 0) in, (2**58, 0) out: no element anywhere, so it runs, as NumPy does."""
    g = gc.Graph()
    with g:
        x = gc.placeholder((None, 0))
        y = x * 2.0 + 1.0
        s = gc.sum(x)
    out, total = gc.Session(g, backend=backend).run([y, s], {x: np.empty((2**58, 0), np.float32)})
    assert out.shape == (2**58, 0) and total == 0.0


def test_huge_batch_whose_intermediate_cannot_exist_is_refused(backend):
    """Before the fix the arena size wrapped to 0 on the C backend and the step segfaulted."""
    g, x, _, total = _wide_reduction()
    sess = gc.Session(g, backend=backend)
    with pytest.raises(GraphcError) as info:
        sess.run(total, {x: np.empty((2**58, 0), np.float32)})
    if backend == "c":  # NumPy's own message is its allocation failure
        assert str(2**58) in str(info.value) and "sum" in str(info.value)


@pytest.mark.needs_c
def test_value_too_large_for_64_bits_is_named():
    g = gc.Graph()
    with g:
        x = gc.placeholder((None, 0))
        y = gc.matmul(x, gc.variable(np.zeros((0, 8), np.float32)))  # (N, 8): 2**65 bytes
    with pytest.raises(GraphcError) as info:
        gc.Session(g, backend="c").run(y, {x: np.empty((2**60, 0), np.float32)})
    message = str(info.value)
    assert message.startswith(f"matmul ({y.name}): at batch size {2**60} its value of shape "
                              f"({2**60}, 8) would need {2**65} bytes")
    assert "test_overflow.py" in message  # the line that defined it


@pytest.mark.needs_c
def test_arena_size_overflow_raises():
    g, _, _, total = _wide_reduction()
    compiled = gc.Session(g, backend="c").compile([total])
    assert compiled.arena_bytes(1000) >= 1000 * 4
    for batch in (2**57, 2**62, 2**63 - 1):
        with pytest.raises(GraphcError, match=f"batch size {batch}"):
            compiled.arena_bytes(batch)


@pytest.mark.needs_c
def test_conv_image_too_large_for_the_templates_is_refused_at_compile_time():
    g = gc.Graph()
    with g:
        x = gc.placeholder((None, 1, 50_000, 50_000))  # 2.5e9 elements per image
        w = gc.variable(np.ones((1, 1, 3, 3), np.float32))
        y = gc.sum(gc.conv2d(x, w))
    with pytest.raises(GraphcError, match=r"conv2d .*one image is too large.*C\*H\*W = 2500000000"):
        gc.Session(g, backend="c").compile([y])


# ------------------------------------------------------------------ the GEMM template itself
_HELPER = r"""
typedef struct { int64_t lo, hi, calls; } rows_seen;
static void seen_tile(const gc_epilogue *e, int64_t image, int64_t i0, int64_t j0, int64_t m,
                      int64_t n, void *c, ptrdiff_t ldc) {
    rows_seen *r = (rows_seen *)e->ctx;
    (void)image; (void)j0; (void)n; (void)c; (void)ldc;
    if (i0 < r->lo) r->lo = i0;
    if (i0 + m > r->hi) r->hi = i0 + m;
    r->calls++;
}
/* Rows [m0, m1) of an M = m1 row product whose rows all alias one row (lda = ldc = 0): only
 * m1 - m0 rows of work and memory, at row indices past 2**31. */
static void test_gemm_rows(int64_t m0, int64_t m1, int64_t n, int64_t k, const float *a,
                           const float *b, float *c, int64_t *seen) {
    rows_seen r = {INT64_MAX, 0, 0};
    const gc_epilogue epi = {seen_tile, 0, &r};
    const gc_s_gemm_job g = {.M = m1, .N = n, .K = k, .A = a, .lda = 0, .B = b, .ldb = n,
                             .C = c, .ldc = 0, .epi = &epi};
    void *own = malloc(gc_s_gemm_thread_bytes(m1, n, k) + 64);
    gc_s_gemm_tile(&g, m0, m1, 0, n, gc_align64(own));
    free(own);
    seen[0] = r.lo;
    seen[1] = r.hi;
    seen[2] = r.calls;
}
"""


@pytest.fixture(scope="module")
def gemm_lib(tmp_path_factory):
    found = env.find_c_compiler()
    if found is None:
        pytest.skip("no C compiler found")
    tmp = tmp_path_factory.mktemp("gemm64")
    ffi = cffi.FFI()
    ffi.cdef("void test_gemm_rows(int64_t m0, int64_t m1, int64_t n, int64_t k, const float *a, "
             "const float *b, float *c, int64_t *seen);")
    ffi.set_source("_gc_gemm64", templates.source(["gemm"], ["float32"]) + _HELPER)
    c_file = tmp / "_gc_gemm64.c"
    ffi.emit_c_code(str(c_file))
    so = tmp / f"_gc_gemm64{sysconfig.get_config_var('EXT_SUFFIX')}"
    cmd = [found[0], "-O1", "-std=gnu11", "-fPIC", "-shared", "-Wall", "-Werror",
           f"-I{sysconfig.get_paths()['include']}", str(c_file), "-o", str(so)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    spec = importlib.util.spec_from_file_location("_gc_gemm64", so)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gemm_rows_past_2_to_the_31(gemm_lib):
    """The last rows of a 2**31 + 1 row product are computed, at their own indices (the
    GEMM took M as an int, so such a product computed nothing and returned zeros)."""
    ffi, lib = gemm_lib.ffi, gemm_lib.lib
    n, k = 5, 7
    rng = np.random.default_rng(0)
    a = rng.standard_normal(k).astype(np.float32)  # the one row every row of A is
    b = rng.standard_normal((k, n)).astype(np.float32)
    c = np.zeros(n, np.float32)
    seen = np.zeros(3, np.int64)
    m0 = ROWS - 3
    lib.test_gemm_rows(m0, ROWS, n, k, ffi.from_buffer("float[]", a), ffi.from_buffer("float[]", b),
                       ffi.from_buffer("float[]", c), ffi.from_buffer("int64_t[]", seen))
    np.testing.assert_allclose(c, a @ b, rtol=1e-5)
    assert seen[0] == m0 and seen[1] == ROWS and seen[2] >= 1
