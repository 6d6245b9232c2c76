"""Graphviz DOT export of a graph, of the subgraph behind some tensors, or of a compiled step.

The drawing is bipartite: values are ellipses (name, shape, dtype), ops are
boxes. Placeholders, variables and constants have their own colours (small
constants show their values), and nodes built by ``gc.grad`` and optimizers are
drawn in their own colours. Every node's tooltip is the user's ``file:line``.

Name scopes are nested clusters; a scope's gradient nodes are a cluster
"scope (gradient)" beside it. ``collapse`` draws scopes as single boxes labelled
with their input and output shapes: ``True`` (every top-level scope, and each
gradient subgraph outside any scope), a depth (``2``: the scopes two levels down),
a list of scope names, or ``"gradients"`` (only the gradient subgraphs, one box per
``gc.grad`` call or scope). An optimizer's update arithmetic is one box per variable
unless ``group_updates=False``.

Example::

    text = gc.to_dot(g)                            # the whole graph
    gc.to_dot([loss], path="loss.dot")             # what loss depends on
    gc.to_dot(g, collapse=True, path="model.dot")  # one box per layer
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import shapes as _sh
from .dot_groups import Plan, cluster_path, normalize_collapse, plan_groups, scope_of, scope_parts
from .errors import ArgumentError
from .graph import Graph, Kind, Tensor
from .program import Program, toposort

_LEAF_STYLE = {
    Kind.PLACEHOLDER: 'shape=ellipse, style=filled, fillcolor="#ffe9a8"',
    Kind.VARIABLE: 'shape=ellipse, style="filled,bold", fillcolor="#b8e0b8"',
    Kind.CONSTANT: 'shape=ellipse, style=filled, fillcolor="#e4e4e4"',
}
_OP_FILL = {"forward": "#dbe8fb", "grad": "#f9d4d4", "update": "#e6d6f5"}
_VALUE_FILL = {"forward": "#ffffff", "grad": "#fff0f0", "update": "#f7f0ff"}
_BOX_STYLE = {"scope": 'shape=box3d, style="filled"',
              "gradient": 'shape=box3d, style="filled"',
              "update": 'shape=box, style="rounded,filled,bold"'}
_CLUSTER_COLOR = {False: "#3366aa", True: "#cc5555"}
#: constants with at most this many elements show their values
SMALL_CONSTANT = 4


def _q(text: str) -> str:
    """A quoted DOT string; newlines become DOT line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n") + '"'


def constant_text(t: Tensor) -> str | None:
    """The value of a small constant as short text ("0.9", "[1, 2]"), else None."""
    v = t.value
    if t.op.kind is not Kind.CONSTANT or v is None or np.size(v) > SMALL_CONSTANT:
        return None
    arr = np.asarray(v)

    def one(x) -> str:
        return f"{x:.4g}" if arr.dtype.kind == "f" else str(x.item() if hasattr(x, "item") else x)

    if arr.ndim == 0:
        return one(arr[()])
    return "[" + ", ".join(one(x) for x in arr.reshape(-1)) + "]"


def _value_label(t: Tensor) -> str:
    if t.dtype is None:
        return t.name
    small = constant_text(t)
    if small is not None:
        return f"{small}\n{_sh.fmt(t.shape)} {t.dtype}" if t.shape else f"{small}\n{t.dtype}"
    return f"{t.name}\n{_sh.fmt(t.shape)} {t.dtype}"


def _sites(nodes: list[Tensor], k: int = 3) -> str:
    seen: list[str] = []
    for n in nodes:
        if n.site and n.site not in seen:
            seen.append(n.site)
    return ", ".join(seen[:k]) + (f" (+{len(seen) - k} more)" if len(seen) > k else "")


def _subject(graph_or_tensors):
    """(nodes, kernels or None) of what to draw: a compiled step draws its optimized
    program and, on a compiled backend, the kernels (objects with name and nodes)."""
    program = getattr(graph_or_tensors, "program", None)
    if isinstance(program, Program):
        kernels = getattr(getattr(graph_or_tensors, "executable", None), "kernels", None)
        return list(program.nodes), kernels
    if isinstance(graph_or_tensors, Graph):
        return list(graph_or_tensors.nodes), None
    tensors = [graph_or_tensors] if isinstance(graph_or_tensors, Tensor) else list(graph_or_tensors)
    return toposort(tensors), None


def to_dot(graph_or_tensors, path: str | Path | None = None, clusters=None, collapse=None,
           group_updates: bool | None = None, rankdir: str = "TB") -> str:
    """Return DOT text for a graph, the tensors' subgraph or a compiled fetch set.

    A compiled fetch set (``sess.compile([loss, train])``) is drawn as the program
    the backend runs (after the passes: CSE has merged what it could); on the C
    backend every fused kernel is a cluster labelled with its kernel name (unless
    ``collapse`` asks for scopes instead). ``clusters`` optionally maps a label to
    tensors drawn inside a cluster. ``collapse``: ``True``, a depth or scope names
    (see the module docstring). ``group_updates`` (default: on, except for a
    compiled program's kernel clusters) draws each variable's optimizer update as
    one box. ``rankdir``: Graphviz direction, "TB" or "LR".

    Example::

        gc.to_dot(g, collapse=["encoder"], path="g.dot")   # encoder as one box
        gc.to_dot(sess.compile([loss, train]))             # kernels as clusters
    """
    return render_dot(graph_or_tensors, path, clusters, collapse, group_updates, rankdir)[0]


def render_dot(graph_or_tensors, path=None, clusters=None, collapse=None, group_updates=None,
               rankdir: str = "TB") -> tuple[str, dict[str, dict]]:
    """:func:`to_dot`'s text and what each DOT node id stands for (for ``gc.to_html``):
    name, op, shape, dtype, line, role, scope, kernel and, for a box, its members."""
    collapse = normalize_collapse(collapse)
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ArgumentError(f"to_dot: rankdir must be TB, LR, BT or RL, got {rankdir!r}")
    nodes, kernels = _subject(graph_or_tensors)
    kernel_of: dict[int, str] = {}
    for k in kernels or []:
        for n in k.nodes:
            kernel_of.setdefault(n.id, k.name)
    if kernels is not None and collapse is None and clusters is None:
        clusters, placed = {}, set()
        for k in kernels:
            home = [n for n in k.nodes if n.id not in placed]
            placed.update(n.id for n in home)
            clusters[f"{k.name} ({len(k.nodes)} node{'s' if len(k.nodes) > 1 else ''})"] = home
    if group_updates is None:
        group_updates = not clusters
    plan = plan_groups(nodes, collapse, group_updates)
    member = {t.id: ("#cluster", k) for k, ts in enumerate((clusters or {}).values()) for t in ts}
    bodies: dict[tuple, list[str]] = {(): []}
    info: dict[str, dict] = {}

    # no scope clusters: the caller's (or the kernels') clusters, or an uncollapsed compiled step
    flat = bool(clusters) or (collapse is None
                              and isinstance(getattr(graph_or_tensors, "program", None), Program))

    def place(t: Tensor) -> tuple:
        if clusters:
            return member.get(t.id, ())
        if flat or (group_updates and t.op.name == "group"):
            return ()  # a compiled step's clusters are its kernels; the step op stands alone
        return cluster_path(scope_parts(t), t.role)

    for t in nodes:
        if t.id in plan.hidden or t.id in plan.box_of:
            continue
        out = bodies.setdefault(place(t), [])
        vid = f"v{t.id}"
        tip = _q(t.site or "")
        info[vid] = _describe(t, kernel_of)
        if t.op.kind in _LEAF_STYLE:
            out.append(f"  {vid} [label={_q(_value_label(t))}, {_LEAF_STYLE[t.op.kind]}, id={vid}, "
                       f"tooltip={tip}];")
            continue
        oid = f"op{t.id}"
        info[oid] = info[vid]
        fill = _OP_FILL.get(t.role, _OP_FILL["forward"])
        out.append(f'  {oid} [label={_q(t.op.label(t.attrs))}, shape=box, style="rounded,filled", '
                   f'fillcolor="{fill}", id={oid}, tooltip={tip}];')
        shape = "octagon" if t.dtype is None else "ellipse"
        out.append(f'  {vid} [label={_q(_value_label(t))}, shape={shape}, style=filled, '
                   f'fillcolor="{_VALUE_FILL.get(t.role, "#ffffff")}", id={vid}, tooltip={tip}];')
        out.append(f"  {oid} -> {vid};")
    for box in plan.boxes.values():
        out = bodies.setdefault(() if flat else box.place, [])
        out.append(f"  {box.key} [label={_q(box.label)}, {_BOX_STYLE[box.kind]}, id={box.key}, "
                   f'fillcolor="{_OP_FILL[box.role]}", tooltip={_q(_sites(box.nodes))}];')
        info[box.key] = _describe_box(box, kernel_of)
    folds: dict[tuple, list[str]] = {}
    for box in plan.boxes.values():
        if box.fold is not None and not clusters:
            folds.setdefault((box.place, box.fold), []).append(box.key)
    for (where, _), keys in folds.items():
        if len(keys) > 1:
            bodies.setdefault(where, []).append("  { rank=same; " + "; ".join(keys) + "; }")
    bodies[()].extend(_edges(nodes, plan))

    lines = ["digraph graphc {", f'  rankdir={rankdir}; node [fontname="Helvetica", fontsize=10];',
             '  edge [color="#555555"];']
    if plan.boxes and collapse is not None:
        lines.append("  nodesep=0.2; ranksep=0.3;")
    lines += bodies.pop(())
    if clusters:
        for k, label in enumerate(clusters):
            lines.append(f"  subgraph cluster_{k} {{")
            lines.append(f'    label={_q(label)}; style="dashed"; color="#3366aa";')
            lines += ["  " + ln for ln in bodies.get(("#cluster", k), [])]
            lines.append("  }")
    else:
        lines += _scope_clusters(bodies)
    lines += _scan_bodies([t for t in nodes if t.id not in plan.hidden and t.id not in plan.box_of])
    lines += _legend()
    lines.append("}")
    text = "\n".join(lines) + "\n"
    if path is not None:
        Path(path).write_text(text)
    return text, info


def _scan_bodies(nodes: list[Tensor], indent: str = "  ") -> list[str]:
    """Each scan's body as a cluster of its own: its ops and values, dashed edges from the
    tensors it captures to their placeholders inside and from its outputs to the scan."""
    lines: list[str] = []
    for scan in nodes:
        body = scan.attrs.get("body") if scan.op.multi_output else None
        if body is None:
            continue
        inner = toposort(body.outputs)
        title = _q(f"{scan.name}: body, {scan.attrs['length']} steps")
        lines += [f"{indent}subgraph cluster_body{scan.id} {{",
                  f'{indent}  label={title}; '
                  f'style="rounded,dashed"; color="#888888";']
        for t in inner:
            tip = _q(t.site or "")
            if t.op.kind in _LEAF_STYLE:
                lines.append(f"{indent}  v{t.id} [label={_q(_value_label(t))}, "
                             f"{_LEAF_STYLE[t.op.kind]}, tooltip={tip}];")
                continue
            lines.append(f'{indent}  op{t.id} [label={_q(t.op.label(t.attrs))}, shape=box, '
                         f'style="rounded,filled", fillcolor="{_OP_FILL["forward"]}", tooltip={tip}];')
            lines.append(f"{indent}  v{t.id} [label={_q(_value_label(t))}, shape=ellipse, tooltip={tip}];")
            lines.append(f"{indent}  op{t.id} -> v{t.id};")
            lines += [f"{indent}  v{i.id} -> op{t.id};" for i in t.inputs]
        lines += _scan_bodies(inner, indent + "  ")
        lines.append(f"{indent}}}")
        lines += [f"{indent}v{o.id} -> v{p.id} [style=dashed];"
                  for o, p in zip(body.captured, body.inputs[len(body.inputs) - len(body.captured):])]
        lines += [f"{indent}v{o.id} -> op{scan.id} [style=dashed];" for o in body.outputs]
    return lines


def _edges(nodes: list[Tensor], plan: Plan) -> list[str]:
    def src(t: Tensor) -> str:
        box = plan.box_of.get(t.id)
        return box.key if box else f"v{t.id}"

    out, seen = [], set()
    for t in nodes:
        if t.op.kind.is_leaf or t.id in plan.hidden:
            continue
        box = plan.box_of.get(t.id)
        dst = box.key if box else f"op{t.id}"
        for i in t.inputs:
            if i.id in plan.hidden:
                continue
            s = src(i)
            if s != dst and (s, dst) not in seen:
                seen.add((s, dst))
                out.append(f"  {s} -> {dst};")
    return out


def _scope_clusters(bodies: dict[tuple, list[str]]) -> list[str]:
    """Nested ``subgraph cluster_k`` blocks, one per scope path that holds something."""
    paths = sorted({p[:k] for p in bodies for k in range(1, len(p) + 1)})
    children: dict[tuple, list[tuple]] = {}
    for p in paths:
        children.setdefault(p[:-1], []).append(p)
    lines: list[str] = []
    counter = iter(range(1 << 30))

    def emit(p: tuple, indent: str) -> None:
        grad = p[-1].endswith(" (gradient)")
        lines.append(f"{indent}subgraph cluster_s{next(counter)} {{")
        lines.append(f'{indent}  label={_q(p[-1])}; style="rounded,dashed"; '
                     f'color="{_CLUSTER_COLOR[grad]}"; fontcolor="{_CLUSTER_COLOR[grad]}";')
        lines.extend(indent + ln for ln in bodies.get(p, []))
        for c in children.get(p, []):
            emit(c, indent + "  ")
        lines.append(f"{indent}}}")

    for p in children.get((), []):
        emit(p, "  ")
    return lines


def _legend() -> list[str]:
    return ['  subgraph cluster_legend { label="legend"; fontsize=9; color="#bbbbbb";',
            '    l1 [label="placeholder", shape=ellipse, style=filled, fillcolor="#ffe9a8"];',
            '    l2 [label="variable", shape=ellipse, style="filled,bold", fillcolor="#b8e0b8"];',
            '    l3 [label="forward op", shape=box, style="rounded,filled", fillcolor="#dbe8fb"];',
            '    l4 [label="gradient op", shape=box, style="rounded,filled", fillcolor="#f9d4d4"];',
            '    l5 [label="update op", shape=box, style="rounded,filled", fillcolor="#e6d6f5"];',
            "  }"]


def _describe(t: Tensor, kernel_of: dict[int, str]) -> dict:
    d = {"name": t.name, "op": t.op.label(t.attrs), "shape": _sh.fmt(t.shape),
         "dtype": t.dtype or "", "line": t.site or "", "role": t.role, "scope": scope_of(t)}
    small = constant_text(t)
    if small is not None:
        d["value"] = small
    if t.id in kernel_of:
        d["kernel"] = kernel_of[t.id]
    return d


def _describe_box(box, kernel_of: dict[int, str]) -> dict:
    ks = []
    for n in box.nodes:
        k = kernel_of.get(n.id)
        if k and k not in ks:
            ks.append(k)
    first = box.nodes[0]
    d = {"name": box.title, "op": box.label.replace("\n", "; "), "shape": "",
         "dtype": first.dtype or "", "line": _sites(box.nodes), "role": box.role,
         "scope": scope_of(first), "members": [n.name for n in box.nodes]}
    if ks:
        d["kernel"] = ks[0]
        d["kernels"] = ks
    return d
