"""Tests for the ``graphc`` command line (graphc.tools.cli, python -m graphc)."""

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


def _subprocess_env(tmp_path: Path) -> dict[str, str]:
    """Environment in which a child Python imports the same graphc as this process."""
    env = dict(os.environ)
    env["GRAPHC_CACHE_DIR"] = str(tmp_path / "cache")
    root = str(Path(graphc.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _check_info_text(out: str) -> None:
    version = re.escape(graphc.__version__)
    assert re.search(rf"^graphc:\s+{version}$", out, re.MULTILINE), out
    compiler = re.search(r"^C compiler:\s+(.+)$", out, re.MULTILINE)
    assert compiler, out
    if HAS_GCC_OR_CLANG and not os.environ.get("CC"):
        line = compiler.group(1).lower()
        assert "gcc" in line or "clang" in line, line
    for label in ("Python", "NumPy", "sympy", "cffi", "graphviz dot", "CuPy", "cache directory"):
        assert re.search(rf"^{label}:\s+\S", out, re.MULTILINE), f"no {label!r} line in:\n{out}"


def test_python_m_graphc_info(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "graphc", "info"],
        capture_output=True,
        check=False,
        text=True,
        env=_subprocess_env(tmp_path),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    _check_info_text(proc.stdout)
    assert re.search(
        rf"^cache directory:\s+{re.escape(str(tmp_path / 'cache'))}$", proc.stdout, re.MULTILINE
    )


def test_console_script_if_installed(tmp_path):
    script = Path(sys.executable).parent / ("graphc.exe" if os.name == "nt" else "graphc")
    if not script.exists():
        pytest.skip("graphc console script not installed next to this Python")
    proc = subprocess.run(
        [str(script), "info"],
        capture_output=True,
        check=False,
        text=True,
        env=_subprocess_env(tmp_path),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    _check_info_text(proc.stdout)


def test_main_info_in_process(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "c"))
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    _check_info_text(out)
    assert str(tmp_path / "c") in out


def test_main_info_json(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "c"))
    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["graphc"] == graphc.__version__
    assert info["cache directory"] == str(tmp_path / "c")
    assert set(info) >= {"Python", "NumPy", "sympy", "cffi", "C compiler", "graphviz dot", "CuPy"}


def test_main_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"graphc {graphc.__version__}"


def test_main_without_command_prints_usage(capsys):
    assert cli.main([]) == 2
    assert "info" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys):
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
