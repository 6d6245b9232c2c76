"""gc.schedules: exact values, plateau logic, a fed lr placeholder without recompiling."""

from __future__ import annotations

import math

import numpy as np
import pytest

import graphc as gc
from graphc import schedules as S


def test_step_decay():
    s = S.step_decay(0.1, drop=0.5, every=10)
    assert [s(i) for i in (0, 9, 10, 19, 20, 35)] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.0125]


def test_exponential_decay():
    s = S.exponential_decay(1.0, rate=0.5, steps=10)
    assert s(0) == 1.0 and s(10) == 0.5 and s(30) == 0.125
    assert s(5) == pytest.approx(math.sqrt(0.5), rel=1e-15)
    st = S.exponential_decay(1.0, rate=0.5, steps=10, staircase=True)
    assert [st(i) for i in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]


def test_cosine_decay():
    s = S.cosine_decay(1.0, total_steps=100, min_lr=0.1)
    assert s(0) == 1.0 and s(100) == 0.1 and s(250) == 0.1
    assert s(50) == pytest.approx(0.55, rel=1e-14)
    assert s(25) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)), rel=1e-14)
    assert S.cosine_decay(0.2, 10)(10) == 0.0


def test_linear_warmup_of_a_value_and_a_schedule():
    w = S.linear_warmup(1.0, warmup_steps=4)
    assert [w(i) for i in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    ws = S.linear_warmup(S.step_decay(1.0, 0.5, 2), warmup_steps=2)
    assert [ws(i) for i in range(7)] == [0.5, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25]
    assert S.linear_warmup(0.3, 0)(0) == 0.3


def test_reduce_on_plateau_min_and_max():
    p = S.ReduceOnPlateau(1.0, factor=0.5, patience=2, min_lr=0.2)
    lrs = [p.update(m) for m in [5, 4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 3]]
    assert lrs == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2, 0.2]
    assert p(123) == 0.2
    q = S.ReduceOnPlateau(0.1, factor=0.1, patience=0, mode="max")
    assert [q.update(m) for m in [0.5, 0.6, 0.6]] == pytest.approx([0.1, 0.1, 0.01])
    with pytest.raises(ValueError):
        S.ReduceOnPlateau(0.1, mode="sideways")


def test_invalid_arguments():
    with pytest.raises(ValueError):
        S.step_decay(0.1, 0.5, 0)
    with pytest.raises(ValueError):
        S.cosine_decay(0.1, 10, min_lr=0.5)
    with pytest.raises(ValueError):
        S.step_decay(0.1, 0.5, 3)(-1)


def test_fed_lr_placeholder_trains_with_each_value_and_compiles_once():
    rng = np.random.default_rng(0)
    xb = rng.normal(size=(8, 3)).astype(np.float32)
    tb = rng.normal(size=(8, 1)).astype(np.float32)
    w0 = rng.normal(size=(3, 1)).astype(np.float32)
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        t = gc.placeholder((None, 1), name="t")
        W = gc.variable(w0, name="W")
        loss = gc.mean(gc.square(x @ W - t))
        lr = S.lr_placeholder()
        train = gc.optim.SGD(lr).minimize(loss)
    assert lr.shape == () and lr.dtype == "float32" and lr.name == "lr"
    sess = gc.Session(g, backend="numpy")
    sched = S.step_decay(0.1, drop=0.1, every=2)
    w = w0.astype(np.float64)
    for step in range(5):
        sess.run([loss, train], {x: xb, t: tb, lr: sched(step)})
        grad = 2 * xb.T @ (xb @ w - tb) / xb.shape[0]
        w = w - np.float32(sched(step)) * grad
        np.testing.assert_allclose(sess.get_value(W), w, rtol=1e-5, atol=1e-6)
    assert len(sess._compiled) == 1
    # a zero learning rate leaves the weights alone: the fed value is really used
    before = sess.get_value(W)
    sess.run([loss, train], {x: xb, t: tb, lr: 0.0})
    np.testing.assert_array_equal(sess.get_value(W), before)
    assert len(sess._compiled) == 1


def test_lr_placeholder_in_an_explicit_graph():
    g = gc.Graph()
    lr = S.lr_placeholder(g, name="learning_rate")
    assert lr.graph is g and lr.name == "learning_rate"
