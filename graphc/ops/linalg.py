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
        return node.ndim == 2 or one_gemm(node)  # the GEMM applies it to each finished tile

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
        if one_gemm(node) and b.ndim == 2:  # a 2-D weight: the sum over every row, one GEMM
            gb = matmul_sum(g, a) if tb else matmul_sum(a, g)
        else:
            gb = matmul(g, a, transpose_a=True, transpose_b=ta) if tb else matmul(
                a, g, transpose_a=not ta)
        return [ga, gb]

    def label(self, attrs):
        # BLAS-style flags: matmul[TN] reads A transposed, B as stored
        if not (attrs["transpose_a"] or attrs["transpose_b"]):
            return "matmul"
        return "matmul[" + "".join("T" if attrs[k] else "N" for k in ("transpose_a", "transpose_b")) + "]"


def one_gemm(node: Tensor) -> bool:
    """A batched matmul that is one GEMM over all the rows: ``a`` (..., M, K), read as
    stored and holding every batch dimension of the output, times a 2-D ``b`` (a layer's
    weight applied at every position of a sequence)."""
    a, b = node.inputs
    return (node.ndim > 2 and b.ndim == 2 and not node.attrs["transpose_a"]
            and a.shape[:-2] == node.shape[:-2])


class MatMulSum(Op):
    """``x_f^T @ y_f`` with ``x`` (..., R, K) and ``y`` (..., R, N) read as matrices of all
    their rows: the sum over the leading positions of ``x[...]^T @ y[...]``, (K, N). The
    gradient of a 2-D weight applied by a batched matmul, as one GEMM (no (..., K, N)
    intermediate to sum)."""

    name = "matmul_sum"
    epilogue_owns_store = True

    def hosts_epilogue(self, node):
        return True

    def infer(self, inputs):
        x, y = inputs
        if x.ndim < 2 or x.shape[:-1] != y.shape[:-1]:
            raise shape_error("matmul_sum", "operands need the same leading shape", x.shape, y.shape)
        dtype = _dt.join("matmul_sum", [x.dtype, y.dtype])
        if not _dt.is_float(dtype):
            raise DTypeError(f"matmul_sum: needs float operands, got {x.dtype} and {y.dtype}")
        return (x.shape[-1], y.shape[-1]), dtype

    def reference(self, ctx, node, x, y):
        lead = list(range(x.ndim - 1))
        return np.tensordot(x, y, axes=(lead, lead)).astype(node.dtype)

    def grad(self, node, g):
        x, y = node.inputs
        return [matmul(y, g, transpose_b=True), matmul(x, g)]


#: the columns of a packed operand are padded to a multiple of this: every SIMD width's panels
#: (8 to 32 floats, 4 to 16 doubles) fit
PANEL_COLUMNS = 32


class PackB(Op):
    """``op(b)`` (K x N) laid out once in the GEMM's panel order, for many products by the
    same matrix (a weight that a scan's body reads at every step: see
    :func:`graphc.transforms.scan_rewrites.prepack_weights`). Its value, the NumPy reference's, is
    ``op(b)`` with zero columns up to a multiple of :data:`PANEL_COLUMNS`, as many elements
    as the C backend's panels need. Made after the gradients: it has none."""

    name = "pack_b"
    differentiable = False

    def infer(self, inputs, transpose):
        (b,) = inputs
        k, n = _mat(b.shape, transpose)
        return (k, -(-n // PANEL_COLUMNS) * PANEL_COLUMNS), b.dtype

    def reference(self, ctx, node, b):
        value = b.T if node.attrs["transpose"] else b
        out = np.zeros(node.shape, dtype=node.dtype)
        out[:, :value.shape[1]] = value
        return out


class PackedMatMul(Op):
    """``op(a) @ p[:, :n]`` where ``p`` is a :class:`PackB` of the matrix: a 2-D matmul (or
    one GEMM over the rows of a batched ``a``) whose second operand is already packed."""

    name = "matmul_packed"
    epilogue_owns_store = True
    differentiable = False

    def hosts_epilogue(self, node):
        return True

    def infer(self, inputs, transpose_a, n):
        a, p = inputs
        m, k = _mat(a.shape, transpose_a)[-2:]
        if k != p.shape[0]:
            raise shape_error("matmul", "inner dimensions differ", a.shape, p.shape)
        return a.shape[:-2] + (m, n), _dt.join("matmul", [a.dtype, p.dtype])

    def reference(self, ctx, node, a, p):
        if node.attrs["transpose_a"]:
            a = np.swapaxes(a, -1, -2)
        return np.matmul(a, p[:, :node.attrs["n"]])

    def label(self, attrs):
        return "matmul[TP]" if attrs["transpose_a"] else "matmul[NP]"


def packed_matmul(node: Tensor, packed: Tensor) -> Tensor:
    """The matmul ``node`` (2-D, or one GEMM over a batched ``a``) reading its second
    operand from ``packed``, a :class:`PackB` of it."""
    n = _mat(node.inputs[1].shape, node.attrs["transpose_b"])[1]
    return make(PackedMatMul, [node.inputs[0], packed],
                {"transpose_a": node.attrs["transpose_a"], "n": n})


def matmul_sum(x, y) -> Tensor:
    """``sum over leading positions of x[...]^T @ y[...]`` (see :class:`MatMulSum`).

    Example::

        gW = matmul_sum(x, g)    # x (N, T, F), g (N, T, H) -> (F, H)
    """
    return make(MatMulSum, [x, y])


def matmul(a, b, transpose_a: bool = False, transpose_b: bool = False) -> Tensor:
    """``a @ b`` over the last two axes, broadcasting leading (batch) axes.

    ``transpose_a``/``transpose_b`` read an operand transposed without a copy.

    Example::

        logits = gc.matmul(x, W)          # (N, 784) @ (784, 10)
    """
    return make(MatMul, [a, b], {"transpose_a": bool(transpose_a), "transpose_b": bool(transpose_b)})
