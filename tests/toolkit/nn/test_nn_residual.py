"""gc.nn.ResidualBlock: shapes and shortcut kind, torchvision-style names, forward values
against a NumPy reference on both backends (training and evaluation), float64
finite-difference gradients, running statistics updated by an optimizer step, refusals."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc import nn


def _conv(x, w, stride, pad):
    """NCHW x OIHW cross-correlation, the NumPy way."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = w.shape[2]
    ho, wo = (xp.shape[2] - k) // stride + 1, (xp.shape[3] - k) // stride + 1
    out = np.zeros((x.shape[0], w.shape[0], ho, wo), dtype=np.result_type(x, w))
    for i in range(k):
        for j in range(k):
            patch = xp[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out


def _bn(x, v, bn, training, eps=1e-5):
    if training:
        mu, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    else:
        mu, var = v[bn.running_mean], v[bn.running_var]
    r = (1, -1, 1, 1)
    return (x - mu.reshape(r)) / np.sqrt(var.reshape(r) + eps) * v[bn.gamma].reshape(r) \
        + v[bn.beta].reshape(r)


def _block_ref(x, v, block, training):
    relu = lambda t: np.maximum(t, 0)  # noqa: E731
    h = relu(_bn(_conv(x, v[block.conv1.W], block.stride, 1), v, block.bn1, training))
    h = _bn(_conv(h, v[block.conv2.W], 1, 1), v, block.bn2, training)
    if block.downsample is None:
        return relu(h + x)
    conv, bn = block.downsample
    return relu(h + _bn(_conv(x, v[conv.W], block.stride, 0), v, bn, training))


def _randomize(sess, blocks, rng):
    """Random values for every variable (running variances positive): the defaults
    (gamma 1, beta 0, running stats 0/1) would hide a swapped or missing term."""
    values = {}
    for block in blocks:
        for var in block.variables:
            if var.name.endswith("running_var"):
                val = rng.uniform(0.5, 2.0, size=var.shape)
            else:
                val = rng.normal(scale=0.5, size=var.shape)
            values[var] = val.astype(var.dtype)
            sess.set_value(var, values[var])
    return values


def _two_blocks(n=None, c=3, hw=5, dtype="float32"):
    """An identity block (c -> c) followed by a projection block (c -> c+1, stride 2)."""
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((n, c, hw, hw), dtype=dtype, name="x")
        ident, proj = nn.ResidualBlock(c), nn.ResidualBlock(c + 1, stride=2)
        y = proj(ident(x))
    return g, x, ident, proj, y


def test_shapes_names_and_which_shortcut():
    g, _, ident, proj, y = _two_blocks(hw=5)
    assert y.shape == (None, 4, 3, 3)                   # ceil(5 / 2)
    assert ident.downsample is None and proj.downsample is not None
    assert [v.name for v in ident.parameters] == [
        "residual_block/conv1/W", "residual_block/bn1/gamma", "residual_block/bn1/beta",
        "residual_block/conv2/W", "residual_block/bn2/gamma", "residual_block/bn2/beta"]
    assert [v.name for v in proj.variables if "downsample" in v.name] == [
        "residual_block_1/downsample/0/W", "residual_block_1/downsample/1/gamma",
        "residual_block_1/downsample/1/beta", "residual_block_1/downsample/1/running_mean",
        "residual_block_1/downsample/1/running_var"]
    assert proj.downsample[0].W.shape == (4, 3, 1, 1)
    assert nn.count_parameters(ident) == 2 * (3 * 3 * 9 + 6)   # convs have no bias
    assert nn.count_parameters(proj) == 4 * 3 * 9 + 4 * 4 * 9 + 4 * 3 + 3 * 8
    # a channel change alone projects; projection=True forces one; all BNs register an update
    with gc.Graph(seed=0) as g2:
        x = gc.placeholder((None, 2, 4, 4), name="x")
        widen, forced = nn.ResidualBlock(3), nn.ResidualBlock(2, projection=True)
        assert widen(x).shape == (None, 3, 4, 4) and forced(x).shape == (None, 2, 4, 4)
    assert widen.downsample is not None and forced.downsample is not None
    assert len(g2.extra_updates) == 6


def test_identity_and_projection_shortcuts_are_what_reaches_the_output():
    """With the residual branch silenced (bn2's gamma = beta = 0) the block is
    relu(shortcut(x)): x itself for the identity, the projection's BN(conv 1x1) otherwise."""
    g, x, ident, proj, y = _two_blocks(n=4, hw=4)
    sess = gc.Session(g, backend="numpy")
    rng = np.random.default_rng(3)
    v = _randomize(sess, [ident, proj], rng)
    for block in (ident, proj):
        for p in (block.bn2.gamma, block.bn2.beta):
            v[p] = np.zeros_like(v[p])
            sess.set_value(p, v[p])
    xb = rng.normal(size=(4, 3, 4, 4)).astype(np.float32)
    inner = np.maximum(xb, 0)                                        # identity block's output
    conv, bn = proj.downsample
    want = np.maximum(_bn(_conv(inner, v[conv.W], 2, 0), v, bn, True), 0)
    np.testing.assert_allclose(sess.run(y, {x: xb}, training=True), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("training", [True, False])
def test_forward_matches_numpy_reference(backend, training):
    g, x, ident, proj, y = _two_blocks(hw=5)
    sess = gc.Session(g, backend=backend)
    rng = np.random.default_rng(1)
    v = _randomize(sess, [ident, proj], rng)
    xb = rng.normal(size=(6, 3, 5, 5)).astype(np.float32)
    want = _block_ref(_block_ref(xb, v, ident, training), v, proj, training)
    np.testing.assert_allclose(sess.run(y, {x: xb}, training=training), want,
                               rtol=1e-4, atol=1e-5)


def test_gradients_match_finite_differences_float64(fd_grad):
    g0, x, ident, proj, y = _two_blocks(n=3, c=2, hw=4, dtype="float64")
    rng = np.random.default_rng(2)
    R = rng.normal(size=y.shape)
    with g0:
        loss = gc.sum(gc.tanh(y) * gc.constant(R))
        params = ident.parameters + proj.parameters
        grads = gc.grad(loss, [x] + params)
    sess = gc.Session(g0, backend="numpy")
    values = _randomize(sess, [ident, proj], rng)
    xb = rng.normal(size=(3, 2, 4, 4))
    got = sess.run(grads, {x: xb}, training=True)

    def value():
        return float(sess.run(loss, {x: xb}, training=True))

    np.testing.assert_allclose(got[0], fd_grad(value, xb), rtol=1e-6, atol=1e-8)
    for p, gp in zip(params, got[1:]):
        arr = values[p].copy()

        def value_p(p=p, arr=arr):
            sess.set_value(p, arr)
            return value()

        np.testing.assert_allclose(gp, fd_grad(value_p, arr), rtol=1e-6, atol=1e-8,
                                   err_msg=p.name)
        sess.set_value(p, values[p])


def test_an_optimizer_step_updates_every_running_statistic(backend):
    g, x, ident, proj, y = _two_blocks(hw=4)
    with g:
        train = gc.optim.SGD(0.1).minimize(gc.mean(gc.square(y - 1.0)))
    sess = gc.Session(g, backend=backend)
    xb = np.random.default_rng(5).normal(1.0, 2.0, size=(8, 3, 4, 4)).astype(np.float32)
    w1, w_proj = sess.get_value(ident.conv1.W), sess.get_value(proj.downsample[0].W)
    sess.run(train, {x: xb})
    for bn in (ident.bn1, ident.bn2, proj.bn1, proj.bn2, proj.downsample[1]):
        assert not np.allclose(sess.get_value(bn.running_mean), 0.0), bn.name
    # momentum 0.9 from zero: 0.1 * the batch mean of what the BN saw (pre-step weights)
    want = 0.1 * _conv(xb, w1, 1, 1).mean(axis=(0, 2, 3))
    np.testing.assert_allclose(sess.get_value(ident.bn1.running_mean), want, rtol=1e-4,
                               atol=1e-6)
    assert w_proj.shape == (4, 3, 1, 1)


def test_refusals_change_nothing():
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 2, 4, 4), name="x")
        n_nodes = len(g.nodes)
        with pytest.raises(gc.ShapeError, match="projection=False"):
            nn.ResidualBlock(3, projection=False)(x)
        with pytest.raises(gc.ShapeError, match="NCHW"):
            nn.ResidualBlock(2)(gc.placeholder((None, 8), name="flat"))
        with pytest.raises(gc.DTypeError, match="float"):
            nn.ResidualBlock(2)(gc.placeholder((None, 2, 4, 4), dtype="int32", name="ints"))
        assert len(g.nodes) == n_nodes + 2                  # only the two extra placeholders
        block = nn.ResidualBlock(2)
        block(x)
        assert block.name == "residual_block"               # failed builds released the name
        n_nodes = len(g.nodes)
        with pytest.raises(gc.GraphcError, match="already applied"):
            block(x)
        assert len(g.nodes) == n_nodes
    for bad in (dict(channels=0), dict(channels=2, stride=0), dict(channels=2, projection="yes"),
                dict(channels=2, momentum=2.0)):
        with pytest.raises(ValueError):
            nn.ResidualBlock(**bad)
