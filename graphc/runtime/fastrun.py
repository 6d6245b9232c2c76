"""The per-step path of ``Session.run``: a repeated call skips straight to the step.

The first call of a fetch set with a given feed dict layout (its keys, in order, and
``training``) goes the full way: fetches checked, feeds resolved, converted and checked
(:func:`graphc.runtime.feeds.check`). Once that succeeded, a :class:`Plan` remembers
what it accepted: each fed value's placeholder, dtype and shape, and where it goes in
the compiled step. A later call with the same layout only compares each value with
that (an ``ndarray`` of the same shape; another dtype is converted by the same
:func:`~graphc.runtime.feeds.convert`); anything else (another batch size, a list, a
subclass, a value that does not convert) makes :meth:`Plan.run` answer :data:`MISS`,
having changed nothing, and the session takes the full path, which raises the usual
error or re-learns the plan. So the per-step path accepts exactly what the full check
accepted, and runs it the same way.

Example (what ``Session.run`` does)::

    key = fastrun.key(fetches, feed, training)      # None: this call never has a plan
    plan = session._plans.get(key)                  # a Plans; None: not learned yet
    out = plan.run(session, fetches, feed)          # fastrun.MISS: take the full path
    ... full path ...; session._plans.learn(key, session, fetches, flat, compiled, ...)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir.errors import GraphcError
from ..ir.graph import Tensor
from .feeds import convert

MISS = object()  #: :meth:`Plan.run`'s answer when the call needs the full path


def key(fetches: Any, feed: Any, training: Any) -> tuple | None:
    """The plan key of a ``Session.run`` call, or None for a call that never has a plan
    (fetches or feed of another type: a dict subclass, a generator...)."""
    kind = type(fetches)
    if kind is Tensor:
        what: Any = fetches
    elif kind is list or kind is tuple:
        what = (kind, *fetches)
    elif kind is dict:
        what = (dict, *fetches.items())
    else:
        return None
    if feed is None:
        return (what, (), training)
    if type(feed) is dict:
        return (what, tuple(feed), training)
    return None


class Plans:
    """A session's plans by :func:`key` (at most :attr:`LIMIT`: a program that makes a new
    fetch list for every call does not grow them without bound)."""

    LIMIT = 256

    def __init__(self) -> None:
        self._by_key: dict[tuple, Plan] = {}

    def get(self, key: tuple | None) -> Plan | None:
        if key is None:
            return None
        try:
            return self._by_key.get(key)
        except TypeError:  # (an unhashable fetch or ``training``: the full path names it)
            return None

    def learn(self, key: tuple, session, fetches, flat: list[Tensor], compiled,
              feed: dict | None, arrays: dict[Tensor, np.ndarray], batch: int | None) -> None:
        """Remember the plan of a call whose full check gave ``arrays`` and ``batch``."""
        try:
            hash(key)
        except TypeError:
            return
        plan = Plan.build(session, fetches, flat, compiled, feed, arrays, batch)
        if plan is not None:
            if len(self._by_key) >= self.LIMIT:
                self._by_key.clear()
            self._by_key[key] = plan


class Plan:
    """What the full path accepted for one call layout, and how to run it again.

    ``checks``: for each fed placeholder (last key wins, as in ``feeds.resolve``), its
    key in the feed dict, the placeholder, its dtype, the shape accepted and its slot
    in the step's feed list (-1: fed but not read by the step, still checked).
    """

    def __init__(self, compiled, flat: list[Tensor], kind: type, checks: list,
                 template: list, order: list[Tensor], batch: int | None,
                 nodes: int | None) -> None:
        self.compiled = compiled
        self.flat = flat
        self.kind = kind
        self.checks = checks
        self.template = template
        self.order = order
        self.batch = batch
        self.nodes = nodes  # the graph's size when a feed key is a name (None: no name)
        self.run_values = getattr(compiled.executable, "run_values", None)
        # fetched update ops give None (as Session._commit makes them; run_values already
        # gives None for an output without a dtype)
        self.nulls = [] if self.run_values is None else [
            i for i, (f, o) in enumerate(zip(flat, compiled.program.outputs))
            if f.dtype is None and o.dtype is not None]

    @classmethod
    def build(cls, session, fetches, flat: list[Tensor], compiled, feed: dict | None,
              arrays: dict[Tensor, np.ndarray], batch: int | None) -> Plan | None:
        """The plan of a call whose full check gave ``arrays`` (None when it has none)."""
        graph = session.graph
        by_name = {p.name: p for p in graph.placeholders()} if any(
            isinstance(k, str) for k in feed or ()) else {}
        raw: dict[Tensor, Any] = {}
        for k in feed or ():
            p = by_name.get(k) if isinstance(k, str) else k
            if p is None:
                return None
            raw[p] = k
        executable = compiled.executable
        if getattr(executable, "run_values", None) is not None:
            if len(compiled.program.outputs) != len(flat):
                return None
            order = list(executable.feed_order)
        else:
            order = list(arrays)
        if any(p not in arrays for p in order):
            return None
        slot = {p: i for i, p in enumerate(order)}
        template: list = [None] * len(order)
        checks = []
        for p, arr in arrays.items():
            if p in raw:
                checks.append((raw[p], p, np.dtype(p.dtype), arr.shape, slot.get(p, -1)))
            elif p in slot:  # a default (the learning phase): the same array every run
                template[slot[p]] = arr
        for v in compiled.variables:
            session._state(v)
        nodes = len(graph.nodes) if by_name else None
        return cls(compiled, flat, type(fetches), checks, template, order, batch, nodes)

    def run(self, session, fetches, feed: dict | None):
        """The packed results of one step, or :data:`MISS` (nothing ran or changed)."""
        values = self.template.copy()
        for k, p, dtype, shape, slot in self.checks:
            v = feed[k]
            if type(v) is not np.ndarray or v.shape != shape:
                return MISS
            if v.dtype != dtype:
                try:
                    v = convert(v, p.dtype, f"feed for {p.name} ({p.dtype})", p.site)
                except GraphcError:
                    return MISS  # (the full path raises it, or the first of several)
            if slot >= 0:
                if not v.flags.c_contiguous:
                    v = np.ascontiguousarray(v)
                values[slot] = v
        if self.nodes is not None and len(session.graph.nodes) != self.nodes:
            return MISS  # (a new placeholder may now own a name fed as a key)
        compiled = self.compiled
        batch = self.batch
        compiled.last_batch = batch
        if self.run_values is not None:
            outs = self.run_values(values, session._values, batch or 0, session.step)
            session.step += 1
            for i in self.nulls:
                outs[i] = None
        else:
            outs = session._step(self.flat, compiled, dict(zip(self.order, values)), batch)
        kind = self.kind
        if kind is list:
            return outs
        if kind is Tensor:
            return outs[0]
        if kind is tuple:
            return tuple(outs)
        return dict(zip(fetches, outs))
