"""Debugging ops: print a value and check conditions inside the step, on every backend.

``gc.print(x)``, ``gc.check(cond)`` and ``gc.check_finite(x)`` return their input's value
(a copy), so they go inline: ``y = gc.check_finite(gc.print(y, "y"))``. Like every node,
they run when something fetched depends on them (a print nothing downstream uses is
dropped with the rest of the unused graph). They have side effects: never constant-folded,
merged with an identical one, or fused away; each is a kernel of its own, run in the
step's order, so the prints of a step come out in the order the step computes them (a
print after the prints its input depends on; independent ones in the order the fetches
reach them), the same on every backend.

A print writes one line to the standard output (on C from inside the native step, with
``printf`` and ``fflush``; Python's ``sys.stdout`` is flushed before the call, so the lines
interleave with Python's own prints; a notebook shows only what Python writes, so there the
C backend's lines go to the kernel's terminal)::

    <message> shape=(4, 3) [0.1 0.2 0.3 ... 1.1 1.2 1.3] min=0.1 max=1.3 mean=0.7

Values as C's ``%.6g`` (``nan``, ``inf``, ``-inf``), integers and bools (0/1) as integers;
the first and last ``summarize`` values (all when there are at most ``2 * summarize``);
min/max are NaN when a value is NaN; the mean is the float64 sum in element order over
the count. A batch dimension shows its run-time size. A failing check raises
:class:`~graphc.ir.errors.GraphcError` naming the message, the first failing element and
the line that made the check; the step then changes no variable and the step counter
does not advance.

Example::

    h = gc.print(gc.relu(x @ W), "hidden", every=100)
    loss = gc.check_finite(gc.mean(gc.square(h)), "loss")
    y = gc.check(gc.greater_equal(x, 0.0), "x must be >= 0", value=x)
"""

from __future__ import annotations

import sys
from typing import ClassVar

import numpy as np

from ..ir import dtypes as _dt
from ..ir.errors import ArgumentError, ArgumentTypeError, DTypeError, GraphcError, at, located
from ..ir.graph import Kind, Op, Tensor, as_tensor, make


class Effect(Op):
    """An op with a side effect whose value is a copy of its last input: never folded
    or merged (``pure``), a kernel of its own that fusion never moves (``effect``)."""

    kind = Kind.OPAQUE
    pure = False
    #: fusion keeps the kernel where the step's order puts it
    effect: ClassVar[bool] = True

    def grad(self, node, g):
        return [None] * (len(node.inputs) - 1) + [g]


def _text(message, what: str) -> str:
    if not isinstance(message, str):
        raise ArgumentTypeError(f"{what}: message must be a str, got {type(message).__name__}")
    if "\0" in message:
        raise ArgumentError(f"{what}: message contains a NUL character")
    return message


def _count(value, what: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ArgumentError(f"print: {what} must be an integer >= {least}, got {value!r}")
    return int(value)


def _valued(x: Tensor, what: str) -> None:
    if x.dtype is None:
        raise ArgumentError(f"{what}: {x.name} is an update op (it has no value)")


# -- print ---------------------------------------------------------------------------------

def shape_parts(shape: tuple) -> list:
    """``shape=(N, 3)`` as text pieces, ``None`` (the batch size) left as None."""
    parts: list = ["shape=("]
    for k, d in enumerate(shape):
        parts += ([", "] if k else []) + [None if d is None else str(d)]
    return parts + [",)" if len(shape) == 1 else ")"]


def _number(v, is_float: bool) -> str:
    return format(float(v), ".6g") if is_float else str(int(v))


def summary(values: np.ndarray, summarize: int) -> str:
    """The values part of a print line (what ``kernels/debug.h`` writes on C)."""
    flat = values.reshape(-1)
    is_float = flat.dtype.kind == "f"
    n = flat.size
    if n <= 2 * summarize:
        words = [_number(v, is_float) for v in flat]
    else:
        words = [_number(v, is_float) for v in flat[:summarize]] + ["..."]
        words += [_number(v, is_float) for v in flat[n - summarize:]]
    text = "[" + " ".join(words) + "]"
    if n == 0:
        return text
    if is_float and np.isnan(flat).any():
        lo = hi = "nan"
    else:  # (+ 0.0: -0.0 and 0.0 print alike whichever of them the scan meets first)
        lo = _number(float(flat.min()) + 0.0 if is_float else flat.min(), is_float)
        hi = _number(float(flat.max()) + 0.0 if is_float else flat.max(), is_float)
    mean = float(np.add.accumulate(flat.astype(np.float64))[-1]) / n  # (the sum in order, as C)
    return f"{text} min={lo} max={hi} mean={mean:.6g}"


class Print(Effect):
    """Print a summary of ``x`` (see the module docstring) and pass its value on."""

    name = "print"

    def infer(self, inputs, message, summarize, every):
        _valued(inputs[0], "print")
        return inputs[0].shape, inputs[0].dtype

    def reference(self, ctx, node, x):
        if ctx.step % node.attrs["every"] == 0:
            parts = shape_parts(node.shape)
            shape = "".join(str(ctx.batch) if p is None else p for p in parts)
            line = f"{node.attrs['message']} {shape} {summary(x, node.attrs['summarize'])}\n"
            sys.stdout.write(line)
            sys.stdout.flush()
        return x


def print(x, message: str = "", summarize: int = 3, every: int = 1) -> Tensor:  # noqa: A001
    """Identity that prints ``message``, the shape and a summary of ``x`` each time the
    step runs (only at steps ``0, every, 2*every ...`` of the session's step counter).

    ``summarize``: how many values to show at each end; ``message`` defaults to the name
    of ``x``. The line goes to the standard output, on every backend, in the same format
    (see :mod:`graphc.ops.debug`). It prints when something fetched depends on the result,
    so use the result in place of ``x``.

    Example: ``h = gc.print(h, "h after relu", summarize=2, every=10)``
    """
    try:
        message = _text(message, "print")
        summarize = _count(summarize, "summarize", 0)
        every = _count(every, "every", 1)
    except GraphcError as exc:
        raise located(exc) from None
    x = as_tensor(x)
    return make(Print, [x], {"message": message or x.name, "summarize": summarize, "every": every})


# -- checks --------------------------------------------------------------------------------

def _failure(node: Tensor, text: str) -> GraphcError:
    return GraphcError(f"{node.op.label(node.attrs)} ({node.name}) failed at run time: {text}"
                       f"{at(node.site)}")


class Check(Effect):
    """Fail the step when an element of ``cond`` (first input) is false; the value is that
    of the last input (``cond`` itself, or the ``value`` it guards)."""

    name = "check"
    can_fail = True

    def infer(self, inputs, message):
        if inputs[0].dtype != "bool":
            raise DTypeError(f"check: the condition {inputs[0].name} must be bool, got "
                             f"{inputs[0].dtype} (compare it: gc.greater(x, 0.0) ...)")
        _valued(inputs[-1], "check")
        return inputs[-1].shape, inputs[-1].dtype

    def reference(self, ctx, node, cond, *value):
        bad = np.flatnonzero(~cond.reshape(-1))
        if bad.size:
            raise _failure(node, f"{node.attrs['message']} (false at element {int(bad[0])})")
        return value[0] if value else cond


def check(cond, message: str = "", value=None) -> Tensor:
    """Stop the step with a :class:`GraphcError` (``message``, the first false element and
    this line) when any element of the bool tensor ``cond`` is false.

    Returns ``value`` (a copy) when given, else ``cond``: the check runs when something
    fetched depends on the result (fetch it, or use it in place of ``value``). A failing
    step changes no variable. ``message`` defaults to ``check(<cond's name>)``.

    Example: ``x = gc.check(gc.greater_equal(x, 0.0), "x must be >= 0", value=x)``
    """
    try:
        message = _text(message, "check")
    except GraphcError as exc:
        raise located(exc) from None
    cond = as_tensor(cond)
    inputs = [cond] if value is None else [cond, value]
    return make(Check, inputs, {"message": message or f"check({cond.name})"})


class CheckFinite(Effect):
    """Fail the step when ``x`` holds a NaN or an infinity; the value is ``x``'s."""

    name = "check_finite"
    can_fail = True

    def infer(self, inputs, message):
        x = inputs[0]
        _valued(x, "check_finite")
        if not _dt.is_float(x.dtype):
            raise DTypeError(f"check_finite: {x.name} is {x.dtype}; only float tensors can hold "
                             f"NaN or Inf")
        return x.shape, x.dtype

    def reference(self, ctx, node, x):
        flat = x.reshape(-1)
        bad = np.flatnonzero(~np.isfinite(flat))
        if bad.size:
            what = "NaN" if np.isnan(flat[bad[0]]) else "Inf"
            raise _failure(node, f"{node.attrs['message']} ({what} at element {int(bad[0])})")
        return x


def check_finite(x, message: str = "") -> Tensor:
    """``x``, checked: the step stops with a :class:`GraphcError` (``message``, NaN or Inf,
    the first such element and this line) when ``x`` holds a NaN or an infinity.

    Runs when something fetched depends on the result, so use it in place of ``x``. A
    failing step changes no variable. ``message`` defaults to ``check_finite(<x's name>)``.

    Example: ``loss = gc.check_finite(loss, "loss")``
    """
    try:
        message = _text(message, "check_finite")
    except GraphcError as exc:
        raise located(exc) from None
    x = as_tensor(x)
    return make(CheckFinite, [x], {"message": message or f"check_finite({x.name})"})
