/*
 * test_sleep.c - corun_sleep: deadline order, never early, concurrency.
 */
#include "testutil.h"

TestSuite(sleep, .timeout = 30);

static struct tu_log lg;

static void *sleep_ms_record(void *arg)
{
    int ms = (int)PI(arg);
    int64_t t0 = tu_now();
    int rc = corun_sleep(CORUN_MSEC(ms));
    int64_t el = tu_now() - t0;
    tu_log_add(&lg, ms);
    if (rc != 0)
        return IP(1);
    if (el < CORUN_MSEC(ms))
        return IP(2); /* woke early */
    return NULL;
}

Test(sleep, wake_in_deadline_order)
{
    corun_t *c[3];
    static const int ms[3] = { 30, 20, 10 };
    lg.n = 0;
    for (int i = 0; i < 3; i++)
        OK(corun_spawn(&c[i], NULL, sleep_ms_record, IP(ms[i])));
    for (int i = 0; i < 3; i++) {
        void *r;
        OK(corun_join(c[i], &r));
        cr_assert_null(r, "sleeper of %d ms: %s", ms[i], PI(r) == 2 ? "woke early" : "rc != 0");
    }
    TU_EXPECT(&lg, 10, 20, 30);
}

Test(sleep, many_sleepers_wake_sorted)
{
    enum { N = 20 };
    corun_t *c[N];
    lg.n = 0;
    for (int i = 0; i < N; i++)
        OK(corun_spawn(&c[i], NULL, sleep_ms_record, IP((N - i) * 4)));
    for (int i = 0; i < N; i++) {
        void *r;
        OK(corun_join(c[i], &r));
        cr_assert_null(r);
    }
    cr_assert_eq(lg.n, N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(lg.v[i], (i + 1) * 4, "wake #%d was the %d ms sleeper", i, lg.v[i]);
}

Test(sleep, never_early)
{
    static const int64_t d[] = { 1, CORUN_USEC(1), CORUN_USEC(500), CORUN_MSEC(1),
                                 CORUN_MSEC(3), CORUN_MSEC(7), CORUN_MSEC(25) };
    for (int rep = 0; rep < 3; rep++) {
        for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
            int64_t t0 = tu_now();
            OK(corun_sleep(d[i]));
            int64_t el = tu_now() - t0;
            cr_assert_geq(el, d[i], "sleep(%lld ns) returned after %lld ns",
                          (long long)d[i], (long long)el);
        }
    }
}

static void *sleep_in_coroutine(void *arg)
{
    int64_t ns = (int64_t)PI(arg);
    int64_t t0 = tu_now();
    corun_sleep(ns);
    return IP(tu_now() - t0 >= ns);
}

Test(sleep, never_early_in_coroutines)
{
    enum { N = 50 };
    corun_t *c[N];
    for (int i = 0; i < N; i++)
        OK(corun_spawn(&c[i], NULL, sleep_in_coroutine, IP(CORUN_USEC(137) * (i + 1))));
    for (int i = 0; i < N; i++) {
        void *r;
        OK(corun_join(c[i], &r));
        cr_assert_eq(PI(r), 1, "coroutine %d woke early", i);
    }
}

static void *yield_record(void *arg)
{
    tu_log_add(&lg, (int)PI(arg));
    return NULL;
}

Test(sleep, zero_and_negative_yield)
{
    corun_t *a, *b;
    lg.n = 0;
    OK(corun_spawn(&a, NULL, yield_record, IP(1)));
    cr_assert_eq(corun_sleep(0), 0);
    TU_EXPECT(&lg, 1);
    OK(corun_spawn(&b, NULL, yield_record, IP(2)));
    cr_assert_eq(corun_sleep(-5), 0);
    TU_EXPECT(&lg, 1, 2);
    cr_assert_eq(corun_sleep(CORUN_FOREVER), 0); /* -1: also just a yield */
    OK(corun_join(a, NULL));
    OK(corun_join(b, NULL));
}

static void *sleep_200ms(void *arg)
{
    (void)arg;
    int64_t t0 = tu_now();
    corun_sleep(CORUN_MSEC(200));
    return IP(tu_now() - t0 >= CORUN_MSEC(200));
}

Test(sleep, sleepers_run_concurrently)
{
    enum { N = 100 };
    corun_t *c[N];
    int64_t t0 = tu_now();
    for (int i = 0; i < N; i++)
        OK(corun_spawn(&c[i], NULL, sleep_200ms, NULL));
    for (int i = 0; i < N; i++) {
        void *r;
        OK(corun_join(c[i], &r));
        cr_assert_eq(PI(r), 1, "coroutine %d woke early", i);
    }
    int64_t el = tu_now() - t0;
    cr_assert_geq(el, CORUN_MSEC(200));
    cr_assert_lt(el, CORUN_SEC(2), "100 sleeps of 200 ms took %lld ms: not concurrent",
                 (long long)(el / 1000000));
}

static void *sleep_then_yield_count(void *arg)
{
    long *n = arg;
    for (int i = 0; i < 5; i++) {
        corun_sleep(CORUN_MSEC(2));
        (*n)++;
    }
    return NULL;
}

Test(sleep, repeated_short_sleeps)
{
    long n = 0;
    corun_t *c[10];
    for (int i = 0; i < 10; i++)
        OK(corun_spawn(&c[i], NULL, sleep_then_yield_count, &n));
    for (int i = 0; i < 10; i++)
        OK(corun_join(c[i], NULL));
    cr_assert_eq(n, 50);
}

Test(sleep, long_sleep_next_to_short_ones)
{
    corun_t *lng, *sh[5];
    lg.n = 0;
    OK(corun_spawn(&lng, NULL, sleep_ms_record, IP(60)));
    for (int i = 0; i < 5; i++)
        OK(corun_spawn(&sh[i], NULL, sleep_ms_record, IP(5 + i * 5)));
    OK(corun_join(lng, NULL));
    for (int i = 0; i < 5; i++)
        OK(corun_join(sh[i], NULL));
    TU_EXPECT(&lg, 5, 10, 15, 20, 25, 60);
}
