"""The code printer of elementwise math: float literals and the float32/float64 flavours of
the C target's table (no compiler needed)."""

import numpy as np
import sympy

from graphc.backends.c.target import CTarget

X = sympy.Symbol("x")


def print_expr(expr, dtype: str) -> str:
    return CTarget().printer(dtype).text(expr)


def _literal(value: float, dtype: str) -> str:
    return print_expr(sympy.Float(value), dtype)


def test_float32_literals_round_trip_and_carry_the_f_suffix():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.standard_normal(200) * 10.0 ** rng.integers(-30, 30, 200),
                             [0.9, -0.009, 1.0, -2.0, 1e-8, 3e20, 0.0, 123456789.0]])
    for v in values.astype(np.float32):
        text = _literal(float(v), "float32")
        assert text.endswith("F") and any(c in text for c in ".e"), text
        assert np.float32(float(text[:-1])) == v, (v, text)


def test_float64_literals_round_trip_exactly():
    rng = np.random.default_rng(1)
    for v in rng.standard_normal(200) * 10.0 ** rng.integers(-200, 200, 200):
        text = _literal(float(v), "float64")
        assert not text.endswith("F") and float(text) == v, (v, text)
    assert _literal(1.0, "float64") == "1.0" and _literal(0.5, "float32") == "0.5F"


def test_float32_expressions_use_float_functions():
    text = print_expr(sympy.exp(X) * 0.5 + sympy.log(X), "float32")
    assert text == "0.5F*gc_expf(x) + logf(x)", text
    assert print_expr(sympy.exp(X) * 0.5, "float64") == "0.5*exp(x)"


def test_unevaluated_formulas_print_as_composed():
    """Composed formulas are unevaluated (lower/elementwise.py): printing re-folds nothing."""
    with sympy.evaluate(False):
        e = X - X + X / X + 0.0 * X + sympy.log(X) - sympy.log(X)
    text = print_expr(e, "float32")
    assert text.count("x") == 7 and "logf(x)" in text, text


def test_special_values_print_as_c_constants():
    with sympy.evaluate(False):
        e = X * sympy.oo + X * -sympy.oo + X * sympy.nan
    text = print_expr(e, "float32")
    assert "INFINITY" in text and "(-INFINITY)" in text and "NAN" in text, text


def test_complex_infinity_is_a_graphc_error():
    import pytest

    from graphc.ir.errors import GraphcError

    with pytest.raises(GraphcError, match="no IEEE value"):
        print_expr(X / 0, "float32")


def test_nan_propagating_helpers():
    from graphc.ops.scalar import maximum, minimum, power

    assert print_expr(maximum(X, 0.5), "float32") == "gc_maxf(x, 0.5F)"
    assert print_expr(minimum(X, 0.5), "float64") == "gc_min(x, 0.5)"
    assert print_expr(power(X, sympy.Symbol("y")), "float32") == "powf(x, y)"
    assert "== 0 ? 0 : (x)" in print_expr(sympy.sign(X), "float32")  # sign(NaN) is NaN
