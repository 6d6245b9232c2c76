"""The C backend: each fetch set becomes one shared library and one native call.

``compile`` fuses the optimized program into kernels, plans one arena,
renders C, and builds (or loads from the cache) a library whose ``gc_run``
executes the whole step. The batch size is an argument of ``gc_run``, so a new
batch size never recompiles.
"""

from __future__ import annotations

import time

import numpy as np

from ..codegen.build import ffi, load_or_build
from ..codegen.fusion import Kernel, fuse
from ..codegen.memplan import plan_memory
from ..codegen.render_c import ERR_BYTES, render
from ..env import cache_dir, find_c_compiler
from ..errors import GraphcError, NumericsError, at
from ..graph import Tensor
from ..program import Program
from . import register_backend


class CExecutable:
    """A compiled fetch set: call :meth:`run` once per step."""

    def __init__(self, program: Program, check_numerics: bool = False) -> None:
        t0 = time.perf_counter()
        self.program = program
        self.kernels: list[Kernel] = fuse(program)
        # check_numerics reports a NaN after the kernel that made it: nothing may be
        # written to the variables before the whole step has passed the checks
        self.plan = plan_memory(self.kernels, program, in_place=not check_numerics)
        self.rendered = render(program, self.kernels, self.plan, check_numerics)
        self.lib, self.build_info = load_or_build(self.rendered.source)
        self.compile_seconds = time.perf_counter() - t0
        self.check_numerics = check_numerics
        self._consts = [np.ascontiguousarray(c.value) for c in self.rendered.constants]
        self._const_ptrs = ffi.new("void *[]", [ffi.cast("void *", a.ctypes.data)
                                                for a in self._consts] or [ffi.NULL])
        self._arena = np.empty(0, np.uint8)
        self._err = ffi.new("char[]", ERR_BYTES)

    # -- introspection --------------------------------------------------------------------
    @property
    def source(self) -> str:
        """The generated C source."""
        return self.rendered.source

    @property
    def kernel_list(self) -> list[dict]:
        """Each kernel: its name and the graph nodes it fused."""
        return [{"name": k.name, "kind": k.kind, "nodes": [n.name for n in k.nodes],
                 "stores": [n.name for n in k.stores]} for k in self.kernels]

    def arena_bytes(self, batch: int | None = 1) -> int:
        """Scratch bytes for a batch size."""
        return int(self.lib.gc_arena_bytes(batch or 0))

    # -- running ----------------------------------------------------------------------------
    def _arena_for(self, batch: int):
        need = self.arena_bytes(batch) + 64
        if self._arena.size < need:
            self._arena = np.empty(need, np.uint8)
        addr = self._arena.ctypes.data
        return ffi.cast("char *", addr + (-addr % 64))

    def run(self, feeds: dict[Tensor, np.ndarray], state: dict[Tensor, np.ndarray], ctx) -> list:
        batch = ctx.batch or 0
        feed_arrays = [np.ascontiguousarray(feeds[p]) for p in self.rendered.feeds]
        var_arrays = [state[v] for v in self.rendered.variables]
        for v, a in zip(self.rendered.variables, var_arrays):
            if not (a.flags.c_contiguous and a.flags.writeable):
                raise GraphcError(f"variable {v.name}: state array is not writable and contiguous")
        outs = []
        for o in self.program.outputs:
            if o.dtype is None:
                outs.append(None)
            else:
                shape = tuple(batch if d is None else d for d in o.shape)
                outs.append(np.empty(shape, o.dtype))
        ptrs = ffi.new("void *[]", [_ptr(a) for a in feed_arrays] or [ffi.NULL])
        vptrs = ffi.new("void *[]", [_ptr(a) for a in var_arrays] or [ffi.NULL])
        optrs = ffi.new("void *[]", [_ptr(a) if a is not None else ffi.NULL for a in outs]
                        or [ffi.NULL])
        code = self.lib.gc_run(batch, ctx.step, ptrs, vptrs, self._const_ptrs, optrs,
                               self._arena_for(batch), self._err)
        if code:
            self._raise(code - 1)
        return outs

    def _raise(self, index: int) -> None:
        message = ffi.string(self._err).decode(errors="replace")
        kernel = self.kernels[index] if 0 <= index < len(self.kernels) else None
        if kernel is None:
            raise GraphcError(f"compiled step failed: {message}")
        node = kernel.root if kernel.root is not None else kernel.members[-1]
        for n in kernel.nodes:
            if n.name in message:
                node = n
        cls = NumericsError if ("NaN" in message or "Inf" in message) and self.check_numerics \
            else GraphcError
        raise cls(f"{node.op.label(node.attrs)} ({node.name}) failed at run time in kernel "
                  f"{kernel.name}: {message}{at(node.site)}")


def _ptr(a: np.ndarray):
    return ffi.cast("void *", a.ctypes.data)


class CBackend:
    name = "c"

    def __init__(self, check_numerics: bool = False) -> None:
        # Without a compiler the backend can still load libraries from the cache (a warm
        # start never compiles); an uncached graph then fails in load_or_build with a
        # clear message. With neither, the backend is unavailable.
        if find_c_compiler() is None and not _cache_has_libraries():
            raise GraphcError("no C compiler found (set CC or install gcc)")
        self.check_numerics = check_numerics

    def compile(self, program: Program) -> CExecutable:
        return CExecutable(program, self.check_numerics)


def _cache_has_libraries() -> bool:
    base = cache_dir() / "c"
    try:
        return any(True for _ in base.glob("*/*/*.so"))
    except OSError:
        return False


register_backend("c", CBackend)
