"""Graphviz DOT export of a graph or of the subgraph behind some tensors.

The drawing is bipartite: values are ellipses (name, shape, dtype), ops are
boxes. Placeholders, variables and constants have their own colours, and
nodes built by ``gc.grad`` and optimizers are drawn in their own colours.

Example::

    text = gc.to_dot(g)                        # the whole graph
    gc.to_dot([loss], path="loss.dot")         # what loss depends on
"""

from __future__ import annotations

from pathlib import Path

from . import shapes as _sh
from .graph import Graph, Kind, Tensor
from .program import Program, toposort

_LEAF_STYLE = {
    Kind.PLACEHOLDER: 'shape=ellipse, style=filled, fillcolor="#ffe9a8"',
    Kind.VARIABLE: 'shape=ellipse, style="filled,bold", fillcolor="#b8e0b8"',
    Kind.CONSTANT: 'shape=ellipse, style=filled, fillcolor="#e4e4e4"',
}
_OP_FILL = {"forward": "#dbe8fb", "grad": "#f9d4d4", "update": "#e6d6f5"}
_VALUE_FILL = {"forward": "#ffffff", "grad": "#fff0f0", "update": "#f7f0ff"}


def _q(text: str) -> str:
    """A quoted DOT string; newlines become DOT line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n") + '"'


def _value_label(t: Tensor) -> str:
    if t.dtype is None:
        return t.name
    return f"{t.name}\n{_sh.fmt(t.shape)} {t.dtype}"


def to_dot(graph_or_tensors, path: str | Path | None = None, clusters=None) -> str:
    """Return DOT text for a graph, the tensors' subgraph or a compiled fetch set.

    A compiled fetch set (``sess.compile([loss, train])``) is drawn as the program
    the backend runs (after the passes); on the C backend every fused kernel is a
    cluster labelled with its kernel name.
    ``clusters`` optionally maps a label to tensors drawn inside a cluster.
    """
    program = getattr(graph_or_tensors, "program", None)
    if isinstance(program, Program):  # a compiled fetch set: the optimized program
        nodes = list(program.nodes)
        kernels = getattr(getattr(graph_or_tensors, "executable", None), "kernels", None)
        if kernels is not None:  # a compiled backend: one cluster per fused kernel
            clusters, placed = {}, set()
            for k in kernels:
                home = [n for n in k.nodes if n.id not in placed]
                placed.update(n.id for n in home)
                clusters[f"{k.name} ({len(k.nodes)} node{'s' if len(k.nodes) > 1 else ''})"] = home
    elif isinstance(graph_or_tensors, Graph):
        nodes = list(graph_or_tensors.nodes)
    else:
        tensors = [graph_or_tensors] if isinstance(graph_or_tensors, Tensor) else list(graph_or_tensors)
        nodes = toposort(tensors)
    lines = ["digraph graphc {", '  rankdir=TB; node [fontname="Helvetica", fontsize=10];',
             '  edge [color="#555555"];']
    member = {}
    for k, ts in enumerate((clusters or {}).values()):
        for t in ts:
            member[t.id] = k
    bodies: dict[int | None, list[str]] = {None: []}
    for t in nodes:
        out = bodies.setdefault(member.get(t.id), [])
        vid = f"v{t.id}"
        if t.op.kind in _LEAF_STYLE:
            out.append(f"  {vid} [label={_q(_value_label(t))}, {_LEAF_STYLE[t.op.kind]}];")
            continue
        oid = f"op{t.id}"
        fill = _OP_FILL.get(t.role, _OP_FILL["forward"])
        out.append(f'  {oid} [label={_q(t.op.label(t.attrs))}, shape=box, style="rounded,filled", '
                   f'fillcolor="{fill}", tooltip={_q(t.site or "")}];')
        shape = "octagon" if t.dtype is None else "ellipse"
        out.append(f'  {vid} [label={_q(_value_label(t))}, shape={shape}, style=filled, '
                   f'fillcolor="{_VALUE_FILL.get(t.role, "#ffffff")}"];')
        out.append(f"  {oid} -> {vid};")
        for i in t.inputs:
            out.append(f"  v{i.id} -> {oid};")
    lines += bodies.pop(None)
    for k, label in enumerate(clusters or {}):
        lines.append(f"  subgraph cluster_{k} {{")
        lines.append(f'    label={_q(label)}; style="dashed"; color="#3366aa";')
        lines += ["  " + ln for ln in bodies.get(k, [])]
        lines.append("  }")
    lines.append('  subgraph cluster_legend { label="legend"; fontsize=9; color="#bbbbbb";')
    lines.append('    l1 [label="placeholder", shape=ellipse, style=filled, fillcolor="#ffe9a8"];')
    lines.append('    l2 [label="variable", shape=ellipse, style="filled,bold", fillcolor="#b8e0b8"];')
    lines.append('    l3 [label="forward op", shape=box, style="rounded,filled", fillcolor="#dbe8fb"];')
    lines.append('    l4 [label="gradient op", shape=box, style="rounded,filled", fillcolor="#f9d4d4"];')
    lines.append('    l5 [label="update op", shape=box, style="rounded,filled", fillcolor="#e6d6f5"];')
    lines.append("  }")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    if path is not None:
        Path(path).write_text(text)
    return text
