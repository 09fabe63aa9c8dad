/*
 * pt_fork.c - a plain pthread program (not linked with corun): what real
 * servers do around fork and signals (PostgreSQL's postmaster, Redis's
 * BGSAVE, OpenSSL's locks), and settings read after the program rewrote
 * its environment (setproctitle).
 *
 * Run by tests/test_pthread_green as `pt_fork MODE`, natively and under
 * LD_PRELOAD=libcorun.so; see tests/preload/pt_thread.c for the output conventions.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pt_common.h"

/* ---- select interrupted by a SIGCHLD handler that forks ------------------------
 * The postmaster's loop: signals blocked except around select(); SIGCHLD's
 * handler (no SA_RESTART) reaps and forks a new child; select's errno is
 * read after the mask is set again, and must be EINTR. */
static atomic_int chld_handled, grandchildren;

static void on_chld(int sig)
{
    (void)sig;
    int e = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    if (atomic_fetch_add(&chld_handled, 1) == 0) {
        pid_t c = fork();          /* a replacement child, as the postmaster starts one */
        if (c == 0)
            _exit(0);
        if (c > 0)
            atomic_fetch_add(&grandchildren, 1);
    }
    errno = e;
}

static void select_after_forking_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld;
    sigfillset(&sa.sa_mask);
    CHECK(sigaction(SIGCHLD, &sa, NULL) == 0);
    sigset_t block, none;
    sigfillset(&block);
    sigemptyset(&none);
    CHECK(sigprocmask(SIG_SETMASK, &block, NULL) == 0);
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t c = fork();
    if (c == 0) {
        usleep(30000);
        _exit(0);
    }
    CHECK(c > 0);
    int r = 0, e = 0, rounds = 0;
    do {                        /* until the handler has run (an early wake is a timeout) */
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(p[0], &rd);
        struct timeval tv = { 5, 0 };
        CHECK(sigprocmask(SIG_SETMASK, &none, NULL) == 0);
        r = select(p[0] + 1, &rd, NULL, NULL, &tv);
        CHECK(sigprocmask(SIG_SETMASK, &block, NULL) == 0);
        e = errno;              /* as PostgreSQL reads it: after the mask call */
    } while (r == 0 && atomic_load(&chld_handled) == 0 && ++rounds < 3);
    CHECKF(r == -1 && e == EINTR, "select returned %d, errno %s (expected -1, EINTR)", r, ename(e));
    CHECKF(atomic_load(&chld_handled) >= 1, "the SIGCHLD handler ran %d times",
           atomic_load(&chld_handled));
    /* The next select works: times out, then sees data. */
    CHECK(sigprocmask(SIG_SETMASK, &none, NULL) == 0);
    usleep(50000);              /* the grandchild's SIGCHLD, if any, is handled now */
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    struct timeval tv = { 0, 30000 };
    errno = 0;
    r = select(p[0] + 1, &rd, NULL, NULL, &tv);
    CHECKF(r == 0 || (r == -1 && errno == EINTR), "select returned %d (%s)", r, ename(errno));
    CHECK(write(p[1], "x", 1) == 1);
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    tv = (struct timeval){ 5, 0 };
    r = select(p[0] + 1, &rd, NULL, NULL, &tv);
    CHECKF(r == 1 && FD_ISSET(p[0], &rd), "select returned %d (%s)", r, ename(errno));
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    close(p[0]);
    close(p[1]);
}

/* Alone (a lone green thread makes the real select) ... */
static void m_select_sigchld_fork(void)
{
    select_after_forking_handler();
}

/* ... and with another thread running (select parks). */
static void m_select_sigchld_fork_busy(void)
{
    ticker_start();
    select_after_forking_handler();
    ticker_end();
}

/* pthread_sigmask succeeds without touching errno, whatever the set holds. */
static void m_sigmask_errno(void)
{
    sigset_t all, old;
    sigfillset(&all);
    for (int how = 0; how < 3; how++) {
        errno = EINTR;
        CHECK(sigprocmask(how == 0 ? SIG_BLOCK : how == 1 ? SIG_UNBLOCK : SIG_SETMASK, &all,
                          &old) == 0);
        CHECKF(errno == EINTR, "sigprocmask(how %d) changed errno to %s", how, ename(errno));
        errno = EAGAIN;
        OK(pthread_sigmask(SIG_SETMASK, &old, NULL));
        CHECKF(errno == EAGAIN, "pthread_sigmask changed errno to %s", ename(errno));
    }
}

/* ---- locks in signal handlers and at exit -----------------------------------------
 * OpenSSL's pattern under PostgreSQL: its rwlocks first taken inside a
 * signal handler of the postmaster, later in the main loop, and again by
 * OPENSSL_cleanup at exit (here: an exit called from a handler). */
static pthread_rwlock_t lib_lock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t lib_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lib_errcheck;
static atomic_int in_handler;

static void use_locks(void)
{
    OK(pthread_rwlock_wrlock(&lib_lock));
    OK(pthread_rwlock_unlock(&lib_lock));
    OK(pthread_rwlock_rdlock(&lib_lock));
    OK(pthread_rwlock_rdlock(&lib_lock));
    OK(pthread_rwlock_unlock(&lib_lock));
    OK(pthread_rwlock_unlock(&lib_lock));
    OK(pthread_mutex_lock(&lib_mutex));
    OK(pthread_mutex_unlock(&lib_mutex));
    OK(pthread_mutex_lock(&lib_errcheck));
    RC(pthread_mutex_lock(&lib_errcheck), EDEADLK);
    OK(pthread_mutex_unlock(&lib_errcheck));
    RC(pthread_mutex_unlock(&lib_errcheck), EPERM);
}

/* What OpenSSL's first RAND call does: the lock taken for writing once. */
static void on_usr1_locks(int sig)
{
    (void)sig;
    atomic_fetch_add(&in_handler, 1);
    OK(pthread_rwlock_wrlock(&lib_lock));
    OK(pthread_rwlock_unlock(&lib_lock));
    OK(pthread_mutex_lock(&lib_errcheck));
    RC(pthread_mutex_lock(&lib_errcheck), EDEADLK);
    OK(pthread_mutex_unlock(&lib_errcheck));
}

static void cleanup_at_exit(void)
{
    use_locks();
    printf("atexit locks ok\n");
}

static void on_term_exit(int sig)
{
    (void)sig;
    exit(0);                    /* atexit handlers run inside this handler */
}

static void m_locks_in_handler(void)
{
    pthread_mutexattr_t a;
    OK(pthread_mutexattr_init(&a));
    OK(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK));
    OK(pthread_mutex_init(&lib_errcheck, &a));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1_locks;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    sa.sa_handler = on_term_exit;
    CHECK(sigaction(SIGTERM, &sa, NULL) == 0);
    CHECK(atexit(cleanup_at_exit) == 0);
    CHECK(kill(getpid(), SIGUSR1) == 0);     /* first use: in the handler */
    usleep(10000);
    CHECK(atomic_load(&in_handler) == 1);
    use_locks();                              /* then in the main thread */
    CHECK(kill(getpid(), SIGUSR1) == 0);
    usleep(10000);
    CHECK(atomic_load(&in_handler) == 2);
    use_locks();
    fflush(stdout);
    kill(getpid(), SIGTERM);                  /* exits: atexit runs in the handler */
    usleep(100000);
    failf(__LINE__, "still running after SIGTERM");
}

/* ---- pthread_atfork: locks taken in prepare, released in parent and child ----------*/
static pthread_mutex_t fork_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t fork_rec;
static pthread_mutex_t fork_err;
static atomic_int prepares, parents, children;
static atomic_long contended_rounds;
static atomic_bool contenders_stop;

static void prepare(void)
{
    atomic_fetch_add(&prepares, 1);
    OK(pthread_mutex_lock(&fork_m));
    OK(pthread_mutex_lock(&fork_rec));
    OK(pthread_mutex_lock(&fork_rec));
    OK(pthread_mutex_lock(&fork_err));
}

static void release(void)
{
    OK(pthread_mutex_unlock(&fork_err));
    OK(pthread_mutex_unlock(&fork_rec));
    OK(pthread_mutex_unlock(&fork_rec));
    OK(pthread_mutex_unlock(&fork_m));
}

static void parent(void)
{
    atomic_fetch_add(&parents, 1);
    release();
}

/* In the child the normal mutex is unlocked; the recursive and
 * error-checking ones are made anew, as jemalloc does: glibc gives the
 * child a new thread id, so their unlock would fail with EPERM there. */
static void child(void)
{
    atomic_fetch_add(&children, 1);
    OK(pthread_mutex_unlock(&fork_m));
    pthread_mutexattr_t a;
    OK(pthread_mutexattr_init(&a));
    OK(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE));
    OK(pthread_mutex_init(&fork_rec, &a));
    OK(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK));
    OK(pthread_mutex_init(&fork_err, &a));
}

static void *contender(void *arg)
{
    (void)arg;
    while (!atomic_load(&contenders_stop)) {
        OK(pthread_mutex_lock(&fork_m));
        atomic_fetch_add(&contended_rounds, 1);
        usleep(200);            /* held across a sleep: others queue on it */
        OK(pthread_mutex_unlock(&fork_m));
        usleep(100);
    }
    return NULL;
}

/* Both sides can use all three mutexes again, as their only or forking thread. */
static int locks_usable(void)
{
    int bad = 0;
    bad += pthread_mutex_lock(&fork_m) != 0;
    bad += pthread_mutex_unlock(&fork_m) != 0;
    bad += pthread_mutex_lock(&fork_rec) != 0;
    bad += pthread_mutex_lock(&fork_rec) != 0;
    bad += pthread_mutex_unlock(&fork_rec) != 0;
    bad += pthread_mutex_unlock(&fork_rec) != 0;
    bad += pthread_mutex_unlock(&fork_rec) != EPERM;   /* no longer ours */
    bad += pthread_mutex_lock(&fork_err) != 0;
    bad += pthread_mutex_lock(&fork_err) != EDEADLK;
    bad += pthread_mutex_unlock(&fork_err) != 0;
    bad += pthread_mutex_unlock(&fork_err) != EPERM;
    return bad;
}

static void m_atfork_mutexes(void)
{
    pthread_mutexattr_t a;
    OK(pthread_mutexattr_init(&a));
    OK(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE));
    OK(pthread_mutex_init(&fork_rec, &a));
    OK(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK));
    OK(pthread_mutex_init(&fork_err, &a));
    OK(pthread_atfork(prepare, parent, child));
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        OK(pthread_create(&t[i], NULL, contender, NULL));
    for (int round = 0; round < 3; round++) {
        while (atomic_load(&contended_rounds) < 5L * (round + 1))
            usleep(1000);
        pid_t c = fork();
        if (c == 0) {
            int bad = locks_usable();
            _exit(bad == 0 && atomic_load(&children) == 1 ? 0 : 10 + bad);
        }
        CHECK(c > 0);
        int st = 0;
        CHECK(waitpid(c, &st, 0) == c);
        CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child of round %d: status 0x%x", round, st);
        CHECKF(atomic_load(&prepares) == round + 1 && atomic_load(&parents) == round + 1,
               "round %d: prepare ran %d times, parent %d", round, atomic_load(&prepares),
               atomic_load(&parents));
        long before = atomic_load(&contended_rounds);
        int64_t until = mono_ns() + 5000 * MS;
        while (atomic_load(&contended_rounds) < before + 5 && mono_ns() < until)
            usleep(1000);
        CHECKF(atomic_load(&contended_rounds) >= before + 5,
               "the other threads made no progress after fork %d", round);
        OK(pthread_mutex_lock(&fork_m));
        OK(pthread_mutex_unlock(&fork_m));
    }
    atomic_store(&contenders_stop, true);
    for (int i = 0; i < 3; i++)
        OK(pthread_join(t[i], NULL));
    CHECKF(locks_usable() == 0, "the mutexes misbehave in the parent");
}

/* fork while another thread holds a mutex: in the child it stays held (its
 * owner is gone); in the parent the owner releases it and others get it. */
static pthread_mutex_t held_m = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool holder_has_it, holder_may_go;

static void *holder(void *arg)
{
    (void)arg;
    OK(pthread_mutex_lock(&held_m));
    atomic_store(&holder_has_it, true);
    while (!atomic_load(&holder_may_go))
        usleep(1000);
    OK(pthread_mutex_unlock(&held_m));
    return NULL;
}

static void m_fork_mutex_held(void)
{
    pthread_t t;
    OK(pthread_create(&t, NULL, holder, NULL));
    while (!atomic_load(&holder_has_it))
        usleep(1000);
    pid_t c = fork();
    if (c == 0)
        _exit(pthread_mutex_trylock(&held_m) == EBUSY ? 0 : 1);
    int st = 0;
    CHECK(waitpid(c, &st, 0) == c);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: trylock of the held mutex did not "
           "say EBUSY (status 0x%x)", st);
    RC(pthread_mutex_trylock(&held_m), EBUSY);
    atomic_store(&holder_may_go, true);
    OK(pthread_mutex_lock(&held_m));
    OK(pthread_mutex_unlock(&held_m));
    OK(pthread_join(t, NULL));
}

/* ---- settings after the environment is rewritten -----------------------------------
 * setproctitle (Redis, PostgreSQL) overwrites the strings environ points
 * into. corun's log file must still be the one CORUN_LOG_FILE named: the
 * program re-executes itself with CORUN_LOG_FILE and CORUN_DUMP_SIGNAL set,
 * wipes its environment strings, asks for a live dump and finds it in the
 * file. */
extern char **environ;

static void m_environ_rewrite(void)
{
    if (!getenv("PT_FORK_CHILD")) {
        char path[] = "/tmp/pt_fork_log_XXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0);
        close(fd);
        setenv("CORUN_LOG_FILE", path, 1);
        setenv("CORUN_DUMP_SIGNAL", "SIGUSR2", 1);
        setenv("PT_FORK_CHILD", "1", 1);
        fflush(stdout);
        char *argv[] = { "pt_fork", "environ_rewrite", NULL };
        execv("/proc/self/exe", argv);
        failf(__LINE__, "execv: %s", strerror(errno));
        return;
    }
    char path[256];
    snprintf(path, sizeof path, "%s", getenv("CORUN_LOG_FILE"));
    const char *t = getenv("CORUN_THREADS");
    char threads[16];
    snprintf(threads, sizeof threads, "%s", t ? t : "");
    for (char **e = environ; *e; e++)      /* as setproctitle clears the area */
        memset(*e, 0, strlen(*e));
    if (threads[0])
        setenv("CORUN_THREADS", threads, 1);   /* for green() and the summary */
    if (!green()) {                        /* no corun (or no loop to dump): nothing to log */
        unlink(path);
        return;
    }
    ticker_start();                        /* the loop turns and writes the dump */
    raise(SIGUSR2);
    char buf[8192] = "";
    for (int i = 0; i < 200 && !strstr(buf, "green thread"); i++) {
        usleep(10000);
        int fd = open(path, O_RDONLY);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        buf[n > 0 ? n : 0] = '\0';
        if (fd >= 0)
            close(fd);
    }
    ticker_end();
    CHECKF(strstr(buf, "green thread") != NULL, "no dump in CORUN_LOG_FILE %s: '%.200s'", path,
           buf);
    unlink(path);
}

/* ---- fork while other threads are inside the objects' own bookkeeping ---------------
 * Threads (on other OS threads under M:N) keep making the short internal
 * changes of a mutex and an rwlock the forking thread holds (timed locks
 * whose deadline has passed), of a semaphore at zero (timed waits) and of a
 * condition variable (timed waits): each fork's child must find them
 * usable. Under corun, a child once inherited such an object marked "being
 * changed" by a thread it does not have, and spun forever on its first use. */
static pthread_mutex_t sec_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t sec_m2 = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t sec_rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_cond_t sec_c = PTHREAD_COND_INITIALIZER;
static sem_t sec_s;
static atomic_bool sec_stop;
static atomic_long sec_tries[4];

static void *sec_prober(void *arg)
{
    long kind = (long)arg;
    const struct timespec past = { 1, 0 };
    if (kind == 3)
        OK(pthread_mutex_lock(&sec_m2));
    while (!atomic_load(&sec_stop)) {
        switch (kind) {
        case 0: RC(pthread_mutex_timedlock(&sec_m, &past), ETIMEDOUT); break;
        case 1: RC(pthread_rwlock_timedwrlock(&sec_rw, &past), ETIMEDOUT); break;
        case 2:
            CHECK(sem_timedwait(&sec_s, &past) == -1 && errno == ETIMEDOUT);
            break;
        default: RC(pthread_cond_timedwait(&sec_c, &sec_m2, &past), ETIMEDOUT); break;
        }
        /* A short sleep now and then: where nothing preempts (a sanitizer
         * build) main gets its turns, and elsewhere its sleeps end on time. */
        if (atomic_fetch_add(&sec_tries[kind], 1) % 256 == 255)
            usleep(20);
    }
    if (kind == 3)
        OK(pthread_mutex_unlock(&sec_m2));
    return NULL;
}

/* The forked child: its one thread holds sec_m, and sec_rw for reading.
 * Returns 0, or the number of the first check that failed. */
static int sec_child(void)
{
    const struct timespec past = { 1, 0 };
    int n = 0;
    if (++n, pthread_mutex_unlock(&sec_m) != 0)
        return n;
    if (++n, pthread_mutex_lock(&sec_m) != 0 || pthread_mutex_unlock(&sec_m) != 0)
        return n;
    /* Only corun's: glibc's own rwlock (native, or no corun) can spin for
     * good in the child. A prober forked between setting the lock's write
     * flag and the futex word a second writer sleeps on (or between
     * clearing the two) leaves the child's writer looping on a state only
     * that gone thread would change (CI saw a native run's child hang). */
    if (++n, green() && pthread_rwlock_timedwrlock(&sec_rw, &past) != ETIMEDOUT)
        return n;
    if (++n, pthread_rwlock_unlock(&sec_rw) != 0)
        return n;
    if (++n, sem_post(&sec_s) != 0 || sem_wait(&sec_s) != 0 || sem_trywait(&sec_s) != -1)
        return n;
    /* glibc's condvar waits in the child for the waiters it had, which are
     * gone (natively the rwlock's write side is likewise lost to the child):
     * checked under corun only. */
    if (++n, green() && (pthread_cond_signal(&sec_c) != 0 || pthread_cond_broadcast(&sec_c) != 0))
        return n;
    return 0;
}

static void m_fork_in_sections(void)
{
    CHECK(sem_init(&sec_s, 0, 0) == 0);
    OK(pthread_mutex_lock(&sec_m));
    OK(pthread_rwlock_rdlock(&sec_rw));
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        OK(pthread_create(&t[i], NULL, sec_prober, (void *)i));
    for (int i = 0; i < 4; i++)
        while (atomic_load(&sec_tries[i]) < 100)
            usleep(1000);
    for (int round = 0; round < 40; round++) {
        pid_t c = fork();
        if (c == 0)
            _exit(sec_child());
        CHECK(c > 0);
        int st = 0;
        pid_t r = 0;
        for (int64_t until = mono_ns() + 10000 * MS; (r = waitpid(c, &st, WNOHANG)) == 0 &&
                                                      mono_ns() < until;)
            usleep(1000);
        if (r == 0) {
            failf(__LINE__, "the child of fork %d hung", round);
            describe_process(c);
            kill(c, SIGKILL);
            waitpid(c, &st, 0);
            break;
        }
        CHECKF(r == c && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child of fork %d: status 0x%x",
               round, st);
        usleep(500);
    }
    atomic_store(&sec_stop, true);
    for (int i = 0; i < 4; i++)
        OK(pthread_join(t[i], NULL));
    OK(pthread_rwlock_unlock(&sec_rw));
    OK(pthread_mutex_unlock(&sec_m));
    CHECK(sem_destroy(&sec_s) == 0);
}

static const struct pt_mode modes[] = {
    { "select_sigchld_fork", m_select_sigchld_fork },
    { "select_sigchld_fork_busy", m_select_sigchld_fork_busy },
    { "sigmask_errno", m_sigmask_errno },
    { "locks_in_handler", m_locks_in_handler },
    { "atfork_mutexes", m_atfork_mutexes },
    { "fork_mutex_held", m_fork_mutex_held },
    { "environ_rewrite", m_environ_rewrite },
    { "fork_in_sections", m_fork_in_sections },
};

int main(int argc, char **argv)
{
    return pt_main(modes, sizeof modes / sizeof modes[0], argc, argv);
}
