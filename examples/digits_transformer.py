"""A small Transformer encoder on the 8x8 digits read as 8 row tokens: at least 95% test accuracy.

Same data as ``digits_cnn.py`` (stratified 70/10/20 split, standardized), but
each image is a sequence of 8 tokens, one per pixel row (8 pixels each):

    (N, 8, 8) -> dense(d) token embedding + learned positions (a variable (8, d))
              -> 2 x TransformerEncoderLayer(d, heads, ff_dim)   (N, 8, d)
              -> mean over the 8 tokens -> LayerNorm -> dense(10)  logits

trained with Adam (cosine-decayed learning rate, fed per epoch through a
placeholder) by ``gc.train.fit``. Attention lets every row look at every
other one, so the position embedding is what tells the rows apart. The
example asserts at least 95% test accuracy at its default budget (about 98%)
and writes the curves to ``history.png``.

Run: python examples/digits_transformer.py [--backend auto] [--out DIR] [--epochs 40]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import graphc as gc

ROWS = 8          # tokens per image
PIXELS = 8        # features per token


def load_data(seed: int = 0):
    """Stratified 70/10/20 split of the digits, standardized, as (N, 8 rows, 8 pixels)."""
    x, y = gc.data.load_digits()
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = gc.data.train_val_test_split(
        x, y, val=0.1, test=0.2, seed=seed, stratify=y)
    x_tr, x_va, x_te = gc.data.standardize(x_tr, x_va, x_te)
    rows = [a.reshape(len(a), ROWS, PIXELS) for a in (x_tr, x_va, x_te)]
    return (rows[0], y_tr), (rows[1], y_va), (rows[2], y_te)


def build_model(seed: int, dim: int, heads: int, ff_dim: int, layers: int, dropout: float):
    """Placeholders, the encoder classifier, its loss and an Adam step whose lr is a placeholder."""
    with gc.Graph(seed=seed) as g:
        x = gc.placeholder((None, ROWS, PIXELS), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        embed = gc.nn.Dense(dim, name="token_embedding")
        positions = gc.variable(0.1 * gc.init.standard_normal((ROWS, dim), seed=seed),
                                name="position_embedding")
        encoder = [gc.nn.TransformerEncoderLayer(dim, heads, ff_dim, dropout=dropout,
                                                 name=f"encoder{i}") for i in range(layers)]
        norm = gc.nn.LayerNorm(dim, name="final_norm")
        head = gc.nn.Dense(10, name="classifier")
        h = embed(x) + positions                       # (N, 8, dim)
        for layer in encoder:
            h = layer(h)
        logits = head(norm(gc.mean(h, axis=1)))        # mean-pool the tokens
        loss = gc.losses.softmax_cross_entropy(logits, y)
        lr = gc.schedules.lr_placeholder()
        train_op = gc.optim.Adam(lr).minimize(loss)
    params = [p for layer in (embed, *encoder, norm, head) for p in layer.parameters]
    params.append(positions)
    return g, dict(x=x, y=y, logits=logits, loss=loss, lr=lr, train=train_op,
                   parameters=sum(int(np.prod(p.shape)) for p in params))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto", help="numpy | c | auto")
    parser.add_argument("--out", default=os.path.join("graphc-examples", "digits_transformer"),
                        help="folder for history.png")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dim", type=int, default=32, help="model width d")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--ff-dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=3e-3, help="initial learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-accuracy", type=float, default=0.95,
                        help="the test accuracy the run must reach")
    parser.add_argument("--no-progress", action="store_true", help="no per-epoch progress")
    args = parser.parse_args(argv)

    train, val, test = load_data(args.seed)
    g, m = build_model(args.seed, args.dim, args.heads, args.ff_dim, args.layers, args.dropout)
    sess = gc.Session(g, backend=args.backend)
    print(f"backend: {sess.backend} ({sess.backend_choice})")
    print(f"model: {args.layers}-layer Transformer encoder, d={args.dim}, {args.heads} heads, "
          f"{m['parameters']} parameters; {len(train[1])} training, {len(val[1])} validation, "
          f"{len(test[1])} test images")

    schedule = gc.schedules.cosine_decay(args.lr, args.epochs)
    t0 = time.perf_counter()
    hist = gc.train.fit(sess, m["train"], m["loss"], (m["x"], m["y"]), train,
                        epochs=args.epochs, batch_size=args.batch_size, validation_data=val,
                        logits=m["logits"], lr=(m["lr"], schedule), seed=args.seed,
                        eval_train=False, progress=not args.no_progress)
    train_seconds = time.perf_counter() - t0
    scores = gc.train.evaluate(sess, m["loss"], (m["x"], m["y"]), test, logits=m["logits"])

    os.makedirs(args.out, exist_ok=True)
    png = gc.train.plot_history(hist, os.path.join(args.out, "history.png"),
                                title="digits Transformer")
    print(f"trained {hist.epochs} epochs in {train_seconds:.1f}s "
          f"({train_seconds / max(hist.epochs, 1):.2f}s per epoch)")
    print(f"validation accuracy {hist['val_accuracy'][-1]:.1%}")
    print(f"test accuracy {scores['accuracy']:.1%} (loss {scores['loss']:.4f}); curves: {png}")
    if scores["accuracy"] < args.min_accuracy:
        raise SystemExit(f"digits_transformer: test accuracy {scores['accuracy']:.1%} is below "
                         f"the expected {args.min_accuracy:.0%}")
    return {"test_accuracy": scores["accuracy"], "test_loss": scores["loss"], "history": hist,
            "train_seconds": train_seconds, "history_png": png, "backend": sess.backend,
            "parameters": m["parameters"]}


if __name__ == "__main__":
    main()
