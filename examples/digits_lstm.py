"""Recurrent networks on the 8x8 handwritten digits: an LSTM and a GRU, at least 95% each.

Same data and split as ``digits_cnn.py`` (stratified 70/10/20, standardized by
the training set), but each image is read as a *sequence*: 8 time steps, one
per pixel row, of 8 features (the row's pixels). The network never sees the
image as a whole; it must carry what it has read so far in its state:

    (N, 8, 8) -> LSTM(64) -> final h (N, 64) -> dense(10)       logits
    (N, 8, 8) -> GRU(64)  -> last output (N, 64) -> dense(10)   logits

The recurrence is one ``gc.scan`` per layer (traced once, looped inside the one
compiled call), trained by backpropagation through time with Adam and a
cosine-decayed learning rate. The example trains both models, prints their test
accuracy and time, and asserts at least 95% test accuracy for each.

Run: python examples/digits_lstm.py [--backend auto] [--out DIR] [--epochs 15]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import graphc as gc

ROWS = COLS = 8


def load_data(seed: int = 0):
    """Stratified 70/10/20 split, standardized, each image as (8 rows, 8 pixels)."""
    x, y = gc.data.load_digits()
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = gc.data.train_val_test_split(
        x, y, val=0.1, test=0.2, seed=seed, stratify=y)
    x_tr, x_va, x_te = gc.data.standardize(x_tr, x_va, x_te)
    seq = [np.ascontiguousarray(a.reshape(-1, ROWS, COLS), dtype=np.float32)
           for a in (x_tr, x_va, x_te)]
    return (seq[0], y_tr), (seq[1], y_va), (seq[2], y_te)


def build_model(kind: str, hidden: int, seed: int):
    """Placeholders, an LSTM or GRU classifier, its loss and an Adam step (lr fed)."""
    with gc.Graph(seed=seed) as g:
        x = gc.placeholder((None, ROWS, COLS), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        if kind == "lstm":
            rnn = gc.nn.LSTM(hidden)
            _, (h, _) = rnn(x)                  # final hidden state (N, H)
        else:
            rnn = gc.nn.GRU(hidden)
            outputs, _ = rnn(x)                 # (N, T, H)
            h = outputs[:, ROWS - 1]            # the last output (= the final state)
        head = gc.nn.Dense(10)
        logits = head(h)
        loss = gc.losses.softmax_cross_entropy(logits, y)
        lr = gc.schedules.lr_placeholder()
        train_op = gc.optim.Adam(lr).minimize(loss)
    params = gc.nn.count_parameters([rnn, head])
    return g, dict(x=x, y=y, logits=logits, loss=loss, lr=lr, train=train_op, params=params)


def train_one(kind: str, args, data) -> dict:
    train, val, test = data
    g, m = build_model(kind, args.hidden, args.seed)
    sess = gc.Session(g, backend=args.backend)
    print(f"{kind.upper()}({args.hidden}): {m['params']} parameters, backend {sess.backend}")
    schedule = gc.schedules.cosine_decay(args.lr, args.epochs)
    t0 = time.perf_counter()
    hist = gc.train.fit(sess, m["train"], m["loss"], (m["x"], m["y"]), train,
                        epochs=args.epochs, batch_size=args.batch_size, validation_data=val,
                        logits=m["logits"], lr=(m["lr"], schedule), seed=args.seed,
                        eval_train=False, progress="lines" if not args.no_progress else False)
    seconds = time.perf_counter() - t0
    accuracy = float(gc.train.accuracy(sess.run(m["logits"], {m["x"]: test[0]}), test[1]).mean())
    print(f"{kind.upper()}: test accuracy {accuracy:.1%} after {hist.epochs} epochs "
          f"({seconds:.1f}s)")
    return {"test_accuracy": accuracy, "train_seconds": seconds, "history": hist,
            "backend": sess.backend, "parameters": m["params"]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto", help="numpy | c | auto")
    parser.add_argument("--out", default=os.path.join("graphc-examples", "digits_lstm"),
                        help="folder for history.png")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2, help="initial learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", type=float, default=0.95,
                        help="test accuracy each model must reach")
    parser.add_argument("--no-progress", action="store_true", help="no per-epoch progress")
    args = parser.parse_args(argv)

    data = load_data(args.seed)
    results = {kind: train_one(kind, args, data) for kind in ("lstm", "gru")}
    os.makedirs(args.out, exist_ok=True)
    png = gc.train.plot_history(results["lstm"]["history"], os.path.join(args.out, "history.png"),
                                title="digits LSTM")
    print(f"LSTM curves: {png}")
    for kind, r in results.items():
        if r["test_accuracy"] < args.target:
            raise SystemExit(f"{kind.upper()} reached {r['test_accuracy']:.1%} test accuracy, "
                             f"below the {args.target:.0%} target")
    print("both models reached the target: "
          + ", ".join(f"{k.upper()} {r['test_accuracy']:.1%}" for k, r in results.items()))
    return {"lstm": results["lstm"], "gru": results["gru"], "history_png": png,
            "backend": results["lstm"]["backend"]}


if __name__ == "__main__":
    main()
