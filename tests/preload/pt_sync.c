/*
 * pt_sync.c - a plain pthread program (not linked with corun) exercising
 * read-write locks (with their timed and clock variants), spinlocks,
 * barriers and POSIX semaphores (sem_wait, sem_trywait, sem_timedwait,
 * sem_clockwait, sem_post, sem_getvalue), with the exact errors.
 *
 * Run by tests/test_pthread_green as `pt_sync MODE`, natively and under
 * LD_PRELOAD=libcorun.so; see tests/preload/pt_thread.c for the output conventions.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pt_common.h"

/* Run fn(arg) in another thread and wait for it. */
static void in_other(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    OK(pthread_create(&t, NULL, fn, arg));
    OK(pthread_join(t, NULL));
}

/* ---- rwlock: shared readers, exclusive writers ---------------------------------------*/

static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static atomic_int rw_readers, rw_max_readers, rw_writer_saw_readers = -1;

static void *reader(void *arg)
{
    (void)arg;
    OK(pthread_rwlock_rdlock(&rw));
    int n = atomic_fetch_add(&rw_readers, 1) + 1, m = atomic_load(&rw_max_readers);
    while (n > m && !atomic_compare_exchange_weak(&rw_max_readers, &m, n))
        ;
    usleep(50000);                         /* the others read meanwhile */
    note_tasks();
    atomic_fetch_sub(&rw_readers, 1);
    OK(pthread_rwlock_unlock(&rw));
    return NULL;
}

static void *writer(void *arg)
{
    (void)arg;
    usleep(10000);                         /* after the readers are in */
    OK(pthread_rwlock_wrlock(&rw));
    atomic_store(&rw_writer_saw_readers, atomic_load(&rw_readers));
    OK(pthread_rwlock_unlock(&rw));
    return NULL;
}

static void m_rwlock_shared(void)
{
    pthread_t r[3], w;
    for (int i = 0; i < 3; i++)
        OK(pthread_create(&r[i], NULL, reader, NULL));
    OK(pthread_create(&w, NULL, writer, NULL));
    for (int i = 0; i < 3; i++)
        OK(pthread_join(r[i], NULL));
    OK(pthread_join(w, NULL));
    CHECKF(atomic_load(&rw_max_readers) == 3, "at most %d readers held it at once",
           atomic_load(&rw_max_readers));
    CHECKF(atomic_load(&rw_writer_saw_readers) == 0, "the writer got in with %d readers inside",
           atomic_load(&rw_writer_saw_readers));
}

/* ---- rwlock: errors from the holder and from others ------------------------------------*/

enum rw_op { TRYRD, TRYWR, TIMEDRD_50, TIMEDWR_50, CLOCKRD_MONO_50, CLOCKWR_MONO_50,
             CLOCKRD_REAL_50, CLOCKWR_REAL_50, RW_UNLOCK };

struct rw_probe {
    pthread_rwlock_t *l;
    enum rw_op op;
    int rc;
    int64_t el;
};

static int rw_do(pthread_rwlock_t *l, enum rw_op op)
{
    struct timespec rt = abs_in(CLOCK_REALTIME, 50 * MS), mt = abs_in(CLOCK_MONOTONIC, 50 * MS);
    int rc = -1;
    switch (op) {
    case TRYRD: rc = pthread_rwlock_tryrdlock(l); break;
    case TRYWR: rc = pthread_rwlock_trywrlock(l); break;
    case TIMEDRD_50: rc = pthread_rwlock_timedrdlock(l, &rt); break;
    case TIMEDWR_50: rc = pthread_rwlock_timedwrlock(l, &rt); break;
    case CLOCKRD_MONO_50: rc = pthread_rwlock_clockrdlock(l, CLOCK_MONOTONIC, &mt); break;
    case CLOCKWR_MONO_50: rc = pthread_rwlock_clockwrlock(l, CLOCK_MONOTONIC, &mt); break;
    case CLOCKRD_REAL_50: rc = pthread_rwlock_clockrdlock(l, CLOCK_REALTIME, &rt); break;
    case CLOCKWR_REAL_50: rc = pthread_rwlock_clockwrlock(l, CLOCK_REALTIME, &rt); break;
    case RW_UNLOCK: rc = pthread_rwlock_unlock(l); break;
    }
    return rc;
}

static void *rw_probe_fn(void *arg)
{
    struct rw_probe *p = arg;
    struct wait_start t0 = wait_start();
    p->rc = rw_do(p->l, p->op);
    p->el = waited_ns(t0);
    if (p->rc == 0)
        OK(pthread_rwlock_unlock(p->l));
    return NULL;
}

/* What `op` returns in another thread; timed ones must not time out early. */
static int rw_other(pthread_rwlock_t *l, enum rw_op op)
{
    struct rw_probe p = { .l = l, .op = op };
    in_other(rw_probe_fn, &p);
    if (p.rc == ETIMEDOUT)
        CHECKF(p.el >= 50 * MS && p.el < 3000 * MS, "op %d: a 50 ms timeout after %lld ms", op,
               (long long)(p.el / MS));
    return p.rc;
}

static void m_rwlock_errors(void)
{
    static pthread_rwlock_t l = PTHREAD_RWLOCK_INITIALIZER;
    /* write-locked by main */
    OK(pthread_rwlock_wrlock(&l));
    RC(pthread_rwlock_wrlock(&l), EDEADLK);
    RC(pthread_rwlock_rdlock(&l), EDEADLK);
    struct timespec rt = abs_in(CLOCK_REALTIME, 50 * MS);
    RC(pthread_rwlock_timedwrlock(&l, &rt), EDEADLK);
    for (enum rw_op op = TRYRD; op <= TRYWR; op++)
        RC(rw_other(&l, op), EBUSY);
    for (enum rw_op op = TIMEDRD_50; op <= CLOCKWR_REAL_50; op++)
        RC(rw_other(&l, op), ETIMEDOUT);
    OK(pthread_rwlock_unlock(&l));

    /* read-locked by main, twice */
    OK(pthread_rwlock_rdlock(&l));
    OK(pthread_rwlock_tryrdlock(&l));
    RC(rw_other(&l, TRYRD), 0);
    RC(rw_other(&l, TRYWR), EBUSY);
    RC(rw_other(&l, TIMEDRD_50), 0);
    RC(rw_other(&l, TIMEDWR_50), ETIMEDOUT);
    RC(rw_other(&l, CLOCKWR_MONO_50), ETIMEDOUT);
    RC(rw_other(&l, CLOCKWR_REAL_50), ETIMEDOUT);
    OK(pthread_rwlock_unlock(&l));
    RC(rw_other(&l, TRYWR), EBUSY);          /* one read lock left */
    OK(pthread_rwlock_unlock(&l));
    RC(rw_other(&l, TRYWR), 0);

    /* bad times, when the caller would wait */
    OK(pthread_rwlock_wrlock(&l));
    struct timespec bad = abs_in(CLOCK_REALTIME, 100 * MS);
    bad.tv_nsec = 1000000000;
    RC(pthread_rwlock_timedrdlock(&l, &bad), EINVAL);   /* (checked before EDEADLK) */
    bad.tv_nsec = -1;
    RC(pthread_rwlock_clockwrlock(&l, CLOCK_MONOTONIC, &bad), EINVAL);
    OK(pthread_rwlock_unlock(&l));
    OK(pthread_rwlock_destroy(&l));
    OK(pthread_rwlock_init(&l, NULL));                  /* re-initialised */
    OK(pthread_rwlock_wrlock(&l));
    OK(pthread_rwlock_unlock(&l));
    OK(pthread_rwlock_destroy(&l));
}

/* tryrdlock/trywrlock by the thread holding the write lock: EBUSY (POSIX
 * lists no EDEADLK for the try variants; glibc says EBUSY). */
static void m_rwlock_trylock_own(void)
{
    pthread_rwlock_t l;
    OK(pthread_rwlock_init(&l, NULL));
    OK(pthread_rwlock_wrlock(&l));
    RC(pthread_rwlock_tryrdlock(&l), EBUSY);
    RC(pthread_rwlock_trywrlock(&l), EBUSY);
    OK(pthread_rwlock_unlock(&l));
    OK(pthread_rwlock_rdlock(&l));
    RC(pthread_rwlock_trywrlock(&l), EBUSY);
    OK(pthread_rwlock_unlock(&l));
    OK(pthread_rwlock_destroy(&l));
}

/* A timed lock that the holder's release comes before is taken. */
static pthread_rwlock_t tl = PTHREAD_RWLOCK_INITIALIZER;
static atomic_int tl_held;
static atomic_llong tl_released_at;

static void *tl_writer(void *arg)
{
    (void)arg;
    OK(pthread_rwlock_wrlock(&tl));
    atomic_store(&tl_held, 1);
    usleep(100000);
    atomic_store(&tl_released_at, mono_ns());
    OK(pthread_rwlock_unlock(&tl));
    return NULL;
}

static void m_rwlock_timed(void)
{
    for (int round = 0; round < 4; round++) {
        atomic_store(&tl_held, 0);
        pthread_t t;
        OK(pthread_create(&t, NULL, tl_writer, NULL));
        while (!atomic_load(&tl_held))
            usleep(1000);
        struct timespec rt = abs_in(CLOCK_REALTIME, 5000 * MS);
        struct timespec mt = abs_in(CLOCK_MONOTONIC, 5000 * MS);
        switch (round) {
        case 0: OK(pthread_rwlock_timedrdlock(&tl, &rt)); break;
        case 1: OK(pthread_rwlock_timedwrlock(&tl, &rt)); break;
        case 2: OK(pthread_rwlock_clockrdlock(&tl, CLOCK_MONOTONIC, &mt)); break;
        case 3: OK(pthread_rwlock_clockwrlock(&tl, CLOCK_MONOTONIC, &mt)); break;
        }
        CHECKF(mono_ns() >= atomic_load(&tl_released_at) && atomic_load(&tl_released_at),
               "round %d: taken before the writer released it", round);
        OK(pthread_rwlock_unlock(&tl));
        OK(pthread_join(t, NULL));
    }
    /* past deadlines: a free lock is taken, a held one times out at once */
    struct timespec past = abs_in(CLOCK_REALTIME, -1000 * MS);
    OK(pthread_rwlock_timedwrlock(&tl, &past));
    OK(pthread_rwlock_unlock(&tl));
    OK(pthread_rwlock_wrlock(&tl));
    struct rw_probe p = { .l = &tl, .op = TRYRD };
    in_other(rw_probe_fn, &p);
    RC(p.rc, EBUSY);
    OK(pthread_rwlock_unlock(&tl));
}

/* Writers exclude everyone, across yields. */
static pthread_rwlock_t xl = PTHREAD_RWLOCK_INITIALIZER;
static atomic_int x_readers, x_writers, x_bad;
static long x_value;

static void *x_fn(void *arg)
{
    bool w = (intptr_t)arg & 1;
    for (int i = 0; i < 100; i++) {
        if (w) {
            OK(pthread_rwlock_wrlock(&xl));
            if (atomic_fetch_add(&x_writers, 1) || atomic_load(&x_readers))
                atomic_fetch_add(&x_bad, 1);
            long v = x_value;
            sched_yield();
            x_value = v + 1;
            atomic_fetch_sub(&x_writers, 1);
        } else {
            OK(pthread_rwlock_rdlock(&xl));
            atomic_fetch_add(&x_readers, 1);
            if (atomic_load(&x_writers))
                atomic_fetch_add(&x_bad, 1);
            sched_yield();
            atomic_fetch_sub(&x_readers, 1);
        }
        OK(pthread_rwlock_unlock(&xl));
    }
    note_tasks();
    return NULL;
}

static void m_rwlock_exclusion(void)
{
    pthread_t t[8];
    for (intptr_t i = 0; i < 8; i++)
        OK(pthread_create(&t[i], NULL, x_fn, (void *)i));
    for (int i = 0; i < 8; i++)
        OK(pthread_join(t[i], NULL));
    CHECKF(x_value == 4 * 100, "writers counted %ld, expected 400", x_value);
    CHECKF(atomic_load(&x_bad) == 0, "%d exclusion violations", atomic_load(&x_bad));
}

/* ---- spinlocks --------------------------------------------------------------------------------*/

static pthread_spinlock_t sp;
static atomic_int sp_held;
static atomic_llong sp_released_at, sp_got_at;
static long sp_counter;

static void *sp_try_fn(void *arg)
{
    *(int *)arg = pthread_spin_trylock(&sp);
    if (*(int *)arg == 0)
        OK(pthread_spin_unlock(&sp));
    return NULL;
}

static void *sp_holder(void *arg)
{
    (void)arg;
    OK(pthread_spin_lock(&sp));
    atomic_store(&sp_held, 1);
    usleep(30000);
    atomic_store(&sp_released_at, mono_ns());
    OK(pthread_spin_unlock(&sp));
    return NULL;
}

static void *sp_waiter(void *arg)
{
    (void)arg;
    while (!atomic_load(&sp_held))
        usleep(1000);
    OK(pthread_spin_lock(&sp));              /* spins until the holder lets go */
    atomic_store(&sp_got_at, mono_ns());
    OK(pthread_spin_unlock(&sp));
    return NULL;
}

static void *sp_count(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++) {
        OK(pthread_spin_lock(&sp));
        long v = sp_counter;
        if (i % 8 == 0)
            sched_yield();
        sp_counter = v + 1;
        OK(pthread_spin_unlock(&sp));
    }
    note_tasks();
    return NULL;
}

static void m_spin(void)
{
    OK(pthread_spin_init(&sp, PTHREAD_PROCESS_PRIVATE));
    OK(pthread_spin_lock(&sp));
    RC(pthread_spin_trylock(&sp), EBUSY);
    int rc = -1;
    in_other(sp_try_fn, &rc);
    RC(rc, EBUSY);
    OK(pthread_spin_unlock(&sp));
    in_other(sp_try_fn, &rc);
    RC(rc, 0);
    OK(pthread_spin_trylock(&sp));
    OK(pthread_spin_unlock(&sp));

    pthread_t h, w;
    OK(pthread_create(&h, NULL, sp_holder, NULL));
    OK(pthread_create(&w, NULL, sp_waiter, NULL));
    OK(pthread_join(h, NULL));
    OK(pthread_join(w, NULL));
    CHECKF(atomic_load(&sp_got_at) >= atomic_load(&sp_released_at),
           "the spinlock was taken while held");

    pthread_t t[10];
    for (int i = 0; i < 10; i++)
        OK(pthread_create(&t[i], NULL, sp_count, NULL));
    for (int i = 0; i < 10; i++)
        OK(pthread_join(t[i], NULL));
    CHECKF(sp_counter == 1000, "counter %ld, expected 1000", sp_counter);
    OK(pthread_spin_destroy(&sp));
}

/* ---- barriers ---------------------------------------------------------------------------------*/

#define BN 5
#define ROUNDS 3
static pthread_barrier_t bar;
static atomic_int b_arrived, b_serial[ROUNDS], b_early;

static void *b_fn(void *arg)
{
    (void)arg;
    for (int r = 0; r < ROUNDS; r++) {
        usleep((useconds_t)(rand() % 5000));
        atomic_fetch_add(&b_arrived, 1);
        int rc = pthread_barrier_wait(&bar);
        CHECKF(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD, "barrier_wait returned %d", rc);
        if (rc == PTHREAD_BARRIER_SERIAL_THREAD)
            atomic_fetch_add(&b_serial[r], 1);
        if (atomic_load(&b_arrived) < BN * (r + 1))
            atomic_fetch_add(&b_early, 1);
    }
    note_tasks();
    return NULL;
}

static void m_barrier(void)
{
    pthread_barrier_t z;
    RC(pthread_barrier_init(&z, NULL, 0), EINVAL);
    OK(pthread_barrier_init(&bar, NULL, BN));
    pthread_t t[BN];
    for (int i = 0; i < BN; i++)
        OK(pthread_create(&t[i], NULL, b_fn, NULL));
    for (int i = 0; i < BN; i++)
        OK(pthread_join(t[i], NULL));
    for (int r = 0; r < ROUNDS; r++)
        CHECKF(atomic_load(&b_serial[r]) == 1, "round %d: %d serial threads", r,
               atomic_load(&b_serial[r]));
    CHECKF(atomic_load(&b_early) == 0, "%d threads passed the barrier early",
           atomic_load(&b_early));
    OK(pthread_barrier_destroy(&bar));
    /* a barrier of one never waits */
    OK(pthread_barrier_init(&z, NULL, 1));
    RC(pthread_barrier_wait(&z), PTHREAD_BARRIER_SERIAL_THREAD);
    OK(pthread_barrier_destroy(&z));
}

/* ---- semaphores -------------------------------------------------------------------------------*/

static int value_of(sem_t *s)
{
    int v = -99;
    CHECK(sem_getvalue(s, &v) == 0);
    return v;
}

static void m_sem_basic(void)
{
    sem_t s;
    CHECK(sem_init(&s, 0, 2) == 0);
    CHECK(value_of(&s) == 2);
    CHECK(sem_trywait(&s) == 0);
    CHECK(sem_trywait(&s) == 0);
    FAILS_ERRNO(sem_trywait(&s), EAGAIN);
    CHECK(value_of(&s) == 0);
    CHECK(sem_post(&s) == 0);
    CHECK(value_of(&s) == 1);
    CHECK(sem_wait(&s) == 0);
    CHECK(value_of(&s) == 0);
    CHECK(sem_destroy(&s) == 0);
    FAILS_ERRNO(sem_init(&s, 0, (unsigned)SEM_VALUE_MAX + 1), EINVAL);
    CHECK(sem_init(&s, 0, SEM_VALUE_MAX) == 0);
    FAILS_ERRNO(sem_post(&s), EOVERFLOW);
    CHECK(value_of(&s) == SEM_VALUE_MAX);
    CHECK(sem_destroy(&s) == 0);
}

static sem_t bs;
static atomic_int bs_done;

static void *bs_waiter(void *arg)
{
    (void)arg;
    CHECK(sem_wait(&bs) == 0);
    atomic_fetch_add(&bs_done, 1);
    note_tasks();
    return NULL;
}

static void m_sem_block(void)
{
    CHECK(sem_init(&bs, 0, 0) == 0);
    pthread_t t[10];
    for (int i = 0; i < 10; i++)
        OK(pthread_create(&t[i], NULL, bs_waiter, NULL));
    usleep(50000);
    CHECKF(atomic_load(&bs_done) == 0, "%d waiters passed a zero semaphore", atomic_load(&bs_done));
    CHECK(sem_post(&bs) == 0);
    usleep(50000);
    CHECKF(atomic_load(&bs_done) == 1, "one post let %d waiters through", atomic_load(&bs_done));
    CHECK(value_of(&bs) == 0);
    for (int i = 0; i < 12; i++)
        CHECK(sem_post(&bs) == 0);
    for (int i = 0; i < 10; i++)
        OK(pthread_join(t[i], NULL));
    CHECK(atomic_load(&bs_done) == 10);
    CHECKF(value_of(&bs) == 3, "value %d after 13 posts and 10 waits", value_of(&bs));
    CHECK(sem_destroy(&bs) == 0);
}

enum sem_how { TIMEDWAIT, CLOCK_MONO, CLOCK_REAL };

static int sem_timed(sem_t *s, enum sem_how how, int64_t ns)
{
    struct timespec ts = abs_in(how == CLOCK_MONO ? CLOCK_MONOTONIC : CLOCK_REALTIME, ns);
    switch (how) {
    case TIMEDWAIT: return sem_timedwait(s, &ts);
    case CLOCK_MONO: return sem_clockwait(s, CLOCK_MONOTONIC, &ts);
    default: return sem_clockwait(s, CLOCK_REALTIME, &ts);
    }
}

static sem_t ts_sem;

static void *ts_poster(void *arg)
{
    (void)arg;
    usleep(50000);
    CHECK(sem_post(&ts_sem) == 0);
    return NULL;
}

static void m_sem_timed(void)
{
    static const char *names[] = { "sem_timedwait", "sem_clockwait(CLOCK_MONOTONIC)",
                                   "sem_clockwait(CLOCK_REALTIME)" };
    CHECK(sem_init(&ts_sem, 0, 0) == 0);
    for (enum sem_how how = TIMEDWAIT; how <= CLOCK_REAL; how++) {
        struct wait_start w0 = wait_start();
        FAILS_ERRNO(sem_timed(&ts_sem, how, 100 * MS), ETIMEDOUT);
        int64_t el = waited_ns(w0);
        CHECKF(el >= 100 * MS && el < 3000 * MS, "%s (100 ms) returned after %lld ms", names[how],
               (long long)(el / MS));
        int64_t t0 = mono_ns();
        FAILS_ERRNO(sem_timed(&ts_sem, how, -1000 * MS), ETIMEDOUT);
        CHECK(mono_ns() - t0 < 2000 * MS);
        /* posted in time */
        pthread_t t;
        t0 = mono_ns();   /* before the poster exists: its 50 ms sleep may start at once */
        OK(pthread_create(&t, NULL, ts_poster, NULL));
        CHECKF(sem_timed(&ts_sem, how, 5000 * MS) == 0, "%s: %s", names[how], ename(errno));
        el = mono_ns() - t0;
        CHECKF(el >= 40 * MS && el < 3000 * MS, "%s woken after %lld ms", names[how],
               (long long)(el / MS));
        OK(pthread_join(t, NULL));
        /* a positive value is taken even with a past deadline */
        CHECK(sem_post(&ts_sem) == 0);
        CHECK(sem_timed(&ts_sem, how, -1000 * MS) == 0);
        CHECK(value_of(&ts_sem) == 0);
    }
    /* bad times, when it would wait */
    struct timespec bad = abs_in(CLOCK_REALTIME, 100 * MS);
    bad.tv_nsec = 1000000000;
    FAILS_ERRNO(sem_timedwait(&ts_sem, &bad), EINVAL);
    bad.tv_nsec = -1;
    FAILS_ERRNO(sem_clockwait(&ts_sem, CLOCK_MONOTONIC, &bad), EINVAL);
    struct timespec ok = abs_in(CLOCK_MONOTONIC, 100 * MS);
    FAILS_ERRNO(sem_clockwait(&ts_sem, CLOCK_PROCESS_CPUTIME_ID, &ok), EINVAL);
    CHECK(sem_destroy(&ts_sem) == 0);
}

/* A named semaphore (sem_open) keeps its value. */
static void m_sem_named(void)
{
    char name[64];
    snprintf(name, sizeof name, "/pt_sync_%d", (int)getpid());
    sem_unlink(name);
    sem_t *s = sem_open(name, O_CREAT | O_EXCL, 0600, 3);
    CHECKF(s != SEM_FAILED, "sem_open: %s", ename(errno));
    if (s == SEM_FAILED)
        return;
    CHECKF(value_of(s) == 3, "sem_open(..., 3): sem_getvalue says %d", value_of(s));
    CHECK(sem_trywait(s) == 0);
    CHECKF(value_of(s) == 2, "after sem_trywait: %d", value_of(s));
    CHECK(sem_post(s) == 0);
    CHECK(sem_post(s) == 0);
    /* another process opening it sees the same value */
    pid_t pid = fork();
    if (pid == 0) {
        sem_t *c = sem_open(name, 0);
        int v = -1;
        if (c != SEM_FAILED)
            sem_getvalue(c, &v);
        _exit(v == 4 ? 0 : 10 + (v < 0 ? 0 : v));
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child saw value %d, expected 4",
           WIFEXITED(st) ? WEXITSTATUS(st) - 10 : -1);
    CHECK(sem_close(s) == 0);
    CHECK(sem_unlink(name) == 0);
}

/* A process-shared semaphore in shared memory: a child's post wakes the
 * parent's wait. */
static void m_sem_pshared(void)
{
    sem_t *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(s != MAP_FAILED);
    CHECK(sem_init(s, 1, 0) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        usleep(50000);
        _exit(sem_post(s) == 0 ? 0 : 1);
    }
    int64_t t0 = mono_ns();
    int rc = sem_timed(s, CLOCK_MONO, 2000 * MS);
    int e = errno;
    int64_t el = mono_ns() - t0;
    CHECKF(rc == 0, "sem_clockwait returned %d (%s) after %lld ms; the child posted after 50 ms",
           rc, ename(e), (long long)(el / MS));
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(sem_destroy(s) == 0);
}

/* Process-shared mutex, condvar and rwlock in shared memory: a forked child
 * locks, changes and signals; the parent waits for it on the condvar. */
struct shared_objs {
    pthread_mutex_t m;
    pthread_cond_t c;
    pthread_rwlock_t rw;
    int flag;
};

static void m_pshared_objects(void)
{
    struct shared_objs *o = mmap(NULL, sizeof *o, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                                 -1, 0);
    CHECK(o != MAP_FAILED);
    pthread_mutexattr_t ma;
    pthread_condattr_t ca;
    pthread_rwlockattr_t ra;
    OK(pthread_mutexattr_init(&ma));
    OK(pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED));
    OK(pthread_condattr_init(&ca));
    OK(pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED));
    OK(pthread_rwlockattr_init(&ra));
    OK(pthread_rwlockattr_setpshared(&ra, PTHREAD_PROCESS_SHARED));
    OK(pthread_mutex_init(&o->m, &ma));
    OK(pthread_cond_init(&o->c, &ca));
    OK(pthread_rwlock_init(&o->rw, &ra));
    OK(pthread_rwlock_wrlock(&o->rw));      /* held by the parent: the child must wait */
    pid_t pid = fork();
    if (pid == 0) {
        usleep(50000);
        int bad = pthread_rwlock_tryrdlock(&o->rw) != EBUSY;
        bad |= pthread_mutex_lock(&o->m) != 0;
        o->flag = 1;
        bad |= pthread_cond_signal(&o->c) != 0;
        bad |= pthread_mutex_unlock(&o->m) != 0;
        bad |= pthread_rwlock_rdlock(&o->rw) != 0;   /* once the parent lets go */
        bad |= o->flag != 2;
        bad |= pthread_rwlock_unlock(&o->rw) != 0;
        _exit(bad);
    }
    OK(pthread_mutex_lock(&o->m));
    struct timespec abs = abs_in(CLOCK_REALTIME, 5000 * MS);
    int rc = 0;
    while (!o->flag && rc == 0)
        rc = pthread_cond_timedwait(&o->c, &o->m, &abs);
    RC(rc, 0);
    CHECK(o->flag == 1);
    o->flag = 2;
    OK(pthread_mutex_unlock(&o->m));
    OK(pthread_rwlock_unlock(&o->rw));
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child saw wrong results (status %#x)", st);
    OK(pthread_rwlock_destroy(&o->rw));
    OK(pthread_cond_destroy(&o->c));
    OK(pthread_mutex_destroy(&o->m));
}

/* ---- dispatch -------------------------------------------------------------------------------*/

static const struct pt_mode modes[] = {
    { "rwlock_shared", m_rwlock_shared },
    { "rwlock_errors", m_rwlock_errors },
    { "rwlock_trylock_own", m_rwlock_trylock_own },
    { "rwlock_timed", m_rwlock_timed },
    { "rwlock_exclusion", m_rwlock_exclusion },
    { "spin", m_spin },
    { "barrier", m_barrier },
    { "sem_basic", m_sem_basic },
    { "sem_block", m_sem_block },
    { "sem_timed", m_sem_timed },
    { "sem_named", m_sem_named },
    { "sem_pshared", m_sem_pshared },
    { "pshared_objects", m_pshared_objects },
};

int main(int argc, char **argv)
{
    return pt_main(modes, sizeof modes / sizeof modes[0], argc, argv);
}
