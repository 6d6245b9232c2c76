"""The graph IR: :class:`Graph`, :class:`Tensor` and node creation.

A :class:`Tensor` is one node: an op applied to input tensors with static
attributes. Its shape and dtype are inferred when it is created, so shape
errors surface at the user's line, which every node records.

Example::

    import graphc as gc
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        y = gc.relu(x) * 2.0
    print(y.shape, y.dtype, y.site)   # (None, 3) float32 example.py:4
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from . import dtypes as _dt
from . import shapes as _sh
from .errors import GraphcError, ShapeError, at

if TYPE_CHECKING:
    from .ops.base import Op

_PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_local = threading.local()
_ids = itertools.count()


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


class Graph:
    """A static computation graph; use it as a context manager.

    Ops created inside ``with gc.Graph() as g:`` belong to ``g``; outside any
    ``with`` block they go to the default graph (``gc.get_default_graph()``).
    ``seed`` fixes every random initializer and dropout mask of the graph.

    Example::

        with gc.Graph(seed=1) as g:
            x = gc.placeholder((None, 2))
        assert x.graph is g
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self.nodes: list[Tensor] = []
        self._names: set[str] = set()
        self._rng_counter = itertools.count()
        self._role: str = "forward"
        self._site_override: str | None = None
        self._learning_phase: Tensor | None = None
        self._recording = True
        #: update ops that every optimizer step also runs (BatchNorm statistics)
        self.extra_updates: list[Tensor] = []

    # -- context management -------------------------------------------------
    def __enter__(self) -> Graph:
        _stack().append(self)
        return self

    def __exit__(self, *exc) -> None:
        _stack().pop()

    @contextlib.contextmanager
    def derived(self, role: str, site: str | None) -> Iterator[None]:
        """Nodes created inside get ``role`` (e.g. "grad") and ``site``."""
        saved = self._role, self._site_override
        self._role, self._site_override = role, site
        try:
            yield
        finally:
            self._role, self._site_override = saved

    @contextlib.contextmanager
    def detached(self) -> Iterator[None]:
        """Nodes created inside are not added to ``nodes`` (compiler passes)."""
        saved, self._recording = self._recording, False
        try:
            yield
        finally:
            self._recording = saved

    # -- naming and queries ---------------------------------------------------
    def unique_name(self, base: str) -> str:
        name, k = base, 1
        while name in self._names:
            name = f"{base}_{k}"
            k += 1
        self._names.add(name)
        return name

    def next_seed(self) -> int:
        """A per-node seed derived from the graph seed (dropout, initializers)."""
        return (self.seed * 1000003 + next(self._rng_counter)) & 0x7FFFFFFF

    def variables(self, trainable_only: bool = False) -> list[Tensor]:
        return [
            n for n in self.nodes
            if n.op.name == "variable" and (n.attrs["trainable"] or not trainable_only)
        ]

    def trainable_variables(self) -> list[Tensor]:
        return self.variables(trainable_only=True)

    def placeholders(self) -> list[Tensor]:
        return [n for n in self.nodes if n.op.name == "placeholder"]

    def learning_phase(self) -> Tensor:
        """The scalar bool placeholder that says "training" (dropout, BatchNorm).

        ``Session.run`` feeds it: ``training=True/False`` explicitly, or by
        default True exactly when an update op (an optimizer step) is fetched.
        """
        if self._learning_phase is None:
            from .ops.leaves import placeholder

            with self.derived("forward", "<learning phase>"), _as_default(self):
                self._learning_phase = placeholder((), dtype="bool", name="training")
        return self._learning_phase

    def add_update(self, update: Tensor) -> None:
        """Register an update op that ``Optimizer.minimize`` steps also run."""
        self.extra_updates.append(update)

    def __repr__(self) -> str:
        return f"<graphc.Graph with {len(self.nodes)} nodes>"


def _stack() -> list[Graph]:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


_DEFAULT = Graph()


@contextlib.contextmanager
def _as_default(g: Graph) -> Iterator[None]:
    _stack().append(g)
    try:
        yield
    finally:
        _stack().pop()


def get_default_graph() -> Graph:
    """The graph new ops go to: the innermost ``with Graph()``, else a global one."""
    stack = _stack()
    return stack[-1] if stack else _DEFAULT


class Tensor:
    """One node of the graph: ``op(*inputs, **attrs)`` with a static shape and dtype.

    ``shape`` is a tuple of ints where ``None`` is the run-time batch size.
    ``role`` is ``"forward"``, ``"grad"`` (built by ``gc.grad``) or
    ``"update"`` (optimizer steps). ``site`` is the user's ``file:line``.
    """

    __array_priority__ = 1000  # make ndarray + Tensor call Tensor.__radd__

    def __init__(self, op: Op, inputs: tuple[Tensor, ...], attrs: dict[str, Any],
                 shape: tuple, dtype: str | None, *, graph: Graph | None, name: str,
                 site: str | None, role: str, value: np.ndarray | None = None) -> None:
        self.id = next(_ids)
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.shape = tuple(shape)
        self.dtype = dtype
        self.graph = graph
        self.name = name
        self.site = site
        self.role = role
        self.value = value  # constants and the initial value of variables

    # -- properties -----------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def T(self) -> Tensor:
        from .ops.shape_ops import transpose

        return transpose(self)

    def key(self) -> tuple:
        """Structural identity used by common-subexpression elimination."""
        return (self.op.name, tuple(i.id for i in self.inputs), tuple(sorted(self.attrs.items())))

    def __repr__(self) -> str:
        return f"<Tensor {self.name}: {self.op.name} {_sh.fmt(self.shape)} {self.dtype}>"

    # ``==`` stays identity (as in TensorFlow 1) so tensors work as dict keys and
    # in ``in`` tests; elementwise equality is ``gc.equal``.
    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise GraphcError(
            f"the truth value of graph tensor {self.name} is not known until it runs; "
            f"use gc.where for conditions{at(self.site)}"
        )

    def __iter__(self):
        raise GraphcError(f"graph tensor {self.name} is not iterable{at(self.site)}")

    def __getitem__(self, index):
        from .ops.shape_ops import getitem

        return getitem(self, index)


def _install_operators() -> None:
    """Python operators on tensors, resolved lazily to avoid import cycles."""

    def binary(fn_name: str, reflected: bool = False):
        def method(self, other):
            from .ops import elemwise, linalg

            fn = getattr(linalg if fn_name == "matmul" else elemwise, fn_name)
            return fn(other, self) if reflected else fn(self, other)

        return method

    ops = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "divide",
           "pow": "power", "matmul": "matmul", "lt": "less", "le": "less_equal",
           "gt": "greater", "ge": "greater_equal"}
    for dunder, fn in ops.items():
        setattr(Tensor, f"__{dunder}__", binary(fn))
        if dunder not in ("lt", "le", "gt", "ge"):
            setattr(Tensor, f"__r{dunder}__", binary(fn, reflected=True))

    def neg(self):
        from .ops import elemwise

        return elemwise.negative(self)

    Tensor.__neg__ = neg
    Tensor.__pos__ = lambda self: self


_install_operators()


def as_tensor(value: Any, dtype: str | None = None, graph: Graph | None = None) -> Tensor:
    """Wrap a Python number or array as a constant (a Tensor passes through)."""
    if isinstance(value, Tensor):
        return value
    from .ops.leaves import constant

    with _as_default(graph) if graph is not None else contextlib.nullcontext():
        return constant(value, dtype=dtype)


def make(op: Op, inputs: list, attrs: dict[str, Any] | None = None, name: str | None = None,
         graph: Graph | None = None) -> Tensor:
    """Create the node ``op(*inputs, **attrs)`` in the inputs' graph.

    Shape/dtype inference runs first; its errors get the user's line appended,
    and a failed call adds nothing to the graph.
    """
    attrs = dict(attrs or {})
    tensors = [i for i in inputs if isinstance(i, Tensor)]
    graph = tensors[0].graph if tensors else graph or get_default_graph()
    for t in tensors[1:]:
        if t.graph is not graph:
            raise GraphcError(f"{op.name}: inputs come from different graphs{at(user_site())}")
    site = graph._site_override or user_site()
    # Python scalars take the dtype of the tensor operands (NumPy's weak scalars).
    kinds = [t.dtype for t in tensors if t.dtype not in (None, "bool")]
    weak = next((d for d in kinds if _dt.is_float(d)), kinds[0] if kinds else None)
    try:
        with graph.detached():  # constants made for scalar operands join only on success
            ins = tuple(as_tensor(i, dtype=weak, graph=graph) for i in inputs)
        shape, dtype = op.infer(ins, **attrs)
    except GraphcError as exc:
        if "defined at" in str(exc):
            raise
        raise type(exc)(f"{exc}{at(site)}") from None
    if graph._recording:
        graph.nodes.extend(i for i, raw in zip(ins, inputs) if i is not raw)
    if dtype is not None:
        dtype = _dt.normalize(dtype)
    base = name or (f"grad/{op.label(attrs)}" if graph._role == "grad" else op.label(attrs))
    node = Tensor(op, ins, attrs, shape, dtype, graph=graph, name=graph.unique_name(base),
                  site=site, role=graph._role)
    if graph._recording:
        graph.nodes.append(node)
    return node


def shape_error(op: str, msg: str, *shapes) -> ShapeError:
    """A ShapeError naming the op and the shapes involved."""
    listed = ", ".join(_sh.fmt(s) for s in shapes)
    return ShapeError(f"{op}: {msg} (shapes {listed})" if shapes else f"{op}: {msg}")
