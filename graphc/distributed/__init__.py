"""Data-parallel training over MPI processes (``gc.distributed``).

Every process holds the whole model; ``gc.Session(g, comm=MPI.COMM_WORLD)`` broadcasts
the variables (optimizer slots included) from rank 0, and every optimizer update averages
its gradients over the ranks before applying them (on C inside the one native step), so
the ranks keep identical variables. Each rank feeds its own part of the batch
(``gc.data.batches(..., shard=(rank, size))``). Launch with ``mpirun -np 2 python train.py``.

Example::

    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    train = gc.optim.Adam(1e-3).minimize(loss)
    mean_loss = gc.distributed.allreduce_mean(loss)     # the same value on every rank
    sess = gc.Session(g, comm=comm)
    for xb, yb in gc.data.batches(x, y, 64, shard=(comm.rank, comm.size)):
        l, _ = sess.run([mean_loss, train], {x_in: xb, y_in: yb})
"""

from __future__ import annotations

from .comm import mpi
from .ops import REMOTE_FAILURE, allreduce_mean, sync_gradient
from .rewrite import BUCKET_BYTES

__all__ = ["allreduce_mean", "sync_gradient", "world", "rank_and_size", "REMOTE_FAILURE",
           "BUCKET_BYTES"]


def world():
    """``MPI.COMM_WORLD`` (GraphcError when mpi4py is not installed).

    Example::

        sess = gc.Session(g, comm=gc.distributed.world())
    """
    return mpi().COMM_WORLD


def rank_and_size(comm=None) -> tuple[int, int]:
    """``(rank, size)`` of ``comm``; ``(0, 1)`` when ``comm`` is None.

    Example::

        rank, size = gc.distributed.rank_and_size(comm)
    """
    if comm is None:
        return 0, 1
    return comm.Get_rank(), comm.Get_size()
