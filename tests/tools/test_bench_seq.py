"""``graphc bench``'s sequence-model groups: the NumPy twins take graphc's training steps.

The twins (:mod:`graphc.tools.bench.seq_models`) are checked on the reference backend at
tiny sizes from random (not default) weights, so that a wrong bias, LayerNorm or gate
gradient shows; the LSTM twin against an LSTM unrolled from plain ops and, where this
graphc has it, against ``gc.nn.LSTM``.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import graphc as gc
from graphc.tools.bench import GROUPS, compare_step
from graphc.tools.bench.groups import select_groups
from graphc.tools.bench.report import markdown
from graphc.tools.bench.seq_baselines import jax_step, torch_step
from graphc.tools.bench.seq_groups import alternate_sides, bench_lstm
from graphc.tools.bench.seq_models import (
    LSTM_KEYS,
    TRANSFORMER_KEYS,
    NumpyLSTM,
    NumpyTransformer,
    build_lstm,
    build_transformer,
    has_lstm,
    initial_values,
)


def _random_start(sess: gc.Session, model: dict, rng: np.random.Generator) -> list[np.ndarray]:
    """Give every parameter a random value in ``sess``; return the values for the twin."""
    values = []
    for v, a in zip(model["params"], initial_values(model)):
        a = (a + 0.3 * rng.standard_normal(a.shape)).astype(np.float32)
        sess.set_value(v, a)
        values.append(a)
    return values


def _steps_agree(model: dict, make_twin, shape: tuple[int, ...], steps: int = 3) -> None:
    rng = np.random.default_rng(0)
    sess = gc.Session(model["graph"], backend="numpy")
    twin = make_twin(_random_start(sess, model, rng))
    for _ in range(steps):
        x = rng.standard_normal(shape).astype(np.float32)
        assert compare_step(sess, model, twin, x, rng.integers(0, 10, shape[0])) < 2e-5


def test_transformer_twin_takes_graphcs_steps():
    model = build_transformer(seq=3, dim=8, heads=2, ff=16)
    assert [v.name for v in model["params"]] == [
        f"transformer_encoder_layer/{'self_attn/' * (k.startswith(('in_', 'out_')))}{k}"
        for k in TRANSFORMER_KEYS[:-2]] + ["head/W", "head/b"]
    _steps_agree(model, lambda p: NumpyTransformer(p, batch=2, seq=3, heads=2), (2, 3, 8))


def test_lstm_twin_takes_the_steps_of_an_unrolled_graphc_lstm():
    model = build_lstm(seq=3, features=5, hidden=4, unrolled=True)
    assert [v.name for v in model["params"]] == [f"lstm/{k}" for k in LSTM_KEYS[:4]] + [
        "head/W", "head/b"]
    _steps_agree(model, lambda p: NumpyLSTM(p, batch=2, seq=3), (2, 3, 5))


@pytest.mark.skipif(not has_lstm(), reason="this graphc has no gc.nn.LSTM")
def test_lstm_twin_takes_gc_nn_lstms_steps():
    model = build_lstm(seq=3, features=5, hidden=4)
    assert [v.shape for v in model["params"][:4]] == [(16, 5), (16, 4), (16,), (16,)]
    _steps_agree(model, lambda p: NumpyLSTM(p, batch=2, seq=3), (2, 3, 5))


def test_lstm_group_says_when_gc_nn_lstm_is_missing(monkeypatch):
    monkeypatch.delattr(gc.nn, "LSTM", raising=False)
    (row,) = bench_lstm(None, {"fusions": {}, "profiles": {}})
    assert row["note"] == "gc.nn.LSTM unavailable" and row["graphc_s"] is None
    result = {"tag": "t", "rows": [row], "floors": [], "fusions": {},
              "config": {"rounds": 3, "min_round": 0.05, "settle": 0.0, "peak_gflops": None,
                         "copy_gbs": None},
              "threads": {"affinity": [0], "env": {}, "pools": []}, "cpu": "cpu",
              "loadavg": "?", "loadavg_end": "?", "numpy": np.__version__,
              "graphc": gc.__version__, "cflags": "-O3"}
    assert f"| {row['name']} | - | - | - | - | - | - | - | gc.nn.LSTM unavailable |" \
        in markdown(result)


def test_groups_are_registered_and_selectable():
    assert list(GROUPS)[-3:] == ["transformer", "lstm", "compile"]
    assert select_groups(["lstm,Transformer"]) == ["transformer", "lstm"]


def test_alternate_sides_interleaves_every_side_and_resets_before_each_round():
    calls = []
    sides = {name: (lambda n=name: calls.append(n), lambda n=name: calls.append(f"reset {n}"))
             for name in ("a", "b", "c")}
    times = alternate_sides(sides, rounds=2, settle=0.0, min_s=0.0)
    assert {k: len(t) for k, t in times.items()} == {"a": 2, "b": 2, "c": 2}
    one_round = [x for n in "abc" for x in (f"reset {n}", n, n)]   # untimed call, one timed
    assert calls == ["a", "a", "b", "b", "c", "c", *one_round, *one_round]


@pytest.mark.parametrize("make, module", [(torch_step, "torch"), (jax_step, "jax")])
def test_baselines_are_skipped_with_a_reason_when_not_installed(monkeypatch, make, module):
    monkeypatch.setitem(sys.modules, module, None)             # import now raises ImportError
    assert make("lstm", [], [], {}, 0.01, 0.9) == "not installed"
