"""``graphc bench``: benchmark graphc (C backend) against NumPy in the same process.

Rows (``--only`` picks groups; default: all):

* ``sgemm``: ``x @ W`` in float32 through a graphc graph (``Session.run``, C backend)
  against ``np.matmul(a, b, out=c)``, n = 256, 512, 1024, 2048: GFLOP/s;
* ``elementwise``: the fused chain ``relu(x*w + b)*0.5 + sigmoid(x)`` on a
  (4096, 1024) float32 ``x`` (4M elements) with ``w`` and ``b`` broadcast
  vectors of shape (1024,), against NumPy with preallocated buffers and in-place
  ufuncs: ms and GB/s (minimum traffic: read ``x``, write the result);
* ``mlp``: one training step (``sess.run([loss, train])``) of a 784-256-128-10
  ReLU MLP (mean softmax cross-entropy, SGD momentum 0.9) at batch 1, 16, 64, 256,
  against a hand-written NumPy step (preallocated buffers, ``np.matmul(out=)``,
  in-place updates);
* ``cnn``: one training step of a small CNN at batch 64 (1x28x28 input,
  conv 8 3x3 pad 1 + ReLU + max-pool 2, conv 16 3x3 pad 1 + ReLU + max-pool 2,
  dense 10, mean softmax cross-entropy, SGD momentum 0.9) against NumPy built on
  :mod:`graphc.reference.conv` (conv and pooling forward and backward);
* ``compile``: compile time of the MLP training step, cold (a fresh
  ``GRAPHC_CACHE_DIR`` in a new process, so gcc runs) and warm (a new process,
  same cache), median of a few subprocesses.

Method (see DESIGN.md, "Performance method"): graphc and NumPy alternate round by
round (A B A B ...) in one process; each round times a batch of calls (at least
``--min-round`` seconds) after a short sleep (``--settle``) and one untimed call,
so that the other implementation's spinning thread pool is idle. Tables show
medians and the ratio NumPy time / graphc time (> 1: graphc is faster), with
FLOPs over a nominal peak (base clock x FLOP/cycle; turbo can exceed it) or bytes
over the copy bandwidth measured in the same run.

The training-step rows check first that graphc and NumPy compute the same step: from
the same weights, one step's loss, momentum buffers (= the gradients after one step)
and new weights agree (the "max rel diff" column). The timed steps then cycle through
8 batches of N(0, 0.1^2) inputs and random labels, and both sides' weights and
momentum are restored before every round (untimed): repeating one batch for
thousands of steps lets the momentum of always-dead ReLU units decay into float32
denormals (~100x slower arithmetic on x86, in both implementations), and unit-variance
inputs make SGD at lr 0.01 diverge to NaN in such loops.

``--threads N`` re-executes the benchmark in a subprocess with ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` set to N (before NumPy loads);
``--pin CPUS`` pins that subprocess (like ``taskset -c``).

The markdown table is printed and written, with a JSON dump and a PNG bar plot of
the ratios, into ``--out`` (default ``./graphc-bench``).

Example::

    $ graphc bench --quick
    $ graphc bench --threads 1 --pin 0            # = taskset -c 0 with one thread everywhere
    $ graphc bench --only mlp --only compile --rounds 21
    >>> from graphc.tools.bench import bench, parse_args
    >>> result = bench(parse_args(["--quick", "--only", "mlp"]))      # doctest: +SKIP
    >>> [(r["name"], r["ratio"]) for r in result["rows"]]              # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from .groups import _bench_cnn, _bench_compile, _bench_elementwise, _bench_mlp, _bench_sgemm
from .models import EW_SHAPE, build_cnn, build_mlp  # noqa: F401 - re-exported
from .report import _floors, _t, markdown, plot
from .timing import (
    _THREAD_VARS,
    _affinity,
    _copy_bandwidth,
    _cpu_ghz,
    _cpu_list,
    _cpu_model,
    _flops_per_cycle,
    _git_revision,
    _loadavg,
    thread_report,
)

__all__ = ["GROUPS", "add_arguments", "bench", "build_cnn", "build_mlp", "main", "parse_args", "run"]

#: Benchmark groups, in the order they run.
GROUPS = ("sgemm", "elementwise", "mlp", "cnn", "compile")
_ALIASES = {"ew": "elementwise", "gemm": "sgemm", "matmul": "sgemm", "compile-time": "compile"}
_CHILD_MARK = "_GRAPHC_BENCH_CHILD"


# =============================================================================== options
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``graphc bench``."""
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternating rounds per comparison (default 11, --quick: 5)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer rounds and sizes (sgemm 256/1024, MLP batch 1/64, 1 cold "
                             "+ 3 warm compiles): about a minute")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="run in a subprocess with OMP/OpenBLAS/MKL threads = N "
                             "(default: inherit the environment)")
    parser.add_argument("--pin", default=None, metavar="CPUS",
                        help="pin that subprocess to these CPUs, e.g. 0 or 0,1 (like taskset -c)")
    parser.add_argument("--only", action="append", default=None, metavar="NAME",
                        help=f"run only these groups ({', '.join(GROUPS)}); repeat or "
                             "comma-separate")
    parser.add_argument("--out", default="graphc-bench",
                        help="folder for the markdown, JSON and PNG (default ./graphc-bench)")
    parser.add_argument("--settle", type=float, default=None,
                        help="seconds of sleep before each timed round (default 0.15 with "
                             "several threads, 0.01 with one)")
    parser.add_argument("--min-round", type=float, default=0.05,
                        help="seconds of calls per timed round (default 0.05)")
    parser.add_argument("--compile-runs", type=int, default=None,
                        help="subprocesses per compile measurement (default 3 cold, 5 warm)")
    parser.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    parser.add_argument("--check-floors", action="store_true",
                        help="exit with status 1 when a performance floor is missed")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``graphc bench`` options (for calling :func:`bench` from Python)."""
    parser = argparse.ArgumentParser(prog="graphc bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return parser.parse_args(argv)


def _groups(only: list[str] | None) -> list[str]:
    if not only:
        return list(GROUPS)
    wanted = set()
    for item in only:
        for name in item.split(","):
            name = _ALIASES.get(name.strip().lower(), name.strip().lower())
            if name not in GROUPS:
                raise SystemExit(f"graphc bench: unknown benchmark {name!r}; choose from "
                                 f"{', '.join(GROUPS)}")
            wanted.add(name)
    return [g for g in GROUPS if g in wanted]



def _argv_of(args: argparse.Namespace) -> list[str]:
    """The command line that reproduces ``args`` (for the re-executed child)."""
    out: list[str] = []
    for flag, value in (("--rounds", args.rounds), ("--threads", args.threads),
                        ("--pin", args.pin), ("--out", args.out), ("--settle", args.settle),
                        ("--min-round", args.min_round), ("--compile-runs", args.compile_runs)):
        if value is not None:
            out += [flag, str(value)]
    for name in args.only or []:
        out += ["--only", name]
    for flag, on in (("--quick", args.quick), ("--no-plot", args.no_plot),
                     ("--check-floors", args.check_floors)):
        if on:
            out.append(flag)
    return out


# =============================================================================== entry points
def run(args: argparse.Namespace) -> int:
    """Entry point of the ``bench`` subcommand; returns the exit status."""
    groups = _groups(args.only)  # validate before anything slow
    if args.threads is not None and args.threads < 1:
        raise SystemExit("graphc bench: --threads must be >= 1")
    want_env = {}
    if args.threads is not None:
        want_env = {v: str(args.threads) for v in _THREAD_VARS
                    if os.environ.get(v) != str(args.threads)}
    pin = _cpu_list(args.pin) if args.pin is not None else None
    if (want_env or (pin and pin != _affinity())) and not os.environ.get(_CHILD_MARK):
        # thread counts are read when NumPy's BLAS and libgomp load, and an affinity set
        # before exec covers every thread: re-execute with both in place.
        env = {**os.environ, **want_env, _CHILD_MARK: "1"}
        cmd = [sys.executable, "-m", "graphc.tools.bench", *_argv_of(args)]
        print(f"graphc bench: re-executing with {' '.join(f'{k}={v}' for k, v in want_env.items())}"
              f"{f' pinned to CPUs {sorted(pin)}' if pin else ''}", flush=True)

        def _pin() -> None:
            if pin and hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, pin)

        return subprocess.call(cmd, env=env, preexec_fn=_pin)
    result = bench(args, groups)
    missed = [f for f in result["floors"] if f["met"] is False]
    return 1 if (args.check_floors and missed) else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m graphc.tools.bench`` and ``benchmarks/bench.py``."""
    return run(parse_args(argv))


# =============================================================================== driver
def _config(args: argparse.Namespace) -> dict:
    try:  # OMP_NUM_THREADS may be a nested list such as "2,1"
        env_threads = int((os.environ.get("OMP_NUM_THREADS") or "0").split(",")[0])
    except ValueError:
        env_threads = 0
    threads = args.threads or env_threads or len(_affinity())
    n_cores = min(threads, len(_affinity()))
    quick = args.quick
    rounds = args.rounds or (5 if quick else 11)
    settle = args.settle if args.settle is not None else (0.15 if threads > 1 else 0.01)
    ghz = _cpu_ghz() or 0.0
    fpc, fpc_note = _flops_per_cycle()
    cr = args.compile_runs
    return {
        "rounds": rounds, "settle": settle, "min_round": args.min_round, "quick": quick,
        "n_cores": n_cores, "ghz": ghz, "fpc": fpc, "fpc_note": fpc_note,
        "peak_gflops": n_cores * ghz * fpc if ghz else None,
        "sgemm_sizes": (256, 1024) if quick else (256, 512, 1024, 2048),
        "mlp_batches": (1, 64) if quick else (1, 16, 64, 256),
        "compile_runs": (cr or 1, cr or 3) if quick else (cr or 3, cr or 5),
    }


def bench(args: argparse.Namespace, groups: list[str] | None = None) -> dict:
    """Run the benchmarks in this process; print and write the report; return the result."""
    import numpy as np

    import graphc
    from graphc.codegen.build import flags

    groups = _groups(args.only) if groups is None else groups
    cfg = _config(args)
    cfg["copy_gbs"] = _copy_bandwidth(EW_SHAPE[0] * EW_SHAPE[1] * 4, 5)
    pin = sorted(_affinity())
    tag = (f"threads {args.threads or os.environ.get('OMP_NUM_THREADS') or 'default'}"
           + (f", pinned to CPU {','.join(map(str, pin))}"
              if len(pin) < (os.cpu_count() or len(pin)) else ""))
    loadavg = _loadavg()
    print(f"graphc bench ({tag}): {', '.join(groups)}; {cfg['rounds']} rounds", flush=True)
    rows: list[dict] = []
    fusions: dict[str, list] = {}
    profiles: dict[str, dict] = {}
    t0 = time.perf_counter()
    for group in groups:
        t = time.perf_counter()
        if group == "sgemm":
            new = _bench_sgemm(cfg)
        elif group == "elementwise":
            new = _bench_elementwise(cfg)
        elif group == "mlp":
            new = _bench_mlp(cfg, fusions, profiles)
        elif group == "cnn":
            new = _bench_cnn(cfg, fusions, profiles)
        else:
            new = _bench_compile(cfg)
        rows += new
        for r in new:
            ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else _t(r["graphc_s"])
            print(f"  {r['name']}: {ratio}", flush=True)
        print(f"  ({group}: {time.perf_counter() - t:.0f} s)", flush=True)
    result = {"tag": tag, "config": cfg, "rows": rows, "fusions": fusions, "profiles": profiles,
              "threads": thread_report(), "cpu": _cpu_model(), "loadavg": loadavg,
              "loadavg_end": _loadavg(),
              "numpy": np.__version__,
              "graphc": f"{getattr(graphc, '__version__', '?')}{_git_revision(graphc.__file__)}",
              "cflags": " ".join(flags()), "seconds": time.perf_counter() - t0}
    result["floors"] = _floors(rows)
    text = markdown(result)
    print()
    print(text)
    os.makedirs(args.out, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in tag).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    files = {"markdown": os.path.join(args.out, f"bench_{slug}.md"),
             "json": os.path.join(args.out, f"bench_{slug}.json")}
    with open(files["markdown"], "w") as f:
        f.write(text)
    with open(files["json"], "w") as f:
        json.dump(result, f, indent=1, default=str)
    if not args.no_plot:
        png = plot(result, os.path.join(args.out, f"ratios_{slug}.png"))
        if png:
            files["png"] = png
    result["files"] = files
    print("wrote " + ", ".join(files.values()) + f" ({result['seconds']:.0f} s)")
    return result


if __name__ == "__main__":
    sys.exit(main())

