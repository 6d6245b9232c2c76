"""``graphc explain``: the demo CNN's compiled training step, explained."""

from __future__ import annotations

import re

import pytest

from graphc.tools import cli


def test_explain_prints_the_demo_step_on_numpy(capsys):
    assert cli.main(["explain", "--backend", "numpy", "--batch", "4"]) == 0
    out = capsys.readouterr().out
    assert "graphc explain: backend numpy, batch 4:" in out
    assert "arena: none" in out
    for op in ("conv2d", "max_pool2d", "softmax_cross_entropy", "conv2d_backward_filter"):
        assert re.search(rf"^\s*\d+\s+\S+\s+{op}\s", out, re.MULTILINE), op


@pytest.mark.needs_c
def test_explain_prints_kernels_arena_and_a_kernels_source(capsys):
    assert cli.main(["explain", "--backend", "c", "--batch", "8"]) == 0
    out = capsys.readouterr().out
    assert "graphc explain: backend c, batch 8:" in out and "arena: " in out
    assert "biggest arena buffers" in out
    kernels = re.findall(r"^\s*\d+\s+(k\d+_\w+)\s", out, re.MULTILINE)
    assert kernels[0].startswith("k0_conv2d") and len(kernels) > 10
    assert cli.main(["explain", "--backend", "c", "--kernel", kernels[0]]) == 0
    out = capsys.readouterr().out
    assert f"static void {kernels[0]}(const gc_ctx *g)" in out
    assert f"static void {kernels[1]}(" not in out


def test_explain_unknown_kernel_fails_listing_the_kernels(capsys):
    assert cli.main(["explain", "--backend", "numpy", "--kernel", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no kernel named 'nope'" in err and "softmax_cross_entropy" in err
