"""A small convolutional network on the 8x8 handwritten digits: at least 97% test accuracy.

Same data as ``digits_mlp.py`` (stratified 70/10/20 split, standardized), but
the network sees the images as images (NCHW, one channel):

    (N, 1, 8, 8) -> conv 3x3, 16 filters, padding 1 -> ReLU -> max pool 2   (N, 16, 4, 4)
                 -> conv 3x3, 32 filters, padding 1 -> ReLU -> max pool 2   (N, 32, 2, 2)
                 -> flatten -> dense(10)                                     logits

It is kept small on purpose: it trains in seconds even on the NumPy
reference backend. Adam's learning rate follows a cosine decay, fed each epoch
through a placeholder (``gc.schedules``), so nothing recompiles. The example
measures the test accuracy, the training time and the time of one forward
pass over the test set, and writes the curves to ``history.png``.

Run: python examples/digits_cnn.py [--backend auto] [--out DIR] [--epochs 20]

Data-parallel on several processes (MPI, ``pip install mpi4py``):
``mpirun -np 2 python examples/digits_cnn.py --distributed``. Every process holds the
model; each trains on its half of every batch of 32 (16 rows each), the gradients are
averaged inside the compiled step, and rank 0 prints and writes the plot. It reaches the
same accuracy as one process.
"""

from __future__ import annotations

import argparse
import builtins
import os
import time

import numpy as np

import graphc as gc


def load_data(seed: int = 0):
    """Stratified 70/10/20 split of the digits, standardized by the training set."""
    x, y = gc.data.load_digits()
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = gc.data.train_val_test_split(
        x, y, val=0.1, test=0.2, seed=seed, stratify=y)
    x_tr, x_va, x_te = gc.data.standardize(x_tr, x_va, x_te)
    return (x_tr, y_tr), (x_va, y_va), (x_te, y_te)


def build_model(seed: int):
    """Placeholders, the CNN, its loss, and an Adam step whose lr is a placeholder."""
    with gc.Graph(seed=seed) as g:
        x = gc.placeholder((None, 1, 8, 8), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        net = gc.nn.Sequential([
            gc.nn.Conv2D(16, 3, padding=1, activation="relu"), gc.nn.MaxPool2D(2),
            gc.nn.Conv2D(32, 3, padding=1, activation="relu"), gc.nn.MaxPool2D(2),
            gc.nn.Flatten(),
            gc.nn.Dense(10),
        ])
        logits = net(x)
        loss = gc.losses.softmax_cross_entropy(logits, y)
        lr = gc.schedules.lr_placeholder()
        train_op = gc.optim.Adam(lr).minimize(loss)
    return g, dict(x=x, y=y, net=net, logits=logits, loss=loss, lr=lr, train=train_op)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto", help="numpy | c | auto")
    parser.add_argument("--out", default=os.path.join("graphc-examples", "digits_cnn"),
                        help="folder for history.png")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3, help="initial learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no per-epoch progress")
    parser.add_argument("--distributed", action="store_true",
                        help="data-parallel over the processes of mpirun (MPI.COMM_WORLD)")
    args = parser.parse_args(argv)

    comm = gc.distributed.world() if args.distributed else None
    rank, size = gc.distributed.rank_and_size(comm)
    if args.batch_size % size:
        parser.error(f"--batch-size {args.batch_size} is not a multiple of {size} processes")
    print = builtins.print if rank == 0 else (lambda *a, **k: None)  # noqa: A001 - rank 0 speaks
    train, val, test = load_data(args.seed)
    g, m = build_model(args.seed)
    sess = gc.Session(g, backend=args.backend, comm=comm)
    print(f"backend: {sess.backend} ({sess.backend_choice})"
          + (f"; {size} processes, {args.batch_size // size} rows each per batch" if comm else ""))
    print(f"model: {gc.nn.count_parameters(m['net'])} parameters")
    print(m["net"].summary())

    schedule = gc.schedules.cosine_decay(args.lr, args.epochs)   # lr(epoch)
    t0 = time.perf_counter()
    hist = gc.train.fit(sess, m["train"], m["loss"], (m["x"], m["y"]), train,
                        epochs=args.epochs, batch_size=args.batch_size // size, validation_data=val,
                        logits=m["logits"], lr=(m["lr"], schedule), seed=args.seed,
                        eval_train=False, progress=not args.no_progress)
    train_seconds = time.perf_counter() - t0

    # Inference: one forward pass over the whole test set (after a warm-up run
    # that compiles the fetch set), median of five.
    feed = {m["x"]: test[0]}
    logits = sess.run(m["logits"], feed)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        sess.run(m["logits"], feed)
        times.append(time.perf_counter() - t)
    forward_ms = 1e3 * float(np.median(times))
    accuracy = float(gc.train.accuracy(logits, test[1]).mean())

    png = None
    if rank == 0:
        os.makedirs(args.out, exist_ok=True)
        png = gc.train.plot_history(hist, os.path.join(args.out, "history.png"), title="digits CNN")
    print(f"trained {hist.epochs} epochs in {train_seconds:.1f}s "
          f"({train_seconds / max(hist.epochs, 1):.2f}s per epoch)")
    print(f"forward pass over the {len(test[1])} test images: {forward_ms:.1f} ms")
    print(f"validation accuracy {hist['val_accuracy'][-1]:.1%}")
    print(f"test accuracy {accuracy:.1%}; curves: {png}")
    return {"test_accuracy": accuracy, "history": hist, "train_seconds": train_seconds,
            "forward_ms": forward_ms, "history_png": png, "backend": sess.backend,
            "parameters": gc.nn.count_parameters(m["net"])}


if __name__ == "__main__":
    main()
