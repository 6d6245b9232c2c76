"""gc.regularizers: penalty values, their gradients, decoupled weight decay."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc import nn
from graphc import regularizers as reg

RNG = np.random.default_rng(0)
A = RNG.normal(size=(3, 4))
B = RNG.normal(size=(5,))


def _graph():
    g = gc.Graph()
    with g:
        wa = gc.variable(A, name="a")
        wb = gc.variable(B, name="b")
    return g, wa, wb


@pytest.mark.parametrize("name, value, grads", [
    ("l1", lambda: 0.3 * (np.abs(A).sum() + np.abs(B).sum()),
     lambda: (0.3 * np.sign(A), 0.3 * np.sign(B))),
    ("l2", lambda: 0.3 * ((A**2).sum() + (B**2).sum()),
     lambda: (2 * 0.3 * A, 2 * 0.3 * B)),
    ("l2_norm", lambda: 0.3 * np.sqrt((A**2).sum() + (B**2).sum()),
     lambda: tuple(0.3 * w / np.sqrt((A**2).sum() + (B**2).sum()) for w in (A, B))),
    ("elastic_net", lambda: 0.1 * (np.abs(A).sum() + np.abs(B).sum())
     + 0.2 * ((A**2).sum() + (B**2).sum()),
     lambda: tuple(0.1 * np.sign(w) + 0.4 * w for w in (A, B))),
])
def test_values_and_gradients(name, value, grads):
    g, wa, wb = _graph()
    with g:
        if name == "elastic_net":
            pen = reg.elastic_net([wa, wb], l1=0.1, l2=0.2)
        else:
            pen = getattr(reg, name)([wa, wb], 0.3)
        ga, gb = gc.grad(pen, [wa, wb])
    assert pen.shape == ()
    got = gc.Session(g, backend="numpy").run([pen, ga, gb])
    np.testing.assert_allclose(got[0], value(), rtol=1e-12)
    for got_g, want_g in zip(got[1:], grads()):
        np.testing.assert_allclose(got_g, want_g, rtol=1e-12)


def test_single_tensor_and_layer_arguments():
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 3))
        layer = nn.Dense(2)
        layer(x)
        pen_layer = reg.l2(layer, 0.5)
        pen_w = reg.l2(layer.W, 0.5)
        pen_list = reg.l1([layer, layer.W], 1.0)   # duplicates are counted once
    sess = gc.Session(g, backend="numpy")
    W, b = sess.get_value(layer.W), sess.get_value(layer.b)
    sess.set_value(layer.b, np.array([1.0, -2.0], np.float32))
    b = sess.get_value(layer.b)
    got = sess.run([pen_layer, pen_w, pen_list])
    np.testing.assert_allclose(got[0], 0.5 * ((W**2).sum() + (b**2).sum()), rtol=1e-6)
    np.testing.assert_allclose(got[1], 0.5 * (W**2).sum(), rtol=1e-6)
    np.testing.assert_allclose(got[2], np.abs(W).sum() + np.abs(b).sum(), rtol=1e-6)
    with pytest.raises(gc.GraphcError, match="no parameters"):
        reg.l2(nn.Dense(3), 0.1)
    with pytest.raises(TypeError):
        reg.l1("W", 0.1)


def test_penalty_in_a_training_step_shrinks_weights():
    g, wa, wb = _graph()
    with g:
        train = gc.optim.SGD(0.1).minimize(reg.l2([wa, wb], 0.5))
    sess = gc.Session(g, backend="numpy")
    sess.run(train)
    np.testing.assert_allclose(sess.get_value(wa), A - 0.1 * A, rtol=1e-12)


def test_decoupled_weight_decay_update_op():
    g, wa, wb = _graph()
    with g:
        lr = gc.placeholder((), name="lr")
        decay = reg.decoupled_weight_decay([wa, wb], 0.5, lr)
        decay_const = reg.decoupled_weight_decay(wa, 0.5, 0.1)
    assert decay.dtype is None
    sess = gc.Session(g, backend="numpy")
    sess.run(decay, {lr: 0.25})                 # float32 placeholder: 0.25 is exact
    np.testing.assert_allclose(sess.get_value(wa), A * (1 - 0.25 * 0.5), rtol=1e-12)
    np.testing.assert_allclose(sess.get_value(wb), B * (1 - 0.25 * 0.5), rtol=1e-12)
    sess.run(decay_const)
    np.testing.assert_allclose(sess.get_value(wa), A * 0.875 * 0.95, rtol=1e-12)


@pytest.mark.parametrize("make_opt", [
    lambda: gc.optim.SGD(0.1),
    lambda: gc.optim.SGD(0.1, momentum=0.9),
    lambda: gc.optim.Adam(0.1),
])
def test_weight_decay_wrapper_matches_an_undecayed_step_minus_decay(make_opt):
    target = RNG.normal(size=(3, 4))

    def step(decayed):
        g, wa, wb = _graph()
        with g:
            loss = gc.sum(gc.square(wa - gc.constant(target))) + gc.sum(wb)
            opt = make_opt()
            if decayed:
                opt = reg.weight_decay(opt, 0.3, params=[wa])
            train = opt.minimize(loss)
        sess = gc.Session(g, backend="numpy")
        sess.run(train)
        return sess.get_value(wa), sess.get_value(wb)

    plain_a, plain_b = step(False)
    decayed_a, decayed_b = step(True)
    np.testing.assert_allclose(decayed_a, plain_a - 0.1 * 0.3 * A, rtol=1e-12)
    np.testing.assert_array_equal(decayed_b, plain_b)      # not in params: no decay
