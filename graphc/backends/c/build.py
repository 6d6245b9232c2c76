"""Compile generated C into a shared library, cached on disk by content.

The cache key is a sha256 of the source, the flags and, for ``-march=native`` builds,
the CPU (its model and features: a cache shared between machines never hands a library
to a CPU it was not built for); the library's name within the entry is the compiler's
identity (resolved path, size and mtime of its binary) and what ``-march=native`` means
to it here (asked once per process). Entries are published atomically (built in a
private directory, then renamed into place), so two processes compiling the same graph
at once both succeed; a sidecar holds the library's own sha256, so a truncated or
corrupt entry is detected and rebuilt. A warm start loads the library without running
the compiler, even when no compiler is installed, and from a read-only cache.

Only entries that nobody but the current user can have written are loaded
(:mod:`.cachedir`); otherwise, and when the cache cannot be written, the library is
built in a private temporary directory for this process, with a warning.

``GRAPHC_SANITIZE=address,undefined`` builds with those sanitizers (see
:func:`flags`): a separate cache entry.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import cffi
from cffi.recompiler import make_py_source

from ...env import c_compiler_problem, cache_dir, cpu_identity, find_c_compiler, native_target
from ...ir.errors import GraphcError
from . import cachedir, mpi, templates
from .abi import cdef

#: -fno-trapping-math: graphc never reads floating-point exception flags; without it GCC will
#: not turn the selects of relu, gc_expf ... into vector blends.
#: -mprefer-vector-width=256 (x86): GCC 12.2 at -O3 with 512-bit auto-vectorization
#: miscompiles loops it versions for aliasing (a 4-D transpose between two arena buffers:
#: nearly every element wrong); 256-bit loops are right and as fast here. The GEMM's
#: AVX-512 micro-kernel uses explicit vector types and is not affected.
DEFAULT_FLAGS = ["-O3", "-march=native", "-fopenmp", "-fno-trapping-math", "-fPIC", "-shared",
                 "-std=gnu11"] + (["-mprefer-vector-width=256"]
                                  if platform.machine().lower() in ("x86_64", "amd64") else [])
PORTABLE_FLAGS = ["-O3", "-fno-trapping-math", "-fPIC", "-shared", "-std=gnu11"]
#: environment variable: sanitizers to build with (``-fsanitize=`` of GCC and clang)
SANITIZE_ENV = "GRAPHC_SANITIZE"

_fallback_dir: Path | None = None
_loaded: dict[str, object] = {}
_warned: set[str] = set()


def sanitize_flags() -> list[str]:
    """The flags ``GRAPHC_SANITIZE`` asks for (e.g. ``address,undefined``), or ``[]``.

    Errors abort (``-fno-sanitize-recover=all``). A library built with AddressSanitizer
    loads only into a process that has the ASan runtime first: run Python with
    ``LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0``.
    """
    value = os.environ.get(SANITIZE_ENV, "").strip()
    if not value:
        return []
    if not re.fullmatch(r"[a-z][a-z-]*(,[a-z][a-z-]*)*", value):
        raise GraphcError(f"{SANITIZE_ENV}={value!r}: expected sanitizer names separated by "
                          "commas, e.g. address,undefined")
    # -O1 (after the default -O3): instrumented -O3 code takes ten times longer to build
    return [f"-fsanitize={value}", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer",
            "-O1", "-g1"]


#: flags under which gcc folds isnan/isinf away (graphc's NaN rules then do not hold)
_FINITE_MATH = ("-ffast-math", "-ffinite-math-only", "-Ofast")


def flags() -> list[str]:
    """Compiler flags: ``GRAPHC_CFLAGS`` (shell words) or the defaults, then the
    sanitizers of ``GRAPHC_SANITIZE``."""
    env = os.environ.get("GRAPHC_CFLAGS")
    if env:
        words = shlex.split(env)
        unsafe = [w for w in words if w in _FINITE_MATH]
        if unsafe:
            _warn_once("finite-math", f"GRAPHC_CFLAGS has {' '.join(unsafe)}: the compiler may then "
                       "assume no NaN or Inf exists, so NaN propagation, check_numerics and "
                       "gc.check_finite stop working in the C backend")
        return words + [f for f in ("-fPIC", "-shared") if f not in words] + sanitize_flags()
    return list(DEFAULT_FLAGS) + sanitize_flags()


def _compiler_identity(path: str) -> str:
    real = os.path.realpath(path)
    st = os.stat(real)
    return f"{real}:{st.st_size}:{st.st_mtime_ns}"


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def _fallback() -> Path:
    """This process's private temporary cache (created on first use, removed at exit)."""
    global _fallback_dir
    if _fallback_dir is None or not _fallback_dir.is_dir():
        prefix = "graphc-cache-"
        cachedir.remove_stale(Path(tempfile.gettempdir()).glob(prefix + "*"), prefix)
        _fallback_dir = Path(tempfile.mkdtemp(prefix=f"{prefix}{cachedir.HOST}-{os.getpid()}-"))
        atexit.register(shutil.rmtree, _fallback_dir, True)
    return _fallback_dir


def _main_cache() -> Path:
    return cache_dir() / "c"


def _trusted(path: Path, root: Path) -> bool:
    """Whether ``path`` under cache ``root`` may be loaded from (warns once if not)."""
    why = cachedir.distrust(path, root)
    if why is not None:
        _warn_once(why, f"graphc: not loading from {path}: {why}. Only files that no other "
                        "user can have written are loaded (fix the owner or mode, or set "
                        "GRAPHC_CACHE_DIR to a directory only you can write); compiling again, "
                        "in a private temporary directory where the cache is not trusted")
    return why is None


def _readable_caches() -> list[Path]:
    caches = [_main_cache()]
    if _fallback_dir is not None and _fallback_dir.is_dir():
        caches.append(_fallback_dir)
    return caches


def _writable_folder(relative: Path) -> tuple[Path, Path]:
    """(cache root, folder) to publish the entry ``relative`` in: under the cache directory
    when it can be written and trusted, else under this process's temporary cache."""
    base = _main_cache()
    why = cachedir.is_writable(base)
    if why is not None:
        _warn_once(f"unwritable {base}", f"graphc: cache directory {base} is not writable "
                                         f"({why}); using {_fallback()} for this process")
    else:
        folder = base / relative
        if _trusted(folder, base):
            try:
                cachedir.make_private_dirs(folder)
            except OSError as exc:
                raise GraphcError(f"cannot create the cache entry {folder}: "
                                  f"{exc.strerror or exc}") from None
            if _trusted(folder, base):
                return base, folder
    fallback = _fallback()
    folder = fallback / relative
    cachedir.make_private_dirs(folder)
    return fallback, folder


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _publish(work: Path, path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (through a file in the build directory ``work``)."""
    tmp = work / (path.name + ".tmp")
    tmp.write_bytes(data)
    _replace(tmp, path)


def _replace(tmp: Path, path: Path) -> None:
    try:
        os.chmod(tmp, os.stat(tmp).st_mode & ~0o022)  # (whatever the umask: see cachedir)
        os.replace(tmp, path)
    except OSError as exc:
        hint = ": something that is not a file is in the way; remove it" if path.is_dir() else ""
        raise GraphcError(f"cannot store {path} in the compile cache ({exc.strerror or exc})"
                          f"{hint}") from None


def _valid(lib: Path) -> bool:
    side = lib.with_suffix(".sha256")
    try:
        return side.read_text().strip() == _digest(lib.read_bytes())
    except OSError:
        return False


def _usable(lib: Path, root: Path) -> bool:
    """Whether the cached ``lib`` (in cache ``root``) is intact and may be loaded."""
    return (lib.is_file() and _trusted(lib, root) and _trusted(lib.with_suffix(".sha256"), root)
            and _valid(lib))


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
    the cffi version), so a warm start loads that instead. Like a library, the module is
    run only from a trusted cache (:mod:`.cachedir`).
    """
    text = cdef()
    name = "_graphc_abi_" + _digest(f"{text}\0{cffi.__version__}".encode())[:16]
    for root in _readable_caches():
        path = root / f"{name}.py"
        if path.is_file() and _trusted(path, root):
            try:
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module.ffi
            except Exception:  # noqa: BLE001 - a corrupt entry: parse again
                pass
    builder = cffi.FFI()
    builder.cdef(text)
    try:
        root, _ = _writable_folder(Path("."))
        work = cachedir.build_dir(root)
        try:
            make_py_source(builder, name, str(work / f"{name}.py"))  # (emit_python_code prints)
            _replace(work / f"{name}.py", root / f"{name}.py")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    except (OSError, GraphcError):
        pass  # not kept: parsed again next time
    return builder


def cache_entry(key_source: str, opts: list[str], compiler: tuple[str, str] | None,
                extra: list[str] = ()) -> tuple[Path, str | None]:
    """(entry folder relative to the cache root, library file name or None without a
    compiler) of a source with flags ``opts`` (and ``extra``, after the source file).

    ``-march=native`` (any ``native`` flag) puts the CPU's model and features in the key,
    and what the compiler makes of the flag on this machine in the file name.
    """
    native = any("native" in f for f in opts)
    key = _digest("\0".join([key_source, " ".join([*opts, *extra])]
                            + ([cpu_identity()] if native else [])).encode())
    if compiler is None:
        return Path(key[:2]) / key, None
    ident = _compiler_identity(compiler[0])
    target = native_target(compiler[0], tuple(opts))
    return Path(key[:2]) / key, _digest((ident + (f"\0{target}" if target else "")).encode())[:16] + ".so"


def load_or_build(source: str, key_source: str | None = None):
    """Return ``(library, info)`` for ``source``: from the cache, or compiled now.

    The cache key is ``key_source`` (default: ``source``; the renderer leaves out what
    does not change the code, such as the lines that defined each kernel's nodes), the
    flags and the compiler (:func:`cache_entry`). ``info`` says whether it was a cache
    hit and where the source and library are.
    """
    opts = flags()
    extra = list(mpi.build_flags()) if mpi.MARKER in source else []  # (after the source file)
    compiler = find_c_compiler()
    if templates.BEGIN in source:  # link the precompiled templates, or paste them
        linked = kernel_library(compiler, opts)
        if linked is None:
            source = templates.with_templates(source)
        else:
            extra = [f"-L{linked.parent}", f"-l:{linked.name}", f"-Wl,-rpath,{linked.parent}"] + extra
    relative, name = cache_entry(key_source or source, opts, compiler, extra)
    for root in _readable_caches():
        folder = root / relative
        if name is not None:
            libs = [folder / name]
        else:  # no compiler: any valid entry for this source and these flags will do
            libs = sorted(folder.glob("*.so"), key=_mtime, reverse=True) if folder.is_dir() else []
        for lib in libs:
            if _usable(lib, root):
                return _open(lib), {"cached": True, "library": str(lib),
                                    "source": str(folder / "kernel.c")}
    if compiler is None:
        raise GraphcError(f"the C backend needs a C compiler ({c_compiler_problem()}) and this "
                          "graph is not in the cache yet; graphc info shows what was found")
    _, folder = _writable_folder(relative)
    lib = folder / name
    return _compile(source, folder, lib, compiler, opts, extra=extra), {
        "cached": False, "library": str(lib), "source": str(folder / "kernel.c")}


_kernel_libraries: dict[tuple, Path | None] = {}


def kernel_library(compiler: tuple[str, str] | None, opts: list[str]) -> Path | None:
    """The kernel library for these flags (:func:`templates.library_source`: GEMM, conv and
    pooling for float32 and float64, compiled once per machine, compiler, flags and
    template text, then cached like a step), built now if needed; None when it cannot be
    built or, without a compiler, is not in the cache. Steps link against it, so a new
    graph compiles only its own kernels."""
    memo = (compiler, tuple(opts), str(_main_cache()))
    known = _kernel_libraries.get(memo)
    if known is not None and known.is_file():
        return known
    source = templates.library_source()
    relative, name = cache_entry(source, opts, compiler)
    relative = Path("kernel-library") / relative
    found = None
    for root in _readable_caches():
        folder = root / relative
        libs = [folder / name] if name else (
            sorted(folder.glob("*.so"), key=_mtime, reverse=True) if folder.is_dir() else [])
        found = next((lib for lib in libs if _usable(lib, root)), None)
        if found is not None:
            break
    if found is None and compiler is not None:
        _, folder = _writable_folder(relative)
        try:
            _build(source, folder, folder / name, compiler, opts, retry_portable=False)
            found = folder / name
        except GraphcError as exc:  # the steps paste the templates instead
            _warn_once("kernel library", f"graphc: the kernel library did not build ({exc}); "
                       "each step compiles the templates it uses itself")
    _kernel_libraries[memo] = found
    return found


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0


def _compile(source: str, folder: Path, lib: Path, compiler, opts: list[str],
             extra: list[str] = ()):
    """Build ``source`` into ``lib`` and open it (``extra``: flags after the source file:
    MPI's, the kernel library's)."""
    _build(source, folder, lib, compiler, opts, extra)
    return _open(lib)


def _build(source: str, folder: Path, lib: Path, compiler, opts: list[str],
           extra: list[str] = (), retry_portable: bool = True) -> None:
    """Build ``source`` into ``lib``. The compiler works (its temporary files included) in
    a private build directory, removed afterwards, or by a later build if killed."""
    root = folder.parent.parent
    cachedir.remove_stale([*root.glob(".build-*"), *root.glob("*/*/.build-*")])
    work = cachedir.build_dir(folder)
    try:
        src = folder / "kernel.c"
        _publish(work, src, source.encode())
        out = work / lib.name
        env = dict(os.environ, TMPDIR=str(work))
        attempts = [opts] + ([PORTABLE_FLAGS + sanitize_flags()]
                             if retry_portable and opts == DEFAULT_FLAGS + sanitize_flags() else [])
        errors = []
        for attempt in attempts:
            proc = subprocess.run([compiler[0], *attempt, str(src), "-o", str(out), "-lm", *extra],
                                  capture_output=True, text=True, env=env)
            if proc.returncode == 0:
                break
            errors.append(proc.stderr.strip())
        else:
            raise GraphcError(f"C compilation failed ({compiler[0]} {' '.join(opts)}):\n"
                              f"{errors[0][-4000:]}\n  generated source: {src}")
        if attempt is not opts:
            warnings.warn("graphc: compiling with the default flags failed; built with portable "
                          f"flags {' '.join(attempt)}", RuntimeWarning, stacklevel=4)
        data = out.read_bytes()
        _replace(out, lib)
        _publish(work, lib.with_suffix(".sha256"), _digest(data).encode())
        _publish(work, folder / "build.json", json.dumps(
            {"compiler": compiler[1], "flags": attempt + list(extra)}).encode())
    finally:
        shutil.rmtree(work, ignore_errors=True)
