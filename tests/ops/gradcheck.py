"""The op-case harness of ``tests/ops``: ``conftest.py`` loads this file by path as the
module ``graphc_tests_ops_gradcheck`` (test modules import it by that name) and runs
cases through its ``check_op`` fixture.

An op test is a :class:`Case`: the op's graph function, an independent NumPy formula
written in the test module (never the op's own ``reference``) and one :class:`In`
recipe per input. :func:`case` wraps it in a ``pytest.param`` whose marks say what
runs on the compiled backends (``on_c``, see ``conftest.py``). One case checks:

* on the NumPy backend (:func:`check_numpy`): the forward value of every element in
  float32 and float64 against the formula (the numerical contract: 1e-10 relative in
  float64; 1e-5 elementwise in float32, 1e-4 relative to the output's norm for
  ``norm`` cases: matmul, conv, reductions), the static shape and dtype, every batch
  size of :data:`BATCHES` when an input has the batch axis ``None``; then ``gc.grad``
  of ``sum(out * R)`` (random ``R``) against central finite differences in float64
  (:func:`finite_differences`), or against the case's ``grad_ref`` formula where the
  data sits on purpose on a kink or a tie, and the float32 gradient (it must stay
  float32) against the float64 one;
* on a compiled backend (:class:`CompiledGroup`): the same forward checks, and the
  float64 and float32 gradients against the NumPy backend's (which the finite
  differences vouch for), all fetched together from ONE compiled fetch set that runs
  every batch size of :data:`BATCHES` without recompiling. Cases marked with the same
  group share that fetch set (compiles dominate the cost); when a shared fetch set
  fails, each case reruns alone, so a failure always names its op.

Data are random (seeded by the case name), never zero, exactly representable in
float32 (both dtypes see the same values), kept ``margin`` away from the ``kinks``
of each input; ties appear only with the ``int`` kind, where they are the point.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable

import numpy as np
import pytest

import graphc as gc

DTYPES = ("float32", "float64")
#: Elementwise relative tolerances of the numerical contract.
RTOL = {"float32": 1e-5, "float64": 1e-10}
#: Norm-relative tolerances (matmul, conv, reductions; every gradient on a compiled backend).
NORM_TOL = {"float32": 1e-4, "float64": 1e-10}
#: Batch sizes a ``None`` axis takes: forward runs (and compiled runs, on one fetch set).
BATCHES = (1, 7)
#: Batch size of the finite-difference check (> 1: broadcasting across rows is checked).
FD_BATCH = 2


# -- inputs ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class In:
    """Recipe of one input: ``shape`` (``None``: the batch axis), value range and kind.

    ``dtype="float"`` follows the run's float dtype; any other dtype is fixed. Kinds:
    ``uniform`` in [low, high) moved ``margin`` away from each of ``kinks``;
    ``nonzero`` (|v| in [low, high), random sign); ``distinct`` (pairwise gaps, no
    ties); ``int`` (integers in [low, high): zeros and ties, on purpose); ``bool``;
    ``probs`` (positive rows summing to 1 over the last axis); ``nan`` (uniform with
    about one NaN in six). ``diff=False`` keeps a float input out of the gradient.
    """

    shape: tuple
    low: float = -2.0
    high: float = 2.0
    kind: str = "uniform"
    dtype: str = "float"
    kinks: tuple = ()
    margin: float = 0.1
    diff: bool = True

    def dtype_for(self, dtype: str) -> str:
        return dtype if self.dtype == "float" else self.dtype

    def data(self, rng: np.random.Generator, batch: int | None) -> np.ndarray:
        shape = tuple(batch if d is None else d for d in self.shape)
        if self.kind == "uniform":
            a = rng.uniform(self.low, self.high, size=shape)
            for k in self.kinks:
                near = np.abs(a - k) < self.margin
                away = k + np.where(a >= k, 1.0, -1.0) * self.margin * (1 + rng.uniform(size=shape))
                a = np.where(near, away, a)
        elif self.kind == "nonzero":
            a = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(self.low, self.high, size=shape)
        elif self.kind == "distinct":
            n = int(np.prod(shape, dtype=np.int64))
            slots = rng.permutation(n) + rng.uniform(0.2, 0.8, size=n)
            a = (self.low + (self.high - self.low) * slots / max(n, 1)).reshape(shape)
        elif self.kind == "int":
            a = rng.integers(int(self.low), int(self.high), size=shape)
        elif self.kind == "bool":
            a = rng.uniform(size=shape) < 0.5
        elif self.kind == "probs":
            a = rng.uniform(0.1, 1.0, size=shape)
            a = a / a.sum(axis=-1, keepdims=True)
        elif self.kind == "nan":
            a = rng.uniform(self.low, self.high, size=shape)
            a[rng.uniform(size=shape) < 1 / 6] = np.nan
        else:
            raise ValueError(f"unknown input kind {self.kind!r}")
        if self.dtype == "float":  # the same values in float32 and float64
            return np.asarray(a, np.float64).astype(np.float32).astype(np.float64)
        return np.asarray(a).astype(self.dtype)


# -- cases ----------------------------------------------------------------------------------

@dataclasses.dataclass(eq=False)
class Case:
    """One op under test; see the module docstring. ``ref(*inputs)`` gets float64 copies
    of the float inputs (others unchanged) and returns the expected array (or a list, one
    per output); ``ref=None`` only for compositions whose parts are cases of their own
    (their forward is then compared between backends, their gradient as usual).
    ``grad_ref(*inputs, *R)`` returns the expected gradient of
    ``sum(out * R)`` for each differentiated input (used instead of finite differences).
    ``out_dtype`` fixes the float outputs' dtype (default: the run's); ``fd`` overrides
    the finite differences' ``eps``/``rtol``/``atol``."""

    name: str
    fn: Callable
    ref: Callable | None
    inputs: tuple
    norm: bool = False
    grad: bool = True
    grad_ref: Callable | None = None
    out_dtype: str | None = None
    training: bool | None = None
    fd: dict = dataclasses.field(default_factory=dict)

    @property
    def batched(self) -> bool:
        return any(d is None for i in self.inputs for d in i.shape)

    @property
    def run_dtypes(self) -> tuple:
        """The float dtypes to run (one pass when no input follows the run's dtype)."""
        return DTYPES if any(i.dtype == "float" for i in self.inputs) else DTYPES[-1:]

    @property
    def wrt(self) -> list[int]:
        """The differentiated inputs: float ones (following the run's dtype) unless excluded."""
        if not self.grad:
            return []
        return [k for k, i in enumerate(self.inputs) if i.dtype == "float" and i.diff]

    def data(self, batch: int | None, salt: int = 0) -> list[np.ndarray]:
        seed = zlib.crc32(f"{self.name}/{batch}/{salt}".encode())
        rng = np.random.default_rng(seed)
        return [i.data(rng, batch) for i in self.inputs]

    def args(self, arrays) -> list[np.ndarray]:
        """What the formulas get: float64 copies of float inputs, others unchanged."""
        return [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]

    def expected(self, arrays) -> list[np.ndarray]:
        with np.errstate(all="ignore"):
            out = self.ref(*self.args(arrays))
        return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]

    def expected_dtype(self, value: np.ndarray, dtype: str) -> np.dtype:
        if value.dtype.kind == "f":
            return np.dtype(self.out_dtype or dtype)
        return value.dtype


def case(name: str, fn: Callable, ref: Callable, *inputs: In, c: dict | None = None,
         marks=(), **options) -> pytest.param:
    """A :class:`Case` as a ``pytest.param`` with id ``name`` and its marks.

    ``c`` holds the keyword arguments of its ``on_c`` mark (``group``: the shared
    compiled fetch set, default the test module's; ``grad``: compare gradients there too,
    default True; ``quick``: the compiled variant is not ``slow``; ``xfail``: why the
    compiled backend cannot run it yet); ``c=False``: NumPy only. See conftest.py.
    """
    marks = list(marks) if isinstance(marks, (list, tuple)) else [marks]
    if c is not False:
        marks.append(pytest.mark.on_c(**(c or {})))
    return pytest.param(Case(name, fn, ref, tuple(inputs), **options), id=name, marks=marks)


def quick_on_c(params: list, *names: str) -> list:
    """``params`` with the ``on_c`` mark of the cases named ``names`` made ``quick``: their
    compiled variants stay in the quick subset (``-m "not slow"``)."""
    missing = set(names) - {p.id for p in params}
    assert not missing, f"no cases named {sorted(missing)}"

    def marks(p):
        return [pytest.mark.on_c(**{**m.kwargs, "quick": True}) if m.name == "on_c" and p.id in names
                else m for m in p.marks]

    return [pytest.param(*p.values, marks=marks(p), id=p.id) for p in params]


# -- comparisons ----------------------------------------------------------------------------

def check_static(t: gc.Tensor, value: np.ndarray, what: str) -> None:
    """The statically inferred shape/dtype agree with the run-time value."""
    assert value.ndim == len(t.shape), f"{what}: static shape {t.shape}, value {value.shape}"
    for want, got in zip(t.shape, value.shape):
        assert want is None or want == got, f"{what}: static shape {t.shape}, value {value.shape}"
    assert value.dtype == np.dtype(t.dtype), f"{what}: static dtype {t.dtype}, value {value.dtype}"


def assert_close(actual, expected, dtype: str, norm: bool = False, what: str = "") -> None:
    """The contract's tolerances for ``dtype``: elementwise relative (with an absolute
    floor of 1% of the tolerance times the output's scale, for results that round to
    almost zero), or relative to the norm when ``norm``. NaN/inf must sit where expected;
    non-floats are exact."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    if actual.dtype.kind not in "fc" or expected.dtype.kind not in "fc":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    finite = np.isfinite(e)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg=f"{what}: NaN positions")
    np.testing.assert_array_equal(a[np.isinf(e)], e[np.isinf(e)], err_msg=f"{what}: infinities")
    a, e = a[finite], e[finite]
    if norm:
        err, ref = np.linalg.norm(a - e), max(np.linalg.norm(e), 1e-30)  # 1e-30: zero, in float32
        assert err <= NORM_TOL[dtype] * ref, f"{what}: norm-relative error {err / ref:.3g}"
        return
    scale = max(1.0, float(np.max(np.abs(e), initial=0.0)))
    np.testing.assert_allclose(a, e, rtol=RTOL[dtype], atol=RTOL[dtype] * 0.01 * scale, err_msg=what)


def finite_differences(loss: Callable[[list], float], arrays: list, k: int, eps: float) -> np.ndarray:
    """Central differences of ``loss(arrays)`` w.r.t. every element of ``arrays[k]``."""
    x = arrays[k]
    out = np.zeros_like(x)
    for j in np.ndindex(*x.shape):
        args = list(arrays)
        for sign in (1, -1):
            moved = x.copy()
            moved[j] += sign * eps
            args[k] = moved
            out[j] += sign * loss(args)
    return out / (2 * eps)


# -- building and running a case ------------------------------------------------------------

@dataclasses.dataclass
class Built:
    """A case built once in a graph for one dtype: placeholders, outputs and (optionally)
    the gradient of ``sum(out * R)`` with its ``R`` placeholders."""

    case: Case
    dtype: str
    phs: list
    outs: list
    rs: list
    grads: list

    @property
    def fetches(self) -> list:
        return self.outs + self.grads

    def feed(self, arrays, r_arrays) -> dict:
        feed = {p: a.astype(p.dtype) for p, a in zip(self.phs, arrays)}
        feed.update({r: a.astype(self.dtype) for r, a in zip(self.rs, r_arrays)})
        return feed


def build(c: Case, dtype: str, grads: bool) -> Built:
    """Build ``c`` in the current graph for ``dtype``."""
    phs = [gc.placeholder(i.shape, i.dtype_for(dtype), name=f"{c.name}:in{k}")
           for k, i in enumerate(c.inputs)]
    out = c.fn(*phs)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    rs, gs = [], []
    floats = [o for o in outs if o.dtype in DTYPES]
    if grads and c.wrt and floats:
        rs = [gc.placeholder(o.shape, o.dtype, name=f"{c.name}:R{k}") for k, o in enumerate(floats)]
        loss = gc.sum(floats[0] * rs[0])
        for o, r in zip(floats[1:], rs[1:]):
            loss = loss + gc.sum(o * r)
        gs = gc.grad(loss, [phs[k] for k in c.wrt])
    return Built(c, dtype, phs, outs, rs, gs)


def r_data(c: Case, batch: int | None) -> Callable[[list], list[np.ndarray]]:
    """The projections ``R`` of a case's float outputs (float32-exact), given the outputs."""
    def make(outs) -> list[np.ndarray]:
        rng = np.random.default_rng(zlib.crc32(f"{c.name}/R/{batch}".encode()))
        shapes = [tuple(batch if d is None else d for d in o.shape) for o in outs if o.dtype in DTYPES]
        return [rng.uniform(-1, 1, size=s).astype(np.float32).astype(np.float64) for s in shapes]
    return make


def run(sess: gc.Session, fetches, feed, training):
    """One run with the step pinned to 0 (dropout masks are those of step 0)."""
    sess.step = 0
    return sess.run(fetches, feed, training=training)


def label(c: Case, backend: str, dtype: str, batch) -> str:
    """How assertion messages name a check: the case (op) first."""
    return f"{c.name} [{backend}, {dtype}" + (f", batch {batch}]" if batch is not None else "]")


def check_forward(b: Built, values: list, arrays: list, backend: str, batch, numpy_values=None) -> None:
    """Every output against the formula, with its static shape and expected dtype (for a
    case without formula: the NumPy backend's ``numpy_values``, if given)."""
    c = b.case
    if c.ref is None:
        for k, (t, v) in enumerate(zip(b.outs, values)):
            what = f"{label(c, backend, b.dtype, batch)} output {k} vs the NumPy backend"
            check_static(t, v, what)
            if numpy_values is not None:
                assert_close(v, numpy_values[k], b.dtype, True, what)
        return
    expected = c.expected(arrays)
    assert len(expected) == len(b.outs), f"{c.name}: the formula gives {len(expected)} outputs"
    for k, (t, v, e) in enumerate(zip(b.outs, values, expected)):
        what = label(c, backend, b.dtype, batch) + (f" output {k}" if len(b.outs) > 1 else "")
        check_static(t, v, what)
        want = c.expected_dtype(e, b.dtype)
        assert v.dtype == want, f"{what}: dtype {v.dtype}, expected {want}"
        assert_close(v, e, v.dtype.name if v.dtype.kind == "f" else b.dtype, c.norm, what)


def check_grads(b: Built, values: list, expected: list, backend: str, batch, against: str,
                fd: dict | None = None) -> None:
    """Gradients: static shape and dtype (the run's), finite, and close to ``expected``:
    norm-relative with the dtype's tolerance, or ``fd``'s rtol/atol (finite differences)."""
    c = b.case
    for k, t, v, e in zip(c.wrt, b.grads, values, expected):
        what = f"{label(c, backend, b.dtype, batch)} d/d(input {k}) vs {against}"
        check_static(t, v, what)
        assert v.dtype == np.dtype(b.dtype), f"{what}: gradient dtype {v.dtype}"
        assert np.all(np.isfinite(v)), f"{what}: non-finite gradient"
        e = np.asarray(e, np.float64)
        assert v.shape == e.shape, f"{what}: gradient shape {v.shape}, expected {e.shape}"
        if fd is None:
            assert_close(v, e, b.dtype, True, what)
        else:
            np.testing.assert_allclose(v, e, rtol=fd.get("rtol", 1e-6), atol=fd.get("atol", 1e-6),
                                       err_msg=what)


def check_numpy(c: Case) -> None:
    """The NumPy backend: forward against the formula in each dtype and batch size; the
    float64 gradient against finite differences (at :data:`FD_BATCH`) or against
    ``grad_ref`` (at each batch size: that data has the ties), and the float32 gradient
    against the float64 one."""
    for dtype in c.run_dtypes:
        with gc.Graph() as g:
            b = build(c, dtype, grads=False)
        sess = gc.Session(g, backend="numpy")
        for n in BATCHES if c.batched else (None,):
            arrays = c.data(n)
            check_forward(b, run(sess, b.outs, b.feed(arrays, []), c.training), arrays, "numpy", n)
    if not c.wrt:
        return
    built = {}
    for dtype in sorted(c.run_dtypes, reverse=True):  # float64 first
        with gc.Graph() as g:
            built[dtype] = build(c, dtype, grads=True), gc.Session(g, backend="numpy")
    if c.grad_ref is None:
        batches = [(FD_BATCH if c.batched else None, 1)]
    else:
        batches = [(n, 0) for n in (BATCHES if c.batched else (None,))]
    for n, salt in batches:
        arrays = c.data(n, salt)
        grads = {}
        for dtype, (b, sess) in built.items():
            rs = r_data(c, n)(b.outs)
            grads[dtype] = run(sess, b.grads, b.feed(arrays, rs), c.training)
            if dtype == "float64" and c.grad_ref is not None:
                check_grads(b, grads[dtype], c.grad_ref(*c.args(arrays), *rs), "numpy", n, "grad_ref")
            elif dtype == "float64":
                fd = {"rtol": 1e-6, "atol": 1e-6, **c.fd}
                numeric = finite_differences_of(b, sess, arrays, rs, fd.get("eps", 1e-6))
                check_grads(b, grads[dtype], numeric, "numpy", n, "finite differences", fd)
            else:
                check_grads(b, grads[dtype], grads["float64"], "numpy", n, "the float64 gradient")


def finite_differences_of(b: Built, sess: gc.Session, arrays, rs, eps: float) -> list[np.ndarray]:
    """Central differences of ``sum(out * R)``, run through the same session."""
    fetch = [o for o in b.outs if o.dtype in DTYPES]

    def loss(args):
        values = run(sess, fetch, b.feed(args, rs), b.case.training)
        return sum(float(np.sum(v * r)) for v, r in zip(values, rs))

    return [finite_differences(loss, arrays, k, eps) for k in b.case.wrt]


# -- compiled backends ----------------------------------------------------------------------

class CompiledGroup:
    """Cases sharing one compiled fetch set on ``backend``.

    ``members`` maps each case to whether its gradients are compared there. One graph
    holds every member in every float dtype (outputs, and gradients in float32 and
    float64), compiled once; it runs each batch size of :data:`BATCHES` on the compiled
    backend and on the NumPy backend (whose float64 gradients the finite differences
    vouch for). :meth:`check` then checks one member.
    """

    def __init__(self, members: dict, backend: str, training) -> None:
        self.members, self.backend, self.training = dict(members), backend, training
        self.values: dict = {}
        self.error: Exception | None = None
        self.alone: dict = {}  # after a failure: case -> its error when compiled alone (or None)
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - reported by every member's check
            self.error = exc

    def _run(self) -> None:
        with gc.Graph() as g:
            self.built = {(c.name, d): build(c, d, grads=grads)
                          for c, grads in self.members.items() for d in c.run_dtypes}
        fetches = [t for b in self.built.values() for t in b.fetches]
        sess = gc.Session(g, backend=self.backend)
        ref = gc.Session(g, backend="numpy")
        self.batches = BATCHES if any(c.batched for c in self.members) else (None,)
        for n in self.batches:
            feed, data = {}, {}
            for key, b in self.built.items():
                arrays = b.case.data(n)
                data[key] = arrays, r_data(b.case, n)(b.outs)
                feed.update(b.feed(*data[key]))
            got = run(sess, fetches, feed, self.training)
            want = run(ref, fetches, feed, self.training)
            start = 0
            for key, b in self.built.items():
                stop = start + len(b.fetches)
                self.values[key, n] = data[key], got[start:stop], want[start:stop]
                start = stop
        assert len(sess._compiled) == 1, "a new batch size recompiled the fetch set"

    def check(self, c: Case) -> None:
        """Check member ``c``. If the shared fetch set failed, every member is rerun alone:
        ``c`` fails with its own error, passes when another member fails alone (that one
        broke the set), and fails naming the set when none does (an interaction)."""
        if self.error is not None:
            if len(self.members) == 1:
                raise self.error
            if not self.alone:
                for m, grads in self.members.items():
                    try:
                        CompiledGroup({m: grads}, self.backend, self.training).check(m)
                        self.alone[m] = None
                    except Exception as exc:  # noqa: BLE001 - re-raised for its own case
                        self.alone[m] = exc
            if self.alone[c] is not None:
                raise self.alone[c]
            if not any(self.alone.values()):
                raise AssertionError(
                    f"{c.name} [{self.backend}] passes alone, but the fetch set it shares with "
                    f"{[m.name for m in self.members]} failed: {self.error!r}") from self.error
            return
        for d in c.run_dtypes:
            b = self.built[c.name, d]
            k = len(b.outs)
            for n in self.batches:
                (arrays, rs), got, want = self.values[(c.name, d), n]
                check_forward(b, got[:k], arrays, self.backend, n, want[:k])
                if not b.grads:
                    continue
                if c.grad_ref is not None:
                    check_grads(b, got[k:], c.grad_ref(*c.args(arrays), *rs), self.backend, n,
                                "grad_ref")
                else:  # the NumPy backend's float64 gradient (same data in both dtypes)
                    f64 = self.values.get(((c.name, "float64"), n))
                    exact = f64[2][k:] if f64 is not None else want[k:]
                    check_grads(b, got[k:], exact, self.backend, n, "the NumPy float64 gradient")
