"""Compile generated C into a shared library, cached on disk by content.

The cache key is a sha256 of the source, the compiler's identity (resolved
path, size and mtime of its binary: no process is started to learn it) and
the flags. Entries are published atomically (write to a temporary name, then
rename), so two processes compiling the same graph at once both succeed; a
sidecar holds the library's own sha256, so a truncated or corrupt entry is
detected and rebuilt. A warm start loads the library without running the
compiler, even when no compiler is installed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import shlex
import subprocess
import tempfile
import warnings
from pathlib import Path

import cffi
from cffi.recompiler import make_py_source

from ...env import cache_dir, find_c_compiler
from ...ir.errors import GraphcError
from .abi import cdef

#: -fno-trapping-math: graphc never reads floating-point exception flags; without it GCC will
#: not turn the selects of relu, gc_expf ... into vector blends
DEFAULT_FLAGS = ["-O3", "-march=native", "-fopenmp", "-fno-trapping-math", "-fPIC", "-shared",
                 "-std=gnu11"]
PORTABLE_FLAGS = ["-O3", "-fno-trapping-math", "-fPIC", "-shared", "-std=gnu11"]

_fallback_dir: Path | None = None
_loaded: dict[str, object] = {}


def flags() -> list[str]:
    """Compiler flags: ``GRAPHC_CFLAGS`` (shell words) or the defaults."""
    env = os.environ.get("GRAPHC_CFLAGS")
    if env:
        words = shlex.split(env)
        return words + [f for f in ("-fPIC", "-shared") if f not in words]
    return list(DEFAULT_FLAGS)


def _compiler_identity(path: str) -> str:
    real = os.path.realpath(path)
    st = os.stat(real)
    return f"{real}:{st.st_size}:{st.st_mtime_ns}"


def writable_cache() -> Path:
    """The cache directory, or (with a warning) a temporary one if it is not writable."""
    global _fallback_dir
    base = cache_dir() / "c"
    try:
        base.mkdir(parents=True, exist_ok=True)
        probe = base / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return base
    except OSError as exc:
        if _fallback_dir is None:
            _fallback_dir = Path(tempfile.mkdtemp(prefix="graphc-cache-"))
            warnings.warn(f"graphc: cache directory {base} is not writable ({exc}); "
                          f"using {_fallback_dir} for this process", RuntimeWarning, stacklevel=3)
        return _fallback_dir


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _valid(lib: Path) -> bool:
    side = lib.with_suffix(".sha256")
    try:
        return side.read_text().strip() == _digest(lib.read_bytes())
    except OSError:
        return False


def _open(lib: Path):
    key = str(lib)
    if key not in _loaded:
        _loaded[key] = native_ffi().dlopen(key)
    return _loaded[key]


@functools.cache
def native_ffi():
    """The cffi FFI of the native interface (:func:`abi.cdef`), to call and feed libraries.

    Parsing C declarations loads pycparser (about 20 ms); the parsed form is kept in the
    cache as a small module (cffi's out-of-line ABI mode, keyed by the declarations and
    the cffi version), so a warm start loads that instead.
    """
    text = cdef()
    name = "_graphc_abi_" + _digest(f"{text}\0{cffi.__version__}".encode())[:16]
    path = writable_cache() / f"{name}.py"
    if path.is_file():
        try:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module.ffi
        except Exception:  # noqa: BLE001 - a corrupt or foreign entry: parse again
            pass
    builder = cffi.FFI()
    builder.cdef(text)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=name, suffix=".tmp")
    os.close(fd)
    make_py_source(builder, name, tmp)  # (FFI.emit_python_code would print a line)
    os.replace(tmp, path)
    return builder


def load_or_build(source: str, key_source: str | None = None):
    """Return ``(library, info)`` for ``source``: from the cache, or compiled now.

    The cache key is ``key_source`` (default: ``source``; the renderer leaves out what
    does not change the code, such as the lines that defined each kernel's nodes), the
    flags and the compiler. ``info`` says whether it was a cache hit and where the
    source and library are.
    """
    opts = flags()
    cache = writable_cache()
    src_key = _digest(((key_source or source) + "\0" + " ".join(opts)).encode())
    folder = cache / src_key[:2] / src_key
    compiler = find_c_compiler()
    if compiler is not None:
        ident = _compiler_identity(compiler[0])
        lib = folder / (_digest(ident.encode())[:16] + ".so")
        if _valid(lib):
            return _open(lib), {"cached": True, "library": str(lib), "source": str(folder / "kernel.c")}
        return _compile(source, folder, lib, compiler, opts), {
            "cached": False, "library": str(lib), "source": str(folder / "kernel.c")}
    # No compiler: any valid entry for this source and these flags will do.
    for lib in sorted(folder.glob("*.so"), key=lambda p: p.stat().st_mtime, reverse=True) if \
            folder.is_dir() else []:
        if _valid(lib):
            return _open(lib), {"cached": True, "library": str(lib), "source": str(folder / "kernel.c")}
    raise GraphcError("the C backend needs a C compiler (set CC, or install gcc) and this graph "
                      "is not in the cache yet; graphc info shows what was found")


def _compile(source: str, folder: Path, lib: Path, compiler, opts: list[str]):
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / "kernel.c"
    _atomic_write(src, source.encode())
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".so.tmp")
    os.close(fd)
    try:
        attempts = [opts] + ([PORTABLE_FLAGS] if opts == DEFAULT_FLAGS else [])
        errors = []
        for attempt in attempts:
            proc = subprocess.run([compiler[0], *attempt, str(src), "-o", tmp, "-lm"],
                                  capture_output=True, text=True)
            if proc.returncode == 0:
                break
            errors.append(proc.stderr.strip())
        else:
            raise GraphcError(f"C compilation failed ({compiler[0]} {' '.join(opts)}):\n"
                              f"{errors[0][-4000:]}\n  generated source: {src}")
        if attempt is not opts:
            warnings.warn("graphc: compiling with the default flags failed; built with portable "
                          f"flags {' '.join(attempt)}", RuntimeWarning, stacklevel=4)
        data = Path(tmp).read_bytes()
        os.replace(tmp, lib)
        _atomic_write(lib.with_suffix(".sha256"), _digest(data).encode())
        _atomic_write(folder / "build.json", json.dumps(
            {"compiler": compiler[1], "flags": attempt}).encode())
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return _open(lib)
