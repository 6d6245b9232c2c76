"""Running ``graphc bench`` in this process: configuration, the groups, the files written.

:func:`bench` is what the command runs once the thread settings are in place (see
:mod:`graphc.tools.bench.command` for the re-execution that puts them there); it prints
each row as it is measured, then the markdown report, and writes the report, a JSON
dump of the result and a PNG plot of the ratios into ``--out``.

Example::

    >>> from graphc.tools.bench import bench, parse_args
    >>> result = bench(parse_args(["--quick", "--only", "sgemm", "--out", "/tmp/b"]))  # doctest: +SKIP
    >>> sorted(result["files"])                                                       # doctest: +SKIP
    ['json', 'markdown', 'png']
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import time

import numpy as np

import graphc

from .groups import EW_SHAPE, GROUPS, Config, select_groups
from .machine import (
    affinity,
    copy_bandwidth,
    cpu_ghz,
    cpu_model,
    flops_per_cycle,
    git_revision,
    loadavg,
    thread_report,
)
from .report import floors, format_seconds, markdown, plot

__all__ = ["bench", "make_config"]

#: What ``--quick`` changes in the :class:`~graphc.tools.bench.groups.Config` defaults.
_QUICK = {"rounds": 5, "sgemm_sizes": (256, 1024), "mlp_batches": (1, 64), "compile_runs": (1, 3)}


def make_config(args: argparse.Namespace) -> Config:
    """The :class:`~graphc.tools.bench.groups.Config` for parsed ``graphc bench`` options.

    Defaults: 11 rounds (``--quick``: 5), settle 0.15 s with several threads and 0.01 s
    with one, the nominal peak of the cores the threads can use. The copy bandwidth is
    measured by :func:`bench`.

    Example::

        >>> from graphc.tools.bench import parse_args
        >>> make_config(parse_args(["--quick", "--threads", "1"])).rounds
        5
    """
    try:  # OMP_NUM_THREADS may be a nested list such as "2,1"
        env_threads = int((os.environ.get("OMP_NUM_THREADS") or "0").split(",")[0])
    except ValueError:
        env_threads = 0
    threads = args.threads or env_threads or len(affinity())
    n_cores = min(threads, len(affinity()))
    ghz = cpu_ghz() or 0.0
    fpc, fpc_note = flops_per_cycle()
    cfg = Config(**(_QUICK if args.quick else {}), quick=args.quick, min_round=args.min_round,
                 settle=args.settle if args.settle is not None else (0.15 if threads > 1 else 0.01),
                 n_cores=n_cores, ghz=ghz, fpc=fpc, fpc_note=fpc_note,
                 peak_gflops=n_cores * ghz * fpc if ghz else None)
    if args.rounds:
        cfg.rounds = args.rounds
    if args.compile_runs:
        cfg.compile_runs = (args.compile_runs, args.compile_runs)
    return cfg


def _tag(args: argparse.Namespace) -> str:
    """``threads N[, pinned to CPU a,b]``: the configuration, in the title and file names."""
    pin = sorted(affinity())
    pinned = len(pin) < (os.cpu_count() or len(pin))
    return (f"threads {args.threads or os.environ.get('OMP_NUM_THREADS') or 'default'}"
            + (f", pinned to CPU {','.join(map(str, pin))}" if pinned else ""))


def _write(result: dict, out: str, with_plot: bool) -> dict[str, str]:
    """Write the markdown, the JSON and (``with_plot``) the PNG; return their paths."""
    os.makedirs(out, exist_ok=True)
    slug = re.sub(r"[^0-9A-Za-z]+", "-", result["tag"]).strip("-")
    files = {"markdown": os.path.join(out, f"bench_{slug}.md"),
             "json": os.path.join(out, f"bench_{slug}.json")}
    with open(files["markdown"], "w") as f:
        f.write(markdown(result))
    with open(files["json"], "w") as f:
        json.dump(result, f, indent=1, default=str)
    if with_plot:
        png = plot(result, os.path.join(out, f"ratios_{slug}.png"))
        if png:
            files["png"] = png
    return files


def bench(args: argparse.Namespace, groups: list[str] | None = None) -> dict:
    """Run the benchmark groups in this process; print and write the report; return the result.

    ``groups`` defaults to those ``args.only`` selects. The result holds what
    :mod:`graphc.tools.bench.report` documents, plus ``files`` (paths written) and
    ``seconds``.

    Example::

        >>> from graphc.tools.bench import parse_args
        >>> result = bench(parse_args(["--quick", "--only", "mlp"]))        # doctest: +SKIP
        >>> [(r["name"], r["ratio"]) for r in result["rows"]]                # doctest: +SKIP
    """
    groups = select_groups(args.only) if groups is None else groups
    cfg = make_config(args)
    cfg.copy_gbs = copy_bandwidth(EW_SHAPE[0] * EW_SHAPE[1] * 4, 5)
    tag = _tag(args)
    load_start = loadavg()
    print(f"graphc bench ({tag}): {', '.join(groups)}; {cfg.rounds} rounds", flush=True)
    rows: list[dict] = []
    extras: dict[str, dict] = {"fusions": {}, "profiles": {}}
    t0 = time.perf_counter()
    for group in groups:
        t = time.perf_counter()
        new = GROUPS[group](cfg, extras)
        rows += new
        for r in new:
            ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else format_seconds(r["graphc_s"])
            print(f"  {r['name']}: {ratio}", flush=True)
        print(f"  ({group}: {time.perf_counter() - t:.0f} s)", flush=True)
    result = {"tag": tag, "config": dataclasses.asdict(cfg), "rows": rows, **extras,
              "floors": floors(rows), "threads": thread_report(), "cpu": cpu_model(),
              "loadavg": load_start, "loadavg_end": loadavg(), "numpy": np.__version__,
              "graphc": f"{graphc.__version__}{git_revision(graphc.__file__)}",
              "cflags": os.environ.get("GRAPHC_CFLAGS") or "the C backend's defaults",
              "seconds": time.perf_counter() - t0}
    print()
    print(markdown(result))
    result["files"] = _write(result, args.out, not args.no_plot)
    print("wrote " + ", ".join(result["files"].values()) + f" ({result['seconds']:.0f} s)")
    return result
