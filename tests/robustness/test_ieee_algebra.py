"""The compiler's algebra changes no IEEE result: every backend gives, bit for bit, where
NaN, the infinities and signed zeros land, what NumPy gives evaluating the same
operations one by one (other values: to the last bits of libm's functions).

sympy folds ``x - x`` to 0, ``x * 0.0`` to 0, ``x / x`` to 1, ``exp(x) * exp(-x)`` to 1,
``(x + x) - x`` to ``x`` and ``1 / (x - x)`` to ComplexInfinity (which has no C text);
fused kernels compose their ops' formulas, so each case below is one of those folds
reached through composition: in a fused loop, in a matmul's epilogue, in a reduction's
prologue, and in gradients. The C compiler's own rewrite of the same kind, contracting
``a*b + c`` into a fused multiply-add (``(x + x) - x`` became ``fma(x, 2, -x)``, finite
where IEEE overflows), is off in generated code (``kernels/exact.h``).
"""

from __future__ import annotations

import numpy as np

import graphc as gc

SPECIALS = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.5, -2.0, 1e-30, 3e38, -3e38], np.float32)

#: name -> (graphc graph of x, the same operations in NumPy)
CASES = {
    "x / x": (lambda x: x / x, lambda x: x / x),
    "x - x": (lambda x: x - x, lambda x: x - x),
    "x * 0.0": (lambda x: x * 0.0, lambda x: x * np.float32(0.0)),
    "x * -0.0": (lambda x: x * -0.0, lambda x: x * np.float32(-0.0)),
    "0.0 * x + 1": (lambda x: 0.0 * x + 1, lambda x: np.float32(0.0) * x + np.float32(1)),
    "x + 0.0": (lambda x: x + 0.0, lambda x: x + np.float32(0.0)),
    "x - 0.0 + -0.0": (lambda x: x - 0.0 + -0.0, lambda x: x - np.float32(0.0) + np.float32(-0.0)),
    "log(x) - log(x)": (lambda x: gc.log(x) - gc.log(x), lambda x: np.log(x) - np.log(x)),
    "x / 0.0": (lambda x: x / 0.0, lambda x: x / np.float32(0.0)),
    "log(x - x)": (lambda x: gc.log(x - x), lambda x: np.log(x - x)),
    "1 / (x - x)": (lambda x: 1 / (x - x), lambda x: np.float32(1) / (x - x)),
    "exp(x) * exp(-x)": (lambda x: gc.exp(x) * gc.exp(-x), lambda x: np.exp(x) * np.exp(-x)),
    "(x + x) - x": (lambda x: (x + x) - x, lambda x: (x + x) - x),
    "x * x / x": (lambda x: x * x / x, lambda x: x * x / x),
    "square(sqrt(x))": (lambda x: gc.square(gc.sqrt(x)), lambda x: np.square(np.sqrt(x))),
    "x * inf": (lambda x: x * np.inf, lambda x: x * np.float32(np.inf)),
    "x + nan": (lambda x: x + np.nan, lambda x: x + np.float32(np.nan)),
    "abs(x) - abs(x)": (lambda x: gc.abs(x) - gc.abs(x), lambda x: np.abs(x) - np.abs(x)),
    "maximum(x, x) - x": (lambda x: gc.maximum(x, x) - x, lambda x: np.maximum(x, x) - x),
    "x ** 0 (no tensor exponent)": (lambda x: gc.power(x, 0), lambda x: np.power(x, np.float32(0))),
    "where(x > 0, x, x) - x": (lambda x: gc.where(x > 0, x, x) - x, lambda x: np.where(x > 0, x, x) - x),
}


def _grad_cases():
    """Gradients: chain-rule products in NumPy, one op after the other as autodiff builds them."""
    def sqrt_xx(x):  # d/dx sum(sqrt(x - x)): sqrt' = 1/(2y), then sub's +g and -g, summed
        g = np.float32(1) * (np.float32(0.5) / np.sqrt(x - x))
        return g + -g

    def div_xx(x):  # d/dx sum(x / x): 1/x from the numerator, -(x/x)/x from the denominator
        return np.float32(1) / x + -((x / x) / x)

    def log_log(x):  # d/dx sum(log(x) - log(x)): 1/x - 1/x
        return np.float32(1) / x + -(np.float32(1) / x)

    return {
        "grad sqrt(x - x)": (lambda x: gc.sqrt(x - x), sqrt_xx),
        "grad x / x": (lambda x: x / x, div_xx),
        "grad log(x) - log(x)": (lambda x: gc.log(x) - gc.log(x), log_log),
    }


GRADS = _grad_cases()


def _same(got, want) -> bool:
    """NaN, infinities and zeros (with their signs) exactly where NumPy has them; other
    values to a few units in the last place (libm's expf and graphc's differ there)."""
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    special = ~np.isfinite(want) | (want == 0) | ~np.isfinite(got) | (got == 0)
    with np.errstate(all="ignore"):
        exact = np.array_equal(np.isnan(got), np.isnan(want)) and np.array_equal(
            got[special & ~np.isnan(want)].view(np.uint32), want[special & ~np.isnan(want)].view(np.uint32))
    return exact and bool(np.allclose(got[~special], want[~special], rtol=1e-6, atol=0))


def _mismatches(got: dict, want: dict) -> dict:
    return {k: (got[k], want[k]) for k in want if not _same(got[k], want[k])}


def test_fused_elementwise_algebra_is_exact(backend):
    with gc.Graph() as g:
        x = gc.placeholder((None,), name="x")
        fetch = {name: build(x) for name, (build, _) in CASES.items()}
    got = dict(zip(fetch, gc.Session(g, backend=backend).run(list(fetch.values()), {x: SPECIALS})))
    with np.errstate(all="ignore"):
        want = {name: ref(SPECIALS) for name, (_, ref) in CASES.items()}
    assert _mismatches(got, want) == {}


def test_gradients_are_exact(backend):
    with gc.Graph() as g:
        x = gc.placeholder((None,), name="x")
        fetch = {name: gc.grad(gc.sum(build(x)), x) for name, (build, _) in GRADS.items()}
    got = dict(zip(fetch, gc.Session(g, backend=backend).run(list(fetch.values()), {x: SPECIALS})))
    with np.errstate(all="ignore"):
        want = {name: ref(SPECIALS) for name, (_, ref) in GRADS.items()}
    assert _mismatches(got, want) == {}


def test_epilogues_and_prologues_are_exact(backend):
    """The same folds inside a matmul's epilogue and a reduction's prologue (x @ [[1]] is x,
    -0.0 aside: a product accumulates from +0.0)."""
    values = SPECIALS[SPECIALS != 0].reshape(-1, 1)
    with gc.Graph() as g:
        x = gc.placeholder((None, 1), name="x")
        h = x @ gc.variable(np.ones((1, 1), np.float32), name="W")
        fetch = {
            "h / h": h / h, "h - h": h - h, "log(h) - log(h)": gc.log(h) - gc.log(h),
            "1 / (h - h)": 1 / (h - h), "sum(x / x)": gc.sum(x / x, axis=1),
            "max(x - x)": gc.max(x - x, axis=1), "sum(x * 0.0 + 1)": gc.sum(x * 0.0 + 1, axis=1),
        }
    got = dict(zip(fetch, gc.Session(g, backend=backend).run(list(fetch.values()), {x: values})))
    v = values
    with np.errstate(all="ignore"):
        want = {"h / h": v / v, "h - h": v - v, "log(h) - log(h)": np.log(v) - np.log(v),
                "1 / (h - h)": np.float32(1) / (v - v), "sum(x / x)": (v / v)[:, 0],
                "max(x - x)": (v - v)[:, 0], "sum(x * 0.0 + 1)": (v * np.float32(0) + 1)[:, 0]}
    assert _mismatches(got, want) == {}
