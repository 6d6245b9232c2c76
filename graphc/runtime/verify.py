"""``Session.verify``: a compiled step checked value by value against the NumPy reference.

Three runs from copies of the same state, at the session's step (nothing is committed):

1. the compiled step as the session runs it (fused kernels): its fetched values and the
   variables it would write;
2. a debug build of the same optimized program on the same backend that stores every
   value: no fusion, one kernel per node (``lower(..., separate=True)``), so values that
   live only inside a fused kernel of (1) are stored too;
3. the reference: each node's NumPy ``reference`` applied to the values the debug build
   gave its inputs, so a node is judged on exactly the inputs its kernel saw (float32
   rounding carried from upstream is not an error of this node).

Every value of (2) is compared with (3) in graph order; then every fetched value and
every variable written by (1) with (2)'s (the same values computed unfused): a
difference there appears only with fusion. The first difference in graph order is
reported with the node's op, the user's line, the kernel of (1) it was fused into and the
largest absolute and relative errors and where they are.

The numerical contract (``docs/design.md``, the op tests' ``tests/ops/gradcheck.py``):
float64 within 1e-10 relative; float32 within 1e-5 relative per element, with an
absolute floor of 1e-5 * 1% of the value's largest magnitude (at least 1), for
elementwise ops and views; matmul, conv, reductions and every other op that combines
elements within 1e-4 (float64 1e-10) of the reference's norm, relative to the norm.
NaN and Inf must sit in the same places (Inf with the same sign); integer and bool
values must be equal.

Example::

    report = sess.verify([loss, train], {x: xb, y: yb})
    print(report)            # first differing value, or "all ... values agree"
    assert report.ok
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..backends.reference import ReferenceExecutable
from ..ir.dtypes import FLOATS
from ..ir.errors import GraphcError, at
from ..ir.graph import Kind, RunContext, Tensor
from ..ir.program import Program
from .feeds import aligned_copy

#: relative tolerance per element (elementwise ops and views)
RTOL = {"float32": 1e-5, "float64": 1e-10}
#: tolerance relative to the reference's norm (matmul, conv, reductions, other ops)
NORM_TOL = {"float32": 1e-4, "float64": 1e-10}


@dataclass
class Mismatch:
    """One value that differs beyond the contract.

    ``stage`` is ``"debug build"`` (a node's own kernel against the reference) or
    ``"compiled step"`` (a fetched value or a variable's new value of the fused step
    against the debug build's). ``kernel`` is the kernel of the session's compiled step
    that computes the node (None on the NumPy backend or for a view) and ``stored``
    whether that kernel stores the value (False: it lives only inside the kernel).
    """

    stage: str
    what: str
    node: str
    op: str
    site: str | None
    kernel: str | None
    stored: bool
    dtype: str
    shape: tuple
    reason: str
    tolerance: str
    max_abs: float = 0.0
    abs_index: tuple = ()
    max_rel: float = 0.0
    rel_index: tuple = ()
    got: object = None
    want: object = None
    outside: int = 0
    size: int = 0

    def rows(self) -> list[tuple[str, str]]:
        kernel = "-" if self.kernel is None else self.kernel + (
            "" if self.stored else " (value not stored: only inside the kernel)")
        how = ("as its own kernel computed it (unfused debug build)" if self.stage == "debug build"
               else "of the compiled (fused) step, against the unfused build")
        out = [("value", f"{self.what}, {how}"), ("op", self.op),
               ("node", self.node), ("line", self.site or "?"), ("kernel", kernel),
               ("dtype, shape", f"{self.dtype} {self.shape}"), ("problem", self.reason)]
        if self.size:
            out += [("abs error", f"{self.max_abs:.6g} at {self.abs_index}: got {_num(self.got)}, "
                                  f"reference {_num(self.want)}"),
                    ("rel error", f"{self.max_rel:.6g} at {self.rel_index}"),
                    ("outside", f"{self.outside} of {self.size} elements")]
        return out + [("contract", self.tolerance)]


def _num(v) -> str:
    return f"{v:.9g}" if isinstance(v, float) else repr(v)


@dataclass
class VerifyReport:
    """What :meth:`Session.verify` found: ``ok``, ``mismatches`` (in graph order, the first
    one first), ``compared`` (how many values were compared) and where it ran."""

    backend: str
    step: int
    batch: int | None
    compared: int = 0
    debug_values: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def first(self) -> Mismatch | None:
        return self.mismatches[0] if self.mismatches else None

    def __str__(self) -> str:
        where = f"backend {self.backend}, step {self.step}, batch {self.batch}"
        inner = f"{self.debug_values} of them intermediate values stored by the unfused debug build"
        if self.ok:
            return (f"verify ({where}): all {self.compared} values compared are within the "
                    f"numerical contract ({inner})")
        n = len(self.mismatches)
        lines = [f"verify ({where}): {n} of {self.compared} values compared "
                 f"{'differs' if n == 1 else 'differ'} beyond the numerical contract ({inner})",
                 "first difference, in graph order:"]
        rows = self.first.rows()
        width = max(len(k) for k, _ in rows)
        lines += [f"  {k:<{width}}  {v}" for k, v in rows]
        rest = self.mismatches[1:]
        if rest:
            shown = ", ".join(f"{m.what} ({m.stage})" for m in rest[:6])
            lines.append(f"then: {shown}" + (f" and {len(rest) - 6} more" if len(rest) > 6 else ""))
        return "\n".join(lines)


def verify(session, flat: list[Tensor], feed: dict | None, training: bool | None) -> VerifyReport:
    """The report for one step of ``flat`` (``Session.verify``; the caller holds its lock)."""
    compiled, arrays, batch = session._prepare(flat, feed, training)
    program: Program = compiled.program
    step = session.step
    before = {v: session._state(v) for v in compiled.variables}  # read, never written
    report = VerifyReport(session.backend, step, batch)

    fused_out, fused_after = _run(compiled.executable, arrays, before, step, batch)
    debug = _debug_build(compiled)
    out, debug_after = _run(debug.executable, arrays, before, step, batch)
    value = {n.id: v for n, v in zip(debug.program.outputs, out)}
    report.debug_values = len(debug.extra)
    home = _kernels(compiled.executable)

    def leaf(n: Tensor) -> np.ndarray:
        return arrays[n] if n.op.kind is Kind.PLACEHOLDER else (
            before[n] if n.op.kind is Kind.VARIABLE else n.value)

    ctx = _Context(step, batch)
    outputs = {}
    for j, o in enumerate(program.outputs):
        outputs.setdefault(o.id, []).append(j)
    for n in program.nodes:
        kind = n.op.kind
        if kind.is_leaf:
            value[n.id] = leaf(n)
        else:
            args = [value[i.id] for i in n.inputs]
            try:
                want = n.op.reference(ctx, n, *args)
            except GraphcError:
                raise
            except Exception as exc:  # as the reference backend names a failing node
                raise GraphcError(f"verify: the reference of {n.op.label(n.attrs)} ({n.name}) "
                                  f"failed: {exc}{at(n.site)}") from exc
            if kind is Kind.UPDATE or n.op.multi_output:
                value[n.id] = want  # (None: a group reads its updates' "values"; a scan's
                # tuple is compared through its projections)
            else:
                report.compared += 1
                _check(report, home, n, "debug build", n.name, value[n.id], want)
        for j in outputs.get(n.id, []):  # the fused step's fetches of this value
            if n.dtype is not None:
                report.compared += 1
                _check(report, home, n, "compiled step", f"fetch [{j}] {n.name}",
                       fused_out[j], value[n.id])
        if kind is Kind.UPDATE and n.op.name == "assign":
            var, src = n.inputs
            want = ctx.pending[var]
            for stage, after in (("debug build", debug_after), ("compiled step", fused_after)):
                report.compared += 1
                _check(report, home, src, stage, f"variable {var.name} after the step",
                       after[var], want)
    return report


class _Context(RunContext):
    def __init__(self, step: int, batch: int | None) -> None:
        super().__init__(step, batch)
        self.pending: dict[Tensor, np.ndarray] = {}


def _run(executable, arrays: dict, before: dict, step: int, batch: int | None):
    """Outputs and the variables' values after one run from copies of ``before``."""
    state = {v: aligned_copy(a, a.dtype) for v, a in before.items()}  # as the session's
    ctx = _Context(step, batch)
    outputs = executable.run(arrays, state, ctx)
    return outputs, {v: ctx.pending.get(v, state[v]) for v in state}


@dataclass
class _Debug:
    program: Program
    executable: object
    extra: list


def _debug_build(compiled) -> _Debug:
    """The unfused build of ``compiled``'s program that also outputs every computed value
    (built once per compiled fetch set, on the same kind of executable, and kept on it;
    the caller holds the session's lock)."""
    if compiled.debug is not None:
        return compiled.debug
    program = compiled.program
    fetched = {o.id for o in program.outputs}
    extra = [n for n in program.nodes if n.dtype is not None and not n.op.kind.is_leaf
             and n.op.kind is not Kind.UPDATE and n.id not in fetched]
    # the program's own outputs first: its updates and fetches are the step's
    debug_program = Program(list(program.outputs) + extra, nodes=program.nodes)
    exe = compiled.executable
    if isinstance(exe, ReferenceExecutable):
        built = ReferenceExecutable(debug_program)
    else:
        from ..backends.c.executable import CExecutable

        if not isinstance(exe, CExecutable):
            raise GraphcError(f"verify: no debug build for a {type(exe).__name__}")
        built = CExecutable(debug_program, separate=True)
    compiled.debug = _Debug(debug_program, built, extra)
    return compiled.debug


def _kernels(executable) -> dict[str, tuple[str, bool]]:
    """node name -> (name of the compiled step's kernel computing it, it stores the value).
    (By name: the lowering may work on copies of the program's nodes.)"""
    home: dict[str, tuple[str, bool]] = {}
    kernels = getattr(executable, "kernels", None) or []
    for k in kernels:
        for n in k.stores:
            home.setdefault(n.name, (k.name, True))
    for k in kernels:
        for n in k.nodes:
            home.setdefault(n.name, (k.name, False))
    return home


def _check(report: VerifyReport, home: dict, node: Tensor, stage: str, what: str,
           got, want) -> None:
    found = compare(got, want, node.dtype, _norm_checked(node))
    if found is None:
        return
    kernel, stored = home.get(node.name, (None, False))
    role = " (gradient)" if node.role == "grad" else ""
    report.mismatches.append(Mismatch(stage, what, node.name, node.op.label(node.attrs) + role,
                                      node.site, kernel, stored, str(node.dtype),
                                      tuple(np.shape(want)), **found))


def _norm_checked(node: Tensor) -> bool:
    return node.op.kind not in (Kind.ELEMENTWISE, Kind.VIEW) and not node.op.kind.is_leaf


def tolerance(dtype: str, norm: bool) -> str:
    """The contract's tolerance for a value, in words."""
    if dtype not in FLOATS:
        return f"{dtype}: equal"
    if norm:
        return f"{dtype}: error norm <= {NORM_TOL[dtype]:g} * reference norm; NaN/Inf in place"
    return (f"{dtype}: |error| <= {RTOL[dtype]:g} * |reference| + {RTOL[dtype]:g} * 1% of "
            f"max(1, max |reference|) per element; NaN/Inf in place")


def compare(got, want, dtype: str, norm: bool) -> dict | None:
    """None when ``got`` meets the contract against ``want``, else the facts of a
    :class:`Mismatch` (reason, largest errors and where, elements outside)."""
    got, want = np.asarray(got), np.asarray(want)
    facts = {"tolerance": tolerance(dtype, norm)}
    if got.shape != want.shape:
        return {**facts, "reason": f"shape {got.shape}, reference {want.shape}"}
    if got.size == 0:
        return None
    a, e = got.astype(np.float64), want.astype(np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf: judged below as NaN/Inf in place
        err = np.abs(a - e)
    if dtype not in FLOATS:
        bad = got != want
        failed, reason = bool(bad.any()), "values differ (must be equal)"
    else:
        special = (np.isnan(a) != np.isnan(e)) | (np.isinf(e) & (a != e)) | (
            np.isinf(a) & ~np.isinf(e))
        finite = np.isfinite(e) & np.isfinite(a)
        err = np.where(special, np.inf, np.where(finite, err, 0.0))
        ref = np.where(np.isfinite(e), e, 0.0)
        if norm:  # outside: an element whose error alone exceeds the tolerance of the rms
            tol = NORM_TOL[dtype]
            num, den = float(np.linalg.norm(err[finite])), max(float(np.linalg.norm(ref)), 1e-30)
            bad = special | (err > tol * den / np.sqrt(got.size))
            failed = bool(special.any()) or num > tol * den
            reason = f"error norm {num / den:.3g} x the reference's norm"
        else:
            rtol = RTOL[dtype]
            scale = max(1.0, float(np.max(np.abs(ref), initial=0.0)))
            bad = special | (err > rtol * np.abs(ref) + rtol * 0.01 * scale)
            failed = bool(bad.any())
            reason = "elements differ beyond the tolerance"
        if special.any():
            reason = "NaN/Inf not where the reference has them"
    if not failed:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(err == 0, 0.0, err / np.abs(e))
    rel = np.where(np.isnan(rel), np.inf, rel)
    i_abs = np.unravel_index(int(np.argmax(err)), err.shape)
    i_rel = np.unravel_index(int(np.argmax(rel)), rel.shape)
    return {**facts, "reason": reason, "max_abs": float(err[i_abs]),
            "abs_index": tuple(int(i) for i in i_abs), "max_rel": float(rel[i_rel]),
            "rel_index": tuple(int(i) for i in i_rel), "got": got[i_abs].item(),
            "want": want[i_abs].item(), "outside": int(bad.sum()), "size": int(got.size)}
