"""The C backend's test subset built with AddressSanitizer and UndefinedBehaviorSanitizer
(``GRAPHC_SANITIZE=address,undefined``) and run in a child process: any report fails.

The subset: the compiled cases of the quick op tests (GEMM with a fused epilogue, conv
forward and backward, max and average pooling, reductions, fused elementwise chains,
softmax cross-entropy, dropout, a label out of range) and training steps of an MLP at
several batch sizes. Two canaries first prove that a use after free and a signed overflow
in a library graphc builds this way are caught.

Skipped where the compiler has no ASan runtime, unless GRAPHC_TEST_REQUIRE_SANITIZERS=1
(``.ci/run`` sets it): there a missing runtime fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import graphc
from graphc.env import find_c_compiler

pytestmark = [pytest.mark.needs_c, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]

SUBSET = ["tests/ops/test_linalg.py", "tests/ops/test_conv.py", "tests/ops/test_pool.py",
          "tests/ops/test_reduce.py", "tests/ops/test_elemwise.py", "tests/ops/test_nn.py",
          "tests/ops/test_indexing.py", "tests/ops/test_scan_cases.py", "tests/ops/test_shape.py",
          "tests/backends/c/test_build.py",
          "-m", "not slow", "-k", "c- or batch_size_change or feeds_are_passed"]
REPORTS = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer")


def _sanitizer_env() -> dict:
    compiler = find_c_compiler()
    runtime = None
    if compiler is not None:
        out = subprocess.run([compiler[0], "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
        runtime = out if os.path.isabs(out) and os.path.exists(out) else None
    if runtime is None:
        why = f"the C compiler ({compiler and compiler[0]}) has no AddressSanitizer runtime"
        if os.environ.get("GRAPHC_TEST_REQUIRE_SANITIZERS") == "1":
            pytest.fail(why + " (GRAPHC_TEST_REQUIRE_SANITIZERS=1)")
        pytest.skip(why)
    env = dict(os.environ)
    env.update(GRAPHC_SANITIZE="address,undefined", LD_PRELOAD=runtime,
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",  # (Python itself leaks by design)
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    if Path(graphc.__file__).resolve().parents[1] == REPO:  # the child imports this graphc
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.pop("PYTEST_ADDOPTS", None)
    return env


_CANARY = textwrap.dedent("""
    import sys
    from graphc.backends.c import build
    source = '''#include <stdint.h>
    #include <stdlib.h>
    size_t gc_arena_bytes(int64_t N) {
        if (N < 0) { int big = 2147483647 - 1; return (size_t)(big + (int)-N); }
        volatile char *p = malloc(4); p[0] = 1; free((void *)p);
        return (size_t)p[N];  /* read after free */
    }'''
    lib, _ = build.load_or_build(source)
    lib.gc_arena_bytes(int(sys.argv[1]))
    print("not caught")
""")


def test_c_subset_is_clean_under_address_and_undefined_behavior_sanitizers():
    env = _sanitizer_env()
    for arg, report in (("1", "heap-use-after-free"), ("-5", "signed integer overflow")):
        canary = subprocess.run([sys.executable, "-c", _CANARY, arg], env=env, cwd=REPO,
                                capture_output=True, text=True, timeout=120)
        assert canary.returncode != 0 and report in canary.stderr, (arg, canary.stderr[-3000:])
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", *SUBSET],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and not REPORTS.search(output), output[-6000:]
    passed = re.search(r"(\d+) passed", output)
    assert passed and int(passed.group(1)) >= 20, output[-3000:]
