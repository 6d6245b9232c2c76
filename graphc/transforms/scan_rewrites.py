"""Rewrites of compiled scans, run by the ``scan_bodies`` pass once the gradients are built:
a scan drops the sequences its optimized body no longer reads, and its body's GEMMs read
the captured weights packed once before the loop.

Example::

    node = prepack_weights(drop_unread_sequences(node))   # (passes.scan_bodies)
"""

from __future__ import annotations

from ..ir.graph import Tensor, make
from ..ir.program import Program, clone, rewrite, toposort
from ..ops.linalg import MatMul, PackB, one_gemm, packed_matmul
from .scan import Body


def drop_unread_sequences(node: Tensor) -> Tensor:
    """Scan ``node`` without the sequences its (optimized) body never reads. A gradient's
    body reads few of the values the forward pass could keep, and a value no scan reads is
    not stored. Run after the gradients are built: a :class:`Saved` node reads the
    sequences its gradient rule needs until optimization drops them."""
    a = node.attrs
    body, nc, nx = a["body"], a["carries"], a["sequences"]
    read = {n.id for n in toposort(body.outputs)}
    keep = [k for k in range(nx) if body.inputs[nc + k].id in read]
    if len(keep) == nx:
        return node
    inputs = body.inputs[:nc] + [body.inputs[nc + k] for k in keep] + body.inputs[nc + nx:]
    new = clone(node, (*node.inputs[:nc], *(node.inputs[nc + k] for k in keep),
                       *node.inputs[nc + nx:]))
    new.attrs = {**a, "body": Body(body.graph, inputs, body.outputs, body.captured),
                 "sequences": len(keep)}
    return new


def prepack_weights(node: Tensor) -> Tensor:
    """Scan ``node`` whose body multiplies by a captured matrix (a weight: the same at every
    step) reading it packed: the packing (:class:`~graphc.ops.linalg.PackB`) runs once
    before the loop, in the enclosing program, and the body's GEMMs skip theirs (for an
    LSTM's ``h W_hh^T``, 64 x 512 x 128, about a sixth of the GEMM). Run after the gradients
    are built."""
    a = node.attrs
    body, varying = a["body"], a["carries"] + a["sequences"]
    outer_of = {p.id: o for p, o in zip(body.inputs[varying:], body.captured)}

    def packable(n: Tensor) -> bool:
        return (isinstance(n.op, MatMul) and n.inputs[1].id in outer_of and n.inputs[1].ndim == 2
                and (n.ndim == 2 or one_gemm(n)))

    if not any(packable(n) for n in toposort(body.outputs)):
        return node
    packs: dict[tuple, Tensor] = {}

    def swap(n: Tensor) -> Tensor:
        if not packable(n):
            return n
        key = (n.inputs[1].id, n.attrs["transpose_b"])
        if key not in packs:
            outer = outer_of[n.inputs[1].id]
            with outer.graph.detached(), outer.graph.derived(n.role, n.site, n.scope):
                packed = make(PackB, [outer], {"transpose": n.attrs["transpose_b"]}, name="pack_b")
            with body.graph.detached():
                packs[key] = body.graph.capture(packed)
        return packed_matmul(n, packs[key])

    program = rewrite(Program(body.outputs), swap)
    read = {n.id for n in program.nodes}
    caps = [(o, i) for o, i in body.graph.captures.values() if i.id in read]
    new = clone(node, (*node.inputs[:varying], *(o for o, _ in caps)))
    new.attrs = {**a, "body": Body(body.graph, body.inputs[:varying] + [i for _, i in caps],
                                   program.outputs, [o for o, _ in caps])}
    return new
