"""Lowering of reductions: sum/mean/max/min/prod (with a fused elementwise prologue),
logsumexp, argmax and the element count.

A reduction of kind REDUCTION says how it combines (``op.combine``: ``sum``, ``prod``,
``max`` or ``min``) and whether it averages (``op.average``). Accumulation is in float64
in a fixed order (deterministic). When the innermost input dimension is reduced, each
output keeps one register accumulator (a SIMD reduction for sums and products); when it is
kept (column sums), the input streams once into float64 scratch accumulators.

Example::

    sum(x * x, axis=1) of (N, 7): for i0 < N { acc = 0; for i1 < 7 (simd +acc) { v = l0*l0; acc += v }
                                              out[i0] = acc }
"""

from __future__ import annotations

from ..ir.dtypes import FLOATS
from ..ops.reduce import ArgMax, Count, CumSum, LogSumExp, no_maximum
from . import ir
from .elementwise import (
    broadcast_strides,
    calc_dtype,
    collapse,
    compose,
    dense_index,
    index,
    load_symbol,
    math_block,
    serial_nest,
)
from .fusion import Group
from .ir import ZERO, Bin, Block, Call, Cast, Expr, If, Let, Lit, Load, Loop, Set, Store, Sym, add, mul, prod
from .memplan import Plan
from .registry import lowers
from .views import layout

MINUS_INF = Lit(float("-inf"), "float64")
#: the accumulator's start: the identity of the combination
INIT = {"sum": Lit(0.0, "float64"), "prod": Lit(1.0, "float64"), "max": MINUS_INF,
        "min": Lit(float("inf"), "float64")}
#: the OpenMP SIMD reduction operator of a combination (max/min: no SIMD reduction, their
#: NaN rule is no C operator)
SIMD = {"sum": "+", "prod": "*"}


def kept_strides(shape: tuple, axes: set) -> list[Expr]:
    """Strides of the output element an input element reduces into (0 on reduced axes)."""
    own = ir.strides(tuple(d for k, d in enumerate(shape) if k not in axes))
    out, j = [], 0
    for k in range(len(shape)):
        if k in axes:
            out.append(ZERO)
        else:
            out.append(own[j])
            j += 1
    return out


def nonempty(node, count: Expr) -> list:
    """max/argmax over the batch axis: fail when it has 0 rows (the op's ``can_fail``)."""
    if not node.op.can_fail:
        return []
    return [If(Bin("==", count, ZERO), [ir.Fail((no_maximum(node),))])]


def _combine(op: str, v: Expr, acc: Expr) -> Expr:
    if op == "max":  # NaN propagates: the first-maximum rule
        return ir.Select(Call("first_max_takes", (v, acc), "float64"), v, acc)
    if op == "min":  # the same rule on the negated values (negation is exact)
        return ir.Select(Call("first_max_takes", (ir.Neg(v), ir.Neg(acc)), "float64"), v, acc)
    return Bin("*" if op == "prod" else "+", acc, v)


def lower_reduction(group: Group, plan: Plan) -> list:
    """sum / mean / max over any axes, the input computed by a fused prologue if any."""
    root = group.root
    op = root.op
    x = root.inputs[0]
    axes = set(root.attrs["axes"])
    if group.members:
        loads = group.loads()
        value_expr = compose(group.members, loads)[x.id]
    else:
        loads, value_expr = [x], load_symbol(0)
    shape = x.shape
    patterns = [broadcast_strides(t, shape) for t in loads]
    classes = ["r" if k in axes else "k" for k in range(len(shape))]
    dims, st, cls = collapse(shape, patterns + [kept_strides(shape, axes)], classes)
    loop_vars = [f"i{k}" for k in range(len(dims))]
    load_index = [add(layout(t)[0], index(loop_vars, s)) for t, s in zip(loads, st)]
    out_index = index(loop_vars, st[-1])
    flat = dense_index(loop_vars, dims)
    out = plan.buffer(root)
    count = prod([shape[a] for a in sorted(axes)])
    init = INIT[op.combine]
    stmts, (v,) = math_block([value_expr], loads, load_index, plan,
                             calc_dtype([root] + loads), flat)
    value = stmts + [Let("v", "float64", v)]

    def finish(acc: Expr) -> Expr:
        return Cast(root.dtype, Bin("/", acc, Cast("float64", count)) if op.average else acc)

    acc = Sym("acc")
    check = nonempty(root, count)
    if not (cls and cls[-1] == "k" and "r" in cls):
        # kept dims outside, reduced dims inside (in memory order, so the innermost loop
        # reads contiguously): one register accumulator per output; a sum's or product's
        # innermost loop is a SIMD reduction (a fixed, deterministic order)
        kept = [k for k in range(len(cls)) if cls[k] == "k"]
        red = [k for k in range(len(cls)) if cls[k] == "r"]
        inner = serial_nest([dims[k] for k in red], [loop_vars[k] for k in red],
                            value + [Set("acc", _combine(op.combine, Sym("v"), acc))],
                            ((SIMD[op.combine], "acc"),) if op.combine in SIMD else None)
        body = [Let("acc", "float64", init, mutable=True)] + inner + [
            Store(out, out_index, finish(acc))]
        if not kept:
            return check + [Block(body)]
        out_size = prod(root.shape)
        threads = None if isinstance(out_size, Lit) and out_size.value <= 1 else prod(shape)
        for j, k in enumerate(reversed(kept)):
            body = [Loop(loop_vars[k], dims[k], body, threads=threads if j == len(kept) - 1 else None)]
        return check + body
    # the innermost dim is kept (column sums of a matrix ...): stream through the input,
    # accumulating into float64 scratch, then convert. The scratch is the arena's
    # workspace: a step never mallocs, so it cannot fail half-way for want of memory.
    n_out = prod(root.shape)
    tmp = ir.Scratch("tmp", "float64", n_out)
    o = Sym("o")
    tmp_buf = scratch_array("tmp")
    inner = serial_nest(dims, loop_vars, value + [
        Let("acc", "float64", Load(tmp_buf, out_index), mutable=True),
        Set("acc", _combine(op.combine, Sym("v"), acc)),
        Store(tmp_buf, out_index, acc)])
    return check + [Block([tmp, Loop("o", n_out, [Store(tmp_buf, o, init)])] + inner
                  + [Loop("o", n_out, [Store(out, o, finish(Load(tmp_buf, o)))])])]


def scratch_array(name: str, dtype: str = "float64") -> ir.Buffer:
    """The array a :class:`Scratch` statement of the same kernel declares."""
    return ir.Buffer(name, dtype, ir.Place("scratch"))


@lowers(LogSumExp)
def lower_logsumexp(group: Group, plan: Plan) -> list:
    """log(sum(exp(x - m))) + m with m the (finite) maximum, in float64, two passes."""
    node = group.root
    x = node.inputs[0]
    axes = set(node.attrs["axes"])
    classes = ["r" if k in axes else "k" for k in range(x.ndim)]
    dims, st, _ = collapse(x.shape, [ir.strides(x.shape), kept_strides(x.shape, axes)], classes)
    lv = [f"i{k}" for k in range(len(dims))]
    xi, oi = index(lv, st[0]), index(lv, st[1])
    n_out = prod(node.shape)
    m, s = scratch_array("m"), scratch_array("s")
    px, po = plan.buffer(x), plan.buffer(node)

    def finite(e: Expr) -> Expr:
        return ir.Select(Call("isfinite", (e,), "float64"), e, Lit(0.0, "float64"))

    o = Sym("o")
    v = Cast("float64", Load(px, xi))
    pass1 = serial_nest(dims, lv, [If(Bin(">", v, Load(m, oi)), [Store(m, oi, v)])])
    pass2 = serial_nest(dims, lv, [Store(s, oi, Bin("+", Load(s, oi), Call(
        "exp", (Bin("-", v, finite(Load(m, oi))),), "float64")))])
    return [Block([
        ir.Scratch("m", "float64", n_out),
        ir.Scratch("s", "float64", n_out, offset=n_out),
        Loop("o", n_out, [Store(m, o, MINUS_INF), Store(s, o, Lit(0.0, "float64"))]),
        *pass1, *pass2,
        Loop("o", n_out, [Store(po, o, Cast(node.dtype, Bin("+", Call("log", (Load(s, o),), "float64"),
                                                          finite(Load(m, o)))))]),
    ])]


def outer_axis_inner(shape: tuple, axis: int) -> tuple[Expr, Expr, Expr]:
    """(elements before ``axis``, its length, elements after it)."""
    return prod(shape[:axis]), ir.size(shape[axis]), prod(shape[axis + 1:])


def along_axis(length: Expr, inner: Expr, k: Expr) -> Expr:
    """The flat index of element ``k`` of the line along the axis that the loop variables
    ``o`` (over the elements before the axis) and ``i`` (after it) are at."""
    return add(mul(Sym("o"), length, inner), Sym("i"), mul(k, inner))


@lowers(ArgMax)
def lower_argmax(group: Group, plan: Plan) -> list:
    """Index of the first maximum along an axis (a NaN counts as the maximum)."""
    node = group.root
    x = node.inputs[0]
    axis = node.attrs["axis"]
    if axis is None:
        outer, length, inner = Lit(1), prod(x.shape), Lit(1)
    else:
        outer, length, inner = outer_axis_inner(x.shape, axis)
    px = plan.buffer(x)

    def at(k: Expr) -> Expr:
        return Load(px, along_axis(length, inner, k))

    best = Sym("best")
    scan = Loop("a", length, [If(Call("first_max_takes", (at(Sym("a")), at(best)), x.dtype),
                                 [Set("best", Sym("a"))])])
    body = [Let("best", "int64", ZERO, mutable=True), scan,
            Store(plan.buffer(node), add(mul(Sym("o"), inner), Sym("i")), best)]
    return nonempty(node, length) + [Loop("o", outer, [Loop("i", inner, body)])]


@lowers(CumSum)
def lower_cumsum(group: Group, plan: Plan) -> list:
    """Running sums along an axis, each line of the axis in one pass (a float64 accumulator
    for floats, int64 for integers)."""
    node = group.root
    x = node.inputs[0]
    outer, length, inner = outer_axis_inner(x.shape, node.attrs["axis"])
    a = Sym("a")
    along = Bin("-", Bin("-", length, Lit(1)), a) if node.attrs["reverse"] else a
    at = along_axis(length, inner, along)
    acc, t = Sym("acc"), "float64" if node.dtype in FLOATS else "int64"
    line = [Let("acc", t, Lit(0, t), mutable=True),
            Loop("a", length, [Set("acc", Bin("+", acc, Cast(t, Load(plan.buffer(x), at)))),
                               Store(plan.buffer(node), at, Cast(node.dtype, acc))])]
    return [Loop("o", outer, [Loop("i", inner, line)], threads=prod(x.shape), collapse=2)]


@lowers(Count)
def lower_count(group: Group, plan: Plan) -> list:
    """The element count of some axes of a batch-sized shape (only N is unknown)."""
    node = group.root
    n = prod([node.attrs["shape"][a] for a in node.attrs["axes"]])
    return [Store(plan.buffer(node), ZERO, Cast(node.dtype, n))]

