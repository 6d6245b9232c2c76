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
"""

from __future__ import annotations

from ..ir.errors import GraphcError

#: the order ``backend="auto"`` tries.
PREFERENCE = ("c", "numpy")


def _factories() -> dict:
    """name -> backend class (imported on first use: the C backend loads cffi)."""
    from .c import CBackend
    from .reference import ReferenceBackend

    return {"numpy": ReferenceBackend, "c": CBackend}


def get_backend(name: str):
    """Instantiate backend ``name``; ``"auto"`` picks the fastest available.

    Returns ``(backend, why)`` where ``why`` explains an automatic choice.
    """
    factories = _factories()
    if name == "auto":
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
            why = f"backend='auto' picked {candidate!r}" + (
                f" ({'; '.join(reasons)})" if reasons else "")
            return backend, why
        raise GraphcError("no backend is available: " + "; ".join(reasons))
    if name not in factories:
        known = ", ".join(sorted(set(factories) | {"auto"}))
        raise GraphcError(f"backend {name!r} is not available in this version of graphc "
                          f"(available: {known})")
    return factories[name](), f"backend {name!r}"


def why_unavailable(name: str) -> str | None:
    """Why backend ``name`` cannot be used here (e.g. no C compiler), or None if it can.

    Example::

        if why_unavailable("c") is None:
            sess = gc.Session(g, backend="c")
    """
    try:
        get_backend(name)
    except GraphcError as exc:
        return str(exc)
    return None
