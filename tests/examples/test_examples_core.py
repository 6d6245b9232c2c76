"""The worked example of one learning step, and XOR, on every backend."""

from __future__ import annotations

import pytest


def test_worked_example(example, backend, capsys):
    out = example("worked_example").main(["--backend", backend])
    assert out["pred"] == pytest.approx(8.0)
    assert out["loss"] == pytest.approx(4.0)
    assert out["dw3"] == pytest.approx(16.0)
    assert out["dw1"] == pytest.approx(20.0)
    assert out["db1"] == pytest.approx(10.0)
    assert out["new_pred"] == pytest.approx(6.19)
    assert "prediction = 6.19" in capsys.readouterr().out


def test_xor_reaches_full_accuracy(example, backend):
    out = example("xor").train(seed=0, backend=backend, verbose=False)
    assert out["accuracy"] == 1.0
    assert out["loss"] < 0.05


def test_xor_symmetric_init_fails(example):
    """All-equal initial weights keep the hidden units identical: XOR is not learned."""
    out = example("xor").train(seed=0, init="constant", verbose=False)
    assert out["accuracy"] < 1.0
