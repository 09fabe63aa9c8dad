/*
 * test_million.c - 1,000,000 coroutines alive at once, then all joined.
 */
#include "testutil.h"

TestSuite(million, .timeout = 300);

#define N 1000000

static corun_chan_t *ch;
static uint32_t *got;
static long started;

static void *park_on_chan(void *arg)
{
    uintptr_t idx = PI(arg);
    void *m;
    started++;
    int rc = corun_chan_recv(ch, &m, CORUN_FOREVER);
    if (rc != 0)
        return IP(0);
    got[idx] = (uint32_t)PI(m);
    return IP(idx + 1);
}

/* All parked on one channel; fed one message each, received first come,
 * first served, so coroutine i receives message i. */
Test(million, spawn_park_on_channel_and_join)
{
    corun_t **co = calloc(N, sizeof *co);
    got = calloc(N, sizeof *got);
    cr_assert_not_null(co);
    cr_assert_not_null(got);
    OK(corun_chan_new(&ch, CORUN_CHAN_UNBOUNDED));
    corun_attr_t attr = { .stack_size = CORUN_STACK_MIN };
    started = 0;
    for (uintptr_t i = 0; i < N; i++) {
        int rc = corun_spawn(&co[i], &attr, park_on_chan, IP(i));
        cr_assert_eq(rc, 0, "spawn #%lu failed: %s", (unsigned long)i, strerror(rc));
    }
    corun_yield(); /* every coroutine runs once and parks */
    cr_assert_eq(started, N, "only %ld of %d coroutines started", started, N);
    cr_assert_eq(corun_chan_len(ch), 0);
    FAILS(corun_chan_free(ch), EBUSY);

    for (uintptr_t i = 0; i < N; i++)
        OK(corun_chan_send(ch, IP(i), 0));
    for (uintptr_t i = 0; i < N; i++) {
        void *r = NULL;
        int rc = corun_join(co[i], &r);
        cr_assert_eq(rc, 0, "join #%lu failed: %s", (unsigned long)i, strerror(rc));
        cr_assert_eq(PI(r), i + 1, "coroutine %lu returned %lu", (unsigned long)i,
                     (unsigned long)PI(r));
    }
    for (uintptr_t i = 0; i < N; i++)
        cr_assert_eq(got[i], (uint32_t)i, "coroutine %lu received message %u",
                     (unsigned long)i, got[i]);
    cr_assert_eq(corun_chan_len(ch), 0);
    OK(corun_chan_free(ch));
    free(co);
    free(got);
}

static long woke;
static void *sleep_a_while(void *arg)
{
    started++;
    corun_sleep(CORUN_MSEC(50));
    woke++;
    return arg;
}

/* All parked in corun_sleep at once (a million timers). */
Test(million, spawn_sleepers_and_join)
{
    corun_t **co = calloc(N, sizeof *co);
    cr_assert_not_null(co);
    corun_attr_t attr = { .stack_size = CORUN_STACK_MIN };
    started = woke = 0;
    for (uintptr_t i = 0; i < N; i++) {
        int rc = corun_spawn(&co[i], &attr, sleep_a_while, IP(i ^ 0x5a5a));
        cr_assert_eq(rc, 0, "spawn #%lu failed: %s", (unsigned long)i, strerror(rc));
    }
    for (uintptr_t i = 0; i < N; i++) {
        void *r = NULL;
        int rc = corun_join(co[i], &r);
        cr_assert_eq(rc, 0, "join #%lu failed: %s", (unsigned long)i, strerror(rc));
        cr_assert_eq(PI(r), i ^ 0x5a5a);
    }
    cr_assert_eq(started, N);
    cr_assert_eq(woke, N);
    free(co);
}
