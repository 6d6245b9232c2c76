"""SGD, momentum, Nesterov momentum and Adam on the same problem, with the same budget.

Every optimizer trains the same digits MLP (64 -> dense(64, ReLU) -> dense(10))
from the same initial weights (same graph seed) on the same minibatches in
the same order, for the same number of steps. Only the update rule differs:

    SGD        p -= lr g
    momentum   buf = 0.9 buf + g;  p -= lr buf
    Nesterov   buf = 0.9 buf + g;  p -= lr (g + 0.9 buf)
    Adam       per-weight steps lr m_hat / (sqrt(v_hat) + eps)

The loss of every minibatch is recorded; ``optimizers.png`` shows the curves
(smoothed, log scale). At this budget momentum, Nesterov and Adam end well
below plain SGD, which crawls along with its small steps. The example prints
each optimizer's final training loss (over the whole training set) and test
accuracy.

Run: python examples/optimizers.py [--backend auto] [--out DIR] [--epochs 8]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import graphc as gc

OPTIMIZERS = {
    "SGD": lambda lr: gc.optim.SGD(lr),
    "momentum": lambda lr: gc.optim.SGD(lr, momentum=0.9),
    "Nesterov": lambda lr: gc.optim.SGD(lr, momentum=0.9, nesterov=True),
    "Adam": lambda lr: gc.optim.Adam(lr / 10),   # Adam's steps are ~lr each: use a smaller one
}


def load_data(seed: int = 0):
    """Stratified 80/20 train/test split of the digits, flattened and standardized."""
    x, y = gc.data.load_digits()
    x = x.reshape(len(x), -1)
    (x_tr, y_tr), _, (x_te, y_te) = gc.data.train_val_test_split(
        x, y, val=0, test=0.2, seed=seed, stratify=y)
    x_tr, x_te = gc.data.standardize(x_tr, x_te)
    return (x_tr, y_tr), (x_te, y_te)


def train(name: str, data, args) -> dict:
    """Train the MLP with one optimizer; return its per-step losses and final scores."""
    (x_tr, y_tr), (x_te, y_te) = data
    with gc.Graph(seed=args.seed) as g:               # same seed: same initial weights
        x = gc.placeholder((None, 64), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        net = gc.nn.Sequential([gc.nn.Dense(64, activation="relu"), gc.nn.Dense(10)])
        logits = net(x)
        loss = gc.losses.softmax_cross_entropy(logits, y)
        train_op = OPTIMIZERS[name](args.lr).minimize(loss)
    sess = gc.Session(g, backend=args.backend)
    losses = []
    loader = gc.data.batches((x_tr, y_tr), args.batch_size, seed=args.seed)  # same order
    for _ in range(args.epochs):
        for xb, yb in loader:
            losses.append(float(sess.run([loss, train_op], {x: xb, y: yb})[0]))
    final = gc.train.evaluate(sess, loss, (x, y), (x_tr, y_tr))["loss"]
    acc = gc.train.evaluate(sess, loss, (x, y), (x_te, y_te), logits=logits)["accuracy"]
    return {"losses": np.array(losses), "final_loss": final, "test_accuracy": acc,
            "backend": sess.backend}


def smooth(values: np.ndarray, beta: float = 0.9) -> np.ndarray:
    """Exponential moving average with bias correction (as TensorBoard draws it)."""
    out, avg = np.empty_like(values), 0.0
    for i, v in enumerate(values):
        avg = beta * avg + (1 - beta) * v
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def plot_curves(results: dict[str, dict], steps_per_epoch: int, path: str) -> str:
    """All loss curves on one log-scale plot against the step number."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    styles = ["-", "-", "--", "-"]       # momentum and Nesterov nearly coincide here
    for (name, r), style in zip(results.items(), styles):
        steps = np.arange(1, len(r["losses"]) + 1)
        ax.plot(steps, r["losses"], alpha=0.15, linewidth=0.8)
        ax.plot(steps, smooth(r["losses"]), style, color=ax.lines[-1].get_color(),
                label=f"{name} (final {r['final_loss']:.3f})")
    ax.set_yscale("log")
    ax.set_xlabel(f"step ({steps_per_epoch} per epoch)")
    ax.set_ylabel("minibatch loss (smoothed)")
    ax.set_title("same model, same data, same budget")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto", help="numpy | c | auto")
    parser.add_argument("--out", default=os.path.join("graphc-examples", "optimizers"),
                        help="folder for optimizers.png")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.01,
                        help="learning rate of the SGD variants (Adam uses lr / 10)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    data = load_data(args.seed)
    results = {name: train(name, data, args) for name in OPTIMIZERS}
    print(f"backend: {results['SGD']['backend']}; {len(results['SGD']['losses'])} steps each")
    print(f"{'optimizer':<10}{'final train loss':>18}{'test accuracy':>15}")
    for name, r in results.items():
        print(f"{name:<10}{r['final_loss']:>18.4f}{r['test_accuracy']:>15.1%}")
    os.makedirs(args.out, exist_ok=True)
    steps_per_epoch = len(gc.data.batches(data[0], args.batch_size))
    png = plot_curves(results, steps_per_epoch, os.path.join(args.out, "optimizers.png"))
    print(f"loss curves: {png}; {time.perf_counter() - t0:.1f}s")
    return {"final_loss": {k: r["final_loss"] for k, r in results.items()},
            "test_accuracy": {k: r["test_accuracy"] for k, r in results.items()},
            "losses": {k: r["losses"] for k, r in results.items()}, "plot_png": png}


if __name__ == "__main__":
    main()
