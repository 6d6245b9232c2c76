"""The benchmark groups of ``graphc bench``: each times graphc against NumPy and makes rows.

A group is a function ``group(cfg, extras) -> list of rows`` registered in :data:`GROUPS`
(in the order they run); ``cfg`` is a :class:`Config`, ``extras`` a dict whose
``"fusions"`` and ``"profiles"`` entries the training-step groups fill with the fused
kernels (``Session.compile(...).kernels``) and the per-kernel times (``Session.profile``)
of their step. A row is a dict:

* ``group``, ``name`` (the table's label), ``short`` (the plot's label);
* ``graphc_s``, ``numpy_s``: median seconds per call (``numpy_s`` None: graphc only);
  ``ratio`` = numpy_s / graphc_s (None when there is no NumPy side);
* ``graphc_samples``, ``numpy_samples``: the seconds of every round;
* ``unit`` (``"GFLOP/s"`` or ``"GB/s"``), ``graphc_rate``, ``numpy_rate``, ``spread``
  (the pair of :func:`~graphc.tools.bench.timing.spread`), ``max_rel_diff``;
* ``note`` and optionally ``note_extra``: text for the table's last column.

Example::

    >>> from graphc.tools.bench.groups import GROUPS, Config
    >>> cfg = Config(rounds=3, settle=0.0, min_round=0.01, sgemm_sizes=(64,))
    >>> rows = GROUPS["sgemm"](cfg, {"fusions": {}, "profiles": {}})   # doctest: +SKIP
    >>> rows[0]["name"], rows[0]["ratio"]                               # doctest: +SKIP
    ('sgemm n=64 (x @ W)', 0.93)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import graphc as gc
from graphc.env import cache_dir

from .common import POOL, Config, build_kernel_library, kernel_profile, make_pool, session_reset, table_row
from .models import (
    MLP_SIZES,
    NumpyCNN,
    NumpyMLP,
    NumpyModel,
    build_cnn,
    build_mlp,
    cnn_flops,
    compare_step,
    finite_note,
    init_cnn,
    init_mlp,
    max_rel_diff,
    mlp_flops,
)
from .seq_groups import bench_lstm, bench_transformer
from .timing import alternate, cycle

__all__ = ["EW_SHAPE", "GROUPS", "POOL", "Config", "bench_cnn", "bench_compile", "bench_elementwise",
           "bench_mlp", "bench_sgemm", "select_groups"]

#: Shape of the elementwise group's input (4M float32 elements).
EW_SHAPE = (4096, 1024)


# =============================================================================== groups
def bench_sgemm(cfg: Config, extras: dict) -> list[dict]:
    """``x @ W`` in float32 against ``np.matmul(a, b, out=c)`` for each of ``cfg.sgemm_sizes``.

    Example::

        >>> extras = {"fusions": {}, "profiles": {}}
        >>> rows = bench_sgemm(Config(rounds=3, sgemm_sizes=(64,)), extras)   # doctest: +SKIP
    """
    rows = []
    rng = np.random.default_rng(1)
    for n in cfg.sgemm_sizes:
        a = rng.standard_normal((n, n)).astype(np.float32)
        b = rng.standard_normal((n, n)).astype(np.float32)
        c = np.empty((n, n), np.float32)
        with gc.Graph() as g:
            x = gc.placeholder((None, n), name="x")
            y = x @ gc.variable(b, name="W")
        sess = gc.Session(g, backend="c")
        feed = {x: a}
        ours = sess.run(y, feed)
        np.matmul(a, b, out=c)
        times = alternate(lambda s=sess, y=y, f=feed: s.run(y, f),
                          lambda a=a, b=b, c=c: np.matmul(a, b, out=c),
                          cfg.rounds, cfg.settle, cfg.min_round)
        rows.append(table_row("sgemm", f"sgemm n={n} (x @ W)", times, "GFLOP/s", 2.0 * n**3,
                         cfg.peak_gflops, max_rel_diff(ours, c), f"sgemm n={n}"))
    return rows


def bench_elementwise(cfg: Config, extras: dict) -> list[dict]:
    """The fused chain ``relu(x*w + b)*0.5 + sigmoid(x)`` against in-place NumPy ufuncs.

    Example::

        >>> extras = {"fusions": {}, "profiles": {}}
        >>> rows = bench_elementwise(Config(rounds=3, min_round=0.01), extras)   # doctest: +SKIP
    """
    rows_n, cols_n = EW_SHAPE
    rng = np.random.default_rng(2)
    xv = rng.standard_normal(EW_SHAPE).astype(np.float32)
    wv = rng.standard_normal(cols_n).astype(np.float32)
    bv = rng.standard_normal(cols_n).astype(np.float32)
    with gc.Graph() as g:
        x = gc.placeholder((None, cols_n), name="x")
        y = gc.relu(x * gc.variable(wv, name="w") + gc.variable(bv, name="b")) * 0.5 + gc.sigmoid(x)
    sess = gc.Session(g, backend="c")
    feed = {x: xv}
    t, s, out = (np.empty(EW_SHAPE, np.float32) for _ in range(3))
    half = np.float32(0.5)

    def numpy_chain() -> None:
        np.multiply(xv, wv, out=t)
        np.add(t, bv, out=t)
        np.maximum(t, 0, out=t)
        np.multiply(t, half, out=t)
        np.negative(xv, out=s)
        np.exp(s, out=s)
        np.add(s, 1, out=s)
        np.reciprocal(s, out=s)
        np.add(t, s, out=out)

    ours = sess.run(y, feed)
    numpy_chain()
    times = alternate(lambda: sess.run(y, feed), numpy_chain, cfg.rounds, cfg.settle,
                      cfg.min_round)
    nbytes = 2.0 * xv.nbytes + wv.nbytes + bv.nbytes  # read x (+ w, b), write the result
    kernels = sess.compile([y]).kernels
    row = table_row("elementwise", f"relu(x*w+b)*0.5+sigmoid(x), x {rows_n}x{cols_n} f32, w,b "
               f"({cols_n},) broadcast", times, "GB/s", nbytes, cfg.copy_gbs,
               max_rel_diff(ours, out), "relu(x*w+b)*0.5+sigmoid(x), 4M")
    row["note_extra"] = f"{len(kernels)} kernel(s): " + " / ".join(
        "+".join(k["nodes"]) for k in kernels)
    return [row]


def _bench_step(cfg: Config, extras: dict, label: str, model: dict, twin: NumpyModel, pool: list,
                profile: bool, profile_runs: int) -> tuple[tuple[list[float], list[float]], float, str]:
    """Check one training step against the NumPy twin, then time both over ``pool``.

    The batches are cycled and both sides' training state is restored before every
    round (untimed): repeating one batch for thousands of steps lets the momentum of
    ReLU units that stay dead decay into float32 denormals, whose arithmetic is ~100x
    slower on x86 and would dominate both implementations' times.
    Returns the round times, the step's max relative difference and :func:`finite_note`."""
    sess = gc.Session(model["graph"], backend="c")
    fetches = [model["loss"], model["train"]]
    diff = compare_step(sess, model, twin, *pool[0])
    if label not in extras["fusions"]:
        extras["fusions"][label] = [k for k in sess.compile(fetches).kernels if len(k["nodes"]) > 1]
    if profile:
        feed = {model["x"]: pool[0][0], model["y"]: pool[0][1]}
        extras["profiles"][label] = kernel_profile(sess, fetches, feed, profile_runs)
    snap = twin.snapshot()
    times = alternate(cycle(lambda f: sess.run(fetches, f),
                            [{model["x"]: x, model["y"]: y} for x, y in pool]),
                      cycle(lambda xy: twin.step(*xy), pool),
                      cfg.rounds, cfg.settle, cfg.min_round,
                      resets=(session_reset(sess), lambda: twin.restore(snap)))
    note = finite_note(sess, model, twin)
    return times, diff, note


def bench_mlp(cfg: Config, extras: dict) -> list[dict]:
    """One 784-256-128-10 MLP training step at each of ``cfg.mlp_batches``.

    Example::

        >>> extras = {"fusions": {}, "profiles": {}}
        >>> rows = bench_mlp(Config(rounds=3, mlp_batches=(64,)), extras)   # doctest: +SKIP
    """
    rows = []
    init = init_mlp()
    rng = np.random.default_rng(3)
    label = "MLP 784-256-128-10 training step"
    profiled = min(cfg.mlp_batches, key=lambda b: abs(b - 64))
    for batch in cfg.mlp_batches:
        pool = make_pool(rng, (batch, MLP_SIZES[0]), MLP_SIZES[-1])
        times, diff, note = _bench_step(cfg, extras, label, build_mlp(init),
                                        NumpyMLP(init, batch), pool, batch == profiled, 50)
        rows.append(table_row("mlp", f"MLP 784-256-128-10 train step, batch {batch}", times,
                         "GFLOP/s", mlp_flops(batch), cfg.peak_gflops, diff,
                         f"MLP step, batch {batch}"))
        rows[-1]["note_extra"] = note
    return rows


def bench_cnn(cfg: Config, extras: dict) -> list[dict]:
    """The 1x28x28 CNN (:func:`~.models.init_cnn`) at batch 64: one training step, and
    inference (the logits) from the same initial weights.

    The NumPy side is :class:`~.models.NumpyCNN` (NHWC, im2col + one GEMM per
    convolution); the inference row checks the logits on every batch of the pool first.

    Example::

        >>> extras = {"fusions": {}, "profiles": {}}
        >>> rows = bench_cnn(Config(rounds=3, min_round=0.01), extras)   # doctest: +SKIP
        >>> [r["short"] for r in rows]                                   # doctest: +SKIP
        ['CNN step, batch 64', 'CNN inference, batch 64']
    """
    batch = 64
    init = init_cnn()
    pool = make_pool(np.random.default_rng(4), (batch, 1, 28, 28), 10)
    model = build_cnn(init)
    times, diff, note = _bench_step(cfg, extras, "CNN training step", model,
                                    NumpyCNN(init), pool, True, 10)
    row = table_row("cnn", f"CNN 1x28x28 c8-p-c16-p-d10 train step (SGD), batch {batch}", times,
               "GFLOP/s", cnn_flops(batch, init), cfg.peak_gflops, diff, f"CNN step, batch {batch}")
    row["note_extra"] = note
    sess, twin = gc.Session(model["graph"], backend="c"), NumpyCNN(init)
    logits, x = model["logits"], model["x"]
    diff = max(max_rel_diff(sess.run(logits, {x: xb}), twin.forward(xb)) for xb, _ in pool)
    times = alternate(cycle(lambda f: sess.run(logits, f), [{x: xb} for xb, _ in pool]),
                      cycle(twin.forward, [xb for xb, _ in pool]),
                      cfg.rounds, cfg.settle, cfg.min_round)
    infer = table_row("cnn", f"CNN 1x28x28 c8-p-c16-p-d10 inference (logits), batch {batch}",
                      times, "GFLOP/s", cnn_flops(batch, init, train=False), cfg.peak_gflops,
                      diff, f"CNN inference, batch {batch}")
    return [row, infer]


# =============================================================================== compile
_PROBE = ("import time; t0 = time.perf_counter(); import json; "
          "from graphc.tools.bench.groups import _compile_probe; "
          "print(json.dumps(_compile_probe(t0)))")


def _cache_files() -> int:
    """Files in graphc's on-disk cache: a compile that adds none was a cache hit."""
    root = Path(cache_dir())
    return sum(1 for p in root.rglob("*") if p.is_file()) if root.is_dir() else 0


def _compile_probe(t0: float) -> dict:
    """In a fresh process: build the MLP training graph, compile it (C backend), run it."""
    t_import = time.perf_counter() - t0
    t = time.perf_counter()
    m = build_mlp()
    t_graph = time.perf_counter() - t
    files = _cache_files()
    t = time.perf_counter()
    sess = gc.Session(m["graph"], backend="c")
    compiled = sess.compile([m["loss"], m["train"]])
    t_compile = time.perf_counter() - t
    cached = _cache_files() == files
    feed = {m["x"]: np.zeros((64, MLP_SIZES[0]), np.float32), m["y"]: np.zeros(64, np.int64)}
    t = time.perf_counter()
    sess.run([m["loss"], m["train"]], feed)
    return {"import_s": t_import, "graph_s": t_graph, "compile_s": t_compile,
            "first_step_s": time.perf_counter() - t, "cached": cached,
            "kernels": len(compiled.kernels)}


def _probe(cache: str) -> dict:
    """:func:`_compile_probe` in a new process with ``GRAPHC_CACHE_DIR=cache``."""
    env = {**os.environ, "GRAPHC_CACHE_DIR": cache}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                          text=True, check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"compile probe failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = wall
    return out


def bench_compile(cfg: Config, extras: dict) -> list[dict]:
    """Compile time of the MLP training step in new processes, cold and warm cache.

    Example::

        >>> extras = {"fusions": {}, "profiles": {}}
        >>> rows = bench_compile(Config(rounds=3, compile_runs=(1, 1)), extras)   # doctest: +SKIP
    """
    cold_runs, warm_runs = cfg.compile_runs
    with tempfile.TemporaryDirectory(prefix="graphc-bench-cache-") as tmp:
        library = [build_kernel_library(os.path.join(tmp, f"cold{k}")) for k in range(cold_runs)]
        cold = [_probe(os.path.join(tmp, f"cold{k}")) for k in range(cold_runs)]
        warm = [_probe(os.path.join(tmp, "cold0")) for _ in range(warm_runs)]
    rows = [{"group": "compile", "name": "C kernel library build (once per machine and flags)",
             "graphc_s": statistics.median(library), "numpy_s": None, "ratio": None,
             "graphc_samples": library, "runs": len(library),
             "note": "GEMM, conv2d and pooling templates, float32 and float64, in a new process; "
                     "every step links the cached library, so the cold compiles below exclude it"}]
    for label, runs, want in (("cold (GRAPHC_CACHE_DIR with only the kernel library, gcc runs)",
                               cold, False),
                              ("warm (new process, same cache)", warm, True)):
        med = {k: statistics.median(r[k] for r in runs)
               for k in ("import_s", "graph_s", "compile_s", "process_s", "first_step_s")}
        hits = sum(1 for r in runs if r["cached"] is want)
        rows.append({
            "group": "compile", "name": f"MLP train-step compile, {label}",
            "graphc_s": med["graph_s"] + med["compile_s"], "numpy_s": None, "ratio": None,
            "graphc_samples": [r["graph_s"] + r["compile_s"] for r in runs],
            "detail": med, "runs": len(runs),
            "note": (f"graph {med['graph_s'] * 1e3:.0f} ms + Session.compile "
                     f"{med['compile_s'] * 1e3:.0f} ms; whole process {med['process_s']:.2f} s "
                     f"(import graphc {med['import_s']:.2f} s, first step "
                     f"{med['first_step_s'] * 1e3:.1f} ms); cache "
                     f"{'hit' if want else 'miss'} in {hits}/{len(runs)}; {len(runs)} runs"),
        })
    return rows



#: Benchmark groups by name, in the order they run.
GROUPS: dict[str, Callable[[Config, dict], list[dict]]] = {
    "sgemm": bench_sgemm,
    "elementwise": bench_elementwise,
    "mlp": bench_mlp,
    "cnn": bench_cnn,
    "transformer": bench_transformer,
    "lstm": bench_lstm,
    "compile": bench_compile,
}

_ALIASES = {"ew": "elementwise", "gemm": "sgemm", "matmul": "sgemm", "compile-time": "compile",
            "attention": "transformer", "rnn": "lstm"}


def select_groups(only: list[str] | None) -> list[str]:
    """Group names for ``--only`` values (repeated or comma-separated, aliases allowed),
    in :data:`GROUPS` order; all of them for None or []. ValueError for an unknown name.

    Example::

        >>> select_groups(["compile,ew", "GEMM"])
        ['sgemm', 'elementwise', 'compile']
    """
    if not only:
        return list(GROUPS)
    wanted = set()
    for item in only:
        for name in item.split(","):
            name = _ALIASES.get(name.strip().lower(), name.strip().lower())
            if name not in GROUPS:
                raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(GROUPS)}")
            wanted.add(name)
    return [g for g in GROUPS if g in wanted]
