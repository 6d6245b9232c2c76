"""Memory plan: one arena for all intermediates, with liveness-based reuse.

Fetched values are not in the arena: the kernel that computes one writes it
straight into the output array the caller passes (found through a small
header of output pointers at the start of the arena).

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
    """Where each stored value lives: in the arena, or straight in a fetched output.

    ``direct`` maps a fetched value (by node id) to the index of the output array the
    kernel that computes it writes into; ``gc_run`` keeps those output pointers in the
    arena's first bytes (the *header*), so kernels reach them through ``arena`` alone.
    """

    def __init__(self, slots: dict[int, Slot], direct: dict[int, int] | None = None) -> None:
        self.slots = slots
        self.direct = dict(direct or {})
        self.header = _align(8 * (max(self.direct.values()) + 1)) if self.direct else 0
        self.sections: dict[int, int] = {}
        for s in slots.values():
            self.sections[s.section] = max(self.sections.get(s.section, 0),
                                           s.offset + _align(s.unit_bytes))

    def _section_start(self, k: int) -> str:
        parts = ([f"(size_t){self.header}"] if self.header else []) + [
            _term(self.sections[j], j) for j in sorted(self.sections) if j < k]
        return " + ".join(parts) if parts else "0"

    def offset(self, node: Tensor) -> str:
        """Byte offset of ``node``'s arena buffer as a C expression in ``N``."""
        s = self.slots[source_of(node).id]
        return f"({self._section_start(s.section)} + {_term(s.offset, s.section)})"

    def output_index(self, node: Tensor) -> int | None:
        """The output array ``node``'s value is written to directly, if any."""
        return self.direct.get(source_of(node).id)

    def size_expr(self) -> str:
        """Total arena bytes as a C expression in ``N``."""
        parts = ([f"(size_t){self.header}"] if self.header else []) + [
            _term(self.sections[j], j) for j in sorted(self.sections)]
        return " + ".join(parts) if parts else "0"

    def static_bytes(self, batch: int) -> int:
        """Arena bytes for a given batch size (what the C side computes)."""
        return self.header + sum(v * batch**k for k, v in self.sections.items())

    def __contains__(self, node: Tensor) -> bool:
        return source_of(node).id in self.slots or source_of(node).id in self.direct


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
    # A fetched value is computed straight into its output array (no arena slot, no copy).
    direct: dict[int, int] = {}
    for j, o in enumerate(program.outputs):
        src = source_of(o)
        if o.dtype is not None and src.id in slots and src.id not in direct:
            direct[src.id] = j
            del slots[src.id]
    pinned = [source_of(n.inputs[1]) for n in program.nodes if n.op.name == "assign"]
    for n in pinned:
        if n.id in slots:
            slots[n.id].end = end_of_step
    by_section: dict[int, list[Slot]] = {}
    for s in slots.values():
        by_section.setdefault(s.section, []).append(s)
    for group in by_section.values():
        _first_fit(group)
    return Plan(slots, direct)


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
