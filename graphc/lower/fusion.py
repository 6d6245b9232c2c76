"""Fusion: partition a program's nodes into kernels.

Rules (applied in one topological sweep, so every group is convex: no path
leaves a group and comes back into it):

* float elementwise nodes (``elemwise``, ``broadcast_to``, ``dropout``) of
  one dtype over the same iteration space join the group of an elementwise
  input when all their other inputs are ready before that group runs; a node
  that reads no group joins the latest group if that is the last kernel so far
  (bool and int results, and casts, are kernels of their own);
* a group that reads only leaves (placeholders, variables, constants) moves
  into the one later group that uses it (e.g. ``0.9 * velocity``);
* an elementwise group over a matmul/conv2d output (reading nothing computed
  after it) becomes that kernel's *epilogue* (bias, activation), applied as the
  output tile is stored; likewise over a conv2d_backward_data output
  (activation-derivative masks), applied per image right after col2im;
* an elementwise group that only feeds a reduction becomes its *prologue*
  (sum of squares, mean of per-example losses) and is never stored;
* reshape is a view (no kernel); every other op is a kernel of its own; a print or
  check (an op with ``effect``) also stays where the step's order puts it;
* softmax cross-entropy forward + backward: a ``softmax_cross_entropy_grad``
  kernel joins the ``softmax_cross_entropy`` kernel of the same logits and
  labels (as its member: one pass per row writes the loss and d logits), when
  its ``g`` does not depend on the loss; the kernels ``g`` needs that ran after
  the forward (typically mean's ``1/N`` broadcast) are moved before it
  (:func:`_merge_softmax_ce`).

Update ops (assign, group) are not kernels: their writes happen when the step
finishes (see :mod:`graphc.lower.memplan` for the ones written in place). Only
values read outside their kernel, fetched, or assigned are stored.

Example::

    groups = fuse(optimize(Program([loss, train])))
    [g.name for g in groups]      # ['k0_matmul_ew', 'k1_softmax_cross_entropy_fused', ...]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ir.dtypes import FLOATS
from ..ir.graph import Kind, Tensor
from ..ir.program import Program
from ..ops.state import Assign


def fusable(node: Tensor) -> bool:
    """A float elementwise node: it may join a fused loop."""
    return node.op.kind is Kind.ELEMENTWISE and node.dtype in FLOATS


@dataclass
class Group:
    """The nodes of one kernel of the generated code.

    ``root`` is the non-elementwise node (matmul, reduction, conv ...) or None
    for a pure elementwise kernel; ``members`` are the elementwise nodes fused
    in (prologue for reductions, epilogue for matmul/conv, the body otherwise).
    One exception: a root may have a node of an op that ``joins`` it as member
    (softmax cross-entropy and its gradient: one row pass computes both).
    """

    index: int
    root: Tensor | None
    members: list[Tensor] = field(default_factory=list)
    stores: list[Tensor] = field(default_factory=list)
    #: a matmul whose root is stored only as the GEMM's accumulator (see _mark_stores): the
    #: epilogue receives final tiles in scratch and the root's final value is never written
    scratch_root: bool = False
    #: prepended to the kernel's name (the kernels of a scan body: ``s3_k0_matmul``)
    prefix: str = ""

    @property
    def hosts_epilogue(self) -> bool:
        """A template kernel (matmul, conv) applying its members as an epilogue."""
        return self.root is not None and bool(self.members) and self.root.op.hosts_epilogue(self.root)

    @property
    def kind(self) -> str:
        if self.root is None:
            return "elementwise"
        return self.root.op.name

    @property
    def name(self) -> str:
        what = self.kind if self.root is None or not self.members else f"{self.kind}_ew"
        if any(m.op.kind is not Kind.ELEMENTWISE for m in self.members):
            what = f"{self.kind}_fused"  # e.g. softmax cross-entropy with its gradient
        return f"{self.prefix}k{self.index}_{what}"

    @property
    def nodes(self) -> list[Tensor]:
        return ([self.root] if self.root is not None else []) + self.members

    @property
    def shape(self) -> tuple:
        """Iteration space of the elementwise part."""
        if self.members:
            return self.members[-1].shape
        return self.root.shape

    def loads(self) -> list[Tensor]:
        """Values read from memory: inputs of members from outside the kernel."""
        inside = {n.id for n in self.nodes}
        seen: dict[int, Tensor] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i.id not in inside:
                    seen.setdefault(i.id, i)
        return list(seen.values())


def source_of(node: Tensor) -> Tensor:
    """The node whose buffer holds ``node``'s value (looks through views)."""
    while node.op.kind is Kind.VIEW:
        node = node.inputs[0]
    return node


def reader_counts(program: Program) -> dict[int, int]:
    """How many times each value of ``program`` is read as an input (by node id)."""
    counts: dict[int, int] = {}
    for n in program.nodes:
        for i in n.inputs:
            counts[i.id] = counts.get(i.id, 0) + 1
    return counts


def assigned_values(program: Program) -> list[tuple[Tensor, Tensor]]:
    """(variable, value) of every variable write of the step, in program order."""
    return [(n.inputs[0], n.inputs[1]) for n in program.nodes if isinstance(n.op, Assign)]


def fuse(program: Program, epilogues: bool = True, prologues: bool = True,
         separate: bool = False, prefix: str = "") -> list[Group]:
    """Partition ``program`` into kernels in execution order.

    ``separate`` (the ``check_numerics`` build): no fusion at all, one kernel per node in
    program order, each storing its value, so every value can be checked where it is made.
    A projection (a part of a scan's tuple value) is always in its scan's kernel.
    ``prefix`` starts every kernel's name (a scan body's kernels).
    """
    consumers: dict[int, list[Tensor]] = {}
    for n in program.nodes:
        for i in n.inputs:
            consumers.setdefault(source_of(i).id, []).append(n)
    assigned = {source_of(value).id for _, value in assigned_values(program)}
    pinned = {source_of(o).id for o in program.outputs} | assigned  # fetched or assigned

    kernels: list[Group] = []
    owner: dict[int, Group] = {}

    def ready(t: Tensor) -> int:
        t = source_of(t)
        return owner[t.id].index if t.id in owner else -1

    for node in program.nodes:
        kind = node.op.kind
        if kind.is_leaf or kind in (Kind.VIEW, Kind.UPDATE):
            continue  # no kernel: leaves and views are storage, updates happen at the end
        if node.op.projects:
            owner[node.id] = owner[node.inputs[0].id]
            owner[node.id].members.append(node)
            continue
        if fusable(node) and not separate:
            target = _group_for(node, owner, ready) or _open_group(node, kernels, ready)
            if target is None:
                target = Group(len(kernels), None)
                kernels.append(target)
            target.members.append(node)
            owner[node.id] = target
            continue
        kernel = Group(len(kernels), node)
        kernels.append(kernel)
        owner[node.id] = kernel

    if not separate:
        kernels = _sink_leaf_groups(kernels, consumers, pinned, owner)
        kernels = _merge_epilogues(kernels, consumers, pinned, owner) if epilogues else kernels
        kernels = _merge_prologues(kernels, consumers, pinned, owner) if prologues else kernels
        kernels = _merge_joins(kernels, owner)
    _mark_stores(kernels, consumers, pinned, assigned)
    kernels = [k for k in kernels if k.stores or k.root is not None]
    for k, kernel in enumerate(kernels):
        kernel.index = k
        kernel.prefix = prefix
    return kernels


def _group_for(node: Tensor, owner, ready) -> Group | None:
    """The latest elementwise group ``node`` can join, if any."""
    best = None
    for i in node.inputs:
        k = owner.get(source_of(i).id)
        if k is None or k.root is not None or k.shape != node.shape:
            continue
        if k.members[0].dtype != node.dtype:
            continue
        if source_of(i) is not i:  # a reshaped value changes the index space
            continue
        if best is None or k.index > best.index:
            best = k
    if best is None:
        return None
    inside = {m.id for m in best.members}
    for i in node.inputs:
        if source_of(i).id not in inside and ready(i) >= best.index:
            return None
    return best


def _open_group(node: Tensor, kernels: list[Group], ready) -> Group | None:
    """For a node that reads no group's value (e.g. ``sigmoid(x)`` of a placeholder): the
    latest elementwise group over the same index space whose loop can compute it too, so
    ``f(x) + g(x)`` is one loop, not two with a stored intermediate."""
    for k in reversed(kernels):
        if k.root is None and k.shape == node.shape and k.members[0].dtype == node.dtype:
            if all(ready(i) < k.index for i in node.inputs):
                return k
            return None
        if k.root is not None:
            return None  # do not move work across another kernel
    return None


def _sink_leaf_groups(kernels: list[Group], consumers, pinned, owner) -> list[Group]:
    """Move a group that reads only leaves (e.g. ``0.9 * velocity`` of a momentum update)
    into the one later group that uses it: computed there, often inside a matmul's
    epilogue, instead of stored and loaded again."""
    out = []
    for h in kernels:
        target = _sink_target(h, consumers, pinned, owner) if h.root is None else None
        if target is None:
            out.append(h)
            continue
        target.members[:0] = h.members  # before their consumers: the group stays in order
        for m in h.members:
            owner[m.id] = target
    return out


def _sink_target(h: Group, consumers, pinned, owner) -> Group | None:
    inside = {m.id for m in h.members}
    if any(m.id in pinned for m in h.members):
        return None
    if any(not source_of(i).op.kind.is_leaf and source_of(i).id not in inside
           for m in h.members for i in m.inputs):
        return None
    targets = {}
    for m in h.members:
        for c in consumers.get(m.id, []):
            if c.id not in inside:
                k = owner.get(c.id)
                targets[id(k)] = k
    if len(targets) != 1:
        return None
    (g,) = targets.values()
    if g is None or g.root is not None or g.index <= h.index or g.shape != h.shape:
        return None
    return g if g.members[0].dtype == h.members[0].dtype else None


def _merge_epilogues(kernels, consumers, pinned, owner):
    """Fold an elementwise group into the matmul/conv kernel whose output it reads."""
    out = []
    for k in kernels:
        if k.root is None and k.members:
            host = _epilogue_host(k, consumers, pinned, owner)
            if host is not None:
                host.members.extend(k.members)
                for m in k.members:
                    owner[m.id] = host
                continue
        out.append(k)
    return out


def _epilogue_host(group: Group, consumers, pinned, owner) -> Group | None:
    """The matmul/conv2d kernel ``group`` can run inside, as the host's output is stored.

    The group must iterate over the host's output (same shape and dtype; a matmul's
    output 2-D; a conv2d's (N, O, OH, OW) or a conv2d_backward_data's (N, C, H, W),
    other loads broadcast over it in any way, see ``lower.elementwise.axes_index``) and
    read nothing computed after the host.
    The host's own value may also be fetched or read elsewhere: it is then stored too.
    """
    for m in group.members:
        for i in m.inputs:
            k = owner.get(i.id)
            if (k is not None and k.root is i and i.op.hosts_epilogue(i) and not k.members
                    and group.members[0].dtype == i.dtype
                    and i.shape == group.shape
                    and all(owner.get(source_of(x).id, k).index <= k.index
                            for x in group.loads() if x is not i)):
                return k
    return None


def _merge_prologues(kernels, consumers, pinned, owner):
    """Let a reduction compute its input's elementwise group instead of loading it."""
    for k in kernels:
        if k.root is None or k.root.op.kind is not Kind.REDUCTION or k.members:
            continue
        x = k.root.inputs[0]
        g = owner.get(x.id)
        if g is None or g.root is not None or source_of(x) is not x or x.id in pinned:
            continue
        if consumers.get(x.id, []) != [k.root]:
            continue
        # Recompute x's expression inside the reduction from g's own loads.
        k.members = _cone(x, g)
    return kernels


def _cone(x: Tensor, group: Group) -> list[Tensor]:
    """Members of ``group`` that ``x`` depends on, in order (x last)."""
    inside = {m.id for m in group.members}
    need = {x.id}
    for m in reversed(group.members):
        if m.id in need:
            need.update(i.id for i in m.inputs if i.id in inside)
    return [m for m in group.members if m.id in need]


def _merge_joins(kernels: list[Group], owner) -> list[Group]:
    """Merge each kernel whose op ``joins`` another into that op's earlier kernel.

    E.g. softmax_cross_entropy_grad joins softmax_cross_entropy of the same logits and
    labels (``shares_inputs``): the forward kernel gets the grad node as its member and
    computes the row max and log-sum-exp once for both. The joining node's other
    inputs must be ready when the host runs: kernels after the host that they depend
    on are moved before it, keeping their order (no dependency breaks: everything
    they read is earlier or moved too). If they depend on the host itself, the two
    stay separate.
    """
    kernels = list(kernels)
    for grad in [k for k in kernels if k.root is not None and k.root.op.joins and not k.members]:
        shared = grad.root.inputs[:grad.root.op.shares_inputs]
        fwd = next((k for k in kernels if k.root is not None and not k.members
                    and isinstance(k.root.op, grad.root.op.joins)
                    and all(a is b for a, b in zip(k.root.inputs, shared))), None)
        if fwd is None:
            continue
        pos = {id(k): j for j, k in enumerate(kernels)}
        at = pos[id(fwd)]
        if pos[id(grad)] < at:
            continue
        need: dict[int, Group] = {}
        todo = [source_of(t) for t in grad.root.inputs[len(shared):]]
        while todo:
            k = owner.get(todo.pop().id)
            if k is None or pos.get(id(k), -1) <= at or id(k) in need:
                if k is fwd:
                    break
                continue
            need[id(k)] = k
            todo.extend(source_of(t) for t in k.loads())
        else:
            if any(getattr(n.op, "effect", False) for k in need.values() for n in k.nodes):
                continue  # a print or check stays in the step's order
            moved = sorted(need.values(), key=lambda k: pos[id(k)])
            rest = [k for k in kernels if id(k) not in need and k is not grad]
            at = rest.index(fwd)
            kernels = rest[:at] + moved + rest[at:]
            fwd.members.append(grad.root)
            owner[grad.root.id] = fwd
    return kernels


def _mark_stores(kernels: list[Group], consumers, pinned, assigned) -> None:
    """A kernel stores its root, and members read by another kernel, fetched or assigned."""
    needed = set(pinned)
    for k in kernels:
        needed.update(source_of(t).id for t in k.loads())
    home: dict[int, Group] = {}
    for k in kernels:
        for n in k.nodes:
            home.setdefault(n.id, k)  # a prologue's recomputed copy does not own the value
    for k in kernels:
        k.stores = [n for n in k.nodes if home[n.id] is k and n.dtype is not None and (
            n.id in needed or (n is k.root and not k.members))]
        # A matmul/conv epilogue that computes optimizer updates keeps the raw product in
        # the host's own buffer: the updates can then go straight into their variables
        # (memplan), which the epilogue also reads -- never the buffer the GEMM
        # accumulates into. Nothing else reads that product, so a matmul hands its final
        # tiles to the epilogue in scratch and never stores them (kernels/gemm.h's
        # owns_store): the buffer only holds partial sums when K spans several blocks.
        if (k.hosts_epilogue and k.root not in k.stores
                and any(n.id in assigned for n in k.stores)):
            k.stores.insert(0, k.root)
            k.scratch_root = k.root.op.epilogue_owns_store


def host_output(group: Group) -> Tensor:
    """The value a matmul/conv kernel's template writes (its epilogue's result is stored there)."""
    return group.root if group.root in group.stores else group.stores[0]
