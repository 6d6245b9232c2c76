"""Lowering of gather (rows of x at int indices) and its adjoint gather_grad (a
scatter-add, serial over the indices so that repeated indices add up in index order:
deterministic). Both first check every index and fail the step, before writing
anything, on the first one outside ``[0, depth)``."""

from __future__ import annotations

from ..ir.graph import Tensor
from ..ops.indexing import Gather, GatherGrad
from . import ir
from .fusion import Group
from .ir import Bin, Cast, Expr, If, Let, Lit, Load, Loop, Set, Store, Sym, Zero, add, mul, prod, size
from .memplan import Plan
from .registry import lowers


def _dims(x_shape: tuple, idx: Tensor, axis: int) -> tuple[Expr, Expr, Expr, Expr]:
    """(outer, the number of indices, depth, inner) of a gather along ``axis``."""
    return prod(x_shape[:axis]), prod(idx.shape), size(x_shape[axis]), prod(x_shape[axis + 1:])


def _check(plan: Plan, idx: Tensor, count: Expr, depth: Expr) -> list:
    """Fail on the first index outside [0, depth) (the NumPy reference's message)."""
    pi, j, c = plan.buffer(idx), Sym("j"), Sym("c")
    bad = Bin("&&", Bin("<", Sym("bad"), Lit(0)), Bin("||", Bin("<", c, Lit(0)), Bin(">=", c, depth)))
    return [Let("bad", "int64", Lit(-1), mutable=True),
            Loop("j", count, [Let("c", "int64", Cast("int64", Load(pi, j))), If(bad, [Set("bad", j)])]),
            If(Bin(">=", Sym("bad"), Lit(0)), [ir.Fail((
                "index ", Cast("int64", Load(pi, Sym("bad"))), " (element ", Sym("bad"),
                " of the indices, flat) is out of range [0, ", depth, "); negative indices are refused"))])]


@lowers(Gather)
def lower_gather(group: Group, plan: Plan) -> list:
    """out[o, j, i] = x[o, idx[j], i]."""
    node = group.root
    x, idx = node.inputs
    outer, count, depth, inner = _dims(x.shape, idx, node.attrs["axis"])
    o, j, i = Sym("o"), Sym("j"), Sym("i")
    src = add(mul(add(mul(o, depth), Cast("int64", Load(plan.buffer(idx), j))), inner), i)
    dst = add(mul(add(mul(o, count), j), inner), i)
    copy = Store(plan.buffer(node), dst, Load(plan.buffer(x), src))
    return _check(plan, idx, count, depth) + [
        Loop("o", outer, [Loop("j", count, [Loop("i", inner, [copy], vector=True)])],
             threads=prod(node.shape), collapse=2)]


@lowers(GatherGrad)
def lower_gather_grad(group: Group, plan: Plan) -> list:
    """Zeros, then out[o, idx[j], i] += g[o, j, i] for j in order (serial over j)."""
    node = group.root
    g, idx = node.inputs
    outer, count, depth, inner = _dims(node.shape, idx, node.attrs["axis"])
    out, o, j, i = plan.buffer(node), Sym("o"), Sym("j"), Sym("i")
    dst = add(mul(add(mul(o, depth), Sym("c")), inner), i)
    src = add(mul(add(mul(o, count), j), inner), i)
    add_row = Store(out, dst, Bin("+", Load(out, dst), Load(plan.buffer(g), src)))
    scatter = Loop("j", count, [Let("c", "int64", Cast("int64", Load(plan.buffer(idx), j))),
                                Loop("i", inner, [add_row], vector=True)])
    # threads split the independent outer slices only; each keeps the index order
    return _check(plan, idx, count, depth) + [Zero(out, prod(node.shape)),
                                              Loop("o", outer, [scatter], threads=prod(g.shape))]
