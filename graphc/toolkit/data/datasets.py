"""Small datasets: scikit-learn's bundled digits and synthetic problems.

Nothing downloads: ``load_digits`` reads the copy shipped inside scikit-learn
(``pip install graphc[train]``), the rest are generated from a seed.
Features are float32, class labels int64.

Example::

    from graphc import data
    x, y = data.load_digits()            # (1797, 1, 8, 8) in [0, 1], labels 0..9
    x, y = data.cross_images(500, seed=0)
    x, y = data.two_moons(400, noise=0.1, seed=0)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._args import bad_value

__all__ = [
    "CROSS",
    "cross_images",
    "has_cross",
    "load_digits",
    "regression_line",
    "spirals",
    "two_moons",
    "xor",
]

#: the 3x3 plus-shaped pattern that :func:`cross_images` plants
CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 handwritten digits bundled with scikit-learn (1797 images).

    Returns ``(images, labels)``: float32 ``(N, 1, 8, 8)`` scaled to [0, 1]
    (the raw values are 0..16) and int64 labels 0..9.

    Example::

        x, y = load_digits()
        x.shape, x.max(), y[:5]     # (1797, 1, 8, 8), 1.0, [0 1 2 3 4]
    """
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as exc:
        raise ImportError("load_digits needs scikit-learn (it reads the copy bundled with it): "
                          "pip install 'graphc[train]'") from exc
    bunch = _sk_load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None, :, :]
    return images, np.asarray(bunch.target, dtype=np.int64)


def xor(n: int | None = None, noise: float = 0.0, seed: int = 0
        ) -> tuple[np.ndarray, np.ndarray]:
    """The XOR problem: ``x`` in {0, 1}^2, label ``x0 xor x1``.

    With ``n=None`` the four corners in order; otherwise ``n`` random corners
    with Gaussian ``noise`` added.

    Example::

        x, y = xor()          # x: [[0,0],[0,1],[1,0],[1,1]], y: [0, 1, 1, 0]
        x, y = xor(200, noise=0.1, seed=0)
    """
    if n is None:
        bits = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    else:
        bits = np.random.default_rng(seed).integers(0, 2, size=(int(n), 2))
    x = bits.astype(np.float32)
    if noise:
        x += np.random.default_rng(seed + 1).normal(0.0, noise, x.shape).astype(np.float32)
    return x, (bits[:, 0] ^ bits[:, 1]).astype(np.int64)


def _square(images: Any) -> np.ndarray:
    a = np.asarray(images)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim not in (2, 3):
        raise bad_value(f"has_cross: expected (H, W), (N, H, W) or (N, 1, H, W) images, "
                        f"got shape {a.shape}")
    return a > 0.5


def _cross_map(b: np.ndarray) -> np.ndarray:
    """Boolean map over the centres where all five plus pixels are on."""
    c = b[..., 1:-1, 1:-1]
    return c & b[..., :-2, 1:-1] & b[..., 2:, 1:-1] & b[..., 1:-1, :-2] & b[..., 1:-1, 2:]


def has_cross(images: Any) -> np.ndarray | bool:
    """Whether each image contains the plus ``CROSS`` (its 5 pixels all on, > 0.5).

    The four corner pixels of the 3x3 window may be anything. Accepts one
    ``(H, W)`` image (returns a bool) or a batch ``(N, H, W)``/``(N, 1, H, W)``.

    Example::

        img = np.zeros((6, 6)); img[1:4, 2] = 1; img[2, 1:4] = 1
        has_cross(img)        # True
    """
    b = _square(images)
    found = _cross_map(b).any(axis=(-2, -1))
    return bool(found) if b.ndim == 2 else found


def cross_images(n: int, size: int = 6, seed: int = 0, density: float = 0.35
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Random binary ``size x size`` images; label 1 where a 3x3 plus ``+`` is present.

    Half the images (``n // 2``, in random order) get a cross at a random
    position; negatives are random noise with every accidental cross broken
    (turning pixels off never creates a cross), so ``has_cross`` agrees with
    every label. Positives keep the noise's pixel count (pixels outside the
    planted cross are switched off to compensate), so counting pixels does
    not solve the task. Returns float32 ``(n, 1, size, size)`` and int64 labels.

    Example::

        x, y = cross_images(100, seed=0)
        assert (has_cross(x) == (y == 1)).all()
    """
    if size < 3:
        raise bad_value(f"cross_images: size must be at least 3, got {size}")
    rng = np.random.default_rng(seed)
    n = int(n)
    img = rng.random((n, size, size)) < density
    for i, r, c in zip(*np.nonzero(_cross_map(img))):  # break accidental crosses
        img[i, r + 1, c + 1] = False
    labels = np.zeros(n, dtype=np.int64)
    labels[rng.permutation(n)[: n // 2]] = 1
    for i in np.flatnonzero(labels):
        r, c = rng.integers(0, size - 2, size=2)
        window = img[i, r:r + 3, c:c + 3]
        added = int((CROSS & ~window).sum())
        window |= CROSS
        mask = np.zeros((size, size), dtype=bool)
        mask[r:r + 3, c:c + 3] = CROSS
        others = np.flatnonzero(img[i] & ~mask)
        off = rng.choice(others, size=min(added, len(others)), replace=False)
        img[i].flat[off] = False
    return img[:, None].astype(np.float32), labels


def two_moons(n: int = 200, noise: float = 0.1, seed: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (as scikit-learn's ``make_moons``), shuffled.

    Example::

        x, y = two_moons(400, noise=0.1, seed=0)     # x: (400, 2) float32, y in {0, 1}
    """
    rng = np.random.default_rng(seed)
    n_out = int(n) // 2
    n_in = int(n) - n_out
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    x = np.concatenate([np.stack([np.cos(t_out), np.sin(t_out)], 1),
                        np.stack([1 - np.cos(t_in), 0.5 - np.sin(t_in)], 1)])
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    if noise:
        x = x + rng.normal(0.0, noise, x.shape)
    perm = rng.permutation(len(y))
    return x[perm].astype(np.float32), y[perm]


def spirals(n: int = 200, noise: float = 0.1, turns: float = 1.5, classes: int = 2,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``classes`` interleaved Archimedean spirals in 2-D (radius up to 1), shuffled.

    Example::

        x, y = spirals(300, classes=3, seed=0)       # y in {0, 1, 2}
    """
    rng = np.random.default_rng(seed)
    y = np.arange(int(n)) % classes
    r = rng.random(int(n))
    theta = r * turns * 2 * np.pi + y * (2 * np.pi / classes)
    x = np.stack([r * np.cos(theta), r * np.sin(theta)], 1)
    if noise:
        x = x + rng.normal(0.0, noise * 0.1, x.shape)
    perm = rng.permutation(len(y))
    return x[perm].astype(np.float32), y[perm].astype(np.int64)


def regression_line(n: int = 100, slope: float = 2.0, intercept: float = 1.0,
                    noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points on ``y = slope * x + intercept`` plus Gaussian noise, ``x`` in [-1, 1].

    Returns float32 ``x`` and ``y`` of shape ``(n, 1)``.

    Example::

        x, y = regression_line(50, slope=3.0, intercept=-1.0, noise=0.0)
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (int(n), 1))
    y = slope * x + intercept + (rng.normal(0.0, noise, x.shape) if noise else 0.0)
    return x.astype(np.float32), y.astype(np.float32)
