"""Pictures of real models: collapsed scopes, one update box per variable, gradients beside
their scope, constants' values, file:line tooltips, the HTML view and the demo's picture."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess

import numpy as np
import pytest

import graphc as gc
from graphc.ir.html import kernel_source

needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="graphviz `dot` is not installed (CI installs it)")


def _autoencoder(optimizer=None):
    with gc.Graph() as g:
        x = gc.placeholder((None, 8), name="x")
        with gc.name_scope("encoder"):
            W = gc.variable(np.ones((8, 4), np.float32), name="W")
            with gc.name_scope("inner"):
                h = gc.relu(x @ W)
        with gc.name_scope("decoder"):
            V = gc.variable(np.ones((4, 8), np.float32), name="V")
            out = h @ V
        loss = gc.mean(gc.square(out - x))
        train = (optimizer or gc.optim.Adam(0.01)).minimize(loss)
    return g, dict(x=x, W=W, V=V, h=h, out=out, loss=loss, train=train)


def _node_lines(text: str) -> dict[str, str]:
    """DOT node id -> its attribute text (legend entries left out)."""
    return {m.group(1): m.group(2) for m in re.finditer(r"^\s*(\w+) \[(.*)\];$", text, re.M)
            if not re.fullmatch(r"l\d|node|edge", m.group(1))}


def _label(attrs: str) -> str:
    return re.search(r'label="((?:[^"\\]|\\.)*)"', attrs).group(1)


def test_collapse_draws_one_box_per_scope_with_its_input_and_output_shapes():
    g, t = _autoencoder()
    text = gc.to_dot(g, collapse=True)
    labels = [_label(a) for a in _node_lines(text).values()]
    assert "encoder, 2 ops\\nin (N, 8)\\nout (N, 4)" in labels
    assert "decoder, 1 op\\nin (N, 4)\\nout (N, 8)" in labels
    # the scopes' own nodes (variables included) are inside the boxes, not drawn alone
    for inner in (t["W"], t["V"], t["h"], t["out"]):
        assert f"v{inner.id} [" not in text and f"op{inner.id} [" not in text
    assert f"v{t['x'].id} [" in text and f"op{t['loss'].id} [" in text   # outside any scope
    # one level deeper: encoder is a cluster holding the collapsed box of encoder/inner
    deeper = gc.to_dot(g, collapse=2)
    assert "inner, 2 ops\\nin (N, 8), (8, 4)\\nout (N, 4)" in deeper
    assert 'label="encoder";' in deeper and f"v{t['W'].id} [" in deeper
    assert gc.to_dot(g, collapse=["encoder/inner"]).count("inner, 2 ops") == 1
    assert gc.to_dot(g, collapse="decoder").count("decoder, 1 op") == 1


def test_scopes_are_nested_clusters_and_their_gradients_clusters_beside_them():
    g, t = _autoencoder()
    text = gc.to_dot(g)
    for label in ("encoder", "inner", "decoder", "encoder (gradient)", "inner (gradient)",
                  "decoder (gradient)"):
        assert f"label={json.dumps(label)};" in text, label
    enc = text.index('label="encoder";')
    inner = text.index('label="inner";')
    assert enc < inner < text.index("}", inner)  # inner nested in encoder's block
    collapsed = gc.to_dot(g, collapse=True)
    grad_box = re.search(r"(box_gradient_encoder\w+) \[label=\"encoder \(gradient\), 2 ops",
                         collapsed).group(1)
    fwd_box = re.search(r"(box_scope_encoder\w+) \[", collapsed).group(1)
    rank = re.search(r"\{ rank=same; ([^}]*)\}", collapsed[collapsed.index(f"{fwd_box};") - 60:])
    assert rank and fwd_box in rank.group(1) and grad_box in rank.group(1)  # drawn side by side


def test_optimizer_updates_are_one_box_per_variable():
    g, t = _autoencoder()
    text = gc.to_dot(g)
    labels = [_label(a) for a in _node_lines(text).values()]
    assert sorted(lb for lb in labels if "update" in lb) == [
        "Adam update decoder/V\\n(4, 8)", "Adam update encoder/W\\n(8, 4)"]
    assert "Adam shared state" in labels
    update_ops = [n for n in g.nodes if n.role == "update" and n.op.name not in ("group",)]
    assert len(update_ops) > 60
    assert not any(f"op{n.id} [" in text or f"v{n.id} [" in text for n in update_ops)
    W_box = re.search(r'(box_update_\d+) \[label="Adam update encoder/W', text).group(1)
    assert f"  {W_box} -> op{t['train'].id};" in text   # the box feeds the step op
    full = gc.to_dot(g, group_updates=False)
    assert "Adam update" not in full and sum(f"op{n.id} [" in full for n in update_ops) > 40
    sgd = gc.to_dot(_autoencoder(gc.optim.SGD(0.1, momentum=0.9))[0])
    assert "SGD update encoder/W" in sgd and "SGD shared state" not in sgd


def test_small_constants_show_their_values():
    with gc.Graph():
        x = gc.placeholder((None, 3), name="x")
        y = (x * gc.constant(0.5) + gc.constant(np.array([1, 2, 3], np.float32))
             + gc.constant(np.arange(12, dtype=np.float32).reshape(4, 3))[0])
        z = gc.cast(y, "int64") + gc.constant(np.array(7, np.int64))
    labels = {n: _label(a) for n, a in _node_lines(gc.to_dot([z])).items()}
    assert "0.5\\nfloat32" in labels.values()
    assert "[1, 2, 3]\\n(3,) float32" in labels.values()
    assert "7\\nint64" in labels.values()
    big = [lb for lb in labels.values() if "(4, 3)" in lb]
    assert big and all(lb.startswith("const") for lb in big)   # 12 values: the name, no values


def test_every_node_tooltip_is_the_users_file_and_line():
    g, t = _autoencoder()
    here = __file__.rsplit("/", 1)[-1]
    for collapse in (None, True):
        nodes = _node_lines(gc.to_dot(g, collapse=collapse))
        assert len(nodes) > 8
        for dot_id, attrs in nodes.items():
            tip = re.search(r'tooltip="([^"]*)"', attrs)
            assert tip and re.fullmatch(r".*" + re.escape(here) + r":\d+(, .*)?", tip.group(1)), \
                (dot_id, attrs)
    text = gc.to_dot(g)
    assert f'id=op{t["h"].id}, tooltip="{t["h"].site}"' in text


def test_collapse_gradients_draws_each_gc_grad_as_one_box():
    """The README's example: an explicit gc.grad and minimize build the same gradient twice."""
    with gc.Graph() as g:
        x = gc.placeholder((None, 784), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        W = gc.variable(np.zeros((784, 10), np.float32), name="W")
        b = gc.variable(np.zeros(10, np.float32), name="b")
        loss = gc.mean(gc.softmax_cross_entropy(x @ W + b, y))
        gc.grad(loss, [W, b])
        gc.optim.SGD(lr=0.1, momentum=0.9).minimize(loss)
    text = gc.to_dot(g, collapse="gradients")
    labels = [_label(a) for a in _node_lines(text).values()]
    grads = [lb for lb in labels if lb.startswith("gradient")]
    assert len(grads) == 2 and grads[0].split(",", 1)[1] == grads[1].split(",", 1)[1]
    assert "out (10,), (784, 10)" in grads[0]
    assert not any(f"op{n.id} [" in text for n in g.nodes if n.role == "grad")
    assert len(re.findall(r'label="gradient \d, ', gc.to_dot(g, collapse=True))) == 2


def test_collapse_rejects_what_it_cannot_mean():
    g, _ = _autoencoder()
    for bad in (0, -1, [""], [3], 2.5):
        with pytest.raises(gc.ArgumentError, match="collapse"):
            gc.to_dot(g, collapse=bad)
    with pytest.raises(gc.ArgumentError, match="rankdir"):
        gc.to_dot(g, rankdir="TB; x -> y")


def test_kernel_source_finds_a_kernels_functions_by_name():
    source = "\n".join([
        "/* k1_sum: a, b */", "static void k1_sum(const gc_ctx *g) {", "    x;", "}", "",
        "static inline void k1_sum_epilogue(int i) {", "    y;", "}", "",
        "/* k10_sum: c */", "static void k10_sum(const gc_ctx *g) {", "    z;", "}", "",
        "int gc_run(void) {", "    k1_sum(g);", "    k10_sum(g);", "}"])
    found = kernel_source(source, "k1_sum")
    assert found.startswith("/* k1_sum: a, b */\nstatic void k1_sum(") and "k1_sum_epilogue" in found
    assert "k10_sum" not in found and "gc_run" not in found
    assert kernel_source(source, "k2_nothing") == ""


def test_to_html_without_graphviz_says_to_install_it(tmp_path, monkeypatch):
    import graphc.env

    monkeypatch.setattr(graphc.env, "find_dot", lambda: None)
    g, _ = _autoencoder()
    with pytest.raises(gc.GraphcError, match="install graphviz"):
        gc.to_html(g, tmp_path / "g.html")
    assert not (tmp_path / "g.html").exists()
    assert gc.to_dot(g, collapse=True).startswith("digraph")   # DOT text needs no Graphviz


def _html_parts(page: str) -> tuple[str, dict]:
    data = json.loads(re.search(r'<script type="application/json" id="graphc-data">(.*?)</script>',
                                page, re.S).group(1).replace("<\\/", "</"))
    return page, data


@needs_dot
def test_to_html_writes_one_self_contained_page(tmp_path):
    g, t = _autoencoder()
    path = gc.to_html(g, tmp_path / "g.html", collapse=True)
    assert [p.name for p in tmp_path.iterdir()] == ["g.html"]
    page, data = _html_parts(path.read_text())
    assert not re.search(r"https?://", page)          # nothing fetched from the network
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)
    assert page.count("<svg") == 1 and '<input id="search"' in page
    assert "addEventListener('wheel'" in page and "mousedown" in page
    box = next(k for k, d in data["nodes"].items() if d["name"] == "encoder")
    assert f'<g id="{box}" class="node"' in page
    assert t["W"].name in data["nodes"][box]["members"]
    x = data["nodes"][f"v{t['x'].id}"]
    assert (x["op"], x["shape"], x["dtype"], x["line"]) == ("placeholder", "(N, 8)", "float32",
                                                            t["x"].site)


@needs_dot
def test_to_html_of_a_compiled_step_shows_kernels_and_their_source(tmp_path):
    pytest.importorskip("cffi")
    from graphc.env import find_c_compiler

    if find_c_compiler() is None:
        pytest.skip("no C compiler")
    g, t = _autoencoder()
    compiled = gc.Session(g, backend="c").compile([t["loss"], t["train"]])
    page, data = _html_parts(gc.to_html(compiled, tmp_path / "step.html").read_text())
    names = {k["name"] for k in compiled.kernels}
    assert set(data["kernels"]) == names
    for name, text in data["kernels"].items():
        assert re.search(rf"^static [^\n]*\b{name}\(", text, re.M), name
    mean = data["nodes"][f"op{t['loss'].id}"]
    assert mean["kernel"] in names and mean["name"] == t["loss"].name
    assert not re.search(r"https?://", page)


def _png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


@needs_dot
def test_the_demos_collapsed_graph_fits_a_1920x1080_screen(tmp_path):
    from graphc.tools.demo import PICTURE, build_digits_cnn, write_pictures

    cnn = build_digits_cnn(seed=0)
    files = write_pictures(cnn, str(tmp_path))
    assert set(files) == {"dot", "dot_full", "svg", "graph_png", "html"}
    width, height = _png_size(tmp_path / "train_graph.png")
    assert width <= 1920 and height <= 1080, (width, height)
    text = (tmp_path / "train_graph.dot").read_text()
    assert text == gc.to_dot(cnn["graph"], **PICTURE) and "fontsize=10" in text
    assert len(_node_lines(text)) < 40             # not 170 op boxes: one per layer and variable
    full = tmp_path / "full.png"
    subprocess.run(["dot", "-Tpng", str(tmp_path / "train_graph_full.dot"), "-o", str(full)],
                   check=True, capture_output=True)
    assert _png_size(full)[0] > 1920               # what collapsing saved
