"""Values entering a Session (feeds, set_value, load) convert exactly or are refused.

An int feed of 2**32 + 3 to an int32 placeholder used to become 3, ``load`` wrapped
values that ``set_value`` refused, and a float64 of 1e39 fed to a float32 placeholder
became inf. One conversion function now serves all three with the same rules.
"""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc

I32_MAX, I32_MIN = 2**31 - 1, -(2**31)

# value, target dtype, accepted? (else the error class)
CASES = [
    (2**32 + 3, "int32", gc.FeedError),
    (np.array([1, 2**32 + 3]), "int32", gc.FeedError),
    (np.array([I32_MIN - 1]), "int32", gc.FeedError),
    (np.array([2**63], np.uint64), "int64", gc.FeedError),
    (np.array([2**64 - 1], np.uint64), "int32", gc.FeedError),
    ([2**70, 1], "int64", gc.FeedError),  # Python ints beyond int64: an object array
    (-(2**70), "int64", gc.FeedError),
    (np.array([1e39]), "float32", gc.FeedError),
    (np.array([-3.5e38, 0.0]), "float32", gc.FeedError),
    (2**1030, "float64", gc.FeedError),
    (np.array([1.0, 2.0]), "int32", gc.DTypeError),  # floats are never truncated
    (np.array([np.nan]), "int64", gc.DTypeError),
    (np.array([1, 0]), "bool", gc.DTypeError),
    (np.array(["1"]), "float32", gc.DTypeError),
    (np.array([1 + 2j]), "float64", gc.DTypeError),
    ([1, "a"], "int64", gc.DTypeError),
    (np.array([I32_MAX, I32_MIN]), "int32", True),
    (np.array([2**31 - 1], np.uint64), "int32", True),
    (np.array([True, False]), "int32", True),
    (2**70, "float32", True),
    (np.array([np.finfo(np.float32).max, np.inf, -np.inf, np.nan, 1e-50]), "float32", True),
    (np.array([2**63 - 1]), "float32", True),
]


def _one(dtype, n=2):
    with gc.Graph() as g:
        p = gc.placeholder((None,), dtype=dtype, name="p")
        v = gc.variable(np.zeros(n, dtype), name="v")
        out = gc.reshape(p, (-1,))
    return g, p, v, out


def _as_1d(value):
    return [value] if np.ndim(value) == 0 else value


def _expected(value, dtype):
    """What an exact conversion gives (computed in Python, not by the code under test)."""
    flat = np.asarray(value, dtype=object).ravel().tolist()
    return np.array([float(x) if dtype.startswith("float") else x for x in flat]).astype(dtype)


@pytest.mark.parametrize("value, dtype, outcome", CASES, ids=[f"{i}-{c[1]}" for i, c in enumerate(CASES)])
def test_feed_converts_exactly_or_names_the_placeholder(value, dtype, outcome):
    g, p, v, out = _one(dtype)
    sess = gc.Session(g, backend="numpy")
    feed = {p: _as_1d(value)}
    if outcome is True:
        got = sess.run(out, feed)
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, _expected(feed[p], dtype))
        return
    with pytest.raises(outcome) as info:
        sess.run(out, feed)
    assert "feed for p" in str(info.value) and dtype in str(info.value)
    assert sess.step == 0


@pytest.mark.parametrize("value, dtype, outcome", CASES, ids=[f"{i}-{c[1]}" for i, c in enumerate(CASES)])
def test_set_value_and_load_follow_the_feed_rules(value, dtype, outcome, tmp_path):
    """The same values are accepted or refused by set_value and load as by a feed."""
    stored = np.asarray(_as_1d(value))
    g, p, v, out = _one(dtype, len(stored))
    sess = gc.Session(g, backend="numpy")
    if stored.dtype != object:  # npz cannot hold Python ints beyond 64 bits
        np.savez(tmp_path / "c.npz", v=stored)
    if outcome is True:
        sess.set_value("v", stored)
        np.testing.assert_array_equal(sess.get_value("v"), _expected(stored, dtype))
        if stored.dtype != object:
            sess.set_value("v", np.zeros(len(stored), dtype))
            sess.load(tmp_path / "c.npz")
            np.testing.assert_array_equal(sess.get_value("v"), _expected(stored, dtype))
        return
    kind = gc.DTypeError if outcome is gc.DTypeError else gc.GraphcError
    with pytest.raises(kind) as info:
        sess.set_value(v, stored)
    assert "set_value: v" in str(info.value)
    if stored.dtype == object:
        return
    with pytest.raises(kind) as info:
        sess.load(tmp_path / "c.npz")
    assert "c.npz" in str(info.value) and "variable v" in str(info.value)
    np.testing.assert_array_equal(sess.get_value(v), np.zeros(len(stored), dtype))


def test_an_unused_placeholder_does_not_fix_the_batch_size():
    """TF1 habit: one feed dict for every fetch set; only the placeholders a fetch set
    reads must agree on the batch size."""
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        labels = gc.placeholder((None,), dtype="int64", name="labels")
        y = gc.sum(x * 2.0, axis=1)
    sess = gc.Session(g, backend="numpy")
    feed = {x: np.ones((4, 3), np.float32), labels: np.zeros(9, np.int64)}
    np.testing.assert_array_equal(sess.run(y, feed), np.full(4, 6.0, np.float32))
    with pytest.raises(gc.FeedError, match="labels"):  # still checked: rank, dtype
        sess.run(y, {x: np.ones((4, 3), np.float32), labels: np.zeros((9, 2), np.int64)})
    with pytest.raises(gc.DTypeError, match="labels"):
        sess.run(y, {x: np.ones((4, 3), np.float32), labels: np.zeros(9, np.float32)})


def _named():
    with gc.Graph() as g:
        x = gc.placeholder((None, 2), name="x")
        w = gc.variable(np.ones((2, 2), np.float32), name="dense/kernel")
        gc.variable(np.zeros(2, np.float32), name="dense/bias")
        y = x @ w
    return g, x, w, y


def test_get_and_set_value_by_name():
    g, x, w, y = _named()
    sess = gc.Session(g, backend="numpy")
    sess.set_value("dense/kernel", np.eye(2))
    np.testing.assert_array_equal(sess.get_value("dense/kernel"), np.eye(2))
    np.testing.assert_array_equal(sess.get_value(w), np.eye(2))
    with pytest.raises(gc.GraphcError, match="dense/kernel") as info:
        sess.get_value("dense/kernal")
    assert "did you mean" in str(info.value)
    with pytest.raises(gc.GraphcError, match="placeholder"):
        sess.set_value("x", np.zeros((1, 2)))
    with pytest.raises(gc.GraphcError, match="dense/bias"):
        sess.get_value("zzz")  # nothing close: the variables are listed
    with pytest.raises(gc.FeedError, match="did you mean 'x'"):
        sess.run(y, {"xx": np.ones((1, 2), np.float32)})


@pytest.mark.parametrize("fetches, where", [
    (lambda y: [y, None], "[1]"),
    (lambda y: (None,), "[0]"),
    (lambda y: {"out": y, "bad": None}, "['bad']"),
    (lambda y: [y, "y"], "[1]"),
])
def test_a_fetch_that_is_not_a_tensor_is_named_by_its_position(fetches, where):
    g, x, w, y = _named()
    sess = gc.Session(g, backend="numpy")
    with pytest.raises(gc.GraphcError) as info:
        sess.run(fetches(y), {x: np.ones((1, 2), np.float32)})
    assert where in str(info.value) and "not a graph tensor" in str(info.value)
    with pytest.raises(gc.GraphcError, match=r"\[1\]"):
        sess.compile([y, None])


@pytest.mark.parametrize("value, dtype", [
    (np.float64(1.5), "float64"), (np.float32(1.5), "float32"), (np.array(1.5), "float64"),
    (1.5, "float32"), (np.int32(3), "int32"), (3, "int64"), (np.bool_(True), "bool"),
])
def test_variable_keeps_the_dtype_of_numpy_scalars(value, dtype):
    """Only Python numbers are weak (they carry no dtype); NumPy scalars keep theirs."""
    with gc.Graph() as g:
        v = gc.variable(value)
        c = gc.constant(value)
    assert v.dtype == dtype and c.dtype == dtype
    assert gc.Session(g, backend="numpy").get_value(v).dtype == np.dtype(dtype)
