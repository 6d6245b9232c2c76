"""Backends turn an optimized :class:`~graphc.program.Program` into something runnable.

A backend is an object with ``name`` and ``compile(program) -> Executable``;
an executable has ``run(feeds, state, ctx) -> list`` returning one value per
program output (``None`` for update ops) and recording variable writes in
``ctx.pending``. Backends register themselves in :data:`BACKENDS`.
"""

from __future__ import annotations

from ..errors import GraphcError

#: name -> zero-argument factory; a factory raises GraphcError if unavailable.
BACKENDS: dict[str, object] = {}
#: the order ``backend="auto"`` tries.
PREFERENCE = ("cuda", "c", "numpy")


def register_backend(name: str, factory) -> None:
    BACKENDS[name] = factory


def get_backend(name: str):
    """Instantiate backend ``name``; ``"auto"`` picks the fastest available.

    Returns ``(backend, why)`` where ``why`` explains an automatic choice.
    """
    from . import c_backend, numpy_backend  # noqa: F401 - register "c" and "numpy"

    if name == "auto":
        reasons = []
        for candidate in PREFERENCE:
            if candidate not in BACKENDS:
                reasons.append(f"{candidate}: not built into this version")
                continue
            try:
                backend = BACKENDS[candidate]()
            except GraphcError as exc:
                reasons.append(f"{candidate}: {exc}")
                continue
            why = f"backend='auto' picked {candidate!r}" + (
                f" ({'; '.join(reasons)})" if reasons else "")
            return backend, why
        raise GraphcError("no backend is available: " + "; ".join(reasons))
    if name not in BACKENDS:
        known = ", ".join(sorted(set(BACKENDS) | {"auto"}))
        raise GraphcError(f"backend {name!r} is not available in this version of graphc "
                          f"(available: {known})")
    return BACKENDS[name](), f"backend {name!r}"


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
