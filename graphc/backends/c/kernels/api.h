/* graphc kernel template API (typed: GC_T, GC_FN): the functions generated code calls,
 * declared.  Pasted instead of the templates themselves when the step links against the
 * precompiled kernel library (exports.h defines them there); the types they take
 * (gc_epilogue, gc_conv_shape, gc_pool_shape) are common.h's. */

size_t GC_FN(gemm_workspace_size)(int64_t M, int64_t N, int64_t K);
void GC_FN(gemm)(int ta, int tb, int64_t M, int64_t N, int64_t K, const GC_T *A, ptrdiff_t lda,
                 const GC_T *B, ptrdiff_t ldb, GC_T *C, ptrdiff_t ldc, void *ws, size_t ws_bytes,
                 const gc_epilogue *epi);
size_t GC_FN(gemm_packed_b_elems)(int64_t N, int64_t K);
void GC_FN(gemm_pack_b)(int tb, int64_t N, int64_t K, const GC_T *B, ptrdiff_t ldb, GC_T *packed);
size_t GC_FN(gemm_packed_workspace_size)(int64_t M, int64_t N, int64_t K);
void GC_FN(gemm_packed)(int ta, int64_t M, int64_t N, int64_t K, const GC_T *A, ptrdiff_t lda,
                        const GC_T *packed, GC_T *C, ptrdiff_t ldc, void *ws, size_t ws_bytes,
                        const gc_epilogue *epi);
size_t GC_FN(conv2d_forward_workspace_size)(const gc_conv_shape *s);
size_t GC_FN(conv2d_backward_data_workspace_size)(const gc_conv_shape *s);
size_t GC_FN(conv2d_backward_filter_workspace_size)(const gc_conv_shape *s);
void GC_FN(conv2d_forward)(const gc_conv_shape *s, const GC_T *x, const GC_T *w, GC_T *y, void *ws,
                           size_t ws_bytes, const gc_epilogue *epi);
void GC_FN(conv2d_backward_data)(const gc_conv_shape *s, const GC_T *gy, const GC_T *w, GC_T *gx,
                                 void *ws, size_t ws_bytes, const gc_epilogue *epi);
void GC_FN(conv2d_backward_filter)(const gc_conv_shape *s, const GC_T *x, const GC_T *gy, GC_T *gw,
                                   void *ws, size_t ws_bytes);
void GC_FN(max_pool2d_forward)(const gc_pool_shape *s, const GC_T *x, GC_T *y);
void GC_FN(max_pool2d_backward)(const gc_pool_shape *s, const GC_T *x, const GC_T *gy, GC_T *gx);
void GC_FN(max_pool2d_select)(const gc_pool_shape *s, const GC_T *x, const GC_T *gx, GC_T *y);
void GC_FN(avg_pool2d_forward)(const gc_pool_shape *s, const GC_T *x, GC_T *y);
void GC_FN(avg_pool2d_backward)(const gc_pool_shape *s, const GC_T *gy, GC_T *gx);
