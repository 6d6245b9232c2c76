"""Definition-time errors: type, message (op, shapes with the batch as N, this file and
the line of the offending call) and no node added to the graph."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

import graphc as gc

HERE = os.path.basename(__file__)


def _raises(g, exc_type, call, *needles, lines=None, allow_leaves=False):
    """Run ``call`` (a lambda written at the offending line) and check the error: its
    type, the needles, ``file:line`` of the lambda (or one of ``lines``), and that the
    graph gained no node (placeholders built inside the lambda itself excepted when
    ``allow_leaves``). Returns the exception."""
    before = list(g.nodes)
    with pytest.raises(exc_type) as info:
        call()
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    lines = lines or {ln for _, _, ln in call.__code__.co_lines() if ln is not None}
    assert any(f"{HERE}:{ln}" in msg for ln in lines), msg
    added = [n for n in g.nodes if n not in before]
    if allow_leaves:
        added = [n for n in added if n.op.name != "placeholder"]
    assert not added, f"the failed call added nodes to the graph: {added}"
    return info.value


def _line_of_call(info) -> int:
    """Line of this file's innermost traceback entry (the offending call)."""
    entries = [e for e in info.traceback if Path(str(e.path)) == Path(__file__)]
    return entries[-1].lineno + 1


def test_shape_error_direct_call():
    """Without helpers: the message points at the line below, in this file."""
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        w = gc.placeholder((4, 5), name="w")
        n = len(g.nodes)
        with pytest.raises(gc.ShapeError) as info:
            x @ w
    msg = str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, gc.GraphcError)
    assert "matmul" in msg and "(N, 3)" in msg and "(4, 5)" in msg
    assert f"{HERE}:{_line_of_call(info)}" in msg, msg
    assert len(g.nodes) == n


SHAPE_CASES = {
    # name: strings the message must contain (the op, the shapes with N for the batch)
    "add": ("add", "(N, 3)", "(N, 4)"),
    "sub": ("sub", "(2, 3)", "(3, 2)"),
    "maximum": ("maximum", "(N, 3)", "(2,)"),
    "where": ("where", "(N, 3)", "(4,)"),
    "matmul": ("matmul", "(N, 3)", "(4, 5)"),
    "matmul_batch": ("matmul", "(2, 3, 4)", "(3, 4, 5)"),
    "matmul_1d": ("matmul", "(3,)", "(3, 4)"),
    "conv2d_channels": ("conv2d", "(N, 3, 8, 8)", "(4, 2, 3, 3)"),
    "conv2d_rank": ("conv2d", "(N, 8)",),
    "conv2d_too_small": ("conv2d", "(N, 1, 2, 2)"),
    "max_pool2d_padding": ("max_pool2d", "(N, 1, 8, 8)"),
    "avg_pool2d_rank": ("avg_pool2d", "(N, 8, 8)"),
    "reshape": ("reshape", "(3, 4)"),
    "reshape_batch": ("reshape", "(N, 3, 4)"),
    "concat": ("concat", "(N, 3)", "(N, 4, 1)"),
    "concat_batch_axis": ("concat", "(N, 3)"),
    "transpose": ("transpose", "(N, 3, 4)"),
    "sum_axis": ("sum", "(N, 3)"),
    "mean_axis": ("mean", "(N, 3)"),
    "max_axis": ("max", "(N, 3)"),
    "logsumexp_axis": ("logsumexp", "(N, 3)"),
    "argmax_axis": ("argmax", "(N, 3)"),
    "softmax_axis": ("softmax", "(N, 3)"),
    "squeeze": ("squeeze", "(N, 3)"),
    "expand_dims": ("expand_dims", "(N, 3)"),
    "slice": ("slice", "(N, 3)"),
    "slice_negative": ("slice", "(N, 3)"),
    "slice_batch_rows": ("slice", "[1:]", "depends on the batch size"),
    "slice_too_many": ("slice", "(N, 3)"),
    "sce_int_labels": ("softmax_cross_entropy", "(N, 5)", "(N, 2)"),
    "sce_prob_labels": ("softmax_cross_entropy", "(N, 5)", "(N, 4)"),
    "mse": ("mse", "(N, 3)", "(N, 2)"),
    "huber": ("huber", "(N, 3)", "(2, 1, 4)"),
}


def _shape_call(name, x, xi, img):  # each offending call on a line of its own
    return {
        "add": lambda: x + gc.placeholder((None, 4)),
        "sub": lambda: gc.placeholder((2, 3)) - gc.placeholder((3, 2)),
        "maximum": lambda: gc.maximum(x, gc.placeholder((2,))),
        "where": lambda: gc.where(gc.placeholder((None, 3), "bool"), x, gc.placeholder((4,))),
        "matmul": lambda: gc.matmul(x, gc.placeholder((4, 5))),
        "matmul_batch": lambda: gc.placeholder((2, 3, 4)) @ gc.placeholder((3, 4, 5)),
        "matmul_1d": lambda: gc.placeholder((3,)) @ gc.placeholder((3, 4)),
        "conv2d_channels": lambda: gc.conv2d(img, gc.placeholder((4, 2, 3, 3))),
        "conv2d_rank": lambda: gc.conv2d(gc.placeholder((None, 8)), gc.placeholder((1, 1, 3, 3))),
        "conv2d_too_small": lambda: gc.conv2d(gc.placeholder((None, 1, 2, 2)),
                                              gc.placeholder((1, 1, 3, 3))),
        "max_pool2d_padding": lambda: gc.max_pool2d(gc.placeholder((None, 1, 8, 8)), 2,
                                                    padding=2),
        "avg_pool2d_rank": lambda: gc.avg_pool2d(gc.placeholder((None, 8, 8)), 2),
        "reshape": lambda: gc.reshape(gc.placeholder((3, 4)), (5, -1)),
        "reshape_batch": lambda: gc.reshape(gc.placeholder((None, 3, 4)), (None, 5)),
        "concat": lambda: gc.concat([x, gc.placeholder((None, 4, 1))], axis=1),
        "concat_batch_axis": lambda: gc.concat([x, x], axis=0),
        "transpose": lambda: gc.transpose(gc.placeholder((None, 3, 4)), (0, 1)),
        "sum_axis": lambda: gc.sum(x, axis=2),
        "mean_axis": lambda: gc.mean(x, axis=(0, -3)),
        "max_axis": lambda: gc.max(x, axis=5),
        "logsumexp_axis": lambda: gc.logsumexp(x, axis=-3),
        "argmax_axis": lambda: gc.argmax(x, axis=2),
        "softmax_axis": lambda: gc.softmax(x, axis=2),
        "squeeze": lambda: gc.squeeze(x, axis=1),
        "expand_dims": lambda: gc.expand_dims(x, 4),
        "slice": lambda: x[:, 5],
        "slice_negative": lambda: x[:, -4],
        "slice_batch_rows": lambda: x[1:],  # N - 1 rows: no static shape holds it
        "slice_too_many": lambda: x[:, 1, 2],
        "sce_int_labels": lambda: gc.softmax_cross_entropy(gc.placeholder((None, 5)), xi),
        "sce_prob_labels": lambda: gc.softmax_cross_entropy(gc.placeholder((None, 5)),
                                                            gc.placeholder((None, 4))),
        "mse": lambda: gc.mse(x, gc.placeholder((None, 2))),
        "huber": lambda: gc.huber(x, gc.placeholder((2, 1, 4))),
    }[name]


@pytest.mark.parametrize("name", list(SHAPE_CASES))
def test_shape_errors(name):
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        xi = gc.placeholder((None, 2), dtype="int64", name="labels")
        img = gc.placeholder((None, 3, 8, 8), name="img")
        call = _shape_call(name, x, xi, img)
        # operand placeholders built inside the lambda may stay; the failing op adds nothing
        err = _raises(g, gc.ShapeError, call, *SHAPE_CASES[name], allow_leaves=True)
    assert isinstance(err, ValueError)


def _lambda_lines_of(fn):
    return {ln for _, _, ln in fn.__code__.co_lines() if ln is not None}


DTYPE_CASES = {
    "add_f32_f64": (lambda x, d, i: x + d, ("add", "float32", "float64")),
    "mul_f64_f32": (lambda x, d, i: d * x, ("mul", "float32", "float64")),
    "maximum_f32_f64": (lambda x, d, i: gc.maximum(x, d), ("maximum", "float32", "float64")),
    "relu_int64": (lambda x, d, i: gc.relu(i), ("relu", "int64")),
    "exp_int64": (lambda x, d, i: gc.exp(i), ("exp", "int64")),
    "div_int64": (lambda x, d, i: i / i, ("div", "int64")),
    "add_int_float": (lambda x, d, i: x + i, ("add", "float32", "int64")),
    "matmul_ints": (lambda x, d, i: gc.matmul(i, gc.placeholder((3, 2), "int64")),
                    ("matmul", "int64")),
    "matmul_f32_f64": (lambda x, d, i: x @ gc.placeholder((3, 2), "float64"),
                       ("matmul", "float32", "float64")),
    "mean_int": (lambda x, d, i: gc.mean(i), ("mean", "int64")),
    "softmax_int": (lambda x, d, i: gc.softmax(i), ("softmax", "int64")),
    "sce_label_dtype": (lambda x, d, i: gc.softmax_cross_entropy(x, d),
                        ("softmax_cross_entropy", "float64")),
    "conv2d_mixed": (lambda x, d, i: gc.conv2d(gc.placeholder((None, 1, 4, 4)),
                                               gc.placeholder((1, 1, 3, 3), "float64")),
                     ("conv2d",)),
    "one_hot_float": (lambda x, d, i: gc.one_hot(x, 4), ("one_hot", "float32")),
    "dropout_int": (lambda x, d, i: gc.dropout(i, 0.5), ("dropout", "int64")),
    "concat_mixed": (lambda x, d, i: gc.concat([x, d], axis=1), ("concat", "float32")),
}


@pytest.mark.parametrize("name", list(DTYPE_CASES))
def test_dtype_errors(name):
    fn, needles = DTYPE_CASES[name]
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), "float32", name="x32")
        d = gc.placeholder((None, 3), "float64", name="x64")
        i = gc.placeholder((None, 3), "int64", name="ints")
        err = _raises(g, gc.DTypeError, lambda: fn(x, d, i), *needles, allow_leaves=True,
                      lines=_lambda_lines_of(fn))
    assert isinstance(err, TypeError) and isinstance(err, gc.GraphcError)


def test_dtype_error_f32_plus_f64_points_here():
    with gc.Graph() as g:
        a = gc.placeholder((None, 3), "float32")
        b = gc.placeholder((None, 3), "float64")
        _raises(g, gc.DTypeError, lambda: a + b, "add", "float32", "float64")
        k = gc.cast(a, "int64")
        _raises(g, gc.DTypeError, lambda: gc.sigmoid(k), "sigmoid", "int64")


def test_relu_on_int64_and_matmul_on_ints():
    with gc.Graph() as g:
        i = gc.placeholder((None, 3), "int64")
        j = gc.placeholder((3, 2), "int32")
        k = gc.placeholder((3, 2), "int64")
        _raises(g, gc.DTypeError, lambda: gc.relu(i), "relu", "int64")
        _raises(g, gc.DTypeError, lambda: i @ k, "matmul", "int64")
        _raises(g, gc.DTypeError, lambda: gc.matmul(i, j), "matmul", "int64", "int32")


def test_grad_errors():
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), "float64")
        i = gc.placeholder((None, 3), "int64")
        y = gc.tanh(x)
        _raises(g, gc.ShapeError, lambda: gc.grad(y, [x]), "grad", "(N, 3)", "scalar")
        s = gc.sum(i)
        _raises(g, gc.DTypeError, lambda: gc.grad(s, [x]), "grad", "int64")
        t = gc.sum(y)
        _raises(g, gc.DTypeError, lambda: gc.grad(t, [i]), "grad", "int64")


@pytest.mark.parametrize("case", ["matmul_array", "int_div_scalar", "add_array"])
def test_failed_call_with_constant_operand_adds_no_node(case):
    with gc.Graph() as g:
        x = gc.placeholder((None, 3))
        i = gc.placeholder((None, 3), "int64")
        call = {
            "matmul_array": lambda: gc.matmul(x, np.ones((4, 2), np.float32)),
            "int_div_scalar": lambda: i / 2.0,
            "add_array": lambda: x + np.ones((4,), np.float32),
        }[case]
        _raises(g, gc.GraphcError, call, HERE)


def test_errors_in_helper_function_point_at_caller_line():
    """A model helper defined here: the site is its line in this file."""

    def block(t):
        return gc.conv2d(t, gc.placeholder((4, 5, 3, 3)))

    with gc.Graph() as g:
        img = gc.placeholder((None, 3, 8, 8))
        _raises(g, gc.ShapeError, lambda: block(img), "conv2d", "(N, 3, 8, 8)", "(4, 5, 3, 3)",
                lines={block.__code__.co_firstlineno + 1}, allow_leaves=True)


def test_leaf_and_weak_scalar_errors():
    with gc.Graph() as g:
        i = gc.placeholder((None, 3), "int64")
        _raises(g, gc.ShapeError, lambda: gc.placeholder((None, -3)), "placeholder", "-3")
        _raises(g, gc.DTypeError, lambda: gc.variable(np.ones(2, np.float16)), "float16")
        _raises(g, gc.DTypeError, lambda: i + 2.5, "2.5", "int64")


def test_run_time_label_error_names_node_and_line():
    with gc.Graph() as g:
        z = gc.placeholder((None, 3))
        y = gc.placeholder((None,), "int64")
        loss = gc.softmax_cross_entropy(z, y)
        line = sys._getframe().f_lineno - 1  # the line that defined loss
    with pytest.raises(gc.GraphcError) as info:
        gc.Session(g, backend="numpy").run(loss, {z: np.ones((2, 3), np.float32), y: np.array([0, 3])})
    msg = str(info.value)
    assert "softmax_cross_entropy" in msg and f"{HERE}:{line}" in msg, msg
