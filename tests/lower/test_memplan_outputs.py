"""Fetched values are computed straight into the caller's output arrays (no arena copy)."""

import numpy as np
import pytest

import graphc as gc
from graphc.lower import ir

pytestmark = pytest.mark.needs_c


def _graph():
    rng = np.random.default_rng(3)
    with gc.Graph() as g:
        x = gc.placeholder((None, 5), dtype="float64", name="x")
        w = gc.variable(rng.standard_normal((5, 3)), name="w")
        h = gc.relu(x @ w) + 0.25
        y = gc.sum(h * h)
        new_w = w - 0.1 * gc.grad(y, [w])[0]
        step = gc.assign(w, new_w)
        h3 = gc.reshape(h, (-1, 3, 1))
    return g, x, w, h, y, new_w, step, h3


def test_fetched_values_are_written_in_place_and_match_numpy():
    g, x, w, h, y, new_w, step, h3 = _graph()
    X = np.random.default_rng(4).standard_normal((7, 5))
    fetches = [h, y, h, h3, x, w, new_w, step]
    sess_c, sess_n = gc.Session(g, backend="c"), gc.Session(g, backend="numpy")
    compiled = sess_c.compile(fetches)
    # h and y are computed into outs[0] / outs[1]; the repeated h and its reshape are copies
    lowered = compiled.executable.lowered
    stored = {s.buf.place.index for k in lowered.kernels
              for s in ir.walk(k.body + (k.epilogue.body if k.epilogue else []))
              if isinstance(s, ir.Store) and s.buf.place.kind == "out"}
    copied = {s.dst.place.index for s in lowered.finish
              if isinstance(s, ir.Copy) and s.dst.place.kind == "out"}
    assert {0, 1} <= stored and not {0, 1} & copied and {2, 3} <= copied
    for _ in range(3):  # the assigned value is also fetched: commits read it from outs
        got = sess_c.run(fetches, {x: X})
        ref = sess_n.run(fetches, {x: X})
        for a, e in zip(got[:-1], ref[:-1]):
            np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)
        assert got[-1] is None and ref[-1] is None
        np.testing.assert_allclose(sess_c.get_value(w), sess_n.get_value(w), rtol=1e-12)
    # the outputs are fresh arrays each run: an earlier result is not overwritten
    first = sess_c.run(h, {x: X})
    keep = first.copy()
    sess_c.run(h, {x: 2 * X})
    np.testing.assert_array_equal(first, keep)


def test_batch_size_change_with_direct_outputs():
    g, x, w, h, y, *_ = _graph()
    sess_c, sess_n = gc.Session(g, backend="c"), gc.Session(g, backend="numpy")
    rng = np.random.default_rng(5)
    for n in (4, 1, 33, 4):
        X = rng.standard_normal((n, 5))
        a, b = sess_c.run([h, y], {x: X}), sess_n.run([h, y], {x: X})
        np.testing.assert_allclose(a[0], b[0], rtol=1e-12)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-12)
