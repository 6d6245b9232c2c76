"""The NumPy reference backend: interprets a program node by node.

It is the executable specification every compiled backend is checked against.
"""

from __future__ import annotations

import time

import numpy as np

from ..ir.errors import GraphcError, at, check_finite_value
from ..ir.graph import Kind, Tensor
from ..ir.program import Program


class ReferenceExecutable:
    """A program interpreted node by node; ``run`` once per step."""

    def __init__(self, program: Program, check_numerics: bool = False) -> None:
        self.program = program
        self.check_numerics = check_numerics

    @property
    def timed_units(self) -> list[dict]:
        """What ``run(..., seconds=)`` times: each node that computes something."""
        return [{"name": n.name, "kind": n.op.name, "nodes": [n.name], "stores": [n.name]}
                for n in self.program.nodes if not n.op.kind.is_leaf]

    def run(self, feeds: dict[Tensor, np.ndarray], state: dict[Tensor, np.ndarray], ctx,
            seconds: np.ndarray | None = None) -> list:
        """Interpret the program; ``seconds`` (one slot per :attr:`timed_units`) adds up
        each node's wall time."""
        values: dict[int, np.ndarray] = {}
        unit = 0
        ctx.check_numerics = self.check_numerics  # (scan bodies check their values too)
        for node in self.program.nodes:
            kind = node.op.kind
            if kind is Kind.PLACEHOLDER:
                values[node.id] = feeds[node]
            elif kind is Kind.VARIABLE:
                values[node.id] = state[node]
            elif kind is Kind.CONSTANT:
                values[node.id] = node.value
            else:
                args = [values[i.id] for i in node.inputs]
                t0 = time.perf_counter() if seconds is not None else 0.0
                try:
                    out = node.op.reference(ctx, node, *args)
                except GraphcError:
                    raise
                except Exception as exc:  # name the node and the user's line
                    raise GraphcError(f"{node.op.label(node.attrs)} ({node.name}) failed at run "
                                      f"time: {exc}{at(node.site)}") from exc
                if seconds is not None:
                    seconds[unit] += time.perf_counter() - t0
                unit += 1
                if self.check_numerics:
                    check_finite_value(node, out)
                values[node.id] = out
        return [values[o.id] for o in self.program.outputs]



class ReferenceBackend:
    """``backend="numpy"``: the reference interpreter (always available)."""

    name = "numpy"

    def __init__(self, check_numerics: bool = False) -> None:
        self.check_numerics = check_numerics

    def compile(self, program: Program) -> ReferenceExecutable:
        return ReferenceExecutable(program, self.check_numerics)
