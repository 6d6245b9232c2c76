"""``gc.scan``: a loop over a sequence, traced once into a body graph, and its gradient.

``scan(fn, init, xs)`` calls ``fn(carry, x_t)`` once, on placeholders, inside a graph of
its own (the body); tensors of the enclosing graph that ``fn`` reads (weights, other
values) become the body's *captures*: placeholders the scan feeds with their values. The
graph gets one :class:`Scan` node, whose value is a tuple (the final carries, the
stacked ``y_t`` and, when a gradient asks for them, the carries each step started from),
read through :class:`ScanOutput` projections. The sequence runs along the leading axis
inside; ``scan`` moves ``axis`` there and back.

The gradient of a scan is a scan in the other direction (backpropagation through
time): its body replays the forward body from the carry the step started with and
takes that replay's gradient, so the forward pass keeps only the carries per step; the
captures' gradients are summed over the steps as carries of the reverse scan.

Example::

    def step(h, x_t):
        h = gc.tanh(x_t @ W + h @ U)
        return h, h
    h_final, hs = gc.scan(step, h0, x)          # x (N, T, F) -> hs (N, T, H)
    dW, = gc.grad(gc.sum(hs), [W])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..ir import dtypes as _dt
from ..ir import shapes as _sh
from ..ir.errors import GraphcError, ShapeError, at, check_finite_value, user_site
from ..ir.graph import Graph, Kind, Op, Placeholder, Tensor, as_tensor, constant_node, get_default_graph, make
from ..ir.program import Program, rewrite, toposort
from ..ops.elemwise import Elemwise
from ..ops.linalg import MatMul, matmul_sum
from ..ops.reduce import broadcast_like
from ..ops.reduce import sum as _sum
from ..ops.scalar import transcendental
from ..ops.shape import transpose
from .autodiff import grad


class Body:
    """A traced step: ``inputs`` (placeholders: the carries, the ``x_t``, the captures) and
    ``outputs`` (the new carries, then the ``y_t``); ``captured`` are the enclosing
    graph's tensors the capture placeholders stand for, in order."""

    def __init__(self, graph: Graph, inputs: list[Tensor], outputs: list[Tensor],
                 captured: list[Tensor]) -> None:
        self.graph = graph
        self.inputs = inputs
        self.outputs = outputs
        self.captured = captured

    def program(self, outputs: Sequence[int] | None = None) -> Program:
        """The body as a program computing the outputs numbered ``outputs`` (default all)."""
        picked = self.outputs if outputs is None else [self.outputs[k] for k in outputs]
        return Program(picked)

    def with_outputs(self, outputs: list[Tensor]) -> Body:
        """The same body computing ``outputs`` instead (an optimized program's)."""
        return Body(self.graph, self.inputs, outputs, self.captured)

    def replay(self, values: Sequence[Tensor], stored: dict[int, Tensor] | None = None) -> list[Tensor]:
        """The body's outputs rebuilt in the current graph from ``values`` (one tensor per
        input): the forward step inside the gradient's body. ``stored``: node id -> the
        value the forward pass kept for it, read back (a :class:`Saved` view) instead of
        computed again."""
        graph = get_default_graph()
        mapping = {p.id: v for p, v in zip(self.inputs, values)}
        for n in toposort(self.outputs):
            if n.id in mapping:
                continue
            ins = [mapping[i.id] for i in n.inputs]
            read_back = stored.get(n.id) if stored else None
            mapping[n.id] = _copy(n, ins, graph) if read_back is None else _copy(
                n, [read_back, *ins], graph, Saved, {"of": type(n.op), **n.attrs})
        return [mapping[o.id] for o in self.outputs]

    def __repr__(self) -> str:
        return f"<scan body: {len(self.inputs)} inputs, {len(self.outputs)} outputs>"


def _copy(n: Tensor, inputs: list[Tensor], graph: Graph, op: type[Op] | None = None,
          attrs: dict | None = None) -> Tensor:
    """Node ``n`` made again in ``graph`` from ``inputs`` (a constant: its value), with its
    role, line and scope; ``op``/``attrs`` replace its own."""
    if n.op.kind is Kind.CONSTANT:
        return constant_node(n.value, dtype=n.dtype, graph=graph)
    with graph.derived(n.role, n.site, n.scope):
        return make(op or type(n.op), inputs, n.attrs if attrs is None else attrs,
                    name=n.name.rsplit("/", 1)[-1])


def _changing(body: Body, varying: int) -> set[int]:
    """Ids of the body's nodes whose value may change from step to step: the first
    ``varying`` inputs (carries, ``x_t``), impure nodes and whatever reads them."""
    changing = {p.id for p in body.inputs[:varying]}
    for n in toposort(body.outputs):
        if n.op.kind is not Kind.PLACEHOLDER and (not n.op.pure or any(i.id in changing for i in n.inputs)):
            changing.add(n.id)
    return changing


class Scan(Op):
    """The loop. Inputs: the initial carries, the sequences (time-major), the captured
    tensors. Its value is a tuple read through :class:`ScanOutput` nodes: index ``i <
    carries``: final carry i; then the stacked outputs; then the carries each step
    started from, stacked by time index (what the gradient replays from)."""

    name = "scan"
    multi_output = True
    pure = False  # a tuple is never folded into a constant

    def infer(self, inputs, **attrs):
        return (), None

    def label(self, attrs):
        return "scan_reverse" if attrs["reverse"] else "scan"

    def reference(self, ctx, node, *values):
        a = node.attrs
        body, nc, nx = a["body"], a["carries"], a["sequences"]
        carry, xs, caps = list(values[:nc]), values[nc:nc + nx], list(values[nc + nx:])
        steps = range(a["length"] - 1, -1, -1) if a["reverse"] else range(a["length"])
        program = body.program()
        ys: dict[int, list] = {}
        starts: dict[int, list] = {}
        for t in steps:
            starts[t] = carry
            outs = run_body(ctx, program, body.inputs, carry + [x[t] for x in xs] + caps)
            carry, ys[t] = outs[:nc], outs[nc:]
        order = sorted(ys)
        stacked = [np.stack([ys[t][j] for t in order]) for j in range(a["outputs"])]
        history = [np.stack([starts[t][i] for t in order]) for i in range(nc)]
        return tuple(carry + stacked + history)

    def grad(self, node, g):
        return _backward(node, g)


class ScanOutput(Op):
    """Part ``index`` of a scan's value (see :class:`Scan`)."""

    name = "scan_output"
    projects = True

    def infer(self, inputs, **attrs):
        return attrs["shape"], attrs["dtype"]

    def label(self, attrs):
        return attrs["what"]

    def reference(self, ctx, node, value):
        return value[node.attrs["index"]]

    def grad(self, node, g):
        return [g]


class Saved(Op):
    """A value of the forward step the forward pass stored, read back in the gradient's
    body: its value is input 0 (a view of it: nothing is computed); the other inputs are
    those of the node it stands for (``attrs["of"]``: a matmul, a sigmoid ...), whose
    gradient rule gives theirs, as if the node had been computed again. Where that rule
    reads the node's own value (sigmoid' = y (1 - y)), it reads the stored one."""

    name = "saved"
    kind = Kind.VIEW
    value_inputs = 1

    def infer(self, inputs, **attrs):
        return inputs[0].shape, inputs[0].dtype

    def label(self, attrs):
        return f"saved {attrs['of'].name}"

    def reference(self, ctx, node, value, *inputs):
        return value

    def grad(self, node, g):
        of = node.attrs["of"]
        attrs = {k: v for k, v in node.attrs.items() if k != "of"}
        again = Tensor(of(), node.inputs[1:], attrs, node.shape, node.dtype, graph=node.graph,
                       name=node.name, site=node.site, role=node.role, scope=node.scope)
        return [None, *(_replace(t, again, node) for t in of().grad(again, g))]


def _replace(t: Tensor | None, old: Tensor, new: Tensor) -> Tensor | None:
    """``t`` built again with ``new`` wherever it reads ``old`` (``t`` itself where it does
    not)."""
    if t is None:
        return None
    made: dict[int, Tensor] = {old.id: new}
    for n in toposort([t]):
        if n.id not in made and any(i.id in made for i in n.inputs):
            made[n.id] = _copy(n, [made.get(i.id, i) for i in n.inputs], get_default_graph())
    return made.get(t.id, t)


def run_body(ctx, program: Program, inputs: list[Tensor], values: list) -> list:
    """One step of a body on the NumPy reference: its outputs from its inputs' values."""
    env = {p.id: v for p, v in zip(inputs, values)}
    for n in program.nodes:
        if n.id in env:
            continue
        if n.op.kind is Kind.CONSTANT:
            env[n.id] = n.value
            continue
        try:
            out = env[n.id] = n.op.reference(ctx, n, *[env[i.id] for i in n.inputs])
        except GraphcError:
            raise
        except Exception as exc:
            raise GraphcError(f"{n.op.label(n.attrs)} ({n.name}) in a scan body failed at run "
                              f"time: {exc}{at(n.site)}") from exc
        if ctx.check_numerics:
            check_finite_value(n, out)
    return [env[o.id] for o in program.outputs]


def _project(scan: Tensor, index: int, what: str, like: Tensor, stacked: int | None) -> Tensor:
    shape = like.shape if stacked is None else (stacked,) + like.shape
    return make(ScanOutput, [scan], {"index": index, "shape": shape, "dtype": like.dtype,
                                     "what": what})


def _trace(fn: Callable, carries: list[Tensor], xs: list[Tensor], structure: tuple,
           site: str) -> tuple[Body, int, Any]:
    """Call ``fn`` once on placeholders inside a new body graph."""
    outer = get_default_graph() if not (carries or xs) else (carries + xs)[0].graph
    body_graph = Graph(seed=outer.root.next_seed())
    body_graph.parent = outer
    carry_struct, x_struct = structure
    with body_graph, body_graph.derived("forward", None, scope=""):
        c_in = [make(Placeholder, [], {"shape": c.shape, "dtype": c.dtype}, name=f"carry{i}")
                for i, c in enumerate(carries)]
        x_in = [make(Placeholder, [], {"shape": x.shape[1:], "dtype": x.dtype}, name=f"x{i}")
                for i, x in enumerate(xs)]
    with body_graph:
        result = fn(_pack(c_in, carry_struct), _pack(x_in, x_struct))
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise GraphcError(f"scan: fn must return (new_carry, y_t), got {result!r}{at(site)}")
        new_carry, y = result
        c_out = [body_graph.capture(as_tensor(t, dtype=c.dtype))
                 for t, c in zip(_flatten(new_carry, "new carry", site, len(carries)), carries)]
        y_out = [body_graph.capture(as_tensor(t)) for t in _flatten(y, "y_t", site)]
    for i, (new, old) in enumerate(zip(c_out, carries)):
        if new.shape != old.shape or new.dtype != old.dtype:
            raise ShapeError(f"scan: fn's new carry {i} is {_sh.fmt(new.shape)} {new.dtype}, but "
                             f"the carry is {_sh.fmt(old.shape)} {old.dtype}; a step must keep "
                             f"the carry's shape and dtype{at(site)}")
    captured = [outer_t for outer_t, _ in body_graph.captures.values()]
    inputs = c_in + x_in + [inner for _, inner in body_graph.captures.values()]
    known = {p.id for p in inputs}
    for n in toposort(c_out + y_out):
        if n.op.kind is Kind.UPDATE:
            raise GraphcError(f"scan: the step assigns a variable ({n.name}); a scan body cannot "
                              f"change state{at(n.site)}")
        if n.op.kind is Kind.PLACEHOLDER and n.id not in known:
            raise GraphcError(f"scan: the step makes a placeholder ({n.name}); make it outside "
                              f"fn and read it there{at(n.site)}")
    return Body(body_graph, inputs, c_out + y_out, captured), len(y_out), y


def _hoist(body: Body, varying: int) -> Body:
    """``body`` with the work that is the same at every step (it reads only captures:
    ``transpose(W)``, ``W * scale``) moved out of the loop: done once before the scan, in
    the enclosing graph, and captured. Random and impure ops stay inside."""
    moving = _changing(body, varying)
    captured = {inner.id: outer for outer, inner in zip(body.captured, body.inputs[varying:])}
    nodes = toposort(body.outputs)
    users = {i.id for n in nodes if n.id in moving for i in n.inputs} | {o.id for o in body.outputs}
    # work on constants alone stays: a batch-sized broadcast of 1.0 (a gradient's seed) would
    # become an array the step reads, where fused loops use the literal
    constant = {n.id for n in nodes if n.op.kind is Kind.CONSTANT}
    for n in nodes:
        if n.inputs and n.op.pure and all(i.id in constant for i in n.inputs):
            constant.add(n.id)
    fixed = {n.id for n in nodes if n.id not in moving and not n.op.kind.is_leaf and n.id not in constant}
    hoist = [n for n in nodes if n.id in fixed and n.id in users]
    if not hoist:
        return body
    outer = dict(captured)  # body node id -> its value outside
    for n in nodes:
        if n.id in fixed:
            ins = [outer[i.id] if i.id in outer else _copy(i, [], n.graph.parent) for i in n.inputs]
            outer[n.id] = _copy(n, ins, n.graph.parent)
    inside = {n.name: body.graph.capture(outer[n.id]) for n in hoist}  # (names: rewrite clones)
    program = rewrite(Program(body.outputs), lambda n: inside.get(n.name, n))
    used = {n.id for n in toposort(program.outputs)}
    caps = [(o, i) for o, i in body.graph.captures.values() if i.id in used]
    return Body(body.graph, body.inputs[:varying] + [i for _, i in caps], program.outputs,
                [o for o, _ in caps])


def _flatten(value: Any, what: str, site: str, count: int | None = None) -> list:
    items = [] if value is None else list(value) if isinstance(value, (tuple, list)) else [value]
    if count is not None and len(items) != count:
        raise GraphcError(f"scan: fn returned {len(items)} {what} tensors, expected {count} "
                          f"(the structure of init){at(site)}")
    return items


def _pack(items: list[Tensor], structure: str) -> Any:
    if structure == "one":
        return items[0]
    return tuple(items) if structure == "tuple" else list(items) if structure == "list" else None


def _structure(value: Any) -> str:
    if value is None:
        return "none"
    return "tuple" if isinstance(value, tuple) else "list" if isinstance(value, list) else "one"


def scan_leading(fn: Callable, init: list[Tensor], xs: list[Tensor], reverse: bool = False,
                 structure: tuple = ("tuple", "tuple"),
                 site: str | None = None) -> tuple[list[Tensor], list[Tensor], Any]:
    """``scan`` along the leading axis of every ``xs``: (final carries, stacked outputs,
    the traced ``y_t`` as ``fn`` returned it, for its structure)."""
    site = site or user_site()
    lengths = {x.shape[0] for x in xs}
    if not xs or len(lengths) != 1 or None in lengths or 0 in lengths:
        raise ShapeError(f"scan: the sequences must share one static, non-zero length; got "
                         f"{', '.join(_sh.fmt(x.shape) for x in xs) or 'none'}{at(site)}")
    length = lengths.pop()
    body, ny, y_traced = _trace(fn, init, xs, structure, site)
    body = _hoist(body, len(init) + len(xs))
    saved = _worth_saving(body, len(init) + len(xs))  # stacked too, computed only if a gradient asks
    body = body.with_outputs(body.outputs + saved)
    attrs = {"body": body, "length": length, "reverse": bool(reverse), "carries": len(init),
             "sequences": len(xs), "outputs": ny + len(saved), "saved": len(saved)}
    node = make(Scan, list(init) + list(xs) + body.captured, attrs, name="scan")
    finals = [_project(node, i, f"final carry {i}", c, None) for i, c in enumerate(init)]
    first: dict[int, int] = {}  # a y_t returned twice (a gradient's dz_t) is stored once
    ys = []
    for j, y in enumerate(body.outputs[len(init):len(init) + ny]):
        k = first.setdefault(y.id, j)
        ys.append(_project(node, len(init) + k, f"ys {k}", y, length))
    return finals, ys, y_traced


def _worth_saving(body: Body, varying: int) -> list[Tensor]:
    """The values of a step that change from step to step and that the gradient's body
    would otherwise compute again: the matmuls, and the elementwise nodes that call a
    transcendental function (sigmoid, tanh, exp: their derivatives read their own value).
    The forward pass keeps those the gradient reads."""
    changing = _changing(body, varying)
    return [n for n in toposort(body.outputs) if n.id in changing
            and (isinstance(n.op, MatMul)
                 or (isinstance(n.op, Elemwise) and transcendental(n.attrs["expr"])))]


def scan(fn: Callable, init: Any, xs: Any, axis: int = 1, reverse: bool = False) -> tuple[Any, Any]:
    """Run ``fn(carry, x_t) -> (carry, y_t)`` over the sequences ``xs`` along ``axis``.

    ``init`` and ``xs`` are tensors or tuples of tensors; ``fn`` is traced once (it may
    read variables and any tensor of the graph); the sequence length is static, the batch
    size may be ``None``. Returns the final carry (``init``'s structure) and the ``y_t``
    stacked along ``axis`` (``y_t``'s structure). ``reverse=True`` runs from the last
    element to the first; the outputs stay aligned with the inputs. ``gc.grad`` through a
    scan is a reverse scan (backpropagation through time).

    Example::

        h, hs = gc.scan(lambda h, x_t: (gc.tanh(x_t @ W + h @ U),) * 2, h0, x)
    """
    site = user_site()
    carries = [as_tensor(c) for c in _flatten(init, "init", site)]
    seqs = [as_tensor(x) for x in _flatten(xs, "xs", site)]
    if not carries:
        raise GraphcError(f"scan: init must be a tensor or a tuple of tensors{at(site)}")
    moved = []
    for x in seqs:
        ax = axis + x.ndim if axis < 0 else axis
        if not 0 <= ax < x.ndim:
            raise ShapeError(f"scan: axis {axis} is out of range for sequence {x.name} of shape "
                             f"{_sh.fmt(x.shape)}{at(site)}")
        moved.append(x if ax == 0 else transpose(x, [ax] + [d for d in range(x.ndim) if d != ax]))
    structure = (_structure(init), _structure(xs))
    finals, ys, y_traced = scan_leading(fn, carries, moved, reverse, structure, site)
    out = []
    for y in ys:
        ax = axis if axis >= 0 else axis + y.ndim
        ax = min(ax, y.ndim - 1)
        out.append(y if ax == 0 else transpose(y, list(range(1, ax + 1)) + [0] + list(range(ax + 1, y.ndim))))
    return _pack(finals, structure[0]), _pack(out, _structure(y_traced))


def _zeros(x: Tensor) -> Tensor:
    return broadcast_like(constant_node(0.0, dtype=x.dtype), x)


def _backward(node: Tensor, g: dict[int, Tensor]) -> list[Tensor | None]:
    """Gradients of a scan's inputs given those of its outputs (``g``: index -> tensor).

    A reverse scan whose body replays the forward step and differentiates it. The gradient
    of a captured tensor is summed over the steps as a carry, except where one step's
    contribution is a product ``A_t^T B_t`` (a weight applied by a matmul): then the body
    emits ``A_t`` and ``B_t`` (unless they are steps of sequences it reads anyway: the
    stored carries, the inputs) and one GEMM over all the steps' rows sums them after the
    loop."""
    a = node.attrs
    body, nc, nx, ny, ns = a["body"], a["carries"], a["sequences"], a["outputs"], a["saved"]
    init, xs, caps = node.inputs[:nc], node.inputs[nc:nc + nx], node.inputs[nc + nx:]
    floats = [k for k, t in enumerate(init) if _dt.is_float(t.dtype)]
    diff_xs = [k for k, t in enumerate(xs) if _dt.is_float(t.dtype)]
    diff_caps = [k for k, t in enumerate(caps) if _dt.is_float(t.dtype)]
    gys = [j for j in range(ny) if nc + j in g]
    ghs = [i for i in floats if nc + ny + i in g]  # the history's own gradient (grad of grad)
    history = [_project(node, nc + ny + i, f"carries {i}", c, a["length"]) for i, c in enumerate(init)]
    finals = [_project(node, i, f"final carry {i}", c, None) for i, c in enumerate(init)]
    kept = body.outputs[nc + ny - ns:nc + ny]  # the saved matmuls: stored by the forward pass
    saved = [_project(node, nc + ny - ns + r, f"saved {r}", t, a["length"]) for r, t in enumerate(kept)]
    xs_b = (history + list(xs) + [g[nc + j] for j in gys] + [g[nc + ny + i] for i in ghs]
            + saved)

    def reverse_scan(outer: dict[int, tuple]) -> tuple[list, list, dict]:
        """The reverse scan; ``outer``: capture -> for each operand of its per-step product,
        the sequence of the reverse scan it is a step of (an index into ``xs_b``: a stored
        carry, an input sequence) or None (the body emits it)."""
        seen: dict[int, tuple] = {}

        def step(carry, x_t):
            g_carry, acc = carry[:len(floats)], iter(carry[len(floats):])
            h_t, seq_t = x_t[:nc], x_t[nc:nc + nx]
            rest = x_t[nc + nx:]
            gy_t, gh_t = rest[:len(gys)], dict(zip(ghs, rest[len(gys):len(gys) + len(ghs)]))
            stored = {t.id: v for t, v in zip(kept, rest[len(gys) + len(ghs):])}
            graph = get_default_graph()
            again = body.replay(list(h_t) + list(seq_t) + [graph.capture(c) for c in caps], stored)
            terms = [_sum(again[i] * gc_) for i, gc_ in zip(floats, g_carry)]
            terms += [_sum(again[nc + j] * gy) for j, gy in zip(gys, gy_t)]
            target = terms[0]
            for t in terms[1:]:
                target = target + t
            wrt = ([h_t[i] for i in floats] + [seq_t[k] for k in diff_xs]
                   + [graph.capture(caps[k]) for k in diff_caps])
            grads = grad(target, wrt) if wrt else []
            g_h = [t + gh_t[i] if i in gh_t else t for i, t in zip(floats, grads[:len(floats)])]
            g_x = list(grads[len(floats):len(floats) + len(diff_xs)])
            sums, emitted = [], []
            for k, gk in zip(diff_caps, grads[len(floats) + len(diff_xs):]):
                seen[k] = (gk, x_t)
                if k in outer:
                    emitted += [op for op, stored in zip(gk.inputs, outer[k]) if stored is None]
                else:
                    sums.append(next(acc) + gk)
            return tuple(g_h) + tuple(sums), tuple(g_x + emitted)

        init_b = [g[i] if i in g else _zeros(finals[i]) for i in floats]
        init_b += [_zeros(caps[k]) for k in diff_caps if k not in outer]
        final_b, ys_b, _ = scan_leading(step, init_b, xs_b, reverse=not a["reverse"], site=node.site)
        return final_b, ys_b, seen

    final_b, ys_b, seen = reverse_scan({})
    outer = {k: tuple(next((i for i, v in enumerate(x_t) if v is op), None) for op in gk.inputs)
             for k, (gk, x_t) in seen.items() if _is_outer_product(gk)}
    if outer:  # traced again: those captures' gradients become one GEMM after the loop
        final_b, ys_b, _ = reverse_scan(outer)
    result: list[Tensor | None] = [None] * len(node.inputs)
    for i, t in zip(floats, final_b[:len(floats)]):
        result[i] = t
    for k, t in zip(diff_xs, ys_b):
        result[nc + k] = t
    sums, emitted = iter(final_b[len(floats):]), iter(ys_b[len(diff_xs):])
    for k in diff_caps:
        if k in outer:
            result[nc + nx + k] = matmul_sum(*[xs_b[i] if i is not None else next(emitted)
                                               for i in outer[k]])
        else:
            result[nc + nx + k] = next(sums)
    return result


def _is_outer_product(t: Tensor) -> bool:
    """``t`` is ``matmul(A, B, transpose_a=True)`` of two matrices: ``A^T B``, a weight's
    gradient at one step."""
    return (isinstance(t.op, MatMul) and t.attrs["transpose_a"] and not t.attrs["transpose_b"]
            and all(i.ndim == 2 for i in t.inputs))
