"""``graphc demo``: train the digits CNN, export its graph, benchmark it against NumPy.

The demo shows the whole pipeline in about a minute on a laptop:

1. trains a small CNN on the 8x8 digits bundled with scikit-learn with the
   fastest available backend (``--backend auto`` says which it picked), with
   a progress bar per epoch, and prints the test accuracy (about 98%);
2. writes into ``--out`` (default ``./graphc-demo``) the training graph as
   Graphviz DOT with every layer collapsed to one box (``train_graph.dot``; it fits
   a 1920x1080 screen), the full-detail graph (``train_graph_full.dot``), and when
   Graphviz's ``dot`` is on PATH the collapsed picture as ``train_graph.svg`` and
   ``train_graph.png`` and the interactive view of the compiled training step
   (``train_step.html``: pan, zoom, search, each node's kernel and its C source);
   and the loss/accuracy curves (``loss_curves.png``);
3. benchmarks graphc against NumPy with ``graphc bench``'s method (same process,
   alternating rounds A B A B ..., medians and their ratio) for (a) the CNN's
   forward pass over the test set and (b) one training step of a 64-unit MLP
   (softmax cross-entropy, SGD) on a batch of 64 digits; the markdown table is
   printed and written to ``benchmark.md``, and everything the demo measured to
   ``summary.json``.

The CNN, the MLP and their NumPy twins are :mod:`graphc.tools.bench`'s models.

Example::

    $ graphc demo --epochs 5 --out /tmp/demo
    >>> from graphc.tools.demo import demo, parse_args
    >>> summary = demo(parse_args(["--epochs", "2", "--quiet"]))      # doctest: +SKIP
    >>> summary["test_accuracy"], summary["files"]["dot"]              # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import graphc as gc
from graphc.env import find_dot
from graphc.ir.html import run_dot

from .bench import (
    NumpyCNN,
    NumpyMLP,
    alternate_medians,
    build_cnn,
    build_mlp,
    compare_step,
    format_seconds,
    init_mlp,
    max_rel_diff,
)

__all__ = ["add_arguments", "benchmark", "build_digits_cnn", "demo", "parse_args", "run",
           "write_pictures", "write_svg"]

#: how the demo draws its training graph: every layer one box, Adam one box per variable
PICTURE = {"collapse": True, "rankdir": "TB"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``graphc demo`` to ``parser``.

    Example::

        >>> p = argparse.ArgumentParser()
        >>> add_arguments(p)
        >>> p.parse_args(["--epochs", "3"]).epochs
        3
    """
    parser.add_argument("--backend", default="auto",
                        help="numpy | c | auto (default: the fastest available)")
    parser.add_argument("--out", default="graphc-demo",
                        help="output folder (default: ./graphc-demo)")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=7,
                        help="alternating benchmark rounds per comparison (default 7)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars and no model summary; results only")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``graphc demo`` options (for calling :func:`demo` from Python).

    Example::

        >>> parse_args(["--backend", "numpy"]).backend
        'numpy'
    """
    parser = argparse.ArgumentParser(prog="graphc demo", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``graphc demo``: run the demo, return the exit status 0.

    Example::

        >>> run(parse_args(["--epochs", "2", "--quiet"]))        # doctest: +SKIP
        0
    """
    demo(args)
    return 0


# =============================================================================== model
def _load_digits(seed: int) -> tuple:
    x, y = gc.data.load_digits()
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = gc.data.train_val_test_split(
        x, y, val=0.1, test=0.2, seed=seed, stratify=y)
    x_tr, x_va, x_te = gc.data.standardize(x_tr, x_va, x_te)
    return (x_tr, y_tr), (x_va, y_va), (x_te, y_te)


def build_digits_cnn(seed: int = 0) -> dict:
    """The digits CNN: 1x8x8 -> conv 16 -> pool -> conv 32 -> pool -> dense 10, Adam.

    :func:`graphc.tools.bench.build_cnn` from gc.nn's default initial weights, with Adam
    on an lr placeholder (``"lr"``, fed by the schedule); the dict has its keys plus ``lr``.

    Example::

        >>> cnn = build_digits_cnn(seed=0)
        >>> cnn["x"].shape, cnn["lr"].name
        ((None, 1, 8, 8), 'lr')
    """
    cnn = build_cnn(_layer_default_weights(seed),
                    lambda: gc.optim.Adam(gc.schedules.lr_placeholder()))
    cnn["lr"] = cnn["optimizer"].lr
    return cnn


def _layer_default_weights(seed: int) -> list[np.ndarray]:
    """The initial weights gc.nn's layers draw in a graph of this seed (Glorot filters and
    dense weights, zero biases): what a user writing this CNN with gc.nn gets."""
    with gc.Graph(seed=seed):
        x = gc.placeholder((None, 1, 8, 8))
        layers = [gc.nn.Conv2D(16, 3, padding=1), gc.nn.Conv2D(32, 3, padding=1), gc.nn.Dense(10)]
        gc.nn.Sequential([layers[0], gc.nn.MaxPool2D(2), layers[1], gc.nn.MaxPool2D(2),
                          gc.nn.Flatten(), layers[2]])(x)
    return [np.array(v.value) for layer in layers for v in (layer.W, layer.b)]


# =============================================================================== benchmark
def _table(rows: list[dict], backend: str, rounds: int) -> str:
    lines = [f"| benchmark | graphc ({backend}) | NumPy | NumPy / graphc | max rel. diff |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['name']} | {format_seconds(r['graphc_s'])} | "
                     f"{format_seconds(r['numpy_s'])} | {r['ratio']:.2f}x | "
                     f"{r['max_rel_diff']:.1e} |")
    threads = os.environ.get("OMP_NUM_THREADS") or os.environ.get("OPENBLAS_NUM_THREADS") \
        or "default"
    lines += ["", f"Medians of {rounds} alternating rounds (graphc, NumPy, graphc, ...), "
              f"in one process; NumPy / graphc > 1 means graphc is faster. "
              f"{platform.machine()}, {os.cpu_count()} CPUs, BLAS threads: {threads}, "
              f"Python {platform.python_version()}, NumPy {np.__version__}."]
    return "\n".join(lines) + "\n"


#: seconds of sleep before each timed round of the demo's benchmark
SETTLE = 0.25


def benchmark(sess: gc.Session, cnn: dict, x_test: np.ndarray, batch: tuple, rounds: int,
              seed: int = 0) -> dict:
    """Compare graphc with NumPy: the CNN's forward pass, one MLP training step.

    (a) ``cnn``'s logits over ``x_test`` with the weights ``sess`` holds; (b) one SGD
    step of a 64-64-10 MLP on ``batch = (x, y)``, on a new session of ``sess``'s
    backend. Returns ``rows`` (``name``, ``graphc_s``, ``numpy_s``, ``ratio``,
    ``max_rel_diff``) and ``markdown``.

    Example::

        >>> result = benchmark(sess, cnn, x_test, (x64, y64), rounds=3)   # doctest: +SKIP
        >>> print(result["markdown"])                                      # doctest: +SKIP
    """
    twin = NumpyCNN([sess.get_value(p) for p in cnn["params"]])
    feed = {cnn["x"]: x_test}
    diff = max_rel_diff(sess.run(cnn["logits"], feed), twin.forward(x_test))
    # rounds of 0.1 s after 0.25 s of sleep: OpenBLAS's worker threads keep spinning for
    # about 0.1 s after NumPy's last matmul and would take the cores from graphc's
    t_g, t_n = alternate_medians(lambda: sess.run(cnn["logits"], feed),
                                 lambda: twin.forward(x_test), rounds, settle=SETTLE, min_s=0.1)
    rows = [{"name": f"digits-CNN forward pass, {len(x_test)} test images",
             "graphc_s": t_g, "numpy_s": t_n, "max_rel_diff": diff}]

    x, y = batch
    init = init_mlp((x.shape[1], 64, 10), seed=seed)
    mlp = build_mlp(init, lr=0.1, momentum=0.0)
    msess = gc.Session(mlp["graph"], backend=sess.backend)
    step = NumpyMLP(init, len(x), lr=0.1, momentum=0.0)
    diff = compare_step(msess, mlp, step, x, y)
    feed_b = {mlp["x"]: x, mlp["y"]: y}
    t_g, t_n = alternate_medians(lambda: msess.run(mlp["train"], feed_b),
                                 lambda: step.step(x, y), rounds, settle=SETTLE, min_s=0.1)
    rows.append({"name": f"MLP training step (64-64-10, softmax CE, SGD), batch {len(x)}",
                 "graphc_s": t_g, "numpy_s": t_n, "max_rel_diff": diff})
    for r in rows:
        r["ratio"] = r["numpy_s"] / r["graphc_s"]
    return {"rows": rows, "markdown": _table(rows, sess.backend, rounds)}


# =============================================================================== outputs
def write_svg(dot_path: str, svg_path: str, fmt: str = "svg") -> str | None:
    """Render DOT to SVG (or ``fmt``: "png") with Graphviz's ``dot``; None (and a message)
    when it is missing.

    Example::

        >>> write_svg("train_graph.dot", "train_graph.svg")     # doctest: +SKIP
        'train_graph.svg'
    """
    if find_dot() is None:
        print(f"Graphviz 'dot' is not on PATH: skipped the {fmt.upper()} (the .dot file opens "
              "in any Graphviz viewer; install graphviz to get the pictures)")
        return None
    try:
        picture = run_dot(Path(dot_path).read_text(encoding="utf-8"), fmt, what="dot")
    except gc.GraphcError as exc:
        print(f"no {fmt.upper()}: {exc}")
        return None
    Path(svg_path).write_bytes(picture)
    return svg_path


def write_pictures(cnn: dict, out: str, compiled=None) -> dict[str, str]:
    """Write the training graph's pictures into folder ``out``; return {kind: path}.

    ``train_graph.dot`` (collapsed: one box per layer, its gradient beside it, one
    Adam box per variable), ``train_graph_full.dot`` (every node) and, when Graphviz's
    ``dot`` is on PATH, ``train_graph.svg``, ``train_graph.png`` and ``train_step.html``
    (the interactive view of ``compiled``, the compiled training step, or of the graph).

    Example::

        >>> files = write_pictures(build_digits_cnn(), "/tmp/demo")    # doctest: +SKIP
        >>> sorted(files)                                               # doctest: +SKIP
        ['dot', 'dot_full', 'graph_png', 'html', 'svg']
    """
    files = {"dot": os.path.join(out, "train_graph.dot"),
             "dot_full": os.path.join(out, "train_graph_full.dot")}
    gc.to_dot(cnn["graph"], path=files["dot"], **PICTURE)
    gc.to_dot(cnn["graph"], path=files["dot_full"])
    for key, fmt in (("svg", "svg"), ("graph_png", "png")):
        if write_svg(files["dot"], os.path.join(out, f"train_graph.{fmt}"), fmt):
            files[key] = os.path.join(out, f"train_graph.{fmt}")
        else:
            return files
    files["html"] = str(gc.to_html(compiled if compiled is not None else cnn["graph"],
                                   os.path.join(out, "train_step.html"),
                                   title="graphc demo: the digits CNN's training step", **PICTURE))
    return files


def _progress(args: argparse.Namespace) -> bool | str:
    if args.quiet or args.no_progress:
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return True if isatty and isatty() else "lines"   # bars on a terminal, lines in logs


def demo(args: argparse.Namespace) -> dict:
    """Run the demo with parsed options; print as it goes and return a summary dict.

    The summary (also written to ``summary.json``) holds ``backend``,
    ``backend_choice``, ``test_accuracy``, ``epochs``, ``train_seconds``, ``history``,
    ``benchmark`` (the rows of :func:`benchmark`), ``files`` (paths written) and
    ``seconds``.

    Example::

        >>> summary = demo(parse_args(["--epochs", "5", "--out", "/tmp/demo"]))   # doctest: +SKIP
        >>> summary["test_accuracy"] > 0.95                                        # doctest: +SKIP
        True
    """
    t0 = time.perf_counter()
    say = (lambda *a, **k: None) if args.quiet else print
    os.makedirs(args.out, exist_ok=True)
    train, val, test = _load_digits(args.seed)

    cnn = build_digits_cnn(args.seed)
    sess = gc.Session(cnn["graph"], backend=args.backend)
    print(f"backend: {sess.backend} ({sess.backend_choice})")
    say(f"digits: {len(train[1])} training, {len(val[1])} validation, {len(test[1])} test "
        "images (8x8, 10 classes)")
    say(cnn["net"].summary())

    schedule = gc.schedules.cosine_decay(3e-3, args.epochs)
    t = time.perf_counter()
    hist = gc.train.fit(sess, cnn["train"], cnn["loss"], (cnn["x"], cnn["y"]), train,
                        epochs=args.epochs, batch_size=args.batch_size, validation_data=val,
                        logits=cnn["logits"], lr=(cnn["lr"], schedule), seed=args.seed,
                        eval_train=False, progress=_progress(args))
    train_seconds = time.perf_counter() - t
    logits = gc.train.predict(sess, cnn["logits"], cnn["x"], test[0], 512)
    accuracy = float(gc.train.accuracy(logits, test[1]).mean())
    print(f"trained {hist.epochs} epochs in {train_seconds:.1f}s; "
          f"test accuracy {accuracy:.2%} ({len(test[1])} images)")

    files = write_pictures(cnn, args.out, sess.compile([cnn["loss"], cnn["train"]]))
    files["png"] = gc.train.plot_history(hist, os.path.join(args.out, "loss_curves.png"),
                                         title=f"digits CNN ({sess.backend} backend)")

    say(f"benchmarking graphc ({sess.backend}) against NumPy, {args.rounds} rounds ...")
    batch = (np.ascontiguousarray(test[0].reshape(len(test[0]), -1)[:64]), test[1][:64])
    bench = benchmark(sess, cnn, test[0], batch, args.rounds, args.seed)
    files["benchmark"] = os.path.join(args.out, "benchmark.md")
    with open(files["benchmark"], "w") as f:
        f.write(f"# graphc demo benchmark\n\n{bench['markdown']}")
    print()
    print(bench["markdown"])
    files["summary"] = os.path.join(args.out, "summary.json")
    summary = {"backend": sess.backend, "backend_choice": sess.backend_choice,
               "test_accuracy": accuracy, "epochs": hist.epochs, "train_seconds": train_seconds,
               "history": hist.history, "benchmark": bench["rows"], "files": files,
               "seconds": time.perf_counter() - t0}
    with open(files["summary"], "w") as f:
        json.dump(summary, f, indent=1, default=float)
    print("wrote " + ", ".join(files.values()) + f" in {summary['seconds']:.1f}s")
    return summary
