"""C emitters of the softmax cross-entropy family: the loss, its gradient, and both at once.

All three are one pass per row of the logits (OpenMP over rows) built from one row
template (:func:`_ce_rows`): the row max ``m`` and ``s = sum(exp(z - m))`` are computed
once, then the loss row ``-(z[c] - m - log s)`` and/or the gradient row
``g[r] * (exp(z - m) / s * mass - p)`` are written. When the gradient is written, the
exponentials are kept in its row (so ``exp`` runs once per element) and scaled in place.

A kernel whose root is the forward ``softmax_cross_entropy`` node and whose member is
its ``softmax_cross_entropy_grad`` (see ``fusion._merge_softmax_ce``) writes both rows;
only values the kernel stores are written. An out-of-range int label makes the kernel
return 1 with a message in ``err``, like the NumPy reference's IndexError.
"""

from __future__ import annotations

from ..ir.graph import Tensor
from .context import Context, dim, prod
from .emit_elementwise import PARALLEL_MIN
from .emit_ops import emitter
from .fusion import Kernel


def _ce_rows(ctx: Context, logits: Tensor, labels: Tensor, loss: Tensor | None,
             grad: Tensor | None, g: Tensor | None) -> str:
    """The row loop writing ``loss`` (per-example losses) and/or ``grad`` (d logits)."""
    rows, k = prod(logits.shape[:-1]), dim(logits.shape[-1])
    t = ctx.ctype(logits)
    f = "f" if logits.dtype == "float32" else ""
    one = "1.0f" if f else "1.0"
    pz, pl = ctx.ptr(logits), ctx.ptr(labels)
    ints = labels.dtype in ("int32", "int64")
    head, body, tail = [], [], ""
    # float32: gc_expf (cprinter.helpers) and a simd sum, so the row's exponentials vectorize
    exp = "gc_expf" if f else "exp"
    if grad is not None:
        head.append(f"{t} *d = {ctx.ptr(grad, False)} + r * {k};")
        expo = (f"#pragma omp simd reduction(+:s)\nfor (int64_t a = 0; a < {k}; a++) "
                f"{{ const {t} e = {exp}(z[a] - m); d[a] = e; s += e; }}")
    else:
        expo = f"#pragma omp simd reduction(+:s)\nfor (int64_t a = 0; a < {k}; a++) s += {exp}(z[a] - m);"
    if ints:
        tail = (f'if (bad >= 0) {{ snprintf(err, 512, "label %lld of row %lld is out of range '
                f'[0, %lld)", (long long){pl}[bad], (long long)bad, (long long)({k})); return 1; }}')
        body.append(f"const int64_t c = (int64_t){pl}[r];\n"
                    f"if (c < 0 || c >= {k}) {{ bad = r; continue; }}")
    else:
        body.append(f"const {t} *p = {pl} + r * {k};")
    if loss is not None:
        pick = ("loss = -(z[c] - m - ls);" if ints else
                f"for (int64_t a = 0; a < {k}; a++) loss -= p[a] * (z[a] - m - ls);")
        body.append(f"const {t} ls = ({t})log(s);\n{t} loss = 0;\n{pick}\n"
                    f"{ctx.ptr(loss, False)}[r] = loss;")
    if grad is not None:
        gr = f"{ctx.ptr(g)}[r]"
        if ints:  # mass 1, p one-hot: d = g * e / s, minus g at the label
            body.append(f"const {t} gr = {gr}, sc = gr * ({t})({one} / s);\n"
                        f"for (int64_t a = 0; a < {k}; a++) d[a] *= sc;\n"
                        f"d[c] -= gr;")
        else:
            body.append(f"{t} mass = 0;\n"
                        f"for (int64_t a = 0; a < {k}; a++) mass += p[a];\n"
                        f"const {t} gr = {gr}, sc = ({t})({one} / s) * mass;\n"
                        f"for (int64_t a = 0; a < {k}; a++) d[a] = gr * (d[a] * sc - p[a]);")
    inner = "\n".join(head + [
        f"{t} m = -INFINITY;",
        f"for (int64_t a = 0; a < {k}; a++) if (z[a] > m) m = z[a];",
        "if (!isfinite(m)) m = 0;",
        "double s = 0.0;",
        expo,
    ] + body)
    inner = "\n".join("        " + ln for ln in inner.splitlines())
    return f"""int64_t bad = -1;
(void)bad;
#pragma omp parallel for if({rows} * {k} >= {PARALLEL_MIN})
for (int64_t r = 0; r < {rows}; r++) {{
        const {t} *z = {pz} + r * {k};
{inner}
}}
{tail}"""


@emitter("softmax_cross_entropy")
def _softmax_ce(kernel: Kernel, ctx: Context) -> str:
    """The per-example loss; with its gradient node as member, the gradient too."""
    node = kernel.root
    logits, labels = node.inputs
    grad = next((m for m in kernel.members if m.op.name == "softmax_cross_entropy_grad"), None)
    loss = node if node in kernel.stores or not kernel.members else None
    if grad is not None and grad not in kernel.stores:
        grad = None
    return _ce_rows(ctx, logits, labels, loss, grad, grad.inputs[2] if grad is not None else None)


@emitter("softmax_cross_entropy_grad")
def _softmax_ce_grad(kernel: Kernel, ctx: Context) -> str:
    node = kernel.root
    logits, labels, g = node.inputs
    return _ce_rows(ctx, logits, labels, None, node, g)
