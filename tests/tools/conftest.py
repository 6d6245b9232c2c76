"""Fixtures of the tools' tests: running ``python -m graphc ...`` as a user would.

``graphc demo`` and ``graphc bench`` take seconds each (most of it gcc when the cache is
cold), and several tests check what one run printed and wrote. So each runs once, in
the background, started as soon as the tests that use it are collected: the two overlap
(on two cores) with each other and with the fast in-process tests. ``tool_run(name)``
waits for the run and returns it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

import graphc
from graphc.tools.bench.machine import THREAD_VARS

ROOT = Path(graphc.__file__).resolve().parent.parent

#: The background runs: name -> (arguments of ``python -m graphc``, variables to unset).
#: ``--out`` is added. The demo's are the smallest that still train the digits CNN past
#: 97% test accuracy (5 epochs of batch 8; the defaults, 20 epochs of batch 32, reach
#: about 98%), with the backend ``auto`` picks, as a user's first run. The bench re-executes
#: itself with one thread (unset here, so that it must), times sgemm and the MLP step with
#: the fewest rounds and sizes, and measures one cold and one warm compile.
TOOL_RUNS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "demo": (["demo", "--epochs", "5", "--batch-size", "8", "--rounds", "1"], ()),
    "bench": (["bench", "--quick", "--only", "sgemm,mlp,compile", "--threads", "1",
               "--rounds", "3", "--settle", "0", "--min-round", "0.005", "--compile-runs", "1"],
              THREAD_VARS),
}


def _child_env(cache: Path | None = None, drop: tuple[str, ...] = ()) -> dict[str, str]:
    """This environment for a child Python that imports the same graphc as the tests.

    ``cache`` sets ``GRAPHC_CACHE_DIR`` (default: inherited, so that a child reuses the
    libraries earlier runs compiled; the cache is keyed by the generated source, so a
    changed code generator still compiles afresh); ``drop`` removes variables.
    """
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if cache is not None:
        env["GRAPHC_CACHE_DIR"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


class _Run:
    """``python -m graphc <args> --out <folder>/out`` started now; :meth:`wait` finishes it."""

    def __init__(self, name: str, folder: Path) -> None:
        args, drop = TOOL_RUNS[name]
        self.folder, self.out = folder, folder / "out"
        folder.mkdir()
        self._logs = [open(folder / "stdout", "w"), open(folder / "stderr", "w")]
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "graphc", *args, "--out", str(self.out)], cwd=folder,
            env=_child_env(drop=drop), stdin=subprocess.DEVNULL, stdout=self._logs[0],
            stderr=self._logs[1], text=True)

    def wait(self, timeout: float = 600) -> SimpleNamespace:
        """The finished run: ``returncode``, ``stdout``, ``stderr``, ``out`` (its folder)."""
        code = self._proc.wait(timeout)
        for log in self._logs:
            log.close()
        return SimpleNamespace(returncode=code, out=self.out,
                               stdout=(self.folder / "stdout").read_text(),
                               stderr=(self.folder / "stderr").read_text())

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self.wait()


_runs: dict[str, _Run] = {}
_folder: list[Path] = []


def _start(name: str) -> _Run:
    if name not in _runs:
        if not _folder:
            _folder.append(Path(tempfile.mkdtemp(prefix="graphc-tools-tests-")))
        _runs[name] = _Run(name, _folder[0] / name)
    return _runs[name]


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the runs that the selected tests use (through ``<name>_run`` fixtures)."""
    used = {name for item in items for name in TOOL_RUNS
            if f"{name}_run" in getattr(item, "fixturenames", ())}
    for name in sorted(used):
        _start(name)


def pytest_sessionfinish() -> None:
    for run in _runs.values():
        run.stop()
    for folder in _folder:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def tool_run() -> Callable[[str], SimpleNamespace]:
    """``tool_run(name)``: the finished background run ``name`` of :data:`TOOL_RUNS`."""
    return lambda name: _start(name).wait()


@pytest.fixture(scope="session")
def child_env() -> Callable[..., dict[str, str]]:
    """``child_env(cache=None, drop=())``: see :func:`_child_env`."""
    return _child_env


@pytest.fixture(scope="session")
def run_graphc() -> Callable[..., subprocess.CompletedProcess]:
    """``run_graphc(args, cwd, env=None)``: ``python -m graphc *args``, output captured."""

    def run(args: list[str], cwd: Path, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "graphc", *args], capture_output=True,
                              text=True, check=False, cwd=cwd, stdin=subprocess.DEVNULL,
                              env=_child_env() if env is None else env, timeout=600)

    return run
