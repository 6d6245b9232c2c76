"""What a Session does with the :class:`~graphc.distributed.ops.Sync` markers of a fetch set.

Without a communicator they are dropped (each becomes its input). With one:

* every ``allreduce_mean(x)`` becomes one :class:`~graphc.distributed.ops.AllreduceMean`
  of ``x``, read back as ``x``'s shape;
* the marked gradients are gathered in **buckets** of about :data:`BUCKET_BYTES`, in the
  order the step computes them (by their place in the program); each bucket is one
  ``AllreduceMean`` of all its gradients: one contiguous vector that the kernels computing
  them write into (``graphc.lower.distributed.runs_in_place``), averaged with one MPI call
  as soon as its last gradient is computed; each update then reads its gradient in place
  (a ``flat_part`` view of that vector).

Example::

    program = prepare(Program([loss, train]), comm)     # before optimize()
"""

from __future__ import annotations

import numpy as np

from ..ir.graph import Tensor, constant_node, make
from ..ir.program import Program, rewrite
from ..ops.shape import flat_part
from .ops import AllreduceMean, Sync

#: gradients per bucket: one allreduce moves about this many bytes (the last may be smaller)
BUCKET_BYTES = 4 << 20


def has_markers(program: Program) -> bool:
    """Whether ``program`` holds a Sync marker."""
    return any(isinstance(n.op, Sync) for n in program.nodes)


def prepare(program: Program, comm=None, bucket_bytes: int | None = None) -> Program:
    """``program`` with its Sync markers dropped (``comm`` None) or turned into allreduces
    over ``comm`` (an mpi4py communicator)."""
    if not has_markers(program):
        return program
    if comm is None:
        return rewrite(program, lambda n: n.inputs[0] if isinstance(n.op, Sync) else n)
    handle, size = comm_handle(comm), comm.Get_size()

    def means(node: Tensor) -> Tensor:
        if isinstance(node.op, Sync) and node.attrs["what"] == "mean":
            return _read(_allreduce([node.inputs[0]], comm, size, handle), 0, node.inputs[0])
        return node

    program = rewrite(program, means)
    position = {n.id: k for k, n in enumerate(program.nodes)}
    marks = sorted((n for n in program.nodes if isinstance(n.op, Sync)),
                   key=lambda n: position[n.inputs[0].id])
    replace: dict[int, Tensor] = {}
    for bucket in buckets(marks, BUCKET_BYTES if bucket_bytes is None else bucket_bytes):
        graph = bucket[0].graph
        with graph.detached(), graph.derived("update", bucket[-1].site):
            out = _allreduce([m.inputs[0] for m in bucket], comm, size, handle)
            offset = 0
            for m in bucket:
                replace[m.id] = _read(out, offset, m)
                offset += int(np.prod(m.shape))
    return rewrite(program, lambda n: replace.get(n.id, n))


def buckets(marks: list[Tensor], bucket_bytes: int) -> list[list[Tensor]]:
    """``marks`` (in order) cut into runs of one dtype of at least ``bucket_bytes`` each
    (the last of a dtype may hold less)."""
    out: list[list[Tensor]] = []
    open_: dict[str, list[Tensor]] = {}
    for m in marks:
        run = open_.setdefault(m.dtype, [])
        run.append(m)
        if sum(_nbytes(t) for t in run) >= bucket_bytes:
            out.append(run)
            open_[m.dtype] = []
    out += [run for run in open_.values() if run]
    return out


def _nbytes(t: Tensor) -> int:
    return int(np.prod(t.shape)) * np.dtype(t.dtype).itemsize


def _allreduce(xs: list[Tensor], comm, size: int, handle: int) -> Tensor:
    graph = xs[0].graph
    h = constant_node(np.int64(handle), dtype="int64", name="comm_handle", graph=graph, add=False)
    return make(AllreduceMean, xs + [h], {"comm": comm, "size": size})


def _read(flat: Tensor, offset: int, like: Tensor) -> Tensor:
    return flat_part(flat, offset, like.shape)


def comm_handle(comm) -> int:
    """The C handle (``MPI_Comm``) of an mpi4py communicator, as an integer."""
    from mpi4py import MPI
    return int(MPI._handleof(comm))
