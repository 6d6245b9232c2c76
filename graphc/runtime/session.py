"""Session: owns variable values and runs compiled fetch sets.

Example::

    sess = gc.Session(g, backend="numpy")
    l, _ = sess.run([loss, train], {x: xb, y: yb})
    sess.save("model.npz")
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from ..backends import get_backend
from ..ir.errors import DTypeError, FeedError, GraphcError, ShapeError
from ..ir.graph import Graph, Kind, RunContext, Tensor
from ..ir.program import Program
from ..ops.state import check_single_writer
from ..transforms.passes import optimize
from . import feeds as _feeds
from .profile import Profile

log = logging.getLogger("graphc")


class _StepContext(RunContext):
    def __init__(self, step: int, batch: int | None) -> None:
        super().__init__(step, batch)
        self.pending: dict[Tensor, np.ndarray] = {}


class Compiled:
    """One fetch set, optimized and compiled by a backend.

    ``source`` (generated C, or None for the NumPy backend), ``kernels`` (each
    kernel's name, kind and the graph nodes it fused) and ``arena_bytes(batch)``
    show what a compiled backend made of the fetch set; ``gc.to_dot(compiled)``
    draws it with one cluster per fused kernel.
    """

    def __init__(self, fetches: list[Tensor], program: Program, executable) -> None:
        self.fetches = fetches
        self.program = program
        self.executable = executable
        self.placeholders = program.placeholders
        self.variables = program.variables
        self.needs_batch = any(None in n.shape for n in program.nodes)
        # a backend whose outputs are new arrays each run needs no defensive copy
        self.fresh_outputs = getattr(executable, "fresh_outputs", False)

    @property
    def source(self) -> str | None:
        return getattr(self.executable, "source", None)

    @property
    def kernels(self) -> list[dict]:
        return list(getattr(self.executable, "kernel_list", []))

    def arena_bytes(self, batch: int = 1) -> int:
        """Bytes of the intermediate-value arena for a batch size (0 for NumPy)."""
        fn = getattr(self.executable, "arena_bytes", None)
        return int(fn(batch)) if fn else 0


class Session:
    """Runs a graph's fetch sets on a backend; owns the variables' values.

    ``backend`` is ``"numpy"`` (reference), ``"c"`` or ``"auto"``
    (the fastest available; ``session.backend_choice`` says what it picked).
    ``check_numerics=True`` raises on the first NaN/Inf, naming the node and
    the line that defined it.
    """

    def __init__(self, graph: Graph, backend: str = "numpy", check_numerics: bool = False) -> None:
        if not isinstance(graph, Graph):
            raise GraphcError(f"Session: expected a gc.Graph, got {type(graph).__name__}")
        self.graph = graph
        self._backend, self.backend_choice = get_backend(backend)
        self.backend = self._backend.name
        if hasattr(self._backend, "check_numerics"):
            self._backend.check_numerics = check_numerics
        if backend == "auto":
            log.info(self.backend_choice)
        self.step = 0
        self._values: dict[Tensor, np.ndarray] = {}
        self._compiled: dict[tuple[int, ...], Compiled] = {}

    # -- variables ---------------------------------------------------------------------
    def _state(self, var: Tensor) -> np.ndarray:
        if var not in self._values:
            self._values[var] = _aligned_copy(var.value, var.value.dtype)
        return self._values[var]

    def _check_var(self, var: Tensor) -> None:
        if not isinstance(var, Tensor) or var.op.kind is not Kind.VARIABLE or var.graph is not self.graph:
            raise GraphcError(f"{var!r} is not a variable of this session's graph")

    def get_value(self, var: Tensor) -> np.ndarray:
        """A copy of the current value of ``var``."""
        self._check_var(var)
        return self._state(var).copy()

    def set_value(self, var: Tensor, value: Any) -> None:
        """Overwrite ``var`` (same shape; converted to its dtype)."""
        self._check_var(var)
        arr = np.asarray(value)
        if arr.shape != var.shape:
            raise ShapeError(f"set_value: {var.name} has shape {var.shape}, got {arr.shape}")
        if arr.dtype.kind not in "fiub" or (arr.dtype.kind == "f" and var.dtype.startswith("int")):
            raise DTypeError(f"set_value: cannot store {arr.dtype} in {var.name} ({var.dtype})")
        self._values[var] = _aligned_copy(arr, var.dtype)

    def save(self, path: str) -> None:
        """Write every variable (optimizer state included) and the step to ``.npz``."""
        arrays = {v.name: self._state(v) for v in self.graph.variables()}
        arrays["__step__"] = np.array(self.step)
        np.savez(path, **arrays)

    def load(self, path: str) -> None:
        """Restore what :meth:`save` wrote; all-or-nothing on a mismatch."""
        with np.load(path) as data:
            new = {}
            for v in self.graph.variables():
                if v.name not in data:
                    raise GraphcError(f"load: {path} has no value for variable {v.name}")
                arr = data[v.name]
                if arr.shape != v.shape:
                    raise ShapeError(f"load: {v.name} has shape {v.shape} in the graph but "
                                     f"{arr.shape} in {path}")
                new[v] = _aligned_copy(arr, v.dtype)
            step = int(data["__step__"]) if "__step__" in data else self.step
        self._values.update(new)
        self.step = step

    # -- running -----------------------------------------------------------------------
    def compile(self, fetches: list[Tensor]) -> Compiled:
        """Optimize and compile a fetch set (done once per distinct fetch list).

        Example::

            compiled = sess.compile([loss, train])
            print(compiled.source)            # generated C (C backend)
            for k in compiled.kernels: print(k["name"], k["nodes"])
            compiled.arena_bytes(64)          # scratch bytes at batch 64
        """
        fetches = [fetches] if isinstance(fetches, Tensor) else list(fetches)
        key = tuple(f.id for f in fetches)
        if key not in self._compiled:
            for f in fetches:
                if not isinstance(f, Tensor):
                    raise GraphcError(f"run: fetch {f!r} is not a graph tensor")
                if f.graph is not self.graph:
                    raise GraphcError(f"run: fetch {f.name} belongs to another graph")
            check_single_writer([f for f in fetches if f.dtype is None])
            program = optimize(Program(fetches))
            self._compiled[key] = Compiled(fetches, program, self._backend.compile(program))
        return self._compiled[key]

    def run(self, fetches, feed: dict | None = None, training: bool | None = None):
        """Run ``fetches`` (a tensor, a list/tuple of tensors or a dict of them).

        Returns NumPy arrays in the same structure; update ops give ``None``.
        ``training`` feeds the graph's learning phase (dropout, BatchNorm); by
        default it is True exactly when an update op is fetched.
        """
        flat, pack = _flatten(fetches)
        compiled, arrays, batch = self._prepare(flat, feed, training)
        return pack(self._step(flat, compiled, arrays, batch))

    def profile(self, fetches, feed: dict | None = None, runs: int = 10,
                training: bool | None = None) -> Profile:
        """Time each kernel of a fetch set (each node on the NumPy backend).

        Runs the step ``runs`` times after one warm-up run and reports the median
        time of every kernel and of the whole call; afterwards every variable and
        the step counter are restored, so profiling a training step does not
        train. Example::

            prof = sess.profile([loss, train], {x: xb, y: yb})
            print(prof)                  # kernels in run order, median us and share
            prof.rows[0]["nodes"]        # the graph nodes the first kernel fused
        """
        if runs < 1:
            raise GraphcError(f"profile: runs must be >= 1, got {runs}")
        flat, _ = _flatten(fetches)
        compiled, arrays, batch = self._prepare(flat, feed, training)
        units = compiled.executable.timed_units
        saved = {v: self._state(v).copy() for v in compiled.variables}
        step = self.step
        per_unit, totals = [], []
        try:
            for k in range(runs + 1):
                seconds = np.zeros(len(units))
                t0 = time.perf_counter()
                self._step(flat, compiled, arrays, batch, seconds)
                if k:  # the first run warms caches and thread pools
                    totals.append(time.perf_counter() - t0)
                    per_unit.append(seconds)
        finally:
            for v, value in saved.items():
                self._values[v][...] = value  # in place: compiled steps keep the same arrays
            self.step = step
        return Profile.from_runs(self.backend, batch, units, per_unit, totals)

    def _prepare(self, flat: list, feed: dict | None, training: bool | None):
        """Compile ``flat`` and check ``feed``: (compiled, feed arrays, batch size)."""
        compiled = self.compile(flat)
        feed = _feeds.resolve(self.graph, feed)
        defaults = {}
        phase = self.graph.phase
        if phase is not None and phase not in feed:
            if training is None:
                training = any(f.dtype is None for f in flat)
            defaults[phase] = np.array(bool(training))
        # every fed placeholder is checked (and may fix the batch size), needed or not
        extra = [p for p in feed if not any(p is q for q in compiled.placeholders)]
        arrays, batch = _feeds.check(compiled.placeholders + extra, feed, defaults)
        if batch is None and compiled.needs_batch:
            raise FeedError("run: the batch size (the None dimension) is unknown: feed a "
                            "placeholder that has a None dimension")
        return compiled, arrays, batch

    def _step(self, flat: list, compiled: Compiled, arrays: dict, batch: int | None,
              seconds: np.ndarray | None = None) -> list:
        ctx = _StepContext(self.step, batch)
        state = {v: self._state(v) for v in compiled.variables}
        if seconds is None:
            outputs = compiled.executable.run(arrays, state, ctx)
        else:
            outputs = compiled.executable.run(arrays, state, ctx, seconds=seconds)
        for var, value in ctx.pending.items():  # commit only after the whole step succeeded
            self._values[var] = _aligned_copy(value, var.dtype)
        self.step += 1
        if compiled.fresh_outputs:
            return [None if f.dtype is None else o for f, o in zip(flat, outputs)]
        return [None if f.dtype is None else np.array(o, copy=True)
                for f, o in zip(flat, outputs)]

    def __repr__(self) -> str:
        return f"<graphc.Session backend={self.backend!r} step={self.step}>"


def _aligned_copy(value, dtype) -> np.ndarray:
    """A C-contiguous copy of ``value`` whose data starts on a 64-byte (cache line)
    boundary: threads of a compiled step that update disjoint rows of a variable then
    never write to one cache line (NumPy's own allocations are only 16-byte aligned)."""
    a = np.asarray(value, dtype=dtype)
    buf = np.empty(a.nbytes + 64, np.uint8)
    start = -buf.ctypes.data % 64
    out = buf[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def _flatten(fetches):
    if isinstance(fetches, Tensor):
        return [fetches], lambda r: r[0]
    if isinstance(fetches, dict):
        keys = list(fetches)
        return [fetches[k] for k in keys], lambda r: dict(zip(keys, r))
    if isinstance(fetches, (list, tuple)):
        kind = type(fetches)
        return list(fetches), lambda r: kind(r)
    raise GraphcError(f"run: fetches must be a tensor, a list/tuple or a dict, "
                      f"got {type(fetches).__name__}")
