"""Lowering of the debugging ops (:mod:`graphc.ops.debug`): print, check, check_finite.

Each is a kernel of its own that copies its input to its output. A print writes its line
first (only at the steps its ``every`` selects); a check tests every element before it
writes anything, so a failing check leaves even a value computed in place untouched.
"""

from __future__ import annotations

from ..ops.debug import Check, CheckFinite, Print, shape_parts
from . import ir
from .fusion import Group
from .ir import Bin, Call, Copy, Fail, If, Lit, Load, Loop, Not, Ptr, Sym, prod, size
from .memplan import Plan
from .registry import lowers


def _copy(group: Group, plan: Plan) -> list:
    node = group.root
    return [Copy(plan.buffer(node), plan.buffer(node.inputs[-1]), prod(node.shape))]


@lowers(Print)
def lower_print(group: Group, plan: Plan) -> list:
    node = group.root
    x = node.inputs[0]
    parts = tuple(size(p) if p is None else p for p in
                  [node.attrs["message"], " ", *shape_parts(node.shape), " "])
    line = ir.Print(parts, Ptr(plan.buffer(x), ir.ZERO), prod(x.shape), node.attrs["summarize"])
    every = node.attrs["every"]
    if every > 1:
        line = If(Bin("==", Bin("%", Sym("step"), Lit(every)), ir.ZERO), [line])
    return [line] + _copy(group, plan)


@lowers(Check)
def lower_check(group: Group, plan: Plan) -> list:
    node = group.root
    cond = node.inputs[0]
    q = Sym("q")
    fail = Fail((f"{node.attrs['message']} (false at element ", q, ")"))
    return [Loop("q", prod(cond.shape), [If(Not(Load(plan.buffer(cond), q)), [fail])])] + _copy(group, plan)


@lowers(CheckFinite)
def lower_check_finite(group: Group, plan: Plan) -> list:
    node = group.root
    x = node.inputs[0]
    q = Sym("q")
    v = Load(plan.buffer(x), q)
    message = node.attrs["message"]
    nan = Fail((f"{message} (NaN at element ", q, ")"))
    inf = Fail((f"{message} (Inf at element ", q, ")"))
    test = If(Call("isnan", (v,), x.dtype), [nan], [If(Call("isinf", (v,), x.dtype), [inf])])
    return [Loop("q", prod(x.shape), [test])] + _copy(group, plan)
