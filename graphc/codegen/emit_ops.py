"""C emitters for the non-elementwise ops (one function per op name).

Each emitter returns the statements of one kernel function body. matmul,
conv2d and pooling call the hand-written templates of ``kernels/``; the
other ops are short loops written here.
"""

from __future__ import annotations

from ..ir.graph import Tensor
from .context import Context, dim, prod, strides
from .emit_elementwise import (
    PARALLEL_MIN,
    collapse,
    emit_epilogue_fn,
    emit_group,
    emit_reduce,
    loops,
    loops_serial,
)
from .fusion import Kernel, host_output

EMITTERS = {}


def emitter(*names):
    def wrap(fn):
        for n in names:
            EMITTERS[n] = fn
        return fn
    return wrap


def _p(ctx: Context, t: Tensor, const=True) -> str:
    return ctx.ptr(t, const)


def _prefix(t: Tensor) -> str:
    return "s" if t.dtype == "float32" else "d"


def _int(d) -> str:
    return f"(int)({dim(d)})"


@emitter("elemwise", "broadcast_to", "dropout")
def _elementwise(kernel: Kernel, ctx: Context) -> str:
    return emit_group(kernel, ctx)


@emitter("sum", "mean", "max")
def _reduce(kernel: Kernel, ctx: Context) -> str:
    return emit_reduce(kernel, ctx)


@emitter("assign", "group")
def _nothing(kernel: Kernel, ctx: Context) -> str:
    return "/* committed at the end of the step */"


@emitter("cast")
def _cast(kernel: Kernel, ctx: Context) -> str:
    node = kernel.root
    x = node.inputs[0]
    conv = "(x != 0)" if node.dtype == "bool" else f"({ctx.ctype(node)})x"
    inner = f"    const {ctx.ctype(x)} x = {_p(ctx, x)}[i0];\n    {_p(ctx, node, False)}[i0] = {conv};"
    return loops([prod(node.shape)], inner, prod(node.shape))


@emitter("count")
def _count(kernel: Kernel, ctx: Context) -> str:
    node = kernel.root
    n = prod([node.attrs["shape"][a] for a in node.attrs["axes"]])
    return f"{_p(ctx, node, False)}[0] = ({ctx.ctype(node)})({n});"


def _reduce_layout(x: Tensor, axes: set):
    """Loops over x in natural order: (dims, x index, out index, loop vars)."""
    classes = ["r" if k in axes else "k" for k in range(x.ndim)]
    kept = [d for k, d in enumerate(x.shape) if k not in axes]
    own = strides(tuple(kept))
    kept_strides, j = [], 0
    for k in range(x.ndim):
        if k in axes:
            kept_strides.append("0")
        else:
            kept_strides.append(own[j])
            j += 1
    dims, st, _ = collapse(x.shape, [strides(x.shape), kept_strides], classes)
    lv = [f"i{k}" for k in range(len(dims))]

    def idx(s):
        return " + ".join(f"{v}*{t}" for v, t in zip(lv, s) if t != "0") or "0"

    return dims, idx(st[0]), idx(st[1]), lv


@emitter("logsumexp")
def _logsumexp(kernel: Kernel, ctx: Context) -> str:
    node = kernel.root
    x = node.inputs[0]
    dims, xi, oi, lv = _reduce_layout(x, set(node.attrs["axes"]))
    size = prod(node.shape)
    px, po = _p(ctx, x), _p(ctx, node, False)
    pass1 = loops_serial(dims, lv, f"double v = {px}[{xi}]; if (v > m[{oi}]) m[{oi}] = v;")
    pass2 = loops_serial(dims, lv, f"s[{oi}] += exp((double){px}[{xi}] - mm(m[{oi}]));")
    ctx.workspaces.append(f"sizeof(double) * 2 * (size_t)({size} > 0 ? {size} : 1)")
    return f"""{{
    double *m = (double *)gc_ws; (void)gc_ws_bytes;
    double *s = m + {size};
    #define mm(v) (isfinite(v) ? (v) : 0.0)
    for (int64_t o = 0; o < {size}; o++) {{ m[o] = -INFINITY; s[o] = 0.0; }}
{pass1}
{pass2}
    for (int64_t o = 0; o < {size}; o++) {po}[o] = ({ctx.ctype(node)})(log(s[o]) + mm(m[o]));
    #undef mm
}}"""


def _outer_axis_inner(shape, axis):
    return prod(shape[:axis]), dim(shape[axis]), prod(shape[axis + 1:])


@emitter("argmax")
def _argmax(kernel: Kernel, ctx: Context) -> str:
    node = kernel.root
    x = node.inputs[0]
    axis = node.attrs["axis"]
    if axis is None:
        outer, length, inner = "1", prod(x.shape), "1"
    else:
        outer, length, inner = _outer_axis_inner(x.shape, axis)
    px, po = _p(ctx, x), _p(ctx, node, False)
    return f"""for (int64_t o = 0; o < {outer}; o++) for (int64_t i = 0; i < {inner}; i++) {{
    const {ctx.ctype(x)} *row = {px} + o * {length} * {inner} + i;
    int64_t best = 0;
    for (int64_t a = 1; a < {length}; a++) {{
        if (row[a * {inner}] > row[best * {inner}] ||
            (row[a * {inner}] != row[a * {inner}] && row[best * {inner}] == row[best * {inner}]))
            best = a;
    }}
    {po}[o * {inner} + i] = best;
}}"""


@emitter("softmax", "log_softmax")
def _softmax(kernel: Kernel, ctx: Context) -> str:
    node = kernel.root
    x = node.inputs[0]
    outer, length, inner = _outer_axis_inner(x.shape, node.attrs["axis"])
    t = ctx.ctype(node)
    f = "f" if node.dtype == "float32" else ""
    exp = "gc_expf" if f else "exp"  # cprinter.helpers: a float32 exp that vectorizes
    px, po = _p(ctx, x), _p(ctx, node, False)
    if node.op.name == "softmax":
        finish = f"for (int64_t a = 0; a < {length}; a++) y[a * {inner}] = ({t})(y[a * {inner}] / s);"
        expo = f"y[a * {inner}] = {exp}(z[a * {inner}] - m); s += y[a * {inner}];"
    else:
        finish = (f"const {t} ls = ({t})log(s);\n        for (int64_t a = 0; a < {length}; a++) "
                  f"y[a * {inner}] = z[a * {inner}] - m - ls;")
        expo = f"s += {exp}(z[a * {inner}] - m);"
    return f"""#pragma omp parallel for collapse(2) if({prod(x.shape)} >= {PARALLEL_MIN})
for (int64_t o = 0; o < {outer}; o++) for (int64_t i = 0; i < {inner}; i++) {{
        const {t} *z = {px} + o * {length} * {inner} + i;
        {t} *y = {po} + o * {length} * {inner} + i;
        {t} m = -INFINITY;
        for (int64_t a = 0; a < {length}; a++) if (z[a * {inner}] > m) m = z[a * {inner}];
        if (!isfinite(m)) m = 0;
        double s = 0.0;
        #pragma omp simd reduction(+:s)
        for (int64_t a = 0; a < {length}; a++) {{ {expo} }}
        {finish}
}}"""


@emitter("one_hot")
def _one_hot(kernel: Kernel, ctx: Context) -> str:
    node = kernel.root
    labels = node.inputs[0]
    depth = node.attrs["depth"]
    pl, po = _p(ctx, labels), _p(ctx, node, False)
    return f"""for (int64_t r = 0; r < {prod(labels.shape)}; r++)
    for (int64_t c = 0; c < {depth}; c++) {po}[r * {depth} + c] = ({ctx.ctype(node)})({pl}[r] == c);"""


@emitter("transpose")
def _transpose(kernel: Kernel, ctx: Context) -> str:
    node = kernel.root
    x = node.inputs[0]
    axes = node.attrs["axes"]
    xs = strides(x.shape)
    lv = [f"i{k}" for k in range(node.ndim)]
    src = " + ".join(f"{v}*{xs[a]}" for v, a in zip(lv, axes)) or "0"
    dst = " + ".join(f"{v}*{s}" for v, s in zip(lv, strides(node.shape))) or "0"
    inner = f"{_p(ctx, node, False)}[{dst}] = {_p(ctx, x)}[{src}];"
    return loops_serial([dim(d) for d in node.shape], lv, inner)


def _slice_map(node: Tensor, x: Tensor):
    """(output dims, loop vars, input index expression) of a basic slice."""
    index = node.attrs["index"]
    index = tuple(index) + ((None, None, None),) * (x.ndim - len(index))
    xs = strides(x.shape)
    out_dims, lv, terms = [], [], []
    for k, (d, i) in enumerate(zip(x.shape, index)):
        if isinstance(i, int):
            terms.append(f"{i}*{xs[k]}")
            continue
        v = f"i{len(lv)}"
        lv.append(v)
        if d is None:
            out_dims.append("N")
            terms.append(f"{v}*{xs[k]}")
            continue
        start, _, step = slice(*i).indices(d)
        out_dims.append(str(len(range(*slice(*i).indices(d)))))
        terms.append(f"({start} + {v}*{step})*{xs[k]}")
    return out_dims, lv, " + ".join(terms) or "0"


@emitter("slice")
def _slice(kernel: Kernel, ctx: Context) -> str:
    node = kernel.root
    x = node.inputs[0]
    dims, lv, src = _slice_map(node, x)
    dst = " + ".join(f"{v}*{s}" for v, s in zip(lv, strides(tuple(dims)))) or "0"
    return loops_serial(dims, lv, f"{_p(ctx, node, False)}[{dst}] = {_p(ctx, x)}[{src}];")


@emitter("slice_grad")
def _slice_grad(kernel: Kernel, ctx: Context) -> str:
    node = kernel.root
    (g,) = node.inputs
    dims, lv, dst = _slice_map(node, node)
    src = " + ".join(f"{v}*{s}" for v, s in zip(lv, strides(tuple(dims)))) or "0"
    out = _p(ctx, node, False)
    return (f"memset({out}, 0, {ctx.nbytes(node)});\n"
            + loops_serial(dims, lv, f"{out}[{dst}] = {_p(ctx, g)}[{src}];"))


@emitter("concat")
def _concat(kernel: Kernel, ctx: Context) -> str:
    node = kernel.root
    axis = node.attrs["axis"]
    outer = prod(node.shape[:axis])
    inner = prod(node.shape[axis + 1:])
    row = f"({dim(node.shape[axis])})*{inner}"
    code, start = [], 0
    for x in node.inputs:
        chunk = f"({x.shape[axis]})*{inner}"
        code.append(f"for (int64_t o = 0; o < {outer}; o++) memcpy({_p(ctx, node, False)} + o*{row} + "
                    f"{start}*{inner}, {_p(ctx, x)} + o*{chunk}, sizeof({ctx.ctype(node)})*{chunk});")
        start += x.shape[axis]
    return "\n".join(code)


# -- matmul -----------------------------------------------------------------------------------

def _mat_dims(t: Tensor, transposed: bool):
    rows, cols = t.shape[-2], t.shape[-1]
    return (cols, rows) if transposed else (rows, cols)


@emitter("matmul")
def _matmul(kernel: Kernel, ctx: Context) -> str:
    node = kernel.root
    a, b = node.inputs
    ta, tb = node.attrs["transpose_a"], node.attrs["transpose_b"]
    m, k = _mat_dims(a, ta)
    _, n = _mat_dims(b, tb)
    pre = _prefix(node)
    lda, ldb = dim(a.shape[-1]), dim(b.shape[-1])
    args = (f"{int(ta)}, {int(tb)}, {_int(m)}, {_int(n)}, {_int(k)}, 1, {{A}}, {lda}, {{B}}, {ldb}, "
            f"0, {{C}}, {dim(n)}")
    ctx.workspaces.append(f"gc_{pre}gemm_workspace_size({_int(m)}, {_int(n)}, {_int(k)})")
    if kernel.members:  # 2-D with a fused epilogue: the hook GEMM calls epilogue_prelude's tile fn
        returns = host_output(kernel)
        call = args.format(A=_p(ctx, a), B=_p(ctx, b), C=_p(ctx, returns, False))
        return (_HOOK_SETUP.format(tile=kernel.name + "_tile", owns=int(kernel.scratch_root))
                + f"gc_{pre}gemm_hook({call}, gc_ws, gc_ws_bytes, &hook);")
    if node.ndim == 2:
        call = args.format(A=_p(ctx, a), B=_p(ctx, b), C=_p(ctx, node, False))
        return f"gc_{pre}gemm({call}, gc_ws, gc_ws_bytes);"
    # batched, with NumPy broadcasting of the batch dimensions
    batch = node.shape[:-2]
    lv = [f"b{j}" for j in range(len(batch))]
    flat = " + ".join(f"{v}*{s}" for v, s in zip(lv, strides(batch))) or "0"

    def offset(t: Tensor) -> str:
        lead = len(batch) - (t.ndim - 2)
        own = strides(t.shape)
        terms = []
        for j in range(len(batch)):
            tj = j - lead
            if tj >= 0 and t.shape[tj] != 1:
                terms.append(f"{lv[j]}*{own[tj]}")
        return " + ".join(terms) or "0"

    call = args.format(A=f"{_p(ctx, a)} + ({offset(a)})", B=f"{_p(ctx, b)} + ({offset(b)})",
                       C=f"{_p(ctx, node, False)} + ({flat})*{prod(node.shape[-2:])}")
    return loops_serial([dim(d) for d in batch], lv, f"gc_{pre}gemm({call}, gc_ws, gc_ws_bytes);")


#: what a fused kernel's function sets up before calling a hook GEMM / conv (kernels/gemm.h)
_HOOK_SETUP = ("const gc_ctx_t gctx = {{N, step, arena, feeds, vars, consts}};\n"
               "const gc_hook_t hook = {{{tile}, {owns}, &gctx}};\n")

#: file-scope type of the hooks above: it begins like gemm.h's gc_epi_head (the tile function,
#: then owns_store: 1 when the matmul's product is scratch, see Kernel.scratch_root)
HOOK_TYPEDEF = "typedef struct { gc_epi_fn fn; int owns_store; const gc_ctx_t *g; } gc_hook_t;\n"


def _tile_fn(kernel: Kernel, ctx: Context, fn_name: str, conv: bool) -> str:
    """The gc_epi_fn a hook GEMM calls on each stored block: the epilogue function of every
    element of the block, in a loop the compiler vectorizes (kernels/gemm.h, conv2d.h)."""
    t = ctx.ctype(kernel.root)
    fields = ", ".join(f"g->{f}" for f in ("N", "step", "arena", "feeds", "vars", "consts"))
    if conv:  # e is the conv driver's gc_conv_ectx {fn, 0, &hook, image}
        head = ("const gc_conv_ectx *ce = (const gc_conv_ectx *)e;\n"
                "    const gc_ctx_t *g = ((const gc_hook_t *)ce->ctx)->g;\n"
                "    const int64_t img = ce->n;\n")
        extra = "img, "
    else:
        head = "const gc_ctx_t *g = ((const gc_hook_t *)e)->g;\n"
        extra = ""
    call = f"{fn_name}({fields}, {extra}i0 + i, j0 + j, r[j])"
    # a scratch product (owns_store) is only read: the epilogue stores what it computes
    store = f"(void){call}" if kernel.scratch_root else f"r[j] = {call}"
    return (f"static void {kernel.name}_tile(const void *e, int i0, int j0, int bm, int bn, void *cv,"
            f" ptrdiff_t ldc) {{\n"
            f"    {head}"
            f"    {t} *c = ({t} *)cv;\n"
            f"    for (int i = 0; i < bm; i++) {{\n"
            f"        {t} *r = c + (ptrdiff_t)i * ldc;\n"
            f"        #pragma omp simd\n"
            f"        for (int j = 0; j < bn; j++)\n"
            f"            {store};\n"
            f"    }}\n}}\n")


def epilogue_prelude(kernel: Kernel, ctx: Context) -> str:
    """File-scope code of a matmul or conv2d(_backward_data) kernel with an epilogue: the
    element function and the tile hook that applies it. A matmul's GEMM calls the hook on
    (row, column) blocks as it stores them; the conv forward's on blocks of image n's
    output (o, oh*OW + ow), the backward-data pass on the whole (c, ih*W + iw) image right
    after col2im (kernels/gemm.h, conv2d.h)."""
    conv = kernel.kind != "matmul"
    axes = [("n", 1), ("i", 1), ("j", 2)] if conv else [("i", 1), ("j", 1)]
    fn_code, fn_name = emit_epilogue_fn(kernel, ctx, axes, host_output(kernel), kernel.root)
    return fn_code + _tile_fn(kernel, ctx, fn_name, conv)


# -- convolution and pooling ------------------------------------------------------------------

def _conv_args(x: Tensor, w_shape, attrs) -> str:
    (sh, sw), (ph, pw) = attrs["stride"], attrs["padding"]
    n, c, h, wd = x.shape
    return (f"{_int(n)}, {c}, {h}, {wd}, {w_shape[0]}, {w_shape[2]}, {w_shape[3]}, "
            f"{sh}, {sw}, {ph}, {pw}")


def _conv_ws(ctx: Context, node: Tensor, kind: str, args: str) -> None:
    ctx.workspaces.append(f"gc_{_prefix(node)}conv2d_{kind}_workspace_size({args})")


def _conv_fused_call(kernel: Kernel, ctx: Context, args: str, a: Tensor, b: Tensor) -> str:
    """Call the hook conv (its tile function comes from ``epilogue_prelude``)."""
    node = kernel.root
    returns = host_output(kernel)
    which = "forward" if node.op.name == "conv2d" else "backward_data"
    return (_HOOK_SETUP.format(tile=kernel.name + "_tile", owns=0)
            + f"gc_{_prefix(node)}conv2d_{which}_hook({args}, {_p(ctx, a)}, {_p(ctx, b)}, "
            f"{_p(ctx, returns, False)}, gc_ws, gc_ws_bytes, &hook);")


@emitter("conv2d")
def _conv2d(kernel: Kernel, ctx: Context) -> str:
    node = kernel.root
    x, w = node.inputs
    args = _conv_args(x, w.shape, node.attrs)
    _conv_ws(ctx, node, "forward", args)
    if kernel.members:  # fused epilogue (epilogue_prelude), applied as the GEMM stores
        return _conv_fused_call(kernel, ctx, args, x, w)
    return (f"gc_{_prefix(node)}conv2d_forward({args}, "
            f"{_p(ctx, x)}, {_p(ctx, w)}, {_p(ctx, node, False)}, gc_ws, gc_ws_bytes);")


@emitter("conv2d_backward_data")
def _conv2d_bd(kernel: Kernel, ctx: Context) -> str:
    node = kernel.root
    gy, w = node.inputs
    args = _conv_args(node, w.shape, node.attrs)
    _conv_ws(ctx, node, "backward_data", args)
    if kernel.members:  # fused epilogue (epilogue_prelude), applied per image after col2im
        return _conv_fused_call(kernel, ctx, args, gy, w)
    return (f"gc_{_prefix(node)}conv2d_backward_data({args}, "
            f"{_p(ctx, gy)}, {_p(ctx, w)}, {_p(ctx, node, False)}, gc_ws, gc_ws_bytes);")


@emitter("conv2d_backward_filter")
def _conv2d_bf(kernel: Kernel, ctx: Context) -> str:
    node = kernel.root
    x, gy = node.inputs
    _conv_ws(ctx, node, "backward_filter", _conv_args(x, node.shape, node.attrs))
    return (f"gc_{_prefix(node)}conv2d_backward_filter({_conv_args(x, node.shape, node.attrs)}, "
            f"{_p(ctx, x)}, {_p(ctx, gy)}, {_p(ctx, node, False)}, gc_ws, gc_ws_bytes);")


def _pool_args(x: Tensor, attrs) -> str:
    (kh, kw), (sh, sw), (ph, pw) = attrs["kernel"], attrs["stride"], attrs["padding"]
    n, c, h, w = x.shape
    return f"{_int(n)}, {c}, {h}, {w}, {kh}, {kw}, {sh}, {sw}, {ph}, {pw}"


@emitter("max_pool2d", "avg_pool2d")
def _pool(kernel: Kernel, ctx: Context) -> str:
    node = kernel.root
    x = node.inputs[0]
    kind = node.op.name.split("_")[0]
    return (f"gc_{_prefix(node)}{kind}_pool2d_forward({_pool_args(x, node.attrs)}, "
            f"{_p(ctx, x)}, {_p(ctx, node, False)});")


@emitter("max_pool2d_backward")
def _max_pool_bwd(kernel: Kernel, ctx: Context) -> str:
    node = kernel.root
    x, gy = node.inputs
    return (f"gc_{_prefix(node)}max_pool2d_backward({_pool_args(x, node.attrs)}, "
            f"{_p(ctx, x)}, {_p(ctx, gy)}, {_p(ctx, node, False)});")


@emitter("avg_pool2d_backward")
def _avg_pool_bwd(kernel: Kernel, ctx: Context) -> str:
    node = kernel.root
    (gy,) = node.inputs
    return (f"gc_{_prefix(node)}avg_pool2d_backward({_pool_args(node, node.attrs)}, "
            f"{_p(ctx, gy)}, {_p(ctx, node, False)});")


@emitter("max_pool2d_select")
def _max_pool_select(kernel: Kernel, ctx: Context) -> str:
    node = kernel.root
    x, gx = node.inputs
    (kh, kw), (sh, sw), (ph, pw) = node.attrs["kernel"], node.attrs["stride"], node.attrs["padding"]
    _, c, h, w = x.shape
    _, _, oh, ow = node.shape
    t = ctx.ctype(node)
    return f"""#pragma omp parallel for if({prod(node.shape)} >= {PARALLEL_MIN})
for (int64_t pl = 0; pl < {prod(x.shape[:2])}; pl++) {{
    const {t} *xp = {_p(ctx, x)} + pl * {h * w};
    const {t} *gp = {_p(ctx, gx)} + pl * {h * w};
    {t} *yp = {_p(ctx, node, False)} + pl * {oh * ow};
    for (int oy = 0; oy < {oh}; oy++) for (int ox = 0; ox < {ow}; ox++) {{
        int best = -1; {t} bv = 0;
        for (int a = 0; a < {kh}; a++) for (int b = 0; b < {kw}; b++) {{
            int iy = oy * {sh} + a - {ph}, ix = ox * {sw} + b - {pw};
            if (iy < 0 || iy >= {h} || ix < 0 || ix >= {w}) continue;
            {t} v = xp[iy * {w} + ix];
            if (best < 0 || v > bv || (v != v && bv == bv)) {{ best = iy * {w} + ix; bv = v; }}
        }}
        yp[oy * {ow} + ox] = best >= 0 ? gp[best] : 0;
    }}
}}"""
