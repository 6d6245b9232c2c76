"""The ``graphc`` command line (also ``python -m graphc``): ``info``, ``demo``, ``bench``,
``explain``.

Subcommands live in :data:`COMMANDS`, a dict ``name -> Command(help, add_arguments, run)``.
A new subcommand is one registration, no edit of :func:`main`::

    from graphc.tools.cli import command

    def _add_arguments(parser):
        parser.add_argument("--repeat", type=int, default=5)

    @command("hello", "say hello", _add_arguments)
    def _run_hello(args) -> int:
        print("hello" * args.repeat)
        return 0

``add_arguments(parser)`` fills the subcommand's :class:`argparse.ArgumentParser`;
``run(args)`` does the work and returns the exit status. Every subcommand's
``add_arguments`` runs whenever the parser is built, so a tool module keeps its top
level light (graphc and NumPy, which importing this package loads anyway) and imports
anything heavier (matplotlib, a compiler run) inside ``run``.

Example::

    $ graphc info
    $ graphc demo --epochs 5 --out /tmp/demo
    $ graphc bench --quick
    $ graphc explain --batch 64 --kernel k0_conv2d_ew
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

import graphc as gc
from graphc.env import c_compiler_problem, cache_dir, find_c_compiler, find_dot

from . import bench, demo

__all__ = ["COMMANDS", "Command", "build_parser", "collect_info", "command", "main"]


class Command(NamedTuple):
    """One subcommand: its one-line help, its argument setup and its action.

    Example::

        >>> COMMANDS["info"].help
        "show graphc's version and the tools it found"
    """

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
    """Decorator registering ``run(args) -> int`` as the subcommand ``name``.

    Example::

        >>> @command("hello", "say hello")
        ... def _hello(args: argparse.Namespace) -> int:
        ...     return 0
        >>> main(["hello"])
        0
        >>> del COMMANDS["hello"]
    """

    def register(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = Command(help_text, add_arguments, run)
        return run

    return register


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with one subparser per registered command.

    Example::

        >>> build_parser().parse_args(["info", "--json"]).json
        True
    """
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
        print(f"graphc {gc.__version__}")
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


def _backends_description() -> str:
    """The backends that can run here and what ``backend="auto"`` picks.

    A CUDA backend is planned; this version has none, and says so.
    """
    parts, usable = [], []
    for name in ("numpy", "c"):
        try:
            why = gc.backends.why_unavailable(name)
        except Exception as exc:  # noqa: BLE001 - a broken install
            why = str(exc)
        parts.append(name if why is None else f"{name}: unavailable ({why})")
        if why is None:
            usable.append(name)
    # (asked without making a Session: a fallback to NumPy would warn, and info only reports)
    picked = "c" if "c" in usable else "numpy" if usable else "nothing"
    parts.append(f"auto picks {picked} (the default)")
    return "; ".join(parts) + "; cuda: planned, not available in this version"


def collect_info() -> dict[str, str]:
    """Return what ``graphc info`` reports, as an ordered ``{label: value}`` dict.

    Example::

        >>> info = collect_info()
        >>> info["graphc"] == gc.__version__, "backends" in info
        (True, True)
    """
    compiler = find_c_compiler()
    return {
        "graphc": gc.__version__,
        "Python": f"{platform.python_version()} ({sys.executable})",
        "platform": platform.platform(),
        "NumPy": _module_version("numpy", "numpy"),
        "sympy": _module_version("sympy", "sympy"),
        "cffi": _module_version("cffi", "cffi"),
        "C compiler": f"{compiler[0]} ({compiler[1]})" if compiler
        else f"not found: {c_compiler_problem()}",
        "backends": _backends_description(),
        "graphviz dot": _dot_description(),
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


# --------------------------------------------------------------------------- tools
COMMANDS["demo"] = Command("train a digits CNN, export its graph and benchmark it against NumPy",
                           demo.add_arguments, demo.run)
COMMANDS["bench"] = Command("benchmark graphc (C backend) against NumPy: tables, ratios, floors",
                            bench.add_arguments, bench.run)


# --------------------------------------------------------------------------- explain
def _add_explain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="auto",
                        help="numpy | c | auto (default: C when a compiler is available)")
    parser.add_argument("--batch", type=int, default=32,
                        help="batch size the sizes are given at (default 32, the demo's)")
    parser.add_argument("--kernel", metavar="NAME",
                        help="also print the generated source of this kernel")
    parser.add_argument("--seed", type=int, default=0)


@command("explain", "explain the demo CNN's compiled training step: kernels, memory, FLOPs",
         _add_explain_arguments)
def _run_explain(args: argparse.Namespace) -> int:
    """Compile (nothing is trained) the demo's training step and print its explanation."""
    cnn = demo.build_digits_cnn(args.seed)
    try:
        sess = gc.Session(cnn["graph"], backend=args.backend)
        report = sess.explain([cnn["loss"], cnn["train"]], kernel=args.kernel, batch=args.batch)
    except gc.GraphcError as exc:
        print(f"graphc explain: {exc}", file=sys.stderr)
        return 2
    print(f"digits CNN training step (loss, Adam update); {sess.backend_choice}")
    print(report)
    return 0
