"""The rendered C library: golden text of one fused kernel, float32 code uses float math
only, the native interface comes from one statement (abi.py), no empty kernels, each
array named once at the top of its kernel, and sizes known at generation time decide
loop threading then."""

from __future__ import annotations

import re

import numpy as np
import pytest

import graphc as gc
from graphc.backends.c import abi

pytestmark = pytest.mark.needs_c

GOLDEN_RELU_AFFINE = """
static void k0_elementwise(const gc_ctx *g) {
    const int64_t N = g->N;
    const float *p_x = (const float *)g->feeds[0];
    const float *p_w = (const float *)g->vars[0];
    const float *p_b = (const float *)g->vars[1];
    float *p_relu = (float *)g->outs[0];
    #pragma omp parallel for if(parallel: N * 4 >= 32768)
    for (int64_t i0 = 0; i0 < N; i0++) {
        #pragma omp simd simdlen(16)
        for (int64_t i1 = 0; i1 < 4; i1++) {
            const float l0 = p_x[i0 * 4 + i1];
            const float l1 = p_w[i1];
            const float l2 = p_b[i1];
            const float t0 = l0*l1 + l2;
            p_relu[i0 * 4 + i1] = (((t0 <= 0)) ? (0) : (t0));
        }
    }
}
"""


def kernel_function(source: str, name: str) -> str:
    """The text of kernel function ``name`` (from its head to its closing brace)."""
    start = re.search(rf"^static \w+ {name}\(", source, re.M).start()
    return source[start:source.index("\n}\n", start) + 2]


def test_golden_fused_relu_affine_kernel():
    """relu(x * w + b) on (N, 4) float32 is ONE kernel: the arrays named at the top, one
    loop nest (rows over threads when there are enough, the 4 columns as SIMD lanes; w and
    b broadcast) whose body is the fused expression, stored straight into the output."""
    with gc.Graph() as g:
        x = gc.placeholder((None, 4), name="x")
        w = gc.variable(np.array([1.0, -2.0, 0.5, 3.0], np.float32), name="w")
        b = gc.variable(np.array([0.1, 0.2, -0.3, 0.0], np.float32), name="b")
        y = gc.relu(x * w + b)
    sess = gc.Session(g, backend="c")
    compiled = sess.compile([y])
    assert [k["nodes"] for k in compiled.kernels] == [["mul", "add", "relu"]]
    assert compiled.kernels[0]["stores"] == ["relu"]
    source = compiled.source
    assert kernel_function(source, "k0_elementwise").strip() == GOLDEN_RELU_AFFINE.strip()
    # the kernel's comment names the fused nodes and the line that defined them
    assert re.search(r"/\* k0_elementwise: mul, add, relu \(.*test_library\.py:\d+\) \*/", source)
    # y goes straight to the output array: the arena holds nothing
    assert compiled.arena_bytes(64) == compiled.arena_bytes(1) == 0
    xv = np.random.default_rng(0).uniform(-2, 2, (5, 4)).astype(np.float32)
    out = sess.run(y, {x: xv})
    np.testing.assert_array_equal(out, np.maximum(xv * sess.get_value(w) + sess.get_value(b), 0))


def test_float32_kernel_uses_float_math_only():
    """A fused float32 chain prints F literals and the f math functions (expf, not exp)."""
    with gc.Graph() as g:
        x = gc.placeholder((None, 7), name="x")
        y = gc.log(1.5 + gc.exp(gc.tanh(gc.sqrt(gc.abs(x * 0.25) + 0.5)))) * 3.0
        z = gc.sigmoid(y) - gc.softplus(y * 0.125)
    sess = gc.Session(g, backend="c")
    compiled = sess.compile([z])
    kernels = [k for k in compiled.kernels if k["kind"] == "elementwise"]
    assert len(kernels) == 1, compiled.kernels  # the whole chain is one loop
    body = kernel_function(compiled.source, kernels[0]["name"]).split("\n", 1)[1]
    for f in ("expf(", "tanhf(", "sqrtf(", "fabsf(", "logf(", "gc_sigmoidf(", "gc_softplusf("):
        assert f in body, (f, body)
    assert not re.search(r"\b(exp|tanh|sqrt|fabs|log|pow|gc_sigmoid|gc_softplus)\(", body), body
    assert "double" not in body, body
    literals = re.findall(r"(?<![\w.])\d+\.\d*(?:e[-+]?\d+)?F?", body)
    assert literals and all(lit.endswith("F") for lit in literals), literals
    assert body.count("for (") == 1, body
    xv = np.random.default_rng(1).uniform(-3, 3, (33, 7)).astype(np.float32)
    expected = gc.Session(g, backend="numpy").run(z, {x: xv})
    np.testing.assert_allclose(sess.run(z, {x: xv}), expected, rtol=1e-5, atol=1e-6)


def test_the_native_interface_is_stated_once():
    """The library defines what abi.py states: the context struct, the entry points (which
    are also cffi's declarations) and every kernel's head."""
    with gc.Graph() as g:
        x = gc.placeholder((None, 3), name="x")
        y = gc.mean(gc.softmax_cross_entropy(x, gc.argmax(x, axis=1)))
    source = gc.Session(g, backend="c").compile([y]).source
    assert abi.context_struct() in source
    for head in abi.ENTRY_POINTS:
        assert head + " {" in source and head + ";\n" in abi.cdef()
    heads = re.findall(r"^static (?:int|void) (k\d+_\w+)\(const gc_ctx \*g\) \{", source, re.M)
    assert len(heads) == 3, heads  # argmax, cross-entropy (can fail: returns int), mean
    assert f"snprintf(g->err, {abi.ERR_BYTES}," in source


def test_no_empty_kernels_and_arrays_named_once():
    """Update ops are not kernels (their writes happen when the step finishes or in
    place); every kernel names each array once, at its top, and uses only that name."""
    with gc.Graph() as g:
        a = gc.variable(np.arange(4, dtype=np.float32), name="a")
        b = gc.variable(np.ones(4, np.float32), name="b")
        x = gc.placeholder((None, 4), name="x")
        s = gc.sum(x * a, axis=0)
        swap = gc.group(gc.assign(a, b), gc.assign(b, a))
    compiled = gc.Session(g, backend="c").compile([s, swap])
    assert [k["kind"] for k in compiled.kernels] == ["sum"]
    source = compiled.source.split("} gc_ctx;")[1]
    for fn in re.findall(r"^static (?:int|void) (?:k\d+_\w+|gc__finish)\(.*?^\}$", source, re.M | re.S):
        decls = re.findall(r"^    \S.* \*(p_\w+) = .*g->(?:feeds|vars|consts|outs|arena)", fn, re.M)
        assert len(decls) == len(set(decls)), fn
        body = fn.split("\n", 1 + len(decls) + fn.count("const int64_t N = g->N;"))[-1]
        assert "g->feeds" not in body and "g->vars" not in body and "g->arena" not in body, fn
    assert "memmove(p_a, " in source and "memmove(p_b, " in source  # the swap, in gc__finish


def test_threading_decided_at_generation_time_when_the_size_is_known():
    with gc.Graph() as g:
        big, small = gc.placeholder((40000,), name="big"), gc.placeholder((8,), name="small")
        batch = gc.placeholder((None, 8), name="batch")
        ys = [gc.exp(big), gc.exp(small), gc.exp(batch)]
    source = gc.Session(g, backend="c").compile(ys).source
    pragmas = re.findall(r"#pragma omp [^\n]*", source.split("} gc_ctx;")[1])
    assert "#pragma omp parallel for simd simdlen(16)" in pragmas  # 40000 elements: always threads
    assert "#pragma omp simd simdlen(16)" in pragmas  # 8 elements: one thread
    # known only when it runs; `parallel:` so that a small batch still runs SIMD (a bare `if`
    # also switches `simd` off: 5x slower elementwise loops below the threshold)
    # (the work counts exp's evaluation: 8 units, and its two arrays: 1)
    assert "#pragma omp parallel for simd simdlen(16) if(parallel: N * 8 * 9 >= 32768)" in pragmas
    assert not [p for p in pragmas if re.search(r"if\(\d+ >= ", p)], pragmas
