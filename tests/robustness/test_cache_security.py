"""The compile cache loads only what nobody but the current user (or root) can have
written, keys ``-march=native`` builds by the CPU, uses a read-only cache, and cleans up
after a killed compile (graphc/backends/c/build.py, cachedir.py).

A planted library is the real one plus a constructor that leaves a mark when it is
loaded, with a matching checksum sidecar: it is loaded when its entry is trusted (the
control) and never when the entry, the file or the cache root is writable by group or
others or belongs to another user. Foreign owners are real (chown to nobody) when the
tests run as root, simulated (``cachedir.is_ours``) otherwise.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.backends.c import build, cachedir
from graphc.env import find_c_compiler

pytestmark = pytest.mark.needs_c
ROOT = Path(gc.__file__).resolve().parent.parent
NOBODY = 65534


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh cache (GRAPHC_CACHE_DIR) and fresh per-process state of the build module."""
    path = tmp_path / "home" / "cache"
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(path))
    monkeypatch.setattr(build, "_fallback_dir", None)
    monkeypatch.setattr(build, "_warned", set())
    return path


@pytest.fixture
def compiles(monkeypatch) -> list:
    calls = []
    real = build._compile
    monkeypatch.setattr(build, "_compile", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    return calls


def _graph(k: float):
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        y = gc.tanh(x) * k + 0.5
    return g, x, y


XV = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)


def _run(g, x, y):
    sess = gc.Session(g, backend="c")
    out = sess.run(y, {x: XV})
    return out, sess.compile([y]).executable.build_info


def _plant(lib: Path, mark: Path) -> None:
    """Replace ``lib`` by the same kernel plus a constructor that creates ``mark``; the
    sidecar checksum matches (what an attacker who can write there would do)."""
    src = (lib.parent / "kernel.c").read_text() + textwrap.dedent(f"""
        __attribute__((constructor)) static void planted(void) {{
            FILE *f = fopen("{mark}", "w"); if (f) fclose(f);
        }}
    """)
    planted = lib.parent.parent / "planted.c"
    planted.write_text(src)
    out = lib.parent.parent / "planted.so"
    subprocess.run([find_c_compiler()[0], *build.flags(), str(planted), "-o", str(out), "-lm"],
                   check=True, capture_output=True)
    os.replace(out, lib)
    lib.with_suffix(".sha256").write_text(hashlib.sha256(lib.read_bytes()).hexdigest())
    os.chmod(lib, 0o644)


def _foreign(monkeypatch, path: Path) -> None:
    """Make ``path`` belong to another user: really (as root) or for the ownership check."""
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)
    else:
        ino = os.stat(path).st_ino
        real = cachedir.is_ours
        monkeypatch.setattr(cachedir, "is_ours", lambda st: st.st_ino != ino and real(st))


def _built_not_loaded(monkeypatch, g, y) -> Path:
    """Compile ``y``'s library without loading it (a path loads once per process)."""
    with monkeypatch.context() as m:
        m.setattr(build, "_open", lambda lib: None)
        return Path(gc.Session(g, backend="c").compile([y]).executable.build_info["library"])


def test_a_planted_library_in_a_trusted_entry_is_loaded(cache, tmp_path, monkeypatch):
    """The control of the next test: planting works, and a trusted entry is used."""
    g, x, y = _graph(0.125)
    lib = _built_not_loaded(monkeypatch, g, y)
    mark = tmp_path / "planted-ran"
    _plant(lib, mark)
    out, info = _run(*_graph(0.125))
    assert info["cached"] and Path(info["library"]) == lib and mark.exists()
    np.testing.assert_allclose(out, np.tanh(XV) * 0.125 + 0.5, rtol=1e-6)


@pytest.mark.parametrize("how", ["entry dir group-writable", "library other-writable",
                                 "cache root group-writable", "library foreign-owned",
                                 "entry dir foreign-owned"])
def test_a_planted_library_is_not_loaded_from_an_entry_others_can_write(cache, tmp_path, monkeypatch,
                                                                         how, compiles):
    k = 1.0 + len(how) / 10  # a graph of its own per case
    g, x, y = _graph(k)
    lib = _built_not_loaded(monkeypatch, g, y)
    mark = tmp_path / "planted-ran"
    _plant(lib, mark)
    target = {"entry": lib.parent, "library": lib, "cache": cache}[how.split()[0]]
    if "foreign" in how:
        _foreign(monkeypatch, target)
    else:
        os.chmod(target, os.stat(target).st_mode | (0o020 if "group" in how else 0o002))
    with pytest.warns(RuntimeWarning, match="not loading from") as record:
        out, info = _run(*_graph(k))
    assert str(target) in str(record[0].message) and "GRAPHC_CACHE_DIR" in str(record[0].message)
    np.testing.assert_allclose(out, np.tanh(XV) * k + 0.5, rtol=1e-6)
    assert not mark.exists(), f"the planted library ran ({how})"
    assert len(compiles) == 2 and not info["cached"]
    built = Path(info["library"])
    if how.startswith("library"):  # the entry is trusted: the library is replaced there
        assert built == lib and cachedir.distrust(lib, cache / "c") is None
    else:  # the entry is not: built in this process's private directory
        assert not built.is_relative_to(cache) and built.is_relative_to(build._fallback_dir)


def test_cache_directories_are_created_private(cache, monkeypatch):
    old = os.umask(0o002)  # a permissive umask does not matter
    try:
        _, info = _run(*_graph(0.25))
    finally:
        os.umask(old)
    lib = Path(info["library"])
    created = [cache.parent, cache, cache / "c", lib.parent.parent, lib.parent]
    assert [oct(os.stat(d).st_mode & 0o777) for d in created] == [oct(0o700)] * len(created)
    assert not os.stat(lib).st_mode & 0o022
    assert cachedir.distrust(lib, cache / "c") is None


def test_the_cpu_and_what_native_means_to_the_compiler_are_in_the_key(monkeypatch):
    compiler = find_c_compiler()
    opts = build.DEFAULT_FLAGS
    base = build.cache_entry("src", opts, compiler)
    monkeypatch.setattr(build, "native_target", lambda cc, flags: "-march= other -mavx512f"
                        if "-march=native" in flags else "")
    other_isa = build.cache_entry("src", opts, compiler)
    monkeypatch.setattr(build, "cpu_identity", lambda: "x86_64|flags: sse2")
    other_cpu = build.cache_entry("src", opts, compiler)
    assert base[0] == other_isa[0] and base[1] != other_isa[1]  # same folder, another library
    assert other_cpu[0] != other_isa[0]  # another CPU: another folder (found without compiler)
    # without -march=native neither matters
    portable = build.cache_entry("src", build.PORTABLE_FLAGS, compiler)
    monkeypatch.undo()
    assert build.cache_entry("src", build.PORTABLE_FLAGS, compiler) == portable


def test_native_target_asks_the_compiler_once():
    from graphc.env import native_target

    compiler = find_c_compiler()[0]
    native_target.cache_clear()
    text = native_target(compiler, ("-O3", "-march=native"))
    assert text and native_target(compiler, ("-O3", "-march=native")) is text
    assert native_target.cache_info().misses == 1
    assert native_target(compiler, ("-O3",)) == ""
    if "gcc" in find_c_compiler()[1].lower():  # GCC names the CPU it chose
        assert "-march=" in text and "native" not in text


def test_a_library_from_another_cpu_is_not_loaded_without_a_compiler(cache, monkeypatch):
    g, x, y = _graph(0.75)
    _run(g, x, y)
    monkeypatch.setattr(build, "cpu_identity", lambda: "x86_64|flags: another cpu")
    monkeypatch.setattr(build, "find_c_compiler", lambda: None)
    monkeypatch.setattr(build, "_loaded", {})
    with pytest.raises(gc.GraphcError, match="not in the cache"):
        _run(*_graph(0.75))


def test_a_read_only_cache_that_holds_the_graph_is_used(cache, monkeypatch, compiles):
    g, x, y = _graph(1.5)
    expected, first = _run(g, x, y)
    assert len(compiles) == 1
    for p in [cache, *cache.rglob("*")]:
        os.chmod(p, 0o555 if p.is_dir() else 0o444)
    if os.geteuid() == 0:  # root writes anyway: make the cache's write probe see EROFS
        real = cachedir.is_writable
        monkeypatch.setattr(cachedir, "is_writable", lambda folder: "Read-only file system"
                            if Path(folder).is_relative_to(cache) else real(folder))
    try:
        monkeypatch.setattr(build, "_loaded", {})
        for _ in range(2):
            out, info = _run(*_graph(1.5))
            assert info["cached"] and info["library"] == first["library"]
            np.testing.assert_array_equal(out, expected)
        assert len(compiles) == 1 and build._fallback_dir is None
        # a graph it does not hold is built elsewhere, with a warning
        with pytest.warns(RuntimeWarning, match="not writable"):
            _, info = _run(*_graph(2.5))
        assert len(compiles) == 2 and Path(info["library"]).is_relative_to(build._fallback_dir)
    finally:
        for p in [cache, *cache.rglob("*")]:
            os.chmod(p, 0o700 if p.is_dir() else 0o600)


def test_a_killed_compile_leaves_nothing_behind_after_the_next_build(cache, tmp_path):
    """A compile killed mid-way (its compiler too) leaves its build directory, with the
    compiler's own temporary files; the next build anywhere in the cache removes it."""
    started = tmp_path / "started"
    wrapper = tmp_path / "slow-cc"
    wrapper.write_text(f'#!/bin/sh\ncase "$*" in *kernel.c*) touch "$TMPDIR/cc-temp.s"; '
                       f'touch "{started}"; sleep 60;; esac\nexec "{find_c_compiler()[0]}" "$@"\n')
    wrapper.chmod(0o755)
    script = textwrap.dedent("""
        import numpy as np, graphc as gc
        with gc.Graph() as g:
            x = gc.placeholder((None, 3), name="x")
            y = gc.exp(x) * 3.0
        gc.Session(g, backend="c").run(y, {x: np.ones((2, 3), np.float32)})
    """)
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache), CC=str(wrapper),
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    child = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not started.exists() and time.time() < deadline and child.poll() is None:
            time.sleep(0.02)
        assert started.exists(), "the compile did not start"
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    left = list((cache / "c").glob("*/*/.build-*"))
    assert len(left) == 1 and (left[0] / "cc-temp.s").exists()
    assert not list((cache / "c").glob("*/*/*.so"))
    # another host's fresh build directory and this process's own stay
    other = left[0].parent / f".build-otherhost-{child.pid}-abc"
    other.mkdir()
    mine = cachedir.build_dir(left[0].parent)
    _run(*_graph(3.5))
    assert not left[0].exists() and other.exists() and mine.exists()
    old = time.time() - cachedir.STALE_AFTER_S - 60
    os.utime(other, (old, old))
    _run(*_graph(4.5))
    assert not other.exists() and mine.exists()


def test_a_directory_where_the_library_goes_is_a_graphc_error_naming_it(cache, monkeypatch):
    g, x, y = _graph(5.5)
    _, info = _run(g, x, y)
    lib = Path(info["library"])
    lib.unlink()
    lib.mkdir()
    monkeypatch.setattr(build, "_loaded", {})
    with pytest.raises(gc.GraphcError, match="in the way") as err:
        _run(*_graph(5.5))
    assert str(lib) in str(err.value)


def test_cc_naming_a_missing_compiler_says_so(cache, monkeypatch):
    from graphc.env import find_c_compiler as find

    monkeypatch.setenv("CC", "/nonexistent/gcc")
    find.cache_clear()
    try:
        with pytest.raises(gc.GraphcError, match="CC=/nonexistent/gcc names a compiler that "
                                                 "does not exist"):
            gc.Session(gc.Graph(), backend="c")
    finally:
        find.cache_clear()


def test_a_planted_interface_module_is_not_run_from_a_writable_cache(cache, tmp_path):
    """The parsed C declarations are cached as a Python module: code, held to the same rule."""
    script = "from graphc.backends.c import build; build.native_ffi(); print(build.native_ffi.__name__)"
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache),
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True)
    (module,) = (cache / "c").glob("_graphc_abi_*.py")
    mark = tmp_path / "module-ran"
    clean = module.read_text()
    module.write_text(f"open({str(mark)!r}, 'w').close()\n" + clean)
    os.chmod(module, 0o666)
    proc = subprocess.run([sys.executable, "-W", "always", "-c", script], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert not mark.exists() and "not loading from" in proc.stderr
    assert module.read_text() == clean and not os.stat(module).st_mode & 0o022  # replaced
    module.write_text(f"open({str(mark)!r}, 'w').close()\n" + clean)  # the control: a
    os.chmod(module, 0o644)  # trusted module is run
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True)
    assert mark.exists()
