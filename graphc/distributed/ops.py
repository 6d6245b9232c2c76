"""The graph ops of data-parallel training.

Two markers are built with the graph, before any communicator is known:

* :class:`Sync` with ``what="gradient"``: an optimizer wraps every gradient in one
  (``sync_gradient``) before its update reads it;
* :class:`Sync` with ``what="mean"``: ``gc.distributed.allreduce_mean(x)``, a value
  (a loss, an accuracy) to average over the processes.

A Session without a communicator drops both before anything is compiled (they cost
nothing); a Session with one replaces them by :class:`AllreduceMean` nodes
(:mod:`graphc.distributed.rewrite`). Their reference (and gradient) is the identity, so
a graph holding them also evaluates where no Session rewrote it.

:class:`AllreduceMean` averages the concatenation of its float inputs over the ranks of
its communicator. Its value is that flat vector plus one element: the count of ranks
whose step had failed before this allreduce (every rank sends 0, or 1 when its own step
failed; then the ranks that did not fail raise :data:`REMOTE_FAILURE`). The last input is
the communicator's handle (an int64 constant, so the compiled code reads it at run time
and the same library serves every process).
"""

from __future__ import annotations

import numpy as np

from ..ir import dtypes as _dt
from ..ir.errors import DTypeError, GraphcError, ShapeError, at, user_site
from ..ir.graph import Kind, Op, Tensor, as_tensor, make

#: the message of a step that fails because another rank's step failed
REMOTE_FAILURE = "the step failed on another rank"


class Sync(Op):
    """A marker: the identity until a Session with a communicator rewrites it. Elementwise
    (``a0``), so that where nobody dropped it (a program lowered by hand) it fuses into
    its reader and still costs nothing."""

    name = "sync"
    kind = Kind.ELEMENTWISE

    def infer(self, inputs, what):
        x = inputs[0]
        if x.dtype not in _dt.FLOATS:
            raise DTypeError(f"allreduce_mean: {x.name} is {x.dtype}; only float tensors are "
                             f"averaged over processes")
        if None in x.shape and what == "gradient":
            raise ShapeError(f"sync: gradient {x.name} of shape {x.shape} depends on the batch "
                             f"size")
        return x.shape, x.dtype

    def reference(self, ctx, node, x):
        return x

    def scalar(self, node, args):
        return args[0]

    def grad(self, node, g):
        return [g]

    def label(self, attrs):
        return "sync_gradient" if attrs["what"] == "gradient" else "allreduce_mean"


def sync_gradient(g: Tensor) -> Tensor:
    """Mark the gradient ``g`` to be averaged over the processes of a Session's
    communicator before an update reads it (what every ``gc.optim`` optimizer does).

    Example::

        g = sync_gradient(gc.grad(loss, [W])[0])
    """
    if not isinstance(g, Tensor) or g.dtype not in _dt.FLOATS:
        return g
    return make(Sync, [g], {"what": "gradient"})


def allreduce_mean(x: Tensor) -> Tensor:
    """``x`` averaged over the processes of the Session's communicator (a loss or an
    accuracy every rank should report alike); ``x`` itself in a Session without one.

    ``x`` has a fixed shape (no batch dimension): average per-example values first.

    Example::

        loss = gc.mean(gc.softmax_cross_entropy(logits, y))
        mean_loss = gc.distributed.allreduce_mean(loss)
        sess = gc.Session(g, comm=MPI.COMM_WORLD)
        sess.run(mean_loss, feed)        # the same number on every rank
    """
    x = as_tensor(x)
    if None in x.shape:
        raise ShapeError(f"allreduce_mean: {x.name} has shape {x.shape}; average over the "
                         f"batch first (gc.mean) so every rank sends the same size"
                         f"{at(user_site())}")
    return make(Sync, [x], {"what": "mean"})


class AllreduceMean(Op):
    """The average over ranks of its float inputs, concatenated, then the failure count
    (see the module docstring). ``attrs``: ``comm`` (the mpi4py communicator), ``size``
    (its number of ranks); the last input is the communicator's handle."""

    name = "allreduce_mean"
    kind = Kind.OPAQUE
    pure = False
    can_fail = True  # another rank's step failed
    #: fusion keeps the kernel where the step's order puts it
    effect = True

    def infer(self, inputs, comm, size):
        *xs, handle = inputs
        dtypes = {x.dtype for x in xs}
        if len(dtypes) != 1 or not dtypes <= set(_dt.FLOATS) or handle.dtype != "int64":
            raise DTypeError(f"allreduce_mean: inputs of one float dtype and an int64 handle, "
                             f"got {[i.dtype for i in inputs]}")
        if any(None in x.shape for x in xs):
            raise ShapeError("allreduce_mean: an input depends on the batch size")
        return (sum(int(np.prod(x.shape)) for x in xs) + 1,), dtypes.pop()

    def reference(self, ctx, node, *values):
        comm = node.attrs["comm"]
        buf = np.concatenate([np.asarray(v, node.dtype).reshape(-1) for v in values[:-1]]
                             + [np.zeros(1, node.dtype)])
        done = getattr(ctx, "collectives_done", 0)
        ctx.collectives_done = done + 1
        from mpi4py import MPI
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        if buf[-1] != 0:
            raise GraphcError(f"{REMOTE_FAILURE} (allreduce_mean {node.name})")
        buf[:-1] /= node.attrs["size"]
        return buf

    def grad(self, node, g):
        raise GraphcError(f"allreduce_mean ({node.name}) has no gradient")

    def label(self, attrs):
        return "allreduce_mean"


def collective_counts(nodes) -> list[tuple[str, int]]:
    """(dtype, elements) of each :class:`AllreduceMean` among ``nodes``, in their order."""
    return [(n.dtype, n.shape[0]) for n in nodes if isinstance(n.op, AllreduceMean)]
