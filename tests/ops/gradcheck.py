"""Helpers shared by the op tests (exposed as fixtures by ``conftest.py``).

* :func:`run` builds a fresh graph with one placeholder per input array,
  applies a user function to the placeholders, runs it on a session of the
  chosen backend (NumPy reference by default) and returns NumPy arrays
  (static shape/dtype checked).
* :func:`assert_close` compares with the numerical contract's tolerances.
* :func:`gradcheck` compares ``gc.grad`` of a random projection
  ``sum(out * R)`` with central finite differences of the same forward run,
  in float64.
* :func:`for_backend` binds ``run`` and ``gradcheck`` to one backend; the
  ``helpers`` fixture of ``conftest.py`` is this, parametrized over backends.

The backend of the unbound functions is ``backend=`` if given, else the
environment variable ``GRAPHC_TEST_BACKEND``, else ``"numpy"``.
"""

from __future__ import annotations

import os

import numpy as np

import graphc as gc

#: Elementwise relative tolerances of the numerical contract.
RTOL = {"float32": 1e-5, "float64": 1e-10}
#: Norm-relative tolerances for matmul/conv/reductions.
NORM_TOL = {"float32": 1e-4, "float64": 1e-10}


def default_backend() -> str:
    """``GRAPHC_TEST_BACKEND`` or ``"numpy"``."""
    return os.environ.get("GRAPHC_TEST_BACKEND") or "numpy"


def _batch_flags(arrays, batch) -> list[bool]:
    if isinstance(batch, (list, tuple)):
        assert len(batch) == len(arrays)
        return [bool(b) for b in batch]
    return [bool(batch) and np.ndim(a) >= 1 for a in arrays]


def placeholders(arrays, batch=False) -> list[gc.Tensor]:
    """One placeholder per array; ``batch`` puts ``None`` as axis 0 (all or per array)."""
    out = []
    for a, b in zip(arrays, _batch_flags(arrays, batch)):
        a = np.asarray(a)
        shape = ((None,) + a.shape[1:]) if b else a.shape
        out.append(gc.placeholder(shape, dtype=a.dtype.name))
    return out


def check_static(t: gc.Tensor, value: np.ndarray) -> None:
    """The statically inferred shape/dtype agree with the run-time value."""
    assert value.ndim == len(t.shape), (t, value.shape)
    for want, got in zip(t.shape, value.shape):
        assert want is None or want == got, (t, value.shape)
    assert value.dtype == np.dtype(t.dtype), (t, value.dtype)


def run(fn, *arrays, batch=False, training=None, seed=0, return_graph=False, backend=None):
    """Build ``fn(*placeholders)`` in a new graph, run it, return the array(s).

    ``fn`` may return one tensor or a list/tuple of tensors.
    """
    arrays = [np.asarray(a) for a in arrays]
    with gc.Graph(seed=seed) as g:
        phs = placeholders(arrays, batch)
        out = fn(*phs)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    sess = gc.Session(g, backend=backend or default_backend())
    values = sess.run(outs, dict(zip(phs, arrays)), training=training)
    for t, v in zip(outs, values):
        check_static(t, v)
    result = values if isinstance(out, (list, tuple)) else values[0]
    return (result, g) if return_graph else result


def assert_close(actual, expected, dtype=None, norm=False, rtol=None, what="") -> None:
    """Contract tolerances: elementwise rtol (1e-5 / 1e-10), or a norm-relative
    check (1e-4 float32 / 1e-10 float64) when ``norm``."""
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    dtype = dtype or actual.dtype.name
    assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype}, expected {dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if norm:
        tol = rtol or NORM_TOL[dtype]
        err = np.linalg.norm((actual - expected).ravel())
        ref = np.linalg.norm(expected.ravel())
        assert err <= tol * max(ref, 1e-30), f"{what}: relative error {err / max(ref, 1e-30):.3g}"
        return
    tol = rtol or RTOL[dtype]
    # A tiny absolute floor (1e-3 of the relative tolerance, scaled by the data) only
    # matters for results that round to almost zero.
    atol = tol * 1e-3 * max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=tol, atol=atol,
                               err_msg=what)


def gradcheck(fn, *arrays, wrt=None, batch=False, eps=1e-6, rtol=1e-6, atol=1e-6, seed=0,
              training=None, backend=None):
    """Central finite-difference check of ``gc.grad`` in float64.

    Builds ``loss = sum(fn(*placeholders) * R)`` with a random ``R``, takes
    ``gc.grad(loss, inputs[wrt])`` and compares it with
    ``(loss(x + eps e_j) - loss(x - eps e_j)) / (2 eps)`` run through the
    same session. Float inputs are converted to float64; others (int labels)
    are fed unchanged and never differentiated. ``sess.step`` is pinned to 0
    so that random ops (dropout) see the same mask in every run.
    Returns ``(analytic_grads, graph)``.
    """
    arrays = [np.array(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f"
              else np.asarray(a) for a in arrays]
    if wrt is None:
        wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    rng = np.random.default_rng(seed + 12345)
    with gc.Graph(seed=seed) as g:
        phs = placeholders(arrays, batch)
        out = fn(*phs)
        assert out.dtype == "float64", out
        r = gc.placeholder(out.shape, dtype="float64", name="R")
        loss = gc.sum(out * r)
        grads = gc.grad(loss, [phs[i] for i in wrt])
    sess = gc.Session(g, backend=backend or default_backend())
    feed = dict(zip(phs, arrays))

    def run(fetches, feed):
        sess.step = 0
        return sess.run(fetches, feed, training=training)

    out_value = run(out, feed)  # its run-time shape fixes R's shape
    check_static(out, out_value)
    feed[r] = rng.uniform(-1.0, 1.0, size=out_value.shape)
    analytic = run(grads, feed)
    for k, i in enumerate(wrt):
        x = arrays[i]
        check_static(grads[k], analytic[k])
        assert analytic[k].shape == x.shape
        numeric = np.zeros_like(x)
        for j in np.ndindex(*x.shape):
            xp, xm = x.copy(), x.copy()
            xp[j] += eps
            xm[j] -= eps
            fp = run(loss, {**feed, phs[i]: xp})
            fm = run(loss, {**feed, phs[i]: xm})
            numeric[j] = (fp - fm) / (2 * eps)
        assert np.all(np.isfinite(analytic[k])), f"non-finite gradient for input {i}"
        np.testing.assert_allclose(analytic[k], numeric, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i} (shape {x.shape})")
    return analytic, g


def rand(rng: np.random.Generator, shape, dtype="float64", low=-2.0, high=2.0,
         away_from=None, margin=0.1) -> np.ndarray:
    """Uniform random data (never all zeros); ``away_from`` keeps values at least
    ``margin`` from each listed kink."""
    a = rng.uniform(low, high, size=shape)
    for k in away_from or ():
        close = np.abs(a - k) < margin
        a = np.where(close, k + np.where(a >= k, margin, -margin) * (1 + rng.uniform(size=shape)),
                     a)
    return a.astype(dtype)


def distinct(rng: np.random.Generator, shape, dtype="float64", gap=0.05) -> np.ndarray:
    """Random values with all pairwise gaps >= ``gap`` (no ties: max, maxpool)."""
    n = int(np.prod(shape, dtype=np.int64))
    vals = (np.arange(n) - n / 2) * gap * 2 + rng.uniform(0, gap / 2, size=n)
    return rng.permutation(vals).reshape(shape).astype(dtype)


class _Bound:
    """This module with ``run`` and ``gradcheck`` bound to one backend."""

    def __init__(self, module, backend: str) -> None:
        self._module = module
        self.backend = backend

    def __getattr__(self, name):
        return getattr(self._module, name)

    def run(self, *args, **kwargs):
        kwargs.setdefault("backend", self.backend)
        return self._module.run(*args, **kwargs)

    def gradcheck(self, *args, **kwargs):
        kwargs.setdefault("backend", self.backend)
        return self._module.gradcheck(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<op-test helpers on backend {self.backend!r}>"


def for_backend(backend: str) -> _Bound:
    """The helpers with ``run``/``gradcheck`` running on ``backend``."""
    import sys

    return _Bound(sys.modules[__name__], backend)
