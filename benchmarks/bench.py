"""Benchmark graphc (C backend) against NumPy: the same as ``graphc bench``.

    python benchmarks/bench.py                          # default threads
    python benchmarks/bench.py --threads 1 --pin 0      # one thread everywhere, pinned to CPU 0
    python benchmarks/bench.py --quick --only mlp       # one group, fewer rounds
    taskset -c 0 env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench.py

See graphc/tools/bench/__init__.py (``python -m graphc.tools.bench --help``) for the rows and
the method, and benchmarks/README.md for how to read the results.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    try:
        import graphc.tools.bench  # noqa: F401 - an installed graphc
    except ImportError:  # a plain checkout: use the repository's package, here and in the
        root = str(Path(__file__).resolve().parent.parent)  # child that --threads starts
        sys.path.insert(0, root)
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH"))
                                                   if p)
    from graphc.tools.bench import main

    sys.exit(main())
