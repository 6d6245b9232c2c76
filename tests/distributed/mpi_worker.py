"""Run by the distributed tests under ``mpirun -np 2``: ``mpi_worker.py BACKEND OUTDIR``.

Every rank runs the same scenarios and writes what it saw to ``OUTDIR/rank<r>.json``
(rank 0 also compares with one process training on the whole batch); the tests read
the files. Kept to tiny float64 models so a run takes a few seconds.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import numpy as np
from mpi4py import MPI

import graphc as gc

COMM = MPI.COMM_WORLD
RANK, SIZE = COMM.Get_rank(), COMM.Get_size()
B, STEPS = 8, 4  # global batch, steps


def model(opt_name: str, dtype: str = "float64", init_seed: int = 0):
    rng = np.random.default_rng(init_seed)
    with gc.Graph(seed=1) as g:
        x = gc.placeholder((None, 5), dtype=dtype, name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        w1 = gc.variable(rng.normal(size=(5, 7)).astype(dtype), name="W1")
        b1 = gc.variable(rng.normal(size=7).astype(dtype), name="b1")
        w2 = gc.variable(rng.normal(size=(7, 3)).astype(dtype), name="W2")
        loss = gc.mean(gc.softmax_cross_entropy(gc.tanh(x @ w1 + b1) @ w2, y))
        opt = gc.optim.SGD(0.1, momentum=0.9) if opt_name == "sgd" else gc.optim.Adam(0.01)
        train = opt.minimize(loss)
        mean_loss = gc.distributed.allreduce_mean(loss)
    return g, x, y, loss, mean_loss, train


def data(step: int, dtype: str = "float64"):
    rng = np.random.default_rng(100 + step)
    return rng.normal(size=(B, 5)).astype(dtype), rng.integers(0, 3, size=B)


def mine(a: np.ndarray) -> np.ndarray:
    n = len(a) // SIZE
    return a[RANK * n:(RANK + 1) * n]


def state(sess, g) -> dict[str, np.ndarray]:
    return {v.name: sess.get_value(v) for v in g.variables()}


def equivalence(backend: str, opt_name: str, dtype: str = "float64") -> dict:
    # each rank starts from other values: the Session must broadcast rank 0's
    g, x, y, loss, mean_loss, train = model(opt_name, dtype, init_seed=RANK)
    sess = gc.Session(g, backend=backend, comm=COMM)
    losses = []
    for k in range(STEPS):
        xb, yb = data(k, dtype)
        ml, _ = sess.run([mean_loss, train], {x: mine(xb), y: mine(yb)})
        losses.append(float(ml))
    out = state(sess, g)
    result = {"losses": losses, "step": sess.step}
    gathered = COMM.gather(out, root=0)
    if RANK == 0:
        ref_g, rx, ry, rloss, _, rtrain = model(opt_name, dtype, init_seed=0)
        ref = gc.Session(ref_g, backend=backend)
        ref_losses = []
        for k in range(STEPS):
            xb, yb = data(k, dtype)
            ref_losses.append(float(ref.run([rloss, rtrain], {rx: xb, ry: yb})[0]))
        want = state(ref, ref_g)
        result["max_rel_err"] = max(
            float(np.max(np.abs(out[k] - want[k])) / max(np.max(np.abs(want[k])), 1e-300))
            for k in want)
        result["loss_err"] = max(abs(a - b) for a, b in zip(losses, ref_losses))
        result["ranks_identical"] = all(
            all(np.array_equal(o[k], out[k]) for k in out) for o in gathered)
        result["variables"] = sorted(want)
    return result


def failures(backend: str, check_numerics: bool = False) -> dict:
    g, x, y, loss, mean_loss, train = model("adam")
    sess = gc.Session(g, backend=backend, comm=COMM, check_numerics=check_numerics)
    xb, yb = data(0)
    sess.run(train, {x: mine(xb), y: mine(yb)})  # compiled, one good step
    before, step = state(sess, g), sess.step
    result = {}
    cases = {
        # a feed error before the step starts (rank 1 only)
        "bad_feed": lambda: {x: mine(xb)[:, :4] if RANK == 1 else mine(xb), y: mine(yb)},
        # a failure inside the step: a label out of range (rank 1 only)
        "bad_label": lambda: {x: mine(xb), y: mine(yb) + (7 if RANK == 1 else 0)},
    }
    if check_numerics:  # a NaN in rank 1's rows, found by the check of the first value
        cases = {"nan_feed": lambda: {x: mine(xb) * (np.nan if RANK == 1 else 1.0),
                                      y: mine(yb)}}
    for name, feed in cases.items():
        try:
            sess.run([mean_loss, train], feed())
            result[name] = {"raised": None}
        except gc.GraphcError as exc:
            result[name] = {"raised": type(exc).__name__, "message": str(exc)}
        now = state(sess, g)
        result[name]["unchanged"] = all(np.array_equal(now[k], before[k]) for k in before)
        result[name]["step_unchanged"] = sess.step == step
    sess.run(train, {x: mine(xb), y: mine(yb)})  # the ranks still agree afterwards
    after = state(sess, g)
    gathered = COMM.gather(after, root=0)
    if RANK == 0:
        result["identical_after"] = all(
            all(np.array_equal(o[k], after[k]) for k in after) for o in gathered)
    return result


def late_failure(backend: str) -> dict:
    """A check that fails on rank 1 only, in a kernel after the last allreduce (check_numerics
    keeps the program's order: the train fetch's nodes, then the sum's)."""
    g, x, y, loss, mean_loss, train = model("sgd")
    with g:
        z = gc.placeholder((None,), dtype="float64", name="z")
        total = gc.sum(z * 2.0)
    sess = gc.Session(g, backend=backend, comm=COMM, check_numerics=True)
    xb, yb = data(0)
    z_ok = np.ones(B // SIZE)
    sess.run([train, total], {x: mine(xb), y: mine(yb), z: z_ok})
    before, step = state(sess, g), sess.step
    result = {}
    try:
        sess.run([train, total], {x: mine(xb), y: mine(yb), z: z_ok * (np.nan if RANK else 1)})
        result["raised"] = None
    except gc.GraphcError as exc:
        result["raised"], result["message"] = type(exc).__name__, str(exc)
    now = state(sess, g)
    result["unchanged"] = all(np.array_equal(now[k], before[k]) for k in before)
    result["step_unchanged"] = sess.step == step
    if sess.backend == "c":
        result["agrees_in_c"] = "gc_mpi_agree(g, code" in sess.compile([train, total]).source
    return result


def checkpoint(backend: str, outdir: str) -> dict:
    g, x, y, loss, mean_loss, train = model("sgd", init_seed=RANK)
    sess = gc.Session(g, backend=backend, comm=COMM)
    xb, yb = data(0)
    sess.run(train, {x: mine(xb), y: mine(yb)})
    solo = float(sess.run(loss, {x: xb, y: yb})) if RANK == 0 else None  # rank 0 alone
    path = os.path.join(outdir, "model.ckpt")
    saved = state(sess, g)
    sess.save(path)
    for v in g.variables():  # clobber: load must bring rank 0's file back everywhere
        sess.set_value(v, np.full(v.shape, RANK + 5.0))
    sess.step = 0
    sess.load(path)
    now = state(sess, g)
    result = {"restored": all(np.array_equal(now[k], saved[k]) for k in saved),
              "step": sess.step, "solo_eval": bool(solo is None or np.isfinite(solo))}
    try:
        sess.load(os.path.join(outdir, "missing.ckpt"))
        result["missing"] = None
    except gc.GraphcError as exc:
        result["missing"] = type(exc).__name__
    return result


def main() -> None:
    backend, outdir = sys.argv[1], sys.argv[2]
    result: dict = {"rank": RANK, "size": SIZE}
    try:
        for opt in ("sgd", "adam"):
            result[f"equivalence_{opt}"] = equivalence(backend, opt)
        result["equivalence_float32"] = equivalence(backend, "adam", "float32")
        result["failures"] = failures(backend)
        result["numerics"] = failures(backend, check_numerics=True)
        result["late_failure"] = late_failure(backend)
        result["checkpoint"] = checkpoint(backend, outdir)
    except Exception:
        result["error"] = traceback.format_exc()
        with open(os.path.join(outdir, f"rank{RANK}.json"), "w") as f:
            json.dump(result, f, indent=1)
        COMM.Abort(1)
    with open(os.path.join(outdir, f"rank{RANK}.json"), "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
