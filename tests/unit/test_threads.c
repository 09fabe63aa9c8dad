/*
 * test_threads.c - one scheduler per OS thread: independent schedulers run
 * side by side, ids are unique process-wide, and a blocked thread's
 * coroutines do not hold up another thread's.
 */
#include <dirent.h>
#include <poll.h>
#include <pthread.h>

#include "testutil.h"

TestSuite(threads, .timeout = 60);

enum { NTHREADS = 4, PER_THREAD = 200 };

struct thread_result {
    uint64_t main_id;
    uint64_t ids[PER_THREAD];
    int errors;
    long pings;
};

static void *child_report_id(void *arg)
{
    (void)arg;
    corun_sleep(CORUN_MSEC(2));
    corun_yield();
    return IP(corun_id(corun_current()));
}

static void *ponger(void *arg)
{
    corun_chan_t **ch = arg;
    void *m;
    while (corun_chan_recv(ch[0], &m, CORUN_FOREVER) == 0)
        if (corun_chan_send(ch[1], IP(PI(m) + 1), CORUN_FOREVER) != 0)
            return IP(1);
    return NULL;
}

static void *thread_body(void *arg)
{
    struct thread_result *res = arg;
    res->main_id = corun_id(corun_current());
    corun_t *co[PER_THREAD];
    for (int i = 0; i < PER_THREAD; i++) {
        if (corun_spawn(&co[i], NULL, child_report_id, NULL) != 0) {
            res->errors++;
            return NULL;
        }
    }
    for (int i = 0; i < PER_THREAD; i++) {
        void *r;
        uint64_t want = corun_id(co[i]);
        if (corun_join(co[i], &r) != 0 || PI(r) != want)
            res->errors++;
        res->ids[i] = want;
    }
    /* Channel ping-pong inside this thread. */
    corun_chan_t *ch[2];
    if (corun_chan_new(&ch[0], 0) || corun_chan_new(&ch[1], 1)) {
        res->errors++;
        return NULL;
    }
    corun_t *p;
    if (corun_spawn(&p, NULL, ponger, ch) != 0) {
        res->errors++;
        return NULL;
    }
    for (uintptr_t i = 0; i < 5000; i++) {
        void *m;
        if (corun_chan_send(ch[0], IP(i), CORUN_FOREVER) != 0 ||
            corun_chan_recv(ch[1], &m, CORUN_FOREVER) != 0 || PI(m) != i + 1)
            res->errors++;
        else
            res->pings++;
    }
    corun_chan_close(ch[0]);
    void *r;
    if (corun_join(p, &r) != 0 || r != NULL)
        res->errors++;
    if (corun_chan_free(ch[0]) || corun_chan_free(ch[1]))
        res->errors++;
    return NULL;
}

Test(threads, independent_schedulers_and_unique_ids)
{
    static struct thread_result res[NTHREADS];
    pthread_t t[NTHREADS];
    uint64_t my_main = corun_id(corun_current());
    cr_assert_eq(my_main, 1);
    for (int i = 0; i < NTHREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, thread_body, &res[i]), 0);
    for (int i = 0; i < NTHREADS; i++)
        cr_assert_eq(pthread_join(t[i], NULL), 0);

    enum { TOTAL = NTHREADS * (PER_THREAD + 1) + 1 };
    static uint64_t all[TOTAL];
    int n = 0;
    all[n++] = my_main;
    for (int i = 0; i < NTHREADS; i++) {
        cr_assert_eq(res[i].errors, 0, "thread %d saw %d errors", i, res[i].errors);
        cr_assert_eq(res[i].pings, 5000);
        cr_assert_neq(res[i].main_id, 0);
        all[n++] = res[i].main_id;
        for (int j = 0; j < PER_THREAD; j++) {
            if (j > 0)
                cr_assert_gt(res[i].ids[j], res[i].ids[j - 1]);
            all[n++] = res[i].ids[j];
        }
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            cr_assert_neq(all[i], all[j], "id %llu given out twice",
                          (unsigned long long)all[i]);
}

struct blocker {
    int fd;
    int rc;
};

/* A thread whose only coroutine waits on a pipe for a long time. */
static void *blocked_thread(void *arg)
{
    struct blocker *b = arg;
    short rev = 0;
    b->rc = corun_wait_fd(b->fd, POLLIN, CORUN_SEC(20), &rev);
    return NULL;
}

static void *count_sleeps(void *arg)
{
    long *n = arg;
    for (int i = 0; i < 20; i++) {
        corun_sleep(CORUN_MSEC(1));
        (*n)++;
    }
    return NULL;
}

Test(threads, a_waiting_thread_does_not_block_others)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    struct blocker b = { .fd = p[0], .rc = -1 };
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, blocked_thread, &b), 0);

    long n = 0;
    corun_t *c[5];
    int64_t t0 = tu_now();
    for (int i = 0; i < 5; i++)
        OK(corun_spawn(&c[i], NULL, count_sleeps, &n));
    for (int i = 0; i < 5; i++)
        OK(corun_join(c[i], NULL));
    cr_assert_eq(n, 100);
    cr_assert_lt(tu_now() - t0, CORUN_SEC(10));
    cr_assert_eq(b.rc, -1, "the other thread's wait ended early (%d)", b.rc);

    cr_assert_eq(write(p[1], "x", 1), 1);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(b.rc, 0);
    close(p[0]);
    close(p[1]);
}

/* Stacks are pooled process-wide: spawning and finishing coroutines on many
 * threads at once must not corrupt anything. */
static void *spawn_churn(void *arg)
{
    long *errors = arg;
    corun_attr_t small = { .stack_size = CORUN_STACK_MIN };
    corun_attr_t unguarded = { .stack_size = 32768, .guard_size = CORUN_GUARD_NONE };
    for (int round = 0; round < 200; round++) {
        corun_t *co[20];
        for (int i = 0; i < 20; i++)
            if (corun_spawn(&co[i], i % 3 == 0 ? NULL : i % 3 == 1 ? &small : &unguarded,
                            child_report_id, NULL) != 0)
                return IP(1);
        for (int i = 0; i < 20; i++) {
            void *r;
            uint64_t id = corun_id(co[i]);
            if (corun_join(co[i], &r) != 0 || PI(r) != id)
                (*errors)++;
        }
    }
    return NULL;
}

Test(threads, concurrent_spawn_churn)
{
    long errors[NTHREADS] = { 0 };
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, spawn_churn, &errors[i]), 0);
    for (int i = 0; i < NTHREADS; i++) {
        void *r;
        cr_assert_eq(pthread_join(t[i], &r), 0);
        cr_assert_null(r, "thread %d could not spawn", i);
        cr_assert_eq(errors[i], 0);
    }
}

static int count_open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void *use_corun_briefly(void *arg)
{
    (void)arg;
    corun_t *co;
    if (corun_spawn(&co, NULL, child_report_id, NULL) != 0 || corun_join(co, NULL) != 0)
        return IP(1);
    return NULL;
}

/* A thread's scheduler (its libuv loop, timer and poll fds) goes away with
 * the thread: threads that used corun and exited must not leak fds. */
Test(threads, exited_threads_do_not_leak_fds)
{
    pthread_t t;
    /* Warm up: process-wide one-time setup is not a leak. */
    cr_assert_eq(pthread_create(&t, NULL, use_corun_briefly, NULL), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    int before = count_open_fds();
    for (int i = 0; i < 100; i++) {
        void *r;
        cr_assert_eq(pthread_create(&t, NULL, use_corun_briefly, NULL), 0);
        cr_assert_eq(pthread_join(t, &r), 0);
        cr_assert_null(r);
    }
    int after = count_open_fds();
    cr_assert_lt(after - before, 10, "%d fds leaked by 100 threads that used corun",
                 after - before);
}

/* Coroutines and channels belong to the thread that created them: using them
 * from another thread fails with EXDEV. */
static pthread_mutex_t xmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t xcv = PTHREAD_COND_INITIALIZER;
static int xstate;
static corun_t *xco_unstarted, *xco_parked, *xco_done;
static corun_chan_t *xch;

static void *recv_once(void *arg)
{
    void *m = NULL;
    corun_chan_recv(arg, &m, CORUN_FOREVER);
    return m;
}

static void *owner_thread(void *arg)
{
    (void)arg;
    long bad = 0;
    if (corun_chan_new(&xch, 1) || corun_spawn(&xco_done, NULL, child_report_id, NULL) ||
        corun_spawn(&xco_parked, NULL, recv_once, xch))
        return IP(1);
    corun_sleep(CORUN_MSEC(5)); /* xco_done finishes, xco_parked parks */
    if (corun_spawn(&xco_unstarted, NULL, child_report_id, NULL))
        return IP(2);
    pthread_mutex_lock(&xmu);
    xstate = 1;
    pthread_cond_broadcast(&xcv);
    while (xstate != 2)
        pthread_cond_wait(&xcv, &xmu);
    pthread_mutex_unlock(&xmu);
    /* Everything still works for the owner. */
    void *r;
    if (corun_chan_send(xch, IP(5), 0) != 0)
        bad++;
    if (corun_join(xco_parked, &r) != 0 || PI(r) != 5)
        bad++;
    if (corun_join(xco_done, NULL) != 0 || corun_join(xco_unstarted, NULL) != 0)
        bad++;
    if (corun_chan_close(xch) != 0 || corun_chan_free(xch) != 0)
        bad++;
    return bad ? IP(3) : NULL;
}

Test(threads, other_threads_objects_are_exdev)
{
    pthread_t t;
    xstate = 0;
    cr_assert_eq(pthread_create(&t, NULL, owner_thread, NULL), 0);
    pthread_mutex_lock(&xmu);
    while (xstate != 1)
        pthread_cond_wait(&xcv, &xmu);
    pthread_mutex_unlock(&xmu);

    corun_t *cos[] = { xco_unstarted, xco_parked, xco_done };
    for (int i = 0; i < 3; i++) {
        void *r;
        FAILS(corun_join(cos[i], &r), EXDEV);
        FAILS(corun_join_timeout(cos[i], &r, 0), EXDEV);
        FAILS(corun_join_timeout(cos[i], &r, CORUN_MSEC(1)), EXDEV);
        FAILS(corun_detach(cos[i]), EXDEV);
    }
    void *m;
    FAILS(corun_chan_send(xch, IP(1), 0), EXDEV);
    FAILS(corun_chan_send(xch, IP(1), CORUN_FOREVER), EXDEV);
    FAILS(corun_chan_recv(xch, &m, 0), EXDEV);
    FAILS(corun_chan_recv(xch, &m, CORUN_FOREVER), EXDEV);
    FAILS(corun_chan_close(xch), EXDEV);

    pthread_mutex_lock(&xmu);
    xstate = 2;
    pthread_cond_broadcast(&xcv);
    pthread_mutex_unlock(&xmu);
    void *r;
    cr_assert_eq(pthread_join(t, &r), 0);
    cr_assert_null(r, "the owning thread failed afterwards (%lu)", (unsigned long)PI(r));
}
