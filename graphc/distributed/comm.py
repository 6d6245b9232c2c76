"""Communicator helpers a Session with ``comm=`` uses (mpi4py underneath).

* :func:`broadcast` gives every rank rank 0's arrays (variables, optimizer slots);
* :func:`drain` lets a rank whose step failed take part in the allreduces the other
  ranks still wait in (sending the failure flag), so that no rank hangs;
* :func:`agree` ends every distributed step: each rank learns whether any rank failed,
  and then every rank raises the same error, the first failing rank's.

Example::

    from mpi4py import MPI
    check_comm(MPI.COMM_WORLD)
    broadcast(MPI.COMM_WORLD, [w, b])           # in place, rank 0's values
"""

from __future__ import annotations

import pickle

import numpy as np

from ..ir.errors import ArgumentTypeError, GraphcError
from .ops import REMOTE_FAILURE


def mpi():
    """The ``mpi4py.MPI`` module; a clear error when mpi4py is not installed."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise GraphcError(f"distributed training needs mpi4py (pip install 'graphc[mpi]'): "
                          f"{exc}") from None
    return MPI


def check_comm(comm) -> None:
    """Raise unless ``comm`` is an mpi4py intracommunicator."""
    MPI = mpi()
    if not isinstance(comm, MPI.Intracomm) or comm == MPI.COMM_NULL:
        raise ArgumentTypeError(f"Session: comm must be an mpi4py communicator "
                                f"(e.g. MPI.COMM_WORLD), got {type(comm).__name__}")


def broadcast(comm, arrays: list[np.ndarray]) -> None:
    """Overwrite each (contiguous) array with rank 0's, in place, one Bcast each."""
    for a in arrays:
        comm.Bcast(a, root=0)


def drain(comm, counts: list[tuple[str, int]]) -> None:
    """Take part in the allreduces ``counts`` ((dtype, elements) each, in order) as a
    rank whose step failed: the last element, the failure count, is 1."""
    MPI = mpi()
    for dtype, n in counts:
        buf = np.zeros(n, dtype)
        buf[-1] = 1
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)


def on_root(comm, fn):
    """``fn()`` run on rank 0 alone (a save, a load); its result there (None elsewhere).
    When it raises, every rank raises its error (see :func:`agree`)."""
    result = exc = None
    if comm.Get_rank() == 0:
        try:
            result = fn()
        except Exception as e:
            exc = e
    error = agree(comm, exc)
    if error is not None:
        raise error
    return result


def is_remote(exc: BaseException) -> bool:
    """Whether ``exc`` says only that another rank's step failed."""
    return isinstance(exc, GraphcError) and REMOTE_FAILURE in str(exc)


def agree(comm, exc: BaseException | None) -> BaseException | None:
    """The error every rank raises for this step, or None when no rank failed.

    ``exc`` is this rank's own failure (None if none, or only another rank's). The first
    failing rank's error is sent to all (its type when it can be pickled, else a
    GraphcError with its text), its message starting "rank r of n: "."""
    MPI = mpi()
    rank, size = comm.Get_rank(), comm.Get_size()
    flag = np.array([rank if exc is not None else size], np.int64)
    comm.Allreduce(MPI.IN_PLACE, flag, op=MPI.MIN)  # (a buffer: no pickling per step)
    first = int(flag[0])
    if first == size:
        return None
    payload = None
    if rank == first:
        try:
            payload = pickle.dumps(exc)
            pickle.loads(payload)
        except Exception:
            payload = pickle.dumps(GraphcError(str(exc)))
    payload = comm.bcast(payload, root=first)
    error = pickle.loads(payload)
    if isinstance(error, BaseException) and error.args and isinstance(error.args[0], str):
        error.args = (f"rank {first} of {size}: {error.args[0]}",) + error.args[1:]
    return error
