"""The ``graphc bench`` command line: its options, and the re-execution for threads and pinning.

Thread counts are read when NumPy's BLAS and libgomp load, and an affinity set before
``exec`` covers every thread, so ``--threads N`` and ``--pin CPUS`` re-execute the
benchmark (``python -m graphc.tools.bench`` with the same options) in a subprocess with
``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` set and the CPU
affinity applied; without them it runs in this process.

Example::

    >>> from graphc.tools.bench.command import child_argv, parse_args
    >>> args = parse_args(["--quick", "--only", "mlp", "--threads", "1"])
    >>> child_argv(args)
    ['--threads', '1', '--out', 'graphc-bench', '--min-round', '0.05', '--only', 'mlp', '--quick']
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from .groups import GROUPS, select_groups
from .machine import THREAD_VARS, affinity, parse_cpu_list
from .runner import bench

__all__ = ["add_arguments", "child_argv", "main", "parse_args", "run"]

#: Set in the environment of the re-executed child, so that it does not re-execute again.
CHILD_MARK = "_GRAPHC_BENCH_CHILD"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``graphc bench`` to ``parser``.

    Example::

        >>> p = argparse.ArgumentParser()
        >>> add_arguments(p)
        >>> p.parse_args(["--quick"]).quick
        True
    """
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
    """Parse ``graphc bench`` options (for calling :func:`~graphc.tools.bench.bench` from Python).

    Example::

        >>> parse_args(["--only", "sgemm", "--rounds", "3"]).rounds
        3
    """
    parser = argparse.ArgumentParser(
        prog="graphc bench", description="Benchmark graphc (C backend) against NumPy.")
    add_arguments(parser)
    return parser.parse_args(argv)


def child_argv(args: argparse.Namespace) -> list[str]:
    """The command line that reproduces ``args``: ``parse_args(child_argv(a)) == a``.

    Example::

        >>> a = parse_args(["--pin", "0", "--no-plot"])
        >>> parse_args(child_argv(a)) == a
        True
    """
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


def run(args: argparse.Namespace) -> int:
    """Entry point of ``graphc bench``: run (or re-execute) the benchmark; the exit status.

    1 when ``--check-floors`` is given and a floor is missed, else 0 (or the child's).

    Example::

        >>> run(parse_args(["--quick", "--only", "sgemm"]))    # doctest: +SKIP
        0
    """
    try:
        groups = select_groups(args.only)  # validate before anything slow
    except ValueError as exc:
        raise SystemExit(f"graphc bench: {exc}") from None
    if args.threads is not None and args.threads < 1:
        raise SystemExit("graphc bench: --threads must be >= 1")
    want_env = {}
    if args.threads is not None:
        want_env = {v: str(args.threads) for v in THREAD_VARS
                    if os.environ.get(v) != str(args.threads)}
    pin = parse_cpu_list(args.pin) if args.pin is not None else None
    if (want_env or (pin and pin != affinity())) and not os.environ.get(CHILD_MARK):
        env = {**os.environ, **want_env, CHILD_MARK: "1"}
        cmd = [sys.executable, "-m", "graphc.tools.bench", *child_argv(args)]
        print(f"graphc bench: re-executing with {' '.join(f'{k}={v}' for k, v in want_env.items())}"
              f"{f' pinned to CPUs {sorted(pin)}' if pin else ''}", flush=True)

        def set_affinity() -> None:
            if pin and hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, pin)

        return subprocess.call(cmd, env=env, preexec_fn=set_affinity)
    result = bench(args, groups)
    missed = [f for f in result["floors"] if f["met"] is False]
    return 1 if (args.check_floors and missed) else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m graphc.tools.bench`` and ``benchmarks/bench.py``: parse ``argv`` and run.

    Example::

        >>> main(["--quick", "--threads", "1", "--pin", "0"])   # doctest: +SKIP
        0
    """
    return run(parse_args(argv))
