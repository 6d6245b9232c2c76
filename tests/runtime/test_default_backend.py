"""``backend="auto"`` is the default: compiled C when a compiler (or the cache) makes it
available, else NumPy, said once per process (and always in ``sess.backend_choice``)."""

from __future__ import annotations

import inspect
import logging
import warnings

import numpy as np
import pytest

import graphc as gc
from graphc import backends
from graphc.backends.c import build, executable
from graphc.backends.reference import ReferenceExecutable


def _graph():
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        y = gc.exp(x) * 2.0 + 1.0
    return g, x, y


@pytest.fixture
def no_compiler(monkeypatch):
    """No C compiler anywhere, and the fallback not yet reported in this process."""
    for module in (executable, build):
        monkeypatch.setattr(module, "find_c_compiler", lambda: None)
    monkeypatch.setattr(gc.env, "find_c_compiler", lambda: None)
    monkeypatch.setattr(backends, "_warned_fallback", False)


def test_the_default_is_auto():
    assert inspect.signature(gc.Session).parameters["backend"].default == "auto"


@pytest.mark.needs_c
def test_default_session_compiles_c_and_says_nothing():
    g, x, y = _graph()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sess = gc.Session(g)
    assert sess.backend == "c" and "'c'" in sess.backend_choice
    compiled = sess.compile(y)
    assert compiled.source is not None and "gc_run" in compiled.source
    xv = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(sess.run(y, {x: xv}), np.exp(xv) * 2 + 1, rtol=1e-6)


def test_without_a_compiler_it_falls_back_to_numpy_and_says_why_once(no_compiler, monkeypatch,
                                                                      caplog):
    monkeypatch.setattr(executable, "_cache_has_libraries", lambda: False)
    g, x, y = _graph()
    with caplog.at_level(logging.INFO, logger="graphc"), pytest.warns(RuntimeWarning) as record:
        sess = gc.Session(g)
    assert sess.backend == "numpy"
    assert "no C compiler found" in sess.backend_choice and "'numpy'" in sess.backend_choice
    (w,) = record
    assert "NumPy" in str(w.message) and "no C compiler found" in str(w.message)
    assert w.filename == __file__  # points at the user's Session(...) line
    xv = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(sess.run(y, {x: xv}), np.exp(xv) * 2 + 1, rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second time: no warning
        again = gc.Session(g)
    assert again.backend == "numpy" and again.backend_choice == sess.backend_choice
    assert sum("picked 'numpy'" in r.getMessage() for r in caplog.records) == 1
    # asking for C explicitly is still a clear error, never a silent fallback
    with pytest.raises(gc.GraphcError, match="no C compiler"):
        gc.Session(g, backend="c")
    assert backends.why_unavailable("c") and backends.why_unavailable("auto") is None


def test_with_only_the_cache_an_uncached_step_runs_on_numpy(no_compiler, monkeypatch, tmp_path):
    monkeypatch.setattr(executable, "_cache_has_libraries", lambda: True)
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "empty-cache"))
    g, x, y = _graph()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sess = gc.Session(g)  # C is available: the cache may hold this graph
    assert sess.backend == "c"
    with pytest.warns(RuntimeWarning, match="not in the compile cache"):
        compiled = sess.compile(y)
    assert isinstance(compiled.executable, ReferenceExecutable)
    xv = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(sess.run(y, {x: xv}), np.exp(xv) * 2 + 1, rtol=1e-6)
    assert sess.explain(y).backend == "numpy"
    with pytest.raises(gc.GraphcError, match="not in the cache"):
        gc.Session(g, backend="c").compile(y)  # explicit C: the clear error
