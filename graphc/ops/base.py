"""The op interface: each op is defined once, in one class.

An op knows its shape/dtype rule (``infer``), its NumPy reference
(``compute``) and its gradient rule (``grad``, which builds graph nodes).
Backends interpret or compile nodes by ``op.name``; the NumPy backend simply
calls ``compute``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..graph import Tensor


class RunContext:
    """Run-time facts an op's reference may need: the step counter (dropout) and
    the batch size that ``None`` dimensions stand for."""

    def __init__(self, step: int = 0, batch: int | None = None) -> None:
        self.step = step
        self.batch = batch


class Op:
    """Base class. Subclasses set ``name`` and override the three methods."""

    name = "op"
    differentiable = True
    #: False for ops whose value depends on more than their inputs (RNG, state);
    #: such nodes are never constant-folded or merged by CSE.
    pure = True

    def infer(self, inputs: tuple[Tensor, ...], **attrs: Any) -> tuple[tuple, str | None]:
        """Return ``(shape, dtype)`` or raise ShapeError/DTypeError."""
        raise NotImplementedError(self.name)

    def compute(self, ctx: RunContext, node: Tensor, *values: np.ndarray) -> np.ndarray:
        """The NumPy reference: the executable specification of the op.

        ``node`` gives the attrs (``node.attrs``) and the output dtype/shape.
        """
        raise NotImplementedError(self.name)

    def grad(self, node: Tensor, g: Tensor) -> list[Tensor | None]:
        """One gradient tensor (or None) per input, given the output gradient ``g``.

        Returned gradients may have the broadcast output shape; autodiff sums
        them down to each input's shape in one place.
        """
        raise NotImplementedError(f"{self.name} has no gradient")

    def label(self, attrs: dict[str, Any]) -> str:
        """Short human-readable name of a node (DOT, default node names)."""
        return self.name

    def __repr__(self) -> str:
        return f"<op {self.name}>"


def located(exc: Exception) -> Exception:
    """``exc`` with the user's line appended, for errors raised by an op's Python
    function before ``make`` runs (``make`` appends it to errors from ``infer``)."""
    from ..errors import at
    from ..graph import user_site

    return type(exc)(f"{exc}{at(user_site())}")


REGISTRY: dict[str, Op] = {}


def register(cls: type[Op]) -> Op:
    """Instantiate an op class once and record it by name."""
    inst = cls()
    if inst.name in REGISTRY:
        raise RuntimeError(f"op {inst.name!r} defined twice")
    REGISTRY[inst.name] = inst
    return inst
