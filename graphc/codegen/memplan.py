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

from ..ir.graph import Tensor
from ..ir.program import Program
from .fusion import EPILOGUE_HOSTS, Kernel, host_output, source_of

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

    def __init__(self, slots: dict[int, Slot], direct: dict[int, int] | None = None,
                 in_place: dict[int, Tensor] | None = None) -> None:
        self.slots = slots
        self.direct = dict(direct or {})
        #: value id -> the variable it is assigned to and written straight into
        self.in_place = dict(in_place or {})
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

    def variable_for(self, node: Tensor) -> Tensor | None:
        """The variable ``node``'s value is computed straight into, if any."""
        return self.in_place.get(source_of(node).id)

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
        i = source_of(node).id
        return i in self.slots or i in self.direct or i in self.in_place


def _term(units: int, power: int) -> str:
    if power == 0:
        return f"(size_t){units}"
    return f"(size_t){units}*" + "*".join(["(size_t)N"] * power)


#: kernels whose C code can fail on the data (an out-of-range label): updates computed
#: before one of them must not reach the variables until the step has succeeded
_DATA_CHECKS = {"softmax_cross_entropy", "softmax_cross_entropy_grad"}


def plan_memory(kernels: list[Kernel], program: Program, in_place: bool = True) -> Plan:
    """Assign arena offsets to every value a kernel stores.

    With ``in_place``, an assigned value that nothing reads the variable's old value after
    (an optimizer update) is computed straight into the variable: no slot, no commit copy.
    """
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
    inplace = _in_place_updates(kernels, program) if in_place else {}
    for i in inplace:
        slots.pop(i, None)
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
    return Plan(slots, direct, inplace)


def _in_place_updates(kernels: list[Kernel], program: Program) -> dict[int, Tensor]:
    """Assigned values that can be written into their variable as they are computed.

    Safe when the kernel computing the value reads the variable only elementwise at the
    element it writes (not as a matmul/conv operand, not broadcast), no later kernel reads
    the variable, no later kernel can fail on the data, and neither is fetched.
    """
    home = {n.id: k for k in kernels for n in k.stores}
    fetched = {source_of(o).id for o in program.outputs}
    assigns = [n for n in program.nodes if n.op.name == "assign"]
    targets = [a.inputs[0].id for a in assigns]
    last_check = max((k.index for k in kernels if k.kind in _DATA_CHECKS), default=-1)
    out: dict[int, Tensor] = {}
    for a in assigns:
        var, value = a.inputs
        k = home.get(value.id)
        if (k is None or targets.count(var.id) > 1 or var.id in fetched or value.id in fetched
                or value.id in out or last_check > k.index or value.shape != var.shape):
            continue
        if k.root is not None and any(source_of(i).id == var.id for i in k.root.inputs):
            continue
        if k.kind in EPILOGUE_HOSTS and k.members and host_output(k) is value:
            continue  # the GEMM accumulates there before the epilogue reads the variable
        if any(source_of(t).id == var.id and (t is not source_of(t) or t.shape != k.shape)
               for t in k.loads()):
            continue
        if value.shape != k.shape:
            continue
        if any(source_of(t).id == var.id for later in kernels[k.index + 1:]
               if later.kind not in ("assign", "group") for t in later.loads()):
            continue
        out[value.id] = var
    return out


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
