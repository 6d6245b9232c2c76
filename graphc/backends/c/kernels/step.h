/* graphc kernel helpers: timing of the kernels of a step (gc_run_timed, Session.profile).
 * Needs <time.h>. */

/* monotonic wall time in seconds */
static inline double gc_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* when timing (seconds != NULL): add the time since *t to seconds[k] and restart the clock */
static inline void gc_tick(double *seconds, int k, double *t) {
    if (seconds) {
        double u = gc_now();
        seconds[k] += u - *t;
        *t = u;
    }
}
