"""The sequence-model groups of ``graphc bench``: a Transformer encoder layer and an LSTM.

Each group checks graphc's first training step against the NumPy twin of
:mod:`.seq_models` (loss, momentum buffers, new weights), then times graphc, NumPy and,
where they import, PyTorch eager and JAX (``jax.jit``) from the same weights, all in
interleaved rounds (graphc, NumPy, PyTorch, JAX, graphc, ...) over the same batches,
each side's training state restored before each of its rounds (untimed). The row's
columns compare graphc with NumPy; PyTorch and JAX medians and ratios go into its note
and into ``row["others"]``. The LSTM group also measures the cold compile of its step
(fresh ``GRAPHC_CACHE_DIR``, new process) at T = 32 and T = 256, with the size of the
generated C; it reports "gc.nn.LSTM unavailable" when this graphc has no ``gc.nn.LSTM``.

Example::

    >>> from graphc.tools.bench.groups import GROUPS, Config
    >>> rows = GROUPS["transformer"](Config(rounds=3), {"fusions": {}, "profiles": {}})  # doctest: +SKIP
    >>> rows[0]["ratio"], rows[0]["others"]                                              # doctest: +SKIP
    (1.4, {})
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import graphc as gc

from .common import Config, build_kernel_library, kernel_profile, make_pool, session_reset, table_row
from .models import compare_step, finite_note
from .report import format_seconds
from .seq_baselines import jax_step, torch_step
from .seq_models import (
    CLASSES,
    LSTM_SIZES,
    SEQ_LR,
    SEQ_MOMENTUM,
    TRANSFORMER_SIZES,
    NumpyLSTM,
    NumpyTransformer,
    build_lstm,
    build_transformer,
    has_lstm,
    initial_values,
    lstm_flops,
    transformer_flops,
)
from .timing import alternate_sides, cycle

__all__ = ["alternate_sides", "bench_lstm", "bench_transformer"]

#: Sequence lengths whose cold LSTM compile the ``lstm`` group measures.
COMPILE_SEQS = (32, 256)


def _seq_row(cfg: Config, extras: dict, group: str, label: str, name: str, short: str,
             model: dict, twin, pool: list, flops: float, baselines: dict) -> dict:
    """Check graphc's step against the twin, time every side, make the row."""
    sess = gc.Session(model["graph"], backend="c")
    fetches = [model["loss"], model["train"]]
    diff = compare_step(sess, model, twin, *pool[0])
    extras["fusions"][label] = [k for k in sess.compile(fetches).kernels if len(k["nodes"]) > 1]
    extras["profiles"][label] = kernel_profile(sess, fetches, {model["x"]: pool[0][0],
                                                                model["y"]: pool[0][1]}, 10)
    snap = twin.snapshot()
    sides = {"graphc": (cycle(lambda f: sess.run(fetches, f),
                              [{model["x"]: x, model["y"]: y} for x, y in pool]),
                        session_reset(sess)),
             "numpy": (cycle(lambda xy: twin.step(*xy), pool), lambda: twin.restore(snap))}
    skipped = []
    for side, make in baselines.items():
        made = make()
        if isinstance(made, str):
            skipped.append(f"{side}: {made}")
        else:
            sides[side] = made
    times = alternate_sides(sides, cfg.rounds, cfg.settle, cfg.min_round)
    row = table_row(group, name, (times["graphc"], times["numpy"]), "GFLOP/s", flops, cfg.peak_gflops,
               diff, short)
    mg = row["graphc_s"]
    row["others"] = {side: {"median_s": statistics.median(t), "ratio": statistics.median(t) / mg,
                            "samples": t} for side, t in times.items()
                     if side not in ("graphc", "numpy")}
    notes = [f"{side} {format_seconds(o['median_s'])} ({side} / graphc **{o['ratio']:.2f}**)"
             for side, o in row["others"].items()] + skipped
    disagree = (f"WARNING: graphc's first step differs from NumPy's (max rel diff {diff:.1e}); "
                "see Session.verify" if not diff < 1e-3 else "")
    row["note_extra"] = "; ".join(x for x in ("; ".join(notes), finite_note(sess, model, twin),
                                              disagree) if x)
    return row


def _baselines(kind: str, values: list[np.ndarray], pool: list, sizes: dict) -> dict:
    """PyTorch eager and JAX sides as ``name -> () -> (call, reset) or a reason string``."""
    args = (kind, values, pool, sizes, SEQ_LR, SEQ_MOMENTUM)
    return {"PyTorch eager": lambda: torch_step(*args), "JAX jit": lambda: jax_step(*args)}


def bench_transformer(cfg: Config, extras: dict) -> list[dict]:
    """One training step of the Transformer-encoder-layer classifier (B=32, T=64, d=128,
    4 heads, ff 512) against NumPy and, where installed, PyTorch eager and JAX.

    Example::

        >>> rows = bench_transformer(Config(rounds=3), {"fusions": {}, "profiles": {}})  # doctest: +SKIP
    """
    s = TRANSFORMER_SIZES
    model = build_transformer(s["seq"], s["dim"], s["heads"], s["ff"])
    values = initial_values(model)
    pool = make_pool(np.random.default_rng(5), (s["batch"], s["seq"], s["dim"]), CLASSES)
    twin = NumpyTransformer(values, s["batch"], s["seq"], s["heads"])
    name = (f"Transformer encoder layer train step (SGD), B={s['batch']} T={s['seq']} "
            f"d={s['dim']} {s['heads']} heads ff {s['ff']}")
    return [_seq_row(cfg, extras, "transformer", "Transformer encoder layer training step", name,
                     f"Transformer step, B={s['batch']}", model, twin, pool,
                     transformer_flops(s["batch"], s["seq"], s["dim"], s["ff"]),
                     _baselines("transformer", values, pool, s))]


def bench_lstm(cfg: Config, extras: dict) -> list[dict]:
    """One LSTM training step (B=64, T=32, F=32, H=128) against NumPy (and PyTorch, JAX),
    and the cold compile of the step at T = 32 and 256.

    Example::

        >>> rows = bench_lstm(Config(rounds=3), {"fusions": {}, "profiles": {}})  # doctest: +SKIP
    """
    s = LSTM_SIZES
    name = (f"LSTM train step (SGD), B={s['batch']} T={s['seq']} F={s['features']} "
            f"H={s['hidden']}")
    if not has_lstm():
        return [{"group": "lstm", "name": name, "short": "LSTM step", "graphc_s": None,
                 "numpy_s": None, "ratio": None, "note": "gc.nn.LSTM unavailable"}]
    model = build_lstm(s["seq"], s["features"], s["hidden"])
    values = initial_values(model)
    pool = make_pool(np.random.default_rng(6), (s["batch"], s["seq"], s["features"]), CLASSES)
    twin = NumpyLSTM(values, s["batch"], s["seq"])
    rows = [_seq_row(cfg, extras, "lstm", "LSTM training step", name, f"LSTM step, B={s['batch']}",
                     model, twin, pool, lstm_flops(s["batch"], s["seq"], s["features"],
                                                   s["hidden"]),
                     _baselines("lstm", values, pool, s))]
    with tempfile.TemporaryDirectory(prefix="graphc-bench-lstm-") as tmp:
        for seq in COMPILE_SEQS:
            build_kernel_library(os.path.join(tmp, f"T{seq}"))  # (once per machine: not timed)
            probe = lstm_compile_probe(seq, os.path.join(tmp, f"T{seq}"))
            rows.append({
                "group": "lstm", "name": f"LSTM train-step compile, T={seq}, cold",
                "graphc_s": probe["graph_s"] + probe["compile_s"], "numpy_s": None,
                "ratio": None, "detail": probe,
                "note": (f"graph {probe['graph_s'] * 1e3:.0f} ms + Session.compile "
                         f"{probe['compile_s']:.2f} s (new process, GRAPHC_CACHE_DIR holding only "
                         f"the kernel library); "
                         f"generated C {probe['source_bytes'] / 1e3:.0f} kB, "
                         f"{probe['kernels']} kernels")})
    return rows


_PROBE = ("import json, sys; from graphc.tools.bench.seq_groups import _lstm_compile; "
          "print(json.dumps(_lstm_compile(int(sys.argv[1]))))")


def _lstm_compile(seq: int) -> dict:
    """In a fresh process: build the LSTM step at ``seq`` steps and compile it (C backend)."""
    s = LSTM_SIZES
    t = time.perf_counter()
    model = build_lstm(seq, s["features"], s["hidden"])
    t_graph = time.perf_counter() - t
    t = time.perf_counter()
    compiled = gc.Session(model["graph"], backend="c").compile([model["loss"], model["train"]])
    return {"seq": seq, "graph_s": t_graph, "compile_s": time.perf_counter() - t,
            "source_bytes": len((compiled.source or "").encode()),
            "kernels": len(compiled.kernels)}


def lstm_compile_probe(seq: int, cache: str) -> dict:
    """:func:`_lstm_compile` in a new process with ``GRAPHC_CACHE_DIR=cache`` (cold: gcc runs).

    Example::

        >>> lstm_compile_probe(32, "/tmp/fresh-cache")["compile_s"]   # doctest: +SKIP
        1.8
    """
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(seq)], capture_output=True,
                          text=True, check=False,
                          env={**os.environ, "GRAPHC_CACHE_DIR": cache})
    if proc.returncode != 0:
        raise RuntimeError(f"LSTM compile probe failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
