"""Data-parallel scaling on this machine: one training step at 1 and at 2 MPI processes.

``python -m graphc.tools.bench.distributed [--batch 64] [--rounds 3] [--json FILE]``

For the bench's MLP (784-256-128-10) and CNN (:mod:`.models`), C backend, one global
batch ``B``: one process runs the step on ``B`` rows (no communicator); two processes
(``mpirun -np 2``, :mod:`graphc.distributed.launch`) run it on ``B/2`` rows each with
``comm=MPI.COMM_WORLD`` (the gradient allreduce inside the step). The 1- and
2-process jobs alternate (1 2 1 2 ...), ``--rounds`` of each, every job timing
``--steps`` steps after a warm-up; the table has the medians, the speedup T1/T2, the
scaling efficiency T1/(2 T2), and from ``Session.profile`` of the 2-process step the
time and share of its allreduce kernels and the bandwidth they reached (bytes / time).

Every process runs its kernels on ``--threads`` OpenMP threads (default 1: two
processes on a 2-core machine), the 1-process baseline too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from ...distributed import launch

MODELS = ("mlp", "cnn")


def _worker(batch: int, steps: int, out: str) -> None:
    """One job (run under mpirun, or alone): time each model's step, write JSON on rank 0."""
    from mpi4py import MPI

    import graphc as gc
    from graphc.tools.bench.models import build_cnn, build_mlp, init_cnn, init_mlp

    comm = MPI.COMM_WORLD
    size = comm.Get_size()
    rows = {}
    for name in MODELS:
        if name == "mlp":
            model = build_mlp(init_mlp())
            shape = (batch // size, 784)
        else:
            model = build_cnn(init_cnn())
            shape = (batch // size, 1, 28, 28)
        sess = gc.Session(model["graph"], backend="c", comm=comm if size > 1 else None)
        rng = np.random.default_rng(comm.Get_rank())
        feed = {model["x"]: (0.1 * rng.standard_normal(shape)).astype(np.float32),
                model["y"]: rng.integers(0, 10, shape[0]).astype(np.int64)}
        fetches = [model["loss"], model["train"]]
        for _ in range(10):
            sess.run(fetches, feed)
        comm.Barrier()
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            sess.run(fetches, feed)
            times.append(time.perf_counter() - t)
        prof = sess.profile(fetches, feed, runs=max(10, steps // 5))
        reduce_rows = [r for r in prof.rows if "allreduce" in r["name"]]
        compiled = sess.compile(fetches)
        moved = sum(n.shape[0] * 4 for n in compiled.program.nodes if n.op.name == "allreduce_mean")
        params = sum(int(np.prod(v.shape)) for v in model["params"])
        rows[name] = {"step_ms": 1e3 * float(np.median(times)), "params": params,
                      "allreduce_ms": 1e3 * sum(r["seconds"] for r in reduce_rows),
                      "profile_step_ms": 1e3 * prof.total_seconds, "allreduce_bytes": moved}
    if comm.Get_rank() == 0:
        with open(out, "w") as f:
            json.dump({"size": size, "batch": batch, "rows": rows}, f)


def _job(n: int, args, folder: str, k: int) -> dict:
    out = os.path.join(folder, f"job{n}-{k}.json")
    argv = [sys.executable, "-m", "graphc.tools.bench.distributed", "--worker", "--json", out,
            "--batch", str(args.batch), "--steps", str(args.steps)]
    cmd = launch.mpirun(n, argv)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    subprocess.run(cmd, check=True, env=env, timeout=600)
    with open(out) as f:
        return json.load(f)


def table(runs: dict[int, list[dict]]) -> str:
    """The markdown table of the medians over the rounds."""
    lines = ["| model | params | global batch | 1 process ms | 2 processes ms | speedup | "
             "efficiency | allreduce ms (share) | allreduce MB | GB/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    def med(n: int, name: str, key: str) -> float:
        return float(np.median([r["rows"][name][key] for r in runs[n]]))

    for name in MODELS:
        t1, t2 = med(1, name, "step_ms"), med(2, name, "step_ms")
        ar, prof = med(2, name, "allreduce_ms"), med(2, name, "profile_step_ms")
        mb = runs[2][0]["rows"][name]["allreduce_bytes"] / 1e6
        lines.append(f"| {name} | {runs[1][0]['rows'][name]['params']:,} | {runs[1][0]['batch']} | "
                     f"{t1:.3f} | {t2:.3f} | {t1 / t2:.2f} | {t1 / (2 * t2):.0%} | "
                     f"{ar:.3f} ({ar / prof:.0%}) | {mb:.2f} | {mb / max(ar, 1e-9):.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="global batch (even)")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per job")
    parser.add_argument("--rounds", type=int, default=3, help="1- and 2-process jobs each")
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads per process")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.batch, args.steps, args.json)
        return 0
    why = launch.problem()
    if why:
        print(f"distributed benchmark: {why}", file=sys.stderr)
        return 2
    runs: dict[int, list[dict]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as folder:
        for k in range(args.rounds):
            for n in (1, 2):
                runs[n].append(_job(n, args, folder, k))
    text = table(runs)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": runs, "table": text}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
