/*
 * test_order.c - run order: FIFO scheduling of spawned coroutines,
 * corun_yield interleaving, and the main coroutine blocking while others run.
 */
#include "testutil.h"

TestSuite(order, .timeout = 30);

static struct tu_log lg;

static void *record(void *arg)
{
    tu_log_add(&lg, (int)PI(arg));
    return arg;
}

Test(order, spawned_coroutines_run_fifo)
{
    corun_t *co[10];
    lg.n = 0;
    for (int i = 0; i < 10; i++)
        OK(corun_spawn(&co[i], NULL, record, IP(i)));
    cr_assert_eq(lg.n, 0);
    OK(corun_join(co[9], NULL)); /* joining the last lets all run */
    TU_EXPECT(&lg, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
    for (int i = 0; i < 9; i++)
        OK(corun_join(co[i], NULL));
}

Test(order, yield_runs_everyone_once)
{
    corun_t *co[5];
    lg.n = 0;
    for (int i = 0; i < 5; i++)
        OK(corun_spawn(&co[i], NULL, record, IP(i)));
    corun_yield();
    TU_EXPECT(&lg, 0, 1, 2, 3, 4);
    for (int i = 0; i < 5; i++)
        OK(corun_join(co[i], NULL));
}

/* arg: tag * 10; records tag*10 + i, then yields, three times. */
static void *yield_loop(void *arg)
{
    int tag = (int)PI(arg);
    for (int i = 0; i < 3; i++) {
        tu_log_add(&lg, tag + i);
        corun_yield();
    }
    tu_log_add(&lg, tag + 9);
    return NULL;
}

Test(order, yield_interleaves_round_robin)
{
    corun_t *a, *b, *c;
    lg.n = 0;
    OK(corun_spawn(&a, NULL, yield_loop, IP(10)));
    OK(corun_spawn(&b, NULL, yield_loop, IP(20)));
    OK(corun_spawn(&c, NULL, yield_loop, IP(30)));
    OK(corun_join(a, NULL));
    OK(corun_join(b, NULL));
    OK(corun_join(c, NULL));
    TU_EXPECT(&lg, 10, 20, 30, 11, 21, 31, 12, 22, 32, 19, 29, 39);
}

Test(order, main_takes_part_in_round_robin)
{
    corun_t *a, *b;
    lg.n = 0;
    OK(corun_spawn(&a, NULL, yield_loop, IP(10)));
    OK(corun_spawn(&b, NULL, yield_loop, IP(20)));
    for (int i = 0; i < 3; i++) {
        tu_log_add(&lg, i);
        corun_yield();
    }
    tu_log_add(&lg, 9);
    OK(corun_join(a, NULL));
    OK(corun_join(b, NULL));
    TU_EXPECT(&lg, 0, 10, 20, 1, 11, 21, 2, 12, 22, 9, 19, 29);
}

static void *spawner(void *arg)
{
    (void)arg;
    corun_t *child;
    tu_log_add(&lg, 1);
    if (corun_spawn(&child, NULL, record, IP(3)) != 0)
        return IP(1);
    tu_log_add(&lg, 2);
    corun_yield();
    tu_log_add(&lg, 4);
    return corun_join(child, NULL) == 0 ? NULL : IP(2);
}

Test(order, child_spawned_by_coroutine_runs_when_it_yields)
{
    corun_t *a;
    lg.n = 0;
    OK(corun_spawn(&a, NULL, spawner, NULL));
    void *r;
    OK(corun_join(a, &r));
    cr_assert_null(r);
    TU_EXPECT(&lg, 1, 2, 3, 4);
}

static volatile int counting;
static void *count_while_flag(void *arg)
{
    long *count = arg;
    while (counting) {
        (*count)++;
        corun_yield();
    }
    return NULL;
}

Test(order, others_run_while_main_sleeps)
{
    long count = 0;
    corun_t *a;
    counting = 1;
    OK(corun_spawn(&a, NULL, count_while_flag, &count));
    int64_t t0 = tu_now();
    OK(corun_sleep(CORUN_MSEC(50)));
    cr_assert_geq(tu_now() - t0, CORUN_MSEC(50));
    cr_assert_gt(count, 1, "the other coroutine ran %ld times while main slept", count);
    counting = 0;
    OK(corun_join(a, NULL));
}

static void *sleeper_records(void *arg)
{
    corun_sleep(CORUN_MSEC(PI(arg)));
    tu_log_add(&lg, (int)PI(arg));
    return arg;
}

Test(order, main_blocks_in_join_while_others_run)
{
    corun_t *slow, *fast;
    lg.n = 0;
    OK(corun_spawn(&slow, NULL, sleeper_records, IP(40)));
    OK(corun_spawn(&fast, NULL, sleeper_records, IP(5)));
    void *r;
    OK(corun_join(slow, &r)); /* main blocks; fast finishes meanwhile */
    cr_assert_eq(PI(r), 40);
    TU_EXPECT(&lg, 5, 40);
    OK(corun_join(fast, &r));
    cr_assert_eq(PI(r), 5);
}

static void *yield_forever_until(void *arg)
{
    volatile int *stop = arg;
    long n = 0;
    while (!*stop) {
        corun_yield();
        n++;
    }
    return IP(n);
}

/* A coroutine that only yields must not starve timers (the loop is polled). */
Test(order, busy_yielder_does_not_starve_sleepers)
{
    volatile int stop = 0;
    corun_t *y;
    OK(corun_spawn(&y, NULL, yield_forever_until, (void *)&stop));
    int64_t t0 = tu_now();
    OK(corun_sleep(CORUN_MSEC(20)));
    int64_t el = tu_now() - t0;
    stop = 1;
    cr_assert_geq(el, CORUN_MSEC(20));
    cr_assert_lt(el, CORUN_SEC(5), "sleep of 20 ms took %lld ns next to a yielder",
                 (long long)el);
    void *r;
    OK(corun_join(y, &r));
    cr_assert_gt(PI(r), 0);
}

/* Many coroutines: the round robin stays exact even when the scheduler polls
 * its event loop between dispatches. */
static void *yield_loop_many(void *arg)
{
    int tag = (int)PI(arg);
    for (int i = 0; i < 3; i++) {
        tu_log_add(&lg, i * 1000 + tag);
        corun_yield();
    }
    return NULL;
}

Test(order, round_robin_with_many_coroutines)
{
    enum { N = 300 };
    corun_t *co[N];
    lg.n = 0;
    for (int i = 0; i < N; i++)
        OK(corun_spawn(&co[i], NULL, yield_loop_many, IP(i)));
    for (int i = 0; i < N; i++)
        OK(corun_join(co[i], NULL));
    cr_assert_eq(lg.n, 3 * N);
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < N; i++)
            cr_assert_eq(lg.v[r * N + i], r * 1000 + i, "entry %d is %d, expected %d",
                         r * N + i, lg.v[r * N + i], r * 1000 + i);
}

static volatile int flag_set_by_sleeper;
static void *sleep_then_set_flag(void *arg)
{
    corun_sleep(CORUN_MSEC(10));
    flag_set_by_sleeper = 1;
    return arg;
}

/* Main busy-yields; the sleeper's timer must still fire (yield polls the
 * event loop). */
Test(order, yield_loop_lets_timers_fire)
{
    corun_t *a;
    flag_set_by_sleeper = 0;
    OK(corun_spawn(&a, NULL, sleep_then_set_flag, NULL));
    int64_t t0 = tu_now();
    long spins = 0;
    while (!flag_set_by_sleeper && tu_now() - t0 < CORUN_SEC(5)) {
        corun_yield();
        spins++;
    }
    cr_assert_eq(flag_set_by_sleeper, 1, "timer never fired while main yielded (%ld yields)",
                 spins);
    OK(corun_join(a, NULL));
}

/* Main busy-yields; a coroutine waiting on an fd must still be woken. */
static void *wait_pipe_set_flag(void *arg)
{
    int fd = (int)PI(arg);
    if (corun_wait_fd(fd, POLLIN, CORUN_SEC(10), NULL) == 0)
        flag_set_by_sleeper = 1;
    return NULL;
}

Test(order, yield_loop_lets_fd_waits_complete)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    corun_t *a;
    flag_set_by_sleeper = 0;
    OK(corun_spawn(&a, NULL, wait_pipe_set_flag, IP(p[0])));
    corun_yield();
    cr_assert_eq(write(p[1], "x", 1), 1);
    int64_t t0 = tu_now();
    while (!flag_set_by_sleeper && tu_now() - t0 < CORUN_SEC(5))
        corun_yield();
    cr_assert_eq(flag_set_by_sleeper, 1, "fd wait never completed while main yielded");
    OK(corun_join(a, NULL));
    close(p[0]);
    close(p[1]);
}

/* The explicit API is cooperative: a coroutine runs when its spawner
 * blocks or yields, and runs until it does, however long it keeps the CPU
 * (corun preempts pthreads that keep it, never explicit coroutines or a
 * thread that uses the API). Each spin is several preemption slices. */
static void spin_ms(int ms)
{
    int64_t end = tu_now() + (int64_t)ms * 1000000;
    do
        for (volatile int i = 0; i < 20000; i++)
            ;
    while (tu_now() < end);
}

static void *spin_and_record(void *arg)
{
    tu_log_add(&lg, (int)PI(arg));
    spin_ms(60);
    tu_log_add(&lg, (int)PI(arg) + 1);
    return NULL;
}

Test(order, long_runs_are_not_preempted)
{
    corun_t *a, *b;
    lg.n = 0;
    OK(corun_spawn(&a, NULL, spin_and_record, IP(10)));
    OK(corun_spawn(&b, NULL, record, IP(20)));
    spin_ms(60);
    cr_assert_eq(lg.n, 0, "a coroutine ran while its spawner kept the CPU");
    OK(corun_join(b, NULL));
    TU_EXPECT(&lg, 10, 11, 20);
    OK(corun_join(a, NULL));
}
