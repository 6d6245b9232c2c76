"""DOT export: bipartite drawing, styles per node kind, renders with Graphviz."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

import graphc as gc


def _graph():
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        W = gc.variable(np.zeros((3, 2), np.float32), name="W")
        c = gc.constant(2.0)
        loss = gc.mean(gc.relu(x @ W) * c)
        (gW,) = gc.grad(loss, [W])
        train = gc.optim.SGD(lr=0.1).minimize(loss)
    return g, x, W, loss, gW, train


def test_dot_text_is_bipartite_and_styled():
    g, x, W, loss, gW, train = _graph()
    text = gc.to_dot(g)
    assert text.startswith("digraph graphc {") and text.rstrip().endswith("}")
    assert f'v{x.id} [label="x\\n(N, 3) float32"' in text
    assert "#ffe9a8" in text and "#b8e0b8" in text and "#e4e4e4" in text  # leaf kinds
    assert "#f9d4d4" in text and "#e6d6f5" in text  # gradient and update ops
    assert f"op{loss.id} -> v{loss.id};" in text  # op box feeds its value ellipse
    assert 'label="matmul", shape=box' in text


def test_dot_of_tensors_draws_only_their_subgraph(tmp_path):
    g, x, W, loss, gW, train = _graph()
    path = tmp_path / "loss.dot"
    text = gc.to_dot([loss], path=path)
    assert path.read_text() == text
    assert "SGD" not in text and "grad/" not in text
    assert f"v{W.id}" in text


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz `dot` is not installed")
def test_dot_renders_with_graphviz(tmp_path):
    g, *_ = _graph()
    path = tmp_path / "g.dot"
    gc.to_dot(g, path=path)
    svg = tmp_path / "g.svg"
    subprocess.run(["dot", "-Tsvg", str(path), "-o", str(svg)], check=True, capture_output=True)
    assert svg.read_text().lstrip().startswith(("<?xml", "<svg"))


def test_names_with_quotes_are_escaped():
    with gc.Graph() as g:
        gc.placeholder((1,), name='a"b')
    assert 'a\\"b' in gc.to_dot(g)


def test_compiled_fetch_set_draws_kernels_as_clusters(tmp_path):
    pytest.importorskip("cffi")
    from graphc.env import find_c_compiler

    if find_c_compiler() is None:
        pytest.skip("no C compiler")
    g, x, W, loss, gW, train = _graph()
    compiled = gc.Session(g, backend="c").compile([loss, train])
    text = gc.to_dot(compiled)
    fused = [k for k in compiled.kernels if len(k["nodes"]) > 1]
    assert fused, compiled.kernels
    for k in compiled.kernels:
        assert f'label="{k["name"]} (' in text
    assert text.count("subgraph cluster_") == len(compiled.kernels) + 1  # + legend
    if shutil.which("dot"):
        path = tmp_path / "k.dot"
        path.write_text(text)
        subprocess.run(["dot", "-Tsvg", str(path), "-o", str(tmp_path / "k.svg")], check=True)


def test_a_scan_body_is_a_cluster_fed_by_its_captures(tmp_path):
    with gc.Graph() as g:
        x = gc.placeholder((None, 4, 3), name="x")
        W = gc.variable(np.ones((3, 3), np.float32), name="W")

        def outer(h, x_t):  # with a scan inside the body: a cluster inside the cluster
            inner, _ = gc.scan(lambda c, v: (c * 0.5 + v, c), h[:, 0], x_t, axis=1)
            return gc.tanh(x_t @ W) + gc.expand_dims(inner, 1), h

        last, _ = gc.scan(outer, gc.zeros_like(x[:, 0, :]), x)
    text = gc.to_dot([last])
    scans = [n for n in g.nodes if n.op.name == "scan"]
    body = scans[0].attrs["body"]
    captured_W = body.inputs[-1]
    assert f"subgraph cluster_body{scans[0].id} {{" in text
    assert 'label="scan: body, 4 steps"' in text
    assert f"v{W.id} -> v{captured_W.id} [style=dashed];" in text  # the capture
    assert f"v{body.outputs[0].id} -> op{scans[0].id} [style=dashed];" in text
    inner_scan = next(n for n in body.graph.nodes if n.op.name == "scan")
    assert text.index(f"cluster_body{inner_scan.id}") > text.index(f"cluster_body{scans[0].id}")
    if shutil.which("dot"):
        path = tmp_path / "scan.dot"
        path.write_text(text)
        subprocess.run(["dot", "-Tsvg", str(path), "-o", str(tmp_path / "s.svg")], check=True,
                       capture_output=True)
