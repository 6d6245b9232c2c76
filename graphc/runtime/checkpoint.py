"""The checkpoint file that ``Session.save`` writes and ``Session.load`` reads.

Format (version 1): a NumPy ``.npz`` (a zip of ``.npy`` arrays), always written to
the exact path given (no ``.npz`` suffix is added), with the entries

* ``v0``, ``v1``, ... : the value of each variable, in the order of ``names``;
* ``meta``: a 1-d ``uint8`` array holding UTF-8 JSON
  ``{"format": "graphc-checkpoint", "version": 1, "step": <int>, "names": [...]}``.

Variable names live only inside the JSON, so no name (``__step__``, ``file``,
``allow_pickle``, one with a NUL or a slash) can collide with the format or with
``np.savez``'s keywords. Nothing is ever unpickled (``allow_pickle=False``).
Checkpoints of earlier graphc versions (one entry per variable name, the step in
``__step__``) are still read.

Guarantee: :func:`write` goes to a temporary file in the same directory, flushed
and fsynced, then renamed over ``path`` (and the directory fsynced), so an
interrupted save leaves the previous checkpoint intact. Every failure is a
:class:`~graphc.ir.errors.CheckpointError` naming the path.

Example::

    write("model.ckpt", {"W": w, "b": b}, step=100)
    values, step = read("model.ckpt")        # ({"W": ..., "b": ...}, 100)
"""

from __future__ import annotations

import json
import os
import secrets
import zipfile
from typing import BinaryIO

import numpy as np

from ..ir.errors import CheckpointError

FORMAT = "graphc-checkpoint"
VERSION = 1
_META = "meta"


def write(path: str | os.PathLike | BinaryIO, values: dict[str, np.ndarray], step: int) -> None:
    """Write ``values`` (variable name -> array) and ``step`` to ``path`` atomically.

    ``path`` may also be a binary file object (written in place, not atomically).
    """
    meta = json.dumps({"format": FORMAT, "version": VERSION, "step": int(step),
                       "names": list(values)}).encode()
    arrays = {f"v{i}": np.asarray(a) for i, a in enumerate(values.values())}
    arrays[_META] = np.frombuffer(meta, np.uint8)
    if hasattr(path, "write"):
        np.savez(path, **arrays)
        return
    shown = os.fsdecode(path)
    dest = os.path.realpath(shown)  # write through a symlink, as opening the path would
    if os.path.isdir(dest):
        raise CheckpointError(f"save: {shown} is a directory; pass a file path")
    folder = os.path.dirname(dest) or "."
    tmp = os.path.join(folder, f".{os.path.basename(dest)}.{secrets.token_hex(6)}.tmp")
    try:
        try:
            mode = os.stat(dest).st_mode & 0o777  # re-saving keeps the file's permissions
        except OSError:
            mode = None
        # a new file gets 0o666 less the umask, as open() would give it
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                if mode is not None and hasattr(os, "fchmod"):
                    os.fchmod(f.fileno(), mode)
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        except BaseException:
            _remove(tmp)
            raise
        _fsync_dir(folder)
    except OSError as exc:
        raise CheckpointError(f"save: cannot write {shown}: {exc.strerror or exc}") from exc


def read(path: str | os.PathLike | BinaryIO) -> tuple[dict[str, np.ndarray], int | None]:
    """The variable values and the step stored at ``path`` (step None if not stored)."""
    shown = shown_path(path)
    if not hasattr(path, "read"):
        if os.path.isdir(path):
            raise CheckpointError(f"load: {shown} is a directory, not a checkpoint file")
        if not os.path.exists(path):
            hint = ""
            if not shown.endswith(".npz") and os.path.exists(shown + ".npz"):
                hint = (f"; {shown}.npz exists (earlier graphc versions appended .npz): "
                        "load that path")
            raise CheckpointError(f"load: no checkpoint at {shown}{hint}")
    try:
        if hasattr(path, "read"):
            return _read_open(path, shown)
        with open(path, "rb") as f:
            return _read_open(f, shown)
    except CheckpointError:
        raise
    except (OSError, EOFError, ValueError, TypeError, KeyError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"load: {shown} is truncated, corrupt or not a graphc "
                              f"checkpoint ({type(exc).__name__}: {exc})") from exc


def shown_path(path: str | os.PathLike | BinaryIO) -> str:
    """How messages name ``path``: the path, or a file object's name."""
    return getattr(path, "name", "<file object>") if hasattr(path, "read") else os.fsdecode(path)


def stored_name(stored: dict, name: str) -> str | None:
    """The key of variable ``name`` in ``stored``: the name itself or, for checkpoints of
    graphc before layers had name scopes, the name an optimizer slot had then (the
    optimizer first: ``SGD/dense/W/momentum`` for today's ``dense/SGD/W/momentum``).
    None when neither is there."""
    if name in stored:
        return name
    parts = name.split("/")
    for i in range(1, len(parts) - 1):
        earlier = "/".join([parts[i]] + parts[:i] + parts[i + 1:])
        if earlier in stored:
            return earlier
    return None


def _read_open(f: BinaryIO, shown: str) -> tuple[dict[str, np.ndarray], int | None]:
    data = np.load(f, allow_pickle=False)
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise CheckpointError(f"load: {shown} holds a single array (a .npy file), not a "
                              "checkpoint written by Session.save (an .npz of every variable)")
    with data:
        meta = _meta(data, shown)
        if meta is None:  # an earlier version: one entry per variable, the step in __step__
            values = {k: data[k] for k in data.files if k != "__step__"}
            step = int(data["__step__"]) if "__step__" in data.files else None
            return values, step
        names, step = meta
        missing = [f"v{i}" for i in range(len(names)) if f"v{i}" not in data.files]
        if missing:
            raise CheckpointError(f"load: {shown} is incomplete: entries {missing[:5]} are "
                                  "missing")
        return {name: data[f"v{i}"] for i, name in enumerate(names)}, step


def _meta(data, shown: str) -> tuple[list[str], int] | None:
    """(names, step) of a version-1 checkpoint, or None for the old format."""
    if _META not in data.files:
        return None
    raw = data[_META]
    if raw.dtype != np.uint8 or raw.ndim != 1:
        return None  # an old checkpoint with a variable named "meta"
    try:
        meta = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return None
    if meta.get("version") != VERSION:
        raise CheckpointError(f"load: {shown} is a graphc checkpoint of format version "
                              f"{meta.get('version')!r}; this graphc reads version {VERSION}")
    names, step = meta.get("names"), meta.get("step")
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)
            and len(set(names)) == len(names) and isinstance(step, int)):
        raise CheckpointError(f"load: {shown} has a malformed header")
    return names, step


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_dir(folder: str) -> None:
    """Make the rename durable (where the platform can open a directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
