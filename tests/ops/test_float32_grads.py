"""Gradients of float32 compositions (NumPy backend).

Every op case already checks its own float32 gradient against the float64 one; this
module checks compositions in which constants, element counts (``mean`` over the batch)
and dropout meet float32 tensors: the loss and every gradient stay float32 (no silent
promotion) and agree with the float64 gradients to 1e-4 relative to the norm. Also: the
gradient of an input the loss does not depend on is zeros.
"""

import numpy as np
import pytest

import graphc as gc

CASES = {  # name -> (function of the inputs, input shapes)
    "arith": (lambda a, b: (a * b - a / (b * b + 1.0)) ** 2 + 2.0 ** a, [(5, 3), (5, 3)]),
    "activations": (lambda a: gc.relu(a) + gc.sigmoid(a) * gc.tanh(a) + gc.softplus(a)
                    + gc.elu(a) + gc.selu(a) + gc.leaky_relu(a, 0.1) + gc.hard_tanh(a)
                    + gc.exp(a) + gc.log(gc.square(a) + 1.0) + gc.sqrt(gc.abs(a) + 1.0),
                    [(5, 3)]),
    "min_max_where": (lambda a, b: gc.where(a > b, gc.maximum(a, b), gc.minimum(a, b) * 2.0),
                      [(5, 3), (3,)]),
    "reductions": (lambda a: gc.mean(a, axis=0) * gc.max(a, axis=0) + gc.logsumexp(a, axis=0)
                   + gc.sum(a * a, axis=0) + gc.mean(a), [(5, 3)]),
    "shapes": (lambda a: gc.concat([gc.flatten(gc.reshape(a, (None, 2, 3))), a.T.T[:, ::2]],
                                   axis=1), [(5, 6)]),
    "matmul": (lambda a, b: gc.matmul(a, b, transpose_b=True), [(5, 4), (3, 4)]),
    "conv_pool": (lambda a, w: gc.avg_pool2d(gc.max_pool2d(gc.conv2d(a, w, padding=1), 2),
                                             2, stride=1), [(2, 2, 5, 5), (3, 2, 3, 3)]),
    "nn": (lambda a, b: gc.softmax_cross_entropy(a, gc.softmax(b)) + gc.mean(
        gc.log_softmax(a) + gc.sigmoid_cross_entropy(a, gc.sigmoid(b)) + gc.mse(a, b)
        + gc.mae(a, b) + gc.huber(a, b, 0.5), axis=1), [(5, 4), (5, 4)]),
    "dropout": (lambda a: gc.dropout(a, 0.3), [(5, 4)]),
}


def _grads(fn, shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-2, 2, size=s).astype(dtype) for s in shapes]
    with gc.Graph(seed=1) as g:
        n = shapes[0][0]  # inputs with the first input's leading size share the batch N
        phs = [gc.placeholder((None,) + s[1:] if s[0] == n else s, dtype) for s in shapes]
        loss = gc.sum(gc.square(fn(*phs)))
        grads = gc.grad(loss, phs)
    assert loss.dtype == dtype and all(t.dtype == dtype for t in grads)
    values = gc.Session(g, backend="numpy").run([loss] + grads, dict(zip(phs, arrays)), training=True)
    for v in values:
        assert v.dtype == np.dtype(dtype)
    return values


@pytest.mark.parametrize("name", list(CASES))
def test_float32_gradients_match_float64(name):
    fn, shapes = CASES[name]
    g32 = _grads(fn, shapes, "float32")
    g64 = _grads(fn, shapes, "float64")
    for a, b in zip(g32, g64):
        err = np.linalg.norm((a - b).ravel())
        assert err <= 1e-4 * np.linalg.norm(b.ravel()), err / np.linalg.norm(b.ravel())


def test_grad_of_unrelated_input_is_zeros():
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), "float64")
        z = gc.placeholder((None, 2), "float64")
        gz = gc.grad(gc.sum(gc.tanh(x)), z)
    out = gc.Session(g, backend="numpy").run(gz, {x: np.ones((7, 3)), z: np.ones((7, 2))})
    np.testing.assert_array_equal(out, np.zeros((7, 2)))
