"""The ``graphc`` command line: entry points, dispatch, and what ``graphc info`` reports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import graphc
from graphc.tools import cli

HAS_GCC_OR_CLANG = shutil.which("gcc") is not None or shutil.which("clang") is not None
LABELS = ("graphc", "Python", "platform", "NumPy", "sympy", "cffi", "C compiler", "backends",
          "graphviz dot", "cache directory")


def _check_info_text(out: str, cache: Path) -> None:
    assert re.search(rf"^graphc:\s+{re.escape(graphc.__version__)}$", out, re.MULTILINE), out
    for label in LABELS:
        assert re.search(rf"^{label}:\s+\S", out, re.MULTILINE), f"no {label!r} line in:\n{out}"
    compiler = re.search(r"^C compiler:\s+(.+)$", out, re.MULTILINE).group(1).lower()
    if HAS_GCC_OR_CLANG and not os.environ.get("CC"):
        assert "gcc" in compiler or "clang" in compiler, compiler
    assert re.search(rf"^cache directory:\s+{re.escape(str(cache))}$", out, re.MULTILINE), out


def test_python_m_graphc_info(tmp_path, run_graphc, child_env):
    proc = run_graphc(["info"], tmp_path, child_env(cache=tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr
    _check_info_text(proc.stdout, tmp_path / "cache")


def test_console_script_if_installed(tmp_path, child_env):
    script = Path(sys.executable).parent / ("graphc.exe" if os.name == "nt" else "graphc")
    if not script.exists():
        pytest.skip("graphc console script not installed next to this Python")
    proc = subprocess.run([str(script), "info"], capture_output=True, check=False, text=True,
                          env=child_env(cache=tmp_path / "cache"), cwd=tmp_path,
                          stdin=subprocess.DEVNULL, timeout=300)
    assert proc.returncode == 0, proc.stderr
    _check_info_text(proc.stdout, tmp_path / "cache")


def test_info_json_in_process(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "c"))
    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert list(info) == list(LABELS)
    assert info["graphc"] == graphc.__version__
    assert info["cache directory"] == str(tmp_path / "c")


def test_info_promises_no_cuda_backend():
    """There is no CUDA backend: info says it is planned and lists only the real ones."""
    info = cli.collect_info()
    assert not any("cupy" in label.lower() for label in info)
    backends = info["backends"]
    assert re.search(r"\bnumpy\b", backends) and "auto picks" in backends
    assert "cuda: planned, not available" in backends
    usable = {"numpy", "c"} & {graphc.Session(graphc.Graph(), backend="auto").backend}
    assert usable, backends


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_help_offers_no_cuda_backend(name, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: graphc") and "cuda" not in out.lower()


def test_main_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"graphc {graphc.__version__}"


def test_main_without_command_prints_usage(capsys):
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert all(name in err for name in ("info", "demo", "bench"))


def test_unknown_command_is_a_usage_error():
    with pytest.raises(SystemExit) as exc:
        cli.main(["no-such-command"])
    assert exc.value.code == 2


def test_registered_command_is_dispatched(monkeypatch, capsys):
    def add_arguments(parser):
        parser.add_argument("--n", type=int, default=1)

    def run(args):
        print(f"dummy ran with n={args.n}")
        return args.n

    monkeypatch.setitem(cli.COMMANDS, "dummy", cli.Command("a test command", add_arguments, run))
    assert cli.main(["dummy", "--n", "3"]) == 3
    assert "dummy ran with n=3" in capsys.readouterr().out
    assert cli.main(["dummy"]) == 1


@pytest.mark.parametrize("name", ["demo", "bench"])
def test_tool_commands_parse_their_options(name, monkeypatch):
    """``graphc demo`` / ``graphc bench`` reach their module's ``run`` with its options."""
    seen = []

    def run(args):
        seen.append(args)
        return 7

    monkeypatch.setitem(cli.COMMANDS, name, cli.COMMANDS[name]._replace(run=run))
    assert cli.main([name, "--out", "somewhere"]) == 7
    assert seen[0].out == "somewhere"


def test_info_says_why_no_compiler_was_found(monkeypatch):
    from graphc import env
    from graphc.tools.cli import collect_info

    monkeypatch.setenv("CC", "/nonexistent/gcc")
    env.find_c_compiler.cache_clear()
    try:
        assert collect_info()["C compiler"] == ("not found: CC=/nonexistent/gcc names a compiler "
                                                "that does not exist")
    finally:
        monkeypatch.undo()
        env.find_c_compiler.cache_clear()
