"""NN ops: softmax, log_softmax, softmax/sigmoid cross-entropy, mse, mae, huber, dropout,
and numerical stability for large logits."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc

DTYPES = ["float32", "float64"]


def np_log_softmax(x, axis=-1):
    return x - np.log(np.sum(np.exp(x), axis=axis, keepdims=True))


def np_softmax(x, axis=-1):
    e = np.exp(x)
    return e / np.sum(e, axis=axis, keepdims=True)


def np_sigmoid_ce(z, t):
    s = 1.0 / (1.0 + np.exp(-z))
    return -(t * np.log(s) + (1.0 - t) * np.log(1.0 - s))


def np_huber(p, t, delta):
    d = np.abs(p - t)
    return np.where(d <= delta, 0.5 * d * d, delta * (d - 0.5 * delta))


def _probs(rng, shape):
    p = rng.uniform(0.1, 1.0, size=shape)
    return p / p.sum(axis=-1, keepdims=True)


# -- softmax family ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 0, 1, 2])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_forward(helpers, name, axis, dtype):
    fn = getattr(gc, name)
    ref = np_softmax if name == "softmax" else np_log_softmax
    x = helpers.rand(np.random.default_rng(0), (3, 4, 5), dtype, -3, 3)
    out = helpers.run(lambda t: fn(t, axis=axis), x)
    helpers.assert_close(out, ref(x.astype(np.float64), axis), dtype, what=f"{name} {axis}")


@pytest.mark.parametrize("n", [1, 7])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_forward_batch_none(helpers, name, n):
    fn = getattr(gc, name)
    ref = np_softmax if name == "softmax" else np_log_softmax
    x = helpers.rand(np.random.default_rng(n), (n, 6), "float32", -3, 3)
    helpers.assert_close(helpers.run(fn, x, batch=True), ref(x.astype(np.float64)), "float32")
    # along the batch axis
    out = helpers.run(lambda t: fn(t, axis=0), x, batch=True)
    helpers.assert_close(out, ref(x.astype(np.float64), 0), "float32")


@pytest.mark.parametrize("label_dtype", ["int32", "int64"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_int_labels(helpers, dtype, label_dtype):
    rng = np.random.default_rng(1)
    for n in (1, 7):
        z = helpers.rand(rng, (n, 5), dtype, -3, 3)
        y = rng.integers(0, 5, size=n).astype(label_dtype)
        out = helpers.run(gc.softmax_cross_entropy, z, y, batch=True)
        expected = -np_log_softmax(z.astype(np.float64))[np.arange(n), y]
        helpers.assert_close(out, expected, dtype)
    # labels with extra leading axes: logits (2, 3, 4), labels (2, 3)
    z = helpers.rand(rng, (2, 3, 4), dtype)
    y = rng.integers(0, 4, size=(2, 3)).astype(label_dtype)
    out = helpers.run(gc.softmax_cross_entropy, z, y)
    expected = -np.take_along_axis(np_log_softmax(z.astype(np.float64)), y[..., None], -1)[..., 0]
    helpers.assert_close(out, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_prob_labels(helpers, dtype):
    rng = np.random.default_rng(2)
    for n in (1, 7):
        z = helpers.rand(rng, (n, 5), dtype, -3, 3)
        p = _probs(rng, (n, 5)).astype(dtype)
        out = helpers.run(gc.softmax_cross_entropy, z, p, batch=True)
        expected = -np.sum(p.astype(np.float64) * np_log_softmax(z.astype(np.float64)), -1)
        helpers.assert_close(out, expected, dtype)
    # one-hot rows give the same loss as the class ids
    y = rng.integers(0, 5, size=7)
    z = helpers.rand(rng, (7, 5), dtype)
    a = helpers.run(gc.softmax_cross_entropy, z, np.eye(5, dtype=dtype)[y])
    b = helpers.run(gc.softmax_cross_entropy, z, y)
    helpers.assert_close(a, b.astype(np.float64), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_losses_forward(helpers, dtype):
    rng = np.random.default_rng(3)
    for n in (1, 7):
        p = helpers.rand(rng, (n, 4), dtype, -3, 3)
        t = helpers.rand(rng, (n, 4), dtype, -3, 3)
        tb = rng.uniform(0, 1, size=(n, 4)).astype(dtype)  # targets in [0, 1]
        outs = helpers.run(lambda a, b, c: [gc.mse(a, b), gc.mae(a, b), gc.huber(a, b),
                                            gc.huber(a, b, delta=0.5),
                                            gc.sigmoid_cross_entropy(a, c)],
                           p, t, tb, batch=True)
        p64, t64, tb64 = (v.astype(np.float64) for v in (p, t, tb))
        refs = [(p64 - t64) ** 2, np.abs(p64 - t64), np_huber(p64, t64, 1.0),
                np_huber(p64, t64, 0.5), np_sigmoid_ce(p64, tb64)]
        for name, o, r in zip(["mse", "mae", "huber", "huber0.5", "sigmoid_ce"], outs, refs):
            helpers.assert_close(o, r, dtype, what=name)


def test_elementwise_losses_broadcast(helpers):
    rng = np.random.default_rng(4)
    p, t = helpers.rand(rng, (7, 3)), helpers.rand(rng, (3,))
    outs = helpers.run(lambda a, b: [gc.mse(a, b), gc.mae(a, b), gc.huber(a, b, delta=2.0)],
                       p, t, batch=[True, False])
    for o, r in zip(outs, [(p - t) ** 2, np.abs(p - t), np_huber(p, t, 2.0)]):
        helpers.assert_close(o, r)


# -- gradients --------------------------------------------------------------------------------

@settings(max_examples=8, deadline=None, database=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
       data=st.data(), seed=st.integers(0, 2**16))
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_gradient(helpers, name, shape, data, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = helpers.rand(np.random.default_rng(seed), shape, low=-3, high=3)
    helpers.gradcheck(lambda t: getattr(gc, name)(t, axis=axis), x, seed=seed)


@pytest.mark.parametrize("n", [1, 7])
def test_cross_entropy_gradients(helpers, n):
    rng = np.random.default_rng(5 + n)
    z = helpers.rand(rng, (n, 5), low=-3, high=3)
    y = rng.integers(0, 5, size=n)
    helpers.gradcheck(gc.softmax_cross_entropy, z, y, batch=True)
    helpers.gradcheck(gc.softmax_cross_entropy, z, y.astype(np.int32), batch=True)
    helpers.gradcheck(gc.softmax_cross_entropy, z, _probs(rng, (n, 5)), batch=True)  # both
    helpers.gradcheck(gc.softmax_cross_entropy, z, helpers.rand(rng, (n, 5)), batch=True)
    helpers.gradcheck(gc.softmax_cross_entropy, helpers.rand(rng, (2, 3, 4)),
                      rng.integers(0, 4, size=(2, 3)))
    helpers.gradcheck(gc.sigmoid_cross_entropy, z, rng.uniform(size=(n, 5)), batch=True)


@pytest.mark.parametrize("n", [1, 7])
def test_regression_loss_gradients(helpers, n):
    rng = np.random.default_rng(6 + n)
    p = helpers.rand(rng, (n, 4), low=-3, high=3)
    # keep p - t away from the kinks of mae (0) and huber (+-delta)
    d = helpers.rand(rng, (n, 4), low=-3, high=3, away_from=[-1.0, -0.5, 0.0, 0.5, 1.0])
    t = p - d
    helpers.gradcheck(gc.mse, p, t, batch=True)
    helpers.gradcheck(gc.mae, p, t, batch=True)
    helpers.gradcheck(gc.huber, p, t, batch=True)
    helpers.gradcheck(lambda a, b: gc.huber(a, b, delta=0.5), p, t, batch=True)
    tb = helpers.rand(rng, (4,))
    helpers.gradcheck(gc.mse, p, tb, batch=[True, False])  # broadcast target


def test_nn_second_order(helpers):
    rng = np.random.default_rng(7)
    z = helpers.rand(rng, (7, 4))
    y = rng.integers(0, 4, size=7)
    p = _probs(rng, (7, 4))
    helpers.gradcheck(lambda a: gc.grad(gc.sum(gc.softmax(a) * gc.softmax(a)), a), z,
                      batch=True)
    helpers.gradcheck(lambda a: gc.grad(gc.sum(gc.square(gc.log_softmax(a, axis=0))), a), z,
                      batch=True)
    helpers.gradcheck(lambda a, b: gc.grad(gc.mean(gc.softmax_cross_entropy(a, b)), a), z, y,
                      batch=True)
    helpers.gradcheck(lambda a, b: gc.grad(gc.mean(gc.softmax_cross_entropy(a, b)), a), z, p,
                      batch=True)
    helpers.gradcheck(lambda a, b: gc.grad(gc.sum(gc.sigmoid_cross_entropy(a, b)), a), z,
                      rng.uniform(size=(7, 4)), batch=True)


# -- dropout ----------------------------------------------------------------------------------

def _dropout_graph(shape, rate, dtype="float32", seed=0, op_seed=None):
    with gc.Graph(seed=seed) as g:
        x = gc.placeholder(shape, dtype)
        r = gc.placeholder(shape, dtype)
        y = gc.dropout(x, rate, seed=op_seed)
        gx = gc.grad(gc.sum(y * r), x)
    return g, x, r, y, gx


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_dropout_training(helpers, rate, dtype):
    rng = np.random.default_rng(8)
    xv = helpers.rand(rng, (201, 50), dtype, 0.5, 2.0)
    rv = helpers.rand(rng, (201, 50), dtype)
    g, x, r, y, gx = _dropout_graph((None, 50), rate, dtype)
    sess = gc.Session(g)
    out, grad = sess.run([y, gx], {x: xv, r: rv}, training=True)
    dropped = out == 0
    assert abs(dropped.mean() - rate) < 0.03, dropped.mean()
    scale = 1.0 / (1.0 - rate)
    helpers.assert_close(out[~dropped], xv[~dropped].astype(np.float64) * scale, dtype)
    # the gradient is the same mask, scaled
    helpers.assert_close(grad, np.where(dropped, 0.0, rv.astype(np.float64) * scale), dtype)
    # next step: a different mask
    out2 = sess.run(y, {x: xv, r: rv}, training=True)
    assert ((out2 == 0) != dropped).any()


def test_dropout_reproducible():
    xv = np.random.default_rng(9).uniform(0.5, 2.0, size=(7, 30)).astype(np.float32)

    def masks(seed, op_seed=None, steps=2):
        g, x, _, y, _ = _dropout_graph((None, 30), 0.4, seed=seed, op_seed=op_seed)
        sess = gc.Session(g)
        return [sess.run(y, {x: xv}, training=True) for _ in range(steps)]

    a, b = masks(3), masks(3)
    for u, v in zip(a, b):  # same graph seed, same step -> bit-identical
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], a[1])  # the step changes the mask
    assert not np.array_equal(masks(3)[0], masks(4)[0])  # so does the graph seed
    np.testing.assert_array_equal(masks(1, op_seed=11)[0], masks(2, op_seed=11)[0])


def test_dropout_eval_is_identity():
    xv = np.random.default_rng(10).uniform(-2, 2, size=(7, 30))
    rv = np.random.default_rng(11).uniform(-2, 2, size=(7, 30))
    g, x, r, y, gx = _dropout_graph((None, 30), 0.5, "float64")
    sess = gc.Session(g)
    for kwargs in ({"training": False}, {}):  # no update op fetched: eval by default
        out, grad = sess.run([y, gx], {x: xv, r: rv}, **kwargs)
        np.testing.assert_array_equal(out, xv)
        np.testing.assert_array_equal(grad, rv)
    out = sess.run(y, {x: xv}, training=True)
    assert (out == 0).any()
    g, x, _, y, _ = _dropout_graph((None, 30), 0.0, "float64")
    np.testing.assert_array_equal(gc.Session(g).run(y, {x: xv}, training=True), xv)


def test_dropout_gradient_fd(helpers):
    """With the step pinned (same mask each run), dropout passes the FD check."""
    x = helpers.rand(np.random.default_rng(12), (7, 6), low=0.5, high=2.0)
    grads, _ = helpers.gradcheck(lambda t: gc.dropout(t, 0.5) * t, x, batch=True,
                                 training=True)
    assert (grads[0] == 0).any()
    helpers.gradcheck(lambda t: gc.dropout(t, 0.5) * t, x, batch=True, training=False)


# -- stability --------------------------------------------------------------------------------

BIG = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]])


def _finite_run(fn, *arrays):
    with gc.Graph() as g:
        phs = [gc.placeholder(a.shape, a.dtype.name) for a in arrays]
        out = fn(*phs)
        loss = gc.sum(out)
        grads = gc.grad(loss, [p for p in phs if p.dtype.startswith("float")])
    values = gc.Session(g, check_numerics=True).run([out] + grads, dict(zip(phs, arrays)))
    for v in values:
        assert np.all(np.isfinite(v)), v
    return values


@pytest.mark.parametrize("dtype", DTYPES)
def test_stability_large_logits(dtype):
    z = BIG.astype(dtype)
    out, gz = _finite_run(gc.log_softmax, z)
    np.testing.assert_allclose(out, [[0, -2e4, -1e4], [-np.log(3)] * 3,
                                     [-np.log(2), -np.log(2), -2e4 - np.log(2)]], rtol=1e-6)
    out, gz = _finite_run(gc.softmax, z)
    np.testing.assert_allclose(out, [[1, 0, 0], [1 / 3] * 3, [0.5, 0.5, 0]], rtol=1e-6)
    y = np.array([1, 0, 2])
    out, gz = _finite_run(gc.softmax_cross_entropy, z, y)
    np.testing.assert_allclose(out, [2e4, np.log(3), 2e4 + np.log(2)], rtol=1e-6)
    np.testing.assert_allclose(gz, [[1, -1, 0], [-2 / 3, 1 / 3, 1 / 3], [0.5, 0.5, -1]],
                               rtol=1e-6, atol=1e-7)
    out, gz, _ = _finite_run(gc.softmax_cross_entropy, z, np.eye(3, dtype=dtype)[y])
    np.testing.assert_allclose(out, [2e4, np.log(3), 2e4 + np.log(2)], rtol=1e-6)
    t = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.5], [1.0, 0.0, 1.0]], dtype)
    out, gz, gt = _finite_run(gc.sigmoid_cross_entropy, z, t)
    np.testing.assert_allclose(out, [[1e4, 1e4, np.log(2)], [1e4, 0, 5e3], [0, 1e4, 1e4]],
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gz, (BIG > 0) + 0.5 * (BIG == 0) - t, rtol=1e-6)
    np.testing.assert_allclose(gt, -BIG, rtol=1e-6)
    out, gz = _finite_run(gc.softplus, z)
    np.testing.assert_allclose(out, np.maximum(BIG, 0) + np.log1p(np.exp(-np.abs(BIG))),
                               rtol=1e-6)
    np.testing.assert_allclose(gz, (BIG > 0) + 0.5 * (BIG == 0), rtol=1e-6)
    out, gz = _finite_run(gc.sigmoid, z)
    np.testing.assert_allclose(out, (BIG > 0) + 0.5 * (BIG == 0), rtol=1e-6)
    _finite_run(lambda a: gc.logsumexp(a, axis=1), z)


@pytest.mark.parametrize("dtype", DTYPES)
def test_stability_rewrites_forward(helpers, dtype):
    """log(softmax(x)) and log(sigmoid(x)) stay finite (the stability pass)."""
    z = BIG.astype(dtype)
    out = helpers.run(lambda a: gc.log(gc.softmax(a)), z)
    np.testing.assert_allclose(out[0], [0, -2e4, -1e4], rtol=1e-6)
    out = helpers.run(lambda a: gc.log(gc.sigmoid(a)), z)
    np.testing.assert_allclose(out[0], [0, -1e4, -np.log(2)], rtol=1e-6)


@pytest.mark.parametrize("name", ["softmax", "sigmoid"])
def test_stability_rewrites_gradient(name):
    _finite_run(lambda a: gc.log(getattr(gc, name)(a)), BIG)


# -- softmax_cross_entropy_grad (d loss / d logits, scaled by the per-example g) ---------------

def np_ce_grad(z, labels, g):
    """g[..., None] * (softmax(z) * mass - p), in float64, written independently."""
    z = z.astype(np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    s = e / e.sum(axis=-1, keepdims=True)
    if labels.dtype.kind in "iu":
        p = np.zeros_like(z)
        np.put_along_axis(p, labels[..., None].astype(np.int64), 1.0, axis=-1)
    else:
        p = labels.astype(np.float64)
    mass = p.sum(axis=-1, keepdims=True)
    return g.astype(np.float64)[..., None] * (s * mass - p)


@pytest.mark.parametrize("kind", ["ids", "probs"])
@pytest.mark.parametrize("classes", [1, 3, 10, 130])
@pytest.mark.parametrize("dtype", DTYPES)
def test_ce_backward_op_forward(helpers, dtype, classes, kind):
    from graphc.ops.nn import softmax_cross_entropy_grad

    rng = np.random.default_rng(classes)
    for rows in (1, 7, 33):
        z = helpers.rand(rng, (rows, classes), dtype, -3, 3)
        if kind == "ids":
            labels = rng.integers(0, classes, size=rows).astype("int64" if rows != 7 else "int32")
        else:  # unnormalized rows too: mass != 1
            labels = rng.uniform(0.1, 1.0, size=(rows, classes)).astype(dtype)
        g = helpers.rand(rng, (rows,), dtype, 0.5, 2.0) * rng.choice([-1, 1], size=rows).astype(dtype)
        out = helpers.run(softmax_cross_entropy_grad, z, labels, g, batch=True)
        # float32: s * mass - p cancels (a reduction: the contract's norm-relative tolerance)
        helpers.assert_close(out, np_ce_grad(z, labels, g), dtype, norm=dtype == "float32",
                             what=f"{rows}x{classes} {kind}")


def test_ce_backward_op_leading_axes(helpers):
    from graphc.ops.nn import softmax_cross_entropy_grad

    rng = np.random.default_rng(11)
    z = helpers.rand(rng, (2, 3, 4))
    y = rng.integers(0, 4, size=(2, 3))
    g = helpers.rand(rng, (2, 3))
    out = helpers.run(softmax_cross_entropy_grad, z, y, g)
    helpers.assert_close(out, np_ce_grad(z, y, g), "float64")
    z1 = helpers.rand(rng, (5,))  # one example: labels and g are scalars
    out = helpers.run(softmax_cross_entropy_grad, z1, np.array(2), np.array(0.7))
    helpers.assert_close(out, np_ce_grad(z1, np.array(2), np.array(0.7)), "float64")


@pytest.mark.parametrize("n", [1, 7])
def test_softmax_cross_entropy_grad_gradient(helpers, n):
    """Finite differences of the gradient op itself (w.r.t. logits, g and probabilities)."""
    from graphc.ops.nn import softmax_cross_entropy_grad

    rng = np.random.default_rng(20 + n)
    z = helpers.rand(rng, (n, 5), low=-3, high=3)
    g = helpers.rand(rng, (n,), low=-2, high=2)
    y = rng.integers(0, 5, size=n)
    helpers.gradcheck(softmax_cross_entropy_grad, z, y, g, batch=True)
    helpers.gradcheck(softmax_cross_entropy_grad, z, helpers.rand(rng, (n, 5), low=0.1, high=1.0),
                      g, batch=True)


def test_ce_backward_op_errors():
    from graphc.ops.nn import softmax_cross_entropy_grad

    with gc.Graph():
        z = gc.placeholder((None, 4), "float32")
        y = gc.placeholder((None,), "int64")
        with pytest.raises(gc.ShapeError, match="softmax_cross_entropy_grad"):
            softmax_cross_entropy_grad(z, y, gc.placeholder((None, 4), "float32"))
        with pytest.raises(gc.DTypeError, match="softmax_cross_entropy_grad"):
            softmax_cross_entropy_grad(z, y, gc.placeholder((None,), "float64"))
        with pytest.raises(gc.ShapeError, match="softmax_cross_entropy_grad"):
            softmax_cross_entropy_grad(z, gc.placeholder((None, 3), "int64"),
                                       gc.placeholder((None,), "float32"))


@pytest.mark.parametrize("label", [-1, 4])
def test_ce_backward_op_label_out_of_range(helpers, label):
    from graphc.ops.nn import softmax_cross_entropy_grad

    z = np.ones((3, 4))
    with pytest.raises(gc.GraphcError, match="out of range"):
        helpers.run(softmax_cross_entropy_grad, z, np.array([0, label, 1]), np.ones(3))
