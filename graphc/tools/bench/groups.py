"""``graphc bench`` groups: each times graphc against NumPy and returns report rows."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from .models import (
    _POOL,
    EW_SHAPE,
    INPUT_SCALE,
    MLP_SIZES,
    NumpyCNN,
    NumpyMLP,
    _cnn_flops,
    _cycle,
    _finite_note,
    _init_cnn,
    _init_mlp,
    _mlp_flops,
    _session_reset,
    _step_diff,
    build_cnn,
    build_mlp,
    fused_kernels,
    kernel_profile,
)
from .timing import _rel, _spread, alternate


# =============================================================================== groups
def _bench_sgemm(cfg: dict) -> list[dict]:
    import numpy as np

    import graphc as gc

    rows = []
    rng = np.random.default_rng(1)
    for n in cfg["sgemm_sizes"]:
        a = rng.standard_normal((n, n)).astype(np.float32)
        b = rng.standard_normal((n, n)).astype(np.float32)
        c = np.empty((n, n), np.float32)
        with gc.Graph() as g:
            x = gc.placeholder((None, n), name="x")
            w = gc.variable(b, name="W")
            y = x @ w
        sess = gc.Session(g, backend="c")
        feed = {x: a}
        ours = sess.run(y, feed)
        np.matmul(a, b, out=c)
        tg, tn = alternate(lambda s=sess, y=y, f=feed: s.run(y, f),
                           lambda a=a, b=b, c=c: np.matmul(a, b, out=c),
                           cfg["rounds"], cfg["settle"], cfg["min_round"])
        flop = 2.0 * n**3
        rows.append(_row("sgemm", f"sgemm n={n} (x @ W)", tg, tn, unit="GFLOP/s", work=flop,
                         peak=cfg["peak_gflops"], diff=_rel(ours, c), short=f"sgemm n={n}"))
    return rows


def _bench_elementwise(cfg: dict) -> list[dict]:
    import numpy as np

    import graphc as gc

    rows_n, cols_n = EW_SHAPE
    rng = np.random.default_rng(2)
    xv = rng.standard_normal(EW_SHAPE).astype(np.float32)
    wv = rng.standard_normal(cols_n).astype(np.float32)
    bv = rng.standard_normal(cols_n).astype(np.float32)
    with gc.Graph() as g:
        x = gc.placeholder((None, cols_n), name="x")
        w = gc.variable(wv, name="w")
        b = gc.variable(bv, name="b")
        y = gc.relu(x * w + b) * 0.5 + gc.sigmoid(x)
    sess = gc.Session(g, backend="c")
    feed = {x: xv}
    t = np.empty(EW_SHAPE, np.float32)
    s = np.empty(EW_SHAPE, np.float32)
    out = np.empty(EW_SHAPE, np.float32)
    half = np.float32(0.5)

    def numpy_chain():
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
    tg, tn = alternate(lambda: sess.run(y, feed), numpy_chain, cfg["rounds"], cfg["settle"],
                       cfg["min_round"])
    nbytes = 2.0 * xv.nbytes + wv.nbytes + bv.nbytes  # read x (+ w, b), write the result
    kernels = getattr(sess.compile([y]).executable, "kernel_list", [])
    row = _row("elementwise", f"relu(x*w+b)*0.5+sigmoid(x), x {rows_n}x{cols_n} f32, w,b "
               f"({cols_n},) broadcast", tg, tn, unit="GB/s", work=nbytes,
               peak=cfg["copy_gbs"], diff=_rel(ours, out),
               short="relu(x*w+b)*0.5+sigmoid(x), 4M")
    row["note_extra"] = f"{len(kernels)} kernel(s): " + " / ".join(
        "+".join(k["nodes"]) for k in kernels)
    return [row]


def _bench_mlp(cfg: dict, fusions: dict, profiles: dict) -> list[dict]:
    import numpy as np

    import graphc as gc

    rows = []
    init = _init_mlp()
    rng = np.random.default_rng(3)
    for batch in cfg["mlp_batches"]:
        # A pool of batches, cycled, and the training state restored before every round
        # (untimed): repeating one batch for thousands of steps lets the momentum of ReLU
        # units that stay dead decay into float32 denormals, whose arithmetic is ~100x
        # slower on x86 and would dominate both implementations' times.
        pool = [((INPUT_SCALE * rng.standard_normal((batch, MLP_SIZES[0]))).astype(np.float32),
                 rng.integers(0, MLP_SIZES[-1], batch).astype(np.int64))
                for _ in range(_POOL)]
        xb, yb = pool[0]
        # correctness: one step from the same weights must give the same update
        m = build_mlp(init)
        sess = gc.Session(m["graph"], backend="c")
        feed = {m["x"]: xb, m["y"]: yb}
        loss_g, _ = sess.run([m["loss"], m["train"]], feed)
        ref = NumpyMLP(init, batch)
        loss_n = ref.step(xb, yb)
        diff = _step_diff(sess, m, init, ref, loss_g, loss_n)
        if batch == cfg["mlp_batches"][0]:
            fusions["MLP 784-256-128-10 training step"] = fused_kernels(
                sess.compile([m["loss"], m["train"]]))
        feeds = [{m["x"]: x, m["y"]: y} for x, y in pool]
        fetches = [m["loss"], m["train"]]
        if batch == min(cfg["mlp_batches"], key=lambda b: abs(b - 64)):
            profiles["MLP 784-256-128-10 training step"] = kernel_profile(sess, fetches, feed)
        snap = ref.snapshot()
        tg, tn = alternate(_cycle(lambda f, s=sess, t=fetches: s.run(t, f), feeds),
                           _cycle(lambda xy, r=ref: r.step(*xy), pool),
                           cfg["rounds"], cfg["settle"], cfg["min_round"],
                           resets=(_session_reset(sess, m["graph"]),
                                   lambda r=ref, s=snap: r.restore(s)))
        rows.append(_row("mlp", f"MLP 784-256-128-10 train step, batch {batch}", tg, tn,
                         unit="GFLOP/s", work=_mlp_flops(batch), peak=cfg["peak_gflops"],
                         diff=diff, short=f"MLP step, batch {batch}"))
        rows[-1]["note_extra"] = _finite_note(sess, m["params"], ref.p)
    return rows


def _bench_cnn(cfg: dict, fusions: dict, profiles: dict) -> list[dict]:
    import numpy as np

    import graphc as gc

    batch = 64
    init = _init_cnn()
    rng = np.random.default_rng(4)
    pool = [((INPUT_SCALE * rng.standard_normal((batch, 1, 28, 28))).astype(np.float32),
             rng.integers(0, 10, batch).astype(np.int64)) for _ in range(_POOL)]
    xb, yb = pool[0]
    c = build_cnn(init)
    sess = gc.Session(c["graph"], backend="c")
    feed = {c["x"]: xb, c["y"]: yb}
    loss_g, _ = sess.run([c["loss"], c["train"]], feed)
    ref = NumpyCNN(init)
    loss_n = ref.step(xb, yb)
    diff = _step_diff(sess, c, init, ref, loss_g, loss_n)
    fusions["CNN training step"] = fused_kernels(sess.compile([c["loss"], c["train"]]))
    fetches = [c["loss"], c["train"]]
    profiles["CNN training step"] = kernel_profile(sess, fetches, feed, runs=10)
    snap = ref.snapshot()
    tg, tn = alternate(_cycle(lambda f: sess.run(fetches, f),
                              [{c["x"]: x, c["y"]: y} for x, y in pool]),
                       _cycle(lambda xy: ref.step(*xy), pool),
                       cfg["rounds"], cfg["settle"], cfg["min_round"],
                       resets=(_session_reset(sess, c["graph"]),
                               lambda: ref.restore(snap)))
    row = _row("cnn", f"CNN 1x28x28 c8-p-c16-p-d10 train step (SGD), batch {batch}", tg, tn,
               unit="GFLOP/s", work=_cnn_flops(batch), peak=cfg["peak_gflops"], diff=diff,
               short=f"CNN step, batch {batch}")
    row["note_extra"] = _finite_note(sess, c["params"], ref.p)
    return [row]


_PROBE = ("import time; t0 = time.perf_counter(); import json, sys; "
          "from graphc.tools.bench.groups import _compile_probe; print(json.dumps(_compile_probe(t0)))")


def _compile_probe(t0: float) -> dict:
    """Run in a fresh process: build the MLP training graph and compile it (C backend)."""
    import numpy as np

    import graphc as gc

    t_import = time.perf_counter() - t0
    t = time.perf_counter()
    m = build_mlp()
    t_graph = time.perf_counter() - t
    t = time.perf_counter()
    sess = gc.Session(m["graph"], backend="c")
    compiled = sess.compile([m["loss"], m["train"]])
    t_compile = time.perf_counter() - t
    feed = {m["x"]: np.zeros((64, MLP_SIZES[0]), np.float32), m["y"]: np.zeros(64, np.int64)}
    t = time.perf_counter()
    sess.run([m["loss"], m["train"]], feed)
    t_first = time.perf_counter() - t
    exe = compiled.executable
    return {"import_s": t_import, "graph_s": t_graph, "compile_s": t_compile,
            "executable_compile_s": getattr(exe, "compile_seconds", None),
            "first_step_s": t_first, "cached": getattr(exe, "build_info", {}).get("cached"),
            "kernels": len(getattr(exe, "kernel_list", []))}


def _probe(cache: str) -> dict:
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


def _bench_compile(cfg: dict) -> list[dict]:
    cold_runs, warm_runs = cfg["compile_runs"]
    cold, warm = [], []
    with tempfile.TemporaryDirectory(prefix="graphc-bench-cache-") as tmp:
        for k in range(cold_runs):
            cold.append(_probe(os.path.join(tmp, f"cold{k}")))
        for _ in range(warm_runs):
            warm.append(_probe(os.path.join(tmp, "cold0")))
    rows = []
    for label, runs, want in (("cold (fresh GRAPHC_CACHE_DIR, gcc runs)", cold, False),
                              ("warm (new process, same cache)", warm, True)):
        med = {k: statistics.median(r[k] for r in runs)
               for k in ("import_s", "graph_s", "compile_s", "process_s", "first_step_s")}
        start = med["graph_s"] + med["compile_s"]
        hits = sum(1 for r in runs if r["cached"] is want)
        rows.append({
            "group": "compile", "name": f"MLP train-step compile, {label}",
            "graphc_s": start, "numpy_s": None, "ratio": None,
            "graphc_samples": [r["graph_s"] + r["compile_s"] for r in runs],
            "detail": med, "runs": len(runs),
            "note": (f"graph {med['graph_s'] * 1e3:.0f} ms + Session.compile "
                     f"{med['compile_s'] * 1e3:.0f} ms; whole process {med['process_s']:.2f} s "
                     f"(import graphc {med['import_s']:.2f} s, first step "
                     f"{med['first_step_s'] * 1e3:.1f} ms); cache "
                     f"{'hit' if want else 'miss'} in {hits}/{len(runs)}; {len(runs)} runs"),
        })
    return rows


def _row(group: str, name: str, tg: list[float], tn: list[float], unit: str, work: float,
         peak: float | None, diff: float | None, short: str | None = None) -> dict:
    mg, mn = statistics.median(tg), statistics.median(tn)
    rate_g, rate_n = work / mg / 1e9, work / mn / 1e9
    if unit == "GB/s":
        of = f"{rate_g / peak:.0%} / {rate_n / peak:.0%} of copy bandwidth" if peak else ""
    else:
        of = f"{rate_g / peak:.0%} / {rate_n / peak:.0%} of base-clock peak" if peak else ""
    return {"group": group, "name": name, "short": short or name, "graphc_s": mg,
            "numpy_s": mn, "ratio": mn / mg, "graphc_samples": tg, "numpy_samples": tn, "unit": unit,
            "graphc_rate": rate_g, "numpy_rate": rate_n, "spread": (_spread(tg), _spread(tn)),
            "max_rel_diff": diff, "note": of}
