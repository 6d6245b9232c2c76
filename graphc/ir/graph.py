"""The graph IR: :class:`Graph`, :class:`Tensor` and node creation (:func:`make`).

A :class:`Tensor` is one node: an op applied to input tensors with static
attributes. Its shape and dtype are inferred when it is created, so shape
errors surface at the user's line, which every node records.

Every op is one class, a subclass of :class:`~graphc.ir.op.Op` (``ir/op.py``: the
interface, its :class:`~graphc.ir.op.Kind`; re-exported here). Nothing outside
an op's class lists op names. The three leaves (placeholders, variables,
constants) are defined here because the graph itself creates them: Python
numbers become constants, the learning phase is a placeholder. Node names
follow the current name scope (:mod:`graphc.ir.scopes`) and are unique per graph.

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
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import dtypes as _dt
from . import shapes as _sh
from .errors import DTypeError, GraphcError, at, user_site
from .op import Kind, Op, RunContext  # noqa: F401 - RunContext: re-exported with the graph API
from .scopes import current_scope, join, scope_path

_local = threading.local()
_ids = itertools.count()


class _Leaf(Op):
    differentiable = False

    def infer(self, inputs, **attrs):
        return attrs["shape"], attrs["dtype"]

    def grad(self, node, g):
        return []


class Placeholder(_Leaf):
    """A value fed at run time."""

    name = "placeholder"
    kind = Kind.PLACEHOLDER
    pure = False


class Variable(_Leaf):
    """State owned by a Session (``node.value`` is the initial value)."""

    name = "variable"
    kind = Kind.VARIABLE
    pure = False


class Constant(_Leaf):
    """A value fixed in the graph (``node.value``)."""

    name = "constant"
    kind = Kind.CONSTANT

    def reference(self, ctx, node):
        return node.value


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
        #: every scope path in use: the "/"-prefixes of node names and the layers' scopes
        self._scopes: set[str] = set()
        self._rng_counter = itertools.count()
        self._role: str = "forward"
        self._site_override: str | None = None
        #: the learning-phase placeholder, once something asked for it (see learning_phase)
        self.phase: Tensor | None = None
        self._recording = True
        #: update ops that every optimizer step also runs (BatchNorm statistics)
        self.extra_updates: list[Tensor] = []
        #: a scan body's graph: the graph it was traced in, and the tensors of that graph
        #: (or of its ancestors) it reads, each seen inside as a placeholder of its own
        self.parent: Graph | None = None
        self.captures: dict[int, tuple[Tensor, Tensor]] = {}

    # -- context management -------------------------------------------------
    def __enter__(self) -> Graph:
        _stack().append(self)
        return self

    def __exit__(self, *exc) -> None:
        _stack().pop()

    @contextlib.contextmanager
    def derived(self, role: str, site: str | None, scope: str | None = None) -> Iterator[None]:
        """Nodes created inside get ``role`` (e.g. "grad") and ``site``, and the whole
        scope path ``scope`` when it is given (gradients: their forward node's scope)."""
        saved = self._role, self._site_override
        self._role, self._site_override = role, site
        try:
            if scope is None:
                yield
            else:
                with scope_path(scope):
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
        """``base``, or ``base_1``, ``base_2`` ...: the first name no node has; reserved.

        ``base`` is a full name (``"encoder/matmul"``); its "/"-prefixes count as scopes
        in use (see :meth:`unique_scope`).
        """
        name, k = base, 1
        while name in self._names:
            name = f"{base}_{k}"
            k += 1
        self._names.add(name)
        parts = name.split("/")[:-1]
        self._scopes.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
        return name

    def unique_scope(self, base: str) -> str:
        """A new scope path for ``base`` inside the current scope, unique in this graph.

        ``"dense"``, then ``"dense_1"``, ``"dense_2"`` ... (as Keras names layers): the
        first path that is neither a scope in use nor a node's name. It is reserved.

        Example::

            with gc.Graph() as g, gc.name_scope("encoder"):
                assert g.unique_scope("dense") == "encoder/dense"
                assert g.unique_scope("dense") == "encoder/dense_1"
        """
        first = join(current_scope(), base)
        path, k = first, 1
        while path in self._scopes or path in self._names:
            path = f"{first}_{k}"
            k += 1
        self._scopes.add(path)
        return path

    def release_scope(self, path: str) -> None:
        """Give back a scope from :meth:`unique_scope` when no node was named in it
        (a layer whose build failed)."""
        if not any(n.startswith(path + "/") for n in self._names):
            self._scopes.discard(path)

    @property
    def root(self) -> Graph:
        """The outermost graph (the user's), above any scan bodies."""
        graph = self
        while graph.parent is not None:
            graph = graph.parent
        return graph

    def capture(self, t: Tensor) -> Tensor:
        """``t`` as seen inside this scan body: ``t`` itself if it is the body's, else the
        placeholder standing for it (made once), which the scan feeds with ``t``'s value."""
        if t.graph is self:
            return t
        if self.parent is None:
            raise GraphcError(f"{t.name} belongs to another graph{at(user_site())}")
        outer = self.parent.capture(t)  # through the enclosing bodies, when nested
        if outer.id not in self.captures:
            with self.derived("forward", outer.site, scope=""):
                inner = make(Placeholder, [], {"shape": outer.shape, "dtype": outer.dtype},
                             name=f"captured/{outer.name}", graph=self)
            self.captures[outer.id] = (outer, inner)
        return self.captures[outer.id][1]

    def next_seed(self) -> int:
        """A per-node seed derived from the graph seed (dropout, initializers)."""
        return (self.seed * 1000003 + next(self._rng_counter)) & 0x7FFFFFFF

    def variables(self, trainable_only: bool = False) -> list[Tensor]:
        return [
            n for n in self.nodes
            if n.op.kind is Kind.VARIABLE and (n.attrs["trainable"] or not trainable_only)
        ]

    def trainable_variables(self) -> list[Tensor]:
        return self.variables(trainable_only=True)

    def placeholders(self) -> list[Tensor]:
        return [n for n in self.nodes if n.op.kind is Kind.PLACEHOLDER]

    def learning_phase(self) -> Tensor:
        """The scalar bool placeholder that says "training" (dropout, BatchNorm).

        ``Session.run`` feeds it: ``training=True/False`` explicitly, or by
        default True exactly when an update op (an optimizer step) is fetched.
        """
        if self.parent is not None:  # inside a scan body: the user's graph's phase
            return self.capture(self.root.learning_phase())
        if self.phase is None:
            with self.derived("forward", "<learning phase>", scope=""):
                self.phase = make(Placeholder, [], {"shape": (), "dtype": "bool"}, name="training",
                                  graph=self)
        return self.phase

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


def get_default_graph() -> Graph:
    """The graph new ops go to: the innermost ``with Graph()``, else a global one."""
    stack = _stack()
    return stack[-1] if stack else _DEFAULT


class Tensor:
    """One node of the graph: ``op(*inputs, **attrs)`` with a static shape and dtype.

    ``shape`` is a tuple of ints where ``None`` is the run-time batch size.
    ``role`` is ``"forward"``, ``"grad"`` (built by ``gc.grad``) or
    ``"update"`` (optimizer steps). ``site`` is the user's ``file:line``.
    ``scope`` is the "/"-joined name scope it was made in (``""`` outside any
    ``gc.name_scope`` or layer); ``name`` then starts with ``scope + "/"``.
    """

    __array_priority__ = 1000  # make ndarray + Tensor call Tensor.__radd__

    def __init__(self, op: Op, inputs: tuple[Tensor, ...], attrs: dict[str, Any],
                 shape: tuple, dtype: str | None, *, graph: Graph | None, name: str,
                 site: str | None, role: str, value: np.ndarray | None = None,
                 scope: str = "") -> None:
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
        self.scope = scope
        self.value = value  # constants and the initial value of variables

    # -- properties -----------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    def key(self) -> tuple:
        """Structural identity used by common-subexpression elimination."""
        return (self.op.name, tuple(i.id for i in self.inputs), tuple(sorted(self.attrs.items())))

    def __repr__(self) -> str:
        return f"<Tensor {self.name}: {self.op.name} {_sh.fmt(self.shape)} {self.dtype}>"

    # ``==`` stays identity (as in TensorFlow 1) so tensors work as dict keys and
    # in ``in`` tests; elementwise equality is ``gc.equal``. The arithmetic operators,
    # ``.T`` and indexing are installed by :mod:`graphc.ops.operators`.
    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise GraphcError(
            f"the truth value of graph tensor {self.name} is not known until it runs; "
            f"use gc.where for conditions{at(self.site)}"
        )

    def __iter__(self):
        raise GraphcError(f"graph tensor {self.name} is not iterable{at(self.site)}")


def constant_node(value: Any, dtype: str | None = None, name: str | None = None,
                  graph: Graph | None = None, add: bool = True) -> Tensor:
    """A constant holding ``value`` (Python floats become float32, ints int64, unless
    ``dtype`` says otherwise). ``add=False`` makes a node that is not recorded in the
    graph (the compiler's constant folding); its ``name`` is kept as given (the name of
    the node it replaces), its scope is the current one."""
    if dtype is None and isinstance(value, (bool, int, float)) and not isinstance(value, np.generic):
        dtype = "bool" if isinstance(value, bool) else "int64" if isinstance(value, int) else "float32"
    arr = np.array(value, dtype=dtype)
    if dtype is not None and arr.dtype.kind in "iu" and isinstance(value, float) and value != int(value):
        raise DTypeError(f"constant: {value!r} does not fit dtype {dtype}")
    arr.setflags(write=False)
    graph = graph or get_default_graph()
    attrs = {"shape": arr.shape, "dtype": _dt.normalize(arr.dtype), "cid": _const_key(arr)}
    if not add:
        return Tensor(Constant(), (), attrs, arr.shape, attrs["dtype"], graph=graph,
                      name=name or "const", site=graph._site_override or user_site(),
                      role=graph._role, value=arr, scope=current_scope())
    node = make(Constant, [], attrs, name=name or "const", graph=graph)
    node.value = arr
    return node


def _const_key(arr: np.ndarray):
    """A hashable identity for a constant: its bytes when small, else unique."""
    if arr.size <= 64:
        return (arr.dtype.str, arr.shape, arr.tobytes())
    return ("large", id(arr))


def as_tensor(value: Any, dtype: str | None = None, graph: Graph | None = None) -> Tensor:
    """Wrap a Python number or array as a constant (a Tensor passes through)."""
    if isinstance(value, Tensor):
        return value
    return constant_node(value, dtype=dtype, graph=graph)


def make(op: type[Op], inputs: list, attrs: dict[str, Any] | None = None, name: str | None = None,
         graph: Graph | None = None) -> Tensor:
    """Create the node ``op(*inputs, **attrs)`` in the inputs' graph.

    ``op`` is an :class:`~graphc.ir.op.Op` subclass. Python numbers and arrays
    among ``inputs`` become constants (numbers take the dtype of the tensors they
    meet). Shape/dtype inference runs first; its errors get the user's line
    appended, and a failed call adds nothing to the graph. The node is named
    ``name`` (default: the op's label) inside the current name scope, made unique.
    """
    attrs = dict(attrs or {})
    current = get_default_graph()
    if current.parent is not None and graph is None:  # tracing a scan body: outer tensors
        if op.kind is Kind.VARIABLE:  # are read as captures; state lives in the user's graph
            graph = current.root
        elif op.kind is Kind.UPDATE:
            raise GraphcError(f"{op.name}: a scan body cannot change state; assign after the "
                              f"scan, from its outputs{at(user_site())}")
        else:
            inputs = [current.capture(i) if isinstance(i, Tensor) else i for i in inputs]
            graph = current
    tensors = [i for i in inputs if isinstance(i, Tensor)]
    graph = tensors[0].graph if tensors else graph or get_default_graph()
    instance = op()
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
        shape, dtype = instance.infer(ins, **attrs)
    except GraphcError as exc:
        if "defined at" in str(exc):
            raise
        raise type(exc)(f"{exc}{at(site)}") from None
    if graph._recording:
        graph.nodes.extend(i for i, raw in zip(ins, inputs) if i is not raw)
    if dtype is not None:
        dtype = _dt.normalize(dtype)
    base = name or (f"grad/{instance.label(attrs)}" if graph._role == "grad" else instance.label(attrs))
    scope = current_scope()
    node = Tensor(instance, ins, attrs, shape, dtype, graph=graph,
                  name=graph.unique_name(join(scope, base)), site=site, role=graph._role,
                  scope=scope)
    if graph._recording:
        graph.nodes.append(node)
    return node
