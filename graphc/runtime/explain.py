"""What a compiled step does, as a report (what :meth:`Session.explain` returns).

For each kernel in run order: the graph nodes it fused and the lines that defined
them, an estimate of its FLOPs and of the bytes it moves; the arena (the step's
scratch memory) and its biggest buffers; on request the generated source of one
kernel. On the NumPy backend every node is its own "kernel" and there is no
arena and no source.

What is counted (estimates from the nodes, at the report's batch size):

* FLOPs: a matmul ``2*M*N*K``; a convolution (forward, data or filter gradient)
  ``2 * N*O*OH*OW * C*KH*KW``; pooling one per window element of each output;
  an elementwise formula one per arithmetic operation or math function in it
  (``sympy.count_ops``) per element; dropout 2 per element; reductions one per
  input element (``mean`` and ``logsumexp`` a little more); softmax, log-softmax
  and softmax cross-entropy 5 per logit (its gradient 7). Data movement (reshape,
  transpose, concat, slice, cast, broadcast, one_hot), updates and ``count`` (the
  batch size as a number) count 0; any other op one per output element.
* bytes: each value the kernel reads from memory (a value computed inside the kernel
  is not read back) plus each value it stores, each once: the least traffic the
  kernel needs, not what caches do.

Example::

    ex = sess.explain([loss, train], batch=64)
    print(ex)                          # kernels, arena, biggest buffers
    ex.kernels[0]["flops"], ex.kernels[0]["nodes"]
    print(sess.explain([loss, train], kernel="k3_matmul_ew").source)
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, field

import numpy as np
import sympy

from ..ir.errors import ArgumentError, at, user_site
from ..ir.graph import Kind, Tensor

__all__ = ["Explanation", "explain", "node_flops"]

#: how many arena buffers the report lists
TOP_BUFFERS = 8

_MOVES = {"reshape", "transpose", "concat", "slice", "slice_grad", "cast", "broadcast_to", "gather",
          "one_hot", "assign", "group", "count"}
_PER_INPUT = {"sum": 1, "max": 1, "min": 1, "prod": 1, "argmax": 1, "cumsum": 1, "mean": 1,
              "logsumexp": 4}
_PER_LOGIT = {"softmax": 5, "log_softmax": 5, "softmax_cross_entropy": 5,
              "softmax_cross_entropy_grad": 7}


@dataclass
class Explanation:
    """The report of one compiled fetch set.

    ``kernels``: one dict per kernel in run order with ``name``, ``kind``, ``nodes``
    (names of the graph nodes it fused), ``lines`` (each node's ``file:line``, None when
    unknown), ``stores`` (names of the values it writes), ``flops``, ``load_bytes``,
    ``store_bytes`` and ``bytes``. ``arena_bytes``: the step's scratch memory at
    ``batch`` (``value_bytes`` of it for values, the rest the kernels' workspace).
    ``buffers``: the biggest values placed in the arena (``name``, ``shape``, ``dtype``,
    ``bytes``, ``offset``, ``written_by``, ``last_read_by``, ``line``). ``kernel`` and
    ``source``: the kernel asked for and its generated source (None on NumPy).
    """

    backend: str
    batch: int | None
    kernels: list[dict] = field(default_factory=list)
    arena_bytes: int = 0
    value_bytes: int = 0
    buffers: list[dict] = field(default_factory=list)
    kernel: str | None = None
    source: str | None = None
    arena_values: int = 0  #: how many values the arena holds (``buffers`` lists the biggest)

    @property
    def flops(self) -> int:
        return sum(k["flops"] for k in self.kernels)

    @property
    def bytes(self) -> int:
        return sum(k["bytes"] for k in self.kernels)

    def __str__(self) -> str:
        batch = "" if self.batch is None else f", batch {self.batch}"
        what = "kernels" if self.backend != "numpy" else "nodes (NumPy: one kernel each)"
        lines = [f"graphc explain: backend {self.backend}{batch}: {len(self.kernels)} {what}, "
                 f"{_flops(self.flops)}, {_bytes(self.bytes)} moved"]
        if self.kernel is not None:
            return "\n".join(lines + self._one_kernel())
        if self.backend == "numpy":
            lines.append("arena: none (the NumPy backend allocates every value)")
        else:
            lines.append(f"arena: {_bytes(self.arena_bytes)} ({_bytes(self.value_bytes)} of values, "
                         f"{_bytes(self.arena_bytes - self.value_bytes)} kernel workspace)")
        width = max([len(k["name"]) for k in self.kernels] + [6])
        kind_w = max([len(k["kind"]) for k in self.kernels] + [4])
        lines.append(f"{'#':>3}  {'kernel':<{width}}  {'kind':<{kind_w}}  {'FLOPs':>9}  "
                     f"{'bytes':>9}  {'F/B':>5}  nodes (lines)")
        for i, k in enumerate(self.kernels):
            ratio = f"{k['flops'] / k['bytes']:5.1f}" if k["bytes"] else "    -"
            lines.append(f"{i:>3}  {k['name']:<{width}}  {k['kind']:<{kind_w}}  "
                         f"{_count(k['flops']):>9}  {_count(k['bytes']):>9}  {ratio}  "
                         f"{_nodes_and_lines(k)}")
        if self.buffers:
            lines.append(f"biggest arena buffers (of {self.arena_values} values):")
            name_w = max(len(b["name"]) for b in self.buffers)
            for b in self.buffers:
                shape = "(" + ", ".join(map(str, b["shape"])) + ")"
                lines.append(f"  {_bytes(b['bytes']):>10} at {b['offset']:>9}  {b['name']:<{name_w}}  "
                             f"{b['dtype']}{shape}  {b['written_by']} .. {b['last_read_by']}"
                             f"{'  ' + b['line'] if b['line'] else ''}")
        if self.backend != "numpy":
            lines.append("source of one kernel: explain(fetches, kernel=NAME)")
        return "\n".join(lines)

    def _one_kernel(self) -> list[str]:
        k = next(k for k in self.kernels if k["name"] == self.kernel)
        out = [f"kernel {k['name']} ({k['kind']}): {_flops(k['flops'])}, reads "
               f"{_bytes(k['load_bytes'])}, writes {_bytes(k['store_bytes'])}"]
        out += [f"  {n}{'  ' + line if line else ''}" for n, line in zip(k["nodes"], k["lines"])]
        if self.source is None:
            out.append(f"(no generated source: the {self.backend} backend interprets each node)"
                       if self.backend == "numpy" else "(its source was not found)")
        else:
            out += ["", self.source.rstrip("\n")]
        return out


def explain(compiled, backend: str, kernel: str | None = None,
            batch: int | None = None) -> Explanation:
    """The :class:`Explanation` of a compiled fetch set (``Session.compile``'s result).

    ``batch``: the size of ``None`` dimensions (default: the fetch set's latest run,
    else 1). ``kernel``: a kernel's name (or the name of a node it fused) whose source
    the report includes; an unknown name is an ArgumentError listing the kernels.
    """
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, (int, np.integer))
                              or batch < 0):
        raise ArgumentError(f"explain: batch must be an int >= 0, got {batch!r}{at(user_site())}")
    if not compiled.needs_batch:
        batch = None
    elif batch is None:
        batch = compiled.last_batch if compiled.last_batch is not None else 1
    n = 1 if batch is None else int(batch)
    lowered = getattr(compiled.executable, "lowered", None)
    if lowered is None:  # the NumPy reference: one unit per computing node
        units = [(node.name, node.op.name, [node], [node])
                 for node in compiled.program.nodes if not node.op.kind.is_leaf]
        rows = [_row(name, kind, nodes, stores, n, fused=False) for name, kind, nodes, stores in units]
        ex = Explanation("numpy" if backend == "c" else backend, batch, rows)
    else:
        rows = [_row(k.name, k.kind, k.nodes, k.stores, n, fused=True) for k in lowered.kernels]
        ex = Explanation(backend, batch, rows, compiled.arena_bytes(n))
        _add_arena(ex, compiled, lowered, n)
    if kernel is not None:
        k = _find_kernel(ex.kernels, kernel)
        ex.kernel = k["name"]
        if lowered is not None:
            found = next(x for x in lowered.kernels if x.name == k["name"])
            ex.source = kernel_source(compiled.source or "", found)
    return ex


def _find_kernel(rows: list[dict], name: str) -> dict:
    if not isinstance(name, str):
        raise ArgumentError(f"explain: kernel must be a kernel's name, got {name!r}{at(user_site())}")
    for k in rows:
        if k["name"] == name:
            return k
    for k in rows:  # a node's name: the kernel that fused it
        if name in k["nodes"]:
            return k
    names = [k["name"] for k in rows]
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    raise ArgumentError(f"explain: no kernel named {name!r}{hint}; the kernels are: "
                        f"{', '.join(names) or 'none'}{at(user_site())}")


def kernel_source(source: str, kernel) -> str | None:
    """The text of ``kernel`` (a lowered :class:`~graphc.lower.ir.Kernel`) in the generated
    C ``source``: its epilogue functions, if any, its comment and its function."""
    head = re.search(rf"^static [^\n]*\b{re.escape(kernel.name)}\(const gc_ctx \*g\) \{{$",
                     source, re.M)
    if head is None:
        return None
    end = source.find("\n}\n", head.end())
    if end < 0:
        return None
    start = source.rfind(f"/* {kernel.name}: ", 0, head.start())
    epi = kernel.epilogue
    if epi is not None:
        m = re.search(rf"^[^\n]*\b{re.escape(epi.name)}\(const gc_ctx \*g", source, re.M)
        if m is not None and m.start() < head.start():
            start = m.start() if start < 0 else min(start, m.start())
    return source[head.start() if start < 0 else start:end + 3]


# -- the estimates -------------------------------------------------------------------------
def _row(name: str, kind: str, nodes: list[Tensor], stores: list[Tensor], batch: int,
         fused: bool) -> dict:
    inside = {_storage(x).id for x in nodes} if fused else set()
    loads, seen = 0, set()
    for node in nodes:
        if node.op.kind in (Kind.VIEW, Kind.UPDATE) and not fused:
            continue  # a NumPy view reads nothing; an update is counted below
        for i in node.inputs:
            src = _storage(i) if fused else i
            if i.dtype is None or src.id in inside or src.id in seen:
                continue
            seen.add(src.id)
            loads += _nbytes(src, batch)
    if not fused and nodes[0].op.kind in (Kind.VIEW, Kind.UPDATE):
        # an assign copies its value; a view and a group move nothing
        store = _nbytes(nodes[0].inputs[1], batch) if nodes[0].op.name == "assign" else 0
        loads = store
    else:
        store = sum(_nbytes(s, batch) for s in stores if s.dtype is not None)
    return {"name": name, "kind": kind, "nodes": [x.name for x in nodes],
            "lines": [x.site for x in nodes], "stores": [s.name for s in stores],
            "flops": sum(node_flops(x, batch) for x in nodes),
            "load_bytes": loads, "store_bytes": store, "bytes": loads + store}


def node_flops(node: Tensor, batch: int = 1) -> int:
    """Estimated floating-point operations of ``node`` at batch size ``batch`` (see the
    module's docstring for what is counted).

    Example::

        node_flops(gc.matmul(x, W), batch=64)    # 2 * 64 * 10 * 784 for (N, 784) @ (784, 10)
    """
    op, kind = node.op.name, node.op.kind
    if kind.is_leaf or kind is Kind.VIEW or op in _MOVES or node.dtype is None:
        return 0
    out = _numel(node.shape, batch)
    if op == "matmul":
        a = node.inputs[0]
        k = a.shape[-2] if node.attrs["transpose_a"] else a.shape[-1]
        return 2 * out * _dim(k, batch)
    if op == "matmul_sum":  # (K, N) summed over every row of its operands
        return 2 * out * _numel(node.inputs[0].shape[:-1], batch)
    if op.startswith("conv2d"):
        # (N, O, OH, OW) side and (O, C, KH, KW) filter of the three convolutions
        image, filt = {"conv2d": (node.shape, node.inputs[1].shape),
                       "conv2d_backward_data": (node.inputs[0].shape, node.inputs[1].shape),
                       "conv2d_backward_filter": (node.inputs[1].shape, node.shape)}[op]
        return 2 * _numel(image, batch) * _numel(filt[1:], batch)
    if "pool2d" in op:
        kh, kw = _pair(node.attrs.get("kernel", 1))
        side = node.inputs[-1].shape if op.endswith("backward") else node.shape
        return _numel(side, batch) * kh * kw
    if op == "elemwise":
        return _count_ops(node.attrs["expr"]) * out
    if op == "dropout":
        return 2 * out
    if op in _PER_INPUT:
        extra = out if op in ("mean", "logsumexp") else 0
        return _PER_INPUT[op] * _numel(node.inputs[0].shape, batch) + extra
    if op in _PER_LOGIT:
        return _PER_LOGIT[op] * _numel(node.inputs[0].shape, batch)
    return out


@functools.lru_cache(maxsize=4096)
def _count_ops(expr: sympy.Basic) -> int:
    return int(sympy.count_ops(expr))


def _storage(node: Tensor) -> Tensor:
    while node.op.kind is Kind.VIEW:
        node = node.inputs[0]
    return node


def _dim(d, batch: int) -> int:
    return batch if d is None else int(d)


def _numel(shape, batch: int) -> int:
    n = 1
    for d in shape:
        n *= _dim(d, batch)
    return n


def _nbytes(node: Tensor, batch: int) -> int:
    return _numel(node.shape, batch) * np.dtype(node.dtype).itemsize


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


# -- the arena -----------------------------------------------------------------------------
def _add_arena(ex: Explanation, compiled, lowered, batch: int) -> None:
    """Fill in the values' share of the arena and its biggest buffers, from the memory plan
    the lowering laid the step out by."""
    from ..lower.sizes import evaluate

    ex.value_bytes = evaluate(lowered.arena_bytes, batch)
    plan = lowered.plan
    names = [k.name for k in lowered.kernels if k.kind != "check"]  # (slots index the groups)
    slots = sorted(plan.slots.values(), key=lambda s: (-s.unit_bytes * batch ** s.section, s.start))
    ex.arena_values = len(slots)
    for s in slots[:TOP_BUFFERS]:
        node = s.node
        ex.buffers.append({
            "name": node.name, "shape": tuple(_dim(d, batch) for d in node.shape),
            "dtype": node.dtype, "bytes": s.unit_bytes * batch ** s.section,
            "offset": evaluate(plan.buffer(node).place.offset, batch),
            "written_by": names[s.start],
            "last_read_by": names[s.end] if s.end < len(names) else "end of step",
            "line": node.site})


# -- formatting ------------------------------------------------------------------------------
def _nodes_and_lines(k: dict) -> str:
    sites = []
    for line in k["lines"]:
        if line and line not in sites:
            sites.append(line)
    text = ", ".join(k["nodes"])
    if len(text) > 60:
        text = text[:57] + "..."
    if sites:
        where = ", ".join(s.rsplit("/", 1)[-1] for s in sites[:3])
        text += f" ({where}{', ...' if len(sites) > 3 else ''})"
    return text


def _count(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _flops(n: int) -> str:
    return f"{_count(n)} FLOPs"


def _bytes(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"
