"""Lowering of matmul: calls of the GEMM template, 2-D (with a fused epilogue) or batched.

A 2-D matmul whose elementwise consumers fused into it (bias, activation, the
activation-derivative mask of the backward pass, optimizer arithmetic) hands its
finished output tiles to the epilogue; batched matmuls (NumPy broadcasting of the
leading dimensions) loop over the batch and call the GEMM once per matrix.
"""

from __future__ import annotations

from ..ir.graph import Tensor
from ..ops.linalg import MatMul
from .elementwise import index, lower_epilogue
from .fusion import Group, host_output
from .ir import Lit, Loop, Ptr, Sym, TemplateCall, add, mul, prod, size, strides
from .memplan import Plan
from .registry import lowers


def _mat_dims(t: Tensor, transposed: bool):
    rows, cols = t.shape[-2], t.shape[-1]
    return (cols, rows) if transposed else (rows, cols)


@lowers(MatMul)
def lower_matmul(group: Group, plan: Plan) -> list:
    node = group.root
    a, b = node.inputs
    ta, tb = node.attrs["transpose_a"], node.attrs["transpose_b"]
    m, k = _mat_dims(a, ta)
    _, n = _mat_dims(b, tb)
    out = host_output(group) if group.members else node

    def gemm(a_at, b_at, c_at, epilogue=None) -> TemplateCall:
        args = (Lit(int(ta)), Lit(int(tb)), size(m), size(n), size(k),
                Ptr(plan.buffer(a), a_at), size(a.shape[-1]), Ptr(plan.buffer(b), b_at),
                size(b.shape[-1]), Ptr(plan.buffer(out), c_at, written=True), size(n))
        return TemplateCall("gemm", "gemm", node.dtype, args, workspace=True, epilogue=epilogue)

    if group.members:  # 2-D: the GEMM applies the epilogue to each finished tile
        epi = lower_epilogue(group, plan, [("i", 1), ("j", 1)], out, node)
        return [gemm(Lit(0), Lit(0), Lit(0), epi)]
    if node.ndim == 2:
        return [gemm(Lit(0), Lit(0), Lit(0))]
    # batched, with NumPy broadcasting of the batch dimensions
    batch = node.shape[:-2]
    lv = [f"b{j}" for j in range(len(batch))]

    def offset(t: Tensor):
        lead = len(batch) - (t.ndim - 2)
        own = strides(t.shape)
        return add(*(mul(Sym(lv[j]), own[j - lead]) for j in range(len(batch))
                     if j - lead >= 0 and t.shape[j - lead] != 1))

    flat = index(lv, strides(batch))
    body = [gemm(offset(a), offset(b), mul(flat, prod(node.shape[-2:])))]
    for j in reversed(range(len(batch))):
        body = [Loop(lv[j], size(batch[j]), body)]
    return body
