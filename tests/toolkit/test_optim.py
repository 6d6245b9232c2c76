"""Optimizers against NumPy transcriptions of the PyTorch update rules."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc

RNG = np.random.default_rng(7)
A = RNG.standard_normal((5, 3))
T = RNG.standard_normal((5, 2))
W0 = RNG.standard_normal((3, 2))


def grad_np(w):
    """Gradient of mean((A w - T)^2)."""
    return 2 * A.T @ (A @ w - T) / T.size


def sgd(w, steps, lr, momentum=0.0, nesterov=False):
    buf = np.zeros_like(w)
    for _ in range(steps):
        g = grad_np(w)
        if momentum:
            buf = momentum * buf + g
            g = g + momentum * buf if nesterov else buf
        w = w - lr * g
    return w


def adam(w, steps, lr, b1=0.9, b2=0.999, eps=1e-8):
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t in range(1, steps + 1):
        g = grad_np(w)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return w


def rmsprop(w, steps, lr, alpha=0.99, eps=1e-8):
    s = np.zeros_like(w)
    for _ in range(steps):
        g = grad_np(w)
        s = alpha * s + (1 - alpha) * g * g
        w = w - lr * g / (np.sqrt(s) + eps)
    return w


def adagrad(w, steps, lr, eps=1e-10):
    s = np.zeros_like(w)
    for _ in range(steps):
        g = grad_np(w)
        s = s + g * g
        w = w - lr * g / (np.sqrt(s) + eps)
    return w


CASES = [
    (lambda: gc.optim.SGD(lr=0.1), lambda w, n: sgd(w, n, 0.1)),
    (lambda: gc.optim.SGD(lr=0.1, momentum=0.9), lambda w, n: sgd(w, n, 0.1, 0.9)),
    (lambda: gc.optim.SGD(lr=0.1, momentum=0.9, nesterov=True),
     lambda w, n: sgd(w, n, 0.1, 0.9, True)),
    (lambda: gc.optim.Adam(lr=0.01), lambda w, n: adam(w, n, 0.01)),
    (lambda: gc.optim.RMSProp(lr=0.01), lambda w, n: rmsprop(w, n, 0.01)),
    (lambda: gc.optim.AdaGrad(lr=0.1), lambda w, n: adagrad(w, n, 0.1)),
]


@pytest.mark.parametrize("make_opt, reference", CASES,
                         ids=["sgd", "momentum", "nesterov", "adam", "rmsprop", "adagrad"])
def test_optimizer_matches_reference(backend, make_opt, reference):
    with gc.Graph() as g:
        a = gc.constant(A)
        t = gc.constant(T)
        w = gc.variable(W0, name="w")
        loss = gc.mean(gc.square(a @ w - t))
        step = make_opt().minimize(loss)
    sess = gc.Session(g, backend=backend)
    for _ in range(5):
        sess.run(step)
    np.testing.assert_allclose(sess.get_value(w), reference(W0, 5), rtol=1e-10, atol=1e-12)


def test_learning_rate_can_be_a_fed_tensor():
    with gc.Graph() as g:
        lr = gc.placeholder((), dtype="float64", name="lr")
        w = gc.variable(W0, name="w")
        loss = gc.mean(gc.square(gc.constant(A) @ w - gc.constant(T)))
        step = gc.optim.SGD(lr=lr).minimize(loss)
    sess = gc.Session(g, backend="numpy")
    sess.run(step, {lr: 0.1})
    sess.run(step, {lr: 0.05})
    expected = sgd(sgd(W0, 1, 0.1), 1, 0.05)
    np.testing.assert_allclose(sess.get_value(w), expected, rtol=1e-12)
    assert len(sess._compiled) == 1


def test_var_list_limits_the_update():
    with gc.Graph() as g:
        w = gc.variable(np.ones(2), name="w")
        v = gc.variable(np.ones(2), name="v")
        loss = gc.sum(w * v)
        step = gc.optim.SGD(lr=0.5).minimize(loss, var_list=[w])
    sess = gc.Session(g, backend="numpy")
    sess.run(step)
    np.testing.assert_allclose(sess.get_value(w), [0.5, 0.5])
    np.testing.assert_allclose(sess.get_value(v), [1.0, 1.0])


def test_optimizer_state_is_graph_variables():
    with gc.Graph() as g:
        w = gc.variable(np.ones(2), name="w")
        opt = gc.optim.Adam()
        opt.minimize(gc.sum(w * w))
    names = {v.name for v in g.variables()}
    assert {"Adam/w/m", "Adam/w/v", "Adam/t"} <= names
    assert [v.name for v in g.trainable_variables()] == ["w"]
    assert set(opt.state) == {"Adam/w/m", "Adam/w/v", "Adam/t"}


def test_bad_arguments():
    with pytest.raises(ValueError):
        gc.optim.SGD(lr=-1)
    with pytest.raises(ValueError):
        gc.optim.SGD(lr=0.1, nesterov=True)
    with gc.Graph():
        x = gc.placeholder((2,))
        with pytest.raises(gc.GraphcError, match="no float variables"):
            gc.optim.SGD(lr=0.1).minimize(gc.sum(x))


def test_two_assigns_to_one_variable_in_a_step_are_refused():
    with gc.Graph():
        w = gc.variable(np.ones(2), name="w")
        with pytest.raises(gc.GraphcError, match="assigned twice"):
            gc.group(gc.assign(w, w + 1.0), gc.assign(w, w * 10.0))
    with gc.Graph() as g:
        w = gc.variable(np.ones(2), name="w")
        a, b = gc.assign(w, w + 1.0), gc.assign(w, w * 10.0)
    with pytest.raises(gc.GraphcError, match="assigned twice"):
        gc.Session(g, backend="numpy").run([a, b])


def test_decoupled_weight_decay_follows_adamw():
    with gc.Graph() as g:
        w = gc.variable(W0.copy(), name="w")
        loss = gc.mean(gc.square(gc.constant(A) @ w - gc.constant(T)))
        opt = gc.regularizers.weight_decay(gc.optim.SGD(lr=0.1), 0.5)
        step = opt.minimize(loss)
    sess = gc.Session(g, backend="numpy")
    sess.run(step)
    np.testing.assert_allclose(sess.get_value(w), W0 - 0.1 * grad_np(W0) - 0.1 * 0.5 * W0,
                               rtol=1e-12)
