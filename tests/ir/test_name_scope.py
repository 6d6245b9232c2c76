"""Name scopes: prefixes, nesting, unique names, bad names, layers, gradients, updates,
names through get_value, feeds and checkpoints."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import graphc as gc


def test_scopes_prefix_and_nest():
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        with gc.name_scope("encoder") as path:
            h = gc.relu(x)
            w = gc.variable(np.ones((3, 2), np.float32), name="W")
            with gc.name_scope("head") as inner:
                y = h @ w
        z = y * 2.0
    assert (path, inner) == ("encoder", "encoder/head")
    assert (x.name, x.scope) == ("x", "")
    assert (h.name, h.scope) == ("encoder/relu", "encoder")
    assert (w.name, w.scope) == ("encoder/W", "encoder")
    assert (y.name, y.scope) == ("encoder/head/matmul", "encoder/head")
    assert z.scope == "" and "/" not in z.name
    for n in g.nodes:  # the shared rule: name == scope + "/" + base
        assert not n.scope or n.name.startswith(n.scope + "/")


def test_names_stay_unique_inside_and_across_scopes():
    with gc.Graph() as g:
        x = gc.placeholder((2,), name="x")
        with gc.name_scope("a"):
            r1 = gc.relu(x)
            r2 = gc.relu(x)
        plain = gc.variable(np.zeros(2, np.float32), name="a/relu")
        with gc.name_scope("a"):  # entering a scope again reuses it
            r3 = gc.relu(x)
    assert (r1.name, r2.name) == ("a/relu", "a/relu_1")
    assert plain.name == "a/relu_2" and plain.scope == ""   # an explicit "/" name is a name
    assert (r3.name, r3.scope) == ("a/relu_3", "a")
    names = [n.name for n in g.nodes]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("bad", ["", "a/b", "/a", "a/", " a", "a b", "tab\t", ".", "..", "\x00"])
def test_a_scope_name_is_one_plain_name(bad):
    with gc.Graph(), gc.name_scope("outer"):
        with pytest.raises(gc.ArgumentError, match="scope name") as info:
            gc.name_scope(bad)
        assert "test_name_scope.py" in str(info.value)  # the user's line
        assert gc.relu(gc.placeholder((1,))).scope == "outer"  # nothing changed


@pytest.mark.parametrize("bad", [None, 3, b"enc"])
def test_a_scope_name_is_a_str(bad):
    with pytest.raises(gc.ArgumentTypeError, match="must be a str"):
        gc.name_scope(bad)
    with pytest.raises(gc.ArgumentError):
        gc.nn.Dense(2, name="a/b")


def test_scopes_belong_to_the_thread_that_opened_them():
    seen = {}
    with gc.Graph() as g, gc.name_scope("main"):
        x = gc.placeholder((2,), name="x")

        def other():
            with g:
                seen["name"] = gc.relu(x).name

        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert seen["name"] == "relu"


def test_layers_open_unique_scopes():
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 3), name="x")
        gc.variable(np.zeros(1, np.float32), name="grad/dense")  # not a layer's scope
        d1, d2 = gc.nn.Dense(4, activation="relu"), gc.nn.Dense(2)
        y = d2(d1(x))
        with gc.name_scope("encoder"):
            d3 = gc.nn.Dense(2, name="proj")
            d3(x)
            d4 = gc.nn.Dense(2)
            d4(x)
        d5 = gc.nn.Dense(2, name="dense")  # the name is taken: made unique
        d5(x)
    assert [d.name for d in (d1, d2, d3, d4, d5)] == [
        "dense", "dense_1", "encoder/proj", "encoder/dense", "dense_2"]
    assert [p.name for p in d1.parameters] == ["dense/W", "dense/b"]
    assert d3.W.name == "encoder/proj/W" and d3.W.scope == "encoder/proj"
    ops = [n.name for n in g.nodes if n.scope == "dense" and not n.op.kind.is_leaf]
    assert ops == ["dense/matmul", "dense/add", "dense/relu"]
    assert y.scope == "dense_1"
    # calling a built layer again shares its parameters and its scope
    with gc.name_scope("elsewhere"):
        again = d1(x)
    assert again.scope == "dense" and again.name == "dense/relu_1"


def test_a_failed_build_keeps_the_layer_name_free():
    with gc.Graph() as g:
        bad = gc.placeholder((None,), name="v")
        layer = gc.nn.Dense(2)
        with pytest.raises(gc.ShapeError):
            layer(bad)
        assert layer.name is None and not layer.built
        layer(gc.placeholder((None, 3), name="x"))
    assert layer.name == "dense" and layer.W.name == "dense/W"
    assert g.unique_scope("dense") == "dense_1"


def test_the_learning_phase_stays_at_the_root():
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 3), name="x")
        with gc.name_scope("block"):
            h = gc.nn.BatchNorm()(gc.nn.Dropout(0.5)(x))
    assert h.scope == "block/batchnorm"
    assert g.phase.name == "training" and g.phase.scope == ""
    upd = g.extra_updates[0]
    assert upd.name == "block/batchnorm/update" and upd.role == "update"


def _mlp(seed=0, opt=None):
    with gc.Graph(seed=seed) as g:
        x = gc.placeholder((None, 3), name="x")
        t = gc.placeholder((None, 2), name="t")
        with gc.name_scope("net"):
            h = gc.nn.Dense(4, activation="tanh")(x)
            y = gc.nn.Dense(2)(h)
        loss = gc.mean(gc.square(y - t))
        train = (opt or gc.optim.Adam(1e-2)).minimize(loss)
    return g, loss, train


def test_gradients_take_the_scope_and_line_of_their_forward_node():
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 3), name="x")
        layer = gc.nn.Dense(2)
        y = layer(x)
        loss = gc.mean(gc.square(y))
        with gc.name_scope("somewhere_else"):  # gradients do not follow the caller's scope
            gW, gx = gc.grad(loss, [layer.W, x])
    forward = {n.id: n for n in g.nodes if n.role == "forward"}
    grads = [n for n in g.nodes if n.role == "grad"]
    assert not any(n.scope.startswith("somewhere_else") for n in grads)
    in_layer = [n for n in grads if n.scope == "dense"]
    assert in_layer and all(n.name.startswith("dense/grad/") for n in in_layer)
    sites = {n.site for n in forward.values() if n.scope == "dense"}
    assert {n.site for n in in_layer} <= sites
    assert gW.scope == "dense" and gx.name.startswith("dense/grad/matmul")


def test_updates_and_slots_live_in_their_variables_scope():
    opt = gc.optim.Adam(1e-2)
    g, loss, train = _mlp(opt=opt)
    W = next(v for v in g.variables() if v.name == "net/dense/W")
    assert opt.slot(W, "m").name == "net/dense/Adam/W/m"
    assert opt.slot(W, "v").scope == "net/dense/Adam/W"
    assert set(opt.state) >= {"net/dense/Adam/W/m", "net/dense_1/Adam/b/v", "Adam/t"}
    assert train.name == "Adam/step" and train.scope == "Adam"
    trained = {v.id: v for v in g.trainable_variables()}
    for a in [n for n in g.nodes if n.op.name == "assign"]:
        var = a.inputs[0]
        if var.id in trained:  # the assign of a trained variable: its update scope
            assert a.scope == f"{var.scope}/Adam/{var.name.rsplit('/', 1)[-1]}"
            assert a.scope.startswith(var.scope + "/")
    # the arithmetic of an update box belongs to one variable's scope
    upd = [n for n in g.nodes if n.role == "update" and n.scope.endswith("/Adam/W")]
    assert {n.scope for n in upd} == {"net/dense/Adam/W", "net/dense_1/Adam/W"}
    assert all(n.scope for n in g.nodes if n.role == "update")  # no loose "mul_27" at the root


def test_root_variables_keep_their_slot_names():
    with gc.Graph() as g:
        w = gc.variable(np.ones(2, np.float32), name="w")
        loss = gc.sum(w * w)
        opt = gc.optim.SGD(0.1, momentum=0.9)
        opt.minimize(loss)
    assert opt.slot(w, "momentum").name == "SGD/w/momentum"
    assert opt.slot(w, "m") is None and opt.slot("w", "momentum") is None
    assert "SGD/w/momentum" in {v.name for v in g.variables()}


def test_scoped_names_reach_values_feeds_checkpoints_and_dot(tmp_path):
    g, loss, train = _mlp(seed=1)
    sess = gc.Session(g, backend="numpy")
    rng = np.random.default_rng(0)
    feed = {"x": rng.standard_normal((5, 3)).astype(np.float32),
            "t": rng.standard_normal((5, 2)).astype(np.float32)}
    with gc.Graph() as g2:  # a placeholder fed by a scoped name
        with gc.name_scope("inputs"):
            p = gc.placeholder((2,), name="p")
        q = p * 3.0
    np.testing.assert_array_equal(gc.Session(g2, backend="numpy").run(q, {"inputs/p": [1, 2]}),
                                  [3, 6])
    for _ in range(2):
        sess.run(train, feed)
    w = sess.get_value("net/dense/W")
    m = sess.get_value("net/dense/Adam/W/m")
    assert w.shape == (3, 4) and np.any(m != 0)
    sess.set_value("net/dense_1/b", np.full(2, 0.5, np.float32))
    sess.save(tmp_path / "ckpt")

    g3, loss3, _ = _mlp(seed=2)  # same structure, other initial values
    other = gc.Session(g3, backend="numpy")
    other.load(tmp_path / "ckpt")
    for v in g.variables():
        np.testing.assert_array_equal(other.get_value(v.name), sess.get_value(v))
    assert other.step == sess.step
    np.testing.assert_allclose(other.run(loss3, feed), sess.run(loss, feed))
    text = gc.to_dot(g)
    assert "net/dense/W" in text


def test_name_scope_is_exported():
    assert "name_scope" in gc.__all__ and gc.name_scope.__doc__ and "Example" in gc.name_scope.__doc__
