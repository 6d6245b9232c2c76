/* graphc kernel library exports (typed: GC_T, GC_FN, GC_API): the API of api.h, defined.
 *
 * The precompiled kernel library pastes every template with GC_FN naming its functions
 * gci_s... / gci_d... (internal: static), then this file, whose GC_API names are the
 * exported gc_s... / gc_d... that generated code calls. */

#define GC_EXPORT __attribute__((visibility("default")))

GC_EXPORT size_t GC_API(gemm_workspace_size)(int64_t M, int64_t N, int64_t K) {
    return GC_FN(gemm_workspace_size)(M, N, K);
}
GC_EXPORT void GC_API(gemm)(int ta, int tb, int64_t M, int64_t N, int64_t K, const GC_T *A,
                            ptrdiff_t lda, const GC_T *B, ptrdiff_t ldb, GC_T *C, ptrdiff_t ldc,
                            void *ws, size_t ws_bytes, const gc_epilogue *epi) {
    GC_FN(gemm)(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, ws, ws_bytes, epi);
}
GC_EXPORT size_t GC_API(gemm_packed_b_elems)(int64_t N, int64_t K) {
    return GC_FN(gemm_packed_b_elems)(N, K);
}
GC_EXPORT void GC_API(gemm_pack_b)(int tb, int64_t N, int64_t K, const GC_T *B, ptrdiff_t ldb,
                                   GC_T *packed) {
    GC_FN(gemm_pack_b)(tb, N, K, B, ldb, packed);
}
GC_EXPORT size_t GC_API(gemm_packed_workspace_size)(int64_t M, int64_t N, int64_t K) {
    return GC_FN(gemm_packed_workspace_size)(M, N, K);
}
GC_EXPORT void GC_API(gemm_packed)(int ta, int64_t M, int64_t N, int64_t K, const GC_T *A,
                                   ptrdiff_t lda, const GC_T *packed, GC_T *C, ptrdiff_t ldc,
                                   void *ws, size_t ws_bytes, const gc_epilogue *epi) {
    GC_FN(gemm_packed)(ta, M, N, K, A, lda, packed, C, ldc, ws, ws_bytes, epi);
}
GC_EXPORT size_t GC_API(conv2d_forward_workspace_size)(const gc_conv_shape *s) {
    return GC_FN(conv2d_forward_workspace_size)(s);
}
GC_EXPORT size_t GC_API(conv2d_backward_data_workspace_size)(const gc_conv_shape *s) {
    return GC_FN(conv2d_backward_data_workspace_size)(s);
}
GC_EXPORT size_t GC_API(conv2d_backward_filter_workspace_size)(const gc_conv_shape *s) {
    return GC_FN(conv2d_backward_filter_workspace_size)(s);
}
GC_EXPORT void GC_API(conv2d_forward)(const gc_conv_shape *s, const GC_T *x, const GC_T *w,
                                      GC_T *y, void *ws, size_t ws_bytes,
                                      const gc_epilogue *epi) {
    GC_FN(conv2d_forward)(s, x, w, y, ws, ws_bytes, epi);
}
GC_EXPORT void GC_API(conv2d_backward_data)(const gc_conv_shape *s, const GC_T *gy,
                                            const GC_T *w, GC_T *gx, void *ws, size_t ws_bytes,
                                            const gc_epilogue *epi) {
    GC_FN(conv2d_backward_data)(s, gy, w, gx, ws, ws_bytes, epi);
}
GC_EXPORT void GC_API(conv2d_backward_filter)(const gc_conv_shape *s, const GC_T *x,
                                              const GC_T *gy, GC_T *gw, void *ws,
                                              size_t ws_bytes) {
    GC_FN(conv2d_backward_filter)(s, x, gy, gw, ws, ws_bytes);
}
GC_EXPORT void GC_API(max_pool2d_forward)(const gc_pool_shape *s, const GC_T *x, GC_T *y) {
    GC_FN(max_pool2d_forward)(s, x, y);
}
GC_EXPORT void GC_API(max_pool2d_backward)(const gc_pool_shape *s, const GC_T *x,
                                           const GC_T *gy, GC_T *gx) {
    GC_FN(max_pool2d_backward)(s, x, gy, gx);
}
GC_EXPORT void GC_API(max_pool2d_select)(const gc_pool_shape *s, const GC_T *x,
                                         const GC_T *gx, GC_T *y) {
    GC_FN(max_pool2d_select)(s, x, gx, y);
}
GC_EXPORT void GC_API(avg_pool2d_forward)(const gc_pool_shape *s, const GC_T *x, GC_T *y) {
    GC_FN(avg_pool2d_forward)(s, x, y);
}
GC_EXPORT void GC_API(avg_pool2d_backward)(const gc_pool_shape *s, const GC_T *gy, GC_T *gx) {
    GC_FN(avg_pool2d_backward)(s, gy, gx);
}

#undef GC_EXPORT
