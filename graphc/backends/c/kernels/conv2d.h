/* graphc kernel template (typed: GC_T, GC_FN): 2-D convolution (cross-correlation).
 * Needs the "gemm" template (gemm_kernel.h, gemm.h) pasted before it for the same type.
 *
 * Semantics = graphc.ops.conv (PyTorch conv2d, groups=1, dilation=1, no bias):
 *   x: (N, C, H, W) NCHW, w: (O, C, KH, KW) OIHW, y: (N, O, OH, OW), all C-contiguous;
 *   OH = (H + 2*PH - KH) / SH + 1, OW = (W + 2*PW - KW) / SW + 1 (floor), zero padding;
 *   y[n,o,i,j] = sum_{c,a,b} xpad[n, c, i*SH + a, j*SW + b] * w[o, c, a, b].
 *   Input rows/columns no window touches (because of the floor) get a zero gradient.
 *
 *   size_t gc_sconv2d_forward_workspace_size(const gc_conv_shape *s);
 *   void   gc_sconv2d_forward(const gc_conv_shape *s, const float *x, const float *w, float *y,
 *                             void *ws, size_t ws_bytes, const gc_epilogue *epi);
 *       epi (may be NULL): called on each block of image n's output as the GEMM stores it:
 *       rows i = output channel, columns j = oh*OW + ow, image = n (owns_store is ignored).
 *   size_t gc_sconv2d_backward_data_workspace_size(const gc_conv_shape *s);
 *   void   gc_sconv2d_backward_data(const gc_conv_shape *s, const float *gy, const float *w,
 *                                   float *gx, void *ws, size_t ws_bytes, const gc_epilogue *epi);
 *       epi: called once per image on gx[n] right after its col2im: i0 = j0 = 0, m = C,
 *       n = H*W, ldc = H*W, image = n.
 *   size_t gc_sconv2d_backward_filter_workspace_size(const gc_conv_shape *s);
 *   void   gc_sconv2d_backward_filter(const gc_conv_shape *s, const float *x, const float *gy,
 *                                     float *gw, void *ws, size_t ws_bytes);
 *   ... and gc_dconv2d_* for double.
 * Outputs (y, gx, gw) are overwritten, never accumulated into; they must not alias inputs.
 * Workspace: as for the GEMM (caller-owned, any alignment, sized for omp_get_max_threads();
 * less: fewer threads; too little for one thread or NULL: malloc).  It grows with the thread
 * count and, for the backward-data pass, with C*KH*KW*OH*OW per thread; not with N.
 *
 * Method: per image, the packed GEMM of gemm.h (O x OH*OW x C*KH*KW per image):
 *   forward         y[n] = w (O x CKK) @ col[n]           col = im2col(x[n]) (CKK x OH*OW)
 *   backward data   dcol = w^T @ gy[n] (w read transposed in place), col2im-added into gx[n]
 *   backward filter gw   = sum_n gy[n] @ col[n]^T
 * col is never stored for the forward and filter-gradient passes: the GEMM's B packer is
 * replaced by an implicit-im2col packer that reads a zero-padded copy of the image
 * (C x (H+2PH) x (W+2PW), made per image in the workspace; no copy without padding) straight
 * into the GEMM's NR-wide panels.  The backward-data pass stores dcol (CKK x OH*OW) in the
 * workspace and scatters it (col2im).  Pointwise (1x1, stride 1, unpadded) convolutions are
 * plain GEMMs on the image.
 * Threads: OpenMP over the batch (each thread has its own panels and buffers).  Forward and
 * backward data hand images out dynamically, each computed the same way whichever thread
 * takes it; the filter gradient gives each thread a fixed range of images and sums the
 * per-thread partials in thread order: bit-identical run to run for a given thread count.
 * With fewer images than threads the images run one after another, the GEMM parallel inside.
 */

/* One image as the implicit-im2col packers read it: xp, the image zero-padded to
 * C x Hp x Wp (the input itself when unpadded), so that
 * col[(c*KH + a)*KW + b][oh*OW + ow] = xp[c][oh*SH + a][ow*SW + b] with no bounds checks. */
typedef struct {
    const GC_T *xp;
    int C, Hp, Wp, KH, KW, SH, SW, OH, OW;
} GC_FN(_im2col);

/* The image the packers read: x itself, or x zero-padded into xpad (C x Hp x Wp). */
static GC_UNUSED GC_FN(_im2col) GC_FN(_im2col_image)(const gc_conv_shape *s, int OH, int OW,
                                                     const GC_T *restrict x, GC_T *restrict xpad) {
    const int H = s->H, W = s->W, PH = s->PH, PW = s->PW, Hp = H + 2 * PH, Wp = W + 2 * PW;
    const GC_FN(_im2col) im = {PH || PW ? xpad : x, s->C, Hp, Wp, s->KH, s->KW, s->SH, s->SW,
                               OH, OW};
    if (!PH && !PW) return im;
    for (int c = 0; c < s->C; ++c) {
        GC_T *restrict d = xpad + (ptrdiff_t)c * Hp * Wp;
        const GC_T *restrict src = x + (ptrdiff_t)c * H * W;
        memset(d, 0, sizeof(GC_T) * (size_t)PH * Wp);
        for (int i = 0; i < H; ++i) {
            GC_T *restrict r = d + (ptrdiff_t)(PH + i) * Wp;
            for (int j = 0; j < PW; ++j) r[j] = 0;
            memcpy(r + PW, src + (ptrdiff_t)i * W, sizeof(GC_T) * (size_t)W);
            for (int j = PW + W; j < Wp; ++j) r[j] = 0;
        }
        memset(d + (ptrdiff_t)(PH + H) * Wp, 0, sizeof(GC_T) * (size_t)PH * Wp);
    }
    return im;
}

/* Steps the column index (c, a, b) of col (c*KH + a)*KW + b to the next one. */
static inline void GC_FN(_im2col_next)(int KH, int KW, int *c, int *a, int *b) {
    if (++*b == KW) {
        *b = 0;
        if (++*a == KH) {
            *a = 0;
            ++*c;
        }
    }
}

/* The forward's B packer: op(B) = col (K = C*KH*KW, N = OH*OW).  The NR output pixels of a
 * panel split into segments along output rows; within a segment the source is contiguous
 * (stride SW), copied with vector moves when SW == 1. */
static GC_UNUSED GC_NO_LIBCALLS void GC_FN(_pack_im2col)(const void *ctx, int64_t pc, int64_t jc,
                                                         int kc, int nc, GC_T *restrict bp) {
    enum { NR = GC_FN(_nr), VL = GC_FN(_vl) };
    typedef GC_FN(_vec_u) vec_u;
    const GC_FN(_im2col) *g = (const GC_FN(_im2col) *)ctx;
    const GC_T *xp = g->xp;
    const int OW = g->OW, SW = g->SW;
    const ptrdiff_t rowstep = (ptrdiff_t)g->SH * g->Wp, plane = (ptrdiff_t)g->Hp * g->Wp;
    for (int j0 = 0; j0 < nc; j0 += NR) {
        const int nr = nc - j0 < NR ? nc - j0 : NR;
        GC_T *restrict pan = bp + (size_t)j0 * kc;
        /* segments of the pixels jc+j0 .. +nr: (panel offset, source offset, length) */
        ptrdiff_t src_at[NR + 1];
        int dst_at[NR + 1], len[NR + 1], ns = 0;
        const int j = (int)jc + j0; /* (jc < OH*OW < 2**31: see common.h) */
        for (int oh = j / OW, ow = j % OW, d = 0; d < nr; ++oh, ow = 0, ++ns) {
            len[ns] = OW - ow < nr - d ? OW - ow : nr - d;
            src_at[ns] = oh * rowstep + (ptrdiff_t)ow * SW;
            dst_at[ns] = d;
            d += len[ns];
        }
        int b = (int)pc % g->KW, t = (int)pc / g->KW, a = t % g->KH, c = t / g->KH;
        for (int kk = 0; kk < kc; ++kk, GC_FN(_im2col_next)(g->KH, g->KW, &c, &a, &b)) {
            const GC_T *restrict base = xp + c * plane + (ptrdiff_t)a * g->Wp + b;
            GC_T *restrict dst = pan + (size_t)kk * NR;
            for (int sg = 0; sg < ns; ++sg) {
                const GC_T *restrict src = base + src_at[sg];
                GC_T *restrict dd = dst + dst_at[sg];
                if (SW == 1) {
                    int e = 0;
                    for (; e + VL <= len[sg]; e += VL)
                        *(vec_u *)(dd + e) = *(const vec_u *)(src + e);
                    for (; e < len[sg]; ++e) dd[e] = src[e];
                } else {
                    for (int e = 0; e < len[sg]; ++e) dd[e] = src[(ptrdiff_t)e * SW];
                }
            }
            for (int e = nr; e < NR; ++e) dst[e] = 0;
        }
    }
}

/* The filter gradient's B packer: op(B) = col^T (K = OH*OW, N = C*KH*KW).  Row kk of a panel
 * is output pixel pc+kk of the NR columns (c, a, b): a gather with fixed per-column offsets
 * (vectorised as gathers where the ISA has them). */
static GC_UNUSED GC_NO_LIBCALLS void GC_FN(_pack_im2col_t)(const void *ctx, int64_t pc,
                                                           int64_t jc, int kc, int nc,
                                                           GC_T *restrict bp) {
    enum { NR = GC_FN(_nr) };
    const GC_FN(_im2col) *g = (const GC_FN(_im2col) *)ctx;
    const int OW = g->OW, SW = g->SW;
    const ptrdiff_t rowstep = (ptrdiff_t)g->SH * g->Wp, plane = (ptrdiff_t)g->Hp * g->Wp;
    for (int j0 = 0; j0 < nc; j0 += NR) {
        const int nr = nc - j0 < NR ? nc - j0 : NR;
        GC_T *restrict pan = bp + (size_t)j0 * kc;
        int off[NR];
        const int j = (int)jc + j0; /* (jc < C*KH*KW < 2**31) */
        int b = j % g->KW, t = j / g->KW, a = t % g->KH, c = t / g->KH;
        for (int jj = 0; jj < NR; ++jj, GC_FN(_im2col_next)(g->KH, g->KW, &c, &a, &b))
            off[jj] = jj < nr ? (int)(c * plane + (ptrdiff_t)a * g->Wp + b) : 0;
        for (int kk = 0, oh = (int)pc / OW, ow = (int)pc % OW; kk < kc; ++kk) {
            const GC_T *restrict src = g->xp + oh * rowstep + (ptrdiff_t)ow * SW;
            GC_T *restrict d = pan + (size_t)kk * NR;
            for (int jj = 0; jj < NR; ++jj) d[jj] = src[off[jj]];
            if (++ow == OW) {
                ow = 0;
                ++oh;
            }
        }
        if (nr < NR)
            for (int kk = 0; kk < kc; ++kk)
                for (int jj = nr; jj < NR; ++jj) pan[(size_t)kk * NR + jj] = 0;
    }
}

/* gx[c][ih][iw] = the sum of the dcol entries im2col would read from there (overwrites). */
static GC_UNUSED void GC_FN(_col2im)(const gc_conv_shape *s, int OH, int OW,
                                     const GC_T *restrict col, GC_T *restrict gx) {
    const int H = s->H, W = s->W, KH = s->KH, KW = s->KW, SW = s->SW;
    const ptrdiff_t Pn = (ptrdiff_t)OH * OW;
    memset(gx, 0, sizeof(GC_T) * (size_t)s->C * H * W);
    for (int c = 0; c < s->C; ++c)
        for (int a = 0; a < KH; ++a)
            for (int b = 0; b < KW; ++b) {
                const GC_T *restrict src = col + ((ptrdiff_t)(c * KH + a) * KW + b) * Pn;
                int lo, hi;
                gc_window_valid_range(W, OW, SW, s->PW, b, &lo, &hi);
                for (int oh = 0; oh < OH; ++oh) {
                    const int ih = oh * s->SH + a - s->PH;
                    if (ih < 0 || ih >= H) continue;
                    const GC_T *restrict sr = src + (ptrdiff_t)oh * OW;
                    GC_T *restrict d = gx + ((ptrdiff_t)c * H + ih) * W + b - s->PW;
                    if (SW == 1) {
                        for (int ow = lo; ow < hi; ++ow) d[ow] += sr[ow];
                    } else {
                        for (int ow = lo; ow < hi; ++ow) d[(ptrdiff_t)ow * SW] += sr[ow];
                    }
                }
            }
}

/* ------------------------------------------------------------------ scratch and threads */
enum { GC_FN(_conv_fwd), GC_FN(_conv_bwd_data), GC_FN(_conv_bwd_filter) };

/* A conv pass's scratch per thread: [GEMM panels: `gemm` bytes][image buffer: the padded
 * image (forward, filter), dcol (backward data)][partial gw (filter)].  The GEMM part has
 * room for the GEMM's alignment slack, so that every thread's parts together make a whole
 * workspace for a multi-threaded GEMM (gc_scratch_bytes). */
typedef struct {
    size_t gemm, buffer, partial;
} GC_FN(_conv_bytes);

/* The scratch of one thread for a pass (GC_FN(_conv_fwd), ...). */
static inline GC_FN(_conv_bytes) GC_FN(_conv_sizes)(const gc_conv_shape *s, int pass) {
    const int OH = gc_window_out(s->H, s->KH, s->SH, s->PH);
    const int OW = gc_window_out(s->W, s->KW, s->SW, s->PW);
    const int Pn = OH * OW, CKK = s->C * s->KH * s->KW, pw = gc_conv_is_pointwise(s);
    const size_t pad = pw || (!s->PH && !s->PW) ? 0 : sizeof(GC_T) * (size_t)s->C *
                                                           (s->H + 2 * s->PH) * (s->W + 2 * s->PW);
    GC_FN(_conv_bytes) b = {0, 0, 0};
    if (pass == GC_FN(_conv_fwd)) {
        b.gemm = GC_FN(_gemm_thread_bytes)(s->O, Pn, CKK);
        b.buffer = pad;
    } else if (pass == GC_FN(_conv_bwd_data)) {
        b.gemm = GC_FN(_gemm_thread_bytes)(CKK, Pn, s->O);
        b.buffer = pw ? 0 : sizeof(GC_T) * (size_t)CKK * Pn;
    } else {
        b.gemm = GC_FN(_gemm_thread_bytes)(s->O, CKK, Pn);
        b.buffer = pad;
        b.partial = sizeof(GC_T) * (size_t)s->O * CKK;
    }
    b.gemm = gc_round_up(gc_scratch_bytes(1, b.gemm), 64);
    b.buffer = gc_round_up(b.buffer, 64);
    b.partial = gc_round_up(b.partial, 64);
    return b;
}

/* Threads worth using for a pass (the same flop count for all three). */
static inline int GC_FN(_conv_threads)(const gc_conv_shape *s) {
    const double OH = gc_window_out(s->H, s->KH, s->SH, s->PH);
    const double OW = gc_window_out(s->W, s->KW, s->SW, s->PW);
    return gc_threads_for(2.0 * (double)s->N * s->O * OH * OW * s->C * s->KH * s->KW,
                          gc_max_threads());
}

/* Bytes of workspace a pass wants: a scratch slice per thread. */
static inline size_t GC_FN(_conv_workspace_size)(const gc_conv_shape *s, int pass) {
    const GC_FN(_conv_bytes) b = GC_FN(_conv_sizes)(s, pass);
    return gc_scratch_bytes(GC_FN(_conv_threads)(s), b.gemm + b.buffer + b.partial);
}
/* Bytes of workspace of gc_?conv2d_forward (and so on: see the header comment). */
static inline size_t GC_FN(conv2d_forward_workspace_size)(const gc_conv_shape *s) {
    return GC_FN(_conv_workspace_size)(s, GC_FN(_conv_fwd));
}
/* Bytes of workspace of gc_?conv2d_backward_data. */
static inline size_t GC_FN(conv2d_backward_data_workspace_size)(const gc_conv_shape *s) {
    return GC_FN(_conv_workspace_size)(s, GC_FN(_conv_bwd_data));
}
/* Bytes of workspace of gc_?conv2d_backward_filter. */
static inline size_t GC_FN(conv2d_backward_filter_workspace_size)(const gc_conv_shape *s) {
    return GC_FN(_conv_workspace_size)(s, GC_FN(_conv_bwd_filter));
}

/* Runs a GEMM job on one image: multi-threaded over `bytes` of scratch at g when par,
 * else on this thread with g as its panels. */
static inline void GC_FN(_conv_gemm)(const GC_FN(_gemm_job) *job, char *g, size_t bytes, int par) {
    if (par)
        GC_FN(_gemm_run)(job, g, bytes);
    else
        GC_FN(_gemm_serial)(job, g);
}

/* ------------------------------------------------------------------ forward and backward data */

/* What the per-image functions of a pass need: the shape, its output size, the pass's input
 * (x or gy), the weights, the output (y or gx) and the epilogue. */
typedef struct {
    const gc_conv_shape *s;
    int OH, OW;
    const GC_T *in;
    const GC_T *w;
    GC_T *out;
    const gc_epilogue *epi;
    const GC_T *packed_w; /* forward: w packed once as every image's GEMM's A, or NULL */
} GC_FN(_conv_call);

/* Computes image n of a pass: GEMM scratch (g, bytes), the image buffer `buf`, par: the GEMM
 * may use every thread. */
typedef void (*GC_FN(_conv_image_fn))(const GC_FN(_conv_call) *cc, int64_t n, char *g,
                                      size_t bytes, GC_T *buf, int par);

/* Forward, image n: y[n] = w @ col(x[n]) through the im2col packer (or on x[n] itself when
 * pointwise); the epilogue runs on each block the GEMM stores. */
static GC_UNUSED void GC_FN(_conv_forward_image)(const GC_FN(_conv_call) *cc, int64_t n,
                                                 char *g, size_t bytes, GC_T *buf, int par) {
    const gc_conv_shape *s = cc->s;
    const int Pn = cc->OH * cc->OW, CKK = s->C * s->KH * s->KW;
    const GC_T *x = cc->in + (ptrdiff_t)n * s->C * s->H * s->W;
    GC_T *y = cc->out + (ptrdiff_t)n * s->O * Pn;
    if (gc_conv_is_pointwise(s)) {
        const GC_FN(_gemm_job) job = {.M = s->O, .N = Pn, .K = s->C, .A = cc->w, .lda = s->C,
                                      .B = x, .ldb = Pn, .C = y, .ldc = Pn, .epi = cc->epi,
                                      .image = n, .packed_a = cc->packed_w};
        GC_FN(_conv_gemm)(&job, g, bytes, par);
        return;
    }
    const GC_FN(_im2col) im = GC_FN(_im2col_image)(s, cc->OH, cc->OW, x, buf);
    const GC_FN(_gemm_job) job = {.M = s->O, .N = Pn, .K = CKK, .A = cc->w, .lda = CKK, .C = y,
                                  .ldc = Pn, .pack_b = GC_FN(_pack_im2col), .pack_ctx = &im,
                                  .epi = cc->epi, .image = n, .packed_a = cc->packed_w};
    GC_FN(_conv_gemm)(&job, g, bytes, par);
}

/* Backward data, image n: dcol = w^T @ gy[n] (straight into gx[n] when pointwise), col2im
 * into gx[n], then the epilogue on gx[n] while it is in cache. */
static GC_UNUSED void GC_FN(_conv_backward_data_image)(const GC_FN(_conv_call) *cc, int64_t n,
                                                       char *g, size_t bytes, GC_T *dcol, int par) {
    const gc_conv_shape *s = cc->s;
    const int Pn = cc->OH * cc->OW, CKK = s->C * s->KH * s->KW, HW = s->H * s->W;
    const int pw = gc_conv_is_pointwise(s);
    GC_T *gx = cc->out + (ptrdiff_t)n * s->C * HW;
    const GC_FN(_gemm_job) job = {.ta = 1, .M = CKK, .N = Pn, .K = s->O, .A = cc->w, .lda = CKK,
                                  .B = cc->in + (ptrdiff_t)n * s->O * Pn, .ldb = Pn,
                                  .C = pw ? gx : dcol, .ldc = Pn};
    if (s->O > 0 && Pn > 0) {
        GC_FN(_conv_gemm)(&job, g, bytes, par);
        if (!pw) GC_FN(_col2im)(s, cc->OH, cc->OW, dcol, gx);
    } else {
        memset(gx, 0, sizeof(GC_T) * (size_t)s->C * HW);
    }
    if (cc->epi) cc->epi->fn(cc->epi, n, 0, 0, s->C, HW, gx, HW);
}

/* Runs one(cc, n, ...) on every image with the pass's scratch.  Fewer images than threads:
 * one image at a time, the GEMM parallel inside over every thread's panels (the image buffer
 * at the start).  Otherwise the threads take whole images, handed out dynamically. */
static GC_UNUSED void GC_FN(_conv_each_image)(const GC_FN(_conv_call) *cc,
                                              GC_FN(_conv_image_fn) one, int pass, void *ws,
                                              size_t ws_bytes) {
    const int64_t N = cc->s->N;
    const GC_FN(_conv_bytes) b = GC_FN(_conv_sizes)(cc->s, pass);
    const int want = GC_FN(_conv_threads)(cc->s);
    const gc_scratch sc = gc_scratch_take(want, b.gemm + b.buffer, ws, ws_bytes);
    const int nt = sc.nt; /* named: the OpenMP clause below uses it */
    if (N < nt) {
        for (int64_t n = 0; n < N; ++n)
            one(cc, n, sc.base + b.buffer, sc.per * nt - b.buffer, (GC_T *)sc.base, 1);
    } else {
        GC_OMP("omp parallel num_threads(nt)")
        {
            char *mine = sc.base + sc.per * gc_thread_num();
            GC_OMP("omp for schedule(dynamic, 1)")
            for (int64_t n = 0; n < N; ++n) one(cc, n, mine, b.gemm, (GC_T *)(mine + b.gemm), 0);
        }
    }
    free(sc.own);
}

/* y = conv2d(x, w) (see the header comment). */
static GC_UNUSED void GC_FN(conv2d_forward)(const gc_conv_shape *s, const GC_T *x, const GC_T *w,
                                            GC_T *y, void *ws, size_t ws_bytes,
                                            const gc_epilogue *epi) {
    GC_FN(_conv_call) cc = {s, gc_window_out(s->H, s->KH, s->SH, s->PH),
                            gc_window_out(s->W, s->KW, s->SW, s->PW), x, w, y,
                            epi && epi->fn ? epi : NULL, NULL};
    if (s->N <= 0 || s->O <= 0 || cc.OH <= 0 || cc.OW <= 0) return;
    /* the filters are every image's A: packed once (without memory for it, per image) */
    const int64_t K = gc_conv_is_pointwise(s) ? s->C : (int64_t)s->C * s->KH * s->KW;
    const size_t bytes = gc_round_up(sizeof(GC_T) * gc_round_up((size_t)s->O, GC_GEMM_MR) *
                                     (size_t)(K > 0 ? K : 1), 64);
    GC_T *packed = s->N > 1 && K > 0 ? (GC_T *)aligned_alloc(64, bytes) : NULL;
    if (packed) {
        GC_FN(_gemm_pack_a)(0, s->O, K, w, K, packed);
        cc.packed_w = packed;
    }
    GC_FN(_conv_each_image)(&cc, GC_FN(_conv_forward_image), GC_FN(_conv_fwd), ws, ws_bytes);
    free(packed);
}

/* gx = the gradient of conv2d with respect to x, given gy (see the header comment). */
static GC_UNUSED void GC_FN(conv2d_backward_data)(const gc_conv_shape *s, const GC_T *gy,
                                                  const GC_T *w, GC_T *gx, void *ws,
                                                  size_t ws_bytes, const gc_epilogue *epi) {
    const GC_FN(_conv_call) cc = {s, gc_window_out(s->H, s->KH, s->SH, s->PH),
                                  gc_window_out(s->W, s->KW, s->SW, s->PW), gy, w, gx,
                                  epi && epi->fn ? epi : NULL, NULL};
    if (s->N <= 0 || s->C <= 0 || s->H <= 0 || s->W <= 0) return;
    GC_FN(_conv_each_image)(&cc, GC_FN(_conv_backward_data_image), GC_FN(_conv_bwd_data), ws,
                            ws_bytes);
}

/* ------------------------------------------------------------------ backward filter */

/* gw (+)= gy[n] @ col(x[n])^T for image n (col never stored): accumulate = 0 for the first
 * image of a sum, 1 after. */
static GC_UNUSED void GC_FN(_conv_backward_filter_image)(const gc_conv_shape *s, int OH, int OW,
                                                         const GC_T *x, const GC_T *gy, GC_T *gw,
                                                         int accumulate, char *g, size_t bytes,
                                                         GC_T *xpad, int par) {
    const int Pn = OH * OW, CKK = s->C * s->KH * s->KW;
    if (gc_conv_is_pointwise(s)) {
        const GC_FN(_gemm_job) job = {.tb = 1, .M = s->O, .N = s->C, .K = Pn, .A = gy, .lda = Pn,
                                      .B = x, .ldb = Pn, .C = gw, .ldc = s->C,
                                      .accumulate = accumulate};
        GC_FN(_conv_gemm)(&job, g, bytes, par);
        return;
    }
    const GC_FN(_im2col) im = GC_FN(_im2col_image)(s, OH, OW, x, xpad);
    const GC_FN(_gemm_job) job = {.tb = 1, .M = s->O, .N = CKK, .K = Pn, .A = gy, .lda = Pn,
                                  .C = gw, .ldc = CKK, .accumulate = accumulate,
                                  .pack_b = GC_FN(_pack_im2col_t), .pack_ctx = &im};
    GC_FN(_conv_gemm)(&job, g, bytes, par);
}

/* gw = the gradient of conv2d with respect to w, given x and gy (see the header comment).
 * Fewer images than threads: the images in order, accumulating into gw, GEMM parallel
 * inside.  Otherwise thread t sums its fixed range of images into a partial gw (thread 0's
 * is gw itself), then gw = part_0 + part_1 + ... in that order, split by element. */
static GC_UNUSED void GC_FN(conv2d_backward_filter)(const gc_conv_shape *s, const GC_T *x,
                                                    const GC_T *gy, GC_T *gw, void *ws,
                                                    size_t ws_bytes) {
    const int64_t N = s->N;
    const int OH = gc_window_out(s->H, s->KH, s->SH, s->PH);
    const int OW = gc_window_out(s->W, s->KW, s->SW, s->PW);
    const ptrdiff_t xs = (ptrdiff_t)s->C * s->H * s->W, ys = (ptrdiff_t)s->O * OH * OW;
    const size_t gwn = (size_t)s->O * s->C * s->KH * s->KW;
    if (gwn == 0) return;
    if (N <= 0 || OH <= 0 || OW <= 0) {
        memset(gw, 0, sizeof(GC_T) * gwn);
        return;
    }
    const GC_FN(_conv_bytes) b = GC_FN(_conv_sizes)(s, GC_FN(_conv_bwd_filter));
    const gc_scratch sc = gc_scratch_take(GC_FN(_conv_threads)(s), b.gemm + b.buffer + b.partial,
                                          ws, ws_bytes);
    const int nt = sc.nt; /* named: the OpenMP clause below uses it */
    if (N < nt) { /* [padded image][GEMM panels of every thread] */
        for (int64_t n = 0; n < N; ++n)
            GC_FN(_conv_backward_filter_image)(s, OH, OW, x + n * xs, gy + n * ys, gw, n > 0,
                                               sc.base + b.buffer, sc.per * nt - b.buffer,
                                               (GC_T *)sc.base, 1);
    } else {
        GC_OMP("omp parallel num_threads(nt)")
        {
            const int t = gc_thread_num();
            const int64_t n0 = gc_split(N, t, nt), n1 = gc_split(N, t + 1, nt);
            char *mine = sc.base + sc.per * t;
            GC_T *part = t == 0 ? gw : (GC_T *)(mine + b.gemm + b.buffer);
            GC_T *xpad = (GC_T *)(mine + b.gemm);
            for (int64_t n = n0; n < n1; ++n)
                GC_FN(_conv_backward_filter_image)(s, OH, OW, x + n * xs, gy + n * ys, part,
                                                   n > n0, mine, b.gemm, xpad, 0);
            if (n1 == n0) memset(part, 0, sizeof(GC_T) * gwn);
            GC_OMP("omp barrier")
            const size_t e0 = gwn * t / nt, e1 = gwn * (t + 1) / nt;
            for (int u = 1; u < nt; ++u) {
                const GC_T *pu = (const GC_T *)(sc.base + sc.per * u + b.gemm + b.buffer);
                for (size_t e = e0; e < e1; ++e) gw[e] += pu[e];
            }
        }
    }
    free(sc.own);
}
