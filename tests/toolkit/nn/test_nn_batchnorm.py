"""gc.nn.BatchNorm: run-time mode switch, running statistics, gradients."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc import nn


def _bn_graph(shape, dtype="float32", momentum=0.9, axis=None):
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None,) + shape, dtype=dtype, name="x")
        bn = nn.BatchNorm(momentum=momentum, axis=axis)
        y = bn(x)
        loss = gc.mean(gc.square(y - 1.0))
        train = gc.optim.SGD(0.1).minimize(loss)
    return g, x, bn, y, train


def test_variables_and_parameters():
    g, _, bn, y, _ = _bn_graph((3,))
    assert [v.name for v in bn.parameters] == ["batchnorm/gamma", "batchnorm/beta"]
    assert [v.name for v in bn.variables] == [
        "batchnorm/gamma", "batchnorm/beta", "batchnorm/running_mean", "batchnorm/running_var"]
    assert nn.count_parameters(bn) == 6
    assert y.shape == (None, 3)
    assert bn.update in g.extra_updates


@pytest.mark.parametrize("shape", [(3,), (3, 4, 5)])
def test_training_output_is_normalized_per_feature(shape):
    g, x, bn, y, _ = _bn_graph(shape)
    xb = np.random.default_rng(0).normal(3.0, 2.5, size=(16,) + shape).astype(np.float32)
    out = gc.Session(g, backend="numpy").run(y, {x: xb}, training=True)
    axes = (0,) if len(shape) == 1 else (0, 2, 3)
    np.testing.assert_allclose(out.mean(axis=axes), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.var(axis=axes), 1.0, atol=1e-3)


def test_running_stats_move_by_momentum_after_one_step_and_eval_uses_them():
    g, x, bn, y, train = _bn_graph((2, 3, 3))
    sess = gc.Session(g, backend="numpy")
    xb = np.random.default_rng(1).normal(2.0, 3.0, size=(4, 2, 3, 3)).astype(np.float32)
    # evaluation before any step: running stats are (0, 1)
    np.testing.assert_allclose(sess.run(y, {x: xb}), xb / np.sqrt(1 + 1e-5), rtol=1e-5)
    sess.run(train, {x: xb})                        # fetching an update: training mode
    bmean, bvar = xb.mean(axis=(0, 2, 3)), xb.var(axis=(0, 2, 3))
    rm, rv = sess.get_value(bn.running_mean), sess.get_value(bn.running_var)
    np.testing.assert_allclose(rm, 0.9 * 0 + 0.1 * bmean, rtol=1e-5)
    np.testing.assert_allclose(rv, 0.9 * 1 + 0.1 * bvar, rtol=1e-5)
    # evaluation uses the running statistics and the trained gamma/beta
    gamma, beta = sess.get_value(bn.gamma), sess.get_value(bn.beta)
    assert not np.allclose(beta, 0)
    r = (1, 2, 1, 1)
    want = (xb - rm.reshape(r)) / np.sqrt(rv.reshape(r) + 1e-5) * gamma.reshape(r) \
        + beta.reshape(r)
    np.testing.assert_allclose(sess.run(y, {x: xb}, training=False), want, rtol=1e-4, atol=1e-5)
    # a training-mode forward pass does not touch the running statistics
    sess.run(y, {x: xb}, training=True)
    np.testing.assert_array_equal(sess.get_value(bn.running_mean), rm)


def test_switching_modes_needs_no_new_graph_or_compilation():
    g, x, bn, y, _ = _bn_graph((3,))
    sess = gc.Session(g, backend="numpy")
    sess.set_value(bn.running_mean, np.array([1.0, 2.0, 3.0], np.float32))
    n_nodes = len(g.nodes)
    xb = np.random.default_rng(2).normal(size=(8, 3)).astype(np.float32)
    outs = [sess.run(y, {x: xb}, training=t) for t in (True, False, True, False)]
    assert len(sess._compiled) == 1 and len(g.nodes) == n_nodes
    np.testing.assert_array_equal(outs[0], outs[2])
    np.testing.assert_array_equal(outs[1], outs[3])
    assert not np.allclose(outs[0], outs[1])
    np.testing.assert_allclose(outs[1], (xb - [1, 2, 3]) / np.sqrt(1 + 1e-5), rtol=1e-5)


def test_update_is_a_no_op_when_an_optimizer_step_runs_in_eval_mode():
    g, x, bn, _, train = _bn_graph((3,))
    sess = gc.Session(g, backend="numpy")
    sess.run(train, {x: np.ones((4, 3), np.float32)}, training=False)
    np.testing.assert_array_equal(sess.get_value(bn.running_mean), 0.0)
    np.testing.assert_array_equal(sess.get_value(bn.running_var), 1.0)


def test_channels_last_axis():
    g, x, bn, y, _ = _bn_graph((4, 5), axis=-1)
    assert bn.gamma.shape == (5,)
    xb = np.random.default_rng(3).normal(1.0, 2.0, size=(6, 4, 5)).astype(np.float32)
    out = gc.Session(g, backend="numpy").run(y, {x: xb}, training=True)
    np.testing.assert_allclose(out.mean(axis=(0, 1)), 0.0, atol=1e-5)


def test_second_call_and_bad_shapes_raise():
    with gc.Graph():
        x = gc.placeholder((None, 3))
        bn = nn.BatchNorm()
        bn(x)
        with pytest.raises(gc.GraphcError, match="already applied"):
            bn(x)
        with pytest.raises(gc.ShapeError):
            nn.BatchNorm()(gc.placeholder((None,)))
    with pytest.raises(ValueError):
        nn.BatchNorm(momentum=1.5)



@pytest.mark.parametrize("shape", [(3,), (2, 2, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_gradient_matches_finite_differences_float64(shape, training, fd_grad):
    rng = np.random.default_rng(4)
    n = 5
    R = rng.normal(size=(n,) + shape)
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((n,) + shape, dtype="float64", name="x")
        bn = nn.BatchNorm()
        y = bn(x)
        loss = gc.sum(gc.tanh(y) * gc.constant(R))
        grads = gc.grad(loss, [x, bn.gamma, bn.beta])
    sess = gc.Session(g, backend="numpy")
    c = shape[0]
    sess.set_value(bn.gamma, rng.normal(size=c))
    sess.set_value(bn.beta, rng.normal(size=c))
    sess.set_value(bn.running_mean, rng.normal(size=c))
    sess.set_value(bn.running_var, rng.uniform(0.5, 2.0, size=c))
    xb = rng.normal(size=(n,) + shape)
    got = sess.run(grads, {x: xb}, training=training)

    def value():
        return float(sess.run(loss, {x: xb}, training=training))

    np.testing.assert_allclose(got[0], fd_grad(value, xb), rtol=1e-6, atol=1e-8)
    for var, gv in zip((bn.gamma, bn.beta), got[1:]):
        arr = sess.get_value(var)

        def value_var(var=var, arr=arr):
            sess.set_value(var, arr)
            return value()

        np.testing.assert_allclose(gv, fd_grad(value_var, arr), rtol=1e-6, atol=1e-8)
        sess.set_value(var, arr)  # undo the last perturbation
