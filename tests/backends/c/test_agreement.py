"""The C backend agrees with the NumPy reference on random compositions of ops.

Per-op agreement (every op's forward and gradient on C, in one compiled fetch set per
test module) lives with the op cases in ``tests/ops`` (the ``on_c`` marks). What is
left here is what no single op case reaches: hypothesis draws random graphs (elementwise
ops, broadcast operands, reductions, matmul, reshape, transpose, values reused by later
ops: the fusion and memory planning of real models), compiles each once with a ``None``
batch axis, runs it with batch sizes 1, 7 and 33 without recompiling and compares the
forward value and ``gc.grad`` of every leaf with the NumPy backend. Random compositions
can be ill-conditioned, so a difference beyond the contract's tolerances (1e-10 relative
in float64; 1e-5 elementwise / 1e-4 by norm in float32) passes only when the graph's own
amplification of rounding errors, measured on the NumPy backend, explains it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc

DTYPES = ["float32", "float64"]
BATCHES = (1, 7, 33)
#: the contract's norm-relative tolerances
NORM_TOL = {"float32": 1e-4, "float64": 1e-10}


pytestmark = pytest.mark.needs_c


# -- harness ---------------------------------------------------------------------------------

class Case:
    """A random graph under construction: placeholders with uniform data ranges, and the
    checked tensors (the output, then ``gc.grad(sum(out * R), leaves)``)."""

    def __init__(self, dtype: str, seed: int = 0) -> None:
        self.dtype = dtype
        self.graph = gc.Graph(seed=seed)
        self.specs: list[tuple] = []
        self.checks: list[tuple[str, gc.Tensor]] = []

    def __enter__(self) -> Case:
        self.graph.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.graph.__exit__(*exc)

    def ph(self, shape, low=-2.0, high=2.0, name=None) -> gc.Tensor:
        p = gc.placeholder(shape, dtype=self.dtype, name=name)
        self.specs.append((p, low, high))
        return p

    def out(self, name: str, t: gc.Tensor, wrt) -> None:
        self.checks.append((name, t))
        r = self.ph(t.shape, -1.0, 1.0)
        for w, g in zip(wrt, gc.grad(gc.sum(t * r), list(wrt))):
            self.checks.append((f"d[{name}]/d[{w.name}]", g))

    def feed(self, batch: int, rng: np.random.Generator) -> dict:
        return {p: rng.uniform(lo, hi, size=tuple(batch if d is None else d for d in p.shape)).astype(
            p.dtype) for p, lo, hi in self.specs}


def compare(actual, expected, dtype: str, what: str) -> None:
    """Shape, dtype, NaN/inf positions, then the norm-relative tolerance of ``dtype``."""
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    np.testing.assert_array_equal(np.isfinite(a), np.isfinite(e), err_msg=f"{what}: non-finite")
    finite = np.isfinite(e)
    np.testing.assert_array_equal(a[~finite], e[~finite], err_msg=f"{what}: non-finite values")
    err, ref = np.linalg.norm(a[finite] - e[finite]), max(np.linalg.norm(e[finite]), 1e-30)
    assert err <= NORM_TOL[dtype] * ref, f"{what}: norm-relative error {err / ref:.3g}"


# -- random graphs ---------------------------------------------------------------------------

SAFE_UNARY = {
    "tanh": gc.tanh, "sigmoid": gc.sigmoid, "relu": gc.relu, "softplus": gc.softplus,
    "abs": gc.abs, "square": gc.square, "elu": gc.elu, "selu": gc.selu,
    "leaky_relu": lambda t: gc.leaky_relu(t, 0.2), "hard_tanh": gc.hard_tanh,
    "exp(tanh)": lambda t: gc.exp(gc.tanh(t)), "log(1+t^2)": lambda t: gc.log(1.0 + gc.square(t)),
    "sqrt(1+t^2)": lambda t: gc.sqrt(1.0 + gc.square(t)), "neg": lambda t: -t,
    "scale": lambda t: t * 0.5 - 0.25,
}
SAFE_BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "maximum": gc.maximum, "minimum": gc.minimum,
    "div": lambda a, b: a / (1.5 + gc.tanh(b)),
    "where": lambda a, b: gc.where(a > b, a, b * 0.5),
}
REDUCERS = {"sum": gc.sum, "mean": gc.mean, "max": gc.max, "logsumexp": gc.logsumexp}


def _broadcast_shape(draw, shape) -> tuple:
    """A shape that broadcasts against ``shape``: some dims 1, maybe fewer leading dims."""
    drop = draw(st.integers(0, len(shape)))
    out = [1 if draw(st.booleans()) else d for d in shape[drop:]]
    return tuple(out)


def _build_random(draw, c: Case) -> None:
    """A random composition on ``c``'s dtype. Every choice goes through ``draw`` and is a
    plain value (no tensors), so a recorded sequence of draws rebuilds the same graph in
    another dtype."""
    d1, d2 = draw(st.sampled_from([1, 3, 7])), draw(st.sampled_from([1, 2, 5]))
    shape = draw(st.sampled_from([(None, d1), (None, d1, d2)]))
    x = c.ph(shape, low=-1.5, high=1.5, name="x")
    leaves, t = [x], x
    pool = [x]
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["unary", "bcast", "pool", "reduce", "matmul", "reshape",
                                     "transpose"]))
        if kind == "unary":
            t = SAFE_UNARY[draw(st.sampled_from(sorted(SAFE_UNARY)))](t)
        elif kind == "bcast":
            p = c.ph(_broadcast_shape(draw, t.shape), low=-1.5, high=1.5)
            leaves.append(p)
            op = draw(st.sampled_from(sorted(SAFE_BINARY)))
            a, b = (t, p) if draw(st.booleans()) else (p, t)
            t = SAFE_BINARY[op](a, b)
        elif kind == "pool":  # combine with an earlier value of the same shape
            others = [q for q in pool if q.shape == t.shape]
            other = others[draw(st.integers(0, len(others) - 1))]
            t = SAFE_BINARY[draw(st.sampled_from(sorted(SAFE_BINARY)))](t, other)
        elif kind == "reduce":
            if t.ndim == 0:
                continue
            axis = draw(st.one_of(st.none(), st.integers(0, t.ndim - 1)))
            t = REDUCERS[draw(st.sampled_from(sorted(REDUCERS)))](
                t, axis=axis, keepdims=draw(st.booleans()))
        elif kind == "matmul":
            if t.ndim < 2 or t.shape[-1] is None:
                continue
            k, m = t.shape[-1], draw(st.sampled_from([1, 3, 4]))
            if draw(st.booleans()):
                w = c.ph((m, k), low=-1.0, high=1.0)
                t = gc.matmul(t, w, transpose_b=True)
            else:
                w = c.ph((k, m), low=-1.0, high=1.0)
                t = t @ w
            leaves.append(w)
        elif kind == "reshape":
            if t.ndim == 3 and t.shape[0] is None:
                t = gc.reshape(t, (None, t.shape[1] * t.shape[2]))
            elif t.ndim == 2 and t.shape[0] is None and t.shape[1] % 2 == 0:
                t = gc.reshape(t, (None, 2, t.shape[1] // 2))
            elif t.ndim >= 1 and None not in t.shape:
                t = gc.reshape(t, (-1,))
        elif kind == "transpose":
            if t.ndim < 2:
                continue
            t = gc.transpose(t, tuple(draw(st.permutations(range(t.ndim)))))
        pool.append(t)
    c.out("random graph", t, wrt=leaves)


def _check_random(case: Case, cases: dict[str, Case], seed: int) -> None:
    """Run ``case`` on C and both dtypes' graphs on NumPy; compare, aware of conditioning.

    Random compositions can be ill-conditioned (tanh' = 1 - y**2 at large |x|, a
    difference of nearly equal values, ...), which amplifies the one-ulp differences
    between two libms beyond any fixed tolerance. So a result outside the contract's
    tolerance still passes when the difference is explained by the graph's own
    amplification of rounding errors, measured on the NumPy backend: the gap between its
    float32 and float64 runs of the same graph. float32: C's error against the float64
    result is at most 4x NumPy's float32 error; float64: the C/NumPy difference is at most
    4x that float32 error scaled down by eps64 / eps32.
    """
    c32, c64 = cases["float32"], cases["float64"]
    fetch = {d: [t for _, t in c.checks] for d, c in cases.items()}
    ref = {d: gc.Session(c.graph, backend="numpy") for d, c in cases.items()}
    sess = gc.Session(case.graph, backend="c")
    rng = np.random.default_rng(seed)
    scale = np.finfo(np.float64).eps / np.finfo(np.float32).eps
    for batch in BATCHES:
        feed32 = c32.feed(batch, rng)  # float32 data, fed exactly to both graphs
        feeds = {"float32": feed32,
                 "float64": {p64: feed32[p].astype(np.float64)
                             for (p, *_), (p64, *_) in zip(c32.specs, c64.specs)}}
        values = {d: ref[d].run(fetch[d], feeds[d]) for d in cases}
        actual = sess.run(fetch[case.dtype], feeds[case.dtype])
        for k, ((name, _), a) in enumerate(zip(case.checks, actual)):
            what = f"{name} ({case.dtype}, batch {batch})"
            try:
                compare(a, values[case.dtype][k], case.dtype, what)
            except AssertionError:
                exact = values["float64"][k]
                rounding = np.linalg.norm(values["float32"][k].astype(np.float64) - exact)
                a64 = a.astype(np.float64)
                if case.dtype == "float32":
                    err, bound = np.linalg.norm(a64 - exact), 4 * rounding
                else:
                    err, bound = np.linalg.norm(a64 - exact), 4 * rounding * scale
                assert np.isfinite(err) and err <= bound, (
                    f"{what}: C differs by {err:.3g} (|result| {np.linalg.norm(exact):.3g}); "
                    f"the graph's rounding amplification allows {bound:.3g}")
    assert len(sess._compiled) == 1


@pytest.mark.slow
@settings(max_examples=10, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_random_graphs_agree(data, dtype, seed):
    """A random composition, built in float64 and again (same draws) in float32."""
    drawn = []

    def record(strategy):
        drawn.append(data.draw(strategy))
        return drawn[-1]

    with Case("float64", seed=seed) as c64:
        _build_random(record, c64)
    replay = iter(drawn)  # the same graph in float32
    with Case("float32", seed=seed) as c32:
        _build_random(lambda strategy: next(replay), c32)
    cases = {"float32": c32, "float64": c64}
    _check_random(cases[dtype], cases, seed)
