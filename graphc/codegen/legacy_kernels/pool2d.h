/* graphc kernel template: 2-D max and average pooling, float and double, NCHW.
 *
 * Semantics = graphc/reference/conv.py (PyTorch max_pool2d / avg_pool2d defaults):
 *   OH = (H + 2*PH - KH) / SH + 1, OW = (W + 2*PW - KW) / SW + 1 (floor);
 *   padding must be <= kernel / 2 (every window holds at least one real element; the
 *   caller/generator checks this, the kernels assume it);
 *   max pooling pads with -inf: a padded position is never selected; a window that
 *   contains NaN yields NaN; the gradient goes to the FIRST maximum of each window in
 *   row-major (kh, kw) order (to the first NaN if there is one); overlapping windows
 *   accumulate;
 *   average pooling pads with zeros and divides by the full window KH*KW
 *   (count_include_pad=True); its gradient sends gy / (KH*KW) to every real position of
 *   the window; input rows/columns no window touches get 0.
 *
 * ---------------------------------------------------------------- interface
 *   #define GC_POOL_ARGS int N, int C, int H, int W, int KH, int KW,
 *                        int SH, int SW, int PH, int PW
 *   void gc_smax_pool2d_forward (GC_POOL_ARGS, const float *x, float *y);
 *   void gc_smax_pool2d_backward(GC_POOL_ARGS, const float *x, const float *gy, float *gx);
 *   void gc_smax_pool2d_forward_idx (GC_POOL_ARGS, const float *x, float *y, int32_t *idx);
 *   void gc_smax_pool2d_backward_idx(GC_POOL_ARGS, const int32_t *idx, const float *gy,
 *                                    float *gx);
 *        idx (N, C, OH, OW): flat ih*W + iw of each window's first maximum in its plane;
 *        the _idx pair avoids re-reading x in the backward pass.
 *   void gc_savg_pool2d_forward (GC_POOL_ARGS, const float *x, float *y);
 *   void gc_savg_pool2d_backward(GC_POOL_ARGS, const float *gy, float *gx);
 *   ... and gc_dmax_pool2d_* / gc_davg_pool2d_* for double.
 * Outputs are overwritten (gx is zero-filled first, never accumulated into).  No
 * workspace.  OpenMP over the N*C planes (static), so results are deterministic.
 */
#ifndef GC_POOL2D_H
#define GC_POOL2D_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef GC__FN
#define GC__FN static __attribute__((unused))
#endif
#ifndef GC__OMP
#ifdef _OPENMP
#define GC__OMP(x) _Pragma(x)
#else
#define GC__OMP(x)
#endif
#endif

#define GC_POOL_ARGS                                                                               \
    int N, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW

#ifndef GC_POOL_MIN_WORK_PER_THREAD
#define GC_POOL_MIN_WORK_PER_THREAD 32768
#endif

/* parallelise over planes only when there is enough work */
#define GC__POOL_PAR(work) (planes > 1 && (double)(work) > 2.0 * GC_POOL_MIN_WORK_PER_THREAD)

/* Window of output (oh, ow): real input rows [h0, h1) and columns [w0, w1). */
#define GC__POOL_WINDOW                                                                            \
    int h0 = oh * SH - PH, h1 = h0 + KH, w0 = ow * SW - PW, w1 = w0 + KW;                          \
    if (h0 < 0) h0 = 0;                                                                            \
    if (h1 > H) h1 = H;                                                                            \
    if (w0 < 0) w0 = 0;                                                                            \
    if (w1 > W) w1 = W;

/* Unpadded pooling (PH == PW == 0: every window lies inside the plane) takes a fast path
 * with branch-free selects the compiler vectorizes along each output row (for max pooling
 * with the window loops unrolled for 2x2 and 3x3; average pooling one window offset
 * (kh, kw) at a time).  GC_POOL_ROW is the widest output row it handles (the backward's
 * scratch lives on the stack); wider rows, and padded pooling, take the per-window path. */
#ifndef GC_POOL_ROW
#define GC_POOL_ROW 512
#endif
#define GC_POOL_ROWS 8 /* output rows per block of the max-pool backward's scratch */
#define GC__POOL_FAST (PH == 0 && PW == 0 && OW <= GC_POOL_ROW)

#define GC__DEFINE_POOL(p, T)                                                                      \
    /* The KH x KW window whose top-left input is (h0, w0) (a padded window: its clipped           \
     * real part): its first maximum (row-major (kh, kw) order, a strict >) in *best and           \
     * that element's flat index; a NaN replaces a non-NaN best and is then never replaced         \
     * (the first NaN).  Branch-free, so the row loops below vectorize. */                         \
    GC__FN inline __attribute__((always_inline)) int gc__##p##pool_window_max(                     \
        const T *__restrict xp, int W, int KH, int KW, int h0, int w0, T *best) {                  \
        int i = h0 * W + w0;                                                                       \
        T b = xp[i];                                                                               \
        for (int kh = 0; kh < KH; ++kh)                                                            \
            for (int kw = 0; kw < KW; ++kw) {                                                      \
                const int j = (h0 + kh) * W + w0 + kw;                                             \
                const T v = xp[j];                                                                 \
                const _Bool take = v > b || (v != v && b == b);                                    \
                b = take ? v : b;                                                                  \
                i = take ? j : i;                                                                  \
            }                                                                                      \
        *best = b;                                                                                 \
        return i;                                                                                  \
    }                                                                                              \
    /* Rows [0, OH) of an unpadded max pool over one plane: best[oh*OW + ow] = the window's        \
     * first maximum and, when want_at, at[...] = its flat index in the plane.  Inlined with       \
     * constant sizes (see _any) the window loops unroll and the ow loop vectorizes. */            \
    GC__FN inline __attribute__((always_inline)) void gc__##p##pool_max_plane(                     \
        const T *__restrict xp, int W, int KH, int KW, int SH, int SW, int OH, int OW,             \
        T *__restrict best, int32_t *__restrict at, int want_at) {                                 \
        for (int oh = 0; oh < OH; ++oh) {                                                          \
            const int h0 = oh * SH;                                                                \
            T *bo = best + oh * OW;                                                                \
            int32_t *ao = at + oh * OW;                                                            \
            GC__OMP("omp simd")                                                                    \
            for (int ow = 0; ow < OW; ++ow) {                                                      \
                T b;                                                                               \
                const int i = gc__##p##pool_window_max(xp, W, KH, KW, h0, ow * SW, &b);            \
                bo[ow] = b;                                                                        \
                if (want_at) ao[ow] = i;                                                           \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    /* Max-pool backward of one plane whose windows tile it exactly (KH == SH, KW == SW,           \
     * OH*SH == H, OW*SW == W: the common 2x2/2 on even sizes): every input element lies in        \
     * one window, so gx is written densely -- gy at the window's first maximum, 0 elsewhere       \
     * -- with no zero-fill and no scatter. */                                                     \
    GC__FN inline __attribute__((always_inline)) void gc__##p##pool_max_tiled_bwd(                 \
        const T *__restrict xp, const T *__restrict gp, T *__restrict gxp, int W, int KH, int KW,  \
        int OH, int OW) {                                                                          \
        for (int oh = 0; oh < OH; ++oh) {                                                          \
            const int h0 = oh * KH;                                                                \
            GC__OMP("omp simd")                                                                    \
            for (int ow = 0; ow < OW; ++ow) {                                                      \
                T b;                                                                               \
                const int i = gc__##p##pool_window_max(xp, W, KH, KW, h0, ow * KW, &b);            \
                const T g = gp[oh * OW + ow];                                                      \
                for (int kh = 0; kh < KH; ++kh)                                                    \
                    for (int kw = 0; kw < KW; ++kw) {                                              \
                        const int j = (h0 + kh) * W + ow * KW + kw;                                \
                        gxp[j] = j == i ? g : (T)0;                                                \
                    }                                                                              \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    /* the common window shapes with their sizes as constants; at == NULL: no indices */           \
    GC__FN void gc__##p##pool_max_plane_any(const T *xp, int W, int KH, int KW, int SH, int SW,    \
                                            int OH, int OW, T *best, int32_t *at) {                \
        int32_t none;                                                                              \
        const int want = at != NULL;                                                               \
        if (!want) at = &none; /* never written */                                                 \
        if (KH == 2 && KW == 2 && SH == 2 && SW == 2) {                                            \
            if (want) gc__##p##pool_max_plane(xp, W, 2, 2, 2, 2, OH, OW, best, at, 1);             \
            else gc__##p##pool_max_plane(xp, W, 2, 2, 2, 2, OH, OW, best, at, 0);                  \
        } else if (KH == 3 && KW == 3 && SH == 2 && SW == 2) {                                     \
            if (want) gc__##p##pool_max_plane(xp, W, 3, 3, 2, 2, OH, OW, best, at, 1);             \
            else gc__##p##pool_max_plane(xp, W, 3, 3, 2, 2, OH, OW, best, at, 0);                  \
        } else {                                                                                   \
            gc__##p##pool_max_plane(xp, W, KH, KW, SH, SW, OH, OW, best, at, want);                \
        }                                                                                          \
    }                                                                                              \
    GC__FN void gc_##p##max_pool2d_forward_idx(GC_POOL_ARGS, const T *x, T *y, int32_t *idx) {     \
        const int OH = (H + 2 * PH - KH) / SH + 1, OW = (W + 2 * PW - KW) / SW + 1;                \
        const long planes = (long)N * C;                                                           \
        if (planes <= 0 || OH <= 0 || OW <= 0) return;                                             \
        const int par_ = GC__POOL_PAR((double)planes * (H * W + OH * OW * KH * KW)); (void)par_;   \
        GC__OMP("omp parallel for schedule(static) if(par_)")                                      \
        for (long pl = 0; pl < planes; ++pl) {                                                     \
            const T *xp = x + pl * H * W;                                                          \
            T *yp = y + pl * OH * OW;                                                              \
            int32_t *ip = idx ? idx + pl * OH * OW : NULL;                                         \
            if (GC__POOL_FAST) {                                                                   \
                gc__##p##pool_max_plane_any(xp, W, KH, KW, SH, SW, OH, OW, yp, ip);                \
                continue;                                                                          \
            }                                                                                      \
            for (int oh = 0; oh < OH; ++oh)                                                        \
                for (int ow = 0; ow < OW; ++ow) {                                                  \
                    GC__POOL_WINDOW                                                                \
                    T v;                                                                           \
                    int i = gc__##p##pool_window_max(xp, W, h1 - h0, w1 - w0, h0, w0, &v);         \
                    yp[oh * OW + ow] = v;                                                          \
                    if (ip) ip[oh * OW + ow] = i;                                                  \
                }                                                                                  \
        }                                                                                          \
    }                                                                                              \
    GC__FN void gc_##p##max_pool2d_forward(GC_POOL_ARGS, const T *x, T *y) {                       \
        gc_##p##max_pool2d_forward_idx(N, C, H, W, KH, KW, SH, SW, PH, PW, x, y, NULL);            \
    }                                                                                              \
    GC__FN void gc_##p##max_pool2d_backward(GC_POOL_ARGS, const T *x, const T *gy, T *gx) {        \
        const int OH = (H + 2 * PH - KH) / SH + 1, OW = (W + 2 * PW - KW) / SW + 1;                \
        const long planes = (long)N * C;                                                           \
        if (planes <= 0) return;                                                                   \
        const int par_ = GC__POOL_PAR((double)planes * (H * W + OH * OW * KH * KW)); (void)par_;   \
        GC__OMP("omp parallel for schedule(static) if(par_)")                                      \
        for (long pl = 0; pl < planes; ++pl) {                                                     \
            const T *xp = x + pl * H * W;                                                          \
            const T *gp = gy + pl * OH * OW;                                                       \
            T *gxp = gx + pl * H * W;                                                              \
            if (PH == 0 && PW == 0 && KH == SH && KW == SW && OH * SH == H && OW * SW == W) {      \
                if (KH == 2 && KW == 2)                                                            \
                    gc__##p##pool_max_tiled_bwd(xp, gp, gxp, W, 2, 2, OH, OW);                     \
                else                                                                               \
                    gc__##p##pool_max_tiled_bwd(xp, gp, gxp, W, KH, KW, OH, OW);                   \
                continue;                                                                          \
            }                                                                                      \
            memset(gxp, 0, sizeof(T) * (size_t)H * W);                                             \
            if (GC__POOL_FAST) {                                                                   \
                for (int oh0 = 0; oh0 < OH; oh0 += GC_POOL_ROWS) { /* a few rows at a time */      \
                    const int rows = OH - oh0 < GC_POOL_ROWS ? OH - oh0 : GC_POOL_ROWS;            \
                    T best[GC_POOL_ROWS * GC_POOL_ROW];                                            \
                    int32_t at[GC_POOL_ROWS * GC_POOL_ROW];                                        \
                    gc__##p##pool_max_plane_any(xp + (ptrdiff_t)oh0 * SH * W, W, KH, KW, SH, SW,   \
                                                rows, OW, best, at);                               \
                    T *g0 = gxp + (ptrdiff_t)oh0 * SH * W;                                         \
                    const T *gr = gp + oh0 * OW;                                                   \
                    for (int o = 0; o < rows * OW; ++o) g0[at[o]] += gr[o];                        \
                }                                                                                  \
                continue;                                                                          \
            }                                                                                      \
            for (int oh = 0; oh < OH; ++oh)                                                        \
                for (int ow = 0; ow < OW; ++ow) {                                                  \
                    GC__POOL_WINDOW                                                                \
                    T v;                                                                           \
                    int i = gc__##p##pool_window_max(xp, W, h1 - h0, w1 - w0, h0, w0, &v);         \
                    gxp[i] += gp[oh * OW + ow];                                                    \
                }                                                                                  \
        }                                                                                          \
    }                                                                                              \
    GC__FN void gc_##p##max_pool2d_backward_idx(GC_POOL_ARGS, const int32_t *idx, const T *gy,     \
                                                T *gx) {                                           \
        const int OH = (H + 2 * PH - KH) / SH + 1, OW = (W + 2 * PW - KW) / SW + 1;                \
        const long planes = (long)N * C;                                                           \
        (void)KH; (void)KW; (void)SH; (void)SW; (void)PH; (void)PW;                                \
        if (planes <= 0) return;                                                                   \
        const int par_ = GC__POOL_PAR((double)planes * (H * W + OH * OW * KH * KW)); (void)par_;   \
        GC__OMP("omp parallel for schedule(static) if(par_)")                                      \
        for (long pl = 0; pl < planes; ++pl) {                                                     \
            const int32_t *ip = idx + pl * OH * OW;                                                \
            const T *gp = gy + pl * OH * OW;                                                       \
            T *gxp = gx + pl * H * W;                                                              \
            memset(gxp, 0, sizeof(T) * (size_t)H * W);                                             \
            for (int o = 0; o < OH * OW; ++o) gxp[ip[o]] += gp[o];                                 \
        }                                                                                          \
    }                                                                                              \
    GC__FN void gc_##p##avg_pool2d_forward(GC_POOL_ARGS, const T *x, T *y) {                       \
        const int OH = (H + 2 * PH - KH) / SH + 1, OW = (W + 2 * PW - KW) / SW + 1;                \
        const long planes = (long)N * C;                                                           \
        const T div = (T)(KH * KW);                                                                \
        if (planes <= 0 || OH <= 0 || OW <= 0) return;                                             \
        const int par_ = GC__POOL_PAR((double)planes * (H * W + OH * OW * KH * KW)); (void)par_;   \
        GC__OMP("omp parallel for schedule(static) if(par_)")                                      \
        for (long pl = 0; pl < planes; ++pl) {                                                     \
            const T *xp = x + pl * H * W;                                                          \
            T *yp = y + pl * OH * OW;                                                              \
            if (GC__POOL_FAST) {                                                                   \
                for (int oh = 0; oh < OH; ++oh) {                                                  \
                    T *yr = yp + oh * OW;                                                          \
                    for (int ow = 0; ow < OW; ++ow) yr[ow] = (T)0;                                 \
                    for (int kh = 0; kh < KH; ++kh)                                                \
                        for (int kw = 0; kw < KW; ++kw) {                                          \
                            const T *r = xp + (ptrdiff_t)(oh * SH + kh) * W + kw;                  \
                            GC__OMP("omp simd")                                                    \
                            for (int ow = 0; ow < OW; ++ow) yr[ow] += r[ow * SW];                  \
                        }                                                                          \
                    for (int ow = 0; ow < OW; ++ow) yr[ow] /= div;                                 \
                }                                                                                  \
                continue;                                                                          \
            }                                                                                      \
            for (int oh = 0; oh < OH; ++oh)                                                        \
                for (int ow = 0; ow < OW; ++ow) {                                                  \
                    GC__POOL_WINDOW                                                                \
                    T s = (T)0;                                                                    \
                    for (int ih = h0; ih < h1; ++ih)                                               \
                        for (int iw = w0; iw < w1; ++iw) s += xp[(ptrdiff_t)ih * W + iw];          \
                    yp[oh * OW + ow] = s / div;                                                    \
                }                                                                                  \
        }                                                                                          \
    }                                                                                              \
    GC__FN void gc_##p##avg_pool2d_backward(GC_POOL_ARGS, const T *gy, T *gx) {                    \
        const int OH = (H + 2 * PH - KH) / SH + 1, OW = (W + 2 * PW - KW) / SW + 1;                \
        const long planes = (long)N * C;                                                           \
        const T div = (T)(KH * KW);                                                                \
        if (planes <= 0) return;                                                                   \
        const int par_ = GC__POOL_PAR((double)planes * (H * W + OH * OW * KH * KW)); (void)par_;   \
        GC__OMP("omp parallel for schedule(static) if(par_)")                                      \
        for (long pl = 0; pl < planes; ++pl) {                                                     \
            const T *gp = gy + pl * OH * OW;                                                       \
            T *gxp = gx + pl * H * W;                                                              \
            memset(gxp, 0, sizeof(T) * (size_t)H * W);                                             \
            if (GC__POOL_FAST) { /* one (kh, kw) pass touches distinct columns: no conflicts */    \
                for (int oh = 0; oh < OH; ++oh) {                                                  \
                    const T *gr = gp + oh * OW;                                                    \
                    for (int kh = 0; kh < KH; ++kh)                                                \
                        for (int kw = 0; kw < KW; ++kw) {                                          \
                            T *r = gxp + (ptrdiff_t)(oh * SH + kh) * W + kw;                       \
                            GC__OMP("omp simd")                                                    \
                            for (int ow = 0; ow < OW; ++ow) r[ow * SW] += gr[ow] / div;            \
                        }                                                                          \
                }                                                                                  \
                continue;                                                                          \
            }                                                                                      \
            for (int oh = 0; oh < OH; ++oh)                                                        \
                for (int ow = 0; ow < OW; ++ow) {                                                  \
                    GC__POOL_WINDOW                                                                \
                    const T g = gp[oh * OW + ow] / div;                                            \
                    for (int ih = h0; ih < h1; ++ih)                                               \
                        for (int iw = w0; iw < w1; ++iw) gxp[(ptrdiff_t)ih * W + iw] += g;         \
                }                                                                                  \
        }                                                                                          \
    }

GC__DEFINE_POOL(s, float)
GC__DEFINE_POOL(d, double)

#endif /* GC_POOL2D_H */
