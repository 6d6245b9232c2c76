"""A NaN hunt with graphc's debugging tools (the README's "Debugging" walk-through).

A softmax classifier that scales each example to unit length, ``x / sqrt(sum(x * x))``,
trained on minibatches; one example in the data is all zeros, so its scaled features
are 0 / 0 = NaN, the loss is NaN and one update ruins every weight. The script finds
it the way you would:

1. train until the loss is NaN;
2. replay that step from the last good state with ``check_numerics=True``: the first
   non-finite value is named, with the line that created it;
3. look inside the step with ``gc.print`` (the smallest norms) and guard the loss with
   ``gc.check_finite``, which stops the step before any weight changes;
4. ``sess.verify`` confirms that the compiled step agrees with the NumPy reference, so
   the bug is in the model (or the data), not in the compiler;
5. the fix (a small epsilon under the square root) trains on.

Run: ``python examples/nan_hunt.py [--backend auto]``.
"""

from __future__ import annotations

import argparse

import numpy as np

import graphc as gc


def build(eps: float = 0.0, watch: bool = False):
    """The classifier; ``eps`` is added under the square root; ``watch`` prints the norms
    and checks the loss."""
    rng = np.random.default_rng(0)
    with gc.Graph() as g:
        x = gc.placeholder((None, 4), name="x")
        y = gc.placeholder((None,), dtype="int64", name="y")
        with gc.name_scope("normalize"):
            norm = gc.sqrt(gc.sum(x * x, axis=1, keepdims=True) + eps)
            if watch:  # step 3: the first and last two norms of each batch, min, max, mean
                norm = gc.print(norm, "norm", summarize=2)
            h = x / norm
        with gc.name_scope("classifier"):
            w = gc.variable(rng.standard_normal((4, 3)).astype(np.float32) * 0.1, name="W")
            b = gc.variable(np.zeros(3, np.float32), name="b")
            logits = h @ w + b
        loss = gc.mean(gc.softmax_cross_entropy(logits, y))
        if watch:
            loss = gc.check_finite(loss, "loss")
        train = gc.optim.SGD(0.5).minimize(loss)
    return g, x, y, loss, train


def data(n: int = 64):
    """Three classes by the sign of two features; example 40 is all zeros (the bug)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0).astype(np.int64)
    x[40] = 0.0
    return x, y


def batches(x, y, size: int = 16):
    for start in range(0, len(x), size):
        yield x[start:start + size], y[start:start + size]


def session_at(g, state: dict, backend: str, **options) -> gc.Session:
    """A session of ``g`` whose variables hold ``state`` ({name: value})."""
    sess = gc.Session(g, backend=backend, **options)
    for name, value in state.items():
        sess.set_value(name, value)
    return sess


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="auto")
    p.add_argument("--epochs", type=int, default=20)
    args = p.parse_args(argv)
    xs, ys = data()
    out: dict = {}

    # 1. train until the loss is NaN
    g, x, y, loss, train = build()
    sess = gc.Session(g, backend=args.backend)
    for step, (xb, yb) in enumerate(batches(xs, ys)):
        good = {v.name: sess.get_value(v) for v in g.variables()}  # the state before the step
        value, _ = sess.run([loss, train], {x: xb, y: yb})
        print(f"step {step}: loss {value:.4g}")
        if not np.isfinite(value):
            out["nan_step"] = step
            break
    feed = {x: xb, y: yb}

    # 2. replay the failing step from the last good state with check_numerics
    check = session_at(g, good, args.backend, check_numerics=True)
    try:
        check.run([loss, train], feed)
    except gc.NumericsError as exc:
        out["numerics"] = str(exc)
        print(f"check_numerics: {exc}")

    # 3. print the norms inside the step; check_finite stops it with nothing changed
    g3, x3, y3, loss3, train3 = build(watch=True)
    watch = session_at(g3, good, args.backend)
    try:
        watch.run([loss3, train3], {x3: xb, y3: yb})
    except gc.GraphcError as exc:
        out["check"] = str(exc)
        out["unchanged"] = all(np.array_equal(watch.get_value(n), v) for n, v in good.items())
        print(f"check_finite: {exc}")

    # 4. is it the compiler? compare the compiled step with the NumPy reference
    replay = session_at(g, good, args.backend)
    report = replay.verify([loss, train], feed)
    out["verify_ok"] = report.ok
    print(report)

    # 5. the fix: an epsilon under the square root
    g5, x5, y5, loss5, train5 = build(eps=1e-12)
    fixed = gc.Session(g5, backend=args.backend)
    for _ in range(args.epochs):
        for xb, yb in batches(xs, ys):
            value, _ = fixed.run([loss5, train5], {x5: xb, y5: yb})
    out["fixed_loss"] = float(value)
    print(f"fixed: loss after {args.epochs} epochs = {value:.4g}")
    return out


if __name__ == "__main__":
    main()
