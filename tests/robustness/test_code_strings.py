"""``gc.elementwise`` takes sympy expressions, never code: a string is refused before
anything parses or runs it (it used to reach ``sympy.lambdify`` on the NumPy backend and
``sympify`` in ``gc.grad``), and so are foreign symbols, unknown functions, callables and
names that are not plain identifiers: an ArgumentError at the user's line, at definition.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import graphc as gc
from graphc.ops.scalar import FUNCTIONS, A, sigmoid, softplus

a0, a1 = A[:2]


def _payload(path) -> str:
    return f"__import__('os').system('touch {path}') * 0 + a0"


@pytest.mark.parametrize("backend", ["numpy", pytest.param("c", marks=pytest.mark.needs_c)])
def test_a_string_formula_never_runs(tmp_path, backend):
    marker = tmp_path / "pwned"
    with gc.Graph() as g:
        x = gc.placeholder((None, 2), name="x")
        with pytest.raises(gc.ArgumentError, match=r"got str[\s\S]*test_code_strings.py"):
            gc.elementwise("f", _payload(marker), [x])
        y = gc.elementwise("f", a0 * 2, [x])
        gc.grad(gc.sum(y), [x])
    assert len(g.nodes) > 0 and all(not isinstance(n.attrs.get("expr"), str) for n in g.nodes)
    gc.Session(g, backend=backend).run(y, {x: np.ones((2, 2), np.float32)})
    assert not marker.exists()


def test_a_string_never_reaches_lambdify_or_sympify(tmp_path):
    """Below gc.elementwise too: a node carrying a string is refused when it is made."""
    from graphc.ir.graph import make
    from graphc.ops.elemwise import Elemwise

    marker = tmp_path / "pwned"
    x = gc.placeholder((3,))
    with pytest.raises(gc.ArgumentError, match="must be a sympy expression, got str"):
        make(Elemwise, [x], {"fn": "f", "expr": _payload(marker), "kind": "float"})
    assert not marker.exists()


@pytest.mark.parametrize("expr, message", [
    (a0 + sympy.Symbol("q"), "uses the symbol q: its 1 input"),
    (a0 + a1, "uses the symbol a1: its 1 input"),
    (sympy.Symbol("a0") * 2, "a0 is not graphc's a0"),
    (sympy.Function("system")(a0), "uses system, which graphc cannot evaluate"),
    (sympy.Integral(a0, a0), "uses Integral"),
    (a0 / 0, "zoo"),
    (sympy.Piecewise((a0, a0 > 0)), "needs a last branch"),
    (a0 * sympy.I, "not a real number"),
    (lambda v: v * 2, "got function"),
    (2.0, "got float"),
    (None, "got NoneType"),
])
def test_bad_formulas_are_argument_errors_at_the_users_line(expr, message):
    x = gc.placeholder((3,))
    g = x.graph
    before = len(g.nodes)
    where = r"[\s\S]*test_code_strings.py"
    with pytest.raises(gc.ArgumentError, match=rf"elementwise f: [\s\S]*{message}{where}"):
        gc.elementwise("f", expr, [x])
    assert len(g.nodes) == before


@pytest.mark.parametrize("fn", ["a b", "f\n#include <x>", "f*/", "", "f()", "é", 3, None, "f\\"])
def test_the_name_is_a_plain_identifier(fn):
    x = gc.placeholder((3,))
    with pytest.raises(gc.ArgumentError, match=r"plain identifier[\s\S]*test_code_strings.py"):
        gc.elementwise(fn, a0 * 2, [x])


def test_bad_kind_and_inputs():
    x = gc.placeholder((3,))
    with pytest.raises(gc.ArgumentError, match="kind must be one of"):
        gc.elementwise("f", a0, [x], kind="exec")
    with pytest.raises(gc.ArgumentError, match="inputs must be a list"):
        gc.elementwise("f", a0, x)
    with pytest.raises(gc.ArgumentError, match="inputs must be a list"):
        gc.elementwise("f", a0, [])


def test_every_allowed_function_runs_on_every_backend(backend):
    """What the check lets through, both backends can evaluate (and agree on)."""
    xs = np.array([0.3, -0.4, 0.7, 1.2], np.float32)
    ys = np.array([1.5, 2.0, 0.5, 3.0], np.float32)
    calls = {f.__name__: (f(a0, a1) if getattr(f, "nargs", None) == {2} else f(a0))
             for f in FUNCTIONS}
    with gc.Graph() as g:
        x, y = gc.placeholder((4,), name="x"), gc.placeholder((4,), name="y")
        outs = {name: gc.elementwise(f"f_{name}", e, [x, y]) for name, e in calls.items()}
    got = gc.Session(g, backend=backend).run(list(outs.values()), {x: xs, y: ys})
    want = gc.Session(g, backend="numpy").run(list(outs.values()), {x: xs, y: ys})
    for name, a, b in zip(outs, got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, err_msg=name)
    assert {"exp", "log", "sigmoid", "softplus"} <= set(calls)
    assert sigmoid in FUNCTIONS and softplus in FUNCTIONS


def test_constants_and_conditions_are_formulas_too(backend):
    xs = np.array([0.5, -1.0, 2.0], np.float32)
    with gc.Graph() as g:
        x = gc.placeholder((3,), name="x")
        circle = gc.elementwise("circle", sympy.pi * a0**2 + sympy.E, [x])
        inside = gc.elementwise("inside", sympy.And(a0 > 0, a0 < 1), [x], kind="cmp")
    got = gc.Session(g, backend=backend).run([circle, inside], {x: xs})
    np.testing.assert_allclose(got[0], np.pi * xs**2 + np.e, rtol=1e-6)
    np.testing.assert_array_equal(got[1], [True, False, False])
