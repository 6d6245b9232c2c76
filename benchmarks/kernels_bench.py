"""Benchmark the hand-written C kernels (kernels/*.h) against NumPy in the same process.

    python benchmarks/kernels_bench.py                 # 2 threads and 1 thread (pinned)
    python benchmarks/kernels_bench.py --threads 2     # one configuration only
    python benchmarks/kernels_bench.py --rounds 21 --sizes 256 1024

The kernels are compiled once through cffi (``-O3 -march=native -fopenmp``).  Each
configuration runs in a fresh subprocess with ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``
and ``MKL_NUM_THREADS`` set before NumPy is imported, so the C kernel and NumPy's BLAS use
the same number of threads; the 1-thread run is also pinned to one core
(``sched_setaffinity``, like ``taskset -c N``, on the core idlest over half a second).
Within a process the two implementations alternate round by round (A B A B ...); each
round times a batch of calls (at least ~20 ms, after a ``--settle`` sleep and one untimed
call, so that the other implementation's spinning thread pool is idle).  The table shows
GFLOP/s from the median round and from the best round, and the ratio of the medians,
kernel / NumPy (> 1: the kernel is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLAGS = ["-O3", "-march=native", "-fopenmp"]
CDEF = """
size_t gc_sgemm_workspace_size(int M, int N, int K);
void gc_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A,
    ptrdiff_t lda, const float *B, ptrdiff_t ldb, float beta, float *C, ptrdiff_t ldc,
    void *ws, size_t ws_bytes);
size_t gc_sconv2d_forward_workspace_size(int N, int C, int H, int W, int O, int KH, int KW,
    int SH, int SW, int PH, int PW);
void gc_sconv2d_forward(int N, int C, int H, int W, int O, int KH, int KW, int SH, int SW,
    int PH, int PW, const float *x, const float *w, float *y, void *ws, size_t wsb);
size_t gc_sconv2d_backward_data_workspace_size(int N, int C, int H, int W, int O, int KH,
    int KW, int SH, int SW, int PH, int PW);
void gc_sconv2d_backward_data(int N, int C, int H, int W, int O, int KH, int KW, int SH,
    int SW, int PH, int PW, const float *gy, const float *w, float *gx, void *ws, size_t wsb);
size_t gc_sconv2d_backward_filter_workspace_size(int N, int C, int H, int W, int O, int KH,
    int KW, int SH, int SW, int PH, int PW);
void gc_sconv2d_backward_filter(int N, int C, int H, int W, int O, int KH, int KW, int SH,
    int SW, int PH, int PW, const float *x, const float *gy, float *gw, void *ws, size_t wsb);
const char *bench_isa(void);
"""
SOURCE = """
#include "gemm.h"
#include "conv2d.h"
static const char *bench_isa(void) { return GC_GEMM_ISA; }
"""
MODULE = "_gc_kernels_bench"
CONV = dict(N=64, C=16, H=16, W=16, O=32, K=3, S=1, P=1)


def kernels_path() -> Path:
    """The kernels folder: the installed graphc.kernels if importable, else the checkout's."""
    try:
        from graphc.env import kernels_dir

        p = Path(str(kernels_dir()))
        if (p / "gemm.h").is_file():
            return p
    except Exception:
        pass
    return Path(__file__).resolve().parent.parent / "kernels"


def build(build_dir: Path) -> Path:
    import cffi

    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.set_source(
        MODULE,
        SOURCE,
        include_dirs=[str(kernels_path())],
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


def worker(so: Path, threads: int, sizes: list[int], rounds: int, settle: float) -> dict:
    import numpy as np

    mod = load(so)
    ffi, lib = mod.ffi, mod.lib

    def fp(a):
        return ffi.cast("float *", a.ctypes.data)

    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        a = rng.standard_normal((n, n)).astype(np.float32)
        b = rng.standard_normal((n, n)).astype(np.float32)
        c = np.empty((n, n), np.float32)
        cn = np.empty((n, n), np.float32)
        wsb = lib.gc_sgemm_workspace_size(n, n, n)
        ws = np.empty(wsb, np.uint8)
        wsp = ffi.cast("void *", ws.ctypes.data)
        pa, pb, pc = fp(a), fp(b), fp(c)

        def kern(n=n, pa=pa, pb=pb, pc=pc, wsp=wsp, wsb=wsb):
            lib.gc_sgemm(0, 0, n, n, n, 1.0, pa, n, pb, n, 0.0, pc, n, wsp, wsb)

        def ref(a=a, b=b, cn=cn):
            np.matmul(a, b, out=cn)

        tk, tn = alternate(kern, ref, rounds, settle)
        err = float(np.abs(c - cn).max() / np.abs(cn).max())
        rows.append(_row(f"sgemm n={n}", 2.0 * n**3, tk, tn, err))

    cfg = CONV
    nb, ch, h, wd, o, k, s, p = (cfg[key] for key in ("N", "C", "H", "W", "O", "K", "S", "P"))
    oh = (h + 2 * p - k) // s + 1
    ow = (wd + 2 * p - k) // s + 1
    args = (nb, ch, h, wd, o, k, k, s, s, p, p)
    x = rng.standard_normal((nb, ch, h, wd)).astype(np.float32)
    w = rng.standard_normal((o, ch, k, k)).astype(np.float32)
    gy = rng.standard_normal((nb, o, oh, ow)).astype(np.float32)
    flop = 2.0 * nb * o * oh * ow * ch * k * k
    shape = f"N={nb} C={ch} {h}x{wd} O={o} {k}x{k} pad {p}"
    for kind, out_shape, a1, a2, ref in (
        ("forward", (nb, o, oh, ow), x, w, lambda: np_conv_forward(np, x, w, s, p)),
        ("backward_data", x.shape, gy, w, lambda: np_conv_backward_data(np, gy, w, h, wd, s, p)),
        ("backward_filter", w.shape, x, gy, lambda: np_conv_backward_filter(np, x, gy, k, k, s, p)),
    ):
        out = np.empty(out_shape, np.float32)
        wsb = getattr(lib, f"gc_sconv2d_{kind}_workspace_size")(*args)
        ws = np.empty(wsb, np.uint8)
        fn = getattr(lib, f"gc_sconv2d_{kind}")
        cargs = (*args, fp(a1), fp(a2), fp(out), ffi.cast("void *", ws.ctypes.data), wsb)

        def kern(fn=fn, cargs=cargs):
            fn(*cargs)

        tk, tn = alternate(kern, ref, rounds, settle)
        want = ref()
        err = float(np.abs(out - want).max() / np.abs(want).max())
        label = {
            "forward": "conv2d fwd",
            "backward_data": "conv2d bwd-data",
            "backward_filter": "conv2d bwd-filter",
        }[kind]
        rows.append(_row(f"{label} ({shape})", flop, tk, tn, err))
    return dict(threads=threads, isa=ffi.string(lib.bench_isa()).decode(), rows=rows)


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
        "| benchmark | kernel GFLOP/s (median) | NumPy GFLOP/s (median) | ratio kernel/NumPy "
        "| kernel best | NumPy best | max rel diff |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['name']} | {r['k']:.1f} | {r['np']:.1f} | **{r['k'] / r['np']:.2f}** "
            f"| {r['k_best']:.1f} | {r['np_best']:.1f} | {r['err']:.1e} |"
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
            f"kernels: {kernels_path()}  flags: {' '.join(FLAGS)}  rounds: {args.rounds} "
            f"(medians of alternating A/B rounds, {args.settle}s settle before each)\n"
        )
        for t in args.threads:
            print(table(run_config(so, t, args.sizes, args.rounds, args.settle, pin=(t == 1))))
            print()


if __name__ == "__main__":
    main()
