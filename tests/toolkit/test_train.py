"""Tests for graphc.train: fit, evaluate, predict, early stopping, progress, plots."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import graphc as gc
from graphc.toolkit import train_plot
from graphc.toolkit.train import EarlyStopping, History, accuracy, evaluate, fit, plot_history, predict


def _data(n=200, seed=0, flip=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return x, (1 - y if flip else y)


def _model(lr=0.5, momentum=0.0):
    """Softmax regression built from core ops only (no gc.nn)."""
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 2), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        W = gc.variable(np.zeros((2, 2), np.float32), name="W")
        b = gc.variable(np.zeros(2, np.float32), name="b")
        logits = x @ W + b
        loss = gc.mean(gc.softmax_cross_entropy(logits, y))
        rate = lr if not isinstance(lr, str) else gc.placeholder((), name="lr")
        step = gc.optim.SGD(lr=rate, momentum=momentum).minimize(loss)
    m = dict(g=g, x=x, y=y, W=W, b=b, logits=logits, loss=loss, step=step, rate=rate)
    m["sess"] = gc.Session(g, backend="numpy")
    return m


def _fit(m, data, **kw):
    kw.setdefault("epochs", 5)
    kw.setdefault("batch_size", 32)
    kw.setdefault("progress", False)
    return fit(m["sess"], m["step"], m["loss"], (m["x"], m["y"]), data, logits=m["logits"], **kw)


def test_fit_loss_falls_accuracy_rises_and_history():
    m = _model(lr=0.1)
    tr, va = _data(200, 0), _data(100, 1)
    before = evaluate(m["sess"], m["loss"], (m["x"], m["y"]), tr, 64, m["logits"])
    h = _fit(m, tr, validation_data=va, epochs=6)
    assert isinstance(h, History)
    assert list(h.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert all(len(v) == 6 for v in h.history.values())
    assert h.epochs == 6 and h.stopped_epoch is None
    assert h.best_epoch == int(np.argmin(h["val_loss"]))
    assert h["loss"][-1] < h["loss"][0] < before["loss"]
    assert h["accuracy"][-1] >= max(0.9, before["accuracy"])
    assert h["val_accuracy"][-1] > 0.85
    # the recorded train metric is the full-set evaluation after the epoch
    now = evaluate(m["sess"], m["loss"], (m["x"], m["y"]), tr, 7, m["logits"])
    assert now["loss"] == pytest.approx(h["loss"][-1], rel=1e-5)
    assert now["accuracy"] == pytest.approx(h["accuracy"][-1])
    assert "best_epoch" in repr(h) and h.best() == min(h["val_loss"])


def test_fit_is_reproducible_and_eval_train_false_uses_running_mean():
    tr = _data(120, 0)
    w = []
    for _ in range(2):
        m = _model()
        _fit(m, tr, epochs=3, seed=5)
        w.append(m["sess"].get_value(m["W"]))
    np.testing.assert_array_equal(w[0], w[1])
    m = _model()
    h = _fit(m, tr, epochs=2, eval_train=False)
    assert set(h.history) == {"loss", "accuracy"} and 0 <= h["accuracy"][0] <= 1


def test_evaluate_and_predict_in_uneven_batches():
    m = _model()
    x, y = _data(53, 2)
    m["sess"].set_value(m["W"], np.array([[1.0, -1.0], [0.5, 2.0]], np.float32))
    full_loss, full_logits = m["sess"].run([m["loss"], m["logits"]], {m["x"]: x, m["y"]: y})
    scores = evaluate(m["sess"], m["loss"], (m["x"], m["y"]), (x, y), 10, m["logits"])
    assert scores["loss"] == pytest.approx(float(full_loss), rel=1e-5)
    assert scores["accuracy"] == pytest.approx(np.mean(full_logits.argmax(1) == y))
    out = predict(m["sess"], m["logits"], m["x"], x, 8)
    np.testing.assert_allclose(out, full_logits, rtol=1e-5)
    a, b = predict(m["sess"], [m["logits"], gc.softmax(m["logits"])], (m["x"],), (x,), 20)
    assert a.shape == b.shape == (53, 2)
    with pytest.raises(gc.GraphcError, match="leading"):
        predict(m["sess"], m["loss"], m["x"], x, 8)


def test_accuracy_rules():
    assert accuracy(np.array([[2.0, 1.0], [0.0, 3.0]]), np.array([0, 0])).tolist() == [True, False]
    onehot = np.array([[1, 0], [0, 1]])
    assert accuracy(np.array([[2.0, 1.0], [0.0, 3.0]]), onehot).all()
    logit = np.array([1.5, -0.2, 0.1])
    assert accuracy(logit, np.array([1, 0, 0])).tolist() == [True, True, False]
    assert accuracy(logit[:, None], np.array([[1.0], [0.0], [1.0]])).all()
    with pytest.raises(gc.GraphcError):
        accuracy(np.zeros((3, 4)), np.zeros(5))


def test_early_stopping_stops_and_restores_best_weights():
    tr = _data(200, 0)
    va = _data(100, 1, flip=True)  # validation labels inverted: val loss rises as training fits
    m = _model(lr=0.5, momentum=0.5)
    h = _fit(m, tr, validation_data=va, epochs=30, early_stopping=2)
    assert h.best_epoch == 0
    assert h.stopped_epoch == 2 and h.epochs == 3
    assert h["val_loss"][1] > h["val_loss"][0] and h["val_loss"][2] > h["val_loss"][0]
    # same run for exactly best_epoch + 1 epochs gives the snapshot it should restore
    ref = _model(lr=0.5, momentum=0.5)
    _fit(ref, tr, validation_data=va, epochs=h.best_epoch + 1)
    for v_m, v_ref in zip(m["g"].variables(), ref["g"].variables()):  # momentum included
        np.testing.assert_array_equal(m["sess"].get_value(v_m), ref["sess"].get_value(v_ref))
    scores = evaluate(m["sess"], m["loss"], (m["x"], m["y"]), va, 50)
    assert scores["loss"] == pytest.approx(h["val_loss"][h.best_epoch], rel=1e-5)


def test_early_stopping_on_divergence_with_lr_schedule():
    m = _model(lr="placeholder")
    x, y = _data(200, 0)
    y = np.where(np.arange(200) % 5 == 0, 1 - y, y)  # 20% label noise: not separable
    tr = (x, y)
    schedule = lambda epoch: 0.5 if epoch < 2 else 1e30  # noqa: E731  (blows up at epoch 2)
    h = _fit(m, tr, epochs=20, lr=(m["rate"], schedule),
             early_stopping=EarlyStopping(patience=2, monitor="loss", min_delta=1e-4))
    assert h["lr"][:3] == [0.5, 0.5, 1e30]
    assert h.best_epoch == 1 and h.stopped_epoch == 3
    assert not np.isfinite(h["loss"][2]) or h["loss"][2] > h["loss"][1]
    assert np.isfinite(m["sess"].get_value(m["W"])).all()
    now = evaluate(m["sess"], m["loss"], (m["x"], m["y"]), tr, 64)["loss"]
    assert now == pytest.approx(h["loss"][1], rel=1e-5)


def test_lr_schedule_is_fed():
    m = _model(lr="placeholder")
    h = _fit(m, _data(50), epochs=3, lr=(m["rate"], lambda epoch: 0.0))
    assert h["lr"] == [0.0, 0.0, 0.0]
    np.testing.assert_array_equal(m["sess"].get_value(m["W"]), 0.0)  # lr 0: nothing moves


def test_lr_per_step_order_swap_and_plateau_update():
    m = _model(lr="placeholder")
    seen = []

    class Plateau:
        """Duck-typed like gc.schedules.ReduceOnPlateau: called per step, updated per epoch."""

        def __init__(self):
            self.metrics = []

        def __call__(self, step):
            seen.append(step)
            return 0.1 / (1 + step)

        def update(self, metric):
            self.metrics.append(metric)

    plateau = Plateau()
    h = _fit(m, _data(50), epochs=2, batch_size=20, lr=(plateau, m["rate"]), lr_per="step")
    assert seen == [0, 1, 2, 3, 4, 5]  # 3 batches per epoch
    assert h["lr"] == pytest.approx([0.1 / 3, 0.1 / 6])  # the last rate of each epoch
    assert plateau.metrics == h["loss"]  # no validation data: "loss" is monitored


def test_bad_arguments_are_clear():
    m = _model()
    tr = _data(20)
    with pytest.raises(gc.GraphcError, match="no validation_data"):
        _fit(m, tr, early_stopping=2)
    with pytest.raises(gc.GraphcError, match="1 arrays for 2 input placeholders"):
        _fit(m, (tr[0],))
    with pytest.raises(gc.GraphcError, match="lr must be"):
        _fit(m, tr, lr=0.1)
    with pytest.raises(ValueError, match="unknown metric"):
        _fit(m, tr, metrics=("loss", "f1"))
    with pytest.raises(gc.GraphcError, match="not measured"):
        _fit(m, tr, epochs=1, early_stopping=EarlyStopping(1, monitor="loss_typo"))


def test_dropout_graph_runs_train_steps_in_training_mode():
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 4), name="x")
        w = gc.variable(np.ones((4, 1), np.float32), name="w")
        out = gc.dropout(x, 0.5) @ w
        loss = gc.mean(gc.square(out))
        step = gc.optim.SGD(lr=1e-9).minimize(loss)
    sess = gc.Session(g, backend="numpy")
    xs = np.ones((64, 4), np.float32)
    h = fit(sess, step, loss, x, xs, epochs=1, batch_size=64, progress=False, eval_train=False)
    assert h["loss"][0] != pytest.approx(16.0)  # dropout was active in the step
    assert evaluate(sess, loss, x, xs, 16)["loss"] == pytest.approx(16.0, rel=1e-5)


def test_progress_false_prints_nothing(capsys):
    m = _model()
    _fit(m, _data(40), epochs=2, progress=False)
    _fit(m, _data(40), epochs=2, progress=True)  # captured stderr is no terminal: silent
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_progress_lines_and_tqdm_bar(capsys, monkeypatch):
    m = _model()
    _fit(m, _data(40), validation_data=_data(20, 1), epochs=2, progress="lines")
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("epoch 1/2") and "val_accuracy" in out[1]
    monkeypatch.setattr(train_plot, "_stderr_is_tty", lambda: True)
    pytest.importorskip("tqdm")
    _fit(m, _data(40), epochs=2, progress=True)
    captured = capsys.readouterr()
    assert "epoch 2/2" in captured.err and captured.out == ""
    monkeypatch.setitem(sys.modules, "tqdm", None)  # tqdm missing: one line per epoch
    _fit(m, _data(40), epochs=3, progress=True)
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_plot_history_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    m = _model()
    h = _fit(m, _data(60), validation_data=_data(30, 1), epochs=3)
    path = plot_history(h, tmp_path / "sub" / "history.png", title="logreg")
    data = (tmp_path / "sub" / "history.png").read_bytes()
    assert path.endswith("history.png") and len(data) > 1000
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    plot_history({"loss": [1.0, 0.5]}, tmp_path / "plain.png")
    assert (tmp_path / "plain.png").stat().st_size > 0
    with pytest.raises(ValueError):
        plot_history({}, tmp_path / "empty.png")
