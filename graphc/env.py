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
import shlex
import shutil
import subprocess
from pathlib import Path

__all__ = [
    "CACHE_DIR_ENV",
    "cache_dir",
    "find_c_compiler",
    "find_dot",
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
    try:
        proc = subprocess.run(
            [path, "--version"],
            capture_output=True,
            text=True,
            timeout=_VERSION_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = proc.stdout.strip() or proc.stderr.strip()
    if proc.returncode != 0 or not text:
        return None
    first = text.splitlines()[0].strip()
    lowered_first = first.lower()
    if "clang" in lowered_first or "gcc" in lowered_first:
        return first
    lowered = text.lower()
    if "clang" in lowered:
        return f"{first} [clang]"
    if "free software foundation" in lowered or "gcc" in lowered:
        return f"{first} [gcc]"
    return first


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
