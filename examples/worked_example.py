"""One learning step of a tiny network, by hand and by graphc.

x = (2, -1); z = w1 x1 + w2 x2 + b1; h = relu(z); prediction = w3 h + b2;
loss = (prediction - 6)^2. Expected: prediction 8, loss 4, dL/dw3 = 16,
dL/dw1 = 20, dL/db1 = 10, and after one SGD step (lr 0.01) on w1, b1 and w3
the prediction is 6.19.

Run: python examples/worked_example.py [--backend numpy]
"""

from __future__ import annotations

import argparse

import numpy as np

import graphc as gc


def build():
    with gc.Graph() as g:
        x = gc.placeholder((2,), dtype="float64", name="x")
        t = gc.placeholder((), dtype="float64", name="target")
        w1 = gc.variable(1.5, name="w1", dtype="float64")
        w2 = gc.variable(2.0, name="w2", dtype="float64")
        b1 = gc.variable(3.0, name="b1", dtype="float64")
        w3 = gc.variable(2.5, name="w3", dtype="float64")
        b2 = gc.variable(-2.0, name="b2", dtype="float64")
        z = w1 * x[0] + w2 * x[1] + b1
        h = gc.relu(z)
        pred = w3 * h + b2
        loss = gc.square(pred - t)
        grads = gc.grad(loss, [w3, w1, b1])
        step = gc.optim.SGD(lr=0.01).minimize(loss, var_list=[w1, b1, w3])
    return g, dict(x=x, t=t, z=z, h=h, pred=pred, loss=loss, grads=grads, step=step)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy")
    args = parser.parse_args(argv)
    g, n = build()
    sess = gc.Session(g, backend=args.backend)
    feed = {n["x"]: np.array([2.0, -1.0]), n["t"]: 6.0}
    z, h, pred, loss = sess.run([n["z"], n["h"], n["pred"], n["loss"]], feed)
    print(f"forward:  z = {z:g}, h = relu(z) = {h:g}, prediction = {pred:g}, loss = {loss:g}")
    g_w3, g_w1, g_b1 = sess.run(n["grads"], feed)
    print(f"backward: dL/dw3 = {g_w3:g}, dL/dw1 = {g_w1:g}, dL/db1 = {g_b1:g}")
    sess.run(n["step"], feed)
    new_pred = sess.run(n["pred"], feed)
    print(f"after one SGD step (lr 0.01): prediction = {new_pred:.4g}")
    return {"pred": float(pred), "loss": float(loss), "dw3": float(g_w3), "dw1": float(g_w1),
            "db1": float(g_b1), "new_pred": float(new_pred)}


if __name__ == "__main__":
    main()
