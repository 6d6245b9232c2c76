"""graphc/ops/debug.py: gc.print, gc.check and gc.check_finite inside the step.

The printed text is compared literally and across backends (``capfd``: the C backend
writes from inside the native call); checks fail with the message, the first failing
element and the user's line, and a failing training step changes no variable and does
not advance the step counter. Op cases (gradcheck harness): the three are identities
for the value and the gradient.
"""

import numpy as np
import pytest
from graphc_tests_ops_gradcheck import In, case, quick_on_c

import graphc as gc
from graphc.backends.c.library import render
from graphc.ir.program import Program
from graphc.lower import lower
from graphc.transforms.passes import optimize

CASES = quick_on_c([
    case("print", lambda t: gc.print(gc.tanh(t), "case", summarize=1), np.tanh, In((None, 3))),
    case("check_finite", lambda t: gc.check_finite(t * 2.0), lambda x: 2 * x, In((None, 3))),
    case("check guarding a value", lambda t: gc.check(gc.greater_equal(gc.square(t), 0.0), "sq", t * 3.0),
         lambda x: 3 * x, In((None, 3))),
], "print", "check_finite", "check guarding a value")


@pytest.mark.parametrize("case", CASES)
def test_op(case, backend, check_op):
    check_op(case, backend)


def _line() -> str:
    import inspect

    return f"test_debug_ops.py:{inspect.currentframe().f_back.f_lineno}"


# -- print ------------------------------------------------------------------------------------

FORMAT_LINES = [
    "x shape=(2, 3) [1 2 3 4 5 6] min=1 max=6 mean=3.5",
    "one each shape=(2, 3) [1 ... 6] min=1 max=6 mean=3.5",
    "100% \"ints\" shape=(2,) [3 -1] min=-1 max=3 mean=1",
    "bools shape=(2, 3) [0 0 0 1 1 1] min=0 max=1 mean=0.5",
    "z shape=(4,) [-0 nan -inf 1.23457e+06] min=nan max=nan mean=nan",
    "small shape=(3,) [1e-07 0.333333 -0.333333] min=-0.333333 max=0.333333 mean=3.33333e-08",
    "empty shape=(0, 2) []",
    "none shape=(2, 3) [...] min=1 max=6 mean=3.5",
]


def _format_graph():
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        z = gc.placeholder((4,), "float64", name="z")
        s = gc.placeholder((3,), name="small")
        e = gc.placeholder((0, 2), name="e")
        fetches = [
            gc.print(x),
            gc.print(x, "one each", summarize=1),
            gc.print(gc.constant(np.array([3, -1])), '100% "ints"'),
            gc.print(gc.greater(x, 3.0), "bools"),
            gc.print(z, summarize=2),
            gc.print(s, "small"),
            gc.print(e, "empty"),
            gc.print(x, "none", summarize=0),
        ]
    feed = {x: np.arange(1, 7, dtype=np.float32).reshape(2, 3),
            z: np.array([-0.0, np.nan, -np.inf, 1234567.0]),
            s: np.array([1e-7, 1 / 3, -1 / 3], np.float32),
            e: np.zeros((0, 2), np.float32)}
    return g, fetches, feed, x


def test_print_format(backend, capfd):
    g, fetches, feed, x = _format_graph()
    out = gc.Session(g, backend=backend).run(fetches, feed)
    assert capfd.readouterr().out.splitlines() == FORMAT_LINES
    np.testing.assert_array_equal(out[0], feed[x])  # the value passes on


@pytest.mark.needs_c
def test_print_text_identical_across_backends(capfd):
    rng = np.random.default_rng(0)
    with gc.Graph() as g:
        x = gc.placeholder((None, 5), name="x")
        h = gc.print(x * 0.1, "h (µ, \\n, %s)")  # (exact IEEE arithmetic: the same bits)
        y = gc.print(gc.max(h, axis=1), "rows", summarize=2)
        n = gc.print(gc.cast(gc.greater(h, 0.0), "int32"), "ints")
    feed = {x: (rng.normal(size=(7, 5)) * 1e4).astype(np.float32)}
    feed[x][3, 1] = np.nan
    texts = []
    for backend in ("numpy", "c"):
        gc.Session(g, backend=backend).run([y, n], feed)
        texts.append(capfd.readouterr().out)
    assert texts[0] == texts[1]
    assert texts[0].count("\n") == 3 and texts[0].startswith("h (µ, \\n, %s) shape=(7, 5) [")
    assert "rows shape=(7,) [" in texts[0] and "ints shape=(7, 5) [" in texts[0]


def test_print_every_and_interleaving(backend, capfd):
    with gc.Graph() as g:
        x = gc.placeholder((None, 2), name="x")
        y = gc.print(x * 2.0, "y", every=2)
    sess = gc.Session(g, backend=backend)
    for k in range(5):
        print(f"python {k}")  # buffered by Python: must come out before the step's line
        sess.run(y, {x: np.full((k + 1, 2), k, np.float32)})
    out = capfd.readouterr().out.splitlines()
    assert out == ["python 0", "y shape=(1, 2) [0 0] min=0 max=0 mean=0", "python 1", "python 2",
                   "y shape=(3, 2) [4 4 4 4 4 4] min=4 max=4 mean=4", "python 3", "python 4",
                   "y shape=(5, 2) [8 8 8 ... 8 8 8] min=8 max=8 mean=8"]


def test_prints_inside_fused_chain_in_order(backend, capfd):
    """Two prints in one elementwise chain, and two identical prints of one value (neither
    merged by CSE nor dropped): every line, in the step's order; the values pass on."""
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        a = gc.print(gc.exp(x), "first")
        b = gc.print(gc.sqrt(a * 2.0 + 1.0), "second")
        c = gc.print(b, "twin") + gc.print(b, "twin")
        k = gc.print(gc.constant([1.0, 2.0]), "folded?") * 3.0  # constant input: never folded
        out = gc.relu(c - 1.0)
    sess = gc.Session(g, backend=backend)
    xv = np.array([[0.0, 1.0, -1.0], [2.0, 0.5, 0.0]], np.float32)
    got, kv = sess.run([out, k], {x: xv})
    lines = capfd.readouterr().out.splitlines()
    assert [ln.split(" shape")[0] for ln in lines] == ["first", "second", "twin", "twin", "folded?"]
    want = np.maximum(2 * np.sqrt(2 * np.exp(xv.astype(np.float64)) + 1) - 1, 0)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_array_equal(kv, [3.0, 6.0])


def test_prints_keep_their_order_when_kernels_merge(backend, capfd):
    """The softmax cross-entropy gradient joins its forward kernel by moving the kernels
    its ``g`` needs before it: never a print past another print."""
    with gc.Graph() as g:
        z = gc.placeholder((None, 4), name="z")
        labels = gc.placeholder((None,), "int64", name="labels")
        w = gc.placeholder((None,), name="w")
        loss = gc.sum(gc.print(gc.softmax_cross_entropy(z, labels), "A") * gc.print(w, "B"))
        dz = gc.grad(loss, z)
    feed = {z: np.zeros((2, 4), np.float32), labels: np.array([1, 2]), w: np.ones(2, np.float32)}
    gc.Session(g, backend=backend).run([loss, dz], feed)
    assert [ln[0] for ln in capfd.readouterr().out.splitlines()] == ["A", "B"]


def test_gradient_passes_through_debug_ops(backend):
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        y = gc.check_finite(gc.print(gc.square(x), "sq"))
        y = gc.check(gc.greater_equal(y, 0.0), "non-negative", y)
        dx = gc.grad(gc.sum(y * 3.0), x)
    xv = np.array([[1.0, -2.0, 0.5]], np.float32)
    np.testing.assert_allclose(gc.Session(g, backend=backend).run(dx, {x: xv}), 6 * xv)


# -- checks -----------------------------------------------------------------------------------

def _training(check):
    """A linear model whose SGD step also fetches a check (``check(x, loss)`` -> (node,
    the line that made it))."""
    with gc.Graph() as g:
        x = gc.placeholder((None, 2), name="x")
        W = gc.variable(np.ones((2, 1), np.float32), name="W")
        v = gc.variable(np.zeros((2,), np.float32), name="v", trainable=False)
        loss = gc.mean(gc.square(x @ W))
        train = gc.optim.SGD(lr=0.1).minimize(loss)
        # an update whose value is itself checked (it can be computed in place)
        bump = gc.assign(v, gc.check_finite(v + gc.sum(x, axis=0), "bump"))
        checked, site = check(x, loss)
    return g, x, W, v, [train, bump, checked], site  # (the check kernel runs last)


@pytest.mark.filterwarnings("ignore:overflow encountered")
@pytest.mark.parametrize("which", ["check", "check_finite", "bump"])
def test_failing_check_changes_no_state(backend, which):
    def check(x, loss):
        if which == "check":
            return gc.check(gc.less(gc.abs(x), 100.0), "x out of range", loss), _line()
        return gc.check_finite(loss, "loss"), _line()

    g, x, W, v, fetches, site = _training(check)
    sess = gc.Session(g, backend=backend)
    good = np.ones((3, 2), np.float32)
    sess.run(fetches, {x: good})
    W1, v1 = sess.get_value(W), sess.get_value(v)
    assert sess.step == 1 and not np.array_equal(W1, np.ones((2, 1)))
    bad = good.copy()
    bad[1, 0] = {"check": 1e3, "check_finite": 1e20, "bump": np.nan}[which]  # (1e20: the loss overflows)
    if which == "bump":  # (the loss check not fetched) the checked update value fails
        fetches = fetches[:2]
        bad[1, 0] = np.float32(3e38)
        bad[2, 0] = np.float32(3e38)
        message = "bump (Inf at element 0)"
    else:
        message = {"check": "x out of range (false at element 2)",
                   "check_finite": "loss (Inf at element 0)"}[which]
    with pytest.raises(gc.GraphcError) as info:
        sess.run(fetches, {x: bad})
    assert message in str(info.value)
    if which != "bump":
        assert site in str(info.value)
    np.testing.assert_array_equal(sess.get_value(W), W1)
    np.testing.assert_array_equal(sess.get_value(v), v1)
    assert sess.step == 1
    sess.run(fetches, {x: good})  # and the session goes on
    assert sess.step == 2


def test_check_finite_names_nan_and_inf(backend, capfd):
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        y, site = gc.check_finite(gc.log(x)), _line()
        ok = gc.check(gc.greater(x, -1.0), value=x)
    sess = gc.Session(g, backend=backend)
    np.testing.assert_allclose(sess.run(y, {x: np.ones((2, 3), np.float32)}), 0.0)
    sess.run(ok, {x: np.zeros((2, 3), np.float32)})  # passing checks say nothing
    assert capfd.readouterr().out == ""
    with pytest.raises(gc.GraphcError, match=r"check_finite\(log\) \(NaN at element 4\)") as info:
        sess.run(y, {x: np.array([[1, 2, 3], [1, -1, 0]], np.float32)})
    assert site in str(info.value)
    with pytest.raises(gc.GraphcError, match=r"\(Inf at element 5\)"):
        sess.run(y, {x: np.array([[1, 2, 3], [1, 1, 0]], np.float32)})
    with pytest.raises(gc.GraphcError, match=r"check\(greater\) \(false at element 1\)"):
        sess.run(ok, {x: np.array([[0, -2, 0]], np.float32)})
    assert sess.step == 2


def test_bad_arguments_name_the_line():
    with gc.Graph():
        x = gc.placeholder((None, 3), name="x")
        for call in (lambda: gc.print(x, every=0), lambda: gc.print(x, summarize=-1),
                     lambda: gc.print(x, every=1.5), lambda: gc.print(x, summarize=True),
                     lambda: gc.print(x, "a\0b")):
            with pytest.raises(gc.ArgumentError, match="test_debug_ops.py"):
                call()
        with pytest.raises(gc.ArgumentTypeError, match="message must be a str"):
            gc.check_finite(x, 3)
        with pytest.raises(gc.DTypeError, match=r"must be bool.*\n  defined at .*test_debug_ops.py"):
            gc.check(x, "not bool")
        with pytest.raises(gc.DTypeError, match="only float tensors"):
            gc.check_finite(gc.cast(x, "int32"))


def test_c_step_prints_from_native_code():
    """The print is a statement of the lowered program, rendered as printf in the C step."""
    with gc.Graph():
        x = gc.placeholder((None, 2), name="x")
        y = gc.print(x + 1.0, "50%", every=3)
    src = render(lower(optimize(Program([y])))).source
    assert 'printf("50%% shape=(%lld, 2) "' in src and "step % 3 == 0" in src
    assert "gc_print_summary_f32(" in src
