"""Feature scaling, one-hot labels, dataset splits and k-fold indices.

Scalers are fitted on the training set only and then applied to the others,
so no statistic of the validation or test data leaks into training.

Example::

    from graphc import data

    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = data.train_val_test_split(
        x, y, val=0.1, test=0.2, seed=0, stratify=y)
    x_tr, x_va, x_te = data.standardize(x_tr, x_va, x_te)   # statistics of x_tr only
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .._args import bad_type, bad_value
from .batching import as_arrays

__all__ = [
    "MinMaxScaler",
    "Standardizer",
    "kfold",
    "minmax_scale",
    "one_hot",
    "standardize",
    "train_val_test_split",
]


def _float(x: Any) -> np.ndarray:
    """Float arrays keep their dtype; anything else becomes float32."""
    arr = np.asarray(x)
    return arr if arr.dtype.kind == "f" else arr.astype(np.float32)


class _Scaler:
    """Shared fit/transform plumbing: ``y = (x - offset) / scale`` per feature."""

    offset_: np.ndarray | None = None
    scale_: np.ndarray | None = None

    def _fit(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def fit(self, x: Any):
        """Learn per-feature statistics over axis 0 of ``x``; returns ``self``."""
        x = _float(x)
        if x.ndim == 0 or len(x) == 0:
            raise bad_value(f"{type(self).__name__}.fit: need at least one sample, got "
                            f"shape {x.shape}")
        self.offset_, self.scale_ = self._fit(x.astype(np.float64))
        return self

    def _check(self, x: np.ndarray) -> None:
        if self.offset_ is None:
            raise RuntimeError(f"{type(self).__name__}: call fit() before transform()")
        if x.shape[1:] != self.offset_.shape:
            raise bad_value(f"{type(self).__name__}: fitted on samples of shape "
                            f"{self.offset_.shape}, got {x.shape[1:]}")

    def transform(self, x: Any) -> np.ndarray:
        """Apply the fitted scaling (dtype kept for floats, float32 otherwise)."""
        x = _float(x)
        self._check(x)
        return ((x - self.offset_) / self.scale_).astype(x.dtype)

    def fit_transform(self, x: Any) -> np.ndarray:
        """``fit(x)`` then ``transform(x)``."""
        return self.fit(x).transform(x)

    def inverse_transform(self, y: Any) -> np.ndarray:
        """Undo :meth:`transform`."""
        y = _float(y)
        self._check(y)
        return (y * self.scale_ + self.offset_).astype(y.dtype)


class Standardizer(_Scaler):
    """Zero mean, unit variance per feature (features: every axis but 0).

    A constant feature (std 0) is only centred, never divided by zero.

    Example::

        s = Standardizer().fit(x_train)
        x_train, x_test = s.transform(x_train), s.transform(x_test)
        s.mean_, s.std_                     # the statistics of x_train
    """

    def _fit(self, x):
        mean, std = x.mean(axis=0), x.std(axis=0)
        return mean, np.where(std > 0, std, 1.0)

    @property
    def mean_(self) -> np.ndarray | None:
        return self.offset_

    @property
    def std_(self) -> np.ndarray | None:
        return self.scale_


class MinMaxScaler(_Scaler):
    """Map each feature's training range ``[min, max]`` onto ``feature_range``.

    A constant feature maps to the lower end of the range. Values outside
    the training range map outside ``feature_range`` (no clipping).

    Example::

        s = MinMaxScaler((-1, 1)).fit(x_train)
        s.transform(x_train).min(), s.transform(x_train).max()    # -1.0, 1.0
    """

    def __init__(self, feature_range: tuple[float, float] = (0.0, 1.0)) -> None:
        lo, hi = (float(v) for v in feature_range)
        if not hi > lo:
            raise bad_value(f"MinMaxScaler: feature_range must be (low, high) with low < "
                            f"high, got {feature_range}")
        self.feature_range = (lo, hi)

    def _fit(self, x):
        lo, hi = self.feature_range
        xmin, xmax = x.min(axis=0), x.max(axis=0)
        span = np.where(xmax > xmin, xmax - xmin, 1.0)
        scale = span / (hi - lo)
        return xmin - lo * scale, scale


def _scale_all(scaler: _Scaler, train: Any, others: tuple) -> Any:
    out = (scaler.fit_transform(train),) + tuple(scaler.transform(o) for o in others)
    return out[0] if not others else out


def standardize(train: Any, *others: Any) -> Any:
    """Standardize ``train`` and ``others`` with the mean/std of ``train``.

    Returns the scaled ``train`` alone, or a tuple ``(train, *others)``.

    Example::

        x_tr, x_te = standardize(x_tr, x_te)
        x_only = standardize(x)
    """
    return _scale_all(Standardizer(), train, others)


def minmax_scale(train: Any, *others: Any, feature_range: tuple[float, float] = (0.0, 1.0)) -> Any:
    """Min-max scale ``train`` and ``others`` with the range of ``train``.

    Example::

        x_tr, x_te = minmax_scale(x_tr, x_te)          # x_tr in [0, 1]
    """
    return _scale_all(MinMaxScaler(feature_range), train, others)


def one_hot(labels: Any, k: int | None = None, dtype: Any = np.float32) -> np.ndarray:
    """One-hot encode integer class ids: shape ``labels.shape + (k,)``.

    ``k`` defaults to ``labels.max() + 1``; ids outside ``[0, k)`` are an error.

    Example::

        one_hot(np.array([0, 2]), 3)    # [[1, 0, 0], [0, 0, 1]] as float32
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iub":
        if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise bad_type(f"one_hot: labels must be integer class ids, got {labels.dtype}")
    if k is None:
        k = int(labels.max()) + 1 if labels.size else 0
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise bad_value(f"one_hot: labels must lie in [0, {k}), got range "
                        f"[{labels.min()}, {labels.max()}]")
    return (labels[..., None] == np.arange(k)).astype(dtype)


def _count(spec: float, n: int, what: str) -> int:
    if isinstance(spec, (bool, np.bool_)):
        raise bad_type(f"train_val_test_split: {what} must be a fraction or a count")
    if isinstance(spec, (int, np.integer)):
        if not 0 <= spec <= n:
            raise bad_value(f"train_val_test_split: {what}={spec} is not a count in [0, {n}]")
        return int(spec)
    if not 0.0 <= float(spec) < 1.0:
        raise bad_value(f"train_val_test_split: {what}={spec} must be a fraction in [0, 1) "
                        "or an int count")
    return round(float(spec) * n)


def _allocate(counts: np.ndarray, total: int, cap: np.ndarray) -> np.ndarray:
    """Split ``total`` over classes proportionally to ``counts`` (largest remainder)."""
    n = counts.sum()
    exact = counts * (total / n) if n else np.zeros(len(counts))
    take = np.minimum(np.floor(exact).astype(np.int64), cap)
    for c in np.argsort(-(exact - take), kind="stable"):
        if take.sum() >= total:
            break
        if take[c] < cap[c]:
            take[c] += 1
    while take.sum() < total:  # classes short of room push the rest elsewhere
        c = int(np.argmax(cap - take))
        take[c] += 1
    return take


def train_val_test_split(*arrays: Any, val: float = 0.1, test: float = 0.2,
                         seed: int = 0, stratify: Any = None) -> tuple:
    """Shuffle and split row-aligned arrays into train, validation and test parts.

    ``val``/``test`` are fractions of all samples (rounded) or int counts.
    ``stratify`` (class labels, e.g. ``y``) keeps each class's share equal in
    every part (to within one sample per class). Returns ``(train, val, test)``;
    each part is a tuple of arrays, or a bare array when one array was given.

    Example::

        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = train_val_test_split(
            x, y, val=0.1, test=0.2, seed=0, stratify=y)
        tr, va, te = train_val_test_split(x, val=10, test=20)   # counts, one array
    """
    arrs = as_arrays(tuple(arrays), "train_val_test_split")
    n = len(arrs[0])
    n_test, n_val = _count(test, n, "test"), _count(val, n, "val")
    if n_test + n_val >= n:
        raise bad_value(f"train_val_test_split: val ({n_val}) + test ({n_test}) leave no "
                        f"training samples out of {n}")
    rng = np.random.default_rng(seed)
    if stratify is None:
        perm = rng.permutation(n)
        parts = [perm[n_test + n_val:], perm[n_test:n_test + n_val], perm[:n_test]]
    else:
        y = np.asarray(stratify)
        if len(y) != n:
            raise bad_value(f"train_val_test_split: stratify has {len(y)} labels for {n} "
                            "samples")
        classes, inv = np.unique(y, return_inverse=True)
        members = [rng.permutation(np.flatnonzero(inv == c)) for c in range(len(classes))]
        counts = np.array([len(m) for m in members])
        t = _allocate(counts, n_test, counts)
        v = _allocate(counts, n_val, counts - t)
        parts = [np.concatenate([m[t[c] + v[c]:] for c, m in enumerate(members)]),
                 np.concatenate([m[t[c]:t[c] + v[c]] for c, m in enumerate(members)]),
                 np.concatenate([m[:t[c]] for c, m in enumerate(members)])]
        parts = [rng.permutation(p) for p in parts]  # classes interleaved, not in blocks
    out = []
    for idx in parts:
        picked = tuple(a[idx] for a in arrs)
        out.append(picked[0] if len(arrs) == 1 else picked)
    return tuple(out)


def kfold(n: int, k: int, shuffle: bool = True, seed: int = 0
          ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(train_idx, val_idx)`` for k-fold cross-validation over ``n`` samples.

    The validation folds partition ``range(n)``; their sizes differ by at most
    one (the first ``n % k`` folds get the extra sample). Indices are sorted.

    Example::

        for train_idx, val_idx in kfold(len(x), 5, seed=0):
            fit_and_score(x[train_idx], x[val_idx])
    """
    n, k = int(n), int(k)
    if not 2 <= k <= n:
        raise bad_value(f"kfold: need 2 <= k <= n, got k={k}, n={n}")
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    sizes = np.full(k, n // k)
    sizes[:n % k] += 1
    start = 0
    for size in sizes:
        val_idx = np.sort(order[start:start + size])
        train_idx = np.sort(np.concatenate([order[:start], order[start + size:]]))
        start += size
        yield train_idx, val_idx
