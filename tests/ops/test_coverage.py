"""Every op has cases: the guard that keeps the op tests honest as ops are added.

Builds the graph of every case of the per-module op tests (test_elemwise.py ...
test_shape.py, loaded from their paths) without running anything, and checks that each
op class of ``graphc.ops`` (leaves and update ops aside, tested with sessions and
optimizers) and each elementwise function (the ``fn`` of an ``elementwise(...)`` call in
``graphc/ops``) appears in some case that runs on both backends (an ``on_c`` mark), and
that each differentiable one appears in the forward graph of a case whose gradient is
checked against central finite differences (float64, NumPy backend) and compared on C.
A case whose ``on_c`` mark says ``xfail`` (an op the C backend lacks) counts: the gap is
reported as XFAIL on every run.
"""

import importlib.util
import pathlib
import re

import pytest
from graphc_tests_ops_gradcheck import build

import graphc as gc
import graphc.ops
from graphc.ir.graph import Kind, Op

HERE = pathlib.Path(__file__).parent
REPO_TESTS = HERE.parent
MODULES = ("test_elemwise", "test_reduce", "test_linalg", "test_conv", "test_pool", "test_nn", "test_shape",
           "test_indexing", "test_debug_ops", "test_scan_cases")
OPS_DIR = pathlib.Path(graphc.ops.__file__).parent


def _cases():
    for name in MODULES:
        path = HERE / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"graphc_tests_ops_coverage_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for param in module.CASES:
            mark = next((m for m in param.marks if m.name == "on_c"), None)
            yield param.values[0], mark


def _names(nodes) -> set:
    """Op names, and for elementwise nodes their function (comparisons marked ``:cmp``)."""
    return {n.op.name if n.op.name != "elemwise" else n.attrs["fn"] + (
        ":cmp" if n.attrs["kind"] == "cmp" else "") for n in nodes}


@pytest.fixture(scope="module")
def coverage() -> dict:
    """name -> set of what covers it: "case" (in some case graph run on both backends),
    "fd" (in the forward graph of such a case whose gradient is checked by finite
    differences and compared on C)."""
    seen: dict[str, set] = {}
    for c, mark in _cases():
        if mark is None:
            continue
        with gc.Graph() as g:
            built = build(c, "float64", grads=False)
            forward = list(g.nodes)
            grads = build(c, "float64", grads=True).grads
        for name in _names(g.nodes):
            seen.setdefault(name, set()).add("case")
        if grads and mark.kwargs.get("grad", True) and c.grad_ref is None:
            for name in _names(forward):
                seen.setdefault(name, set()).add("fd")
        assert built.outs
    return seen


def _op_classes():
    stack, out = [Op], []  # graphc imports every op module
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.name != "op" and not cls.kind.is_leaf and cls.kind is not Kind.UPDATE:
            out.append(cls)
    return sorted(out, key=lambda c: c.name)


def _elementwise_fns():
    found = set()
    for path in OPS_DIR.glob("*.py"):
        found |= set(re.findall(r'elementwise\(\s*"(\w+)"', path.read_text()))
    return sorted(found)


#: ops only a Session of several processes makes, run under mpirun there
UNDER_MPI = {"allreduce_mean": REPO_TESTS / "distributed" / "test_mpi_runs.py"}


@pytest.mark.parametrize("op", _op_classes(), ids=lambda c: c.name)
def test_every_op_has_cases(op, coverage):
    if op.name == "elemwise":
        return  # per function, below
    if op.name in UNDER_MPI:
        assert UNDER_MPI[op.name].is_file()
        return
    assert "case" in coverage.get(op.name, ()), f"no op case builds {op.name}"
    if op.differentiable:
        assert "fd" in coverage[op.name], f"no op case checks the gradient of {op.name}"


@pytest.mark.parametrize("fn", _elementwise_fns())
def test_every_elementwise_function_has_cases(fn, coverage):
    if f"{fn}:cmp" in coverage:  # a comparison: no gradient
        return
    assert "case" in coverage.get(fn, ()), f"no op case builds {fn}"
    assert "fd" in coverage[fn], f"no op case checks the gradient of {fn}"
