"""Emit fused elementwise loops, reduction prologues and matmul epilogues.

A fused body is the composition of its members' sympy expressions (inputs
from outside the kernel become load symbols), with common subexpressions
removed by ``sympy.cse`` and printed by the one C printer.
"""

from __future__ import annotations

import sympy

from ..ir.graph import Tensor
from .context import Context, prod, strides
from .cprinter import print_expr
from .fusion import Kernel, data_inputs

PARALLEL_MIN = 1 << 15  # elements below which a loop stays on one thread


def load_symbol(j: int) -> sympy.Symbol:
    return sympy.Symbol(f"l{j}", real=True)


def compose(members: list[Tensor], loads: list[Tensor]) -> dict[int, sympy.Expr]:
    """Each member's value as one expression over the load symbols."""
    index = {t.id: j for j, t in enumerate(loads)}
    env: dict[int, sympy.Expr] = {}

    def arg(t: Tensor) -> sympy.Expr:
        if t.id in env:
            return env[t.id]
        if t.op.name == "constant" and t.value.size == 1:  # scalars become literals
            v = t.value.reshape(())
            return sympy.Integer(int(v)) if t.dtype in ("bool", "int32", "int64") else sympy.Float(
                float(v), 17)
        return load_symbol(index[t.id])

    for m in members:
        args = [arg(i) for i in data_inputs(m)]
        env[m.id] = m.op.scalar(m, args)
    return env


def body(outputs: list[tuple[str, sympy.Expr]], loads: list[Tensor], load_index: list[str],
         ctx: Context, dtype: str, flat: str, indent: str) -> str:
    """Statements computing ``outputs`` (C lvalue, expression) for one element."""
    names = {}
    lines = []
    used = set().union(*(e.free_symbols for _, e in outputs)) if outputs else set()
    for j, t in enumerate(loads):
        s = load_symbol(j)
        if s in used:
            names[s] = f"l{j}"
            lines.append(f"const {ctx.ctype(t)} l{j} = {ctx.ptr(t)}[{load_index[j]}];")
    temps, reduced = sympy.cse([e for _, e in outputs], symbols=sympy.numbered_symbols("t"))
    ctype = {"float32": "float", "float64": "double"}.get(dtype, "double")
    for sym, e in temps:
        names[sym] = str(sym)
        lines.append(f"const {ctype} {sym} = {print_expr(e, names, dtype, flat)};")
    for (lhs, _), e in zip(outputs, reduced):
        lines.append(f"{lhs} = {print_expr(e, names, dtype, flat)};")
    return "\n".join(indent + ln for ln in lines)


def _broadcast_strides(t: Tensor, shape: tuple) -> list[str]:
    """Element strides of ``t`` read in the iteration space ``shape`` (0: broadcast)."""
    own = strides(t.shape)
    lead = len(shape) - t.ndim
    out = []
    for k in range(len(shape)):
        j = k - lead
        out.append("0" if j < 0 or (t.shape[j] == 1 and shape[k] != 1) else own[j])
    return out


def collapse(shape: tuple, patterns: list[list[str]], classes=None):
    """Merge adjacent dims where every load is uniformly broadcast or contiguous.

    ``classes`` (one label per dim, e.g. reduced/kept) must also agree. Returns
    collapsed dims (C text), per-pattern collapsed strides and the collapsed
    dims' classes.
    """
    dims: list[list] = []
    out: list[list[str]] = [[] for _ in patterns]
    labels: list = []
    prev = None
    for k, d in enumerate(shape):
        if d == 1:
            continue
        label = classes[k] if classes else None
        sig = tuple(p[k] == "0" for p in patterns) + (label,)
        if dims and sig == prev:
            dims[-1].append(d)
            for j, p in enumerate(patterns):
                out[j][-1] = p[k]  # inner stride of the merged block
        else:
            dims.append([d])
            labels.append(label)
            for j, p in enumerate(patterns):
                out[j].append(p[k])
        prev = sig
    return [prod(d) for d in dims], out, labels


def _index(loop_vars: list[str], stride: list[str]) -> str:
    terms = [f"{v}*{s}" if s != "1" else v for v, s in zip(loop_vars, stride) if s != "0"]
    return " + ".join(terms) or "0"


def loops(dims: list[str], inner: str, total: str) -> str:
    """A loop nest over ``dims`` (vars i0, i1, ...), parallel outside, simd inside."""
    if not dims:
        return "{\n" + inner + "\n}"
    code = inner
    for k in reversed(range(len(dims))):
        head = f"for (int64_t i{k} = 0; i{k} < {dims[k]}; i{k}++) {{"
        pragma = ""
        if k == 0 and len(dims) == 1:
            pragma = f"#pragma omp parallel for simd if({total} >= {PARALLEL_MIN})\n"
        elif k == 0:
            pragma = f"#pragma omp parallel for if({total} >= {PARALLEL_MIN})\n"
        elif k == len(dims) - 1:
            pragma = "#pragma omp simd\n"
        code = f"{pragma}{head}\n{code}\n}}"
    return code


def emit_group(kernel: Kernel, ctx: Context) -> str:
    """A fused elementwise kernel (also used for single int/bool elementwise roots)."""
    members = kernel.members if kernel.root is None else [kernel.root]
    shape = kernel.shape
    loads = kernel.loads()
    env = compose(members, loads)
    calc = _calc_dtype(members, loads)
    patterns = [_broadcast_strides(t, shape) for t in loads]
    patterns += [strides(shape)] * len(kernel.stores)
    dims, st, _ = collapse(shape, patterns)
    loop_vars = [f"i{k}" for k in range(len(dims))]
    full = _index(loop_vars, strides_of(dims))
    load_index = [_index(loop_vars, s) for s in st[: len(loads)]]
    outputs = [(f"{ctx.ptr(n, const=False)}[{full}]", env[n.id]) for n in kernel.stores]
    code = body(outputs, loads, load_index, ctx, calc, full, "    ")
    return loops(dims, code, prod(shape) if shape else "1")


def strides_of(dims: list[str]) -> list[str]:
    return [prod(dims[k + 1:]) for k in range(len(dims))]


def _calc_dtype(members, loads) -> str:
    """The arithmetic type: the float dtype involved, else int64."""
    for t in list(members) + list(loads):
        if t.dtype in ("float32", "float64"):
            return t.dtype
    return "int64"


def axes_index(axes: list[tuple[str, int]], pattern: list[str], shape: tuple) -> str:
    """Index expression of an element read with strides ``pattern`` over ``shape``.

    ``axes`` splits the dims of ``shape`` among index variables, in order: (name, number
    of dims), e.g. [("n", 1), ("i", 1), ("j", 2)] for a conv output (N, O, OH, OW) seen as
    (N, O, OH*OW). Within one variable's dims, neighbours that are contiguous (or both
    broadcast) merge; what remains is recovered from the variable by ``/`` and ``%``.
    """
    terms, k = [], 0
    for var, count in axes:
        merged: list[list] = []  # [size, stride] from outer to inner
        for d, s in zip(shape[k:k + count], pattern[k:k + count]):
            if d == 1:
                continue
            if merged and d is not None and merged[-1][0] is not None and (
                    (merged[-1][1] == "0" and s == "0")
                    or (merged[-1][1].isdigit() and s.isdigit() and int(merged[-1][1]) == int(s) * d)):
                merged[-1] = [merged[-1][0] * d, s]
                continue
            merged.append([d, s])
        k += count
        inner, mine = 1, []
        for q in reversed(range(len(merged))):
            d, s = merged[q]
            if s != "0":
                e = var if inner == 1 else f"({var} / {inner})"
                e = f"({e} % {d})" if q > 0 else e
                mine.append(e if s == "1" else f"{e}*{s}")
            inner = inner * d if d is not None and q > 0 else inner
        terms += reversed(mine)
    return " + ".join(terms) or "0"


def emit_epilogue_fn(kernel: Kernel, ctx: Context, axes: list[tuple[str, int]], returns: Tensor | None,
                     value: Tensor) -> tuple[str, str]:
    """A static inline function applying ``kernel``'s epilogue at one element of ``value``.

    ``value`` is the host's output (the accumulator ``v``); ``axes`` names the
    function's index parameters and the dims of ``value`` each covers (see
    :func:`axes_index`): [("i", 1), ("j", 1)] for a matmul, [("n", 1), ("i", 1),
    ("j", 2)] for a conv2d. The function stores every epilogue value the plan
    keeps and returns ``returns``'s value (what the host writes to its own
    output buffer). Returns (C code, function name).
    """
    loads = [t for t in kernel.loads() if t is not value]
    v = sympy.Symbol("v", real=True)
    env = {k: e.xreplace({load_symbol(len(loads)): v})
           for k, e in compose(kernel.members, loads + [value]).items()}
    shape = value.shape
    load_index = [axes_index(axes, _broadcast_strides(t, shape), shape) for t in loads]
    flat = axes_index(axes, strides(shape), shape)
    dtype = value.dtype
    outputs = [(f"{ctx.ptr(n, const=False)}[{flat}]", env[n.id])
               for n in kernel.stores if n is not returns and n is not value]
    result = env[returns.id] if returns is not None and returns is not value else v
    outputs.append(("return", result))
    code = body(outputs, loads, load_index, ctx, dtype, flat, "    ")
    code = code.replace("    return = ", "    return ")
    ctype = ctx.ctype(value)
    name = f"{kernel.name}_epilogue"
    params = "".join(f"int64_t {var}, " for var, _ in axes)
    unused = "".join(f" (void){var};" for var, _ in axes)
    fn = (f"static inline {ctype} {name}(int64_t N, uint64_t step, char *arena, void *const *feeds,"
          f" void *const *vars, const void *const *consts, {params}{ctype} v) {{\n"
          f"    (void)N; (void)step; (void)arena; (void)feeds; (void)vars; (void)consts;{unused}\n"
          f"{code}\n}}\n")
    return fn, name


def emit_reduce(kernel: Kernel, ctx: Context) -> str:
    """sum / mean / max over any axes, with the input computed by a fused prologue."""
    root = kernel.root
    x = root.inputs[0]
    axes = set(root.attrs["axes"])
    if kernel.members:
        loads = kernel.loads()
        env = compose(kernel.members, loads)
        value_expr = env[x.id]
    else:
        loads = [x]
        value_expr = load_symbol(0)
    shape = x.shape
    patterns = [_broadcast_strides(t, shape) for t in loads]
    kept_strides = _kept_strides(shape, axes)
    classes = ["r" if k in axes else "k" for k in range(len(shape))]
    dims, st, cls = collapse(shape, patterns + [kept_strides], classes)
    loop_vars = [f"i{k}" for k in range(len(dims))]
    load_index = [_index(loop_vars, s) for s in st[: len(loads)]]
    out_index = _index(loop_vars, st[-1])
    flat = _index(loop_vars, strides_of(dims))
    out = ctx.ptr(root, const=False)
    op = root.op.name
    ctype = ctx.ctype(root)
    count = prod([shape[a] for a in sorted(axes)])
    out_size = prod(root.shape)
    calc = _calc_dtype([root], loads)
    value_code = body([("const double v", value_expr)], loads, load_index, ctx, calc, flat, "        ")
    if op == "max":
        combine = "acc = (v > acc || v != v) ? v : acc;"
        init, finish = "-INFINITY", "acc"
    else:
        combine = "acc += v;"
        init = "0.0"
        finish = f"acc / (double)({count})" if op == "mean" else "acc"
    streams = bool(cls) and cls[-1] == "k" and "r" in cls  # innermost dim kept
    if not streams:
        # kept dims outside, reduced dims inside (in memory order, so the innermost loop
        # reads contiguously): one register accumulator per output. A sum's innermost loop
        # is a SIMD reduction (a fixed, deterministic order); NCHW bias gradients (sum over
        # n, h, w) take this path too.
        kept = [k for k in range(len(cls)) if cls[k] == "k"]
        red = [k for k in range(len(cls)) if cls[k] == "r"]
        inner = loops_serial([dims[k] for k in red], [loop_vars[k] for k in red],
                             f"{value_code}\n        {combine}",
                             "" if op == "max" else "#pragma omp simd reduction(+:acc)\n")
        head = "\n".join(f"for (int64_t {loop_vars[k]} = 0; {loop_vars[k]} < {dims[k]}; "
                         f"{loop_vars[k]}++) {{" for k in kept)
        pragma = (f"#pragma omp parallel for if({prod(shape) or 1} >= {PARALLEL_MIN} && "
                  f"{out_size} > 1)\n") if kept else ""
        code = (f"{pragma}{head}\n    double acc = {init};\n{inner}\n"
                f"    {out}[{out_index}] = ({ctype})({finish});\n" + "}" * len(kept))
        return code if kept else "{\n" + code + "\n}"
    # the innermost dim is kept (column sums of a matrix ...): stream through the input,
    # accumulating into a double scratch array, then convert
    inner = loops_serial(dims, loop_vars, f"{value_code}\n        double acc = tmp[{out_index}];\n"
                         f"        {combine}\n        tmp[{out_index}] = acc;")
    # the double accumulators live in the arena's workspace: a step never mallocs, so it
    # cannot fail half-way (after in-place variable updates) for want of memory
    ctx.workspaces.append(f"sizeof(double) * (size_t)({out_size} > 0 ? {out_size} : 1)")
    return (f"{{\n    double *tmp = (double *)gc_ws; (void)gc_ws_bytes;\n"
            f"    for (int64_t o = 0; o < {out_size}; o++) tmp[o] = {init};\n{inner}\n"
            f"    for (int64_t o = 0; o < {out_size}; o++) {out}[o] = ({ctype})"
            f"({'tmp[o] / (double)(' + count + ')' if op == 'mean' else 'tmp[o]'});\n}}")


def loops_serial(dims: list[str], loop_vars: list[str], inner: str, pragma: str = "") -> str:
    """Nested for loops around ``inner``; ``pragma`` (a line) goes before the innermost."""
    code = inner
    for k in reversed(range(len(dims))):
        v = loop_vars[k]
        head = pragma if k == len(dims) - 1 else ""
        code = f"{head}for (int64_t {v} = 0; {v} < {dims[k]}; {v}++) {{\n{code}\n}}"
    return code


def _kept_strides(shape: tuple, axes: set) -> list[str]:
    kept = [d for k, d in enumerate(shape) if k not in axes]
    own = strides(tuple(kept))
    out, j = [], 0
    for k in range(len(shape)):
        if k in axes:
            out.append("0")
        else:
            out.append(own[j])
            j += 1
    return out
