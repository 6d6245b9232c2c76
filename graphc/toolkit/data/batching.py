"""Minibatch iteration over a tuple of arrays, reshuffled every epoch.

Example::

    import numpy as np
    from graphc.data import batches

    x, y = np.arange(10.0).reshape(5, 2), np.arange(5)
    loader = batches((x, y), batch_size=2, seed=0)
    len(loader)                      # 3 batches per epoch (the last one has 1 row)
    for xb, yb in loader:            # epoch 0: permutation from seed 0
        ...
    for xb, yb in loader:            # epoch 1: a different, reproducible permutation
        ...
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .._args import bad_type, bad_value

__all__ = ["Batches", "as_arrays", "batches"]


def as_arrays(arrays: Any, what: str = "arrays") -> tuple[np.ndarray, ...]:
    """Normalize one array or a sequence of arrays to a tuple of arrays of equal length.

    Example::

        as_arrays(np.zeros(3))                    # (array([0., 0., 0.]),)
        as_arrays((np.zeros(3), np.ones(3)))      # two arrays
    """
    if isinstance(arrays, np.ndarray):
        out = (arrays,)
    elif isinstance(arrays, (list, tuple)):
        out = tuple(np.asarray(a) for a in arrays)
    else:
        raise bad_type(f"{what}: expected an array or a tuple of arrays, "
                       f"got {type(arrays).__name__}")
    if not out:
        raise bad_value(f"{what}: no arrays given")
    for i, a in enumerate(out):
        if a.ndim == 0:
            raise bad_value(f"{what}: array {i} is a scalar; arrays need a leading sample axis")
    lengths = [len(a) for a in out]
    if len(set(lengths)) != 1:
        raise bad_value(f"{what}: arrays have different numbers of samples (leading "
                        f"dimensions {lengths})")
    return out


class Batches:
    """An iterable of minibatches; each ``iter()`` is one epoch.

    With ``shuffle=True`` epoch ``e`` uses the permutation drawn from
    ``seed + e``, so a run is reproducible and every epoch differs. With
    ``seed=None`` a random base seed is drawn once, at construction.
    Each batch is a tuple of arrays (or a bare array when one array was given).

    Example::

        loader = Batches((x, y), batch_size=32, seed=0, drop_last=True)
        for epoch in range(10):
            for xb, yb in loader:
                ...
        loader.epoch          # 10: the next epoch to be drawn

    ``shard=(rank, size)`` (data-parallel training, one loader per process, the same
    ``seed`` everywhere): each step's global batch is ``batch_size * size`` rows of the
    epoch's order, and this loader yields part ``rank`` of it, ``batch_size`` rows (the
    last global batch is split as evenly as possible, and dropped when it has fewer rows
    than processes). The processes see disjoint rows, together exactly the batches one
    process with ``batch_size * size`` would see.
    """

    def __init__(self, arrays: Any, batch_size: int, shuffle: bool = True,
                 seed: int | None = None, drop_last: bool = False,
                 shard: tuple[int, int] | None = None) -> None:
        self._single = isinstance(arrays, np.ndarray)
        self.arrays = as_arrays(arrays, "batches")
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) \
                or batch_size < 1:
            raise bad_value(f"batches: batch_size must be a positive int, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**31))
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        #: the epoch the next ``iter()`` draws (settable to resume)
        self.epoch = 0
        self.shard = _shard(shard)

    @property
    def num_samples(self) -> int:
        """The number of rows of every array."""
        return len(self.arrays[0])

    def __len__(self) -> int:
        rank, size = self.shard
        n, b = self.num_samples, self.batch_size * size
        if self.drop_last or n % b < size:  # (a shard of the rest would be empty)
            return n // b
        return -(-n // b)

    def order(self, epoch: int) -> np.ndarray:
        """The sample order of ``epoch`` (the identity when not shuffling)."""
        n = self.num_samples
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng(self.seed + int(epoch)).permutation(n)

    def __iter__(self) -> Iterator[Any]:
        order = self.order(self.epoch)
        self.epoch += 1
        return self._generate(order)

    def _generate(self, order: np.ndarray) -> Iterator[Any]:
        rank, size = self.shard
        b = self.batch_size * size
        for k in range(len(self)):
            rows = np.arange(k * b, min((k + 1) * b, self.num_samples))
            if size > 1:
                rows = np.array_split(rows, size)[rank]
            idx = order[rows]
            if not self.shuffle:  # contiguous slices are views: no copy
                sl = slice(int(rows[0]), int(rows[0]) + len(idx))
                batch = tuple(a[sl] for a in self.arrays)
            else:
                batch = tuple(a[idx] for a in self.arrays)
            yield batch[0] if self._single else batch

    def __repr__(self) -> str:
        return (f"<Batches n={self.num_samples} batch_size={self.batch_size} "
                f"batches={len(self)} shuffle={self.shuffle} epoch={self.epoch}>")


def _shard(shard) -> tuple[int, int]:
    if shard is None:
        return 0, 1
    ok = isinstance(shard, tuple) and len(shard) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shard)
    if not ok or not 0 <= shard[0] < shard[1]:
        raise bad_value(f"batches: shard must be (rank, size) with 0 <= rank < size, "
                        f"got {shard!r}")
    return int(shard[0]), int(shard[1])


def batches(arrays: Sequence[np.ndarray] | np.ndarray, batch_size: int, shuffle: bool = True,
            seed: int | None = None, drop_last: bool = False,
            shard: tuple[int, int] | None = None) -> Batches:
    """Minibatches over ``arrays`` (rows aligned), reshuffled every epoch.

    Returns a :class:`Batches`: ``len()`` is the number of batches per epoch
    and every ``for`` loop over it is one epoch, covering each sample once
    (the last partial batch is kept unless ``drop_last=True``).

    Example::

        for xb, yb in batches((x_train, y_train), 64, seed=0):
            sess.run(train, {x: xb, y: yb})

    ``shard=(rank, size)``: this process's part of every global batch (see
    :class:`Batches`), e.g. ``shard=(comm.rank, comm.size)`` under ``mpirun``.
    """
    return Batches(arrays, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last,
                   shard=shard)
