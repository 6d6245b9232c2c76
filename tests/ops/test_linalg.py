"""graphc/ops/linalg.py: matmul, 2-D and batched (broadcast batch axes), with operands
read transposed, the batch axis ``None`` on either side, and fused epilogues.

Cases (``gradcheck.case``): ``np.matmul`` on explicitly transposed float64 copies is the
formula; the harness checks every element forward (float32: 1e-4 relative to the norm),
the static shape, finite differences on the NumPy backend, and C against NumPy in one
compiled fetch set (one GEMM template for the whole module). Second-order cases
differentiate ``gc.grad`` of a matmul.
"""

import numpy as np
import pytest
from graphc_tests_ops_gradcheck import In, case, quick_on_c

import graphc as gc
from graphc.ir.graph import make
from graphc.ops.linalg import PackB, matmul_sum, packed_matmul


def mm(ta=False, tb=False):
    """The graph function and the formula of ``matmul(a, b, ta, tb)``."""
    def formula(a, b):
        return np.matmul(np.swapaxes(a, -1, -2) if ta else a, np.swapaxes(b, -1, -2) if tb else b)

    return (lambda p, q: gc.matmul(p, q, transpose_a=ta, transpose_b=tb)), formula


def matmul_case(name, sa, sb, ta=False, tb=False):
    return case(f"matmul {name} {sa}{'^T' if ta else ''} @ {sb}{'^T' if tb else ''}", *mm(ta, tb),
                In(sa), In(sb), norm=True)


def relu(x):
    return np.maximum(x, 0)


def _packed(x, w, tb):
    """x @ op(w) with op(w) packed first (as graphc.transforms.scan_rewrites.prepack_weights does)."""
    return packed_matmul(gc.matmul(x, w, transpose_b=tb), make(PackB, [w], {"transpose": tb}))


CASES = [
    matmul_case("NN", (None, 6), (6, 5)),
    matmul_case("NT", (None, 6), (5, 6), tb=True),
    matmul_case("TN", (6, None), (6, 5), ta=True),
    matmul_case("TT static", (4, 3), (5, 4), ta=True, tb=True),
    matmul_case("inner 1", (None, 1), (1, 7)),
    matmul_case("long", (None, 33), (33, 19)),
    matmul_case("batched", (None, 2, 6), (6, 3)),
    matmul_case("batched broadcast", (2, 1, 3, 4), (5, 4, 2)),
    matmul_case("batched broadcast N", (None, 1, 3, 4), (3, 4, 2)),
    matmul_case("batched TT", (2, 4, 3), (2, 5, 4), ta=True, tb=True),
    matmul_case("batched TN broadcast", (2, 1, 4, 3), (3, 4, 2), ta=True),
    case("matmul x @ x^T (same operand)", lambda p: gc.matmul(p, p, transpose_b=True),
         lambda x: x @ np.swapaxes(x, 1, 2), In((None, 2, 6)), norm=True),
    # epilogues: elementwise consumers fused into the GEMM's store
    case("relu(x @ w + b)", lambda x, w, b: gc.relu(x @ w + b), lambda x, w, b: relu(x @ w + b),
         In((None, 6)), In((6, 5)), In((5,)), norm=True),
    case("tanh(x @ w) * 2 - b", lambda x, w, b: gc.tanh(x @ w) * 2.0 - b,
         lambda x, w, b: np.tanh(x @ w) * 2 - b, In((None, 6)), In((6, 5)), In((5,)), norm=True),
    case("mlp", lambda x, w, b, v: gc.sum(gc.softplus(gc.sigmoid(x @ w + b) @ v), axis=1),
         lambda x, w, b, v: np.logaddexp(0, 1 / (1 + np.exp(-(x @ w + b))) @ v).sum(1),
         In((None, 6)), In((6, 5)), In((5,)), In((5, 3)), norm=True),
    # a 2-D weight at every position of a sequence: one GEMM over all rows, with an
    # epilogue; its weight gradient is matmul_sum (one GEMM, no batched intermediate)
    case("tanh(x @ w + b) * x over (None, T, F)", lambda x, w, b: gc.tanh(x @ w + b) * x[:, :, :1],
         lambda x, w, b: np.tanh(x @ w + b) * x[..., :1], In((None, 3, 4)), In((4, 5)), In((5,)),
         norm=True),
    case("x @ w^T over (None, 2, 3, F)", lambda x, w: gc.matmul(x, w, transpose_b=True) * 2.0,
         lambda x, w: (x @ w.T) * 2, In((None, 2, 3, 4)), In((5, 4)), norm=True),
    case("matmul_sum (None, T, K) (None, T, N)", lambda x, y: matmul_sum(x, y),
         lambda x, y: np.einsum("abk,abn->kn", x, y), In((None, 3, 4)), In((None, 3, 5)), norm=True),
    # the packed second operand a scan's body reads its captured weights through
    case("matmul_packed (None, 6) @ pack_b((6, 40))", lambda x, w: _packed(x, w, False),
         lambda x, w: x @ w, In((None, 6)), In((6, 40)), grad=False, c={"grad": False}),
    case("matmul_packed (None, 2, 6) @ pack_b((5, 6)^T) + b", lambda x, w, b: _packed(x, w, True) + b,
         lambda x, w, b: x @ w.T + b, In((None, 2, 6)), In((5, 6)), In((5,)), grad=False, c={"grad": False}),
    # second order
    case("matmul'' (w)", lambda x, w: gc.grad(gc.sum(gc.tanh(x @ w)), w),
         lambda x, w: x.T @ (1 - np.tanh(x @ w) ** 2), In((None, 4)), In((4, 3)), norm=True),
    case("matmul'' (x)", lambda x, w: gc.grad(gc.sum(gc.square(x @ w)), x),
         lambda x, w: 2 * (x @ w) @ w.T, In((None, 4)), In((4, 3)), norm=True),
]


CASES = quick_on_c(CASES, "relu(x @ w + b)", "matmul batched broadcast N (None, 1, 3, 4) @ (3, 4, 2)",
                   "tanh(x @ w + b) * x over (None, T, F)", "matmul_sum (None, T, K) (None, T, N)")


@pytest.mark.parametrize("case", CASES)
def test_op(case, backend, check_op):
    check_op(case, backend)
