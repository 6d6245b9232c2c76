/* graphc kernel template: GEMM (matrix multiply), float and double.
 *
 * C = EPI( alpha * op(A) @ op(B) + beta * C )        all matrices row-major
 *
 *   op(A) is M x K: A[i*lda + k], or A[k*lda + i] when transA != 0 (A is then K x M);
 *   op(B) is K x N: B[k*ldb + j], or B[j*ldb + k] when transB != 0 (B is then N x K);
 *   C is M x N: C[i*ldc + j].  Transposes are read in place (strides), never copied;
 *   the kernel packs blocks of op(A)/op(B) into aligned panel buffers (BLIS/GotoBLAS
 *   scheme) inside the caller's workspace.
 *   beta == 0 means "C is write-only" (C is never read, so NaN/garbage in C is ignored);
 *   alpha == 0 or K == 0 means C = beta * C (A and B are not read).
 *
 * ---------------------------------------------------------------- interface
 *   size_t gc_sgemm_workspace_size(int M, int N, int K);
 *   void   gc_sgemm(int transA, int transB, int M, int N, int K,
 *                   float alpha, const float *A, ptrdiff_t lda,
 *                   const float *B, ptrdiff_t ldb,
 *                   float beta, float *C, ptrdiff_t ldc,
 *                   void *ws, size_t ws_bytes);
 *   size_t gc_sgemm_batched_workspace_size(int batch, int M, int N, int K);
 *   void   gc_sgemm_batched(int batch, int transA, int transB, int M, int N, int K,
 *                   float alpha, const float *A, ptrdiff_t lda, ptrdiff_t strideA,
 *                   const float *B, ptrdiff_t ldb, ptrdiff_t strideB,
 *                   float beta, float *C, ptrdiff_t ldc, ptrdiff_t strideC,
 *                   void *ws, size_t ws_bytes);
 *       matrix b of the batch is A + b*strideA, B + b*strideB, C + b*strideC
 *       (a stride of 0 broadcasts that operand, e.g. shared weights).
 *   void   gc_sgemm_serial(... same as gc_sgemm ...);   one thread, for callers that
 *       already run inside their own parallel region (workspace: gc_sgemm_serial_
 *       workspace_size(M, N, K)).
 *   ... and the same with gc_dgemm* for double.
 *
 * Workspace: the caller owns all scratch memory.  Pass `ws` with `ws_bytes` >= the
 * *_workspace_size(...) value (any alignment; the kernel aligns it to 64 bytes).  The size
 * depends on omp_get_max_threads() at the time of the call; if ws_bytes turns out to be
 * too small for that many threads the kernel uses fewer threads (as many as fit), and if
 * it is too small even for one thread, or ws == NULL, the kernel mallocs (and frees) its
 * own scratch.  The kernels keep no global mutable state, so they are re-entrant and may
 * be called concurrently from several threads with distinct workspaces.
 *
 * Threads: OpenMP (when compiled with -fopenmp) over a 2-D split of C into one tile per
 * thread (each thread packs its own panels, no barriers), only for problems big enough
 * (GC_GEMM_MIN_FLOP_PER_THREAD) and never when already inside a parallel region.  The
 * split depends only on (M, N, K, thread count): results are bit-identical run to run for
 * a given thread count.
 *
 * ---------------------------------------------------------------- fused epilogue
 * Before including this file the generator may define
 *       #define GC_EPILOGUE(i, j, v)   <expression of the element value v at C[i][j]>
 * e.g.  #define GC_EPILOGUE(i, j, v)   ((v) + bias[j] > 0 ? (v) + bias[j] : 0)
 * It is applied to every element of the default gc_sgemm/gc_dgemm exactly once, when the
 * final value of the tile is stored (after alpha/beta).  Default: identity (no pass).
 * To get several differently fused GEMMs in one translation unit, instantiate variants:
 *       #define MY_EPI(i, j, v, ctx)  ((v) + ((const float *)(ctx))[j])
 *       GC_DEFINE_SGEMM(gc_sgemm_bias, MY_EPI)
 *       GC_DEFINE_DGEMM(gc_dgemm_bias, MY_EPI_D)
 * which defines gc_sgemm_bias(), gc_sgemm_bias_serial(), gc_sgemm_bias_batched() (the
 * signatures of gc_sgemm* plus a trailing `const void *ectx`, handed to the epilogue as
 * ctx) and gc_sgemm_bias_workspace_size() etc. (same as gc_sgemm_workspace_size()).
 * (i, j) are the global row/column of C (inside one matrix for the batched form).  The
 * epilogue must be a pure function of (i, j, v, ctx).
 * Each such variant is a whole GEMM for the compiler (about a second of -O3 each), so a
 * generator with many epilogues uses the run-time hook instead: gc_sgemm_hook /
 * gc_dgemm_hook (and _serial, _batched, _workspace_size) take a trailing ectx pointing to
 * a struct that begins like gc_epi_head {gc_epi_fn fn; int owns_store;}, where
 *       typedef void (*gc_epi_fn)(const void *ectx, int i0, int j0, int m, int n,
 *                                 void *c, ptrdiff_t ldc);
 * is called once per block of final values: the m x n block c (row stride ldc) whose
 * first element is C[i0][j0].  With owns_store == 0 the block is already stored in C
 * and the hook rewrites it in place.  With owns_store != 0 the final block is handed to
 * the hook in a scratch tile instead and never written to C by the GEMM: the hook stores
 * what it needs (an optimizer update that only needs the product for its own arithmetic
 * then skips C's memory traffic).  C must still be valid memory: when K spans several
 * depth blocks the partial sums are accumulated there.  One GEMM is compiled however many
 * epilogues use it; the hook's loop over the block vectorizes.
 *
 * ---------------------------------------------------------------- tuning knobs
 * Define before including to override (element counts): GC_SGEMM_KC, GC_SGEMM_MC,
 * GC_SGEMM_NC, GC_DGEMM_KC, GC_DGEMM_MC, GC_DGEMM_NC, GC_GEMM_MIN_FLOP_PER_THREAD.
 * The micro-tile is GC_GEMM_MR rows x (2 SIMD vectors) columns:
 *   AVX-512: 12 x 32 float / 12 x 16 double   (24 zmm accumulators)
 *   AVX2   :  6 x 16 float /  6 x  8 double   (12 ymm accumulators)
 *   other  :  6 x  8 float /  6 x  4 double   (16-byte GCC vectors: SSE2, NEON, ...)
 * GC_GEMM_ISA is a string naming the path compiled in.
 *
 * Requires GCC or Clang (vector extensions).  Compile with -O3 -march=native -fopenmp.
 */
#ifndef GC_GEMM_H
#define GC_GEMM_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ------------------------------------------------------------------ ISA selection */
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

typedef float gc_vsf __attribute__((vector_size(GC_GEMM_VBYTES)));
typedef double gc_vdf __attribute__((vector_size(GC_GEMM_VBYTES)));
/* unaligned views (for C, which has arbitrary alignment) */
typedef float gc_vsf_u __attribute__((vector_size(GC_GEMM_VBYTES), aligned(4), may_alias));
typedef double gc_vdf_u __attribute__((vector_size(GC_GEMM_VBYTES), aligned(8), may_alias));

#define GC_SGEMM_NR (2 * GC_GEMM_VBYTES / 4)
#define GC_DGEMM_NR (2 * GC_GEMM_VBYTES / 8)

/* Cache blocking (elements).  KC: depth of a block; the MR x KC A micro-panel stays in L1
 * while the KC x NC block of B (in NR-wide micro-panels) streams from L2; MC rows of A are
 * packed at a time.  Defaults sized for ~48 KiB L1d / >= 1 MiB L2 per core. */
#ifndef GC_SGEMM_KC
#define GC_SGEMM_KC 384
#endif
#ifndef GC_SGEMM_MC
#define GC_SGEMM_MC (GC_GEMM_MR * 12)
#endif
#ifndef GC_SGEMM_NC
#define GC_SGEMM_NC 512
#endif
#ifndef GC_DGEMM_KC
#define GC_DGEMM_KC 256
#endif
#ifndef GC_DGEMM_MC
#define GC_DGEMM_MC (GC_GEMM_MR * 12)
#endif
#ifndef GC_DGEMM_NC
#define GC_DGEMM_NC 384
#endif
#ifndef GC_GEMM_MIN_FLOP_PER_THREAD
#define GC_GEMM_MIN_FLOP_PER_THREAD 1000000.0
#endif

/* OpenMP pragmas only when compiling with -fopenmp (no unknown-pragma warnings without) */
#ifndef GC__OMP
#ifdef _OPENMP
#define GC__OMP(x) _Pragma(x)
#else
#define GC__OMP(x)
#endif
#endif

/* every function here is static; unused ones must not warn in generated code */
#define GC__FN static __attribute__((unused))

/* The run-time epilogue hook (HAS_EPI == 2, see the header comment). */
typedef void (*gc_epi_fn)(const void *ectx, int i0, int j0, int m, int n, void *c, ptrdiff_t ldc);
typedef struct {
    gc_epi_fn fn;
    int owns_store; /* the hook gets final blocks in scratch and stores them itself */
} gc_epi_head;
#define GC__EPI_HOOK(ectx, i0, j0, m, n, c, ldc)                                                   \
    (((const gc_epi_head *)(ectx))->fn)((ectx), (i0), (j0), (m), (n), (void *)(c), (ldc))
#define GC__EPI_OWNS_STORE(ectx) (((const gc_epi_head *)(ectx))->owns_store)

#if defined(__GNUC__) && !defined(__clang__)
#define GC__UNROLL4 _Pragma("GCC unroll 4")
#else
#define GC__UNROLL4
#endif

/* ------------------------------------------------------------------ common helpers */
GC__FN inline int gc_max_threads(void) {
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

GC__FN inline int gc_thread_num(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

GC__FN inline void *gc_align64(void *p) {
    return (void *)(((uintptr_t)p + 63u) & ~(uintptr_t)63u);
}

GC__FN inline size_t gc_round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

/* Threads worth using for `flop` floating-point operations (<= `tmax`). */
GC__FN inline int gc__threads_for(double flop, int tmax) {
    double t = flop / GC_GEMM_MIN_FLOP_PER_THREAD;
    if (t < 1.0) return 1;
    return t < (double)tmax ? (int)t : tmax;
}

/* Number of threads that fit into `ws_bytes` of workspace at `per_thread` bytes each
 * (0 when even one does not fit, i.e. the kernel must allocate). */
GC__FN inline int gc__threads_fitting(int want, size_t per_thread, const void *ws,
                                      size_t ws_bytes) {
    if (ws == NULL) return 0;
    if (per_thread == 0) return want;
    size_t fit = ws_bytes / per_thread;
    return fit >= (size_t)want ? want : (int)fit;
}

/* Split an M x N output among T threads as a tm x tn grid (tm * tn == T) of MR/NR-aligned
 * tiles, minimising the largest tile's micro-kernel work plus its packing: each thread packs
 * its rows of op(A) and its columns of op(B) (rows*K + K*cols elements), and packing one
 * element (a strided load and a store) costs about as much as 8 multiply-adds of the
 * micro-kernel.  So a tall product (the weight gradient x^T g: M = 784, N = 256) splits
 * rows and a short one (a batch of 64 times the weights) splits columns.  A row split also
 * keeps two threads from writing neighbouring halves of the same rows, which measured 2-4x
 * slower for optimizer-update epilogues (GEMM 784x256x64 + momentum, 2 cores). */
GC__FN inline void gc__gemm_grid(int M, int N, int K, int mr, int nr, int T, int *tm_out,
                                 int *tn_out) {
    long pm = (M + mr - 1) / mr, pn = (N + nr - 1) / nr;
    double best = -1.0;
    int btm = 1;
    for (int tm = 1; tm <= T; ++tm) {
        if (T % tm) continue;
        int tn = T / tm;
        if (tm > pm || tn > pn) continue;
        double rows = (double)((pm + tm - 1) / tm) * mr, cols = (double)((pn + tn - 1) / tn) * nr;
        double cost = rows * cols * (double)K + 8.0 * (rows + cols) * (double)K;
        if (best < 0 || cost < best) {
            best = cost;
            btm = tm;
        }
    }
    if (best < 0) { /* more threads than panels both ways: rows only */
        btm = T;
    }
    *tm_out = btm;
    *tn_out = T / btm;
}

/* ------------------------------------------------------------------ micro-kernel
 * c[0:MR, 0:NR] (row stride ldc) = alpha * sum_k ap[k*MR + i] * bp[k*NR + j]
 *                                  (+ beta * c when beta != 0)
 * ap, bp: packed, 64-byte aligned.  Accumulators: MR x 2 vectors kept in registers. */
#if GC_GEMM_MR == 12
#define GC__REP_MR(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define GC__REP_THIRD(X) X(0) X(1) X(2) X(3)
#define GC__REP_TWO_THIRDS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#elif GC_GEMM_MR == 6
#define GC__REP_MR(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define GC__REP_THIRD(X) X(0) X(1)
#define GC__REP_TWO_THIRDS(X) X(0) X(1) X(2) X(3)
#else
#error "unsupported GC_GEMM_MR"
#endif

#define GC__UKR_DECL(i) gc__v c##i##_0 = zero_, c##i##_1 = zero_;
#define GC__UKR_FMA(i)                                                                             \
    {                                                                                              \
        gc__t a_ = ap[i];                                                                          \
        c##i##_0 += a_ * b0_;                                                                      \
        c##i##_1 += a_ * b1_;                                                                      \
    }
#define GC__UKR_PREF(i) __builtin_prefetch(c + (i) * ldc, 1, 3);                                   \
    __builtin_prefetch(c + (i) * ldc + GC__VL * 2 - 1, 1, 3);
#define GC__UKR_ST0(i)                                                                             \
    {                                                                                              \
        gc__vu *cp_ = (gc__vu *)(c + (i) * ldc);                                                   \
        cp_[0] = alpha * c##i##_0;                                                                 \
        cp_[1] = alpha * c##i##_1;                                                                 \
    }
#define GC__UKR_ST1(i)                                                                             \
    {                                                                                              \
        gc__vu *cp_ = (gc__vu *)(c + (i) * ldc);                                                   \
        cp_[0] = alpha * c##i##_0 + beta * cp_[0];                                                 \
        cp_[1] = alpha * c##i##_1 + beta * cp_[1];                                                 \
    }

#define GC__DEFINE_UKR(NAME, QUAL, T, V, VU, REP)                                                  \
    GC__FN QUAL void NAME(long kc, const T *__restrict ap, const T *__restrict bp,                 \
                            T *__restrict c, ptrdiff_t ldc, T alpha, T beta) {                     \
        typedef V gc__v;                                                                           \
        typedef VU gc__vu;                                                                         \
        typedef T gc__t;                                                                           \
        enum { GC__VL = (int)(sizeof(V) / sizeof(T)) };                                            \
        const gc__v zero_ = {0};                                                                   \
        REP(GC__UKR_DECL)                                                                          \
        REP(GC__UKR_PREF)                                                                          \
        ap = (const T *)__builtin_assume_aligned(ap, 64);                                          \
        bp = (const T *)__builtin_assume_aligned(bp, 64);                                          \
        GC__UNROLL4                                                                                \
        for (long k = 0; k < kc; ++k) {                                                            \
            gc__v b0_ = ((const gc__v *)bp)[0];                                                    \
            gc__v b1_ = ((const gc__v *)bp)[1];                                                    \
            REP(GC__UKR_FMA)                                                                       \
            ap += GC_GEMM_MR;                                                                      \
            bp += 2 * GC__VL;                                                                      \
        }                                                                                          \
        if (beta == (T)0) {                                                                        \
            REP(GC__UKR_ST0)                                                                       \
        } else {                                                                                   \
            REP(GC__UKR_ST1)                                                                       \
        }                                                                                          \
    }

GC__DEFINE_UKR(gc__sgemm_ukr, inline, float, gc_vsf, gc_vsf_u, GC__REP_MR)
GC__DEFINE_UKR(gc__dgemm_ukr, inline, double, gc_vdf, gc_vdf_u, GC__REP_MR)
/* Edge panels (M not a multiple of MR: e.g. the last 4 rows of a batch of 64) run a kernel
 * with only the first MR/3 or 2*MR/3 rows of accumulators: same packed layout (the panel
 * stride stays MR), a third or two thirds of the FMAs.  Not inlined: compiled once instead
 * of into every GEMM driver (inlined they cost ~0.6 s of -O3 per generated library). */
#define GC__NOINLINE __attribute__((noinline))
GC__DEFINE_UKR(gc__sgemm_ukr_third, GC__NOINLINE, float, gc_vsf, gc_vsf_u, GC__REP_THIRD)
GC__DEFINE_UKR(gc__dgemm_ukr_third, GC__NOINLINE, double, gc_vdf, gc_vdf_u, GC__REP_THIRD)
GC__DEFINE_UKR(gc__sgemm_ukr_two_thirds, GC__NOINLINE, float, gc_vsf, gc_vsf_u, GC__REP_TWO_THIRDS)
GC__DEFINE_UKR(gc__dgemm_ukr_two_thirds, GC__NOINLINE, double, gc_vdf, gc_vdf_u, GC__REP_TWO_THIRDS)
/* tmp[0:mr, 0:NR] = alpha * panel product, with the smallest kernel that covers mr rows */
#define GC__EDGE_UKR(p, mr, kc, apan, bpan, tmp, NR, alpha, T)                                     \
    do {                                                                                           \
        if ((mr) <= GC_GEMM_MR / 3)                                                                \
            gc__##p##gemm_ukr_third(kc, apan, bpan, tmp, NR, alpha, (T)0);                         \
        else if ((mr) <= 2 * GC_GEMM_MR / 3)                                                       \
            gc__##p##gemm_ukr_two_thirds(kc, apan, bpan, tmp, NR, alpha, (T)0);                    \
        else                                                                                       \
            gc__##p##gemm_ukr(kc, apan, bpan, tmp, NR, alpha, (T)0);                               \
    } while (0)

/* ------------------------------------------------------------------ packing
 * pack_a: rows [0, mc) x depth [0, kc) of op(A) (A already offset to the block origin)
 *         -> ceil(mc/MR) panels, panel p at ap + p*MR*kc, element (i, k) at [k*MR + i];
 *         rows past mc are zero.
 * pack_b: depth [0, kc) x columns [0, nc) of op(B) -> ceil(nc/NR) panels, panel q at
 *         bp + q*NR*kc, element (k, j) at [k*NR + j]; columns past nc are zero. */
#define GC__DEFINE_PACK(p, T, NR)                                                                  \
    GC__FN inline void gc__##p##pack_a(int trans, int mc, int kc, const T *__restrict a,           \
                                       ptrdiff_t lda, T *__restrict ap) {                          \
        enum { MR = GC_GEMM_MR };                                                                  \
        for (int i0 = 0; i0 < mc; i0 += MR) {                                                      \
            int mr = mc - i0 < MR ? mc - i0 : MR;                                                  \
            T *__restrict dst = ap + (size_t)i0 * kc;                                              \
            if (trans) { /* op(A)[i][k] = a[k*lda + i]: rows of MR contiguous values */            \
                const T *src = a + i0;                                                             \
                if (mr == MR) {                                                                    \
                    for (int k = 0; k < kc; ++k)                                                   \
                        for (int i = 0; i < MR; ++i) dst[k * MR + i] = src[k * lda + i];           \
                } else {                                                                           \
                    for (int k = 0; k < kc; ++k)                                                   \
                        for (int i = 0; i < MR; ++i)                                               \
                            dst[k * MR + i] = i < mr ? src[k * lda + i] : (T)0;                    \
                }                                                                                  \
            } else { /* op(A)[i][k] = a[i*lda + k]: transpose MR rows in k-chunks */               \
                const T *src = a + (ptrdiff_t)i0 * lda;                                            \
                if (mr == MR) {                                                                    \
                    int k = 0;                                                                     \
                    for (; k + 8 <= kc; k += 8)                                                    \
                        for (int i = 0; i < MR; ++i)                                               \
                            for (int kk = 0; kk < 8; ++kk)                                         \
                                dst[(k + kk) * MR + i] = src[i * lda + k + kk];                    \
                    for (; k < kc; ++k)                                                            \
                        for (int i = 0; i < MR; ++i) dst[k * MR + i] = src[i * lda + k];           \
                } else {                                                                           \
                    for (int k = 0; k < kc; ++k)                                                   \
                        for (int i = 0; i < MR; ++i)                                               \
                            dst[k * MR + i] = i < mr ? src[i * lda + k] : (T)0;                    \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    GC__FN inline void gc__##p##pack_b(int trans, int kc, int nc, const T *__restrict b,           \
                                       ptrdiff_t ldb, T *__restrict bp) {                          \
        for (int j0 = 0; j0 < nc; j0 += NR) {                                                      \
            int nr = nc - j0 < NR ? nc - j0 : NR;                                                  \
            T *__restrict dst = bp + (size_t)j0 * kc;                                              \
            if (!trans) { /* op(B)[k][j] = b[k*ldb + j]: contiguous rows */                        \
                const T *src = b + j0;                                                             \
                if (nr == NR) {                                                                    \
                    for (int k = 0; k < kc; ++k)                                                   \
                        for (int j = 0; j < NR; ++j) dst[k * NR + j] = src[k * ldb + j];           \
                } else {                                                                           \
                    for (int k = 0; k < kc; ++k)                                                   \
                        for (int j = 0; j < NR; ++j)                                               \
                            dst[k * NR + j] = j < nr ? src[k * ldb + j] : (T)0;                    \
                }                                                                                  \
            } else { /* op(B)[k][j] = b[j*ldb + k] */                                              \
                const T *src = b + (ptrdiff_t)j0 * ldb;                                            \
                if (nr == NR) {                                                                    \
                    int k = 0;                                                                     \
                    for (; k + 8 <= kc; k += 8)                                                    \
                        for (int j = 0; j < NR; ++j)                                               \
                            for (int kk = 0; kk < 8; ++kk)                                         \
                                dst[(k + kk) * NR + j] = src[j * ldb + k + kk];                    \
                    for (; k < kc; ++k)                                                            \
                        for (int j = 0; j < NR; ++j) dst[k * NR + j] = src[j * ldb + k];           \
                } else {                                                                           \
                    for (int k = 0; k < kc; ++k)                                                   \
                        for (int j = 0; j < NR; ++j)                                               \
                            dst[k * NR + j] = j < nr ? src[j * ldb + k] : (T)0;                    \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

GC__DEFINE_PACK(s, float, GC_SGEMM_NR)
GC__DEFINE_PACK(d, double, GC_DGEMM_NR)

/* ------------------------------------------------------------------ drivers
 * GC__DEFINE_GEMM_IMPL(NAME, p, P, T, HAS_EPI, EPI, PACKB)   (p/P: s/S or d/D) defines
 *   NAME_serial_workspace_size(M, N, K)       bytes of scratch for one thread
 *   NAME_serial_at(..., ws, i_off, j_off, ectx, bctx)
 *                     one thread; ws: >= NAME_serial_workspace_size bytes (any alignment);
 *                     (i_off, j_off): global position of this C block (for EPI/PACKB)
 *   NAME_threads(M, N, K), NAME_workspace_size(M, N, K)
 *   NAME_par(..., ws, ws_bytes, ectx, bctx)   OpenMP 2-D split of C, one tile per thread
 * EPI(i, j, v, ectx) is applied to each final element when HAS_EPI is 1; with HAS_EPI 2 the
 * run-time hook in ectx is called per stored block instead (GC__EPI_HOOK; EPI unused).
 * PACKB(p, bctx, tb, pc, jg, kc, nc, B, ldb, bp) packs the kc x nc block of op(B) whose
 * origin is row pc, local column pointer B (already offset to this C block's first column
 * plus jc), global column jg, into NR-wide panels at bp (see pack_b).  GC__PACKB_STD reads
 * B through its strides; conv2d.h plugs in an implicit-im2col packer that reads the image.
 */
#define GC__EPI_NONE(i, j, v, ctx) (v)
#define GC__PACKB_STD(p, bctx, tb, pc, jg, kc, nc, B, ldb, bp)                                     \
    gc__##p##pack_b(tb, kc, nc, (tb) ? (B) + (pc) : (B) + (ptrdiff_t)(pc) * (ldb), ldb, bp)

#define GC__DEFINE_GEMM_IMPL(NAME, p, P, T, HAS_EPI, EPI, PACKB)                                   \
    GC__FN inline size_t NAME##_serial_workspace_size(int M, int N, int K) {                       \
        enum { MR = GC_GEMM_MR, NR = GC_##P##GEMM_NR };                                            \
        size_t kc = K < GC_##P##GEMM_KC ? (size_t)(K > 0 ? K : 1) : GC_##P##GEMM_KC;               \
        size_t nc = N < GC_##P##GEMM_NC ? (size_t)(N > 0 ? N : 1) : GC_##P##GEMM_NC;               \
        size_t mc = M < GC_##P##GEMM_MC ? (size_t)(M > 0 ? M : 1) : GC_##P##GEMM_MC;               \
        return gc_round_up(sizeof(T) * (kc * gc_round_up(nc, NR) + kc * gc_round_up(mc, MR)),      \
                           64) + 2 * 64;                                                           \
    }                                                                                              \
    GC__FN void NAME##_serial_at(int ta, int tb, int M, int N, int K, T alpha, const T *A,         \
                                 ptrdiff_t lda, const T *B, ptrdiff_t ldb, T beta, T *C,           \
                                 ptrdiff_t ldc, void *ws, int i_off, int j_off,                    \
                                 const void *ectx, const void *bctx) {                             \
        enum { MR = GC_GEMM_MR, NR = GC_##P##GEMM_NR };                                            \
        enum { KC = GC_##P##GEMM_KC, MC = GC_##P##GEMM_MC, NC = GC_##P##GEMM_NC };                 \
        (void)ectx; (void)bctx; (void)i_off; (void)j_off;                                          \
        if (M <= 0 || N <= 0) return;                                                              \
        if (K <= 0 || alpha == (T)0) {                                                             \
            for (int i = 0; i < M; ++i) {                                                          \
                T *c = C + (ptrdiff_t)i * ldc;                                                     \
                if (beta == (T)0) {                                                                \
                    for (int j = 0; j < N; ++j) c[j] = (T)0;                                       \
                } else if (beta != (T)1) {                                                         \
                    for (int j = 0; j < N; ++j) c[j] *= beta;                                      \
                }                                                                                  \
                if (HAS_EPI == 2)                                                                  \
                    GC__EPI_HOOK(ectx, i_off + i, j_off, 1, N, c, ldc);                            \
                else if (HAS_EPI)                                                                  \
                    for (int j = 0; j < N; ++j) c[j] = EPI(i_off + i, j_off + j, c[j], ectx);      \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        int kcmax = K < KC ? K : KC, ncmax = N < NC ? N : NC;                                      \
        T *bp = (T *)gc_align64(ws);                                                               \
        T *ap = (T *)gc_align64(bp + (size_t)kcmax * gc_round_up((size_t)ncmax, NR));              \
        T tmp[MR * NR] __attribute__((aligned(64)));                                               \
        const int owned = HAS_EPI == 2 && GC__EPI_OWNS_STORE(ectx);                                \
        for (int jc = 0; jc < N; jc += NC) {                                                       \
            int nc = N - jc < NC ? N - jc : NC;                                                    \
            const T *bj = B ? (tb ? B + (ptrdiff_t)jc * ldb : B + jc) : NULL;                      \
            (void)bj;                                                                              \
            for (int pc = 0; pc < K; pc += KC) {                                                   \
                int kc = K - pc < KC ? K - pc : KC;                                                \
                T beff = pc == 0 ? beta : (T)1; /* later K blocks accumulate */                    \
                int last = pc + kc >= K;                                                           \
                PACKB(p, bctx, tb, pc, j_off + jc, kc, nc, bj, ldb, bp);                           \
                for (int ic = 0; ic < M; ic += MC) {                                               \
                    int mc = M - ic < MC ? M - ic : MC;                                            \
                    gc__##p##pack_a(ta, mc, kc,                                                    \
                                    ta ? A + (ptrdiff_t)pc * lda + ic                              \
                                       : A + (ptrdiff_t)ic * lda + pc,                             \
                                    lda, ap);                                                      \
                    for (int ir = 0; ir < mc; ir += MR) {                                          \
                        int mr = mc - ir < MR ? mc - ir : MR;                                      \
                        const T *apan = ap + (size_t)ir * kc;                                      \
                        for (int jr = 0; jr < nc; jr += NR) {                                      \
                            int nr = nc - jr < NR ? nc - jr : NR;                                  \
                            const T *bpan = bp + (size_t)jr * kc;                                  \
                            T *c = C + (ptrdiff_t)(ic + ir) * ldc + jc + jr;                       \
                            if (last && owned) { /* final block to the hook (owns_store) */        \
                                GC__EDGE_UKR(p, mr, kc, apan, bpan, tmp, NR, alpha, T);            \
                                if (beff != (T)0)                                                  \
                                    for (int i = 0; i < mr; ++i)                                   \
                                        for (int j = 0; j < nr; ++j)                               \
                                            tmp[i * NR + j] += beff * c[(ptrdiff_t)i * ldc + j];   \
                                GC__EPI_HOOK(ectx, i_off + ic + ir, j_off + jc + jr, mr, nr, tmp,  \
                                             NR);                                                  \
                                continue;                                                          \
                            }                                                                      \
                            if (mr == MR && nr == NR) {                                            \
                                gc__##p##gemm_ukr(kc, apan, bpan, c, ldc, alpha, beff);            \
                            } else { /* edge tile: compute in tmp, merge the valid part */         \
                                GC__EDGE_UKR(p, mr, kc, apan, bpan, tmp, NR, alpha, T);            \
                                for (int i = 0; i < mr; ++i) {                                     \
                                    T *cr = c + (ptrdiff_t)i * ldc;                                \
                                    if (beff == (T)0)                                              \
                                        for (int j = 0; j < nr; ++j) cr[j] = tmp[i * NR + j];      \
                                    else                                                           \
                                        for (int j = 0; j < nr; ++j)                               \
                                            cr[j] = tmp[i * NR + j] + beff * cr[j];                \
                                }                                                                  \
                            }                                                                      \
                            if (HAS_EPI == 2 && last) {                                            \
                                GC__EPI_HOOK(ectx, i_off + ic + ir, j_off + jc + jr, mr, nr, c,    \
                                             ldc);                                                 \
                            } else if (HAS_EPI && last) {                                          \
                                for (int i = 0; i < mr; ++i) {                                     \
                                    int gi = i_off + ic + ir + i, gj = j_off + jc + jr;            \
                                    T *cr = c + (ptrdiff_t)i * ldc;                                \
                                    (void)gi; (void)gj;                                            \
                                    for (int j = 0; j < nr; ++j)                                   \
                                        cr[j] = EPI(gi, gj + j, cr[j], ectx);                      \
                                }                                                                  \
                            }                                                                      \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    GC__FN inline int NAME##_threads(int M, int N, int K) {                                        \
        return gc__threads_for(2.0 * M * N * (K > 0 ? K : 1), gc_max_threads());                   \
    }                                                                                              \
    GC__FN inline size_t NAME##_workspace_size(int M, int N, int K) {                              \
        return (size_t)NAME##_threads(M, N, K) * NAME##_serial_workspace_size(M, N, K);            \
    }                                                                                              \
    GC__FN void NAME##_par(int ta, int tb, int M, int N, int K, T alpha, const T *A,               \
                           ptrdiff_t lda, const T *B, ptrdiff_t ldb, T beta, T *C,                 \
                           ptrdiff_t ldc, void *ws, size_t ws_bytes, const void *ectx,             \
                           const void *bctx) {                                                     \
        enum { MR = GC_GEMM_MR, NR = GC_##P##GEMM_NR };                                            \
        if (M <= 0 || N <= 0) return;                                                              \
        size_t per = NAME##_serial_workspace_size(M, N, K);                                        \
        int nt = NAME##_threads(M, N, K);                                                          \
        if (K <= 0 || alpha == (T)0) nt = 1;                                                       \
        int fit = gc__threads_fitting(nt, per, ws, ws_bytes);                                      \
        void *own = NULL;                                                                          \
        if (fit == 0) {                                                                            \
            ws = own = malloc(per * (size_t)nt);                                                   \
        } else {                                                                                   \
            nt = fit;                                                                              \
        }                                                                                          \
        if (nt <= 1) {                                                                             \
            NAME##_serial_at(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ws, 0, 0,       \
                             ectx, bctx);                                                          \
        } else {                                                                                   \
            int tm, tn;                                                                            \
            gc__gemm_grid(M, N, K, MR, NR, nt, &tm, &tn);                                          \
            long pm = (M + MR - 1) / MR, pn = (N + NR - 1) / NR;                                   \
            GC__OMP("omp parallel num_threads(nt)") {                                              \
                int t = gc_thread_num();                                                           \
                if (t < tm * tn) {                                                                 \
                    int a = t / tn, b = t % tn;                                                    \
                    int m0 = (int)(pm * a / tm) * MR, m1 = (int)(pm * (a + 1) / tm) * MR;          \
                    int n0 = (int)(pn * b / tn) * NR, n1 = (int)(pn * (b + 1) / tn) * NR;          \
                    if (m1 > M) m1 = M;                                                            \
                    if (n1 > N) n1 = N;                                                            \
                    const T *Bt = B ? (tb ? B + (ptrdiff_t)n0 * ldb : B + n0) : NULL;              \
                    if (m1 > m0 && n1 > n0)                                                        \
                        NAME##_serial_at(ta, tb, m1 - m0, n1 - n0, K, alpha,                       \
                                         ta ? A + m0 : A + (ptrdiff_t)m0 * lda, lda, Bt, ldb,      \
                                         beta, C + (ptrdiff_t)m0 * ldc + n0, ldc,                  \
                                         (char *)ws + per * (size_t)t, m0, n0, ectx, bctx);        \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        free(own);                                                                                 \
    }

/* Public wrappers around an IMPL with the standard packer.  EXTRA is empty for the default
 * gc_sgemm/gc_dgemm, or `, const void *ectx` for GC_DEFINE_SGEMM/DGEMM variants (ECTX
 * names what is handed to the epilogue). */
#define GC__DEFINE_GEMM_PUBLIC(NAME, IMPL, T, EXTRA, ECTX)                                         \
    GC__FN inline size_t NAME##_workspace_size(int M, int N, int K) {                              \
        return IMPL##_workspace_size(M, N, K);                                                     \
    }                                                                                              \
    GC__FN inline size_t NAME##_serial_workspace_size(int M, int N, int K) {                       \
        return IMPL##_serial_workspace_size(M, N, K);                                              \
    }                                                                                              \
    GC__FN inline void NAME(int transA, int transB, int M, int N, int K, T alpha, const T *A,      \
                            ptrdiff_t lda, const T *B, ptrdiff_t ldb, T beta, T *C,                \
                            ptrdiff_t ldc, void *ws, size_t ws_bytes EXTRA) {                      \
        IMPL##_par(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ws, ws_bytes,     \
                   ECTX, NULL);                                                                    \
    }                                                                                              \
    GC__FN inline void NAME##_serial(int transA, int transB, int M, int N, int K, T alpha,         \
                                     const T *A, ptrdiff_t lda, const T *B, ptrdiff_t ldb,         \
                                     T beta, T *C, ptrdiff_t ldc, void *ws,                        \
                                     size_t ws_bytes EXTRA) {                                      \
        size_t need = IMPL##_serial_workspace_size(M, N, K);                                       \
        void *own = NULL;                                                                          \
        if (ws == NULL || ws_bytes < need) ws = own = malloc(need);                                \
        IMPL##_serial_at(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ws, 0,      \
                         0, ECTX, NULL);                                                           \
        free(own);                                                                                 \
    }                                                                                              \
    GC__FN inline size_t NAME##_batched_workspace_size(int batch, int M, int N, int K) {           \
        int nt = gc_max_threads();                                                                 \
        if (batch < nt) return IMPL##_workspace_size(M, N, K);                                     \
        return (size_t)nt * IMPL##_serial_workspace_size(M, N, K);                                 \
    }                                                                                              \
    GC__FN void NAME##_batched(int batch, int transA, int transB, int M, int N, int K,             \
                               T alpha, const T *A, ptrdiff_t lda, ptrdiff_t strideA,              \
                               const T *B, ptrdiff_t ldb, ptrdiff_t strideB, T beta, T *C,         \
                               ptrdiff_t ldc, ptrdiff_t strideC, void *ws,                         \
                               size_t ws_bytes EXTRA) {                                            \
        if (batch <= 0 || M <= 0 || N <= 0) return;                                                \
        int nt = gc_max_threads();                                                                 \
        if (batch < nt) { /* few matrices: parallel inside each */                                 \
            for (int b = 0; b < batch; ++b)                                                        \
                IMPL##_par(transA, transB, M, N, K, alpha, A + b * strideA, lda,                   \
                           B + b * strideB, ldb, beta, C + b * strideC, ldc, ws, ws_bytes,         \
                           ECTX, NULL);                                                            \
            return;                                                                                \
        }                                                                                          \
        size_t per = IMPL##_serial_workspace_size(M, N, K);                                        \
        int want = gc__threads_for(2.0 * batch * M * N * (K > 0 ? K : 1), nt);                     \
        int fit = gc__threads_fitting(want, per, ws, ws_bytes);                                    \
        void *own = NULL;                                                                          \
        if (fit == 0) {                                                                            \
            ws = own = malloc(per * (size_t)want);                                                 \
            fit = want;                                                                            \
        }                                                                                          \
        nt = fit;                                                                                  \
        GC__OMP("omp parallel for num_threads(nt) schedule(static)")                               \
        for (int b = 0; b < batch; ++b)                                                            \
            IMPL##_serial_at(transA, transB, M, N, K, alpha, A + b * strideA, lda,                 \
                             B + b * strideB, ldb, beta, C + b * strideC, ldc,                     \
                             (char *)ws + per * (size_t)gc_thread_num(), 0, 0, ECTX, NULL);        \
        free(own);                                                                                 \
    }

#define GC__COMMA_ECTX , const void *ectx
#define GC__NO_EXTRA

/* Public instantiation macros for fused variants (see the header comment). */
#define GC_DEFINE_SGEMM(NAME, EPI)                                                                 \
    GC__DEFINE_GEMM_IMPL(NAME##__impl, s, S, float, 1, EPI, GC__PACKB_STD)                         \
    GC__DEFINE_GEMM_PUBLIC(NAME, NAME##__impl, float, GC__COMMA_ECTX, ectx)
#define GC_DEFINE_DGEMM(NAME, EPI)                                                                 \
    GC__DEFINE_GEMM_IMPL(NAME##__impl, d, D, double, 1, EPI, GC__PACKB_STD)                        \
    GC__DEFINE_GEMM_PUBLIC(NAME, NAME##__impl, double, GC__COMMA_ECTX, ectx)

/* The default gc_sgemm / gc_dgemm (optionally fused with GC_EPILOGUE(i, j, v)). */
#ifdef GC_EPILOGUE
#define GC__EPI_DEFAULT(i, j, v, ctx) GC_EPILOGUE(i, j, v)
#define GC__HAS_EPI_DEFAULT 1
#else
#define GC__EPI_DEFAULT(i, j, v, ctx) (v)
#define GC__HAS_EPI_DEFAULT 0
#endif
GC__DEFINE_GEMM_IMPL(gc__sgemm_x, s, S, float, GC__HAS_EPI_DEFAULT, GC__EPI_DEFAULT,
                     GC__PACKB_STD)
GC__DEFINE_GEMM_IMPL(gc__dgemm_x, d, D, double, GC__HAS_EPI_DEFAULT, GC__EPI_DEFAULT,
                     GC__PACKB_STD)
GC__DEFINE_GEMM_PUBLIC(gc_sgemm, gc__sgemm_x, float, GC__NO_EXTRA, NULL)
GC__DEFINE_GEMM_PUBLIC(gc_dgemm, gc__dgemm_x, double, GC__NO_EXTRA, NULL)
/* the run-time hook variants (one compiled GEMM for every epilogue) */
GC__DEFINE_GEMM_IMPL(gc__sgemm_hook, s, S, float, 2, GC__EPI_NONE, GC__PACKB_STD)
GC__DEFINE_GEMM_IMPL(gc__dgemm_hook, d, D, double, 2, GC__EPI_NONE, GC__PACKB_STD)
GC__DEFINE_GEMM_PUBLIC(gc_sgemm_hook, gc__sgemm_hook, float, GC__COMMA_ECTX, ectx)
GC__DEFINE_GEMM_PUBLIC(gc_dgemm_hook, gc__dgemm_hook, double, GC__COMMA_ECTX, ectx)
/* plain (never fused) versions for other kernels (conv2d.h) whatever GC_EPILOGUE is */
GC__DEFINE_GEMM_IMPL(gc__sgemm_plain, s, S, float, 0, GC__EPI_NONE, GC__PACKB_STD)
GC__DEFINE_GEMM_IMPL(gc__dgemm_plain, d, D, double, 0, GC__EPI_NONE, GC__PACKB_STD)

#endif /* GC_GEMM_H */
