"""Fixtures of the op tests: the helpers of ``gradcheck.py`` (same folder).

The module is loaded from its path under a unique name, so this works with
any pytest import mode and cannot clash with another folder's helpers.
"""

import importlib.util
import pathlib
import sys

import pytest

_NAME = "graphc_tests_ops_gradcheck"


def _load():
    if _NAME not in sys.modules:
        path = pathlib.Path(__file__).with_name("gradcheck.py")
        spec = importlib.util.spec_from_file_location(_NAME, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[_NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[_NAME]


@pytest.fixture(scope="session")
def helpers():
    """The whole helper module: run, assert_close, gradcheck, rand, distinct."""
    return _load()


@pytest.fixture(scope="session")
def gradcheck():
    """Central finite-difference gradient check (see gradcheck.gradcheck)."""
    return _load().gradcheck


@pytest.fixture(scope="session")
def run_op():
    """Build a graph on placeholders, run it on the NumPy session, return arrays."""
    return _load().run


@pytest.fixture(scope="session")
def assert_close():
    """Compare with the contract's tolerances (elementwise or norm-relative)."""
    return _load().assert_close
