"""A Session's runs over an MPI communicator (``gc.Session(g, comm=...)``): the broadcast
of the state from rank 0, and a step that every rank commits or none does.

Example::

    broadcast_new(sess)                     # at start: rank 0's values everywhere
    outputs = run(sess, flat, feed, None)   # one step of a fetch list on every rank
"""

from __future__ import annotations

from ..distributed import comm as _comm
from ..distributed.ops import collective_counts
from ..distributed.rewrite import has_markers
from ..ir.program import Program


def broadcast_new(sess) -> None:
    """Give every variable of ``sess``'s graph not broadcast yet rank 0's value (every rank
    calls this with the same graph, so the broadcasts match)."""
    todo = [v for v in sess.graph.variables() if v.id not in sess._synced]
    _comm.broadcast(sess.comm, [sess._state(v) for v in todo])
    sess._synced.update(v.id for v in todo)
    sess._nodes_seen = len(sess.graph.nodes)


def run(sess, flat: list, feed: dict | None, training: bool | None) -> list:
    """One step of ``flat`` on every rank: commits only when no rank failed; otherwise every
    rank takes part in the allreduces still to come and raises the first failing rank's
    error. A fetch list without gradients or ``allreduce_mean`` runs on its rank alone."""
    if len(sess.graph.nodes) != sess._nodes_seen:  # new variables since the last run?
        broadcast_new(sess)
    if not sess.is_compiled(flat) and has_markers(Program(flat)):
        compiled = exc = None  # (a collective fetch set: a build failing on one host
        # fails on every host, instead of leaving the others waiting in the step)
        try:
            compiled = sess.compile(flat)
        except Exception as e:
            exc = e
        _raise(_comm.agree(sess.comm, exc))
    compiled = sess.compile(flat)
    kernels = getattr(compiled.executable, "kernels", [])  # (C: the collectives' order)
    counts = collective_counts([n for k in kernels for n in k.nodes] or compiled.program.nodes)
    if not counts:  # (no gradient, no allreduce_mean: this rank's business alone)
        compiled, arrays, batch = sess._prepare(flat, feed, training)
        return sess._step(flat, compiled, arrays, batch)
    ctx = outputs = exc = None
    try:
        compiled, arrays, batch = sess._prepare(flat, feed, training)
        ctx = sess._context(batch)
        outputs = sess._execute(compiled, arrays, ctx)
    except Exception as e:
        exc = e
        done = len(counts) if ctx is not None and compiled.source is not None else (
            getattr(ctx, "collectives_done", 0))
        _comm.drain(sess.comm, counts[done:])
    _raise(_comm.agree(sess.comm, None if exc is None or _comm.is_remote(exc) else exc))
    return sess._commit(flat, compiled, ctx, outputs)


def _raise(error: BaseException | None) -> None:
    if error is not None:
        raise error
