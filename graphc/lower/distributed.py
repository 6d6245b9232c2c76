"""Lowering of :class:`~graphc.distributed.ops.AllreduceMean`: one kernel per bucket.

The bucket's output is one contiguous vector: its gradients one after the other, then
one element (the failure count). A gradient that only the allreduce reads is computed
straight into its place there (:func:`runs_in_place`: the memory plan gives its kernel
a buffer starting at that place); the others are copied in. The kernel then calls the
target's ``allreduce_mean`` function on the vector, which averages it over the ranks in
place with one MPI call (the C target: ``gc_mpi_allreduce_mean_{f,d}`` of
``backends/c/mpi.py``), and the updates read their averaged gradients in place
(``flat_part`` views). It fails when another rank's step failed, or when MPI reports an
error.
"""

from __future__ import annotations

from ..distributed.ops import REMOTE_FAILURE, AllreduceMean
from ..ir.graph import Tensor
from ..ir.program import Program
from .fusion import Group, assigned_values, reader_counts, source_of
from .ir import ZERO, Bin, Call, Copy, Fail, If, Let, Lit, Load, Ptr, Sym, prod
from .memplan import Plan
from .registry import lowers


@lowers(AllreduceMean)
def lower_allreduce_mean(group: Group, plan: Plan) -> list:
    node = group.root
    out = plan.buffer(node)
    *xs, handle = node.inputs
    body: list = []
    offset = 0
    for x in xs:
        n = prod(x.shape)
        if x.id not in plan.runs:  # (a run was computed in place)
            body.append(Copy(out, plan.buffer(x), n, dst_offset=Lit(offset)))
        offset += n.value
    call = Call("allreduce_mean", (Sym("g"), Ptr(out, ZERO, written=True), Lit(offset + 1),
                                   Load(plan.buffer(handle), ZERO)), node.dtype)
    rc = Sym("rc")
    return body + [
        Let("rc", "int64", call),
        If(Bin("==", rc, Lit(1)), [Fail((f"{REMOTE_FAILURE} (allreduce_mean {node.name})",))]),
        If(Bin(">", rc, Lit(1)), [Fail((f"MPI_Allreduce failed in {node.name}: MPI error ",
                                        Bin("-", rc, Lit(2))))]),
    ]


def runs_in_place(groups: list[Group], program: Program) -> dict[int, tuple[Tensor, int]]:
    """The gradients each computed straight into its bucket's vector: value id -> (the
    allreduce, first element). A gradient qualifies when a kernel stores it as it is (not
    a view), the allreduce is its only reader, it is neither fetched nor assigned, and the
    allreduce's vector lives in the arena (not fetched)."""
    readers = reader_counts(program)
    stored = {n.id for g in groups for n in g.stores}
    kept = ({source_of(o).id for o in program.outputs} | {o.id for o in program.outputs}
            | {v.id for _, v in assigned_values(program)})
    runs: dict[int, tuple[Tensor, int]] = {}
    for g in groups:
        node = g.root
        if node is None or not isinstance(node.op, AllreduceMean) or node.id in kept:
            continue
        first = 0
        for x in node.inputs[:-1]:
            if (x.id in stored and readers.get(x.id) == 1 and x.id not in kept
                    and x.dtype == node.dtype and x.id not in runs):
                runs[x.id] = (node, first)
            first += int(prod(x.shape).value)
    return runs
