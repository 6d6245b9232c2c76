"""``gc.data.batches(..., shard=(rank, size))``: disjoint parts of the global batches."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc


@pytest.mark.parametrize("n, shuffle", [(40, True), (43, True), (41, False), (9, True)])
def test_shards_split_the_global_batches(n, shuffle):
    x = np.arange(n * 2).reshape(n, 2)
    y = np.arange(n)
    whole = gc.data.batches((x, y), 8, shuffle=shuffle, seed=3)
    parts = [gc.data.batches((x, y), 4, shuffle=shuffle, seed=3, shard=(r, 2)) for r in range(2)]
    assert len(parts[0]) == len(parts[1])
    for _ in range(2):  # two epochs: the same permutation on every rank
        got = [list(p) for p in parts]
        want = list(whole)[:len(parts[0])]
        assert len(got[0]) == len(want)
        for (xa, ya), (xb, yb), (xw, yw) in zip(got[0], got[1], want):
            assert not set(ya) & set(yb)
            np.testing.assert_array_equal(np.concatenate([ya, yb]), yw)
            np.testing.assert_array_equal(np.concatenate([xa, xb]), xw)
            assert len(ya) >= 1 and len(yb) >= 1


def test_a_last_batch_smaller_than_the_ranks_is_dropped():
    loader = gc.data.batches(np.arange(9), 2, seed=0, shard=(1, 2))  # 9 = 2 * 4 + 1
    assert len(loader) == 2
    assert sum(len(b) for b in loader) == 4


@pytest.mark.parametrize("shard", [(2, 2), (-1, 2), (0, 0), [0, 1], (0.0, 1)])
def test_bad_shard_is_refused(shard):
    with pytest.raises(gc.ArgumentError, match="shard"):
        gc.data.batches(np.arange(4), 2, shard=shard)
