/* graphc kernel templates: the type-independent part, pasted once before the typed templates.
 *
 * Holds what every template shares: the includes, the one OpenMP guard, thread-count and
 * scratch helpers, the GEMM's instruction-set choice and tuning knobs, the epilogue hook, the
 * conv/pool shape structs and their window arithmetic, and the NaN-aware first-maximum rule.
 * The typed templates (gemm_kernel.h, gemm.h, conv2d.h, pool2d.h) follow once per element type,
 * after a prelude that defines GC_T and GC_FN (see README.md).
 */
#ifndef GC_COMMON_H
#define GC_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ OpenMP
 * GC_OMP("omp parallel ...") is the pragma with -fopenmp and nothing without (no
 * unknown-pragma warnings); the helpers below are what the kernels ask OpenMP. */
#ifdef _OPENMP
#include <omp.h>
#define GC_OMP(directive) _Pragma(directive)
#else
#define GC_OMP(directive)
#endif

/* Threads a kernel may start: omp_get_max_threads(), or 1 inside a parallel region. */
static inline int gc_max_threads(void) {
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

/* This thread's number inside a parallel region (0 outside one). */
static inline int gc_thread_num(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Non-inline kernel functions are static and may go unused in a generated file. */
#define GC_UNUSED __attribute__((unused))

/* Keeps GCC from turning short copy loops into memcpy/memset calls (their per-call overhead
 * dominates for the 8..64-element runs the im2col packer copies). */
#if defined(__GNUC__) && !defined(__clang__)
#define GC_NO_LIBCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define GC_NO_LIBCALLS
#endif

/* ------------------------------------------------------------------ tuning knobs
 * Define before pasting to override.  The GEMM micro-tile is GC_GEMM_MR rows x 2 SIMD vectors:
 *   AVX-512: 12 x 32 float / 12 x 16 double   (24 zmm accumulators)
 *   AVX2   :  6 x 16 float /  6 x  8 double   (12 ymm accumulators)
 *   other  :  6 x  8 float /  6 x  4 double   (16-byte GCC vectors: SSE2, NEON, ...)
 * GC_GEMM_ISA names the path compiled in.  Cache blocking (elements): the MR x KC panel of
 * op(A) stays in L1 while the KC x NC block of op(B) streams from L2; MC rows of op(A) are
 * packed at a time.  Sized for ~48 KiB L1d / >= 1 MiB L2 per core. */
#if defined(__AVX512F__)
#define GC_GEMM_ISA "avx512"
#define GC_GEMM_VBYTES 64
#define GC_GEMM_MR 12
#elif defined(__AVX2__) && defined(__FMA__)
#define GC_GEMM_ISA "avx2"
#define GC_GEMM_VBYTES 32
#define GC_GEMM_MR 6
#else
#define GC_GEMM_ISA "portable"
#define GC_GEMM_VBYTES 16
#define GC_GEMM_MR 6
#endif
#ifndef GC_SGEMM_KC
#define GC_SGEMM_KC 384
#endif
#ifndef GC_SGEMM_NC
#define GC_SGEMM_NC 512
#endif
#ifndef GC_DGEMM_KC
#define GC_DGEMM_KC 256
#endif
#ifndef GC_DGEMM_NC
#define GC_DGEMM_NC 384
#endif
#ifndef GC_SGEMM_MC
#define GC_SGEMM_MC (GC_GEMM_MR * 12)
#endif
#ifndef GC_DGEMM_MC
#define GC_DGEMM_MC (GC_GEMM_MR * 12)
#endif
/* a GEMM or conv gets one more thread per this many floating-point operations */
#ifndef GC_GEMM_MIN_FLOP_PER_THREAD
#define GC_GEMM_MIN_FLOP_PER_THREAD 1000000.0
#endif
/* pooling runs its planes in parallel above twice this much work (elements touched) */
#ifndef GC_POOL_MIN_WORK_PER_THREAD
#define GC_POOL_MIN_WORK_PER_THREAD 32768
#endif
/* outputs per block of the max-pool backward/select scratch (kept on the stack) */
#ifndef GC_POOL_BLOCK
#define GC_POOL_BLOCK 1024
#endif

/* ------------------------------------------------------------------ transposes */

/* Eight floats, loaded and stored at any float alignment. */
typedef float gc_v8f __attribute__((vector_size(32), aligned(4), may_alias));
typedef int32_t gc_v8i __attribute__((vector_size(32)));

/* dst[k*ldd + r] = src[r*lds + k] for r, k < 8: an 8 x 8 float block transposed in registers
 * (unpack, 64-bit shuffle, 128-bit lane swap: three stages of eight two-input shuffles), for
 * the GEMM's packing of transposed operands (a scalar transpose reads or writes with a
 * stride at every element). */
static inline void gc_transpose8x8f(const float *src, ptrdiff_t lds, float *dst, ptrdiff_t ldd) {
    const gc_v8i lo = {0, 8, 1, 9, 4, 12, 5, 13}, hi = {2, 10, 3, 11, 6, 14, 7, 15};
    const gc_v8i even = {0, 1, 8, 9, 4, 5, 12, 13}, odd = {2, 3, 10, 11, 6, 7, 14, 15};
    const gc_v8i first = {0, 1, 2, 3, 8, 9, 10, 11}, second = {4, 5, 6, 7, 12, 13, 14, 15};
    gc_v8f r[8], t[8], u[8];
    for (int i = 0; i < 8; ++i) r[i] = *(const gc_v8f *)(src + i * lds);
    for (int i = 0; i < 8; i += 2) {
        t[i] = __builtin_shuffle(r[i], r[i + 1], lo);
        t[i + 1] = __builtin_shuffle(r[i], r[i + 1], hi);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = __builtin_shuffle(t[i], t[i + 2], even);
        u[i + 1] = __builtin_shuffle(t[i], t[i + 2], odd);
        u[i + 2] = __builtin_shuffle(t[i + 1], t[i + 3], even);
        u[i + 3] = __builtin_shuffle(t[i + 1], t[i + 3], odd);
    }
    for (int i = 0; i < 4; ++i) {
        *(gc_v8f *)(dst + i * ldd) = __builtin_shuffle(u[i], u[i + 4], first);
        *(gc_v8f *)(dst + (i + 4) * ldd) = __builtin_shuffle(u[i], u[i + 4], second);
    }
}

/* ------------------------------------------------------------------ threads and scratch */

/* Threads worth using for `flop` floating-point operations (1 .. tmax). */
static inline int gc_threads_for(double flop, int tmax) {
    double t = flop / GC_GEMM_MIN_FLOP_PER_THREAD;
    if (t < 1.0) return 1;
    return t < (double)tmax ? (int)t : tmax;
}

/* Start of part `part` of `parts` equal splits of [0, n): floor(n * part / parts), without
 * forming n * part (n may be a 64-bit batch size). */
static inline int64_t gc_split(int64_t n, int part, int parts) {
    return n / parts * part + n % parts * part / parts;
}

/* x rounded up to a multiple of m. */
static inline size_t gc_round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

/* p rounded up to the next 64-byte boundary. */
static inline void *gc_align64(void *p) {
    return (void *)(((uintptr_t)p + 63u) & ~(uintptr_t)63u);
}

/* A kernel's scratch: nt threads, thread t's `per` bytes (a multiple of 64) at base + t*per,
 * 64-byte aligned.  `own` is what the kernel malloc'd (NULL: the caller's workspace). */
typedef struct {
    char *base;
    void *own;
    size_t per;
    int nt;
} gc_scratch;

/* Workspace bytes for `threads` slices of `per` bytes, in memory of any alignment. */
static inline size_t gc_scratch_bytes(int threads, size_t per) {
    return (size_t)threads * gc_round_up(per, 64) + 63;
}

/* Slices the caller's workspace for up to `want` threads of `per` bytes each: as many
 * threads as fit whatever its alignment (so that the count, and with it the results, depend
 * only on ws_bytes); when not even one fits, or ws is NULL, mallocs room for all `want`.
 * Free with free(sc.own). */
static inline gc_scratch gc_scratch_take(int want, size_t per, void *ws, size_t ws_bytes) {
    gc_scratch sc = {NULL, NULL, gc_round_up(per > 0 ? per : 1, 64), want};
    const size_t fit = ws != NULL && ws_bytes > 63 ? (ws_bytes - 63) / sc.per : 0;
    if (fit > 0) {
        sc.base = (char *)gc_align64(ws);
        sc.nt = fit < (size_t)want ? (int)fit : want;
    } else {
        sc.own = malloc(gc_scratch_bytes(want, sc.per));
        sc.base = (char *)gc_align64(sc.own);
    }
    return sc;
}

/* ------------------------------------------------------------------ epilogue hook */
typedef struct gc_epilogue gc_epilogue;
/* Called once per block of final values: the m x n block c (row stride ldc, element type of
 * the GEMM) whose first element is C[i0][j0] of image `image` (0 for a plain matmul).  Every
 * index and size is 64-bit: a matmul's rows are the batch, which may exceed 2**31. */
typedef void (*gc_tile_fn)(const gc_epilogue *e, int64_t image, int64_t i0, int64_t j0, int64_t m,
                           int64_t n, void *c, ptrdiff_t ldc);
struct gc_epilogue {
    gc_tile_fn fn;
    int owns_store;  /* matmul only: 1 = final blocks handed to fn in scratch, never stored
                        to C by the GEMM (C must still be valid memory: partial sums
                        accumulate there when K spans several depth blocks) */
    const void *ctx; /* the caller's context, untouched by the kernels */
};

/* ------------------------------------------------------------------ shapes
 * The batch N is 64-bit.  The other sizes are int: the lowering (graphc/lower/conv.py,
 * pool.py) refuses an image whose per-image sizes and their products (C*H*W, the padded
 * image, C*KH*KW * OH*OW, O*OH*OW ...) reach 2**31, so that per-image index arithmetic in
 * int cannot overflow; everything that crosses images is ptrdiff_t. */
typedef struct {
    int64_t N;
    int C, H, W, O, KH, KW, SH, SW, PH, PW;
} gc_conv_shape; /* x (N, C, H, W), w (O, C, KH, KW) */
typedef struct {
    int64_t N;
    int C, H, W, KH, KW, SH, SW, PH, PW;
} gc_pool_shape; /* x (N, C, H, W) */

/* Output size of a window sliding over `in` elements: floor((in + 2 pad - k) / stride) + 1,
 * 0 when no window fits. */
static inline int gc_window_out(int in, int k, int stride, int pad) {
    int span = in + 2 * pad - k;
    return span < 0 ? 0 : span / stride + 1;
}

/* A 1x1, stride-1, unpadded convolution: a plain GEMM on the image. */
static inline int gc_conv_is_pointwise(const gc_conv_shape *s) {
    return s->KH == 1 && s->KW == 1 && s->SH == 1 && s->SW == 1 && s->PH == 0 && s->PW == 0;
}

/* Output positions [*lo, *hi) along an axis of `in` inputs (out outputs, stride S, padding P)
 * whose window offset b reads a real input: 0 <= o*S + b - P < in. */
static inline void gc_window_valid_range(int in, int out, int S, int P, int b, int *lo, int *hi) {
    int l = P - b > 0 ? (P - b + S - 1) / S : 0;
    int num = in - 1 + P - b;
    int h = num < 0 ? 0 : num / S + 1;
    if (h > out) h = out;
    *lo = l < h ? l : h;
    *hi = h;
}

/* Output positions [*lo, *hi) whose whole window (k inputs) lies inside the input. */
static inline void gc_window_inside(int in, int out, int k, int S, int P, int *lo, int *hi) {
    int first_lo, first_hi, last_lo, last_hi;
    gc_window_valid_range(in, out, S, P, 0, &first_lo, &first_hi);
    gc_window_valid_range(in, out, S, P, k - 1, &last_lo, &last_hi);
    *lo = first_lo;
    *hi = last_hi > first_lo ? last_hi : first_lo;
}

/* Pool window (oh, ow) clipped to the real input: rows [*h0, *h1), columns [*w0, *w1). */
static inline void gc_pool_window(const gc_pool_shape *s, int oh, int ow, int *h0, int *h1,
                                  int *w0, int *w1) {
    int r = oh * s->SH - s->PH, c = ow * s->SW - s->PW;
    *h0 = r > 0 ? r : 0;
    *h1 = r + s->KH < s->H ? r + s->KH : s->H;
    *w0 = c > 0 ? c : 0;
    *w1 = c + s->KW < s->W ? c + s->KW : s->W;
}

/* The NaN-aware first-maximum rule of max pooling, argmax and max reductions, scanning in
 * order: v replaces the best so far when it is strictly greater, or when it is the first NaN
 * (a NaN best is never replaced). */
#define GC_FIRST_MAX_TAKES(v, best) ((v) > (best) || ((v) != (v) && (best) == (best)))

#endif /* GC_COMMON_H */
