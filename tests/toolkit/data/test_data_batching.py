"""Tests for graphc.data.batches: per-epoch shuffling, coverage, last partial batch."""

from __future__ import annotations

import numpy as np
import pytest

from graphc.toolkit.data import Batches, batches


def test_every_sample_once_per_epoch_and_rows_stay_aligned():
    x = np.arange(23 * 3).reshape(23, 3).astype(np.float32)
    y = np.arange(23)
    loader = batches((x, y), 5, seed=0)
    assert len(loader) == 5
    for _ in range(3):
        seen = []
        for xb, yb in loader:
            np.testing.assert_array_equal(xb, x[yb])
            seen.append(yb)
        assert sorted(np.concatenate(seen).tolist()) == list(range(23))


def test_reshuffles_each_epoch_deterministically_from_seed():
    y = np.arange(50)
    a, b = batches((y,), 8, seed=3), batches((y,), 8, seed=3)
    e0, e1 = _epoch_indices_single(a), _epoch_indices_single(a)
    assert not np.array_equal(e0, e1)
    np.testing.assert_array_equal(e0, _epoch_indices_single(b))
    np.testing.assert_array_equal(e1, _epoch_indices_single(b))
    np.testing.assert_array_equal(e0, a.order(0))
    np.testing.assert_array_equal(e1, np.random.default_rng(3 + 1).permutation(50))
    assert a.epoch == 2
    assert not np.array_equal(e0, np.arange(50))


def _epoch_indices_single(loader):
    return np.concatenate([b[0] for b in loader])


def test_keeps_or_drops_last_partial_batch():
    y = np.arange(10)
    kept = list(batches(y, 4, shuffle=False))
    assert [len(b) for b in kept] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(kept), y)  # bare array in, bare arrays out
    dropped = batches(y, 4, shuffle=False, drop_last=True)
    assert len(dropped) == 2
    assert [len(b) for b in dropped] == [4, 4]
    shuffled = batches((y,), 4, seed=1, drop_last=True)
    assert all(len(b[0]) == 4 for b in shuffled)


def test_no_shuffle_keeps_order_and_seed_none_still_works():
    y = np.arange(7)
    np.testing.assert_array_equal(_epoch_indices_single(batches((y,), 3, shuffle=False)), y)
    loader = batches((y,), 3, seed=None)
    assert sorted(_epoch_indices_single(loader).tolist()) == list(range(7))


def test_bad_arguments():
    with pytest.raises(ValueError, match="different numbers of samples"):
        batches((np.zeros(3), np.zeros(4)), 2)
    with pytest.raises(ValueError, match="batch_size"):
        batches(np.zeros(3), 0)
    with pytest.raises(TypeError):
        batches("abc", 2)
    assert isinstance(batches(np.zeros(3), 2), Batches)
