"""What every benchmark group shares: the run's :class:`Config`, table rows, batch pools,
session resets and kernel profiles.

Example::

    >>> Config(rounds=3).rounds
    3
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

import graphc as gc

from .models import INPUT_SCALE
from .timing import spread

#: Distinct batches cycled through by the training-step groups.
POOL = 8


@dataclasses.dataclass
class Config:
    """What the groups need to know: rounds, sizes and the machine's peaks.

    ``peak_gflops`` (nominal float32 peak of the cores used) and ``copy_gbs`` (one-thread
    copy bandwidth) turn rates into "% of peak"; None leaves that out. The other fields
    describe the peak for the report. :func:`graphc.tools.bench.runner.make_config`
    makes one from the command line's options.

    Example::

        >>> Config(rounds=3, sgemm_sizes=(64,)).mlp_batches
        (1, 16, 64, 256)
    """

    rounds: int = 11
    settle: float = 0.01
    min_round: float = 0.05
    quick: bool = False
    sgemm_sizes: tuple[int, ...] = (256, 512, 1024, 2048)
    mlp_batches: tuple[int, ...] = (1, 16, 64, 256)
    compile_runs: tuple[int, int] = (3, 5)   # cold, warm
    n_cores: int = 1
    ghz: float = 0.0
    fpc: int = 16
    fpc_note: str = ""
    peak_gflops: float | None = None
    copy_gbs: float | None = None


def table_row(group: str, name: str, times: tuple[list[float], list[float]], unit: str, work: float,
         peak: float | None, diff: float | None, short: str) -> dict:
    """A table row from both sides' round times and the work (FLOPs or bytes) of one call."""
    tg, tn = times
    mg, mn = statistics.median(tg), statistics.median(tn)
    rate_g, rate_n = work / mg / 1e9, work / mn / 1e9
    of = "copy bandwidth" if unit == "GB/s" else "base-clock peak"
    return {"group": group, "name": name, "short": short, "graphc_s": mg, "numpy_s": mn,
            "ratio": mn / mg, "graphc_samples": tg, "numpy_samples": tn, "unit": unit,
            "graphc_rate": rate_g, "numpy_rate": rate_n, "spread": (spread(tg), spread(tn)),
            "max_rel_diff": diff,
            "note": f"{rate_g / peak:.0%} / {rate_n / peak:.0%} of {of}" if peak else ""}


def session_reset(sess: gc.Session) -> Callable[[], None]:
    """A callable restoring every variable (weights, optimizer slots) of ``sess``."""
    snap = {v: sess.get_value(v) for v in sess.graph.variables()}

    def reset() -> None:
        for v, a in snap.items():
            sess.set_value(v, a)

    return reset


def kernel_profile(sess: gc.Session, fetches: list, feed: dict, runs: int) -> dict:
    """``Session.profile`` of one step, as plain numbers for the report and the JSON.

    Sleeps first: BLAS threads of the NumPy step that just ran keep spinning for a
    while and would steal a core from the profiled steps."""
    time.sleep(0.3)
    prof = sess.profile(fetches, feed, runs=runs)
    return {"batch": prof.batch, "runs": prof.runs, "step_us": prof.total_seconds * 1e6,
            "kernels_us": prof.kernel_seconds * 1e6,
            "rows": [{"name": r["name"], "nodes": r["nodes"], "us": r["seconds"] * 1e6,
                      "share": r["share"]} for r in prof.rows]}


def make_pool(rng: np.random.Generator, shape: tuple[int, ...], classes: int) -> list:
    """:data:`POOL` batches of N(0, INPUT_SCALE^2) inputs and random labels."""
    return [((INPUT_SCALE * rng.standard_normal(shape)).astype(np.float32),
             rng.integers(0, classes, shape[0]).astype(np.int64)) for _ in range(POOL)]


_LIBRARY_PROBE = ("import json, time; from graphc.backends.c.build import flags, kernel_library; "
                  "from graphc.env import find_c_compiler; t = time.perf_counter(); "
                  "ok = kernel_library(find_c_compiler(), flags()) is not None; "
                  "print(json.dumps({'library_s': time.perf_counter() - t, 'built': ok}))")


def build_kernel_library(cache: str) -> float:
    """Seconds a new process takes to build the C kernel library into the compile cache
    ``cache`` (``GRAPHC_CACHE_DIR``): done once per machine, before a step's cold compile is
    timed there (that compile then links it, as every later graph's does).

    Example::

        >>> build_kernel_library("/tmp/fresh-cache")   # doctest: +SKIP
        3.9
    """
    proc = subprocess.run([sys.executable, "-c", _LIBRARY_PROBE], capture_output=True, text=True,
                          check=False, env={**os.environ, "GRAPHC_CACHE_DIR": cache})
    if proc.returncode != 0:
        raise RuntimeError(f"kernel library build failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["library_s"]
