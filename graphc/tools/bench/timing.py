"""Timing two implementations against each other: alternating rounds in one process.

The method of ``graphc bench`` and ``graphc demo`` (docs/design.md, "Performance method"):
graphc (A) and NumPy (B) are timed in the same process, round by round, A B A B ...,
so that both see the same machine state (clock, cache, other load); each round sleeps a
little first (a BLAS or OpenMP pool still spinning after the other side's round would
steal a core), and the report gives medians and their ratio, with the spread of the
rounds to say whether the medians can be trusted.

Example::

    >>> from graphc.tools.bench.timing import alternate, alternate_medians, spread
    >>> ta, tb = alternate(lambda: sum(range(100)), lambda: sum(range(200)), rounds=5,
    ...                    settle=0.0, min_s=0.001)
    >>> len(ta), len(tb)
    (5, 5)
    >>> a, b = alternate_medians(lambda: None, lambda: None, rounds=3, settle=0.0)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["alternate", "alternate_medians", "alternate_sides", "cycle", "spread"]


def alternate(fa: Callable[[], Any], fb: Callable[[], Any], rounds: int, settle: float,
              min_s: float, resets: tuple[Callable[[], Any] | None, Callable[[], Any] | None]
              = (None, None)) -> tuple[list[float], list[float]]:
    """Seconds per call of ``fa`` and ``fb`` in each of ``rounds`` rounds, alternating A B A B
    (:func:`alternate_sides` of the two).

    Both are called once first (compilation, first touch, thread pools). Each round
    sleeps ``settle`` seconds, calls the implementation's ``resets`` entry if any
    (untimed: e.g. restores training state), makes one untimed call to wake its own
    thread pool, then times ``reps`` calls; ``reps`` is chosen per implementation so
    that a round lasts about ``min_s`` seconds (1 to 10000 calls).

    Example::

        >>> ta, tb = alternate(lambda: None, lambda: None, 3, settle=0.0, min_s=0.001)
        >>> len(ta) == len(tb) == 3
        True
    """
    times = alternate_sides({"a": (fa, resets[0]), "b": (fb, resets[1])}, rounds, settle, min_s,
                            warm_all_first=True)
    return times["a"], times["b"]


def alternate_sides(sides: dict[str, tuple[Callable, Callable | None]], rounds: int, settle: float,
                    min_s: float, warm_all_first: bool = False) -> dict[str, list[float]]:
    """Seconds per call of each side ``name -> (call, reset)`` in interleaved rounds.

    :func:`alternate` for any number of sides: one warm-up call each, then per round and
    side: sleep ``settle``, ``reset()`` (untimed), one untimed call, ``reps`` timed calls
    (about ``min_s`` seconds). ``warm_all_first``: every side's warm-up call before the
    first side's call that sizes its rounds.

    Example::

        >>> t = alternate_sides({"a": (lambda: None, None), "b": (lambda: None, None)}, 3,
        ...                     0.0, 0.001)
        >>> sorted(t), len(t["a"])
        (['a', 'b'], 3)
    """
    reps = {}
    if warm_all_first:
        for call, _ in sides.values():
            call()
    for name, (call, _) in sides.items():
        if not warm_all_first:
            call()
        t = time.perf_counter()
        call()
        reps[name] = max(1, min(10000, int(min_s / max(time.perf_counter() - t, 1e-7))))
    out: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, (call, reset) in sides.items():
            if settle > 0:
                time.sleep(settle)
            if reset is not None:
                reset()
            call()
            t = time.perf_counter()
            for _ in range(reps[name]):
                call()
            out[name].append((time.perf_counter() - t) / reps[name])
    return out


def alternate_medians(fa: Callable[[], Any], fb: Callable[[], Any], rounds: int,
                      settle: float = 0.1, min_s: float = 0.02) -> tuple[float, float]:
    """Median seconds per call of ``fa`` and ``fb`` over :func:`alternate` rounds.

    Example::

        >>> t_graphc, t_numpy = alternate_medians(lambda: None, lambda: None, 3, settle=0.0)
        >>> t_numpy / t_graphc                  # doctest: +SKIP
        1.02
    """
    ta, tb = alternate(fa, fb, max(1, rounds), settle=settle, min_s=min_s)
    return statistics.median(ta), statistics.median(tb)


def spread(times: Sequence[float]) -> float | None:
    """Interquartile range over the median (0.05: rounds within about +-2.5%); None under 4.

    Example::

        >>> round(spread([1.0, 1.0, 1.1, 1.1, 1.2]), 2)
        0.14
        >>> spread([1.0, 2.0]) is None
        True
    """
    if len(times) < 4:
        return None
    q = statistics.quantiles(times, n=4)
    return (q[2] - q[0]) / statistics.median(times)


def cycle(fn: Callable[[Any], Any], items: Sequence[Any]) -> Callable[[], Any]:
    """A no-argument callable that applies ``fn`` to ``items[0]``, ``items[1]``, ... in turn.

    Training steps are timed over a few different batches, not one batch repeated.

    Example::

        >>> step = cycle(lambda b: b * 10, [1, 2])
        >>> [step(), step(), step()]
        [10, 20, 10]
    """
    state = {"k": 0}

    def call() -> Any:
        k = state["k"]
        state["k"] = (k + 1) % len(items)
        return fn(items[k])

    return call
