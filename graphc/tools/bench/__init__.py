"""``graphc bench``: benchmark graphc (C backend) against NumPy in the same process.

Rows (``--only`` picks groups; default: all):

* ``sgemm``: ``x @ W`` in float32 through a graphc graph (``Session.run``, C backend)
  against ``np.matmul(a, b, out=c)``, n = 256, 512, 1024, 2048: GFLOP/s;
* ``elementwise``: the fused chain ``relu(x*w + b)*0.5 + sigmoid(x)`` on a
  (4096, 1024) float32 ``x`` (4M elements) with ``w`` and ``b`` broadcast
  vectors of shape (1024,), against NumPy with preallocated buffers and in-place
  ufuncs: ms and GB/s (minimum traffic: read ``x``, write the result);
* ``mlp``: one training step (``sess.run([loss, train])``) of a 784-256-128-10
  ReLU MLP (mean softmax cross-entropy, SGD momentum 0.9) at batch 1, 16, 64, 256,
  against a hand-written NumPy step (preallocated buffers, ``np.matmul(out=)``,
  in-place updates);
* ``cnn``: one training step and inference of a small CNN at batch 64 (1x28x28 input,
  conv 8 3x3 pad 1 + ReLU + max-pool 2, conv 16 3x3 pad 1 + ReLU + max-pool 2,
  dense 10, mean softmax cross-entropy, SGD momentum 0.9) against NumPy written for
  speed (NHWC, im2col + one GEMM per convolution: :mod:`.nhwc`);
* ``transformer``: one training step of a Transformer encoder layer (B=32, T=64,
  d=128, 4 heads, ff 512; mean over T, dense 10, cross-entropy, SGD momentum 0.9)
  and ``lstm``: one LSTM training step (B=64, T=32, F=32, H=128, last output, dense 10),
  each against a NumPy implementation with a hand-derived backward pass and, where
  they import, PyTorch eager and JAX (``jax.jit``), all interleaved; ``lstm`` adds the
  cold compile of its step at T=32 and T=256 (:mod:`.seq_groups`, :mod:`.seq_models`);
* ``compile``: compile time of the MLP training step, cold (a fresh
  ``GRAPHC_CACHE_DIR`` in a new process, so gcc runs) and warm (a new process,
  same cache), median of a few subprocesses.

Method (docs/design.md, "Performance method"): graphc and NumPy alternate round by
round (A B A B ...) in one process; each round times a batch of calls (at least
``--min-round`` seconds) after a short sleep (``--settle``) and one untimed call,
so that the other implementation's spinning thread pool is idle. Tables show
medians and the ratio NumPy time / graphc time (> 1: graphc is faster), with
FLOPs over a nominal peak (base clock x FLOP/cycle; turbo can exceed it) or bytes
over the copy bandwidth measured in the same run.

The training-step rows check first that graphc and NumPy compute the same step: from
the same weights, one step's loss, momentum buffers (= the gradients after one step)
and new weights agree (the "max rel diff" column). The timed steps then cycle through
8 batches of N(0, 0.1^2) inputs and random labels, and both sides' weights and
momentum are restored before every round (untimed): repeating one batch for
thousands of steps lets the momentum of always-dead ReLU units decay into float32
denormals (~100x slower arithmetic on x86, in both implementations), and unit-variance
inputs make SGD at lr 0.01 diverge to NaN in such loops.

``--threads N`` re-executes the benchmark in a subprocess with ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` set to N (before NumPy loads);
``--pin CPUS`` pins that subprocess (like ``taskset -c``).

The markdown table is printed and written, with a JSON dump and a PNG bar plot of
the ratios, into ``--out`` (default ``./graphc-bench``).

Modules: :mod:`.command` (options, re-execution, ``main``), :mod:`.runner` (:func:`bench`:
the groups in this process, the files), :mod:`.groups` (one function per group, the
rows), :mod:`.models` (the MLP and CNN and their NumPy twins), :mod:`.timing` (alternating
rounds), :mod:`.machine` (CPU, threads, bandwidth), :mod:`.report` (markdown, floors, plot),
:mod:`.seq_models`, :mod:`.seq_groups` and :mod:`.seq_baselines` (the Transformer and LSTM
steps, their NumPy twins, groups, and PyTorch / JAX versions); :mod:`.distributed` (apart:
``python -m graphc.tools.bench.distributed``, the MLP and CNN steps on 1 and 2 MPI
processes: scaling efficiency and the allreduce's share; benchmarks/NOTES.md).

Example::

    $ graphc bench --quick
    $ graphc bench --threads 1 --pin 0            # = taskset -c 0 with one thread everywhere
    $ graphc bench --only mlp --only compile --rounds 21
    $ python -m graphc.tools.bench --quick          # the same as graphc bench --quick
    >>> from graphc.tools.bench import bench, parse_args
    >>> result = bench(parse_args(["--quick", "--only", "mlp"]))      # doctest: +SKIP
    >>> [(r["name"], r["ratio"]) for r in result["rows"]]              # doctest: +SKIP
"""

from .command import add_arguments, main, parse_args, run
from .groups import GROUPS as _GROUPS
from .models import (
    NumpyCNN,
    NumpyMLP,
    build_cnn,
    build_mlp,
    compare_step,
    init_cnn,
    init_mlp,
    max_rel_diff,
)
from .report import format_seconds
from .runner import bench
from .seq_models import NumpyLSTM, NumpyTransformer, build_lstm, build_transformer
from .timing import alternate, alternate_medians

#: Benchmark groups, in the order they run (``--only`` picks some).
GROUPS = tuple(_GROUPS)

__all__ = [
    "GROUPS", "NumpyCNN", "NumpyLSTM", "NumpyMLP", "NumpyTransformer", "add_arguments",
    "alternate", "alternate_medians", "bench", "build_cnn", "build_lstm", "build_mlp",
    "build_transformer", "compare_step", "format_seconds", "init_cnn", "init_mlp", "main",
    "max_rel_diff", "parse_args", "run",
]
