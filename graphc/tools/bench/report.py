"""``graphc bench`` report: the markdown table, the floors of the C-backend issue, the ratio plot."""

from __future__ import annotations

import os
import platform


# =============================================================================== report
def _t(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"
    return f"{seconds:.2f} s"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def markdown(result: dict) -> str:
    """The report: configuration, the table, floors and fusions."""
    cfg, th = result["config"], result["threads"]
    lines = [f"## graphc bench: {result['tag']}", "",
             "| benchmark | graphc median | NumPy median | NumPy / graphc | graphc rate | "
             "NumPy rate | spread g / np | max rel diff | note |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        if r["numpy_s"] is None:
            lines.append(f"| {r['name']} | {_t(r['graphc_s'])} | - | - | - | - | - | - | "
                         f"{r['note']} |")
            continue
        note = "; ".join(x for x in (r["note"], r.get("note_extra", "")) if x)
        diff = "-" if r["max_rel_diff"] is None else f"{r['max_rel_diff']:.1e}"
        lines.append(
            f"| {r['name']} | {_t(r['graphc_s'])} | {_t(r['numpy_s'])} | **{r['ratio']:.2f}** | "
            f"{r['graphc_rate']:.1f} {r['unit']} | {r['numpy_rate']:.1f} {r['unit']} | "
            f"{_pct(r['spread'][0])} / {_pct(r['spread'][1])} | {diff} | {note} |")
    omp = th.get("omp_threads")
    lines += [
        "",
        f"Medians of {cfg['rounds']} alternating rounds (graphc, NumPy, graphc, ...) in one "
        f"process, each round >= {cfg['min_round']} s of calls after {cfg['settle']} s of "
        "sleep; NumPy / graphc > 1 means graphc is faster. graphc is timed through "
        "`Session.run` (feed checks, output copies included). 'spread' is the interquartile "
        "range of the rounds over their median. max rel diff: graphc vs NumPy output (sgemm, "
        "elementwise), or one step from the same weights: loss, gradients (momentum buffers) "
        "and new weights (MLP, CNN).",
        "",
        f"Machine: {result['cpu']}, {os.cpu_count()} CPUs, affinity {th['affinity']}; "
        f"threads: OpenMP {omp if omp is not None else '?'}, BLAS "
        f"{th.get('blas_threads') if th.get('blas_threads') is not None else '?'} "
        f"(env {', '.join(f'{k}={v}' for k, v in th['env'].items() if v) or 'unset'}); "
        f"load average {result['loadavg']} at start, {result['loadavg_end']} at the end.",
        (f"Nominal peak {cfg['peak_gflops']:.0f} GFLOP/s = {cfg['n_cores']} core(s) x "
         f"{cfg['ghz']:.2f} GHz (base clock) x {cfg['fpc']} FLOP/cycle ({cfg['fpc_note']}); "
         if cfg["peak_gflops"] else "Nominal peak unknown (no clock in /proc/cpuinfo); ")
        + f"copy bandwidth {cfg['copy_gbs']:.1f} GB/s (one-thread np.copyto of 16 MB, "
        "read + write).",
        f"Python {platform.python_version()}, NumPy {result['numpy']}, graphc "
        f"{result['graphc']}, C flags: {result['cflags']}.",
    ]
    if th.get("pools"):
        lines.append("Thread pools (threadpoolctl): " + "; ".join(th["pools"]) + ".")
    if result["floors"]:
        lines += ["", "### Floors", "", "| floor | measured | status |", "|---|---:|---|"]
        for f in result["floors"]:
            status = {True: "met", False: "**MISSED**", None: "not measured"}[f["met"]]
            lines.append(f"| {f['floor']} | {f['measured']} | {status} |")
    if result["fusions"]:
        lines += ["", "### Fused kernels (more than one graph node)", ""]
        for graph, kernels in result["fusions"].items():
            lines.append(f"- {graph}: {len(kernels)} fused kernels")
            for k in kernels:
                lines.append(f"  - `{k['name']}`: {', '.join(k['nodes'])}")
    for graph, prof in result.get("profiles", {}).items():
        lines += ["", f"### Where the time goes: {graph}, batch {prof['batch']}", "",
                  f"`Session.profile`, median of {prof['runs']} steps: step "
                  f"{_t(prof['step_us'] * 1e-6)} as `run` sees it, of which kernels "
                  f"{_t(prof['kernels_us'] * 1e-6)}; kernels under 2% are summed up.", "",
                  "| kernel | graph nodes | median | share |", "|---|---|---:|---:|"]
        small = [r for r in prof["rows"] if r["share"] < 0.02]
        for r in prof["rows"]:
            if r["share"] >= 0.02:
                lines.append(f"| `{r['name']}` | {', '.join(r['nodes'])} | {_t(r['us'] * 1e-6)} "
                             f"| {100 * r['share']:.1f}% |")
        if small:
            lines.append(f"| {len(small)} other kernels | | {_t(sum(r['us'] for r in small) * 1e-6)} "
                         f"| {100 * sum(r['share'] for r in small):.1f}% |")
    return "\n".join(lines) + "\n"


def _floors(rows: list[dict]) -> list[dict]:
    def find(prefix):
        return next((r for r in rows if r["name"].startswith(prefix)), None)

    out = []
    r = find("sgemm n=1024")
    out.append({"floor": "sgemm n=1024 >= 0.5x NumPy", "measured": f"{r['ratio']:.2f}x" if r
                else "-", "met": (r["ratio"] >= 0.5) if r else None})
    r = find("MLP 784-256-128-10 train step, batch 64")
    out.append({"floor": "MLP step, batch 64: faster than NumPy (> 1x)",
                "measured": f"{r['ratio']:.2f}x" if r else "-",
                "met": (r["ratio"] > 1.0) if r else None})
    r = find("MLP train-step compile, cold")
    out.append({"floor": "cold compile of the MLP step < 5 s", "measured": _t(r["graphc_s"]) if r
                else "-", "met": (r["graphc_s"] < 5.0) if r else None})
    r = find("MLP train-step compile, warm")
    out.append({"floor": "warm start of the MLP step < 0.3 s", "measured": _t(r["graphc_s"]) if r
                else "-", "met": (r["graphc_s"] < 0.3) if r else None})
    return out


def plot(result: dict, path: str) -> str | None:
    """Horizontal bars of NumPy / graphc per row (log scale, line at 1)."""
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
    import math

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
