"""NHWC convolution and 2x2 max-pooling kernels in NumPy, written for speed.

The building blocks of the bench's NumPy CNN (:class:`~graphc.tools.bench.models.NumpyCNN`),
the way a NumPy programmer writes a fast convolution: images in NHWC layout (channels
innermost), im2col as a strided window view copied into a preallocated column matrix,
then **one** BLAS call per convolution on 2-D arrays; the data gradient is one GEMM and
a col2im that adds ``kh * kw`` shifted slices (no ``np.add.at``); the filter gradient is
one GEMM; 2x2 max pooling is a 4-way ``np.maximum`` of strided views and its gradient
goes through a first-maximum mask (the same tie rule as graphc's ``max_pool2d``).

Filters stay in graphc's OIHW layout outside; :func:`filter_matrix` and
:func:`filter_from_matrix` convert to and from the ``(kh * kw * C, O)`` GEMM operand.

Example::

    >>> from collections.abc import Sequence

import numpy as np
    >>> from graphc.tools.bench.nhwc import filter_matrix, im2col
    >>> x = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)   # NHWC
    >>> w = np.ones((5, 3, 3, 3), np.float32)                                # OIHW
    >>> cols = np.empty((2 * 2 * 2, 27), np.float32)
    >>> y = im2col(x, 3, 3, cols) @ filter_matrix(w, np.empty((27, 5), np.float32))
    >>> y.shape                                 # (N * OH * OW, O), "valid" convolution
    (8, 5)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["CnnBuffers", "add_bias", "col2im", "filter_from_matrix", "filter_matrix", "filter_taps",
           "im2col", "max_pool2x2", "max_pool2x2_backward", "max_pool_quarters",
           "max_pool_quarters_backward"]


def filter_matrix(w: np.ndarray, out: np.ndarray) -> np.ndarray:
    """OIHW filters ``w`` as the ``(kh * kw * C, O)`` GEMM operand of :func:`im2col` (into ``out``).

    Example::

        >>> w = np.arange(6, dtype=np.float32).reshape(2, 3, 1, 1)
        >>> filter_matrix(w, np.empty((3, 2), np.float32)).tolist()
        [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
    """
    o, c, kh, kw = w.shape
    np.copyto(out.reshape(kh, kw, c, o), w.transpose(2, 3, 1, 0))
    return out


def filter_from_matrix(m: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The inverse of :func:`filter_matrix`: ``(kh * kw * C, O)`` back to OIHW ``out``.

    Example::

        >>> w = np.random.default_rng(0).random((4, 2, 3, 3), np.float32)
        >>> m = filter_matrix(w, np.empty((18, 4), np.float32))
        >>> bool((filter_from_matrix(m, np.empty_like(w)) == w).all())
        True
    """
    o, c, kh, kw = out.shape
    np.copyto(out, m.reshape(kh, kw, c, o).transpose(3, 2, 0, 1))
    return out


def im2col(xp: np.ndarray, kh: int, kw: int, out: np.ndarray, pooled: bool = False) -> np.ndarray:
    """The ``(N * OH * OW, kh * kw * C)`` column matrix of the (already padded) NHWC ``xp``.

    Stride 1, ``OH = H - kh + 1``; columns in ``(ky, kx, c)`` order, matching
    :func:`filter_matrix`; rows in ``(n, oy, ox)`` order, or with ``pooled`` in
    ``(dy, dx, n, py, px)`` order for the output pixel ``(n, 2 py + dy, 2 px + dx)``: the
    GEMM's result is then the four quarters of every 2x2 pooling window as four
    contiguous blocks (:func:`max_pool_quarters`). One copy of the strided window view
    into ``out`` (its innermost contiguous run is ``kw * C`` elements); with fewer than
    16 such elements (e.g. a 1-channel image), one copy per filter tap instead, whose
    runs are image rows.

    Example::

        >>> xp = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
        >>> im2col(xp, 2, 2, np.empty((4, 4), np.float32))[0].tolist()
        [0.0, 1.0, 3.0, 4.0]
        >>> im2col(xp, 2, 2, np.empty((4, 4), np.float32), pooled=True)[:, 0].tolist()
        [0.0, 1.0, 3.0, 4.0]
    """
    n, hp, wp, c = xp.shape
    oh, ow = hp - kh + 1, wp - kw + 1
    win = sliding_window_view(xp, (kh, kw), axis=(1, 2))    # (N, OH, OW, C, kh, kw), no copy
    if pooled:
        cols = out.reshape(2, 2, n, oh // 2, ow // 2, kh, kw, c)
        parts = [(cols[dy, dx], win[:, dy::2, dx::2]) for dy in (0, 1) for dx in (0, 1)]
    else:
        parts = [(out.reshape(n, oh, ow, kh, kw, c), win)]
    for dst, src in parts:
        if kw * c >= 16:
            np.copyto(dst, src.transpose(0, 1, 2, 4, 5, 3))
        else:
            for i in range(kh):
                for j in range(kw):
                    np.copyto(dst[:, :, :, i, j, :], src[:, :, :, :, i, j])
    return out


def col2im(gtaps: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Sum per-tap gradients back onto the padded NHWC image ``out`` (the adjoint of
    :func:`im2col`).

    ``gtaps`` is ``(kh, kw, N * OH * OW, C)``, tap-major: what one ``np.matmul`` of the
    output gradient ``(N * OH * OW, O)`` with the stacked per-tap filters
    ``(kh, kw, O, C)`` (:func:`filter_taps`) returns. ``out`` is zeroed, then each tap
    adds its contiguous slab to a shifted slice: ``kh * kw`` adds, no ``np.add.at``.

    Example::

        >>> g = np.ones((2, 2, 4, 1), np.float32)   # 2x2 filter, 1x2x2 output, 1 channel
        >>> col2im(g, np.empty((1, 3, 3, 1), np.float32))[0, :, :, 0].tolist()
        [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]
    """
    kh, kw = gtaps.shape[:2]
    n, hp, wp, c = out.shape
    oh, ow = hp - kh + 1, wp - kw + 1
    out[...] = 0
    for i in range(kh):
        for j in range(kw):
            out[:, i:i + oh, j:j + ow, :] += gtaps[i, j].reshape(n, oh, ow, c)
    return out


def filter_taps(w: np.ndarray, out: np.ndarray) -> np.ndarray:
    """OIHW filters ``w`` as ``(kh, kw, O, C)`` (into ``out``): the right operand of the
    data-gradient GEMM whose result :func:`col2im` takes.

    Example::

        >>> w = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
        >>> filter_taps(w, np.empty((2, 2, 1, 1), np.float32)).ravel().tolist()
        [0.0, 1.0, 2.0, 3.0]
    """
    np.copyto(out, w.transpose(2, 3, 0, 1))
    return out


def add_bias(r: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``r += bias`` per channel, in place, for NHWC data viewed with a long last axis
    (``width * C``: e.g. ``(N * H, W * C)``), so that the adds run along whole rows
    rather than ``C``-long pieces.

    Example::

        >>> r = np.zeros((2, 2, 2), np.float32)           # (N * H, W, C) = 2 rows of W=2, C=2
        >>> add_bias(r.reshape(2, 4), np.array([1, 2], np.float32)).tolist()
        [[1.0, 2.0, 1.0, 2.0], [1.0, 2.0, 1.0, 2.0]]
    """
    r += np.tile(bias, r.shape[-1] // len(bias))
    return r


def _quarters(a: np.ndarray) -> tuple[np.ndarray, ...]:
    """The four strided views of an NHWC array's 2x2 windows, row-major window order."""
    return a[:, 0::2, 0::2], a[:, 0::2, 1::2], a[:, 1::2, 0::2], a[:, 1::2, 1::2]


def max_pool2x2(r: np.ndarray, out: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """2x2 stride-2 max pooling of NHWC ``r`` (even H, W) into ``out`` (may be a view).

    The maximum of the window's four strided views, taken as two maxima: of the row
    pairs (into the scratch ``rows``, ``(N, H / 2, W, C)``, long contiguous runs), then
    of its column pairs.

    Example::

        >>> r = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
        >>> rows = np.empty((1, 2, 4, 1), np.float32)
        >>> max_pool2x2(r, np.empty((1, 2, 2, 1), np.float32), rows)[0, :, :, 0].tolist()
        [[5.0, 7.0], [13.0, 15.0]]
    """
    np.maximum(r[:, 0::2], r[:, 1::2], out=rows)
    np.maximum(rows[:, :, 0::2], rows[:, :, 1::2], out=out)
    return out


def max_pool2x2_backward(r: np.ndarray, p: np.ndarray, gp: np.ndarray, out: np.ndarray,
                         hit: np.ndarray, taken: np.ndarray) -> np.ndarray:
    """Gradient of :func:`max_pool2x2` into ``out`` (``r``'s shape): each ``gp`` element
    goes to the first maximum of its window in row-major order, as graphc does.

    ``p`` is the pooled output; ``hit`` and ``taken`` are boolean scratch buffers of its
    shape.

    Example::

        >>> r = np.array([[[[1.0], [3.0]], [[3.0], [2.0]]]], np.float32)   # tie: first wins
        >>> p = max_pool2x2(r, np.empty((1, 1, 1, 1), np.float32), np.empty((1, 1, 2, 1), np.float32))
        >>> hit, taken = np.empty(p.shape, bool), np.empty(p.shape, bool)
        >>> g = max_pool2x2_backward(r, p, np.ones_like(p), np.empty_like(r), hit, taken)
        >>> g[0, :, :, 0].tolist()
        [[0.0, 1.0], [0.0, 0.0]]
    """
    _route_to_first_max(_quarters(r), _quarters(out), p, gp, hit, taken)
    return out


def max_pool_quarters(r4: np.ndarray, out: np.ndarray) -> np.ndarray:
    """2x2 max pooling of an activation stored as its four window quarters ``r4``
    (``(4, N, PH, PW, C)``, from ``im2col(..., pooled=True)``) into NHWC ``out``.

    Example::

        >>> r = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
        >>> r4 = np.stack([r[:, 0::2, 0::2], r[:, 0::2, 1::2], r[:, 1::2, 0::2], r[:, 1::2, 1::2]])
        >>> max_pool_quarters(r4, np.empty((1, 2, 2, 1), np.float32))[0, :, :, 0].tolist()
        [[5.0, 7.0], [13.0, 15.0]]
    """
    np.maximum(r4[0], r4[1], out=out)
    np.maximum(out, r4[2], out=out)
    np.maximum(out, r4[3], out=out)
    return out


def max_pool_quarters_backward(r4: np.ndarray, p: np.ndarray, gp: np.ndarray, out4: np.ndarray,
                               hit: np.ndarray, taken: np.ndarray) -> np.ndarray:
    """Gradient of :func:`max_pool_quarters` into ``out4`` (``r4``'s quarter layout), by
    the first-maximum rule of :func:`max_pool2x2_backward`.

    Example::

        >>> r4 = np.array([1.0, 3.0, 3.0, 2.0], np.float32).reshape(4, 1, 1, 1, 1)
        >>> p = max_pool_quarters(r4, np.empty((1, 1, 1, 1), np.float32))
        >>> hit, taken = np.empty(p.shape, bool), np.empty(p.shape, bool)
        >>> max_pool_quarters_backward(r4, p, np.ones_like(p), np.empty_like(r4), hit,
        ...                            taken).ravel().tolist()
        [0.0, 1.0, 0.0, 0.0]
    """
    _route_to_first_max(tuple(r4), tuple(out4), p, gp, hit, taken)
    return out4


def _route_to_first_max(rq: tuple, gq: tuple, p: np.ndarray, gp: np.ndarray, hit: np.ndarray,
                        taken: np.ndarray) -> None:
    """``gq[k] = gp`` where quarter ``rq[k]`` is the window's first maximum, else 0."""
    taken[...] = False
    for k, (r, g) in enumerate(zip(rq, gq)):
        if k < 3:
            np.equal(r, p, out=hit)
            np.greater(hit, taken, out=hit)             # a maximum, and none before it
            np.logical_or(taken, hit, out=taken)
        else:
            np.logical_not(taken, out=hit)             # the last candidate: what is left
        np.multiply(gp, hit, out=g)


class CnnBuffers:
    """The bench CNN's preallocated NHWC activations, column matrices and gradients.

    For batch ``n``, square images of side ``side`` and the filter and dense-weight
    ``shapes`` ``[(c1, c0, kh, kw), (c2, c1, kh, kw), (features, classes)]``: conv +
    ReLU + 2x2 pool, twice, then dense (see :class:`~graphc.tools.bench.models.NumpyCNN`).
    The pooled first layer is written straight into the interior of its zero-padded
    buffer ``p1p``, the next convolution's input (``p1`` and ``p1w`` are views of it).

    Example::

        >>> b = CnnBuffers(2, 8, [(4, 1, 3, 3), (8, 4, 3, 3), (32, 10)])
        >>> b.cols1.shape, b.cols2.shape, b.p1p.shape, b.p2.shape
        ((128, 9), (32, 36), (2, 6, 6, 4), (2, 2, 2, 8))
    """

    def __init__(self, n: int, side: int, shapes: Sequence[tuple[int, ...]]) -> None:
        (c1, c0, kh, kw), (c2, *_), (features, classes) = shapes
        e, f32, h2, h4, oy, ox = np.empty, np.float32, side // 2, side // 4, kh // 2, kw // 2
        self.xp = np.zeros((n, side + kh - 1, side + kw - 1, c0), f32)    # padded input
        self.cols1 = e((n * side * side, kh * kw * c0), f32)
        self.r1 = e((n * side * side, c1), f32)             # conv1, rows by pool quarter
        self.p1p = np.zeros((n, h2 + kh - 1, h2 + kw - 1, c1), f32)       # pool1, padded
        self.p1 = self.p1p[:, oy:oy + h2, ox:ox + h2]
        self.p1w = self.p1p.reshape(n, h2 + kh - 1, -1)[:, oy:oy + h2, ox * c1:(ox + h2) * c1]
        self.cols2 = e((n * h2 * h2, kh * kw * c1), f32)
        self.r2 = e((n * h2 * h2, c2), f32)                               # conv2
        self.rows2 = e((n, h4, h2, c2), f32)
        self.p2 = e((n, h4, h4, c2), f32)                                 # pool2 = features
        self.z, self.dz = e((n, classes), f32), e((n, classes), f32)      # logits, gradient
        self.rowmax, self.rowsum, self.rows = e(n, f32), e(n, f32), np.arange(n)
        self.ones = np.ones(n * side * side, f32)                         # bias gradients
        self.g_f = e((n, features), f32)
        self.g_r2 = e((n * h2 * h2, c2), f32)
        self.g_taps = e((kh, kw, n * h2 * h2, c1), f32)
        self.g_p1p = e(self.p1p.shape, f32)
        self.g_p1 = self.g_p1p[:, oy:oy + h2, ox:ox + h2]
        self.g_r1 = e((n * side * side, c1), f32)
        self.hit2, self.taken2 = e(self.p2.shape, bool), e(self.p2.shape, bool)
        self.hit1, self.taken1 = e(self.p1.shape, bool), e(self.p1.shape, bool)
        self.pos1, self.pos2 = e(self.p1.shape, bool), e(self.p2.shape, bool)
