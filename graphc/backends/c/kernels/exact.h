/* graphc: pasted after the hand-written templates, before the generated kernels.
 *
 * The generated elementwise code evaluates each op's formula exactly as written, so that
 * NaN, infinities and signed zeros land where the NumPy reference puts them. Contracting
 * a*b + c into one fused multiply-add (GCC's default in GNU C mode, clang's within an
 * expression) rounds once instead of twice and moves overflows: (x + x) - x became
 * fma(x, 2, -x), finite where IEEE gives inf. The GEMM templates above keep contraction
 * (their vector accumulations rely on it); the generated code below does not.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
