"""Lowering of elementwise work: fused loops, the formulas of reduction prologues and
of matmul/conv epilogues, and dtype casts.

A fused body is the composition of its members' scalar formulas (``Op.scalar``;
inputs from outside the kernel become load symbols ``l0, l1 ...``), with repeated
subexpressions computed once (temporaries ``t0, t1 ...``). Loops run over the output's
iteration space with adjacent dimensions merged wherever every load is uniformly
contiguous or broadcast there.

Composition changes no IEEE result: formulas are substituted into each other without
sympy's automatic evaluation (which would fold ``x - x`` to 0, ``x * 0.0`` to 0, ``x / x``
to 1 and ``1 / (x - x)`` to ComplexInfinity, and re-associate sums), each op's operations
stay in the order its formula gives, and a scalar constant becomes a literal only when the
literal is that exact value (``-0.0``, infinities and NaN are loaded).

Example::

    relu(x * w + b) on (N, 4), w and b of shape (4,): one loop nest
    for i0 < N (threads) { for i1 < 4 (vector) { l0 = x[i0*4 + i1]; l1 = w[i1]; ... } }
"""

from __future__ import annotations

import math

import sympy

from ..ir.dtypes import FLOATS
from ..ir.graph import Kind, Tensor
from ..ops import scalar as S
from ..ops.elemwise import Cast as CastOp
from . import ir
from .fusion import Group
from .ir import (
    ZERO,
    Bin,
    Epilogue,
    Expr,
    Let,
    Lit,
    Load,
    Loop,
    Math,
    Store,
    Sym,
    add,
    mul,
    prod,
    size,
    strides,
)
from .memplan import Plan
from .registry import lowers
from .views import layout, part_strides


def load_symbol(j: int) -> sympy.Symbol:
    return sympy.Symbol(f"l{j}", real=True)


def literal(t: Tensor) -> sympy.Expr | None:
    """A scalar constant as a literal, or None when it must be loaded: a literal stands
    for its exact value, and sympy has no -0.0 and folds arithmetic with oo and nan."""
    if t.op.kind is not Kind.CONSTANT or t.value.size != 1:
        return None
    v = t.value.reshape(())
    if t.dtype not in FLOATS:
        return sympy.Integer(int(v))
    f = float(v)
    if not math.isfinite(f) or (f == 0.0 and math.copysign(1.0, f) < 0):
        return None
    return sympy.Float(f, 17)


def compose(members: list[Tensor], loads: list[Tensor]) -> dict[int, sympy.Expr]:
    """Each member's value (by node id) as one formula over the load symbols, unevaluated
    (see the module docstring): ``x - x`` stays ``l0 - l0``."""
    index = {t.id: j for j, t in enumerate(loads)}
    env: dict[int, sympy.Expr] = {}

    def arg(t: Tensor) -> sympy.Expr:
        if t.id in env:
            return env[t.id]
        lit = literal(t)
        return lit if lit is not None else load_symbol(index[t.id])

    with sympy.evaluate(False):
        for m in members:
            env[m.id] = m.op.scalar(m, [arg(i) for i in m.inputs])
    return env


def substitute(expr: sympy.Expr, subs: dict) -> sympy.Expr:
    """``expr.xreplace(subs)`` without re-evaluating the composed formula."""
    with sympy.evaluate(False):
        return expr.xreplace(subs)


def common_subexpressions(values: list[sympy.Expr]) -> tuple[list, list[sympy.Expr]]:
    """(temporaries, reduced values): each subexpression occurring more than once becomes a
    temporary ``t0, t1 ...`` computed once. Unlike ``sympy.cse`` it neither re-evaluates
    (``t0 - t0`` stays) nor regroups sums and products; conditions stay inline."""
    seen: set = set()
    repeated: set = set()

    def find(e: sympy.Basic) -> None:
        if not e.args:
            return
        if e in seen:
            repeated.add(e)
            return
        seen.add(e)
        for a in e.args:
            find(a)

    for v in values:
        find(v)
    temps: list = []
    done: dict = {}

    def rebuild(e: sympy.Basic) -> sympy.Basic:
        if not e.args:
            return e
        if e in done:
            return done[e]
        args = [rebuild(a) for a in e.args]
        new = e.func(*args) if any(a is not b for a, b in zip(args, e.args)) else e
        if e in repeated and isinstance(e, sympy.Expr):
            sym = sympy.Symbol(f"t{len(temps)}", real=True)
            temps.append((sym, new))
            new = sym
        done[e] = new
        return new

    with sympy.evaluate(False):
        reduced = [rebuild(v) for v in values]
    return temps, reduced


def calc_dtype(nodes) -> str:
    """The arithmetic type: the float dtype involved, else int64."""
    return next((t.dtype for t in nodes if t.dtype in FLOATS), "int64")


def math_block(values: list[sympy.Expr], loads: list[Tensor], load_index: list[Expr], plan: Plan,
               dtype: str, flat: Expr) -> tuple[list, list[Expr]]:
    """Statements loading what ``values`` use and computing their common subexpressions,
    and one expression per value."""
    used = set().union(*(v.free_symbols for v in values)) if values else set()
    stmts: list = [Let(f"l{j}", t.dtype, Load(plan.buffer(t), load_index[j]))
                   for j, t in enumerate(loads) if load_symbol(j) in used]
    temps, reduced = common_subexpressions(values)
    for sym, e in temps:
        stmts.append(Let(str(sym), dtype, Math(e, dtype, flat)))
    return stmts, [Math(e, dtype, flat) for e in reduced]


def broadcast_strides(t: Tensor, shape: tuple) -> list[Expr]:
    """Element strides of ``t`` read in the iteration space ``shape`` (0: broadcast); a
    strided slice view's own strides (add :func:`~graphc.lower.views.layout`'s offset)."""
    own = layout(t)[1]
    lead = len(shape) - t.ndim
    out: list[Expr] = []
    for k in range(len(shape)):
        j = k - lead
        out.append(ZERO if j < 0 or (t.shape[j] == 1 and shape[k] != 1) else own[j])
    return out


def collapse(shape: tuple, patterns: list[list[Expr]], classes=None):
    """Merge adjacent dims where every pattern is uniformly broadcast or not.

    ``classes`` (one label per dim, e.g. reduced/kept) must also agree. Returns the
    merged sizes, each pattern's merged strides (the inner stride of each block) and
    the merged dims' classes.
    """
    dims: list[list] = []
    out: list[list[Expr]] = [[] for _ in patterns]
    labels: list = []
    prev = None
    for k, d in enumerate(shape):
        if d == 1:
            continue
        label = classes[k] if classes else None
        sig = tuple(p[k] == ZERO for p in patterns) + (label,)
        # a strided view's rows are not contiguous: its dims merge only where they are
        follows = all(o[-1] == ZERO or o[-1] == mul(p[k], size(d)) for o, p in zip(out, patterns)) \
            if dims else False
        if dims and sig == prev and follows:
            dims[-1].append(d)
            for j, p in enumerate(patterns):
                out[j][-1] = p[k]
        else:
            dims.append([d])
            labels.append(label)
            for j, p in enumerate(patterns):
                out[j].append(p[k])
        prev = sig
    return [prod(d) for d in dims], out, labels


def index(loop_vars: list[str], stride: list[Expr]) -> Expr:
    """``sum(var * stride)`` over the loop variables."""
    return add(*(mul(Sym(v), s) for v, s in zip(loop_vars, stride) if s != ZERO))


def dense_index(loop_vars: list[str], dims: list[Expr]) -> Expr:
    """The row-major position of the element the loops over ``dims`` are at."""
    return index(loop_vars, [mul(*dims[k + 1:]) for k in range(len(dims))])


def loop_nest(dims: list[Expr], loop_vars: list[str], inner: list, work: Expr) -> list:
    """Loops over ``dims``: threads across the outermost, SIMD lanes in the innermost."""
    body = inner
    for k in reversed(range(len(dims))):
        outer, innermost = k == 0, k == len(dims) - 1
        body = [Loop(loop_vars[k], dims[k], body, threads=work if outer else None,
                     vector=innermost)]
    return body


def serial_nest(dims: list[Expr], loop_vars: list[str], inner: list, vector_reduce=None) -> list:
    """Plain loops; ``vector_reduce`` ((op, local) pairs) makes the innermost a SIMD reduction."""
    body = inner
    for k in reversed(range(len(dims))):
        last = k == len(dims) - 1 and vector_reduce is not None
        body = [Loop(loop_vars[k], dims[k], body, vector=last, reduce=vector_reduce if last else ())]
    return body


def lower_group(group: Group, plan: Plan) -> list:
    """A fused elementwise loop (also a single int/bool elementwise root)."""
    members = group.members if group.root is None else [group.root]
    shape = group.shape
    loads = group.loads()
    env = compose(members, loads)
    patterns = [broadcast_strides(t, shape) for t in loads]
    into = [plan.part_of(n) for n in group.stores]  # stored straight into a concatenation
    placed = [part_strides(p[0]) for p in into if p is not None]
    dims, st, _ = collapse(shape, patterns + placed + [strides(shape)])
    loop_vars = [f"i{k}" for k in range(len(dims))]
    flat = index(loop_vars, st[-1])
    load_index = [add(layout(t)[0], index(loop_vars, s)) for t, s in zip(loads, st)]
    stmts, values = math_block([env[n.id] for n in group.stores], loads, load_index, plan,
                               calc_dtype(members + loads), flat)
    at = iter(st[len(patterns):len(patterns) + len(placed)])
    stmts += [Store(plan.buffer(n), flat if p is None else add(p[1], index(loop_vars, next(at))), v)
              for n, v, p in zip(group.stores, values, into)]
    streams = sum(1 for t in loads if tuple(t.shape) == tuple(shape)) + len(group.stores)
    work = mul(prod(shape), Lit(work_per_element([env[n.id] for n in group.stores], streams)))
    return loop_nest(dims, loop_vars, stmts, work)


def work_per_element(values: list[sympy.Expr], streams: int) -> int:
    """A fused loop's work per element, in units of one load-add-store (what the threading
    threshold counts): half a unit per array of the loop's size read or written (``streams``;
    broadcast operands are cache-resident), eight per transcendental call (an LSTM cell's
    sigmoids and tanhs: 64 x 128 elements is worth two threads)."""
    calls = {f for v in values for f in v.atoms(sympy.Function) if S.transcendental(f)}
    return max(1, streams // 2 + 8 * len(calls))


@lowers(CastOp)
def lower_cast(group: Group, plan: Plan) -> list:
    """A dtype conversion (to bool: non-zero is true)."""
    node = group.root
    x = node.inputs[0]
    i = Sym("i0")
    value: Expr = Load(plan.buffer(x), i)
    value = Bin("!=", value, Lit(0, x.dtype)) if node.dtype == "bool" else value
    store = Store(plan.buffer(node), i, ir.Cast(node.dtype, value))
    return loop_nest([prod(node.shape)], ["i0"], [store], prod(node.shape))


def axes_index(axes: list[tuple[str, int]], pattern: list[Expr], shape: tuple) -> Expr:
    """Index of an element read with strides ``pattern`` over ``shape``, from index variables.

    ``axes`` splits the dims of ``shape`` among index variables, in order: (name, number
    of dims), e.g. [("n", 1), ("i", 1), ("j", 2)] for a conv output (N, O, OH, OW) seen as
    (N, O, OH*OW). Within one variable's dims, neighbours that are contiguous (or both
    broadcast) merge; what remains is recovered from the variable by ``/`` and ``%``.
    """
    terms: list[Expr] = []
    k = 0
    for var, count in axes:
        merged: list[list] = []  # [size, stride] from outer to inner
        for d, s in zip(shape[k:k + count], pattern[k:k + count]):
            if d == 1:
                continue
            if merged and d is not None and merged[-1][0] is not None and isinstance(s, Lit) and (
                    merged[-1][1] == ZERO and s == ZERO or (
                        isinstance(merged[-1][1], Lit) and merged[-1][1].value == s.value * d)):
                merged[-1] = [merged[-1][0] * d, s]
                continue
            merged.append([d, s])
        k += count
        inner = 1
        mine: list[Expr] = []
        for q in reversed(range(len(merged))):
            d, s = merged[q]
            if s != ZERO:
                e: Expr = Sym(var) if inner == 1 else Bin("/", Sym(var), Lit(inner))
                e = Bin("%", e, ir.size(d)) if q > 0 else e
                mine.append(mul(e, s))
            inner = inner * d if d is not None and q > 0 else inner
        terms += reversed(mine)
    return add(*terms)


def lower_epilogue(group: Group, plan: Plan, axes: list[tuple[str, int]], returns: Tensor,
                   value: Tensor, per_image: bool = False) -> Epilogue:
    """The elementwise members of a matmul/conv group as an element function.

    ``value`` is the host's output (its element is the local ``v``); ``axes`` name the
    function's index variables (see :func:`axes_index`). The function stores every
    member the plan keeps and returns ``returns``'s value, what the host writes to its
    own output (None when the host's product is scratch, ``scratch_root``).
    """
    loads = [t for t in group.loads() if t is not value]
    v = sympy.Symbol("v", real=True)
    env = {k: substitute(e, {load_symbol(len(loads)): v})
           for k, e in compose(group.members, loads + [value]).items()}
    shape = value.shape
    load_index = [add(layout(t)[0], axes_index(axes, broadcast_strides(t, shape), shape))
                  for t in loads]
    flat = axes_index(axes, strides(shape), shape)
    stored = [n for n in group.stores if n is not returns and n is not value]
    result = None if group.scratch_root else (env[returns.id] if returns is not value else v)
    values = [env[n.id] for n in stored] + ([result] if result is not None else [])
    stmts, exprs = math_block(values, loads, load_index, plan, value.dtype, flat)
    stmts += [Store(plan.buffer(n), flat, e) for n, e in zip(stored, exprs)]
    out = exprs[-1] if result is not None else None
    return Epilogue(f"{group.name}_epilogue", axes, value.dtype, stmts, out, per_image)

