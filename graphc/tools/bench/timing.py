"""``graphc bench`` measuring: alternating timed rounds, and the machine facts its report states."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

def _affinity() -> set[int]:
    """CPUs this process may run on (all of them where the OS cannot tell)."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def _cpu_list(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-")
            cpus.update(range(int(lo), int(hi) + 1))
        elif part:
            cpus.add(int(part))
    return cpus


# =============================================================================== timing
def alternate(fa, fb, rounds: int, settle: float, min_s: float,
              resets=(None, None)) -> tuple[list[float], list[float]]:
    """Seconds per call of ``fa`` and ``fb`` in each round, alternating A B A B ...

    Both are called once first (compilation, first touch, thread pools). Each round
    sleeps ``settle`` seconds (an OpenBLAS or libgomp pool still spinning after the
    other implementation's round would steal a core), calls the implementation's
    ``resets`` entry if any (untimed: restores training state, see :func:`_bench_mlp`),
    makes one untimed call to wake its own pool, then times ``reps`` calls; ``reps`` is
    chosen per implementation so that a round lasts about ``min_s``.
    """
    fa()
    fb()
    reps = []
    for f in (fa, fb):
        t = time.perf_counter()
        f()
        one = time.perf_counter() - t
        reps.append(max(1, min(10000, int(min_s / max(one, 1e-7)))))
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(rounds):
        for f, k, out, reset in ((fa, reps[0], ta, resets[0]), (fb, reps[1], tb, resets[1])):
            if settle > 0:
                time.sleep(settle)
            if reset is not None:
                reset()
            f()
            t = time.perf_counter()
            for _ in range(k):
                f()
            out.append((time.perf_counter() - t) / k)
    return ta, tb


def _spread(ts: list[float]) -> float | None:
    """Interquartile range over the median (0.05 = rounds within about +-2.5%)."""
    if len(ts) < 4:
        return None
    q = statistics.quantiles(ts, n=4)
    return (q[2] - q[0]) / statistics.median(ts)


def _rel(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


# =============================================================================== machine
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_ghz() -> float | None:
    """Nominal clock: the ``cpu MHz`` of /proc/cpuinfo (the TSC rate on most VMs)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return float(line.split(":", 1)[1]) / 1000.0
    except (OSError, ValueError):
        pass
    return None


def _git_revision(package_file: str) -> str:
    """`` (git abc1234, modified)`` when graphc runs from a git checkout, else ``""``."""
    folder = os.path.dirname(os.path.abspath(package_file))
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder, text=True,
                             capture_output=True, timeout=5, check=False)
        if rev.returncode != 0:
            return ""
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=folder, text=True, capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return f" (git {rev.stdout.strip()}{', modified' if dirty.stdout.strip() else ''})"


def _loadavg() -> str:
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except (AttributeError, OSError):
        return "?"


def _flops_per_cycle() -> tuple[int, str]:
    """float32 FLOP per cycle and core, assuming two FMA units."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line
                    break
    except OSError:
        pass
    words = set(flags.split())
    if "avx512f" in words:
        return 64, "AVX-512, 2 FMA/cycle"
    if "avx2" in words and "fma" in words:
        return 32, "AVX2, 2 FMA/cycle"
    return 16, "SSE, 2 ops/cycle"


def thread_report() -> dict:
    """What the process actually uses: affinity, env, BLAS and OpenMP thread counts."""
    info = {"affinity": sorted(_affinity()), "env": {v: os.environ.get(v) for v in _THREAD_VARS}}
    try:
        from threadpoolctl import threadpool_info

        pools = threadpool_info()
        info["pools"] = [f"{p.get('internal_api', p.get('user_api'))} "
                         f"({os.path.basename(p.get('filepath', '?'))}): {p.get('num_threads')}"
                         for p in pools]
        info["blas_threads"] = next((p["num_threads"] for p in pools
                                     if p.get("user_api") == "blas"), None)
        info["omp_threads"] = next((p["num_threads"] for p in pools
                                    if p.get("user_api") == "openmp"), None)
    except Exception:  # noqa: BLE001 - threadpoolctl is optional
        info["pools"] = []
        info["blas_threads"] = None
        try:
            import ctypes

            info["omp_threads"] = ctypes.CDLL("libgomp.so.1").omp_get_max_threads()
        except OSError:
            info["omp_threads"] = None
    return info


def _copy_bandwidth(nbytes: int, rounds: int) -> float:
    """GB/s of ``np.copyto`` (bytes read + written) on arrays of ``nbytes``: one thread."""
    import numpy as np

    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    times = []
    for _ in range(max(3, rounds)):
        t = time.perf_counter()
        for _ in range(5):
            np.copyto(dst, src)
        times.append((time.perf_counter() - t) / 5)
    return 2 * nbytes / statistics.median(times) / 1e9
