"""lower/views.py: slices that only elementwise nodes read become strided views (no copy
kernel); loops, matmul epilogues and reduction prologues read through offset and strides.
Concatenations whose parts only they read get those parts stored straight into them."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc

pytestmark = pytest.mark.needs_c


def test_strided_reads_in_loops_epilogues_and_prologues_match_numpy():
    rng = np.random.default_rng(0)
    with gc.Graph() as g:
        z = gc.placeholder((None, 3, 8), name="z")
        w = gc.placeholder((6, 8), name="w")
        i, f, gg, o = gc.split(z, 4, axis=-1)                   # four (N, 3, 2) views
        gates = gc.sigmoid(i) * gc.tanh(gg) + f * o
        every_other = z[:, 1:, ::2] * 2.0                       # steps and offsets
        prologue = gc.sum(gc.square(z[:, :, 5:7]), axis=-1)     # a reduction's prologue
        epilogue = gc.matmul(z[:, 0, :], w, transpose_b=True) + z[:, 0, 2:8]   # epilogue, int index
        fetched = z[:, :, 1:2]                                  # fetched: stays a copy
    zv, wv = rng.normal(size=(5, 3, 8)).astype("f"), rng.normal(size=(6, 8)).astype("f")
    fetches = [gates, every_other, prologue, epilogue, fetched]
    sess = gc.Session(g, backend="c")
    got = sess.run(fetches, {z: zv, w: wv})
    s = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    want = [s(zv[..., 0:2]) * np.tanh(zv[..., 4:6]) + zv[..., 2:4] * zv[..., 6:8],
            zv[:, 1:, ::2] * 2, (zv[:, :, 5:7] ** 2).sum(-1), zv[:, 0] @ wv.T + zv[:, 0, 2:8],
            zv[:, :, 1:2]]
    for have, expect in zip(got, want):
        np.testing.assert_allclose(have, expect, rtol=1e-5, atol=1e-6)
    kinds = [k["kind"] for k in sess.compile(fetches).kernels]
    # copied: the matmul's operand z[:, 0, :] and the fetched slice
    assert kinds.count("slice") == 2, kinds


def test_the_debug_build_keeps_the_copies():
    with gc.Graph() as g:
        z = gc.placeholder((None, 4), name="z")
        a, b = gc.split(z, 2, axis=-1)
        y = a * b
    sess = gc.Session(g, backend="c", check_numerics=True)
    assert [k["kind"] for k in sess.compile(y).kernels].count("slice") == 2
    np.testing.assert_allclose(sess.run(y, {z: np.arange(8.0, dtype="f").reshape(2, 4)}),
                               [[0, 3], [24, 35]])


def test_parts_stored_straight_into_their_concatenation_match_numpy():
    rng = np.random.default_rng(1)
    with gc.Graph() as g:
        a = gc.placeholder((None, 3, 4), name="a")
        b = gc.placeholder((None, 3, 2), name="b")
        middle = gc.concat([gc.tanh(b), b * a[:, :, :2]], axis=1)        # in place, (N, 6, 2)
        gates = gc.concat([gc.sigmoid(a), a * 3.0, gc.square(b)], axis=-1)          # in place
        shared = a + 1.0
        copied = gc.concat([shared, shared * shared], axis=-1)   # `shared` read twice: copied
        fetched_part = b * 2.0
        with_fetched = gc.concat([fetched_part, b - 1.0], axis=-1)  # a fetched part: copied
        doubled = gates * 2.0
    av, bv = rng.normal(size=(5, 3, 4)).astype("f"), rng.normal(size=(5, 3, 2)).astype("f")
    fetches = [gates, doubled, copied, with_fetched, fetched_part, middle]
    sess = gc.Session(g, backend="c")
    got = sess.run(fetches, {a: av, b: bv})
    s = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    gates_np = np.concatenate([s(av), av * 3, bv ** 2], -1)
    want = [gates_np, gates_np * 2, np.concatenate([av + 1, (av + 1) ** 2], -1),
            np.concatenate([bv * 2, bv - 1], -1), bv * 2,
            np.concatenate([np.tanh(bv), bv * av[:, :, :2]], 1)]
    for have, expect in zip(got, want):
        np.testing.assert_allclose(have, expect, rtol=1e-5, atol=1e-6)
    compiled = sess.compile(fetches)
    source = compiled.source
    concats = [k["name"] for k in compiled.kernels if k["kind"] == "concat"]
    empty = [n for n in concats if f"static void {n}(const gc_ctx *g) {{\n}}" in source]
    assert len(concats) == 4 and len(empty) == 2, (concats, empty)
