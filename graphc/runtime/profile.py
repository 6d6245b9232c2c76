"""Per-kernel timings of a compiled fetch set (what :meth:`Session.profile` returns).

Example::

    prof = sess.profile([loss, train], {x: xb, y: yb}, runs=20)
    print(prof)
    slowest = max(prof.rows, key=lambda r: r["seconds"])
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Profile:
    """Median wall time of each kernel (C) or node (NumPy) over ``runs`` steps.

    ``rows``: one dict per kernel in run order with ``name``, ``kind``, ``nodes`` (the
    graph nodes it fused), ``seconds`` (median) and ``share`` (of the summed medians).
    ``total_seconds``: median of the whole ``Session`` step as the caller sees it
    (feed checks and Python overhead included); ``kernel_seconds``: the sum of the rows.
    """

    backend: str
    batch: int | None
    runs: int
    total_seconds: float
    rows: list[dict] = field(default_factory=list)

    @property
    def kernel_seconds(self) -> float:
        return float(sum(r["seconds"] for r in self.rows))

    @classmethod
    def from_runs(cls, backend: str, batch: int | None, units: list[dict],
                  per_run: list[np.ndarray], totals: list[float]) -> Profile:
        medians = np.median(np.stack(per_run), axis=0) if per_run else np.zeros(len(units))
        whole = float(medians.sum())
        rows = [{"name": u["name"], "kind": u["kind"], "nodes": list(u["nodes"]),
                 "seconds": float(t), "share": float(t) / whole if whole > 0 else 0.0}
                for u, t in zip(units, medians)]
        return cls(backend, batch, len(per_run), statistics.median(totals), rows)

    def __str__(self) -> str:
        head = (f"graphc profile: backend {self.backend}, batch {self.batch}, median of "
                f"{self.runs} run(s): step {_us(self.total_seconds)}, kernels "
                f"{_us(self.kernel_seconds)}")
        width = max([len(r["name"]) for r in self.rows] + [6])
        lines = [head, f"{'kernel':<{width}}  {'median':>10}  {'share':>6}  nodes"]
        for r in self.rows:
            nodes = ", ".join(r["nodes"])
            if len(nodes) > 60:
                nodes = nodes[:57] + "..."
            lines.append(f"{r['name']:<{width}}  {_us(r['seconds']):>10}  "
                         f"{100 * r['share']:5.1f}%  {nodes}")
        return "\n".join(lines)


def _us(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"
