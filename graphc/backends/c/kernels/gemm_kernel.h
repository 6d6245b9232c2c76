/* graphc kernel template (typed: GC_T, GC_FN): the GEMM's micro-kernels and packing routines.
 *
 * Part of the "gemm" template, pasted before gemm.h (the drivers).  BLIS/GotoBLAS scheme:
 * blocks of op(A) and op(B) are packed into 64-byte aligned panels, then a register-blocked
 * micro-kernel multiplies one MR-row panel of A by one NR-column panel of B.
 *   packed A: ceil(mc/MR) panels, panel p at ap + p*MR*kc, element (i, k) at [k*MR + i];
 *   packed B: ceil(nc/NR) panels, panel q at bp + q*NR*kc, element (k, j) at [k*NR + j];
 *   rows / columns past the block's edge are zero in the panels.
 */

/* SIMD vector of GC_T (aligned, for the packed panels) and an unaligned view (for C). */
typedef GC_T GC_FN(_vec) __attribute__((vector_size(GC_GEMM_VBYTES)));
typedef GC_T GC_FN(_vec_u) __attribute__((vector_size(GC_GEMM_VBYTES), aligned(sizeof(GC_T)),
                                          may_alias));

/* Blocking for this element type (see common.h): a micro-tile is MR x NR (NR = 2 vectors). */
enum {
    GC_FN(_vl) = GC_GEMM_VBYTES / (int)sizeof(GC_T),
    GC_FN(_nr) = 2 * GC_FN(_vl),
    GC_FN(_kc) = sizeof(GC_T) == 4 ? GC_SGEMM_KC : GC_DGEMM_KC,
    GC_FN(_nc) = sizeof(GC_T) == 4 ? GC_SGEMM_NC : GC_DGEMM_NC,
    GC_FN(_mc) = sizeof(GC_T) == 4 ? GC_SGEMM_MC : GC_DGEMM_MC,
};

/* c[0:rows, 0:vecs*VL] (row stride ldc) = sum_k ap[k*MR + i] * bp[k*NR + j] (only the first
 * vecs vectors of each packed row), or += when acc.  The rows x vecs vector accumulators stay
 * in registers: `rows` and `vecs` are constants in every caller, so the loops unroll. */
static inline __attribute__((always_inline)) void GC_FN(_ukr_block)(
    const int rows, const int vecs, long kc, const GC_T *restrict ap, const GC_T *restrict bp,
    GC_T *restrict c, ptrdiff_t ldc, int acc) {
    typedef GC_FN(_vec) vec;
    typedef GC_FN(_vec_u) vec_u;
    vec c0[GC_GEMM_MR], c1[GC_GEMM_MR];
#pragma GCC unroll 16
    for (int i = 0; i < rows; ++i) {
        c0[i] = (vec){0};
        c1[i] = (vec){0};
        __builtin_prefetch(c + i * ldc, 1, 3);
        if (vecs == 2) __builtin_prefetch(c + i * ldc + GC_FN(_nr) - 1, 1, 3);
    }
    ap = (const GC_T *)__builtin_assume_aligned(ap, 64);
    bp = (const GC_T *)__builtin_assume_aligned(bp, 64);
#pragma GCC unroll 4
    for (long k = 0; k < kc; ++k) {
        const vec b0 = ((const vec *)bp)[0];
        const vec b1 = vecs == 2 ? ((const vec *)bp)[1] : b0;
#pragma GCC unroll 16
        for (int i = 0; i < rows; ++i) {
            const GC_T a = ap[i];
            c0[i] += a * b0;
            if (vecs == 2) c1[i] += a * b1;
        }
        ap += GC_GEMM_MR;
        bp += GC_FN(_nr);
    }
#pragma GCC unroll 16
    for (int i = 0; i < rows; ++i) {
        vec_u *cr = (vec_u *)(c + i * ldc);
        if (acc) {
            cr[0] += c0[i];
            if (vecs == 2) cr[1] += c1[i];
        } else {
            cr[0] = c0[i];
            if (vecs == 2) cr[1] = c1[i];
        }
    }
}

/* c[0:rows, 0:NR] (row stride ldc) = sum_k ap[k*MR + i] * bp[k*NR + j], or += when acc.
 * The rows x 2 vector accumulators stay in registers: `rows` is a constant in every caller,
 * so the row loops unroll completely.  ap, bp: packed panels, 64-byte aligned. */
static inline __attribute__((always_inline)) void GC_FN(_ukr_rows)(
    const int rows, long kc, const GC_T *restrict ap, const GC_T *restrict bp, GC_T *restrict c,
    ptrdiff_t ldc, int acc) {
    GC_FN(_ukr_block)(rows, 2, kc, ap, bp, c, ldc, acc);
}

/* The full MR-row micro-kernel (inlined into the driver: it runs almost every tile). */
static inline void GC_FN(_ukr)(long kc, const GC_T *ap, const GC_T *bp, GC_T *c, ptrdiff_t ldc,
                               int acc) {
    GC_FN(_ukr_rows)(GC_GEMM_MR, kc, ap, bp, c, ldc, acc);
}

/* Edge panels (M not a multiple of MR: e.g. the last 4 rows of a batch of 64) run a kernel
 * with only the first MR/3 or 2*MR/3 rows of accumulators: same packed layout, a third or two
 * thirds of the FMAs.  Not inlined: compiled once rather than into every caller. */
static GC_UNUSED __attribute__((noinline)) void GC_FN(_ukr_third)(long kc, const GC_T *ap,
                                                                  const GC_T *bp, GC_T *c,
                                                                  ptrdiff_t ldc) {
    GC_FN(_ukr_rows)(GC_GEMM_MR / 3, kc, ap, bp, c, ldc, 0);
}
/* The same with 2*MR/3 rows. */
static GC_UNUSED __attribute__((noinline)) void GC_FN(_ukr_two_thirds)(long kc, const GC_T *ap,
                                                                       const GC_T *bp, GC_T *c,
                                                                       ptrdiff_t ldc) {
    GC_FN(_ukr_rows)(2 * GC_GEMM_MR / 3, kc, ap, bp, c, ldc, 0);
}

/* The full MR rows, but one vector wide: an edge panel of at most NR/2 columns (a small
 * convolution's 16 output pixels) does half the multiply-adds.  Not inlined. */
static GC_UNUSED __attribute__((noinline)) void GC_FN(_ukr_half)(long kc, const GC_T *ap,
                                                                 const GC_T *bp, GC_T *c,
                                                                 ptrdiff_t ldc) {
    GC_FN(_ukr_block)(GC_GEMM_MR, 1, kc, ap, bp, c, ldc, 0);
}

/* tile[0:mr, 0:NR] (row stride NR) = the panel product, with the smallest kernel covering
 * mr rows (rows past mr are garbage). */
static inline void GC_FN(_ukr_edge)(int mr, int nr, long kc, const GC_T *ap, const GC_T *bp,
                                    GC_T *tile) {
    if (nr <= GC_FN(_vl) && mr > GC_GEMM_MR / 3)
        GC_FN(_ukr_half)(kc, ap, bp, tile, GC_FN(_nr));
    else if (mr <= GC_GEMM_MR / 3)
        GC_FN(_ukr_third)(kc, ap, bp, tile, GC_FN(_nr));
    else if (mr <= 2 * GC_GEMM_MR / 3)
        GC_FN(_ukr_two_thirds)(kc, ap, bp, tile, GC_FN(_nr));
    else
        GC_FN(_ukr)(kc, ap, bp, tile, GC_FN(_nr), 0);
}

/* Packs a kc x nc block into panels `width` columns wide: panel q at dst + q*width*kc,
 * element (k, j) at [k*width + j], columns past nc zero.  The block's element (k, j) is
 * src[k*ld + j] (rows contiguous), or src[j*ld + k] when `strided` (transposed in chunks of 8
 * along k).  `width` is a constant in both callers, so the inner loops unroll. */
static inline __attribute__((always_inline)) void GC_FN(_pack_panels)(
    const int width, int strided, int kc, int nc, const GC_T *restrict src, ptrdiff_t ld,
    GC_T *restrict dst) {
    for (int j0 = 0; j0 < nc; j0 += width, dst += (size_t)width * kc) {
        const int w = nc - j0 < width ? nc - j0 : width;
        if (!strided) {
            const GC_T *s = src + j0;
            if (w == width) {
                for (int k = 0; k < kc; ++k)
                    for (int j = 0; j < width; ++j) dst[k * width + j] = s[k * ld + j];
            } else {
                for (int k = 0; k < kc; ++k)
                    for (int j = 0; j < width; ++j) dst[k * width + j] = j < w ? s[k * ld + j] : 0;
            }
        } else {
            const GC_T *s = src + (ptrdiff_t)j0 * ld;
            if (w == width && sizeof(GC_T) == 4 && width >= 8) {
                /* floats: 8 x 8 blocks transposed in registers, the columns past the last
                 * multiple of 8 (MR = 12: 4) element by element */
                const int w8 = width / 8 * 8;
                int k = 0;
                for (; k + 8 <= kc; k += 8) {
                    for (int j = 0; j < w8; j += 8)
                        gc_transpose8x8f((const float *)s + j * ld + k, ld,
                                         (float *)dst + k * width + j, width);
                    for (int j = w8; j < width; ++j)
                        for (int kk = 0; kk < 8; ++kk)
                            dst[(k + kk) * width + j] = s[j * ld + k + kk];
                }
                for (; k < kc; ++k)
                    for (int j = 0; j < width; ++j) dst[k * width + j] = s[j * ld + k];
            } else if (w == width) {
                int k = 0;
                for (; k + 8 <= kc; k += 8)
                    for (int j = 0; j < width; ++j)
                        for (int kk = 0; kk < 8; ++kk)
                            dst[(k + kk) * width + j] = s[j * ld + k + kk];
                for (; k < kc; ++k)
                    for (int j = 0; j < width; ++j) dst[k * width + j] = s[j * ld + k];
            } else {
                for (int k = 0; k < kc; ++k)
                    for (int j = 0; j < width; ++j) dst[k * width + j] = j < w ? s[j * ld + k] : 0;
            }
        }
    }
}

/* Packs rows [0, mc) x depth [0, kc) of op(A) (a: the block's origin) into MR-row panels:
 * the panels of op(A)^T, whose columns are op(A)'s rows. */
static inline void GC_FN(_pack_a)(int trans, int mc, int kc, const GC_T *a, ptrdiff_t lda,
                                  GC_T *ap) {
    GC_FN(_pack_panels)(GC_GEMM_MR, !trans, kc, mc, a, lda, ap);
}

/* Packs depth [0, kc) x columns [0, nc) of op(B) (b: the block's origin) into NR-column
 * panels. */
static inline void GC_FN(_pack_b)(int trans, int kc, int nc, const GC_T *b, ptrdiff_t ldb,
                                  GC_T *bp) {
    GC_FN(_pack_panels)(GC_FN(_nr), trans, kc, nc, b, ldb, bp);
}
