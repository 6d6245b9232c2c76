"""Errors raised by graphc, and how they point at the user's line.

Every error derives from :class:`GraphcError`. Shape errors are also
``ValueError`` and dtype errors also ``TypeError``, so code written against
NumPy conventions keeps working. :func:`user_site` finds the line of user code
that is creating a node; :func:`at` formats it for a message.
"""

from __future__ import annotations

import os
import sys

from . import shapes as _sh

#: graphc's own folder: frames inside it are not the user's
_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class GraphcError(Exception):
    """Base class of every error graphc raises."""


class ShapeError(GraphcError, ValueError):
    """Shapes that do not fit together (raised where the op is defined)."""


class DTypeError(GraphcError, TypeError):
    """A dtype an op cannot take."""


class ArgumentError(GraphcError, ValueError):
    """A bad non-tensor argument (a dropout rate, a stride ...)."""


class ArgumentTypeError(ArgumentError, TypeError):
    """A non-tensor argument of the wrong type (a list where a layer goes ...): an
    ArgumentError that is also ``TypeError``, like Python's own for a wrong type."""


class FeedError(GraphcError, ValueError):
    """A feed dict that does not match the placeholders of a fetch set."""


class NumericsError(GraphcError, FloatingPointError):
    """A NaN or Inf produced while ``check_numerics`` is on."""


class CheckpointError(GraphcError, OSError):
    """A checkpoint that cannot be written or read (``Session.save``/``load``), naming the path."""


def numerics_message(node, bad: str) -> str:
    """The text of the NumericsError for a ``bad`` ("NaN" or "Inf") value of graph node
    ``node``: the op, its role, the node's name and the line that defined it. Every
    backend raises this same text."""
    role = " (gradient)" if node.role == "grad" else ""
    return f"{bad} produced by {node.op.label(node.attrs)}{role} ({node.name}){at(node.site)}"


def at(site: str | None) -> str:
    """Return the ``"\\n  defined at FILE:LINE"`` suffix used in messages."""
    return f"\n  defined at {site}" if site else ""


def user_site() -> str | None:
    """``file:line`` of the innermost stack frame outside the graphc package."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(_PKG_DIR):
        f = f.f_back
    if f is None:
        return None
    path = f.f_code.co_filename
    try:
        rel = os.path.relpath(path)
        if not rel.startswith(".."):
            path = rel
    except ValueError:
        pass
    return f"{path}:{f.f_lineno}"


def located(exc: Exception) -> Exception:
    """``exc`` with the user's line appended, for errors raised by an op's Python
    function before its node is made (node creation appends it to shape-rule errors)."""
    return type(exc)(f"{exc}{at(user_site())}")


def shape_error(op: str, msg: str, *shapes) -> ShapeError:
    """A ShapeError naming the op and the shapes involved."""
    listed = ", ".join(_sh.fmt(s) for s in shapes)
    return ShapeError(f"{op}: {msg} (shapes {listed})" if shapes else f"{op}: {msg}")
