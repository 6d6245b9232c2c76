"""The C backend: each fetch set becomes one shared library and one native call.

``compile`` lowers the optimized program (fusion, memory plan, kernels), renders
it as C and builds (or loads from the cache) a library whose ``gc_run`` executes
the whole step. The batch size is an argument of ``gc_run``, so a new batch size
never recompiles.
"""

from __future__ import annotations

import operator
import sys
import time

import numpy as np

from ...env import c_compiler_problem, cache_dir, find_c_compiler
from ...ir.dtypes import FLOATS
from ...ir.errors import GraphcError, NumericsError, at, numerics_message
from ...ir.graph import Tensor
from ...ir.program import Program
from ...lower import ir, lower
from ...lower.sizes import step_bytes
from .abi import ERR_BYTES
from .build import load_or_build, native_ffi
from .library import prints, render


class CExecutable:
    """A compiled fetch set: call :meth:`run` once per step.

    ``separate``: the unfused build, one kernel per node each storing its value, with no
    checks (``Session.verify`` compares every value of it with the reference).
    """

    def __init__(self, program: Program, check_numerics: bool = False,
                 separate: bool = False) -> None:
        t0 = time.perf_counter()
        self.program = program
        self.lowered = lower(program, check_numerics, separate)
        self.kernels = self.lowered.kernels
        self._prints = prints(self.lowered)
        self.library = render(self.lowered)
        self.lib, self.build_info = load_or_build(self.library.source, self.library.key_source)
        self.compile_seconds = time.perf_counter() - t0
        self._ffi = ffi = native_ffi()
        self.check_numerics = check_numerics
        self._consts = [np.ascontiguousarray(c.value) for c in self.lowered.constants]
        self._const_ptrs = ffi.new("void *[]", [ffi.cast("void *", a.ctypes.data)
                                                for a in self._consts] or [ffi.NULL])
        self._arena = np.empty(0, np.uint8)
        self._arena_ptr = ffi.NULL
        self._err = ffi.new("char[]", ERR_BYTES)
        r = self.lowered
        self._feed_ptrs = ffi.new("void *[]", max(len(r.feeds), 1))
        self._var_ptrs = ffi.new("void *[]", max(len(r.variables), 1))
        self._var_arrays: list = [None] * len(r.variables)
        # the state arrays of the variables, in order, as one tuple (a C loop, not Python's)
        self._gather_state = (operator.itemgetter(*r.variables) if len(r.variables) > 1 else
                              lambda state: tuple(state[v] for v in r.variables))
        self._out_ptrs = ffi.new("void *[]", max(len(program.outputs), 1))
        self._out_shapes: dict[int, list] = {}  # batch -> (index, node, shape) of each array fetched
        self._planned: dict[int, int] = {}  # batch -> bytes of arena + scratch (checked sizes)

    fresh_outputs = True  # run() returns arrays nobody else references: no copy needed

    # -- introspection --------------------------------------------------------------------
    @property
    def source(self) -> str:
        """The generated C source."""
        return self.library.source

    @property
    def kernel_list(self) -> list[dict]:
        """Each kernel: its name and the graph nodes it fused."""
        return [{"name": k.name, "kind": k.kind, "nodes": [n.name for n in k.nodes],
                 "stores": [n.name for n in k.stores]} for k in self.kernels]

    def arena_bytes(self, batch: int | None = 1) -> int:
        """Scratch bytes for a batch size (GraphcError when they cannot be addressed)."""
        return self._native_arena_bytes(batch or 0)

    def _native_arena_bytes(self, batch: int) -> int:
        # The sizes are computed in Python integers first (lower.sizes: every value, the
        # planned arena, scratch), so the native size arithmetic below cannot wrap.
        planned = self._planned.get(batch)
        if planned is None:
            planned = self._planned[batch] = step_bytes(self.lowered, batch)
        need = int(self.lib.gc_arena_bytes(batch))
        if need < planned:  # (cannot happen when the two agree: a guard, not a path)
            raise GraphcError(f"compiled step: scratch size at batch size {batch} is "
                              f"inconsistent ({need} < {planned} bytes)")
        return need

    # -- running ----------------------------------------------------------------------------
    # The pointer tables handed to gc_run live as long as the executable; a run only rewrites
    # the slots whose array changed (variables usually never do), so a step costs a few
    # microseconds of Python around the native call.
    def _arena_for(self, batch: int):
        # asked every run: the GEMM workspace grows with omp_get_max_threads(), which the
        # caller may raise between runs (threadpoolctl, omp_set_num_threads)
        # (run() checked this batch size's sizes, lower.sizes, on its first run)
        need = int(self.lib.gc_arena_bytes(batch)) + 64
        if self._arena.size < need:
            try:
                self._arena = np.empty(need, np.uint8)
            except (MemoryError, ValueError) as exc:
                raise _allocation_error(f"the step's scratch memory at batch size {batch}",
                                        (need,), np.uint8, exc) from None
            addr = self._arena.ctypes.data
            self._arena_ptr = self._ffi.cast("char *", addr + (-addr % 64))
        return self._arena_ptr

    @property
    def timed_units(self) -> list[dict]:
        """What ``run(..., seconds=)`` times: each kernel, then the final copies/commits."""
        return self.kernel_list + [{"name": "(outputs, commit)", "kind": "step",
                                    "nodes": [], "stores": []}]

    @property
    def feed_order(self) -> list[Tensor]:
        """The placeholders :meth:`run_values` takes, in its order."""
        return self.lowered.feeds

    def run(self, feeds: dict[Tensor, np.ndarray], state: dict[Tensor, np.ndarray], ctx,
            seconds: np.ndarray | None = None) -> list:
        """One step. Every returned array is newly allocated (``fresh_outputs``).

        ``seconds`` (float64, one slot per :attr:`timed_units`): each unit's wall time is
        added to its slot.
        """
        values = [_contiguous(feeds[p]) for p in self.lowered.feeds]
        return self.run_values(values, state, ctx.batch or 0, ctx.step, seconds)

    def run_values(self, values: list, state: dict[Tensor, np.ndarray], batch: int, step: int,
                   seconds: np.ndarray | None = None) -> list:
        """:meth:`run` with the feeds already checked: ``values[i]``, a C-contiguous array,
        feeds ``feed_order[i]`` (``Session.run``'s per-step path calls this directly)."""
        ptrs, from_buffer = self._feed_ptrs, self._ffi.from_buffer
        for i, a in enumerate(values):
            ptrs[i] = from_buffer(a)
        arrays = self._gather_state(state)
        if not all(map(operator.is_, arrays, self._var_arrays)):  # (usually all the same)
            self._point_to(arrays)
        shapes = self._out_shapes.get(batch)
        if shapes is None:
            self._native_arena_bytes(batch)  # every size checked before anything is allocated
            shapes = self._out_shapes[batch] = [
                (i, o, tuple(batch if d is None else d for d in o.shape))
                for i, o in enumerate(self.program.outputs) if o.dtype is not None]
        outs: list = [None] * len(self.program.outputs)
        ptrs = self._out_ptrs
        for i, o, shape in shapes:
            try:
                a = np.empty(shape, o.dtype)
            except (MemoryError, ValueError) as exc:  # (the message is built only here)
                raise _allocation_error(f"fetch {o.name}", shape, o.dtype, exc) from None
            ptrs[i] = from_buffer(a)
            outs[i] = a
        args = (batch, step, self._feed_ptrs, self._var_ptrs, self._const_ptrs,
                self._out_ptrs, self._arena_for(batch), self._err)
        if self._prints:  # gc.print lines come from C: Python's pending output goes first
            _flush_stdout()
        if seconds is None:
            code = self.lib.gc_run(*args)
        else:
            code = self.lib.gc_run_timed(*args, self._ffi.from_buffer("double[]", seconds))
        if code:
            self._raise(code - 1)
        return outs

    def _point_to(self, arrays: tuple) -> None:
        """Point the variables' slots at ``arrays`` (one per ``lowered.variables``)."""
        for i, (v, a) in enumerate(zip(self.lowered.variables, arrays)):
            if a is not self._var_arrays[i]:
                if not (a.flags.c_contiguous and a.flags.writeable):
                    raise GraphcError(f"variable {v.name}: state array is not writable and "
                                      f"contiguous")
                self._var_ptrs[i] = self._ffi.from_buffer(a)
                self._var_arrays[i] = a

    def _raise(self, index: int) -> None:
        message = self._ffi.string(self._err).decode(errors="replace")
        kernel = self.kernels[index] if 0 <= index < len(self.kernels) else None
        if kernel is None:
            raise GraphcError(f"compiled step failed: {message}")
        if self.check_numerics:
            bad = _numerics_failure(kernel, message)
            if bad is not None:
                raise NumericsError(numerics_message(*bad))
        inner = [k for k in ir.inner_kernels(kernel) if k.can_fail]
        failed = inner[0] if len(inner) == 1 and inner[0].kind != "scan" else kernel  # a scan's body
        node = failed.nodes[0] if failed.kind != "elementwise" else failed.nodes[-1]
        for n in failed.nodes:
            if n.name in message:
                node = n
        raise GraphcError(f"{node.op.label(node.attrs)} ({node.name}) failed at run time in kernel "
                          f"{kernel.name}: {message}{at(node.site)}")


def _numerics_failure(kernel, message: str) -> tuple[Tensor, str] | None:
    """(node, "NaN" or "Inf") when ``message`` is a failed check of the debug build
    (``lower.check_finite``), whose kernels each store and check one value."""
    bad = message[:3]
    if bad not in ("NaN", "Inf") or not message.startswith(f"{bad} produced by "):
        return None
    stores = kernel.stores + [n for k in ir.inner_kernels(kernel) for n in k.stores]  # (a scan's body)
    checked = [n for n in stores if n.dtype in FLOATS]
    named = [n for n in checked if message == f"{bad} produced by {n.name}"]
    if len(named) == 1 or len(checked) == 1:  # (a long name may come back truncated)
        return (named or checked)[0], bad
    return None


class CBackend:
    """``backend="c"``: compiled C (needs a C compiler, or the graph in the cache)."""

    name = "c"

    def __init__(self, check_numerics: bool = False) -> None:
        # Without a compiler the backend can still load libraries from the cache (a warm
        # start never compiles); an uncached graph then fails in load_or_build with a
        # clear message. With neither, the backend is unavailable.
        if find_c_compiler() is None and not _cache_has_libraries():
            raise GraphcError(f"no C compiler found: {c_compiler_problem()}")
        self.check_numerics = check_numerics

    def compile(self, program: Program) -> CExecutable:
        return CExecutable(program, self.check_numerics)


def _contiguous(a: np.ndarray) -> np.ndarray:
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _flush_stdout() -> None:
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except (OSError, ValueError):  # (a closed or broken stream: C writes regardless)
        pass


def _allocation_error(what: str, shape: tuple, dtype, exc: Exception) -> GraphcError:
    return GraphcError(f"cannot allocate {what} (shape {shape}, {np.dtype(dtype).name}): {exc}")


def _cache_has_libraries() -> bool:
    base = cache_dir() / "c"
    try:
        return any(True for _ in base.glob("*/*/*.so"))
    except OSError:
        return False

