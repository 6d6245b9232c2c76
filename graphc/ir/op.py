"""The :class:`Op` interface every op class implements, its :class:`Kind`, and the
:class:`RunContext` its NumPy reference receives.

Everything any stage needs to know about an op is declared on its class: the kind, the
facts fusion, memory planning and the backends need, the shape/dtype rule, the NumPy
reference, the gradient rule and (elementwise ops) the scalar formula.

Example::

    class Double(Op):
        name = "double"
        kind = Kind.OPAQUE

        def infer(self, inputs):
            return inputs[0].shape, inputs[0].dtype

        def reference(self, ctx, node, x):
            return 2 * x
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    import sympy

#: A node of the graph, :class:`graphc.ir.graph.Tensor` (named here for the annotations: the
#: graph module imports this one, not the other way round).
Node = Any


class Kind(enum.Enum):
    """What an op is, as far as the compiler is concerned."""

    PLACEHOLDER = "placeholder"  #: fed at run time
    VARIABLE = "variable"  #: state owned by a Session
    CONSTANT = "constant"  #: a value fixed in the graph (``node.value``)
    ELEMENTWISE = "elementwise"  #: element i of the output from element i of the (broadcast) inputs; fusable
    VIEW = "view"  #: the input's buffer seen with another shape (no kernel)
    REDUCTION = "reduction"  #: combine over axes; an elementwise producer fuses in as its prologue
    UPDATE = "update"  #: writes state and has no value (assign, group)
    OPAQUE = "opaque"  #: a kernel of its own

    @property
    def is_leaf(self) -> bool:
        return self in (Kind.PLACEHOLDER, Kind.VARIABLE, Kind.CONSTANT)


class RunContext:
    """Run-time facts an op's reference may need: the step counter (dropout) and
    the batch size that ``None`` dimensions stand for."""

    def __init__(self, step: int = 0, batch: int | None = None, check_numerics: bool = False) -> None:
        self.step = step
        self.batch = batch
        self.check_numerics = check_numerics  # (values inside scan bodies are checked too)


class Op:
    """Base class. Subclasses set ``name`` (and ``kind``) and override the methods."""

    name: ClassVar[str] = "op"
    kind: ClassVar[Kind] = Kind.OPAQUE
    differentiable: ClassVar[bool] = True
    #: False for ops whose value depends on more than their inputs (RNG, state, the
    #: batch size); such nodes are never constant-folded or merged by CSE.
    pure: ClassVar[bool] = True
    #: impure only through the batch size, which is the same for every node of a step:
    #: never constant-folded, but CSE may merge two such nodes with the same attributes
    batch_only: ClassVar[bool] = False
    #: its kernel can fail on the data at run time (an out-of-range label): optimizer
    #: updates computed before it must not reach the variables until the step succeeded
    can_fail: ClassVar[bool] = False
    #: a kernel of this op joins the earlier kernel of an op of this class that reads the
    #: same first ``shares_inputs`` inputs, so that one pass computes both
    joins: ClassVar[type[Op] | None] = None
    shares_inputs: ClassVar[int] = 0
    #: its value is a tuple of arrays (a scan), read only through projection nodes
    multi_output: ClassVar[bool] = False
    #: it is one part (``attrs["index"]``) of its input's tuple value, computed by the
    #: input's kernel (a scan's final carry, its stacked outputs)
    projects: ClassVar[bool] = False
    #: only the first ``value_inputs`` inputs give its value; the others are there for its
    #: gradient rule alone, and optimization drops them (None: every input is read)
    value_inputs: ClassVar[int | None] = None

    def infer(self, inputs: tuple[Node, ...], **attrs: Any) -> tuple[tuple, str | None]:
        """Return ``(shape, dtype)`` or raise ShapeError/DTypeError."""
        raise NotImplementedError(self.name)

    def reference(self, ctx: RunContext, node: Node, *values: np.ndarray) -> np.ndarray:
        """The NumPy reference: the executable specification of the op.

        ``node`` gives the attrs (``node.attrs``) and the output dtype/shape.
        """
        raise NotImplementedError(self.name)

    def grad(self, node: Node, g: Node) -> list[Node | None]:
        """One gradient tensor (or None) per input, given the output gradient ``g``.

        Returned gradients may have the broadcast output shape; autodiff sums
        them down to each input's shape in one place.
        """
        raise NotImplementedError(f"{self.name} has no gradient")

    def log_of(self, node: Node) -> Node | None:
        """A numerically stable graph for ``log`` of ``node``'s value, or None.

        ``gc.log`` and the stability pass use it, so that log(softmax(x)) is built as
        log_softmax(x) and its gradient is stable too."""
        return None

    def hosts_epilogue(self, node: Node) -> bool:
        """Whether ``node``'s kernel can apply a fused elementwise epilogue while it
        stores its output (bias, activation, optimizer arithmetic)."""
        return False

    #: when it hosts an epilogue, its template can hand the finished output to the epilogue
    #: in scratch instead of storing it (the product of an optimizer's gradient matmul)
    epilogue_owns_store: ClassVar[bool] = False

    def scalar(self, node: Node, args: list[sympy.Expr]) -> sympy.Expr:
        """Elementwise ops: the output element as a formula of the input elements."""
        raise NotImplementedError(f"{self.name} is not elementwise")

    def label(self, attrs: dict[str, Any]) -> str:
        """Short human-readable name of a node (DOT, default node names)."""
        return self.name

    def __repr__(self) -> str:
        return f"<op {self.name}>"
