"""Lowering of the softmax family: softmax and log_softmax along an axis, and softmax
cross-entropy with its gradient, as one pass per row.

Each row computes its maximum ``m`` (0 when not finite) and ``s = sum(exp(z - m))``
once. A cross-entropy kernel whose group also holds the gradient node (fusion merges
``softmax_cross_entropy_grad`` into the forward of the same logits and labels) writes
the loss row ``-(z[c] - m - log s)`` and the gradient row
``g[r] * (exp(z - m) / s * mass - p)`` in that one pass; the exponentials are kept in
the gradient row, so ``exp`` runs once per element. An out-of-range class id fails
the step with a message naming the row, like the NumPy reference's IndexError.
"""

from __future__ import annotations

from ..ir.dtypes import INTS
from ..ir.graph import Tensor
from ..ops.nn import LogSoftmax, Softmax, SoftmaxCrossEntropy, SoftmaxCrossEntropyGrad
from . import ir
from .fusion import Group
from .ir import (
    Bin,
    Call,
    Cast,
    Expr,
    If,
    Let,
    Lit,
    Load,
    Loop,
    Not,
    Select,
    Set,
    Store,
    Sym,
    add,
    mul,
    prod,
    size,
)
from .memplan import Plan
from .reduce import along_axis, outer_axis_inner
from .registry import lowers

S, M = Sym("s"), Sym("m")


def _exp(x: Expr, dtype: str) -> Expr:
    return Call("exp", (x,), dtype)


def _row_max(load, length: Expr, dtype: str) -> list:
    """``m`` = the row's maximum, 0 when it is not finite (all -inf, or inf/NaN); a SIMD
    max reduction (NaN never wins a comparison; a row of -inf gives the lowest finite
    value, whose exponentials are 0 as well)."""
    a = Sym("a")
    return [Let("m", dtype, Lit(float("-inf"), dtype), mutable=True),
            Loop("a", length, [Set("m", Select(Bin(">", load(a), M), load(a), M))], vector=True,
                 reduce=(("max", "m"),)),
            If(Not(Call("isfinite", (M,), dtype)), [Set("m", Lit(0.0, dtype))]),
            Let("s", "float64", Lit(0.0, "float64"), mutable=True)]


@lowers(Softmax, LogSoftmax)
def lower_softmax(group: Group, plan: Plan) -> list:
    node = group.root
    x = node.inputs[0]
    t = node.dtype
    outer, length, inner = outer_axis_inner(x.shape, node.attrs["axis"])
    px, py = plan.buffer(x), plan.buffer(node)
    a = Sym("a")

    def at(k: Expr) -> Expr:
        return along_axis(length, inner, k)

    def z(k: Expr) -> Expr:
        return Load(px, at(k))

    if isinstance(node.op, Softmax):
        expo = [Store(py, at(a), _exp(Bin("-", z(a), M), t)), Set("s", Bin("+", S, Load(py, at(a))))]
        finish = [Let("r", "float64", Bin("/", Lit(1.0, "float64"), S)),  # (one division a row)
                  Loop("a", length, [Store(py, at(a), Cast(t, Bin("*", Load(py, at(a)), Sym("r"))))],
                       vector=True)]
    else:
        expo = [Set("s", Bin("+", S, _exp(Bin("-", z(a), M), t)))]
        finish = [Let("ls", t, Cast(t, Call("log", (S,), "float64"))),
                  Loop("a", length, [Store(py, at(a), Bin("-", Bin("-", z(a), M), Sym("ls")))],
                       vector=True)]
    row = _row_max(z, length, t) + [
        Loop("a", length, expo, vector=True, reduce=(("+", "s"),))] + finish
    return [Loop("o", outer, [Loop("i", inner, row)], threads=prod(x.shape), collapse=2)]


def _ce_rows(plan: Plan, logits: Tensor, labels: Tensor, loss: Tensor | None, grad: Tensor | None,
             g: Tensor | None) -> list:
    """The row loop writing ``loss`` (per-example losses) and/or ``grad`` (d logits)."""
    rows, k = prod(logits.shape[:-1]), size(logits.shape[-1])
    t = logits.dtype
    pz, pl = plan.buffer(logits), plan.buffer(labels)
    r, a, c = Sym("r"), Sym("a"), Sym("c")
    ints = labels.dtype in INTS

    def at(col: Expr) -> Expr:
        return add(mul(r, k), col)

    def row(buf, col: Expr) -> Expr:
        return Load(buf, at(col))

    def z(col: Expr) -> Expr:
        return row(pz, col)

    body = _row_max(z, k, t)
    e = _exp(Bin("-", z(a), M), t)
    if grad is not None:
        pd = plan.buffer(grad)
        expo = [Let("e", t, e), Store(pd, at(a), Sym("e")), Set("s", Bin("+", S, Sym("e")))]
    else:
        expo = [Set("s", Bin("+", S, e))]
    body.append(Loop("a", k, expo, vector=True, reduce=(("+", "s"),)))
    if ints:
        body += [Let("c", "int64", Cast("int64", Load(pl, r))),
                 If(Bin("||", Bin("<", c, Lit(0)), Bin(">=", c, k)), [Set("bad", r), ir.Continue()])]
    if loss is not None:
        ls = Sym("ls")
        body += [Let("ls", t, Cast(t, Call("log", (S,), "float64"))),
                 Let("loss", t, Lit(0.0, t), mutable=True)]
        if ints:
            body.append(Set("loss", ir.Neg(Bin("-", Bin("-", z(c), M), ls))))
        else:
            term = Bin("*", row(pl, a), Bin("-", Bin("-", z(a), M), ls))
            body.append(Loop("a", k, [Set("loss", Bin("-", Sym("loss"), term))]))
        body.append(Store(plan.buffer(loss), r, Sym("loss")))
    if grad is not None:
        d_at = at(a)
        gr, sc = Sym("gr"), Sym("sc")
        inv_s = Cast(t, Bin("/", Lit(1.0, "float64"), S))
        if ints:  # mass 1, p one-hot: d = g * e / s, minus g at the label
            body += [Let("gr", t, Load(plan.buffer(g), r)), Let("sc", t, Bin("*", gr, inv_s)),
                     Loop("a", k, [Store(pd, d_at, Bin("*", Load(pd, d_at), sc))]),
                     Store(pd, at(c), Bin("-", row(pd, c), gr))]
        else:
            body += [Let("mass", t, Lit(0.0, t), mutable=True),
                     Loop("a", k, [Set("mass", Bin("+", Sym("mass"), row(pl, a)))]),
                     Let("gr", t, Load(plan.buffer(g), r)), Let("sc", t, Bin("*", inv_s, Sym("mass"))),
                     Loop("a", k, [Store(pd, d_at, Bin("*", gr, Bin(
                         "-", Bin("*", Load(pd, d_at), sc), row(pl, a))))])]
    out = [Loop("r", rows, body, threads=mul(rows, k))]
    if ints:  # (the row loop notes the bad row; a parallel loop cannot stop early)
        out = [Let("bad", "int64", Lit(-1), mutable=True)] + out
        out.append(If(Bin(">=", Sym("bad"), Lit(0)), [ir.Fail((
            "label ", Cast("int64", Load(pl, Sym("bad"))), " of row ", Sym("bad"),
            " is out of range [0, ", k, ")"))]))
    return out


@lowers(SoftmaxCrossEntropy)
def lower_softmax_cross_entropy(group: Group, plan: Plan) -> list:
    """The per-example loss; with its gradient node as member, the gradient too."""
    node = group.root
    logits, labels = node.inputs
    grad = next((m for m in group.members if isinstance(m.op, SoftmaxCrossEntropyGrad)), None)
    loss = node if node in group.stores or not group.members else None
    if grad is not None and grad not in group.stores:
        grad = None
    return _ce_rows(plan, logits, labels, loss, grad, grad.inputs[2] if grad is not None else None)


@lowers(SoftmaxCrossEntropyGrad)
def lower_softmax_cross_entropy_grad(group: Group, plan: Plan) -> list:
    logits, labels, g = group.root.inputs
    return _ce_rows(plan, logits, labels, None, group.root, g)
