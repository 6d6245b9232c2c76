/* graphc kernel template (typed: GC_T, GC_FN): 2-D max and average pooling, NCHW.
 *
 * Semantics = graphc.ops.pool (PyTorch max_pool2d / avg_pool2d defaults):
 *   OH = (H + 2*PH - KH) / SH + 1, OW = (W + 2*PW - KW) / SW + 1 (floor);
 *   padding must be <= kernel / 2 (every window holds at least one real element; the
 *   generator checks this, the kernels assume it);
 *   max pooling pads with -inf: a padded position is never selected; a window that contains
 *   NaN yields NaN; the gradient goes to the FIRST maximum of each window in row-major
 *   (kh, kw) order (GC_FIRST_MAX_TAKES: to the first NaN if there is one); overlapping windows
 *   accumulate;
 *   average pooling pads with zeros and divides by the full window KH*KW
 *   (count_include_pad=True); its gradient sends gy / (KH*KW) to every real position of the
 *   window; input rows/columns no window touches get 0.
 *
 *   void gc_smax_pool2d_forward (const gc_pool_shape *s, const float *x, float *y);
 *   void gc_smax_pool2d_backward(const gc_pool_shape *s, const float *x, const float *gy,
 *                                float *gx);
 *   void gc_smax_pool2d_select  (const gc_pool_shape *s, const float *x, const float *gx,
 *                                float *y);
 *        for each window, gx (x-shaped) at the window's first maximum of x: the adjoint of
 *        max_pool2d_backward with respect to gy.
 *   void gc_savg_pool2d_forward (const gc_pool_shape *s, const float *x, float *y);
 *   void gc_savg_pool2d_backward(const gc_pool_shape *s, const float *gy, float *gx);
 *   ... and gc_dmax_pool2d_* / gc_davg_pool2d_* for double.
 * Outputs are overwritten (gx is zero-filled first, never accumulated into).  No workspace.
 * OpenMP over the N*C planes (static schedule), so results are deterministic.
 *
 * Windows inside the input take fast paths the compiler vectorizes along each output row:
 * for max pooling, branch-free first-maximum selects (the window loops unrolled for 2x2/2 and
 * 3x3/2), for every inside window of a plane, padded or not; for average pooling (unpadded
 * planes), one window offset (kh, kw) at a time.  Max-pool backward whose windows tile the
 * plane exactly writes gx densely.  Windows padding clips are computed one at a time.  The
 * max-pool backward and select find the first maxima a block of windows at a time (at most
 * GC_POOL_BLOCK, on the stack), then scatter or gather.
 */

/* The kh x kw window whose top-left input is (h0, w0) in plane xp (rows of W): its first
 * maximum in *best, and the flat index h*W + w of that element.  Branch-free, so that the
 * loops over windows vectorize. */
static inline __attribute__((always_inline)) int GC_FN(_pool_window_max)(
    const GC_T *restrict xp, int W, int kh, int kw, int h0, int w0, GC_T *best) {
    int at = h0 * W + w0;
    GC_T b = xp[at];
    for (int i = 0; i < kh; ++i)
        for (int j = 0; j < kw; ++j) {
            const int k = (h0 + i) * W + w0 + j;
            const GC_T v = xp[k];
            const int take = GC_FIRST_MAX_TAKES(v, b);
            b = take ? v : b;
            at = take ? k : at;
        }
    *best = b;
    return at;
}

/* Max pool of a rows x cols grid of windows inside the input: window (r, c) has its top-left
 * input at xp[r*SH*W + c*SW]; best[r*ld + c] = its first maximum and, when want_at,
 * at[r*ld + c] = at0 + that element's index relative to xp.  Inlined with constant window
 * sizes (see _pool_max_grid_any), the window loops unroll and the c loop vectorizes. */
static inline __attribute__((always_inline)) void GC_FN(_pool_max_grid)(
    const GC_T *restrict xp, int W, int KH, int KW, int SH, int SW, int rows, int cols,
    GC_T *restrict best, int32_t *restrict at, int ld, int at0, int want_at) {
    for (int r = 0; r < rows; ++r) {
        GC_OMP("omp simd")
        for (int c = 0; c < cols; ++c) {
            GC_T b;
            const int i = GC_FN(_pool_window_max)(xp, W, KH, KW, r * SH, c * SW, &b);
            best[r * ld + c] = b;
            if (want_at) at[r * ld + c] = at0 + i;
        }
    }
}

/* _pool_max_grid with the common window shapes' sizes as constants (at == NULL: values
 * only).  Not inlined: its six instances are compiled once. */
static GC_UNUSED __attribute__((noinline)) void GC_FN(_pool_max_grid_any)(
    const gc_pool_shape *s, const GC_T *xp, int rows, int cols, GC_T *best, int32_t *at, int ld,
    int at0) {
    const int KH = s->KH, KW = s->KW, SH = s->SH, SW = s->SW, W = s->W;
    if (KH == 2 && KW == 2 && SH == 2 && SW == 2) {
        if (at)
            GC_FN(_pool_max_grid)(xp, W, 2, 2, 2, 2, rows, cols, best, at, ld, at0, 1);
        else
            GC_FN(_pool_max_grid)(xp, W, 2, 2, 2, 2, rows, cols, best, at, ld, at0, 0);
    } else if (KH == 3 && KW == 3 && SH == 2 && SW == 2) {
        if (at)
            GC_FN(_pool_max_grid)(xp, W, 3, 3, 2, 2, rows, cols, best, at, ld, at0, 1);
        else
            GC_FN(_pool_max_grid)(xp, W, 3, 3, 2, 2, rows, cols, best, at, ld, at0, 0);
    } else {
        GC_FN(_pool_max_grid)(xp, W, KH, KW, SH, SW, rows, cols, best, at, ld, at0, at != NULL);
    }
}

/* ------------------------------------------------------------------ a pooling call
 * What the per-plane functions see: the shape, the output size, the planes, the plane sizes
 * (elements of an input plane, H*W, and of an output plane, OH*OW), the windows that lie
 * inside the input (output rows [ih0, ih1) x columns [iw0, iw1); all when unpadded) and the
 * operands. */
typedef struct {
    const gc_pool_shape *s;
    int OH, OW;
    int64_t planes; /* N*C */
    int par;     /* run the planes in parallel */
    ptrdiff_t in_plane, out_plane;
    int ih0, ih1, iw0, iw1;
    const GC_T *a, *b;
    GC_T *out;
} GC_FN(_pool_call);

/* Sets up a pooling call on operands a, b, out: sizes, inside windows, and `par`: whether
 * its N*C planes are worth running in parallel. */
static inline GC_FN(_pool_call) GC_FN(_pool_setup)(const gc_pool_shape *s, const GC_T *a,
                                                   const GC_T *b, GC_T *out) {
    const int OH = gc_window_out(s->H, s->KH, s->SH, s->PH);
    const int OW = gc_window_out(s->W, s->KW, s->SW, s->PW);
    GC_FN(_pool_call) pc = {s, OH, OW, s->N * s->C, 0, (ptrdiff_t)s->H * s->W,
                            (ptrdiff_t)OH * OW, 0, 0, 0, 0, a, b, out};
    const double work = (double)pc.planes * (pc.in_plane + pc.out_plane * s->KH * s->KW);
    pc.par = pc.planes > 1 && work > 2.0 * GC_POOL_MIN_WORK_PER_THREAD;
    gc_window_inside(s->H, OH, s->KH, s->SH, s->PH, &pc.ih0, &pc.ih1);
    gc_window_inside(s->W, OW, s->KW, s->SW, s->PW, &pc.iw0, &pc.iw1);
    return pc;
}

/* The windows of output row oh, columns [ow0, ow1), clipped to the input one at a time:
 * best[o] and (at != NULL) at[o] = the flat index in the plane, o = ow - ow0. */
static inline void GC_FN(_pool_max_clipped)(const gc_pool_shape *s, const GC_T *xp, int oh,
                                            int ow0, int ow1, GC_T *best, int32_t *at) {
    for (int ow = ow0; ow < ow1; ++ow) {
        int h0, h1, w0, w1;
        gc_pool_window(s, oh, ow, &h0, &h1, &w0, &w1);
        const int i = GC_FN(_pool_window_max)(xp, s->W, h1 - h0, w1 - w0, h0, w0, best + ow - ow0);
        if (at) at[ow - ow0] = i;
    }
}

/* Max pool of the windows in output rows [oh0, oh1) x columns [ow0, ow1) of plane xp:
 * best[o] = each window's first maximum and (at != NULL) at[o] = its flat index in the plane,
 * o = (oh - oh0) * (ow1 - ow0) + ow - ow0.  The windows inside the input go through the
 * vectorized _pool_max_grid_any, those padding clips (the border) one at a time. */
static GC_UNUSED void GC_FN(_pool_argmax_block)(const GC_FN(_pool_call) *pc, const GC_T *xp,
                                                int oh0, int oh1, int ow0, int ow1, GC_T *best,
                                                int32_t *at) {
    const gc_pool_shape *s = pc->s;
    const int cols = ow1 - ow0;
    /* the inside windows of this block */
    int ih0 = pc->ih0 > oh0 ? pc->ih0 : oh0, ih1 = pc->ih1 < oh1 ? pc->ih1 : oh1;
    int iw0 = pc->iw0 > ow0 ? pc->iw0 : ow0, iw1 = pc->iw1 < ow1 ? pc->iw1 : ow1;
    if (ih1 > ih0 && iw1 > iw0) {
        const int o = (ih0 - oh0) * cols + iw0 - ow0;
        const int origin = (ih0 * s->SH - s->PH) * s->W + iw0 * s->SW - s->PW;
        GC_FN(_pool_max_grid_any)(s, xp + origin, ih1 - ih0, iw1 - iw0, best + o,
                                  at ? at + o : NULL, cols, origin);
        if (ih0 == oh0 && ih1 == oh1 && iw0 == ow0 && iw1 == ow1) return; /* no border */
    } else {
        ih0 = ih1 = oh0;
    }
    for (int oh = oh0; oh < oh1; ++oh) {
        const int o = (oh - oh0) * cols;
        if (oh < ih0 || oh >= ih1) {
            GC_FN(_pool_max_clipped)(s, xp, oh, ow0, ow1, best + o, at ? at + o : NULL);
            continue;
        }
        GC_FN(_pool_max_clipped)(s, xp, oh, ow0, iw0, best + o, at ? at + o : NULL);
        const int right = o + iw1 - ow0;
        GC_FN(_pool_max_clipped)(s, xp, oh, iw1, ow1, best + right, at ? at + right : NULL);
    }
}

/* Routes values through the first maximum of each window of plane xp, a block of at most
 * GC_POOL_BLOCK windows at a time (whole output rows when they fit).  select == 0 (max-pool
 * backward): dst[at] += src[o], src a plane of gy, dst of gx.  select != 0: dst[o] = src[at],
 * src a plane of x's shape, dst of the output's. */
static GC_UNUSED void GC_FN(_pool_route)(const GC_FN(_pool_call) *pc, const GC_T *xp,
                                         const GC_T *src, GC_T *dst, int select) {
    const int OH = pc->OH, OW = pc->OW;
    const int rows = OW <= GC_POOL_BLOCK ? GC_POOL_BLOCK / OW : 1;
    const int cols = OW <= GC_POOL_BLOCK ? OW : GC_POOL_BLOCK;
    GC_T best[GC_POOL_BLOCK];
    int32_t at[GC_POOL_BLOCK];
    for (int oh0 = 0; oh0 < OH; oh0 += rows)
        for (int ow0 = 0; ow0 < OW; ow0 += cols) {
            const int oh1 = oh0 + rows < OH ? oh0 + rows : OH;
            const int ow1 = ow0 + cols < OW ? ow0 + cols : OW;
            const int count = (oh1 - oh0) * (ow1 - ow0), first = oh0 * OW + ow0;
            GC_FN(_pool_argmax_block)(pc, xp, oh0, oh1, ow0, ow1, best, at);
            if (select)
                for (int o = 0; o < count; ++o) dst[first + o] = src[at[o]];
            else
                for (int o = 0; o < count; ++o) dst[at[o]] += src[first + o];
        }
}

/* Max-pool backward of a plane whose windows tile it exactly (KH == SH, KW == SW,
 * OH*SH == H, OW*SW == W: the common 2x2/2 on even sizes): every input element lies in one
 * window, so gx is written densely -- gy at the window's first maximum, 0 elsewhere -- with
 * no zero-fill and no scatter. */
static inline __attribute__((always_inline)) void GC_FN(_pool_max_tiled_backward)(
    const GC_T *restrict xp, const GC_T *restrict gp, GC_T *restrict gxp, int W, int KH, int KW,
    int OH, int OW) {
    for (int oh = 0; oh < OH; ++oh) {
        const int h0 = oh * KH;
        GC_OMP("omp simd")
        for (int ow = 0; ow < OW; ++ow) {
            GC_T b;
            const int i = GC_FN(_pool_window_max)(xp, W, KH, KW, h0, ow * KW, &b);
            const GC_T g = gp[oh * OW + ow];
            for (int kh = 0; kh < KH; ++kh)
                for (int kw = 0; kw < KW; ++kw) {
                    const int j = (h0 + kh) * W + ow * KW + kw;
                    gxp[j] = j == i ? g : 0;
                }
        }
    }
}

/* Whether the planes are tiny (at most 2 windows a row) and tiled exactly by 2x2 windows of
 * stride 2 with no padding: consecutive planes then stack into one tall plane of the same
 * windows (a conv's 4 x 4 maps: per plane, the vector loops over a row were overhead). */
static inline int GC_FN(_pool_small_2x2)(const GC_FN(_pool_call) *pc) {
    const gc_pool_shape *s = pc->s;
    return pc->OW <= 2 && s->KH == 2 && s->KW == 2 && s->SH == 2 && s->SW == 2 && !s->PH &&
           !s->PW && pc->OH * 2 == s->H && pc->OW * 2 == s->W;
}

/* ------------------------------------------------------------------ per plane */

/* y = max_pool2d(x) on one plane (a = x). */
static GC_UNUSED void GC_FN(_max_pool_forward_plane)(const GC_FN(_pool_call) *pc, int64_t pl) {
    GC_FN(_pool_argmax_block)(pc, pc->a + pl * pc->in_plane, 0, pc->OH, 0, pc->OW,
                              pc->out + pl * pc->out_plane, NULL);
}

/* gx = the max-pool gradient on one plane (a = x, b = gy, out = gx). */
static GC_UNUSED void GC_FN(_max_pool_backward_plane)(const GC_FN(_pool_call) *pc, int64_t pl) {
    const gc_pool_shape *s = pc->s;
    const GC_T *xp = pc->a + pl * pc->in_plane, *gp = pc->b + pl * pc->out_plane;
    GC_T *gxp = pc->out + pl * pc->in_plane;
    if (!s->PH && !s->PW && s->KH == s->SH && s->KW == s->SW && pc->OH * s->SH == s->H &&
        pc->OW * s->SW == s->W) {
        if (s->KH == 2 && s->KW == 2)
            GC_FN(_pool_max_tiled_backward)(xp, gp, gxp, s->W, 2, 2, pc->OH, pc->OW);
        else
            GC_FN(_pool_max_tiled_backward)(xp, gp, gxp, s->W, s->KH, s->KW, pc->OH, pc->OW);
        return;
    }
    memset(gxp, 0, sizeof(GC_T) * (size_t)pc->in_plane);
    GC_FN(_pool_route)(pc, xp, gp, gxp, 0);
}

/* y = gx at each window's first maximum of x, on one plane (a = x, b = gx, out = y). */
static GC_UNUSED void GC_FN(_max_pool_select_plane)(const GC_FN(_pool_call) *pc, int64_t pl) {
    GC_FN(_pool_route)(pc, pc->a + pl * pc->in_plane, pc->b + pl * pc->in_plane,
                       pc->out + pl * pc->out_plane, 1);
}

/* Padded average pooling of one plane, a window clipped to the input at a time: forward
 * (gx == NULL) y = the sum of x over each window / (KH*KW); backward: gx += gy / (KH*KW) over
 * each window (gx zero-filled before). */
static GC_UNUSED void GC_FN(_avg_pool_clipped)(const GC_FN(_pool_call) *pc, const GC_T *x, GC_T *y,
                                               const GC_T *gy, GC_T *gx) {
    const gc_pool_shape *s = pc->s;
    const GC_T div = (GC_T)(s->KH * s->KW);
    for (int oh = 0, o = 0; oh < pc->OH; ++oh)
        for (int ow = 0; ow < pc->OW; ++ow, ++o) {
            int h0, h1, w0, w1;
            gc_pool_window(s, oh, ow, &h0, &h1, &w0, &w1);
            GC_T sum = 0;
            const GC_T g = gx ? gy[o] / div : 0;
            for (int ih = h0; ih < h1; ++ih)
                for (int iw = w0; iw < w1; ++iw) {
                    if (gx)
                        gx[(ptrdiff_t)ih * s->W + iw] += g;
                    else
                        sum += x[(ptrdiff_t)ih * s->W + iw];
                }
            if (!gx) y[o] = sum / div;
        }
}

/* y = avg_pool2d(x) on one plane (a = x).  Unpadded: whole output rows, one window offset
 * (kh, kw) at a time. */
static GC_UNUSED void GC_FN(_avg_pool_forward_plane)(const GC_FN(_pool_call) *pc, int64_t pl) {
    const gc_pool_shape *s = pc->s;
    const GC_T *xp = pc->a + pl * pc->in_plane;
    GC_T *yp = pc->out + pl * pc->out_plane;
    const int OH = pc->OH, OW = pc->OW, W = s->W, KH = s->KH, KW = s->KW, SH = s->SH, SW = s->SW;
    const GC_T div = (GC_T)(KH * KW);
    if (!s->PH && !s->PW) {
        for (int oh = 0; oh < OH; ++oh) {
            GC_T *yr = yp + oh * OW;
            for (int ow = 0; ow < OW; ++ow) yr[ow] = 0;
            for (int kh = 0; kh < KH; ++kh)
                for (int kw = 0; kw < KW; ++kw) {
                    const GC_T *r = xp + (ptrdiff_t)(oh * SH + kh) * W + kw;
                    GC_OMP("omp simd")
                    for (int ow = 0; ow < OW; ++ow) yr[ow] += r[ow * SW];
                }
            for (int ow = 0; ow < OW; ++ow) yr[ow] /= div;
        }
        return;
    }
    GC_FN(_avg_pool_clipped)(pc, xp, yp, NULL, NULL);
}

/* gx = the average-pool gradient on one plane (a = gy, out = gx).  Unpadded: one window
 * offset (kh, kw) at a time over a whole output row touches distinct inputs. */
static GC_UNUSED void GC_FN(_avg_pool_backward_plane)(const GC_FN(_pool_call) *pc, int64_t pl) {
    const gc_pool_shape *s = pc->s;
    GC_T *gxp = pc->out + pl * pc->in_plane;
    memset(gxp, 0, sizeof(GC_T) * (size_t)pc->in_plane);
    const GC_T *gp = pc->a + pl * pc->out_plane;
    const int OH = pc->OH, OW = pc->OW, W = s->W, KH = s->KH, KW = s->KW, SH = s->SH, SW = s->SW;
    const GC_T div = (GC_T)(KH * KW);
    if (!s->PH && !s->PW) {
        for (int oh = 0; oh < OH; ++oh)
            for (int kh = 0; kh < KH; ++kh)
                for (int kw = 0; kw < KW; ++kw) {
                    const GC_T *gr = gp + oh * OW;
                    GC_T *r = gxp + (ptrdiff_t)(oh * SH + kh) * W + kw;
                    GC_OMP("omp simd")
                    for (int ow = 0; ow < OW; ++ow) r[ow * SW] += gr[ow] / div;
                }
        return;
    }
    GC_FN(_avg_pool_clipped)(pc, NULL, NULL, gp, gxp);
}

/* ------------------------------------------------------------------ public
 * Each runs its per-plane function on the N*C planes (OpenMP, static schedule, when there is
 * enough work: deterministic). */
/* y = max_pool2d(x). */
static GC_UNUSED void GC_FN(max_pool2d_forward)(const gc_pool_shape *s, const GC_T *x, GC_T *y) {
    const GC_FN(_pool_call) pc = GC_FN(_pool_setup)(s, x, NULL, y);
    if (GC_FN(_pool_small_2x2)(&pc)) {
        /* tiny planes the 2x2/2 windows tile: all of them as one tall plane of rows*OW
         * windows, vectorized down the rows (a row holds only 1 or 2 windows) in runs of
         * GC_POOL_BLOCK rows */
        const int64_t rows = pc.planes * pc.OH;
        const int W = s->W, OW = pc.OW;
        const int64_t runs = (rows + GC_POOL_BLOCK - 1) / GC_POOL_BLOCK;
        GC_OMP("omp parallel for schedule(static) if(pc.par)")
        for (int64_t r = 0; r < runs; ++r) {
            const int64_t q0 = r * GC_POOL_BLOCK;
            const int n = (int)(rows - q0 < GC_POOL_BLOCK ? rows - q0 : GC_POOL_BLOCK);
            const GC_T *xr = x + q0 * 2 * W;
            GC_T *yr = y + q0 * OW;
            for (int c = 0; c < OW; ++c) {
                GC_OMP("omp simd")
                for (int q = 0; q < n; ++q)
                    GC_FN(_pool_window_max)(xr, W, 2, 2, 2 * q, 2 * c, yr + q * OW + c);
            }
        }
        return;
    }
    GC_OMP("omp parallel for schedule(static) if(pc.par)")
    for (int64_t pl = 0; pl < pc.planes; ++pl) GC_FN(_max_pool_forward_plane)(&pc, pl);
}
/* gx = the gradient of max_pool2d with respect to x, given gy. */
static GC_UNUSED void GC_FN(max_pool2d_backward)(const gc_pool_shape *s, const GC_T *x,
                                                 const GC_T *gy, GC_T *gx) {
    const GC_FN(_pool_call) pc = GC_FN(_pool_setup)(s, x, gy, gx);
    GC_OMP("omp parallel for schedule(static) if(pc.par)")
    for (int64_t pl = 0; pl < pc.planes; ++pl) GC_FN(_max_pool_backward_plane)(&pc, pl);
}
/* y = gx at each window's first maximum of x. */
static GC_UNUSED void GC_FN(max_pool2d_select)(const gc_pool_shape *s, const GC_T *x,
                                               const GC_T *gx, GC_T *y) {
    const GC_FN(_pool_call) pc = GC_FN(_pool_setup)(s, x, gx, y);
    GC_OMP("omp parallel for schedule(static) if(pc.par)")
    for (int64_t pl = 0; pl < pc.planes; ++pl) GC_FN(_max_pool_select_plane)(&pc, pl);
}
/* y = avg_pool2d(x). */
static GC_UNUSED void GC_FN(avg_pool2d_forward)(const gc_pool_shape *s, const GC_T *x, GC_T *y) {
    const GC_FN(_pool_call) pc = GC_FN(_pool_setup)(s, x, NULL, y);
    GC_OMP("omp parallel for schedule(static) if(pc.par)")
    for (int64_t pl = 0; pl < pc.planes; ++pl) GC_FN(_avg_pool_forward_plane)(&pc, pl);
}
/* gx = the gradient of avg_pool2d with respect to its input, given gy. */
static GC_UNUSED void GC_FN(avg_pool2d_backward)(const gc_pool_shape *s, const GC_T *gy,
                                                 GC_T *gx) {
    const GC_FN(_pool_call) pc = GC_FN(_pool_setup)(s, gy, NULL, gx);
    GC_OMP("omp parallel for schedule(static) if(pc.par)")
    for (int64_t pl = 0; pl < pc.planes; ++pl) GC_FN(_avg_pool_backward_plane)(&pc, pl);
}
