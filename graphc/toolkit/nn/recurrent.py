"""Recurrent layers: RNN, LSTM, GRU and Bidirectional, batch-first (N, T, F).

Each layer runs its recurrence with ``gc.scan``: the step is traced once, so the
graph, the compile time and the generated code do not grow with T. The input
projection ``x W_ih^T + b`` of every time step is one GEMM (its bias added as the GEMM
stores it) outside the scan, on the time-major copy of the (small) input; only
``h W_hh^T`` and the gate arithmetic run inside it. Parameters have
``torch.nn.RNN``/``LSTM``/``GRU``'s layouts, gate orders and names (see
:meth:`torch_names`), so values copied from a PyTorch module give the same outputs.

Example::

    import graphc as gc
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 20, 8), name="x")                # (N, T, F)
        out, (h, c) = gc.nn.LSTM(32)(x)                            # (None, 20, 32), (None, 32)
        out2, h2 = gc.nn.Bidirectional(gc.nn.GRU(16, num_layers=2))(out)   # (None, 20, 32)
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ...ir import shapes as _sh
from ...ir.errors import DTypeError, ShapeError, at, user_site
from ...ir.graph import Tensor, as_tensor
from ...ops import nn as _nnops
from ...ops.elemwise import relu, sigmoid, tanh
from ...ops.indexing import split, stack
from ...ops.leaves import constant
from ...ops.linalg import matmul
from ...ops.reduce import broadcast_to
from ...ops.shape import concat, transpose
from ...transforms.scan import scan
from .._args import bad_type, bad_value, choice, integer, number
from ..init import small_uniform
from .base import Layer, check_sequence

State = Any     # a Tensor, or (h, c) for an LSTM


class _Recurrent(Layer):
    """Shared machinery: parameters per (layer, direction), the stacked run, the states."""

    gates = 1                 # gate blocks stacked in weight_ih / weight_hh
    state_size = 1            # tensors in the carried state: 1 (h), 2 (h, c) for LSTM

    def __init__(self, hidden: int, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, name: str | None = None) -> None:
        super().__init__(name)
        owner = type(self).__name__
        self.hidden = integer(owner, "hidden", hidden, low=1)
        self.num_layers = integer(owner, "num_layers", num_layers, low=1)
        if not isinstance(bidirectional, bool):
            raise bad_value(f"{owner}: bidirectional must be True or False, got {bidirectional!r}")
        self.directions = 2 if bidirectional else 1
        self.dropout = number(owner, "dropout", dropout, low=0.0, high=1.0, high_open=True)
        self.weights: dict[str, Tensor] = {}
        self._state: Any = None

    # -- names and parameters -------------------------------------------------------
    def _suffix(self, layer: int, direction: int) -> str:
        return (f"_l{layer}" if self.num_layers > 1 else "") + ("_reverse" if direction else "")

    def torch_names(self) -> dict[str, Tensor]:
        """PyTorch ``state_dict`` key -> this layer's variable, for the same module
        (``torch.nn.LSTM(F, H, num_layers, batch_first=True, bidirectional=...)``).

        PyTorch's ``weight_ih_l{k}[_reverse]`` is ``"<scope>/weight_ih_l{k}[_reverse]"``,
        except that a one-layer model drops the ``_l0``: ``"<scope>/weight_ih"``.

        Example::

            for key, var in lstm.torch_names().items():
                sess.set_value(var, torch_lstm.state_dict()[key].numpy())
        """
        if not self.built:
            raise bad_value(f"{self!r} has no parameters before its first call")
        out = {}
        for k in range(self.num_layers):
            for d in range(self.directions):
                tail = f"_l{k}" + ("_reverse" if d else "")
                for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    out[p + tail] = self.weights[p + self._suffix(k, d)]
        return out

    def load_torch_state_dict(self, sess, state_dict) -> None:
        """Copy a PyTorch module's ``state_dict()`` (tensors or arrays) into ``sess``.

        Every key must be present with the right shape; nothing is set otherwise.

        Example::

            lstm.load_torch_state_dict(sess, torch.nn.LSTM(8, 32, batch_first=True).state_dict())
        """
        names = self.torch_names()
        missing = sorted(set(names) - set(state_dict))
        extra = sorted(set(state_dict) - set(names))
        if missing or extra:
            raise bad_value(f"{type(self).__name__} {self.name!r}: state_dict keys do not match "
                            f"(missing {missing}, unexpected {extra})")
        values = []
        for key, var in names.items():
            v = state_dict[key]
            v = v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
            if v.shape != var.shape:
                raise ShapeError(f"{type(self).__name__} {self.name!r}: {key} has shape "
                                 f"{v.shape}, the layer's {var.name} {_sh.fmt(var.shape)}"
                                 f"{at(user_site())}")
            values.append((var, v.astype(var.dtype)))
        for var, v in values:
            sess.set_value(var, v)

    # -- calling ----------------------------------------------------------------------
    def __call__(self, x: Any, initial_state: State = None) -> tuple[Tensor, State]:
        """``(outputs (N, T, directions * hidden), final state)``; see the class docstring."""
        self._state = initial_state
        try:
            return super().__call__(x)
        finally:
            self._state = None

    def _check(self, x: Tensor) -> None:
        owner = f"{type(self).__name__} {self.name!r}"
        check_sequence(owner, x)
        built = next(iter(self.weights.values()), None)
        if built is not None and x.dtype != built.dtype:
            raise DTypeError(f"{owner}: was built for {built.dtype} input, got {x.dtype}"
                             f"{at(user_site())}")
        self._given_state(x)

    def _given_state(self, x: Tensor) -> list | None:
        """The checked initial state as a list of its parts (h or h, c), or None."""
        if self._state is None:
            return None
        owner = f"{type(self).__name__} {self.name!r}"
        given = self._state
        if self.state_size == 2:
            if not isinstance(given, (tuple, list)) or len(given) != 2:
                raise bad_type(f"{owner}: initial_state must be a tuple (h0, c0), got "
                               f"{type(given).__name__}")
            given = list(given)
        else:
            given = [given]
        count, n, h = self.num_layers * self.directions, x.shape[0], self.hidden
        want = (n, h) if count == 1 else (count, n, h)
        for t in given:
            shape = tuple(t.shape) if isinstance(t, Tensor) else np.shape(t)
            dtype = t.dtype if isinstance(t, Tensor) else np.asarray(t).dtype
            if (len(shape) != len(want) or any(a != b for a, b in zip(shape, want) if b is not None)
                    or str(dtype) != x.dtype):
                layout = "(N, H)" if count == 1 else "(layers * directions, N, H)"
                raise ShapeError(f"{owner}: initial state must be {layout} = {_sh.fmt(want)} "
                                 f"of {x.dtype}, got {_sh.fmt(shape)} of {dtype}"
                                 f"{at(user_site())}")
        return given

    def build(self, x):
        self._check(x)
        h, g = self.hidden, self.gates
        uniform = functools.partial(small_uniform, scale=1.0 / math.sqrt(h))   # PyTorch's init
        for k in range(self.num_layers):
            fan_in = int(x.shape[2]) if k == 0 else h * self.directions
            for d in range(self.directions):
                s = self._suffix(k, d)
                for p, shape in (("weight_ih", (g * h, fan_in)), ("weight_hh", (g * h, h)),
                                 ("bias_ih", (g * h,)), ("bias_hh", (g * h,))):
                    self.weights[p + s] = self.add_weight(p + s, shape, uniform, x)

    def _initial(self, x: Tensor) -> list[tuple[Tensor, ...]]:
        """Per (layer, direction), in PyTorch's order, the initial state as a tuple."""
        count = self.num_layers * self.directions
        given = self._given_state(x)
        if given is None:
            zero = broadcast_to(constant(0.0, dtype=x.dtype), (x.shape[0], self.hidden))
            return [(zero,) * self.state_size] * count
        given = [as_tensor(t) for t in given]
        parts = [[t] if count == 1 else [t[i] for i in range(count)] for t in given]
        return [tuple(p[i] for p in parts) for i in range(count)]

    def forward(self, x):
        self._check(x)
        starts = self._initial(x)
        x = transpose(x, (1, 0, 2))  # time-major inside: (T, N, F), each step's rows contiguous
        finals: list[tuple[Tensor, ...]] = []
        for k in range(self.num_layers):
            if k and self.dropout > 0.0:
                x = _nnops.dropout(x, self.dropout)
            outs = []
            for d in range(self.directions):
                s = self._suffix(k, d)
                w = {p: self.weights[p + s] for p in ("weight_ih", "weight_hh", "bias_ih",
                                                      "bias_hh")}
                final, ys = self._run(x, starts[len(finals)], w, reverse=bool(d))
                finals.append(final)
                outs.append(ys)
            x = outs[0] if len(outs) == 1 else concat(outs, axis=-1)
        x = transpose(x, (1, 0, 2))
        if len(finals) == 1:
            state = finals[0]
        else:
            state = tuple(stack([f[i] for f in finals], axis=0) for i in range(self.state_size))
        return x, (state if self.state_size == 2 else state[0])

    def _run(self, x: Tensor, start: tuple, w: dict, reverse: bool):
        """One direction of one layer, time-major: (final state tuple, outputs (T, N, H))."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        extra = "" if self.num_layers == 1 else f", num_layers={self.num_layers}"
        extra += ", bidirectional=True" if self.directions == 2 else ""
        extra += f", dropout={self.dropout:g}" if self.dropout else ""
        return f"{self.hidden}{extra}"


class RNN(_Recurrent):
    """Elman RNN, ``torch.nn.RNN(F, hidden, num_layers, batch_first=True)``:
    ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``, ``act`` ``"tanh"`` or ``"relu"``.

    ``rnn(x, initial_state=None)`` with ``x`` (N, T, F) returns ``(outputs, h_n)``:
    outputs (N, T, directions * hidden) of the last layer; ``h_n`` (N, hidden) for
    one layer and one direction, else PyTorch's (num_layers * directions, N, hidden)
    (layer 0 forward, layer 0 reverse, layer 1 forward ...). ``initial_state`` has
    ``h_n``'s shape (zeros when omitted). Parameters ``"<scope>/weight_ih"``
    (hidden, F), ``weight_hh`` (hidden, hidden), ``bias_ih``, ``bias_hh`` (hidden,), all
    U(-1/sqrt(hidden), 1/sqrt(hidden)) as in PyTorch; with several layers or
    directions, PyTorch's suffixes ``_l{k}`` and ``_reverse`` (:meth:`torch_names`).
    ``dropout`` drops the inputs of layers after the first in training mode.

    Example::

        out, h = gc.nn.RNN(32, nonlinearity="relu")(x)     # x: (None, T, F) -> (None, T, 32)
    """

    default_name = "rnn"

    def __init__(self, hidden: int, nonlinearity: str = "tanh", num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0,
                 name: str | None = None) -> None:
        super().__init__(hidden, num_layers, bidirectional, dropout, name)
        self.nonlinearity = choice("RNN", "nonlinearity", nonlinearity, ("tanh", "relu"))

    def _run(self, x, start, w, reverse):
        act = tanh if self.nonlinearity == "tanh" else relu
        xs = matmul(x, w["weight_ih"], transpose_b=True) + w["bias_ih"] + w["bias_hh"]

        def step(h, xt):
            h = act(xt + matmul(h, w["weight_hh"], transpose_b=True))
            return h, h

        final, ys = scan(step, start[0], xs, axis=0, reverse=reverse)
        return (final,), ys

    def extra_repr(self) -> str:
        extra = f", nonlinearity={self.nonlinearity!r}" if self.nonlinearity != "tanh" else ""
        return super().extra_repr() + extra


class LSTM(_Recurrent):
    """Long short-term memory, ``torch.nn.LSTM(F, hidden, num_layers, batch_first=True)``::

        i, f, g, o = split(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh, 4)
        c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g);   h_t = sigmoid(o) tanh(c_t)

    ``lstm(x, initial_state=None)`` returns ``(outputs, (h_n, c_n))``; shapes and
    the initial state ``(h0, c0)`` as in :class:`RNN`. Parameters ``weight_ih``
    (4 hidden, F), ``weight_hh`` (4 hidden, hidden), ``bias_ih``, ``bias_hh``
    (4 hidden,), gate blocks in PyTorch's order i, f, g, o.

    Example::

        out, (h, c) = gc.nn.LSTM(64)(x)
        logits = gc.nn.Dense(10)(h)
    """

    default_name = "lstm"
    gates, state_size = 4, 2

    def _run(self, x, start, w, reverse):
        xs = matmul(x, w["weight_ih"], transpose_b=True) + w["bias_ih"] + w["bias_hh"]

        def step(carry, xt):
            h, c = carry
            i, f, g, o = split(xt + matmul(h, w["weight_hh"], transpose_b=True), 4, axis=-1)
            c = sigmoid(f) * c + sigmoid(i) * tanh(g)
            h = sigmoid(o) * tanh(c)
            return (h, c), h

        final, ys = scan(step, start, xs, axis=0, reverse=reverse)
        return tuple(final), ys


class GRU(_Recurrent):
    """Gated recurrent unit, ``torch.nn.GRU(F, hidden, num_layers, batch_first=True)``::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr);  z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn));  h_t = (1 - z) n + z h_{t-1}

    Returns ``(outputs, h_n)`` as :class:`RNN`. Parameters ``weight_ih`` (3 hidden, F),
    ``weight_hh`` (3 hidden, hidden), ``bias_ih``, ``bias_hh``, gate blocks r, z, n.

    Example::

        out, h = gc.nn.GRU(64, num_layers=2)(x)       # h: (2, None, 64)
    """

    default_name = "gru"
    gates = 3

    def _run(self, x, start, w, reverse):
        xs = matmul(x, w["weight_ih"], transpose_b=True) + w["bias_ih"]

        def step(h, xt):
            xr, xz, xn = split(xt, 3, axis=-1)
            hr, hz, hn = split(matmul(h, w["weight_hh"], transpose_b=True) + w["bias_hh"], 3,
                               axis=-1)
            r, z = sigmoid(xr + hr), sigmoid(xz + hz)
            n = tanh(xn + r * hn)
            h = n + z * (h - n)
            return h, h

        final, ys = scan(step, start[0], xs, axis=0, reverse=reverse)
        return (final,), ys


class Bidirectional(Layer):
    """Run a recurrent layer forwards and backwards and join the outputs on the feature
    axis: ``Bidirectional(LSTM(H))`` is ``LSTM(H, bidirectional=True)``, i.e.
    ``torch.nn.LSTM(F, H, batch_first=True, bidirectional=True)``.

    Outputs are (N, T, 2 H), ``[forward_t, reverse_t]`` at each t (the reverse pass
    reads t = T-1 ... 0 and its output at t stays at t); each layer of a multi-layer
    stack reads both directions of the layer below, as in PyTorch. The final state
    is (2 num_layers, N, H) (layer 0 forward, layer 0 reverse, ...). The reverse
    parameters are the wrapped layer's, with PyTorch's ``_reverse`` suffix
    (``"lstm/weight_ih_reverse"``). Wrap a layer before its first call.

    Example::

        out, h = gc.nn.Bidirectional(gc.nn.GRU(32))(x)    # (None, T, 64), (2, None, 32)
    """

    def __init__(self, layer: _Recurrent) -> None:
        if not isinstance(layer, _Recurrent):
            raise bad_type(f"Bidirectional wraps an RNN, LSTM or GRU, got {layer!r}")
        if layer.built:
            raise bad_value(f"Bidirectional: {layer!r} is already built one-way; wrap it "
                            "before its first call")
        super().__init__(None)
        layer.directions = 2
        self.layer = layer

    def __call__(self, x: Any, initial_state: State = None) -> tuple[Tensor, State]:
        out = self.layer(x, initial_state)
        self.graph, self.name, self.built = self.layer.graph, self.layer.name, True
        self.output_shape = out[0].shape
        return out

    def torch_names(self) -> dict[str, Tensor]:
        """The wrapped layer's :meth:`_Recurrent.torch_names`."""
        return self.layer.torch_names()

    def load_torch_state_dict(self, sess, state_dict) -> None:
        """The wrapped layer's :meth:`_Recurrent.load_torch_state_dict`."""
        self.layer.load_torch_state_dict(sess, state_dict)

    @property
    def variables(self) -> list[Tensor]:
        return self.layer.variables

    def __repr__(self) -> str:
        return f"Bidirectional({self.layer!r})"
