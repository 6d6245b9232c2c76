"""A training loop for sessions: ``fit``, ``evaluate``, ``predict``, early stopping.

``fit`` runs the optimizer step over shuffled minibatches (``training=True``),
then measures loss and accuracy on the training and validation sets
(``training=False``, in batches) once per epoch, and returns a :class:`History`.

Example::

    import graphc as gc
    hist = gc.train.fit(sess, train_op, loss, (x, y), (x_tr, y_tr), epochs=20,
                        batch_size=64, validation_data=(x_va, y_va), logits=logits,
                        early_stopping=3, lr=(lr_placeholder, lambda epoch: 0.1 * 0.9**epoch))
    hist.history["val_accuracy"][-1], hist.best_epoch
    gc.train.plot_history(hist, "history.png")
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..ir.errors import GraphcError
from ..ir.graph import Kind, Tensor
from ._args import bad_type, bad_value
from .data.batching import as_arrays, batches
from .train_plot import EpochProgress, plot_history

__all__ = ["EarlyStopping", "History", "accuracy", "evaluate", "fit", "plot_history", "predict"]

Metric = Callable[[np.ndarray, np.ndarray], Any]


class EarlyStopping:
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    ``mode`` is ``"min"``, ``"max"`` or ``"auto"`` (max for names containing
    "acc"). With ``restore_best`` the variables (optimizer state included) are
    snapshot at the best epoch and restored when training ends. NaN or
    infinite values never count as an improvement.

    Example::

        fit(..., early_stopping=EarlyStopping(patience=3, monitor="val_accuracy"))
        fit(..., early_stopping=3)      # same as EarlyStopping(3) on "val_loss"
    """

    def __init__(self, patience: int = 5, monitor: str = "val_loss", min_delta: float = 0.0,
                 restore_best: bool = True, mode: str = "auto") -> None:
        if int(patience) < 1:
            raise bad_value(f"EarlyStopping: patience must be >= 1, got {patience}")
        if mode not in ("auto", "min", "max"):
            raise bad_value(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.patience, self.monitor = int(patience), monitor
        self.min_delta, self.restore_best = abs(float(min_delta)), bool(restore_best)
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode

    def improved(self, value: float, best: float | None) -> bool:
        """Whether ``value`` beats ``best`` by more than ``min_delta``."""
        if not math.isfinite(value):
            return False
        if best is None:
            return True
        return value < best - self.min_delta if self.mode == "min" else \
            value > best + self.min_delta

    def __repr__(self) -> str:
        return (f"EarlyStopping(patience={self.patience}, monitor={self.monitor!r}, "
                f"min_delta={self.min_delta}, restore_best={self.restore_best})")


class History:
    """What :func:`fit` measured: ``history[name]`` is one value per epoch.

    Names: ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` (those that
    were measured), ``lr`` (when a schedule was given) and custom metrics.
    ``epochs`` is the number of epochs run, ``stopped_epoch`` the 0-based epoch
    early stopping ended on (None if it did not), ``best_epoch`` the 0-based
    epoch with the best ``monitor`` value.

    Example::

        h = fit(...)
        h["val_loss"], h.best_epoch, h.best("val_accuracy")
    """

    def __init__(self, monitor: str = "loss") -> None:
        self.history: dict[str, list[float]] = {}
        self.epochs = 0
        self.stopped_epoch: int | None = None
        self.best_epoch: int | None = None
        self.monitor = monitor

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def log(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.history.setdefault(k, []).append(float(v))

    def best(self, metric: str | None = None) -> float:
        """The best value of ``metric`` (default: the monitored one)."""
        metric = metric or self.monitor
        vals = np.asarray(self.history[metric], dtype=np.float64)
        return float(np.nanmax(vals) if "acc" in metric else np.nanmin(vals))

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items() if v)
        return f"<History epochs={self.epochs} best_epoch={self.best_epoch} {last}>"


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-example correctness of logits against labels (a bool array).

    Logits of shape ``(N, K)`` (K > 1) are compared by argmax with int class
    ids ``(N,)`` or one-hot rows ``(N, K)``. A single sigmoid logit, shape
    ``(N,)`` or ``(N, 1)``, predicts 1 when the logit is > 0 (probability
    > 0.5); float targets count as 1 when > 0.5.

    Example::

        accuracy(np.array([[2.0, 1.0], [0.0, 3.0]]), np.array([0, 0]))  # [True, False]
    """
    out, lab = np.asarray(outputs), np.asarray(labels)
    if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
        pred = out.reshape(len(out)) > 0
        target = lab.reshape(len(lab))
        target = target > 0.5 if target.dtype.kind == "f" else target != 0
        return pred == target
    if lab.shape == out.shape:
        lab = lab.argmax(axis=-1)
    if lab.shape != out.shape[:-1]:
        raise GraphcError(f"accuracy: logits of shape {out.shape} need labels of shape "
                          f"{out.shape[:-1]} (class ids) or {out.shape} (one-hot), got "
                          f"{lab.shape}")
    return out.argmax(axis=-1) == lab


def _inputs(inputs: Any) -> tuple[Tensor, ...]:
    ins = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    for p in ins:
        if not isinstance(p, Tensor) or p.op.kind is not Kind.PLACEHOLDER:
            raise GraphcError(f"fit: inputs must be placeholders, got {p!r}")
    return ins


def _aligned(ins: tuple[Tensor, ...], data: Any, what: str) -> tuple[np.ndarray, ...]:
    arrays = as_arrays(data, what)
    if len(arrays) != len(ins):
        names = ", ".join(p.name for p in ins)
        raise GraphcError(f"{what}: {len(arrays)} arrays for {len(ins)} input placeholders "
                          f"({names}); pass one array per placeholder, in the same order")
    if len(arrays[0]) == 0:
        raise bad_value(f"{what}: the arrays are empty")
    return arrays


def _metric_fns(metrics: Sequence[str | Metric], logits: Tensor | None,
                label_index: int | None) -> dict[str, Metric]:
    fns: dict[str, Metric] = {}
    for m in metrics:
        if m == "loss":
            continue
        if m in ("accuracy", "acc"):
            if logits is None:
                continue  # accuracy is only measured when logits are given
            fns["accuracy"] = lambda o, y: accuracy(o, y).mean()
        elif callable(m):
            fns[getattr(m, "__name__", "metric")] = m
        else:
            raise bad_value(f"fit: unknown metric {m!r}; use 'loss', 'accuracy' or a callable "
                            "fn(logits, labels) -> float")
    if fns and label_index is None:
        raise GraphcError("fit: metrics other than loss need labels: pass labels=<placeholder> "
                          "(by default the last of at least two inputs)")
    if fns and logits is None:
        raise GraphcError("fit: custom metrics need logits=<tensor>")
    return fns


def _label_index(ins: tuple[Tensor, ...], labels: Tensor | int | None) -> int | None:
    if labels is None:
        return len(ins) - 1 if len(ins) >= 2 else None
    if isinstance(labels, Tensor):
        for i, p in enumerate(ins):
            if p is labels:
                return i
        raise GraphcError(f"fit: labels={labels.name} is not one of the inputs")
    return int(labels)


def evaluate(sess, loss: Tensor, inputs: Any, data: Any, batch_size: int = 256,
             logits: Tensor | None = None, *, labels: Tensor | int | None = None,
             metrics: Sequence[str | Metric] = ("loss", "accuracy"),
             extra_feed: dict | None = None) -> dict[str, float]:
    """Mean loss (and accuracy, given ``logits``) over ``data``, with ``training=False``.

    Batch values are averaged weighted by batch size, so a ``loss`` that is a
    mean over the batch gives the mean over the whole set.

    Example::

        evaluate(sess, loss, (x, y), (x_te, y_te), 256, logits=logits)
        # {'loss': 0.31, 'accuracy': 0.91}
    """
    ins = _inputs(inputs)
    arrays = _aligned(ins, data, "evaluate")
    li = _label_index(ins, labels)
    fns = _metric_fns(metrics, logits, li)
    fetches = [loss] + ([logits] if fns else [])
    sums = dict.fromkeys(["loss", *fns], 0.0)
    for batch in batches(arrays, batch_size, shuffle=False):
        feed = {**(extra_feed or {}), **dict(zip(ins, batch))}
        out = sess.run(fetches, feed, training=False)
        n = len(batch[0])
        sums["loss"] += float(out[0]) * n
        for name, fn in fns.items():
            sums[name] += float(fn(out[1], batch[li])) * n
    return {k: v / len(arrays[0]) for k, v in sums.items()}


def predict(sess, tensor: Tensor | Sequence[Tensor], inputs: Any, data: Any,
            batch_size: int = 256, *, extra_feed: dict | None = None) -> Any:
    """Run ``tensor`` over ``data`` in batches (``training=False``); concatenate rows.

    ``tensor`` may be a list of tensors (returns a list of arrays). Every
    tensor must keep the batch as its leading dimension.

    Example::

        probs = predict(sess, gc.softmax(logits), x, x_test, 512)
    """
    ins = _inputs(inputs)
    arrays = _aligned(ins, data, "predict")
    many = not isinstance(tensor, Tensor)
    fetches = list(tensor) if many else [tensor]
    for t in fetches:
        if not t.shape or t.shape[0] is not None:
            raise GraphcError(f"predict: {t.name} has shape {t.shape}; it needs the batch "
                              "(None) as its leading dimension")
    parts: list[list[np.ndarray]] = [[] for _ in fetches]
    for batch in batches(arrays, batch_size, shuffle=False):
        feed = {**(extra_feed or {}), **dict(zip(ins, batch))}
        for acc, out in zip(parts, sess.run(fetches, feed, training=False)):
            acc.append(out)
    result = [np.concatenate(p) for p in parts]
    return result if many else result[0]


def fit(sess, train_op: Tensor, loss: Tensor, inputs: Any, data: Any, *, epochs: int,
        batch_size: int, validation_data: Any = None,
        metrics: Sequence[str | Metric] = ("loss", "accuracy"), logits: Tensor | None = None,
        labels: Tensor | int | None = None, early_stopping: int | EarlyStopping | None = None,
        lr: tuple[Tensor, Callable[[int], float]] | None = None, lr_per: str = "epoch",
        progress: bool | str = True,
        seed: int = 0, shuffle: bool = True, extra_feed: dict | None = None,
        eval_train: bool = True, eval_batch_size: int | None = None) -> History:
    """Train for ``epochs`` over minibatches of ``data``; return a :class:`History`.

    ``inputs`` are the placeholders fed, in order, from the arrays of ``data``
    (and ``validation_data``). Each epoch runs ``[loss, train_op]`` per batch
    with ``training=True``, then measures ``loss`` (and accuracy when
    ``logits`` is given; labels default to the last input) over the whole
    training set (``eval_train=False``: the running batch mean instead) and the
    validation set with ``training=False``.

    ``early_stopping``: patience (int) or :class:`EarlyStopping`.
    ``lr=(placeholder, schedule)`` feeds ``schedule(epoch)`` (0-based) to the
    placeholder (``lr_per="step"``: ``schedule(step)`` per batch, counting
    from 0 in this call); a schedule with an ``update(metric)`` method (e.g.
    ``gc.schedules.ReduceOnPlateau``) gets the monitored value after each
    epoch (``val_loss``, else ``loss``, or early stopping's). ``progress``: a
    tqdm bar per epoch when stderr is a terminal (one printed line per epoch
    without tqdm, or with ``progress="lines"``).
    ``seed`` fixes the batch order (``seed + epoch``); ``extra_feed`` is added
    to every run.

    Under ``mpirun`` with ``gc.Session(g, comm=comm)``, ``fit`` works unchanged: each
    process trains on its shard of every global batch of ``batch_size * comm.size``
    rows (``batch_size`` is per process), the running loss is averaged over the
    processes, and only rank 0 shows progress.

    Example::

        h = fit(sess, train, loss, (x, y), (xs, ys), epochs=10, batch_size=32,
                validation_data=(xv, yv), logits=logits, early_stopping=2)
    """
    ins = _inputs(inputs)
    arrays = _aligned(ins, data, "fit: data")
    val = None if validation_data is None else _aligned(ins, validation_data,
                                                        "fit: validation_data")
    li = _label_index(ins, labels)
    fns = _metric_fns(metrics, logits, li)
    if isinstance(early_stopping, bool):
        raise bad_type("fit: early_stopping is a patience (int) or an EarlyStopping")
    stopper = EarlyStopping(early_stopping) if isinstance(early_stopping, int) \
        else early_stopping
    if stopper is not None and stopper.monitor.startswith("val_") and val is None:
        raise GraphcError(f"fit: early stopping monitors {stopper.monitor!r} but no "
                          "validation_data was given; pass validation_data or "
                          "EarlyStopping(monitor='loss')")
    if lr is not None:
        if isinstance(lr, tuple) and len(lr) == 2 and isinstance(lr[1], Tensor):
            lr = (lr[1], lr[0])  # (schedule, placeholder) is accepted too
        if not isinstance(lr, tuple) or len(lr) != 2 or not isinstance(lr[0], Tensor) \
                or not callable(lr[1]):
            raise GraphcError("fit: lr must be (placeholder, schedule) with schedule(epoch) "
                              "-> float")
    if lr_per not in ("epoch", "step"):
        raise bad_value(f"fit: lr_per must be 'epoch' or 'step', got {lr_per!r}")
    measured = ["loss", *fns] + ([f"val_{k}" for k in ("loss", *fns)] if val is not None else [])
    if stopper is not None and stopper.monitor not in measured:
        raise GraphcError(f"fit: early stopping monitors {stopper.monitor!r}, which is not "
                          f"measured (measured: {', '.join(measured)})")
    eval_bs = eval_batch_size or batch_size
    monitor = stopper.monitor if stopper else ("val_loss" if val is not None else "loss")
    hist = History(monitor)
    comm = getattr(sess, "comm", None)
    shard = None if comm is None else (comm.Get_rank(), comm.Get_size())
    if shard is not None and shard[0] != 0:
        progress = False  # rank 0 reports
    loader = batches(arrays, batch_size, shuffle=shuffle, seed=seed, shard=shard)
    step_fetches = [loss, train_op] + ([logits] if fns and not eval_train else [])
    best: float | None = None
    snapshot: dict[Tensor, np.ndarray] | None = None
    wait = step = 0
    for epoch in range(int(epochs)):
        base = dict(extra_feed or {})
        record: dict[str, float] = {}
        if lr is not None and lr_per == "epoch":
            rate = float(lr[1](epoch))
            base[lr[0]] = np.asarray(rate, dtype=lr[0].dtype)
        bar = EpochProgress(progress, epoch, epochs, len(loader))
        sums = dict.fromkeys(["loss", *fns], 0.0)
        seen = 0
        for batch in loader:
            feed = {**base, **dict(zip(ins, batch))}
            if lr is not None and lr_per == "step":
                rate = float(lr[1](step))
                feed[lr[0]] = np.asarray(rate, dtype=lr[0].dtype)
            step += 1
            out = sess.run(step_fetches, feed, training=True)
            n = len(batch[0])
            seen += n
            sums["loss"] += float(out[0]) * n
            if len(out) > 2:
                for name, fn in fns.items():
                    sums[name] += float(fn(out[2], batch[li])) * n
            bar.step(sums["loss"] / seen)
        if comm is not None:  # every rank decides on the same numbers
            sums = {k: comm.allreduce(v) for k, v in sums.items()}
            seen = comm.allreduce(seen)
        if eval_train:
            record.update(evaluate(sess, loss, ins, arrays, eval_bs, logits, labels=li,
                                   metrics=metrics, extra_feed=base))
        else:
            record.update({k: v / seen for k, v in sums.items()})
        if val is not None:
            scores = evaluate(sess, loss, ins, val, eval_bs, logits, labels=li,
                              metrics=metrics, extra_feed=base)
            record.update({f"val_{k}": v for k, v in scores.items()})
        if lr is not None:
            record["lr"] = rate
        hist.log(record)
        hist.epochs = epoch + 1
        if lr is not None and callable(getattr(lr[1], "update", None)):
            lr[1].update(record[monitor])  # plateau schedules
        bar.close(record)
        if stopper is None:
            continue
        value = record[stopper.monitor]
        if stopper.improved(value, best):
            best, wait, hist.best_epoch = value, 0, epoch
            if stopper.restore_best:
                snapshot = {v: sess.get_value(v) for v in sess.graph.variables()}
        else:
            wait += 1
            if wait >= stopper.patience:
                hist.stopped_epoch = epoch
                break
    if stopper is None and hist.epochs:
        vals = np.asarray(hist.history[monitor], dtype=np.float64)
        if np.isfinite(vals).any():
            hist.best_epoch = int(np.nanargmin(np.where(np.isfinite(vals), vals, np.nan)))
    if snapshot is not None and hist.best_epoch != hist.epochs - 1:
        for var, value in snapshot.items():
            sess.set_value(var, value)
    return hist
