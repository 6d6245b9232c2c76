"""The memory plan: where every value of a compiled step lives.

Leaves live in the tables the caller passes (feeds, variables, constants);
a fetched value is computed straight into the output array the caller passes;
an optimizer update that nothing reads the old value of afterwards is computed
straight into its variable; everything else a kernel stores gets a slot in one
arena, reused between values whose lifetimes do not overlap. Views (reshape)
share their input's storage. :meth:`Plan.buffer` is the one answer to "where
does this value live".

Sizes may depend on the batch size N, which is only known at run time. A value
of ``c * N**k`` bytes goes to section ``k``; within a section slots are laid
out first-fit in units of ``N**k``, so one plan is valid for every batch size.
Section ``k`` starts after sections ``0..k-1`` at run time.

Example::

    plan = plan_memory(groups, program)
    plan.buffer(node)         # Buffer("p_relu", "float32", Place("arena", offset=...))
    plan.arena_bytes          # bytes as an expression in N
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ir.graph import Kind, Tensor
from ..ir.program import Program
from ..ops.shape import FlatPart
from ..render.escape import c_identifier
from .fusion import Group, assigned_values, host_output, source_of
from .ir import Buffer, Expr, Lit, Place, add, mul, size

ALIGN = 64


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass
class Slot:
    node: Tensor
    section: int  # power of N
    unit_bytes: int  # bytes per N**section
    start: int  # index of the kernel that writes it
    end: int  # index of the last kernel that reads it
    offset: int = 0  # in units of N**section


def byte_size(node: Tensor) -> tuple[int, int]:
    """(power of N, bytes per N**power) of a node's value, in Python integers (exact)."""
    power = sum(1 for d in node.shape if d is None)
    n = math.prod(int(d) for d in node.shape if d is not None)
    return power, n * np.dtype(node.dtype).itemsize


class Plan:
    """The places of a step's values and the arena's layout.

    ``feeds``, ``variables`` and ``constants`` are the tables the caller passes, in
    order; ``in_place`` maps a value (by node id) to the variable it is written into,
    ``direct`` to the output array it is written into.
    """

    def __init__(self, program: Program, slots: dict[int, Slot], direct: dict[int, int],
                 in_place: dict[int, Tensor], constants: list[Tensor],
                 parts: dict[int, tuple[Tensor, Expr]] | None = None,
                 runs: dict[int, tuple[Tensor, int]] | None = None) -> None:
        self.feeds = program.placeholders
        #: values stored straight into a concatenation: id -> (the concat, first element)
        self.parts = parts or {}
        #: values stored as a contiguous run of a 1-D value: id -> (that value, first element)
        self.runs = runs or {}
        self.variables = program.variables
        self.constants = constants
        self.slots = slots
        self.direct = direct
        self.in_place = in_place
        sections: dict[int, int] = {}
        for s in slots.values():
            sections[s.section] = max(sections.get(s.section, 0), s.offset + _align(s.unit_bytes))
        self._starts: dict[int, Expr] = {}
        total: Expr = Lit(0)
        for k in sorted(sections):
            self._starts[k] = total
            total = add(total, _term(sections[k], k))
        #: bytes of the arena (the slots; the workspace comes after it), an expression in N
        self.arena_bytes = total
        self._buffers: dict[int, Buffer] = {}
        self._names: set[str] = set()
        for table, kind in ((self.feeds, "feed"), (self.variables, "var"), (self.constants, "const")):
            for i, t in enumerate(table):
                self._buffers[t.id] = self._new(t, Place(kind, index=i))

    def constant_index(self, node: Tensor) -> int:
        """The index of constant ``node`` in the constant table, added when it is not there
        yet (a scan body's constants are entries of the table of the step running it)."""
        for i, c in enumerate(self.constants):
            if c is node:
                return i
        self.constants.append(node)
        return len(self.constants) - 1

    def buffer(self, node: Tensor) -> Buffer:
        """The storage of ``node``'s value (through views)."""
        base = node
        while base.op.kind is Kind.VIEW and not isinstance(base.op, FlatPart):
            base = base.inputs[0]
        if isinstance(base.op, FlatPart):  # a buffer starting at the run
            return self._at_run(base, base.inputs[0], base.attrs["offset"])
        src = source_of(node)
        if src.id in self.runs:
            return self._at_run(src, *self.runs[src.id])
        if src.id in self.parts:
            return self.buffer(self.parts[src.id][0])
        if src.id not in self._buffers:
            var = self.in_place.get(src.id)  # an update and its variable are one buffer
            self._buffers[src.id] = self.buffer(var) if var is not None else self._new(src)
        return self._buffers[src.id]

    def _at_run(self, node: Tensor, whole: Tensor, first: int) -> Buffer:
        """A buffer for ``node``: elements ``first ...`` of ``whole``'s (in the arena)."""
        if node.id not in self._buffers:
            base = self.buffer(whole)
            assert base.place.kind == "arena", base  # (runs_in_place only picks arena values)
            at = add(base.place.offset, Lit(first * np.dtype(whole.dtype).itemsize))
            self._buffers[node.id] = self._new(node, Place("arena", offset=at))
        return self._buffers[node.id]

    def part_of(self, node: Tensor) -> tuple[Tensor, Expr] | None:
        """(concatenation, first element in it) when ``node`` is stored straight into one."""
        return self.parts.get(node.id)

    def variable_for(self, node: Tensor) -> Tensor | None:
        """The variable ``node``'s value is computed straight into, if any."""
        return self.in_place.get(source_of(node).id)

    def output_index(self, node: Tensor) -> int | None:
        """The output array ``node``'s value is written to directly, if any."""
        return self.direct.get(source_of(node).id)

    def _place(self, src: Tensor) -> Place:
        if src.id in self.direct:
            return Place("out", index=self.direct[src.id])
        s = self.slots[src.id]
        return Place("arena", offset=add(self._starts[s.section], _term(s.offset, s.section)))

    def _new(self, node: Tensor, place: Place | None = None) -> Buffer:
        base = c_identifier(node.name, "p_")  # (ASCII: not every compiler takes UTF-8)
        name, k = base, 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        return Buffer(name, node.dtype, place or self._place(node))


def _term(units: int, power: int) -> Expr:
    return mul(Lit(units), *([size(None)] * power))


def plan_memory(groups: list[Group], program: Program, in_place: bool = True,
                parts: dict[int, tuple[Tensor, Expr]] | None = None,
                runs: dict[int, tuple[Tensor, int]] | None = None) -> Plan:
    """Assign places to every value a kernel stores.

    With ``in_place``, an assigned value that nothing reads the variable's old value after
    (an optimizer update) is computed straight into the variable: no slot, no commit copy.
    ``parts`` (see :func:`~graphc.lower.views.concat_in_place`) live in their concatenation,
    whose slot then starts at the first kernel storing a part; so do ``runs`` (value id ->
    (1-D value, first element): the gradients an allreduce averages, stored in its vector).
    """
    parts, runs = parts or {}, runs or {}
    inside = {i: whole for i, (whole, _) in [*parts.items(), *runs.items()]}  # no slot of their own
    end_of_step = len(groups)
    loads = [k.loads() for k in groups]
    last_read: dict[int, int] = {}  # source id -> index of the last kernel that reads it
    for k, reads in zip(groups, loads):
        for t in reads:
            last_read[source_of(t).id] = k.index
    slots: dict[int, Slot] = {}
    for k in groups:
        for n in k.stores:
            power, unit = byte_size(n)
            if n.id not in inside:
                slots[n.id] = Slot(n, power, unit, k.index, max(k.index, last_read.get(n.id, -1)))
    for k in groups:  # the value holding them is live from its first part on
        for n in k.stores:
            if n.id in inside:
                whole = slots[inside[n.id].id]
                whole.start = min(whole.start, k.index)
    inplace = _in_place_updates(groups, loads, last_read, program) if in_place else {}
    for i in inplace:
        slots.pop(i, None)
    # A fetched value is computed straight into its output array (no arena slot, no copy).
    direct: dict[int, int] = {}
    for j, o in enumerate(program.outputs):
        src = source_of(o)  # (a view of part of a value, a flat_part, is copied out)
        if (o.dtype is not None and src.id in slots and src.id not in direct
                and byte_size(o) == byte_size(src)):
            direct[src.id] = j
            del slots[src.id]
    read_at_end = [value for _, value in assigned_values(program)]  # read as the step commits
    read_at_end += [o for o in program.outputs if o.dtype is not None]  # or copied out
    for value in read_at_end:
        s = slots.get(source_of(value).id)
        if s is not None:
            s.end = end_of_step
    by_section: dict[int, list[Slot]] = {}
    for s in slots.values():
        by_section.setdefault(s.section, []).append(s)
    for group in by_section.values():
        _first_fit(group)
    used = set(last_read)
    used |= {source_of(o).id for o in program.outputs if o.dtype is not None}
    used |= {source_of(v).id for _, v in assigned_values(program)}
    constants = [n for n in program.nodes if n.op.kind is Kind.CONSTANT and n.id in used]
    return Plan(program, slots, direct, inplace, constants, parts, runs)


def _in_place_updates(groups: list[Group], loads: list[list[Tensor]], last_read: dict[int, int],
                      program: Program) -> dict[int, Tensor]:
    """Assigned values that can be written into their variable as they are computed.

    Safe when the kernel computing the value reads the variable only elementwise at the
    element it writes (not as a matmul/conv operand, not broadcast), no later kernel reads
    the variable, no later kernel can fail on the data, and neither is fetched.
    """
    home = {n.id: k for k in groups for n in k.stores}
    fetched = {source_of(o).id for o in program.outputs}
    assigns = assigned_values(program)
    targets = [var.id for var, _ in assigns]
    last_check = max((k.index for k in groups if any(n.op.can_fail for n in k.nodes)), default=-1)
    out: dict[int, Tensor] = {}
    for var, value in assigns:
        k = home.get(value.id)
        if (k is None or targets.count(var.id) > 1 or var.id in fetched or value.id in fetched
                or value.id in out or last_check > k.index or value.shape != var.shape):
            continue
        if k.root is not None and any(source_of(i).id == var.id for i in k.root.inputs):
            continue
        if k.hosts_epilogue and host_output(k) is value:
            continue  # the template accumulates there before the epilogue reads the variable
        if any(source_of(t).id == var.id and (t is not source_of(t) or t.shape != k.shape)
               for t in loads[k.index]):
            continue
        if value.shape != k.shape or last_read.get(var.id, -1) > k.index:
            continue
        out[value.id] = var
    return out


def _first_fit(slots: list[Slot]) -> None:
    """Place big buffers first at the lowest offset free over their lifetime."""
    placed: list[Slot] = []
    for s in sorted(slots, key=lambda s: (-s.unit_bytes, s.start)):
        size_ = _align(s.unit_bytes)
        busy = sorted((p.offset, p.offset + _align(p.unit_bytes)) for p in placed
                      if not (p.end < s.start or s.end < p.start))
        offset = 0
        for lo, hi in busy:
            if offset + size_ <= lo:
                break
            offset = max(offset, hi)
        s.offset = offset
        placed.append(s)
