"""gc.scan as an op (graphc/transforms/scan.py: Scan and its ScanOutput projections) in
the shared op harness: forward against NumPy loops, gradients by finite differences
(float64) and compared on C, on both dtypes. The behaviour around it (reverse, tuples,
nesting, errors, the compiled loop) is tested in tests/transforms/test_scan.py."""

import numpy as np
import pytest
from graphc_tests_ops_gradcheck import In, case, quick_on_c

import graphc as gc
from graphc.ir.graph import make
from graphc.ops.linalg import MatMul
from graphc.transforms.scan import Saved


def _rnn(x, w, u):
    """h_t = tanh(x_t w + h_{t-1} u), h_0 = 0: (all h_t, last h)."""
    h, hs = np.zeros((x.shape[0], w.shape[1])), []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ w + h @ u)
        hs.append(h)
    return np.stack(hs, 1)


def _graph_rnn(x, w, u):
    def step(h, x_t):
        h = gc.tanh(x_t @ w + h @ u)
        return h, h

    return gc.scan(step, gc.zeros_like(x[:, 0, :] @ w), x)[1]


def _decay(x, a):
    """c_t = a * c_{t+1} + x_t, run from the end; ys = c_t * x_t; both returned."""
    c, ys = np.zeros(x.shape[1:]), [None] * x.shape[0]
    for t in reversed(range(x.shape[0])):
        c = a * c + x[t]
        ys[t] = c * x[t]
    return [c, np.stack(ys)]


def _graph_decay(x, a):
    def step(c, x_t):
        c = a * c + x_t
        return c, c * x_t

    last, ys = gc.scan(step, gc.zeros_like(x[0]), x, axis=0, reverse=True)
    return [last, ys]


def _saved(a, b):
    """A stored matmul read back (as a scan's gradient body reads it): its value is the
    stored one, its gradient the matmul's (so the finite differences see a @ b)."""
    return make(Saved, [gc.matmul(a, b), a, b], {"of": MatMul, "transpose_a": False,
                                                     "transpose_b": False})


CASES = [
    case("scan rnn (None, T, F) capturing two weights", _graph_rnn, _rnn,
         In((None, 4, 3)), In((3, 5), -0.6, 0.6), In((5, 5), -0.6, 0.6)),
    case("scan reverse along axis 0, final carry and outputs", _graph_decay, _decay,
         In((3, None, 2)), In((2,), 0.2, 0.9)),
    case("saved matmul", _saved, lambda a, b: a @ b, In((None, 3)), In((3, 4)), norm=True),
]
CASES = quick_on_c(CASES, "scan rnn (None, T, F) capturing two weights")


@pytest.mark.parametrize("case", CASES)
def test_op(case, backend, check_op):
    check_op(case, backend)
