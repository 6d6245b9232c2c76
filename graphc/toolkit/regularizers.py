"""Weight penalties (graph scalars to add to a loss) and decoupled weight decay.

``params`` may be one variable, a layer (its ``.parameters``), or a list of
variables and layers. Penalties are ordinary graph tensors, so ``gc.grad``
and every optimizer differentiate them like any other loss term.

Example::

    import graphc as gc
    penalty = gc.regularizers.l2(net.parameters, 1e-4)          # 1e-4 * sum w**2
    train = gc.optim.SGD(0.1).minimize(loss + penalty)

    # AdamW-style decoupled decay: p <- p - lr * rate * p inside the optimizer step
    opt = gc.regularizers.weight_decay(gc.optim.Adam(1e-3), 1e-2)
    train = opt.minimize(loss)
"""

from __future__ import annotations

from collections.abc import Iterable

from ..ir.errors import GraphcError, at, user_site
from ..ir.graph import Kind, Tensor
from ..ir.scopes import update_scope
from ..ops.elemwise import abs as _abs
from ..ops.elemwise import cast, sqrt, square
from ..ops.reduce import sum as _sum
from ..ops.state import assign, group
from ._args import bad_type, bad_value

__all__ = ["collect", "l1", "l2", "l2_norm", "elastic_net", "weight_decay",
           "decoupled_weight_decay"]


def collect(params) -> list[Tensor]:
    """Flatten ``params`` (a tensor, a layer or an iterable of them) into a list of tensors.

    Example::

        ws = gc.regularizers.collect([dense1, dense2.W])
    """
    out: list[Tensor] = []

    def visit(p) -> None:
        if isinstance(p, Tensor):
            out.append(p)
        elif hasattr(p, "parameters") and not isinstance(p, (list, tuple)):
            for q in p.parameters:
                visit(q)
        elif isinstance(p, Iterable) and not isinstance(p, (str, bytes)):
            for q in p:
                visit(q)
        else:
            raise bad_type(f"regularizer: {p!r} is not a tensor, a layer or a list of them")

    visit(params)
    seen: dict[int, Tensor] = {}
    for t in out:
        seen.setdefault(id(t), t)
    if not seen:
        raise GraphcError(f"regularizer: no parameters given (is the layer built yet?)"
                          f"{at(user_site())}")
    return list(seen.values())


def _total(terms: list[Tensor]) -> Tensor:
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def l1(params, scale: float) -> Tensor:
    """``scale * sum |w|`` over every parameter; gradient ``scale * sign(w)``.

    Example::

        loss = data_loss + gc.regularizers.l1(net.parameters, 1e-5)
    """
    return scale * _total([_sum(_abs(p)) for p in collect(params)])


def l2(params, scale: float) -> Tensor:
    """``scale * sum w**2`` (squared, no 1/2); gradient ``2 * scale * w``.

    Example::

        loss = data_loss + gc.regularizers.l2([dense.W], 1e-4)
    """
    return scale * _total([_sum(square(p)) for p in collect(params)])


def l2_norm(params, scale: float = 1.0) -> Tensor:
    """``scale * sqrt(sum w**2)``: the (global) Euclidean norm; gradient ``scale * w / ||w||``.

    Not differentiable at w = 0 (the gradient is NaN there).

    Example::

        norm = gc.regularizers.l2_norm(net.parameters)
    """
    return scale * sqrt(_total([_sum(square(p)) for p in collect(params)]))


def elastic_net(params, l1: float, l2: float) -> Tensor:
    """``l1 * sum |w| + l2 * sum w**2``.

    Example::

        loss = data_loss + gc.regularizers.elastic_net(net.parameters, l1=1e-5, l2=1e-4)
    """
    ps = collect(params)
    return _total([l1 * _sum(_abs(p)) + l2 * _sum(square(p)) for p in ps])


def _lr_as(lr, dtype: str):
    if isinstance(lr, Tensor):
        if lr.shape != ():
            raise GraphcError(f"weight decay: lr tensor must be a scalar{at(user_site())}")
        return cast(lr, dtype)
    return float(lr)


def decoupled_weight_decay(params, rate: float, lr) -> Tensor:
    """An update op applying ``p <- p - lr * rate * p`` to every parameter.

    ``lr`` is a float or a scalar tensor (e.g. the placeholder fed by a
    schedule). Within one ``Session.run`` every read sees the value from
    before the step and all writes commit together, the last write of a
    variable winning; so do **not** ``gc.group`` this op with an optimizer
    step that updates the same variables (one of the two updates would be
    lost). Either run it as its own fetch after the step, or, to decay inside
    the step, wrap the optimizer with :func:`weight_decay`::

        decay = gc.regularizers.decoupled_weight_decay(net.parameters, 1e-2, lr)
        sess.run([loss, train], feed)
        sess.run(decay, {lr: current_lr})

    ``gc.group(train, decay)`` is correct only when ``train`` does not touch
    these variables (e.g. ``minimize(loss, var_list=others)``).
    """
    updates = []
    for p in collect(params):
        if p.op.kind is not Kind.VARIABLE:
            raise GraphcError(f"decoupled_weight_decay: {p.name} is not a variable"
                              f"{at(user_site())}")
        with p.graph.derived("update", user_site(), update_scope(p, "weight_decay")):
            updates.append(assign(p, p - _lr_as(lr, p.dtype) * rate * p))
    return group(*updates, name="weight_decay")


def weight_decay(optimizer, rate: float, params=None):
    """Make ``optimizer`` apply decoupled weight decay (AdamW / SGDW) in its step.

    Each step becomes ``p <- p_step - lr * rate * p``, where ``p_step`` is the
    optimizer's own update and ``p`` the value before the step (PyTorch's
    AdamW). ``params`` limits the decay to some variables (e.g. the kernels,
    not biases or BatchNorm scales); by default every trained variable decays.
    The optimizer is modified in place and returned.

    Example::

        opt = gc.regularizers.weight_decay(gc.optim.Adam(1e-3), 1e-2,
                                           params=[l.W for l in dense_layers])
        train = opt.minimize(loss)
    """
    if not float(rate) >= 0.0:
        raise bad_value(f"weight_decay: rate must be >= 0, got {rate}")
    optimizer.weight_decay = float(rate)
    optimizer.decay_params = None if params is None else collect(params)
    return optimizer
