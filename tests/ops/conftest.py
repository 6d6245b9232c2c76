"""Fixtures of the op tests: the helpers of ``gradcheck.py`` (same folder).

The module is loaded from its path under a unique name, so this works with
any pytest import mode and cannot clash with another folder's helpers.

``helpers`` is parametrized over the backends (``numpy``, ``c``): every op
test that builds its graphs through ``helpers.run`` / ``helpers.gradcheck``
runs on each backend, skipped (with the reason) where a backend is
unavailable. On the C backend every forward test runs, but of the gradient
tests (finite differences: three compiled fetch sets per check, about a
second of compiler time each on a cold cache) only a representative subset
that reaches every backward kernel: ``C_GRADIENT_TESTS`` below. The rest of
the op gradients are compared between C and NumPy in
``tests/backends/test_c_agreement.py``, with one shared graph per op.

Environment:

* ``GRAPHC_TEST_BACKEND=c`` runs *every* op test (gradients included) on
  that backend only, as before backends were a fixture parameter;
* ``GRAPHC_TEST_ALL_GRADIENTS=1`` runs every gradient test on every backend.
"""

import importlib.util
import os
import pathlib
import re
import sys

import pytest

from graphc.backends import why_unavailable

_NAME = "graphc_tests_ops_gradcheck"

#: Backends the ``helpers`` fixture is parametrized over.
BACKENDS = ("numpy", "c")

#: Test functions that are gradient checks (finite differences or gc.grad values).
_GRADIENT = re.compile(r"grad|second|derivative|_fd$|multi_input_concat")

#: Gradient tests that also run on the C backend (by function name): finite differences
#: of the elementwise derivatives of every unary and binary op, broadcast-gradient sums,
#: batch dim None, pooling backward, softmax / cross-entropy / regression losses, dropout,
#: reductions, shape ops, slicing and second order. matmul and conv2d gradients (the
#: GEMM/conv templates make each compile slow) are compared with the NumPy backend in
#: tests/backends/test_c_agreement.py instead.
C_GRADIENT_TESTS = frozenset({
    "test_unary_gradient_batch_none",
    "test_binary_gradient_batch_none",
    "test_where_gradient",
    "test_cast_gradient",
    "test_comparisons_have_no_gradient",
    "test_min_max_tie_gradient_goes_to_first",
    "test_second_derivative_binary",
    "test_max_pool_gradient_goes_to_first_maximum",
    "test_pool_gradient_batch_none",
    "test_softmax_gradient",
    "test_cross_entropy_gradients",
    "test_softmax_cross_entropy_grad_gradient",
    "test_regression_loss_gradients",
    "test_dropout_gradient_fd",
    "test_reduce_gradient_batch_none",
    "test_shape_op_gradient_batch_none",
    "test_one_hot_has_no_gradient",
    "test_multi_input_concat",
    "test_slice_second_order",
})


def _load():
    if _NAME not in sys.modules:
        path = pathlib.Path(__file__).with_name("gradcheck.py")
        spec = importlib.util.spec_from_file_location(_NAME, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[_NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[_NAME]


def _params() -> tuple[str, ...]:
    only = os.environ.get("GRAPHC_TEST_BACKEND")
    return (only,) if only else BACKENDS


def pytest_collection_modifyitems(config, items):
    """Skip the C variants of the gradient tests outside ``C_GRADIENT_TESTS``."""
    if os.environ.get("GRAPHC_TEST_BACKEND") or os.environ.get("GRAPHC_TEST_ALL_GRADIENTS"):
        return
    here = pathlib.Path(__file__).parent
    skip = pytest.mark.skip(reason="C backend: only a representative subset of the gradient "
                                   "tests runs here (GRAPHC_TEST_ALL_GRADIENTS=1 runs all); "
                                   "tests/backends/test_c_agreement.py covers every op")
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or callspec.params.get("helpers", "numpy") == "numpy":
            continue
        if pathlib.Path(str(item.fspath)).parent != here:
            continue
        name = item.originalname or item.name
        if _GRADIENT.search(name) and name not in C_GRADIENT_TESTS:
            item.add_marker(skip)


@pytest.fixture(scope="session", params=_params())
def helpers(request):
    """The helper module (run, assert_close, gradcheck, rand, distinct) with ``run`` and
    ``gradcheck`` bound to one backend; ``helpers.backend`` names it."""
    why = why_unavailable(request.param)
    if why:
        pytest.skip(f"backend {request.param!r} unavailable: {why}")
    return _load().for_backend(request.param)


@pytest.fixture(scope="session")
def gradcheck():
    """Central finite-difference gradient check (see gradcheck.gradcheck)."""
    return _load().gradcheck


@pytest.fixture(scope="session")
def run_op():
    """Build a graph on placeholders, run it on the default session, return arrays."""
    return _load().run


@pytest.fixture(scope="session")
def assert_close():
    """Compare with the contract's tolerances (elementwise or norm-relative)."""
    return _load().assert_close
