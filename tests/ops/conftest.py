"""Fixtures and collection rules of the op tests.

``gradcheck.py`` (same folder, the op-case harness) is loaded here from its path under
the unique name ``graphc_tests_ops_gradcheck``, before any test module of this folder is
imported, so test modules import it by that name (``from graphc_tests_ops_gradcheck
import In, case``); this works with any pytest import mode and cannot clash with another
folder's helpers.

Backends: the ``backend`` fixture here runs an op case on ``numpy`` and on ``c`` (the
compiled backends built into this version), skipped with the reason where unavailable.

What runs on a compiled backend is chosen by the ``on_c`` mark of each case (put there
by ``gradcheck.case``), never by test names:

* no ``on_c`` mark: the compiled variant is skipped (NumPy only);
* ``on_c()``: forward outputs (float32 and float64) against the case's formula and the
  gradients (float32 and float64) against the NumPy backend's float64 gradient, in one
  compiled fetch set shared by the cases of the same ``group`` (default: the test
  module) and the same ``training``; the compiled variant is marked ``slow``;
* ``on_c(quick=True)``: the same, not ``slow``: a few representative cases per module
  keep the compiled backend in the quick subset (``-m "not slow"``), where their group
  compiles only them;
* ``on_c(grad=False)``: forward only; ``on_c(xfail="why")``: the compiled variant is
  expected to raise NotImplementedError (an op the backend lacks); it compiles alone,
  and passing is reported (XPASS) so that the mark gets removed.

The NumPy variant of every case is never ``slow``: the quick subset checks every op.

A group's fetch set holds the cases selected in this run (``-k``/``-m`` shrink it) and
is compiled once (``--durations`` shows that cost on the group's first test); when it
fails, each case reruns alone, so failures name their op.
"""

import importlib.util
import pathlib
import sys

import pytest

from graphc.backends import why_unavailable

_NAME = "graphc_tests_ops_gradcheck"

#: Backends the ``backend`` fixture of the op tests is parametrized over.
BACKENDS = ("numpy", "c")


def _load():
    if _NAME not in sys.modules:
        path = pathlib.Path(__file__).with_name("gradcheck.py")
        spec = importlib.util.spec_from_file_location(_NAME, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[_NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[_NAME]


harness = _load()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Apply the ``on_c`` marks of op cases to their compiled-backend variants."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "case" not in params or params.get("backend", "numpy") == "numpy":
            continue
        mark = item.get_closest_marker("on_c")
        if mark is None:
            item.add_marker(pytest.mark.skip(reason="NumPy only: the case has no on_c mark"))
            continue
        if not mark.kwargs.get("quick"):
            item.add_marker(pytest.mark.slow)
        if mark.kwargs.get("xfail"):
            item.add_marker(pytest.mark.xfail(reason=mark.kwargs["xfail"], raises=NotImplementedError,
                                              strict=False))


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """The name of a backend to run on; skipped where that backend is unavailable."""
    why = why_unavailable(request.param)
    if why:
        pytest.skip(f"backend {request.param!r} unavailable: {why}")
    return request.param


def _group_of(item) -> tuple | None:
    """(group, backend, training) of a compiled op-case item, or None."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    mark = item.get_closest_marker("on_c")
    if "case" not in params or mark is None or params.get("backend", "numpy") == "numpy":
        return None
    case = params["case"]
    group = case.name if mark.kwargs.get("xfail") else mark.kwargs.get("group") or pathlib.Path(
        str(item.path)).stem  # an expected failure compiles alone, outside any shared set
    return group, params["backend"], case.training


@pytest.fixture(scope="session")
def _compiled_groups() -> dict:
    return {}


@pytest.fixture
def check_op(request, _compiled_groups):
    """``check_op(case, backend)``: the case's checks on that backend (see gradcheck.py)."""

    def check(case, backend: str) -> None:
        if backend == "numpy":
            harness.check_numpy(case)
            return
        key = _group_of(request.node)
        if key not in _compiled_groups:
            members = {}
            for item in request.session.items:
                if _group_of(item) == key:
                    members[item.callspec.params["case"]] = item.get_closest_marker(
                        "on_c").kwargs.get("grad", True)
            names = [c.name for c in members]
            assert len(set(names)) == len(names), f"case names repeat in group {key}: {names}"
            _compiled_groups[key] = harness.CompiledGroup(members, backend, key[2])
        _compiled_groups[key].check(case)

    return check
