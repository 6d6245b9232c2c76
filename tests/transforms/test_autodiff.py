"""gc.grad: reverse mode over graph nodes, grad of grad, edge cases."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc


def run(fetches, feed=None, g=None):
    return gc.Session(g or gc.get_default_graph(), backend="numpy").run(fetches, feed)


def test_multiple_paths_are_summed():
    with gc.Graph() as g:
        x = gc.variable(np.array(3.0))
        y = x * x + 2.0 * x + gc.exp(x) * 0.0  # dy/dx = 2x + 2
        (gx,) = gc.grad(y, [x])
    assert run(gx, g=g) == pytest.approx(8.0)


def test_broadcast_operands_get_summed_gradients():
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), dtype="float64")
        b = gc.variable(np.zeros((3,)))
        s = gc.variable(np.ones((1, 1)))
        loss = gc.sum((x + b) * s)
        gb, gs = gc.grad(loss, [b, s])
    xb = np.arange(12.0).reshape(4, 3)
    vb, vs = run([gb, gs], {x: xb}, g)
    np.testing.assert_allclose(vb, [4, 4, 4])
    np.testing.assert_allclose(vs, [[xb.sum()]])
    assert gb.shape == (3,) and gs.shape == (1, 1)


def test_unconnected_inputs_get_zeros_of_their_shape():
    with gc.Graph() as g:
        x = gc.placeholder((None, 2), dtype="float64")
        w = gc.variable(np.ones(2))
        u = gc.variable(np.ones((3, 2)))
        loss = gc.sum(x * w)
        gw, gu, gx = gc.grad(loss, [w, u, x])
    vw, vu, vx = run([gw, gu, gx], {x: np.ones((5, 2))}, g)
    np.testing.assert_allclose(vw, [5, 5])
    np.testing.assert_array_equal(vu, np.zeros((3, 2)))
    np.testing.assert_array_equal(vx, np.ones((5, 2)))


def test_target_must_be_scalar():
    with gc.Graph():
        x = gc.variable(np.ones(3))
        with pytest.raises(gc.ShapeError, match="scalar"):
            gc.grad(x * 2.0, [x])


def test_integer_tensors_get_no_gradient():
    with gc.Graph() as g:
        logits = gc.variable(np.zeros((2, 3)))
        labels = gc.placeholder((2,), dtype="int64")
        loss = gc.mean(gc.softmax_cross_entropy(logits, labels))
        with pytest.raises(gc.DTypeError, match="integer"):
            gc.grad(loss, [labels])
        (gl,) = gc.grad(loss, [logits])
    v = run(gl, {labels: np.array([0, 2])}, g)
    expected = (np.full((2, 3), 1 / 3) - np.eye(3)[[0, 2]]) / 2
    np.testing.assert_allclose(v, expected, rtol=1e-12)


def test_single_tensor_argument_returns_a_tensor():
    with gc.Graph() as g:
        x = gc.variable(np.array(2.0))
        gx = gc.grad(x**3, x)
    assert isinstance(gx, gc.Tensor)
    assert run(gx, g=g) == pytest.approx(12.0)


def test_gradient_nodes_are_tagged():
    with gc.Graph() as g:
        x = gc.variable(np.ones(3))
        loss = gc.sum(gc.tanh(x))
        before = {n.id for n in g.nodes}
        (gx,) = gc.grad(loss, [x])
    new = [n for n in g.nodes if n.id not in before]
    assert new and all(n.role == "grad" for n in new)
    assert gx.role == "grad"
    assert all(n.role == "forward" for n in g.nodes if n.id in before)


def _tanh_net(dtype="float64"):
    rng = np.random.default_rng(3)
    g = gc.Graph()
    with g:
        x = gc.placeholder((None, 3), dtype=dtype, name="x")
        W1 = gc.variable(rng.standard_normal((3, 4)), name="W1")
        W2 = gc.variable(rng.standard_normal((4, 1)), name="W2")
        loss = gc.mean(gc.square(gc.tanh(x @ W1) @ W2))
    return g, x, W1, W2, loss


def test_hessian_vector_product_matches_finite_differences():
    g, x, W1, W2, loss = _tanh_net()
    rng = np.random.default_rng(4)
    v = rng.standard_normal((3, 4))
    with g:
        (gW1,) = gc.grad(loss, [W1])
        (hv,) = gc.grad(gc.sum(gW1 * gc.constant(v)), [W1])
    sess = gc.Session(g, backend="numpy")
    xb = rng.standard_normal((5, 3))
    hv_value = sess.run(hv, {x: xb})
    w0 = sess.get_value(W1)
    eps = 1e-5
    sess.set_value(W1, w0 + eps * v)
    g_plus = sess.run(gW1, {x: xb})
    sess.set_value(W1, w0 - eps * v)
    g_minus = sess.run(gW1, {x: xb})
    np.testing.assert_allclose(hv_value, (g_plus - g_minus) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_second_derivative_of_elementwise_ops():
    with gc.Graph() as g:
        x = gc.variable(np.array([0.3, -0.7, 1.2]))
        for fn, d2 in [(gc.sigmoid, lambda s: s * (1 - s) * (1 - 2 * s)),
                       (gc.tanh, lambda t: -2 * t * (1 - t**2))]:
            y = fn(x)
            (dx,) = gc.grad(gc.sum(y), [x])
            (ddx,) = gc.grad(gc.sum(dx), [x])
            yv, ddv = gc.Session(g, backend="numpy").run([y, ddx])
            np.testing.assert_allclose(ddv, d2(yv), rtol=1e-12)
