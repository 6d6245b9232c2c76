"""How the hand-written C kernel templates in ``kernels/`` are assembled into C source.

``common.h`` (type-independent) is pasted once; then, for each element type, a two-line
prelude names the type and the function prefix, the typed templates follow (dependencies
first) and the prelude's macros are undefined again::

    #define GC_T float
    #define GC_FN(name) gc_s##name      /* GC_FN(gemm) -> gc_sgemm */
    ... gemm_kernel.h, gemm.h, conv2d.h, pool2d.h ...
    #undef GC_FN
    #undef GC_T

Example::

    >>> from graphc.backends.c import templates
    >>> src = templates.source(["conv2d"], ["float32"])   # common.h, gemm, conv2d for float
    >>> "gc_sconv2d_forward(" in src, "#define GC_T double" in src
    (True, False)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = ["BEGIN", "COMMON", "DTYPES", "END", "TEMPLATES", "UNDEF", "declarations", "files",
           "kernels_dir", "library_source", "prelude", "read", "source", "with_templates"]

#: The type-independent header, pasted once before any typed template.
COMMON = "common.h"

#: Template name -> (its headers in pasting order, the templates it needs pasted before it).
_TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "gemm": (("gemm_kernel.h", "gemm.h"), ()),
    "conv2d": (("conv2d.h",), ("gemm",)),
    "pool2d": (("pool2d.h",), ()),
}

#: The templates, in the order they are pasted (every one after its dependencies).
TEMPLATES: tuple[str, ...] = tuple(_TEMPLATES)

#: Element type -> (C type, function prefix), in the order the typed blocks are pasted.
DTYPES: dict[str, tuple[str, str]] = {"float32": ("float", "s"), "float64": ("double", "d")}

#: What closes a typed block (see :func:`prelude`).
UNDEF = "#undef GC_FN\n#undef GC_T\n"


def kernels_dir() -> Path:
    """The folder of the C headers (package data beside this module)."""
    return Path(__file__).parent / "kernels"


#: The declarations of the templates' API (generated code linking the kernel library).
API = "api.h"
#: Its definitions in the kernel library.
EXPORTS = "exports.h"
#: The comment lines around a rendered step's template declarations: ``BEGIN`` is followed
#: by the templates and dtypes the step uses (``gemm,conv2d float32``) and `` */``.
BEGIN = "/* graphc: the kernel templates' API:"
END = "/* graphc: end of the kernel templates' API */"


def files() -> tuple[str, ...]:
    """The files of the templates (common.h, every typed header, the API declarations and
    the library's exports) and their README."""
    return (COMMON, *_headers(TEMPLATES), API, EXPORTS, "README.md")


def prelude(dtype: str, prefix: str = "gc_") -> str:
    """The ``#define`` lines that open a typed block for ``dtype``: ``GC_T``, the element type, and
    ``GC_FN(name)``, which prefixes a name with ``gc_s`` (float32) or ``gc_d`` (float64)
    (``prefix`` instead of ``gc_``: the kernel library's internal names)."""
    ctype, letter = DTYPES[dtype]
    return f"#define GC_T {ctype}\n#define GC_FN(name) {prefix}{letter}##name\n"


def read(name: str) -> str:
    """The text of one file of ``kernels/``."""
    return (kernels_dir() / name).read_text()


def _headers(names: Iterable[str]) -> list[str]:
    """The typed headers of the templates ``names``, in pasting order."""
    return [h for name in names for h in _TEMPLATES[name][0]]


def _with_dependencies(templates: Iterable[str]) -> list[str]:
    """The requested templates and everything they need, in pasting order."""
    wanted: set[str] = set()

    def add(name: str) -> None:
        if name not in _TEMPLATES:
            raise ValueError(f"unknown kernel template {name!r}; known: {', '.join(TEMPLATES)}")
        if name not in wanted:
            wanted.add(name)
            for dep in _TEMPLATES[name][1]:
                add(dep)

    for name in templates:
        add(name)
    return [name for name in TEMPLATES if name in wanted]


def source(templates: Iterable[str], dtypes: Iterable[str]) -> str:
    """C text: common.h once, then for each dtype (``"float32"``, ``"float64"``, in that
    order) the typed prelude and the requested templates (dependencies first), each typed
    block followed by its ``#undef`` lines.

    Raises:
        ValueError: for an unknown template or dtype.
    """
    names = _with_dependencies(templates)
    wanted = set(dtypes)
    unknown = wanted - DTYPES.keys()
    if unknown:
        raise ValueError(f"no kernel templates for dtype(s) {sorted(unknown)}; known: {list(DTYPES)}")
    parts = [f"/* ---- kernels/{COMMON} ---- */\n{read(COMMON)}"]
    headers = _headers(names)
    for dtype in (d for d in DTYPES if d in wanted):
        parts.append(f"/* ---- {dtype} ---- */\n{prelude(dtype)}")
        parts += [f"/* ---- kernels/{h} ({dtype}) ---- */\n{read(h)}" for h in headers]
        parts.append(UNDEF)
    return "\n".join(parts)


def declarations(templates: Iterable[str], dtypes: Iterable[str]) -> str:
    """C text for a step that links the kernel library: common.h, then per dtype the
    declarations of the API (:data:`API`), between the :data:`BEGIN` / :data:`END` lines
    that name what the step uses (:func:`with_templates` reads them)."""
    names, wanted = _with_dependencies(templates), [d for d in DTYPES if d in set(dtypes)]
    parts = [f"{BEGIN} {','.join(names)} {','.join(wanted)} */",
             f"/* ---- kernels/{COMMON} ---- */\n{read(COMMON)}"]
    for dtype in wanted:
        parts += [f"/* ---- kernels/{API} ({dtype}) ---- */\n{prelude(dtype)}", read(API), UNDEF]
    return "\n".join(parts + [END, ""])


def with_templates(text: str) -> str:
    """``text`` (a rendered step) with its API declarations (see :func:`declarations`)
    replaced by the templates themselves: the step compiled on its own, without the
    kernel library."""
    begin, end = text.find(BEGIN), text.find(END)
    if begin < 0 or end < 0:
        return text
    names, dtypes = text[begin + len(BEGIN):text.index("*/", begin)].split()
    return text[:begin] + source(names.split(","), dtypes.split(",")) + text[end + len(END):]


def library_source() -> str:
    """The C text of the kernel library: every template for every dtype, named internally
    ``gci_s...``/``gci_d...``, and the exported API (:data:`EXPORTS`) as ``gc_s...``."""
    parts = [f"/* graphc kernel library */\n#include <math.h>\n#include <stddef.h>\n"
             f"#include <stdint.h>\n#include <stdlib.h>\n#include <string.h>\n"
             f"/* ---- kernels/{COMMON} ---- */\n{read(COMMON)}"]
    headers = _headers(TEMPLATES)
    for dtype, (_, letter) in DTYPES.items():
        parts.append(f"/* ---- {dtype} ---- */\n{prelude(dtype, 'gci_')}"
                     f"#define GC_API(name) gc_{letter}##name\n")
        parts += [f"/* ---- kernels/{h} ({dtype}) ---- */\n{read(h)}" for h in headers + [EXPORTS]]
        parts.append("#undef GC_API\n" + UNDEF)
    return "\n".join(parts)
