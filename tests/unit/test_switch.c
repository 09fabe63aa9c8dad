/*
 * test_switch.c - corun_switch, the greenlet-style symmetric transfer.
 */
#include <pthread.h>
#include <signal.h>

#include "testutil.h"

TestSuite(switch, .timeout = 30);

static struct tu_log lg;
static corun_t *gr1, *gr2, *main_co;

/*
 * The classic greenlet demo:
 *     def test1(): print(12); gr2.switch(); print(34)
 *     def test2(): print(56); gr1.switch(); print(78)
 *     gr1.switch()
 * followed by a switch to gr2 so that it, too, finishes.
 */
static void *test1(void *arg)
{
    (void)arg;
    tu_log_add(&lg, 12);
    corun_switch(gr2, NULL);
    tu_log_add(&lg, 34);
    return IP(1);
}

static void *test2(void *arg)
{
    (void)arg;
    tu_log_add(&lg, 56);
    corun_switch(gr1, NULL);
    tu_log_add(&lg, 78);
    return IP(2);
}

Test(switch, greenlet_demo_order)
{
    lg.n = 0;
    OK(corun_spawn(&gr1, NULL, test1, NULL));
    OK(corun_spawn(&gr2, NULL, test2, NULL));
    void *v = corun_switch(gr1, NULL);
    /* gr1 finished, so main (its spawner) resumes with its return value. */
    cr_assert_eq(PI(v), 1, "switch returned %p, expected gr1's return value", v);
    TU_EXPECT(&lg, 12, 56, 34);
    v = corun_switch(gr2, NULL);
    cr_assert_eq(PI(v), 2, "switch returned %p, expected gr2's return value", v);
    TU_EXPECT(&lg, 12, 56, 34, 78);
    void *r;
    OK(corun_join(gr1, &r));
    cr_assert_eq(PI(r), 1);
    OK(corun_join(gr2, &r));
    cr_assert_eq(PI(r), 2);
}

static void *ping(void *arg)
{
    (void)arg;
    /* Started by main's switch: the value of that switch is dropped. */
    void *v = corun_switch(main_co, IP(100));
    tu_log_add(&lg, (int)PI(v));
    v = corun_switch(main_co, IP(200));
    tu_log_add(&lg, (int)PI(v));
    return IP(300);
}

Test(switch, values_pass_both_ways)
{
    corun_t *a;
    lg.n = 0;
    main_co = corun_current();
    OK(corun_spawn(&a, NULL, ping, NULL));
    void *v = corun_switch(a, IP(1)); /* starts a; 1 is dropped */
    cr_assert_eq(PI(v), 100);
    v = corun_switch(a, IP(2));
    cr_assert_eq(PI(v), 200);
    v = corun_switch(a, IP(3));
    cr_assert_eq(PI(v), 300, "finishing child did not resume its spawner with its result");
    TU_EXPECT(&lg, 2, 3);
    void *r;
    OK(corun_join(a, &r));
    cr_assert_eq(PI(r), 300);
}

static void *pong_many(void *arg)
{
    uintptr_t n = PI(arg);
    void *v = corun_switch(main_co, IP(0));
    for (uintptr_t i = 1; i < n; i++)
        v = corun_switch(main_co, IP(PI(v) + 1));
    return IP(PI(v) + 1000000);
}

Test(switch, ping_pong_many_rounds)
{
    enum { N = 100000 };
    corun_t *a;
    main_co = corun_current();
    OK(corun_spawn(&a, NULL, pong_many, IP(N)));
    void *v = corun_switch(a, NULL);
    cr_assert_eq(PI(v), 0);
    for (uintptr_t i = 1; i < N; i++) {
        v = corun_switch(a, IP(i * 2));
        cr_assert_eq(PI(v), i * 2 + 1);
    }
    v = corun_switch(a, IP(7));
    cr_assert_eq(PI(v), 7 + 1000000);
    OK(corun_join(a, NULL));
}

Test(switch, switch_to_self_returns_value)
{
    cr_assert_eq(PI(corun_switch(corun_current(), IP(42))), 42);
    cr_assert_null(corun_switch(corun_current(), NULL));
}

static void *self_switch(void *arg)
{
    return corun_switch(corun_current(), arg);
}

Test(switch, switch_to_self_inside_coroutine)
{
    corun_t *a;
    OK(corun_spawn(&a, NULL, self_switch, IP(77)));
    void *r;
    OK(corun_join(a, &r));
    cr_assert_eq(PI(r), 77);
}

static void *leaf(void *arg)
{
    tu_log_add(&lg, 2);
    return IP(PI(arg) * 3);
}

static void *middle(void *arg)
{
    corun_t *child;
    tu_log_add(&lg, 1);
    if (corun_spawn(&child, NULL, leaf, arg) != 0)
        return IP(0);
    void *v = corun_switch(child, NULL);
    tu_log_add(&lg, 3);
    void *r = NULL;
    if (corun_join(child, &r) != 0 || r != v)
        return IP(0);
    return IP(PI(v) + 1);
}

Test(switch, finishing_child_resumes_its_spawner)
{
    corun_t *a;
    lg.n = 0;
    OK(corun_spawn(&a, NULL, middle, IP(5)));
    void *r;
    OK(corun_join(a, &r));
    cr_assert_eq(PI(r), 16);
    TU_EXPECT(&lg, 1, 2, 3);
}

static void *record_then_return_to_main(void *arg)
{
    tu_log_add(&lg, (int)PI(arg));
    void *v = corun_switch(main_co, IP(10));
    tu_log_add(&lg, (int)PI(v));
    return IP(99);
}

/* A coroutine suspended in corun_switch() is not runnable: yields, sleeps
 * and joins by others must not resume it; only a switch does. */
Test(switch, suspended_in_switch_is_not_scheduled)
{
    corun_t *a;
    lg.n = 0;
    main_co = corun_current();
    OK(corun_spawn(&a, NULL, record_then_return_to_main, IP(1)));
    void *v = corun_switch(a, NULL); /* a was runnable and not started */
    cr_assert_eq(PI(v), 10);
    TU_EXPECT(&lg, 1);
    corun_yield();
    corun_yield();
    corun_sleep(CORUN_MSEC(2));
    TU_EXPECT(&lg, 1);
    FAILS(corun_join_timeout(a, NULL, 0), EAGAIN);
    v = corun_switch(a, IP(5));
    cr_assert_eq(PI(v), 99);
    TU_EXPECT(&lg, 1, 5);
    void *r;
    OK(corun_join(a, &r));
    cr_assert_eq(PI(r), 99);
}

static void *yield_then_switch_back(void *arg)
{
    (void)arg;
    tu_log_add(&lg, 1);
    corun_yield();
    tu_log_add(&lg, 2);
    void *v = corun_switch(main_co, IP(50));
    tu_log_add(&lg, (int)PI(v));
    return IP(60);
}

/* Switching to a coroutine that is merely runnable (it yielded) resumes it
 * from its yield; it is not run a second time by the scheduler. */
Test(switch, switch_to_runnable_resumes_it)
{
    corun_t *a;
    lg.n = 0;
    main_co = corun_current();
    OK(corun_spawn(&a, NULL, yield_then_switch_back, NULL));
    corun_yield(); /* a records 1 and yields: it is runnable now */
    TU_EXPECT(&lg, 1);
    void *v = corun_switch(a, NULL);
    cr_assert_eq(PI(v), 50);
    TU_EXPECT(&lg, 1, 2);
    corun_yield();
    TU_EXPECT(&lg, 1, 2);
    v = corun_switch(a, IP(3));
    cr_assert_eq(PI(v), 60);
    TU_EXPECT(&lg, 1, 2, 3);
    OK(corun_join(a, NULL));
}

static void *bounce_to(void *arg)
{
    corun_t *next = arg;
    tu_log_add(&lg, (int)corun_id(corun_current()));
    void *v = corun_switch(next, IP(corun_id(corun_current())));
    return v;
}

Test(switch, switch_chain_through_unstarted_coroutines)
{
    /* main -> c1 -> c2 -> main: c1 starts c2 by switching to it; c2 switches
     * back to main, leaving c1 suspended. */
    corun_t *c1, *c2;
    lg.n = 0;
    main_co = corun_current();
    OK(corun_spawn(&c2, NULL, bounce_to, main_co));
    OK(corun_spawn(&c1, NULL, bounce_to, c2));
    void *v = corun_switch(c1, NULL);
    cr_assert_eq(PI(v), corun_id(c2));
    TU_EXPECT(&lg, (int)corun_id(c1), (int)corun_id(c2));
    /* Finish c2: it returns 8; its spawner (main) is suspended in switch. */
    v = corun_switch(c2, IP(8));
    cr_assert_eq(PI(v), 8);
    /* Finish c1. */
    v = corun_switch(c1, IP(9));
    cr_assert_eq(PI(v), 9);
    OK(corun_join(c1, NULL));
    OK(corun_join(c2, NULL));
}

static void *instant(void *arg)
{
    return arg;
}

Test(switch, switch_to_finished_aborts, .signal = SIGABRT)
{
    corun_t *a;
    OK(corun_spawn(&a, NULL, instant, NULL));
    corun_yield();
    corun_yield();
    /* a has finished but is not joined: its handle is valid. */
    corun_switch(a, NULL);
    cr_assert_fail("corun_switch to a finished coroutine returned");
}

static void *park_on_chan(void *arg)
{
    void *m;
    corun_chan_recv(arg, &m, CORUN_FOREVER);
    return m;
}

Test(switch, switch_to_parked_aborts, .signal = SIGABRT)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 0));
    corun_t *a;
    OK(corun_spawn(&a, NULL, park_on_chan, ch));
    corun_yield(); /* a parks in corun_chan_recv */
    corun_switch(a, NULL);
    cr_assert_fail("corun_switch to a parked coroutine returned");
}

static void *sleep_long(void *arg)
{
    corun_sleep(CORUN_SEC(10));
    return arg;
}

Test(switch, switch_to_sleeping_aborts, .signal = SIGABRT)
{
    corun_t *a;
    OK(corun_spawn(&a, NULL, sleep_long, NULL));
    corun_yield();
    corun_switch(a, NULL);
    cr_assert_fail("corun_switch to a sleeping coroutine returned");
}

static corun_t *foreign;
static pthread_mutex_t fmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fcv = PTHREAD_COND_INITIALIZER;
static int fstate;

static void *foreign_thread(void *arg)
{
    (void)arg;
    corun_t *co;
    if (corun_spawn(&co, NULL, instant, NULL) != 0)
        abort();
    pthread_mutex_lock(&fmu);
    foreign = co;
    fstate = 1;
    pthread_cond_broadcast(&fcv);
    while (fstate != 2)
        pthread_cond_wait(&fcv, &fmu);
    pthread_mutex_unlock(&fmu);
    return NULL;
}

Test(switch, switch_to_other_threads_coroutine_aborts, .signal = SIGABRT)
{
    pthread_t t;
    (void)corun_current();
    cr_assert_eq(pthread_create(&t, NULL, foreign_thread, NULL), 0);
    pthread_mutex_lock(&fmu);
    while (fstate != 1)
        pthread_cond_wait(&fcv, &fmu);
    pthread_mutex_unlock(&fmu);
    corun_switch(foreign, NULL);
    cr_assert_fail("corun_switch to another thread's coroutine returned");
}

static void *yield_once_return(void *arg)
{
    tu_log_add(&lg, (int)PI(arg));
    corun_yield();
    tu_log_add(&lg, (int)PI(arg) + 1);
    return arg;
}

static volatile int release_x;
static void *yield_until_released(void *arg)
{
    tu_log_add(&lg, (int)PI(arg));
    while (!release_x)
        corun_yield();
    tu_log_add(&lg, (int)PI(arg) + 1);
    return arg;
}

/* The spawner is resumed by a finishing child even when the child was run by
 * the scheduler rather than switched to. */
Test(switch, child_run_by_scheduler_resumes_suspended_spawner)
{
    corun_t *y, *x;
    lg.n = 0;
    OK(corun_spawn(&y, NULL, yield_once_return, IP(10)));
    release_x = 0;
    OK(corun_spawn(&x, NULL, yield_until_released, IP(20)));
    /* x runs and keeps yielding; y runs, yields, resumes and finishes: main,
     * y's spawner, is suspended in corun_switch and gets y's result. */
    void *v = corun_switch(x, NULL);
    release_x = 1;
    cr_assert_eq(PI(v), 10, "switch returned %lu, expected y's result 10", (unsigned long)PI(v));
    TU_EXPECT(&lg, 20, 10, 11);
    void *r;
    OK(corun_join(y, &r));
    cr_assert_eq(PI(r), 10);
    OK(corun_join(x, &r));
    cr_assert_eq(PI(r), 20);
    TU_EXPECT(&lg, 20, 10, 11, 21);
}

Test(switch, detached_child_resumes_suspended_spawner)
{
    corun_t *d;
    corun_attr_t attr = { .detached = 1 };
    lg.n = 0;
    OK(corun_spawn(&d, &attr, leaf, IP(4)));
    void *v = corun_switch(d, NULL);
    cr_assert_eq(PI(v), 12);
    TU_EXPECT(&lg, 2);
    /* d is released; the scheduler keeps working. */
    corun_yield();
    corun_sleep(CORUN_MSEC(1));
}

static corun_t *grandchild;
static void *spawn_grandchild_and_return(void *arg)
{
    if (corun_spawn(&grandchild, NULL, yield_once_return, arg) != 0)
        return IP(1);
    return NULL;
}

static void *suspend_in_switch(void *arg)
{
    (void)arg;
    tu_log_add(&lg, 100);
    void *v = corun_switch(main_co, NULL);
    tu_log_add(&lg, (int)PI(v));
    return NULL;
}

/* A child whose spawner is gone (finished and joined, its memory possibly
 * reused by a new coroutine that now waits in corun_switch) must not resume
 * that unrelated coroutine when it finishes. */
Test(switch, finishing_orphan_does_not_resume_stranger)
{
    corun_t *a, *c;
    lg.n = 0;
    main_co = corun_current();
    OK(corun_spawn(&a, NULL, spawn_grandchild_and_return, IP(30)));
    void *r;
    OK(corun_join(a, &r)); /* the grandchild ran up to its yield meanwhile */
    cr_assert_null(r);
    TU_EXPECT(&lg, 30);
    /* c likely takes a's released stack slot. */
    OK(corun_spawn(&c, NULL, suspend_in_switch, NULL));
    cr_assert_null(corun_switch(c, NULL));
    TU_EXPECT(&lg, 30, 100);
    /* The grandchild finishes; c must stay suspended. */
    OK(corun_join(grandchild, &r));
    cr_assert_eq(PI(r), 30);
    corun_yield();
    TU_EXPECT(&lg, 30, 100, 31);
    void *v = corun_switch(c, IP(7));
    cr_assert_null(v); /* c finished: main, its spawner, gets its NULL result */
    TU_EXPECT(&lg, 30, 100, 31, 7);
    OK(corun_join(c, NULL));
}

static void *recv_then_switch_back(void *arg)
{
    corun_chan_t *ch = arg;
    void *m = NULL;
    int rc = corun_chan_recv(ch, &m, CORUN_FOREVER);
    tu_log_add(&lg, rc == 0 ? (int)PI(m) : -rc);
    corun_switch(main_co, IP(PI(m) * 2));
    return NULL;
}

/* A coroutine woken from a channel wait (runnable, not yet run) can be
 * switched to: it resumes with its message. */
Test(switch, switch_to_woken_coroutine)
{
    corun_chan_t *ch;
    corun_t *a;
    lg.n = 0;
    main_co = corun_current();
    OK(corun_chan_new(&ch, 0));
    OK(corun_spawn(&a, NULL, recv_then_switch_back, ch));
    corun_yield(); /* a parks in recv */
    OK(corun_chan_send(ch, IP(21), 0)); /* a is woken, not yet run */
    void *v = corun_switch(a, NULL);
    TU_EXPECT(&lg, 21); /* the message it was woken with, not the switch value */
    cr_assert_eq(PI(v), 42);
    v = corun_switch(a, NULL);
    cr_assert_null(v);
    OK(corun_join(a, NULL));
    OK(corun_chan_free(ch));
}
