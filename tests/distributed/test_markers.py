"""The gradient markers and their rewrite, in one process (no mpirun).

Without a communicator the markers vanish before compiling; with one (``COMM_SELF``,
one rank) they become allreduces in buckets, and training gives what it gives without.
"""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.distributed.ops import AllreduceMean, Sync
from graphc.distributed.rewrite import buckets, prepare
from graphc.ir.program import Program


def _model(dtype="float64"):
    rng = np.random.default_rng(0)
    with gc.Graph() as g:
        x = gc.placeholder((None, 4), dtype=dtype, name="x")
        w1 = gc.variable(rng.normal(size=(4, 6)).astype(dtype), name="W1")
        b1 = gc.variable(np.zeros(6, dtype), name="b1")
        w2 = gc.variable(rng.normal(size=(6, 1)).astype(dtype), name="W2")
        loss = gc.mean(gc.square(gc.relu(x @ w1 + b1) @ w2 - 1.0))
        train = gc.optim.SGD(0.05, momentum=0.9).minimize(loss)
        mean = gc.distributed.allreduce_mean(loss)
    return g, x, loss, train, mean


def test_optimizer_marks_each_gradient():
    g, x, loss, train, mean = _model()
    marks = [n for n in Program([train]).nodes if isinstance(n.op, Sync)]
    assert len(marks) == 3 and all(m.attrs["what"] == "gradient" for m in marks)


def test_without_comm_the_markers_cost_nothing(backend):
    g, x, loss, train, mean = _model()
    sess = gc.Session(g, backend=backend)
    compiled = sess.compile([mean, train])
    assert not any(isinstance(n.op, (Sync, AllreduceMean)) for n in compiled.program.nodes)
    if compiled.source is not None:
        assert "MPI_Allreduce" not in compiled.source and "<mpi.h>" not in compiled.source


def test_buckets_cut_by_bytes_in_backward_order():
    g, x, loss, train, mean = _model()
    program = Program([train])
    marks = [n for n in program.nodes if isinstance(n.op, Sync)]
    assert [len(b) for b in buckets(marks, 1)] == [1, 1, 1]
    assert [len(b) for b in buckets(marks, 4 << 20)] == [3]
    assert [len(b) for b in buckets(marks, 6 * 8 + 1)] in ([2, 1], [1, 2])


def _comm():
    pytest.importorskip("mpi4py", reason="mpi4py is not installed")
    from mpi4py import MPI
    return MPI.COMM_SELF


def test_rewrite_gives_one_allreduce_per_bucket():
    comm = _comm()
    g, x, loss, train, mean = _model()
    out = prepare(Program([mean, train]), comm, bucket_bytes=1)
    reduces = [n for n in out.nodes if isinstance(n.op, AllreduceMean)]
    assert len(reduces) == 4  # the loss, then one per gradient
    assert not any(isinstance(n.op, Sync) for n in out.nodes)
    assert [n.shape for n in reduces][0] == (2,)  # value + the failure count
    whole = prepare(Program([train]), comm)
    assert [n.shape for n in whole.nodes if isinstance(n.op, AllreduceMean)] == [(4 * 6 + 6 + 6 + 1,)]


def test_one_rank_comm_trains_as_without(backend):
    """COMM_SELF: the allreduce runs (in gc_run on C) and changes nothing."""
    comm = _comm()
    feeds = [np.random.default_rng(k).normal(size=(5, 4)) for k in range(3)]
    results = []
    for c in (None, comm):
        g, x, loss, train, mean = _model()
        sess = gc.Session(g, backend=backend, comm=c)
        losses = [float(sess.run([mean, train], {x: f})[0]) for f in feeds]
        results.append((losses, [sess.get_value(v) for v in g.variables()]))
        if c is not None and sess.backend == "c":
            assert "MPI_Allreduce" in sess.compile([mean, train]).source
    (l0, v0), (l1, v1) = results
    np.testing.assert_allclose(l1, l0, rtol=1e-12)
    for a, b in zip(v0, v1):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_allreduce_mean_needs_a_fixed_shape():
    with gc.Graph():
        x = gc.placeholder((None, 3))
        with pytest.raises(gc.ShapeError, match="average over the batch first"):
            gc.distributed.allreduce_mean(x)
        assert gc.distributed.allreduce_mean(gc.mean(x)).shape == ()


def test_session_rejects_a_non_communicator():
    _comm()
    g, *_ = _model()
    with pytest.raises(gc.ArgumentTypeError, match="mpi4py communicator"):
        gc.Session(g, backend="numpy", comm=object())
