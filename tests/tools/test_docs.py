"""The tools' docstring examples hold, and the tools stay on graphc's public API."""

from __future__ import annotations

import ast
import doctest
import importlib
from pathlib import Path

import pytest

import graphc.tools

TOOLS = Path(graphc.tools.__file__).parent
MODULES = sorted("graphc.tools." + ".".join(p.relative_to(TOOLS).with_suffix("").parts)
                 for p in TOOLS.rglob("*.py") if p.name != "__main__.py")


@pytest.mark.parametrize("module", [m.removesuffix(".__init__") for m in MODULES])
def test_docstring_examples(module):
    """Examples not marked ``+SKIP`` run and print what they show."""
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def _imports(path: Path) -> set[str]:
    package = "graphc.tools." + ".".join(path.relative_to(TOOLS).parent.parts)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.rstrip(".").split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return found


@pytest.mark.parametrize("path", sorted(TOOLS.rglob("*.py")), ids=lambda p: p.name)
def test_tools_use_no_compiler_internals(path):
    """The code generator and the backends are being replaced: tools go through
    ``gc.Session``, ``Session.compile(...).kernels/.source``, ``graphc.env`` and the ops."""
    internal = ("graphc.codegen", "graphc.backends", "graphc.lower", "graphc.render")
    bad = sorted(m for m in _imports(path) if m.startswith(internal))
    assert not bad, f"{path} imports {bad}"
