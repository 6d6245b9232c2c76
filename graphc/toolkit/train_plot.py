"""How training shows itself: per-epoch progress (tqdm or plain lines) and history plots.

tqdm and matplotlib are optional (``pip install 'graphc[train]'``) and
imported lazily; plots use matplotlib's Agg canvas, never pyplot.

Example::

    from graphc.train import fit, plot_history
    plot_history(fit(...), "history.png")
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from ._args import bad_value

__all__ = ["EpochProgress", "plot_history"]


def _stderr_is_tty() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


def progress_mode(progress: bool | str) -> str | None:
    """``"bar"`` (tqdm), ``"lines"`` or None (silent) for fit's ``progress`` argument.

    ``True`` means a bar when stderr is a terminal (plain lines if tqdm is
    missing) and silence otherwise; ``"lines"`` always prints one line per epoch.

    Example::

        progress_mode(False)      # None
    """
    if progress == "lines":
        return "lines"
    if not progress or not _stderr_is_tty():
        return None
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return "lines"
    return "bar"


class EpochProgress:
    """The progress display of one epoch: a tqdm bar over batches, a line, or nothing.

    Example::

        bar = EpochProgress(True, epoch=0, epochs=10, total=len(loader))
        for ...:
            bar.step(running_loss)
        bar.close({"loss": 0.3, "val_loss": 0.4})
    """

    def __init__(self, progress: bool | str, epoch: int, epochs: int, total: int) -> None:
        self.mode = progress_mode(progress)
        self.title = f"epoch {epoch + 1}/{epochs}"
        self.t0 = time.perf_counter()
        self.bar = None
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=self.title, unit="batch", file=sys.stderr,
                            dynamic_ncols=True, leave=True)

    def step(self, running_loss: float) -> None:
        """One batch done; show the running mean loss."""
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{running_loss:.4g}", refresh=False)
            self.bar.update(1)

    def close(self, record: dict[str, float]) -> None:
        """The epoch's measurements: shown on the bar, or printed as one line."""
        summary = " - ".join(f"{k} {v:.4g}" for k, v in record.items())
        if self.bar is not None:
            self.bar.set_postfix_str(summary, refresh=True)
            self.bar.close()
        elif self.mode == "lines":
            print(f"{self.title} - {summary} ({time.perf_counter() - self.t0:.1f}s)", flush=True)


def plot_history(history: Any, path: str | os.PathLike, title: str | None = None) -> str:
    """Write loss (train vs validation) and, if measured, accuracy curves to a PNG.

    ``history`` is a :class:`graphc.train.History` or its ``.history`` dict.
    Uses matplotlib's Agg canvas directly (no pyplot, so the user's backend
    and open figures are untouched). Returns the path written.

    Example::

        plot_history(hist, "out/history.png", title="digits MLP")
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("plot_history needs matplotlib: pip install 'graphc[train]'") from exc
    h = getattr(history, "history", history)
    if not h.get("loss") and not h.get("val_loss"):
        raise bad_value("plot_history: the history has no loss values to plot")
    panels = [("loss", "loss")]
    if h.get("accuracy") or h.get("val_accuracy"):
        panels.append(("accuracy", "accuracy"))
    fig = Figure(figsize=(5.5 * len(panels), 4.0), dpi=100)
    FigureCanvasAgg(fig)
    best = getattr(history, "best_epoch", None)
    for i, (key, label) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for name, style in ((key, "-"), (f"val_{key}", "--")):
            values = h.get(name)
            if values:
                ax.plot(range(1, len(values) + 1), values, style, marker="o", markersize=3,
                        label="validation" if name.startswith("val_") else "train")
        if best is not None:
            ax.axvline(best + 1, color="grey", linestyle=":", linewidth=1, label="best epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(path, format="png")
    return path
