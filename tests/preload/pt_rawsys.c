/*
 * pt_rawsys.c - a plain pthread program (not linked with corun) that makes
 * its blocking calls by number, through libc's syscall(), as InnoDB's futex
 * waits and Python's native thread id do: fd I/O, the poll family, sleeps,
 * child waits, futexes and io_uring completion waits. Each blocking call
 * runs while the ticker counts 1 ms sleeps: under corun the two share one
 * OS thread, so ticks during the call prove it parked instead of blocking
 * the thread (and a call that blocks the thread on something another green
 * thread must do never ends: pt_main's 30 s alarm turns that into a
 * failure). Run as `pt_rawsys MODE` by test_rawsys_green.c green, native
 * and without corun, with the same expectations each way (results, errno
 * values, the time left the raw ppoll/pselect6 write back).
 * Arguments the kernel reads as 64 bits are passed as such (a plain int
 * through syscall()'s ... leaves the upper half undefined).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "pt_common.h"
#include "insn_syscall.h"

static void make_pipe(int p[2])
{
    if (pipe(p) != 0) {
        perror("pipe");
        exit(3);
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * MS };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A blocking call (of 30 ms or more) must see the ticker tick. Under corun
 * the ticker shares the OS thread and no green switch happens between
 * reading t0 and the call: a call that blocks the thread sees no tick at
 * all. Asked of green threads only: a kernel thread's ticker runs whatever
 * the call does, and a loaded machine may leave it unscheduled for 30 ms. */
static int rawsys_green = -1;
#define TICKED_DURING(t0, what)                                                              \
    do {                                                                                     \
        if (rawsys_green < 0)                                                                \
            rawsys_green = green();                                                          \
        CHECKF(!rawsys_green || atomic_load(&ticks) - (t0) > 0, "%s: only %ld ticks", what,  \
               atomic_load(&ticks) - (t0));                                                  \
    } while (0)

/* A timed wait, run again (three rounds at most) while the ticker saw no
 * tick during it: a machine loaded enough to leave the OS threads
 * unscheduled for a whole 30 ms wait says nothing about the call (CI: one
 * such round), while a call that blocks the OS thread sees no tick in any. */
#define TIMED_WAIT_TICKED(what, ...)                                                         \
    do {                                                                                     \
        long t0_ = 0;                                                                        \
        for (int round_ = 0; round_ < 3; round_++) {                                         \
            t0_ = atomic_load(&ticks);                                                       \
            __VA_ARGS__                                                                      \
            if (atomic_load(&ticks) - t0_ > 0)                                               \
                break;                                                                       \
        }                                                                                    \
        TICKED_DURING(t0_, what);                                                            \
    } while (0)

/* ---- fd I/O by number ---------------------------------------------------- */

struct delayed_write {
    int fd;
    long ms;
    const char *bytes;
};

static void *write_later(void *arg)
{
    struct delayed_write *d = arg;
    sleep_ms(d->ms);
    CHECK(write(d->fd, d->bytes, strlen(d->bytes)) == (ssize_t)strlen(d->bytes));
    return NULL;
}

/* syscall(SYS_read) on an empty pipe that another thread fills 50 ms
 * later; then readv, writev, write, pread64 (ESPIPE on a pipe) by number. */
static void mode_raw_read(void)
{
    int p[2];
    make_pipe(p);
    ticker_start();
    struct delayed_write d = { p[1], 50, "hello" };
    pthread_t t;
    OK(pthread_create(&t, NULL, write_later, &d));
    char buf[16] = { 0 };
    long t0 = atomic_load(&ticks);
    CHECK(syscall(SYS_read, p[0], buf, sizeof buf) == 5);
    TICKED_DURING(t0, "SYS_read");
    CHECK(!memcmp(buf, "hello", 5));
    OK(pthread_join(t, NULL));

    CHECK(syscall(SYS_write, p[1], "abc", (size_t)3) == 3);
    struct iovec wv[2] = { { "de", 2 }, { "fgh", 3 } };
    CHECK(syscall(SYS_writev, p[1], wv, 2L) == 5);
    char x[3], y[5];
    struct iovec rv[2] = { { x, 3 }, { y, 5 } };
    CHECK(syscall(SYS_readv, p[0], rv, 2L) == 8);
    CHECK(!memcmp(x, "abc", 3) && !memcmp(y, "defgh", 5));
    errno = 0;
    CHECK(syscall(SYS_pread64, p[0], buf, (size_t)1, 0L) == -1 && errno == ESPIPE);
    errno = 0;
    CHECK(syscall(SYS_read, -1, buf, (size_t)1) == -1 && errno == EBADF);

    /* A raw read on a pipe another green thread fills in pieces. */
    d.ms = 30;
    d.bytes = "xyz";
    OK(pthread_create(&t, NULL, write_later, &d));
    t0 = atomic_load(&ticks);
    CHECK(syscall(SYS_read, p[0], buf, sizeof buf) == 3);
    TICKED_DURING(t0, "second SYS_read");
    OK(pthread_join(t, NULL));
    ticker_end();
    close(p[0]);
    close(p[1]);
}

/* ---- the poll family by number ------------------------------------------- */

static void mode_raw_poll(void)
{
    int p[2];
    make_pipe(p);
    ticker_start();
    struct pollfd pf = { .fd = p[0], .events = POLLIN };

    long t0 = atomic_load(&ticks);
    CHECK(syscall(SYS_poll, &pf, 1L, 30) == 0);
    TICKED_DURING(t0, "SYS_poll");

    /* The raw ppoll writes the time left back (0 after a timeout). */
    struct timespec ts = { 0, 30 * MS };
    t0 = atomic_load(&ticks);
    CHECK(syscall(SYS_ppoll, &pf, 1, &ts, NULL, 8L) == 0);
    TICKED_DURING(t0, "SYS_ppoll");
    CHECKF(ts.tv_sec == 0 && ts.tv_nsec == 0, "ppoll left %ld.%09ld", (long)ts.tv_sec, ts.tv_nsec);

    /* Ready after 30 ms of a 5 s timeout: the time left is most of it. */
    struct delayed_write d = { p[1], 30, "r" };
    pthread_t t;
    OK(pthread_create(&t, NULL, write_later, &d));
    sigset_t none;
    sigemptyset(&none);
    ts = (struct timespec){ 5, 0 };
    t0 = atomic_load(&ticks);
    CHECK(syscall(SYS_ppoll, &pf, 1, &ts, &none, 8L) == 1 && (pf.revents & POLLIN));
    TICKED_DURING(t0, "SYS_ppoll with a mask");
    CHECKF(ts.tv_sec >= 3 && ts.tv_sec < 5, "ppoll left %ld.%09ld", (long)ts.tv_sec, ts.tv_nsec);
    OK(pthread_join(t, NULL));
    char c;
    CHECK(read(p[0], &c, 1) == 1);

    /* A sigset size the kernel refuses. */
    errno = 0;
    CHECK(syscall(SYS_ppoll, &pf, 1, &ts, &none, 128L) == -1 && errno == EINVAL);

    /* select by number writes the time left back too. */
    fd_set r;
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    struct timeval tv = { 0, 30000 };
    t0 = atomic_load(&ticks);
    CHECK(syscall(SYS_select, p[0] + 1, &r, NULL, NULL, &tv) == 0);
    TICKED_DURING(t0, "SYS_select");
    CHECK(tv.tv_sec == 0 && tv.tv_usec == 0 && !FD_ISSET(p[0], &r));

    /* pselect6's sixth argument is { sigset pointer, its size }. */
    struct {
        const sigset_t *set;
        size_t size;
    } packed = { &none, 8 };
    FD_SET(p[0], &r);
    ts = (struct timespec){ 0, 30 * MS };
    t0 = atomic_load(&ticks);
    CHECK(syscall(SYS_pselect6, p[0] + 1, &r, NULL, NULL, &ts, &packed) == 0);
    TICKED_DURING(t0, "SYS_pselect6");
    CHECK(ts.tv_sec == 0 && ts.tv_nsec == 0);
    packed.size = 16;
    FD_SET(p[0], &r);
    errno = 0;
    CHECK(syscall(SYS_pselect6, p[0] + 1, &r, NULL, NULL, &ts, &packed) == -1 && errno == EINVAL);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 7 };
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    t0 = atomic_load(&ticks);
    CHECK(syscall(SYS_epoll_wait, ep, &ev, 1, 30) == 0);
    TICKED_DURING(t0, "SYS_epoll_wait");
    OK(pthread_create(&t, NULL, write_later, &d));
    t0 = atomic_load(&ticks);
    ev.data.u64 = 0;
    long n = syscall(SYS_epoll_pwait, ep, &ev, 1, 5000, &none, 8L);
    CHECKF(n == 1 && ev.data.u64 == 7, "epoll_pwait: %ld (%s), data %llu", n, ename(errno),
           (unsigned long long)ev.data.u64);
    TICKED_DURING(t0, "SYS_epoll_pwait");
    OK(pthread_join(t, NULL));
    close(ep);
    ticker_end();
    close(p[0]);
    close(p[1]);
}

/* ---- sleeps and child waits by number ------------------------------------ */

static void mode_raw_sleep_wait(void)
{
    ticker_start();
    struct timespec ts = { 0, 30 * MS };
    long t0 = atomic_load(&ticks);
    CHECK(syscall(SYS_nanosleep, &ts, NULL) == 0);
    TICKED_DURING(t0, "SYS_nanosleep");
    t0 = atomic_load(&ticks);
    CHECK(syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &ts, NULL) == 0);
    TICKED_DURING(t0, "SYS_clock_nanosleep");
    struct timespec until = abs_in(CLOCK_REALTIME, 30 * MS);
    t0 = atomic_load(&ticks);
    CHECK(syscall(SYS_clock_nanosleep, CLOCK_REALTIME, TIMER_ABSTIME, &until, NULL) == 0);
    TICKED_DURING(t0, "SYS_clock_nanosleep absolute");
    /* The raw call fails as system calls do: -1 and errno (libc's
     * clock_nanosleep returns the error number instead). */
    struct timespec bad = { 0, -1 };
    errno = 0;
    CHECK(syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &bad, NULL) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(syscall(SYS_nanosleep, &bad, NULL) == -1 && errno == EINVAL);

    pid_t pid = fork();
    if (pid == 0) {
        sleep_ms(50);
        _exit(7);
    }
    int status = 0;
    struct rusage ru;
    t0 = atomic_load(&ticks);
    CHECK(syscall(SYS_wait4, pid, &status, 0, &ru) == pid);
    TICKED_DURING(t0, "SYS_wait4");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);

    pid = fork();
    if (pid == 0) {
        sleep_ms(50);
        _exit(9);
    }
    siginfo_t si;
    memset(&si, 0, sizeof si);
    t0 = atomic_load(&ticks);
    CHECK(syscall(SYS_waitid, P_PID, pid, &si, WEXITED, NULL) == 0);
    TICKED_DURING(t0, "SYS_waitid");
    CHECK(si.si_pid == pid && si.si_code == CLD_EXITED && si.si_status == 9);
    errno = 0;
    CHECK(syscall(SYS_wait4, -1, &status, 0, NULL) == -1 && errno == ECHILD);
    ticker_end();
}

/* ---- corun's own fds stay hidden from calls by number ---------------------- */

/* Open in the kernel: fstat by instruction (corun hides its fds from a
 * raw close, dup or fcntl, also when it catches syscall instructions, but
 * passes fstat to the kernel). */
static bool kernel_has_fd(int fd)
{
    struct stat st;
    return insn_syscall(SYS_fstat, fd, (long)&st, 0, 0, 0, 0) == 0;
}

static void mode_raw_hidden_fds(void)
{
    ticker_start();                    /* a running scheduler: its epoll set exists */
    sleep_ms(5);
    int hidden = 0;
    for (int fd = 3; fd < 1024; fd++) {
        bool open_in_kernel = kernel_has_fd(fd);
        if (!open_in_kernel || fcntl(fd, F_GETFD) >= 0)
            continue;
        /* The kernel has it, the program must not see it: corun's. */
        hidden++;
        errno = 0;
        CHECKF(syscall(SYS_fcntl, fd, F_GETFD) == -1 && errno == EBADF, "fcntl %d", fd);
        errno = 0;
        CHECKF(syscall(SYS_close, fd) == -1 && errno == EBADF, "close %d", fd);
        errno = 0;
        CHECKF(syscall(SYS_dup, fd) == -1 && errno == EBADF, "dup %d", fd);
        errno = 0;
        CHECKF(syscall(SYS_dup3, fd, 200, 0) == -1 && errno == EBADF, "dup3 %d", fd);
        CHECKF(kernel_has_fd(fd), "fd %d was closed", fd);
    }
    ticker_end();
    if (green())
        CHECKF(hidden > 0, "no fd of corun's found");
    int p[2];
    make_pipe(p);
    CHECK(syscall(SYS_close, p[1]) == 0);
    char c;
    CHECK(syscall(SYS_read, p[0], &c, (size_t)1) == 0);   /* end of file: the write end is gone */
    close(p[0]);
}


/* ---- futexes by number ------------------------------------------------------ */

int ktest_create(pthread_t *t, void *(*fn)(void *), void *arg);
int ktest_join(pthread_t t);

static long futex(uint32_t *w, int op, uint32_t val, const struct timespec *ts, uint32_t *w2,
                  uint32_t val3)
{
    return syscall(SYS_futex, w, op, val, ts, w2, val3);
}

/* A waiter: futex(w, op, val, ts, NULL, bitset), its result and errno. */
struct fwait {
    uint32_t *w;
    int op;
    uint32_t val, bitset;
    const struct timespec *ts;
    pid_t tid;                 /* its kernel tid (meaningful for kernel threads) */
    atomic_bool arrived, done;
    long result;
    int err;
};

static void *fwait_main(void *arg)
{
    struct fwait *f = arg;
    f->tid = (pid_t)insn_syscall(SYS_gettid, 0, 0, 0, 0, 0, 0);
    atomic_store(&f->arrived, true);
    errno = 0;
    f->result = futex(f->w, f->op, f->val, f->ts, NULL, f->bitset);
    f->err = errno;
    atomic_store(&f->done, true);
    return NULL;
}

/* Until f is waiting in the futex call: a kernel thread is seen doing
 * system call 202 in /proc; a green one waits as soon as it ran (the main
 * thread's sleep lets it run). */
static void await_waiting(struct fwait *f, bool kernel_thread)
{
    while (!atomic_load(&f->arrived))
        sleep_ms(1);
    if (green() && !kernel_thread) {
        sleep_ms(20);
        return;
    }
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", f->tid);
    for (int i = 0; i < 2000; i++) {
        FILE *fp = fopen(path, "r");
        bool in_futex = fp && fgets(buf, sizeof buf, fp) && !strncmp(buf, "202 ", 4);
        if (fp)
            fclose(fp);
        if (in_futex)
            return;
        sleep_ms(1);
    }
    failf(__LINE__, "thread %d never waited in futex", f->tid);
}

static void start_waiter(pthread_t *t, struct fwait *f, uint32_t *w, int op, uint32_t val,
                         uint32_t bitset)
{
    *f = (struct fwait){ .w = w, .op = op, .val = val, .bitset = bitset };
    OK(pthread_create(t, NULL, fwait_main, f));
    await_waiting(f, false);
}

static int count_done(struct fwait *f, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += atomic_load(&f[i].done);
    return k;
}

/* EAGAIN on a mismatch, ETIMEDOUT after relative and absolute timeouts
 * (parked: the ticker ticks), EINVAL for a zero bitset, 0 woken when none
 * waits; private and shared. */
static void mode_futex_basic(void)
{
    static uint32_t w;
    ticker_start();
    for (int priv = 0; priv <= FUTEX_PRIVATE_FLAG; priv += FUTEX_PRIVATE_FLAG) {
        errno = 0;
        CHECK(futex(&w, FUTEX_WAIT | priv, 1, NULL, NULL, 0) == -1 && errno == EAGAIN);
        errno = 0;
        CHECK(futex(&w, FUTEX_WAIT_BITSET | priv, 1, NULL, NULL, ~0u) == -1 && errno == EAGAIN);

        struct timespec rel = { 0, 30 * MS };
        TIMED_WAIT_TICKED("FUTEX_WAIT timeout", {
            int64_t start = mono_ns();
            errno = 0;
            CHECK(futex(&w, FUTEX_WAIT | priv, 0, &rel, NULL, 0) == -1 && errno == ETIMEDOUT);
            CHECK(mono_ns() - start >= 30 * MS);
        });

        struct timespec until;
        TIMED_WAIT_TICKED("FUTEX_WAIT_BITSET timeout", {
            until = abs_in(CLOCK_MONOTONIC, 30 * MS);
            errno = 0;
            CHECK(futex(&w, FUTEX_WAIT_BITSET | priv, 0, &until, NULL, ~0u) == -1 &&
                  errno == ETIMEDOUT);
            CHECK(mono_ns() >= (int64_t)until.tv_sec * 1000000000 + until.tv_nsec);
        });

        TIMED_WAIT_TICKED("FUTEX_WAIT_BITSET realtime timeout", {
            until = abs_in(CLOCK_REALTIME, 30 * MS);
            errno = 0;
            CHECK(futex(&w, FUTEX_WAIT_BITSET | FUTEX_CLOCK_REALTIME | priv, 0, &until, NULL,
                        ~0u) == -1 && errno == ETIMEDOUT);
            CHECK(ns_on(CLOCK_REALTIME) >= (int64_t)until.tv_sec * 1000000000 + until.tv_nsec);
        });

        /* A deadline already past: the word is compared first. */
        until = abs_in(CLOCK_MONOTONIC, -MS);
        errno = 0;
        CHECK(futex(&w, FUTEX_WAIT_BITSET | priv, 0, &until, NULL, ~0u) == -1 && errno == ETIMEDOUT);
        errno = 0;
        CHECK(futex(&w, FUTEX_WAIT_BITSET | priv, 1, &until, NULL, ~0u) == -1 && errno == EAGAIN);

        errno = 0;
        CHECK(futex(&w, FUTEX_WAIT_BITSET | priv, 0, NULL, NULL, 0) == -1 && errno == EINVAL);
        struct timespec bad = { 0, -1 };
        errno = 0;
        CHECK(futex(&w, FUTEX_WAIT | priv, 0, &bad, NULL, 0) == -1 && errno == EINVAL);
        CHECK(futex(&w, FUTEX_WAKE | priv, 1, NULL, NULL, 0) == 0);
    }
    ticker_end();
}

/* Three green waiters: a wake of 2 returns 2 and wakes two, the next
 * wake wakes the last; private and shared. */
static void mode_futex_wake(void)
{
    static uint32_t w;
    ticker_start();
    for (int priv = 0; priv <= FUTEX_PRIVATE_FLAG; priv += FUTEX_PRIVATE_FLAG) {
        w = 0;
        pthread_t t[3];
        struct fwait f[3];
        for (int i = 0; i < 3; i++)
            start_waiter(&t[i], &f[i], &w, FUTEX_WAIT | priv, 0, 0);
        /* A wake of the other kind (private/shared) is another futex. */
        CHECK(futex(&w, FUTEX_WAKE | (priv ^ FUTEX_PRIVATE_FLAG), INT_MAX, NULL, NULL, 0) == 0);
        CHECK(count_done(f, 3) == 0);
        CHECK(futex(&w, FUTEX_WAKE | priv, 2, NULL, NULL, 0) == 2);
        sleep_ms(30);
        CHECKF(count_done(f, 3) == 2, "%d woken", count_done(f, 3));
        w = 1;
        CHECK(futex(&w, FUTEX_WAKE | priv, INT_MAX, NULL, NULL, 0) == 1);
        for (int i = 0; i < 3; i++) {
            OK(pthread_join(t[i], NULL));
            CHECK(f[i].result == 0);
        }
        CHECK(futex(&w, FUTEX_WAKE | priv, INT_MAX, NULL, NULL, 0) == 0);
    }
    ticker_end();
}

/* WAIT_BITSET/WAKE_BITSET: a wake reaches only waiters whose bits it
 * shares; FUTEX_WAKE (all bits) any. */
static void mode_futex_bitset(void)
{
    static uint32_t w;
    ticker_start();
    pthread_t t[3];
    struct fwait f[3];
    start_waiter(&t[0], &f[0], &w, FUTEX_WAIT_BITSET_PRIVATE, 0, 0x1);
    start_waiter(&t[1], &f[1], &w, FUTEX_WAIT_BITSET_PRIVATE, 0, 0x2);
    start_waiter(&t[2], &f[2], &w, FUTEX_WAIT_BITSET_PRIVATE, 0, 0x6);
    CHECK(futex(&w, FUTEX_WAKE_BITSET_PRIVATE, INT_MAX, NULL, NULL, 0x8) == 0);
    CHECK(futex(&w, FUTEX_WAKE_BITSET_PRIVATE, INT_MAX, NULL, NULL, 0x2) == 2);
    sleep_ms(30);
    CHECK(!atomic_load(&f[0].done) && atomic_load(&f[1].done) && atomic_load(&f[2].done));
    errno = 0;
    CHECK(futex(&w, FUTEX_WAKE_BITSET_PRIVATE, 1, NULL, NULL, 0) == -1 && errno == EINVAL);
    CHECK(futex(&w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0) == 1);
    for (int i = 0; i < 3; i++) {
        OK(pthread_join(t[i], NULL));
        CHECK(f[i].result == 0);
    }
    ticker_end();
}

/* FUTEX_CMP_REQUEUE: one of three waiters woken, two moved to w2 (the
 * result counts both); w's wake then finds none, w2's the two. A word that
 * changed: EAGAIN, nobody moved. */
static void mode_futex_requeue(void)
{
    static uint32_t w, w2;
    ticker_start();
    pthread_t t[3];
    struct fwait f[3];
    for (int i = 0; i < 3; i++)
        start_waiter(&t[i], &f[i], &w, FUTEX_WAIT_PRIVATE, 0, 0);
    errno = 0;
    CHECK(futex(&w, FUTEX_CMP_REQUEUE_PRIVATE, 1, (const struct timespec *)2L, &w2, 5) == -1 &&
          errno == EAGAIN);
    CHECK(futex(&w, FUTEX_CMP_REQUEUE_PRIVATE, 1, (const struct timespec *)2L, &w2, 0) == 3);
    sleep_ms(30);
    CHECK(count_done(f, 3) == 1);
    CHECK(futex(&w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0) == 0);
    CHECK(futex(&w2, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0) == 2);
    for (int i = 0; i < 3; i++) {
        OK(pthread_join(t[i], NULL));
        CHECK(f[i].result == 0);
    }
    ticker_end();
}

static atomic_int sigusr1_seen;

static void on_sigusr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&sigusr1_seen, 1);
}

static void handle_sigusr1(int flags)
{
    struct sigaction sa = { .sa_handler = on_sigusr1, .sa_flags = flags };
    sigemptyset(&sa.sa_mask);
    OK(sigaction(SIGUSR1, &sa, NULL));
}

/* A handler without SA_RESTART ends an untimed wait with EINTR; with
 * SA_RESTART the wait goes on (the kernel restarts it) until woken; a timed
 * wait ends with EINTR after any handler. */
static void mode_futex_eintr(void)
{
    static uint32_t w;
    static const struct timespec long_ts = { 10, 0 };
    ticker_start();
    pthread_t t;
    struct fwait f;

    handle_sigusr1(0);
    start_waiter(&t, &f, &w, FUTEX_WAIT_PRIVATE, 0, 0);
    OK(pthread_kill(t, SIGUSR1));
    OK(pthread_join(t, NULL));
    CHECKF(f.result == -1 && f.err == EINTR, "untimed, no SA_RESTART: %ld %s", f.result, ename(f.err));

    handle_sigusr1(SA_RESTART);
    start_waiter(&t, &f, &w, FUTEX_WAIT_PRIVATE, 0, 0);
    int seen = atomic_load(&sigusr1_seen);
    OK(pthread_kill(t, SIGUSR1));
    while (atomic_load(&sigusr1_seen) == seen)
        sleep_ms(1);
    sleep_ms(30);
    CHECK(!atomic_load(&f.done));
    CHECK(futex(&w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0) == 1);
    OK(pthread_join(t, NULL));
    CHECKF(f.result == 0, "untimed, SA_RESTART: %ld %s", f.result, ename(f.err));

    f = (struct fwait){ .w = &w, .op = FUTEX_WAIT_PRIVATE, .ts = &long_ts };
    OK(pthread_create(&t, NULL, fwait_main, &f));
    await_waiting(&f, false);
    OK(pthread_kill(t, SIGUSR1));
    OK(pthread_join(t, NULL));
    CHECKF(f.result == -1 && f.err == EINTR, "timed, SA_RESTART: %ld %s", f.result, ename(f.err));
    ticker_end();
}

/* syscall() is no cancellation point: a green thread canceled while in
 * FUTEX_WAIT stays there until woken, then returns normally. */
static void mode_futex_cancel(void)
{
    static uint32_t w;
    ticker_start();
    pthread_t t;
    struct fwait f;
    start_waiter(&t, &f, &w, FUTEX_WAIT_PRIVATE, 0, 0);
    OK(pthread_cancel(t));
    sleep_ms(30);
    CHECK(!atomic_load(&f.done));
    CHECK(futex(&w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0) == 1);
    void *r;
    OK(pthread_join(t, &r));
    CHECK(f.result == 0 && r == NULL);
    ticker_end();
}

/* A kernel thread (glibc's pthread_create, behind corun's back) waits; a
 * green thread's wake reaches it through the kernel and returns 1. */
static void mode_futex_kernel_waiter(void)
{
    static uint32_t w;
    ticker_start();
    pthread_t t;
    struct fwait f = { .w = &w, .op = FUTEX_WAIT_PRIVATE };
    OK(ktest_create(&t, fwait_main, &f));
    await_waiting(&f, true);
    CHECK(futex(&w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0) == 1);
    OK(ktest_join(t));
    CHECK(f.result == 0);
    ticker_end();
}

/* A kernel thread waits first, then a green thread on the same word; a
 * wake of one reaches the kernel thread, as natively (the kernel wakes the
 * longest waiter of equal priority). corun woke only the green thread: a
 * kernel waiter that was corun's own code on that green thread's OS
 * thread (malloc's arena lock, wanted by its park) then waited for good,
 * and the green thread with it. The green one is woken by a second wake
 * if the first did not. */
static void mode_futex_kernel_first(void)
{
    static uint32_t w;
    const struct timespec limit = { 5, 0 };
    pthread_t kt, gt;
    struct fwait kf = { .w = &w, .op = FUTEX_WAIT_PRIVATE, .ts = &limit };
    struct fwait gf = { .w = &w, .op = FUTEX_WAIT_PRIVATE };
    OK(ktest_create(&kt, fwait_main, &kf));
    await_waiting(&kf, true);
    start_waiter(&gt, &gf, &w, FUTEX_WAIT_PRIVATE, 0, 0);
    long r = futex(&w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    CHECKF(r == 1, "a wake of one returned %ld", r);
    OK(ktest_join(kt));
    CHECKF(kf.result == 0, "the kernel thread waiting first was not woken (%ld, errno %d)",
           kf.result, kf.err);
    for (int i = 0; i < 200 && !atomic_load(&gf.done); i++)
        sleep_ms(1);
    if (!atomic_load(&gf.done))
        CHECK(futex(&w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0) >= 0);
    OK(pthread_join(gt, NULL));
    CHECK(gf.result == 0);
}

struct kwake {
    uint32_t *w;
    struct fwait *waiter;
    bool inline_call;
    long result;
};

static void *kwake_main(void *arg)
{
    struct kwake *k = arg;
    await_waiting(k->waiter, false);
    sleep_ms(30);                       /* the waiter's OS thread ticks meanwhile */
    __atomic_store_n(k->w, 1, __ATOMIC_SEQ_CST);
    if (k->inline_call)
        k->result = insn_syscall(SYS_futex, (long)k->w, FUTEX_WAKE_PRIVATE, INT_MAX, 0, 0, 0);
    else
        k->result = futex(k->w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    return NULL;
}

/* A green thread waits (parked: the ticker ticks); a kernel thread's
 * syscall(SYS_futex, FUTEX_WAKE) wakes it and returns 1. */
static void mode_futex_kernel_waker(void)
{
    static uint32_t w;
    ticker_start();
    pthread_t kt;
    struct fwait f = { .w = &w, .op = FUTEX_WAIT_PRIVATE };
    struct kwake k = { .w = &w, .waiter = &f };
    OK(ktest_create(&kt, kwake_main, &k));
    long t0 = atomic_load(&ticks);
    fwait_main(&f);
    TICKED_DURING(t0, "green FUTEX_WAIT woken by a kernel thread");
    OK(ktest_join(kt));
    CHECK(f.result == 0);
    CHECKF(k.result == 1, "the kernel thread's wake returned %ld", k.result);
    ticker_end();
}

/* The same with the kernel thread's own syscall instruction, which corun
 * does not see: the green waiter still returns (its backstop sees the
 * word change) within a second. */
static void mode_futex_inline_wake(void)
{
    static uint32_t w;
    ticker_start();
    pthread_t kt;
    struct fwait f = { .w = &w, .op = FUTEX_WAIT_PRIVATE };
    struct kwake k = { .w = &w, .waiter = &f, .inline_call = true };
    OK(ktest_create(&kt, kwake_main, &k));
    int64_t start = mono_ns();
    long t0 = atomic_load(&ticks);
    while (__atomic_load_n(&w, __ATOMIC_SEQ_CST) == 0)
        fwait_main(&f);                 /* as every futex user: until the word says so */
    CHECK(mono_ns() - start < 1000 * MS);
    TICKED_DURING(t0, "green FUTEX_WAIT, woken unseen");
    OK(ktest_join(kt));
    CHECK(f.result == 0 || f.err == EAGAIN);
    ticker_end();
}

/* ---- io_uring completion waits by number ------------------------------------ */

/* A ring made with the raw calls (no liburing): its fd and mapped queues. */
struct ring {
    int fd;
    unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
};

static bool ring_setup(struct ring *r)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    r->fd = (int)syscall(SYS_io_uring_setup, 8, &p);
    if (r->fd < 0)
        return false;
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                    IORING_OFF_SQ_RING);
    char *cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                    IORING_OFF_CQ_RING);
    r->sqes = mmap(NULL, p.sq_entries * sizeof *r->sqes, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || r->sqes == MAP_FAILED)
        return false;
    r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)(sq + p.sq_off.array);
    r->cq_head = (unsigned *)(cq + p.cq_off.head);
    r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    return true;
}

static void ring_read(struct ring *r, int fd, void *buf, unsigned n, uint64_t tag)
{
    unsigned tail = *r->sq_tail, i = tail & *r->sq_mask;
    struct io_uring_sqe *sqe = &r->sqes[i];
    memset(sqe, 0, sizeof *sqe);
    sqe->opcode = IORING_OP_READ;
    sqe->fd = fd;
    sqe->addr = (uint64_t)(uintptr_t)buf;
    sqe->len = n;
    sqe->off = (uint64_t)-1;            /* the current position: a pipe */
    sqe->user_data = tag;
    r->sq_array[i] = i;
    __atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
}

static bool ring_reap(struct ring *r, struct io_uring_cqe *out)
{
    unsigned head = *r->cq_head;
    if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
        return false;
    *out = r->cqes[head & *r->cq_mask];
    __atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
    return true;
}

static long ring_enter(struct ring *r, unsigned submit, unsigned wait, unsigned flags,
                       const void *arg, size_t argsz)
{
    return syscall(SYS_io_uring_enter, r->fd, submit, wait, flags, arg, argsz);
}

/* A read of an empty pipe submitted and waited for in one io_uring_enter
 * (GETEVENTS, min_complete 1) that another thread satisfies 50 ms later;
 * two reads waited for together (min_complete 2); the EXT_ARG timeout with
 * nothing to complete: ETIME. All parked: the ticker ticks. */
static void mode_uring_wait(void)
{
    struct ring r;
    if (!ring_setup(&r)) {
        printf("io_uring unavailable (%s): nothing to test\n", ename(errno));
        return;
    }
    int p[2];
    make_pipe(p);
    ticker_start();
    char buf[16] = { 0 };
    ring_read(&r, p[0], buf, sizeof buf, 41);
    struct delayed_write d = { p[1], 50, "hello" };
    pthread_t t;
    OK(pthread_create(&t, NULL, write_later, &d));
    long t0 = atomic_load(&ticks);
    CHECK(ring_enter(&r, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) == 1);
    TICKED_DURING(t0, "io_uring_enter GETEVENTS");
    OK(pthread_join(t, NULL));
    struct io_uring_cqe cqe;
    CHECK(ring_reap(&r, &cqe) && cqe.user_data == 41 && cqe.res == 5 && !memcmp(buf, "hello", 5));
    CHECK(!ring_reap(&r, &cqe));

    /* Two reads, one wait for both: the first completes at 30 ms, the
     * second at 60 ms; the call returns once both are there. */
    char b1[4] = { 0 }, b2[4] = { 0 };
    int q[2];
    make_pipe(q);
    ring_read(&r, p[0], b1, 1, 1);
    ring_read(&r, q[0], b2, 1, 2);
    CHECK(ring_enter(&r, 2, 0, 0, NULL, 0) == 2);
    struct delayed_write d1 = { p[1], 30, "a" }, d2 = { q[1], 60, "b" };
    pthread_t t1, t2;
    /* The clock starts before the writers do: an OS thread descheduled
     * between their creation and this read would see less than 60 ms. */
    int64_t start = mono_ns();
    OK(pthread_create(&t1, NULL, write_later, &d1));
    OK(pthread_create(&t2, NULL, write_later, &d2));
    t0 = atomic_load(&ticks);
    CHECK(ring_enter(&r, 0, 2, IORING_ENTER_GETEVENTS, NULL, 0) == 0);
    CHECK(mono_ns() - start >= 50 * MS);
    TICKED_DURING(t0, "io_uring_enter min_complete 2");
    OK(pthread_join(t1, NULL));
    OK(pthread_join(t2, NULL));
    int seen = 0;
    while (ring_reap(&r, &cqe))
        seen |= cqe.res == 1 ? (int)cqe.user_data : 0x10;
    CHECKF(seen == 3, "completions seen: %#x", seen);
    CHECK(b1[0] == 'a' && b2[0] == 'b');

    /* Nothing to complete: the EXT_ARG timeout ends the wait with ETIME. */
    ring_read(&r, p[0], buf, 1, 7);
    struct __kernel_timespec ts = { 0, 30 * MS };
    struct io_uring_getevents_arg ext = { .ts = (uint64_t)(uintptr_t)&ts };
    t0 = atomic_load(&ticks);
    start = mono_ns();
    errno = 0;
    CHECK(ring_enter(&r, 0, 0, 0, NULL, 0) == 0);
    CHECK(ring_enter(&r, 1, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &ext, sizeof ext) == 1);
    errno = 0;
    CHECK(ring_enter(&r, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &ext, sizeof ext) == -1 &&
          errno == ETIME);
    CHECK(mono_ns() - start >= 30 * MS);
    TICKED_DURING(t0, "io_uring_enter timeout");
    CHECK(write(p[1], "z", 1) == 1);
    CHECK(ring_enter(&r, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0) == 0);
    CHECK(ring_reap(&r, &cqe) && cqe.user_data == 7 && cqe.res == 1);
    ticker_end();
    close(r.fd);
    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);
}

struct uring_waiter {
    struct ring *r;
    atomic_bool arrived;
    long result;
    int err;
    atomic_bool returned;
};

static void *uring_wait_main(void *arg)
{
    struct uring_waiter *u = arg;
    atomic_store(&u->arrived, true);
    errno = 0;
    u->result = ring_enter(u->r, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    u->err = errno;
    atomic_store(&u->returned, true);
    return NULL;
}

/* A completion wait ends with EINTR when a handler runs; it is no
 * cancellation point: a canceled waiter stays until its completion comes,
 * and returns normally. */
static void mode_uring_eintr_cancel(void)
{
    struct ring r;
    if (!ring_setup(&r)) {
        printf("io_uring unavailable (%s): nothing to test\n", ename(errno));
        return;
    }
    int p[2];
    make_pipe(p);
    ticker_start();
    handle_sigusr1(0);
    char buf[4];
    ring_read(&r, p[0], buf, 1, 3);
    CHECK(ring_enter(&r, 1, 0, 0, NULL, 0) == 1);
    pthread_t t;
    struct uring_waiter u = { .r = &r };
    OK(pthread_create(&t, NULL, uring_wait_main, &u));
    while (!atomic_load(&u.arrived))
        sleep_ms(1);
    sleep_ms(30);
    OK(pthread_kill(t, SIGUSR1));
    OK(pthread_join(t, NULL));
    CHECKF(u.result == -1 && u.err == EINTR, "after a handler: %ld %s", u.result, ename(u.err));

    u = (struct uring_waiter){ .r = &r };
    OK(pthread_create(&t, NULL, uring_wait_main, &u));
    while (!atomic_load(&u.arrived))
        sleep_ms(1);
    sleep_ms(30);
    OK(pthread_cancel(t));
    /* The others run meanwhile: the ticker ticks within 2 s (no tighter
     * bound: CI once saw 30 ms pass without a tick on a loaded machine). */
    long t0 = atomic_load(&ticks);
    for (int ms = 0; ms < 2000 && atomic_load(&ticks) - t0 < 3; ms++)
        sleep_ms(1);
    TICKED_DURING(t0, "a canceled completion wait");
    CHECK(!atomic_load(&u.returned));
    CHECK(write(p[1], "c", 1) == 1);
    void *res;
    OK(pthread_join(t, &res));
    CHECKF(u.result == 0 && res == NULL, "canceled: %ld %s", u.result, ename(u.err));
    struct io_uring_cqe cqe;
    CHECK(ring_reap(&r, &cqe) && cqe.user_data == 3 && cqe.res == 1);
    ticker_end();
    close(r.fd);
    close(p[0]);
    close(p[1]);
}

static atomic_int sigusr2_seen;

static void on_sigusr2(int sig)
{
    (void)sig;
    atomic_fetch_add(&sigusr2_seen, 1);
}

struct storm_writer {
    int go, data;
};

/* Takes SIGUSR2 (the main thread blocks it): one byte on `data` for each
 * one on `go`, until a 'q'. */
static void *storm_writer_main(void *arg)
{
    struct storm_writer *w = arg;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    OK(pthread_sigmask(SIG_UNBLOCK, &s, NULL));
    char c;
    while (read(w->go, &c, 1) == 1 && c != 'q')
        CHECK(write(w->data, "d", 1) == 1);
    return NULL;
}

/* Waits of a thread that blocks SIGUSR2 while another process sends the
 * process SIGUSR2 without pause: the other thread takes them, and the
 * waits (io_uring completions and poll by number, in turn) never fail
 * EINTR: natively the kernel never interrupts a thread with the signal
 * blocked. Under corun, with both threads on one OS thread, the signals
 * reach that OS thread during the waiter's own zero-timeout looks (ppoll,
 * io_uring_enter); those fail EINTR in the kernel, which was the waiter's
 * result (CI saw it once as pthread_kill's ESRCH in uring_eintr_cancel,
 * whose waiter had returned early). */
static void mode_signal_storm(void)
{
    struct ring r;
    bool have_ring = ring_setup(&r);
    if (!have_ring)
        printf("io_uring unavailable (%s): poll only\n", ename(errno));
    struct sigaction sa = { .sa_handler = on_sigusr2, .sa_flags = SA_RESTART };
    sigemptyset(&sa.sa_mask);
    OK(sigaction(SIGUSR2, &sa, NULL));
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    OK(pthread_sigmask(SIG_BLOCK, &s, NULL));
    int go[2], data[2];
    make_pipe(go);
    make_pipe(data);
    struct storm_writer w = { go[0], data[1] };
    pthread_t t;
    OK(pthread_create(&t, NULL, storm_writer_main, &w));
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        /* Gone with the parent, and never sending to a reused pid. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        while (getppid() == parent)
            if (syscall(SYS_kill, parent, SIGUSR2) != 0)
                break;
        _exit(0);
    }
    CHECK(child > 0);
    int bad[2] = { 0, 0 }, rounds = 0;
    long first_bad[2] = { 0, 0 };
    int first_err[2] = { 0, 0 };
    while (atomic_load(&sigusr2_seen) < 40000 && rounds < 200000) {
        char c = 0;
        int kind = have_ring ? rounds & 1 : 1;
        long n;
        int err;
        bool there;
        if (kind == 0) {
            /* The submission counts, whatever became of the wait: a wait
             * that ended early shows as a completion not there. */
            ring_read(&r, data[0], &c, 1, (uint64_t)rounds);
            CHECK(write(go[1], "g", 1) == 1);
            errno = 0;
            n = ring_enter(&r, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
            err = errno;
            struct io_uring_cqe cqe;
            there = n == 1 && ring_reap(&r, &cqe);
            if (!there)
                while (!ring_reap(&r, &cqe))
                    ring_enter(&r, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0);
            CHECK(cqe.user_data == (uint64_t)rounds && cqe.res == 1 && c == 'd');
        } else {
            CHECK(write(go[1], "g", 1) == 1);
            struct pollfd pf = { .fd = data[0], .events = POLLIN };
            errno = 0;
            n = syscall(SYS_poll, &pf, 1L, -1L);
            err = errno;
            there = n == 1 && (pf.revents & POLLIN);
            CHECK(read(data[0], &c, 1) == 1 && c == 'd');
        }
        if (!there && bad[kind]++ == 0) {
            first_bad[kind] = n;
            first_err[kind] = err;
        }
        rounds++;
    }
    kill(child, SIGKILL);
    CHECK(waitpid(child, NULL, 0) == child);
    CHECKF(bad[0] == 0, "%d of %d io_uring waits returned without their completion, the first %ld %s",
           bad[0], rounds / 2, first_bad[0], ename(first_err[0]));
    CHECKF(bad[1] == 0, "%d of %d polls returned early, the first %ld %s", bad[1], rounds / 2,
           first_bad[1], ename(first_err[1]));
    CHECKF(atomic_load(&sigusr2_seen) > 0, "no SIGUSR2 taken in %d rounds", rounds);
    CHECK(write(go[1], "q", 1) == 1);
    OK(pthread_join(t, NULL));
    OK(pthread_sigmask(SIG_UNBLOCK, &s, NULL));
    if (have_ring)
        close(r.fd);
    close(go[0]);
    close(go[1]);
    close(data[0]);
    close(data[1]);
}

/* Spin without a system call for `ms`: every timer of a parked green
 * thread comes due meanwhile, none is looked at. */
static void spin_ms(long ms)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do
        clock_gettime(CLOCK_MONOTONIC, &b);
    while ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < ms);
}

/* A handler that runs while the waiter is already woken by one of corun's
 * own recheck or backstop timers (runnable behind the sender, not yet
 * running: the spin makes every such timer due and the yield lets the
 * loop look at them) still ends the wait with EINTR, as the kernel's
 * signal does. Natively the waiter is in the kernel all along. CI once saw
 * the io_uring wait go on forever. */
static void mode_eintr_woken(void)
{
    handle_sigusr1(0);
    struct ring r;
    bool have_ring = ring_setup(&r);
    int p[2];
    make_pipe(p);
    char buf[4];
    if (have_ring) {
        ring_read(&r, p[0], buf, 1, 5);
        CHECK(ring_enter(&r, 1, 0, 0, NULL, 0) == 1);
    }
    for (int round = 0; round < 3 && have_ring; round++) {
        pthread_t t;
        struct uring_waiter u = { .r = &r };
        OK(pthread_create(&t, NULL, uring_wait_main, &u));
        while (!atomic_load(&u.arrived))
            sleep_ms(1);
        sleep_ms(2);
        spin_ms(70);
        sched_yield();
        OK(pthread_kill(t, SIGUSR1));
        OK(pthread_join(t, NULL));
        CHECKF(u.result == -1 && u.err == EINTR, "io_uring wait, round %d: %ld %s", round,
               u.result, ename(u.err));
    }
    static uint32_t w;
    static const struct timespec long_ts = { 10, 0 };
    for (int round = 0; round < 3; round++) {
        pthread_t t;
        struct fwait f;
        start_waiter(&t, &f, &w, FUTEX_WAIT_PRIVATE, 0, 0);
        spin_ms(70);
        sched_yield();
        OK(pthread_kill(t, SIGUSR1));
        OK(pthread_join(t, NULL));
        CHECKF(f.result == -1 && f.err == EINTR, "untimed futex wait, round %d: %ld %s", round,
               f.result, ename(f.err));
    }
    for (int round = 0; round < 3; round++) {
        pthread_t t;
        struct fwait f = { .w = &w, .op = FUTEX_WAIT_PRIVATE, .ts = &long_ts };
        OK(pthread_create(&t, NULL, fwait_main, &f));
        await_waiting(&f, false);
        spin_ms(70);
        sched_yield();
        OK(pthread_kill(t, SIGUSR1));
        OK(pthread_join(t, NULL));
        CHECKF(f.result == -1 && f.err == EINTR, "timed futex wait, round %d: %ld %s", round,
               f.result, ename(f.err));
    }
    if (have_ring) {
        CHECK(write(p[1], "w", 1) == 1);
        CHECK(ring_enter(&r, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0) == 0);
        struct io_uring_cqe cqe;
        CHECK(ring_reap(&r, &cqe) && cqe.user_data == 5 && cqe.res == 1 && buf[0] == 'w');
        close(r.fd);
    }
    close(p[0]);
    close(p[1]);
}

/* Bad pointers by number, with a second thread alive (the catch armed
 * under corun): the kernel's EFAULT, never a crash in corun's handling. */
static void *nap_main(void *arg)
{
    (void)arg;
    sleep_ms(50);
    return NULL;
}

static void mode_bad_pointers(void)
{
    pthread_t t;
    OK(pthread_create(&t, NULL, nap_main, NULL));
    void *bad = (void *)8;
    errno = 0;
    CHECK(syscall(SYS_rt_sigaction, SIGUSR1, bad, NULL, 8L) == -1 && errno == EFAULT);
    errno = 0;
    CHECK(syscall(SYS_rt_sigaction, SIGSYS, bad, NULL, 8L) == -1 && errno == EFAULT);
    errno = 0;
    CHECK(syscall(SYS_rt_sigprocmask, SIG_BLOCK, bad, NULL, 8L) == -1 && errno == EFAULT);
    errno = 0;
    CHECK(syscall(SYS_clone3, bad, 88L) == -1 && errno == EFAULT);
    errno = 0;
    CHECK(syscall(SYS_futex, bad, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0) == -1 && errno == EFAULT);
    static uint32_t w;
    errno = 0;
    CHECK(syscall(SYS_futex, &w, FUTEX_WAIT_PRIVATE, 0, bad, NULL, 0) == -1 && errno == EFAULT);
    struct pollfd pf = { .fd = -1 };
    errno = 0;
    CHECK(syscall(SYS_ppoll, &pf, 1L, bad, NULL, 8L) == -1 && errno == EFAULT);
    errno = 0;
    CHECK(syscall(SYS_ppoll, &pf, 1L, NULL, bad, 8L) == -1 && errno == EFAULT);
    errno = 0;
    CHECK(syscall(SYS_pselect6, 0, NULL, NULL, NULL, NULL, bad) == -1 && errno == EFAULT);
    /* The catch is still in force: the SIGSYS action that failed was not
     * the program's taking SIGSYS (corun would say so on stderr). */
    OK(pthread_join(t, NULL));
}

int main(int argc, char **argv)
{
    static const struct pt_mode modes[] = {
        { "raw_read", mode_raw_read },
        { "raw_poll", mode_raw_poll },
        { "raw_sleep_wait", mode_raw_sleep_wait },
        { "raw_hidden_fds", mode_raw_hidden_fds },
        { "futex_basic", mode_futex_basic },
        { "futex_wake", mode_futex_wake },
        { "futex_bitset", mode_futex_bitset },
        { "futex_requeue", mode_futex_requeue },
        { "futex_eintr", mode_futex_eintr },
        { "futex_kernel_waiter", mode_futex_kernel_waiter },
        { "futex_kernel_waker", mode_futex_kernel_waker },
        { "futex_kernel_first", mode_futex_kernel_first },
        { "futex_inline_wake", mode_futex_inline_wake },
        { "uring_wait", mode_uring_wait },
        { "uring_eintr_cancel", mode_uring_eintr_cancel },
        { "signal_storm", mode_signal_storm },
        { "futex_cancel", mode_futex_cancel },
        { "eintr_woken", mode_eintr_woken },
        { "bad_pointers", mode_bad_pointers },
    };
    return pt_main(modes, sizeof modes / sizeof *modes, argc, argv);
}
