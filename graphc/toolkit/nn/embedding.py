"""Embedding: a trainable lookup table of vectors indexed by int ids.

The lookup is ``gc.gather(weight, ids, axis=0)``; its gradient scatter-adds the
upstream gradient into the rows that were read (repeated ids accumulate), so a
training step moves only the rows of the ids it saw (with plain SGD; optimizers
with momentum or weight decay move a row again once it has state).

Example::

    import graphc as gc
    with gc.Graph(seed=0) as g:
        ids = gc.placeholder((None, 12), dtype="int64", name="ids")
        h = gc.nn.Embedding(1000, 32)(ids)            # (None, 12, 32)
"""

from __future__ import annotations

from collections.abc import Callable

from ...ir import dtypes as _dt
from ...ir import shapes as _sh
from ...ir.errors import DTypeError, at, user_site
from ...ops.indexing import gather
from .._args import choice, integer
from ..init import standard_normal
from .base import Layer


class Embedding(Layer):
    """Map int ids of any shape to rows of a ``(num, dim)`` table:
    ``ids`` of shape (N, T) give (N, T, dim), as ``torch.nn.Embedding(num, dim)``.

    The table is ``"<scope>/weight"`` (scope ``"embedding"`` by default), of
    shape (num, dim) as in PyTorch, so ``sess.set_value(emb.weight,
    torch_emb.weight.detach().numpy())`` reproduces a PyTorch model. It is
    drawn from N(0, 1) like PyTorch's (``init="small_uniform"`` gives Keras'
    U(-0.05, 0.05)); ``dtype`` is the table's (float32 or float64). Ids must be
    int32/int64; an id outside ``[0, num)`` (negative ones included) fails the
    step at run time with gather's error naming the index, and the step
    changes nothing.

    Example::

        emb = gc.nn.Embedding(10, 4)
        vecs = emb(ids)                                 # ids: (None, 7) int64 -> (None, 7, 4)
        logits = gc.nn.Dense(2)(gc.mean(vecs, axis=1))
    """

    default_name = "embedding"

    def __init__(self, num: int, dim: int, init: str | Callable = standard_normal,
                 dtype: str = "float32", name: str | None = None) -> None:
        super().__init__(name)
        self.num = integer("Embedding", "num", num, low=1)
        self.dim = integer("Embedding", "dim", dim, low=1)
        self.init = init
        self.dtype = choice("Embedding", "dtype", dtype, _dt.FLOATS)
        self.weight = None

    def _check(self, ids) -> None:
        if not _dt.is_int(ids.dtype):
            raise DTypeError(f"Embedding {self.name!r}: ids must be int32/int64, got "
                             f"{ids.dtype} of shape {_sh.fmt(ids.shape)}; use gc.cast"
                             f"{at(user_site())}")

    def build(self, ids):
        self._check(ids)
        self.weight = self.add_weight("weight", (self.num, self.dim), self.init, ids,
                                      dtype=self.dtype)

    def forward(self, ids):
        self._check(ids)
        return gather(self.weight, ids, axis=0)

    def extra_repr(self) -> str:
        return f"{self.num}, {self.dim}"
