/* Helpers shared by the benchmark programs: a monotonic clock, median/min/
 * max of repeated measurements, and failing loudly. */
#ifndef BENCHUTIL_H
#define BENCHUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef MAX_REPS
#define MAX_REPS 101
#endif

static inline void bench_check(const char *prog, int err, const char *what)
{
    if (err != 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(err));
        exit(1);
    }
}

static inline uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct stats {
    double median, min, max;
};

static inline struct stats summarise(const double *v, int n)
{
    double s[MAX_REPS];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    struct stats r = { .min = s[0], .max = s[n - 1] };
    r.median = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    return r;
}

#endif
