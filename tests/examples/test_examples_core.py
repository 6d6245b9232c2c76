"""The worked example of one learning step, and XOR, on every backend."""

from __future__ import annotations

import numpy as np
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


def test_nan_hunt_finds_the_zero_example(example, backend, capfd):
    """The README's Debugging walk-through: each tool points at the division by a zero norm."""
    out = example("nan_hunt").main(["--backend", backend, "--epochs", "3"])
    assert out["nan_step"] == 2  # the batch holding example 40
    assert out["numerics"].startswith("NaN produced by div (normalize/div)")
    assert "nan_hunt.py:" in out["numerics"]
    assert "loss (NaN at element 0)" in out["check"] and out["unchanged"]
    assert out["verify_ok"]
    assert np.isfinite(out["fixed_loss"])
    printed = capfd.readouterr().out  # gc.print, from inside the compiled step on C
    assert "norm shape=(16, 1)" in printed and " min=0 " in printed
