"""A multilayer perceptron on the 8x8 handwritten digits (10 classes).

The digits bundled with scikit-learn (``gc.data.load_digits``, 1797 images)
are split 70/10/20 into training, validation and test sets (stratified by
class), standardized with the training set's statistics, flattened to 64
features and classified by

    64 -> dense(128, ReLU) -> dropout(0.2) -> dense(10) -> softmax

trained with Adam on the softmax cross-entropy by ``gc.train.fit``. The
example prints the test accuracy (about 97%), the number of parameters and the
training time, and writes the loss/accuracy curves to ``history.png``.

Run: python examples/digits_mlp.py [--backend auto] [--out DIR] [--epochs 30]
"""

from __future__ import annotations

import argparse
import os
import time

import graphc as gc


def load_data(seed: int = 0):
    """Stratified 70/10/20 split of the digits, standardized by the training set."""
    x, y = gc.data.load_digits()
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = gc.data.train_val_test_split(
        x, y, val=0.1, test=0.2, seed=seed, stratify=y)
    x_tr, x_va, x_te = gc.data.standardize(x_tr, x_va, x_te)
    return (x_tr, y_tr), (x_va, y_va), (x_te, y_te)


def build_model(seed: int, hidden: int, dropout: float, lr: float):
    """Placeholders, the MLP, its mean cross-entropy loss and an Adam step."""
    with gc.Graph(seed=seed) as g:
        x = gc.placeholder((None, 1, 8, 8), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        net = gc.nn.Sequential([
            gc.nn.Flatten(),                              # (N, 64)
            gc.nn.Dense(hidden, activation="relu"),
            gc.nn.Dropout(dropout),                       # active only while training
            gc.nn.Dense(10),                              # logits
        ])
        logits = net(x)
        loss = gc.losses.softmax_cross_entropy(logits, y)
        train_op = gc.optim.Adam(lr).minimize(loss)
    return g, dict(x=x, y=y, net=net, logits=logits, loss=loss, train=train_op)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto", help="numpy | c | auto")
    parser.add_argument("--out", default=os.path.join("graphc-examples", "digits_mlp"),
                        help="folder for history.png")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no per-epoch progress")
    args = parser.parse_args(argv)

    train, val, test = load_data(args.seed)
    g, m = build_model(args.seed, args.hidden, args.dropout, args.lr)
    sess = gc.Session(g, backend=args.backend)
    print(f"backend: {sess.backend} ({sess.backend_choice})")
    print(f"model: {gc.nn.count_parameters(m['net'])} parameters; "
          f"{len(train[1])} training, {len(val[1])} validation, {len(test[1])} test images")

    t0 = time.perf_counter()
    hist = gc.train.fit(sess, m["train"], m["loss"], (m["x"], m["y"]), train,
                        epochs=args.epochs, batch_size=args.batch_size, validation_data=val,
                        logits=m["logits"], seed=args.seed, progress=not args.no_progress)
    seconds = time.perf_counter() - t0
    scores = gc.train.evaluate(sess, m["loss"], (m["x"], m["y"]), test, logits=m["logits"])
    os.makedirs(args.out, exist_ok=True)
    png = gc.train.plot_history(hist, os.path.join(args.out, "history.png"), title="digits MLP")
    print(f"trained {hist.epochs} epochs in {seconds:.1f}s "
          f"({seconds / max(hist.epochs, 1):.2f}s per epoch)")
    print(f"final train accuracy {hist['accuracy'][-1]:.1%}, "
          f"validation accuracy {hist['val_accuracy'][-1]:.1%}")
    print(f"test accuracy {scores['accuracy']:.1%} (loss {scores['loss']:.4f}); curves: {png}")
    return {"test_accuracy": scores["accuracy"], "test_loss": scores["loss"],
            "history": hist, "train_seconds": seconds, "history_png": png,
            "parameters": gc.nn.count_parameters(m["net"]), "backend": sess.backend}


if __name__ == "__main__":
    main()
