"""Session: owns variable values and runs compiled fetch sets.

Example::

    sess = gc.Session(g)                 # compiled C when a compiler is available
    l, _ = sess.run([loss, train], {x: xb, y: yb})
    sess.save("model.npz")

A Session may be shared between threads: it serialises its runs (and compile,
get_value, set_value, save, load) with a lock it holds; see :class:`Session`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import numpy as np

from ..backends import get_backend
from ..distributed import comm as _comm
from ..distributed.rewrite import prepare as _distribute
from ..ir.errors import (
    ArgumentError,
    CheckpointError,
    FeedError,
    GraphcError,
    ShapeError,
    VerifyError,
    at,
    user_site,
)
from ..ir.graph import Graph, Kind, RunContext, Tensor
from ..ir.program import Program
from ..ops.state import check_single_writer
from ..transforms.passes import optimize
from . import checkpoint as _checkpoint
from . import collective as _collective
from . import explain as _explain
from . import fastrun as _fastrun
from . import feeds as _feeds
from . import verify as _verify
from .explain import Explanation
from .profile import Profile
from .verify import VerifyReport

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

    def __init__(self, fetches: list[Tensor], program: Program, executable,
                 reads: list[Tensor] | None = None) -> None:
        self.fetches = fetches
        self.program = program
        self.executable = executable
        self.placeholders = program.placeholders
        self.variables = program.variables
        # ids of the placeholders the fetches depend on in the user's graph (optimization
        # may drop one whose value is unused but whose shape gives the batch size)
        self.reads = {id(p) for p in (program.placeholders if reads is None else reads)}
        self.needs_batch = any(None in n.shape for n in program.nodes)
        # a backend whose outputs are new arrays each run needs no defensive copy
        self.fresh_outputs = getattr(executable, "fresh_outputs", False)
        self.last_batch: int | None = None  # the batch size of its latest run (explain's default)
        self.debug = None  # verify's unfused build of the program, made on first use

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

    ``backend`` is ``"auto"`` (the default: ``"c"`` when a C compiler or the compile
    cache makes it available, else ``"numpy"``, with a one-time ``RuntimeWarning``),
    ``"c"`` or ``"numpy"`` (the reference); ``session.backend`` is the one that runs
    and ``session.backend_choice`` says why.
    ``check_numerics=True`` raises on the first NaN/Inf, naming the node and
    the line that defined it. ``verify=True`` checks every run against the NumPy
    reference first (see :meth:`verify`) and raises :class:`~graphc.VerifyError`,
    committing nothing, when a value differs.

    Threads: one Session may serve several threads. Its runs are serialised by a
    lock the Session holds (as are compile, get_value, set_value, save and load), so
    every run sees and leaves a consistent state and no update is lost; the compiled
    code itself runs each step on all cores. For runs in parallel, give each thread
    its own Session (they share nothing at run time).

    ``comm`` (an mpi4py communicator) trains data-parallel over its ranks: the variables
    and optimizer slots are broadcast from rank 0 (now and after :meth:`load`), every
    optimizer update averages its gradients over the ranks (``gc.distributed``), a step
    that fails on one rank raises the same error on every rank and changes nothing, and
    :meth:`save` writes on rank 0 only. Every rank must run the same training fetches
    in the same order; a fetch set without gradients or ``allreduce_mean`` (an
    evaluation) runs on its rank alone.
    """

    def __init__(self, graph: Graph, backend: str = "auto", check_numerics: bool = False,
                 verify: bool = False, comm=None) -> None:
        if not isinstance(graph, Graph):
            raise GraphcError(f"Session: expected a gc.Graph, got {type(graph).__name__}")
        self.graph = graph
        self._backend, self.backend_choice = get_backend(backend)
        self.backend = self._backend.name
        if hasattr(self._backend, "check_numerics"):
            self._backend.check_numerics = check_numerics
        self.step = 0
        self.verify_runs = verify  # every run checked by verify() first
        self._values: dict[Tensor, np.ndarray] = {}
        self._compiled: dict[tuple[int, ...], Compiled] = {}
        self._plans = _fastrun.Plans()  # run()'s per-step path
        # one lock for every use of the state and the compiled steps: a compiled step's
        # pointer tables and arena are shared between its calls
        self._lock = threading.RLock()
        self.comm = comm
        self._synced: set[int] = set()  # ids of the variables broadcast from rank 0
        self._nodes_seen = 0  # the graph's size then
        if comm is not None:
            _comm.check_comm(comm)
            _collective.broadcast_new(self)

    # -- variables ---------------------------------------------------------------------
    def _state(self, var: Tensor) -> np.ndarray:
        if var not in self._values:
            self._values[var] = _feeds.aligned_copy(var.value, var.value.dtype)
        return self._values[var]

    def _variable(self, var: Tensor | str, what: str) -> Tensor:
        """``var`` itself, or the variable named ``var``; a clear error otherwise."""
        if isinstance(var, str):
            found = [v for v in self.graph.variables() if v.name == var]
            if len(found) == 1:
                return found[0]
            if found:
                raise ArgumentError(f"{what}: {len(found)} variables are named {var!r}; pass "
                                    f"the variable tensor{at(user_site())}")
            if any(p.name == var for p in self.graph.placeholders()):
                raise ArgumentError(f"{what}: {var!r} is a placeholder, not a variable"
                                    f"{at(user_site())}")
            names = [v.name for v in self.graph.variables()]
            raise ArgumentError(f"{what}: no variable named {var!r}"
                                f"{_feeds.close_names(var, names, 'variables')}{at(user_site())}")
        if not isinstance(var, Tensor) or var.op.kind is not Kind.VARIABLE or var.graph is not self.graph:
            raise ArgumentError(f"{what}: {var!r} is not a variable of this session's graph"
                                f"{at(user_site())}")
        return var

    def get_value(self, var: Tensor | str) -> np.ndarray:
        """A copy of the current value of ``var`` (the variable or its name).

        Example::

            w = sess.get_value(W)          # or sess.get_value("W")
        """
        var = self._variable(var, "get_value")
        with self._lock:
            return self._state(var).copy()

    def set_value(self, var: Tensor | str, value: Any) -> None:
        """Overwrite ``var`` (the variable or its name) with ``value`` of the same shape.

        The value is converted to the variable's dtype by the rules feeds follow: never
        floats into an int variable, never a value that would wrap or overflow.
        Example::

            sess.set_value("W", np.zeros((784, 10)))
        """
        var = self._variable(var, "set_value")
        what = f"set_value: {var.name} ({var.dtype})"
        arr = _feeds.convert(value, var.dtype, what, range_error=ArgumentError)
        if arr.shape != var.shape:
            raise ShapeError(f"set_value: {var.name} has shape {var.shape}, got {arr.shape}"
                             f"{at(user_site())}")
        with self._lock:
            self._values[var] = _feeds.aligned_copy(arr, var.dtype)

    def save(self, path: str | os.PathLike) -> None:
        """Write every variable (optimizer state included) and the step to ``path``.

        The file is written exactly at ``path`` (no suffix is added) and replaces an
        existing one atomically: if the save is interrupted, the previous checkpoint is
        intact. The format is described in :mod:`graphc.runtime.checkpoint`. Example::

            sess.save("model.ckpt"); sess.load("model.ckpt")
        """
        with self._lock:
            variables = self.graph.variables()
            values = {v.name: self._state(v) for v in variables}
            if len(values) != len(variables):
                raise CheckpointError(f"save: {os.fsdecode(path)}: two variables share a name")
            if self.comm is None:
                _checkpoint.write(path, values, self.step)
            else:  # the ranks hold the same values: one file
                _comm.on_root(self.comm, lambda: _checkpoint.write(path, values, self.step))

    def load(self, path: str | os.PathLike) -> None:
        """Restore what :meth:`save` wrote (or an earlier graphc's ``.npz``).

        All or nothing: a missing variable, another shape or a value that does not fit
        the variable's dtype changes nothing. Every failure names ``path``. With ``comm``,
        rank 0 reads the file and broadcasts the values.
        """
        if self.comm is None:
            new, step = self._read(path)
        else:
            new, step = _comm.on_root(self.comm, lambda: self._read(path)) or ({}, None)
            new = {v: new.get(v, _feeds.aligned_copy(np.empty(v.shape, v.dtype), v.dtype))
                   for v in self.graph.variables()}
            _comm.broadcast(self.comm, list(new.values()))
            step = self.comm.bcast(step, root=0)
        with self._lock:
            self._values.update(new)
            if step is not None:
                self.step = step

    def _read(self, path) -> tuple[dict, int | None]:
        stored, step = _checkpoint.read(path)
        shown = _checkpoint.shown_path(path)
        new = {}
        for v in self.graph.variables():
            key = _checkpoint.stored_name(stored, v.name)
            if key is None:
                raise CheckpointError(f"load: {shown} has no value for variable {v.name!r}"
                                      f"{_feeds.close_names(v.name, stored, 'it holds')}")
            arr = _feeds.convert(stored[key], v.dtype, f"load: {shown}: variable {v.name} "
                                 f"({v.dtype})", range_error=CheckpointError)
            if arr.shape != v.shape:
                raise ShapeError(f"load: {v.name} has shape {v.shape} in the graph but "
                                 f"{arr.shape} in {shown}")
            new[v] = _feeds.aligned_copy(arr, v.dtype)
        return new, step

    # -- running -----------------------------------------------------------------------
    def compile(self, fetches: list[Tensor]) -> Compiled:
        """Optimize and compile a fetch set (done once per distinct fetch list).

        Example::

            compiled = sess.compile([loss, train])
            print(compiled.source)            # generated C (C backend)
            for k in compiled.kernels: print(k["name"], k["nodes"])
            compiled.arena_bytes(64)          # scratch bytes at batch 64
        """
        if isinstance(fetches, Tensor):
            fetches = [fetches]
        elif isinstance(fetches, (list, tuple)):
            fetches = list(fetches)
        else:
            raise GraphcError(f"compile: fetches must be a tensor or a list/tuple of tensors, "
                              f"got {type(fetches).__name__}{at(user_site())}")
        key = compiled_key(fetches)
        known = self._compiled.get(key)
        if known is not None:
            return known  # (the per-step path: nothing to check again)
        for i, f in enumerate(fetches):
            self._check_fetch(f"[{i}]", f)
        with self._lock:
            if key not in self._compiled:
                check_single_writer([f for f in fetches if f.dtype is None])
                source = Program(fetches)
                reads = source.placeholders
                program = optimize(_distribute(source, self.comm))
                self._compiled[key] = Compiled(fetches, program, self._backend.compile(program),
                                               reads)
            return self._compiled[key]

    def _check_fetch(self, label: str, f) -> None:
        if not isinstance(f, Tensor):
            raise GraphcError(f"run: fetch {label} is {f!r}, not a graph tensor{at(user_site())}")
        if f.graph is not self.graph:
            raise GraphcError(f"run: fetch {label} ({f.name}) belongs to another graph"
                              f"{at(user_site())}")

    def run(self, fetches, feed: dict | None = None, training: bool | None = None):
        """Run ``fetches`` (a tensor, a list/tuple of tensors or a dict of them).

        Returns NumPy arrays in the same structure; update ops give ``None``.
        ``training`` feeds the graph's learning phase (dropout, BatchNorm); by
        default it is True exactly when an update op is fetched.
        """
        key = None if self.comm is not None or self.verify_runs else (
            _fastrun.key(fetches, feed, training))
        plan = self._plans.get(key)
        if plan is not None:  # a repeated call: feeds compared with what passed before
            with self._lock:
                out = plan.run(self, fetches, feed)
            if out is not _fastrun.MISS:
                return out
        flat, pack = self._flatten(fetches)
        with self._lock:
            if self.verify_runs:
                report = _verify.verify(self, flat, feed, training)
                if not report.ok:
                    raise VerifyError(str(report), report)
            if self.comm is not None:
                return pack(_collective.run(self, flat, feed, training))
            compiled, arrays, batch = self._prepare(flat, feed, training)
            if key is not None:  # checked: later calls like this one take the short path
                self._plans.learn(key, self, fetches, flat, compiled, feed, arrays, batch)
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
        flat, _ = self._flatten(fetches)
        with self._lock:
            return self._profile(flat, feed, runs, training)

    def _profile(self, flat: list, feed: dict | None, runs: int, training: bool | None) -> Profile:
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

    def explain(self, fetches, kernel: str | None = None, batch: int | None = None) -> Explanation:
        """What the compiled step of ``fetches`` does: kernels, memory, FLOPs, source.

        Compiles (nothing runs, no state changes). ``batch`` sizes the ``None``
        dimension (default: the batch of the fetch set's latest run, else 1);
        ``kernel`` names one kernel whose generated source is included. See
        :mod:`graphc.runtime.explain`. Example::

            print(sess.explain([loss, train], batch=64))
            print(sess.explain([loss, train], kernel="k3_matmul_ew"))   # + its C
            sess.explain([loss, train]).kernels[0]["flops"]
        """
        flat, _ = self._flatten(fetches)
        with self._lock:
            return _explain.explain(self.compile(flat), self.backend, kernel, batch)

    def verify(self, fetches, feed: dict | None = None,
               training: bool | None = None) -> VerifyReport:
        """Check one step of ``fetches`` value by value against the NumPy reference.

        Runs the compiled step, an unfused build storing every value and each node's NumPy
        reference, all from copies of the current state; nothing changes (variables and
        ``step`` stay as they are, training fetches included). The report names the
        first value, in graph order, outside the numerical contract (float64 1e-10
        relative; float32 1e-5 per element, 1e-4 of the norm for matmul, conv and
        reductions; NaN/Inf in place; ints equal): its op, line, kernel and the largest
        errors. See :mod:`graphc.runtime.verify`. Example::

            report = sess.verify([loss, train], {x: xb, y: yb})
            print(report); assert report.ok
        """
        flat, _ = self._flatten(fetches)
        with self._lock:
            return _verify.verify(self, flat, feed, training)

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
        # every fed placeholder is checked, but only those the fetches depend on fix the
        # batch size: one feed dict may serve several fetch sets
        needed = {id(p) for p in compiled.placeholders}
        extra = [p for p in feed if id(p) not in needed]
        free = {id(p) for p in extra if id(p) not in compiled.reads}
        arrays, batch = _feeds.check(compiled.placeholders, feed, defaults, extra, free)
        if batch is None and compiled.needs_batch:
            raise FeedError("run: the batch size (the None dimension) is unknown: feed a "
                            "placeholder that has a None dimension")
        return compiled, arrays, batch

    def is_compiled(self, fetches: list) -> bool:
        """Whether the fetch list ``fetches`` was compiled (and so checked) already."""
        return compiled_key(fetches) in self._compiled

    def _context(self, batch: int | None) -> _StepContext:
        return _StepContext(self.step, batch)

    def _step(self, flat: list, compiled: Compiled, arrays: dict, batch: int | None,
              seconds: np.ndarray | None = None) -> list:
        ctx = self._context(batch)
        return self._commit(flat, compiled, ctx, self._execute(compiled, arrays, ctx, seconds))

    def _execute(self, compiled: Compiled, arrays: dict, ctx: _StepContext,
                 seconds: np.ndarray | None = None) -> list:
        compiled.last_batch = ctx.batch
        state = {v: self._state(v) for v in compiled.variables}
        if seconds is None:
            return compiled.executable.run(arrays, state, ctx)
        return compiled.executable.run(arrays, state, ctx, seconds=seconds)

    def _commit(self, flat: list, compiled: Compiled, ctx: _StepContext, outputs: list) -> list:
        for var, value in ctx.pending.items():  # commit only after the whole step succeeded
            self._values[var] = _feeds.aligned_copy(value, var.dtype)
        self.step += 1
        if compiled.fresh_outputs:
            return [None if f.dtype is None else o for f, o in zip(flat, outputs)]
        return [None if f.dtype is None else np.array(o, copy=True)
                for f, o in zip(flat, outputs)]

    def _flatten(self, fetches):
        """The fetched tensors as a list, and how to pack results in the same structure."""
        keys = None
        if isinstance(fetches, Tensor):
            flat, pack = [fetches], lambda r: r[0]
        elif isinstance(fetches, dict):
            keys = list(fetches)
            flat = [fetches[k] for k in keys]
            pack = lambda r: dict(zip(keys, r))  # noqa: E731
        elif isinstance(fetches, (list, tuple)):
            kind = type(fetches)
            flat, pack = list(fetches), lambda r: kind(r)
        else:
            raise GraphcError(f"run: fetches must be a tensor, a list/tuple or a dict, "
                              f"got {type(fetches).__name__}{at(user_site())}")
        if not self.is_compiled(flat):  # (a compiled fetch list was checked then)
            labels = [f"[{k!r}]" for k in keys] if keys is not None else (
                f"[{i}]" for i in range(len(flat)))
            for label, f in zip(labels, flat):
                self._check_fetch(label, f)
        return flat, pack

    def __repr__(self) -> str:
        return f"<graphc.Session backend={self.backend!r} step={self.step}>"


def compiled_key(fetches: list) -> tuple:
    """The compile cache's key of a fetch list: tensor ids are never reused in a process,
    so a known key is the same fetch list (only lists whose checks passed are stored)."""
    return tuple(f.id if type(f) is Tensor else None for f in fetches)
