"""``graphc demo``: one run of the command line (see ``TOOL_RUNS`` in conftest.py), whose
printout and files several tests check, and the demo's parts in-process."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

import graphc as gc
from graphc.tools.bench import NumpyCNN, max_rel_diff
from graphc.tools.demo import build_digits_cnn, parse_args


@pytest.fixture(scope="module")
def demo_run(tool_run):
    """``python -m graphc demo --epochs 5 --batch-size 8 ...``, with its ``summary.json``."""
    run = tool_run("demo")
    assert run.returncode == 0, run.stdout + run.stderr
    run.summary = json.loads((run.out / "summary.json").read_text())
    return run


@pytest.mark.slow
def test_demo_trains_the_digits_cnn_past_97_percent(demo_run):
    s, printed = demo_run.summary, demo_run.stdout
    assert s["epochs"] == 5 and s["test_accuracy"] >= 0.97
    assert f"test accuracy {s['test_accuracy']:.2%}" in printed
    assert re.search(rf"^backend: {s['backend']} \(backend='auto' picked '{s['backend']}'",
                     printed, re.MULTILINE), printed
    history = s["history"]
    assert len(history["loss"]) == 5 and history["loss"][-1] < history["loss"][0]


@pytest.mark.slow
def test_demo_writes_its_files(demo_run):
    out, files = demo_run.out, demo_run.summary["files"]
    assert set(files) >= {"dot", "png", "benchmark", "summary"}
    assert all(str(out) in path for path in files.values())
    dot = (out / "train_graph.dot").read_text()
    assert dot.startswith("digraph") and "conv2d" in dot and "Adam" in dot
    assert (out / "loss_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "box_scope_conv2d" in dot and (out / "train_graph_full.dot").exists()  # collapsed
    if shutil.which("dot"):
        assert (out / "train_graph.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
        assert (out / "train_graph.png").read_bytes()[:4] == b"\x89PNG"
        page = (out / "train_step.html").read_text()
        assert "<svg" in page and '"kernels"' in page
    assert "wrote " + ", ".join(files.values()) in demo_run.stdout


@pytest.mark.slow
def test_demo_benchmark_compares_the_same_computations(demo_run):
    rows = demo_run.summary["benchmark"]
    assert [r["name"].split(",")[0] for r in rows] == [
        "digits-CNN forward pass", "MLP training step (64-64-10"]
    assert "359 test images" in rows[0]["name"] and rows[1]["name"].endswith("batch 64")
    for r in rows:
        assert r["graphc_s"] > 0 and r["numpy_s"] > 0
        assert r["ratio"] == pytest.approx(r["numpy_s"] / r["graphc_s"])
        assert r["max_rel_diff"] < 1e-4      # graphc and NumPy computed the same thing
    table = (demo_run.out / "benchmark.md").read_text()
    assert table.startswith("# graphc demo benchmark")
    assert f"| graphc ({demo_run.summary['backend']}) | NumPy | NumPy / graphc |" in table
    assert table.split("\n\n", 1)[1] in demo_run.stdout          # the table is printed too


def test_digits_cnn_matches_its_numpy_twin_on_the_reference_backend():
    """The forward pass the demo times against NumPy, on the NumPy reference backend."""
    cnn = build_digits_cnn(seed=1)
    sess = gc.Session(cnn["graph"], backend="numpy")
    x = np.random.default_rng(0).standard_normal((16, 1, 8, 8)).astype(np.float32)
    twin = NumpyCNN([sess.get_value(p) for p in cnn["params"]])
    assert max_rel_diff(sess.run(cnn["logits"], {cnn["x"]: x}), twin.forward(x)) < 1e-5


def test_demo_options():
    args = parse_args([])
    assert (args.backend, args.epochs, args.batch_size, args.out) == ("auto", 20, 32, "graphc-demo")
    assert parse_args(["-q"]).quiet
