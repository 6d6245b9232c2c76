"""L1 versus L2 weight penalties: L1 makes weights exactly (nearly) zero, L2 only shrinks them.

The same digits MLP (64 -> dense(64, ReLU) -> dense(10)) is trained three
times with plain SGD + momentum: without a penalty, with an L1 penalty
``scale * sum |w|`` and with an L2 penalty ``scale * sum w**2`` on the two
weight matrices (``gc.regularizers.l1`` / ``l2``, added to the loss).

Why they differ: the L1 gradient ``scale * sign(w)`` has the same size
however small ``w`` is, so it pushes unhelpful weights all the way to zero
(where they then jitter within about ``lr * scale``); the L2 gradient
``2 * scale * w`` fades as ``w`` shrinks, so weights become small but stay
non-zero. The example counts the weights with ``|w| < threshold`` for each
model (L1 gives far more), prints the test accuracies, and writes histograms
of the weights to ``weights.png``.

Run: python examples/regularization.py [--backend auto] [--out DIR] [--epochs 30]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import graphc as gc


def load_data(seed: int = 0):
    """Stratified 80/20 train/test split of the digits, flattened and standardized."""
    x, y = gc.data.load_digits()
    x = x.reshape(len(x), -1)
    (x_tr, y_tr), _, (x_te, y_te) = gc.data.train_val_test_split(
        x, y, val=0, test=0.2, seed=seed, stratify=y)
    x_tr, x_te = gc.data.standardize(x_tr, x_te)
    return (x_tr, y_tr), (x_te, y_te)


def train(penalty: str | None, scale: float, data, args) -> dict:
    """Train one MLP with the given penalty ("l1", "l2" or None); return its weights."""
    (x_tr, y_tr), (x_te, y_te) = data
    with gc.Graph(seed=args.seed) as g:
        x = gc.placeholder((None, 64), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        hidden, out = gc.nn.Dense(64, activation="relu"), gc.nn.Dense(10)
        logits = out(hidden(x))
        data_loss = gc.losses.softmax_cross_entropy(logits, y)
        weights = [hidden.W, out.W]                   # biases are not penalized
        if penalty == "l1":
            loss = data_loss + gc.regularizers.l1(weights, scale)
        elif penalty == "l2":
            loss = data_loss + gc.regularizers.l2(weights, scale)
        else:
            loss = data_loss
        train_op = gc.optim.SGD(args.lr, momentum=0.9).minimize(loss)
    sess = gc.Session(g, backend=args.backend)
    gc.train.fit(sess, train_op, loss, (x, y), (x_tr, y_tr), epochs=args.epochs,
                 batch_size=args.batch_size, seed=args.seed, eval_train=False,
                 metrics=("loss",), progress=not args.no_progress)
    acc = gc.train.evaluate(sess, data_loss, (x, y), (x_te, y_te), logits=logits)["accuracy"]
    w = np.concatenate([sess.get_value(v).ravel() for v in weights])
    return {"weights": w, "test_accuracy": acc, "backend": sess.backend}


def plot_weights(results: dict[str, dict], threshold: float, path: str) -> str:
    """Histograms of the weights of each model, on a shared log-count axis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4 * len(results), 3.4), dpi=100)
    FigureCanvasAgg(fig)
    lim = max(float(np.abs(r["weights"]).max()) for r in results.values())
    for i, (name, r) in enumerate(results.items()):
        ax = fig.add_subplot(1, len(results), i + 1)
        ax.hist(r["weights"], bins=81, range=(-lim, lim), log=True, color="#4477aa")
        ax.set_title(f"{name}: {r['near_zero']} of {r['weights'].size} below {threshold:g}",
                     fontsize=10)
        ax.set_xlabel("weight value")
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto", help="numpy | c | auto")
    parser.add_argument("--out", default=os.path.join("graphc-examples", "regularization"),
                        help="folder for weights.png")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--l1", type=float, default=1e-3, help="L1 scale")
    parser.add_argument("--l2", type=float, default=1e-3, help="L2 scale")
    parser.add_argument("--threshold", type=float, default=1e-3,
                        help="a weight with |w| below this counts as zero")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no per-epoch progress")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    data = load_data(args.seed)
    results = {"no penalty": train(None, 0.0, data, args),
               f"L1 ({args.l1:g})": train("l1", args.l1, data, args),
               f"L2 ({args.l2:g})": train("l2", args.l2, data, args)}
    print(f"backend: {results['no penalty']['backend']}")
    print(f"{'model':<16}{'|w| < ' + format(args.threshold, 'g'):>14}{'median |w|':>12}"
          f"{'test accuracy':>15}")
    for name, r in results.items():
        r["near_zero"] = int((np.abs(r["weights"]) < args.threshold).sum())
        print(f"{name:<16}{r['near_zero']:>8} / {r['weights'].size:<5}"
              f"{np.median(np.abs(r['weights'])):>10.4f}{r['test_accuracy']:>14.1%}")
    os.makedirs(args.out, exist_ok=True)
    png = plot_weights(results, args.threshold, os.path.join(args.out, "weights.png"))
    l1, l2 = (results[k] for k in list(results)[1:])
    print(f"L1 zeroed {l1['near_zero']} weights, L2 {l2['near_zero']}; histograms: {png}; "
          f"{time.perf_counter() - t0:.1f}s")
    return {"l1_near_zero": l1["near_zero"], "l2_near_zero": l2["near_zero"],
            "none_near_zero": results["no penalty"]["near_zero"],
            "total_weights": int(l1["weights"].size),
            "l1_accuracy": l1["test_accuracy"], "l2_accuracy": l2["test_accuracy"],
            "none_accuracy": results["no penalty"]["test_accuracy"], "weights_png": png}


if __name__ == "__main__":
    main()
