"""The C backend's build cache and run-time behaviour.

* the on-disk cache: concurrent compiles, corrupt entries, an unwritable cache
  directory, warm starts without a compiler, compile errors;
* run time: a new batch size never recompiles, re-runs are bit-identical,
  feeds are passed without copying.

Tests that write to the cache point ``GRAPHC_CACHE_DIR`` at a fresh temporary
directory; child processes import the same graphc as this process.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.backends.c import build
from graphc.backends.c import executable as c_backend
from graphc.env import find_c_compiler

pytestmark = pytest.mark.needs_c
ROOT = Path(gc.__file__).resolve().parent.parent


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    """An empty cache directory for this test (GRAPHC_CACHE_DIR)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def compile_count(monkeypatch) -> list:
    """Records every real compiler run of graphc.backends.c.build (one entry each)."""
    calls = []
    real = build._compile

    def counting(source, folder, lib, compiler, opts, **linked):
        calls.append(str(lib))
        return real(source, folder, lib, compiler, opts, **linked)

    monkeypatch.setattr(build, "_compile", counting)
    return calls


def _child_env(cache: Path, **extra) -> dict:
    env = dict(os.environ)
    env["GRAPHC_CACHE_DIR"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


# -- the build cache --------------------------------------------------------------------------

def _small_graph(n_hidden: int = 8):
    """x (N, 5) -> relu(x @ W + b) -> row sums; uses the GEMM template (a real compile)."""
    with gc.Graph(seed=1) as g:
        x = gc.placeholder((None, 5), name="x")
        w = gc.variable(np.linspace(-1, 1, 5 * n_hidden).reshape(5, n_hidden).astype(np.float32),
                        name="W")
        b = gc.variable(np.linspace(-0.5, 0.5, n_hidden).astype(np.float32), name="b")
        y = gc.sum(gc.relu(x @ w + b), axis=1)
    return g, x, y


_CHILD_SMALL_GRAPH = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import graphc as gc
""") + inspect.getsource(_small_graph) + textwrap.dedent("""
    g, x, y = _small_graph()
    xv = np.arange(35, dtype=np.float32).reshape(7, 5) / 10 - 1
""")


def _run_child(script: str, env: dict, timeout: float = 120) -> dict:
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _expected_small(xv: np.ndarray) -> np.ndarray:
    g, x, y = _small_graph()
    return gc.Session(g, backend="numpy").run(y, {x: xv})


@pytest.mark.slow
def test_two_processes_compiling_the_same_graph_at_once_both_succeed(fresh_cache):
    barrier = fresh_cache.parent / "barrier"
    barrier.mkdir()
    script = _CHILD_SMALL_GRAPH + textwrap.dedent(f"""
        from pathlib import Path
        barrier = Path({str(barrier)!r})
        (barrier / sys.argv[1]).touch()
        deadline = time.time() + 60
        while len(list(barrier.iterdir())) < 2 and time.time() < deadline:
            time.sleep(0.001)
        t0 = time.time()
        sess = gc.Session(g, backend="c")
        out = sess.run(y, {{x: xv}})
        info = sess.compile([y]).executable.build_info
        print(json.dumps({{"out": out.tolist(), "cached": info["cached"],
                          "library": info["library"], "t0": t0, "t1": time.time()}}))
    """)
    env = _child_env(fresh_cache)
    procs = [subprocess.Popen([sys.executable, "-c", script, name], env=env, cwd=str(ROOT),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("a", "b")]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err[-4000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    a, b = results
    expected = _expected_small(np.arange(35, dtype=np.float32).reshape(7, 5) / 10 - 1)
    for r in results:
        np.testing.assert_allclose(r["out"], expected, rtol=1e-5)
    assert a["library"] == b["library"]
    assert not (a["cached"] and b["cached"])  # at least one of them compiled
    # one valid entry, nothing half-written left behind
    lib = Path(a["library"])
    assert build._valid(lib)
    assert sorted(p.name for p in lib.parent.iterdir()) == sorted(
        [lib.name, lib.with_suffix(".sha256").name, "kernel.c", "build.json"])


@pytest.mark.slow
def test_corrupt_cached_library_is_detected_and_rebuilt(fresh_cache, compile_count):
    g, x, y = _small_graph()
    xv = np.random.default_rng(2).uniform(-1, 1, (7, 5)).astype(np.float32)
    expected = gc.Session(g, backend="numpy").run(y, {x: xv})
    sess = gc.Session(g, backend="c")
    np.testing.assert_allclose(sess.run(y, {x: xv}), expected, rtol=1e-5)
    info = sess.compile([y]).executable.build_info
    lib = Path(info["library"])
    assert not info["cached"] and len(compile_count) == 1
    good = lib.read_bytes()

    def replace_with(data: bytes) -> None:
        # a new file (inode): the copy this process has mapped stays intact
        tmp = lib.with_suffix(".broken")
        tmp.write_bytes(data)
        os.replace(tmp, lib)

    broken = [good[: len(good) // 2],  # truncated
              good[:100] + bytes([good[100] ^ 0xFF]) + good[101:],  # one flipped byte
              b""]  # empty
    for k, data in enumerate(broken, start=2):
        replace_with(data)
        assert not build._valid(lib)
        sess = gc.Session(g, backend="c")
        np.testing.assert_allclose(sess.run(y, {x: xv}), expected, rtol=1e-5)
        assert sess.compile([y]).executable.build_info["cached"] is False
        assert len(compile_count) == k
        assert build._valid(lib)
    # a missing sidecar is also rebuilt; an intact entry is then a hit
    lib.with_suffix(".sha256").unlink()
    assert gc.Session(g, backend="c").compile([y]).executable.build_info["cached"] is False
    assert gc.Session(g, backend="c").compile([y]).executable.build_info["cached"] is True
    assert len(compile_count) == len(broken) + 2


def _unwritable_cache_dirs(tmp_path: Path):
    """(cache dir, why) pairs graphc cannot write to."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    yield blocker / "cache", "a path below a regular file"
    ro = tmp_path / "read-only"
    (ro / "c").mkdir(parents=True)
    os.chmod(ro / "c", 0o555)
    os.chmod(ro, 0o555)
    probe = ro / "c" / "probe"
    try:
        probe.write_text("")
        probe.unlink()  # root ignores permission bits: not a read-only directory here
    except OSError:
        yield ro, "a read-only directory"
    finally:
        os.chmod(ro, 0o755)
        os.chmod(ro / "c", 0o755)


def test_unwritable_cache_directory_falls_back_to_a_temporary_one(tmp_path, monkeypatch):
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        y = gc.tanh(x) * 2.0 + 0.125
    xv = np.linspace(-2, 2, 12, dtype=np.float32).reshape(4, 3)
    for cache, why in _unwritable_cache_dirs(tmp_path):
        monkeypatch.setenv("GRAPHC_CACHE_DIR", str(cache))
        monkeypatch.setattr(build, "_fallback_dir", None)
        with pytest.warns(RuntimeWarning, match="not writable") as record:
            sess = gc.Session(g, backend="c")
            out = sess.run(y, {x: xv})
        fallback = build._fallback_dir
        try:
            assert fallback is not None and str(cache) in str(record[0].message), why
            info = sess.compile([y]).executable.build_info
            assert Path(info["library"]).is_relative_to(fallback), (why, info)
            np.testing.assert_allclose(out, np.tanh(xv) * 2 + 0.125, rtol=1e-5)
            # warned once per process: a second compile in the fallback is silent
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                gc.Session(g, backend="c").run(y * 3.0, {x: xv})
        finally:
            shutil.rmtree(fallback, ignore_errors=True)


@pytest.mark.slow
def test_warm_start_in_a_new_process_does_not_run_the_compiler(fresh_cache, monkeypatch,
                                                                tmp_path):
    compiler = find_c_compiler()
    assert compiler is not None
    log = tmp_path / "cc.log"
    wrapper = tmp_path / "logging-cc"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexec "{compiler[0]}" "$@"\n')
    wrapper.chmod(0o755)
    # 1. this process compiles through the logging wrapper
    monkeypatch.setenv("CC", str(wrapper))
    g, x, y = _small_graph()
    sess = gc.Session(g, backend="c")
    xv = np.arange(35, dtype=np.float32).reshape(7, 5) / 10 - 1
    expected = sess.run(y, {x: xv})
    assert sess.compile([y]).executable.build_info["cached"] is False
    compiles = [ln for ln in log.read_text().splitlines() if "kernel.c" in ln]
    # the step, and once per machine the kernel library it links (compiled from its own
    # kernel.c, under kernel-library/)
    library = [ln for ln in compiles if "/kernel-library/" in next(
        w for w in ln.split() if w.endswith("kernel.c"))]
    assert len(compiles) - len(library) == 1 and len(library) <= 1
    # 2. a new process: first with no compiler at all, then with the wrapper again. It
    # defines the graph at another site ("<string>:N"): the cache key ignores sites.
    script = _CHILD_SMALL_GRAPH + textwrap.dedent(f"""
        import os
        from graphc.env import find_c_compiler
        assert find_c_compiler() is None, find_c_compiler()
        sess = gc.Session(g, backend="c")
        a = sess.run(y, {{x: xv}})
        info_a = sess.compile([y]).executable.build_info
        try:  # a graph that is not in the cache needs the compiler: a clear error
            sess.run(y * 3.0, {{x: xv}})
            uncached = "no error"
        except gc.GraphcError as exc:
            uncached = str(exc)
        os.environ["CC"] = {str(wrapper)!r}
        sess = gc.Session(g, backend="c")
        b = sess.run(y, {{x: xv}})
        info_b = sess.compile([y]).executable.build_info
        print(json.dumps({{"a": a.tolist(), "b": b.tolist(), "cached_a": info_a["cached"],
                          "cached_b": info_b["cached"], "library": info_b["library"],
                          "uncached": uncached}}))
    """)
    res = _run_child(script, _child_env(fresh_cache, CC="/nonexistent/cc"))
    assert res["cached_a"] is True and res["cached_b"] is True
    assert res["library"] == sess.compile([y]).executable.build_info["library"]
    assert "needs a C compiler" in res["uncached"] and "not in the cache" in res["uncached"]
    np.testing.assert_array_equal(np.asarray(res["a"], np.float32), expected)
    np.testing.assert_array_equal(np.asarray(res["b"], np.float32), expected)
    lines = log.read_text().splitlines()
    assert [ln for ln in lines if "kernel.c" in ln] == compiles, lines  # no new compile
    # besides compiles: --version (which compiler) and, once per process, what -march=native
    # means here (the cache key)
    assert all("kernel.c" in ln or ln.strip() == "--version"
               or re.fullmatch(r"-march=native( \S+)* -Q --help=target", ln.strip()) for ln in lines), lines
    assert sum("--help=target" in ln for ln in lines) <= 2, lines


def test_no_compiler_and_an_empty_cache_make_the_backend_unavailable(fresh_cache, monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(gc.GraphcError, match="no C compiler"):
        gc.Session(gc.Graph(), backend="c")  # empty cache: the backend is unavailable


@pytest.mark.slow
def test_compile_error_shows_compiler_message_and_source_path(fresh_cache, monkeypatch):
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        y = gc.sigmoid(x) + 1.0
    xv = np.ones((2, 3), np.float32)
    # a bogus flag
    monkeypatch.setenv("GRAPHC_CFLAGS", "-O2 --graphc-bogus-flag")
    with pytest.raises(gc.GraphcError) as info:
        gc.Session(g, backend="c").run(y, {x: xv})
    message = str(info.value)
    assert "C compilation failed" in message and "--graphc-bogus-flag" in message, message
    assert "unrecognized" in message, message  # the compiler's own words
    src = Path(re.search(r"generated source: (\S+)", message).group(1))
    assert src.is_file() and src.is_relative_to(fresh_cache) and "gc_run" in src.read_text()
    assert not list(src.parent.glob("*.so")) and not list(src.parent.glob("*.tmp"))
    # an error in the generated code itself: the compiler's diagnostic names the line
    monkeypatch.delenv("GRAPHC_CFLAGS")
    real = c_backend.load_or_build
    monkeypatch.setattr(c_backend, "load_or_build",
                        lambda source, key: real(source + "\nint graphc_broken(void) { return }\n", key))
    with pytest.raises(gc.GraphcError) as info:
        gc.Session(g, backend="c").run(y, {x: xv})
    message = str(info.value)
    assert "error" in message and "graphc_broken" in message, message
    src = Path(re.search(r"generated source: (\S+)", message).group(1))
    assert "graphc_broken" in src.read_text()
    assert str(src) in message.split("generated source:")[0]  # gcc's file:line: prefix


# -- run time ---------------------------------------------------------------------------------

def _mlp(seed: int = 7, hidden: int = 600):
    """A small classifier with dropout, trained by SGD with momentum. With batch 64 the
    hidden layer has 38400 elements, above the threshold of the OpenMP loops."""
    rng = np.random.default_rng(seed)
    with gc.Graph(seed=seed) as g:
        x = gc.placeholder((None, 20), name="x")
        labels = gc.placeholder((None,), dtype="int64", name="labels")
        w1 = gc.variable(rng.normal(0, 0.2, (20, hidden)).astype(np.float32), name="W1")
        b1 = gc.variable(np.zeros(hidden, np.float32), name="b1")
        w2 = gc.variable(rng.normal(0, 0.1, (hidden, 3)).astype(np.float32), name="W2")
        h = gc.dropout(gc.relu(x @ w1 + b1), 0.3)
        loss = gc.mean(gc.softmax_cross_entropy(h @ w2, labels))
        train = gc.optim.SGD(lr=0.05, momentum=0.9).minimize(loss)
    return g, x, labels, loss, train, [w1, b1, w2]


def _batch(n: int, seed: int):
    rng = np.random.default_rng(seed)
    xb = rng.normal(size=(n, 20)).astype(np.float32)
    return xb, (xb[:, 0] > 0).astype(np.int64) + (xb[:, 1] > 0.5)


def test_batch_size_change_never_recompiles(fresh_cache, compile_count):
    g, x, labels, loss, train, weights = _mlp()
    ref, sess = gc.Session(g, backend="numpy"), gc.Session(g, backend="c")
    executables = []
    for step, n in enumerate((64, 17, 64, 1)):
        xb, yb = _batch(n, step)
        expected, _ = ref.run([loss, train], {x: xb, labels: yb})
        got, none = sess.run([loss, train], {x: xb, labels: yb})
        assert none is None
        np.testing.assert_allclose(got, expected, rtol=1e-4)
        executables.append(sess.compile([loss, train]).executable)
    assert len(sess._compiled) == 1
    assert len(compile_count) == 1
    assert all(e is executables[0] for e in executables)
    assert executables[0].arena_bytes(17) < executables[0].arena_bytes(64)
    for w in weights:  # the same training trajectory (dropout masks included)
        np.testing.assert_allclose(sess.get_value(w), ref.get_value(w), rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_reruns_are_bit_identical():
    """Same seed, same inputs, fresh graphs and sessions: bit-identical training."""
    runs = []
    for _ in range(2):
        g, x, labels, loss, train, weights = _mlp()
        sess = gc.Session(g, backend="c")
        losses = [sess.run([loss, train], {x: xb, labels: yb})[0]
                  for xb, yb in (_batch(64, s) for s in range(4))]
        runs.append((losses, [sess.get_value(w) for w in weights],
                     sess.run(loss, {x: _batch(64, 9)[0], labels: _batch(64, 9)[1]},
                              training=True)))
    (l1, w1, e1), (l2, w2, e2) = runs
    np.testing.assert_array_equal(l1, l2)
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(e1, e2)
    assert len(set(np.asarray(l1).tolist())) == len(l1)  # it did train (and masks change)


def test_feeds_are_passed_without_copying():
    with gc.Graph() as g:
        x = gc.placeholder((None, 6), name="x")
        i = gc.placeholder((None,), dtype="int64", name="i")
        z = gc.sum(x * 2.0, axis=1) + gc.cast(i, "float32")
    sess = gc.Session(g, backend="c")
    executable = sess.compile([z]).executable

    def passed():  # the addresses gc_run was given for the feeds
        return {int(build.native_ffi().cast("uintptr_t", executable._feed_ptrs[k]))
                for k in range(len(executable.lowered.feeds))}

    xv = np.random.default_rng(3).normal(size=(9, 6)).astype(np.float32)
    iv = np.arange(9, dtype=np.int64)
    expected = (xv * 2).sum(axis=1) + iv
    np.testing.assert_allclose(sess.run(z, {x: xv, i: iv}), expected, rtol=1e-5)
    assert passed() == {xv.ctypes.data, iv.ctypes.data}
    # a strided view or another dtype is converted (a copy), with the same results
    wide = np.repeat(xv, 2, axis=1)[:, ::2]
    assert not wide.flags.c_contiguous
    np.testing.assert_allclose(sess.run(z, {x: wide, i: iv.astype(np.int32)}), expected,
                               rtol=1e-5)
    assert wide.ctypes.data not in passed()
    np.testing.assert_allclose(sess.run(z, {x: xv.astype(np.float64), i: iv}), expected,
                               rtol=1e-5)


def test_results_are_new_arrays_and_variables_are_tracked():
    """Run results are never reused or shared; a replaced variable array is picked up."""
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        w = gc.variable(np.arange(3, dtype=np.float32), name="w")
        y = x * w
    sess = gc.Session(g, backend="c")
    xv = np.random.default_rng(4).normal(size=(2, 3)).astype(np.float32)
    a, b = sess.run([y, y], {x: xv})
    assert not np.shares_memory(a, b)
    a[...] = 0.0
    np.testing.assert_allclose(b, xv * np.arange(3))
    c = sess.run(y, {x: xv})
    assert not np.shares_memory(b, c) and not np.shares_memory(c, xv)
    np.testing.assert_allclose(c, xv * np.arange(3))
    sess.set_value(w, [5.0, 6.0, 7.0])  # a new state array: its address reaches gc_run
    np.testing.assert_allclose(sess.run(y, {x: xv}), xv * np.array([5.0, 6.0, 7.0]), rtol=1e-6)
    np.testing.assert_allclose(b, xv * np.arange(3))  # earlier results untouched


def test_arena_grows_when_openmp_threads_are_raised_between_runs():
    """The GEMM workspace is sized per thread: raising the thread count re-sizes the arena."""
    import ctypes

    try:
        gomp = ctypes.CDLL("libgomp.so.1")
    except OSError:
        pytest.skip("libgomp.so.1 not loadable: the library is not built with GNU OpenMP")
    rng = np.random.default_rng(6)
    with gc.Graph() as g:
        x = gc.placeholder((None, 96), name="x")
        w = gc.variable(rng.standard_normal((96, 160)).astype(np.float32), name="w")
        y = x @ w
    sess = gc.Session(g, backend="c")
    executable = sess.compile([y]).executable
    xv = rng.standard_normal((200, 96)).astype(np.float32)
    before = gomp.omp_get_max_threads()
    try:
        gomp.omp_set_num_threads(1)
        small = executable.arena_bytes(200)
        np.testing.assert_allclose(sess.run(y, {x: xv}), xv @ sess.get_value(w), rtol=2e-5,
                                   atol=1e-4)
        gomp.omp_set_num_threads(4)
        assert executable.arena_bytes(200) > small
        np.testing.assert_allclose(sess.run(y, {x: xv}), xv @ sess.get_value(w), rtol=2e-5,
                                   atol=1e-4)
        assert executable._arena.size >= executable.arena_bytes(200)
    finally:
        gomp.omp_set_num_threads(before)


def test_native_interface_declarations_are_cached_parsed(fresh_cache):
    """A new process loads the parsed declarations of the native interface from the cache
    (cffi's out-of-line ABI mode) instead of parsing C again, and a corrupt entry is
    replaced."""
    script = ("import sys; from graphc.backends.c import build; ffi = build.native_ffi(); "
              "print(type(ffi).__module__, 'pycparser' in sys.modules)")
    first = subprocess.run([sys.executable, "-c", script], env=_child_env(fresh_cache),
                           capture_output=True, text=True, check=True).stdout.split()
    second = subprocess.run([sys.executable, "-c", script], env=_child_env(fresh_cache),
                            capture_output=True, text=True, check=True).stdout.split()
    assert first == ["cffi.api", "True"] and second[1] == "False", (first, second)
    (entry,) = (fresh_cache / "c").glob("_graphc_abi_*.py")
    entry.write_text("this is not python")
    third = subprocess.run([sys.executable, "-c", script], env=_child_env(fresh_cache),
                           capture_output=True, text=True, check=True).stdout.split()
    assert third == ["cffi.api", "True"] and "_cffi_backend" in entry.read_text()


def test_finite_math_flags_warn_that_the_nan_rules_stop_holding(monkeypatch):
    monkeypatch.setattr(build, "_warned", set())
    monkeypatch.setenv("GRAPHC_CFLAGS", "-O3 -ffast-math -fopenmp")
    with pytest.warns(RuntimeWarning, match=r"-ffast-math: .*check_numerics"):
        words = build.flags()
    assert "-ffast-math" in words  # (the user's flags are still used as given)
    monkeypatch.setenv("GRAPHC_CFLAGS", "-O3 -march=native")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build.flags()


@pytest.mark.needs_c
def test_a_transpose_between_arena_buffers_is_right_with_the_default_flags():
    """GCC 12.2's 512-bit auto-vectorization miscompiled this loop (the head split of
    multi-head attention: nearly every element wrong, NaN here); DEFAULT_FLAGS keeps x86
    loops at 256 bits."""
    with gc.Graph() as g:
        x = gc.placeholder((None, 64, 128), name="x")
        y = gc.transpose(gc.reshape(x + 1.0, (None, 64, 4, 32)), (0, 2, 1, 3)) * 2.0
    xv = np.random.default_rng(0).normal(size=(1, 64, 128)).astype("f")
    want = (xv + 1).reshape(1, 64, 4, 32).transpose(0, 2, 1, 3) * 2
    np.testing.assert_array_equal(gc.Session(g, backend="c").run(y, {x: xv}), want)


def test_openmp_threads_spin_briefly_unless_told_otherwise():
    code = "import os, graphc; print(os.environ.get('GOMP_SPINCOUNT'))"
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    for extra, want in (({}, "10000"), ({"GOMP_SPINCOUNT": "5"}, "5"),
                        ({"OMP_WAIT_POLICY": "active"}, "None")):
        out = subprocess.run([sys.executable, "-c", code], env={**base, **extra},
                             capture_output=True, text=True, check=True).stdout.strip()
        assert out == want, (extra, out)


def test_steps_link_the_kernel_library_or_paste_the_templates_alike(fresh_cache, monkeypatch):
    """A step declares the templates' API and links the kernel library built once for these
    flags (its exports are the API's); where the library cannot be built, the step pastes
    the templates and computes the same values."""
    import ctypes

    from graphc.backends.c import templates

    rng = np.random.default_rng(5)
    with gc.Graph() as g:
        x = gc.placeholder((None, 1, 6, 6), name="x")
        w = gc.variable(rng.normal(size=(3, 1, 3, 3)).astype(np.float32), name="w")
        v = gc.variable(rng.normal(size=(12, 4)).astype(np.float32), name="v")
        y = gc.max_pool2d(gc.relu(gc.conv2d(x, w, padding=1)), 2)
        out = gc.reshape(y, (None, 27))[:, :12] @ v
    xv = rng.normal(size=(4, 1, 6, 6)).astype(np.float32)
    sess = gc.Session(g, backend="c")
    linked = sess.run(out, {x: xv})
    source = sess.compile([out]).source
    assert templates.BEGIN in source and "gci_s" not in source  # declarations only
    library = build.kernel_library(find_c_compiler(), build.flags())
    assert library is not None and library.is_file() and str(fresh_cache) in str(library)
    exported = ctypes.CDLL(str(library))
    for fn in ("gc_sgemm", "gc_dgemm_packed", "gc_sconv2d_backward_filter", "gc_dmax_pool2d_select"):
        assert hasattr(exported, fn), fn
    monkeypatch.setattr(build, "kernel_library", lambda compiler, opts: None)
    alone = gc.Session(g, backend="c")
    np.testing.assert_array_equal(alone.run(out, {x: xv}), linked)
    kernel_c = Path(alone.compile([out]).executable.build_info["source"]).read_text()
    assert "gc_sgemm(" in kernel_c and templates.BEGIN not in kernel_c  # the templates pasted
