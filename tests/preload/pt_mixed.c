/*
 * pt_mixed.c - a plain pthread program (not linked with corun) whose
 * mutexes, condition variables, semaphores, rwlocks, barriers and once
 * controls are shared by its ordinary threads (green under corun) and by
 * kernel threads made behind corun's back, with the pthread_create a
 * library finds by dlsym(RTLD_NEXT) (tests/preload/ktest_lib.c), as jemalloc does
 * in Redis. Each mode checks counts that only come out right if every
 * wait, wake, handoff and error is right whichever kind of thread is on
 * either side.
 *
 * Run by tests/test_pthread_green as `pt_mixed MODE`, natively and under
 * LD_PRELOAD=libcorun.so; see tests/preload/pt_thread.c for the output conventions.
 * The kernel threads are real ones in every run, so there is no one-OS-
 * thread check; "kernel threads: N" in the output says how many ran.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pt_common.h"

int ktest_create(pthread_t *t, void *(*fn)(void *), void *arg);
int ktest_join(pthread_t t);

/* ---- kernel threads behind corun's back ---------------------------------------*/

struct kthread {
    pthread_t t;
    void *(*fn)(void *);
    void *arg;
    atomic_bool done;
    pid_t tid;
};

static void *kthread_main(void *p)
{
    struct kthread *k = p;
    k->tid = (pid_t)syscall(SYS_gettid);
    note_tasks();
    k->fn(k->arg);
    atomic_store(&k->done, true);
    return NULL;
}

static void kstart(struct kthread *k, void *(*fn)(void *), void *arg)
{
    k->fn = fn;
    k->arg = arg;
    atomic_store(&k->done, false);
    OK(ktest_create(&k->t, kthread_main, k));
}

/* Wait for it without holding the OS thread (green threads may be what it
 * waits for), then reap it. */
static void kwait(struct kthread *k)
{
    while (!atomic_load(&k->done))
        usleep(1000);
    OK(ktest_join(k->t));
    CHECKF(k->tid != getpid(), "the kernel thread ran on the main thread's tid");
}

static void gstart(pthread_t *t, void *(*fn)(void *), void *arg)
{
    OK(pthread_create(t, NULL, fn, arg));
}

/* ---- ping-pong through one mutex and one condvar --------------------------------*/

#define PINGPONG_ROUNDS 10000
static pthread_mutex_t pp_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pp_c = PTHREAD_COND_INITIALIZER;
static int pp_turn, pp_count[2];

static void *pp_player(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (int i = 0; i < PINGPONG_ROUNDS; i++) {
        OK(pthread_mutex_lock(&pp_m));
        while (pp_turn != me)
            OK(pthread_cond_wait(&pp_c, &pp_m));
        pp_turn = !me;
        pp_count[me]++;
        OK(pthread_cond_signal(&pp_c));
        OK(pthread_mutex_unlock(&pp_m));
    }
    return NULL;
}

static void m_pingpong(void)
{
    struct kthread k;
    pthread_t g;
    kstart(&k, pp_player, (void *)1);
    gstart(&g, pp_player, (void *)0);
    OK(pthread_join(g, NULL));
    kwait(&k);
    CHECKF(pp_count[0] == PINGPONG_ROUNDS && pp_count[1] == PINGPONG_ROUNDS, "counts %d %d",
           pp_count[0], pp_count[1]);
    printf("kernel threads: 1, rounds: %d\n", pp_count[0] + pp_count[1]);
}

/* ---- condvar: kernel waiters woken by green signals and broadcasts, and the
 * reverse; timeouts of both kinds ----------------------------------------------*/

#define COND_ROUNDS 3000
static pthread_mutex_t cv_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv_items = PTHREAD_COND_INITIALIZER, cv_space = PTHREAD_COND_INITIALIZER;
static int cv_queue, cv_taken[4];

/* Consumers take items one by one; producers add up to 2 at a time. */
static void *cv_consumer(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (int i = 0; i < COND_ROUNDS; i++) {
        OK(pthread_mutex_lock(&cv_m));
        while (cv_queue == 0)
            OK(pthread_cond_wait(&cv_items, &cv_m));
        cv_queue--;
        cv_taken[me]++;
        OK(pthread_cond_signal(&cv_space));
        OK(pthread_mutex_unlock(&cv_m));
    }
    return NULL;
}

static void *cv_producer(void *arg)
{
    int n = (int)(intptr_t)arg;
    for (int i = 0; i < n; i++) {
        OK(pthread_mutex_lock(&cv_m));
        while (cv_queue >= 2)
            OK(pthread_cond_wait(&cv_space, &cv_m));
        cv_queue++;
        if (i % 2)
            OK(pthread_cond_broadcast(&cv_items));
        else
            OK(pthread_cond_signal(&cv_items));
        OK(pthread_mutex_unlock(&cv_m));
    }
    return NULL;
}

static void m_cond(void)
{
    /* Two kernel consumers fed by a green producer, two green consumers fed
     * by a kernel producer, all on the same condvars. */
    struct kthread k[3];
    pthread_t g[3];
    kstart(&k[0], cv_consumer, (void *)0);
    kstart(&k[1], cv_consumer, (void *)1);
    gstart(&g[0], cv_consumer, (void *)2);
    gstart(&g[1], cv_consumer, (void *)3);
    gstart(&g[2], cv_producer, (void *)(intptr_t)(2 * COND_ROUNDS));
    kstart(&k[2], cv_producer, (void *)(intptr_t)(2 * COND_ROUNDS));
    for (int i = 0; i < 3; i++)
        OK(pthread_join(g[i], NULL));
    for (int i = 0; i < 3; i++)
        kwait(&k[i]);
    for (int i = 0; i < 4; i++)
        CHECKF(cv_taken[i] == COND_ROUNDS, "consumer %d took %d", i, cv_taken[i]);
    CHECK(cv_queue == 0);
    printf("kernel threads: 3\n");
}

static pthread_cond_t to_c;
static atomic_long to_elapsed;
static atomic_int to_rc = -1;

static void *to_waiter(void *arg)
{
    (void)arg;
    OK(pthread_mutex_lock(&cv_m));
    int64_t t0 = mono_ns();
    struct timespec abs = abs_in(CLOCK_MONOTONIC, 50 * MS);
    atomic_store(&to_rc, pthread_cond_timedwait(&to_c, &cv_m, &abs));
    atomic_store(&to_elapsed, mono_ns() - t0);
    OK(pthread_mutex_unlock(&cv_m));
    return NULL;
}

static void m_cond_timeout(void)
{
    pthread_condattr_t ca;
    OK(pthread_condattr_init(&ca));
    OK(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC));
    OK(pthread_cond_init(&to_c, &ca));
    for (int kind = 0; kind < 2; kind++) {
        struct kthread k;
        pthread_t g;
        atomic_store(&to_rc, -1);
        if (kind)
            gstart(&g, to_waiter, NULL);
        else
            kstart(&k, to_waiter, NULL);
        if (kind)
            OK(pthread_join(g, NULL));
        else
            kwait(&k);
        RC(atomic_load(&to_rc), ETIMEDOUT);
        long e = atomic_load(&to_elapsed);
        CHECKF(e >= 50 * MS && e < 5000 * MS, "%s waiter timed out after %ld ns",
               kind ? "green" : "kernel", e);
    }
    OK(pthread_cond_destroy(&to_c));
    printf("kernel threads: 1\n");
}

/* ---- mutex: both kinds contend; error checks across kinds ---------------------*/

#define MUTEX_ROUNDS 20000
static pthread_mutex_t mx = PTHREAD_MUTEX_INITIALIZER;
static long mx_count;
static atomic_int mx_inside;

static void *mx_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < MUTEX_ROUNDS; i++) {
        OK(pthread_mutex_lock(&mx));
        if (atomic_fetch_add(&mx_inside, 1) != 0)
            failf(__LINE__, "two threads inside the mutex");
        long c = mx_count;
        if (i % 64 == 0)
            sched_yield();        /* let the others pile up on it */
        mx_count = c + 1;
        atomic_fetch_sub(&mx_inside, 1);
        OK(pthread_mutex_unlock(&mx));
    }
    return NULL;
}

static pthread_mutex_t mx_ec = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
static pthread_mutex_t mx_rec = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static atomic_int mx_stage;

/* Kernel thread: holds both, checks its own errors, and lets go on cue. */
static void *mx_holder(void *arg)
{
    (void)arg;
    OK(pthread_mutex_lock(&mx_ec));
    RC(pthread_mutex_lock(&mx_ec), EDEADLK);
    RC(pthread_mutex_trylock(&mx_ec), EBUSY);
    OK(pthread_mutex_lock(&mx_rec));
    OK(pthread_mutex_lock(&mx_rec));
    atomic_store(&mx_stage, 1);
    while (atomic_load(&mx_stage) != 2)
        usleep(1000);
    OK(pthread_mutex_unlock(&mx_rec));
    OK(pthread_mutex_unlock(&mx_rec));   /* the green thread blocked on it gets it */
    OK(pthread_mutex_unlock(&mx_ec));
    RC(pthread_mutex_unlock(&mx_ec), EPERM);
    return NULL;
}

static void m_mutex(void)
{
    struct kthread k[2];
    pthread_t g[2];
    kstart(&k[0], mx_worker, NULL);
    gstart(&g[0], mx_worker, NULL);
    kstart(&k[1], mx_worker, NULL);
    gstart(&g[1], mx_worker, NULL);
    for (int i = 0; i < 2; i++)
        OK(pthread_join(g[i], NULL));
    for (int i = 0; i < 2; i++)
        kwait(&k[i]);
    CHECKF(mx_count == 4L * MUTEX_ROUNDS, "count %ld", mx_count);

    struct kthread h;
    kstart(&h, mx_holder, NULL);
    while (atomic_load(&mx_stage) != 1)
        usleep(1000);
    RC(pthread_mutex_unlock(&mx_ec), EPERM);    /* held by the kernel thread, not us */
    RC(pthread_mutex_trylock(&mx_ec), EBUSY);
    RC(pthread_mutex_trylock(&mx_rec), EBUSY);
    struct timespec abs = abs_in(CLOCK_REALTIME, 20 * MS);
    RC(pthread_mutex_timedlock(&mx_rec, &abs), ETIMEDOUT);
    atomic_store(&mx_stage, 2);
    OK(pthread_mutex_lock(&mx_rec));            /* parks until the kernel thread lets go */
    OK(pthread_mutex_lock(&mx_rec));
    OK(pthread_mutex_unlock(&mx_rec));
    OK(pthread_mutex_unlock(&mx_rec));
    kwait(&h);
    OK(pthread_mutex_lock(&mx_ec));
    OK(pthread_mutex_unlock(&mx_ec));
    printf("kernel threads: 3, count: %ld\n", mx_count);
}

/* ---- semaphores: a ping-pong each way, and a kernel thread's timeout ----------*/

#define SEM_ROUNDS 5000
static sem_t sem_a, sem_b;
static int sem_count[2];

static void *sem_ponger(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (int i = 0; i < SEM_ROUNDS; i++) {
        if (sem_wait(me ? &sem_b : &sem_a) != 0)
            failf(__LINE__, "sem_wait: %s", strerror(errno));
        sem_count[me]++;
        if (sem_post(me ? &sem_a : &sem_b) != 0)
            failf(__LINE__, "sem_post: %s", strerror(errno));
    }
    return NULL;
}

static atomic_int sem_timed_errno;

static void *sem_timer(void *arg)
{
    (void)arg;
    struct timespec abs = abs_in(CLOCK_REALTIME, 30 * MS);
    errno = 0;
    int r = sem_timedwait(&sem_a, &abs);
    atomic_store(&sem_timed_errno, r == -1 ? errno : 0);
    return NULL;
}

static void m_sem(void)
{
    OK(sem_init(&sem_a, 0, 1));
    OK(sem_init(&sem_b, 0, 0));
    struct kthread k;
    pthread_t g;
    kstart(&k, sem_ponger, (void *)1);
    gstart(&g, sem_ponger, (void *)0);
    OK(pthread_join(g, NULL));
    kwait(&k);
    CHECKF(sem_count[0] == SEM_ROUNDS && sem_count[1] == SEM_ROUNDS, "counts %d %d",
           sem_count[0], sem_count[1]);
    int v = -1;
    OK(sem_getvalue(&sem_a, &v));
    CHECKF(v == 1, "sem_a value %d", v);
    OK(sem_trywait(&sem_a));
    FAILS_ERRNO(sem_trywait(&sem_a), EAGAIN);
    kstart(&k, sem_timer, NULL);
    kwait(&k);
    RC(atomic_load(&sem_timed_errno), ETIMEDOUT);
    OK(sem_destroy(&sem_a));
    OK(sem_destroy(&sem_b));
    printf("kernel threads: 2\n");
}

/* ---- rwlock: a kernel writer and green readers, and the reverse -----------------*/

#define RW_ROUNDS 2000
static pthread_rwlock_t rwl = PTHREAD_RWLOCK_INITIALIZER;
static long rw_a, rw_b;         /* equal whenever no writer holds the lock */
static atomic_int rw_reads;

static void *rw_writer(void *arg)
{
    (void)arg;
    for (int i = 0; i < RW_ROUNDS; i++) {
        OK(pthread_rwlock_wrlock(&rwl));
        rw_a++;
        if (i % 16 == 0)
            sched_yield();
        rw_b++;
        OK(pthread_rwlock_unlock(&rwl));
    }
    return NULL;
}

static void *rw_reader(void *arg)
{
    (void)arg;
    for (int i = 0; i < RW_ROUNDS; i++) {
        OK(pthread_rwlock_rdlock(&rwl));
        if (rw_a != rw_b)
            failf(__LINE__, "a reader saw a write half done: %ld %ld", rw_a, rw_b);
        atomic_fetch_add(&rw_reads, 1);
        if (i % 16 == 0)
            sched_yield();
        OK(pthread_rwlock_unlock(&rwl));
    }
    return NULL;
}

static void m_rwlock(void)
{
    struct kthread k[2];
    pthread_t g[3];
    kstart(&k[0], rw_writer, NULL);
    kstart(&k[1], rw_reader, NULL);
    gstart(&g[0], rw_reader, NULL);
    gstart(&g[1], rw_writer, NULL);
    gstart(&g[2], rw_reader, NULL);
    for (int i = 0; i < 3; i++)
        OK(pthread_join(g[i], NULL));
    for (int i = 0; i < 2; i++)
        kwait(&k[i]);
    CHECKF(rw_a == 2 * RW_ROUNDS && rw_b == rw_a, "a %ld b %ld", rw_a, rw_b);
    CHECKF(atomic_load(&rw_reads) == 3 * RW_ROUNDS, "reads %d", atomic_load(&rw_reads));
    OK(pthread_rwlock_destroy(&rwl));
    printf("kernel threads: 2\n");
}

/* ---- barrier: green and kernel threads meet, round after round -----------------*/

#define BARRIER_ROUNDS 2000
#define BARRIER_N 4
static pthread_barrier_t bar;
static atomic_int bar_serial, bar_arrived[BARRIER_ROUNDS];

static void *bar_member(void *arg)
{
    (void)arg;
    for (int i = 0; i < BARRIER_ROUNDS; i++) {
        atomic_fetch_add(&bar_arrived[i], 1);
        int r = pthread_barrier_wait(&bar);
        if (r == PTHREAD_BARRIER_SERIAL_THREAD)
            atomic_fetch_add(&bar_serial, 1);
        else if (r != 0)
            failf(__LINE__, "pthread_barrier_wait returned %d", r);
        if (atomic_load(&bar_arrived[i]) != BARRIER_N)
            failf(__LINE__, "round %d released with %d arrived", i, atomic_load(&bar_arrived[i]));
    }
    return NULL;
}

static void m_barrier(void)
{
    OK(pthread_barrier_init(&bar, NULL, BARRIER_N));
    struct kthread k[2];
    pthread_t g[2];
    kstart(&k[0], bar_member, NULL);
    gstart(&g[0], bar_member, NULL);
    kstart(&k[1], bar_member, NULL);
    gstart(&g[1], bar_member, NULL);
    for (int i = 0; i < 2; i++)
        OK(pthread_join(g[i], NULL));
    for (int i = 0; i < 2; i++)
        kwait(&k[i]);
    CHECKF(atomic_load(&bar_serial) == BARRIER_ROUNDS, "serial %d", atomic_load(&bar_serial));
    OK(pthread_barrier_destroy(&bar));
    printf("kernel threads: 2\n");
}

/* ---- once: raced by green and kernel threads -----------------------------------*/

#define ONCE_ROUNDS 50
static pthread_once_t onces[ONCE_ROUNDS];
static atomic_int once_runs[ONCE_ROUNDS], once_finished[ONCE_ROUNDS], once_round;
static atomic_int once_after_bad;

static void once_fn(void)
{
    int r = atomic_load(&once_round);
    atomic_fetch_add(&once_runs[r], 1);
    usleep(2000);             /* the others arrive meanwhile and must wait */
    atomic_store(&once_finished[r], 1);
}

static atomic_int once_go;

static void *once_racer(void *arg)
{
    int r = (int)(intptr_t)arg;
    while (atomic_load(&once_go) != r + 1)
        sched_yield();
    OK(pthread_once(&onces[r], once_fn));
    if (atomic_load(&once_runs[r]) != 1 || !atomic_load(&once_finished[r]))
        atomic_fetch_add(&once_after_bad, 1);
    return NULL;
}

static void m_once(void)
{
    for (int r = 0; r < ONCE_ROUNDS; r++) {
        atomic_store(&once_round, r);
        struct kthread k[3];
        pthread_t g[3];
        for (int i = 0; i < 3; i++) {
            kstart(&k[i], once_racer, (void *)(intptr_t)r);
            gstart(&g[i], once_racer, (void *)(intptr_t)r);
        }
        atomic_store(&once_go, r + 1);
        for (int i = 0; i < 3; i++)
            OK(pthread_join(g[i], NULL));
        for (int i = 0; i < 3; i++)
            kwait(&k[i]);
        CHECKF(atomic_load(&once_runs[r]) == 1, "round %d: fn ran %d times", r,
               atomic_load(&once_runs[r]));
    }
    CHECKF(atomic_load(&once_after_bad) == 0, "%d callers returned before fn finished",
           atomic_load(&once_after_bad));
    printf("kernel threads: %d\n", 3 * ONCE_ROUNDS);
}

/* ---- a kernel thread arriving while green threads use the objects -----------
 * Under corun on one OS thread the objects' CAS go without the lock prefix
 * until a second OS thread uses one (src/green/gsync.c): the kernel
 * thread's first call must end that before it takes part. Two green threads
 * count under a mutex, an rwlock held for writing and a semaphore used as a
 * lock, yielding now and then; the kernel thread starts once they are well
 * under way, and they stop only after it has done as many rounds itself.
 * Any count short of the rounds done is a lost update. */

#define LATE_ROUNDS 20000
static pthread_mutex_t lk_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t lk_rw = PTHREAD_RWLOCK_INITIALIZER;
static sem_t lk_sem;
static long lk_mutexed, lk_written, lk_semmed;
static atomic_long lk_rounds[2];        /* [0] green, [1] kernel */
static atomic_bool lk_stop;

static void *lk_worker(void *arg)
{
    int kernel = arg == NULL;
    long n = 0;
    while (!atomic_load(&lk_stop)) {
        OK(pthread_mutex_lock(&lk_m));
        lk_mutexed++;
        OK(pthread_mutex_unlock(&lk_m));
        OK(pthread_rwlock_wrlock(&lk_rw));
        lk_written++;
        OK(pthread_rwlock_unlock(&lk_rw));
        if (sem_wait(&lk_sem) != 0)
            failf(__LINE__, "sem_wait: %s", strerror(errno));
        lk_semmed++;
        if (sem_post(&lk_sem) != 0)
            failf(__LINE__, "sem_post: %s", strerror(errno));
        atomic_fetch_add(&lk_rounds[kernel], 1);
        if (!kernel && ++n % 16 == 0)
            sched_yield();
    }
    return NULL;
}

static void m_late_kernel(void)
{
    CHECK(sem_init(&lk_sem, 0, 1) == 0);
    pthread_t g[2];
    for (int i = 0; i < 2; i++)
        gstart(&g[i], lk_worker, (void *)1);
    while (atomic_load(&lk_rounds[0]) < LATE_ROUNDS)
        usleep(1000);
    struct kthread k;
    kstart(&k, lk_worker, NULL);
    while (atomic_load(&lk_rounds[1]) < LATE_ROUNDS)
        usleep(1000);
    atomic_store(&lk_stop, true);
    for (int i = 0; i < 2; i++)
        OK(pthread_join(g[i], NULL));
    kwait(&k);
    long total = atomic_load(&lk_rounds[0]) + atomic_load(&lk_rounds[1]);
    CHECKF(lk_mutexed == total && lk_written == total && lk_semmed == total,
           "%ld rounds, counted %ld under the mutex, %ld under the rwlock, %ld under the semaphore",
           total, lk_mutexed, lk_written, lk_semmed);
    printf("kernel threads: 1, green rounds at least %d, kernel rounds at least %d\n", LATE_ROUNDS,
           LATE_ROUNDS);
}

static const struct pt_mode modes[] = {
    { "pingpong", m_pingpong },
    { "cond", m_cond },
    { "cond_timeout", m_cond_timeout },
    { "mutex", m_mutex },
    { "sem", m_sem },
    { "rwlock", m_rwlock },
    { "barrier", m_barrier },
    { "once", m_once },
    { "late_kernel", m_late_kernel },
};

int main(int argc, char **argv)
{
    return pt_main(modes, sizeof modes / sizeof modes[0], argc, argv);
}
