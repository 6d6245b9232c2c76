"""Tests for graphc.env: cache directory, compiler and Graphviz discovery."""

from __future__ import annotations

import os
import platform
import shutil
import sysconfig
from pathlib import Path

import pytest

import graphc
from graphc import env


@pytest.fixture
def fresh_compiler_cache():
    env.find_c_compiler.cache_clear()
    yield
    env.find_c_compiler.cache_clear()


def test_cache_dir_honours_graphc_cache_dir(monkeypatch, tmp_path):
    target = tmp_path / "my-cache"
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(target))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert env.cache_dir() == target
    assert not target.exists(), "cache_dir() must not create the directory"


def test_cache_dir_uses_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.delenv("GRAPHC_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert env.cache_dir() == tmp_path / "graphc"


def test_cache_dir_default_and_relative_xdg_ignored(monkeypatch, tmp_path):
    monkeypatch.delenv("GRAPHC_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")
    assert env.cache_dir() == tmp_path / ".cache" / "graphc"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert env.cache_dir() == tmp_path / ".cache" / "graphc"


def test_cache_dir_empty_override_is_ignored(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert env.cache_dir() == tmp_path / "graphc"


@pytest.mark.skipif(
    shutil.which("gcc") is None and shutil.which("clang") is None,
    reason="neither gcc nor clang is on PATH",
)
def test_find_c_compiler_identifies_gcc_or_clang(monkeypatch, fresh_compiler_cache):
    monkeypatch.delenv("CC", raising=False)
    found = env.find_c_compiler()
    assert found is not None
    path, version = found
    assert os.path.isabs(path) and os.access(path, os.X_OK)
    assert "gcc" in version.lower() or "clang" in version.lower(), version
    assert "\n" not in version
    assert env.find_c_compiler() == found  # cached, same answer


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not on PATH")
def test_find_c_compiler_honours_cc(monkeypatch, fresh_compiler_cache):
    monkeypatch.setenv("CC", "gcc")
    path, version = env.find_c_compiler()
    assert Path(path).name == "gcc"
    assert "gcc" in version.lower()


def test_find_c_compiler_missing_cc_is_not_replaced(monkeypatch, fresh_compiler_cache):
    monkeypatch.setenv("CC", "graphc-no-such-compiler-xyz")
    assert env.find_c_compiler() is None


@pytest.mark.parametrize("cc, says", [
    ("/nonexistent/gcc", "CC=/nonexistent/gcc names a compiler that does not exist"),
    ("graphc-no-such-compiler-xyz", "names a compiler that is not on PATH"),
    ("gcc -m32", "is not one program"),
    ("/bin/false", "CC=/bin/false names a compiler that cannot run: `/bin/false --version` failed"),
])
def test_c_compiler_problem_says_what_is_wrong_with_cc(monkeypatch, fresh_compiler_cache, cc, says):
    if cc.startswith("/bin/") and not os.path.exists(cc):
        pytest.skip(f"{cc} does not exist here")
    monkeypatch.setenv("CC", cc)
    assert env.find_c_compiler() is None
    assert says in env.c_compiler_problem()


def test_c_compiler_problem_without_cc_and_with_a_compiler(monkeypatch, fresh_compiler_cache,
                                                          tmp_path):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "none of cc, gcc, clang is on PATH" in env.c_compiler_problem()
    monkeypatch.undo()
    env.find_c_compiler.cache_clear()
    if env.find_c_compiler() is not None:
        assert env.c_compiler_problem() is None


def test_cpu_identity_names_the_machine():
    ident = env.cpu_identity()
    assert ident.startswith(platform.machine()) and ident == env.cpu_identity()


def test_find_c_compiler_none_on_empty_path(monkeypatch, fresh_compiler_cache, tmp_path):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert env.find_c_compiler() is None


def test_find_dot_matches_path_lookup():
    expected = shutil.which("dot")
    found = env.find_dot()
    if expected is None:
        assert found is None
    else:
        assert found is not None and Path(found).name == "dot" and os.path.isabs(found)


@pytest.mark.skipif(
    not os.environ.get("GRAPHC_TEST_EXPECT_INSTALLED"),
    reason="set GRAPHC_TEST_EXPECT_INSTALLED=1 to check that tests use the installed graphc",
)
def test_tests_use_the_installed_package():
    """CI installs graphc non-editably; the source tree must not shadow it."""
    installed = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    location = Path(graphc.__file__).resolve().parent.parent
    assert location in installed, f"graphc imported from {location}, not from {installed}"
