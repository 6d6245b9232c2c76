"""Name scopes: ``with gc.name_scope("encoder"):`` prefixes the names of the nodes made inside.

The current scope is a "/"-joined path kept per thread (``""`` outside any
scope); nested scopes join with "/". Every node records the path it was made
in as ``node.scope`` and is named ``scope + "/" + base`` (``"encoder/matmul"``);
the graph keeps names unique by suffixing the base (``"encoder/matmul_1"``).
Layers open a scope of their own, unique in their graph (``"dense"``,
``"dense_1"``); gradient nodes take the scope of the forward node they
differentiate and optimizer updates a sub-scope of their variable's
(:func:`update_scope`).

Example::

    import graphc as gc
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        with gc.name_scope("encoder") as scope:
            h = gc.relu(x)
            with gc.name_scope("head"):
                y = h * 2.0
    assert scope == "encoder" and h.name == "encoder/relu" and h.scope == "encoder"
    assert y.name == "encoder/head/mul" and y.scope == "encoder/head"
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from .errors import ArgumentError, ArgumentTypeError, at, user_site

_local = threading.local()


def current_scope() -> str:
    """The scope path new nodes of this thread get (``""`` outside any scope)."""
    return getattr(_local, "path", "")


def join(*parts: str) -> str:
    """The scope path of ``parts``, empty parts left out: ``join("", "dense") == "dense"``."""
    return "/".join(p for p in parts if p)


def check_segment(name: object, what: str = "name_scope") -> str:
    """``name`` if it is a plain name (one scope segment), else an ArgumentError.

    A segment is a non-empty string of printable characters without "/" or
    whitespace; "/" joins segments, so it cannot appear inside one.
    """
    if not isinstance(name, str):
        raise ArgumentTypeError(f"{what}: a scope name must be a str, got "
                                f"{type(name).__name__}{at(user_site())}")
    if not name:
        raise ArgumentError(f"{what}: a scope name cannot be empty{at(user_site())}")
    bad = "\"/\" (it joins nested scopes: nest two name_scope blocks instead)" if "/" in name \
        else "whitespace" if any(c.isspace() for c in name) \
        else "an unprintable character" if not name.isprintable() else ""
    if bad or name in (".", ".."):
        raise ArgumentError(f"{what}: scope name {name!r} must be a plain name and cannot "
                            f"contain {bad or 'only dots'}{at(user_site())}")
    return name


@contextlib.contextmanager
def scope_path(path: str) -> Iterator[str]:
    """Make ``path`` (a whole "/"-joined path, not relative) the current scope inside."""
    saved = current_scope()
    _local.path = path
    try:
        yield path
    finally:
        _local.path = saved


def name_scope(name: str) -> contextlib.AbstractContextManager[str]:
    """A context manager: nodes made inside are named ``"<scope>/<name>/<base>"``.

    ``name`` is one plain name (no "/", not empty); nested scopes join with
    "/". Entering the same name again reuses the scope (node names stay unique
    through suffixes), so a scope can be filled in several blocks. The
    ``with`` target is the full scope path.

    Example::

        with gc.name_scope("encoder") as path:      # path == "encoder"
            h = gc.nn.Dense(16)(x)                  # variables "encoder/dense/W", ...
        assert h.scope == "encoder/dense" and h.name.startswith("encoder/dense/")
    """
    return scope_path(join(current_scope(), check_segment(name)))


def relative_name(node) -> str:
    """``node``'s name without its scope prefix (``"dense/W"`` -> ``"W"``)."""
    prefix = node.scope + "/" if node.scope else ""
    return node.name[len(prefix):] if prefix and node.name.startswith(prefix) else node.name


def update_scope(var, owner: str) -> str:
    """The scope of the nodes that ``owner`` (an optimizer, a regularizer) builds to update
    variable ``var``: ``"<var's scope>/<owner>/<var's own name>"``, e.g. ``"dense/Adam/W"``.

    One sub-scope per updated variable, inside the variable's scope, so a picture can
    draw each variable's update arithmetic (and slot variables) as one box.
    """
    return join(var.scope, owner, relative_name(var))
