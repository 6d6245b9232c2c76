"""``graphc demo``: the command line in a subprocess, and the summary of ``demo()`` in-process."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import graphc
from graphc.tools.demo import build_mlp, demo, numpy_mlp_step, parse_args


def _env(tmp_path: Path) -> dict[str, str]:
    """A child environment importing this graphc, with its own compile cache."""
    env = dict(os.environ)
    env["GRAPHC_CACHE_DIR"] = str(tmp_path / "cache")
    root = str(Path(graphc.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _check_outputs(out: Path) -> str:
    dot = (out / "train_graph.dot").read_text()
    assert dot.startswith("digraph") and "conv2d" in dot and "Adam" in dot
    assert (out / "loss_curves.png").read_bytes()[:4] == b"\x89PNG"
    bench = (out / "benchmark.md").read_text()
    assert "digits-CNN forward pass" in bench and "MLP training step" in bench
    assert "NumPy / graphc" in bench
    if shutil.which("dot"):
        assert (out / "train_graph.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    return bench


@pytest.mark.parametrize("backend", ["numpy", "auto"])
def test_python_m_graphc_demo(backend, tmp_path):
    out = tmp_path / "demo-out"
    proc = subprocess.run(
        [sys.executable, "-m", "graphc", "demo", "--out", str(out), "--epochs", "2",
         "--rounds", "3", "--backend", backend],
        capture_output=True, text=True, check=False, env=_env(tmp_path), cwd=tmp_path,
        stdin=subprocess.DEVNULL, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^backend: \w+ \(backend", proc.stdout, re.MULTILINE), proc.stdout
    if backend == "auto":
        assert "backend='auto' picked" in proc.stdout
    assert re.search(r"test accuracy \d+\.\d+%", proc.stdout), proc.stdout
    bench = _check_outputs(out)
    assert bench.splitlines()[2] in proc.stdout          # the table is printed too


def test_demo_summary_reaches_97_percent(tmp_path, capsys):
    summary = demo(parse_args(["--backend", "numpy", "--out", str(tmp_path), "--quiet",
                               "--rounds", "3"]))
    assert summary["backend"] == "numpy" and summary["epochs"] == 20
    assert summary["test_accuracy"] >= 0.97
    names = [r["name"] for r in summary["benchmark"]]
    assert len(names) == 2 and "forward" in names[0] and "training step" in names[1]
    for row in summary["benchmark"]:
        assert row["graphc_s"] > 0 and row["numpy_s"] > 0
        assert row["ratio"] == pytest.approx(row["numpy_s"] / row["graphc_s"])
        assert row["max_rel_diff"] < 1e-4       # graphc and NumPy computed the same thing
    assert set(summary["files"]) >= {"dot", "png", "benchmark"}
    _check_outputs(tmp_path)
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "| benchmark |" in printed


def test_numpy_mlp_step_matches_graphc_sgd():
    """The hand-written NumPy step is the same computation as graphc's SGD step."""
    import numpy as np

    mlp = build_mlp(seed=3, lr=0.5)
    sess = graphc.Session(mlp["graph"], backend="numpy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 64)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    params = [sess.get_value(p) for p in mlp["params"]]
    for _ in range(3):
        sess.run(mlp["train"], {mlp["x"]: x, mlp["y"]: y})
        numpy_mlp_step(params, x, y, mlp["lr"])
    for var, value in zip(mlp["params"], params):
        np.testing.assert_allclose(sess.get_value(var), value, rtol=1e-4, atol=1e-5)
