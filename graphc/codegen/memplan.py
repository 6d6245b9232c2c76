"""Memory plan: one arena for all intermediates, with liveness-based reuse.

Sizes may depend on the batch size N, which is only known at run time. A
buffer of ``c * N**k`` bytes goes to section ``k``; within a section buffers
are laid out first-fit in units of ``N**k``, so one plan is valid for every
batch size. Section ``k`` starts after sections ``0..k-1`` at run time.

Example::

    plan = plan_memory(kernels, program)
    plan.offset(node)            # C expression, e.g. "(1024 + 4096*N)"
    plan.size_expr()             # total arena bytes as a C expression in N
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph import Tensor
from ..program import Program
from .fusion import Kernel, source_of

ALIGN = 64


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass
class Slot:
    node: Tensor
    section: int  # power of N
    unit_bytes: int  # bytes per N**section
    start: int  # kernel index that writes it
    end: int  # last kernel index that reads it
    offset: int = 0  # in units of N**section


def byte_size(node: Tensor) -> tuple[int, int]:
    """(power of N, bytes per N**power) of a node's value."""
    power = sum(1 for d in node.shape if d is None)
    n = int(np.prod([d for d in node.shape if d is not None], dtype=np.int64))
    return power, n * np.dtype(node.dtype).itemsize


class Plan:
    """Where each stored value lives in the arena."""

    def __init__(self, slots: dict[int, Slot]) -> None:
        self.slots = slots
        self.sections: dict[int, int] = {}
        for s in slots.values():
            self.sections[s.section] = max(self.sections.get(s.section, 0),
                                           s.offset + _align(s.unit_bytes))

    def _section_start(self, k: int) -> str:
        parts = [_term(self.sections[j], j) for j in sorted(self.sections) if j < k]
        return " + ".join(parts) if parts else "0"

    def offset(self, node: Tensor) -> str:
        """Byte offset of ``node``'s buffer as a C expression in ``N``."""
        s = self.slots[source_of(node).id]
        return f"({self._section_start(s.section)} + {_term(s.offset, s.section)})"

    def size_expr(self) -> str:
        """Total arena bytes as a C expression in ``N``."""
        parts = [_term(self.sections[j], j) for j in sorted(self.sections)]
        return " + ".join(parts) if parts else "0"

    def static_bytes(self, batch: int) -> int:
        """Arena bytes for a given batch size (what the C side computes)."""
        return sum(v * batch**k for k, v in self.sections.items())

    def __contains__(self, node: Tensor) -> bool:
        return source_of(node).id in self.slots


def _term(units: int, power: int) -> str:
    if power == 0:
        return f"(size_t){units}"
    return f"(size_t){units}*" + "*".join(["(size_t)N"] * power)


def plan_memory(kernels: list[Kernel], program: Program) -> Plan:
    """Assign arena offsets to every value a kernel stores."""
    end_of_step = len(kernels)
    slots: dict[int, Slot] = {}
    for k in kernels:
        for n in k.stores:
            power, unit = byte_size(n)
            slots[n.id] = Slot(n, power, unit, k.index, k.index)
    for k in kernels:  # last reader extends the lifetime
        for t in k.loads():
            s = slots.get(source_of(t).id)
            if s is not None:
                s.end = max(s.end, k.index)
    pinned = [source_of(o) for o in program.outputs]
    pinned += [source_of(n.inputs[1]) for n in program.nodes if n.op.name == "assign"]
    for n in pinned:
        if n.id in slots:
            slots[n.id].end = end_of_step
    by_section: dict[int, list[Slot]] = {}
    for s in slots.values():
        by_section.setdefault(s.section, []).append(s)
    for group in by_section.values():
        _first_fit(group)
    return Plan(slots)


def _first_fit(slots: list[Slot]) -> None:
    """Place big buffers first at the lowest offset free over their lifetime."""
    placed: list[Slot] = []
    for s in sorted(slots, key=lambda s: (-s.unit_bytes, s.start)):
        size = _align(s.unit_bytes)
        busy = sorted((p.offset, p.offset + _align(p.unit_bytes)) for p in placed
                      if not (p.end < s.start or s.end < p.start))
        offset = 0
        for lo, hi in busy:
            if offset + size <= lo:
                break
            offset = max(offset, hi)
        s.offset = offset
        placed.append(s)
