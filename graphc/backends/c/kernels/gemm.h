/* graphc kernel template (typed: GC_T, GC_FN): GEMM, C = op(A) @ op(B), all row-major.
 *
 *   size_t gc_sgemm_workspace_size(int64_t M, int64_t N, int64_t K);
 *   void   gc_sgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
 *                   ptrdiff_t lda, const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc,
 *                   void *ws, size_t ws_bytes, const gc_epilogue *epi);
 *   ... and gc_dgemm* for double (GC_FN names them).
 *
 *   op(B) packed once, for many products by the same matrix (a weight a scan reads every step):
 *   size_t gc_sgemm_packed_b_elems(int64_t N, int64_t K);          at most K * round_up(N, 32)
 *   void   gc_sgemm_pack_b(int tb, int64_t N, int64_t K, const float *B, ptrdiff_t ldb,
 *                          float *packed);
 *   void   gc_sgemm_packed(int ta, int64_t M, int64_t N, int64_t K, const float *A, ptrdiff_t lda,
 *                          const float *packed, float *C, ptrdiff_t ldc, void *ws,
 *                          size_t ws_bytes, const gc_epilogue *epi);
 *   (gc_sgemm_packed_workspace_size(M, N, K) as gc_sgemm_workspace_size.)
 *
 *   op(A) is M x K: A[i*lda + k], or A[k*lda + i] when ta != 0 (A is then K x M);
 *   op(B) is K x N: B[k*ldb + j], or B[j*ldb + k] when tb != 0 (B is then N x K);
 *   C is M x N: C[i*ldc + j], overwritten (never read, except where partial sums of several
 *   depth blocks accumulate).  Transposes are read in place; blocks of op(A) and op(B) are
 *   packed into panels in the workspace (gemm_kernel.h).  K == 0 gives C = 0.
 *
 * Epilogue (epi may be NULL): epi->fn is called once on each block of final values (a
 * micro-tile, at most MR x NR) with its global (i0, j0) and image 0.  owns_store == 0: the
 * block is already stored in C and fn may rewrite it in place.  owns_store != 0: the final
 * block is handed to fn in a scratch tile and never written to C by the GEMM (fn stores what
 * it needs; an optimizer update then skips C's memory traffic).  One compiled GEMM serves
 * every epilogue; fn's loop over the block vectorizes.
 *
 * Workspace: caller-owned scratch of gc_sgemm_workspace_size(M, N, K) bytes (any alignment),
 * sized for omp_get_max_threads() at the time of the call; with less, fewer threads; with too
 * little for one thread, or ws == NULL, the GEMM mallocs its own.  No global mutable state.
 *
 * Threads: OpenMP over a 2-D split of C into one tile per thread (each packs its own panels,
 * no barriers), for problems of GC_GEMM_MIN_FLOP_PER_THREAD or more per thread, never inside
 * a parallel region.  The split depends only on (M, N, K, threads): results are bit-identical
 * run to run for a given thread count.
 */

/* Packs the kc x nc block of op(B) at depth pc and (global) column jc into NR-wide panels at
 * bp: conv2d.h plugs in its implicit-im2col packers here.  Sizes and global indices are 64-bit
 * (M, N, K may be the batch); a block's own sizes (kc <= KC, nc <= NC, mc <= MC) and the
 * micro-tile counters are int. */
typedef void (*GC_FN(_pack_b_fn))(const void *ctx, int64_t pc, int64_t jc, int kc, int nc,
                                  GC_T *bp);

/* One GEMM: C (+)= op(A) op(B) and what to do with the final blocks (built with designated
 * initializers: the fields left out are 0 / NULL). */
typedef struct {
    int ta, tb;
    int64_t M, N, K;
    const GC_T *A;
    ptrdiff_t lda;
    const GC_T *B; /* unused with pack_b or packed_b */
    ptrdiff_t ldb;
    const GC_T *packed_b;       /* all of op(B), packed by GC_FN(gemm_pack_b); NULL: pack here */
    const GC_T *packed_a;       /* all of op(A), packed by GC_FN(_gemm_pack_a); NULL: pack here */
    GC_T *C;
    ptrdiff_t ldc;
    int accumulate;             /* C += op(A) op(B) (the conv filter gradient over images) */
    GC_FN(_pack_b_fn) pack_b;   /* NULL: pack op(B) from B */
    const void *pack_ctx;       /* pack_b's context */
    const gc_epilogue *epi;     /* NULL: none */
    int64_t image;              /* handed to epi->fn */
    int owns_store;             /* see the header comment */
} GC_FN(_gemm_job);

/* Scratch bytes of one thread: packed blocks of op(B) (KC x NC) and op(A) (MC x KC). */
static inline size_t GC_FN(_gemm_thread_bytes)(int64_t M, int64_t N, int64_t K) {
    const size_t kc = K < GC_FN(_kc) ? (size_t)(K > 0 ? K : 1) : GC_FN(_kc);
    const size_t nc = N < GC_FN(_nc) ? (size_t)(N > 0 ? N : 1) : GC_FN(_nc);
    const size_t mc = M < GC_FN(_mc) ? (size_t)(M > 0 ? M : 1) : GC_FN(_mc);
    return gc_round_up(sizeof(GC_T) * kc * gc_round_up(nc, GC_FN(_nr)), 64) +
           gc_round_up(sizeof(GC_T) * kc * gc_round_up(mc, GC_GEMM_MR), 64);
}

/* Threads worth using for an M x N x K product. */
static inline int GC_FN(_gemm_threads)(int64_t M, int64_t N, int64_t K) {
    return gc_threads_for(2.0 * (double)M * (double)N * (double)(K > 0 ? K : 1), gc_max_threads());
}

/* The block of C at (i0, j0) -- mr x nr valid of an MR x NR micro-tile -- from a packed panel
 * pair: stored into C (added to it when acc); when `last` (the final depth block) then handed
 * to the epilogue, in C or, when the hook owns the store, only in `tile`. */
static inline void GC_FN(_gemm_block)(const GC_FN(_gemm_job) *g, const GC_T *apan,
                                      const GC_T *bpan, int kc, int64_t i0, int64_t j0, int mr,
                                      int nr, int acc, int last, GC_T *tile) {
    enum { MR = GC_GEMM_MR, NR = GC_FN(_nr) };
    const gc_epilogue *epi = g->epi;
    const ptrdiff_t ldc = g->ldc;
    GC_T *c = g->C + i0 * ldc + j0;
    if (last && g->owns_store) {
        GC_FN(_ukr_edge)(mr, nr, kc, apan, bpan, tile);
        if (acc)
            for (int i = 0; i < mr; ++i)
                for (int j = 0; j < nr; ++j) tile[i * NR + j] += c[i * ldc + j];
        epi->fn(epi, g->image, i0, j0, mr, nr, tile, NR);
        return;
    }
    if (mr == MR && nr == NR) {
        GC_FN(_ukr)(kc, apan, bpan, c, ldc, acc);
    } else { /* an edge: computed in `tile`, its valid part merged */
        GC_FN(_ukr_edge)(mr, nr, kc, apan, bpan, tile);
        for (int i = 0; i < mr; ++i) {
            if (acc)
                for (int j = 0; j < nr; ++j) c[i * ldc + j] += tile[i * NR + j];
            else
                for (int j = 0; j < nr; ++j) c[i * ldc + j] = tile[i * NR + j];
        }
    }
    if (last && epi) epi->fn(epi, g->image, i0, j0, mr, nr, c, ldc);
}

/* Rows [m0, m1) x columns [n0, n1) of the product, by one thread; ws: 64-byte aligned,
 * GC_FN(_gemm_thread_bytes)(M, N, K) bytes.  Loops: NC columns of C, KC deep (op(B) packed
 * once per block), MC rows (op(A) packed), then MR x NR micro-tiles. */
static GC_UNUSED void GC_FN(_gemm_tile)(const GC_FN(_gemm_job) *g, int64_t m0, int64_t m1,
                                        int64_t n0, int64_t n1, void *ws) {
    enum { MR = GC_GEMM_MR, NR = GC_FN(_nr), KC = GC_FN(_kc), MC = GC_FN(_mc), NC = GC_FN(_nc) };
    const int64_t K = g->K;
    if (K <= 0) { /* an empty sum */
        GC_T *c = g->C + m0 * g->ldc + n0;
        for (int64_t i = 0; i < m1 - m0 && !g->accumulate; ++i)
            memset(c + i * g->ldc, 0, sizeof(GC_T) * (size_t)(n1 - n0));
        if (g->epi) g->epi->fn(g->epi, g->image, m0, n0, m1 - m0, n1 - n0, c, g->ldc);
        return;
    }
    const int kcmax = K < KC ? (int)K : KC, ncmax = n1 - n0 < NC ? (int)(n1 - n0) : NC;
    GC_T *bp = (GC_T *)ws;
    GC_T *ap = (GC_T *)gc_align64(bp + (size_t)kcmax * gc_round_up((size_t)ncmax, NR));
    GC_T tile[MR * NR] __attribute__((aligned(64)));
    for (int64_t jc = n0; jc < n1; jc += NC) {
        const int nc = n1 - jc < NC ? (int)(n1 - jc) : NC;
        for (int64_t pc = 0; pc < K; pc += KC) {
            const int kc = K - pc < KC ? (int)(K - pc) : KC;
            const int acc = g->accumulate || pc > 0; /* later depth blocks add to C */
            const int last = pc + kc >= K;
            const GC_T *bpk = bp;
            if (g->packed_b) { /* depth block pc of the packed operand, from column jc */
                bpk = g->packed_b + pc * (int64_t)gc_round_up((size_t)g->N, NR) + jc * kc;
            } else if (g->pack_b) {
                g->pack_b(g->pack_ctx, pc, jc, kc, nc, bp);
            } else {
                const GC_T *b = g->tb ? g->B + jc * g->ldb + pc : g->B + pc * g->ldb + jc;
                GC_FN(_pack_b)(g->tb, kc, nc, b, g->ldb, bp);
            }
            for (int64_t ic = m0; ic < m1; ic += MC) {
                const int mc = m1 - ic < MC ? (int)(m1 - ic) : MC;
                const GC_T *a = g->ta ? g->A + pc * g->lda + ic : g->A + ic * g->lda + pc;
                const GC_T *apk = ap;
                if (g->packed_a) /* depth block pc of the packed operand, from row ic */
                    apk = g->packed_a + pc * (int64_t)gc_round_up((size_t)g->M, MR) + ic * kc;
                else
                    GC_FN(_pack_a)(g->ta, mc, kc, a, g->lda, ap);
                for (int ir = 0; ir < mc; ir += MR)
                    for (int jr = 0; jr < nc; jr += NR)
                        GC_FN(_gemm_block)(g, apk + (size_t)ir * kc, bpk + (size_t)jr * kc, kc,
                                           ic + ir, jc + jr, mc - ir < MR ? mc - ir : MR,
                                           nc - jr < NR ? nc - jr : NR, acc, last, tile);
            }
        }
    }
}

/* The whole product by one thread (ws: 64-byte aligned, GC_FN(_gemm_thread_bytes)). */
static GC_UNUSED void GC_FN(_gemm_serial)(const GC_FN(_gemm_job) *g, void *ws) {
    if (g->M > 0 && g->N > 0) GC_FN(_gemm_tile)(g, 0, g->M, 0, g->N, ws);
}

/* Splits an M x N output among T threads as a tm x tn grid (tm * tn == T) of MR/NR-aligned
 * tiles, minimising the largest tile's micro-kernel work plus its packing: each thread packs
 * its rows of op(A) and its columns of op(B) (rows*K + K*cols elements), and packing one
 * element (a strided load and a store) costs about as much as 8 multiply-adds of the
 * micro-kernel.  So a tall product (the weight gradient x^T g: M = 784, N = 256) splits
 * rows and a short one (a batch of 64 times the weights) splits columns.  A row split also
 * keeps two threads from writing neighbouring halves of the same rows, which measured 2-4x
 * slower for optimizer-update epilogues (GEMM 784x256x64 + momentum, 2 cores).  More threads
 * than panels both ways: rows only. */
static inline int GC_FN(_gemm_grid_rows)(int64_t M, int64_t N, int64_t K, int T) {
    const int mr = GC_GEMM_MR, nr = GC_FN(_nr);
    const int64_t pm = (M + mr - 1) / mr, pn = (N + nr - 1) / nr;
    double best = -1.0;
    int best_tm = T;
    for (int tm = 1; tm <= T; ++tm) {
        const int tn = T / tm;
        if (T % tm || tm > pm || tn > pn) continue;
        const double rows = (double)((pm + tm - 1) / tm) * mr;
        const double cols = (double)((pn + tn - 1) / tn) * nr;
        const double cost = rows * cols * (double)K + 8.0 * (rows + cols) * (double)K;
        if (best < 0 || cost < best) {
            best = cost;
            best_tm = tm;
        }
    }
    return best_tm;
}

/* Runs a GEMM job on up to GC_FN(_gemm_threads) threads, scratch from (ws, ws_bytes). */
static GC_UNUSED void GC_FN(_gemm_run)(const GC_FN(_gemm_job) *g, void *ws, size_t ws_bytes) {
    enum { MR = GC_GEMM_MR, NR = GC_FN(_nr) };
    const int64_t M = g->M, N = g->N;
    if (M <= 0 || N <= 0) return;
    const int want = g->K > 0 ? GC_FN(_gemm_threads)(M, N, g->K) : 1;
    const size_t per = GC_FN(_gemm_thread_bytes)(M, N, g->K);
    const gc_scratch sc = gc_scratch_take(want, per, ws, ws_bytes);
    const int nt = sc.nt; /* named: the OpenMP clause below uses it */
    if (nt <= 1) {
        GC_FN(_gemm_tile)(g, 0, M, 0, N, sc.base);
    } else {
        const int tm = GC_FN(_gemm_grid_rows)(M, N, g->K, nt), tn = nt / tm;
        const int64_t pm = (M + MR - 1) / MR, pn = (N + NR - 1) / NR;
        GC_OMP("omp parallel num_threads(nt)")
        {
            const int t = gc_thread_num();
            if (t < tm * tn) {
                const int a = t / tn, b = t % tn;
                const int64_t m0 = gc_split(pm, a, tm) * MR, n0 = gc_split(pn, b, tn) * NR;
                int64_t m1 = gc_split(pm, a + 1, tm) * MR, n1 = gc_split(pn, b + 1, tn) * NR;
                if (m1 > M) m1 = M;
                if (n1 > N) n1 = N;
                if (m1 > m0 && n1 > n0)
                    GC_FN(_gemm_tile)(g, m0, m1, n0, n1, sc.base + sc.per * t);
            }
        }
    }
    free(sc.own);
}

/* Bytes of workspace gc_?gemm wants for an M x N x K product (see the header comment). */
static inline size_t GC_FN(gemm_workspace_size)(int64_t M, int64_t N, int64_t K) {
    return gc_scratch_bytes(GC_FN(_gemm_threads)(M, N, K), GC_FN(_gemm_thread_bytes)(M, N, K));
}

/* C = op(A) @ op(B), then epi on each final block (see the header comment). */
static inline void GC_FN(gemm)(int ta, int tb, int64_t M, int64_t N, int64_t K, const GC_T *A,
                               ptrdiff_t lda, const GC_T *B, ptrdiff_t ldb, GC_T *C, ptrdiff_t ldc,
                               void *ws, size_t ws_bytes, const gc_epilogue *epi) {
    if (epi && !epi->fn) epi = NULL;
    const GC_FN(_gemm_job) g = {.ta = ta, .tb = tb, .M = M, .N = N, .K = K, .A = A, .lda = lda,
                                .B = B, .ldb = ldb, .C = C, .ldc = ldc, .epi = epi,
                                .owns_store = epi && epi->owns_store};
    GC_FN(_gemm_run)(&g, ws, ws_bytes);
}

/* op(A) (M x K; A[i*lda + k], or A[k*lda + i] when ta) packed whole for _gemm_job.packed_a:
 * depth block pc starts at pc * round_up(M, MR), its row panel p at p * MR * kc within it;
 * round_up(M, MR) * K elements, 64-byte aligned (an operand many GEMMs share: a
 * convolution's filters, one GEMM per image). */
static inline void GC_FN(_gemm_pack_a)(int ta, int64_t M, int64_t K, const GC_T *A, ptrdiff_t lda,
                                       GC_T *packed) {
    const int64_t mpad = (int64_t)gc_round_up((size_t)M, GC_GEMM_MR);
    for (int64_t pc = 0; pc < K; pc += GC_FN(_kc)) {
        const int kc = K - pc < GC_FN(_kc) ? (int)(K - pc) : GC_FN(_kc);
        GC_FN(_pack_a)(ta, (int)M, kc, ta ? A + pc * lda : A + pc, lda, packed + pc * mpad);
    }
}

/* Elements of the packed form of a K x N op(B): each depth block of KC rows holds the panels
 * of all N columns (N rounded up to NR). */
static inline size_t GC_FN(gemm_packed_b_elems)(int64_t N, int64_t K) {
    return (size_t)(K > 0 ? K : 0) * gc_round_up((size_t)(N > 0 ? N : 0), GC_FN(_nr));
}

/* Packs op(B) (K x N; B[k*ldb + j], or B[j*ldb + k] when tb) into `packed`
 * (GC_FN(gemm_packed_b_elems) elements, 64-byte aligned): depth block pc starts at
 * pc * round_up(N, NR), its column panel q at q * NR * kc within it. */
static inline void GC_FN(gemm_pack_b)(int tb, int64_t N, int64_t K, const GC_T *B, ptrdiff_t ldb,
                                      GC_T *packed) {
    const int64_t npad = (int64_t)gc_round_up((size_t)N, GC_FN(_nr));
    for (int64_t pc = 0; pc < K; pc += GC_FN(_kc)) {
        const int kc = K - pc < GC_FN(_kc) ? (int)(K - pc) : GC_FN(_kc);
        GC_FN(_pack_b)(tb, kc, (int)N, tb ? B + pc : B + pc * ldb, ldb, packed + pc * npad);
    }
}

/* Bytes of workspace GC_FN(gemm_packed) wants (the same as the GEMM's). */
static inline size_t GC_FN(gemm_packed_workspace_size)(int64_t M, int64_t N, int64_t K) {
    return GC_FN(gemm_workspace_size)(M, N, K);
}

/* C = op(A) @ op(B) with op(B) packed by GC_FN(gemm_pack_b), then epi (see gc_?gemm). */
static inline void GC_FN(gemm_packed)(int ta, int64_t M, int64_t N, int64_t K, const GC_T *A,
                                      ptrdiff_t lda, const GC_T *packed, GC_T *C, ptrdiff_t ldc,
                                      void *ws, size_t ws_bytes, const gc_epilogue *epi) {
    if (epi && !epi->fn) epi = NULL;
    const GC_FN(_gemm_job) g = {.ta = ta, .M = M, .N = N, .K = K, .A = A, .lda = lda,
                                .packed_b = packed, .C = C, .ldc = ldc, .epi = epi,
                                .owns_store = epi && epi->owns_store};
    GC_FN(_gemm_run)(&g, ws, ws_bytes);
}
