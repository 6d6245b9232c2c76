"""Benchmark the hand-written C kernels (graphc/backends/c/kernels) against NumPy, in one process.

    python benchmarks/kernels_bench.py                 # 2 threads and 1 thread (pinned)
    python benchmarks/kernels_bench.py --threads 2     # one configuration only
    python benchmarks/kernels_bench.py --rounds 21 --sizes 256 1024

The kernels (``templates.source`` of every template, float32 and float64) are compiled once
through cffi with the flags of generated code (``FLAGS``).  Each
configuration runs in a fresh subprocess with ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``
and ``MKL_NUM_THREADS`` set before NumPy is imported, so the C kernel and NumPy's BLAS use
the same number of threads; the 1-thread run is also pinned to one core
(``sched_setaffinity``, like ``taskset -c N``, on the core idlest over half a second).
Within a process the two implementations alternate round by round (A B A B ...); each
round times a batch of calls (at least ~20 ms, after a ``--settle`` sleep and one untimed
call, so that the other implementation's spinning thread pool is idle).  The table shows
rates from the median round and from the best round -- GFLOP/s for GEMM and conv, G window
elements (N*C*OH*OW*KH*KW) per second for pooling -- and the ratio of the medians,
kernel / NumPy (> 1: the kernel is faster).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: what graphc compiles generated code with (graphc/backends/c/build.py), plus -fno-wrapv to
#: undo the -fwrapv that cffi passes along from Python's own CFLAGS (it slows pooling up to 5x)
FLAGS = ["-O3", "-march=native", "-fopenmp", "-fno-trapping-math", "-fno-wrapv"]
_SHAPES = """
typedef struct { int N, C, H, W, O, KH, KW, SH, SW, PH, PW; } gc_conv_shape;
typedef struct { int N, C, H, W, KH, KW, SH, SW, PH, PW; } gc_pool_shape;
typedef struct gc_epilogue gc_epilogue;
const char *bench_isa(void);
"""
_TYPED = """
size_t gc_{p}gemm_workspace_size(int M, int N, int K);
void gc_{p}gemm(int ta, int tb, int M, int N, int K, const {t} *A, ptrdiff_t lda, const {t} *B,
    ptrdiff_t ldb, {t} *C, ptrdiff_t ldc, void *ws, size_t ws_bytes, const gc_epilogue *epi);
"""
_FLOAT_ONLY = """
size_t gc_sconv2d_{kind}_workspace_size(const gc_conv_shape *s);
void gc_sconv2d_{kind}(const gc_conv_shape *s, const float *a, const float *b, float *out,
    void *ws, size_t ws_bytes{epi});
"""
_POOL = """
void gc_smax_pool2d_forward(const gc_pool_shape *s, const float *x, float *y);
void gc_smax_pool2d_backward(const gc_pool_shape *s, const float *x, const float *gy, float *gx);
void gc_smax_pool2d_select(const gc_pool_shape *s, const float *x, const float *gx, float *y);
void gc_savg_pool2d_forward(const gc_pool_shape *s, const float *x, float *y);
void gc_savg_pool2d_backward(const gc_pool_shape *s, const float *gy, float *gx);
"""
CDEF = (
    _SHAPES
    + _TYPED.format(p="s", t="float")
    + _TYPED.format(p="d", t="double")
    + "".join(
        _FLOAT_ONLY.format(kind=k, epi="" if k == "backward_filter" else ", const gc_epilogue *epi")
        for k in ("forward", "backward_data", "backward_filter")
    )
    + _POOL
)
MODULE = "_gc_kernels_bench"
CONV = dict(N=64, C=16, H=16, W=16, O=32, K=3, S=1, P=1)
POOL = dict(N=64, C=32, H=32, W=32)
POOL_WINDOWS = [(2, 2, 0), (3, 2, 1)]  # (kernel, stride, padding): the tiled and the padded path


def build(build_dir: Path) -> Path:
    """Compiles every template, float32 and float64, as the cffi module MODULE."""
    import cffi

    from graphc.backends.c import templates

    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    source = templates.source(templates.TEMPLATES, templates.DTYPES)
    ffi.set_source(
        MODULE,
        source + "static const char *bench_isa(void) { return GC_GEMM_ISA; }\n",
        extra_compile_args=FLAGS,
        extra_link_args=["-fopenmp"],
    )
    return Path(ffi.compile(tmpdir=str(build_dir), verbose=False))


def load(so: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(MODULE, so)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ----------------------------------------------------------------------------- worker
def alternate(fa, fb, rounds: int, settle: float, min_s: float = 0.02) -> tuple[list, list]:
    """Seconds per call of fa and fb for each round, alternating A B A B ... round by round.

    Before each round the process sleeps ``settle`` seconds: both thread pools (libgomp's
    for the kernel, OpenBLAS's for NumPy) busy-wait for a while after their last call
    (OpenBLAS for ~2**28 cycles by default), and on a 2-core machine a pool still spinning
    from the previous round steals a core from the other implementation.
    """
    fa(), fb()  # warm up (first-touch, thread pools)
    reps = 1
    t = time.perf_counter()
    fa()
    one = time.perf_counter() - t
    reps = max(1, int(min_s / max(one, 1e-7)))
    ta, tb = [], []
    for _ in range(rounds):
        for f, out in ((fa, ta), (fb, tb)):
            if settle > 0:
                time.sleep(settle)
            f()  # wake this implementation's thread pool (untimed)
            t = time.perf_counter()
            for _ in range(reps):
                f()
            out.append((time.perf_counter() - t) / reps)
    return ta, tb


def np_conv_forward(np, x, w, s, p):
    """NumPy im2col (sliding_window_view, one copy) + one big matmul, NCHW output."""
    from numpy.lib.stride_tricks import sliding_window_view

    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::s, ::s]  # N C OH OW KH KW
    oh, ow = win.shape[2:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)
    y = cols @ w.reshape(o, -1).T  # (N*OH*OW, O)
    return np.ascontiguousarray(y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2))


def np_conv_backward_filter(np, x, gy, kh, kw, s, p):
    from numpy.lib.stride_tricks import sliding_window_view

    n, c, h, wd = x.shape
    o = gy.shape[1]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::s, ::s]
    oh, ow = win.shape[2:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)
    g = gy.transpose(1, 0, 2, 3).reshape(o, -1)  # (O, N*OH*OW)
    return (g @ cols).reshape(o, c, kh, kw)


def np_conv_backward_data(np, gy, w, h, wd, s, p):
    n, o, oh, ow = gy.shape
    _, c, kh, kw = w.shape
    g = gy.transpose(0, 2, 3, 1).reshape(-1, o)  # (N*OH*OW, O)
    cols = (g @ w.reshape(o, -1)).reshape(n, oh, ow, c, kh, kw)
    gxp = np.zeros((n, c, h + 2 * p, wd + 2 * p), gy.dtype)
    for i in range(kh):
        for j in range(kw):
            gxp[:, :, i : i + s * (oh - 1) + 1 : s, j : j + s * (ow - 1) + 1 : s] += cols[
                :, :, :, :, i, j
            ].transpose(0, 3, 1, 2)
    return gxp[:, :, p : p + h, p : p + wd]


def _row(name: str, flop: float, tk: list, tn: list, err: float) -> dict:
    """GFLOP/s from the median and the best (fastest) round of each implementation."""
    return dict(
        name=name,
        k=flop / statistics.median(tk) / 1e9,
        np=flop / statistics.median(tn) / 1e9,
        k_best=flop / min(tk) / 1e9,
        np_best=flop / min(tn) / 1e9,
        err=err,
    )


def np_pool(np, kind: str, x, gy, g, k: int, s: int, p: int):
    """NumPy max/avg pooling (forward, backward, select) on sliding-window views."""
    from numpy.lib.stride_tricks import sliding_window_view

    n, c, h, w = x.shape
    oh, ow = gy.shape[2:]

    def windows(a, fill):
        ap = np.pad(a, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill) if p else a
        return sliding_window_view(ap, (k, k), axis=(2, 3))[:, :, ::s, ::s].reshape(n, c, oh, ow, k * k)

    def scatter(value_at):  # gx = sum over window offsets (i, j) of value_at(i * k + j)
        gxp = np.zeros((n, c, h + 2 * p, w + 2 * p), x.dtype)
        for i in range(k):
            for j in range(k):
                gxp[:, :, i : i + s * (oh - 1) + 1 : s, j : j + s * (ow - 1) + 1 : s] += value_at(i * k + j)
        return gxp[:, :, p : p + h, p : p + w]

    if kind == "avg_forward":
        return windows(x, 0).mean(axis=-1)
    if kind == "avg_backward":
        return scatter(lambda _: gy / (k * k))
    first = windows(x, -np.inf).argmax(axis=-1)
    if kind == "max_forward":
        return np.take_along_axis(windows(x, -np.inf), first[..., None], -1)[..., 0]
    if kind == "max_backward":
        return scatter(lambda o: np.where(first == o, gy, 0))
    return np.take_along_axis(windows(g, 0), first[..., None], -1)[..., 0]  # max_select


def gemm_rows(np, mod, sizes, rounds, settle) -> list[dict]:
    """gc_sgemm for n x n x n (and gc_dgemm for n = 1024) against np.matmul."""
    ffi, lib = mod.ffi, mod.lib
    rng = np.random.default_rng(0)
    rows = []
    for n, dtype in [*((n, np.float32) for n in sizes), (1024, np.float64)]:
        p, ct = ("s", "float") if dtype == np.float32 else ("d", "double")
        a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
        c, cn = np.empty((n, n), dtype), np.empty((n, n), dtype)
        wsb = getattr(lib, f"gc_{p}gemm_workspace_size")(n, n, n)
        ws = np.empty(wsb, np.uint8)
        args = [0, 0, n, n, n]
        args += [x for arr in (a, b, c) for x in (ffi.cast(f"{ct} *", arr.ctypes.data), n)]
        args += [ffi.cast("void *", ws.ctypes.data), wsb, ffi.NULL]
        kern = functools.partial(getattr(lib, f"gc_{p}gemm"), *args)
        tk, tn = alternate(kern, functools.partial(np.matmul, a, b, out=cn), rounds, settle)
        err = float(np.abs(c - cn).max() / np.abs(cn).max())
        rows.append(_row(f"{p}gemm n={n}", 2.0 * n**3, tk, tn, err))
    return rows


def conv_rows(np, mod, rounds, settle) -> list[dict]:
    """The three conv2d passes of CONV (float32) against NumPy im2col + matmul."""
    ffi, lib = mod.ffi, mod.lib
    rng = np.random.default_rng(1)
    nb, ch, h, wd, o, k, s, p = (CONV[key] for key in ("N", "C", "H", "W", "O", "K", "S", "P"))
    oh, ow = (h + 2 * p - k) // s + 1, (wd + 2 * p - k) // s + 1
    shape = ffi.new("gc_conv_shape *", [nb, ch, h, wd, o, k, k, s, s, p, p])
    x = rng.standard_normal((nb, ch, h, wd)).astype(np.float32)
    w = rng.standard_normal((o, ch, k, k)).astype(np.float32)
    gy = rng.standard_normal((nb, o, oh, ow)).astype(np.float32)
    flop = 2.0 * nb * o * oh * ow * ch * k * k
    rows = []
    for kind, a1, a2, ref in (
        ("forward", x, w, lambda: np_conv_forward(np, x, w, s, p)),
        ("backward_data", gy, w, lambda: np_conv_backward_data(np, gy, w, h, wd, s, p)),
        ("backward_filter", x, gy, lambda: np_conv_backward_filter(np, x, gy, k, k, s, p)),
    ):
        want = ref()
        out = np.empty(want.shape, np.float32)
        wsb = getattr(lib, f"gc_sconv2d_{kind}_workspace_size")(shape)
        ws = np.empty(wsb, np.uint8)
        cargs = [shape, *(ffi.cast("float *", arr.ctypes.data) for arr in (a1, a2, out))]
        cargs += [ffi.cast("void *", ws.ctypes.data), wsb] + ([] if kind == "backward_filter" else [ffi.NULL])
        kern = functools.partial(getattr(lib, f"gc_sconv2d_{kind}"), *cargs)
        tk, tn = alternate(kern, ref, rounds, settle)
        err = float(np.abs(out - want).max() / np.abs(want).max())
        label = kind.replace("backward_", "bwd-").replace("forward", "fwd")
        rows.append(_row(f"conv2d {label} (N={nb} C={ch} {h}x{wd} O={o} {k}x{k} pad {p})", flop, tk, tn, err))
    return rows


def pool_rows(np, mod, rounds, settle) -> list[dict]:
    """Every pooling kernel (float32) on POOL with each of POOL_WINDOWS, against NumPy.  The
    rate counts window elements, N*C*OH*OW*KH*KW, per second."""
    ffi, lib = mod.ffi, mod.lib
    rng = np.random.default_rng(2)
    nb, ch, h, wd = (POOL[key] for key in ("N", "C", "H", "W"))
    x = rng.standard_normal((nb, ch, h, wd)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    rows = []
    for k, s, p in POOL_WINDOWS:
        oh, ow = (h + 2 * p - k) // s + 1, (wd + 2 * p - k) // s + 1
        gy = rng.standard_normal((nb, ch, oh, ow)).astype(np.float32)
        shape = ffi.new("gc_pool_shape *", [nb, ch, h, wd, k, k, s, s, p, p])
        for kind, inputs in (("max_forward", (x,)), ("max_backward", (x, gy)), ("max_select", (x, g)),
                             ("avg_forward", (x,)), ("avg_backward", (gy,))):
            want = np_pool(np, kind, x, gy, g, k, s, p)
            out = np.empty(want.shape, np.float32)
            cargs = [shape, *(ffi.cast("float *", arr.ctypes.data) for arr in (*inputs, out))]
            op, direction = kind.split("_")
            kern = functools.partial(getattr(lib, f"gc_s{op}_pool2d_{direction}"), *cargs)
            ref = functools.partial(np_pool, np, kind, x, gy, g, k, s, p)
            tk, tn = alternate(kern, ref, rounds, settle)
            err = float(np.abs(out - want).max() / np.abs(want).max())
            label = f"{op}_pool2d {direction} (N={nb} C={ch} {h}x{wd} {k}x{k}/{s} pad {p})"
            rows.append(_row(label, nb * ch * oh * ow * k * k, tk, tn, err))
    return rows


def worker(so: Path, threads: int, sizes: list[int], rounds: int, settle: float) -> dict:
    import numpy as np

    mod = load(so)
    rows = gemm_rows(np, mod, sizes, rounds, settle)
    rows += conv_rows(np, mod, rounds, settle)
    rows += pool_rows(np, mod, rounds, settle)
    return dict(threads=threads, isa=mod.ffi.string(mod.lib.bench_isa()).decode(), rows=rows)


# ----------------------------------------------------------------------------- driver
def idlest_cpu(window: float = 0.5) -> int:
    """The allowed CPU with the most idle time over `window` seconds (Linux /proc/stat)."""
    allowed = sorted(os.sched_getaffinity(0))

    def idle() -> dict[int, int]:
        out = {}
        try:
            with open("/proc/stat") as f:
                for line in f:
                    name, *vals = line.split()
                    if name.startswith("cpu") and name[3:].isdigit():
                        out[int(name[3:])] = int(vals[3]) + int(vals[4])  # idle + iowait
        except OSError:
            pass
        return out

    a = idle()
    time.sleep(window)
    b = idle()
    return max(allowed, key=lambda c: b.get(c, 0) - a.get(c, 0))


def run_config(so: Path, threads: int, sizes: list[int], rounds: int, settle: float, pin: bool) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        str(so),
        "--threads",
        str(threads),
        "--rounds",
        str(rounds),
        "--settle",
        str(settle),
        "--sizes",
        *map(str, sizes),
    ]
    if pin:
        cmd.append("--pin")
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def table(res: dict) -> str:
    pin = " (pinned to one core)" if res["threads"] == 1 else ""
    lines = [
        f"### {res['threads']} thread(s){pin}, kernel path: {res['isa']}",
        "",
        "| benchmark | kernel G/s (median) | NumPy G/s (median) | ratio kernel/NumPy "
        "| kernel best | NumPy best | max rel diff |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['name']} | {r['k']:.3g} | {r['np']:.3g} | **{r['k'] / r['np']:.2f}** "
            f"| {r['k_best']:.3g} | {r['np_best']:.3g} | {r['err']:.1e} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="*", default=[2, 1])
    ap.add_argument("--sizes", type=int, nargs="*", default=[256, 512, 1024, 2048])
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument(
        "--settle",
        type=float,
        default=0.3,
        help="seconds of sleep before each timed round, so the other thread pool goes idle",
    )
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--pin", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        if args.pin and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {idlest_cpu()})
        print(json.dumps(worker(args.worker, args.threads[0], args.sizes, args.rounds, args.settle)))
        return
    with tempfile.TemporaryDirectory(prefix="gc-kbench-") as tmp:
        so = build(Path(tmp))
        print(
            f"kernels: graphc/backends/c/kernels  flags: {' '.join(FLAGS)}  rounds: {args.rounds} "
            f"(medians of alternating A/B rounds, {args.settle}s settle before each)\n"
        )
        for t in args.threads:
            print(table(run_config(so, t, args.sizes, args.rounds, args.settle, pin=(t == 1))))
            print()


if __name__ == "__main__":
    main()
