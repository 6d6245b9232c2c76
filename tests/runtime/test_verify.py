"""Session.verify and Session(verify=True): a compiled step checked value by value against
the NumPy reference, corrupted kernels found and named, no state changed."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
import sympy

import graphc as gc
import graphc.lower as lowering
from graphc.lower import ir
from graphc.render.printer import MathPrinter
from graphc.runtime.verify import compare

RNG = np.random.default_rng(0)
XB = RNG.standard_normal((20, 12)).astype(np.float32)
YB = RNG.integers(0, 3, 20)


def _mlp():
    rng = np.random.default_rng(1)
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 12), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        w1 = gc.variable(rng.standard_normal((12, 16)).astype(np.float32) * 0.3, name="w1")
        b1 = gc.variable(np.full(16, 0.1, np.float32), name="b1")
        w2 = gc.variable(rng.standard_normal((16, 3)).astype(np.float32) * 0.3, name="w2")
        h, line = gc.relu(x @ w1 + b1), sys._getframe().f_lineno
        relu, h = h, gc.dropout(h, 0.25)
        loss = gc.mean(gc.softmax_cross_entropy(h @ w2, y))
        train = gc.optim.Adam(0.01).minimize(loss)
    return g, {x: XB, y: YB}, loss, train, (line, relu.name)


def _state(sess, g):
    return {v.name: sess.get_value(v) for v in g.variables()}


def _same_state(sess, g, before):
    for name, value in _state(sess, g).items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def _relu_plus_one(monkeypatch):
    """The C printer renders relu as ``x <= 0 ? 0 : x + 1`` (its gradient is untouched)."""
    printed = MathPrinter._print_Piecewise

    def wrong(self, expr):
        if len(expr.args) == 2:
            (zero, cond), (x, default) = expr.args
            if (zero == 0 and isinstance(cond, sympy.LessThan) and cond.rhs == 0
                    and x == cond.lhs and default == sympy.true):
                a = self._print(x)
                return f"(({a} <= 0) ? (0) : ({a} + 1))"
        return printed(self, expr)

    monkeypatch.setattr(MathPrinter, "_print_Piecewise", wrong)


def test_verify_of_a_training_step_is_ok_and_changes_nothing(backend):
    g, feed, loss, train, _ = _mlp()
    sess = gc.Session(g, backend=backend)
    sess.run([loss, train], feed)  # Adam's moments and step count are non-zero
    before = _state(sess, g)
    report = sess.verify([loss, train], feed)
    assert report.ok and report.first is None, str(report)
    program = sess.compile([loss, train]).program
    computed = [n for n in program.nodes if not n.op.kind.is_leaf]
    assert report.compared > len(computed)  # every value, the fetch, every variable twice
    assert report.debug_values > 0 and report.backend == backend and report.step == 1
    assert "values compared are within the numerical contract" in str(report)
    assert sess.step == 1
    _same_state(sess, g, before)
    # the next step is the one that would have run without verify
    twin = gc.Session(g, backend=backend)
    twin.run([loss, train], feed)
    np.testing.assert_array_equal(sess.run([loss, train], feed)[0], twin.run([loss, train], feed)[0])
    _same_state(sess, g, _state(twin, g))


def test_verify_true_runs_and_commits_as_usual(backend):
    g, feed, loss, train, _ = _mlp()
    checked, plain = gc.Session(g, backend=backend, verify=True), gc.Session(g, backend=backend)
    for _ in range(2):
        a, b = checked.run([loss, train], feed), plain.run([loss, train], feed)
        np.testing.assert_array_equal(a[0], b[0])
    assert checked.step == plain.step == 2
    _same_state(checked, g, _state(plain, g))


def test_nan_and_inf_must_match_in_place(backend):
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        y = gc.log(x) * 2.0
    sess = gc.Session(g, backend=backend)
    report = sess.verify(y, {x: np.array([[1.0, 0.0, -1.0], [np.nan, np.inf, 2.0]], np.float32)})
    assert report.ok, str(report)  # -inf, NaN, NaN, inf: where the reference has them


def test_the_contract():
    e = np.linspace(-2.0, 3.0, 50).astype(np.float32)
    assert compare(e * np.float32(1 + 4e-6), e, "float32", norm=False) is None
    bad = compare(e * np.float32(1 + 1e-4), e, "float32", norm=False)
    assert bad["outside"] > 0 and bad["abs_index"] == (49,)
    assert bad["max_abs"] == pytest.approx(3e-4, rel=0.01)
    # matmul, conv, reductions: relative to the reference's norm
    assert compare(e + np.float32(5e-5) * np.abs(e).max(), e, "float32", norm=True) is None
    assert compare(e + np.float32(5e-4) * np.abs(e).max(), e, "float32", norm=True) is not None
    d = e.astype(np.float64)
    assert compare(d * (1 + 1e-11), d, "float64", norm=False) is None
    assert compare(d * (1 + 1e-9), d, "float64", norm=False) is not None
    nan = e.copy()
    nan[7] = np.nan
    found = compare(nan, e, "float32", norm=True)
    assert found["abs_index"] == (7,) and "NaN/Inf" in found["reason"]
    inf = e.copy()
    inf[3] = -np.inf
    assert compare(inf, inf * -1 * -1, "float32", norm=False) is None
    assert compare(-inf, inf, "float32", norm=False) is not None
    assert compare(np.array([1, 2, 4]), np.array([1, 2, 3]), "int64", norm=False)["outside"] == 1


@pytest.mark.needs_c
def test_verify_names_a_corrupted_kernel_its_node_line_and_errors(monkeypatch, capsys):
    _relu_plus_one(monkeypatch)
    g, feed, loss, train, (line, relu) = _mlp()
    sess = gc.Session(g, backend="c")
    before = _state(sess, g)
    report = sess.verify([loss, train], feed)
    print(report)
    assert not report.ok
    bad = report.first
    (kernel,) = [k for k in sess.compile([loss, train]).kernels if relu in k["nodes"]]
    assert (bad.node, bad.op, bad.stage) == (relu, "relu", "debug build")
    assert bad.site.endswith(f"test_verify.py:{line}")
    assert bad.kernel == kernel["name"] and bad.stored == (relu in kernel["stores"])
    assert bad.kernel.startswith("k0_matmul")  # relu is the first GEMM's epilogue
    # every positive element is off by one; the largest relative error is at the smallest one
    h = np.maximum(XB @ before["w1"] + before["b1"], 0)
    assert bad.max_abs == pytest.approx(1.0, abs=1e-6)
    assert bad.outside == int((h > 0).sum()) and bad.size == h.size
    assert bad.max_rel == pytest.approx(1 / h[h > 0].min(), rel=1e-3)
    assert bad.rel_index == tuple(int(i) for i in np.argwhere(h == h[h > 0].min())[0])
    assert len(report.mismatches) == 1  # nodes downstream are judged on their own inputs
    text = str(report)
    for want in (relu, f"test_verify.py:{line}", kernel["name"], "abs error", "1 of "):
        assert want in text, text
    assert sess.step == 0
    _same_state(sess, g, before)


@pytest.mark.needs_c
def test_verify_true_raises_on_the_corrupted_build_and_commits_nothing(monkeypatch):
    _relu_plus_one(monkeypatch)
    g, feed, loss, train, (line, relu) = _mlp()
    sess = gc.Session(g, backend="c", verify=True)
    before = _state(sess, g)
    with pytest.raises(gc.VerifyError, match=f"test_verify.py:{line}") as err:
        sess.run([loss, train], feed)
    assert isinstance(err.value, gc.GraphcError) and err.value.report.first.node == relu
    assert sess.step == 0
    _same_state(sess, g, before)


@pytest.mark.needs_c
def test_a_value_living_only_inside_a_fused_kernel_is_found(monkeypatch):
    printed = MathPrinter._print_sigmoid
    monkeypatch.setattr(MathPrinter, "_print_sigmoid",
                        lambda self, expr: f"({printed(self, expr)} + 0.25F)")
    with gc.Graph() as g:
        x = gc.placeholder((None, 5), name="x")
        s = gc.sigmoid(x)
        out = s * 2.0 - 1.0
    sess = gc.Session(g, backend="c")
    (kernel,) = sess.compile(out).kernels  # one loop: sigmoid's value is never stored
    assert s.name in kernel["nodes"] and kernel["stores"] == [out.name]
    report = sess.verify(out, {x: XB[:, :5]})
    bad = report.first
    assert (bad.node, bad.kernel, bad.stored, bad.stage) == (s.name, kernel["name"], False,
                                                             "debug build")
    assert bad.max_abs == pytest.approx(0.25) and len(report.mismatches) == 1
    assert "only inside the kernel" in str(report)


@pytest.mark.needs_c
def test_a_bug_only_in_the_fused_build_names_the_fetch_and_its_kernel(monkeypatch):
    made = lowering._kernel

    def plus_one(stmts):
        out = []
        for s in stmts:
            if isinstance(s, ir.Store) and s.buf.dtype == "float32":
                s = dataclasses.replace(s, value=ir.Bin("+", s.value, ir.Lit(1.0, "float32")))
            elif isinstance(s, (ir.Loop, ir.Block)):
                s = dataclasses.replace(s, body=plus_one(s.body))
            out.append(s)
        return out

    def fused_wrong(group, *args, **kwargs):  # only kernels that fuse several nodes
        k = made(group, *args, **kwargs)
        return dataclasses.replace(k, body=plus_one(k.body)) if len(group.nodes) > 1 else k

    monkeypatch.setattr(lowering, "_kernel", fused_wrong)
    with gc.Graph() as g:
        x = gc.placeholder((None, 5), name="x")
        out = gc.sigmoid(x) * 2.0 - 1.0
    sess = gc.Session(g, backend="c")
    (kernel,) = sess.compile(out).kernels
    report = sess.verify(out, {x: XB[:, :5]})
    bad = report.first
    assert (bad.node, bad.stage, bad.kernel) == (out.name, "compiled step", kernel["name"])
    assert bad.what.startswith("fetch [0]") and bad.max_abs == pytest.approx(1.0)
    assert len(report.mismatches) == 1
