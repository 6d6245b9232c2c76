"""Tests for scaling, one-hot, train/val/test splits and k-fold indices."""

from __future__ import annotations

import numpy as np
import pytest

from graphc.toolkit.data import (
    MinMaxScaler,
    Standardizer,
    kfold,
    minmax_scale,
    one_hot,
    standardize,
    train_val_test_split,
)


def test_standardize_uses_train_statistics_only():
    rng = np.random.default_rng(0)
    train = rng.normal(3.0, 2.0, (200, 4)).astype(np.float32)
    train[:, 2] = 5.0  # constant feature: std 0 must be safe
    test = rng.normal(-10.0, 7.0, (50, 4)).astype(np.float32)
    tr, te = standardize(train, test)
    assert tr.dtype == np.float32 and te.dtype == np.float32
    np.testing.assert_allclose(tr.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(tr[:, [0, 1, 3]].std(0), 1, rtol=1e-4)
    assert np.all(tr[:, 2] == 0) and np.isfinite(te).all()
    mean, std = train.mean(0), train.std(0)
    std[2] = 1.0
    np.testing.assert_allclose(te, (test - mean) / std, rtol=1e-4, atol=1e-4)
    assert abs(te[:, 0].mean()) > 3  # test data was not re-centred on its own mean


def test_standardizer_object_and_images():
    x = np.random.default_rng(1).random((30, 1, 4, 4))
    s = Standardizer().fit(x)
    assert s.mean_.shape == (1, 4, 4)
    np.testing.assert_allclose(s.inverse_transform(s.transform(x)), x)
    with pytest.raises(ValueError, match="fitted on samples of shape"):
        s.transform(np.zeros((2, 16)))
    with pytest.raises(RuntimeError, match="fit"):
        Standardizer().transform(x)
    assert standardize(np.arange(6).reshape(3, 2)).dtype == np.float32  # ints -> float32


def test_minmax_uses_train_range_only():
    train = np.array([[0.0, 5.0], [10.0, 5.0], [5.0, 5.0]])
    test = np.array([[20.0, 7.0]])
    tr, te = minmax_scale(train, test)
    np.testing.assert_allclose(tr[:, 0], [0, 1, 0.5])
    np.testing.assert_allclose(tr[:, 1], 0)  # constant feature -> lower end
    np.testing.assert_allclose(te, [[2.0, 2.0]])
    s = MinMaxScaler((-1, 1)).fit(train)
    np.testing.assert_allclose(s.transform(train)[:, 0], [-1, 1, 0])
    np.testing.assert_allclose(s.inverse_transform(s.transform(train)), train)
    with pytest.raises(ValueError):
        MinMaxScaler((1, 1))


def test_one_hot():
    out = one_hot(np.array([0, 2, 1]), 3)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.eye(3)[[0, 2, 1]])
    assert one_hot(np.array([1, 3])).shape == (2, 4)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        one_hot(np.array([3]), 3)
    with pytest.raises(TypeError):
        one_hot(np.array([0.5]), 2)


def test_split_sizes_disjoint_and_aligned():
    x = np.arange(100).reshape(100, 1) * 10
    y = np.arange(100)
    (xtr, ytr), (xva, yva), (xte, yte) = train_val_test_split(x, y, val=0.1, test=0.2, seed=0)
    assert (len(ytr), len(yva), len(yte)) == (70, 10, 20)
    all_idx = np.concatenate([ytr, yva, yte])
    assert sorted(all_idx.tolist()) == list(range(100))
    for xs, ys in ((xtr, ytr), (xva, yva), (xte, yte)):
        np.testing.assert_array_equal(xs[:, 0], ys * 10)
    again = train_val_test_split(x, y, val=0.1, test=0.2, seed=0)
    np.testing.assert_array_equal(again[2][1], yte)
    tr, va, te = train_val_test_split(y, val=5, test=15, seed=1)  # counts; one array
    assert (len(tr), len(va), len(te)) == (80, 5, 15)
    with pytest.raises(ValueError, match="no training samples"):
        train_val_test_split(y, val=0.5, test=0.5)


def test_stratify_keeps_class_ratios():
    y = np.array([0] * 600 + [1] * 300 + [2] * 100)
    x = np.arange(1000)
    (xtr, ytr), (xva, yva), (xte, yte) = train_val_test_split(
        x, y, val=0.1, test=0.2, seed=0, stratify=y)
    assert (len(ytr), len(yva), len(yte)) == (700, 100, 200)
    for part in (ytr, yva, yte):
        np.testing.assert_allclose(np.bincount(part, minlength=3) / len(part), [0.6, 0.3, 0.1],
                                   atol=0.011)
    np.testing.assert_array_equal(y[xte], yte)
    assert len(set(xtr) | set(xva) | set(xte)) == 1000
    assert not np.all(np.diff(yte) >= 0)  # parts are shuffled, not in class blocks


def test_stratify_with_uneven_classes_still_exact_sizes():
    y = np.array([0] * 7 + [1] * 3 + [2] * 13)
    tr, va, te = train_val_test_split(np.arange(23), val=4, test=5, stratify=y, seed=2)
    assert (len(tr), len(va), len(te)) == (14, 4, 5)
    assert len(set(tr) | set(va) | set(te)) == 23


def test_kfold_partitions():
    folds = list(kfold(23, 5, seed=0))
    assert len(folds) == 5
    vals = [v for _, v in folds]
    assert sorted(np.concatenate(vals).tolist()) == list(range(23))
    assert sorted(len(v) for v in vals) == [4, 4, 5, 5, 5]
    for tr, va in folds:
        assert not set(tr) & set(va)
        assert len(tr) + len(va) == 23
    plain = [v for _, v in kfold(6, 3, shuffle=False)]
    assert [v.tolist() for v in plain] == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(ValueError):
        list(kfold(3, 5))
