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
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "pt_common.h"

/* The raw system call instruction, which no hook sees: how the test looks
 * at the kernel's own view. */
static long inline_syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    long r;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "0"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return r;
}

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

/* A blocking call of about `ms` must see the ticker tick: more than 2
 * ticks (natively the ticker is its own OS thread; under corun it runs only
 * if the call parked). */
#define TICKED_DURING(t0, what) \
    CHECKF(atomic_load(&ticks) - (t0) > 2, "%s: only %ld ticks", what, atomic_load(&ticks) - (t0))

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

    CHECK(syscall(SYS_write, p[1], "abc", 3) == 3);
    struct iovec wv[2] = { { "de", 2 }, { "fgh", 3 } };
    CHECK(syscall(SYS_writev, p[1], wv, 2) == 5);
    char x[3], y[5];
    struct iovec rv[2] = { { x, 3 }, { y, 5 } };
    CHECK(syscall(SYS_readv, p[0], rv, 2) == 8);
    CHECK(!memcmp(x, "abc", 3) && !memcmp(y, "defgh", 5));
    errno = 0;
    CHECK(syscall(SYS_pread64, p[0], buf, 1, 0L) == -1 && errno == ESPIPE);
    errno = 0;
    CHECK(syscall(SYS_read, -1, buf, 1) == -1 && errno == EBADF);

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
    CHECK(syscall(SYS_poll, &pf, 1, 30) == 0);
    TICKED_DURING(t0, "SYS_poll");

    /* The raw ppoll writes the time left back (0 after a timeout). */
    struct timespec ts = { 0, 30 * MS };
    t0 = atomic_load(&ticks);
    CHECK(syscall(SYS_ppoll, &pf, 1, &ts, NULL, 8) == 0);
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
    CHECK(syscall(SYS_ppoll, &pf, 1, &ts, &none, 8) == 1 && (pf.revents & POLLIN));
    TICKED_DURING(t0, "SYS_ppoll with a mask");
    CHECKF(ts.tv_sec >= 3 && ts.tv_sec < 5, "ppoll left %ld.%09ld", (long)ts.tv_sec, ts.tv_nsec);
    OK(pthread_join(t, NULL));
    char c;
    CHECK(read(p[0], &c, 1) == 1);

    /* A sigset size the kernel refuses. */
    errno = 0;
    CHECK(syscall(SYS_ppoll, &pf, 1, &ts, &none, 128) == -1 && errno == EINVAL);

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
    CHECK(syscall(SYS_epoll_pwait, ep, &ev, 1, 5000, &none, 8) == 1 && ev.data.u64 == 7);
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

static void mode_raw_hidden_fds(void)
{
    ticker_start();                    /* a running scheduler: its epoll set exists */
    sleep_ms(5);
    int hidden = 0;
    for (int fd = 3; fd < 1024; fd++) {
        bool open_in_kernel = inline_syscall(SYS_fcntl, fd, F_GETFD, 0, 0, 0, 0) >= 0;
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
        CHECKF(inline_syscall(SYS_fcntl, fd, F_GETFD, 0, 0, 0, 0) >= 0, "fd %d was closed", fd);
    }
    ticker_end();
    if (green())
        CHECKF(hidden > 0, "no fd of corun's found");
    int p[2];
    make_pipe(p);
    CHECK(syscall(SYS_close, p[1]) == 0);
    char c;
    CHECK(syscall(SYS_read, p[0], &c, 1) == 0);   /* end of file: the write end is gone */
    close(p[0]);
}

int main(int argc, char **argv)
{
    static const struct pt_mode modes[] = {
        { "raw_read", mode_raw_read },
        { "raw_poll", mode_raw_poll },
        { "raw_sleep_wait", mode_raw_sleep_wait },
        { "raw_hidden_fds", mode_raw_hidden_fds },
    };
    return pt_main(modes, sizeof modes / sizeof *modes, argc, argv);
}
