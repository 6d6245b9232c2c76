"""The ``graphc`` command line (also ``python -m graphc``).

Subcommands live in :data:`COMMANDS`, a dict ``name -> Command(help, add_arguments, run)``.
A new subcommand is one registration, no edit of :func:`main`::

    from graphc.tools.cli import command

    def _add_bench_arguments(parser):
        parser.add_argument("--repeat", type=int, default=5)

    @command("bench", "benchmark graphc against NumPy", _add_bench_arguments)
    def _run_bench(args) -> int:
        ...
        return 0

``add_arguments(parser)`` fills the subcommand's :class:`argparse.ArgumentParser`;
``run(args)`` does the work and returns the exit status. Heavy imports belong inside
``run`` so that ``graphc --help`` and ``graphc info`` stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import platform
import subprocess
import sys
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["COMMANDS", "Command", "collect_info", "command", "main"]


class Command(NamedTuple):
    """One subcommand: its one-line help, its argument setup and its action."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None] | None
    run: Callable[[argparse.Namespace], int]


#: Registered subcommands, in the order they are listed by ``graphc --help``.
COMMANDS: dict[str, Command] = {}


def command(
    name: str,
    help_text: str,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Decorator registering ``run(args) -> int`` as the subcommand ``name``."""

    def register(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = Command(help_text, add_arguments, run)
        return run

    return register


def _graphc_version() -> str:
    import graphc  # lazy: the package may be heavy to import

    return str(getattr(graphc, "__version__", "unknown"))


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with one subparser per registered command."""
    parser = argparse.ArgumentParser(
        prog="graphc",
        description="graphc: a define-then-run deep-learning graph compiler.",
    )
    parser.add_argument("--version", action="store_true", help="print graphc's version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        sp = sub.add_parser(name, help=cmd.help, description=cmd.help)
        if cmd.add_arguments is not None:
            cmd.add_arguments(sp)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Example::

        >>> main(["info"])                       # doctest: +SKIP
        graphc:          0.1.0
        ...
        0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(f"graphc {_graphc_version()}")
        return 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return int(COMMANDS[args.command].run(args) or 0)


# --------------------------------------------------------------------------- info


def _dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _module_version(module: str, dist: str) -> str:
    """Version of an importable module, from its metadata, else from ``__version__``."""
    version = _dist_version(dist)
    if version != "not installed":
        return version
    try:
        mod = importlib.import_module(module)
    except Exception:  # noqa: BLE001 - any import failure means "not usable"
        return "not installed"
    return str(getattr(mod, "__version__", "unknown version"))


def _dot_description() -> str:
    from graphc.env import find_dot

    path = find_dot()
    if path is None:
        return "not found"
    try:
        proc = subprocess.run(
            [path, "-V"],
            capture_output=True,
            text=True,
            timeout=20,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        line = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return f"{path} (version unknown)"
    return f"{path} ({line})"


def _cupy_description() -> str:
    try:
        import cupy  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - ImportError, or a broken CUDA install
        return "not installed"
    version = getattr(cupy, "__version__", "unknown version")
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - no driver / no device
        return f"{version} (no usable CUDA device: {type(exc).__name__}: {exc})"
    return f"{version} ({n} CUDA device{'s' if n != 1 else ''})"


def collect_info() -> dict[str, str]:
    """Return what ``graphc info`` reports, as an ordered ``{label: value}`` dict."""
    from graphc.env import cache_dir, find_c_compiler

    compiler = find_c_compiler()
    return {
        "graphc": _graphc_version(),
        "Python": f"{platform.python_version()} ({sys.executable})",
        "platform": platform.platform(),
        "NumPy": _module_version("numpy", "numpy"),
        "sympy": _module_version("sympy", "sympy"),
        "cffi": _module_version("cffi", "cffi"),
        "networkx": _module_version("networkx", "networkx"),
        "C compiler": f"{compiler[0]} ({compiler[1]})" if compiler else "not found",
        "graphviz dot": _dot_description(),
        "CuPy": _cupy_description(),
        "cache directory": str(cache_dir()),
    }


def _add_info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


@command("info", "show graphc's version and the tools it found", _add_info_arguments)
def _run_info(args: argparse.Namespace) -> int:
    info = collect_info()
    if getattr(args, "json", False):
        print(json.dumps(info, indent=2))
        return 0
    width = max(len(label) for label in info) + 2
    for label, value in info.items():
        print(f"{label + ':':<{width}}{value}")
    return 0


# --------------------------------------------------------------------------- demo


def _add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    from graphc.tools.demo import add_arguments  # light module; NumPy etc. load when it runs

    add_arguments(parser)


@command("demo", "train a digits CNN, export its graph and benchmark it against NumPy",
         _add_demo_arguments)
def _run_demo(args: argparse.Namespace) -> int:
    from graphc.tools.demo import run

    return run(args)


# --------------------------------------------------------------------------- bench


def _add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    from graphc.tools.bench import add_arguments  # light module; NumPy etc. load when it runs

    add_arguments(parser)


@command("bench", "benchmark graphc (C backend) against NumPy: tables, ratios, floors",
         _add_bench_arguments)
def _run_bench(args: argparse.Namespace) -> int:
    from graphc.tools.bench import run

    return run(args)
