"""Overfitting: a too-large model on too little data, then dropout and early stopping.

Only 150 digit images are used for training (300 more for validation). A
network far larger than the data calls for,

    64 -> dense(512, ReLU) -> dense(512, ReLU) -> dense(10)     (~300k weights),

is trained twice with Adam for the same number of epochs:

- **plain**: it memorizes the training set (training loss -> 0) while the
  validation loss, after a first dip, climbs again: the gap between the two
  curves is overfitting;
- **regularized**: dropout (rate 0.5) after each hidden layer, plus early
  stopping that watches the validation loss, stops after ``patience`` epochs
  without improvement and restores the weights of the best epoch.

The example prints, for both models, the training and validation loss of
the final weights and their gap (validation minus training loss; smaller is
better), and writes the train/validation curves to ``overfitting.png``.

Run: python examples/overfitting.py [--backend auto] [--out DIR] [--epochs 60]
"""

from __future__ import annotations

import argparse
import os
import time

import graphc as gc


def load_data(n_train: int, n_val: int, seed: int = 0):
    """A small stratified training set and a validation set, flattened and standardized."""
    x, y = gc.data.load_digits()
    x = x.reshape(len(x), -1)
    (x_tr, y_tr), (x_va, y_va), _ = gc.data.train_val_test_split(
        x, y, val=n_val, test=len(y) - n_train - n_val, seed=seed, stratify=y)
    x_tr, x_va = gc.data.standardize(x_tr, x_va)
    return (x_tr, y_tr), (x_va, y_va)


def train(regularized: bool, train_data, val_data, args) -> dict:
    """Train the large MLP, plain or with dropout + early stopping."""
    rate = args.dropout if regularized else 0.0
    with gc.Graph(seed=args.seed) as g:
        x = gc.placeholder((None, 64), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        net = gc.nn.Sequential([
            gc.nn.Dense(args.hidden, activation="relu"), gc.nn.Dropout(rate),
            gc.nn.Dense(args.hidden, activation="relu"), gc.nn.Dropout(rate),
            gc.nn.Dense(10),
        ])
        logits = net(x)
        loss = gc.losses.softmax_cross_entropy(logits, y)
        train_op = gc.optim.Adam(args.lr).minimize(loss)
    sess = gc.Session(g, backend=args.backend)
    stopper = gc.train.EarlyStopping(args.patience, monitor="val_loss", restore_best=True) \
        if regularized else None
    hist = gc.train.fit(sess, train_op, loss, (x, y), train_data, epochs=args.epochs,
                        batch_size=args.batch_size, validation_data=val_data, logits=logits,
                        early_stopping=stopper, seed=args.seed, progress=not args.no_progress)
    # Scores of the final weights (after early stopping restored the best ones).
    tr = gc.train.evaluate(sess, loss, (x, y), train_data, logits=logits)
    va = gc.train.evaluate(sess, loss, (x, y), val_data, logits=logits)
    return {"history": hist, "train_loss": tr["loss"], "val_loss": va["loss"],
            "train_accuracy": tr["accuracy"], "val_accuracy": va["accuracy"],
            "gap": va["loss"] - tr["loss"], "epochs": hist.epochs,
            "stopped_epoch": hist.stopped_epoch, "best_epoch": hist.best_epoch,
            "parameters": gc.nn.count_parameters(net), "backend": sess.backend}


def plot_curves(results: dict[str, dict], path: str) -> str:
    """One panel per model: training and validation loss per epoch (shared y axis)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(results), sharey=True)
    for ax, (name, r) in zip(axes, results.items()):
        h = r["history"].history
        epochs = range(1, len(h["loss"]) + 1)
        ax.plot(epochs, h["loss"], label="train")
        ax.plot(epochs, h["val_loss"], "--", label="validation")
        if r["stopped_epoch"] is not None:
            ax.axvline(r["best_epoch"] + 1, color="grey", linestyle=":",
                       label=f"best epoch ({r['best_epoch'] + 1}, restored)")
        ax.set_yscale("log")
        ax.set_title(f"{name}: final gap {r['gap']:.3f}")
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("loss")
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto", help="numpy | c | auto")
    parser.add_argument("--out", default=os.path.join("graphc-examples", "overfitting"),
                        help="folder for overfitting.png")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--train-size", type=int, default=150)
    parser.add_argument("--val-size", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--hidden", type=int, default=256, help="units per hidden layer")
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no per-epoch progress")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    train_data, val_data = load_data(args.train_size, args.val_size, args.seed)
    results = {"plain": train(False, train_data, val_data, args),
               "dropout + early stopping": train(True, train_data, val_data, args)}
    plain, reg = results.values()
    print(f"backend: {plain['backend']}; {plain['parameters']} parameters, "
          f"{len(train_data[1])} training images")
    print(f"{'model':<26}{'epochs':>7}{'train loss':>12}{'val loss':>10}{'gap':>8}"
          f"{'val accuracy':>14}")
    for name, r in results.items():
        print(f"{name:<26}{r['epochs']:>7}{r['train_loss']:>12.4f}{r['val_loss']:>10.4f}"
              f"{r['gap']:>8.3f}{r['val_accuracy']:>14.1%}")
    if reg["stopped_epoch"] is not None:
        print(f"early stopping ended at epoch {reg['stopped_epoch'] + 1} and restored epoch "
              f"{reg['best_epoch'] + 1}")
    os.makedirs(args.out, exist_ok=True)
    png = plot_curves(results, os.path.join(args.out, "overfitting.png"))
    print(f"curves: {png}; {time.perf_counter() - t0:.1f}s")
    return {"plain": {k: v for k, v in plain.items() if k != "history"},
            "regularized": {k: v for k, v in reg.items() if k != "history"},
            "plot_png": png}


if __name__ == "__main__":
    main()
