"""Data-parallel training under ``mpirun -np 2`` (tests/distributed/mpi_worker.py).

One 2-process job per backend runs every scenario (a few seconds); the tests read what
each rank wrote. Skipped, with the reason, where mpi4py or mpirun is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from graphc.backends import why_unavailable
from graphc.distributed import launch

WORKER = Path(__file__).with_name("mpi_worker.py")
_runs: dict[str, list[dict]] = {}


def _run(backend: str, tmp_path_factory) -> list[dict]:
    if backend in _runs:
        return _runs[backend]
    why = launch.problem() or why_unavailable(backend)
    if why:
        pytest.skip(f"distributed {backend}: {why}")
    out = tmp_path_factory.mktemp(f"mpi-{backend}")
    cmd = launch.mpirun(2, [sys.executable, str(WORKER), backend, str(out)])
    env = dict(os.environ, OMP_NUM_THREADS="1")  # two processes on two cores
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    ranks = []
    for r in range(2):
        path = out / f"rank{r}.json"
        assert path.exists(), f"rank {r} wrote nothing:\n{proc.stdout}\n{proc.stderr}"
        ranks.append(json.loads(path.read_text()))
    for r in ranks:
        assert "error" not in r, r["error"]
    assert proc.returncode == 0, proc.stderr
    _runs[backend] = ranks
    return ranks


@pytest.fixture(params=["numpy", pytest.param("c", marks=pytest.mark.slow)])
def ranks(request, tmp_path_factory) -> list[dict]:
    return _run(request.param, tmp_path_factory)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_two_half_batches_equal_one_whole_batch(ranks, opt):
    """After 4 steps, 2 ranks with B/2 rows each hold the variables (and slots) one
    process with B rows holds: float64 to 1e-10, identical on both ranks."""
    r0 = ranks[0][f"equivalence_{opt}"]
    assert r0["max_rel_err"] < 1e-10
    assert r0["loss_err"] < 1e-10  # allreduce_mean(loss) = the whole batch's mean loss
    assert r0["ranks_identical"]
    assert any("/" in v for v in r0["variables"])  # optimizer slots were compared too
    assert ranks[1][f"equivalence_{opt}"]["losses"] == r0["losses"]
    assert r0["step"] == 4


def test_float32_within_the_numerical_contract(ranks):
    r0 = ranks[0]["equivalence_float32"]
    assert r0["max_rel_err"] < 1e-5
    assert r0["ranks_identical"]


@pytest.mark.parametrize("case", ["bad_feed", "bad_label"])
def test_a_failing_rank_fails_every_rank_alike(ranks, case):
    """Rank 1's bad feed (before the step) or bad label (inside it): both ranks raise the
    same error, naming rank 1, and no variable or step counter changed anywhere."""
    seen = [r["failures"][case] for r in ranks]
    assert seen[0]["raised"] is not None
    assert seen[0] == seen[1]
    assert seen[0]["message"].startswith("rank 1 of 2: ")
    assert seen[0]["unchanged"] and seen[0]["step_unchanged"]
    assert ranks[0]["failures"]["identical_after"]  # and the next step agrees again


def test_a_nan_under_check_numerics_fails_every_rank(ranks):
    seen = [r["numerics"]["nan_feed"] for r in ranks]
    assert seen[0] == seen[1]
    assert seen[0]["raised"] == "NumericsError"
    assert seen[0]["message"].startswith("rank 1 of 2: ")
    assert seen[0]["unchanged"] and seen[0]["step_unchanged"]
    assert ranks[0]["numerics"]["identical_after"]


def test_a_failure_after_the_last_allreduce_commits_nowhere(ranks):
    """On C the ranks agree inside gc_run before its commits (updates wait for the end of
    the step under check_numerics); on NumPy the Session agrees before committing."""
    seen = [r["late_failure"] for r in ranks]
    assert seen[0]["raised"] == "NumericsError"
    assert seen[0]["message"] == seen[1]["message"]
    assert all(s["unchanged"] and s["step_unchanged"] for s in seen)
    assert seen[0].get("agrees_in_c", True)


def test_checkpoint_saved_by_rank0_and_broadcast_on_load(ranks):
    for r in ranks:
        assert r["checkpoint"]["restored"]
        assert r["checkpoint"]["step"] == 2  # rank 0's: one training step, one evaluation
        assert r["checkpoint"]["missing"] == "CheckpointError"
        assert r["checkpoint"]["solo_eval"]  # an evaluation on rank 0 alone did not hang


@pytest.mark.slow
def test_digits_cnn_distributed_reaches_the_accuracy_of_one_process(tmp_path):
    """``mpirun -np 2 python examples/digits_cnn.py --distributed``: the same global batches
    (16 rows on each rank), so the same accuracy as one process, to float32 rounding."""
    why = launch.problem() or why_unavailable("c")
    if why:
        pytest.skip(f"distributed c: {why}")
    script = Path(__file__).parents[2] / "examples" / "digits_cnn.py"
    if not script.exists():
        pytest.skip("examples/ is not beside the tests")
    argv = [sys.executable, str(script), "--backend", "c", "--epochs", "6", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    runs = {}
    for n in (1, 2):
        cmd = launch.mpirun(2, argv + ["--distributed", "--out", str(tmp_path / "2")]) if n == 2 \
            else argv + ["--out", str(tmp_path / "1")]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("test accuracy")]
        assert len(line) == 1, proc.stdout  # rank 0 alone prints
        runs[n] = float(line[0].split()[2].rstrip("%;")) / 100
    assert runs[1] >= 0.95
    assert abs(runs[2] - runs[1]) <= 0.006  # at most 2 of the 359 test images differ
