"""``gc.to_html``: one self-contained HTML page to explore a graph or a compiled step.

The page inlines the SVG that Graphviz's ``dot`` lays out, the node data as JSON
and its own script and style: no network, no CDN. It pans (drag) and zooms (mouse
wheel), highlights the nodes whose name matches the search box, and shows a
clicked node's op, shape, dtype and the user's line; for a compiled step
(``sess.compile(fetches)``) also the kernel the node was fused into and that
kernel's generated C source.

Example::

    gc.to_html(g, "model.html", collapse=True)
    gc.to_html(sess.compile([loss, train]), "step.html")
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .dot import render_dot
from .errors import GraphcError

__all__ = ["kernel_source", "render_svg", "run_dot", "to_html"]


def run_dot(dot_text: str, fmt: str = "svg", what: str = "to_html") -> bytes:
    """Lay out DOT text with Graphviz's ``dot -T<fmt>`` and return its output; GraphcError
    when dot is missing or fails."""
    from .. import env  # not at import of graphc: only drawing needs it

    exe = env.find_dot()
    if exe is None:
        raise GraphcError(f"{what} needs Graphviz's `dot` program to lay out the graph, and it "
                          "is not on PATH: install graphviz (apt install graphviz, brew install "
                          "graphviz or conda install graphviz); gc.to_dot(...) writes the DOT "
                          "text without it")
    try:
        proc = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode("utf-8"),
                              capture_output=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GraphcError(f"{what}: running {exe} failed: {exc}") from None
    if proc.returncode != 0:
        raise GraphcError(f"{what}: {exe} -T{fmt} failed (exit {proc.returncode}): "
                          f"{proc.stderr.decode('utf-8', 'replace').strip()[:500]}")
    return proc.stdout


def render_svg(dot_text: str, what: str = "to_html") -> str:
    """Lay out DOT text with Graphviz's ``dot -Tsvg``; GraphcError when dot is missing/fails."""
    return run_dot(dot_text, "svg", what).decode("utf-8")


def kernel_source(source: str, name: str) -> str:
    """The C functions of kernel ``name`` in generated ``source`` (the kernel and its
    helpers such as ``name_epilogue``), each with the comment above it; "" if none."""
    lines = source.splitlines()
    head = re.compile(r"^[A-Za-z_][^;(]*\b" + re.escape(name) + r"(_\w+)?\s*\(")
    chunks = []
    i = 0
    while i < len(lines):
        if head.match(lines[i]) and not lines[i].rstrip().endswith(";"):
            start = i
            while start > 0 and lines[start - 1].lstrip().startswith(("/*", "*")):
                start -= 1
            end = i
            while end < len(lines) and lines[end] != "}":
                end += 1
            chunks.append("\n".join(lines[start:end + 1]))
            i = end + 1
        else:
            i += 1
    return "\n\n".join(chunks)


def _inline_svg(svg: str) -> str:
    """The <svg> element alone: no XML prolog or DOCTYPE (they name w3.org URLs), no
    namespace attributes (inline SVG in HTML needs none: its parser knows ``xlink:``)."""
    start = svg.find("<svg")
    svg = svg[start:] if start >= 0 else svg
    return re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg, count=2)


def to_html(graph_or_compiled, path: str | Path, collapse=None, group_updates: bool | None = None,
            rankdir: str = "TB", title: str | None = None) -> Path:
    """Write one self-contained HTML page showing a graph, tensors' subgraph or compiled step.

    ``collapse``, ``group_updates`` and ``rankdir`` are :func:`graphc.to_dot`'s. Needs
    Graphviz's ``dot`` (a GraphcError says to install graphviz when it is missing).
    Returns the path written.

    Example::

        gc.to_html(sess.compile([loss, train]), "step.html")   # kernels and their C source
    """
    import html
    import json

    text, info = render_dot(graph_or_compiled, None, None, collapse, group_updates, rankdir)
    svg = _inline_svg(render_svg(text))
    source = getattr(graph_or_compiled, "source", None)
    kernels = {}
    if isinstance(source, str):
        for d in info.values():
            for k in d.get("kernels", [d["kernel"]] if "kernel" in d else []):
                if k not in kernels:
                    kernels[k] = kernel_source(source, k)
    data = json.dumps({"nodes": info, "kernels": kernels}, sort_keys=True)
    data = data.replace("</", "<\\/").replace("<!--", "<\\!--")
    page = _PAGE.format(title=html.escape(title or "graphc graph"), svg=svg, data=data,
                        style=_STYLE, script=_SCRIPT)
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path


_STYLE = """
body { margin: 0; font: 13px Helvetica, Arial, sans-serif; display: flex; height: 100vh; }
#view { flex: 1; overflow: hidden; position: relative; cursor: grab; background: #fafafa; }
#view.drag { cursor: grabbing; }
#canvas { transform-origin: 0 0; position: absolute; left: 0; top: 0; }
#side { width: 380px; border-left: 1px solid #ccc; padding: 8px; overflow: auto; }
#search { width: 100%; box-sizing: border-box; padding: 4px; font-size: 14px; }
#side table { border-collapse: collapse; margin-top: 8px; }
#side td { padding: 2px 6px; vertical-align: top; }
#side td:first-child { color: #666; }
#side pre { background: #f4f4f4; padding: 6px; font-size: 11px; overflow: auto; }
#hits { color: #666; margin-top: 4px; }
g.node.hit polygon, g.node.hit ellipse, g.node.hit path { stroke: #e8590c; stroke-width: 4px; }
g.node.sel polygon, g.node.sel ellipse, g.node.sel path { stroke: #1c7ed6; stroke-width: 4px; }
svg.searching g.node:not(.hit) { opacity: 0.35; }
g.node { cursor: pointer; }
"""

_SCRIPT = r"""
(function () {
  var data = JSON.parse(document.getElementById('graphc-data').textContent);
  var view = document.getElementById('view'), canvas = document.getElementById('canvas');
  var svg = canvas.querySelector('svg');
  var s = 1, x = 0, y = 0;
  function apply() { canvas.style.transform = 'translate(' + x + 'px,' + y + 'px) scale(' + s + ')'; }
  function fit() {
    var w = svg.getBoundingClientRect().width / s, h = svg.getBoundingClientRect().height / s;
    s = Math.min(view.clientWidth / w, view.clientHeight / h, 1); x = 0; y = 0; apply();
  }
  view.addEventListener('wheel', function (e) {
    e.preventDefault();
    var r = view.getBoundingClientRect(), px = e.clientX - r.left, py = e.clientY - r.top;
    var f = Math.exp(-e.deltaY * 0.0015), ns = Math.min(Math.max(s * f, 0.05), 20);
    x = px - (px - x) * ns / s; y = py - (py - y) * ns / s; s = ns; apply();
  }, {passive: false});
  var drag = null, moved = false;
  view.addEventListener('mousedown', function (e) {
    drag = [e.clientX - x, e.clientY - y]; moved = false; view.classList.add('drag');
  });
  window.addEventListener('mousemove', function (e) {
    if (!drag) return;
    moved = true; x = e.clientX - drag[0]; y = e.clientY - drag[1]; apply();
  });
  window.addEventListener('mouseup', function () { drag = null; view.classList.remove('drag'); });
  function esc(t) {
    return String(t).replace(/[&<>"]/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c];
    });
  }
  function show(id) {
    var d = data.nodes[id], side = document.getElementById('info');
    if (!d) { side.innerHTML = ''; return; }
    var rows = [['name', d.name], ['op', d.op], ['shape', d.shape], ['dtype', d.dtype],
                ['line', d.line], ['role', d.role], ['scope', d.scope], ['value', d.value],
                ['kernel', (d.kernels || (d.kernel ? [d.kernel] : [])).join(', ')]];
    var h = '<table>';
    rows.forEach(function (r) { if (r[1]) h += '<tr><td>' + r[0] + '</td><td>' + esc(r[1]) + '</td></tr>'; });
    h += '</table>';
    if (d.members) h += '<p>' + d.members.length + ' nodes: ' + esc(d.members.join(', ')) + '</p>';
    (d.kernels || (d.kernel ? [d.kernel] : [])).forEach(function (k) {
      if (data.kernels[k]) h += '<p>kernel <b>' + esc(k) + '</b></p><pre>' + esc(data.kernels[k]) + '</pre>';
    });
    side.innerHTML = h;
  }
  var nodes = Array.prototype.slice.call(svg.querySelectorAll('g.node'));
  nodes.forEach(function (g) {
    var d = data.nodes[g.id], t = g.querySelector('title');
    if (d && t) t.textContent = d.name + (d.line ? '\n' + d.line : '');  // the hover tooltip
    g.addEventListener('click', function (e) {
      if (moved) return;
      nodes.forEach(function (n) { n.classList.remove('sel'); });
      g.classList.add('sel'); show(g.id); e.stopPropagation();
    });
  });
  document.getElementById('search').addEventListener('input', function (e) {
    var q = e.target.value.trim().toLowerCase(), n = 0;
    nodes.forEach(function (g) {
      var d = data.nodes[g.id];
      var hit = q && d && (d.name.toLowerCase().indexOf(q) >= 0 ||
        (d.members || []).some(function (m) { return m.toLowerCase().indexOf(q) >= 0; }));
      g.classList.toggle('hit', !!hit); if (hit) n++;
    });
    svg.classList.toggle('searching', !!q);
    document.getElementById('hits').textContent = q ? n + ' matching node(s)' : '';
  });
  document.getElementById('fit').addEventListener('click', fit);
  fit();
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{style}</style></head>
<body>
<div id="view"><div id="canvas">{svg}</div></div>
<div id="side">
<input id="search" type="search" placeholder="search nodes by name" autocomplete="off">
<div id="hits"></div>
<button id="fit" type="button">fit to window</button>
<p>Drag to pan, mouse wheel to zoom, click a node for details.</p>
<div id="info"></div>
</div>
<script type="application/json" id="graphc-data">{data}</script>
<script>{script}</script>
</body></html>
"""
