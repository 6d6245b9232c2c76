/* graphc kernel helpers: the summary that ends a gc.print line (the format is stated by
 * graphc/ops/debug.py, whose NumPy reference writes the same text). Values as %.6g (NaN
 * always "nan": glibc would write "-nan" for a negative one), integers and bools as
 * integers; min/max are nan when a value is NaN (as NumPy's); the mean is the double sum
 * in element order over the count. Pasted only into steps that print.
 * Needs <math.h>, <stdint.h>, <stdio.h>. */

static inline void gc_print_real(double v) {
    if (isnan(v))
        fputs("nan", stdout);
    else
        printf("%.6g", v);
}

static inline void gc_print_int(long long v) {
    printf("%lld", v);
}

/* NAME(x, n, k): "[first k ... last k] min=.. max=.. mean=..", a newline, then flush.
 * WIDE: the type values are compared in; PUT writes one. */
#define GC_PRINT_SUMMARY(NAME, T, WIDE, PUT)                                  \
    static inline void NAME(const T *x, int64_t n, int64_t k) {               \
        fputc('[', stdout);                                                   \
        for (int64_t i = 0; i < n; i++) {                                     \
            if (n > 2 * k && i == k) {                                        \
                fputs(i ? " ..." : "...", stdout);                            \
                i = n - k;                                                    \
                if (i >= n)                                                   \
                    break;                                                    \
            }                                                                 \
            if (i)                                                            \
                fputc(' ', stdout);                                           \
            PUT((WIDE)x[i]);                                                  \
        }                                                                     \
        fputc(']', stdout);                                                   \
        if (n > 0) {                                                          \
            WIDE lo = (WIDE)x[0], hi = (WIDE)x[0];                            \
            double sum = 0.0;                                                 \
            int nan = 0;                                                      \
            for (int64_t i = 0; i < n; i++) {                                 \
                WIDE v = (WIDE)x[i];                                          \
                sum += (double)x[i];                                          \
                if (v != v) {                                                 \
                    nan = 1;                                                  \
                } else {                                                      \
                    if (v < lo || lo != lo) lo = v;                           \
                    if (v > hi || hi != hi) hi = v;                           \
                }                                                             \
            }                                                                 \
            if (nan) {                                                        \
                fputs(" min=nan max=nan", stdout);                            \
            } else { /* + 0: -0.0 prints as 0 whichever zero the scan met */  \
                fputs(" min=", stdout);                                       \
                PUT(lo + (WIDE)0);                                            \
                fputs(" max=", stdout);                                       \
                PUT(hi + (WIDE)0);                                            \
            }                                                                 \
            fputs(" mean=", stdout);                                          \
            gc_print_real(sum / (double)n);                                   \
        }                                                                     \
        fputc('\n', stdout);                                                  \
        fflush(stdout);                                                       \
    }

GC_PRINT_SUMMARY(gc_print_summary_f32, float, double, gc_print_real)
GC_PRINT_SUMMARY(gc_print_summary_f64, double, double, gc_print_real)
GC_PRINT_SUMMARY(gc_print_summary_i32, int32_t, long long, gc_print_int)
GC_PRINT_SUMMARY(gc_print_summary_i64, int64_t, long long, gc_print_int)
GC_PRINT_SUMMARY(gc_print_summary_u8, uint8_t, long long, gc_print_int)
#undef GC_PRINT_SUMMARY
