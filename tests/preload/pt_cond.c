/*
 * pt_cond.c - a plain pthread program (not linked with corun) exercising
 * condition variables: signal and broadcast, timed waits on CLOCK_REALTIME
 * (the default) and CLOCK_MONOTONIC (pthread_condattr_setclock), and
 * pthread_cond_clockwait on both; timeouts never early; the mutex always
 * held again on return, including after a timeout while another thread holds
 * it; EPERM, EINVAL.
 *
 * Run by tests/test_pthread_green as `pt_cond MODE`, natively and under
 * LD_PRELOAD=libcorun.so; see tests/preload/pt_thread.c for the output conventions.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pt_common.h"

/* An error-checking mutex, so unlock() tells whether the caller holds it. */
static void init_errorcheck(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    OK(pthread_mutexattr_init(&a));
    OK(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK));
    OK(pthread_mutex_init(m, &a));
    OK(pthread_mutexattr_destroy(&a));
}

static void init_cond_clock(pthread_cond_t *c, clockid_t clk)
{
    pthread_condattr_t a;
    OK(pthread_condattr_init(&a));
    OK(pthread_condattr_setclock(&a, clk));
    clockid_t back = -1;
    OK(pthread_condattr_getclock(&a, &back));
    CHECK(back == clk);
    OK(pthread_cond_init(c, &a));
    OK(pthread_condattr_destroy(&a));
}

/* ---- signal: a producer/consumer queue ------------------------------------------*/

static pthread_mutex_t q_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_nonempty = PTHREAD_COND_INITIALIZER, q_nonfull = PTHREAD_COND_INITIALIZER;
static int q_buf[4], q_n, q_head;
static long q_sum;

static void *producer(void *arg)
{
    (void)arg;
    for (int i = 1; i <= 1000; i++) {
        OK(pthread_mutex_lock(&q_m));
        while (q_n == 4)
            OK(pthread_cond_wait(&q_nonfull, &q_m));
        q_buf[(q_head + q_n++) % 4] = i;
        OK(pthread_cond_signal(&q_nonempty));
        OK(pthread_mutex_unlock(&q_m));
    }
    note_tasks();
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        OK(pthread_mutex_lock(&q_m));
        while (q_n == 0)
            OK(pthread_cond_wait(&q_nonempty, &q_m));
        q_sum += q_buf[q_head];
        q_head = (q_head + 1) % 4;
        q_n--;
        OK(pthread_cond_signal(&q_nonfull));
        OK(pthread_mutex_unlock(&q_m));
    }
    return NULL;
}

static void m_signal(void)
{
    pthread_t p, c;
    OK(pthread_create(&c, NULL, consumer, NULL));
    OK(pthread_create(&p, NULL, producer, NULL));
    OK(pthread_join(p, NULL));
    OK(pthread_join(c, NULL));
    CHECKF(q_sum == 1000L * 1001 / 2, "sum %ld", q_sum);
    /* No waiters: signal and broadcast do nothing, and succeed. */
    OK(pthread_cond_signal(&q_nonempty));
    OK(pthread_cond_broadcast(&q_nonempty));
    OK(pthread_cond_destroy(&q_nonempty));
    OK(pthread_cond_destroy(&q_nonfull));
}

/* ---- signal wakes one, broadcast wakes all ------------------------------------------*/

static pthread_mutex_t w_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t w_c = PTHREAD_COND_INITIALIZER;
static int w_tokens, w_waiting, w_consumed;

static void *token_waiter(void *arg)
{
    (void)arg;
    OK(pthread_mutex_lock(&w_m));
    w_waiting++;
    while (w_tokens == 0)
        OK(pthread_cond_wait(&w_c, &w_m));
    w_tokens--;
    w_consumed++;
    w_waiting--;
    OK(pthread_mutex_unlock(&w_m));
    note_tasks();
    return NULL;
}

static int locked_read(int *v)
{
    OK(pthread_mutex_lock(&w_m));
    int x = *v;
    OK(pthread_mutex_unlock(&w_m));
    return x;
}

static void m_broadcast(void)
{
    enum { N = 10 };
    pthread_t t[N];
    for (int i = 0; i < N; i++)
        OK(pthread_create(&t[i], NULL, token_waiter, NULL));
    for (int i = 0; i < 2000 && locked_read(&w_waiting) < N; i++)
        usleep(1000);
    CHECK(locked_read(&w_waiting) == N);

    OK(pthread_mutex_lock(&w_m));
    w_tokens = 1;
    OK(pthread_cond_signal(&w_c));
    OK(pthread_mutex_unlock(&w_m));
    usleep(100000);
    CHECKF(locked_read(&w_consumed) == 1, "one signal: %d waiters went on",
           locked_read(&w_consumed));

    OK(pthread_mutex_lock(&w_m));
    w_tokens = N - 1;
    OK(pthread_cond_broadcast(&w_c));
    OK(pthread_mutex_unlock(&w_m));
    for (int i = 0; i < N; i++)
        OK(pthread_join(t[i], NULL));
    CHECK(w_consumed == N && w_tokens == 0 && w_waiting == 0);
}

/* ---- timeouts ---------------------------------------------------------------------------*/

enum how { TIMEDWAIT, CLOCKWAIT };

/* Wait on c with m (an error-checking mutex, held) until `ns` from now on
 * `clk`; nobody signals. */
static void expect_timeout(const char *what, pthread_cond_t *c, pthread_mutex_t *m, enum how how,
                           clockid_t clk, int64_t ns)
{
    struct wait_start t0 = wait_start();
    struct timespec ts = abs_in(clk, ns);
    int rc = how == TIMEDWAIT ? pthread_cond_timedwait(c, m, &ts)
                              : pthread_cond_clockwait(c, m, clk, &ts);
    int64_t el = waited_ns(t0);
    CHECKF(rc == ETIMEDOUT, "%s returned %s, expected ETIMEDOUT", what, ename(rc));
    if (ns > 0)
        CHECKF(el >= ns && el < ns + 300 * MS, "%s (%lld ms) returned after %lld ms", what,
               (long long)(ns / MS), (long long)(el / MS));
    else
        CHECKF(el < 2000 * MS, "%s with a past deadline took %lld ms", what, (long long)(el / MS));
    /* held again: the owner may unlock it, and relocking is EDEADLK */
    RC(pthread_mutex_lock(m), EDEADLK);
}

static void m_timedwait_realtime(void)
{
    pthread_mutex_t m;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    init_errorcheck(&m);
    OK(pthread_mutex_lock(&m));
    expect_timeout("timedwait (default clock)", &c, &m, TIMEDWAIT, CLOCK_REALTIME, 100 * MS);
    expect_timeout("timedwait (default clock), past", &c, &m, TIMEDWAIT, CLOCK_REALTIME,
                   -1000 * MS);
    pthread_cond_t c2;
    init_cond_clock(&c2, CLOCK_REALTIME);
    expect_timeout("timedwait (CLOCK_REALTIME attr)", &c2, &m, TIMEDWAIT, CLOCK_REALTIME, 100 * MS);
    OK(pthread_mutex_unlock(&m));
    OK(pthread_cond_destroy(&c2));
}

static void m_timedwait_monotonic(void)
{
    pthread_mutex_t m;
    pthread_cond_t c;
    init_errorcheck(&m);
    init_cond_clock(&c, CLOCK_MONOTONIC);
    OK(pthread_mutex_lock(&m));
    expect_timeout("timedwait (CLOCK_MONOTONIC)", &c, &m, TIMEDWAIT, CLOCK_MONOTONIC, 100 * MS);
    expect_timeout("timedwait (CLOCK_MONOTONIC), past", &c, &m, TIMEDWAIT, CLOCK_MONOTONIC,
                   -1000 * MS);
    OK(pthread_mutex_unlock(&m));
    OK(pthread_cond_destroy(&c));
}

static void m_clockwait(void)
{
    pthread_mutex_t m;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER, cm;
    init_errorcheck(&m);
    init_cond_clock(&cm, CLOCK_MONOTONIC);
    OK(pthread_mutex_lock(&m));
    /* clockwait's own clock wins over the condvar's */
    expect_timeout("clockwait(CLOCK_MONOTONIC)", &c, &m, CLOCKWAIT, CLOCK_MONOTONIC, 100 * MS);
    expect_timeout("clockwait(CLOCK_REALTIME)", &c, &m, CLOCKWAIT, CLOCK_REALTIME, 100 * MS);
    expect_timeout("clockwait(CLOCK_REALTIME) on a monotonic condvar", &cm, &m, CLOCKWAIT,
                   CLOCK_REALTIME, 100 * MS);
    expect_timeout("clockwait(CLOCK_MONOTONIC), past", &c, &m, CLOCKWAIT, CLOCK_MONOTONIC,
                   -1000 * MS);
    struct timespec ts = abs_in(CLOCK_MONOTONIC, 100 * MS);
    RC(pthread_cond_clockwait(&c, &m, CLOCK_PROCESS_CPUTIME_ID, &ts), EINVAL);
    RC(pthread_mutex_lock(&m), EDEADLK);
    OK(pthread_mutex_unlock(&m));
    OK(pthread_cond_destroy(&cm));
}

/* A timed wait that is signaled in time returns 0, on both clocks. */
static pthread_mutex_t s_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t s_c = PTHREAD_COND_INITIALIZER, s_cm;
static int s_flag;

static void *late_signaler(void *arg)
{
    pthread_cond_t *c = arg;
    usleep(50000);
    OK(pthread_mutex_lock(&s_m));
    s_flag = 1;
    OK(pthread_cond_signal(c));
    OK(pthread_mutex_unlock(&s_m));
    note_tasks();
    return NULL;
}

static void signaled_in_time(const char *what, pthread_cond_t *c, enum how how, clockid_t clk)
{
    pthread_t t;
    s_flag = 0;
    OK(pthread_mutex_lock(&s_m));
    int64_t t0 = mono_ns();   /* before the signaler exists: its 50 ms sleep may start at once */
    OK(pthread_create(&t, NULL, late_signaler, c));
    struct timespec ts = abs_in(clk, 5000 * MS);
    int rc = 0;
    while (!s_flag && rc == 0)
        rc = how == TIMEDWAIT ? pthread_cond_timedwait(c, &s_m, &ts)
                              : pthread_cond_clockwait(c, &s_m, clk, &ts);
    int64_t el = mono_ns() - t0;
    CHECKF(rc == 0 && s_flag, "%s returned %s", what, ename(rc));
    CHECKF(el >= 50 * MS && el < 3000 * MS, "%s was woken after %lld ms", what,
           (long long)(el / MS));
    OK(pthread_mutex_unlock(&s_m));
    OK(pthread_join(t, NULL));
}

static void m_signaled_in_time(void)
{
    init_cond_clock(&s_cm, CLOCK_MONOTONIC);
    signaled_in_time("timedwait (CLOCK_REALTIME)", &s_c, TIMEDWAIT, CLOCK_REALTIME);
    signaled_in_time("timedwait (CLOCK_MONOTONIC)", &s_cm, TIMEDWAIT, CLOCK_MONOTONIC);
    signaled_in_time("clockwait(CLOCK_MONOTONIC)", &s_c, CLOCKWAIT, CLOCK_MONOTONIC);
    signaled_in_time("clockwait(CLOCK_REALTIME)", &s_cm, CLOCKWAIT, CLOCK_REALTIME);
}

/* After a timeout the waiter must get the mutex back, even when another
 * thread holds it at that moment: it returns only once it has it. */
static pthread_mutex_t h_m;
static pthread_cond_t h_c = PTHREAD_COND_INITIALIZER;
static atomic_int h_waiting;
static atomic_llong h_released_at;

static void *h_holder(void *arg)
{
    (void)arg;
    while (!atomic_load(&h_waiting))
        usleep(1000);
    OK(pthread_mutex_lock(&h_m));        /* free once the waiter waits */
    usleep(200000);                       /* the waiter's timeout passes meanwhile */
    atomic_store(&h_released_at, mono_ns());
    OK(pthread_mutex_unlock(&h_m));
    return NULL;
}

static void m_timeout_contended(void)
{
    init_errorcheck(&h_m);
    pthread_t t;
    OK(pthread_create(&t, NULL, h_holder, NULL));
    OK(pthread_mutex_lock(&h_m));
    atomic_store(&h_waiting, 1);
    struct timespec ts = abs_in(CLOCK_REALTIME, 50 * MS);
    RC(pthread_cond_timedwait(&h_c, &h_m, &ts), ETIMEDOUT);
    int64_t back = mono_ns();
    CHECKF(atomic_load(&h_released_at) != 0 && back >= atomic_load(&h_released_at),
           "the timed-out waiter returned before the other thread released the mutex");
    RC(pthread_mutex_lock(&h_m), EDEADLK);
    OK(pthread_mutex_unlock(&h_m));
    OK(pthread_join(t, NULL));
}

/* ---- errors ---------------------------------------------------------------------------*/

static void m_errors(void)
{
    pthread_mutex_t m;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    init_errorcheck(&m);
    /* waiting with an error-checking mutex the caller does not hold */
    RC(pthread_cond_wait(&c, &m), EPERM);
    struct timespec ts = abs_in(CLOCK_REALTIME, 100 * MS);
    RC(pthread_cond_timedwait(&c, &m, &ts), EPERM);
    OK(pthread_mutex_lock(&m));
    struct timespec bad = abs_in(CLOCK_REALTIME, 100 * MS);
    bad.tv_nsec = 1000000000;
    RC(pthread_cond_timedwait(&c, &m, &bad), EINVAL);
    bad.tv_nsec = -1;
    RC(pthread_cond_clockwait(&c, &m, CLOCK_MONOTONIC, &bad), EINVAL);
    RC(pthread_mutex_lock(&m), EDEADLK);       /* still held after the errors */
    OK(pthread_mutex_unlock(&m));
    pthread_condattr_t a;
    OK(pthread_condattr_init(&a));
    RC(pthread_condattr_setclock(&a, CLOCK_PROCESS_CPUTIME_ID), EINVAL);
    OK(pthread_condattr_destroy(&a));
    OK(pthread_cond_destroy(&c));
    OK(pthread_mutex_destroy(&m));
}

/* ---- ping-pong between two threads, two condvars ----------------------------------------------*/

static pthread_mutex_t p_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t p_ping = PTHREAD_COND_INITIALIZER, p_pong = PTHREAD_COND_INITIALIZER;
static int p_turn;
#define ROUNDS 20000

static void *ponger(void *arg)
{
    (void)arg;
    OK(pthread_mutex_lock(&p_m));
    for (int i = 0; i < ROUNDS; i++) {
        while (p_turn != 1)
            OK(pthread_cond_wait(&p_ping, &p_m));
        p_turn = 0;
        OK(pthread_cond_signal(&p_pong));
    }
    OK(pthread_mutex_unlock(&p_m));
    return NULL;
}

static void m_pingpong(void)
{
    pthread_t t;
    OK(pthread_create(&t, NULL, ponger, NULL));
    OK(pthread_mutex_lock(&p_m));
    for (int i = 0; i < ROUNDS; i++) {
        p_turn = 1;
        OK(pthread_cond_signal(&p_ping));
        while (p_turn != 0)
            OK(pthread_cond_wait(&p_pong, &p_m));
    }
    OK(pthread_mutex_unlock(&p_m));
    OK(pthread_join(t, NULL));
}

/* ---- dispatch -------------------------------------------------------------------------------*/

static const struct pt_mode modes[] = {
    { "signal", m_signal },
    { "broadcast", m_broadcast },
    { "timedwait_realtime", m_timedwait_realtime },
    { "timedwait_monotonic", m_timedwait_monotonic },
    { "clockwait", m_clockwait },
    { "signaled_in_time", m_signaled_in_time },
    { "timeout_contended", m_timeout_contended },
    { "errors", m_errors },
    { "pingpong", m_pingpong },
};

int main(int argc, char **argv)
{
    return pt_main(modes, sizeof modes / sizeof modes[0], argc, argv);
}
