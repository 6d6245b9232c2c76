"""Errors raised by graphc, and how they point at the user's line.

Every error derives from :class:`GraphcError`. Shape errors are also
``ValueError`` and dtype errors also ``TypeError``, so code written against
NumPy conventions keeps working. :func:`user_site` finds the line of user code
that is creating a node; :func:`at` formats it for a message.
"""

from __future__ import annotations

import os
import runpy
import sys

from . import shapes as _sh

#: graphc's own folder: frames inside it are not the user's
_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
#: graphc's applications (demo, bench): their lines are the "user's" when graphc's own
#: command line runs them
_TOOLS_DIR = os.path.join(_PKG_DIR, "tools") + os.sep
#: where graphc's command line starts: what called it (a console-script shim, runpy,
#: ``python -m graphc``) is a launcher, never the user's line
_ENTRY_FILES = frozenset({os.path.join(_TOOLS_DIR, "cli.py"), os.path.join(_PKG_DIR, "__main__.py"),
                          os.path.join(_TOOLS_DIR, "bench", "__main__.py")})


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


class VerifyError(GraphcError):
    """``Session(..., verify=True)``: a compiled step differs from the NumPy reference
    beyond the numerical contract; ``report`` is the :class:`~graphc.runtime.verify.VerifyReport`
    (its text is the message). Nothing was committed."""

    def __init__(self, message: str, report=None) -> None:
        super().__init__(message)
        self.report = report


class CheckpointError(GraphcError, OSError):
    """A checkpoint that cannot be written or read (``Session.save``/``load``), naming the path."""


def numerics_message(node, bad: str) -> str:
    """The text of the NumericsError for a ``bad`` ("NaN" or "Inf") value of graph node
    ``node``: the op, its role, the node's name and the line that defined it. Every
    backend raises this same text."""
    role = " (gradient)" if node.role == "grad" else ""
    return f"{bad} produced by {node.op.label(node.attrs)}{role} ({node.name}){at(node.site)}"


def check_finite_value(node, value) -> None:
    """Raise the :class:`NumericsError` of ``check_numerics`` if the float array ``value``
    of graph node ``node`` holds a NaN (named first) or an Inf; other values pass."""
    import numpy as np  # (this module stays light to import)

    if isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise NumericsError(numerics_message(node, "NaN" if np.isnan(value).any() else "Inf"))


def at(site: str | None) -> str:
    """Return the ``"\\n  defined at FILE:LINE"`` suffix used in messages."""
    return f"\n  defined at {site}" if site else ""


#: runpy's frames (``python -m``, ``runpy.run_path``) start programs: not the user's code
_LAUNCHERS = frozenset({runpy.__file__, "<frozen runpy>"})


def user_site() -> str | None:
    """``file:line`` of the user's line that is creating a node.

    That is the innermost stack frame outside the graphc package, unless none
    is found before graphc's command line (``graphc demo``, ``python -m graphc``):
    then whatever called it (a console-script shim, runpy) is a launcher and the
    site is the innermost frame of graphc's applications (``graphc/tools/``),
    e.g. the line of the demo that built the layer. runpy's frames are
    launchers too.
    """
    f = sys._getframe(1)
    tool = None
    while f is not None:
        path = f.f_code.co_filename
        if not path.startswith(_PKG_DIR):
            if path in _LAUNCHERS:
                break
            return _format_site(f)
        if tool is None and path.startswith(_TOOLS_DIR):
            tool = f
        if path in _ENTRY_FILES:
            break
        f = f.f_back
    return _format_site(tool) if tool is not None else None


def _format_site(f) -> str:
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
