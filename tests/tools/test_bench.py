"""``graphc bench``: one quick run of the command line, and its parts in-process.

The run (``TOOL_RUNS`` in conftest.py) re-executes itself with one thread (``--threads 1``:
the path of ``python -m graphc.tools.bench``), times sgemm and the MLP step with the fewest
rounds and sizes, and measures one cold and one warm compile. No timing is asserted: the
tests check that both sides computed the same thing and that the report says what it did.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import graphc as gc
from graphc.env import find_c_compiler
from graphc.tools.bench import (
    GROUPS,
    NumpyCNN,
    NumpyMLP,
    alternate,
    build_cnn,
    build_mlp,
    compare_step,
    init_cnn,
    init_mlp,
    parse_args,
    run,
)
from graphc.tools.bench.command import child_argv
from graphc.tools.bench.groups import select_groups
from graphc.tools.bench.machine import THREAD_VARS
from graphc.tools.bench.report import floors, markdown
from graphc.tools.bench.runner import make_config

MLP_LABEL = "MLP 784-256-128-10 training step"


@pytest.fixture(scope="module")
def bench_run(tool_run):
    """``python -m graphc bench --quick --threads 1 ...``: stdout, its files, its JSON."""
    if find_c_compiler() is None:
        pytest.skip("graphc bench compiles C")
    run = tool_run("bench")
    assert run.returncode == 0, run.stdout + run.stderr
    run.result = json.loads((run.out / "bench_threads-1.json").read_text())
    run.table = (run.out / "bench_threads-1.md").read_text()
    return run


@pytest.mark.slow
def test_bench_reexecutes_with_one_thread_and_writes_its_files(bench_run):
    assert "re-executing with OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1" \
        in bench_run.stdout
    assert bench_run.result["threads"]["env"] == {v: "1" for v in THREAD_VARS}
    assert (bench_run.out / "ratios_threads-1.png").read_bytes()[:4] == b"\x89PNG"
    assert bench_run.table in bench_run.stdout + "\n"           # the report is printed too
    assert bench_run.result["config"]["rounds"] == 3


@pytest.mark.slow
def test_bench_rows_compare_the_same_computations(bench_run):
    rows = bench_run.result["rows"]
    assert [r["name"] for r in rows] == [
        "sgemm n=256 (x @ W)", "sgemm n=1024 (x @ W)",
        "MLP 784-256-128-10 train step, batch 1", "MLP 784-256-128-10 train step, batch 64",
        "C kernel library build (once per machine and flags)",
        "MLP train-step compile, cold (GRAPHC_CACHE_DIR with only the kernel library, gcc runs)",
        "MLP train-step compile, warm (new process, same cache)"]
    for r in rows[:4]:
        assert r["max_rel_diff"] < 1e-4, r
        assert r["ratio"] == pytest.approx(r["numpy_s"] / r["graphc_s"])
        assert len(r["graphc_samples"]) == len(r["numpy_samples"]) == 3
        assert "WARNING" not in r.get("note_extra", "")
        assert f"| {r['name']} |" in bench_run.table


@pytest.mark.slow
def test_bench_compile_rows_tell_a_cold_cache_from_a_warm_one(bench_run):
    library, cold, warm = bench_run.result["rows"][4:]
    assert "cache miss in 1/1" in cold["note"] and "cache hit in 1/1" in warm["note"]
    assert warm["graphc_s"] < cold["graphc_s"] and library["graphc_s"] > 0
    status = {f["floor"]: f["met"] for f in bench_run.result["floors"]}
    assert all(isinstance(met, bool) for met in status.values()), status


@pytest.mark.slow
def test_bench_reports_fusions_and_where_the_time_goes(bench_run):
    fused = bench_run.result["fusions"][MLP_LABEL]
    first = next(k for k in fused if "dense/matmul" in k["nodes"])
    assert first["nodes"][:3] == ["dense/matmul", "dense/add", "dense/relu"]  # layer 1 = one kernel
    assert f"  - `{first['name']}`: dense/matmul, dense/add, dense/relu" in bench_run.table
    profile = bench_run.result["profiles"][MLP_LABEL]
    assert profile["batch"] == 64 and profile["rows"]
    assert sum(r["share"] for r in profile["rows"]) == pytest.approx(1.0, abs=0.05)
    assert f"### Where the time goes: {MLP_LABEL}, batch 64" in bench_run.table
    assert f"| `{first['name']}` | dense/matmul, dense/add, dense/relu |" in bench_run.table


# ----------------------------------------------------------------------------- options
@pytest.mark.parametrize("argv", [
    [],
    ["--quick", "--only", "mlp", "--only", "ew,compile", "--threads", "2", "--pin", "0-1"],
    ["--rounds", "21", "--settle", "0.5", "--min-round", "0.1", "--compile-runs", "2",
     "--out", "x y", "--no-plot", "--check-floors"],
])
def test_child_gets_the_same_options(argv):
    """``--threads``/``--pin`` re-execute the bench: the child must see every option."""
    args = parse_args(argv)
    assert parse_args(child_argv(args)) == args


def test_config_from_options():
    quick = make_config(parse_args(["--quick", "--threads", "1", "--compile-runs", "2"]))
    assert (quick.rounds, quick.sgemm_sizes, quick.mlp_batches) == (5, (256, 1024), (1, 64))
    assert quick.compile_runs == (2, 2) and quick.settle == 0.01 and quick.n_cores == 1
    full = make_config(parse_args(["--rounds", "21", "--threads", "2", "--settle", "0.3"]))
    assert (full.rounds, full.settle, full.compile_runs) == (21, 0.3, (3, 5))
    assert full.sgemm_sizes == (256, 512, 1024, 2048) and full.mlp_batches == (1, 16, 64, 256)


def test_group_selection():
    assert select_groups(None) == list(GROUPS)
    assert select_groups(["compile,EW", "gemm"]) == ["sgemm", "elementwise", "compile"]
    with pytest.raises(ValueError, match="choose from sgemm, elementwise, mlp, cnn, transformer, "
                                         "lstm, compile"):
        select_groups(["mlp,gpu"])
    with pytest.raises(SystemExit, match="unknown benchmark 'gpu'"):
        run(parse_args(["--only", "gpu"]))
    with pytest.raises(SystemExit, match="--threads must be >= 1"):
        run(parse_args(["--threads", "0"]))


# ----------------------------------------------------------------------------- timing
def test_alternate_interleaves_the_rounds_and_resets_before_each():
    calls = []
    ta, tb = alternate(lambda: calls.append("a"), lambda: calls.append("b"), rounds=2,
                       settle=0.0, min_s=0.0,
                       resets=(lambda: calls.append("reset a"), lambda: calls.append("reset b")))
    assert len(ta) == len(tb) == 2 and min(ta + tb) > 0
    rounds = ["reset a", "a", "a", "reset b", "b", "b"] * 2   # untimed call, then one timed
    assert calls == ["a", "b", "a", "b", *rounds]


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize("which", ["bench MLP", "demo MLP", "bench CNN"])
def test_numpy_twins_take_the_same_steps_as_graphc(which):
    """Three steps from the same weights agree (the reference backend: no compiler)."""
    rng = np.random.default_rng(0)
    if which == "bench MLP":
        init, shape = init_mlp(), (16, 784)
        model, twin = build_mlp(init), NumpyMLP(init, 16)
    elif which == "demo MLP":
        init, shape = init_mlp((64, 64, 10), seed=3), (16, 64)
        model, twin = build_mlp(init, lr=0.5, momentum=0.0), NumpyMLP(init, 16, 0.5, 0.0)
    else:
        init, shape = init_cnn(), (4, 1, 28, 28)
        model, twin = build_cnn(init), NumpyCNN(init)
    sess = gc.Session(model["graph"], backend="numpy")
    assert (None not in model["slots"]) == (which != "demo MLP")
    for _ in range(3):
        x = rng.standard_normal(shape).astype(np.float32)
        assert compare_step(sess, model, twin, x, rng.integers(0, 10, shape[0])) < 2e-5


def test_numpy_twin_restores_its_snapshot():
    init = init_mlp((8, 4, 3))
    twin = NumpyMLP(init, 2)
    x, y = np.ones((2, 8), np.float32), np.array([0, 2])
    snap = twin.snapshot()
    first = twin.step(x, y)
    assert twin.step(x, y) != first
    twin.restore(snap)
    assert twin.step(x, y) == first


# ----------------------------------------------------------------------------- report
def _result(rows: list[dict]) -> dict:
    return {"tag": "threads 1", "rows": rows, "floors": floors(rows), "fusions": {},
            "config": {"rounds": 3, "min_round": 0.05, "settle": 0.0, "peak_gflops": None,
                       "copy_gbs": None},
            "threads": {"affinity": [0], "env": {}, "pools": []}, "cpu": "cpu", "loadavg": "?",
            "loadavg_end": "?", "numpy": np.__version__, "graphc": gc.__version__, "cflags": "-O3"}


def test_floors_and_report_say_what_was_missed_and_not_measured():
    rows = [{"group": "sgemm", "name": "sgemm n=1024 (x @ W)", "graphc_s": 2.0, "numpy_s": 0.5,
             "ratio": 0.25, "unit": "GFLOP/s", "graphc_rate": 1.0, "numpy_rate": 4.0,
             "spread": (None, 0.02), "max_rel_diff": 1e-7, "note": ""},
            {"group": "compile", "name": "MLP train-step compile, warm (new process, same cache)",
             "graphc_s": 0.1, "numpy_s": None, "ratio": None, "note": "cache hit in 1/1"}]
    assert [f["met"] for f in floors(rows)] == [False, None, None, True]
    text = markdown(_result(rows))
    assert "| sgemm n=1024 >= 0.5x NumPy | 0.25x | **MISSED** |" in text
    assert "| warm start of the MLP step < 0.3 s | 100 ms | met |" in text
    assert "| cold compile of the MLP step < 1 s (kernel library built) | - | not measured |" in text
    assert "| sgemm n=1024 (x @ W) | 2.00 s | 500 ms | **0.25** |" in text
    assert "| - / 2% | 1.0e-07 |" in text
    assert "| MLP train-step compile, warm (new process, same cache) | 100 ms | - |" in text
    assert "Nominal peak unknown" in text and "C flags: -O3." in text
