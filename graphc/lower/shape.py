"""Lowering of the shape ops that move data: transpose, slicing (and its adjoint),
concat and one_hot. (reshape is a view: no kernel.)"""

from __future__ import annotations

from ..ir.graph import Tensor
from ..ops.shape import Concat, OneHot, Slice, SliceGrad, Transpose, batch_need, batch_rows
from . import ir
from .elementwise import dense_index, index, serial_nest
from .fusion import Group
from .ir import Bin, Cast, Copy, Expr, Lit, Load, Loop, Store, Sym, Zero, add, mul, prod, size, strides
from .memplan import Plan
from .registry import lowers


@lowers(Transpose)
def lower_transpose(group: Group, plan: Plan) -> list:
    node = group.root
    x = node.inputs[0]
    xs = strides(x.shape)
    lv = [f"i{k}" for k in range(node.ndim)]
    src = index(lv, [xs[a] for a in node.attrs["axes"]])
    store = Store(plan.buffer(node), index(lv, strides(node.shape)), Load(plan.buffer(x), src))
    return serial_nest([size(d) for d in node.shape], lv, [store])


def _first(k: int, c: int) -> Expr:
    """The row ``k*N + c`` of the batch axis."""
    return add(mul(Lit(k), size(None)), Lit(c))


def _slice_map(node: Tensor, x: Tensor) -> tuple[list[Expr], list[str], Expr]:
    """(the slice's dims, their loop variables, the index of the element in x)."""
    idx = tuple(node.attrs["index"]) + ((None, None, None),) * (x.ndim - len(node.attrs["index"]))
    xs = strides(x.shape)
    dims, lv, terms = [], [], []
    for k, (d, i) in enumerate(zip(x.shape, idx)):
        if d is None:  # the batch axis: whole (maybe reversed) or a fixed number of rows
            rows, first, step, _ = batch_rows(i)
            start, count = _first(*first), size(rows)
        elif isinstance(i, int):
            start, step, count = Lit(i), 1, None
        else:
            taken = range(*slice(*i).indices(d))
            start, step, count = Lit(taken.start), taken.step, Lit(len(taken))
        if isinstance(i, int):
            terms.append(mul(start, xs[k]))
            continue
        v = f"i{len(lv)}"
        lv.append(v)
        dims.append(count)
        terms.append(mul(add(start, mul(Sym(v), Lit(step))), xs[k]))
    return dims, lv, add(*terms)


def _check_rows(node: Tensor, shape: tuple) -> list:
    """Fail unless the batch has the rows a slice of the batch axis takes (BatchSlice)."""
    if not node.op.can_fail:
        return []
    need, what = batch_need(shape, node.attrs["index"])
    return [ir.If(Bin("<", size(None), Lit(need)), [ir.Fail((
        f"[{what}] on the batch axis needs a batch of at least {need} rows, got a batch of ",
        size(None)))])]


@lowers(Slice)
def lower_slice(group: Group, plan: Plan) -> list:
    node = group.root
    x = node.inputs[0]
    dims, lv, src = _slice_map(node, x)
    store = Store(plan.buffer(node), dense_index(lv, dims), Load(plan.buffer(x), src))
    return _check_rows(node, x.shape) + serial_nest(dims, lv, [store])


@lowers(SliceGrad)
def lower_slice_grad(group: Group, plan: Plan) -> list:
    """Zeros, with the gradient of the slice scattered into its place."""
    node = group.root
    (g,) = node.inputs
    dims, lv, dst = _slice_map(node, node)
    out = plan.buffer(node)
    return _check_rows(node, node.shape) + [Zero(out, prod(node.shape))] + serial_nest(
        dims, lv, [Store(out, dst, Load(plan.buffer(g), dense_index(lv, dims)))])


@lowers(Concat)
def lower_concat(group: Group, plan: Plan) -> list:
    """Row by row copies of the parts, or nothing where their loops stored them in place."""
    node = group.root
    if all(plan.part_of(x) is not None for x in node.inputs):
        return []
    axis = node.attrs["axis"]
    outer, inner = prod(node.shape[:axis]), prod(node.shape[axis + 1:])
    row = mul(size(node.shape[axis]), inner)
    out, o = plan.buffer(node), Sym("o")
    code, start = [], 0
    for x in node.inputs:
        chunk = mul(Lit(x.shape[axis]), inner)
        code.append(Loop("o", outer, [Copy(out, plan.buffer(x), chunk, dst_offset=add(
            mul(o, row), mul(Lit(start), inner)), src_offset=mul(o, chunk))]))
        start += x.shape[axis]
    return code


@lowers(OneHot)
def lower_one_hot(group: Group, plan: Plan) -> list:
    node = group.root
    labels = node.inputs[0]
    depth = Lit(node.attrs["depth"])
    r, c = Sym("r"), Sym("c")
    hit = Cast(node.dtype, Bin("==", Load(plan.buffer(labels), r), c))
    return [Loop("r", prod(labels.shape), [Loop("c", depth, [Store(plan.buffer(node), add(mul(r, depth), c),
                                                                       hit)])])]
