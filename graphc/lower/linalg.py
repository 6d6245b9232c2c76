"""Lowering of matmul: calls of the GEMM template, 2-D (with a fused epilogue) or batched.

A 2-D matmul whose elementwise consumers fused into it (bias, activation, the
activation-derivative mask of the backward pass, optimizer arithmetic) hands its
finished output tiles to the epilogue; so does a batched matmul of a 2-D weight, one GEMM
over all the rows; other batched matmuls (NumPy broadcasting of the leading dimensions)
loop over the batch and call the GEMM once per matrix. ``matmul_sum`` (such a weight's
gradient) is one GEMM too. A matrix a scan's body multiplies by at every step is packed
once (``pack_b``) and read packed (``matmul_packed``).
"""

from __future__ import annotations

from ..ir.graph import Tensor
from ..ops.linalg import MatMul, MatMulSum, PackB, PackedMatMul, one_gemm
from .elementwise import index, lower_epilogue
from .fusion import Group, host_output
from .ir import ZERO, Expr, Lit, Loop, Ptr, Sym, TemplateCall, add, mul, prod, size, strides
from .memplan import Plan
from .registry import lowers


def _gemm(plan: Plan, dtype: str, ta: bool, tb: bool, m: Expr, n: Expr, k: Expr, a: Tensor, a_at: Expr,
          b: Tensor, b_at: Expr, c: Tensor, c_at: Expr = ZERO, epilogue=None) -> TemplateCall:
    """A call of the GEMM template: c[c_at:] (m x n) = op(a) @ op(b), row strides from the
    operands' last dimensions."""
    args = (Lit(int(ta)), Lit(int(tb)), m, n, k, Ptr(plan.buffer(a), a_at), size(a.shape[-1]),
            Ptr(plan.buffer(b), b_at), size(b.shape[-1]), Ptr(plan.buffer(c), c_at, written=True),
            n)
    return TemplateCall("gemm", "gemm", dtype, args, workspace=True, epilogue=epilogue)


def _host(group: Group, plan: Plan, row_axes: int):
    """(the tensor the GEMM writes, its epilogue or None) of a GEMM kernel whose output
    rows are the first ``row_axes`` axes."""
    node = group.root
    if not group.members:
        return node, None
    out = host_output(group)
    return out, lower_epilogue(group, plan, [("i", row_axes), ("j", 1)], out, node)


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
    if node.ndim == 2 or one_gemm(node):  # the GEMM applies any epilogue to each finished tile
        out, epi = _host(group, plan, node.ndim - 1)  # (one GEMM over all the rows)
        return [_gemm(plan, node.dtype, ta, tb, prod(node.shape[:-1]), size(n), size(k), a, ZERO, b,
                      ZERO, out, epilogue=epi)]
    # batched, with NumPy broadcasting of the batch dimensions
    out = host_output(group) if group.members else node
    batch = node.shape[:-2]
    lv = [f"b{j}" for j in range(len(batch))]

    def offset(t: Tensor):
        lead = len(batch) - (t.ndim - 2)
        own = strides(t.shape)
        return add(*(mul(Sym(lv[j]), own[j - lead]) for j in range(len(batch))
                     if j - lead >= 0 and t.shape[j - lead] != 1))

    flat = index(lv, strides(batch))
    body = [_gemm(plan, node.dtype, ta, tb, size(m), size(n), size(k), a, offset(a), b, offset(b), out,
                  mul(flat, prod(node.shape[-2:])))]
    for j in reversed(range(len(batch))):
        body = [Loop(lv[j], size(batch[j]), body)]
    return body


@lowers(MatMulSum)
def lower_matmul_sum(group: Group, plan: Plan) -> list:
    """x_f^T @ y_f: one GEMM reading x as the transposed (K x rows) matrix, with the
    group's epilogue (an optimizer's update of the weight it is the gradient of)."""
    node = group.root
    x, y = node.inputs
    k, n = x.shape[-1], y.shape[-1]
    out, epi = _host(group, plan, 1)
    return [_gemm(plan, node.dtype, True, False, size(k), size(n), prod(x.shape[:-1]), x, ZERO, y, ZERO,
                  out, epilogue=epi)]


@lowers(PackB)
def lower_pack_b(group: Group, plan: Plan) -> list:
    """op(b) into the GEMM's panels, once (the node's buffer is big enough for any SIMD width)."""
    node = group.root
    (b,) = node.inputs
    k, n = _mat_dims(b, node.attrs["transpose"])
    args = (Lit(int(node.attrs["transpose"])), size(n), size(k), Ptr(plan.buffer(b), ZERO),
            size(b.shape[-1]), Ptr(plan.buffer(node), ZERO, written=True))
    return [TemplateCall("gemm", "gemm_pack_b", node.dtype, args)]


@lowers(PackedMatMul)
def lower_packed_matmul(group: Group, plan: Plan) -> list:
    """A GEMM reading its second operand packed, with the group's epilogue."""
    node = group.root
    a, packed = node.inputs
    ta, n = node.attrs["transpose_a"], node.attrs["n"]
    _, k = _mat_dims(a, ta)
    out, epi = _host(group, plan, node.ndim - 1)
    args = (Lit(int(ta)), prod(node.shape[:-1]), size(n), size(k), Ptr(plan.buffer(a), ZERO),
            size(a.shape[-1]), Ptr(plan.buffer(packed), ZERO), Ptr(plan.buffer(out), ZERO, written=True),
            size(n))
    return [TemplateCall("gemm", "gemm_packed", node.dtype, args, workspace=True, epilogue=epi)]
