"""Errors raised by graphc, and how they point at the user's line.

Every error derives from :class:`GraphcError`. Shape errors are also
``ValueError`` and dtype errors also ``TypeError``, so code written against
NumPy conventions keeps working.
"""

from __future__ import annotations


class GraphcError(Exception):
    """Base class of every error graphc raises."""


class ShapeError(GraphcError, ValueError):
    """Shapes that do not fit together (raised where the op is defined)."""


class DTypeError(GraphcError, TypeError):
    """A dtype an op cannot take."""


class ArgumentError(GraphcError, ValueError):
    """A bad non-tensor argument (a dropout rate, a stride ...)."""


class FeedError(GraphcError, ValueError):
    """A feed dict that does not match the placeholders of a fetch set."""


class NumericsError(GraphcError, FloatingPointError):
    """A NaN or Inf produced while ``check_numerics`` is on."""


def at(site: str | None) -> str:
    """Return the ``"\\n  defined at FILE:LINE"`` suffix used in messages."""
    return f"\n  defined at {site}" if site else ""
