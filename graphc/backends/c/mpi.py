"""MPI in the generated C: the allreduce helpers and how to compile and link against MPI.

A program with an ``allreduce_mean`` kernel (a Session with ``comm=``,
:mod:`graphc.distributed`) includes ``<mpi.h>`` and :data:`HELPERS`; the kernel calls
``gc_mpi_allreduce_mean_{f,d}`` on the communicator handle mpi4py gives
(``MPI._handleof``), read from a constant at run time so that one cached library serves
every process. The library is compiled with the flags of the MPI that mpi4py loaded:
``GRAPHC_MPI_FLAGS`` (shell words), else what its ``mpicc`` wrapper says
(Open MPI's ``--showme``, MPICH's ``-compile_info``/``-link_info``).

Example::

    uses_mpi(lowered)            # True when a kernel averages over ranks
    build_flags()                # ['-I/usr/lib/.../openmpi/include', ..., '-lmpi']
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess

from ...distributed.ops import REMOTE_FAILURE
from ...ir.errors import GraphcError
from ...lower import ir
from .abi import ERR_BYTES

#: the kernel kind of an allreduce (the op's name)
KIND = "allreduce_mean"
#: a line the library holds when it uses MPI (what the builder looks for)
MARKER = "/* graphc: uses MPI */"
#: environment variable: the compile and link flags of MPI (overrides mpicc's)
FLAGS_ENV = "GRAPHC_MPI_FLAGS"

_HELPER = """
/* gc.distributed: the mean over the ranks of `handle` of x[0 .. n-2], in place; x[n-1] is
   the failure count: a rank whose step already failed (its message is in g->err) sends 1
   and keeps its message. Returns 0, 1 when another rank's step failed, 2 + an MPI error. */
static int gc_mpi_allreduce_mean_{s}(const gc_ctx *g, {t} *x, int64_t n, int64_t handle) {{
    MPI_Comm comm = (MPI_Comm)(intptr_t)handle;
    const int failed = g->err[0] != 0;
    int size = 1, rc;
    x[n - 1] = failed ? ({t})1 : ({t})0;
    for (int64_t at = 0; at < n; at += (int64_t)1 << 30) {{
        const int64_t count = n - at < ((int64_t)1 << 30) ? n - at : ((int64_t)1 << 30);
        rc = MPI_Allreduce(MPI_IN_PLACE, x + at, (int)count, {mpi}, MPI_SUM, comm);
        if (rc != MPI_SUCCESS) return 2 + rc;
    }}
    if (failed) return 0;
    if (x[n - 1] != ({t})0) return 1;
    MPI_Comm_size(comm, &size);
    const {t} ranks = ({t})size;
    for (int64_t i = 0; i < n - 1; i++) x[i] = x[i] / ranks;
    return 0;
}}
"""

_AGREE = """
/* gc.distributed: before the commits, when a kernel that can fail ran after the last
   allreduce: whether every rank's step succeeded. Returns 0, or 1 when another rank's step
   failed (the message is then written) or this one's did (its message is kept). */
static int gc_mpi_agree(const gc_ctx *g, int failed, int64_t handle) {
    int failures = failed ? 1 : 0;
    if (MPI_Allreduce(MPI_IN_PLACE, &failures, 1, MPI_INT, MPI_SUM,
                      (MPI_Comm)(intptr_t)handle) != MPI_SUCCESS) {
        if (!failed) snprintf(g->err, @ERR@, "MPI_Allreduce failed before the commits");
        return 1;
    }
    if (failures && !failed) snprintf(g->err, @ERR@, "@MSG@ (before the commits)");
    return failures != 0;
}
""".replace("@ERR@", str(ERR_BYTES)).replace("@MSG@", REMOTE_FAILURE)

#: the helpers pasted after the context struct
HELPERS = (MARKER + "\n#include <mpi.h>\n"
           + _HELPER.format(s="f", t="float", mpi="MPI_FLOAT")
           + _HELPER.format(s="d", t="double", mpi="MPI_DOUBLE") + _AGREE)


def collective(kernel: ir.Kernel) -> bool:
    """Whether ``kernel`` is an allreduce (every rank must run it, even after a failure)."""
    return kernel.kind == KIND


def uses_mpi(program: ir.LoweredProgram) -> bool:
    """Whether a kernel of ``program`` is an allreduce."""
    return any(collective(k) for k in program.kernels)


def agreement_handle(program: ir.LoweredProgram) -> str | None:
    """C text of the communicator handle when the ranks must agree before the commits (a
    kernel that can fail runs after the last allreduce, and may fail on one rank only),
    else None."""
    last = max(i for i, k in enumerate(program.kernels) if collective(k))
    if not any(k.can_fail for k in program.kernels[last + 1:]):
        return None
    for s in ir.walk(program.kernels[last].body):
        if isinstance(s, ir.Let) and isinstance(s.value, ir.Call) and s.value.fn == KIND:
            handle = s.value.args[3]
            return f"*(const int64_t *)g->consts[{handle.buf.place.index}]"
    raise AssertionError("an allreduce kernel without its call")


def _run(cmd: list[str]) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def build_flags() -> tuple[str, ...]:
    """The compile and link flags of the MPI mpi4py uses (GraphcError when unknown)."""
    env = os.environ.get(FLAGS_ENV)
    if env is not None:
        return tuple(shlex.split(env))
    wrapper = shutil.which("mpicc")
    if wrapper is None:
        raise GraphcError(f"the C backend needs MPI's headers and library for a Session with "
                          f"comm=: no mpicc on PATH (apt-get install libopenmpi-dev, or set "
                          f"{FLAGS_ENV})")
    words: list[str] | None = None
    compile_, link = _run([wrapper, "--showme:compile"]), _run([wrapper, "--showme:link"])
    if compile_ is not None and link is not None:
        vendor, words = "Open MPI", shlex.split(compile_) + shlex.split(link)
    else:
        compile_, link = _run([wrapper, "-compile_info"]), _run([wrapper, "-link_info"])
        if compile_ is not None and link is not None:  # (MPICH: the whole command line)
            vendor = "MPICH"
            words = [w for w in shlex.split(compile_)[1:] + shlex.split(link)[1:]
                     if w.startswith(("-I", "-L", "-l", "-Wl,"))]
    if words is None:
        raise GraphcError(f"cannot ask {wrapper} for MPI's flags; set {FLAGS_ENV}")
    from mpi4py import MPI
    loaded = MPI.Get_library_version()
    if vendor not in loaded:
        raise GraphcError(f"{wrapper} is {vendor} but mpi4py runs on another MPI "
                          f"({loaded.splitlines()[0]}); set {FLAGS_ENV} to that MPI's flags")
    return tuple(dict.fromkeys(words))
