"""The lowered program: what the compiled step does, as data, for any target.

Lowering (:func:`graphc.lower.lower`) turns an optimized graph program into a
:class:`LoweredProgram`: kernels made of loops and statements over typed
buffers whose places (feed, variable, constant, output array, arena offset)
the memory plan fixed, calls into hand-written kernel templates, scratch
requests and epilogue functions. A renderer (``graphc.render``) turns it into
source for one target; nothing here is any target's text.

Expressions are small trees, never changed once built (plain dataclasses: frozen
ones cost twice as much to define, and only literals serve as defaults); the helpers
:func:`add`, :func:`mul` ... fold constants, so sizes known at generation time are
decided then.
Elementwise math stays symbolic: :class:`Math` holds a sympy expression over
named locals, printed by the target's code printer.

Example::

    x = Buffer("x", "float32", Place("feed", 0))
    y = Buffer("y", "float32", Place("out", 0))
    i = Sym("i0")
    body = [Loop("i0", mul(N, 4), [Store(y, i, Call("exp", (Load(x, i),), "float32"))],
                 threads=mul(N, 4), vector=True)]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from ..ir.graph import Tensor

# -- expressions -------------------------------------------------------------------------------


@dataclass
class Sym:
    """A named scalar: a loop variable, a local, ``N`` (the batch size) or ``step``."""

    name: str


@dataclass(frozen=True)
class Lit:
    """A literal of a dtype (``"int64"`` for sizes and indices)."""

    value: int | float | bool
    dtype: str = "int64"


@dataclass
class Bin:
    """``a op b``: arithmetic ``+ - * / %``, comparisons, ``&& ||``."""

    op: str
    a: Expr
    b: Expr


@dataclass
class Not:
    """Logical negation."""

    a: Expr


@dataclass
class Neg:
    """Arithmetic negation."""

    a: Expr


@dataclass
class Call:
    """A math function by its target-neutral name (``exp``, ``log``, ``isfinite``,
    ``first_max_takes`` ...); the target's table maps names to its functions."""

    fn: str
    args: tuple[Expr, ...]
    dtype: str


@dataclass
class Select:
    """``cond ? a : b``. Expressions have no side effects, so a target may evaluate both
    branches (a vector blend)."""

    cond: Expr
    a: Expr
    b: Expr


@dataclass
class Cast:
    """``a`` converted to ``dtype``."""

    dtype: str
    a: Expr


@dataclass
class Load:
    """Element ``index`` of a buffer."""

    buf: Buffer
    index: Expr


@dataclass
class Ptr:
    """The address of element ``offset`` of a buffer: an argument of a template call,
    which writes through it when ``written``."""

    buf: Buffer
    offset: Expr
    written: bool = False


@dataclass
class Math:
    """An elementwise formula: a sympy expression whose free symbols are locals of the
    kernel (named as they are declared), evaluated in ``dtype``. ``index`` is the flat
    element index, which counter-based random numbers (dropout) hash."""

    expr: sympy.Expr
    dtype: str
    index: Expr


Expr = Sym | Lit | Bin | Not | Neg | Call | Select | Cast | Load | Ptr | Math

N = Sym("N")
ZERO = Lit(0)


def size(d: int | None) -> Expr:
    """A static dimension as an expression: ``None`` is the batch size N."""
    return N if d is None else Lit(int(d))


def add(*terms: Expr) -> Expr:
    """Sum of index expressions, constants folded, zeros dropped."""
    const, rest = 0, []
    for t in terms:
        if isinstance(t, Lit):
            const += t.value
        else:
            rest.append(t)
    out = None
    for t in rest:
        out = t if out is None else Bin("+", out, t)
    if out is None:
        return Lit(const)
    return Bin("+", out, Lit(const)) if const else out


def mul(*factors: Expr) -> Expr:
    """Product of index expressions, constants folded (0 and 1 absorbed)."""
    const, rest = 1, []
    for f in factors:
        if isinstance(f, Lit):
            const *= f.value
        else:
            rest.append(f)
    if const == 0:
        return ZERO
    out = None
    for f in rest:
        out = f if out is None else Bin("*", out, f)
    if out is None:
        return Lit(const)
    return Bin("*", out, Lit(const)) if const != 1 else out


def prod(dims) -> Expr:
    """Product of static dimensions (``None``: N)."""
    return mul(*(size(d) for d in dims))


def strides(shape) -> list[Expr]:
    """Row-major element strides of a static shape."""
    return [prod(shape[k + 1:]) for k in range(len(shape))]


# -- buffers -----------------------------------------------------------------------------------


@dataclass
class Place:
    """Where a buffer lives: ``feed``/``var``/``const``/``out`` (index into the table the
    caller passes) or ``arena`` (byte offset, an expression in N, into the step's arena)."""

    kind: str
    index: int | None = None
    offset: Expr | None = None


@dataclass
class Buffer:
    """A typed array the step reads or writes. ``name`` is unique in the program and
    readable (it comes from the graph node that owns the storage)."""

    name: str
    dtype: str
    place: Place


# -- statements --------------------------------------------------------------------------------


@dataclass
class Let:
    """Declare a local (``mutable``: it is updated by :class:`Set` later)."""

    name: str
    dtype: str
    value: Expr
    mutable: bool = False


@dataclass
class Set:
    """Assign a new value to a mutable local."""

    name: str
    value: Expr


@dataclass
class Store:
    """``buf[index] = value``."""

    buf: Buffer
    index: Expr
    value: Expr


@dataclass
class Loop:
    """``for var in range(extent)``.

    ``threads``: the work the loop does (an expression); the target spreads the
    iterations over threads when it is large enough (None: serial). ``collapse``: how
    many perfectly nested loops share the threads. ``vector``: the iterations are
    independent and may run as SIMD lanes; ``reduce`` names locals the body reduces
    into, as (operator, name) pairs.
    """

    var: str
    extent: Expr
    body: list
    threads: Expr | None = None
    collapse: int = 1
    vector: bool = False
    reduce: tuple[tuple[str, str], ...] = ()


@dataclass
class If:
    cond: Expr
    then: list
    orelse: list = field(default_factory=list)


@dataclass
class Block:
    """A scope for locals."""

    body: list


@dataclass
class Continue:
    """Skip to the next iteration of the innermost loop."""


@dataclass
class Zero:
    """Set ``count`` elements of a buffer to zero."""

    buf: Buffer
    count: Expr


@dataclass
class Copy:
    """Copy ``count`` elements from ``src`` (from element ``src_offset``) to ``dst`` (from
    ``dst_offset``); the ranges may overlap."""

    dst: Buffer
    src: Buffer
    count: Expr
    dst_offset: Expr = ZERO
    src_offset: Expr = ZERO


@dataclass
class Fail:
    """Stop the step: the kernel fails with a message made of ``parts``: text, and
    integer expressions whose values are printed."""

    parts: tuple


@dataclass
class Print:
    """Write one line to the standard output and flush it: ``parts`` (text, and integer
    expressions whose values are written), then the summary of the ``count``
    elements at ``data`` (a :class:`Ptr`) that :func:`graphc.ops.debug.summary` states:
    the first and last ``summarize`` values, min, max and mean."""

    parts: tuple
    data: Ptr
    count: Expr
    summarize: int


@dataclass
class Scratch:
    """Declare ``name`` as an array of ``count`` elements of ``dtype`` in the kernel's
    scratch memory (the arena's workspace), ``offset`` elements from its start. The
    array is used through a :class:`Buffer` of the same name placed ``scratch``."""

    name: str
    dtype: str
    count: Expr
    offset: Expr = ZERO


@dataclass
class TemplateCall:
    """A call into a hand-written kernel template.

    ``template`` is the file family (``gemm``, ``conv2d``, ``pool2d``), ``fn`` the
    function within it for ``dtype`` (e.g. ``conv2d_backward_data``); ``shape`` the
    sizes a shape-struct argument carries (name, value), ``args`` the other arguments
    in order (:class:`Ptr` for arrays). ``workspace``: the call takes the step's
    workspace (sized by the template's own size function with the same arguments).
    ``epilogue``: the fused epilogue the template applies as it stores results.
    """

    template: str
    fn: str
    dtype: str
    args: tuple = ()
    shape: tuple[tuple[str, Expr], ...] = ()
    workspace: bool = False
    epilogue: Epilogue | None = None


@dataclass
class Subprogram:
    """Run a nested lowered program once (one step of a scan's body), as a whole step of
    its own: its feeds and outputs are the arrays ``feeds``/``outs`` point at (one
    :class:`Ptr` per entry of its tables), its constants the entries ``consts`` of this
    program's constant table, its arena ``offset`` bytes into the kernel's scratch memory
    (after the kernel's own :class:`Scratch` arrays). ``name`` prefixes its functions."""

    name: str
    program: LoweredProgram
    feeds: tuple
    outs: tuple
    consts: tuple[int, ...]
    offset: Expr

    @property
    def can_fail(self) -> bool:
        return any(k.can_fail for k in self.program.kernels)


# -- kernels and the program --------------------------------------------------------------------


@dataclass
class Epilogue:
    """Elementwise work a template applies to each element of its output as it stores it.

    The element function takes the index variables ``axes`` ((name, number of dims of
    the host's output it covers): [("i", 1), ("j", 1)] for a matmul, [("n", 1), ("i", 1),
    ("j", 2)] for a conv) and the host's value ``v`` (a local of ``dtype``); ``body``
    loads what it needs and stores the other values the plan keeps; ``result`` is what
    the host stores at the element, or None when the template stores nothing itself
    (``owns_store``: the host's product is scratch).
    """

    name: str
    axes: list[tuple[str, int]]
    dtype: str
    body: list
    result: Expr | None
    per_image: bool = False


@dataclass
class Kernel:
    """One unit of the step: its statements and what it computes.

    ``nodes`` are the graph nodes fused into it (for errors, profiles and DOT),
    ``stores`` the values it writes to memory.
    """

    name: str
    kind: str
    nodes: list[Tensor]
    stores: list[Tensor]
    body: list

    @property
    def can_fail(self) -> bool:
        """The body may :class:`Fail`."""
        return any(isinstance(s, Fail) or isinstance(s, Subprogram) and s.can_fail
                   for s in walk(self.body))

    @property
    def epilogue(self) -> Epilogue | None:
        """The fused epilogue of the template the kernel calls, if any."""
        return next((s.epilogue for s in walk(self.body) if isinstance(s, TemplateCall)), None)


@dataclass
class LoweredProgram:
    """A whole compiled step.

    The caller passes ``feeds``, ``variables``, ``constants`` and one array per value of
    ``outputs`` (None for update ops) in these orders, the batch size ``N``, the step
    counter and an arena of ``arena_bytes`` (an expression in N) plus the workspace the
    kernels and templates ask for. ``kernels`` run in order; then ``finish`` (copies of
    fetched values no kernel wrote in place, variable commits), only if all succeeded.
    ``plan`` is the memory plan it was laid out by (:class:`graphc.lower.memplan.Plan`:
    which value lives where, between which kernels), for tools that explain the step.
    """

    feeds: list[Tensor]
    variables: list[Tensor]
    constants: list[Tensor]
    outputs: list[Tensor]
    arena_bytes: Expr
    kernels: list[Kernel]
    finish: list
    plan: object = None


def nested(program: LoweredProgram):
    """``program`` and every program its kernels run as a :class:`Subprogram`, nested ones
    included (what a renderer writes functions for)."""
    yield program
    for k in program.kernels:
        for inner in _run_programs(k.body):
            yield from nested(inner)


def _run_programs(body: list) -> list[LoweredProgram]:
    """The programs ``body`` runs as :class:`Subprogram` statements, each once (a scan's
    loop and its last step run the same body)."""
    out: dict[int, LoweredProgram] = {}
    for s in walk(body):
        if isinstance(s, Subprogram):
            out.setdefault(id(s.program), s.program)
    return list(out.values())


def inner_kernels(kernel: Kernel) -> list[Kernel]:
    """The kernels of the programs ``kernel`` runs (a scan's body, nested ones included)."""
    return [k for inner in _run_programs(kernel.body) for p in nested(inner) for k in p.kernels]


def walk(stmts: list):
    """Every statement of ``stmts``, nested ones included, in order."""
    for s in stmts:
        yield s
        if isinstance(s, (Loop, Block)):
            yield from walk(s.body)
        elif isinstance(s, If):
            yield from walk(s.then)
            yield from walk(s.orelse)


def children(e: Expr) -> tuple:
    """The expressions directly inside ``e``."""
    if isinstance(e, Bin):
        return (e.a, e.b)
    if isinstance(e, (Not, Neg, Cast)):
        return (e.a,)
    if isinstance(e, Call):
        return e.args
    if isinstance(e, Select):
        return (e.cond, e.a, e.b)
    if isinstance(e, Load):
        return (e.index,)
    if isinstance(e, Ptr):
        return (e.offset,)
    if isinstance(e, Math):
        return (e.index,)
    return ()

