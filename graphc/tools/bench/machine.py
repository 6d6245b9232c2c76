"""Facts about the machine that ``graphc bench`` states next to its numbers.

CPU model, nominal clock and FLOP per cycle (for the "% of peak" column), the CPUs this
process may run on, the thread counts the BLAS and OpenMP pools really use, the load
average, the copy bandwidth (for the "% of copy bandwidth" column) and where the graphc
being measured comes from (its git revision only when it is a git checkout of graphc
itself). Everything degrades to "unknown" rather than failing: a benchmark report
without a clock speed is still a report.

Example::

    >>> from graphc.tools.bench.machine import affinity, cpu_model, parse_cpu_list
    >>> parse_cpu_list("0-2,5")
    {0, 1, 2, 5}
    >>> sorted(affinity())                      # doctest: +SKIP
    [0, 1]
"""

from __future__ import annotations

import ctypes
import os
import platform
import statistics
import subprocess
import time

import numpy as np

__all__ = [
    "THREAD_VARS", "affinity", "copy_bandwidth", "cpu_ghz", "cpu_model", "flops_per_cycle",
    "git_revision", "loadavg", "parse_cpu_list", "thread_report",
]

#: Environment variables that set the thread count of OpenMP, OpenBLAS and MKL.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def affinity() -> set[int]:
    """CPUs this process may run on (all of them where the OS cannot tell).

    Example::

        >>> len(affinity()) <= (os.cpu_count() or 1)
        True
    """
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def parse_cpu_list(text: str) -> set[int]:
    """The CPUs of a ``taskset -c`` style list: ``"0"``, ``"0,1"``, ``"0-3,6"``.

    Example::

        >>> sorted(parse_cpu_list("0-2, 5"))
        [0, 1, 2, 5]
    """
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-")
            cpus.update(range(int(lo), int(hi) + 1))
        elif part:
            cpus.add(int(part))
    return cpus


def _cpuinfo_value(prefix: str) -> str | None:
    """The value of the first /proc/cpuinfo line starting with ``prefix`` (None: no such line)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name, e.g. ``"Intel(R) Xeon(R) ..."``.

    Example::

        >>> cpu_model()                         # doctest: +SKIP
        'AMD EPYC 7B13'
    """
    return _cpuinfo_value("model name") or platform.processor() or platform.machine()


def cpu_ghz() -> float | None:
    """Nominal clock in GHz: the ``cpu MHz`` of /proc/cpuinfo (the TSC rate on most VMs).

    Example::

        >>> cpu_ghz()                           # doctest: +SKIP
        2.45
    """
    try:
        return float(_cpuinfo_value("cpu MHz") or "") / 1000.0
    except ValueError:
        return None


def flops_per_cycle() -> tuple[int, str]:
    """float32 FLOP per cycle and core, assuming two FMA units, and how that was decided.

    Example::

        >>> flops_per_cycle()                   # doctest: +SKIP
        (32, 'AVX2, 2 FMA/cycle')
    """
    words = set((_cpuinfo_value("flags") or "").split())
    if "avx512f" in words:
        return 64, "AVX-512, 2 FMA/cycle"
    if "avx2" in words and "fma" in words:
        return 32, "AVX2, 2 FMA/cycle"
    return 16, "SSE, 2 ops/cycle"


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages as text (``"?"`` where unknown).

    Example::

        >>> loadavg()                           # doctest: +SKIP
        '0.12, 0.30, 0.41'
    """
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except (AttributeError, OSError):
        return "?"


def _git(folder: str, *args: str) -> str | None:
    """stdout of ``git args`` run in ``folder`` (None: git failed or is missing)."""
    try:
        out = subprocess.run(["git", *args], cwd=folder, text=True, capture_output=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _project_name(pyproject: str) -> str | None:
    """``[project] name`` of a pyproject.toml (None: no such file or field)."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11: a plain scan of the [project] table
        tomllib = None
    try:
        with open(pyproject, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if tomllib is not None:
        try:
            return tomllib.loads(raw.decode()).get("project", {}).get("name")
        except (ValueError, UnicodeDecodeError):
            return None
    table = ""
    for line in raw.decode(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("["):
            table = line
        elif table == "[project]" and line.replace(" ", "").startswith("name="):
            return line.split("=", 1)[1].strip().strip("\"'")
    return None


def git_revision(package_file: str) -> str:
    """Where the measured graphc comes from, as a suffix for its version:
    ``" (git abc1234)"`` (``", modified"`` with uncommitted changes) when the package is
    a git checkout of graphc itself, else ``" (not a git checkout)"``.

    A checkout of graphc itself: the folder of ``package_file`` (``graphc/``) sits at the
    top level of a git work tree whose pyproject.toml names the project ``graphc``, and
    git tracks ``package_file``. An installed package that merely lies inside some other
    repository (a virtual environment in a project's folder) is not one.

    Example::

        >>> import graphc
        >>> git_revision(graphc.__file__)       # doctest: +SKIP
        ' (git d85dc8c, modified)'
        >>> git_revision("/usr/lib/python3/dist-packages/graphc/__init__.py")   # doctest: +SKIP
        ' (not a git checkout)'
    """
    not_checkout = " (not a git checkout)"
    folder = os.path.dirname(os.path.abspath(package_file))
    if not os.path.isdir(folder):
        return not_checkout
    top = _git(folder, "rev-parse", "--show-toplevel")
    if not top or os.path.realpath(top) != os.path.realpath(os.path.dirname(folder)):
        return not_checkout
    if _project_name(os.path.join(top, "pyproject.toml")) != "graphc":
        return not_checkout
    if _git(top, "ls-files", "--error-unmatch", os.path.abspath(package_file)) is None:
        return not_checkout
    rev = _git(top, "rev-parse", "--short", "HEAD")
    if not rev:
        return not_checkout
    dirty = _git(top, "status", "--porcelain", "--untracked-files=no")
    return f" (git {rev}{', modified' if dirty else ''})"


def thread_report() -> dict:
    """What the process actually uses: affinity, the thread variables, BLAS and OpenMP threads.

    Keys: ``affinity`` (sorted CPUs), ``env`` (:data:`THREAD_VARS` -> value or None),
    ``pools`` (one line per thread pool, from threadpoolctl when installed),
    ``blas_threads`` and ``omp_threads`` (None where unknown).

    Example::

        >>> thread_report()["env"]              # doctest: +SKIP
        {'OMP_NUM_THREADS': '1', 'OPENBLAS_NUM_THREADS': '1', 'MKL_NUM_THREADS': None}
    """
    info: dict = {"affinity": sorted(affinity()),
                  "env": {v: os.environ.get(v) for v in THREAD_VARS}}
    try:
        from threadpoolctl import threadpool_info  # optional

        pools = threadpool_info()
    except Exception:  # noqa: BLE001 - not installed, or it failed to inspect a library
        info["pools"] = []
        info["blas_threads"] = None
        try:
            info["omp_threads"] = ctypes.CDLL("libgomp.so.1").omp_get_max_threads()
        except OSError:
            info["omp_threads"] = None
        return info
    info["pools"] = [f"{p.get('internal_api', p.get('user_api'))} "
                     f"({os.path.basename(p.get('filepath', '?'))}): {p.get('num_threads')}"
                     for p in pools]
    info["blas_threads"] = next((p["num_threads"] for p in pools if p.get("user_api") == "blas"),
                                None)
    info["omp_threads"] = next((p["num_threads"] for p in pools if p.get("user_api") == "openmp"),
                               None)
    return info


def copy_bandwidth(nbytes: int, rounds: int = 5) -> float:
    """GB/s of a one-thread ``np.copyto`` of ``nbytes`` (bytes read + bytes written).

    Example::

        >>> copy_bandwidth(16 << 20)            # doctest: +SKIP
        11.3
    """
    src = np.ones(max(1, nbytes // 4), np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    times = []
    for _ in range(max(3, rounds)):
        t = time.perf_counter()
        for _ in range(5):
            np.copyto(dst, src)
        times.append((time.perf_counter() - t) / 5)
    return 2 * src.nbytes / statistics.median(times) / 1e9
