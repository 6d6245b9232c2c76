"""The package's layout rules: no import cycles among its modules (imports inside
functions count), and no module imports another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import graphc

ROOT = Path(graphc.__file__).resolve().parent


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = (path, ast.parse(path.read_text()))
    return out


def _imports(name: str, path: Path, tree: ast.Module):
    """(imported module, imported names) of every import in the module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, [a.name for a in node.names]


def _edges(mods) -> dict[str, set[str]]:
    edges = {m: set() for m in mods}
    for m, (path, tree) in mods.items():
        for target, names in _imports(m, path, tree):
            for t in [target] + [f"{target}.{n}" for n in names]:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != m and not m.startswith(t + "."):
                    edges[m].add(t)
    return edges


def test_no_import_cycles():
    edges = _edges(_modules())
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> None:
        if m in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(m):] + [m]))
        if m in done:
            return
        for t in sorted(edges[m]):
            visit(t, path + [m])
        done.add(m)

    for m in sorted(edges):
        visit(m, [])


def test_no_private_names_imported_across_modules():
    mods = _modules()
    bad = []
    for m, (path, tree) in mods.items():
        for target, names in _imports(m, path, tree):
            if target.split(".")[0] != "graphc":
                continue
            bad += [f"{m} imports {target}.{n}" for n in names
                    if n.startswith("_") and not n.startswith("__") and f"{target}.{n}" not in mods]
    assert not bad, bad
