"""A :class:`Program`: the subgraph that computes one fetch set.

Passes and backends work on programs, never on the user's graph, so compiling
a fetch set does not change what the user built.
"""

from __future__ import annotations

from collections.abc import Callable

from .graph import Kind, Tensor


def toposort(outputs: list[Tensor], seen: set[int] | None = None) -> list[Tensor]:
    """All nodes the outputs depend on, inputs before users (iterative DFS).

    Nodes whose ids are in ``seen`` are skipped; ``seen`` is updated.
    """
    order: list[Tensor] = []
    seen = set() if seen is None else seen
    for out in outputs:
        stack = [(out, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if node.id in seen:
                continue
            seen.add(node.id)
            stack.append((node, True))
            stack.extend((i, False) for i in reversed(node.inputs) if i.id not in seen)
    return order


class Program:
    """Outputs plus topologically ordered nodes.

    Rewrites keep nodes that became unused; the ``dce`` pass removes them.
    """

    def __init__(self, outputs: list[Tensor], nodes: list[Tensor] | None = None) -> None:
        self.outputs = list(outputs)
        self.nodes = toposort(self.outputs) if nodes is None else nodes

    @property
    def placeholders(self) -> list[Tensor]:
        return [n for n in self.nodes if n.op.kind is Kind.PLACEHOLDER]

    @property
    def variables(self) -> list[Tensor]:
        return [n for n in self.nodes if n.op.kind is Kind.VARIABLE]

    def __len__(self) -> int:
        return len(self.nodes)

    def count(self, op_name: str) -> int:
        """How many nodes run ``op_name`` (``"elemwise:relu"`` matches an fn)."""
        name, _, fn = op_name.partition(":")
        return sum(1 for n in self.nodes if n.op.name == name and (
            not fn or n.attrs.get("fn") == fn))


def clone(node: Tensor, inputs: tuple[Tensor, ...]) -> Tensor:
    """A copy of ``node`` reading other inputs (same op, attrs, shape, site)."""
    return Tensor(node.op, tuple(inputs), node.attrs, node.shape, node.dtype, graph=node.graph,
                  name=node.name, site=node.site, role=node.role, value=node.value,
                  scope=node.scope)


def rewrite(program: Program, fn: Callable[[Tensor], Tensor]) -> Program:
    """Rebuild ``program`` bottom-up, replacing each node by ``fn(node)``.

    ``fn`` sees a node whose inputs are already rewritten and returns it, or
    an equivalent node. Leaves are never copied, so feeds and variable state
    keep their identity.
    """
    new: dict[int, Tensor] = {}
    for node in program.nodes:
        inputs = tuple(new[i.id] for i in node.inputs)
        if any(a is not b for a, b in zip(inputs, node.inputs)):
            node_ = clone(node, inputs)
        else:
            node_ = node
        if node.graph is not None:
            with node.graph.detached(), node.graph.derived(node.role, node.site, node.scope):
                replaced = fn(node_)
        else:
            replaced = fn(node_)
        new[node.id] = replaced
    seen: set[int] = set()  # a replacement may bring new nodes: order them first
    nodes = toposort([new[n.id] for n in program.nodes], seen)
    return Program([new[o.id] for o in program.outputs], nodes)
