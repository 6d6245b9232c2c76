"""Reverse-mode automatic differentiation, graph to graph.

``grad(y, xs)`` walks the graph backwards from the scalar ``y`` and asks each
op for the gradients of its inputs; those are ordinary graph tensors (tagged
``role="grad"``), so they can be optimized, fused, exported to DOT and
differentiated again. Each gradient node belongs to the name scope of the
forward node it differentiates (``"dense/grad/matmul"`` in scope ``"dense"``)
and records that node's line; the gradient of each ``x`` is summed in ``x``'s
scope.
"""

from __future__ import annotations

from ..ir import dtypes as _dt
from ..ir import shapes as _sh
from ..ir.errors import DTypeError, GraphcError, ShapeError, at, user_site
from ..ir.graph import Tensor
from ..ir.program import toposort
from ..ops.reduce import broadcast_like, sum_to


def _path_nodes(y: Tensor, xs: list[Tensor]) -> list[Tensor]:
    """Nodes on some path from an x to y, in topological order."""
    wanted = {x.id for x in xs}
    reaches: set[int] = set()
    order = toposort([y])
    for node in order:  # inputs come before their users
        if node.id in wanted or any(i.id in reaches for i in node.inputs):
            reaches.add(node.id)
    return [n for n in order if n.id in reaches]


def grad(y: Tensor, xs: list[Tensor] | Tensor) -> list[Tensor] | Tensor:
    """Gradients of the scalar ``y`` with respect to each tensor in ``xs``.

    Returns one tensor per x (a single tensor if ``xs`` is a tensor), zeros for
    an x that ``y`` does not depend on. Gradients over several paths are
    summed; gradients of broadcast operands are summed back to their shapes.

    Example::

        loss = gc.mean(gc.square(x @ W - t))
        gW, = gc.grad(loss, [W])
        hvp, = gc.grad(gc.sum(gW * v), [W])   # grad of grad: Hessian-vector product
    """
    single = isinstance(xs, Tensor)
    xs = [xs] if single else list(xs)
    site = user_site()
    if not isinstance(y, Tensor):
        raise GraphcError(f"grad: target must be a graph tensor, got {type(y).__name__}{at(site)}")
    if y.shape != ():
        raise ShapeError(f"grad: target {y.name} must be a scalar, has shape {_sh.fmt(y.shape)}; "
                         f"reduce it first (gc.sum or gc.mean){at(site)}")
    if not _dt.is_float(y.dtype):
        raise DTypeError(f"grad: target {y.name} is {y.dtype}; only float tensors have "
                         f"gradients{at(site)}")
    for x in xs:
        if not isinstance(x, Tensor) or x.graph is not y.graph:
            raise GraphcError(f"grad: {x!r} is not a tensor of the target's graph{at(site)}")
        if not _dt.is_float(x.dtype):
            raise DTypeError(f"grad: cannot differentiate with respect to {x.name} "
                             f"({x.dtype}); integer tensors have no gradient{at(site)}")

    graph = y.graph
    with graph.detached():  # only the nodes the results use are added to the graph
        out = _backward(graph, y, xs, site)
    known = {n.id for n in graph.nodes}
    graph.nodes.extend(n for n in toposort(out) if n.id not in known)
    return out[0] if single else out


def _backward(graph, y: Tensor, xs: list[Tensor], site: str | None) -> list[Tensor]:
    from ..ops.leaves import constant

    path = _path_nodes(y, xs)
    on_path = {n.id for n in path}
    with graph.derived("grad", site, y.scope):
        grads: dict[int, list[Tensor]] = {y.id: [constant(1.0, dtype=y.dtype)]}
    for node in reversed(path):
        contributions = grads.get(node.id)
        if not contributions or not node.inputs:
            continue
        with graph.derived("grad", node.site or site, node.scope):
            if node.op.multi_output:  # a tuple value: gradients per part, from its projections
                parts = {k for k, _ in contributions}
                g = {k: _accumulate([t for j, t in contributions if j == k]) for k in sorted(parts)}
            else:
                g = _accumulate(contributions)
                grads[node.id] = [g]
            if not node.op.differentiable:
                continue
            for x, gx in zip(node.inputs, node.op.grad(node, g)):
                if gx is None or x.id not in on_path:
                    continue
                if node.op.projects:
                    grads.setdefault(x.id, []).append((node.attrs["index"], gx))
                elif _dt.is_float(x.dtype):
                    grads.setdefault(x.id, []).append(sum_to(gx, x.shape))
    out = []
    for x in xs:
        with graph.derived("grad", site, x.scope):
            contributions = grads.get(x.id)
            out.append(_accumulate(contributions) if contributions else zeros_like(x))
    return out


def _accumulate(terms: list[Tensor]) -> Tensor:
    from ..ops.indexing import join_slice_grads  # split's gradient: one concat, not a sum

    terms = join_slice_grads(terms) if len(terms) > 1 else terms
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def zeros_like(x: Tensor) -> Tensor:
    """Zeros with the shape and dtype of ``x`` (the batch size included)."""
    from ..ops.leaves import constant

    return broadcast_like(constant(0.0, dtype=x.dtype), x)
