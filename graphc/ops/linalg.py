"""Matrix multiplication (2-D and batched), with operands read transposed in place."""

from __future__ import annotations

import numpy as np

from ..ir import dtypes as _dt
from ..ir import shapes as _sh
from ..ir.errors import DTypeError, shape_error
from ..ir.graph import Op, Tensor, make


def _mat(shape, transposed):
    return shape[:-2] + (shape[-1], shape[-2]) if transposed else shape


class MatMul(Op):
    """``op(a) @ op(b)`` where op transposes the last two axes when asked."""

    name = "matmul"
    epilogue_owns_store = True

    def hosts_epilogue(self, node):
        return node.ndim == 2  # the GEMM applies it to each finished output tile

    def infer(self, inputs, transpose_a, transpose_b):
        a, b = inputs
        if a.ndim < 2 or b.ndim < 2:
            raise shape_error("matmul", "operands must have at least 2 dimensions "
                              "(reshape vectors to (1, n) or (n, 1))", a.shape, b.shape)
        sa, sb = _mat(a.shape, transpose_a), _mat(b.shape, transpose_b)
        if sa[-1] != sb[-2]:
            raise shape_error("matmul", f"inner dimensions {_sh.fmt(sa[-1:])} and "
                              f"{_sh.fmt(sb[-2:-1])} differ", a.shape, b.shape)
        batch = _sh.broadcast([sa[:-2], sb[:-2]])
        if batch is None:
            raise shape_error("matmul", "batch dimensions cannot be broadcast", a.shape, b.shape)
        dtype = _dt.join("matmul", [a.dtype, b.dtype])
        if not _dt.is_float(dtype):
            raise DTypeError(f"matmul: needs float operands, got {a.dtype} and {b.dtype}")
        return batch + (sa[-2], sb[-1]), dtype

    def reference(self, ctx, node, a, b):
        if node.attrs["transpose_a"]:
            a = np.swapaxes(a, -1, -2)
        if node.attrs["transpose_b"]:
            b = np.swapaxes(b, -1, -2)
        return np.matmul(a, b)

    def grad(self, node, g):
        a, b = node.inputs
        ta, tb = node.attrs["transpose_a"], node.attrs["transpose_b"]
        # C = A B:  dA = G B^T, dB = A^T G  (with the stored orientations folded in)
        ga = matmul(b, g, transpose_a=tb, transpose_b=True) if ta else matmul(
            g, b, transpose_b=not tb)
        gb = matmul(g, a, transpose_a=True, transpose_b=ta) if tb else matmul(
            a, g, transpose_a=not ta)
        return [ga, gb]

    def label(self, attrs):
        # BLAS-style flags: matmul[TN] reads A transposed, B as stored
        if not (attrs["transpose_a"] or attrs["transpose_b"]):
            return "matmul"
        return "matmul[" + "".join("T" if attrs[k] else "N" for k in ("transpose_a", "transpose_b")) + "]"


def matmul(a, b, transpose_a: bool = False, transpose_b: bool = False) -> Tensor:
    """``a @ b`` over the last two axes, broadcasting leading (batch) axes.

    ``transpose_a``/``transpose_b`` read an operand transposed without a copy.

    Example::

        logits = gc.matmul(x, W)          # (N, 784) @ (784, 10)
    """
    return make(MatMul, [a, b], {"transpose_a": bool(transpose_a), "transpose_b": bool(transpose_b)})
