"""Machine and tool discovery: cache directory, C compiler, Graphviz.

Standard library only, so that it can be imported (and ``graphc info`` can run) before
anything heavier is loaded.

Example::

    >>> from graphc import env
    >>> env.cache_dir()                       # doctest: +SKIP
    PosixPath('/home/me/.cache/graphc')
    >>> env.find_c_compiler()                 # doctest: +SKIP
    ('/usr/bin/cc', 'cc (Debian 12.2.0-14+deb12u1) 12.2.0 [gcc]')
"""

from __future__ import annotations

import functools
import os
import platform
import shlex
import shutil
import subprocess
from pathlib import Path

__all__ = [
    "CACHE_DIR_ENV",
    "c_compiler_problem",
    "cache_dir",
    "cpu_identity",
    "find_c_compiler",
    "find_dot",
    "native_target",
    "short_openmp_spin",
]

#: Environment variable that overrides the on-disk cache directory.
CACHE_DIR_ENV = "GRAPHC_CACHE_DIR"

#: Compilers tried, in order, when ``CC`` is not set.
_DEFAULT_COMPILERS = ("cc", "gcc", "clang")

#: Seconds allowed for ``<compiler> --version``.
_VERSION_TIMEOUT_S = 20.0


def cache_dir() -> Path:
    """Return the directory graphc uses for its on-disk cache (compiled libraries).

    In order: ``$GRAPHC_CACHE_DIR`` if set and non-empty; else ``$XDG_CACHE_HOME/graphc``
    if ``XDG_CACHE_HOME`` is an absolute path (the XDG spec says to ignore relative ones);
    else ``~/.cache/graphc``. ``~`` is expanded and the result is absolute. The directory
    is *not* created; callers create it when they first write.

    Example::

        >>> cache_dir()                               # doctest: +SKIP
        PosixPath('/home/me/.cache/graphc')
        $ GRAPHC_CACHE_DIR=/tmp/gc python -c "import graphc.env as e; print(e.cache_dir())"
        /tmp/gc
    """
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(os.path.expanduser(xdg)):
        return Path(xdg).expanduser() / "graphc"
    return Path.home() / ".cache" / "graphc"


def find_c_compiler() -> tuple[str, str] | None:
    """Find a working C compiler: ``(absolute path, version line)``, or ``None``.

    If the environment variable ``CC`` is set (non-empty) it is authoritative: it must
    name one executable (a name on ``PATH`` or a path; flags in ``CC`` are not supported)
    and if that cannot be run the result is ``None`` -- graphc never silently swaps in
    another compiler than the one asked for. Otherwise ``cc``, ``gcc`` and ``clang`` are
    tried on ``PATH``, in that order, and the first whose ``--version`` succeeds wins.

    The version is the first line of ``<compiler> --version``. When that line does not
    name the compiler family (Debian's ``cc`` prints ``cc (Debian 12.2.0-14) 12.2.0``),
    the family found in the rest of the output is appended in brackets, e.g.
    ``"cc (Debian 12.2.0-14+deb12u1) 12.2.0 [gcc]"``. Path and version together identify
    the compiler (they belong in a compilation cache key).

    Results are cached per ``(CC, PATH)`` with :func:`functools.lru_cache`; call
    ``find_c_compiler.cache_clear()`` after installing a compiler mid-process.

    Example::

        >>> find_c_compiler()                         # doctest: +SKIP
        ('/usr/bin/cc', 'cc (Debian 12.2.0-14+deb12u1) 12.2.0 [gcc]')
    """
    return _find_c_compiler(os.environ.get("CC", ""), os.environ.get("PATH", ""))


@functools.lru_cache(maxsize=16)
def _find_c_compiler(cc_env: str, path_env: str) -> tuple[str, str] | None:
    cc_env = cc_env.strip()
    if cc_env:
        words = shlex.split(cc_env)
        candidates: tuple[str, ...] = (words[0],) if len(words) == 1 else ()
    else:
        candidates = _DEFAULT_COMPILERS
    for name in candidates:
        path = shutil.which(name, path=path_env or None)
        if path is None:
            continue
        version = _compiler_version(path)
        if version is not None:
            return os.path.abspath(path), version
    return None


find_c_compiler.cache_clear = _find_c_compiler.cache_clear  # type: ignore[attr-defined]


def _compiler_version(path: str) -> str | None:
    """Return the identifying version line of the compiler at ``path``, or None."""
    return _run_version(path)[0]


def _run_version(path: str) -> tuple[str | None, str]:
    """(version line or None, why it is None) of ``<path> --version``."""
    try:
        proc = subprocess.run(
            [path, "--version"],
            capture_output=True,
            text=True,
            timeout=_VERSION_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"`{path} --version` did not finish in {_VERSION_TIMEOUT_S:g} s"
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{path} cannot be run ({getattr(exc, 'strerror', None) or exc})"
    text = proc.stdout.strip() or proc.stderr.strip()
    if proc.returncode != 0 or not text:
        return None, f"`{path} --version` failed (exit status {proc.returncode})"
    first = text.splitlines()[0].strip()
    lowered_first = first.lower()
    if "clang" in lowered_first or "gcc" in lowered_first:
        return first, ""
    lowered = text.lower()
    if "clang" in lowered:
        return f"{first} [clang]", ""
    if "free software foundation" in lowered or "gcc" in lowered:
        return f"{first} [gcc]", ""
    return first, ""


def c_compiler_problem() -> str | None:
    """Why :func:`find_c_compiler` finds no compiler, in words; ``None`` if it finds one.

    Example::

        $ CC=/nonexistent/gcc python -c "from graphc import env; print(env.c_compiler_problem())"
        CC=/nonexistent/gcc names a compiler that does not exist
    """
    if find_c_compiler() is not None:
        return None
    cc = os.environ.get("CC", "").strip()
    path_env = os.environ.get("PATH", "") or None
    if not cc:
        found = [p for p in map(lambda n: shutil.which(n, path=path_env), _DEFAULT_COMPILERS) if p]
        if not found:
            return f"none of {', '.join(_DEFAULT_COMPILERS)} is on PATH (install gcc, or set CC)"
        return "; ".join(_run_version(p)[1] for p in found)
    words = shlex.split(cc)
    if len(words) != 1:
        return (f"CC={cc!r} is not one program: graphc runs CC as one executable "
                "(put flags in GRAPHC_CFLAGS)")
    path = shutil.which(words[0], path=path_env)
    if path is None:
        if os.sep in words[0] or (os.altsep and os.altsep in words[0]):
            if not os.path.exists(words[0]):
                return f"CC={cc} names a compiler that does not exist"
            return f"CC={cc} names a file that is not an executable program"
        return f"CC={cc} names a compiler that is not on PATH"
    return f"CC={cc} names a compiler that cannot run: {_run_version(path)[1]}"


@functools.cache
def cpu_identity() -> str:
    """What the CPU is and which instructions it has (for cache keys of ``-march=native``
    builds): the first processor's model and feature lines of ``/proc/cpuinfo``, or
    :mod:`platform`'s description where there is none. No compiler is needed.

    Example::

        >>> cpu_identity()                            # doctest: +SKIP
        'x86_64|vendor_id: GenuineIntel|cpu family: 6|model: 85|flags: fpu vme ...'
    """
    keys = ("vendor_id", "cpu family", "model", "model name", "flags", "features",
            "cpu implementer", "cpu architecture", "cpu variant", "cpu part", "isa", "cpu")
    lines = []
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    if lines:
                        break  # the first processor is enough
                    continue
                key, _, value = line.partition(":")
                if key.strip().lower() in keys:
                    lines.append(f"{key.strip()}: {' '.join(value.split())}")
    except OSError:
        pass
    return "|".join([platform.machine(), *(lines or [platform.processor()])])


@functools.lru_cache(maxsize=16)
def native_target(compiler: str, flags: tuple[str, ...]) -> str:
    """What the target flags ``flags`` (``-march=native`` ...) mean to ``compiler`` on this
    machine: its list of enabled target options (``-Q --help=target`` for GCC, the target
    CPU and features of ``-###`` for clang), or ``""`` if ``flags`` name no ``native``.
    Asked once per process.

    Example::

        >>> native_target("/usr/bin/gcc", ("-march=native",))    # doctest: +SKIP
        '-march=skylake-avx512 -mavx2 [enabled] ...'
    """
    target = tuple(f for f in flags if f.startswith("-m"))
    if not any("native" in f for f in target):
        return ""
    runs = ([compiler, *target, "-Q", "--help=target"],
            [compiler, *target, "-###", "-x", "c", "-c", os.devnull, "-o", os.devnull])
    for cmd in runs:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_VERSION_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL, check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        if cmd[-1] == "--help=target":
            enabled = [" ".join(ln.split()) for ln in proc.stdout.splitlines()
                       if ln.strip().startswith("-m") and ("[enabled]" in ln or "=" in ln)]
            if proc.returncode == 0 and any(ln.startswith("-march=") for ln in enabled):
                return "\n".join(enabled)
            continue
        words = shlex.split(" ".join(ln for ln in proc.stderr.splitlines() if ln.startswith(" ")))
        picked = [w for k, w in enumerate(words) if w.startswith(("-march=", "-mtune=", "-mcpu="))
                  or w.startswith("-m") and "native" not in w and k > 0
                  or k > 0 and words[k - 1] in ("-target-cpu", "-target-feature")]
        if picked:
            return " ".join(picked)
    # the compiler would not say: the CPU itself stands for what native means here
    return cpu_identity()


def find_dot() -> str | None:
    """Return the absolute path of Graphviz's ``dot`` program, or ``None`` if not on PATH.

    Only needed to render DOT text to SVG/PNG; :func:`graphc.to_dot` itself needs no
    Graphviz.

    Example::

        >>> find_dot()                               # doctest: +SKIP
        '/usr/bin/dot'
    """
    path = shutil.which("dot")
    return os.path.abspath(path) if path else None


def short_openmp_spin() -> None:
    """Let OpenMP threads waiting at a barrier spin 10k rounds (tens of microseconds) before
    they sleep, unless ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is set already.

    libgomp's default (300k rounds, about a millisecond) made every kernel of a step wait
    for a descheduled thread when other processes kept the cores busy (an LSTM example 4x
    slower on a loaded 2-core machine); on an idle machine both run at the same speed.
    libgomp reads it when it loads: ``import graphc`` calls this before any compiled step
    is loaded (a library that loaded libgomp earlier keeps its setting).
    """
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = "10000"
