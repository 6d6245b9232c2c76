"""Composition of fused formulas keeps every IEEE result: no folding through sympy's
automatic evaluation, literals only for values a literal can say exactly."""

import numpy as np
import sympy

import graphc as gc
from graphc.lower.elementwise import common_subexpressions, compose, literal


def test_compose_keeps_x_minus_x_and_x_over_x():
    with gc.Graph() as g:
        x = gc.placeholder((3,), name="x")
        d, q, z = x - x, x / x, x * 0.0
        e = gc.log(d) + q + z
    env = compose([n for n in g.nodes if n.op.name == "elemwise"], [x])
    l0 = sympy.Symbol("l0", real=True)
    assert env[d.id] != 0 and env[q.id] != 1 and env[z.id] != 0
    assert env[d.id].has(l0) and env[q.id].has(l0) and env[z.id].has(l0)
    assert not env[e.id].has(sympy.zoo)


def test_literals_only_for_exact_finite_values():
    with gc.Graph():
        values = {v: gc.constant(np.float32(v)) for v in (0.5, -0.0, np.inf, -np.inf, np.nan)}
        i = gc.constant(3)
    assert float(literal(values[0.5])) == 0.5
    assert [literal(values[v]) for v in (-0.0, np.inf, -np.inf, np.nan)] == [None] * 4
    assert literal(i) == 3


def test_common_subexpressions_do_not_fold():
    x = sympy.Symbol("l0", real=True)
    with sympy.evaluate(False):
        t = sympy.log(x)
        e = t - t
    temps, (reduced,) = common_subexpressions([e])
    assert len(temps) == 1 and temps[0][1] == sympy.log(x)
    assert reduced != 0 and reduced.has(temps[0][0])
