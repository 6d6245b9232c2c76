"""Starting ``mpirun`` from Python (the tests and the benchmark run 2-process jobs).

:func:`mpirun` finds the launcher and returns the command for ``n`` processes on this
machine only: Open MPI gets ``--oversubscribe`` and, as root, ``--allow-run-as-root``,
and its processes talk over shared memory and the loopback interface only.

Example::

    cmd = mpirun(2, [sys.executable, "train.py"])
    if cmd: subprocess.run(cmd, check=True)
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess


@functools.lru_cache(maxsize=1)
def launcher() -> tuple[str, str] | None:
    """(path of mpirun or mpiexec, "openmpi" | "mpich" | "other"), or None."""
    for name in ("mpirun", "mpiexec"):
        path = shutil.which(name)
        if path:
            try:
                text = subprocess.run([path, "--version"], capture_output=True, text=True,
                                      timeout=30).stdout
            except (OSError, subprocess.SubprocessError):
                continue
            kind = "openmpi" if "Open MPI" in text or "OpenRTE" in text else (
                "mpich" if "HYDRA" in text or "MPICH" in text else "other")
            return path, kind
    return None


def problem() -> str | None:
    """Why a 2-process MPI job cannot run here, or None."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'graphc[mpi]')"
    if launcher() is None:
        return "no mpirun/mpiexec on PATH (apt-get install openmpi-bin libopenmpi-dev)"
    return None


def mpirun(n: int, argv: list[str]) -> list[str] | None:
    """The command running ``argv`` as ``n`` local MPI processes (None: no launcher)."""
    found = launcher()
    if found is None:
        return None
    path, kind = found
    cmd = [path, "-n", str(int(n))]
    if kind == "openmpi":
        cmd += ["--oversubscribe", "--mca", "btl", "self,vader,tcp",
                "--mca", "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-run-as-root")
    return cmd + list(argv)
