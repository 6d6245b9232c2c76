"""Sizes of a step at a batch size, in Python integers: checked, never wrapped."""

import numpy as np
import pytest

import graphc as gc
from graphc.ir.errors import GraphcError
from graphc.ir.program import Program
from graphc.lower import ir, lower
from graphc.lower.sizes import SIZE_MAX, evaluate, step_bytes
from graphc.transforms.passes import optimize


def test_evaluate_is_exact_past_64_bits():
    e = ir.add(ir.mul(ir.N, ir.Lit(64)), ir.Lit(128))
    assert evaluate(e, 2**58) == 2**64 + 128
    assert evaluate(ir.Bin("%", ir.Bin("/", ir.N, ir.Lit(3)), ir.Lit(5)), 100) == 33 % 5


def test_step_bytes_match_the_plan_and_refuse_what_does_not_fit():
    with gc.Graph():
        x = gc.placeholder((None, 4))
        y = gc.sum(gc.exp(x) * 2.0, axis=1)
        z = gc.sum(gc.tanh(y))
    lowered = lower(optimize(Program([z])))
    assert step_bytes(lowered, 10) == evaluate(lowered.arena_bytes, 10) >= 10 * 4
    big = 2**61  # x and exp(x) would be 2**65 bytes, y 2**63: one past the largest size
    with pytest.raises(GraphcError, match=rf"at batch size {big} its value of shape \({big}(, 4)?,?\) "
                                          r"would need \d+ bytes, more than a 64-bit size holds"):
        step_bytes(lowered, big)
    assert SIZE_MAX == np.iinfo(np.int64).max
