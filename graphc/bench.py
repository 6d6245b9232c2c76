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
    >>> from graphc.bench import bench, parse_args
    >>> result = bench(parse_args(["--quick", "--only", "mlp"]))      # doctest: +SKIP
    >>> [(r["name"], r["ratio"]) for r in result["rows"]]              # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

__all__ = ["GROUPS", "add_arguments", "bench", "main", "parse_args", "run"]

#: Benchmark groups, in the order they run.
GROUPS = ("sgemm", "elementwise", "mlp", "cnn", "compile")
_ALIASES = {"ew": "elementwise", "gemm": "sgemm", "matmul": "sgemm", "compile-time": "compile"}
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_CHILD_MARK = "_GRAPHC_BENCH_CHILD"

MLP_SIZES = (784, 256, 128, 10)
MLP_LR, MLP_MOMENTUM = 0.01, 0.9
CNN_LR, CNN_MOMENTUM = 0.01, 0.9
EW_SHAPE = (4096, 1024)
#: Training inputs are N(0, INPUT_SCALE**2): with unit-variance 784-feature inputs the
#: first layer's curvature (~|x|^2 = 784) times lr 0.01 exceeds 2 and the benchmark
#: loops (thousands of steps over a few batches) diverge to NaN.
INPUT_SCALE = 0.1


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


def _affinity() -> set[int]:
    """CPUs this process may run on (all of them where the OS cannot tell)."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def _cpu_list(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-")
            cpus.update(range(int(lo), int(hi) + 1))
        elif part:
            cpus.add(int(part))
    return cpus


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
        cmd = [sys.executable, "-m", "graphc.bench", *_argv_of(args)]
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
    """``python -m graphc.bench`` and ``benchmarks/bench.py``."""
    return run(parse_args(argv))


# =============================================================================== timing
def alternate(fa, fb, rounds: int, settle: float, min_s: float,
              resets=(None, None)) -> tuple[list[float], list[float]]:
    """Seconds per call of ``fa`` and ``fb`` in each round, alternating A B A B ...

    Both are called once first (compilation, first touch, thread pools). Each round
    sleeps ``settle`` seconds (an OpenBLAS or libgomp pool still spinning after the
    other implementation's round would steal a core), calls the implementation's
    ``resets`` entry if any (untimed: restores training state, see :func:`_bench_mlp`),
    makes one untimed call to wake its own pool, then times ``reps`` calls; ``reps`` is
    chosen per implementation so that a round lasts about ``min_s``.
    """
    fa()
    fb()
    reps = []
    for f in (fa, fb):
        t = time.perf_counter()
        f()
        one = time.perf_counter() - t
        reps.append(max(1, min(10000, int(min_s / max(one, 1e-7)))))
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(rounds):
        for f, k, out, reset in ((fa, reps[0], ta, resets[0]), (fb, reps[1], tb, resets[1])):
            if settle > 0:
                time.sleep(settle)
            if reset is not None:
                reset()
            f()
            t = time.perf_counter()
            for _ in range(k):
                f()
            out.append((time.perf_counter() - t) / k)
    return ta, tb


def _spread(ts: list[float]) -> float | None:
    """Interquartile range over the median (0.05 = rounds within about +-2.5%)."""
    if len(ts) < 4:
        return None
    q = statistics.quantiles(ts, n=4)
    return (q[2] - q[0]) / statistics.median(ts)


def _rel(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


# =============================================================================== machine
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_ghz() -> float | None:
    """Nominal clock: the ``cpu MHz`` of /proc/cpuinfo (the TSC rate on most VMs)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return float(line.split(":", 1)[1]) / 1000.0
    except (OSError, ValueError):
        pass
    return None


def _git_revision(package_file: str) -> str:
    """`` (git abc1234, modified)`` when graphc runs from a git checkout, else ``""``."""
    folder = os.path.dirname(os.path.abspath(package_file))
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder, text=True,
                             capture_output=True, timeout=5, check=False)
        if rev.returncode != 0:
            return ""
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=folder, text=True, capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return f" (git {rev.stdout.strip()}{', modified' if dirty.stdout.strip() else ''})"


def _loadavg() -> str:
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except (AttributeError, OSError):
        return "?"


def _flops_per_cycle() -> tuple[int, str]:
    """float32 FLOP per cycle and core, assuming two FMA units."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line
                    break
    except OSError:
        pass
    words = set(flags.split())
    if "avx512f" in words:
        return 64, "AVX-512, 2 FMA/cycle"
    if "avx2" in words and "fma" in words:
        return 32, "AVX2, 2 FMA/cycle"
    return 16, "SSE, 2 ops/cycle"


def thread_report() -> dict:
    """What the process actually uses: affinity, env, BLAS and OpenMP thread counts."""
    info = {"affinity": sorted(_affinity()), "env": {v: os.environ.get(v) for v in _THREAD_VARS}}
    try:
        from threadpoolctl import threadpool_info

        pools = threadpool_info()
        info["pools"] = [f"{p.get('internal_api', p.get('user_api'))} "
                         f"({os.path.basename(p.get('filepath', '?'))}): {p.get('num_threads')}"
                         for p in pools]
        info["blas_threads"] = next((p["num_threads"] for p in pools
                                     if p.get("user_api") == "blas"), None)
        info["omp_threads"] = next((p["num_threads"] for p in pools
                                    if p.get("user_api") == "openmp"), None)
    except Exception:  # noqa: BLE001 - threadpoolctl is optional
        info["pools"] = []
        info["blas_threads"] = None
        try:
            import ctypes

            info["omp_threads"] = ctypes.CDLL("libgomp.so.1").omp_get_max_threads()
        except OSError:
            info["omp_threads"] = None
    return info


def _copy_bandwidth(nbytes: int, rounds: int) -> float:
    """GB/s of ``np.copyto`` (bytes read + written) on arrays of ``nbytes``: one thread."""
    import numpy as np

    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    times = []
    for _ in range(max(3, rounds)):
        t = time.perf_counter()
        for _ in range(5):
            np.copyto(dst, src)
        times.append((time.perf_counter() - t) / 5)
    return 2 * nbytes / statistics.median(times) / 1e9


# =============================================================================== graphs
def _init_mlp(seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    params = []
    for a, b in zip(MLP_SIZES[:-1], MLP_SIZES[1:]):
        params.append((rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(np.float32))
        params.append((0.01 * rng.standard_normal(b)).astype(np.float32))
    return params


def build_mlp(params=None) -> dict:
    """The 784-256-128-10 ReLU MLP, mean softmax cross-entropy, SGD momentum 0.9."""
    import graphc as gc

    params = _init_mlp() if params is None else params
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, MLP_SIZES[0]), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        variables, h = [], x
        for i in range(len(MLP_SIZES) - 1):
            w = gc.variable(params[2 * i], name=f"W{i}")
            b = gc.variable(params[2 * i + 1], name=f"b{i}")
            variables += [w, b]
            h = h @ w + b
            if i < len(MLP_SIZES) - 2:
                h = gc.relu(h)
        loss = gc.mean(gc.softmax_cross_entropy(h, y))
        opt = gc.optim.SGD(MLP_LR, momentum=MLP_MOMENTUM)
        train = opt.minimize(loss)
    return dict(graph=g, x=x, y=y, loss=loss, train=train, params=variables,
                slots=_momentum_slots(opt, variables))


def _momentum_slots(opt, variables) -> list:
    """The optimizer's momentum buffer of each variable (None where it cannot be found)."""
    state = getattr(opt, "state", {})
    return [next((s for name, s in state.items() if name.endswith(f"/{v.name}/momentum")), None)
            for v in variables]


class _NumpyModel:
    """Weights ``p`` and momentum buffers ``v`` of a hand-written NumPy model."""

    p: list
    v: list

    def snapshot(self) -> list:
        return [a.copy() for a in self.p + self.v]

    def restore(self, snap: list) -> None:
        for dst, src in zip(self.p + self.v, snap):
            dst[...] = src


class NumpyMLP(_NumpyModel):
    """The same MLP step by hand: preallocated buffers, matmul(out=), in-place updates."""

    def __init__(self, params, batch: int) -> None:
        import numpy as np

        self.np = np
        self.p = [a.copy() for a in params]
        self.v = [np.zeros_like(a) for a in params]  # momentum buffers
        self.g = [np.empty_like(a) for a in params]
        sizes, f32 = MLP_SIZES, np.float32
        self.h = [np.empty((batch, s), f32) for s in sizes[1:]]      # layer outputs
        self.d = [np.empty((batch, s), f32) for s in sizes[1:]]      # their gradients
        self.mask = [np.empty((batch, s), bool) for s in sizes[1:-1]]
        self.rowmax = np.empty(batch, f32)
        self.rowsum = np.empty(batch, f32)
        self.rows = np.arange(batch)
        self.lr = f32(MLP_LR)
        self.mom = f32(MLP_MOMENTUM)

    def step(self, x, y) -> float:
        np, p, g, v, h, d = self.np, self.p, self.g, self.v, self.h, self.d
        n, nl = len(x), len(MLP_SIZES) - 1
        a = x
        for i in range(nl):                                   # forward
            np.matmul(a, p[2 * i], out=h[i])
            h[i] += p[2 * i + 1]
            if i < nl - 1:
                np.maximum(h[i], 0, out=h[i])
            a = h[i]
        z, dz = h[-1], d[-1]                                  # softmax cross-entropy
        np.max(z, axis=1, out=self.rowmax)
        np.subtract(z, self.rowmax[:, None], out=dz)
        np.exp(dz, out=dz)
        np.sum(dz, axis=1, out=self.rowsum)
        picked = z[self.rows, y] - self.rowmax
        loss = float(np.mean(np.log(self.rowsum) - picked))
        dz /= self.rowsum[:, None]
        dz[self.rows, y] -= 1.0
        dz *= np.float32(1.0 / n)
        for i in reversed(range(nl)):                         # backward
            inp = x if i == 0 else h[i - 1]
            np.matmul(inp.T, d[i], out=g[2 * i])
            np.sum(d[i], axis=0, out=g[2 * i + 1])
            if i > 0:
                np.matmul(d[i], p[2 * i].T, out=d[i - 1])
                np.greater(h[i - 1], 0, out=self.mask[i - 1])
                d[i - 1] *= self.mask[i - 1]
        for pk, vk, gk in zip(p, v, g):                       # SGD momentum, in place
            vk *= self.mom
            vk += gk
            np.multiply(vk, self.lr, out=gk)
            pk -= gk
        return loss


_POOL = 8  # distinct batches cycled through by the training-step benchmarks


def _cycle(fn, items):
    """A no-argument callable applying ``fn`` to ``items`` in turn."""
    state = {"k": 0}

    def call():
        k = state["k"]
        state["k"] = (k + 1) % len(items)
        return fn(items[k])

    return call


def _session_reset(sess, graph):
    """A callable restoring every variable (weights, optimizer slots) of ``sess``."""
    snap = {v: sess.get_value(v) for v in graph.variables()}

    def reset():
        for v, a in snap.items():
            sess.set_value(v, a)

    return reset


def _step_diff(sess, model: dict, init: list, ref: _NumpyModel, loss_g, loss_n: float) -> float:
    """Largest relative difference after one step from the same weights: the loss, the
    momentum buffers (= the gradients after one step) and the new weights."""
    diffs = [abs(float(loss_g) - loss_n) / max(abs(loss_n), 1e-30)]
    for v, slot, p0, p, g in zip(model["params"], model["slots"], init, ref.p, ref.v):
        diffs.append(_rel(sess.get_value(v), p))
        if slot is not None:
            diffs.append(_rel(sess.get_value(slot), g))
        else:  # no slot found: the update itself (float32 cancellation makes this coarser)
            diffs.append(_rel(sess.get_value(v) - p0, p - p0))
    return max(diffs)


def _finite_note(sess, variables, arrays) -> str:
    """Empty, or a warning when training diverged while being timed."""
    import numpy as np

    bad = [name for name, ok in (
        ("graphc", all(np.isfinite(sess.get_value(v)).all() for v in variables)),
        ("NumPy", all(np.isfinite(a).all() for a in arrays))) if not ok]
    return f"WARNING: non-finite weights after timing ({', '.join(bad)})" if bad else ""


def _mlp_flops(batch: int) -> float:
    layers = list(zip(MLP_SIZES[:-1], MLP_SIZES[1:]))
    fwd = sum(2.0 * batch * a * b for a, b in layers)
    data_grads = sum(2.0 * batch * a * b for a, b in layers[1:])  # no gradient for the input
    return 2 * fwd + data_grads


def _init_cnn(seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)

    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    return [he((8, 1, 3, 3), 9), np.zeros(8, np.float32),
            he((16, 8, 3, 3), 72), np.zeros(16, np.float32),
            he((16 * 7 * 7, 10), 784), np.zeros(10, np.float32)]


def build_cnn(params=None) -> dict:
    """1x28x28 -> conv8 3x3 p1 + ReLU + pool2 -> conv16 3x3 p1 + ReLU + pool2 -> dense 10."""
    import graphc as gc

    params = _init_cnn() if params is None else params
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 1, 28, 28), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        w1, b1, w2, b2, wd, bd = (gc.variable(a, name=n) for a, n in
                                  zip(params, ("c1/W", "c1/b", "c2/W", "c2/b", "d/W", "d/b")))
        h = gc.relu(gc.conv2d(x, w1, padding=1) + gc.reshape(b1, (1, 8, 1, 1)))
        h = gc.max_pool2d(h, 2)
        h = gc.relu(gc.conv2d(h, w2, padding=1) + gc.reshape(b2, (1, 16, 1, 1)))
        h = gc.max_pool2d(h, 2)
        logits = gc.flatten(h) @ wd + bd
        loss = gc.mean(gc.softmax_cross_entropy(logits, y))
        opt = gc.optim.SGD(CNN_LR, momentum=CNN_MOMENTUM)
        train = opt.minimize(loss)
    params = [w1, b1, w2, b2, wd, bd]
    return dict(graph=g, x=x, y=y, loss=loss, train=train, params=params,
                slots=_momentum_slots(opt, params))


class NumpyCNN(_NumpyModel):
    """The same CNN step in NumPy: graphc.reference.conv for conv and pooling (im2col via
    sliding windows + tensordot), in-place SGD."""

    def __init__(self, params) -> None:
        import numpy as np

        from .reference import conv as ref

        self.np, self.ref = np, ref
        self.p = [a.copy() for a in params]
        self.v = [np.zeros_like(a) for a in params]

    def step(self, x, y) -> float:
        np, ref = self.np, self.ref
        w1, b1, w2, b2, wd, bd = self.p
        n = len(x)
        r1 = ref.conv2d(x, w1, padding=1)
        r1 += b1[:, None, None]
        np.maximum(r1, 0, out=r1)
        p1 = ref.max_pool2d(r1, 2)
        r2 = ref.conv2d(p1, w2, padding=1)
        r2 += b2[:, None, None]
        np.maximum(r2, 0, out=r2)
        p2 = ref.max_pool2d(r2, 2)
        f = p2.reshape(n, -1)
        z = f @ wd
        z += bd
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1)
        loss = float(np.mean(np.log(s) - z[np.arange(n), y]))
        e /= s[:, None]
        e[np.arange(n), y] -= 1.0
        e *= np.float32(1.0 / n)
        g_wd, g_bd = f.T @ e, e.sum(axis=0)
        g_p2 = (e @ wd.T).reshape(p2.shape)
        g_r2 = ref.max_pool2d_backward(r2, g_p2, 2)
        g_r2 *= r2 > 0
        g_b2 = g_r2.sum(axis=(0, 2, 3))
        g_w2 = ref.conv2d_backward_filter(p1, g_r2, (3, 3), padding=1)
        g_p1 = ref.conv2d_backward_data(g_r2, w2, (14, 14), padding=1)
        g_r1 = ref.max_pool2d_backward(r1, g_p1, 2)
        g_r1 *= r1 > 0
        g_b1 = g_r1.sum(axis=(0, 2, 3))
        g_w1 = ref.conv2d_backward_filter(x, g_r1, (3, 3), padding=1)
        lr, mom = np.float32(CNN_LR), np.float32(CNN_MOMENTUM)
        for pk, vk, gk in zip(self.p, self.v, (g_w1, g_b1, g_w2, g_b2, g_wd, g_bd)):
            vk *= mom
            vk += gk
            pk -= lr * vk
        return loss


def _cnn_flops(batch: int) -> float:
    c1 = 2.0 * batch * 8 * 28 * 28 * 1 * 9
    c2 = 2.0 * batch * 16 * 14 * 14 * 8 * 9
    dense = 2.0 * batch * 784 * 10
    return 2 * c1 + 3 * c2 + 3 * dense  # no data gradient for the input image


def fused_kernels(compiled) -> list[dict]:
    """Kernels of a compiled fetch set that hold more than one graph node."""
    exe = getattr(compiled, "executable", compiled)
    return [k for k in getattr(exe, "kernel_list", []) if len(k["nodes"]) > 1]


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


def _bench_mlp(cfg: dict, fusions: dict) -> list[dict]:
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


def _bench_cnn(cfg: dict, fusions: dict) -> list[dict]:
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
          "from graphc.bench import _compile_probe; print(json.dumps(_compile_probe(t0)))")


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


# =============================================================================== report
def _t(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"
    return f"{seconds:.2f} s"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def markdown(result: dict) -> str:
    """The report: configuration, the table, floors and fusions."""
    cfg, th = result["config"], result["threads"]
    lines = [f"## graphc bench: {result['tag']}", "",
             "| benchmark | graphc median | NumPy median | NumPy / graphc | graphc rate | "
             "NumPy rate | spread g / np | max rel diff | note |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        if r["numpy_s"] is None:
            lines.append(f"| {r['name']} | {_t(r['graphc_s'])} | - | - | - | - | - | - | "
                         f"{r['note']} |")
            continue
        note = "; ".join(x for x in (r["note"], r.get("note_extra", "")) if x)
        diff = "-" if r["max_rel_diff"] is None else f"{r['max_rel_diff']:.1e}"
        lines.append(
            f"| {r['name']} | {_t(r['graphc_s'])} | {_t(r['numpy_s'])} | **{r['ratio']:.2f}** | "
            f"{r['graphc_rate']:.1f} {r['unit']} | {r['numpy_rate']:.1f} {r['unit']} | "
            f"{_pct(r['spread'][0])} / {_pct(r['spread'][1])} | {diff} | {note} |")
    omp = th.get("omp_threads")
    lines += [
        "",
        f"Medians of {cfg['rounds']} alternating rounds (graphc, NumPy, graphc, ...) in one "
        f"process, each round >= {cfg['min_round']} s of calls after {cfg['settle']} s of "
        "sleep; NumPy / graphc > 1 means graphc is faster. graphc is timed through "
        "`Session.run` (feed checks, output copies included). 'spread' is the interquartile "
        "range of the rounds over their median. max rel diff: graphc vs NumPy output (sgemm, "
        "elementwise), or one step from the same weights: loss, gradients (momentum buffers) "
        "and new weights (MLP, CNN).",
        "",
        f"Machine: {result['cpu']}, {os.cpu_count()} CPUs, affinity {th['affinity']}; "
        f"threads: OpenMP {omp if omp is not None else '?'}, BLAS "
        f"{th.get('blas_threads') if th.get('blas_threads') is not None else '?'} "
        f"(env {', '.join(f'{k}={v}' for k, v in th['env'].items() if v) or 'unset'}); "
        f"load average {result['loadavg']} at start, {result['loadavg_end']} at the end.",
        (f"Nominal peak {cfg['peak_gflops']:.0f} GFLOP/s = {cfg['n_cores']} core(s) x "
         f"{cfg['ghz']:.2f} GHz (base clock) x {cfg['fpc']} FLOP/cycle ({cfg['fpc_note']}); "
         if cfg["peak_gflops"] else "Nominal peak unknown (no clock in /proc/cpuinfo); ")
        + f"copy bandwidth {cfg['copy_gbs']:.1f} GB/s (one-thread np.copyto of 16 MB, "
        "read + write).",
        f"Python {platform.python_version()}, NumPy {result['numpy']}, graphc "
        f"{result['graphc']}, C flags: {result['cflags']}.",
    ]
    if th.get("pools"):
        lines.append("Thread pools (threadpoolctl): " + "; ".join(th["pools"]) + ".")
    if result["floors"]:
        lines += ["", "### Floors", "", "| floor | measured | status |", "|---|---:|---|"]
        for f in result["floors"]:
            status = {True: "met", False: "**MISSED**", None: "not measured"}[f["met"]]
            lines.append(f"| {f['floor']} | {f['measured']} | {status} |")
    if result["fusions"]:
        lines += ["", "### Fused kernels (more than one graph node)", ""]
        for graph, kernels in result["fusions"].items():
            lines.append(f"- {graph}: {len(kernels)} fused kernels")
            for k in kernels:
                lines.append(f"  - `{k['name']}`: {', '.join(k['nodes'])}")
    return "\n".join(lines) + "\n"


def _floors(rows: list[dict]) -> list[dict]:
    def find(prefix):
        return next((r for r in rows if r["name"].startswith(prefix)), None)

    out = []
    r = find("sgemm n=1024")
    out.append({"floor": "sgemm n=1024 >= 0.5x NumPy", "measured": f"{r['ratio']:.2f}x" if r
                else "-", "met": (r["ratio"] >= 0.5) if r else None})
    r = find("MLP 784-256-128-10 train step, batch 64")
    out.append({"floor": "MLP step, batch 64: faster than NumPy (> 1x)",
                "measured": f"{r['ratio']:.2f}x" if r else "-",
                "met": (r["ratio"] > 1.0) if r else None})
    r = find("MLP train-step compile, cold")
    out.append({"floor": "cold compile of the MLP step < 5 s", "measured": _t(r["graphc_s"]) if r
                else "-", "met": (r["graphc_s"] < 5.0) if r else None})
    r = find("MLP train-step compile, warm")
    out.append({"floor": "warm start of the MLP step < 0.3 s", "measured": _t(r["graphc_s"]) if r
                else "-", "met": (r["graphc_s"] < 0.3) if r else None})
    return out


def plot(result: dict, path: str) -> str | None:
    """Horizontal bars of NumPy / graphc per row (log scale, line at 1)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return None
    rows = [r for r in result["rows"] if r["ratio"] is not None]
    if not rows:
        return None
    import math

    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.5))
    names = [r.get("short", r["name"]) for r in rows][::-1]
    ratios = [r["ratio"] for r in rows][::-1]
    ax.barh(range(len(rows)), ratios, color=["tab:green" if v >= 1 else "tab:red" for v in ratios])
    ax.set_yticks(range(len(rows)), names)
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xscale("log")
    lo = math.floor(math.log2(min(ratios + [1.0]) * 0.9))
    hi = math.ceil(math.log2(max(ratios + [1.0]) * 1.6))
    ticks = [2.0**k for k in range(lo, hi + 1)]
    ax.set_xlim(ticks[0], ticks[-1])
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    for k, v in enumerate(ratios):
        ax.text(v, k, f" {v:.2f}x", va="center", fontsize=8)
    ax.set_xlabel("NumPy time / graphc time (> 1: graphc faster)")
    fig.suptitle(f"graphc (C backend) vs NumPy, {result['tag']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
    t0 = time.perf_counter()
    for group in groups:
        t = time.perf_counter()
        if group == "sgemm":
            new = _bench_sgemm(cfg)
        elif group == "elementwise":
            new = _bench_elementwise(cfg)
        elif group == "mlp":
            new = _bench_mlp(cfg, fusions)
        elif group == "cnn":
            new = _bench_cnn(cfg, fusions)
        else:
            new = _bench_compile(cfg)
        rows += new
        for r in new:
            ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else _t(r["graphc_s"])
            print(f"  {r['name']}: {ratio}", flush=True)
        print(f"  ({group}: {time.perf_counter() - t:.0f} s)", flush=True)
    result = {"tag": tag, "config": cfg, "rows": rows, "fusions": fusions,
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
