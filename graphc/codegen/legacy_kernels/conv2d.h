/* graphc kernel template: 2-D convolution (cross-correlation), float and double.
 *
 * Semantics = graphc/reference/conv.py (PyTorch conv2d, groups=1, dilation=1, no bias):
 *   x: (N, C, H, W) NCHW, w: (O, C, KH, KW) OIHW, y: (N, O, OH, OW), all C-contiguous;
 *   OH = (H + 2*PH - KH) / SH + 1, OW = (W + 2*PW - KW) / SW + 1 (floor), zero padding;
 *   y[n,o,i,j] = sum_{c,a,b} xpad[n, c, i*SH + a, j*SW + b] * w[o, c, a, b].
 *   Input rows/columns no window touches (because of the floor) get a zero gradient.
 *
 * ---------------------------------------------------------------- interface
 * All sizes are run-time ints (N, the batch size, in particular); the generator may pass
 * constants and let the compiler specialise the static inline wrappers.
 *
 *   int    gc_conv2d_out_size(int in, int k, int s, int p);      (in + 2p - k) / s + 1
 *
 *   #define GC_CONV_ARGS int N, int C, int H, int W, int O, int KH, int KW,
 *                        int SH, int SW, int PH, int PW
 *   size_t gc_sconv2d_forward_workspace_size(GC_CONV_ARGS);
 *   void   gc_sconv2d_forward(GC_CONV_ARGS, const float *x, const float *w, float *y,
 *                             void *ws, size_t ws_bytes);
 *   size_t gc_sconv2d_backward_data_workspace_size(GC_CONV_ARGS);
 *   void   gc_sconv2d_backward_data(GC_CONV_ARGS, const float *gy, const float *w,
 *                                   float *gx, void *ws, size_t ws_bytes);
 *   size_t gc_sconv2d_backward_filter_workspace_size(GC_CONV_ARGS);
 *   void   gc_sconv2d_backward_filter(GC_CONV_ARGS, const float *x, const float *gy,
 *                                     float *gw, void *ws, size_t ws_bytes);
 *   ... and gc_dconv2d_* for double.
 * Outputs (y, gx, gw) are overwritten, never accumulated into; they must not alias inputs.
 *
 * Fused variants (one compiled GEMM serves every epilogue; see gemm.h's run-time hook):
 *   void gc_sconv2d_forward_hook(GC_CONV_ARGS, const float *x, const float *w, float *y,
 *                                void *ws, size_t ws_bytes, const void *ectx);
 *   void gc_sconv2d_backward_data_hook(GC_CONV_ARGS, const float *gy, const float *w,
 *                                      float *gx, void *ws, size_t ws_bytes, const void *ectx);
 *   ... and gc_dconv2d_*_hook for double; workspaces as for the un-fused functions.
 * ectx points to a struct that begins like gemm.h's gc_epi_head (its owns_store is
 * ignored: conv blocks are always stored before the hook sees them).  The forward calls
 * fn(e, i0, j0, m, n, c, ldc) on each block of image n's output as the GEMM stores it
 * (rows i = output channels, columns j = oh*OW + ow); the backward-data pass calls it once
 * per image on gx[n] right after its col2im (rows = input channels, columns = ih*W + iw).
 * e points to a gc_conv_ectx {fn, 0, ctx = the caller's ectx, n = the image index}.
 *
 * Workspace: as in gemm.h -- caller-owned scratch of *_workspace_size(...) bytes (any
 * alignment); with less, fewer threads are used; with too little for one thread or
 * ws == NULL the kernel mallocs its own.  No global mutable state.
 *
 * Method: per image, the packed GEMM of gemm.h (O x OH*OW x C*KH*KW per image):
 *   forward         y[n] = w (O x CKK) @ col[n]           col = im2col(x[n]) (CKK x OH*OW)
 *   backward data   dcol = w^T @ gy[n] (w read transposed in place), col2im-added into gx[n]
 *   backward filter gw   = sum_n gy[n] @ col[n]^T
 * col is never materialised for the forward and filter-gradient passes: the GEMM's B
 * packing routine is replaced by an implicit-im2col packer that reads a zero-padded copy
 * of the image (C x (H+2PH) x (W+2PW), made per image in the workspace; no copy without
 * padding) straight into the GEMM's NR-wide panels.  The backward-data pass stores dcol
 * (CKK x OH*OW) in the workspace and scatters it (col2im).  1x1 / stride 1 / no padding
 * convolutions are plain GEMMs on the image.
 * Threads: OpenMP over the batch (each thread has its own panels / scratch; forward and
 * backward-data hand images out dynamically, each image computed identically whichever
 * thread takes it; the filter gradient gives each thread a fixed contiguous range of
 * images and sums the per-thread partials in thread order), so results are bit-identical
 * run to run for a given thread count.  When the batch is smaller than the thread count
 * the images run one after another with the GEMM parallel inside.
 *
 * Workspace sizes grow with the thread count (omp_get_max_threads()) and, for the
 * backward-data pass, with C*KH*KW*OH*OW per thread; they do not grow with N.
 */
#ifndef GC_CONV2D_H
#define GC_CONV2D_H

#ifndef GC_GEMM_H
#include "gemm.h"
#endif

GC__FN inline int gc_conv2d_out_size(int in, int k, int s, int p) {
    return (in + 2 * p - k) / s + 1;
}

/* Valid output-column range [lo, hi) for kernel column b: 0 <= o*S + b - P < W. */
GC__FN inline void gc__conv_valid_range(int W, int OW, int S, int P, int b, int *lo, int *hi) {
    int l = 0, h;
    if (P - b > 0) l = (P - b + S - 1) / S;
    int num = W - 1 + P - b;
    h = num < 0 ? 0 : num / S + 1;
    if (h > OW) h = OW;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

#define GC_CONV_ARGS                                                                               \
    int N, int C, int H, int W, int O, int KH, int KW, int SH, int SW, int PH, int PW
#define GC__CONV_PASS N, C, H, W, O, KH, KW, SH, SW, PH, PW

/* One image for the implicit-im2col B packer: xp is the image zero-padded to
 * C x Hp x Wp (Hp = H + 2*PH, Wp = W + 2*PW; the input itself when PH = PW = 0), so that
 * col[(c*KH + a)*KW + b][oh*OW + ow] = xp[c][oh*SH + a][ow*SW + b] with no bounds checks. */
typedef struct {
    const void *xp;
    int C, Hp, Wp, KH, KW, SH, SW, OH, OW;
} gc_conv_geom;

/* A driver's scratch (gc__?conv_setup): nt threads, thread t's `per` bytes at base + t*per,
 * the first `gemm` of them its GEMM panels; `own` is what the driver must free (NULL when the
 * caller's workspace was big enough). */
typedef struct {
    char *base;
    void *own;
    size_t per, gemm;
    int nt;
} gc_conv_scratch;

/* What a fused conv's epilogue hook receives: gemm.h's gc_epi_head (the hook, and
 * owns_store = 0: conv blocks are always stored first), the caller's ectx and the image
 * index. */
typedef struct {
    gc_epi_fn fn;
    int owns_store;
    const void *ctx;
    ptrdiff_t n;
} gc_conv_ectx;
#define GC__CONV_ECTX(ectx, n)                                                                     \
    {(ectx) ? ((const gc_epi_head *)(ectx))->fn : (gc_epi_fn)0, 0, (ectx), (n)}

/* Keep GCC from turning short copy loops into memcpy/memmove calls (per-call overhead
 * dominates for the 8..64-element runs copied here). */
#if defined(__GNUC__) && !defined(__clang__)
#define GC__NO_LIBCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define GC__NO_LIBCALLS
#endif

/* The implicit-im2col packer plugged into the GEMM driver (see GC__PACKB_STD in gemm.h). */
#define GC__PACKB_IM2COL(p, bctx, tb, pc, jg, kc, nc, B, ldb, bp)                                  \
    gc__##p##pack_b_im2col((const gc_conv_geom *)(bctx), tb, pc, jg, kc, nc, bp)

/* Run ONE (a driver's per-image function) on each of the N images, in order of n, with
 * the scratch sc (a gc_conv_scratch): per thread [sc.gemm bytes of GEMM panels][the image's
 * own buffer] (padded image or dcol).  Few images (N < nt): one image at a time with the
 * GEMM parallel inside over every thread's panels, the image buffer at sc.base.  Otherwise
 * the threads take whole images (handed out dynamically; each image is computed the same
 * way whichever thread takes it, so results are deterministic).  Uses the driver's N, OH,
 * OW and GC_CONV_ARGS. */
#define GC__CONV_EACH_IMAGE(ONE, T, in, is, out, os, w, sc, ectx)                                  \
    do {                                                                                           \
        const int nt = (sc).nt; /* named: the OpenMP clause below uses it */                       \
        const size_t gb_ = (sc).gemm, own_bytes_ = (sc).per - gb_;                                 \
        if (N < nt) {                                                                              \
            for (int n = 0; n < N; ++n) {                                                          \
                const gc_conv_ectx e = GC__CONV_ECTX(ectx, n);                                     \
                ONE(GC__CONV_PASS, OH, OW, (in) + n * (is), w, (out) + n * (os),                   \
                    (sc).base + own_bytes_, (sc).per * (size_t)nt - own_bytes_, (T *)(sc).base, 1, \
                    &e);                                                                           \
            }                                                                                      \
        } else {                                                                                   \
            GC__OMP("omp parallel num_threads(nt)") {                                              \
                char *tw = (sc).base + (sc).per * (size_t)gc_thread_num();                         \
                GC__OMP("omp for schedule(dynamic, 1)")                                            \
                for (int n = 0; n < N; ++n) {                                                      \
                    const gc_conv_ectx e = GC__CONV_ECTX(ectx, n);                                 \
                    ONE(GC__CONV_PASS, OH, OW, (in) + n * (is), w, (out) + n * (os), tw, gb_,      \
                        (T *)(tw + gb_), 0, &e);                                                   \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* Forward driver, shared by gc_?conv2d_forward and the fused gc_?conv2d_forward_hook.
 * Defines NAME(GC_CONV_ARGS, x, w, y, ws, ws_bytes, const void *ectx) (and NAME##_one) on
 * two GEMM IMPLs of gemm.h: GIM2COL (packer GC__PACKB_IM2COL) and GPLAIN (GC__PACKB_STD,
 * for pointwise convolutions).  Image n's GEMM gets a gc_conv_ectx {fn, ectx, n} as ectx. */
#define GC__DEFINE_CONV_FWD(NAME, p, T, GIM2COL, GPLAIN)                                           \
    /* One image.  par != 0: the GEMM runs multi-threaded with gbytes of scratch at g. */          \
    GC__FN void NAME##_one(GC_CONV_ARGS, int OH, int OW, const T *x, const T *w, T *y, char *g,    \
                           size_t gbytes, T *xpad, int par, const gc_conv_ectx *e) {               \
        const int Pn = OH * OW, CKK = C * KH * KW;                                                 \
        if (gc__##p##conv_is_pointwise(GC__CONV_PASS)) {                                           \
            if (par)                                                                               \
                GPLAIN##_par(0, 0, O, Pn, C, (T)1, w, C, x, Pn, (T)0, y, Pn, g, gbytes, e, NULL);  \
            else                                                                                   \
                GPLAIN##_serial_at(0, 0, O, Pn, C, (T)1, w, C, x, Pn, (T)0, y, Pn, g, 0, 0, e,     \
                                   NULL);                                                          \
            return;                                                                                \
        }                                                                                          \
        const gc_conv_geom geo = gc__##p##conv_geom(GC__CONV_PASS, OH, OW, x, xpad);               \
        if (par)                                                                                   \
            GIM2COL##_par(0, 0, O, Pn, CKK, (T)1, w, CKK, NULL, 0, (T)0, y, Pn, g, gbytes, e,      \
                          &geo);                                                                   \
        else                                                                                       \
            GIM2COL##_serial_at(0, 0, O, Pn, CKK, (T)1, w, CKK, NULL, 0, (T)0, y, Pn, g, 0, 0, e,  \
                                &geo);                                                             \
    }                                                                                              \
    GC__FN void NAME(GC_CONV_ARGS, const T *x, const T *w, T *y, void *ws, size_t ws_bytes,        \
                     const void *ectx) {                                                           \
        int OH = gc_conv2d_out_size(H, KH, SH, PH), OW = gc_conv2d_out_size(W, KW, SW, PW);        \
        if (N <= 0 || O <= 0 || OH <= 0 || OW <= 0) return;                                        \
        const ptrdiff_t xs = (ptrdiff_t)C * H * W, ys = (ptrdiff_t)O * OH * OW;                    \
        const gc_conv_scratch sc = gc__##p##conv_setup(GC__CONV_PASS, 0, ws, ws_bytes);            \
        GC__CONV_EACH_IMAGE(NAME##_one, T, x, xs, y, ys, w, sc, ectx);                             \
        free(sc.own);                                                                              \
    }

/* Backward-data driver, shared by gc_?conv2d_backward_data and the fused
 * gc_?conv2d_backward_data_hook.  Defines NAME(GC_CONV_ARGS, gy, w, gx, ws, ws_bytes,
 * const void *ectx) (and NAME##_one) on the GEMM IMPL GPLAIN.  With HOOKED, the hook in
 * ectx is called once on each image's gx[n] right after its col2im (while it is in cache). */
#define GC__DEFINE_CONV_BWD_DATA(NAME, p, T, GPLAIN, HOOKED)                                       \
    GC__FN void NAME##_epi(int C, int HW, T *gx, const gc_conv_ectx *e) {                          \
        (void)C; (void)HW; (void)gx; (void)e;                                                      \
        if (HOOKED) GC__EPI_HOOK(e, 0, 0, C, HW, gx, HW);                                          \
    }                                                                                              \
    /* One image: dcol = w^T @ gy[n] (w read transposed), then col2im into gx[n]. */               \
    GC__FN void NAME##_one(GC_CONV_ARGS, int OH, int OW, const T *gy, const T *w, T *gx, char *g,  \
                           size_t gbytes, T *dcol, int par, const gc_conv_ectx *e) {               \
        const int Pn = OH * OW, CKK = C * KH * KW;                                                 \
        int pw = gc__##p##conv_is_pointwise(GC__CONV_PASS);                                        \
        T *dst = pw ? gx : dcol;                                                                   \
        if (par)                                                                                   \
            GPLAIN##_par(1, 0, CKK, Pn, O, (T)1, w, CKK, gy, Pn, (T)0, dst, Pn, g, gbytes, NULL,   \
                         NULL);                                                                    \
        else                                                                                       \
            GPLAIN##_serial_at(1, 0, CKK, Pn, O, (T)1, w, CKK, gy, Pn, (T)0, dst, Pn, g, 0, 0,     \
                               NULL, NULL);                                                        \
        if (!pw) gc__##p##col2im(C, H, W, KH, KW, SH, SW, PH, PW, OH, OW, dcol, gx);               \
        NAME##_epi(C, H * W, gx, e);                                                               \
    }                                                                                              \
    GC__FN void NAME(GC_CONV_ARGS, const T *gy, const T *w, T *gx, void *ws, size_t ws_bytes,      \
                     const void *ectx) {                                                           \
        int OH = gc_conv2d_out_size(H, KH, SH, PH), OW = gc_conv2d_out_size(W, KW, SW, PW);        \
        const ptrdiff_t xs = (ptrdiff_t)C * H * W, ys = (ptrdiff_t)O * OH * OW;                    \
        if (N <= 0 || C <= 0 || H <= 0 || W <= 0) return;                                          \
        if (O <= 0 || OH <= 0 || OW <= 0) {                                                        \
            memset(gx, 0, sizeof(T) * (size_t)N * xs);                                             \
            for (int n = 0; n < N; ++n) {                                                          \
                const gc_conv_ectx e = GC__CONV_ECTX(ectx, n);                                     \
                NAME##_epi(C, H * W, gx + n * xs, &e);                                             \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        const gc_conv_scratch sc = gc__##p##conv_setup(GC__CONV_PASS, 1, ws, ws_bytes);            \
        GC__CONV_EACH_IMAGE(NAME##_one, T, gy, ys, gx, xs, w, sc, ectx);                           \
        free(sc.own);                                                                              \
    }

#define GC__DEFINE_CONV(p, P, T, VU)                                                               \
    /* xp = x zero-padded by (PH, PW) on both sides (C x Hp x Wp) */                               \
    GC__FN void gc__##p##conv_pad(int C, int H, int W, int PH, int PW, const T *__restrict x,      \
                                  T *__restrict xp) {                                              \
        const int Hp = H + 2 * PH, Wp = W + 2 * PW;                                                \
        for (int c = 0; c < C; ++c) {                                                              \
            T *__restrict d = xp + (ptrdiff_t)c * Hp * Wp;                                         \
            const T *__restrict s = x + (ptrdiff_t)c * H * W;                                      \
            memset(d, 0, sizeof(T) * (size_t)PH * Wp);                                             \
            for (int i = 0; i < H; ++i) {                                                          \
                T *__restrict r = d + (ptrdiff_t)(PH + i) * Wp;                                    \
                for (int j = 0; j < PW; ++j) r[j] = (T)0;                                          \
                memcpy(r + PW, s + (ptrdiff_t)i * W, sizeof(T) * (size_t)W);                       \
                for (int j = PW + W; j < Wp; ++j) r[j] = (T)0;                                     \
            }                                                                                      \
            memset(d + (ptrdiff_t)(PH + H) * Wp, 0, sizeof(T) * (size_t)PH * Wp);                  \
        }                                                                                          \
    }                                                                                              \
    /* The image the im2col packer reads: x itself, or x padded into xpad when the conv pads */    \
    GC__FN inline gc_conv_geom gc__##p##conv_geom(GC_CONV_ARGS, int OH, int OW, const T *x,        \
                                                  T *xpad) {                                       \
        (void)N; (void)O;                                                                          \
        if (PH || PW) gc__##p##conv_pad(C, H, W, PH, PW, x, xpad);                                 \
        gc_conv_geom geo = {PH || PW ? (const void *)xpad : (const void *)x,                       \
                            C, H + 2 * PH, W + 2 * PW, KH, KW, SH, SW, OH, OW};                    \
        return geo;                                                                                \
    }                                                                                              \
    /* pack_b (gemm.h panel layout) straight from the padded image, never storing col:             \
     *   tb = 0: op(B) = col   (K = C*KH*KW, N = OH*OW; forward)                                   \
     *   tb = 1: op(B) = col^T (K = OH*OW, N = C*KH*KW; filter gradient)                           \
     * A run of output pixels splits into segments along output rows; within a segment the         \
     * source is contiguous (stride SW). */                                                        \
    GC__FN GC__NO_LIBCALLS void gc__##p##pack_b_im2col(const gc_conv_geom *g, int tb, int pc,     \
                                                       int jg, int kc, int nc,                     \
                                                       T *__restrict bp) {                         \
        enum { NR = GC_##P##GEMM_NR, VL = GC_GEMM_VBYTES / (int)sizeof(T) };                       \
        typedef VU gc__vu_t;                                                                       \
        const T *xp = (const T *)g->xp;                                                            \
        const int OW = g->OW, SW = g->SW, KW = g->KW, KH = g->KH;                                  \
        const ptrdiff_t rowstep = (ptrdiff_t)g->SH * g->Wp, plane = (ptrdiff_t)g->Hp * g->Wp;      \
        if (!tb) {                                                                                 \
            for (int j0 = 0; j0 < nc; j0 += NR) {                                                  \
                int nr = nc - j0 < NR ? nc - j0 : NR;                                              \
                T *__restrict pan = bp + (size_t)j0 * kc;                                          \
                /* segments of pixels jg+j0 .. +nr: (dst offset, src offset, length) */            \
                ptrdiff_t so[NR + 1];                                                              \
                int dof[NR + 1], ln[NR + 1], ns = 0;                                               \
                int j = jg + j0, oh = j / OW, ow = j - oh * OW, d = 0;                             \
                while (d < nr) {                                                                   \
                    int len = OW - ow < nr - d ? OW - ow : nr - d;                                 \
                    so[ns] = oh * rowstep + (ptrdiff_t)ow * SW;                                    \
                    dof[ns] = d;                                                                   \
                    ln[ns++] = len;                                                                \
                    d += len;                                                                      \
                    ow = 0;                                                                        \
                    ++oh;                                                                          \
                }                                                                                  \
                int b = pc % KW, t = pc / KW, a = t % KH, c = t / KH;                              \
                for (int kk = 0; kk < kc; ++kk) {                                                  \
                    const T *__restrict base = xp + c * plane + (ptrdiff_t)a * g->Wp + b;          \
                    T *__restrict dst = pan + (size_t)kk * NR;                                     \
                    for (int s = 0; s < ns; ++s) {                                                 \
                        const T *__restrict src = base + so[s];                                    \
                        T *__restrict dd = dst + dof[s];                                           \
                        if (SW == 1) {                                                             \
                            int e = 0;                                                             \
                            for (; e + VL <= ln[s]; e += VL)                                       \
                                *(gc__vu_t *)(dd + e) = *(const gc__vu_t *)(src + e);              \
                            for (; e < ln[s]; ++e) dd[e] = src[e];                                 \
                        } else                                                                     \
                            for (int e = 0; e < ln[s]; ++e) dd[e] = src[(ptrdiff_t)e * SW];        \
                    }                                                                              \
                    for (int e = nr; e < NR; ++e) dst[e] = (T)0;                                   \
                    if (++b == KW) {                                                               \
                        b = 0;                                                                     \
                        if (++a == KH) {                                                           \
                            a = 0;                                                                 \
                            ++c;                                                                   \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        } else {                                                                                   \
            /* row kk of a panel = pixel pc+kk of the NR columns (c, a, b): a gather with          \
             * fixed per-column offsets (vectorised as gathers where the ISA has them) */          \
            int oh0 = pc / OW, ow0 = pc - oh0 * OW;                                                \
            for (int j0 = 0; j0 < nc; j0 += NR) {                                                  \
                int nr = nc - j0 < NR ? nc - j0 : NR;                                              \
                T *__restrict pan = bp + (size_t)j0 * kc;                                          \
                int boff[NR];                                                                      \
                int jj0 = jg + j0;                                                                 \
                int b = jj0 % KW, t = jj0 / KW, a = t % KH, c = t / KH;                            \
                for (int jj = 0; jj < NR; ++jj) {                                                  \
                    boff[jj] = jj < nr ? (int)(c * plane + (ptrdiff_t)a * g->Wp + b) : 0;          \
                    if (++b == KW) {                                                               \
                        b = 0;                                                                     \
                        if (++a == KH) {                                                           \
                            a = 0;                                                                 \
                            ++c;                                                                   \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
                int oh = oh0, ow = ow0;                                                            \
                for (int kk = 0; kk < kc; ++kk) {                                                  \
                    const T *__restrict src = xp + oh * rowstep + (ptrdiff_t)ow * SW;              \
                    T *__restrict d = pan + (size_t)kk * NR;                                       \
                    for (int jj = 0; jj < NR; ++jj) d[jj] = src[boff[jj]];                         \
                    if (++ow == OW) {                                                              \
                        ow = 0;                                                                    \
                        ++oh;                                                                      \
                    }                                                                              \
                }                                                                                  \
                if (nr < NR)                                                                       \
                    for (int kk = 0; kk < kc; ++kk)                                                \
                        for (int jj = nr; jj < NR; ++jj) pan[(size_t)kk * NR + jj] = (T)0;         \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    GC__DEFINE_GEMM_IMPL(gc__##p##gemm_im2col, p, P, T, 0, GC__EPI_NONE, GC__PACKB_IM2COL)         \
    /* gx[c][ih][iw] = sum of the dcol entries im2col would read from there (overwrites) */        \
    GC__FN void gc__##p##col2im(int C, int H, int W, int KH, int KW, int SH, int SW, int PH,       \
                                int PW, int OH, int OW, const T *__restrict col,                   \
                                T *__restrict gx) {                                                \
        const ptrdiff_t Pn = (ptrdiff_t)OH * OW;                                                   \
        memset(gx, 0, sizeof(T) * (size_t)C * H * W);                                              \
        for (int c = 0; c < C; ++c)                                                                \
            for (int a = 0; a < KH; ++a)                                                           \
                for (int b = 0; b < KW; ++b) {                                                     \
                    const T *__restrict src = col + ((ptrdiff_t)(c * KH + a) * KW + b) * Pn;       \
                    int lo, hi;                                                                    \
                    gc__conv_valid_range(W, OW, SW, PW, b, &lo, &hi);                              \
                    for (int oh = 0; oh < OH; ++oh) {                                              \
                        int ih = oh * SH + a - PH;                                                 \
                        if (ih < 0 || ih >= H) continue;                                           \
                        const T *__restrict s = src + (ptrdiff_t)oh * OW;                          \
                        T *__restrict d = gx + ((ptrdiff_t)c * H + ih) * W + b - PW;               \
                        if (SW == 1) {                                                             \
                            for (int ow = lo; ow < hi; ++ow) d[ow] += s[ow];                       \
                        } else {                                                                   \
                            for (int ow = lo; ow < hi; ++ow) d[(ptrdiff_t)ow * SW] += s[ow];       \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
    }                                                                                              \
    GC__FN inline int gc__##p##conv_is_pointwise(GC_CONV_ARGS) {                                   \
        (void)N; (void)C; (void)H; (void)W; (void)O;                                               \
        return KH == 1 && KW == 1 && SH == 1 && SW == 1 && PH == 0 && PW == 0;                     \
    }                                                                                              \
    /* GEMM scratch bytes for one thread: kind 0 forward, 1 backward data, 2 backward filter */    \
    GC__FN inline size_t gc__##p##conv_gemm_bytes(GC_CONV_ARGS, int kind) {                        \
        int OH = gc_conv2d_out_size(H, KH, SH, PH), OW = gc_conv2d_out_size(W, KW, SW, PW);        \
        int Pn = OH * OW, CKK = C * KH * KW;                                                       \
        (void)N;                                                                                   \
        return kind == 0 ? gc__##p##gemm_plain_serial_workspace_size(O, Pn, CKK)                   \
               : kind == 1 ? gc__##p##gemm_plain_serial_workspace_size(CKK, Pn, O)                 \
                           : gc__##p##gemm_plain_serial_workspace_size(O, CKK, Pn);                \
    }                                                                                              \
    /* bytes of the zero-padded image copy (forward / filter gradient; 0: not needed) */           \
    GC__FN inline size_t gc__##p##conv_pad_bytes(GC_CONV_ARGS) {                                   \
        if ((PH == 0 && PW == 0) || gc__##p##conv_is_pointwise(GC__CONV_PASS)) return 0;           \
        return gc_round_up(sizeof(T) * (size_t)C * (H + 2 * PH) * (W + 2 * PW), 64);               \
    }                                                                                              \
    /* bytes per thread: [gemm panels][dcol (kind 1) | gw partial (kind 2)][padded image] */       \
    GC__FN inline size_t gc__##p##conv_per_thread(GC_CONV_ARGS, int kind) {                        \
        int OH = gc_conv2d_out_size(H, KH, SH, PH), OW = gc_conv2d_out_size(W, KW, SW, PW);        \
        size_t CKK = (size_t)C * KH * KW;                                                          \
        size_t g = gc_round_up(gc__##p##conv_gemm_bytes(GC__CONV_PASS, kind), 64);                 \
        size_t dcol = kind == 1 && !gc__##p##conv_is_pointwise(GC__CONV_PASS)                      \
                          ? gc_round_up(sizeof(T) * CKK * (size_t)OH * OW, 64)                     \
                          : 0;                                                                     \
        size_t part = kind == 2 ? gc_round_up(sizeof(T) * (size_t)O * CKK, 64) : 0;                \
        size_t pad = kind != 1 ? gc__##p##conv_pad_bytes(GC__CONV_PASS) : 0;                       \
        return g + dcol + part + pad;                                                              \
    }                                                                                              \
    GC__FN inline int gc__##p##conv_threads(GC_CONV_ARGS) {                                        \
        int OH = gc_conv2d_out_size(H, KH, SH, PH), OW = gc_conv2d_out_size(W, KW, SW, PW);        \
        double flop = 2.0 * N * O * (double)OH * OW * C * KH * KW;                                 \
        return gc__threads_for(flop, gc_max_threads());                                            \
    }                                                                                              \
    GC__FN inline size_t gc__##p##conv_ws(GC_CONV_ARGS, int kind) {                                \
        return (size_t)gc__##p##conv_threads(GC__CONV_PASS) *                                      \
                   gc__##p##conv_per_thread(GC__CONV_PASS, kind) +                                 \
               64;                                                                                 \
    }                                                                                              \
    GC__FN inline size_t gc_##p##conv2d_forward_workspace_size(GC_CONV_ARGS) {                     \
        return gc__##p##conv_ws(GC__CONV_PASS, 0);                                                 \
    }                                                                                              \
    GC__FN inline size_t gc_##p##conv2d_backward_data_workspace_size(GC_CONV_ARGS) {               \
        return gc__##p##conv_ws(GC__CONV_PASS, 1);                                                 \
    }                                                                                              \
    GC__FN inline size_t gc_##p##conv2d_backward_filter_workspace_size(GC_CONV_ARGS) {             \
        return gc__##p##conv_ws(GC__CONV_PASS, 2);                                                 \
    }                                                                                              \
    /* Threads and 64-aligned scratch of a pass (kind 0 forward, 1 backward-data, 2 filter). */  \
    GC__FN gc_conv_scratch gc__##p##conv_setup(GC_CONV_ARGS, int kind, void *ws,                   \
                                               size_t ws_bytes) {                                  \
        gc_conv_scratch sc;                                                                        \
        sc.per = gc__##p##conv_per_thread(GC__CONV_PASS, kind);                                    \
        sc.gemm = gc_round_up(gc__##p##conv_gemm_bytes(GC__CONV_PASS, kind), 64);                  \
        int want = gc__##p##conv_threads(GC__CONV_PASS);                                           \
        int fit = ws_bytes >= 64 ? gc__threads_fitting(want, sc.per, ws, ws_bytes - 64) : 0;      \
        sc.own = NULL;                                                                             \
        if (fit == 0) {                                                                            \
            ws = sc.own = malloc(sc.per * (size_t)want + 64);                                      \
            fit = want;                                                                            \
        }                                                                                          \
        sc.nt = fit;                                                                               \
        sc.base = (char *)gc_align64(ws);                                                          \
        return sc;                                                                                 \
    }                                                                                              \
    /* forward = the shared driver GC__DEFINE_CONV_FWD on the un-fused GEMMs */                    \
    GC__DEFINE_CONV_FWD(gc__##p##conv_fwd, p, T, gc__##p##gemm_im2col, gc__##p##gemm_plain)        \
    GC__FN void gc_##p##conv2d_forward(GC_CONV_ARGS, const T *x, const T *w, T *y, void *ws,       \
                                       size_t ws_bytes) {                                          \
        gc__##p##conv_fwd(GC__CONV_PASS, x, w, y, ws, ws_bytes, NULL);                             \
    }                                                                                              \
    /* backward data = the shared driver GC__DEFINE_CONV_BWD_DATA, no epilogue */                  \
    GC__DEFINE_CONV_BWD_DATA(gc__##p##conv_bwd_data, p, T, gc__##p##gemm_plain, 0)                 \
    GC__FN void gc_##p##conv2d_backward_data(GC_CONV_ARGS, const T *gy, const T *w, T *gx,         \
                                             void *ws, size_t ws_bytes) {                          \
        gc__##p##conv_bwd_data(GC__CONV_PASS, gy, w, gx, ws, ws_bytes, NULL);                      \
    }                                                                                              \
    /* the fused variants: the same drivers on GEMMs that call the run-time hook */            \
    GC__DEFINE_GEMM_IMPL(gc__##p##gemm_im2col_hook, p, P, T, 2, GC__EPI_NONE, GC__PACKB_IM2COL)    \
    GC__DEFINE_CONV_FWD(gc_##p##conv2d_forward_hook, p, T, gc__##p##gemm_im2col_hook,              \
                        gc__##p##gemm_hook)                                                        \
    GC__DEFINE_CONV_BWD_DATA(gc_##p##conv2d_backward_data_hook, p, T, gc__##p##gemm_plain, 1)      \
    /* gw (+)= gy[n] @ col[n]^T (col never stored); beta 0 for the first image, then 1. */         \
    GC__FN void gc__##p##conv_bwd_filter_one(GC_CONV_ARGS, int OH, int OW, const T *x,             \
                                             const T *gy, T *gw, T beta, char *g,                  \
                                             size_t gbytes, T *xpad, int par) {                    \
        const int Pn = OH * OW, CKK = C * KH * KW;                                                 \
        if (gc__##p##conv_is_pointwise(GC__CONV_PASS)) {                                           \
            if (par)                                                                               \
                gc__##p##gemm_plain_par(0, 1, O, C, Pn, (T)1, gy, Pn, x, Pn, beta, gw, C, g,       \
                                        gbytes, NULL, NULL);                                       \
            else                                                                                   \
                gc__##p##gemm_plain_serial_at(0, 1, O, C, Pn, (T)1, gy, Pn, x, Pn, beta, gw,       \
                                              C, g, 0, 0, NULL, NULL);                             \
            return;                                                                                \
        }                                                                                          \
        const gc_conv_geom geo = gc__##p##conv_geom(GC__CONV_PASS, OH, OW, x, xpad);               \
        if (par)                                                                                   \
            gc__##p##gemm_im2col_par(0, 1, O, CKK, Pn, (T)1, gy, Pn, NULL, 0, beta, gw, CKK,       \
                                     g, gbytes, NULL, &geo);                                       \
        else                                                                                       \
            gc__##p##gemm_im2col_serial_at(0, 1, O, CKK, Pn, (T)1, gy, Pn, NULL, 0, beta, gw,      \
                                           CKK, g, 0, 0, NULL, &geo);                              \
    }                                                                                              \
    GC__FN void gc_##p##conv2d_backward_filter(GC_CONV_ARGS, const T *x, const T *gy, T *gw,       \
                                               void *ws, size_t ws_bytes) {                        \
        int OH = gc_conv2d_out_size(H, KH, SH, PH), OW = gc_conv2d_out_size(W, KW, SW, PW);        \
        const ptrdiff_t xs = (ptrdiff_t)C * H * W, ys = (ptrdiff_t)O * OH * OW;                    \
        const size_t gwn = (size_t)O * C * KH * KW;                                                \
        if (gwn == 0) return;                                                                      \
        if (N <= 0 || OH <= 0 || OW <= 0) {                                                        \
            memset(gw, 0, sizeof(T) * gwn);                                                        \
            return;                                                                                \
        }                                                                                          \
        const gc_conv_scratch sc = gc__##p##conv_setup(GC__CONV_PASS, 2, ws, ws_bytes);            \
        const int nt = sc.nt; /* named: the OpenMP clause below uses it */                         \
        char *base = sc.base;                                                                      \
        const size_t per = sc.per, gb = sc.gemm;                                                   \
        size_t padb = gc__##p##conv_pad_bytes(GC__CONV_PASS), pad_at = per - padb;                 \
        if (N < nt) { /* [padded image][gemm scratch for all threads] */                           \
            for (int n = 0; n < N; ++n)                                                            \
                gc__##p##conv_bwd_filter_one(GC__CONV_PASS, OH, OW, x + n * xs, gy + n * ys,       \
                                             gw, n == 0 ? (T)0 : (T)1, base + padb,                \
                                             per * (size_t)nt - padb, (T *)base, 1);               \
        } else { /* per thread: [gemm][partial gw][padded image]; thread 0 sums into gw */         \
            GC__OMP("omp parallel num_threads(nt)") {                                              \
                int t = gc_thread_num();                                                           \
                int n0 = (int)((long)N * t / nt), n1 = (int)((long)N * (t + 1) / nt);              \
                char *tw = base + per * (size_t)t;                                                 \
                T *acc = t == 0 ? gw : (T *)(tw + gb);                                             \
                for (int n = n0; n < n1; ++n)                                                      \
                    gc__##p##conv_bwd_filter_one(GC__CONV_PASS, OH, OW, x + n * xs,                \
                                                 gy + n * ys, acc, n == n0 ? (T)0 : (T)1, tw,      \
                                                 gb, (T *)(tw + pad_at), 0);                       \
                if (n1 == n0)                                                                      \
                    for (size_t e = 0; e < gwn; ++e) acc[e] = (T)0;                                \
                GC__OMP("omp barrier")                                                             \
                /* fixed-order reduction gw = part_0 + part_1 + ..., split by element */           \
                size_t e0 = gwn * (size_t)t / (size_t)nt;                                          \
                size_t e1 = gwn * (size_t)(t + 1) / (size_t)nt;                                    \
                for (int u = 1; u < nt; ++u) {                                                     \
                    const T *pu = (const T *)(base + per * (size_t)u + gb);                        \
                    for (size_t e = e0; e < e1; ++e) gw[e] += pu[e];                               \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        free(sc.own);                                                                              \
    }

GC__DEFINE_CONV(s, S, float, gc_vsf_u)
GC__DEFINE_CONV(d, D, double, gc_vdf_u)

#endif /* GC_CONV2D_H */
