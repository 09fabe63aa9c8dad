/*
 * pt_mutex.c - a plain pthread program (not linked with corun) exercising
 * mutexes: normal, recursive and error-checking kinds (attribute- and
 * statically initialised), trylock, timedlock and clocklock on both clocks,
 * with the exact errors (EBUSY, EDEADLK, EPERM, ETIMEDOUT, EINVAL); that
 * ownership is per thread (recursive and error-checking mutexes tell green
 * threads apart although they share one kernel thread); and a mutex held
 * across a blocking call while other threads run.
 *
 * Run by tests/test_pthread_green as `pt_mutex MODE`, natively and under
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

/* ---- helpers ------------------------------------------------------------------*/

static void init_kind(pthread_mutex_t *m, int kind)
{
    pthread_mutexattr_t a;
    OK(pthread_mutexattr_init(&a));
    OK(pthread_mutexattr_settype(&a, kind));
    int back = -1;
    OK(pthread_mutexattr_gettype(&a, &back));
    CHECK(back == kind);
    OK(pthread_mutex_init(m, &a));
    OK(pthread_mutexattr_destroy(&a));
}

enum op { OP_TRYLOCK, OP_UNLOCK, OP_TIMEDLOCK_50MS, OP_TRYLOCK_UNLOCK };

struct probe {
    pthread_mutex_t *m;
    enum op op;
    int rc;
    int64_t el;
};

static void *probe_fn(void *arg)
{
    struct probe *p = arg;
    struct wait_start t0 = wait_start();
    switch (p->op) {
    case OP_TRYLOCK:
        p->rc = pthread_mutex_trylock(p->m);
        break;
    case OP_UNLOCK:
        p->rc = pthread_mutex_unlock(p->m);
        break;
    case OP_TIMEDLOCK_50MS: {
        struct timespec ts = abs_in(CLOCK_REALTIME, 50 * MS);
        p->rc = pthread_mutex_timedlock(p->m, &ts);
        break;
    }
    case OP_TRYLOCK_UNLOCK:
        p->rc = pthread_mutex_trylock(p->m);
        if (p->rc == 0)
            OK(pthread_mutex_unlock(p->m));
        break;
    }
    p->el = waited_ns(t0);
    note_tasks();
    return NULL;
}

/* What `op` on m returns when another thread does it. */
static int from_other(pthread_mutex_t *m, enum op op)
{
    struct probe p = { .m = m, .op = op, .rc = -1 };
    pthread_t t;
    OK(pthread_create(&t, NULL, probe_fn, &p));
    OK(pthread_join(t, NULL));
    if (op == OP_TIMEDLOCK_50MS && p.rc == ETIMEDOUT)
        CHECKF(p.el >= 50 * MS && p.el < 3000 * MS, "a 50 ms timedlock took %lld ms",
               (long long)(p.el / MS));
    return p.rc;
}

static pthread_mutex_t s_normal = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t s_recursive = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_mutex_t s_errorcheck = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;

/* ---- normal -----------------------------------------------------------------------*/

static void check_normal(pthread_mutex_t *m)
{
    OK(pthread_mutex_lock(m));
    RC(pthread_mutex_trylock(m), EBUSY);          /* by its owner too */
    RC(from_other(m, OP_TRYLOCK), EBUSY);
    RC(from_other(m, OP_TIMEDLOCK_50MS), ETIMEDOUT);
    RC(pthread_mutex_destroy(m), EBUSY);
    /* A normal mutex relocked by its owner with a timeout waits it out. */
    struct wait_start t0 = wait_start();
    struct timespec ts = abs_in(CLOCK_REALTIME, 50 * MS);
    RC(pthread_mutex_timedlock(m, &ts), ETIMEDOUT);
    CHECK(waited_ns(t0) >= 50 * MS);
    OK(pthread_mutex_unlock(m));
    RC(from_other(m, OP_TRYLOCK_UNLOCK), 0);
    OK(pthread_mutex_trylock(m));
    OK(pthread_mutex_unlock(m));
}

static void m_normal(void)
{
    check_normal(&s_normal);
    pthread_mutex_t m;
    init_kind(&m, PTHREAD_MUTEX_NORMAL);
    check_normal(&m);
    OK(pthread_mutex_destroy(&m));
    init_kind(&m, PTHREAD_MUTEX_DEFAULT);
    check_normal(&m);
    OK(pthread_mutex_destroy(&m));
    OK(pthread_mutex_init(&m, NULL));
    check_normal(&m);
    OK(pthread_mutex_destroy(&m));
    OK(pthread_mutex_init(&m, NULL));            /* re-initialised after destroy */
    check_normal(&m);
    OK(pthread_mutex_destroy(&m));
}

/* ---- recursive ------------------------------------------------------------------------*/

static void check_recursive(pthread_mutex_t *m)
{
    OK(pthread_mutex_lock(m));
    OK(pthread_mutex_lock(m));
    OK(pthread_mutex_lock(m));
    OK(pthread_mutex_trylock(m));                 /* the owner may relock: depth 4 */
    struct timespec ts = abs_in(CLOCK_REALTIME, 50 * MS);
    OK(pthread_mutex_timedlock(m, &ts));          /* depth 5 */
    RC(from_other(m, OP_TRYLOCK), EBUSY);
    RC(from_other(m, OP_UNLOCK), EPERM);
    RC(from_other(m, OP_TIMEDLOCK_50MS), ETIMEDOUT);
    RC(pthread_mutex_destroy(m), EBUSY);
    for (int i = 0; i < 4; i++) {
        OK(pthread_mutex_unlock(m));
        RC(from_other(m, OP_TRYLOCK), EBUSY);     /* still held until the last unlock */
    }
    OK(pthread_mutex_unlock(m));
    RC(pthread_mutex_unlock(m), EPERM);           /* not locked any more */
    RC(from_other(m, OP_TRYLOCK_UNLOCK), 0);
}

static void m_recursive(void)
{
    check_recursive(&s_recursive);
    pthread_mutex_t m;
    init_kind(&m, PTHREAD_MUTEX_RECURSIVE);
    check_recursive(&m);
    OK(pthread_mutex_destroy(&m));
}

/* ---- error-checking ----------------------------------------------------------------------*/

static void check_errorcheck(pthread_mutex_t *m)
{
    RC(pthread_mutex_unlock(m), EPERM);           /* not locked */
    OK(pthread_mutex_lock(m));
    RC(pthread_mutex_lock(m), EDEADLK);
    struct timespec ts = abs_in(CLOCK_REALTIME, 50 * MS);
    RC(pthread_mutex_timedlock(m, &ts), EDEADLK);
    RC(from_other(m, OP_UNLOCK), EPERM);
    RC(from_other(m, OP_TRYLOCK), EBUSY);
    RC(from_other(m, OP_TIMEDLOCK_50MS), ETIMEDOUT);   /* waits: not EDEADLK */
    OK(pthread_mutex_unlock(m));
    RC(pthread_mutex_unlock(m), EPERM);
    RC(from_other(m, OP_TRYLOCK_UNLOCK), 0);
}

static void m_errorcheck(void)
{
    check_errorcheck(&s_errorcheck);
    pthread_mutex_t m;
    init_kind(&m, PTHREAD_MUTEX_ERRORCHECK);
    check_errorcheck(&m);
    OK(pthread_mutex_destroy(&m));
}

/* trylock on a mutex its caller holds is EBUSY whatever the kind (POSIX:
 * "currently locked (by any thread, including the current thread)"),
 * except that a recursive one is relocked. */
static void m_errorcheck_trylock(void)
{
    pthread_mutex_t m;
    init_kind(&m, PTHREAD_MUTEX_ERRORCHECK);
    OK(pthread_mutex_lock(&m));
    RC(pthread_mutex_trylock(&m), EBUSY);
    OK(pthread_mutex_unlock(&m));
    OK(pthread_mutex_destroy(&m));
    OK(pthread_mutex_lock(&s_errorcheck));
    RC(pthread_mutex_trylock(&s_errorcheck), EBUSY);
    OK(pthread_mutex_unlock(&s_errorcheck));
}

/* ---- ownership is per thread ---------------------------------------------------------------*/

static pthread_mutex_t d_rec, d_err;
static struct gate d_gate;
static atomic_int d_stage;
static atomic_llong d_released_at, d_rec_got_at, d_err_got_at;

static void *d_owner(void *arg)
{
    (void)arg;
    OK(pthread_mutex_lock(&d_rec));
    OK(pthread_mutex_lock(&d_rec));
    OK(pthread_mutex_lock(&d_err));
    atomic_store(&d_stage, 1);
    gate_wait(&d_gate);                  /* holds both across a blocking read */
    note_tasks();
    atomic_store(&d_released_at, mono_ns());
    OK(pthread_mutex_unlock(&d_err));
    OK(pthread_mutex_unlock(&d_rec));
    OK(pthread_mutex_unlock(&d_rec));
    return NULL;
}

static void *d_other(void *arg)
{
    (void)arg;
    /* Another thread: the owner's locks are not ours. */
    RC(pthread_mutex_trylock(&d_rec), EBUSY);
    RC(pthread_mutex_unlock(&d_rec), EPERM);
    RC(pthread_mutex_unlock(&d_err), EPERM);
    atomic_store(&d_stage, 2);
    OK(pthread_mutex_lock(&d_rec));      /* blocks until the owner lets go */
    atomic_store(&d_rec_got_at, mono_ns());
    OK(pthread_mutex_lock(&d_err));      /* blocks, never EDEADLK */
    atomic_store(&d_err_got_at, mono_ns());
    RC(pthread_mutex_lock(&d_err), EDEADLK);   /* now it is ours */
    OK(pthread_mutex_trylock(&d_rec));
    OK(pthread_mutex_unlock(&d_rec));
    OK(pthread_mutex_unlock(&d_rec));
    OK(pthread_mutex_unlock(&d_err));
    return NULL;
}

static void m_ownership(void)
{
    init_kind(&d_rec, PTHREAD_MUTEX_RECURSIVE);
    init_kind(&d_err, PTHREAD_MUTEX_ERRORCHECK);
    gate_init(&d_gate);
    pthread_t o, t;
    OK(pthread_create(&o, NULL, d_owner, NULL));
    while (atomic_load(&d_stage) < 1)
        usleep(1000);
    OK(pthread_create(&t, NULL, d_other, NULL));
    while (atomic_load(&d_stage) < 2)
        usleep(1000);
    usleep(50000);                       /* the other thread now waits in lock */
    RC(pthread_mutex_trylock(&d_rec), EBUSY);  /* main is a third thread */
    RC(pthread_mutex_unlock(&d_err), EPERM);
    CHECKF(atomic_load(&d_rec_got_at) == 0, "the recursive mutex was taken from its owner");
    gate_open(&d_gate, 1);
    OK(pthread_join(o, NULL));
    OK(pthread_join(t, NULL));
    CHECKF(atomic_load(&d_rec_got_at) >= atomic_load(&d_released_at),
           "the recursive mutex was taken before its owner released it");
    CHECKF(atomic_load(&d_err_got_at) >= atomic_load(&d_released_at),
           "the error-checking mutex was taken before its owner released it");
    OK(pthread_mutex_destroy(&d_rec));
    OK(pthread_mutex_destroy(&d_err));
}

/* ---- timed locking ----------------------------------------------------------------------------*/

static pthread_mutex_t t_m = PTHREAD_MUTEX_INITIALIZER;
static atomic_int t_held;
static atomic_llong t_released_at;

static void *t_holder(void *arg)
{
    (void)arg;
    OK(pthread_mutex_lock(&t_m));
    atomic_store(&t_held, 1);
    usleep(400000);
    atomic_store(&t_released_at, mono_ns());
    OK(pthread_mutex_unlock(&t_m));
    return NULL;
}

static void timed_out(const char *what, clockid_t clk, bool clocklock, int64_t ns)
{
    struct wait_start t0 = wait_start();
    struct timespec ts = abs_in(clk, ns);
    int rc = clocklock ? pthread_mutex_clocklock(&t_m, clk, &ts)
                       : pthread_mutex_timedlock(&t_m, &ts);
    int64_t el = waited_ns(t0);
    CHECKF(rc == ETIMEDOUT, "%s returned %s, expected ETIMEDOUT", what, ename(rc));
    if (ns > 0)
        CHECKF(el >= ns && el < ns + 300 * MS, "%s (%lld ms) returned after %lld ms", what,
               (long long)(ns / MS), (long long)(el / MS));
    else
        CHECKF(el < 2000 * MS, "%s with a past deadline took %lld ms", what, (long long)(el / MS));
    if (rc == 0)
        OK(pthread_mutex_unlock(&t_m));
}

static void m_timed(void)
{
    /* A free mutex is taken even with a past deadline. */
    struct timespec past = abs_in(CLOCK_REALTIME, -1000 * MS);
    OK(pthread_mutex_timedlock(&t_m, &past));
    OK(pthread_mutex_unlock(&t_m));
    past = abs_in(CLOCK_MONOTONIC, -1000 * MS);
    OK(pthread_mutex_clocklock(&t_m, CLOCK_MONOTONIC, &past));
    OK(pthread_mutex_unlock(&t_m));

    pthread_t h;
    int64_t t0 = mono_ns();
    OK(pthread_create(&h, NULL, t_holder, NULL));
    while (!atomic_load(&t_held))
        usleep(1000);
    timed_out("timedlock", CLOCK_REALTIME, false, 50 * MS);
    timed_out("clocklock(CLOCK_REALTIME)", CLOCK_REALTIME, true, 50 * MS);
    timed_out("clocklock(CLOCK_MONOTONIC)", CLOCK_MONOTONIC, true, 50 * MS);
    timed_out("timedlock", CLOCK_REALTIME, false, -1000 * MS);
    timed_out("clocklock(CLOCK_MONOTONIC)", CLOCK_MONOTONIC, true, -1000 * MS);
    /* Bad times are reported when the caller would have to wait. */
    struct timespec bad = abs_in(CLOCK_REALTIME, 1000 * MS);
    bad.tv_nsec = 1000000000;
    RC(pthread_mutex_timedlock(&t_m, &bad), EINVAL);
    bad.tv_nsec = -1;
    RC(pthread_mutex_clocklock(&t_m, CLOCK_MONOTONIC, &bad), EINVAL);
    struct timespec ok = abs_in(CLOCK_MONOTONIC, 1000 * MS);
    RC(pthread_mutex_clocklock(&t_m, CLOCK_PROCESS_CPUTIME_ID, &ok), EINVAL);
    /* A deadline the holder's release comes before: the lock is taken. */
    struct timespec later = abs_in(CLOCK_MONOTONIC, 5000 * MS);
    OK(pthread_mutex_clocklock(&t_m, CLOCK_MONOTONIC, &later));
    int64_t got = mono_ns();
    CHECKF(got >= atomic_load(&t_released_at), "the lock was taken before the holder released it");
    CHECKF(got - t0 < 3000 * MS, "clocklock took %lld ms", (long long)((got - t0) / MS));
    OK(pthread_mutex_unlock(&t_m));
    OK(pthread_join(h, NULL));
    later = abs_in(CLOCK_REALTIME, 5000 * MS);
    OK(pthread_mutex_timedlock(&t_m, &later));
    OK(pthread_mutex_unlock(&t_m));
}

/* ---- a lock held across a blocking call while other threads run -------------------------------*/

static pthread_mutex_t b_m = PTHREAD_MUTEX_INITIALIZER;
static int b_pipe[2];
static atomic_int b_progress, b_held, b_busy_seen, b_progress_at_get;
static atomic_llong b_unlocked_at, b_got_at;

static void *b_holder(void *arg)
{
    (void)arg;
    OK(pthread_mutex_lock(&b_m));
    atomic_store(&b_held, 1);
    char c;
    CHECK(read(b_pipe[0], &c, 1) == 1);  /* blocks, lock held */
    CHECKF(atomic_load(&b_progress) == 5, "others made %d of 5 steps while the lock was held "
           "across read()", atomic_load(&b_progress));
    usleep(20000);                        /* and across a sleep */
    note_tasks();
    atomic_store(&b_unlocked_at, mono_ns());
    OK(pthread_mutex_unlock(&b_m));
    return NULL;
}

static void *b_worker(void *arg)
{
    (void)arg;
    while (!atomic_load(&b_held))
        usleep(1000);
    for (int i = 0; i < 5; i++) {
        usleep(5000);
        if (pthread_mutex_trylock(&b_m) == EBUSY)
            atomic_fetch_add(&b_busy_seen, 1);
        else
            OK(pthread_mutex_unlock(&b_m));
        atomic_fetch_add(&b_progress, 1);
    }
    note_tasks();
    CHECK(write(b_pipe[1], "x", 1) == 1);
    return NULL;
}

static void *b_waiter(void *arg)
{
    (void)arg;
    while (!atomic_load(&b_held))
        usleep(1000);
    OK(pthread_mutex_lock(&b_m));
    atomic_store(&b_got_at, mono_ns());
    atomic_store(&b_progress_at_get, atomic_load(&b_progress));
    OK(pthread_mutex_unlock(&b_m));
    return NULL;
}

static void m_across_block(void)
{
    CHECK(pipe(b_pipe) == 0);
    pthread_t h, w, x;
    OK(pthread_create(&h, NULL, b_holder, NULL));
    OK(pthread_create(&w, NULL, b_worker, NULL));
    OK(pthread_create(&x, NULL, b_waiter, NULL));
    OK(pthread_join(h, NULL));
    OK(pthread_join(w, NULL));
    OK(pthread_join(x, NULL));
    CHECKF(atomic_load(&b_busy_seen) == 5, "trylock found the lock busy %d of 5 times",
           atomic_load(&b_busy_seen));
    CHECKF(atomic_load(&b_got_at) >= atomic_load(&b_unlocked_at),
           "the waiter got the lock before the holder unlocked it");
    CHECK(atomic_load(&b_progress_at_get) == 5);
}

/* ---- mutual exclusion across yields -----------------------------------------------------------*/

static pthread_mutex_t c_m = PTHREAD_MUTEX_INITIALIZER;
static long c_counter;
static atomic_int c_inside, c_overlap;

static void *c_fn(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) {
        OK(pthread_mutex_lock(&c_m));
        if (atomic_fetch_add(&c_inside, 1) != 0)
            atomic_fetch_add(&c_overlap, 1);
        long v = c_counter;
        if (i % 4 == 0)
            sched_yield();                /* others run, and find it locked */
        c_counter = v + 1;
        atomic_fetch_sub(&c_inside, 1);
        OK(pthread_mutex_unlock(&c_m));
    }
    note_tasks();
    return NULL;
}

static void m_contention(void)
{
    pthread_t t[50];
    for (int i = 0; i < 50; i++)
        OK(pthread_create(&t[i], NULL, c_fn, NULL));
    for (int i = 0; i < 50; i++)
        OK(pthread_join(t[i], NULL));
    CHECKF(c_counter == 50 * 200, "counter %ld, expected %d", c_counter, 50 * 200);
    CHECK(atomic_load(&c_overlap) == 0);
}

/* ---- dispatch ---------------------------------------------------------------------------------*/

static const struct pt_mode modes[] = {
    { "normal", m_normal },
    { "recursive", m_recursive },
    { "errorcheck", m_errorcheck },
    { "errorcheck_trylock", m_errorcheck_trylock },
    { "ownership", m_ownership },
    { "timed", m_timed },
    { "across_block", m_across_block },
    { "contention", m_contention },
};

int main(int argc, char **argv)
{
    return pt_main(modes, sizeof modes / sizeof modes[0], argc, argv);
}
