"""XOR with a 2-2-1 sigmoid network trained by full-batch gradient descent.

XOR is not linearly separable, so the hidden layer must learn features. Small
networks like this one are sensitive to initialization: with all-zero (or
symmetric) weights both hidden units stay identical and the network never
solves XOR, and some unlucky random seeds land in a flat region where a
hidden unit saturates. The fixed seed below reaches 100% accuracy.

Run: python examples/xor.py [--backend numpy] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np

import graphc as gc

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
Y = np.array([[0], [1], [1], [0]], dtype=np.float32)


def train(seed: int = 0, steps: int = 2000, lr: float = 2.0, backend: str = "numpy",
          verbose: bool = True, init: str = "uniform") -> dict:
    """Train and return the final loss, accuracy and session.

    ``init="constant"`` starts every weight at 0.5: the two hidden units then
    compute the same function forever and XOR cannot be learned.
    """
    rng = np.random.default_rng(seed)

    def weights(shape):
        if init == "constant":
            return np.full(shape, 0.5, np.float32)
        return rng.uniform(-1, 1, shape).astype(np.float32)

    with gc.Graph(seed=seed) as g:
        x = gc.placeholder((None, 2), name="x")
        y = gc.placeholder((None, 1), name="y")
        W1 = gc.variable(weights((2, 2)), name="W1")
        b1 = gc.variable(np.zeros(2, np.float32), name="b1")
        W2 = gc.variable(weights((2, 1)), name="W2")
        b2 = gc.variable(np.zeros(1, np.float32), name="b2")
        hidden = gc.sigmoid(x @ W1 + b1)
        logits = hidden @ W2 + b2
        loss = gc.mean(gc.sigmoid_cross_entropy(logits, y))
        prob = gc.sigmoid(logits)
        train_op = gc.optim.SGD(lr=lr, momentum=0.9).minimize(loss)
    sess = gc.Session(g, backend=backend)
    feed = {x: X, y: Y}
    for step in range(steps):
        value, _ = sess.run([loss, train_op], feed)
        if verbose and step % 500 == 0:
            print(f"step {step:5d}  loss {value:.4f}")
    p = sess.run(prob, feed)
    accuracy = float(np.mean((p > 0.5) == (Y > 0.5)))
    if verbose:
        print("predictions:", np.round(p.ravel(), 3), f"accuracy {accuracy:.0%}")
    return {"loss": float(sess.run(loss, feed)), "accuracy": accuracy, "session": sess}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--init", choices=["uniform", "constant"], default="uniform",
                        help="'constant' shows how a symmetric initialization fails")
    args = parser.parse_args(argv)
    return train(args.seed, args.steps, backend=args.backend, init=args.init)


if __name__ == "__main__":
    main()
