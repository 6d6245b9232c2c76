"""Lowering of :class:`~graphc.distributed.ops.AllreduceMean`: one kernel per bucket.

The kernel copies its inputs (a bucket's gradients, each stored whole by the kernel that
computed it) one after the other into its output, a contiguous vector with one more
element (the failure count), and calls the target's ``allreduce_mean`` function on it,
which averages it over the ranks in place with one MPI call (the C target:
``gc_mpi_allreduce_mean_{f,d}`` of ``backends/c/mpi.py``). It fails when another rank's
step failed, or when MPI reports an error.
"""

from __future__ import annotations

from ..distributed.ops import REMOTE_FAILURE, AllreduceMean
from .fusion import Group
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
