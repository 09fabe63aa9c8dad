/*
 * pt_thread.c - a plain pthread program (not linked with corun) exercising
 * the thread lifecycle: create (stack size, detach state, guard size
 * attributes), join, tryjoin/timedjoin/clockjoin, detach, exit (also from
 * main), self, equal, names, sched_yield, once, keys and their destructors,
 * deferred cancellation and cleanup handlers, per-thread signal masks and
 * pthread_kill, thread ids (gettid, tgkill), and the stack a thread reports
 * being the program's to use.
 *
 * tests/test_pthread_green runs it as `pt_thread MODE`, natively and under
 * LD_PRELOAD=libcorun.so (CORUN_THREADS=green and native): every check is
 * what POSIX/glibc do natively, so the same program must pass all three
 * ways. Checks specific to green threads (strict FIFO order of yields) only
 * apply when libcorun is loaded with CORUN_THREADS other than "native".
 *
 * Output: failures on stderr, then on stdout "corun=<0|1> green=<0|1>
 * max_tasks=<n>" (the most OS threads /proc/self/task showed while threads
 * ran) and "PASS <mode>"; exit status 1 if any check failed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pt_common.h"

/* ---- create, join, self, equal -------------------------------------------- */

#define NCJ 10
static pthread_t cj_self[NCJ];

static void *cj_fn(void *arg)
{
    intptr_t i = (intptr_t)arg;
    cj_self[i] = pthread_self();
    CHECK(pthread_equal(pthread_self(), cj_self[i]));
    usleep(20000);               /* all alive at once */
    note_tasks();
    return IP(i * 2 + 1);
}

static void m_create_join(void)
{
    pthread_t t[NCJ];
    for (intptr_t i = 0; i < NCJ; i++)
        OK(pthread_create(&t[i], NULL, cj_fn, IP(i)));
    for (int i = 0; i < NCJ; i++)
        for (int j = 0; j < NCJ; j++)
            CHECKF(!pthread_equal(t[i], t[j]) == (i != j), "threads %d and %d", i, j);
    for (intptr_t i = 0; i < NCJ; i++) {
        void *r = NULL;
        OK(pthread_join(t[i], &r));
        CHECKF(r == IP(i * 2 + 1), "thread %ld returned %p", (long)i, r);
        CHECKF(pthread_equal(cj_self[i], t[i]), "pthread_self() in thread %ld differs from "
               "what pthread_create stored", (long)i);
        CHECK(!pthread_equal(t[i], pthread_self()));
    }
    CHECK(pthread_equal(pthread_self(), pthread_self()));
    pthread_t u;
    OK(pthread_create(&u, NULL, cj_fn, IP(0)));
    OK(pthread_join(u, NULL));         /* a NULL result pointer is fine */
}

/* ---- join errors -------------------------------------------------------------*/

static void m_join_errors(void)
{
    struct gate g;
    gate_init(&g);
    RC(pthread_join(pthread_self(), NULL), EDEADLK);

    pthread_attr_t a;
    OK(pthread_attr_init(&a));
    OK(pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED));
    int ds = -1;
    OK(pthread_attr_getdetachstate(&a, &ds));
    CHECK(ds == PTHREAD_CREATE_DETACHED);
    pthread_t d;
    OK(pthread_create(&d, &a, gate_then_return, &g));
    OK(pthread_attr_destroy(&a));
    RC(pthread_join(d, NULL), EINVAL);          /* detached at creation */

    pthread_t t;
    OK(pthread_create(&t, NULL, gate_then_return, &g));
    OK(pthread_detach(t));
    RC(pthread_join(t, NULL), EINVAL);          /* detached afterwards */

    gate_open(&g, 2);
    usleep(20000);                              /* let the detached ones finish */
}

/* ---- tryjoin, timedjoin, clockjoin ---------------------------------------- */

static void *sleep_then(void *arg)
{
    usleep(300000);
    return arg;
}

static void m_tryjoin(void)
{
    struct gate g;
    gate_init(&g);
    pthread_t t;
    void *r = NULL;
    OK(pthread_create(&t, NULL, gate_then_return, &g));
    RC(pthread_tryjoin_np(t, &r), EBUSY);
    usleep(10000);
    RC(pthread_tryjoin_np(t, &r), EBUSY);       /* still blocked in read() */
    gate_open(&g, 1);
    int rc = EBUSY;
    for (int i = 0; i < 2000 && rc == EBUSY; i++) {
        rc = pthread_tryjoin_np(t, &r);
        if (rc == EBUSY)
            usleep(1000);
    }
    RC(rc, 0);
    CHECK(r == (void *)0x60);
}

static void m_timedjoin(void)
{
    pthread_t t;
    void *r = NULL;
    int64_t t0 = mono_ns();
    OK(pthread_create(&t, NULL, sleep_then, IP(7)));

    struct timespec past = abs_in(CLOCK_REALTIME, -1000 * MS);
    RC(pthread_timedjoin_np(t, &r, &past), ETIMEDOUT);

    struct wait_start w0 = wait_start();
    struct timespec rt = abs_in(CLOCK_REALTIME, 50 * MS);
    RC(pthread_timedjoin_np(t, &r, &rt), ETIMEDOUT);
    int64_t el = waited_ns(w0);
    CHECKF(el >= 50 * MS && el < 3000 * MS, "timedjoin (CLOCK_REALTIME, 50 ms) took %lld ms",
           (long long)(el / MS));

    int64_t a = mono_ns();
    struct timespec mt = abs_in(CLOCK_MONOTONIC, 50 * MS);
    RC(pthread_clockjoin_np(t, &r, CLOCK_MONOTONIC, &mt), ETIMEDOUT);
    el = mono_ns() - a;
    CHECKF(el >= 50 * MS && el < 3000 * MS, "clockjoin (CLOCK_MONOTONIC, 50 ms) took %lld ms",
           (long long)(el / MS));

    struct timespec later = abs_in(CLOCK_REALTIME, 5000 * MS);
    OK(pthread_timedjoin_np(t, &r, &later));
    CHECK(r == IP(7));
    el = mono_ns() - t0;
    CHECKF(el >= 290 * MS && el < 3000 * MS, "join came after %lld ms", (long long)(el / MS));

    /* clockjoin that succeeds, on the monotonic clock */
    OK(pthread_create(&t, NULL, sleep_then, IP(8)));
    mt = abs_in(CLOCK_MONOTONIC, 5000 * MS);
    OK(pthread_clockjoin_np(t, &r, CLOCK_MONOTONIC, &mt));
    CHECK(r == IP(8));
}

/* ---- detach ------------------------------------------------------------------*/

static atomic_int detached_done;

static void *detached_fn(void *arg)
{
    pthread_attr_t a;
    int ds = -1;
    OK(pthread_getattr_np(pthread_self(), &a));
    OK(pthread_attr_getdetachstate(&a, &ds));
    OK(pthread_attr_destroy(&a));
    CHECKF(ds == (intptr_t)arg, "detach state in the thread: %d, expected %d", ds,
           (int)(intptr_t)arg);
    usleep(10000);
    note_tasks();
    atomic_fetch_add(&detached_done, 1);
    return NULL;
}

static void *gate_then_detached(void *arg)
{
    gate_wait(arg);
    return detached_fn(IP(PTHREAD_CREATE_DETACHED));
}

static void m_detach(void)
{
    pthread_attr_t a;
    OK(pthread_attr_init(&a));
    OK(pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED));
    for (int i = 0; i < 10; i++) {
        pthread_t t;
        OK(pthread_create(&t, &a, detached_fn, IP(PTHREAD_CREATE_DETACHED)));
    }
    OK(pthread_attr_destroy(&a));
    struct gate g;
    gate_init(&g);
    pthread_t t;
    OK(pthread_create(&t, NULL, gate_then_detached, &g));
    OK(pthread_detach(t));
    gate_open(&g, 1);
    pthread_t j;
    OK(pthread_create(&j, NULL, detached_fn, IP(PTHREAD_CREATE_JOINABLE)));
    OK(pthread_join(j, NULL));
    for (int i = 0; i < 2000 && atomic_load(&detached_done) < 12; i++)
        usleep(1000);
    CHECKF(atomic_load(&detached_done) == 12, "%d of 12 threads finished",
           atomic_load(&detached_done));
    /* many short detached threads come and go */
    OK(pthread_attr_init(&a));
    OK(pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED));
    for (int i = 0; i < 2000; i++) {
        pthread_t x;
        OK(pthread_create(&x, &a, detached_fn, IP(PTHREAD_CREATE_DETACHED)));
        if (i % 100 == 99)
            usleep(20000);
    }
    OK(pthread_attr_destroy(&a));
    for (int i = 0; i < 5000 && atomic_load(&detached_done) < 2012; i++)
        usleep(1000);
    CHECKF(atomic_load(&detached_done) == 2012, "%d of 2012 threads finished",
           atomic_load(&detached_done));
}

/* ---- pthread_exit ---------------------------------------------------------------*/

static atomic_int after_exit;

static void (*volatile exit_step)(int);

static void deep_exit(int depth)
{
    if (depth == 0)
        pthread_exit(IP(42));
    exit_step(depth - 1);
    atomic_store(&after_exit, 1);
}

static void *exit_fn(void *arg)
{
    (void)arg;
    exit_step = deep_exit;
    exit_step(5);
    atomic_store(&after_exit, 1);
    return IP(1);
}

static void m_exit(void)
{
    pthread_t t;
    void *r = NULL;
    OK(pthread_create(&t, NULL, exit_fn, NULL));
    OK(pthread_join(t, &r));
    CHECKF(r == IP(42), "pthread_exit(42) gave the joiner %p", r);
    CHECK(atomic_load(&after_exit) == 0);
}

/* ---- main calls pthread_exit while others run ---------------------------------*/

static atomic_int main_exit_done;
static pthread_key_t main_key;

static void main_key_dtor(void *v)
{
    printf("main key destructor %s\n", (char *)v);
}

static void main_cleanup(void *arg)
{
    printf("main cleanup %s\n", (char *)arg);
}

static void *main_exit_worker(void *arg)
{
    intptr_t i = (intptr_t)arg;
    usleep((useconds_t)(i + 1) * 30000);
    note_tasks();
    printf("thread %ld done\n", (long)i);
    atomic_fetch_add(&main_exit_done, 1);
    return NULL;
}

static void main_exit_check(void)
{
    /* runs at exit: after the last thread */
    CHECKF(atomic_load(&main_exit_done) == 5, "the process ended with %d of 5 threads done",
           atomic_load(&main_exit_done));
}

static void m_main_exit(void)
{
    OK(pthread_key_create(&main_key, main_key_dtor));
    OK(pthread_setspecific(main_key, "ran"));
    atexit(main_exit_check);       /* runs before summary (atexit is LIFO) */
    for (intptr_t i = 0; i < 5; i++) {
        pthread_t t;
        OK(pthread_create(&t, NULL, main_exit_worker, IP(i)));
        OK(pthread_detach(t));
    }
    printf("main exiting\n");
    pthread_cleanup_push(main_cleanup, "ran");
    pthread_exit(NULL);
    pthread_cleanup_pop(0);
    printf("main went on after pthread_exit\n");
}

/* ---- names ------------------------------------------------------------------------*/

static char self_name[32];

static void *names_fn(void *arg)
{
    struct gate *g = arg;
    gate_wait(&g[0]);
    OK(pthread_getname_np(pthread_self(), self_name, sizeof self_name));
    OK(pthread_setname_np(pthread_self(), "self-named"));
    gate_open(&g[2], 1);
    gate_wait(&g[1]);
    return NULL;
}

/* The kernel's name of the process: its file name, cut to 15 bytes. */
static const char *proc_name(void)
{
    static char n[16];
    snprintf(n, sizeof n, "%s", program_invocation_short_name);
    return n;
}

static void m_names(void)
{
    char b[32], small[4];
    OK(pthread_getname_np(pthread_self(), b, sizeof b));
    CHECKF(!strcmp(b, proc_name()), "main's name is '%s'", b);

    struct gate g[3];
    gate_init(&g[0]);
    gate_init(&g[1]);
    gate_init(&g[2]);
    pthread_t t;
    OK(pthread_create(&t, NULL, names_fn, g));
    OK(pthread_setname_np(t, "worker-7"));
    OK(pthread_getname_np(t, b, sizeof b));
    CHECKF(!strcmp(b, "worker-7"), "name read back as '%s'", b);
    RC(pthread_setname_np(t, "0123456789abcdef"), ERANGE);    /* 16 chars */
    OK(pthread_setname_np(t, "0123456789abcde"));              /* 15 chars */
    OK(pthread_getname_np(t, b, sizeof b));
    CHECKF(!strcmp(b, "0123456789abcde"), "name read back as '%s'", b);
    RC(pthread_getname_np(t, small, sizeof small), ERANGE);
    OK(pthread_setname_np(t, "worker-7"));
    gate_open(&g[0], 1);
    gate_wait(&g[2]);         /* it has read and set its name (a sleep was not enough under load) */
    CHECKF(!strcmp(self_name, "worker-7"), "the thread read its own name as '%s'", self_name);
    OK(pthread_getname_np(t, b, sizeof b));
    CHECKF(!strcmp(b, "self-named"), "name set by the thread itself read back as '%s'", b);
    OK(pthread_getname_np(pthread_self(), b, sizeof b));
    CHECKF(!strcmp(b, proc_name()), "main's name became '%s'", b);
    gate_open(&g[1], 1);
    OK(pthread_join(t, NULL));
}

/* A new thread is named after the process, as the kernel names it. */
static void m_name_default(void)
{
    struct gate g;
    gate_init(&g);
    pthread_t t;
    OK(pthread_create(&t, NULL, gate_then_return, &g));
    char b[32] = "untouched";
    OK(pthread_getname_np(t, b, sizeof b));
    CHECKF(!strcmp(b, proc_name()), "a new thread's name is '%s', natively the process's ('%s')",
           b, proc_name());
    gate_open(&g, 1);
    OK(pthread_join(t, NULL));
}

/* ---- sched_yield --------------------------------------------------------------------*/

static char ylog[64];
static atomic_int ylen;

static void *yield_fn(void *arg)
{
    char c = (char)(intptr_t)arg;
    for (int i = 0; i < 3; i++) {
        int k = atomic_fetch_add(&ylen, 2);
        ylog[k] = c;
        ylog[k + 1] = (char)('0' + i);
        RC(sched_yield(), 0);
    }
    return NULL;
}

static void m_yield(void)
{
    pthread_t a, b;
    OK(pthread_create(&a, NULL, yield_fn, IP('A')));
    OK(pthread_create(&b, NULL, yield_fn, IP('B')));
    OK(pthread_join(a, NULL));
    OK(pthread_join(b, NULL));
    ylog[atomic_load(&ylen)] = '\0';
    CHECKF(strlen(ylog) == 12, "log '%s'", ylog);
    int na = 0, nb = 0;
    for (int i = 0; ylog[i]; i += 2)
        ylog[i] == 'A' ? na++ : nb++;
    CHECKF(na == 3 && nb == 3, "log '%s'", ylog);
    /* Green threads on one OS thread: each yield hands over to the other. */
    if (green_one_os_thread())
        CHECKF(!strcmp(ylog, "A0B0A1B1A2B2"), "yields interleaved as '%s'", ylog);
    RC(sched_yield(), 0);
}

/* ---- pthread_once -------------------------------------------------------------------*/

static pthread_once_t once = PTHREAD_ONCE_INIT, once2 = PTHREAD_ONCE_INIT;
static atomic_int once_calls, once_done, once_bad;

static void once_init(void)
{
    atomic_fetch_add(&once_calls, 1);
    usleep(50000);                 /* the others must wait for this */
    atomic_store(&once_done, 1);
}

static void *once_fn(void *arg)
{
    (void)arg;
    OK(pthread_once(&once, once_init));
    if (!atomic_load(&once_done))
        atomic_fetch_add(&once_bad, 1);
    note_tasks();
    return NULL;
}

static int once2_calls;
static void once2_init(void)
{
    once2_calls++;
}

static void m_once(void)
{
    pthread_t t[20];
    for (int i = 0; i < 20; i++)
        OK(pthread_create(&t[i], NULL, once_fn, NULL));
    for (int i = 0; i < 20; i++)
        OK(pthread_join(t[i], NULL));
    CHECKF(atomic_load(&once_calls) == 1, "init ran %d times", atomic_load(&once_calls));
    CHECKF(atomic_load(&once_bad) == 0, "%d threads returned from pthread_once before init "
           "finished", atomic_load(&once_bad));
    OK(pthread_once(&once, once_init));
    CHECK(atomic_load(&once_calls) == 1);
    OK(pthread_once(&once2, once2_init));
    OK(pthread_once(&once2, once2_init));
    CHECK(once2_calls == 1);
}

/* ---- keys -----------------------------------------------------------------------------*/

static pthread_key_t k_log, k_again, k_plain, k_deleted;
static pthread_mutex_t dlock = PTHREAD_MUTEX_INITIALIZER;
static intptr_t dtor_vals[64];
static int ndtor, again_rounds;

static void dtor_log(void *v)
{
    pthread_mutex_lock(&dlock);
    if (ndtor < 64)
        dtor_vals[ndtor] = (intptr_t)v;
    ndtor++;
    pthread_mutex_unlock(&dlock);
}

static void dtor_again(void *v)
{
    /* Setting a value again makes the destructors run another round. */
    if (++again_rounds < 2)
        OK(pthread_setspecific(k_again, v));
}

static void *keys_fn(void *arg)
{
    intptr_t i = (intptr_t)arg;
    CHECK(pthread_getspecific(k_log) == NULL);
    CHECK(pthread_getspecific(k_plain) == NULL);
    OK(pthread_setspecific(k_log, IP(100 + i)));
    OK(pthread_setspecific(k_plain, IP(200 + i)));
    usleep(10000);                          /* the others set theirs meanwhile */
    note_tasks();
    CHECKF(pthread_getspecific(k_log) == IP(100 + i), "thread %ld sees %p", (long)i,
           pthread_getspecific(k_log));
    CHECK(pthread_getspecific(k_plain) == IP(200 + i));
    if (i == 0)
        OK(pthread_setspecific(k_again, IP(7)));
    if (i == 2)
        OK(pthread_setspecific(k_log, NULL));   /* NULL: no destructor call */
    if (i == 3)
        pthread_exit(NULL);                     /* destructors run on exit too */
    return NULL;
}

static struct gate keys_value_set;

static void *keys_deleted_fn(void *arg)
{
    OK(pthread_setspecific(k_deleted, IP(555)));
    gate_open(&keys_value_set, 1);
    gate_wait(arg);
    return NULL;
}

static void m_keys(void)
{
    OK(pthread_key_create(&k_log, dtor_log));
    OK(pthread_key_create(&k_again, dtor_again));
    OK(pthread_key_create(&k_plain, NULL));
    OK(pthread_key_create(&k_deleted, dtor_log));
    CHECK(k_log != k_again && k_log != k_plain && k_again != k_plain);
    OK(pthread_setspecific(k_log, IP(999)));    /* main's own value */

    pthread_t t[5];
    for (intptr_t i = 0; i < 5; i++)
        OK(pthread_create(&t[i], NULL, keys_fn, IP(i)));
    for (int i = 0; i < 5; i++)
        OK(pthread_join(t[i], NULL));
    CHECK(pthread_getspecific(k_log) == IP(999));
    CHECKF(ndtor == 4, "the k_log destructor ran %d times, expected 4", ndtor);
    long sum = 0;
    for (int i = 0; i < ndtor && i < 64; i++)
        sum += dtor_vals[i];
    CHECKF(sum == 100 + 101 + 103 + 104, "destructor values sum to %ld", sum);
    CHECKF(again_rounds == 2, "re-set value: destructor ran %d times, expected 2", again_rounds);

    /* A key deleted while a thread holds a value: no destructor call. */
    struct gate g;
    gate_init(&g);
    pthread_t d;
    gate_init(&keys_value_set);
    OK(pthread_create(&d, NULL, keys_deleted_fn, &g));
    gate_wait(&keys_value_set);                 /* the thread holds a value now */
    OK(pthread_key_delete(k_deleted));
    gate_open(&g, 1);
    OK(pthread_join(d, NULL));
    CHECKF(ndtor == 4, "a deleted key's destructor ran (%d calls)", ndtor);

    /* Keys run out with EAGAIN. */
    static pthread_key_t many[2048];
    int n = 0, rc = 0;
    while (n < 2048 && (rc = pthread_key_create(&many[n], NULL)) == 0)
        n++;
    RC(rc, EAGAIN);
    CHECKF(n > PTHREAD_KEYS_MAX - 32 && n <= PTHREAD_KEYS_MAX, "%d keys before EAGAIN", n);
    while (n > 0)
        OK(pthread_key_delete(many[--n]));
    OK(pthread_key_create(&many[0], NULL));
    CHECK(pthread_getspecific(many[0]) == NULL);   /* a recycled key starts empty */
    OK(pthread_key_delete(many[0]));
    OK(pthread_key_delete(k_log));
    OK(pthread_key_delete(k_again));
    OK(pthread_key_delete(k_plain));
}

/* ---- cancellation ------------------------------------------------------------------*/

static atomic_int cleanup_ran;
static char clog[128];
static pthread_mutex_t clog_lock = PTHREAD_MUTEX_INITIALIZER;

static void clog_add(const char *s)
{
    pthread_mutex_lock(&clog_lock);
    strncat(clog, s, sizeof clog - strlen(clog) - 1);
    pthread_mutex_unlock(&clog_lock);
}

static void cleanup_note(void *arg)
{
    atomic_fetch_add(&cleanup_ran, 1);
    clog_add(arg);
}

enum cancel_kind {
    CK_SLEEP, CK_USLEEP, CK_NANOSLEEP, CK_CLOCK_NANOSLEEP, CK_READ, CK_COND, CK_COND_TIMED,
    CK_JOIN, CK_SEM, CK_SEM_TIMED,
};

static int cpipe[2];
static pthread_mutex_t cm;
static pthread_cond_t cc = PTHREAD_COND_INITIALIZER;
static sem_t csem;
static struct gate cgate;
static pthread_t cinner;
static atomic_int cwaiting, cafter;
static pthread_key_t ckey;
static atomic_int ckey_dtor;

static void ckey_destructor(void *v)
{
    (void)v;
    atomic_fetch_add(&ckey_dtor, 1);
    clog_add("dtor;");
}

static void cond_cleanup(void *arg)
{
    (void)arg;
    /* The canceled waiter holds the mutex again, as POSIX requires. */
    RC(pthread_mutex_unlock(&cm), 0);
    clog_add("cond;");
}

static void *cancel_victim(void *arg)
{
    int kind = (int)(intptr_t)arg;
    OK(pthread_setspecific(ckey, IP(1)));
    pthread_cleanup_push(cleanup_note, "outer;");
    pthread_cleanup_push(cleanup_note, "inner;");
    switch (kind) {
    case CK_SLEEP:
        atomic_store(&cwaiting, 1);
        sleep(10);
        break;
    case CK_USLEEP:
        atomic_store(&cwaiting, 1);
        usleep(10000000);
        break;
    case CK_NANOSLEEP: {
        struct timespec ts = { 10, 0 };
        atomic_store(&cwaiting, 1);
        nanosleep(&ts, NULL);
        break;
    }
    case CK_CLOCK_NANOSLEEP: {
        struct timespec ts = abs_in(CLOCK_MONOTONIC, 10000 * MS);
        atomic_store(&cwaiting, 1);
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        break;
    }
    case CK_READ: {
        char c;
        atomic_store(&cwaiting, 1);
        ssize_t r = read(cpipe[0], &c, 1);
        (void)r;
        break;
    }
    case CK_COND:
    case CK_COND_TIMED: {
        OK(pthread_mutex_lock(&cm));
        pthread_cleanup_push(cond_cleanup, NULL);
        atomic_store(&cwaiting, 1);
        struct timespec ts = abs_in(CLOCK_REALTIME, 10000 * MS);
        for (;;) {
            if (kind == CK_COND)
                pthread_cond_wait(&cc, &cm);
            else
                pthread_cond_timedwait(&cc, &cm, &ts);
        }
        pthread_cleanup_pop(1);
        break;
    }
    case CK_JOIN:
        atomic_store(&cwaiting, 1);
        pthread_join(cinner, NULL);
        break;
    case CK_SEM:
        atomic_store(&cwaiting, 1);
        sem_wait(&csem);
        break;
    case CK_SEM_TIMED: {
        struct timespec ts = abs_in(CLOCK_REALTIME, 10000 * MS);
        atomic_store(&cwaiting, 1);
        sem_timedwait(&csem, &ts);
        break;
    }
    }
    atomic_store(&cafter, 1);
    pthread_cleanup_pop(0);
    pthread_cleanup_pop(0);
    return IP(1);
}

static void m_cancel(int kind)
{
    pthread_mutexattr_t ma;
    OK(pthread_mutexattr_init(&ma));
    OK(pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK));
    OK(pthread_mutex_init(&cm, &ma));
    OK(pthread_mutexattr_destroy(&ma));
    CHECK(pipe(cpipe) == 0);
    OK(sem_init(&csem, 0, 0));
    OK(pthread_key_create(&ckey, ckey_destructor));
    gate_init(&cgate);
    if (kind == CK_JOIN)
        OK(pthread_create(&cinner, NULL, gate_then_return, &cgate));

    pthread_t t;
    int64_t t0 = mono_ns();
    OK(pthread_create(&t, NULL, cancel_victim, IP(kind)));
    for (int i = 0; i < 2000 && !atomic_load(&cwaiting); i++)
        usleep(1000);
    usleep(30000);                   /* now parked in the blocking call */
    note_tasks();
    if (kind == CK_COND || kind == CK_COND_TIMED) {
        /* Hold the mutex while canceling: the victim must get it back
         * before its cleanup handlers run. */
        OK(pthread_mutex_lock(&cm));
        OK(pthread_cancel(t));
        usleep(50000);
        CHECKF(atomic_load(&cleanup_ran) == 0, "cleanup ran while the mutex was held elsewhere");
        RC(pthread_tryjoin_np(t, NULL), EBUSY);
        OK(pthread_mutex_unlock(&cm));
    } else {
        OK(pthread_cancel(t));
    }
    void *r = NULL;
    OK(pthread_join(t, &r));
    int64_t el = mono_ns() - t0;
    CHECKF(r == PTHREAD_CANCELED, "the joiner got %p, not PTHREAD_CANCELED", r);
    CHECKF(el < 5000 * MS, "cancellation took %lld ms", (long long)(el / MS));
    CHECK(atomic_load(&cafter) == 0);
    const char *want = (kind == CK_COND || kind == CK_COND_TIMED) ? "cond;inner;outer;dtor;"
                                                                  : "inner;outer;dtor;";
    CHECKF(!strcmp(clog, want), "cleanup handlers and destructors ran as '%s', expected '%s'",
           clog, want);
    if (kind == CK_COND || kind == CK_COND_TIMED) {
        OK(pthread_mutex_trylock(&cm));        /* the cleanup handler released it */
        OK(pthread_mutex_unlock(&cm));
    }
    if (kind == CK_JOIN) {
        /* The canceled joiner let go of the target: it can be joined. */
        gate_open(&cgate, 1);
        OK(pthread_join(cinner, &r));
        CHECK(r == (void *)0x60);
    }
}

static void m_cancel_sleep(void) { m_cancel(CK_SLEEP); }
static void m_cancel_usleep(void) { m_cancel(CK_USLEEP); }
static void m_cancel_nanosleep(void) { m_cancel(CK_NANOSLEEP); }
static void m_cancel_clock_nanosleep(void) { m_cancel(CK_CLOCK_NANOSLEEP); }
static void m_cancel_read(void) { m_cancel(CK_READ); }
static void m_cancel_cond(void) { m_cancel(CK_COND); }
static void m_cancel_cond_timed(void) { m_cancel(CK_COND_TIMED); }
static void m_cancel_join(void) { m_cancel(CK_JOIN); }
static void m_cancel_sem(void) { m_cancel(CK_SEM); }
static void m_cancel_sem_timed(void) { m_cancel(CK_SEM_TIMED); }

/* Cancellation disabled: the request waits until it is enabled again and a
 * cancellation point is reached. */
static atomic_llong slept_ns;

static void *disabled_fn(void *arg)
{
    (void)arg;
    int old = -1;
    OK(pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old));
    CHECK(old == PTHREAD_CANCEL_ENABLE);
    RC(pthread_setcancelstate(12345, NULL), EINVAL);
    int64_t a = mono_ns();
    atomic_store(&cwaiting, 1);
    usleep(150000);
    atomic_store(&slept_ns, mono_ns() - a);
    OK(pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old));
    CHECK(old == PTHREAD_CANCEL_DISABLE);
    atomic_store(&cafter, 1);        /* enabling is not a cancellation point */
    pthread_testcancel();
    atomic_store(&cafter, 2);
    return NULL;
}

static void m_cancel_disabled(void)
{
    pthread_t t;
    OK(pthread_create(&t, NULL, disabled_fn, NULL));
    while (!atomic_load(&cwaiting))
        usleep(1000);
    usleep(20000);
    OK(pthread_cancel(t));
    void *r = NULL;
    OK(pthread_join(t, &r));
    CHECK(r == PTHREAD_CANCELED);
    CHECKF(atomic_load(&slept_ns) >= 150 * MS, "the sleep with cancellation disabled lasted "
           "%lld ms of 150", (long long)(atomic_load(&slept_ns) / MS));
    CHECKF(atomic_load(&cafter) == 1, "stage %d", atomic_load(&cafter));
}

/* Canceled before it ever ran: it runs up to its first cancellation point. */
static void *early_fn(void *arg)
{
    (void)arg;
    atomic_store(&cwaiting, 1);
    int old;
    OK(pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, &old));
    CHECK(old == PTHREAD_CANCEL_DEFERRED);
    usleep(20000);
    atomic_store(&cafter, 1);
    return NULL;
}

static void m_cancel_early(void)
{
    pthread_t t;
    OK(pthread_create(&t, NULL, early_fn, NULL));
    OK(pthread_cancel(t));
    void *r = NULL;
    OK(pthread_join(t, &r));
    CHECK(r == PTHREAD_CANCELED);
    CHECK(atomic_load(&cwaiting) == 1);
    CHECK(atomic_load(&cafter) == 0);
}

/* pthread_mutex_lock is not a cancellation point: the thread gets the mutex
 * and is canceled at its next cancellation point. */
static pthread_mutex_t cml = PTHREAD_MUTEX_INITIALIZER;

static void *mutex_victim(void *arg)
{
    (void)arg;
    atomic_store(&cwaiting, 1);
    OK(pthread_mutex_lock(&cml));
    atomic_store(&cafter, 1);
    OK(pthread_mutex_unlock(&cml));
    usleep(10000000);
    atomic_store(&cafter, 2);
    return NULL;
}

static void m_cancel_mutex(void)
{
    OK(pthread_mutex_lock(&cml));
    pthread_t t;
    OK(pthread_create(&t, NULL, mutex_victim, NULL));
    while (!atomic_load(&cwaiting))
        usleep(1000);
    usleep(20000);
    OK(pthread_cancel(t));
    usleep(50000);
    RC(pthread_tryjoin_np(t, NULL), EBUSY);
    CHECK(atomic_load(&cafter) == 0);
    OK(pthread_mutex_unlock(&cml));
    void *r = NULL;
    OK(pthread_join(t, &r));
    CHECK(r == PTHREAD_CANCELED);
    CHECKF(atomic_load(&cafter) == 1, "stage %d", atomic_load(&cafter));
}

/* Canceling a thread that has finished but is not joined: 0, and the
 * joiner gets its real result. */
static void *quick_fn(void *arg)
{
    return arg;
}

static void m_cancel_finished(void)
{
    pthread_t t;
    OK(pthread_create(&t, NULL, quick_fn, IP(5)));
    usleep(50000);
    OK(pthread_cancel(t));
    void *r = NULL;
    OK(pthread_join(t, &r));
    CHECK(r == IP(5));
}

/* Cleanup handlers on pthread_exit, innermost first, then destructors. */
static void exit_in_depth(void)
{
    pthread_cleanup_push(cleanup_note, "h3;");
    pthread_exit(IP(5));
    pthread_cleanup_pop(0);
}

static void *cleanup_exit_fn(void *arg)
{
    (void)arg;
    OK(pthread_setspecific(ckey, IP(1)));
    pthread_cleanup_push(cleanup_note, "h1;");
    pthread_cleanup_push(cleanup_note, "h2;");
    exit_in_depth();
    pthread_cleanup_pop(0);
    pthread_cleanup_pop(0);
    return NULL;
}

static void *cleanup_pop_fn(void *arg)
{
    (void)arg;
    pthread_cleanup_push(cleanup_note, "a;");
    pthread_cleanup_pop(1);        /* runs it */
    pthread_cleanup_push(cleanup_note, "b;");
    pthread_cleanup_pop(0);        /* does not */
    pthread_cleanup_push(cleanup_note, "c;");
    pthread_cleanup_push(cleanup_note, "d;");
    pthread_cleanup_pop(1);
    pthread_cleanup_pop(1);
    return IP(3);
}

static void m_cleanup(void)
{
    OK(pthread_key_create(&ckey, ckey_destructor));
    pthread_t t;
    void *r = NULL;
    OK(pthread_create(&t, NULL, cleanup_exit_fn, NULL));
    OK(pthread_join(t, &r));
    CHECK(r == IP(5));
    CHECKF(!strcmp(clog, "h3;h2;h1;dtor;"), "on pthread_exit: '%s', expected 'h3;h2;h1;dtor;'",
           clog);
    clog[0] = '\0';
    OK(pthread_create(&t, NULL, cleanup_pop_fn, NULL));
    OK(pthread_join(t, &r));
    CHECK(r == IP(3));
    CHECKF(!strcmp(clog, "a;d;c;"), "pthread_cleanup_pop: '%s', expected 'a;d;c;'", clog);
    /* main's own handlers work too */
    clog[0] = '\0';
    pthread_cleanup_push(cleanup_note, "m;");
    pthread_cleanup_pop(1);
    CHECK(!strcmp(clog, "m;"));
}

/* ---- signal masks -------------------------------------------------------------------*/

static bool blocked(int sig)
{
    sigset_t s;
    OK(pthread_sigmask(SIG_BLOCK, NULL, &s));
    return sigismember(&s, sig) == 1;
}

static sigset_t one(int sig)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    return s;
}

static atomic_int mask_stage;

static void *mask_fn(void *arg)
{
    (void)arg;
    CHECKF(blocked(SIGUSR2), "the new thread did not inherit its creator's mask");
    CHECK(!blocked(SIGUSR1));
    sigset_t s = one(SIGUSR1);
    OK(pthread_sigmask(SIG_BLOCK, &s, NULL));
    s = one(SIGUSR2);
    sigset_t old;
    OK(pthread_sigmask(SIG_UNBLOCK, &s, &old));
    CHECK(sigismember(&old, SIGUSR2) == 1 && sigismember(&old, SIGUSR1) == 1);
    atomic_store(&mask_stage, 1);
    usleep(30000);                 /* main runs and checks its own mask */
    note_tasks();
    CHECKF(blocked(SIGUSR1) && !blocked(SIGUSR2), "the thread's mask changed while it slept");
    sigset_t empty;
    sigemptyset(&empty);
    OK(pthread_sigmask(SIG_SETMASK, &empty, NULL));
    CHECK(!blocked(SIGUSR1) && !blocked(SIGUSR2));
    RC(pthread_sigmask(12345, &empty, NULL), EINVAL);
    return NULL;
}

static void m_sigmask(void)
{
    sigset_t s = one(SIGUSR2);
    OK(pthread_sigmask(SIG_BLOCK, &s, NULL));
    pthread_t t;
    OK(pthread_create(&t, NULL, mask_fn, NULL));
    while (!atomic_load(&mask_stage))
        usleep(1000);
    CHECKF(blocked(SIGUSR2) && !blocked(SIGUSR1), "main's mask follows the thread's changes");
    OK(pthread_join(t, NULL));
    CHECK(blocked(SIGUSR2) && !blocked(SIGUSR1));
    OK(pthread_sigmask(SIG_UNBLOCK, &s, NULL));
    CHECK(!blocked(SIGUSR2));
}

/* ---- pthread_kill --------------------------------------------------------------------*/

static volatile sig_atomic_t got_sig;
static pthread_t handler_thread;

static void on_sig(int sig)
{
    handler_thread = pthread_self();
    got_sig = sig;
}

static void install(int sig, int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(sig, &sa, NULL) == 0);
}

static void *wait_for_sig(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000 && !got_sig; i++)
        usleep(1000);
    return IP(got_sig);
}

static void m_kill(void)
{
    install(SIGUSR1, SA_RESTART);
    pthread_t t;
    OK(pthread_create(&t, NULL, wait_for_sig, NULL));
    usleep(10000);
    OK(pthread_kill(t, 0));                 /* alive */
    RC(pthread_kill(t, 12345), EINVAL);
    OK(pthread_kill(t, SIGUSR1));
    void *r = NULL;
    OK(pthread_join(t, &r));
    CHECKF(r == IP(SIGUSR1), "the thread saw signal %ld", (long)(intptr_t)r);
}

/* The handler runs on the target thread and interrupts its blocking call
 * (a handler without SA_RESTART: EINTR), as it does natively. */
static atomic_int kill_read_rc, kill_read_errno;

static void *read_for_sig(void *arg)
{
    char c;
    atomic_store(&cwaiting, 1);
    ssize_t r = read(*(int *)arg, &c, 1);
    atomic_store(&kill_read_errno, r < 0 ? errno : 0);
    atomic_store(&kill_read_rc, (int)r);
    return NULL;
}

static void m_kill_target(void)
{
    install(SIGUSR1, 0);
    int p[2];
    CHECK(pipe(p) == 0);
    pthread_t t;
    OK(pthread_create(&t, NULL, read_for_sig, &p[0]));
    while (!atomic_load(&cwaiting))
        usleep(1000);
    usleep(30000);
    OK(pthread_kill(t, SIGUSR1));
    /* Joined once: by the loop, or after it (a second join is undefined). */
    int jr = EBUSY;
    for (int i = 0; i < 200 && (jr = pthread_tryjoin_np(t, NULL)) == EBUSY; i++)
        usleep(1000);
    bool stuck = jr == EBUSY && atomic_load(&kill_read_rc) == 0;
    if (stuck)
        CHECK(write(p[1], "x", 1) == 1);   /* let it go */
    if (jr == EBUSY)
        pthread_join(t, NULL);
    CHECKF(got_sig == SIGUSR1, "the handler did not run");
    CHECKF(pthread_equal(handler_thread, t), "the handler ran in another thread (%s)",
           pthread_equal(handler_thread, pthread_self()) ? "the caller of pthread_kill"
                                                         : "not the caller either");
    CHECKF(!stuck && atomic_load(&kill_read_rc) == -1 && atomic_load(&kill_read_errno) == EINTR,
           "the target's read() %s (rc %d, errno %s), natively it fails with EINTR",
           stuck ? "was not interrupted" : "returned", atomic_load(&kill_read_rc),
           ename(atomic_load(&kill_read_errno)));
}

/* A signal sent to a thread that blocks it stays pending until that thread
 * unblocks it; then the handler runs there. */
static atomic_int km_pending, km_seen_before_unblock, km_checked;

static void *masked_target(void *arg)
{
    (void)arg;
    sigset_t s = one(SIGUSR1);
    OK(pthread_sigmask(SIG_BLOCK, &s, NULL));
    atomic_store(&cwaiting, 1);
    /* The signal arrives meanwhile; main looks whether its handler ran.
     * (A fixed sleep here ended before main's look on a loaded machine.) */
    while (!atomic_load(&km_checked))
        usleep(1000);
    sigset_t pend;
    sigemptyset(&pend);
    sigpending(&pend);
    atomic_store(&km_pending, sigismember(&pend, SIGUSR1) == 1);
    atomic_store(&km_seen_before_unblock, got_sig);
    OK(pthread_sigmask(SIG_UNBLOCK, &s, NULL));   /* delivered here, before this returns */
    return IP(got_sig);
}

static void m_kill_masked(void)
{
    install(SIGUSR1, SA_RESTART);
    pthread_t t;
    OK(pthread_create(&t, NULL, masked_target, NULL));
    while (!atomic_load(&cwaiting))
        usleep(1000);
    OK(pthread_kill(t, SIGUSR1));
    usleep(30000);
    CHECKF(got_sig == 0, "the handler ran while the target thread blocked the signal");
    atomic_store(&km_checked, 1);
    void *r = NULL;
    OK(pthread_join(t, &r));
    CHECKF(atomic_load(&km_seen_before_unblock) == 0,
           "the handler ran before the target unblocked the signal");
    CHECKF(atomic_load(&km_pending) == 1, "sigpending() in the target did not show the signal");
    CHECKF(r == IP(SIGUSR1), "after unblocking, the target saw signal %ld", (long)(intptr_t)r);
    CHECKF(pthread_equal(handler_thread, t), "the handler ran in another thread");
}

/* ---- attributes: stack size, caller's stack, guard size -----------------------------*/

static size_t stack_of_self(void **lo)
{
    pthread_attr_t a;
    void *addr = NULL;
    size_t size = 0;
    OK(pthread_getattr_np(pthread_self(), &a));
    OK(pthread_attr_getstack(&a, &addr, &size));
    OK(pthread_attr_destroy(&a));
    *lo = addr;
    return size;
}

/* Use about `kib` KiB of stack, 32 KiB per frame. */
static __attribute__((noinline)) long use_stack(int kib)
{
    volatile char buf[32 << 10];
    for (size_t i = 0; i < sizeof buf; i += 512)
        buf[i] = (char)i;
    long s = buf[512];
    if (kib > 32)
        s += use_stack(kib - 32);
    return s + buf[sizeof buf - 512];
}

struct stack_req {
    size_t want;        /* stack size asked for */
    int use_kib;        /* stack to use */
    size_t got;
    int local_inside;
    void *lo;
};

static void *stack_fn(void *arg)
{
    struct stack_req *q = arg;
    char local;
    q->got = stack_of_self(&q->lo);
    q->local_inside = (char *)&local >= (char *)q->lo && (char *)&local < (char *)q->lo + q->got;
    use_stack(q->use_kib);
    note_tasks();
    return NULL;
}

static void run_with_stack(struct stack_req *q)
{
    pthread_attr_t a;
    OK(pthread_attr_init(&a));
    OK(pthread_attr_setstacksize(&a, q->want));
    size_t back = 0;
    OK(pthread_attr_getstacksize(&a, &back));
    CHECK(back == q->want);
    pthread_t t;
    OK(pthread_create(&t, &a, stack_fn, q));
    OK(pthread_attr_destroy(&a));
    OK(pthread_join(t, NULL));
    CHECKF(q->got >= q->want, "asked for a %zu-byte stack, pthread_getattr_np says %zu", q->want,
           q->got);
    CHECKF(q->local_inside, "a local variable lies outside the stack pthread_getattr_np reports");
}

/* Run under CORUN_STACK_SIZE=64K by the test: explicit sizes must win. */
static void m_attr_stack(void)
{
    struct stack_req big = { .want = 4 << 20, .use_kib = 1024 };
    run_with_stack(&big);
    struct stack_req small = { .want = 256 << 10, .use_kib = 128 };
    run_with_stack(&small);
    CHECKF(small.got < (1 << 20), "asked for 256 KiB, got %zu bytes", small.got);
}

/* An explicit size that happens to equal glibc's default (RLIMIT_STACK,
 * 8 MiB) is still an explicit size. */
static void m_attr_stack_default_size(void)
{
    pthread_attr_t d;
    size_t dflt = 0;
    OK(pthread_getattr_default_np(&d));
    OK(pthread_attr_getstacksize(&d, &dflt));
    OK(pthread_attr_destroy(&d));
    struct stack_req q = { .want = dflt, .use_kib = 1024 };
    if (dflt < (2 << 20)) {
        printf("skipped: default stack size %zu is too small\n", dflt);
        return;
    }
    run_with_stack(&q);
}

/* A stack the program provides with pthread_attr_setstack is the one the
 * thread runs on. */
static void m_attr_setstack(void)
{
    size_t size = 512 << 10;
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(mem != MAP_FAILED);
    pthread_attr_t a;
    OK(pthread_attr_init(&a));
    OK(pthread_attr_setstack(&a, mem, size));
    struct stack_req q = { .want = size, .use_kib = 64 };
    pthread_t t;
    OK(pthread_create(&t, &a, stack_fn, &q));
    OK(pthread_attr_destroy(&a));
    OK(pthread_join(t, NULL));
    CHECKF(q.lo == mem && q.got == size, "pthread_getattr_np reports a stack at %p (%zu bytes), "
           "the program gave %p (%zu bytes)", q.lo, q.got, mem, size);
    CHECKF(q.local_inside, "the thread's locals are not on the stack it reports");
    munmap(mem, size);
}

/* Guard size: a write 128 KiB below the stack of a thread created with a
 * 256 KiB guard must fault. The test expects this mode to die by a signal. */
static void *guard_fn(void *arg)
{
    (void)arg;
    void *lo;
    stack_of_self(&lo);
    printf("touching %p, 128 KiB below the stack\n", (void *)((char *)lo - (128 << 10)));
    fflush(stdout);
    *(volatile char *)((char *)lo - (128 << 10)) = 1;
    printf("no fault: the guard region was not there\n");
    fflush(stdout);
    return NULL;
}

static void m_guard(void)
{
    pthread_attr_t a;
    OK(pthread_attr_init(&a));
    OK(pthread_attr_setstacksize(&a, 64 << 10));
    OK(pthread_attr_setguardsize(&a, 256 << 10));
    size_t g = 0;
    OK(pthread_attr_getguardsize(&a, &g));
    CHECK(g == 256 << 10);
    pthread_t t;
    OK(pthread_create(&t, &a, guard_fn, NULL));
    OK(pthread_attr_destroy(&a));
    OK(pthread_join(t, NULL));
}

/* A guard size of 0 is allowed: the thread runs. */
static void m_guard_none(void)
{
    pthread_attr_t a;
    OK(pthread_attr_init(&a));
    OK(pthread_attr_setguardsize(&a, 0));
    struct stack_req q = { .want = 128 << 10, .use_kib = 64 };
    OK(pthread_attr_setstacksize(&a, q.want));
    pthread_t t;
    OK(pthread_create(&t, &a, stack_fn, &q));
    OK(pthread_attr_destroy(&a));
    OK(pthread_join(t, NULL));
    CHECK(q.local_inside);
}

/* ---- thread ids: gettid(), syscall(SYS_gettid), tgkill/tkill ------------------------*/

#define NTID 8
static pid_t tid_libc[NTID], tid_sys[NTID], tid_later[NTID];

static void *tid_fn(void *arg)
{
    intptr_t i = (intptr_t)arg;
    tid_libc[i] = gettid();
    tid_sys[i] = (pid_t)syscall(SYS_gettid);
    usleep(20000);               /* all alive at once, and other threads ran meanwhile */
    tid_later[i] = gettid();
    note_tasks();
    return NULL;
}

static void *tid_fork_fn(void *arg)
{
    (void)arg;
    pid_t before = gettid();
    pid_t c = fork();
    if (c == 0)
        _exit(gettid() == getpid() && syscall(SYS_gettid) == getpid() ? 0 : 1);
    int st = 0;
    if (c < 0 || waitpid(c, &st, 0) != c)
        return "fork or waitpid failed";
    if (gettid() != before)
        return "the parent thread's id changed";
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? IP(0) : "gettid() != getpid()";
}

/* Each thread has its own id, the same through libc and syscall(), for its
 * whole life; the main thread's is the process id. */
static void m_tid(void)
{
    CHECKF(gettid() == getpid(), "main thread: gettid() %d, getpid() %d", gettid(), getpid());
    CHECKF(syscall(SYS_gettid) == getpid(), "main thread: syscall(SYS_gettid) %ld, getpid() %d",
           syscall(SYS_gettid), getpid());
    pthread_t t[NTID];
    for (intptr_t i = 0; i < NTID; i++)
        OK(pthread_create(&t[i], NULL, tid_fn, IP(i)));
    for (int i = 0; i < NTID; i++)
        OK(pthread_join(t[i], NULL));
    for (int i = 0; i < NTID; i++) {
        CHECKF(tid_libc[i] == tid_sys[i] && tid_libc[i] == tid_later[i],
               "thread %d: gettid() %d, syscall(SYS_gettid) %d, gettid() later %d", i,
               tid_libc[i], tid_sys[i], tid_later[i]);
        CHECKF(tid_libc[i] > 0 && tid_libc[i] != getpid(),
               "thread %d has id %d (the process is %d)", i, tid_libc[i], getpid());
        for (int j = 0; j < i; j++)
            CHECKF(tid_libc[i] != tid_libc[j], "threads %d and %d both have id %d", j, i,
                   tid_libc[i]);
    }
    CHECK(gettid() == getpid());
    /* A child forked by a thread is a process of one thread: gettid() == getpid(). */
    pthread_t f;
    OK(pthread_create(&f, NULL, tid_fork_fn, NULL));
    void *r = NULL;
    OK(pthread_join(f, &r));
    CHECKF(r == IP(0), "in a child forked by a thread, %s", (const char *)r);
}

/* tgkill(getpid(), id, sig) with an id a thread got from gettid() runs the
 * handler in that thread and interrupts its read() (no SA_RESTART: EINTR);
 * so do syscall(SYS_tgkill) and syscall(SYS_tkill). */
static atomic_int tk_tid;

static void *tk_reader(void *arg)
{
    atomic_store(&kill_read_rc, 0);
    atomic_store(&tk_tid, (int)gettid());
    return read_for_sig(arg);
}

static void tk_one(int how)
{
    static const char *const names[] = { "tgkill", "syscall(SYS_tgkill)", "syscall(SYS_tkill)" };
    int p[2];
    CHECK(pipe(p) == 0);
    got_sig = 0;
    atomic_store(&cwaiting, 0);
    atomic_store(&tk_tid, 0);
    pthread_t t;
    OK(pthread_create(&t, NULL, tk_reader, &p[0]));
    while (!atomic_load(&cwaiting))
        usleep(1000);
    usleep(30000);                        /* in read() by now */
    pid_t id = atomic_load(&tk_tid);
    long r = how == 0 ? tgkill(getpid(), id, SIGUSR1)
           : how == 1 ? syscall(SYS_tgkill, getpid(), id, SIGUSR1)
                      : syscall(SYS_tkill, id, SIGUSR1);
    CHECKF(r == 0, "%s(%d, SIGUSR1) returned %ld (%s)", names[how], id, r, ename(errno));
    int jr = EBUSY;              /* joined once (a second join is undefined) */
    for (int i = 0; i < 200 && (jr = pthread_tryjoin_np(t, NULL)) == EBUSY; i++)
        usleep(1000);
    bool stuck = jr == EBUSY && atomic_load(&kill_read_rc) == 0;
    if (stuck)
        CHECK(write(p[1], "x", 1) == 1);  /* let it go */
    if (jr == EBUSY)
        pthread_join(t, NULL);
    CHECKF(got_sig == SIGUSR1, "%s: the handler did not run", names[how]);
    CHECKF(pthread_equal(handler_thread, t), "%s: the handler ran in another thread (%s)",
           names[how], pthread_equal(handler_thread, pthread_self()) ? "the sender" : "not the sender");
    CHECKF(!stuck && atomic_load(&kill_read_rc) == -1 && atomic_load(&kill_read_errno) == EINTR,
           "%s: the target's read() %s (rc %d, errno %s), natively it fails with EINTR",
           names[how], stuck ? "was not interrupted" : "returned", atomic_load(&kill_read_rc),
           ename(atomic_load(&kill_read_errno)));
    close(p[0]);
    close(p[1]);
    /* The thread is gone, and so is its id (the kernel may take a moment
     * to reap a thread that was joined). */
    int e = 0;
    for (int i = 0; i < 100 && e != ESRCH; i++) {
        errno = 0;
        e = tgkill(getpid(), id, 0) == -1 ? errno : 0;
        if (e != ESRCH)
            usleep(1000);
    }
    CHECKF(e == ESRCH, "tgkill to a joined thread's id %d: errno %s, expected ESRCH", id,
           ename(e));
}

static void *tk_to_main(void *arg)
{
    long r = syscall(SYS_tgkill, getpid(), *(pid_t *)arg, SIGUSR1);
    return IP(r == 0 ? 0 : errno);
}

static void m_tid_kill(void)
{
    install(SIGUSR1, 0);
    for (int how = 0; how < 3; how++)
        tk_one(how);
    /* The main thread's id (the process id) names the main thread. */
    got_sig = 0;
    pid_t main_tid = gettid();
    pthread_t t;
    OK(pthread_create(&t, NULL, tk_to_main, &main_tid));
    void *r = NULL;
    OK(pthread_join(t, &r));
    CHECKF(r == NULL, "tgkill to the main thread failed: %s", ename((int)(intptr_t)r));
    for (int i = 0; i < 100 && !got_sig; i++)
        usleep(1000);
    CHECKF(got_sig == SIGUSR1 && pthread_equal(handler_thread, pthread_self()),
           "tgkill to the main thread's id: handler %s", got_sig ? "ran in another thread" : "did not run");
    /* An id no thread has. */
    errno = 0;
    CHECKF(tgkill(getpid(), 0x7ffffff0, SIGUSR1) == -1 && errno == ESRCH,
           "tgkill to no thread: errno %s, expected ESRCH", ename(errno));
    errno = 0;
    CHECKF(syscall(SYS_tkill, 0x7ffffff0, 0) == -1 && errno == ESRCH,
           "tkill to no thread: errno %s, expected ESRCH", ename(errno));
}

/* Calls that take a thread id accept a thread's own: affinity, scheduling
 * and priority (of the OS thread behind it under corun). */
static void *tid_sched_fn(void *arg)
{
    (void)arg;
    pid_t me = gettid();
    cpu_set_t mine, self;
    CPU_ZERO(&mine);
    CPU_ZERO(&self);
    CHECKF(sched_getaffinity(me, sizeof mine, &mine) == 0, "sched_getaffinity(gettid()): %s",
           ename(errno));
    CHECK(sched_getaffinity(0, sizeof self, &self) == 0);
    CHECK(CPU_EQUAL(&mine, &self));
    CHECKF(sched_setaffinity(me, sizeof mine, &mine) == 0, "sched_setaffinity(gettid()): %s",
           ename(errno));
    CHECKF(sched_getscheduler(me) == SCHED_OTHER, "sched_getscheduler(gettid()): %s",
           ename(errno));
    struct sched_param sp;
    CHECKF(sched_getparam(me, &sp) == 0 && sp.sched_priority == 0, "sched_getparam(gettid()): %s",
           ename(errno));
    errno = 0;
    int nice0 = getpriority(PRIO_PROCESS, 0);
    int nice = getpriority(PRIO_PROCESS, (id_t)me);
    CHECKF(errno == 0 && nice == nice0, "getpriority(PRIO_PROCESS, gettid()): %d, errno %s "
           "(the caller's: %d)", nice, ename(errno), nice0);
    CHECKF(setpriority(PRIO_PROCESS, (id_t)me, nice0) == 0, "setpriority(gettid()): %s",
           ename(errno));
    note_tasks();
    return NULL;
}

static void m_tid_sched(void)
{
    pthread_t t;
    OK(pthread_create(&t, NULL, tid_sched_fn, NULL));
    OK(pthread_join(t, NULL));
}

/* ---- the stack a thread reports is the program's ---------------------------------------
 * (HotSpot puts its own guard pages over the lowest pages of it; a program
 * may use all of it.) */

struct own_stack {
    size_t guard;       /* asked for */
    bool fill;          /* write every byte not in use, else mprotect the lowest 16 KiB */
    int rc;             /* mprotect's result */
};

static void *own_stack_fn(void *arg)
{
    struct own_stack *q = arg;
    void *lo;
    size_t size = stack_of_self(&lo);
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    if (q->fill) {
        char *end = (char *)(here - (32 << 10));   /* memset's own frames stay above this */
        if (end > (char *)lo)
            memset(lo, 0xa5, (size_t)(end - (char *)lo));
    } else {
        q->rc = mprotect(lo, 16 << 10, PROT_NONE) == 0 ? 0 : errno;
    }
    for (int i = 0; i < 5; i++) {     /* blocks and switches */
        usleep(2000);
        sched_yield();
    }
    note_tasks();
    /* As HotSpot does when its thread ends (glibc caches stacks as they are). */
    if (!q->fill && q->rc == 0)
        CHECK(mprotect(lo, 16 << 10, PROT_READ | PROT_WRITE) == 0);
    (void)size;
    return IP(1);
}

static void own_stack_run(size_t guard, bool fill)
{
    struct own_stack q = { .guard = guard, .fill = fill };
    pthread_attr_t a;
    OK(pthread_attr_init(&a));
    OK(pthread_attr_setstacksize(&a, 1 << 20));
    if (guard != (size_t)-1)
        OK(pthread_attr_setguardsize(&a, guard));
    pthread_t t[2];
    OK(pthread_create(&t[0], &a, own_stack_fn, &q));
    struct own_stack other = { .guard = guard, .fill = true };
    OK(pthread_create(&t[1], &a, own_stack_fn, &other));   /* two at once, switching */
    OK(pthread_attr_destroy(&a));
    void *r0 = NULL, *r1 = NULL;
    OK(pthread_join(t[0], &r0));
    OK(pthread_join(t[1], &r1));
    CHECKF(r0 == IP(1) && r1 == IP(1), "guard %zd: the threads returned %p and %p",
           (ssize_t)guard, r0, r1);
    CHECKF(q.rc == 0, "guard %zd: mprotect of the stack's lowest 16 KiB: %s", (ssize_t)guard,
           ename(q.rc));
}

/* mprotect(PROT_NONE) over the lowest 16 KiB of the reported stack, as
 * HotSpot does (its threads ask for no guard), then block and return. */
static void m_stack_guard_own(void)
{
    own_stack_run(0, false);
    own_stack_run((size_t)-1, false);       /* the default guard */
}

/* Write every byte of the reported stack not in use, then block and return. */
static void m_stack_fill(void)
{
    own_stack_run(0, true);
    own_stack_run((size_t)-1, true);
    own_stack_run(64 << 10, true);
}

/* ---- dispatch ---------------------------------------------------------------------------*/

static const struct pt_mode modes[] = {
    { "create_join", m_create_join },
    { "join_errors", m_join_errors },
    { "tryjoin", m_tryjoin },
    { "timedjoin", m_timedjoin },
    { "detach", m_detach },
    { "exit", m_exit },
    { "main_exit", m_main_exit },
    { "names", m_names },
    { "name_default", m_name_default },
    { "yield", m_yield },
    { "once", m_once },
    { "keys", m_keys },
    { "cancel_sleep", m_cancel_sleep },
    { "cancel_usleep", m_cancel_usleep },
    { "cancel_nanosleep", m_cancel_nanosleep },
    { "cancel_clock_nanosleep", m_cancel_clock_nanosleep },
    { "cancel_read", m_cancel_read },
    { "cancel_cond", m_cancel_cond },
    { "cancel_cond_timed", m_cancel_cond_timed },
    { "cancel_join", m_cancel_join },
    { "cancel_sem", m_cancel_sem },
    { "cancel_sem_timed", m_cancel_sem_timed },
    { "cancel_disabled", m_cancel_disabled },
    { "cancel_early", m_cancel_early },
    { "cancel_mutex", m_cancel_mutex },
    { "cancel_finished", m_cancel_finished },
    { "cleanup", m_cleanup },
    { "sigmask", m_sigmask },
    { "kill", m_kill },
    { "kill_target", m_kill_target },
    { "kill_masked", m_kill_masked },
    { "attr_stack", m_attr_stack },
    { "attr_stack_default_size", m_attr_stack_default_size },
    { "attr_setstack", m_attr_setstack },
    { "guard", m_guard },
    { "guard_none", m_guard_none },
    { "tid", m_tid },
    { "tid_kill", m_tid_kill },
    { "tid_sched", m_tid_sched },
    { "stack_guard_own", m_stack_guard_own },
    { "stack_fill", m_stack_fill },
};

int main(int argc, char **argv)
{
    return pt_main(modes, sizeof modes / sizeof modes[0], argc, argv);
}
