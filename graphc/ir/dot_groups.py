"""Which nodes :func:`graphc.to_dot` draws together: collapsed scopes, update boxes.

A *box* stands for several graph nodes drawn as one DOT node:

- a collapsed name scope (its forward nodes; its gradient nodes are a second box
  "scope (gradient)" beside it, its unboxed update nodes a third "scope (update)");
- an optimizer's update arithmetic for one variable ("Adam update W (784, 256)"),
  slots included, and one box for state the optimizer shares (Adam's step count);
- with ``collapse=True``, each connected piece of gradient nodes outside any scope
  (one per ``gc.grad`` call), so that two identical gradient subgraphs are two boxes;
  ``collapse="gradients"`` boxes every gradient piece and nothing else.

Constants read only by boxed nodes are hidden: they are detail of the box.

Example::

    plan = plan_groups(nodes, collapse=True, group_updates=True)
    plan.box_of[node.id].label            # 'dense\\nin (N, 64)\\nout (N, 10)'
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from . import shapes as _sh
from .errors import ArgumentError
from .graph import Kind, Tensor

_SUFFIX = {"forward": "", "grad": " (gradient)", "update": " (update)"}


def scope_of(t: Tensor) -> str:
    """The node's "/"-joined name scope ("" outside any scope)."""
    return getattr(t, "scope", "") or ""


def scope_parts(t: Tensor) -> list[str]:
    return [p for p in scope_of(t).split("/") if p]


@dataclass
class Box:
    """Several nodes drawn as one DOT node."""

    key: str  #: the DOT node id
    kind: str  #: "scope", "gradient" or "update"
    title: str  #: first line of the label
    role: str  #: fill colour: "forward", "grad" or "update"
    place: tuple[str, ...]  #: the cluster path the box is drawn in
    nodes: list[Tensor] = field(default_factory=list)
    label: str = ""
    #: boxes with the same fold key share a rank (a scope's gradient beside its forward)
    fold: tuple | None = None
    #: an update box's variable
    var: Tensor | None = None


@dataclass
class Plan:
    boxes: dict[str, Box]
    box_of: dict[int, Box]
    hidden: set[int]


def normalize_collapse(collapse):
    """None/False, True, a depth >= 1, "gradients" or a tuple of scope names; else ArgumentError."""
    if collapse is None or collapse is False or collapse is True or collapse == "gradients":
        return None if collapse is False else collapse
    if isinstance(collapse, int) and not isinstance(collapse, bool):
        if collapse < 1:
            raise ArgumentError(f"to_dot: collapse depth must be >= 1, got {collapse}")
        return collapse
    names = (collapse,) if isinstance(collapse, str) else collapse
    try:
        names = tuple(names)
    except TypeError:
        names = (None,)
    if not all(isinstance(n, str) and n.strip("/") for n in names):
        raise ArgumentError("to_dot: collapse must be True, a depth, \"gradients\" or scope "
                            f"names, got {collapse!r}")
    return names


def collapsed_prefix(parts: list[str], collapse) -> int:
    """How many leading scope parts form the collapsed scope (0: not collapsed)."""
    if not parts or collapse is None or collapse == "gradients":
        return 0
    if collapse is True:
        return 1
    if isinstance(collapse, int):
        return collapse if len(parts) >= collapse else 0
    wanted = {c.strip("/") for c in collapse}
    for k in range(1, len(parts) + 1):
        if "/".join(parts[:k]) in wanted:
            return k
    return 0


def cluster_path(parts: list[str], role: str) -> tuple[str, ...]:
    """Nested cluster names of a node: gradient nodes go to "S (gradient)" clusters drawn
    beside the forward cluster "S" (their ranks are far from the forward pass)."""
    suffix = " (gradient)" if role == "grad" else ""
    return tuple(p + suffix for p in parts)


def plan_groups(nodes: list[Tensor], collapse=None, group_updates: bool = True) -> Plan:
    """Decide the boxes for ``nodes`` (see the module docstring)."""
    collapse = normalize_collapse(collapse)
    boxes: dict[str, Box] = {}
    box_of: dict[int, Box] = {}
    drawn = {n.id for n in nodes}
    users: dict[int, list[Tensor]] = {n.id: [] for n in nodes}
    for n in nodes:
        for i in n.inputs:
            if i.id in users:
                users[i.id].append(n)

    def put(n: Tensor, key: str, make) -> None:
        box = boxes.get(key)
        if box is None:
            box = boxes[key] = make()
        box.nodes.append(n)
        box_of[n.id] = box

    if group_updates:
        for n, (key, make) in _update_boxes(nodes).items():
            put(n, key, make)
    for n in nodes:
        if n.id in box_of or n.op.name == "group":
            continue
        parts = scope_parts(n)
        k = collapsed_prefix(parts, collapse)
        if not k:
            continue
        name = "/".join(parts[:k])
        role = n.role if n.role in _SUFFIX else "forward"
        kind = {"forward": "scope", "grad": "gradient", "update": "update"}[role]
        place = cluster_path(parts[:k - 1], "forward")
        put(n, f"box_{kind}_{_ident(name)}",
            lambda name=name, role=role, kind=kind, place=place: Box(
                f"box_{kind}_{_ident(name)}", kind, name + _SUFFIX[role], role, place,
                fold=("scope", name)))
    if collapse is True or collapse == "gradients":
        _gradient_pieces(nodes, users, box_of, put, scoped=collapse == "gradients")
    for box in boxes.values():
        if box.var is not None:
            parts = scope_parts(box.var)
            k = collapsed_prefix(parts, collapse)
            if k:
                box.place = cluster_path(parts[:k - 1], "forward")
                box.fold = ("scope", "/".join(parts[:k]))
            else:
                box.place = cluster_path(parts, "forward")
    hidden = {n.id for n in nodes if n.op.kind is Kind.CONSTANT and n.id not in box_of
              and users[n.id] and all(u.id in box_of for u in users[n.id])}
    for box in boxes.values():
        box.label = _box_label(box, box_of, users, drawn, hidden)
    return Plan(boxes, box_of, hidden)


# -- optimizer updates --------------------------------------------------------------------

def _update_boxes(nodes: list[Tensor]) -> dict[Tensor, tuple]:
    """Each update-role node's box: the trained variable whose step it computes (its slots
    included), or the optimizer's shared box when it serves several variables."""
    upd = [n for n in nodes if n.role == "update" and n.op.name != "group"]
    is_upd = {n.id for n in upd}
    opt_of: dict[int, str] = {}
    for g in nodes:
        if g.op.name == "group" and g.role == "update":
            parts = g.name.split("/")
            opt = parts[-2] if len(parts) >= 2 else parts[0]
            for a in g.inputs:
                if a.op.name == "assign":
                    opt_of[a.id] = opt
    owners: dict[int, set[int]] = {n.id: set() for n in upd}
    primary = {}
    for a in upd:
        # the user's variable (slots and step counts are the optimizer's own, role "update")
        if a.op.name == "assign" and a.inputs[0].role != "update":
            var = a.inputs[0]
            primary[var.id] = (var, opt_of.get(a.id, "update"))
            stack, seen = [a], set()
            while stack:
                n = stack.pop()
                if n.id in seen:
                    continue
                seen.add(n.id)
                owners[n.id].add(var.id)
                stack.extend(i for i in n.inputs if i.id in is_upd)
    for n in upd:  # slot assigns: owned like the value they store
        if not owners[n.id]:
            for i in n.inputs:
                owners[n.id] |= owners.get(i.id, set())
    out = {}
    for n in upd:
        own = owners[n.id]
        if len(own) == 1:
            var, opt = primary[next(iter(own))]
            key = f"box_update_{var.id}"
            out[n] = (key, lambda var=var, opt=opt, key=key: Box(
                key, "update", f"{opt} update {var.name}\n{_sh.fmt(var.shape)}", "update", (),
                var=var))
        elif own:
            opt = next((primary[v][1] for v in sorted(own)), "update")
            key = f"box_update_shared_{_ident(opt)}"
            out[n] = (key, lambda opt=opt, key=key: Box(key, "update", f"{opt} shared state",
                                                        "update", ()))
    return out


# -- gradient pieces outside any scope -----------------------------------------------------

def _gradient_pieces(nodes, users, box_of, put, scoped: bool) -> None:
    """One box per connected piece of gradient nodes not boxed yet (outside any scope, or
    every gradient node when ``scoped``)."""
    loose = {n.id: n for n in nodes if n.role == "grad" and n.id not in box_of
             and (scoped or not scope_parts(n))}
    pieces: list[list[Tensor]] = []
    seen: set[int] = set()
    for n in nodes:
        if n.id not in loose or n.id in seen:
            continue
        piece, stack = [], [n]
        seen.add(n.id)
        while stack:
            m = stack.pop()
            piece.append(m)
            for o in list(m.inputs) + users.get(m.id, []):
                if o.id in loose and o.id not in seen:
                    seen.add(o.id)
                    stack.append(o)
        pieces.append(piece)
    for k, piece in enumerate(pieces):
        title = "gradient" if len(pieces) == 1 else f"gradient {k + 1}"
        key = f"box_gradient_{k}"
        for m in sorted(piece, key=lambda t: t.id):
            put(m, key, lambda title=title, key=key: Box(key, "gradient", title, "grad", ()))


# -- labels -------------------------------------------------------------------------------

def _box_label(box: Box, box_of, users, drawn, hidden) -> str:
    mine = {n.id for n in box.nodes}
    ins: list[str] = []
    outs: list[str] = []
    for n in box.nodes:
        for i in n.inputs:
            if i.id not in mine and i.id not in hidden and i.dtype is not None:
                _add(ins, _sh.fmt(i.shape))
        ext = [u for u in users.get(n.id, []) if u.id not in mine]
        if n.dtype is not None and (ext or not users.get(n.id)) and n.op.kind is not Kind.VARIABLE:
            _add(outs, _sh.fmt(n.shape))
    lines = [box.title]
    if box.kind != "update":
        ops = sum(1 for n in box.nodes if not n.op.kind.is_leaf)
        lines[0] += f", {ops} op{'s' if ops != 1 else ''}"
        lines += [f"in {_few(ins)}" if ins else "in -", f"out {_few(outs)}" if outs else "out -"]
    return "\n".join(lines)


def _add(items: list[str], s: str) -> None:
    if s not in items:
        items.append(s)


def _few(items: list[str], k: int = 3) -> str:
    return ", ".join(items[:k]) + (f" +{len(items) - k}" if len(items) > k else "")


def _ident(text: str) -> str:
    """A DOT/HTML-safe id for a scope name (a checksum keeps "a/b" and "a_b" apart)."""
    return "".join(c if c.isalnum() else "_" for c in text) + f"_{zlib.crc32(text.encode()):08x}"
