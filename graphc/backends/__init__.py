"""Backends turn an optimized :class:`~graphc.ir.program.Program` into something runnable.

A backend is a class with ``name`` and ``compile(program) -> Executable``; its
constructor raises GraphcError when it cannot run here (no compiler ...). An
executable has ``run(feeds, state, ctx) -> list`` returning one value per
program output (``None`` for update ops), recording variable writes it leaves
to the caller in ``ctx.pending``, and ``timed_units`` (what ``Session.profile``
times).

* ``numpy`` (:mod:`.reference`): interprets the program node by node with each
  op's NumPy reference; the executable specification.
* ``c`` (:mod:`.c`): lowers the program, renders C, builds one library per fetch
  set and runs a whole step in one native call.
* ``auto`` (the default of ``gc.Session``): ``c`` when a C compiler (or the compile
  cache) makes it available, else ``numpy``. Falling back to NumPy is said once per
  process with a ``RuntimeWarning`` (and every time at INFO on the ``graphc`` logger);
  picking C says nothing. The reason is always in ``Session.backend_choice``.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

from ..ir.errors import GraphcError

#: the order ``backend="auto"`` tries.
PREFERENCE = ("c", "numpy")

log = logging.getLogger("graphc")
_warned_fallback = False
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _factories() -> dict:
    """name -> backend class (imported on first use: the C backend loads cffi)."""
    from .c import CBackend
    from .reference import ReferenceBackend

    return {"numpy": ReferenceBackend, "c": CBackend}


def get_backend(name: str):
    """Instantiate backend ``name``; ``"auto"`` picks the fastest available.

    Returns ``(backend, why)``: ``why`` says which backend runs and, for ``"auto"``,
    why it is that one. Example::

        backend, why = get_backend("auto")   # why: "backend='auto' picked 'c' ..."
    """
    factories = _factories()
    if name == "auto":
        return _auto(factories, say=True)
    if not isinstance(name, str) or name not in factories:
        known = ", ".join(sorted(set(factories) | {"auto"}))
        raise GraphcError(f"backend {name!r} is not available in this version of graphc "
                          f"(available: {known})")
    return factories[name](), f"backend {name!r}"


def _auto(factories: dict, say: bool):
    reasons = []
    for candidate in PREFERENCE:
        if candidate not in factories:
            reasons.append(f"{candidate}: not built into this version")
            continue
        try:
            backend = factories[candidate]()
        except GraphcError as exc:
            reasons.append(f"{candidate}: {exc}")
            continue
        if candidate == "c":
            backend = _AutoC(backend)
            log.debug("backend='auto' picked 'c'")
            return backend, "backend='auto' picked 'c' (a C compiler or the compile cache is available)"
        why = f"backend='auto' picked {candidate!r} ({'; '.join(reasons)})"
        if say:
            fell_back(why)
        return backend, why
    raise GraphcError("no backend is available: " + "; ".join(reasons))


def fell_back(why: str) -> None:
    """Say that ``backend="auto"`` runs on NumPy instead of compiled code: a
    ``RuntimeWarning`` the first time in a process, an INFO log line every time."""
    global _warned_fallback
    log.info(why)
    if not _warned_fallback:
        _warned_fallback = True
        warnings.warn(f"graphc: {why}; steps run on the NumPy reference backend (much slower). "
                      "Install a C compiler (gcc or clang, or set CC), or pass backend='numpy' to "
                      "choose it explicitly", RuntimeWarning, stacklevel=_user_stacklevel())


def _user_stacklevel() -> int:
    """The ``stacklevel`` of the caller's innermost frame outside graphc (for warnings)."""
    f, level = sys._getframe(1), 1
    while f is not None and f.f_code.co_filename.startswith(_PACKAGE):
        f, level = f.f_back, level + 1
    return level


class _AutoC:
    """The C backend as ``"auto"`` picked it: with no compiler (only the cache), a fetch set
    that is not in the cache runs on NumPy instead of failing (said as :func:`fell_back`)."""

    name = "c"

    def __init__(self, backend) -> None:
        self._c = backend

    @property
    def check_numerics(self) -> bool:
        return self._c.check_numerics

    @check_numerics.setter
    def check_numerics(self, value: bool) -> None:
        self._c.check_numerics = value

    def compile(self, program):
        from ..env import find_c_compiler

        try:
            return self._c.compile(program)
        except GraphcError as exc:
            if find_c_compiler() is not None:
                raise  # a real failure: with a compiler, auto means C
            from .reference import ReferenceExecutable

            fell_back(f"backend='auto': this fetch set is not in the compile cache and there is "
                      f"no C compiler, so it runs on NumPy ({exc})")
            return ReferenceExecutable(program, self._c.check_numerics)


def why_unavailable(name: str) -> str | None:
    """Why backend ``name`` cannot be used here (e.g. no C compiler), or None if it can.

    Example::

        if why_unavailable("c") is None:
            sess = gc.Session(g, backend="c")
    """
    try:
        if name == "auto":
            _auto(_factories(), say=False)
        else:
            get_backend(name)
    except GraphcError as exc:
        return str(exc)
    return None
