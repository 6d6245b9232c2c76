"""Update ops: ``assign`` (write a variable) and ``group`` (several updates).

Within one ``Session.run`` every read of a variable sees the value from
before the step; all assigns of the step commit together at its end.
"""

from __future__ import annotations

from ..ir.errors import ArgumentError, DTypeError, GraphcError, at, shape_error, user_site
from ..ir.graph import Kind, Op, Tensor, as_tensor, make


class _Update(Op):
    """An op that writes state: no value, no gradient, never folded or merged."""

    kind = Kind.UPDATE
    differentiable = False
    pure = False

    def grad(self, node, g):
        return [None] * len(node.inputs)


class Assign(_Update):
    """Write the value (second input) into the variable (first input)."""

    name = "assign"

    def infer(self, inputs):
        var, value = inputs
        if var.op.kind is not Kind.VARIABLE:
            raise GraphcError(f"assign: target {var.name} is not a variable")
        if value.shape != var.shape:
            raise shape_error("assign", f"value does not match variable {var.name}",
                              var.shape, value.shape)
        if value.dtype != var.dtype:
            raise DTypeError(f"assign: variable {var.name} is {var.dtype}, value is {value.dtype}")
        return (), None

    def reference(self, ctx, node, var, value):
        ctx.pending[node.inputs[0]] = value

    def label(self, attrs):
        return "assign"


class Group(_Update):
    """Run several updates as one."""

    name = "group"

    def infer(self, inputs):
        for t in inputs:
            if t.dtype is not None:
                raise ArgumentError(f"group: {t.name} is not an update op (it has a value: "
                                    "fetch it with sess.run instead)")
        check_single_writer(inputs)
        return (), None

    def reference(self, ctx, node, *values):
        return None


def assign_targets(updates) -> list[Tensor]:
    """The assign nodes reachable from ``updates`` through groups."""
    out, stack, seen = [], list(updates), set()
    while stack:
        t = stack.pop()
        if t.id in seen:
            continue
        seen.add(t.id)
        if isinstance(t.op, Assign):
            out.append(t)
        elif isinstance(t.op, Group):
            stack.extend(t.inputs)
    return out


def check_single_writer(updates) -> None:
    """Two assigns to one variable in a step would race: refuse them."""
    writers: dict[int, Tensor] = {}
    for a in assign_targets(updates):
        var = a.inputs[0]
        if var.id in writers and writers[var.id] is not a:
            first = writers[var.id]
            raise GraphcError(f"variable {var.name} is assigned twice in one step "
                              f"(at {first.site} and {a.site}); combine the updates into one")
        writers[var.id] = a


def assign(var: Tensor, value) -> Tensor:
    """An update op that writes ``value`` into ``var`` when run."""
    return make(Assign, [var, as_tensor(value, dtype=var.dtype, graph=var.graph)])


def group(*updates, name: str | None = None) -> Tensor:
    """One update op that runs all ``updates``; lists and tuples of them are flattened,
    as in TF1's ``tf.group``.

    Example: ``step = gc.group(train, [update_mean, update_var])``
    """
    flat, stack = [], list(updates)[::-1]
    while stack:
        u = stack.pop()
        if isinstance(u, (list, tuple)):
            stack.extend(list(u)[::-1])
        elif isinstance(u, Tensor):
            flat.append(u)
        else:
            raise ArgumentError(f"group: takes update ops (tensors such as an optimizer's "
                                f"minimize() or gc.assign), got {type(u).__name__}{at(user_site())}")
    return make(Group, flat, name=name)
