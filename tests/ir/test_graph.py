"""Graph IR: leaves, shape inference with the batch size, sites, errors."""

from __future__ import annotations

import os

import numpy as np
import pytest

import graphc as gc

HERE = os.path.basename(__file__)


def line_of(marker: str) -> int:
    with open(__file__) as f:
        for k, text in enumerate(f, 1):
            if marker in text and "line_of(" not in text:
                return k
    raise AssertionError(marker)


def test_nodes_record_the_users_line():
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        y = gc.relu(x) * 2.0  # site-marker
    assert y.site.endswith(f"{HERE}:{line_of('site-marker')}")
    assert x.graph is g and y.graph is g
    assert y.shape == (None, 3) and y.dtype == "float32"


def test_shape_error_names_op_shapes_and_line():
    with gc.Graph() as g:
        a = gc.placeholder((None, 3))
        b = gc.variable(np.zeros((4, 5), np.float32))
        before = len(g.nodes)
        with pytest.raises(gc.ShapeError) as info:
            a @ b  # matmul-marker
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "matmul" in msg and "(N, 3)" in msg and "(4, 5)" in msg
    assert f"{HERE}:{line_of('matmul-marker')}" in msg
    assert len(g.nodes) == before  # nothing half-built was added


def test_dtype_error_is_type_error():
    with gc.Graph():
        a = gc.placeholder((3,), dtype="float32")
        b = gc.placeholder((3,), dtype="float64")
        with pytest.raises(gc.DTypeError) as info:
            a + b
    assert isinstance(info.value, TypeError)
    assert "float32" in str(info.value) and "float64" in str(info.value)
    assert "gc.cast" in str(info.value)


def test_python_scalars_take_the_tensor_dtype():
    with gc.Graph():
        x = gc.placeholder((2,), dtype="float64")
        assert (x * 0.5).dtype == "float64"
        assert (2 - x).dtype == "float64"
        i = gc.placeholder((2,), dtype="int64")
        assert (i + 1).dtype == "int64"
        assert (x < 1.0).dtype == "bool"


def test_broadcasting_with_the_batch_dimension():
    with gc.Graph():
        x = gc.placeholder((None, 1, 4))
        b = gc.variable(np.zeros((3, 4), np.float32))
        assert (x + b).shape == (None, 3, 4)
        with pytest.raises(gc.ShapeError):
            x + gc.variable(np.zeros((5, 2, 4), np.float32))


def test_unique_names_and_default_graph():
    with gc.Graph() as g:
        a = gc.placeholder((1,), name="x")
        b = gc.placeholder((1,), name="x")
    assert a.name == "x" and b.name == "x_1"
    assert gc.get_default_graph() is not g
    c = gc.constant(1.0)
    assert c.graph is gc.get_default_graph()


def test_inputs_from_two_graphs_are_an_error():
    with gc.Graph():
        a = gc.placeholder((1,))
    with gc.Graph():
        b = gc.placeholder((1,))
        with pytest.raises(gc.GraphcError, match="different graphs"):
            a + b


def test_tensor_truth_value_is_an_error():
    with gc.Graph():
        x = gc.placeholder((1,))
        with pytest.raises(gc.GraphcError, match="gc.where"):
            if x > 0:
                pass


def test_tensors_are_hashable_and_compare_by_identity():
    with gc.Graph():
        a = gc.placeholder((1,))
        b = gc.placeholder((1,))
    assert {a: 1, b: 2}[b] == 2
    assert a in [b, a] and a != b


def test_variable_keeps_dtype_and_copies_value():
    init = np.ones((2, 2))
    with gc.Graph():
        v = gc.variable(init)
        s = gc.variable(0.5)
    init[0, 0] = 5
    assert v.dtype == "float64" and v.value[0, 0] == 1.0
    assert s.dtype == "float32" and s.shape == ()


def test_unsupported_dtype_is_clear():
    with gc.Graph():
        with pytest.raises(gc.DTypeError, match="supported"):
            gc.placeholder((2,), dtype="complex64")


def test_placeholder_rejects_bad_shape():
    with gc.Graph():
        with pytest.raises(gc.ShapeError):
            gc.placeholder((-2, 3))
