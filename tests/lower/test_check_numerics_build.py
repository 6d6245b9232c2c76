"""The check_numerics build: one kernel per node in program order, every value stored and
checked, nothing written in place; and loops that do nothing are dropped."""

import numpy as np

import graphc as gc
from graphc.ir.graph import Kind
from graphc.ir.program import Program
from graphc.lower import ir, lower
from graphc.lower.fusion import fuse
from graphc.transforms.passes import optimize


def _training_step():
    with gc.Graph():
        x = gc.placeholder((None, 3), name="x")
        w = gc.variable(np.ones((3, 2), np.float32), name="w")
        b = gc.variable(np.zeros(2, np.float32), name="b")
        loss = gc.mean(gc.square(gc.relu(gc.matmul(x, w) + b)))
        train = gc.optim.SGD(lr=0.1, momentum=0.9).minimize(loss)
    return optimize(Program([loss, train]))


def test_separate_build_is_one_kernel_per_node_in_program_order():
    program = _training_step()
    computed = [n for n in program.nodes
                if not n.op.kind.is_leaf and n.op.kind not in (Kind.VIEW, Kind.UPDATE)]
    kernels = fuse(program, separate=True)
    assert [k.nodes for k in kernels] == [[n] for n in computed]
    assert all(k.stores == k.nodes for k in kernels)
    assert len(fuse(program)) < len(kernels)  # (the ordinary build does fuse this step)


def test_every_float_value_is_checked_and_no_variable_is_written_in_place():
    program = _training_step()
    lowered = lower(program, check_numerics=True)
    for k in lowered.kernels:
        fails = [s for s in ir.walk(k.body) if isinstance(s, ir.Fail)]
        texts = {p for f in fails for p in f.parts if isinstance(p, str)}
        assert {f"NaN produced by {k.stores[0].name}", f"Inf produced by {k.stores[0].name}"} <= texts
        for s in ir.walk(k.body):
            if isinstance(s, ir.Store):
                assert s.buf.place.kind != "var", (k.name, s.buf.name)


def test_loops_over_an_empty_extent_are_dropped():
    with gc.Graph():
        x = gc.placeholder((None, 0))
        s = gc.sum(x)
    (kernel,) = lower(optimize(Program([s]))).kernels
    assert not [s for s in ir.walk(kernel.body) if isinstance(s, ir.Loop)]
