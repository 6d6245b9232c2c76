"""Graph optimization passes: plain functions Program -> Program.

They run in the order of :data:`PASSES`; each keeps every output's value.

Example::

    prog = optimize(Program([loss]))
    [name for name, _ in PASSES]
    # ['stability', 'algebraic', 'constant_folding', 'algebraic_after_folding',
    #  'gradient_only_inputs', 'cse', 'scan_bodies', 'shared_gradient_gemms', 'dce']
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..ir.graph import Kind, RunContext, Tensor, constant_node
from ..ir.program import Program, clone, rewrite, toposort
from ..ops import elemwise as E
from ..ops.linalg import MatMulSum, matmul_sum
from ..ops.shape import concat, slice_of
from .scan_rewrites import drop_unread_sequences, prepack_weights


def _fn(node: Tensor) -> str | None:
    return node.attrs.get("fn") if isinstance(node.op, E.Elemwise) else None


def _const_value(node: Tensor):
    return node.value if node.op.kind is Kind.CONSTANT else None


def _is_fill(node: Tensor, value: float) -> bool:
    """A constant holding only ``value`` (for floats with its sign: 0.0 is not -0.0)."""
    v = _const_value(node)
    if v is None or v.size == 0 or not bool(np.all(v == value)):
        return False
    return v.dtype.kind != "f" or bool(np.all(np.signbit(v) == np.signbit(value)))


# -- stability ------------------------------------------------------------------------------

def stability(program: Program) -> Program:
    """log(y) -> the stable form its producer gives (``Op.log_of``): log(softmax(x)) ->
    log_softmax(x), log(sigmoid(x)) -> -softplus(-x)."""

    def fix(node: Tensor) -> Tensor:
        if _fn(node) != "log":
            return node
        (x,) = node.inputs
        stable = x.op.log_of(x)
        return node if stable is None else stable

    return rewrite(program, fix)


# -- algebraic identities -------------------------------------------------------------------

def _keeps(node: Tensor, x: Tensor) -> bool:
    """Replacing ``node`` by ``x`` keeps shape and dtype (no hidden broadcast)."""
    return x.shape == node.shape and x.dtype == node.dtype


#: the operand each op leaves every value unchanged with, in IEEE arithmetic: x + 0.0 is
#: +0.0 at x = -0.0, so only x + (-0.0) and x - 0.0 are x (x * 0.0 and x - x are never 0)
_UNITS = {"mul": 1.0, "div": 1.0, "add": -0.0, "sub": 0.0}


def algebraic(program: Program) -> Program:
    """x*1, 1*x, x/1, x+(-0.0), (-0.0)+x, x-0 -> x and -(-x) -> x: only rewrites exact for
    every input, NaN, infinities and signed zeros included (integers: x+0, 0+x)."""

    def simplify(node: Tensor) -> Tensor:
        fn = _fn(node)
        if fn == "neg" and _fn(node.inputs[0]) == "neg":
            return node.inputs[0].inputs[0]
        if fn in _UNITS:
            a, b = node.inputs
            unit = _UNITS[fn]
            if _is_fill(b, unit) and _keeps(node, a):
                return a
            if fn in ("mul", "add") and _is_fill(a, unit) and _keeps(node, b):
                return b
        return node

    return rewrite(program, simplify)


# -- constant folding -----------------------------------------------------------------------

def constant_folding(program: Program) -> Program:
    """Evaluate pure nodes whose inputs are all constants (NumPy reference)."""

    def fold(node: Tensor) -> Tensor:
        if not node.inputs or not node.op.pure or node.dtype is None or None in node.shape:
            return node  # (a batch-sized result is only known at run time)
        values = [_const_value(i) for i in node.inputs]
        if any(v is None for v in values):
            return node
        value = np.asarray(node.op.reference(RunContext(), node, *values), dtype=node.dtype)
        # (rewrite runs fn with the node's role and site: the constant keeps them)
        return constant_node(value, dtype=node.dtype, name=node.name, graph=node.graph, add=False)

    return rewrite(program, fold)


# -- common subexpressions ------------------------------------------------------------------

def cse(program: Program) -> Program:
    """Merge pure nodes (and nodes impure only through the batch size) with the same op,
    attrs and inputs."""
    seen: dict[tuple, Tensor] = {}

    def merge(node: Tensor) -> Tensor:
        if not (node.op.pure or node.op.batch_only):
            return node
        try:
            key = node.key()
            hash(key)
        except TypeError:
            return node
        return seen.setdefault(key, node)

    return rewrite(program, merge)


# -- weight gradients sharing an operand -----------------------------------------------------

def shared_gradient_gemms(program: Program) -> Program:
    """``matmul_sum(x, y1)``, ``matmul_sum(x, y2)`` ... -> column blocks of one
    ``matmul_sum(x, concat([y1, y2 ...], -1))``: the gradients of an LSTM's input and
    recurrent weights both read every step's gate gradients ``x``; one wider GEMM reads
    them once. Only where ``x`` outweighs the copy that the concatenation makes."""
    by_x: dict[int, list[Tensor]] = {}
    for n in program.nodes:
        if isinstance(n.op, MatMulSum):
            by_x.setdefault(n.inputs[0].id, []).append(n)
    replace: dict[int, Tensor] = {}
    for sums in by_x.values():
        x = sums[0].inputs[0]
        ys = [m.inputs[1] for m in sums]
        if (len(sums) < 2 or len({y.shape[:-1] for y in ys} | {x.shape[:-1]}) != 1
                or len({m.dtype for m in sums} | {y.dtype for y in ys}) != 1
                or _elements(x) < 2 * sum(_elements(y) for y in ys)):
            continue
        graph, first = x.graph, sums[0]
        with graph.detached(), graph.derived(first.role, first.site, first.scope):
            merged = matmul_sum(x, concat(ys, axis=-1))
            start = 0
            for m in sums:
                width = m.shape[-1]
                replace[m.id] = slice_of(merged, ((None, None, None), (start, start + width, 1)))
                start += width
    return rewrite(program, lambda n: replace.get(n.id, n)) if replace else program


def _elements(t: Tensor) -> float:
    """Elements of ``t`` (a batch axis counts as 64 rows)."""
    return float(np.prod([64 if d is None else d for d in t.shape]))


# -- dead code ------------------------------------------------------------------------------

def gradient_only_inputs(program: Program) -> Program:
    """Drop the inputs a node reads only for its gradient rule (``Op.value_inputs``): the
    gradients are built by now, and computing those inputs would be wasted work."""

    def drop(node: Tensor) -> Tensor:
        keep = node.op.value_inputs
        return node if keep is None or len(node.inputs) <= keep else clone(node, node.inputs[:keep])

    return rewrite(program, drop)


def dce(program: Program) -> Program:
    """Keep only the nodes the outputs need."""
    return Program(program.outputs, toposort(program.outputs))


def scan_bodies(program: Program) -> Program:
    """Optimize each scan's body with these same passes (its outputs may be replaced), then
    drop the sequences it no longer reads and pack the weights its GEMMs read once, before
    the loop."""

    def optimize_body(node: Tensor) -> Tensor:
        body = node.attrs.get("body") if node.op.multi_output else None
        if body is None:
            return node
        new = clone(node, node.inputs)
        new.attrs = {**node.attrs, "body": body.with_outputs(optimize(body.program()).outputs)}
        return prepack_weights(drop_unread_sequences(new))

    return rewrite(program, optimize_body)


PASSES: list[tuple[str, Callable[[Program], Program]]] = [
    ("stability", stability),
    ("algebraic", algebraic),
    ("constant_folding", constant_folding),
    ("algebraic_after_folding", algebraic),
    ("gradient_only_inputs", gradient_only_inputs),
    ("cse", cse),
    ("scan_bodies", scan_bodies),
    ("shared_gradient_gemms", shared_gradient_gemms),
    ("dce", dce),
]


def optimize(program: Program, passes=None) -> Program:
    """Run ``passes`` (default: all of :data:`PASSES`, in order)."""
    for _, fn in passes or PASSES:
        program = fn(program)
    return program
