"""The native interface of a compiled step, stated once.

Every generated library exports ``gc_arena_bytes``, ``gc_run`` and ``gc_run_timed``
(:data:`ENTRY_POINTS`); every kernel in it is ``static int k<i>_<kind>(const gc_ctx
*g)`` and reads its arrays through the context (:data:`CONTEXT`). The renderer writes
these declarations from here, the builder gives them to cffi, the tests read them.

``gc_run(N, step, feeds, vars, consts, outs, arena, err)`` runs the whole step
(forward, backward, optimizer updates): it returns 0, or 1 + the index of the
failing kernel with a message of at most :data:`ERR_BYTES` bytes in ``err``.
``arena`` holds ``gc_arena_bytes(N)`` bytes: the planned buffers, then the workspace
kernels and templates use for scratch. ``gc_run_timed`` takes one more argument,
``double *seconds``, and adds each kernel's wall time to ``seconds[k]`` (the final
copies and commits to ``seconds[number of kernels]``), for ``Session.profile``.
"""

from __future__ import annotations

#: bytes of the error message buffer the caller passes
ERR_BYTES = 512

#: what every kernel receives, through one pointer (name, C type, meaning)
CONTEXT = (
    ("N", "int64_t", "the batch size"),
    ("step", "uint64_t", "the step counter (dropout masks)"),
    ("arena", "char *", "the planned buffers"),
    ("ws", "void *", "scratch memory after them (the workspace)"),
    ("ws_bytes", "size_t", "its size"),
    ("feeds", "void *const *", "the fed arrays"),
    ("vars", "void *const *", "the variables' arrays"),
    ("consts", "const void *const *", "the constants' arrays"),
    ("outs", "void *const *", "the fetched arrays"),
    ("err", "char *", "the error message buffer"),
)

#: the parameters of gc_run, in order (gc_run_timed adds ``double *seconds``)
RUN_PARAMS = (("N", "int64_t"), ("step", "uint64_t"), ("feeds", "void *const *"),
              ("vars", "void *const *"), ("consts", "const void *const *"),
              ("outs", "void *const *"), ("arena", "char *"), ("err", "char *"))


def _declare(name: str, ctype: str) -> str:
    return f"{ctype}{name}" if ctype.endswith("*") else f"{ctype} {name}"


def _params(params) -> str:
    return ", ".join(_declare(name, ctype) for name, ctype in params)


#: the exported functions' prototypes (cffi's cdef, and the definitions' heads)
ENTRY_POINTS = (
    "size_t gc_arena_bytes(int64_t N)",
    f"int gc_run({_params(RUN_PARAMS)})",
    f"int gc_run_timed({_params(RUN_PARAMS + (('seconds', 'double *'),))})",
)


def cdef() -> str:
    """The declarations cffi needs to call a compiled step."""
    return "".join(f"{p};\n" for p in ENTRY_POINTS)


def context_struct() -> str:
    """C definition of ``gc_ctx``."""
    fields = "".join(f"    {_declare(name, ctype)};  /* {what} */\n" for name, ctype, what in CONTEXT)
    return f"typedef struct {{\n{fields}}} gc_ctx;\n"


def kernel_head(name: str, can_fail: bool) -> str:
    """The head of a kernel's definition: a kernel that can fail returns 0 or 1."""
    return f"static {'int' if can_fail else 'void'} {name}(const gc_ctx *g)"
