"""Optimizers as graph update ops; their state is graph variables.

``minimize(loss)`` builds the gradients and returns one update op; running
it applies a step to every trainable variable (or to ``var_list``). The
learning rate may be a float or a scalar tensor (e.g. a placeholder fed by a
schedule). Formulas follow PyTorch's definitions. Each gradient is marked
(``gc.distributed.sync_gradient``) so that a Session with an MPI communicator averages
it over the ranks before the update reads it; without one the mark costs nothing.

Names: the update arithmetic of a variable and its slot variables (momentum,
Adam's moments) live in the sub-scope ``"<variable's scope>/<Optimizer>/<variable>"``
of the variable's scope: for ``"dense/W"``, Adam's first moment is
``"dense/Adam/W/m"`` (``opt.slot(W, "m")``); for a variable ``"W"`` outside any
scope, ``"Adam/W/m"``. State the optimizer shares (Adam's step count ``"Adam/t"``)
and the step op (``"Adam/step"``) live in the scope ``"<Optimizer>"`` inside the
scope where ``minimize`` is called.

Example::

    train = gc.optim.Adam(lr=1e-3).minimize(loss)
    sess.run(train, feed)
"""

from __future__ import annotations

import numpy as np

from ..distributed.ops import sync_gradient
from ..ir import dtypes as _dt
from ..ir.errors import GraphcError, at, user_site
from ..ir.graph import Kind, Tensor
from ..ir.scopes import name_scope, update_scope
from ..ops.elemwise import cast, sqrt
from ..ops.leaves import constant, variable
from ..ops.state import Assign, assign, group
from ..transforms.autodiff import grad
from ._args import bad_value, number


class Optimizer:
    """Base class: subclasses implement ``_update(var, g, lr) -> list of assigns``."""

    def __init__(self, lr) -> None:
        if not isinstance(lr, Tensor):
            number(type(self).__name__, "lr", lr, low=0.0, low_open=True)
        self.lr = lr
        self.state: dict[str, Tensor] = {}
        self._slots: dict[tuple[int, str], Tensor] = {}
        #: decoupled weight decay (AdamW/SGDW): p <- p_step - lr * weight_decay * p
        self.weight_decay = 0.0
        #: the variables that decay (None: all trained variables)
        self.decay_params: list[Tensor] | None = None

    def minimize(self, loss: Tensor, var_list: list[Tensor] | None = None) -> Tensor:
        """An update op applying one step to ``var_list`` (default: all trainable)."""
        site = user_site()
        if not isinstance(loss, Tensor):
            raise GraphcError(f"minimize: loss must be a graph tensor{at(site)}")
        graph = loss.graph
        variables = list(var_list) if var_list is not None else graph.trainable_variables()
        variables = [v for v in variables if _dt.is_float(v.dtype)]
        if not variables:
            raise GraphcError(f"minimize: there are no float variables to train{at(site)}")
        for v in variables:
            if v.op.kind is not Kind.VARIABLE:
                raise GraphcError(f"minimize: {v.name} is not a variable{at(site)}")
        grads = grad(loss, variables)
        updates = []
        owner = type(self).__name__
        with graph.derived("update", site), name_scope(owner):
            shared = self._shared(graph, loss.dtype)
            for v, g in zip(variables, grads):
                with graph.derived("update", site, update_scope(v, owner)):
                    g = sync_gradient(g)  # averaged over the ranks of a Session's comm
                    lr = self._lr(v.dtype)
                    updates.extend(self._decayed(v, lr, self._update(v, g, lr, shared)))
            updates.extend(self._shared_updates(shared))
            updates.extend(graph.extra_updates)  # e.g. BatchNorm running statistics
            return group(*updates, name="step")

    def _decayed(self, v: Tensor, lr, updates: list[Tensor]) -> list[Tensor]:
        """Apply decoupled weight decay to the assign of ``v`` (from the old value)."""
        if not self.weight_decay or (self.decay_params is not None and not any(
                v is p for p in self.decay_params)):
            return updates
        return [assign(v, u.inputs[1] - lr * self.weight_decay * v)
                if isinstance(u.op, Assign) and u.inputs[0] is v else u for u in updates]

    # -- helpers for subclasses ----------------------------------------------------------
    def _lr(self, dtype: str):
        if isinstance(self.lr, Tensor):
            if self.lr.shape != ():
                raise GraphcError(f"{type(self).__name__}: lr tensor must be a scalar")
            return cast(self.lr, dtype)
        return constant(float(self.lr), dtype=dtype)

    def _slot(self, v: Tensor, name: str, fill: float = 0.0) -> Tensor:
        """A new slot variable ``name`` of ``v`` (made in ``v``'s update scope)."""
        s = variable(np.full(v.shape, fill, dtype=v.dtype), name=name, trainable=False)
        self.state[s.name] = s
        self._slots[v.id, name] = s
        return s

    def slot(self, var: Tensor, name: str) -> Tensor | None:
        """The slot variable ``name`` this optimizer keeps for ``var`` (``"momentum"`` of
        SGD, ``"m"``/``"v"`` of Adam, ``"square_avg"`` of RMSProp, ``"sum"`` of AdaGrad),
        or None; from the latest ``minimize`` that trained ``var``.

        Example::

            opt = gc.optim.Adam(1e-3)
            train = opt.minimize(loss)
            m = sess.get_value(opt.slot(W, "m"))
        """
        return self._slots.get((var.id, name)) if isinstance(var, Tensor) else None

    def _shared(self, graph, dtype: str) -> dict:
        return {}

    def _shared_updates(self, shared: dict) -> list[Tensor]:
        return []

    def _update(self, v: Tensor, g: Tensor, lr, shared: dict) -> list[Tensor]:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    buf = momentum buf + g;  p -= lr (g + momentum buf if nesterov else buf)
    """

    def __init__(self, lr, momentum: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(lr)
        momentum = number("SGD", "momentum", momentum, low=0.0)
        if nesterov and momentum <= 0:
            raise bad_value("SGD: nesterov needs momentum > 0")
        self.momentum, self.nesterov = momentum, bool(nesterov)

    def _update(self, v, g, lr, shared):
        if self.momentum == 0.0:
            return [assign(v, v - lr * g)]
        buf = self._slot(v, "momentum")
        new_buf = self.momentum * buf + g
        step = g + self.momentum * new_buf if self.nesterov else new_buf
        return [assign(buf, new_buf), assign(v, v - lr * step)]


class Adam(Optimizer):
    """Adam with bias correction.

    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
    p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
    """

    def __init__(self, lr=1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8) -> None:
        super().__init__(lr)
        self.beta1 = number("Adam", "beta1", beta1, low=0.0, high=1.0, high_open=True)
        self.beta2 = number("Adam", "beta2", beta2, low=0.0, high=1.0, high_open=True)
        self.eps = number("Adam", "eps", eps, low=0.0)

    def _shared(self, graph, dtype):
        t = variable(np.zeros((), np.float64), name="t", trainable=False)
        self.state[t.name] = t
        return {"t": t, "t_new": t + 1.0}

    def _shared_updates(self, shared):
        return [assign(shared["t"], shared["t_new"])]

    def _update(self, v, g, lr, shared):
        m, s = self._slot(v, "m"), self._slot(v, "v")
        t = cast(shared["t_new"], v.dtype)
        m_new = self.beta1 * m + (1 - self.beta1) * g
        s_new = self.beta2 * s + (1 - self.beta2) * g * g
        m_hat = m_new / (1 - self.beta1 ** t)
        s_hat = s_new / (1 - self.beta2 ** t)
        return [assign(m, m_new), assign(s, s_new),
                assign(v, v - lr * m_hat / (sqrt(s_hat) + self.eps))]


class RMSProp(Optimizer):
    """RMSProp: s = alpha s + (1-alpha) g^2;  p -= lr g / (sqrt(s) + eps)."""

    def __init__(self, lr=1e-2, alpha: float = 0.99, eps: float = 1e-8) -> None:
        super().__init__(lr)
        self.alpha = number("RMSProp", "alpha", alpha, low=0.0, high=1.0)
        self.eps = number("RMSProp", "eps", eps, low=0.0)

    def _update(self, v, g, lr, shared):
        s = self._slot(v, "square_avg")
        s_new = self.alpha * s + (1 - self.alpha) * g * g
        return [assign(s, s_new), assign(v, v - lr * g / (sqrt(s_new) + self.eps))]


class AdaGrad(Optimizer):
    """AdaGrad: s += g^2;  p -= lr g / (sqrt(s) + eps)."""

    def __init__(self, lr=1e-2, eps: float = 1e-10, initial_accumulator_value: float = 0.0) -> None:
        super().__init__(lr)
        self.eps = number("AdaGrad", "eps", eps, low=0.0)
        self.initial = number("AdaGrad", "initial_accumulator_value", initial_accumulator_value,
                              low=0.0)

    def _update(self, v, g, lr, shared):
        s = self._slot(v, "sum", self.initial)
        s_new = s + g * g
        return [assign(s, s_new), assign(v, v - lr * g / (sqrt(s_new) + self.eps))]
