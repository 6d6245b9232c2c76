"""One Session shared by several threads: serving and training lose nothing, mix nothing.

Without the Session's lock the C backend crashed (different batch sizes share one arena
and pointer tables) or returned another thread's outputs, and the NumPy backend lost
variable updates (two steps read the same value, both write value + 1).
"""

from __future__ import annotations

import threading

import numpy as np

import graphc as gc

THREADS = 4


def _in_threads(work, n: int = THREADS) -> None:
    """Run ``work(k)`` in ``n`` threads started together; re-raise the first failure."""
    start, errors = threading.Barrier(n), []

    def body(k):
        try:
            start.wait()
            work(k)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


def test_threads_serving_different_batch_sizes_get_the_serial_outputs(backend):
    rng = np.random.default_rng(0)
    with gc.Graph() as g:
        x = gc.placeholder((None, 64), name="x")
        h = gc.relu(x @ gc.variable(rng.standard_normal((64, 256)).astype(np.float32) / 8))
        y = gc.softmax(h @ gc.variable(rng.standard_normal((256, 16)).astype(np.float32) / 16))
    sess = gc.Session(g, backend=backend)
    batches = [rng.standard_normal((n, 64)).astype(np.float32) for n in (1, 7, 64, 300, 129)]
    expected = [sess.run(y, {x: b}) for b in batches]
    wrong = []

    def serve(k):
        for i in range(60):
            j = (k + i) % len(batches)
            out = sess.run([y, h], {"x": batches[j]})[0]
            if not np.array_equal(out, expected[j]):
                wrong.append((k, i, j))

    _in_threads(serve)
    assert wrong == []


def test_threads_training_lose_no_update(backend):
    with gc.Graph() as g:
        x = gc.placeholder((None, 4), name="x")
        y = gc.placeholder((None,), name="y")
        w = gc.variable(np.zeros(4, np.float32), name="w")
        count = gc.variable(np.zeros((), np.int64), name="count", trainable=False)
        loss = gc.mean(gc.square(gc.sum(x * w, axis=1) - y))
        train = gc.group(gc.optim.SGD(0.05).minimize(loss), gc.assign(count, count + 1))
    rng = np.random.default_rng(2)
    xb = rng.standard_normal((16, 4)).astype(np.float32)
    yb = xb @ np.array([1, -2, 0.5, 3], np.float32)
    steps = 50

    serial = gc.Session(g, backend=backend)
    for _ in range(steps * THREADS):
        serial.run(train, {x: xb, y: yb})

    sess = gc.Session(g, backend=backend)

    def fit(k):
        for _ in range(steps):
            sess.run([loss, train], {x: xb, y: yb})
            sess.get_value("w")  # readers interleave with the writers

    _in_threads(fit)
    assert sess.step == steps * THREADS
    assert int(sess.get_value(count)) == steps * THREADS
    # SGD on fixed data is the same sequence of steps in any thread order
    np.testing.assert_array_equal(sess.get_value(w), serial.get_value(w))


def test_threads_compiling_and_saving_while_others_run(backend, tmp_path):
    """Compiling new fetch sets, set_value and save interleaved with runs: every run
    sees a consistent state and every checkpoint loads."""
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        v = gc.variable(np.zeros(3, np.float32), name="v")
        bump = gc.assign(v, v + 1.0)
        outs = [x * v + float(k) for k in range(3)]
    sess = gc.Session(g, backend=backend)
    ones = np.ones((5, 3), np.float32)

    def work(k):
        for i in range(20):
            if k == 0:
                sess.run(bump)
            elif k == 1:
                got = sess.run(outs[i % 3], {x: ones})
                assert np.all(got == got[0, 0])  # never half-updated
            elif k == 2:
                sess.save(tmp_path / "ck")
            else:
                sess.get_value(v)

    _in_threads(work)
    np.testing.assert_array_equal(sess.get_value(v), np.full(3, 20, np.float32))
    fresh = gc.Session(g, backend=backend)
    fresh.load(tmp_path / "ck")
    assert np.all(fresh.get_value(v) == fresh.get_value(v)[0])
