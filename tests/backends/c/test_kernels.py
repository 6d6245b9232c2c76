"""Checks the hand-written C kernel templates (graphc/backends/c/kernels) against NumPy.

``templates.source`` of every template (float32 and float64) plus test helpers is built once
per session as a cffi extension, three ways in parallel (see VARIANTS): native (AVX-512 here),
AVX2, and portable (16-byte GCC vectors, no OpenMP).  Every output element is compared with a
NumPy reference on random data (a float64 product; ``graphc.ops.conv`` / ``graphc.ops.pool``)
within ``rtol * rms(reference)``, exactly where the kernel only selects (max pooling).  OpenMP
runs 2 threads unless a test says otherwise.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fnmatch
import importlib.util
import platform
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from graphc import env
from graphc.backends.c import templates
from graphc.ops import conv as ref_conv
from graphc.ops import pool as ref_pool
from graphc.ops.windows import output_hw

cffi = pytest.importorskip("cffi")
pytestmark = pytest.mark.slow  # three builds of the templates (the op cases use them in the quick subset)

RTOL = {np.float32: 1e-4, np.float64: 1e-10}
CT = {np.float32: "float", np.float64: "double"}
PFX = {np.float32: "s", np.float64: "d"}
DTYPES = [np.float32, np.float64]
_IS_X86 = platform.machine().lower() in ("x86_64", "amd64")

_CDEF_COMMON = """
typedef struct gc_epilogue gc_epilogue;
typedef void (*gc_tile_fn)(const gc_epilogue *e, int64_t image, int64_t i0, int64_t j0,
                           int64_t m, int64_t n, void *c, ptrdiff_t ldc);
struct gc_epilogue { gc_tile_fn fn; int owns_store; const void *ctx; };
typedef struct { int64_t N; int C, H, W, O, KH, KW, SH, SW, PH, PW; } gc_conv_shape;
typedef struct { int64_t N; int C, H, W, KH, KW, SH, SW, PH, PW; } gc_pool_shape;
typedef struct { const void *col, *row; void *out; ptrdiff_t ldo, image_stride; } test_ctx;
const char *test_isa(void);
void test_set_threads(int n);
int test_max_threads(void);
"""
_CDEF_TYPED = """
size_t gc_{p}gemm_workspace_size(int64_t M, int64_t N, int64_t K);
void gc_{p}gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, const {t} *A, ptrdiff_t lda,
    const {t} *B, ptrdiff_t ldb, {t} *C, ptrdiff_t ldc, void *ws, size_t ws_bytes, const gc_epilogue *epi);
size_t gc_{p}conv2d_forward_workspace_size(const gc_conv_shape *s);
size_t gc_{p}conv2d_backward_data_workspace_size(const gc_conv_shape *s);
size_t gc_{p}conv2d_backward_filter_workspace_size(const gc_conv_shape *s);
void gc_{p}conv2d_forward(const gc_conv_shape *s, const {t} *x, const {t} *w, {t} *y, void *ws,
    size_t ws_bytes, const gc_epilogue *epi);
size_t gc_{p}gemm_packed_b_elems(int64_t N, int64_t K);
void gc_{p}gemm_pack_b(int tb, int64_t N, int64_t K, const {t} *B, ptrdiff_t ldb, {t} *packed);
size_t gc_{p}gemm_packed_workspace_size(int64_t M, int64_t N, int64_t K);
void gc_{p}gemm_packed(int ta, int64_t M, int64_t N, int64_t K, const {t} *A, ptrdiff_t lda,
    const {t} *packed, {t} *C, ptrdiff_t ldc, void *ws, size_t ws_bytes, const gc_epilogue *epi);
void gc_{p}conv2d_backward_data(const gc_conv_shape *s, const {t} *gy, const {t} *w, {t} *gx, void *ws,
    size_t ws_bytes, const gc_epilogue *epi);
void gc_{p}conv2d_backward_filter(const gc_conv_shape *s, const {t} *x, const {t} *gy, {t} *gw, void *ws,
    size_t ws_bytes);
void gc_{p}max_pool2d_forward(const gc_pool_shape *s, const {t} *x, {t} *y);
void gc_{p}max_pool2d_backward(const gc_pool_shape *s, const {t} *x, const {t} *gy, {t} *gx);
void gc_{p}max_pool2d_select(const gc_pool_shape *s, const {t} *x, const {t} *gx, {t} *y);
void gc_{p}avg_pool2d_forward(const gc_pool_shape *s, const {t} *x, {t} *y);
void gc_{p}avg_pool2d_backward(const gc_pool_shape *s, const {t} *gy, {t} *gx);
void gc_{p}test_tile(const gc_epilogue *e, int64_t image, int64_t i0, int64_t j0, int64_t m,
    int64_t n, void *c, ptrdiff_t ldc);
"""
# The test epilogue, once for both types (after templates.prelude): v -> 2 v + col[j] +
# row[i] + image / 2 on each block (applied twice, it would show), in place, or (owns_store)
# stored to out[image][i][j] (row stride ldo).
_TILE = """
static void GC_FN(test_tile)(const gc_epilogue *e, int64_t image, int64_t i0, int64_t j0,
                             int64_t m, int64_t n, void *cv, ptrdiff_t ldc) {
    const test_ctx *t = (const test_ctx *)e->ctx;
    const GC_T *col = (const GC_T *)t->col, *row = (const GC_T *)t->row;
    GC_T *c = (GC_T *)cv, *out = (GC_T *)t->out + image * t->image_stride;
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            GC_T v = 2 * c[i * ldc + j] + col[j0 + j] + row[i0 + i] + (GC_T)image / 2;
            if (e->owns_store) out[(i0 + i) * t->ldo + j0 + j] = v;
            else c[i * ldc + j] = v;
        }
}
"""
_HELPERS = """
typedef struct { const void *col, *row; void *out; ptrdiff_t ldo, image_stride; } test_ctx;
static const char *test_isa(void) { return GC_GEMM_ISA; }
#ifdef _OPENMP
static void test_set_threads(int n) { omp_set_num_threads(n); }
#else
static void test_set_threads(int n) { (void)n; }
#endif
static int test_max_threads(void) { return gc_max_threads(); }
"""
CDEF = _CDEF_COMMON + "".join(_CDEF_TYPED.format(p=p, t=t) for t, p in templates.DTYPES.values())
SOURCE = (templates.source(templates.TEMPLATES, templates.DTYPES) + _HELPERS
          + "".join(templates.prelude(d) + _TILE + templates.UNDEF for d in templates.DTYPES))
# name: (compiler flags, the GC_GEMM_ISA it must compile, None: whatever -march=native gives)
VARIANTS = {
    "native": (["-O3", "-march=native", "-fopenmp"], None),
    "avx2": (["-O3", "-mavx2", "-mfma", "-fopenmp"], "avx2"),
    "portable": (["-O2"], "portable"),
}
# as generated code is compiled (graphc/backends/c/build.py); -Werror: the templates compile
# without warnings on every path
COMMON_FLAGS = ["-fno-trapping-math", "-std=gnu11", "-Wall", "-Wextra", "-Werror"]


def _cpu_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    return set(next((ln.split(":", 1)[1] for ln in lines if ln.startswith("flags")), "").split())


def _compiler() -> str:
    found = env.find_c_compiler()
    if found is None:
        pytest.skip("no C compiler found")
    return found[0]


def _build(cc: str, tmp: Path, name: str, flags: list[str]):
    """Compiles SOURCE as the cffi extension `name` (emit_c_code + the compiler called here:
    ffi.compile changes the working directory, so it cannot run in parallel threads)."""
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.set_source(name, SOURCE)
    c_file = tmp / f"{name}.c"
    ffi.emit_c_code(str(c_file))
    so = tmp / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}"
    cmd = [cc, *flags, *COMMON_FLAGS, "-fPIC", "-shared", f"-I{sysconfig.get_paths()['include']}",
           str(c_file), "-o", str(so)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{name}: {' '.join(cmd)}\n{proc.stderr}"
    spec = importlib.util.spec_from_file_location(name, so)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def builds(tmp_path_factory):
    """Every variant this machine can run: name -> module, or the reason it is skipped."""
    cc = _compiler()
    out: dict[str, object] = {}
    todo = {}
    for name, (flags, isa) in VARIANTS.items():
        if isa is not None and not _IS_X86:
            out[name] = "x86-only compile flags"
        elif isa == "avx2" and not {"avx2", "fma"} <= _cpu_flags():
            out[name] = "this CPU cannot run AVX2+FMA code"
        else:
            todo[name] = flags
    with concurrent.futures.ThreadPoolExecutor(len(todo)) as pool:
        futures = {n: pool.submit(_build, cc, tmp_path_factory.mktemp(n), f"_gc_kernels_{n}", f)
                   for n, f in todo.items()}
        out.update({n: f.result() for n, f in futures.items()})
    return out


@pytest.fixture(scope="module", params=list(VARIANTS))
def lib(request, builds):
    mod = builds[request.param]
    if isinstance(mod, str):
        pytest.skip(mod)
    isa = VARIANTS[request.param][1]
    got = mod.ffi.string(mod.lib.test_isa()).decode()
    if isa is None and _IS_X86:
        isa = "avx512" if "avx512f" in _cpu_flags() else "avx2" if "avx2" in _cpu_flags() else None
    assert isa is None or got == isa, f"{request.param} build compiled the {got} path"
    orig = mod.lib.test_max_threads()
    mod.lib.test_set_threads(2)  # exercise the threaded paths even on 1-core machines
    yield mod
    mod.lib.test_set_threads(orig)  # the OpenMP setting is process-wide: restore it


@contextlib.contextmanager
def omp_threads(mod, n: int):
    """Runs the block with OpenMP at n threads (then back to the fixture's 2)."""
    mod.lib.test_set_threads(n)
    try:
        yield
    finally:
        mod.lib.test_set_threads(2)


def ptr(mod, a: np.ndarray):
    return mod.ffi.cast(f"{CT[a.dtype.type]} *", a.ctypes.data)


def workspace(mod, need: int, mode: str = "exact"):
    """(pointer, bytes): `need` bytes misaligned on purpose, half, one byte, or NULL."""
    size = {"exact": need, "half": max(1, need // 2), "byte": 1, "null": 0}[mode]
    buf = np.empty(size + 3, np.uint8)[3:]
    return (mod.ffi.cast("void *", buf.ctypes.data) if size else mod.ffi.NULL), size, buf


def assert_close(got, ref, dtype, what: str = "") -> None:
    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    scale = float(np.sqrt(np.mean(ref**2))) if ref.size else 0.0
    tol = RTOL[dtype] * max(scale, 1e-30)
    bad = ~(np.abs(got - ref) <= tol)  # NaN counts as bad
    if bad.any():
        idx = np.unravel_index(np.argmax(bad), ref.shape)
        raise AssertionError(f"{what}: {int(bad.sum())}/{ref.size} elements off; first at {idx}: "
                             f"got {got[idx]!r} want {ref[idx]!r} (tol {tol:.3g})")


class Epilogue:
    """A gc_epilogue running gc_?test_tile, with its context (keeps the arrays alive)."""

    def __init__(self, mod, dtype, rows: int, cols: int, owns: int = 0, out_shape=None, seed=0):
        rng = np.random.default_rng(seed)
        self.row = rng.standard_normal(rows).astype(dtype)
        self.col = rng.standard_normal(cols).astype(dtype)
        self.out = np.full(out_shape or (1, 1), np.nan, dtype)
        ldo, stride = (self.out.shape[-1], self.out[0].size) if out_shape else (0, 0)
        self.ctx = mod.ffi.new("test_ctx *", [ptr(mod, self.col), ptr(mod, self.row),
                                              ptr(mod, self.out), ldo, stride])
        fn = mod.ffi.addressof(mod.lib, f"gc_{PFX[np.dtype(dtype).type]}test_tile")
        self.c = mod.ffi.new("gc_epilogue *", [fn, owns, self.ctx])

    def apply(self, value: np.ndarray, image: int = 0) -> np.ndarray:
        """What the hook makes of a block of final values (float64)."""
        return 2 * value + self.col[: value.shape[1]] + self.row[: value.shape[0], None] + image / 2


# ---------------------------------------------------------------------------- GEMM
def _operand(rng, rows, cols, trans, dtype, pad):
    """op(X) of shape (rows, cols) and the stored array (transposed when trans, ld padded)."""
    stored = rng.standard_normal((cols, rows + pad) if trans else (rows, cols + pad)).astype(dtype)
    view = stored[:, : (rows if trans else cols)]
    return stored, (view.T if trans else view), stored.shape[1]


def run_gemm(mod, dtype, ta, tb, m, n, k, pad=0, ws_mode="exact", epi=None, seed=0):
    """gc_?gemm on random operands (C pre-filled with NaN: never read); returns (C, C0, ref)
    where ref is the float64 product, C0 what C held before."""
    rng = np.random.default_rng(seed)
    abig, aop, lda = _operand(rng, m, k, ta, dtype, pad)
    bbig, bop, ldb = _operand(rng, k, n, tb, dtype, pad)
    cbig = np.full((m, n + pad), np.nan, dtype)
    cbig[:, n:] = 7  # past column N: untouched
    c0 = cbig.copy()
    p = PFX[dtype]
    need = getattr(mod.lib, f"gc_{p}gemm_workspace_size")(m, n, k)
    wsp, wsb, _keep = workspace(mod, need, ws_mode)
    getattr(mod.lib, f"gc_{p}gemm")(ta, tb, m, n, k, ptr(mod, abig), lda, ptr(mod, bbig), ldb,
                                    ptr(mod, cbig), n + pad, wsp, wsb, epi.c if epi else mod.ffi.NULL)
    np.testing.assert_array_equal(cbig[:, n:], 7)
    return cbig[:, :n], c0[:, :n], aop.astype(np.float64) @ bop.astype(np.float64)


# (M, N, K): edge panels of every kind (M mod MR in the first, second and last third of MR for
# MR = 12 and 6; N not a multiple of NR), exact tiles, K past the depth block KC (384 float,
# 256 double), M past MC (144 / 72) and N past NC (512 / 384).
GEMM_SIZES = [(1, 1, 1), (7, 33, 5), (11, 70, 130), (21, 1, 401), (3, 531, 17), (24, 64, 384),
              (157, 531, 401)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_transposes_and_edges(lib, dtype):
    for i, (m, n, k) in enumerate(GEMM_SIZES):
        for ta in (0, 1):
            for tb in (0, 1):
                c, _, ref = run_gemm(lib, dtype, ta, tb, m, n, k, pad=(i + ta) % 2 * 3, seed=i)
                assert_close(c, ref, dtype, f"gemm ta={ta} tb={tb} {m}x{n}x{k}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_with_b_packed_once(lib, dtype):
    """op(B) packed by gc_?gemm_pack_b (within gc_?gemm_packed_b_elems, at most K *
    round_up(N, 32): what graphc allocates) serves several products with different A."""
    p, mod_lib = PFX[dtype], lib.lib
    for i, (m, n, k) in enumerate(GEMM_SIZES):
        for ta in (0, 1):
            for tb in (0, 1):
                rng = np.random.default_rng(i)
                bbig, bop, ldb = _operand(rng, k, n, tb, dtype, pad=i % 2 * 3)
                elems = getattr(mod_lib, f"gc_{p}gemm_packed_b_elems")(n, k)
                assert elems <= k * -(-n // 32) * 32
                packed = np.full(elems + 16, np.nan, dtype)
                start = (-packed.ctypes.data % 64) // packed.itemsize  # 64-byte aligned
                packed = packed[start:start + elems]
                getattr(mod_lib, f"gc_{p}gemm_pack_b")(tb, n, k, ptr(lib, bbig), ldb, ptr(lib, packed))
                for seed in (1, 2):
                    abig, aop, lda = _operand(np.random.default_rng(seed), m, k, ta, dtype, 0)
                    c = np.full((m, n), np.nan, dtype)
                    need = getattr(mod_lib, f"gc_{p}gemm_packed_workspace_size")(m, n, k)
                    wsp, wsb, _keep = workspace(lib, need)
                    getattr(mod_lib, f"gc_{p}gemm_packed")(ta, m, n, k, ptr(lib, abig), lda,
                                                            ptr(lib, packed), ptr(lib, c), n, wsp,
                                                            wsb, lib.ffi.NULL)
                    ref = aop.astype(np.float64) @ bop.astype(np.float64)
                    assert_close(c, ref, dtype, f"gemm_packed ta={ta} tb={tb} {m}x{n}x{k}")


@pytest.mark.parametrize("owns", [0, 1], ids=["in_place", "owns_store"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_epilogue(lib, dtype, owns):
    """The hook sees every block of final values once, with its global (i0, j0): stored in
    C first (owns_store 0), or only in scratch (owns_store 1: C then holds at most partial
    sums, when K spans several depth blocks)."""
    kc = 384 if dtype == np.float32 else 256
    for i, (m, n, k) in enumerate([(7, 33, 130), (157, 531, 401), (24, 64, 64), (1, 1, 1)]):
        epi = Epilogue(lib, dtype, m, n, owns, (1, m, n), seed=i)
        c, c0, ref = run_gemm(lib, dtype, i % 2, 1 - i % 2, m, n, k, epi=epi, seed=10 + i)
        want = epi.apply(ref)
        if owns:
            assert_close(epi.out[0], want, dtype, f"owning hook {m}x{n}x{k}")
            if k <= kc:  # one depth block: the GEMM never wrote C
                np.testing.assert_array_equal(c, c0[:, :n])
        else:
            assert_close(c, want, dtype, f"in-place hook {m}x{n}x{k}")
            assert np.isnan(epi.out).all()


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("ws_mode", ["exact", "half", "byte", "null"])
def test_gemm_threads_and_workspace(lib, ws_mode, threads):
    """Fewer threads when the workspace is short, malloc when it fits not even one; a given
    thread count gives bit-identical results run to run."""
    with omp_threads(lib, threads):
        for dtype in DTYPES:
            for ta, tb, m, n, k in [(0, 0, 130, 300, 260), (1, 1, 13, 700, 90)]:  # tall, wide
                epi = Epilogue(lib, dtype, m, n)
                c, _, ref = run_gemm(lib, dtype, ta, tb, m, n, k, ws_mode=ws_mode, epi=epi)
                assert_close(c, epi.apply(ref), dtype, f"gemm {m}x{n}x{k} ws {ws_mode}")
                again, _, _ = run_gemm(lib, dtype, ta, tb, m, n, k, ws_mode=ws_mode, epi=epi)
                np.testing.assert_array_equal(c, again)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_empty(lib, dtype):
    """K == 0: C = 0, the hook still runs on it; M == 0 or N == 0: nothing is touched."""
    epi = Epilogue(lib, dtype, 3, 5)
    c, _, ref = run_gemm(lib, dtype, 0, 0, 3, 5, 0, epi=epi)
    assert_close(c, epi.apply(np.zeros((3, 5))), dtype, "K = 0")
    p, null = PFX[dtype], lib.ffi.NULL
    getattr(lib.lib, f"gc_{p}gemm")(0, 0, 0, 3, 4, null, 4, null, 3, null, 3, null, 0, epi.c)
    getattr(lib.lib, f"gc_{p}gemm")(0, 0, 3, 0, 4, null, 4, null, 0, null, 0, null, 0, epi.c)


# ---------------------------------------------------------------------------- conv
# (N, C, H, W, O, (KH, KW), (SH, SW), (PH, PW)); the fixture runs 2 threads
CONV_CASES = [
    (2, 3, 7, 7, 4, (3, 3), (1, 1), (1, 1)),
    (3, 2, 8, 9, 5, (3, 2), (2, 1), (1, 0)),
    (3, 4, 5, 6, 3, (1, 1), (1, 1), (0, 0)),  # pointwise: plain GEMMs, threads over images
    (1, 8, 9, 9, 6, (1, 1), (1, 1), (0, 0)),  # pointwise, one image: threads inside the GEMM
    (2, 3, 10, 11, 2, (3, 3), (3, 3), (0, 0)),  # floor leaves rows/cols untouched
    (1, 2, 2, 3, 3, (4, 5), (1, 2), (2, 2)),  # kernel larger than the input
    (4, 16, 16, 16, 32, (3, 3), (1, 1), (1, 1)),  # threads over the batch
    (1, 16, 20, 20, 24, (3, 3), (2, 2), (1, 1)),  # one image: threads inside the GEMM
    (5, 1, 13, 13, 7, (5, 5), (2, 2), (2, 2)),
    (2, 40, 6, 6, 300, (3, 3), (1, 1), (1, 1)),  # O and C*KH*KW beyond the GEMM blocks
]


def run_conv(mod, dtype, kind, case, a, b, out_shape, epi=None, ws_mode="exact"):
    """gc_?conv2d_<kind>(a, b) into a NaN-filled output."""
    p, s = PFX[dtype], mod.ffi.new("gc_conv_shape *", [*case[:5], *case[5], *case[6], *case[7]])
    out = np.full(out_shape, np.nan, dtype)
    need = getattr(mod.lib, f"gc_{p}conv2d_{kind}_workspace_size")(s)
    wsp, wsb, _keep = workspace(mod, need, ws_mode)
    args = [s, ptr(mod, a), ptr(mod, b), ptr(mod, out), wsp, wsb]
    if kind != "backward_filter":
        args.append(epi.c if epi else mod.ffi.NULL)
    getattr(mod.lib, f"gc_{p}conv2d_{kind}")(*args)
    return out


def conv_passes(case, dtype, seed=0) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Random x, w, gy for a case: pass -> (its two inputs, the float64 reference)."""
    n, c, h, w, o, k, s, pd = case
    rng = np.random.default_rng(seed)
    x, wt = rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, *k))
    gy = rng.standard_normal((n, o, *output_hw(h, w, k, s, pd)))
    x, wt, gy = (a.astype(dtype) for a in (x, wt, gy))
    x64, w64, gy64 = (a.astype(np.float64) for a in (x, wt, gy))
    return {"forward": (x, wt, ref_conv.conv2d_reference(x64, w64, s, pd)),
            "backward_data": (gy, wt, ref_conv.conv2d_backward_data_reference(gy64, w64, (h, w), s, pd)),
            "backward_filter": (x, gy, ref_conv.conv2d_backward_filter_reference(x64, gy64, k, s, pd))}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{'x'.join(map(str, c[:5]))}s{c[6][0]}p{c[7][0]}")
def test_conv2d(lib, dtype, case):
    """Forward, backward data and backward filter, with the epilogue hook on the first two:
    forward blocks are (output channel, pixel) of image n, backward-data blocks whole gx[n]."""
    for kind, (a, b, ref) in conv_passes(case, dtype, seed=sum(case[:5])).items():
        assert_close(run_conv(lib, dtype, kind, case, a, b, ref.shape), ref, dtype, kind)
        if kind == "backward_filter":
            continue
        n, rows = ref.shape[:2]  # images, and output channels (forward) or input channels
        epi = Epilogue(lib, dtype, rows, ref[0, 0].size, seed=1)
        got = run_conv(lib, dtype, kind, case, a, b, ref.shape, epi=epi).reshape(n, rows, -1)
        for i in range(n):
            assert_close(got[i], epi.apply(ref[i].reshape(rows, -1), i), dtype, f"{kind} + hook, image {i}")


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("ws_mode", ["half", "null"])
def test_conv2d_threads_and_workspace(lib, ws_mode, threads):
    """Short or missing workspace and other thread counts: the same results, bit-identical
    run to run (the filter gradient's per-thread partials are summed in a fixed order)."""
    case = (7, 8, 12, 12, 16, (3, 3), (1, 1), (1, 1))
    with omp_threads(lib, threads):
        for kind, (a, b, ref) in conv_passes(case, np.float32).items():
            out = run_conv(lib, np.float32, kind, case, a, b, ref.shape, ws_mode=ws_mode)
            assert_close(out, ref, np.float32, f"{kind}, {threads} threads, ws {ws_mode}")
            again = run_conv(lib, np.float32, kind, case, a, b, ref.shape, ws_mode=ws_mode)
            np.testing.assert_array_equal(out, again)


# ---------------------------------------------------------------------------- pooling
# (N, C, H, W, k, s, p)
POOL_CASES = [
    (2, 2, 7, 9, (3, 3), (2, 2), (1, 1)),  # overlapping windows + padding
    (1, 3, 6, 5, (3, 3), (1, 1), (1, 1)),
    (3, 2, 9, 8, (3, 2), (2, 1), (1, 0)),
    (1, 1, 1, 1, (1, 1), (1, 1), (0, 0)),
    (8, 16, 32, 32, (3, 3), (2, 2), (1, 1)),  # enough work for threads
    # unpadded windows take the vectorized whole-row paths: overlapping, strided, odd shapes,
    (2, 3, 9, 11, (3, 3), (1, 2), (0, 0)),
    (1, 2, 5, 40, (2, 3), (2, 3), (0, 0)),
    (2, 2, 7, 7, (2, 2), (2, 2), (0, 0)),  # floor: last row/col untouched
    (8, 16, 28, 28, (2, 2), (2, 2), (0, 0)),  # windows tile the plane: dense backward, threads
    (2, 2, 9, 12, (3, 3), (3, 3), (0, 0)),  # 3x3 windows tiling the plane
    (1, 1, 3, 2100, (2, 2), (2, 2), (0, 0)),  # rows wider than GC_POOL_BLOCK: in pieces
    (1, 1, 3, 2101, (3, 3), (2, 2), (1, 1)),
    # tiny planes tiled by 2x2/2 windows (a conv's 4 x 4 maps): stacked into one tall plane
    (37, 32, 4, 4, (2, 2), (2, 2), (0, 0)),
    (300, 5, 2, 2, (2, 2), (2, 2), (0, 0)),
    (3, 2, 8, 2, (2, 2), (2, 2), (0, 0)),
]


def check_pool(mod, dtype, case, x):
    n, c, h, w, k, s, pd = case
    p, L = PFX[dtype], mod.lib
    shape = mod.ffi.new("gc_pool_shape *", [n, c, h, w, *k, *s, *pd])
    rng = np.random.default_rng(1)
    gy = rng.standard_normal((n, c, *output_hw(h, w, k, s, pd))).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)

    y = np.full(gy.shape, np.nan, dtype)
    getattr(L, f"gc_{p}max_pool2d_forward")(shape, ptr(mod, x), ptr(mod, y))
    np.testing.assert_array_equal(y, ref_pool.max_pool2d_reference(x, k, s, pd))  # max is exact
    gx = np.full(x.shape, np.nan, dtype)
    getattr(L, f"gc_{p}max_pool2d_backward")(shape, ptr(mod, x), ptr(mod, gy), ptr(mod, gx))
    assert_close(gx, ref_pool.max_pool2d_backward_reference(x, gy, k, s, pd), dtype, "max pool backward")
    getattr(L, f"gc_{p}max_pool2d_select")(shape, ptr(mod, x), ptr(mod, g), ptr(mod, y))
    np.testing.assert_array_equal(y, ref_pool.max_pool2d_select_reference(x, g, k, s, pd))

    if np.isfinite(x).all():
        getattr(L, f"gc_{p}avg_pool2d_forward")(shape, ptr(mod, x), ptr(mod, y))
        assert_close(y, ref_pool.avg_pool2d_reference(x.astype(np.float64), k, s, pd), dtype, "avg pool")
        gx[...] = np.nan
        getattr(L, f"gc_{p}avg_pool2d_backward")(shape, ptr(mod, gy), ptr(mod, gx))
        ref = ref_pool.avg_pool2d_backward_reference(gy.astype(np.float64), (h, w), k, s, pd)
        assert_close(gx, ref, dtype, "avg pool backward")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: f"{'x'.join(map(str, c[:4]))}k{c[4][0]}p{c[6][0]}")
def test_pool2d(lib, dtype, case):
    rng = np.random.default_rng(case[2] * 31 + case[3])
    check_pool(lib, dtype, case, rng.standard_normal(case[:4]).astype(dtype))
    # many ties: the first maximum of each window wins
    check_pool(lib, dtype, case, rng.integers(0, 3, case[:4]).astype(dtype))


@pytest.mark.parametrize("k,st,pad,w", [(3, 2, 1, 6), (3, 2, 0, 6), (2, 2, 0, 6), (3, 1, 0, 6),
                                         (2, 2, 0, 4)],
                         ids=["padded", "unpadded_3x3", "tiled_2x2", "generic_unpadded",
                              "tiny_planes_2x2"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_inf_and_nan(lib, dtype, k, st, pad, w):
    """-inf windows, +inf, and NaN: the first NaN of a window is its maximum; -0 and +0
    tie, the first wins."""
    x = np.random.default_rng(3).standard_normal((1, 2, 6, w)).astype(dtype)
    x[0, 0, :2, :2] = -np.inf  # a window of -inf only (plus -inf padding if padded)
    x[0, 1, 3, 2] = x[0, 1, 3, w - 2] = x[0, 1, 1, 1] = np.nan
    x[0, 1, 0, 0] = np.inf
    x[0, 0, 4, 2], x[0, 0, 4, 3], x[0, 0, 5, 2:4] = -0.0, 0.0, -1.0  # a window of -0 then +0
    with np.errstate(invalid="ignore"):
        check_pool(lib, dtype, (1, 2, 6, w, (k, k), (st, st), (pad, pad)), x)


# ---------------------------------------------------------------------------- builds
def test_avx512_path_compiles(tmp_path):
    """Where AVX-512 is not native (so the runs above did not cover it), its micro-kernels
    (MR = 12, with the edge-panel variants) must still compile without warnings."""
    if not _IS_X86:
        pytest.skip("needs an x86 C compiler")
    if "avx512f" in _cpu_flags():
        pytest.skip("AVX-512 is the native path here: built and run by the native variant")
    src = tmp_path / "avx512.c"
    src.write_text(templates.source(["conv2d"], ["float32"])
                   + '_Static_assert(GC_GEMM_MR == 12, "AVX-512");\n'
                   "void f(const float *a, const float *b, float *c, void *ws, size_t n) {\n"
                   "    gc_sgemm(0, 1, 13, 70, 9, a, 9, b, 9, c, 70, ws, n, 0);\n}\n")
    proc = subprocess.run([_compiler(), "-O2", "-march=skylake-avx512", "-fopenmp", "-Wall", "-Wextra",
                           "-Werror", "-c", str(src), "-o", str(tmp_path / "avx512.o")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_source_assembly():
    """Dependencies are pulled in once and first; each dtype's block is closed by #undefs."""
    src = templates.source(["conv2d", "gemm"], ["float64", "float32"])
    assert src.count("GC_COMMON_H\n") == 2  # the guard's #ifndef / #define: common.h once
    assert src.index("#define GC_T float\n") < src.index("#define GC_T double\n")
    for ctype in ("float", "double"):
        block = src[src.index(f"#define GC_T {ctype}\n"):]
        block = block[: block.index("#undef GC_T")]
        assert block.count("kernels/gemm.h") == 1 and block.index("kernels/gemm.h") < block.index("conv2d.h")
        assert "pool2d.h" not in block
    with pytest.raises(ValueError):
        templates.source(["gemm"], ["int32"])
    with pytest.raises(ValueError):
        templates.source(["softmax"], ["float32"])


def test_kernels_ship_as_package_data():
    """Every file of the kernels folder matches the package-data globs of pyproject.toml (so it
    is in the installed package), the template files among them; checked from a checkout."""
    folder = templates.kernels_dir()
    present = {f.name for f in folder.iterdir() if f.is_file()}
    assert set(templates.files()) <= present
    pyproject = Path(templates.__file__).resolve().parents[3] / "pyproject.toml"
    tomllib = pytest.importorskip("tomllib")
    if not pyproject.is_file():
        pytest.skip("not run from a checkout")
    globs = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["graphc.backends.c"]
    unshipped = [f for f in present if not any(fnmatch.fnmatch(f"{folder.name}/{f}", g) for g in globs)]
    assert not unshipped, f"not in pyproject.toml's package-data: {unshipped}"
