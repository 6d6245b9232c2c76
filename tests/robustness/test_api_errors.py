"""The API as a new user meets it (issue #11, items 13-15): every name the README's API
table shows exists; ``gc.to_dot`` draws any compiled fetch set; the elementwise losses
refuse operands that would broadcast to a larger shape, under both of their names;
``gc.group`` takes lists; bad toolkit arguments are GraphcErrors naming the argument
and the user's line, and a failing call adds nothing to the graph.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import graphc as gc

HERE = Path(__file__).name
README = Path(__file__).resolve().parents[2] / "README.md"
#: rows of the README's API table whose code spans are all op names
OP_ROWS = ("elementwise", "reductions", "shape", "linear algebra, images", "NN", "export")


def _api_table() -> dict[str, list[str]]:
    """README's API overview: area -> the code spans of its row."""
    text = README.read_text()
    table = text[text.index("## API overview"):text.index("Conventions worth knowing")]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0] not in ("area", "---"):
            rows[cells[0]] = re.findall(r"`([^`]+)`", "|".join(cells[1:]))
    return rows


def _names(span: str) -> list[str]:
    """The identifiers a code span names, argument lists dropped: ``clip(x, low, high)``
    -> ``clip``; ``sum mean max (x, axis=None)`` -> ``sum mean max``."""
    while re.search(r"\([^()]*\)", span):
        span = re.sub(r"\([^()]*\)", " ", span)
    return [w for w in span.split() if re.fullmatch(r"[A-Za-z_][\w.]*", w)]


def test_every_name_in_the_readme_api_table_is_exported():
    rows = _api_table()
    assert set(OP_ROWS) <= set(rows), f"the README's API table changed its rows: {sorted(rows)}"
    missing, checked = [], 0
    for area, spans in rows.items():
        for span in spans:
            calls = re.findall(r"^([A-Za-z_]\w*)\(", span) if area == "graph" else []
            for name in _names(span) + calls:
                if area not in OP_ROWS and not name.startswith("gc.") and name not in calls:
                    continue  # argument names, methods, Python's own classes
                obj = gc
                for part in name.removeprefix("gc.").split("."):
                    obj = getattr(obj, part, None)
                checked += 1
                if obj is None:
                    missing.append(f"{name} ({area})")
    assert checked > 50 and not missing, f"in the README's table but not in graphc: {missing}"


def test_to_dot_draws_a_compiled_fetch_set_on_every_backend(backend):
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        W = gc.variable(np.ones((3, 2), np.float32), name="W")
        loss = gc.mean(gc.relu(x @ W))
        train = gc.optim.SGD(lr=0.1).minimize(loss)
    compiled = gc.Session(g, backend=backend).compile([loss, train])
    text = gc.to_dot(compiled)
    assert text.startswith("digraph graphc {") and 'label="matmul", shape=box' in text
    assert f"v{W.id}" in text and f"op{loss.id} -> v{loss.id};" in text
    kernels = text.count("subgraph cluster_") - 1  # the legend is a cluster too
    assert kernels == (0 if backend == "numpy" else len(compiled.kernels))


LOSSES = {
    "gc.mse": gc.mse, "gc.mae": gc.mae, "gc.huber": gc.huber,
    "gc.sigmoid_cross_entropy": gc.sigmoid_cross_entropy,
    "gc.losses.mse": gc.losses.mse, "gc.losses.mae": gc.losses.mae,
    "gc.losses.huber": gc.losses.huber, "gc.losses.binary_cross_entropy": gc.losses.binary_cross_entropy,
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_refuse_operands_that_broadcast_to_a_larger_shape(name):
    """(N, 1) against (N,) would broadcast to (N, N) (one loss per pair of rows): both names
    of a loss refuse it, naming both shapes and the fix; a target that broadcasts to the
    predictions' shape is still fine."""
    loss = LOSSES[name]
    with gc.Graph() as g:
        pred = gc.placeholder((None, 1), name="pred")
        target = gc.placeholder((None,), name="target")
        row = gc.placeholder((1, None), name="row")
        before = list(g.nodes)
        for other in (target, row, np.zeros(4, np.float32)):
            with pytest.raises(gc.ShapeError) as info:
                loss(pred, other)
            msg = str(info.value)
            assert "(N, 1)" in msg and "would broadcast to" in msg and "squeeze" in msg
            assert HERE in msg
        assert g.nodes == before
        wide = gc.placeholder((None, 3))
        assert loss(wide, np.zeros(3, np.float32)).shape in ((None, 3), ())


def test_group_takes_lists_like_tf_group():
    with gc.Graph() as g:
        a = gc.variable(np.zeros(2), name="a")
        b = gc.variable(np.zeros(2), name="b")
        up_a, up_b = gc.assign(a, a + 1.0), gc.assign(b, b + 2.0)
        step = gc.group([up_a, up_b])
        nested = gc.group((up_a,), [[up_b]])
        with pytest.raises(gc.ArgumentError, match=f"(?s)group: takes update ops.*got int.*{HERE}"):
            gc.group([up_a, 3])
        with pytest.raises(gc.ArgumentError, match="a is not an update op"):
            gc.group(up_a, a)
    sess = gc.Session(g, backend="numpy")
    sess.run(step)
    sess.run(nested)
    assert np.array_equal(sess.get_value(a), [2, 2]) and np.array_equal(sess.get_value(b), [4, 4])


BAD_TOOLKIT_ARGUMENTS = {
    "SGD lr=0": (lambda t: gc.optim.SGD(lr=0.0), ValueError, "SGD: lr must be > 0"),
    "SGD lr=nan": (lambda t: gc.optim.SGD(lr=float("nan")), ValueError, "SGD: lr"),
    "SGD lr str": (lambda t: gc.optim.SGD(lr="0.1"), TypeError, "SGD: lr must be a number"),
    "SGD momentum<0": (lambda t: gc.optim.SGD(0.1, momentum=-0.5), ValueError, "momentum"),
    "SGD nesterov": (lambda t: gc.optim.SGD(0.1, nesterov=True), ValueError, "nesterov"),
    "Adam beta1=1": (lambda t: gc.optim.Adam(beta1=1.0), ValueError, "Adam: beta1"),
    "RMSProp alpha": (lambda t: gc.optim.RMSProp(alpha=2.0), ValueError, "RMSProp: alpha"),
    "AdaGrad eps": (lambda t: gc.optim.AdaGrad(eps=-1.0), ValueError, "AdaGrad: eps"),
    "activation name": (lambda t: gc.nn.Dense(3, activation="relux"), ValueError,
                        "unknown activation 'relux'"),
    "activation type": (lambda t: gc.nn.Dense(3, activation=3), TypeError, "activation must be"),
    "Dense units": (lambda t: gc.nn.Dense(0), ValueError, "Dense: units must be >= 1"),
    "Dense units float": (lambda t: gc.nn.Dense(2.5), TypeError, "Dense: units must be an int"),
    "Conv2D kernel": (lambda t: gc.nn.Conv2D(2, "3"), ValueError, "bad size '3'"),
    "Dropout rate": (lambda t: gc.nn.Dropout(1.0), ValueError, "Dropout: rate"),
    "BatchNorm eps": (lambda t: gc.nn.BatchNorm(eps=0.0), ValueError, "BatchNorm: eps"),
    "Sequential item": (lambda t: gc.nn.Sequential([3]), TypeError, "not a layer"),
    "initializer": (lambda t: gc.init.get("nope"), ValueError, "unknown initializer"),
    "initializer type": (lambda t: gc.init.get(3), TypeError, "an initializer is a name"),
    "schedule": (lambda t: gc.schedules.CosineDecay(0.0, 10), ValueError, "initial must be > 0"),
    "reduction": (lambda t: gc.losses.reduce(t, "max"), ValueError, "reduction"),
    "huber delta": (lambda t: gc.huber(t, 0.0, delta=0.0), ValueError, "delta"),
    "batches": (lambda t: list(gc.data.batches(np.zeros((4, 2)), batch_size=0)), ValueError,
                "batch_size"),
    "regularizer": (lambda t: gc.regularizers.l2([3], 1e-3), TypeError, "is not a tensor"),
}


@pytest.mark.parametrize("name", list(BAD_TOOLKIT_ARGUMENTS))
def test_bad_toolkit_arguments_are_argument_errors(name):
    """ArgumentError (a GraphcError; also ValueError, or TypeError for a wrong type, as
    Python's own errors), with the argument in the message and the user's line."""
    call, python_class, needle = BAD_TOOLKIT_ARGUMENTS[name]
    with gc.Graph() as g:
        t = gc.placeholder((2,))
        before = list(g.nodes)
        with pytest.raises(gc.ArgumentError) as info:
            call(t)
        assert g.nodes == before
    assert isinstance(info.value, python_class)
    assert needle in str(info.value) and HERE in str(info.value), str(info.value)
