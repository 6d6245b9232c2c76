"""``check_numerics=True``: the first NaN/Inf in graph order is named at the node that made
it, with the same NumericsError text on every backend, even where the compiled step would
have kept the value inside a fused kernel; and a step that fails changes no state."""

from __future__ import annotations

import inspect
import os

import numpy as np
import pytest

import graphc as gc
from graphc.ir.errors import NumericsError


def _error(backend: str, build) -> tuple:
    """Build a graph with ``build()`` -> (fetches, {placeholder name: value}), run it with
    check_numerics on ``backend``: (the error message, the session, the variables)."""
    g = gc.Graph()
    with g:
        fetches, feed = build()
    sess = gc.Session(g, backend=backend, check_numerics=True)
    with pytest.raises(NumericsError) as info:
        sess.run(fetches, feed)
    return str(info.value), sess, g


def _line(fn, text: str) -> str:
    """``file:line`` of the line of ``fn``'s source containing ``text``."""
    lines, first = inspect.getsourcelines(fn)
    k = next(i for i, ln in enumerate(lines) if text in ln)
    path = os.path.abspath(inspect.getsourcefile(fn))
    rel = os.path.relpath(path)  # as graphc.ir.errors.user_site writes it
    return f"{path if rel.startswith('..') else rel}:{first + k}"


def _epilogue_nan():
    x = gc.placeholder((None, 3))
    w = gc.variable(np.ones((3, 2), np.float32))
    b = gc.variable(np.zeros(2, np.float32))
    z = gc.relu(gc.matmul(x, w) + b)  # the matmul's value lives only in its epilogue
    return gc.sum(z), {x: np.array([[np.nan, 1, 2], [0, 1, 2]], np.float32)}


def _log_zero():
    x = gc.placeholder((None, 3))
    return gc.sum(gc.log(x)), {x: np.zeros((2, 3), np.float32)}


def _sqrt_grad():
    w = gc.variable(np.array([[0.0, 1.0, 4.0]], np.float32), name="w")
    y = gc.sum(gc.sqrt(w))  # its gradient 0.5 / sqrt(w) is inf at 0
    train = gc.optim.SGD(lr=0.1).minimize(y)
    return [y, train], {}


def _internal_nan():
    x = gc.placeholder((None, 4))
    root = gc.sqrt(x)  # NaN at the negative entries, hidden by the where below
    safe = gc.where(x > 0.0, root, 0.0) * 2.0 + 1.0
    return gc.sum(safe), {x: np.array([[1.0, -1.0, 4.0, 0.0]], np.float32)}


CASES = {
    "epilogue": (_epilogue_nan, "NaN produced by matmul (matmul)", "gc.matmul"),
    "log_zero": (_log_zero, "Inf produced by log (log)", "gc.log"),
    "sqrt_grad": (_sqrt_grad, "Inf produced by sqrt'0 (gradient) (grad/sqrt'0)", "gc.sqrt"),
    "internal": (_internal_nan, "NaN produced by sqrt (sqrt)", "gc.sqrt"),
}


@pytest.mark.parametrize("case", CASES)
def test_names_the_producing_node(backend, case):
    build, head, text = CASES[case]
    message, _, _ = _error(backend, build)
    assert message == f"{head}\n  defined at {_line(build, text)}"


@pytest.mark.needs_c
@pytest.mark.parametrize("case", ["epilogue", "sqrt_grad", "internal"])
def test_same_message_on_every_backend(case):
    build = CASES[case][0]
    assert _error("c", build)[0] == _error("numpy", build)[0]


def test_first_nan_in_graph_order_is_named(backend):
    def build():
        x = gc.placeholder((None, 2))
        a = gc.log(x - 1.0)  # NaN at x = 0 (first in graph order)
        b = gc.exp(x * 1000.0)  # inf at x = 1, computed in the same loop
        return gc.sum(a) + gc.sum(b), {x: np.array([[0.0, 1.0]], np.float32)}
    message, _, _ = _error(backend, build)
    assert message.startswith("NaN produced by log (log)")


def test_nan_is_named_before_inf_within_a_value(backend):
    def build():
        x = gc.placeholder((None, 2))
        return gc.sum(gc.log(x)), {x: np.array([[0.0, -1.0]], np.float32)}  # -inf, nan
    message, _, _ = _error(backend, build)
    assert message.startswith("NaN produced by log (log)")


def test_a_fed_nan_reshaped_is_named_at_the_reshape(backend):
    def build():
        x = gc.placeholder((None, 4))
        y = gc.reshape(x, (-1, 2, 2))
        return gc.sum(y * 2.0), {x: np.array([[1.0, np.nan, 0.0, 2.0]], np.float32)}
    message, _, _ = _error(backend, build)
    assert message.startswith("NaN produced by reshape")


def test_failing_step_changes_no_state(backend):
    message, sess, g = _error(backend, _sqrt_grad)
    (w,) = [v for v in g.variables() if v.name == "w"]
    np.testing.assert_array_equal(sess.get_value(w), [[0.0, 1.0, 4.0]])
    assert sess.step == 0
    assert all(np.all(sess.get_value(v) == v.value) for v in g.variables())


def test_finite_edge_values_pass(backend):
    """-0.0, huge finite floats, float64 and ints are not NaN/Inf: the check passes them."""
    g = gc.Graph()
    with g:
        x = gc.placeholder((None, 3))
        d = gc.placeholder((None, 2), dtype="float64")
        i = gc.placeholder((None, 2), dtype="int32")
        y = gc.sqrt(x) * 1.0  # sqrt(-0.0) = -0.0
        big = d * 1e300
        k = i * 2
    sess = gc.Session(g, backend=backend, check_numerics=True)
    out = sess.run([y, big, k], {x: np.array([[-0.0, 0.0, 3.4e38]], np.float32),
                                  d: np.array([[1.5, -1.7]]), i: np.array([[2**29, -7]], np.int32)})
    assert np.signbit(out[0][0, 0]) and out[0][0, 0] == 0.0
    assert np.all(np.isfinite(out[1]))
    np.testing.assert_array_equal(out[2], np.array([[2**29, -7]], np.int32) * 2)
