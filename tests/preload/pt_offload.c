/*
 * pt_offload.c - threads calling a blocking library function, for
 * test_ffi_offload. Built twice: pt_offload is linked with libofftest;
 * pt_offload_dl (PT_DLOPEN) loads libofftest_user (which calls libofftest)
 * with dlopen by bare name, found through the program's DT_RUNPATH.
 *
 * Modes:
 *   concurrent  8 threads call offtest_slow (200 ms, invisible to corun)
 *               at once while a ticker thread counts 1 ms sleeps; prints
 *               elapsed_ms=, ticks=; every result checked
 *   values      the other signatures (char, unsigned char, float, short,
 *               double, pointer, errno) from a second thread
 *   lone        one thread alone calls offtest_slow (a direct call)
 */
#include <dlfcn.h>

#include "pt_common.h"

#define THREADS 8

static long (*slow)(int, double, const char *, long);
static char (*grade)(unsigned char, float, int *);

#ifdef PT_DLOPEN
static void bind(void)
{
    void *h = dlopen("libofftest_user.so", RTLD_NOW);
#ifdef CORUN_SANITIZERS
    /* ASan's dlopen interceptor becomes the caller, so glibc does not
     * search this program's DT_RUNPATH (gcc 12's libasan): name the file. */
    if (!h)
        h = dlopen(OFFTEST_LIBDIR "/libofftest_user.so", RTLD_NOW);
#endif
    if (!h) {
        fprintf(stderr, "dlopen libofftest_user.so: %s\n", dlerror());
        exit(3);
    }
    slow = (long (*)(int, double, const char *, long))dlsym(h, "offtest_user_slow");
    grade = (char (*)(unsigned char, float, int *))dlsym(h, "offtest_user_grade");
    if (!slow || !grade) {
        fprintf(stderr, "dlsym: %s\n", dlerror());
        exit(3);
    }
}
#else
long offtest_slow(int a, double d, const char *s, long b);
char offtest_grade(unsigned char score, float bonus, int *out);
double offtest_scale(double x, short k);
int offtest_fail(int e);

static void bind(void)
{
    slow = offtest_slow;
    grade = offtest_grade;
}
#endif

static long expected(int a, double d, const char *s, long b)
{
    return a * 1000L + (long)(d * 10) + (long)strlen(s) * 100000L + b;
}

static const char *const words[THREADS] = { "a", "bb", "ccc", "dddd", "e", "ff", "ggg", "hhhh" };

static void *caller(void *arg)
{
    int i = (int)(intptr_t)arg;
    errno = 0;
    long r = slow(i, i + 0.5, words[i], 7L * i);
    long want = expected(i, i + 0.5, words[i], 7L * i);
    CHECKF(r == want, "thread %d: got %ld, expected %ld", i, r, want);
    CHECKF(errno == 0, "thread %d: errno %s after a call that does not set it", i, ename(errno));
    return NULL;
}

static void concurrent(void)
{
    bind();
    pthread_t t[THREADS];
    ticker_start();
    int64_t t0 = mono_ns();
    for (int i = 0; i < THREADS; i++)
        OK(pthread_create(&t[i], NULL, caller, (void *)(intptr_t)i));
    note_tasks();
    for (int i = 0; i < THREADS; i++)
        OK(pthread_join(t[i], NULL));
    long elapsed = (long)((mono_ns() - t0) / MS);
    long n = atomic_load(&ticks);
    ticker_end();
    printf("elapsed_ms=%ld ticks=%ld\n", elapsed, n);
}

static void *values_thread(void *arg)
{
    (void)arg;
    int out = 0;
    CHECK(grade(200, 0.5f, &out) == 'A' && out == 200);
    CHECK(grade(40, 15.0f, &out) == 'B' && out == 55);
    CHECK(grade(3, 1.0f, &out) == 'C' && out == 4);
#ifndef PT_DLOPEN
    CHECK(offtest_scale(1.25, -4) == -5.0);
    errno = 0;
    CHECK(offtest_fail(EDOM) == -1 && errno == EDOM);
    errno = ERANGE;
    CHECK(offtest_scale(2.0, 3) == 6.0 && errno == ERANGE);
#endif
    return NULL;
}

static void values(void)
{
    bind();
    pthread_t t;
    ticker_start();
    OK(pthread_create(&t, NULL, values_thread, NULL));
    OK(pthread_join(t, NULL));
    ticker_end();
}

static void lone(void)
{
    bind();
    CHECK(slow(3, 1.5, "xy", 4) == expected(3, 1.5, "xy", 4));
}

int main(int argc, char **argv)
{
    static const struct pt_mode modes[] = {
        { "concurrent", concurrent },
        { "values", values },
        { "lone", lone },
    };
    return pt_main(modes, sizeof modes / sizeof modes[0], argc, argv);
}
