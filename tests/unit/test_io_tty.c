/*
 * test_io_tty.c - blocking I/O on a pseudo-terminal (a character device:
 * no per-call non-blocking flag, so corun polls, then calls). A blocking
 * write larger than the tty can take at once must park the writer, not
 * block the OS thread (design note 1: "call with a size the kernel will not
 * block on"), while a reader coroutine drains the other side.
 *
 * If the write does block the thread, nothing else could ever run: an
 * interval timer's handler then drains the reading side with raw system
 * calls so
 * the test ends and reports the failure instead of hanging.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <termios.h>

#include "testutil.h"

TestSuite(io_tty, .timeout = 60);

#define BIG (1u << 20)

static int drain_fd = -1;   /* the reading side, for the rescue */
static volatile sig_atomic_t rescued;   /* bytes the signal handler drained */
static volatile sig_atomic_t in_write;

static void rescue(int sig)
{
    (void)sig;
    if (!in_write || drain_fd < 0)
        return;
    static char sink[65536];
    for (;;) {
        long n = syscall(SYS_read, drain_fd, sink, sizeof sink);
        if (n <= 0)
            break;
        rescued += (int)n;
        if (n < (long)sizeof sink)
            break;
    }
}

static inline unsigned char pat(size_t i)
{
    /* Printable, no newline or CR: the tty is raw, but keep it simple. */
    return (unsigned char)('A' + (i * 7 + i / 251) % 26);
}

struct tw {
    int fd;
    const unsigned char *buf;
    ssize_t r;
    int err;
};

static void *tty_writer(void *arg)
{
    struct tw *w = arg;
    in_write = 1;
    w->r = write(w->fd, w->buf, BIG);
    w->err = errno;
    in_write = 0;
    return NULL;
}

struct trd {
    int fd;
    size_t got;
    int bad;
    size_t bad_at;
    int err;
};

static void *tty_reader(void *arg)
{
    struct trd *r = arg;
    static unsigned char buf[8192];
    while (r->got < BIG) {
        ssize_t n = read(r->fd, buf, sizeof buf);
        if (n <= 0) {
            r->bad = n < 0 ? 2 : 3;
            r->err = errno;
            return NULL;
        }
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pat(r->got + (size_t)i)) {
                r->bad = 1;
                r->bad_at = r->got + (size_t)i;
                return NULL;
            }
        r->got += (size_t)n;
    }
    return NULL;
}

static int ticks;
static volatile int stop;

static void *ticker(void *arg)
{
    (void)arg;
    while (!stop) {
        ticks++;
        corun_sleep(CORUN_MSEC(1));
    }
    return NULL;
}

static int open_raw_pty(int *slave)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0)
        return -1;
    if (grantpt(m) != 0 || unlockpt(m) != 0) {
        close(m);
        return -1;
    }
    char *name = ptsname(m);
    *slave = name ? open(name, O_RDWR | O_NOCTTY) : -1;
    if (*slave < 0) {
        close(m);
        return -1;
    }
    struct termios t;
    cr_assert_eq(tcgetattr(*slave, &t), 0);
    cfmakeraw(&t);
    cr_assert_eq(tcsetattr(*slave, TCSANOW, &t), 0);
    return m;
}

static void big_write_through_pty(int to_slave)
{
    int slave;
    corun_current();
    int m = open_raw_pty(&slave);
    if (m < 0)
        cr_skip_test("no pseudo-terminals here: %s", strerror(errno));
    int wfd = to_slave ? slave : m, rfd = to_slave ? m : slave;
    drain_fd = rfd;
    rescued = 0;
    unsigned char *buf = malloc(BIG);
    cr_assert_not_null(buf);
    for (size_t i = 0; i < BIG; i++)
        buf[i] = pat(i);

    struct sigaction sa = { .sa_handler = rescue, .sa_flags = SA_RESTART };
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGALRM, &sa, NULL), 0);
    struct itimerval it = { .it_interval = { 0, 200000 }, .it_value = { 2, 0 } };
    cr_assert_eq(setitimer(ITIMER_REAL, &it, NULL), 0);

    struct tw w = { .fd = wfd, .buf = buf };
    struct trd r = { .fd = rfd };
    ticks = 0;
    stop = 0;
    corun_t *tk, *wc, *rc;
    OK(corun_spawn(&tk, NULL, ticker, NULL));
    OK(corun_spawn(&wc, NULL, tty_writer, &w));
    OK(corun_spawn(&rc, NULL, tty_reader, &r));
    OK(corun_join(wc, NULL));
    int rescued_now = rescued;
    if (rescued_now && r.got < BIG) {
        /* The rescue ate some bytes: the reader would wait forever. */
        close(rfd);
    }
    OK(corun_join(rc, NULL));
    stop = 1;
    OK(corun_join(tk, NULL));
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &off, NULL);

    cr_assert_eq(rescued_now, 0, "the blocking write to the %s blocked the whole OS thread "
                 "(the signal handler had to drain %d bytes for it to finish)",
                 to_slave ? "pty slave" : "pty master", rescued_now);
    cr_assert_eq(w.r, (ssize_t)BIG, "write returned %zd (%s)", w.r, strerror(w.err));
    cr_assert_eq(r.bad, 0, "reader: failure %d at %zu (%s), got %zu", r.bad, r.bad_at,
                 strerror(r.err), r.got);
    cr_assert_eq(r.got, BIG);
    cr_assert_gt(ticks, 0);
    cr_assert_eq(fcntl(wfd, F_GETFL) & O_NONBLOCK, 0);
    cr_assert_eq(fcntl(rfd, F_GETFL) & O_NONBLOCK, 0);
    close(slave);
    close(m);
    drain_fd = -1;
    free(buf);
}

Test(io_tty, big_write_to_pty_slave_read_concurrently) { big_write_through_pty(1); }
Test(io_tty, big_write_to_pty_master_read_concurrently) { big_write_through_pty(0); }

/* A reader parked on a tty wakes with what was typed, partial as usual. */
static void *typist(void *arg)
{
    int fd = *(int *)arg;
    corun_sleep(CORUN_MSEC(20));
    return IP(write(fd, "typed", 5));
}

Test(io_tty, parked_tty_read_returns_partial)
{
    int slave;
    corun_current();
    int m = open_raw_pty(&slave);
    if (m < 0)
        cr_skip_test("no pseudo-terminals here: %s", strerror(errno));
    corun_t *t;
    OK(corun_spawn(&t, NULL, typist, &m));
    char buf[100];
    int64_t t0 = tu_now();
    ssize_t r = read(slave, buf, sizeof buf);
    cr_assert_geq(tu_now() - t0, CORUN_MSEC(15));
    void *w;
    OK(corun_join(t, &w));
    cr_assert_eq(PI(w), 5);
    cr_assert_eq(r, 5, "read: %zd (%s)", r, strerror(errno));
    cr_assert_eq(memcmp(buf, "typed", 5), 0);
    close(slave);
    close(m);
}
