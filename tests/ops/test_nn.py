"""graphc/ops/nn.py: softmax, log_softmax, softmax_cross_entropy and its gradient op,
sigmoid_cross_entropy, mse, mae, huber, dropout.

Cases (``gradcheck.case``): stable NumPy formulas written here and input recipes; the
harness checks every element forward in both dtypes, the static shape at two batch
sizes, finite differences on the NumPy backend and C against NumPy in one compiled
fetch set. Logits of +-1e4 check stability (their gradients are given as formulas:
finite differences lose too much there). The dropout mask is recomputed here from the
documented counter-based hash (MurmurHash3's finalizer of seed, step, index), so both
backends are checked against an independent mask. Standalone tests cover dropout's
statistics and modes, numerics checks on huge logits and definition/run-time errors.
"""

import numpy as np
import pytest
from graphc_tests_ops_gradcheck import In, case, quick_on_c

import graphc as gc
from graphc.ops.nn import softmax_cross_entropy_grad


def np_log_softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def np_softmax(x, axis=-1):
    return np.exp(np_log_softmax(x, axis))


def np_sigmoid(x):
    return np.exp(-np.logaddexp(0, -x))


def one_hot(y, k):
    return (y[..., None] == np.arange(k)).astype(np.float64)


def labels_as_probs(z, y):
    return one_hot(y, z.shape[-1]) if y.dtype.kind in "iu" else y


def np_cross_entropy(z, y):
    return -np.sum(labels_as_probs(z, y) * np_log_softmax(z), axis=-1)


def np_cross_entropy_grad(z, y, g):
    """g[..., None] * (softmax(z) * mass - p), mass = the row sum of the label distribution."""
    p = labels_as_probs(z, y)
    return g[..., None] * (np_softmax(z) * p.sum(-1, keepdims=True) - p)


def np_huber(p, t, delta=1.0):
    d = np.abs(p - t)
    return np.where(d <= delta, 0.5 * d * d, delta * (d - 0.5 * delta))


LOGITS = In((None, 5), -3, 3)
BIG = In((None, 5), -1e4, 1e4)
IDS = In((None,), 0, 5, kind="int", dtype="int64")
# p - t must stay away from the kinks of mae (0) and huber (+-0.5, +-1): integer targets
# and predictions away from every multiple of 0.5
PRED = In((None, 4), -3, 3, kinks=tuple(np.arange(-3, 3.5, 0.5)))
TARGET = In((None, 4), -2, 3, kind="int")

SOFTMAX_CASES = [
    case(f"{name} axis={axis} {shape}", lambda t, f=f, a=axis: f(t, axis=a),
         lambda x, r=ref, a=axis: r(x, a), In(shape, -3, 3))
    for name, f, ref in (("softmax", gc.softmax, np_softmax), ("log_softmax", gc.log_softmax, np_log_softmax))
    for axis, shape in ((-1, (None, 6)), (0, (None, 6)), (1, (None, 4, 3)), (-1, (7, 33)))
] + [
    case("softmax large", gc.softmax, np_softmax, BIG,
         grad_ref=lambda z, r: [np_softmax(z) * (r - (r * np_softmax(z)).sum(-1, keepdims=True))]),
    case("log_softmax large", gc.log_softmax, np_log_softmax, BIG,
         grad_ref=lambda z, r: [r - np_softmax(z) * r.sum(-1, keepdims=True)]),
    case("log(softmax) large (rewritten stable)", lambda t: gc.log(gc.softmax(t)), np_log_softmax, BIG,
         grad_ref=lambda z, r: [r - np_softmax(z) * r.sum(-1, keepdims=True)]),
]

CROSS_ENTROPY_CASES = [
    case("softmax_cross_entropy int64 ids", gc.softmax_cross_entropy, np_cross_entropy, LOGITS, IDS),
    case("softmax_cross_entropy int32 ids", gc.softmax_cross_entropy, np_cross_entropy, LOGITS,
         In((None,), 0, 5, kind="int", dtype="int32")),
    case("softmax_cross_entropy probabilities", gc.softmax_cross_entropy, np_cross_entropy, LOGITS,
         In((None, 5), kind="probs")),
    case("softmax_cross_entropy unnormalized labels", gc.softmax_cross_entropy, np_cross_entropy,
         LOGITS, In((None, 5))),
    case("softmax_cross_entropy leading axes", gc.softmax_cross_entropy, np_cross_entropy,
         In((2, 3, 4)), In((2, 3), 0, 4, kind="int", dtype="int64")),
    case("softmax_cross_entropy large", gc.softmax_cross_entropy, np_cross_entropy, BIG, IDS,
         grad_ref=lambda z, y, r: [r[:, None] * (np_softmax(z) - one_hot(y, 5))]),
    case("softmax_cross_entropy_grad ids", softmax_cross_entropy_grad, np_cross_entropy_grad,
         In((None, 10), -3, 3), In((None,), 0, 10, kind="int", dtype="int64"), In((None,))),
    case("softmax_cross_entropy_grad 130 classes", softmax_cross_entropy_grad, np_cross_entropy_grad,
         In((None, 130), -3, 3), In((None,), 0, 130, kind="int", dtype="int32"), In((None,))),
    case("softmax_cross_entropy_grad 1 class", softmax_cross_entropy_grad, np_cross_entropy_grad,
         In((None, 1)), In((None,), 0, 1, kind="int", dtype="int64"), In((None,))),
    case("softmax_cross_entropy_grad unnormalized probabilities", softmax_cross_entropy_grad,
         np_cross_entropy_grad, In((None, 3), -3, 3), In((None, 3), 0.1, 1.0), In((None,))),
    case("softmax_cross_entropy_grad leading axes", softmax_cross_entropy_grad, np_cross_entropy_grad,
         In((2, 3, 4)), In((2, 3), 0, 4, kind="int", dtype="int64"), In((2, 3))),
    case("softmax_cross_entropy_grad one example", softmax_cross_entropy_grad, np_cross_entropy_grad,
         In((5,)), In((), 0, 5, kind="int", dtype="int64"), In(())),
    case("sigmoid_cross_entropy", gc.sigmoid_cross_entropy,
         lambda z, t: np.logaddexp(0, z) - z * t, In((None, 4), -3, 3), In((None, 4), 0, 1)),
    case("sigmoid_cross_entropy large", gc.sigmoid_cross_entropy,
         lambda z, t: np.logaddexp(0, z) - z * t, In((None, 4), -1e4, 1e4), In((None, 4), 0, 1),
         grad_ref=lambda z, t, r: [(np_sigmoid(z) - t) * r, -z * r]),
]

LOSS_CASES = [
    case("mse", gc.mse, lambda p, t: (p - t) ** 2, PRED, TARGET),
    case("mae", gc.mae, lambda p, t: np.abs(p - t), PRED, TARGET),
    case("huber", gc.huber, np_huber, PRED, TARGET),
    case("huber delta=0.5", lambda p, t: gc.huber(p, t, delta=0.5), lambda p, t: np_huber(p, t, 0.5),
         PRED, TARGET),
    case("mse broadcast target", gc.mse, lambda p, t: (p - t) ** 2, In((None, 3)), In((3,))),
    case("huber delta=2 broadcast target", lambda p, t: gc.huber(p, t, delta=2.0),
         lambda p, t: np_huber(p, t, 2.0), In((None, 3), -2, 2, kinks=(-1.0, 1.0)),
         In((3,), -1, 1, kind="int")),
]

SECOND_ORDER_CASES = [
    case("softmax''", lambda a: gc.grad(gc.sum(gc.softmax(a) * gc.softmax(a)), a),
         lambda z: 2 * np_softmax(z) * (np_softmax(z) - (np_softmax(z) ** 2).sum(-1, keepdims=True)),
         In((None, 4))),
    case("log_softmax'' (axis 0)", lambda a: gc.grad(gc.sum(gc.square(gc.log_softmax(a, axis=0))), a),
         lambda z: 2 * np_log_softmax(z, 0) - np_softmax(z, 0) * (2 * np_log_softmax(z, 0)).sum(0),
         In((None, 4))),
    case("softmax_cross_entropy''", lambda a, y: gc.grad(gc.mean(gc.softmax_cross_entropy(a, y)), a),
         lambda z, y: np_cross_entropy_grad(z, y, np.full(len(z), 1 / len(z))), In((None, 4)),
         In((None,), 0, 4, kind="int", dtype="int64")),
    case("softmax_cross_entropy'' probabilities",
         lambda a, p: gc.grad(gc.mean(gc.softmax_cross_entropy(a, p)), a),
         lambda z, p: np_cross_entropy_grad(z, p, np.full(len(z), 1 / len(z))), In((None, 4)),
         In((None, 4), kind="probs")),
    case("sigmoid_cross_entropy''", lambda a, t: gc.grad(gc.sum(gc.sigmoid_cross_entropy(a, t)), a),
         lambda z, t: np_sigmoid(z) - t, In((None, 4)), In((None, 4), 0, 1)),
]


# -- dropout: the mask recomputed from the documented hash ---------------------------------

def _fmix32(h):
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def dropout_keep(seed, step, shape, rate):
    """keep[i] = uniform(seed, step, i) >= rate, uniform = (hash >> 8) / 2**24 (float32)."""
    key = (seed * 0x9E3779B1 + step * 0x85EBCA77) & 0xFFFFFFFF
    n = int(np.prod(shape))
    u = [(_fmix32(_fmix32(((i * 0xC2B2AE3D) & 0xFFFFFFFF) ^ key) ^ key) >> 8) / 2 ** 24 for i in range(n)]
    return np.array(u).reshape(shape) >= float(np.float32(rate))


DROPOUT_CASES = [
    case(f"dropout {rate}", lambda t, r=rate: gc.dropout(t, r, seed=7),
         lambda x, r=rate: np.where(dropout_keep(7, 0, x.shape, r), x / (1 - r), 0.0),
         In((None, 3, 5)), training=True)
    for rate in (0.3, 0.5)
]

# gc.distributed.allreduce_mean without a communicator (no Session of several processes):
# the identity, value and gradient (under mpirun: tests/distributed)
DISTRIBUTED_CASES = [
    case("allreduce_mean, no communicator", lambda t: gc.distributed.allreduce_mean(gc.tanh(t)) * 2.0,
         lambda x: np.tanh(x) * 2, In((3, 4))),
]

CASES = quick_on_c(SOFTMAX_CASES + CROSS_ENTROPY_CASES + LOSS_CASES + SECOND_ORDER_CASES + DROPOUT_CASES
                   + DISTRIBUTED_CASES,
                   "log_softmax axis=0 (None, 6)", "softmax_cross_entropy probabilities", "huber",
                   "dropout 0.3")


@pytest.mark.parametrize("case", CASES)
def test_op(case, backend, check_op):
    check_op(case, backend)


@pytest.mark.parametrize("label", [-1, 4])
def test_label_out_of_range(backend, label):
    """Both ops that read class ids refuse ids outside [0, K) at run time."""
    with gc.Graph() as g:
        z = gc.placeholder((None, 4), "float64")
        y = gc.placeholder((None,), "int64")
        loss = gc.softmax_cross_entropy(z, y)
        d = softmax_cross_entropy_grad(z, y, gc.placeholder((None,), "float64", name="g"))
    sess = gc.Session(g, backend=backend)
    feed = {z: np.ones((3, 4)), y: np.array([0, label, 1]), "g": np.ones(3)}
    for fetch in (loss, d):
        with pytest.raises(gc.GraphcError, match="out of range"):
            sess.run(fetch, feed)


# -- dropout beyond one step ------------------------------------------------------------------

def test_dropout_mask_follows_the_step(backend):
    """Steps 0, 1, 2 of one session: each step's mask is the documented hash's."""
    x = np.random.default_rng(12).uniform(0.5, 2.0, size=(7, 6))
    with gc.Graph() as g:
        p = gc.placeholder((None, 6), "float64")
        y = gc.dropout(p, 0.4, seed=3)
    sess = gc.Session(g, backend=backend)
    for step in range(3):
        assert sess.step == step
        out = sess.run(y, {p: x}, training=True)
        np.testing.assert_allclose(out, np.where(dropout_keep(3, step, x.shape, 0.4), x / 0.6, 0.0),
                                   rtol=1e-12, err_msg=f"dropout [{backend}] step {step}")


def _dropout_graph(rate, dtype="float32", seed=0, op_seed=None):
    with gc.Graph(seed=seed) as g:
        x = gc.placeholder((None, 50), dtype)
        r = gc.placeholder((None, 50), dtype)
        y = gc.dropout(x, rate, seed=op_seed)
        gx = gc.grad(gc.sum(y * r), x)
    return g, x, r, y, gx


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_dropout_statistics(rate):
    """About ``rate`` of the elements drop; the gradient uses the same mask; the next step
    draws another mask."""
    rng = np.random.default_rng(8)
    xv, rv = rng.uniform(0.5, 2.0, size=(201, 50)), rng.uniform(-2, 2, size=(201, 50))
    g, x, r, y, gx = _dropout_graph(rate, "float64")
    sess = gc.Session(g, backend="numpy")
    out, grad = sess.run([y, gx], {x: xv, r: rv}, training=True)
    dropped = out == 0
    assert abs(dropped.mean() - rate) < 0.03, dropped.mean()
    np.testing.assert_allclose(out[~dropped], xv[~dropped] / (1 - rate), rtol=1e-12)
    np.testing.assert_allclose(grad, np.where(dropped, 0.0, rv / (1 - rate)), rtol=1e-12)
    assert ((sess.run(y, {x: xv}, training=True) == 0) != dropped).any()


def test_dropout_seeds():
    """Same graph seed and step: bit-identical; the step, the graph seed change the mask;
    an op seed overrides the graph seed."""
    xv = np.random.default_rng(9).uniform(0.5, 2.0, size=(7, 50)).astype(np.float32)

    def masks(seed, op_seed=None):
        g, x, _, y, _ = _dropout_graph(0.4, seed=seed, op_seed=op_seed)
        sess = gc.Session(g, backend="numpy")
        return [sess.run(y, {x: xv}, training=True) for _ in range(2)]

    a = masks(3)
    np.testing.assert_array_equal(a[0], masks(3)[0])
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(a[0], masks(4)[0])
    np.testing.assert_array_equal(masks(1, op_seed=11)[0], masks(2, op_seed=11)[0])


def test_dropout_is_identity_out_of_training():
    xv = np.random.default_rng(10).uniform(-2, 2, size=(7, 50))
    rv = np.random.default_rng(11).uniform(-2, 2, size=(7, 50))
    g, x, r, y, gx = _dropout_graph(0.5, "float64")
    sess = gc.Session(g, backend="numpy")
    for kwargs in ({"training": False}, {}):  # no update op fetched: eval by default
        out, grad = sess.run([y, gx], {x: xv, r: rv}, **kwargs)
        np.testing.assert_array_equal(out, xv)
        np.testing.assert_array_equal(grad, rv)
    g, x, _, y, _ = _dropout_graph(0.0, "float64")
    np.testing.assert_array_equal(gc.Session(g, backend="numpy").run(y, {x: xv}, training=True), xv)


# -- stability with check_numerics ------------------------------------------------------------

HUGE = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]])


def _finite_run(fn, *arrays):
    """Values and gradients of ``fn`` with ``check_numerics``: nothing may be NaN/inf."""
    with gc.Graph() as g:
        phs = [gc.placeholder(a.shape, a.dtype.name) for a in arrays]
        out = fn(*phs)
        grads = gc.grad(gc.sum(out), [p for p in phs if p.dtype.startswith("float")])
    return gc.Session(g, check_numerics=True, backend="numpy").run([out] + grads, dict(zip(phs, arrays)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_huge_logits_with_ties_stay_finite(dtype):
    """Rows of equal huge logits (ties at +-1e4), under check_numerics."""
    z = HUGE.astype(dtype)
    out, gz = _finite_run(gc.log_softmax, z)
    np.testing.assert_allclose(out, [[0, -2e4, -1e4], [-np.log(3)] * 3,
                                     [-np.log(2), -np.log(2), -2e4 - np.log(2)]], rtol=1e-6)
    y = np.array([1, 0, 2])
    out, gz = _finite_run(gc.softmax_cross_entropy, z, y)
    np.testing.assert_allclose(out, [2e4, np.log(3), 2e4 + np.log(2)], rtol=1e-6)
    np.testing.assert_allclose(gz, [[1, -1, 0], [-2 / 3, 1 / 3, 1 / 3], [0.5, 0.5, -1]],
                               rtol=1e-6, atol=1e-7)
    t = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.5], [1.0, 0.0, 1.0]], dtype)
    out, gz, gt = _finite_run(gc.sigmoid_cross_entropy, z, t)
    np.testing.assert_allclose(out, [[1e4, 1e4, np.log(2)], [1e4, 0, 5e3], [0, 1e4, 1e4]],
                               rtol=1e-6, atol=1e-7)
    for fn in (gc.softmax, gc.softplus, gc.sigmoid, lambda a: gc.logsumexp(a, axis=1),
               lambda a: gc.log(gc.softmax(a)), lambda a: gc.log(gc.sigmoid(a))):
        _finite_run(fn, z)


def test_cross_entropy_grad_op_errors():
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
