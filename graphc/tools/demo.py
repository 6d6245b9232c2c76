"""``graphc demo``: train the digits CNN, export its graph, benchmark it against NumPy.

The demo shows the whole pipeline in about a minute on a laptop:

1. trains a small CNN on the 8x8 digits bundled with scikit-learn with the
   fastest available backend (``--backend auto`` says which it picked), with
   a progress bar per epoch, and prints the test accuracy (about 98%);
2. writes into ``--out`` (default ``./graphc-demo``) the training graph as
   Graphviz DOT (``train_graph.dot``, plus ``train_graph.svg`` when Graphviz's
   ``dot`` is on PATH) and the loss/accuracy curves (``loss_curves.png``);
3. benchmarks graphc against NumPy in the same process, alternating the two
   round by round (A B A B ...) and reporting medians and their ratio, for
   (a) the CNN's forward pass over the test set and (b) one training step of a
   64-unit MLP (softmax cross-entropy, SGD) on a batch of 64 digits; the
   markdown table is printed and written to ``benchmark.md``.

Only light modules are imported at the top, so registering the command costs
nothing; NumPy, graphc's ops and matplotlib are imported when it runs.

Example::

    $ graphc demo --epochs 5 --out /tmp/demo
    >>> from graphc.tools.demo import demo, parse_args
    >>> summary = demo(parse_args(["--epochs", "2", "--quiet"]))      # doctest: +SKIP
    >>> summary["test_accuracy"], summary["files"]["dot"]              # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

__all__ = ["add_arguments", "demo", "parse_args", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``graphc demo``."""
    parser.add_argument("--backend", default="auto",
                        help="numpy | c | cuda | auto (default: the fastest available)")
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
    """Parse ``graphc demo`` options (for calling :func:`demo` from Python)."""
    parser = argparse.ArgumentParser(prog="graphc demo", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """Entry point of the ``demo`` subcommand: run the demo, return the exit status 0."""
    demo(args)
    return 0


# --------------------------------------------------------------------------- model


def _load_digits(seed: int):
    import graphc as gc

    x, y = gc.data.load_digits()
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = gc.data.train_val_test_split(
        x, y, val=0.1, test=0.2, seed=seed, stratify=y)
    x_tr, x_va, x_te = gc.data.standardize(x_tr, x_va, x_te)
    return (x_tr, y_tr), (x_va, y_va), (x_te, y_te)


def build_cnn(seed: int = 0) -> dict:
    """The digits CNN: conv(16)-ReLU-pool-conv(32)-ReLU-pool-dense(10), Adam with an lr feed."""
    import graphc as gc

    with gc.Graph(seed=seed) as g:
        x = gc.placeholder((None, 1, 8, 8), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        conv1 = gc.nn.Conv2D(16, 3, padding=1, activation="relu")
        conv2 = gc.nn.Conv2D(32, 3, padding=1, activation="relu")
        dense = gc.nn.Dense(10)
        net = gc.nn.Sequential([conv1, gc.nn.MaxPool2D(2), conv2, gc.nn.MaxPool2D(2),
                                gc.nn.Flatten(), dense])
        logits = net(x)
        loss = gc.losses.softmax_cross_entropy(logits, y)
        lr = gc.schedules.lr_placeholder()
        train = gc.optim.Adam(lr).minimize(loss)
    params = [conv1.W, conv1.b, conv2.W, conv2.b, dense.W, dense.b]
    return dict(graph=g, x=x, y=y, net=net, logits=logits, loss=loss, lr=lr, train=train,
                params=params)


def numpy_cnn_forward(params, x):
    """The same CNN's forward pass in NumPy (the conv and pooling ops' NumPy references)."""
    import numpy as np

    from ..ops.conv import conv2d_reference
    from ..ops.pool import max_pool2d_reference

    w1, b1, w2, b2, wd, bd = params
    h = np.maximum(conv2d_reference(x, w1, padding=1) + b1[None, :, None, None], 0)
    h = max_pool2d_reference(h, 2)
    h = np.maximum(conv2d_reference(h, w2, padding=1) + b2[None, :, None, None], 0)
    h = max_pool2d_reference(h, 2)
    return h.reshape(len(h), -1) @ wd + bd


# --------------------------------------------------------------------------- MLP step


def build_mlp(seed: int = 0, lr: float = 0.1) -> dict:
    """64 -> dense(64, ReLU) -> dense(10), mean softmax cross-entropy, one SGD step op."""
    import graphc as gc

    with gc.Graph(seed=seed) as g:
        x = gc.placeholder((None, 64), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        hidden, out = gc.nn.Dense(64, activation="relu"), gc.nn.Dense(10)
        loss = gc.losses.softmax_cross_entropy(out(hidden(x)), y)
        train = gc.optim.SGD(lr).minimize(loss)
    return dict(graph=g, x=x, y=y, train=train, lr=lr,
                params=[hidden.W, hidden.b, out.W, out.b])


def numpy_mlp_step(params, x, y, lr: float) -> None:
    """One SGD step of the same MLP, written by hand in NumPy; updates ``params`` in place."""
    import numpy as np

    w1, b1, w2, b2 = params
    n = len(x)
    pre = x @ w1 + b1
    h = np.maximum(pre, 0)
    z = h @ w2 + b2
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(n), y] -= 1.0                  # d(mean CE)/dz = (softmax - onehot) / n
    p /= n
    gh = p @ w2.T
    gh *= pre > 0
    w2 -= lr * (h.T @ p)
    b2 -= lr * p.sum(axis=0)
    w1 -= lr * (x.T @ gh)
    b1 -= lr * gh.sum(axis=0)


# --------------------------------------------------------------------------- timing


def alternate(fn_a, fn_b, rounds: int) -> tuple[float, float]:
    """Median seconds per call of ``fn_a`` and ``fn_b``, timed in alternating rounds A B A B
    (``graphc bench``'s method: a short sleep before each round lets the other side's
    thread pool stop spinning)."""
    import statistics

    from .bench.timing import alternate as alternate_rounds

    ta, tb = alternate_rounds(fn_a, fn_b, max(1, rounds), settle=0.1, min_s=0.02)
    return statistics.median(ta), statistics.median(tb)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms" if seconds < 0.01 else f"{seconds * 1e3:.1f} ms"


def benchmark(sess, cnn: dict, x_test, x_mlp, y_mlp, rounds: int, backend: str,
              seed: int = 0) -> dict:
    """Run both comparisons; return rows and the markdown table."""
    import numpy as np

    import graphc as gc

    rows = []
    # (a) CNN forward pass over the test set, with the trained weights.
    params = [sess.get_value(p) for p in cnn["params"]]
    feed = {cnn["x"]: x_test}
    ours = sess.run(cnn["logits"], feed)
    ref = numpy_cnn_forward(params, x_test)
    diff_a = float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-12))
    t_g, t_n = alternate(lambda: sess.run(cnn["logits"], feed),
                         lambda: numpy_cnn_forward(params, x_test), rounds)
    rows.append({"name": f"digits-CNN forward pass, {len(x_test)} test images",
                 "graphc_s": t_g, "numpy_s": t_n, "max_rel_diff": diff_a})

    # (b) one MLP training step on a batch of 64, from the same initial weights.
    mlp = build_mlp(seed)
    msess = gc.Session(mlp["graph"], backend=backend)
    feed_b = {mlp["x"]: x_mlp, mlp["y"]: y_mlp}
    np_params = [msess.get_value(p) for p in mlp["params"]]
    msess.run(mlp["train"], feed_b)
    numpy_mlp_step(np_params, x_mlp, y_mlp, mlp["lr"])
    diff_b = max(float(np.max(np.abs(msess.get_value(p) - q)) / max(np.max(np.abs(q)), 1e-12))
                 for p, q in zip(mlp["params"], np_params))
    t_g, t_n = alternate(lambda: msess.run(mlp["train"], feed_b),
                         lambda: numpy_mlp_step(np_params, x_mlp, y_mlp, mlp["lr"]), rounds)
    rows.append({"name": f"MLP training step (64-64-10, softmax CE, SGD), batch {len(x_mlp)}",
                 "graphc_s": t_g, "numpy_s": t_n, "max_rel_diff": diff_b})

    lines = [f"| benchmark | graphc ({sess.backend}) | NumPy | NumPy / graphc | max rel. diff |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        r["ratio"] = r["numpy_s"] / r["graphc_s"]
        lines.append(f"| {r['name']} | {_ms(r['graphc_s'])} | {_ms(r['numpy_s'])} | "
                     f"{r['ratio']:.2f}x | {r['max_rel_diff']:.1e} |")
    threads = os.environ.get("OMP_NUM_THREADS") or os.environ.get("OPENBLAS_NUM_THREADS") \
        or "default"
    lines += ["", f"Medians of {rounds} alternating rounds (graphc, NumPy, graphc, ...), "
              f"in one process; NumPy / graphc > 1 means graphc is faster. "
              f"{platform.machine()}, {os.cpu_count()} CPUs, BLAS threads: {threads}, "
              f"Python {platform.python_version()}, NumPy {np.__version__}."]
    return {"rows": rows, "markdown": "\n".join(lines) + "\n"}


# --------------------------------------------------------------------------- outputs


def write_svg(dot_path: str, svg_path: str) -> str | None:
    """Render DOT to SVG with Graphviz's ``dot``; None (and a message) when it is missing."""
    from ..env import find_dot

    exe = find_dot()
    if exe is None:
        print("Graphviz 'dot' is not on PATH: skipped the SVG (the .dot file opens in any "
              "Graphviz viewer; install graphviz to get the SVG)")
        return None
    proc = subprocess.run([exe, "-Tsvg", dot_path, "-o", svg_path], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        print(f"dot failed (exit {proc.returncode}); no SVG: {proc.stderr.strip()[:300]}")
        return None
    return svg_path


def _progress(args) -> bool | str:
    if args.quiet or args.no_progress:
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return True if isatty and isatty() else "lines"   # bars on a terminal, lines in logs


def demo(args: argparse.Namespace) -> dict:
    """Run the demo with parsed options; print as it goes and return a summary dict.

    The summary holds ``backend``, ``backend_choice``, ``test_accuracy``,
    ``epochs``, ``train_seconds``, ``benchmark`` (rows with ``graphc_s``,
    ``numpy_s``, ``ratio``), ``files`` (paths written) and ``seconds``.
    """
    import numpy as np

    import graphc as gc

    t0 = time.perf_counter()
    say = (lambda *a, **k: None) if args.quiet else print
    os.makedirs(args.out, exist_ok=True)
    train, val, test = _load_digits(args.seed)

    cnn = build_cnn(args.seed)
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

    files = {"dot": os.path.join(args.out, "train_graph.dot")}
    gc.to_dot(cnn["graph"], path=files["dot"])
    svg = write_svg(files["dot"], os.path.join(args.out, "train_graph.svg"))
    if svg:
        files["svg"] = svg
    files["png"] = gc.train.plot_history(hist, os.path.join(args.out, "loss_curves.png"),
                                         title=f"digits CNN ({sess.backend} backend)")

    say(f"benchmarking graphc ({sess.backend}) against NumPy, {args.rounds} rounds ...")
    flat = test[0].reshape(len(test[0]), -1)[:64]
    bench = benchmark(sess, cnn, test[0], np.ascontiguousarray(flat), test[1][:64],
                      args.rounds, args.backend, args.seed)
    files["benchmark"] = os.path.join(args.out, "benchmark.md")
    with open(files["benchmark"], "w") as f:
        f.write(f"# graphc demo benchmark\n\n{bench['markdown']}")
    print()
    print(bench["markdown"])
    seconds = time.perf_counter() - t0
    print("wrote " + ", ".join(files.values()) + f" in {seconds:.1f}s")
    return {"backend": sess.backend, "backend_choice": sess.backend_choice,
            "test_accuracy": accuracy, "epochs": hist.epochs, "train_seconds": train_seconds,
            "history": hist.history, "benchmark": bench["rows"], "files": files,
            "seconds": seconds}
