"""The :class:`Layer` protocol, :class:`Sequential` and parameter counting.

A layer is a plain Python object. The first call on a graph tensor *builds*
it: it opens a name scope of its own, unique in the graph (``"dense"``,
``"dense_1"`` ..., inside any enclosing ``gc.name_scope``), and creates its
parameters there as ``gc.variable``s named ``"<scope>/<param>"``
(``"dense/W"``, ``"dense_1/W"`` ...), drawn from an initializer seeded by
``graph.next_seed()``. Its ops are made in that scope too (``"dense/matmul"``).
Every call returns ordinary graph tensors, so ``gc.grad``, fusion and DOT
export see the layer as the ops it is made of. Calling a built layer again
reuses (shares) its parameters and scope.

Example::

    import graphc as gc
    with gc.Graph(seed=0) as g:
        x = gc.placeholder((None, 3), name="x")
        net = gc.nn.Sequential([gc.nn.Dense(4, activation="relu"), gc.nn.Dense(2)])
        y = net(x)
    assert gc.nn.count_parameters(net) == 26
    assert [p.name for p in net.parameters] == ["dense/W", "dense/b", "dense_1/W", "dense_1/b"]
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ...ir import dtypes as _dt
from ...ir import shapes as _sh
from ...ir.errors import DTypeError, GraphcError, ShapeError, at, user_site
from ...ir.graph import Graph, Tensor, as_tensor
from ...ir.scopes import check_segment, scope_path
from ...ops import elemwise as _ew
from ...ops import nn as _nnops
from ...ops.leaves import variable
from .. import init as _init
from .._args import bad_type, bad_value

Activation = Callable[[Tensor], Tensor]

_ACTIVATIONS: dict[str, Activation] = {
    "relu": _ew.relu, "sigmoid": _ew.sigmoid, "tanh": _ew.tanh, "softplus": _ew.softplus,
    "elu": _ew.elu, "selu": _ew.selu, "leaky_relu": _ew.leaky_relu, "hard_tanh": _ew.hard_tanh,
    "softmax": _nnops.softmax, "log_softmax": _nnops.log_softmax,
}


def get_activation(spec: None | str | Activation) -> Activation | None:
    """Resolve ``None``/``"linear"`` (identity), a name (``"relu"`` ...) or a callable.

    Example::

        act = gc.nn.get_activation("tanh")     # gc.tanh
    """
    if spec is None or spec == "linear":
        return None
    if isinstance(spec, str):
        if spec not in _ACTIVATIONS:
            raise bad_value(f"unknown activation {spec!r}; choose one of "
                            f"{', '.join(sorted(_ACTIVATIONS))}, None or a callable")
        return _ACTIVATIONS[spec]
    if callable(spec):
        return spec
    raise bad_type(f"activation must be None, a name or a callable, got {type(spec).__name__}")


class Layer:
    """Base class: subclasses implement ``build(x)`` (create parameters) and ``forward(x)``.

    ``parameters`` lists the trainable variables, ``variables`` all of them
    (BatchNorm's running statistics included); both are empty until the
    first call. ``name`` is the layer's name scope once built: the given name
    (default: the layer kind), made unique in the graph, inside the enclosing
    ``gc.name_scope`` (``"encoder/dense"``). Its parameters and ops are named in it.

    Example::

        class Scale(gc.nn.Layer):
            default_name = "scale"

            def build(self, x):
                self.s = self.add_weight("s", (x.shape[-1],), "ones", x)

            def forward(self, x):
                return x * self.s
    """

    default_name = "layer"

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            check_segment(name, type(self).__name__)
        self.name = name
        self.graph: Graph | None = None
        self.built = False
        self.output_shape: tuple | None = None
        self._variables: list[Tensor] = []

    # -- to implement ----------------------------------------------------------------
    def build(self, x: Tensor) -> None:
        """Create the parameters for input ``x`` (called once, on the first call)."""

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    # -- machinery ---------------------------------------------------------------------
    def __call__(self, x: Any) -> Tensor:
        x = as_tensor(x)
        graph = x.graph
        if not self.built:
            given = self.name
            with graph:
                self.graph, self.name = graph, graph.unique_scope(given or self.default_name)
                try:
                    with scope_path(self.name):
                        self.build(x)
                except BaseException:  # a failed build changes nothing and can be retried
                    graph.release_scope(self.name)
                    self.graph, self.name = None, given
                    raise
            self.built = True
        elif graph is not self.graph:
            raise GraphcError(f"{type(self).__name__} {self.name!r} was built in another graph; "
                              f"make a new layer for this one{at(user_site())}")
        with graph, scope_path(self.name):
            y = self.forward(x)
        self.output_shape = getattr(y, "shape", None)
        return y

    def add_weight(self, name: str, shape: tuple, init: str | Callable, like: Tensor,
                   trainable: bool = True, dtype: str | None = None) -> Tensor:
        """A new variable ``"<scope>/<name>"`` with ``init(shape, seed, dtype)`` as its value.

        The dtype is ``dtype`` when given, else ``like``'s when it is a float
        tensor, else float32; the seed comes from the graph, so the graph seed
        fixes every parameter.
        """
        graph = self.graph if self.graph is not None else like.graph
        if dtype is None:
            dtype = like.dtype if _dt.is_float(like.dtype) else "float32"
        shape = tuple(int(d) for d in shape)
        value = np.asarray(_init.get(init)(shape, seed=graph.next_seed(), dtype=dtype))
        if value.shape != shape:
            raise ShapeError(f"{type(self).__name__}: initializer for {name} returned shape "
                             f"{value.shape}, expected {shape}{at(user_site())}")
        with scope_path(self.name) if self.name is not None else contextlib.nullcontext():
            v = variable(value.astype(dtype, copy=False), name=name, trainable=trainable)
        self._variables.append(v)
        return v

    def _input_dim(self, x: Tensor, axis: int, what: str) -> int:
        if x.ndim == 0 or not -x.ndim <= axis < x.ndim or x.shape[axis] is None:
            raise ShapeError(f"{type(self).__name__}: input of shape {_sh.fmt(x.shape)} has no "
                             f"known {what} axis ({axis}){at(user_site())}")
        return int(x.shape[axis])

    @property
    def variables(self) -> list[Tensor]:
        """Every variable the layer owns (trainable or not)."""
        return list(self._variables)

    @property
    def parameters(self) -> list[Tensor]:
        """The trainable variables (what an optimizer updates)."""
        return [v for v in self.variables if v.attrs["trainable"]]

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.built else ""
        return f"{type(self).__name__}({self.extra_repr()}){label}"


def check_sequence(owner: str, x: Tensor, features: int | None = None, what: str = "input") -> None:
    """Refuse anything but a float batch-first sequence (N, T, F) with a static T and F
    (``features`` of them when given), naming ``owner``, the shape and the user's line."""
    f = "F" if features is None else str(features)
    if x.ndim != 3 or x.shape[1] is None or x.shape[2] is None or (
            features is not None and x.shape[2] != features):
        static = "static T" if features is not None else "static T and F"
        raise ShapeError(f"{owner}: {what} must be (N, T, {f}) (batch first) with a {static}, "
                         f"got shape {_sh.fmt(x.shape)}{at(user_site())}")
    if not _dt.is_float(x.dtype):
        raise DTypeError(f"{owner}: needs a float {what}, got {x.dtype}; use gc.cast{at(user_site())}")


def unique_tensors(tensors: Iterable[Tensor]) -> list[Tensor]:
    """``tensors`` without repeats, in first-seen order."""
    seen: dict[int, Tensor] = {}
    for t in tensors:
        seen.setdefault(id(t), t)
    return list(seen.values())


class Sequential(Layer):
    """Layers (or plain functions such as ``gc.relu``) applied in order.

    Example::

        net = gc.nn.Sequential([
            gc.nn.Conv2D(8, 3, padding=1, activation="relu"), gc.nn.MaxPool2D(2),
            gc.nn.Flatten(), gc.nn.Dropout(0.5), gc.nn.Dense(10),
        ])
        logits = net(x)                    # x: (None, 1, 28, 28)
        print(net.summary())
    """

    default_name = "sequential"

    def __init__(self, layers: Iterable[Layer | Callable] = (), name: str | None = None) -> None:
        super().__init__(name)
        self.layers: list[Layer | Callable] = []
        for layer in layers:
            self.add(layer)

    def add(self, layer: Layer | Callable) -> Sequential:
        """Append a layer (before or after building); returns ``self``."""
        if not callable(layer):
            raise bad_type(f"Sequential: {layer!r} is not a layer or a callable")
        self.layers.append(layer)
        return self

    def __call__(self, x: Any) -> Tensor:
        x = as_tensor(x)
        self.graph, self.built = self.graph or x.graph, True
        for layer in self.layers:
            x = layer(x)
        self.output_shape = x.shape
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self(x)

    @property
    def variables(self) -> list[Tensor]:
        return unique_tensors(v for layer in self.layers for v in getattr(layer, "variables", []))

    @property
    def parameters(self) -> list[Tensor]:
        return unique_tensors(v for layer in self.layers for v in getattr(layer, "parameters", []))

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer | Callable:
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    def summary(self) -> str:
        """A text table: layer, output shape (after the last call), trainable parameters."""
        rows = [("layer", "output shape", "params")]
        for layer in self.layers:
            label = repr(layer) if isinstance(layer, Layer) else getattr(layer, "__name__",
                                                                         repr(layer))
            shape = getattr(layer, "output_shape", None)
            rows.append((label, "?" if shape is None else _sh.fmt(shape),
                         str(count_parameters(layer) if isinstance(layer, Layer) else 0)))
        rows.append(("total", "", str(count_parameters(self))))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}"
                         for a, b, c in rows)

    def extra_repr(self) -> str:
        return ", ".join(repr(layer) for layer in self.layers)


def count_parameters(obj: Layer | Tensor | Graph | Iterable) -> int:
    """The number of trainable scalars in a layer, a variable, a graph or a list of them.

    Example::

        assert gc.nn.count_parameters([gc.nn.Dense(4), gc.nn.Dense(2)]) == 0  # not built yet
        y = net(x)
        n = gc.nn.count_parameters(net)
    """
    if isinstance(obj, Layer):
        tensors = obj.parameters
    elif isinstance(obj, Graph):
        tensors = obj.trainable_variables()
    elif isinstance(obj, Tensor):
        tensors = [obj]
    elif isinstance(obj, Iterable):
        tensors = []
        for item in obj:
            if isinstance(item, Layer):
                tensors.extend(item.parameters)
            elif isinstance(item, Tensor):
                tensors.append(item)
            else:
                raise bad_type(f"count_parameters: {item!r} is not a layer or a tensor")
        tensors = unique_tensors(tensors)
    else:
        raise bad_type(f"count_parameters: cannot count {type(obj).__name__}")
    total = 0
    for t in tensors:
        n = _sh.size(t.shape)
        if n is None:
            raise ShapeError(f"count_parameters: {t.name} has a run-time (None) dimension")
        total += int(n)
    return total
