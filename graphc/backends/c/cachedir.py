"""The trust rules of the compile cache: what may be loaded from it, and how it is written.

A cached library is native code that ``dlopen`` runs inside the user's process, so it is
loaded only from a path nobody else can change, the rule ssh applies to its keys: the
file and every directory from the cache root down to it are owned by the current user
(or root: a cache an administrator prepared) and writable by neither group nor others;
the directories above the root are owned by the user or root and not writable by others
unless sticky (like ``/tmp``), so that no one can move the cache away and put another in
its place. The same holds for root: a file another user owns is never loaded into a root
process.

Directories graphc creates are 0700. A compile works in a private ``.build-<host>-<pid>-*``
directory inside its entry (the compiler's own temporary files included); one left by a
killed process is removed by the next build.

Example::

    why = distrust(lib, root)        # None, or e.g. "/c/ab is writable by group or others"
    make_private_dirs(folder)
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path

#: a build directory of another host (a cache on a shared file system) older than this is
#: left over from a crash
STALE_AFTER_S = 24 * 3600
BUILD_PREFIX = ".build-"
#: this machine, as it appears in the names of build directories
HOST = "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:32] or "host"


def is_ours(st: os.stat_result) -> bool:
    """Whether the current (effective) user owns what ``st`` describes."""
    return st.st_uid == os.geteuid()


def _describe(st: os.stat_result) -> str:
    return f"owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o}"


def distrust(path: Path, root: Path) -> str | None:
    """Why ``path`` (the cache ``root`` or something under it) must not be loaded from, or
    None when it can be. A missing ``path`` is not distrusted (there is nothing to load)."""
    path, root = Path(path), Path(root)
    chain = [root] + [root.joinpath(*path.relative_to(root).parts[:k + 1])
                      for k in range(len(path.relative_to(root).parts))]
    for p in chain:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"{p} cannot be examined ({exc.strerror})"
        if st.st_uid != 0 and not is_ours(st):
            return (f"{p} is owned by another user than the current one (uid {os.geteuid()}) "
                    f"or root ({_describe(st)})")
        if st.st_mode & 0o022:
            return f"{p} is writable by group or others ({_describe(st)})"
    for p in root.parents:
        try:
            st = os.stat(p)
        except OSError as exc:
            return f"{p} cannot be examined ({exc.strerror})"
        if st.st_uid != 0 and not is_ours(st):
            return f"{p}, a parent of the cache, is owned by another user ({_describe(st)})"
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            return (f"{p}, a parent of the cache, is writable by group or others and not "
                    f"sticky ({_describe(st)})")
    return None


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents with mode 0700 (existing ones are left)."""
    missing = []
    p = Path(path)
    while not p.is_dir():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            if not d.is_dir():
                raise


def build_dir(parent: Path) -> Path:
    """A new private directory for one compile, named so that :func:`remove_stale` knows
    whether its process is gone."""
    return Path(tempfile.mkdtemp(prefix=f"{BUILD_PREFIX}{HOST}-{os.getpid()}-", dir=parent))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # (EPERM: it exists)
        return True
    return True


def remove_stale(dirs, prefix: str = BUILD_PREFIX) -> list[Path]:
    """Remove the directories among ``dirs`` (named ``<prefix><host>-<pid>-*``) that no
    running process uses: this host's whose process is gone, another host's older than
    :data:`STALE_AFTER_S`. Returns what was removed."""
    removed = []
    now = time.time()
    for d in dirs:
        parts = d.name[len(prefix):].split("-") if d.name.startswith(prefix) else []
        try:
            st = os.lstat(d)
            host, pid = parts[0], int(parts[1])
        except (OSError, ValueError, IndexError):
            continue
        if not (stat.S_ISDIR(st.st_mode) and is_ours(st)):
            continue
        if not _alive(pid) if host == HOST else now - st.st_mtime > STALE_AFTER_S:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def is_writable(folder: Path) -> str | None:
    """None if files can be created in ``folder`` (created 0700 if missing), else why not."""
    try:
        make_private_dirs(folder)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".probe-{os.getpid()}-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
