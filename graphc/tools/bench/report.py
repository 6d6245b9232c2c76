"""``graphc bench`` report: the markdown table, the performance floors, the ratio plot.

All three read the result dict that :func:`graphc.tools.bench.bench` returns and writes
as JSON: ``tag``, ``config`` (the :class:`~graphc.tools.bench.groups.Config` as a dict),
``rows`` (see :mod:`graphc.tools.bench.groups`), ``floors``, ``fusions``, ``profiles``,
``threads`` (:func:`~graphc.tools.bench.machine.thread_report`), ``cpu``, ``loadavg``,
``loadavg_end``, ``numpy``, ``graphc`` and ``cflags``.

Example::

    >>> from graphc.tools.bench.report import floors, format_seconds
    >>> format_seconds(0.00123)
    '1.23 ms'
    >>> [f["met"] for f in floors([])]
    [None, None, None, None]
"""

from __future__ import annotations

import math
import os
import platform

__all__ = ["floors", "format_seconds", "markdown", "plot"]


def format_seconds(seconds: float | None) -> str:
    """Seconds as ``"12.3 us"``, ``"4.56 ms"``, ``"250 ms"`` or ``"1.50 s"`` (``"-"``: None).

    Example::

        >>> format_seconds(2.5e-5), format_seconds(0.25), format_seconds(None)
        ('25.0 us', '250 ms', '-')
    """
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"
    return f"{seconds:.2f} s"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _table(rows: list[dict]) -> list[str]:
    lines = ["| benchmark | graphc median | NumPy median | NumPy / graphc | graphc rate | "
             "NumPy rate | spread g / np | max rel diff | note |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if r["numpy_s"] is None:
            lines.append(f"| {r['name']} | {format_seconds(r['graphc_s'])} | - | - | - | - | - | - "
                         f"| {r['note']} |")
            continue
        note = "; ".join(x for x in (r["note"], r.get("note_extra", "")) if x)
        diff = "-" if r["max_rel_diff"] is None else f"{r['max_rel_diff']:.1e}"
        lines.append(
            f"| {r['name']} | {format_seconds(r['graphc_s'])} | {format_seconds(r['numpy_s'])} "
            f"| **{r['ratio']:.2f}** | {r['graphc_rate']:.1f} {r['unit']} | "
            f"{r['numpy_rate']:.1f} {r['unit']} | {_pct(r['spread'][0])} / {_pct(r['spread'][1])} "
            f"| {diff} | {note} |")
    return lines


def _footer(result: dict) -> list[str]:
    cfg, th = result["config"], result["threads"]
    omp, blas = th.get("omp_threads"), th.get("blas_threads")
    env = ", ".join(f"{k}={v}" for k, v in th["env"].items() if v) or "unset"
    peak = (f"Nominal peak {cfg['peak_gflops']:.0f} GFLOP/s = {cfg['n_cores']} core(s) x "
            f"{cfg['ghz']:.2f} GHz (base clock) x {cfg['fpc']} FLOP/cycle ({cfg['fpc_note']}); "
            if cfg["peak_gflops"] else "Nominal peak unknown (no clock in /proc/cpuinfo); ")
    copy = (f"copy bandwidth {cfg['copy_gbs']:.1f} GB/s (one-thread np.copyto of 16 MB, read + "
            "write)." if cfg["copy_gbs"] else "copy bandwidth not measured.")
    lines = [
        f"Medians of {cfg['rounds']} alternating rounds (graphc, NumPy, graphc, ...) in one "
        f"process, each round >= {cfg['min_round']} s of calls after {cfg['settle']} s of "
        "sleep; NumPy / graphc > 1 means graphc is faster. graphc is timed through "
        "`Session.run` (feed checks, output copies included). 'spread' is the interquartile "
        "range of the rounds over their median. max rel diff: graphc vs NumPy output (sgemm, "
        "elementwise), or one step from the same weights: loss, gradients (momentum buffers) "
        "and new weights (MLP, CNN).",
        "",
        f"Machine: {result['cpu']}, {os.cpu_count()} CPUs, affinity {th['affinity']}; "
        f"threads: OpenMP {'?' if omp is None else omp}, BLAS {'?' if blas is None else blas} "
        f"(env {env}); load average {result['loadavg']} at start, {result['loadavg_end']} at "
        "the end.",
        peak + copy,
        f"Python {platform.python_version()}, NumPy {result['numpy']}, graphc "
        f"{result['graphc']}, C flags: {result['cflags']}.",
    ]
    if th.get("pools"):
        lines.append("Thread pools (threadpoolctl): " + "; ".join(th["pools"]) + ".")
    return lines


def _profile(graph: str, prof: dict) -> list[str]:
    lines = [f"### Where the time goes: {graph}, batch {prof['batch']}", "",
             f"`Session.profile`, median of {prof['runs']} steps: step "
             f"{format_seconds(prof['step_us'] * 1e-6)} as `run` sees it, of which kernels "
             f"{format_seconds(prof['kernels_us'] * 1e-6)}; kernels under 2% are summed up.", "",
             "| kernel | graph nodes | median | share |", "|---|---|---:|---:|"]
    small = [r for r in prof["rows"] if r["share"] < 0.02]
    for r in prof["rows"]:
        if r["share"] >= 0.02:
            lines.append(f"| `{r['name']}` | {', '.join(r['nodes'])} | "
                         f"{format_seconds(r['us'] * 1e-6)} | {100 * r['share']:.1f}% |")
    if small:
        lines.append(f"| {len(small)} other kernels | | "
                     f"{format_seconds(sum(r['us'] for r in small) * 1e-6)} | "
                     f"{100 * sum(r['share'] for r in small):.1f}% |")
    return lines


def markdown(result: dict) -> str:
    """The report: the table, the machine and method, floors, fused kernels, profiles.

    Example::

        >>> text = markdown(bench(parse_args(["--quick", "--only", "sgemm"])))  # doctest: +SKIP
        >>> text.splitlines()[0]                                                  # doctest: +SKIP
        '## graphc bench: threads default'
    """
    lines = [f"## graphc bench: {result['tag']}", "", *_table(result["rows"]), "",
             *_footer(result)]
    if result["floors"]:
        lines += ["", "### Floors", "", "| floor | measured | status |", "|---|---:|---|"]
        for f in result["floors"]:
            status = {True: "met", False: "**MISSED**", None: "not measured"}[f["met"]]
            lines.append(f"| {f['floor']} | {f['measured']} | {status} |")
    if result["fusions"]:
        lines += ["", "### Fused kernels (more than one graph node)", ""]
        for graph, kernels in result["fusions"].items():
            lines.append(f"- {graph}: {len(kernels)} fused kernels")
            lines += [f"  - `{k['name']}`: {', '.join(k['nodes'])}" for k in kernels]
    for graph, prof in result.get("profiles", {}).items():
        lines += ["", *_profile(graph, prof)]
    return "\n".join(lines) + "\n"


#: The C backend's performance floors: (text, row name prefix, row field, test).
_FLOORS = (
    ("sgemm n=1024 >= 0.5x NumPy", "sgemm n=1024", "ratio", lambda v: v >= 0.5),
    ("MLP step, batch 64: faster than NumPy (> 1x)", "MLP 784-256-128-10 train step, batch 64",
     "ratio", lambda v: v > 1.0),
    ("cold compile of the MLP step < 1 s (kernel library built)", "MLP train-step compile, cold",
     "graphc_s", lambda v: v < 1.0),
    ("warm start of the MLP step < 0.3 s", "MLP train-step compile, warm", "graphc_s",
     lambda v: v < 0.3),
)


def floors(rows: list[dict]) -> list[dict]:
    """The performance floors of the C backend, each ``{floor, measured, met}``.

    ``met`` is None where the row it needs was not measured (see ``--only``).

    Example::

        >>> row = {"name": "sgemm n=1024 (x @ W)", "ratio": 0.8}
        >>> floors([row])[0]
        {'floor': 'sgemm n=1024 >= 0.5x NumPy', 'measured': '0.80x', 'met': True}
    """
    out = []
    for text, prefix, field, test in _FLOORS:
        r = next((r for r in rows if r["name"].startswith(prefix)), None)
        value = None if r is None else r[field]
        if value is None:
            measured = "-"
        else:
            measured = f"{value:.2f}x" if field == "ratio" else format_seconds(value)
        out.append({"floor": text, "measured": measured,
                    "met": None if value is None else bool(test(value))})
    return out


def plot(result: dict, path: str) -> str | None:
    """Write horizontal bars of NumPy / graphc per row (log scale, line at 1) to ``path``.

    Returns ``path``, or None when matplotlib is missing or no row has a ratio.

    Example::

        >>> plot({"rows": [{"name": "a", "ratio": 1.5}], "tag": "test"}, "r.png")  # doctest: +SKIP
        'r.png'
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return None
    rows = [r for r in result["rows"] if r["ratio"] is not None]
    if not rows:
        return None
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.5))
    names = [r.get("short", r["name"]) for r in rows][::-1]
    ratios = [r["ratio"] for r in rows][::-1]
    ax.barh(range(len(rows)), ratios, color=["tab:green" if v >= 1 else "tab:red" for v in ratios])
    ax.set_yticks(range(len(rows)), names)
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xscale("log")
    lo = math.floor(math.log2(min(ratios + [1.0]) * 0.9))
    hi = math.ceil(math.log2(max(ratios + [1.0]) * 1.6))
    ticks = [2.0**k for k in range(lo, hi + 1)]
    ax.set_xlim(ticks[0], ticks[-1])
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    for k, v in enumerate(ratios):
        ax.text(v, k, f" {v:.2f}x", va="center", fontsize=8)
    ax.set_xlabel("NumPy time / graphc time (> 1: graphc faster)")
    fig.suptitle(f"graphc (C backend) vs NumPy, {result['tag']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
