"""gc.nn layers: parameters, naming, seeding, forward values against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc import nn
from graphc.ops.conv import conv2d_reference
from graphc.ops.pool import avg_pool2d_reference, max_pool2d_reference


def _dense_net(sizes, seed=0, activation=None):
    with gc.Graph(seed=seed) as g:
        x = gc.placeholder((None, sizes[0]), name="x")
        net = nn.Sequential([nn.Dense(n, activation=activation) for n in sizes[1:]])
        y = net(x)
    return g, x, net, y


def test_parameter_counts_of_small_networks():
    _, _, net, y = _dense_net([3, 4, 2])
    assert nn.count_parameters(net) == 26
    assert y.shape == (None, 2)
    _, _, net, _ = _dense_net([2, 3, 1])
    assert nn.count_parameters(net) == 13
    assert nn.count_parameters(list(net)) == 13
    assert nn.count_parameters(net.parameters) == 13
    assert nn.count_parameters(net.graph) == 13


def test_names_shapes_and_trainability():
    g, _, net, _ = _dense_net([3, 4, 2])
    assert [p.name for p in net.parameters] == ["dense/W", "dense/b", "dense_1/W", "dense_1/b"]
    assert [p.shape for p in net.parameters] == [(3, 4), (4,), (4, 2), (2,)]
    assert all(p.op.name == "variable" and p.attrs["trainable"] for p in net.parameters)
    assert set(g.trainable_variables()) == set(net.parameters)
    assert net.variables == net.parameters


def test_explicit_layer_names_are_made_unique():
    with gc.Graph() as g:
        x = gc.placeholder((None, 3))
        a, b = nn.Dense(2, name="fc"), nn.Dense(2, name="fc")
        b(a(x))
    assert [p.name for p in a.parameters + b.parameters] == ["fc/W", "fc/b", "fc_1/W", "fc_1/b"]
    assert repr(a) == "Dense(2) 'fc'" and g.trainable_variables()[0].name == "fc/W"


def test_unbuilt_layer_has_no_parameters():
    layer = nn.Dense(3)
    assert layer.parameters == [] and nn.count_parameters(layer) == 0


def test_seeded_initialization_is_deterministic():
    sess = [gc.Session(_dense_net([5, 7, 3], seed=s)[0], backend="numpy") for s in (1, 1, 2)]
    vals = [[s.get_value(v) for v in s.graph.trainable_variables()] for s in sess]
    for a, b in zip(vals[0], vals[1]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(vals[0][0], vals[2][0])
    assert not np.array_equal(vals[0][0], vals[0][2])  # layers draw different seeds
    np.testing.assert_array_equal(vals[0][1], 0.0)     # zero bias


def _np_act(name, z):
    return {"relu": lambda v: np.maximum(v, 0), "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
            "tanh": np.tanh, None: lambda v: v}[name](z)


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh"])
def test_dense_forward_matches_numpy(activation):
    g, x, net, y = _dense_net([3, 4, 2], activation=activation)
    sess = gc.Session(g, backend="numpy")
    xb = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    W1, b1, W2, b2 = (sess.get_value(p) for p in net.parameters)
    h = _np_act(activation, xb @ W1 + b1)
    want = _np_act(activation, h @ W2 + b2)
    np.testing.assert_allclose(sess.run(y, {x: xb}), want, rtol=1e-5, atol=1e-6)


def test_dense_options_callable_activation_no_bias_custom_init():
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), dtype="float64")
        layer = nn.Dense(2, activation=lambda t: t * 2.0, use_bias=False, kernel_init="ones")
        y = layer(x)
    assert [p.name for p in layer.parameters] == ["dense/W"]
    assert layer.W.dtype == "float64"
    xb = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(gc.Session(g, backend="numpy").run(y, {x: xb}), 2 * xb @ np.ones((3, 2)))


def test_layer_reuse_shares_parameters_and_rejects_other_graphs():
    with gc.Graph() as g:
        a = gc.placeholder((None, 3))
        b = gc.placeholder((None, 3))
        layer = nn.Dense(2)
        layer(a)
        layer(b)
    assert len(layer.parameters) == 2 and len(g.trainable_variables()) == 2
    with gc.Graph():
        c = gc.placeholder((None, 3))
        with pytest.raises(gc.GraphcError, match="another graph"):
            layer(c)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="activation"):
        nn.Dense(3, activation="nope")
    with pytest.raises(ValueError, match="units"):
        nn.Dense(0)
    with gc.Graph():
        x = gc.placeholder((None, 3))
        with pytest.raises(gc.ShapeError, match="NCHW"):
            nn.Conv2D(2, 3)(x)


def test_conv2d_layer_matches_reference():
    with gc.Graph(seed=3) as g:
        x = gc.placeholder((None, 2, 6, 6), name="x")
        conv = nn.Conv2D(3, kernel_size=3, stride=1, padding=1, activation="relu")
        y = conv(x)
    assert y.shape == (None, 3, 6, 6)
    assert [p.name for p in conv.parameters] == ["conv2d/W", "conv2d/b"]
    assert conv.W.shape == (3, 2, 3, 3) and conv.b.shape == (3,)
    assert nn.count_parameters(conv) == 3 * 2 * 9 + 3
    sess = gc.Session(g, backend="numpy")
    sess.set_value(conv.b, np.array([0.1, -0.2, 0.3], np.float32))
    xb = np.random.default_rng(1).normal(size=(2, 2, 6, 6)).astype(np.float32)
    W, b = sess.get_value(conv.W), sess.get_value(conv.b)
    want = np.maximum(conv2d_reference(xb, W, (1, 1), (1, 1)) + b.reshape(1, 3, 1, 1), 0)
    np.testing.assert_allclose(sess.run(y, {x: xb}), want, rtol=1e-5, atol=1e-5)


def test_pooling_flatten_and_a_small_cnn():
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 1, 8, 8), name="x")
        mp, ap = nn.MaxPool2D(2), nn.AvgPool2D(3, stride=2, padding=1)
        net = nn.Sequential([nn.Conv2D(4, 3, padding=1), mp, ap, nn.Flatten(), nn.Dense(5)])
        y = net(x)
    assert mp.output_shape == (None, 4, 4, 4) and ap.output_shape == (None, 4, 2, 2)
    assert y.shape == (None, 5)
    assert nn.count_parameters(net) == (4 * 9 + 4) + (16 * 5 + 5)
    assert mp.parameters == [] and "total" in net.summary()
    sess = gc.Session(g, backend="numpy")
    xb = np.random.default_rng(2).normal(size=(3, 1, 8, 8)).astype(np.float32)
    conv, dense = net[0], net[4]
    h = conv2d_reference(xb, sess.get_value(conv.W), (1, 1), (1, 1))
    h = h + sess.get_value(conv.b).reshape(1, 4, 1, 1)
    h = max_pool2d_reference(h, (2, 2), (2, 2), (0, 0))
    h = avg_pool2d_reference(h, (3, 3), (2, 2), (1, 1)).reshape(3, -1)
    want = h @ sess.get_value(dense.W) + sess.get_value(dense.b)
    np.testing.assert_allclose(sess.run(y, {x: xb}), want, rtol=1e-4, atol=1e-5)


def test_dropout_layer_only_active_in_training():
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 200), name="x")
        y = nn.Dropout(0.5)(x)
        identity = nn.Dropout(0.0)(x)
    assert identity is x
    sess = gc.Session(g, backend="numpy")
    xb = np.ones((10, 200), np.float32)
    np.testing.assert_array_equal(sess.run(y, {x: xb}), xb)
    np.testing.assert_array_equal(sess.run(y, {x: xb}, training=False), xb)
    out = sess.run(y, {x: xb}, training=True)
    assert set(np.unique(out)) <= {0.0, 2.0}
    assert 0.4 < np.mean(out == 0) < 0.6
    with pytest.raises(ValueError):
        nn.Dropout(1.0)


def test_training_a_sequential_reduces_the_loss_and_exports_dot():
    rng = np.random.default_rng(0)
    xb = rng.normal(size=(64, 2)).astype(np.float32)
    yb = (xb[:, 0] * xb[:, 1] > 0).astype(np.int64)
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 2), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        net = nn.Sequential([nn.Dense(16, activation="tanh"), nn.Dense(2)])
        loss = gc.mean(gc.softmax_cross_entropy(net(x), y))
        train = gc.optim.Adam(0.05).minimize(loss)
    sess = gc.Session(g, backend="numpy")
    first = sess.run(loss, {x: xb, y: yb})
    for _ in range(60):
        sess.run(train, {x: xb, y: yb})
    assert sess.run(loss, {x: xb, y: yb}) < 0.5 * first
    assert "dense/W" in gc.to_dot(g)
