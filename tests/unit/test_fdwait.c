/*
 * test_fdwait.c - corun_wait_fd with pipes and socketpairs.
 */
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include "testutil.h"

TestSuite(fdwait, .timeout = 30);

static struct tu_log lg;

struct waiter {
    int fd;
    short events;
    int64_t timeout;
    int tag;
    int rc;
    short revents;
};

static void *wait_fd_co(void *arg)
{
    struct waiter *w = arg;
    w->revents = 0;
    tu_log_add(&lg, w->tag);
    w->rc = corun_wait_fd(w->fd, w->events, w->timeout, &w->revents);
    tu_log_add(&lg, w->tag + 1);
    return NULL;
}

struct writer {
    int fd;
    int tag;
    int64_t delay;
};

static void *write_co(void *arg)
{
    struct writer *w = arg;
    if (w->delay)
        corun_sleep(w->delay);
    tu_log_add(&lg, w->tag);
    if (write(w->fd, "x", 1) != 1)
        return IP(1);
    return NULL;
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    cr_assert_neq(fl, -1);
    cr_assert_neq(fcntl(fd, F_SETFL, fl | O_NONBLOCK), -1);
}

/* Fill the socket/pipe fd's send side until it would block. */
static size_t fill(int fd)
{
    static char buf[65536];
    size_t total = 0;
    set_nonblock(fd);
    for (;;) {
        ssize_t n = write(fd, buf, sizeof buf);
        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        cr_assert(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK), "fill: %s",
                  strerror(errno));
        break;
    }
    /* Also fill the last small gap. */
    for (;;) {
        ssize_t n = write(fd, buf, 1);
        if (n == 1) {
            total++;
            continue;
        }
        break;
    }
    return total;
}

static void drain(int fd, size_t n)
{
    static char buf[65536];
    while (n > 0) {
        ssize_t r = read(fd, buf, n < sizeof buf ? n : sizeof buf);
        cr_assert_gt(r, 0, "drain: %s", r < 0 ? strerror(errno) : "EOF");
        n -= (size_t)r;
    }
}

Test(fdwait, pollin_parks_until_writer_runs)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    struct waiter w = { .fd = p[0], .events = POLLIN, .timeout = CORUN_FOREVER, .tag = 10 };
    struct writer wr = { .fd = p[1], .tag = 20 };
    corun_t *a, *b;
    lg.n = 0;
    OK(corun_spawn(&a, NULL, wait_fd_co, &w));
    OK(corun_spawn(&b, NULL, write_co, &wr));
    OK(corun_join(a, NULL));
    OK(corun_join(b, NULL));
    OK(w.rc);
    TU_EXPECT(&lg, 10, 20, 11);
    cr_assert(w.revents & POLLIN, "revents 0x%x", w.revents);
    char c;
    cr_assert_eq(read(p[0], &c, 1), 1);
    close(p[0]);
    close(p[1]);
}

Test(fdwait, pollin_after_delayed_write_with_timeout)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    struct waiter w = { .fd = p[0], .events = POLLIN, .timeout = CORUN_SEC(10), .tag = 10 };
    struct writer wr = { .fd = p[1], .tag = 20, .delay = CORUN_MSEC(20) };
    corun_t *a, *b;
    lg.n = 0;
    OK(corun_spawn(&a, NULL, wait_fd_co, &w));
    OK(corun_spawn(&b, NULL, write_co, &wr));
    int64_t t0 = tu_now();
    OK(corun_join(a, NULL));
    cr_assert_lt(tu_now() - t0, CORUN_SEC(5));
    OK(corun_join(b, NULL));
    OK(w.rc);
    TU_EXPECT(&lg, 10, 20, 11);
    cr_assert(w.revents & POLLIN);
    close(p[0]);
    close(p[1]);
}

Test(fdwait, main_coroutine_can_wait)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    struct writer wr = { .fd = p[1], .tag = 20, .delay = CORUN_MSEC(5) };
    corun_t *b;
    lg.n = 0;
    OK(corun_spawn(&b, NULL, write_co, &wr));
    short rev = 0;
    OK(corun_wait_fd(p[0], POLLIN, CORUN_FOREVER, &rev));
    TU_EXPECT(&lg, 20);
    cr_assert(rev & POLLIN);
    OK(corun_join(b, NULL));
    close(p[0]);
    close(p[1]);
}

Test(fdwait, already_ready_is_immediate)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    short rev = 0;
    /* An empty pipe is writable: no wait needed, even with timeout 0. */
    OK(corun_wait_fd(p[1], POLLOUT, 0, &rev));
    cr_assert(rev & POLLOUT, "revents 0x%x", rev);
    rev = 0;
    int64_t t0 = tu_now();
    OK(corun_wait_fd(p[1], POLLOUT, CORUN_FOREVER, &rev));
    cr_assert(rev & POLLOUT);
    cr_assert_lt(tu_now() - t0, CORUN_SEC(1));
    OK(corun_wait_fd(p[1], POLLOUT, CORUN_SEC(5), NULL)); /* revents may be NULL */

    cr_assert_eq(write(p[1], "y", 1), 1);
    rev = 0;
    OK(corun_wait_fd(p[0], POLLIN, 0, &rev));
    cr_assert(rev & POLLIN);
    /* Only what was asked for (plus error conditions) is reported. */
    cr_assert_eq(rev & POLLOUT, 0);
    close(p[0]);
    close(p[1]);
}

Test(fdwait, timeout_expires)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    short rev = 0;
    int64_t t0 = tu_now();
    FAILS(corun_wait_fd(p[0], POLLIN, CORUN_MSEC(25), &rev), ETIMEDOUT);
    int64_t el = tu_now() - t0;
    cr_assert_geq(el, CORUN_MSEC(25), "wait_fd timed out after %lld ns", (long long)el);
    cr_assert_lt(el, CORUN_SEC(5));
    /* And in a coroutine, while another coroutine runs. */
    struct waiter w = { .fd = p[0], .events = POLLIN, .timeout = CORUN_MSEC(15), .tag = 10 };
    corun_t *a;
    lg.n = 0;
    OK(corun_spawn(&a, NULL, wait_fd_co, &w));
    t0 = tu_now();
    OK(corun_join(a, NULL));
    cr_assert_geq(tu_now() - t0, CORUN_MSEC(15));
    FAILS(w.rc, ETIMEDOUT);
    close(p[0]);
    close(p[1]);
}

Test(fdwait, zero_timeout_not_ready_is_eagain)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    FAILS(corun_wait_fd(p[0], POLLIN, 0, NULL), EAGAIN);
    short rev = 0;
    FAILS(corun_wait_fd(p[0], POLLIN, 0, &rev), EAGAIN);
    /* Still works normally afterwards. */
    cr_assert_eq(write(p[1], "z", 1), 1);
    OK(corun_wait_fd(p[0], POLLIN, 0, &rev));
    cr_assert(rev & POLLIN);
    close(p[0]);
    close(p[1]);
}

Test(fdwait, bad_fds_are_ebadf)
{
    /* Let corun create its scheduler and fd-wait machinery first, so that its
     * own fds do not take the numbers of the pipe closed below. */
    int p[2];
    cr_assert_eq(pipe(p), 0);
    OK(corun_wait_fd(p[1], POLLOUT, 0, NULL));
    close(p[0]);
    close(p[1]);
    cr_assert_eq(pipe(p), 0);
    close(p[0]);
    close(p[1]);
    FAILS(corun_wait_fd(p[0], POLLIN, CORUN_FOREVER, NULL), EBADF);
    FAILS(corun_wait_fd(p[1], POLLOUT, 0, NULL), EBADF);
    FAILS(corun_wait_fd(-1, POLLIN, CORUN_FOREVER, NULL), EBADF);
    FAILS(corun_wait_fd(-42, POLLIN, 0, NULL), EBADF);
    FAILS(corun_wait_fd(1000000, POLLIN, CORUN_MSEC(10), NULL), EBADF);
}

/* The same, but the closed fd is passed to the very first corun call of the
 * process: whatever fds corun opens for itself, a closed fd is EBADF. */
Test(fdwait, closed_fd_in_first_call_is_ebadf)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    close(p[0]);
    close(p[1]);
    FAILS(corun_wait_fd(p[0], POLLIN, CORUN_MSEC(10), NULL), EBADF);
}

Test(fdwait, closed_fd_in_first_wait_is_ebadf)
{
    (void)corun_current();
    int p[2];
    cr_assert_eq(pipe(p), 0);
    close(p[0]);
    close(p[1]);
    FAILS(corun_wait_fd(p[0], POLLIN, CORUN_MSEC(10), NULL), EBADF);
}

Test(fdwait, closed_after_use_is_ebadf)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(write(p[1], "a", 1), 1);
    OK(corun_wait_fd(p[0], POLLIN, CORUN_FOREVER, NULL));
    int fd = p[0];
    close(p[0]);
    FAILS(corun_wait_fd(fd, POLLIN, CORUN_MSEC(10), NULL), EBADF);
    close(p[1]);
}

Test(fdwait, no_events_is_einval)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    FAILS(corun_wait_fd(p[0], 0, CORUN_FOREVER, NULL), EINVAL);
    FAILS(corun_wait_fd(p[1], 0, 0, NULL), EINVAL);
    close(p[0]);
    close(p[1]);
}

/* One fd, two waiters: a reader and a writer on the same socket. */
Test(fdwait, reader_and_writer_on_one_fd)
{
    int s[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
    size_t filled = fill(s[0]); /* s[0] is neither readable nor writable now */
    cr_assert_gt(filled, 0);
    FAILS(corun_wait_fd(s[0], POLLOUT, 0, NULL), EAGAIN);
    FAILS(corun_wait_fd(s[0], POLLIN, 0, NULL), EAGAIN);

    struct waiter rd = { .fd = s[0], .events = POLLIN, .timeout = CORUN_SEC(10), .tag = 10 };
    struct waiter wr = { .fd = s[0], .events = POLLOUT, .timeout = CORUN_SEC(10), .tag = 20 };
    corun_t *a, *b;
    lg.n = 0;
    rd.rc = wr.rc = -1;
    OK(corun_spawn(&a, NULL, wait_fd_co, &rd));
    OK(corun_spawn(&b, NULL, wait_fd_co, &wr));
    corun_yield();
    TU_EXPECT(&lg, 10, 20);

    /* Make s[0] readable: only the reader wakes. */
    cr_assert_eq(write(s[1], "r", 1), 1);
    OK(corun_join(a, NULL));
    OK(rd.rc);
    cr_assert(rd.revents & POLLIN, "reader revents 0x%x", rd.revents);
    corun_yield();
    cr_assert_eq(wr.rc, -1, "writer woke although s[0] is still full (rc %d revents 0x%x)",
                 wr.rc, wr.revents);

    /* Make s[0] writable: the writer wakes. */
    drain(s[1], filled);
    OK(corun_join(b, NULL));
    OK(wr.rc);
    cr_assert(wr.revents & POLLOUT, "writer revents 0x%x", wr.revents);
    TU_EXPECT(&lg, 10, 20, 11, 21);
    close(s[0]);
    close(s[1]);
}

Test(fdwait, reader_and_writer_on_one_fd_woken_together)
{
    int s[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
    size_t filled = fill(s[0]);
    struct waiter rd = { .fd = s[0], .events = POLLIN, .timeout = CORUN_SEC(10), .tag = 10 };
    struct waiter wr = { .fd = s[0], .events = POLLOUT, .timeout = CORUN_SEC(10), .tag = 20 };
    corun_t *a, *b;
    lg.n = 0;
    OK(corun_spawn(&a, NULL, wait_fd_co, &rd));
    OK(corun_spawn(&b, NULL, wait_fd_co, &wr));
    corun_yield();
    cr_assert_eq(write(s[1], "r", 1), 1);
    drain(s[1], filled);
    OK(corun_join(a, NULL));
    OK(corun_join(b, NULL));
    OK(rd.rc);
    OK(wr.rc);
    cr_assert(rd.revents & POLLIN);
    cr_assert(wr.revents & POLLOUT);
    close(s[0]);
    close(s[1]);
}

/* The pipe variant: a reader on the read end and a writer on the full write
 * end, woken by the other side's activity. */
Test(fdwait, full_pipe_writer_and_empty_pipe_reader)
{
    int p[2], q[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(pipe(q), 0);
    size_t filled = fill(p[1]);
    struct waiter wr = { .fd = p[1], .events = POLLOUT, .timeout = CORUN_SEC(10), .tag = 20 };
    struct waiter rd = { .fd = q[0], .events = POLLIN, .timeout = CORUN_SEC(10), .tag = 10 };
    corun_t *a, *b;
    lg.n = 0;
    rd.rc = wr.rc = -1;
    OK(corun_spawn(&b, NULL, wait_fd_co, &wr));
    OK(corun_spawn(&a, NULL, wait_fd_co, &rd));
    corun_yield();
    drain(p[0], filled);
    OK(corun_join(b, NULL));
    OK(wr.rc);
    cr_assert(wr.revents & POLLOUT);
    cr_assert_eq(rd.rc, -1);
    cr_assert_eq(write(q[1], "x", 1), 1);
    OK(corun_join(a, NULL));
    OK(rd.rc);
    cr_assert(rd.revents & POLLIN);
    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);
}

/* Two readers of one fd: both are told it is readable (as poll(2) would). */
Test(fdwait, two_readers_on_one_fd_both_woken)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    struct waiter w1 = { .fd = p[0], .events = POLLIN, .timeout = CORUN_SEC(10), .tag = 10 };
    struct waiter w2 = { .fd = p[0], .events = POLLIN, .timeout = CORUN_SEC(10), .tag = 20 };
    corun_t *a, *b;
    lg.n = 0;
    OK(corun_spawn(&a, NULL, wait_fd_co, &w1));
    OK(corun_spawn(&b, NULL, wait_fd_co, &w2));
    corun_yield();
    cr_assert_eq(write(p[1], "x", 1), 1);
    OK(corun_join(a, NULL));
    OK(corun_join(b, NULL));
    OK(w1.rc);
    OK(w2.rc);
    cr_assert(w1.revents & POLLIN);
    cr_assert(w2.revents & POLLIN);
    close(p[0]);
    close(p[1]);
}

Test(fdwait, pollhup_when_write_end_closes)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    struct waiter w = { .fd = p[0], .events = POLLIN, .timeout = CORUN_SEC(10), .tag = 10 };
    corun_t *a;
    lg.n = 0;
    OK(corun_spawn(&a, NULL, wait_fd_co, &w));
    corun_yield();
    TU_EXPECT(&lg, 10);
    close(p[1]);
    OK(corun_join(a, NULL));
    OK(w.rc);
    cr_assert(w.revents & POLLHUP, "revents 0x%x lacks POLLHUP", w.revents);
    /* Already hung up: reported at once. */
    short rev = 0;
    OK(corun_wait_fd(p[0], POLLIN, 0, &rev));
    cr_assert(rev & POLLHUP);
    close(p[0]);
}

Test(fdwait, pollerr_when_read_end_closes)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    size_t filled = fill(p[1]);
    (void)filled;
    struct waiter w = { .fd = p[1], .events = POLLOUT, .timeout = CORUN_SEC(10), .tag = 10 };
    corun_t *a;
    lg.n = 0;
    OK(corun_spawn(&a, NULL, wait_fd_co, &w));
    corun_yield();
    TU_EXPECT(&lg, 10);
    close(p[0]);
    OK(corun_join(a, NULL));
    OK(w.rc);
    cr_assert(w.revents & POLLERR, "revents 0x%x lacks POLLERR", w.revents);
    close(p[1]);
}

Test(fdwait, both_events_reports_what_is_ready)
{
    int s[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
    short rev = 0;
    OK(corun_wait_fd(s[0], POLLIN | POLLOUT, 0, &rev));
    cr_assert(rev & POLLOUT);
    cr_assert_eq(rev & POLLIN, 0, "revents 0x%x: POLLIN without data", rev);
    cr_assert_eq(write(s[1], "a", 1), 1);
    rev = 0;
    OK(corun_wait_fd(s[0], POLLIN | POLLOUT, CORUN_FOREVER, &rev));
    cr_assert_eq(rev & (POLLIN | POLLOUT), POLLIN | POLLOUT, "revents 0x%x", rev);
    close(s[0]);
    close(s[1]);
}

/* A new fd that reuses the number of a closed, previously waited-on fd must
 * not inherit stale readiness or registrations. */
Test(fdwait, reused_fd_number_starts_fresh)
{
    for (int round = 0; round < 20; round++) {
        int p[2];
        cr_assert_eq(pipe(p), 0);
        FAILS(corun_wait_fd(p[0], POLLIN, 0, NULL), EAGAIN);
        struct waiter w = { .fd = p[0], .events = POLLIN, .timeout = CORUN_SEC(2),
                            .tag = 10 };
        struct writer wr = { .fd = p[1], .tag = 20, .delay = CORUN_MSEC(1) };
        corun_t *a, *b;
        lg.n = 0;
        OK(corun_spawn(&a, NULL, wait_fd_co, &w));
        OK(corun_spawn(&b, NULL, write_co, &wr));
        OK(corun_join(a, NULL));
        OK(corun_join(b, NULL));
        cr_assert_eq(w.rc, 0, "round %d (fd %d): wait returned %d (%s)", round, p[0], w.rc,
                     strerror(w.rc));
        TU_EXPECT(&lg, 10, 20, 11);
        cr_assert(w.revents & POLLIN);
        close(p[0]);
        close(p[1]);
    }
}

Test(fdwait, many_fds_many_waiters)
{
    enum { N = 100 };
    int p[N][2];
    struct waiter w[N];
    corun_t *c[N];
    lg.n = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(pipe(p[i]), 0);
        w[i] = (struct waiter){ .fd = p[i][0], .events = POLLIN, .timeout = CORUN_SEC(10),
                                .tag = 0, .rc = -1 };
        OK(corun_spawn(&c[i], NULL, wait_fd_co, &w[i]));
    }
    corun_yield();
    for (int i = N - 1; i >= 0; i--)
        cr_assert_eq(write(p[i][1], "x", 1), 1);
    for (int i = 0; i < N; i++) {
        OK(corun_join(c[i], NULL));
        OK(w[i].rc);
        cr_assert(w[i].revents & POLLIN);
    }
    for (int i = 0; i < N; i++) {
        close(p[i][0]);
        close(p[i][1]);
    }
}

/* poll(2) reports regular files as always ready; so must corun_wait_fd. */
Test(fdwait, regular_file_is_always_ready)
{
    char path[] = "/tmp/corun-test-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_neq(fd, -1);
    unlink(path);
    short rev = 0;
    OK(corun_wait_fd(fd, POLLIN | POLLOUT, CORUN_SEC(5), &rev));
    cr_assert_eq(rev & (POLLIN | POLLOUT), POLLIN | POLLOUT, "revents 0x%x", rev);
    rev = 0;
    OK(corun_wait_fd(fd, POLLIN, 0, &rev));
    cr_assert(rev & POLLIN);
    close(fd);
}
