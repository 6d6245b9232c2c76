"""`graphc bench` runs and writes its markdown table (a smoke test, no timing asserts)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from graphc.env import find_c_compiler


@pytest.mark.skipif(find_c_compiler() is None, reason="the benchmark compiles C")
def test_graphc_bench_quick_writes_a_table(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "graphc", "bench", "--quick", "--only", "sgemm,mlp",
                           "--rounds", "3", "--no-plot", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    tables = list(tmp_path.glob("bench_*.md"))
    assert tables
    text = tables[0].read_text()
    assert "sgemm" in text and "NumPy" in text and "| floor |" in proc.stdout
    # the MLP step: its fused kernels, and Session.profile's per-kernel times at batch 64
    assert "MLP 784-256-128-10 train step, batch 64" in text
    assert "`k0_matmul_ew`: matmul, add, relu" in text
    assert "### Where the time goes: MLP 784-256-128-10 training step, batch 64" in text
    assert "| `k0_matmul_ew` | matmul, add, relu |" in text
