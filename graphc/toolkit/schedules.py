"""Learning-rate schedules: plain Python objects ``schedule(step) -> float``.

Feed the value each step through a scalar placeholder passed as the
optimizer's ``lr`` (:func:`lr_placeholder`): the learning rate changes while
the compiled step stays the same, so nothing recompiles.

Example::

    import graphc as gc
    with gc.Graph() as g:
        ...
        lr = gc.schedules.lr_placeholder()
        train = gc.optim.SGD(lr, momentum=0.9).minimize(loss)
    sched = gc.schedules.linear_warmup(gc.schedules.cosine_decay(0.1, 1000), 100)
    for step in range(1100):
        sess.run([loss, train], {x: xb, y: yb, lr: sched(step)})
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..ir.graph import Graph, Tensor, get_default_graph
from ..ops.leaves import placeholder
from ._args import bad_value, number

__all__ = ["Schedule", "StepDecay", "ExponentialDecay", "CosineDecay", "LinearWarmup",
           "ReduceOnPlateau", "step_decay", "exponential_decay", "cosine_decay",
           "linear_warmup", "lr_placeholder"]


class Schedule:
    """Base class: ``__call__(step) -> float`` for an integer step (or epoch) >= 0."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def _step(self, step) -> int:
        step = int(step)
        if step < 0:
            raise bad_value(f"{type(self).__name__}: step must be >= 0, got {step}")
        return step


def _positive(name: str, value) -> None:
    number("schedule", name, value, low=0.0, low_open=True)


class StepDecay(Schedule):
    """``initial * drop ** floor(step / every)``.

    Example::

        s = gc.schedules.step_decay(0.1, drop=0.5, every=10)
        assert s(0) == 0.1 and s(10) == 0.05 and s(25) == 0.025
    """

    def __init__(self, initial: float, drop: float, every: int) -> None:
        _positive("initial", initial)
        _positive("every", every)
        self.initial, self.drop, self.every = float(initial), float(drop), int(every)

    def __call__(self, step: int) -> float:
        return self.initial * self.drop ** (self._step(step) // self.every)


class ExponentialDecay(Schedule):
    """``initial * rate ** (step / steps)`` (``staircase=True``: floor of the exponent).

    Example::

        s = gc.schedules.exponential_decay(0.1, rate=0.5, steps=100)
        assert abs(s(200) - 0.025) < 1e-15
    """

    def __init__(self, initial: float, rate: float, steps: int, staircase: bool = False) -> None:
        _positive("initial", initial)
        _positive("rate", rate)
        _positive("steps", steps)
        self.initial, self.rate, self.steps = float(initial), float(rate), int(steps)
        self.staircase = bool(staircase)

    def __call__(self, step: int) -> float:
        step = self._step(step)
        e = step // self.steps if self.staircase else step / self.steps
        return self.initial * self.rate ** e


class CosineDecay(Schedule):
    """Half-cosine from ``initial`` down to ``min_lr`` over ``total_steps``, then ``min_lr``.

    ``min_lr + (initial - min_lr) * (1 + cos(pi * min(step, total) / total)) / 2``

    Example::

        s = gc.schedules.cosine_decay(0.1, total_steps=100)
        assert s(0) == 0.1 and abs(s(50) - 0.05) < 1e-12 and s(100) == 0.0
    """

    def __init__(self, initial: float, total_steps: int, min_lr: float = 0.0) -> None:
        _positive("initial", initial)
        _positive("total_steps", total_steps)
        if not 0.0 <= float(min_lr) <= float(initial):
            raise bad_value(f"min_lr must be in [0, initial], got {min_lr}")
        self.initial, self.total, self.min_lr = float(initial), int(total_steps), float(min_lr)

    def __call__(self, step: int) -> float:
        t = min(self._step(step), self.total) / self.total
        if t == 1.0:
            return self.min_lr
        return self.min_lr + (self.initial - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


class LinearWarmup(Schedule):
    """Ramp linearly up to ``target`` over ``warmup_steps``, then follow ``target``.

    ``target`` is a float or a schedule. Warmup step ``s < warmup_steps``
    gives ``target(0) * (s + 1) / warmup_steps``; afterwards the wrapped
    schedule runs on its own clock: ``target(step - warmup_steps)``.

    Example::

        s = gc.schedules.linear_warmup(1.0, warmup_steps=4)
        assert [s(i) for i in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    """

    def __init__(self, target: float | Callable[[int], float], warmup_steps: int) -> None:
        if int(warmup_steps) < 0:
            raise bad_value(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.target = target if callable(target) else _Constant(float(target))
        self.warmup = int(warmup_steps)

    def __call__(self, step: int) -> float:
        step = self._step(step)
        if step < self.warmup:
            return float(self.target(0)) * (step + 1) / self.warmup
        return float(self.target(step - self.warmup))


class _Constant(Schedule):
    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self, step: int) -> float:
        return self.value


def step_decay(initial: float, drop: float, every: int) -> StepDecay:
    """See :class:`StepDecay`."""
    return StepDecay(initial, drop, every)


def exponential_decay(initial: float, rate: float, steps: int,
                      staircase: bool = False) -> ExponentialDecay:
    """See :class:`ExponentialDecay`."""
    return ExponentialDecay(initial, rate, steps, staircase)


def cosine_decay(initial: float, total_steps: int, min_lr: float = 0.0) -> CosineDecay:
    """See :class:`CosineDecay`."""
    return CosineDecay(initial, total_steps, min_lr)


def linear_warmup(schedule_or_value: float | Callable[[int], float],
                  warmup_steps: int) -> LinearWarmup:
    """See :class:`LinearWarmup`."""
    return LinearWarmup(schedule_or_value, warmup_steps)


class ReduceOnPlateau(Schedule):
    """Multiply the rate by ``factor`` when a metric stops improving (PyTorch's rule).

    Call :meth:`update` once per epoch with the validation metric; it returns
    the rate to use next. A metric improves when it beats the best so far by
    more than ``threshold * |best|`` (lower in "min" mode, higher in "max"
    mode). After more than
    ``patience`` epochs in a row without improvement the rate becomes
    ``max(lr * factor, min_lr)`` and the count restarts.

    Example::

        plateau = gc.schedules.ReduceOnPlateau(0.1, factor=0.5, patience=2)
        for epoch in range(epochs):
            ...                                           # feed plateau.lr each step
            plateau.update(val_loss)
    """

    def __init__(self, initial: float, factor: float = 0.1, patience: int = 5,
                 min_lr: float = 0.0, mode: str = "min", threshold: float = 1e-4) -> None:
        _positive("initial", initial)
        if not 0.0 < float(factor) < 1.0:
            raise bad_value(f"factor must be in (0, 1), got {factor}")
        if int(patience) < 0:
            raise bad_value(f"patience must be >= 0, got {patience}")
        if mode not in ("min", "max"):
            raise bad_value(f"mode must be 'min' or 'max', got {mode!r}")
        self.lr, self.factor, self.patience = float(initial), float(factor), int(patience)
        self.min_lr, self.mode, self.threshold = float(min_lr), mode, float(threshold)
        self.best: float | None = None
        self.bad_epochs = 0

    def _improves(self, metric: float) -> bool:
        if self.best is None or math.isnan(self.best):
            return True
        if self.mode == "min":
            return metric < self.best - abs(self.best) * self.threshold
        return metric > self.best + abs(self.best) * self.threshold

    def update(self, metric: float) -> float:
        """Record this epoch's ``metric``; returns the (possibly reduced) rate."""
        metric = float(metric)
        if self._improves(metric):
            self.best, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.patience:
                self.lr = max(self.lr * self.factor, self.min_lr)
                self.bad_epochs = 0
        return self.lr

    def __call__(self, step: int = 0) -> float:
        return self.lr


def lr_placeholder(graph: Graph | None = None, name: str = "lr") -> Tensor:
    """A scalar float32 placeholder to pass as an optimizer's ``lr`` and feed each step.

    Example::

        lr = gc.schedules.lr_placeholder()
        train = gc.optim.Adam(lr).minimize(loss)
        sess.run(train, {x: xb, lr: sched(step)})     # same compiled step for every lr
    """
    graph = graph if graph is not None else get_default_graph()
    with graph:
        return placeholder((), dtype="float32", name=name)
