"""Lowering: an optimized program becomes a :class:`~graphc.lower.ir.LoweredProgram`,
the same for every target.

Pipeline (each stage a plain function of the previous one's output)::

    Program --fuse--> [Group] --plan_memory--> Plan --lower kernels--> LoweredProgram

Kernels are lowered by op family, mirroring ``graphc/ops``: :mod:`.elementwise`
(fused loops, epilogues, casts), :mod:`.reduce`, :mod:`.linalg`, :mod:`.conv`,
:mod:`.pool`, :mod:`.nn`, :mod:`.shape`. An op that becomes a kernel registers its
lowering with ``@lowers(OpClass)`` (:mod:`.registry`).

Example::

    lowered = lower(optimize(Program([loss, train])))
    [k.name for k in lowered.kernels]
"""

from __future__ import annotations

import numpy as np

from ..ir.dtypes import FLOATS
from ..ir.errors import GraphcError, at
from ..ir.graph import Kind, Tensor
from ..ir.program import Program
from . import conv, debug, distributed, indexing, ir, linalg, nn, pool, scan, shape  # noqa: F401 - register
from .elementwise import lower_group
from .fusion import Group, assigned_values, fuse, source_of
from .ir import Buffer, Call, Copy, Fail, If, Kernel, Lit, LoweredProgram, Place, prod
from .memplan import Plan, plan_memory
from .reduce import lower_reduction
from .registry import lowering_of
from .views import concat_in_place, strided_views

__all__ = ["lower"]


def lower(program: Program, check_numerics: bool = False, separate: bool = False,
          prefix: str = "") -> LoweredProgram:
    """Fuse, plan and lower ``program``.

    ``check_numerics`` builds the debug step: no fusion (one kernel per node, in program
    order, each storing its value) and after each kernel a check of the float value it
    made, so the first NaN/Inf is named at the node that produced it, as the NumPy
    backend names it; nothing is written to a variable before the step ends (an update
    computed in place could not be taken back). ``separate`` builds the same unfused
    step without the checks (``Session.verify`` stores every value with it). ``prefix``
    starts the kernels' names (a scan body's program, lowered the same way).
    """
    separate = separate or check_numerics

    def nested(body: Program, body_prefix: str) -> LoweredProgram:
        return lower(body, check_numerics, separate, body_prefix)

    if not separate:  # (the debug build stores every value: slices stay copies)
        program = strided_views(program)
    groups = fuse(program, separate=separate, prefix=prefix)
    parts = {} if separate else concat_in_place(groups, program)
    runs = {} if separate else distributed.runs_in_place(groups, program)
    plan = plan_memory(groups, program, in_place=not separate, parts=parts, runs=runs)
    kernels = [_kernel(g, plan, check_numerics, nested) for g in groups]
    if check_numerics:
        kernels = _with_view_checks(program, kernels, plan)
    finish = _fetch_copies(program, plan) + _commits(program, plan)
    return LoweredProgram(plan.feeds, plan.variables, plan.constants, list(program.outputs),
                          plan.arena_bytes, kernels, finish, plan)


def _kernel(group: Group, plan: Plan, check_numerics: bool, nested) -> Kernel:
    root = group.root
    if root is None or root.op.kind is Kind.ELEMENTWISE:
        body = lower_group(group, plan)
    elif root.op.kind is Kind.REDUCTION:
        body = lower_reduction(group, plan)
    else:
        fn = lowering_of(root.op)
        if fn is None:
            raise GraphcError(f"{root.op.name} ({root.name}) cannot be compiled: no lowering is "
                              f"registered for {type(root.op).__name__}{at(root.site)}")
        body = fn(group, plan, nested) if fn.nested else fn(group, plan)
    if check_numerics:
        body += [s for n in group.stores if n.dtype in FLOATS for s in check_finite(n, plan)]
    return Kernel(group.name, group.kind, group.nodes, group.stores, _prune(body))


def _prune(stmts: list) -> list:
    """``stmts`` without the loops that do nothing: an empty static extent, or a body of
    such loops only. (A (N, 0) value: the loop over N rows of no elements is skipped, not
    run N times, which for a huge N would never end.)"""
    out = []
    for s in stmts:
        if isinstance(s, ir.Loop):
            body = _prune(s.body)
            if body and s.extent != Lit(0):
                out.append(ir.Loop(s.var, s.extent, body, s.threads, s.collapse, s.vector, s.reduce))
        elif isinstance(s, ir.Block):
            out.append(ir.Block(_prune(s.body)))
        elif isinstance(s, If):
            out.append(If(s.cond, _prune(s.then), _prune(s.orelse)))
        else:
            out.append(s)
    return out


def _with_view_checks(program: Program, kernels: list[Kernel], plan: Plan) -> list[Kernel]:
    """Insert, in program order, a check of each float view (reshape) of a leaf: the NumPy
    backend checks a view's value too, and a fed NaN reshaped is first seen there. A view
    of a computed value needs none (its source was checked first)."""
    starts = {k.nodes[0].id: k for k in kernels}  # a kernel runs where its first node stands
    out: list[Kernel] = []
    for n in program.nodes:
        k = starts.get(n.id)
        if k is not None:
            out.append(k)
        elif (n.op.kind is Kind.VIEW and n.dtype in FLOATS
              and source_of(n).op.kind.is_leaf):
            out.append(Kernel(f"c{len(out)}_{n.op.name}_check", "check", [n], [n],
                              check_finite(n, plan)))
    return out


def check_finite(node: Tensor, plan: Plan) -> list:
    """Statements that fail if ``node``'s stored value holds a NaN (anywhere: NaN is named
    before Inf, as the NumPy backend does) or else an Inf (``check_numerics``).

    The message is ``"NaN produced by <node name>"`` (or ``Inf``); the executable turns it
    into the same :class:`NumericsError` as the NumPy backend's.
    """
    n = prod(node.shape)
    v = ir.Load(plan.buffer(node), ir.Sym("q"))
    return [ir.Loop("q", n, [If(Call(test, (v,), node.dtype), [Fail((f"{bad} produced by {node.name}",))])])
            for test, bad in (("isnan", "NaN"), ("isinf", "Inf"))]


def _fetch_copies(program: Program, plan: Plan) -> list:
    """Copy fetched values no kernel wrote in place (leaves, a value fetched twice ...)."""
    out = []
    for j, o in enumerate(program.outputs):
        if o.dtype is None or plan.output_index(o) == j:
            continue
        out.append(Copy(Buffer(f"fetch{j}", o.dtype, Place("out", j)), plan.buffer(o), prod(o.shape)))
    return out


def _commits(program: Program, plan: Plan) -> list:
    """Write assigned values into their variables (those not written in place), every
    value read before any variable changes: a value that is itself an assigned variable
    (a swap) is first copied aside into scratch."""
    assigns = [(var, value) for var, value in assigned_values(program)
               if plan.variable_for(value) is None]
    targets = {var.id for var, _ in assigns}
    snapshots, out, offset = {}, [], 0
    for k, (var, value) in enumerate(assigns):
        src = plan.buffer(value)
        if src.place.kind == "var" and plan.variables[src.place.index].id in targets:
            itemsize = np.dtype(var.dtype).itemsize
            n = int(np.prod(var.shape, dtype=np.int64))  # (variables have static shapes)
            snap = Buffer(f"snapshot{k}", var.dtype, Place("scratch"))
            out += [ir.Scratch(snap.name, var.dtype, Lit(n), offset=Lit(offset // itemsize)),
                    Copy(snap, src, prod(var.shape))]
            snapshots[k] = snap
            offset += (n * itemsize + 63) // 64 * 64
    for k, (var, value) in enumerate(assigns):
        out.append(Copy(plan.buffer(var), snapshots.get(k) or plan.buffer(value), prod(var.shape)))
    return out

