/* graphc kernel helpers: the scalar functions generated elementwise code calls.
 *
 * gc_expf and gc_tanhf (float32 exp and tanh that vectorize, unlike libm's), stable
 * sigmoid and softplus,
 * and the counter-based random numbers of dropout. Before pasting this file the
 * renderer defines the hash constants from graphc/ir/rng.py (GC_RNG_SEED_MUL,
 * GC_RNG_STEP_MUL, GC_RNG_INDEX_MUL, GC_RNG_FMIX1, GC_RNG_FMIX2), so the C stream is
 * bit-identical to the NumPy reference's. Needs <math.h> and <stdint.h>.
 */

/* a*b + c, fused where the target has FMA instructions: gc_expf's Horner steps ask for it
 * explicitly, since generated code is compiled without contraction (exact.h) */
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
#define GC_FMAF(a, b, c) fmaf((a), (b), (c))
#else
#define GC_FMAF(a, b, c) ((a) * (b) + (c))
#endif

/* 2**k as a float, for -126 <= k <= 127 */
static inline float gc_pow2if(int32_t k) {
    union { uint32_t u; float f; } b = {(uint32_t)(k + 127) << 23};
    return b.f;
}

/* expf without libm: within about 1 ulp (subnormal results included), exact 0/inf/NaN at
 * the ends; branch-free, so loops calling it vectorize (-fno-trapping-math lets GCC
 * if-convert the selects). exp(x) = 2**k * exp(r), k = round(x / ln 2), |r| <= ln(2)/2,
 * r by a two-constant Cody-Waite reduction, exp(r) by a degree-7 minimax polynomial. */
static inline float gc_expf(float x) {
    float k = GC_FMAF(x, 1.44269504088896341F, 12582912.0F) - 12582912.0F;
    k = k > 129.0F ? 129.0F : (k < -151.0F ? -151.0F : k);
    float r = GC_FMAF(-k, 0.693359375F, x);
    r = GC_FMAF(k, 2.12194440e-4F, r);
    float p = 1.9875691500e-4F;
    p = GC_FMAF(p, r, 1.3981999507e-3F);
    p = GC_FMAF(p, r, 8.3334519073e-3F);
    p = GC_FMAF(p, r, 4.1665795894e-2F);
    p = GC_FMAF(p, r, 1.6666665459e-1F);
    p = GC_FMAF(p, r, 5.0000001201e-1F);
    p = GC_FMAF(p * r, r, r) + 1.0F;
    int32_t ki = (int32_t)k, half = ki / 2; /* two factors keep 2**k normal down to 2**-151 */
    float y = p * gc_pow2if(half) * gc_pow2if(ki - half);
    y = x > 88.7228394F ? INFINITY : y;
    y = x < -104.0F ? 0.0F : y;
    return x != x ? x : y;
}

/* tanhf without libm, so loops calling it vectorize (LSTM and GRU steps are full of it):
 * for |x| < 0.625 an odd polynomial in x (Cephes' tanhf coefficients, no cancellation near
 * 0), else sign(x) (1 - e) / (1 + e) with e = exp(-2|x|) <= 0.29; within a few ulp, exact
 * at +-0 and +-inf, NaN kept; branch-free (both are computed, one is selected). */
static inline float gc_tanhf(float x) {
    float a = fabsf(x), z = x * x;
    float p = -5.70498872745e-3F;
    p = GC_FMAF(p, z, 2.06390887954e-2F);
    p = GC_FMAF(p, z, -5.37397155531e-2F);
    p = GC_FMAF(p, z, 1.33314422036e-1F);
    p = GC_FMAF(p, z, -3.33332819422e-1F);
    float small = GC_FMAF(p * z, a, a);
    float e = gc_expf(-2.0F * a);
    float big = (1.0F - e) / (1.0F + e);
    float y = copysignf(a < 0.625F ? small : big, x);  /* (tanh(-0) = -0) */
    return x != x ? x : y;
}

/* 1 / (1 + exp(-x)) without overflow for any x */
static inline float gc_sigmoidf(float x) {
    float e = gc_expf(-fabsf(x));
    return x >= 0 ? 1.0F / (1.0F + e) : e / (1.0F + e);
}

static inline double gc_sigmoid(double x) {
    double e = exp(-fabs(x));
    return x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

/* log(1 + exp(x)) without overflow for any x */
static inline float gc_softplusf(float x) { return fmaxf(x, 0.0F) + log1pf(gc_expf(-fabsf(x))); }

static inline double gc_softplus(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }

/* maximum / minimum propagating NaN (as NumPy and PyTorch do, unlike fmax), the second
 * operand at a tie (0 and -0), as NumPy; branch-free selects, so loops vectorize */
static inline float gc_maxf(float a, float b) { return (a > b || a != a) ? a : b; }
static inline double gc_max(double a, double b) { return (a > b || a != a) ? a : b; }
static inline float gc_minf(float a, float b) { return (a < b || a != a) ? a : b; }
static inline double gc_min(double a, double b) { return (a < b || a != a) ? a : b; }

/* the finalizer of MurmurHash3 */
static inline uint32_t gc_fmix32(uint32_t h) {
    h ^= h >> 16;
    h *= GC_RNG_FMIX1;
    h ^= h >> 13;
    h *= GC_RNG_FMIX2;
    return h ^ (h >> 16);
}

/* a float in [0, 1) with 24 random bits: hash(seed, step, index), as graphc.ir.rng.uniform */
static inline float gc_uniform(uint32_t seed, uint64_t step, uint32_t index) {
    uint32_t key = (uint32_t)((uint64_t)seed * GC_RNG_SEED_MUL + step * GC_RNG_STEP_MUL);
    uint32_t h = gc_fmix32((index * GC_RNG_INDEX_MUL) ^ key);
    return (float)(gc_fmix32(h ^ key) >> 8) * (1.0F / 16777216.0F);
}

/* element i of dropout(x): kept with probability 1 - rate and scaled by 1 / (1 - rate) */
static inline float gc_dropoutf(float x, int training, uint32_t seed, uint64_t step, uint32_t i,
                                double rate) {
    if (!training) return x;
    return gc_uniform(seed, step, i) >= (float)rate ? x * (float)(1.0 / (1.0 - rate)) : 0.0F;
}

static inline double gc_dropout(double x, int training, uint32_t seed, uint64_t step, uint32_t i,
                                double rate) {
    if (!training) return x;
    return gc_uniform(seed, step, i) >= (float)rate ? x * (1.0 / (1.0 - rate)) : 0.0;
}
