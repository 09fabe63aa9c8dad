/*
 * pt_wait.c - a plain pthread program (not linked with corun) checking the
 * waiting calls against what glibc and the kernel do: poll, ppoll, select,
 * pselect, epoll_wait, epoll_pwait, epoll_pwait2, sleep, usleep, nanosleep,
 * clock_nanosleep and sched_yield. Run as `pt_wait MODE` by
 * test_wait_green.c three ways (green, native threads under the preload,
 * and without corun), with the same expectations each way.
 *
 * Most modes keep a second thread alive (the "ticker", which counts 1 ms
 * sleeps): a lone green thread makes the real blocking call, so without it
 * the green runs would not exercise corun's parking at all. The ticker's
 * count also shows whether a call parked: it advances while the caller
 * waits (in every mode), and cannot advance during a call that must not
 * park (green mode only: native threads run in parallel).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>

#include "pt_common.h"

/* A waiting call parked: the ticker kept running during it (it sleeps 1 ms
 * per tick; 5 ticks during a wait of 100 ms or more is a generous bound).
 * Asked of green threads only: kernel threads run whatever the wait does,
 * and a loaded machine may leave a native ticker unscheduled for 100 ms. */
static int green_mode = -1;
#define PARKED(t0)                                                                              \
    do {                                                                                        \
        if (green_mode < 0)                                                                     \
            green_mode = green();                                                               \
        CHECKF(!green_mode || atomic_load(&ticks) - (t0) >= 5,                                  \
               "the other thread did not run: %ld ticks", atomic_load(&ticks) - (t0));          \
    } while (0)

/* ---- helpers ----------------------------------------------------------------*/

/* Run fn(arg) on a new thread after `ms` milliseconds. */
struct later {
    pthread_t th;
    int ms;
    void (*fn)(void *);
    void *arg;
};

static void *later_main(void *p)
{
    struct later *l = p;
    struct timespec ts = { l->ms / 1000, (long)(l->ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
    l->fn(l->arg);
    return NULL;
}

static struct later *after_ms(int ms, void (*fn)(void *), void *arg)
{
    struct later *l = calloc(1, sizeof *l);
    *l = (struct later){ .ms = ms, .fn = fn, .arg = arg };
    OK(pthread_create(&l->th, NULL, later_main, l));
    return l;
}

static void later_join(struct later *l)
{
    OK(pthread_join(l->th, NULL));
    free(l);
}

static void do_close(void *fd) { CHECK(close((int)(intptr_t)fd) == 0); }
static void do_write(void *fd) { CHECK(write((int)(intptr_t)fd, "w", 1) == 1); }
static void do_shut_wr(void *fd) { CHECK(shutdown((int)(intptr_t)fd, SHUT_WR) == 0); }
static void do_oob(void *fd) { CHECK(send((int)(intptr_t)fd, "!", 1, MSG_OOB) == 1); }
/* A write the program does with a raw system call (corun never sees it). */
static void do_raw_write(void *fd) { CHECK(syscall(SYS_write, (int)(intptr_t)fd, "r", 1) == 1); }

static void make_pipe(int p[2])
{
    if (pipe(p) != 0) {
        perror("pipe");
        exit(3);
    }
}

/* A pipe whose buffer is full (no room for a write). */
static void fill_pipe(int wfd)
{
    int fl = fcntl(wfd, F_GETFL);
    CHECK(fcntl(wfd, F_SETFL, fl | O_NONBLOCK) == 0);
    char buf[4096] = { 0 };
    while (write(wfd, buf, sizeof buf) > 0)
        ;
    CHECK(errno == EAGAIN);
    CHECK(fcntl(wfd, F_SETFL, fl) == 0);
}

/* A connected TCP pair on 127.0.0.1 (for urgent data: POLLPRI). */
static void tcp_pair(int *client, int *server)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(l, 1) == 0);
    CHECK(getsockname(l, (struct sockaddr *)&a, &len) == 0);
    *client = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(*client, (struct sockaddr *)&a, sizeof a) == 0);
    *server = accept(l, NULL, NULL);
    CHECK(*server >= 0);
    close(l);
}

static int64_t ms_since(int64_t t0)
{
    return (mono_ns() - t0) / MS;
}

/* An fd number that is certainly not open (and not soon reused: the
 * kernel hands out the lowest free number). */
static int closed_fd(void)
{
    for (int fd = 900; fd < FD_SETSIZE; fd++)
        if (fcntl(fd, F_GETFD) == -1 && errno == EBADF)
            return fd;
    fprintf(stderr, "no free fd number in 900..%d\n", FD_SETSIZE);
    exit(3);
}

/* A closed fd number inside the fd table (select ignores numbers beyond
 * the table): valid until the next fd is made. */
static int just_closed_fd(void)
{
    int p[2];
    make_pipe(p);
    close(p[0]);
    close(p[1]);
    return p[0];
}

/* The fds set in *s below nfds, as "3 5 7". */
static const char *set_str(const fd_set *s, int nfds)
{
    static char buf[4][256];
    static int k;
    char *b = buf[k++ % 4];
    b[0] = '\0';
    for (int fd = 0; fd < nfds; fd++)
        if (FD_ISSET(fd, s))
            snprintf(b + strlen(b), 256 - strlen(b), "%s%d", b[0] ? " " : "", fd);
    return b;
}

static const char *fds_str(int a, int b, int c)
{
    static char buf[4][64];
    static int k;
    char *s = buf[k++ % 4];
    if (c >= 0)
        snprintf(s, 64, "%d %d %d", a, b, c);
    else if (b >= 0)
        snprintf(s, 64, "%d %d", a, b);
    else
        snprintf(s, 64, "%d", a);
    return s;
}

#define SET_IS(set, nfds, want) \
    CHECKF(!strcmp(set_str(set, nfds), want), #set " holds {%s}, expected {%s}", set_str(set, nfds), want)

#define REVENTS(pfd, want) \
    CHECKF((pfd).revents == (want), #pfd ".revents 0x%x, expected 0x%x (" #want ")", (pfd).revents, (want))

/* ---- zero timeouts never park -------------------------------------------------- */

static void m_zero_timeout(void)
{
    ticker_start();
    int p[2], ready[2];
    make_pipe(p);
    make_pipe(ready);
    CHECK(write(ready[1], "x", 1) == 1);
    int ep = epoll_create1(0), ready_ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 42 };
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0);
    CHECK(epoll_ctl(ready_ep, EPOLL_CTL_ADD, ready[0], &ev) == 0);
    struct timespec zero = { 0, 0 };

    /* Something ready: the answer at once. */
    int64_t start = mono_ns();
    for (int i = 0; i < 200; i++) {
        struct pollfd pr = { .fd = ready[0], .events = POLLIN };
        CHECK(poll(&pr, 1, 0) == 1 && pr.revents == POLLIN);
        CHECK(ppoll(&pr, 1, &zero, NULL) == 1 && pr.revents == POLLIN);
        fd_set r;
        FD_ZERO(&r);
        FD_SET(ready[0], &r);
        struct timeval tv = { 0, 0 };
        CHECK(select(ready[0] + 1, &r, NULL, NULL, &tv) == 1);
        SET_IS(&r, ready[0] + 1, fds_str(ready[0], -1, -1));
        CHECK(pselect(ready[0] + 1, &r, NULL, NULL, &zero, NULL) == 1);
        struct epoll_event out[4];
        CHECK(epoll_wait(ready_ep, out, 4, 0) == 1 && out[0].data.u64 == 42);
        CHECK(epoll_pwait(ready_ep, out, 4, 0, NULL) == 1);
        CHECK(epoll_pwait2(ready_ep, out, 4, &zero, NULL) == 1);
    }

    /* Nothing ready: 0 at once (the other threads may run: see
     * zero_spin_*). */
    for (int i = 0; i < 200; i++) {
        struct pollfd pf = { .fd = p[0], .events = POLLIN };
        CHECK(poll(&pf, 1, 0) == 0 && pf.revents == 0);
        CHECK(ppoll(&pf, 1, &zero, NULL) == 0 && pf.revents == 0);

        fd_set r;
        FD_ZERO(&r);
        FD_SET(p[0], &r);
        struct timeval tv = { 0, 0 };
        CHECK(select(p[0] + 1, &r, NULL, NULL, &tv) == 0);
        SET_IS(&r, p[0] + 1, "");
        FD_SET(p[0], &r);
        CHECK(pselect(p[0] + 1, &r, NULL, NULL, &zero, NULL) == 0);

        struct epoll_event out[4];
        CHECK(epoll_wait(ep, out, 4, 0) == 0);
        CHECK(epoll_pwait(ep, out, 4, 0, NULL) == 0);
        CHECK(epoll_pwait2(ep, out, 4, &zero, NULL) == 0);
    }
    /* 2,800 non-blocking calls: far below a second even under a sanitizer. */
    CHECKF(ms_since(start) < 2000, "zero-timeout calls took %lld ms", (long long)ms_since(start));
    close(ep);
    close(ready_ep);
    ticker_end();
}

/* ---- a thread spinning on zero timeouts lets the others run ------------------------ */

enum spin_call { Z_POLL, Z_PPOLL, Z_SELECT, Z_PSELECT, Z_EPOLL_WAIT, Z_EPOLL_PWAIT, Z_EPOLL_PWAIT2,
                 Z_SCHED_YIELD, Z_CALLS };
static const char *const spin_name[] = { "poll", "ppoll", "select", "pselect", "epoll_wait",
                                         "epoll_pwait", "epoll_pwait2", "sched_yield" };

/* What the other thread waits for before it sets the flag. */
enum spin_other { O_RUNNABLE, O_SLEEP, O_PIPE };

static atomic_bool spin_flag;
static int spin_pipe[2];

static void *spin_other_main(void *arg)
{
    enum spin_other how = (enum spin_other)(intptr_t)arg;
    if (how == O_SLEEP) {
        struct timespec ts = { 0, 20 * MS };
        nanosleep(&ts, NULL);
    } else if (how == O_PIPE) {
        char c;
        CHECK(read(spin_pipe[0], &c, 1) == 1);
    }
    atomic_store(&spin_flag, true);
    return NULL;
}

/* One call: with a zero timeout on an fd that never becomes ready (0), or
 * (`ready`) with a timeout of 1 s on one that always is (1, at once). */
static void spin_once(enum spin_call call, int fd, int ep, bool ready)
{
    struct timespec ts = { ready ? 1 : 0, 0 };
    int ms = ready ? 1000 : 0, want = ready ? 1 : 0;
    struct pollfd pf = { .fd = fd, .events = POLLIN };
    struct epoll_event out[4];
    fd_set r;
    FD_ZERO(&r);
    FD_SET(fd, &r);
    struct timeval tv = { ready ? 1 : 0, 0 };
    switch (call) {
    case Z_POLL: CHECK(poll(&pf, 1, ms) == want); break;
    case Z_PPOLL: CHECK(ppoll(&pf, 1, &ts, NULL) == want); break;
    case Z_SELECT: CHECK(select(fd + 1, &r, NULL, NULL, &tv) == want); break;
    case Z_PSELECT: CHECK(pselect(fd + 1, &r, NULL, NULL, &ts, NULL) == want); break;
    case Z_EPOLL_WAIT: CHECK(epoll_wait(ep, out, 4, ms) == want); break;
    case Z_EPOLL_PWAIT: CHECK(epoll_pwait(ep, out, 4, ms, NULL) == want); break;
    case Z_EPOLL_PWAIT2: CHECK(epoll_pwait2(ep, out, 4, &ts, NULL) == want); break;
    case Z_SCHED_YIELD: CHECK(sched_yield() == 0); break;
    default: break;
    }
}

/* Each call in a loop until the other thread (runnable, asleep, or
 * waiting on a pipe this thread writes) sets a flag: in green mode the
 * loop must let it run, or it never does (bounded here at 2 s). `ready`:
 * the calls have a timeout but find their fd ready at once (a level-
 * triggered event the program never consumes), so they never wait. */
static void zero_spin(enum spin_other how, bool ready)
{
    int idle[2];
    make_pipe(idle);
    if (ready)
        CHECK(write(idle[1], "x", 1) == 1);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN };
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, idle[0], &ev) == 0);
    for (int c = 0; c < Z_CALLS; c++) {
        make_pipe(spin_pipe);
        atomic_store(&spin_flag, false);
        pthread_t th;
        OK(pthread_create(&th, NULL, spin_other_main, (void *)(intptr_t)how));
        if (how == O_PIPE) {
            /* Let it block in read first (natively as well: a short sleep). */
            struct timespec ts = { 0, 5 * MS };
            nanosleep(&ts, NULL);
            CHECK(write(spin_pipe[1], "x", 1) == 1);
        }
        int64_t t = mono_ns();
        long spins = 0;
        while (!atomic_load(&spin_flag) && ms_since(t) < 2000) {
            spin_once((enum spin_call)c, idle[0], ep, ready);
            spins++;
        }
        CHECKF(atomic_load(&spin_flag), "%s(%s) spun %ld times for 2 s: the other thread never ran",
               spin_name[c], ready ? "ready fd" : "0", spins);
        OK(pthread_join(th, NULL));
        close(spin_pipe[0]);
        close(spin_pipe[1]);
    }
    close(ep);
    close(idle[0]);
    close(idle[1]);
    note_tasks();
}

static void m_zero_spin_runnable(void) { zero_spin(O_RUNNABLE, false); }
static void m_zero_spin_sleeper(void) { zero_spin(O_SLEEP, false); }
static void m_zero_spin_reader(void) { zero_spin(O_PIPE, false); }
static void m_ready_spin_runnable(void) { zero_spin(O_RUNNABLE, true); }
static void m_ready_spin_sleeper(void) { zero_spin(O_SLEEP, true); }
static void m_ready_spin_reader(void) { zero_spin(O_PIPE, true); }

/* ---- poll: revents ----------------------------------------------------------------*/

static void m_poll_revents(void)
{
    ticker_start();
    int data[2], empty[2], hup[2], err[2], nval = closed_fd();
    make_pipe(data);
    make_pipe(empty);
    make_pipe(hup);
    make_pipe(err);
    CHECK(write(data[1], "x", 1) == 1);
    close(hup[1]);
    close(err[0]);
    int sp[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
    CHECK(shutdown(sp[1], SHUT_WR) == 0);

    struct pollfd f[] = {
        { .fd = data[0], .events = POLLIN },
        { .fd = empty[0], .events = POLLIN },
        { .fd = empty[1], .events = POLLOUT },
        { .fd = hup[0], .events = POLLIN },
        { .fd = err[1], .events = POLLOUT },
        { .fd = nval, .events = POLLIN },
        { .fd = -1, .events = POLLIN },            /* ignored */
        { .fd = sp[0], .events = POLLIN | POLLRDHUP },
        { .fd = data[0], .events = 0 },            /* nothing asked: nothing told */
    };
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        f[i].revents = 0x5a5a & ~f[i].events;      /* must be overwritten */
    int n = poll(f, sizeof f / sizeof *f, 5000);
    CHECKF(n == 6, "poll returned %d, expected 6", n);
    REVENTS(f[0], POLLIN);
    REVENTS(f[1], 0);
    REVENTS(f[2], POLLOUT);
    REVENTS(f[3], POLLHUP);
    REVENTS(f[4], POLLOUT | POLLERR);
    REVENTS(f[5], POLLNVAL);
    REVENTS(f[6], 0);
    REVENTS(f[7], POLLIN | POLLRDHUP);
    REVENTS(f[8], 0);

    /* Only invalid fds: POLLNVAL at once, whatever the timeout. */
    struct pollfd bad = { .fd = nval, .events = POLLIN };
    int64_t t = mono_ns();
    CHECK(poll(&bad, 1, 5000) == 1);
    REVENTS(bad, POLLNVAL);
    CHECK(ms_since(t) < 2000);
    /* Nothing but ignored entries: a plain timeout. */
    struct pollfd none = { .fd = -1, .events = POLLIN };
    t = mono_ns();
    long t0 = atomic_load(&ticks);
    CHECK(poll(&none, 1, 100) == 0);
    CHECKF(ms_since(t) >= 100, "poll(-1 fd, 100 ms) returned after %lld ms", (long long)ms_since(t));
    PARKED(t0);
    struct pollfd *volatile nowhere = NULL;   /* hidden from the compiler's checks */
    FAILS_ERRNO(poll(nowhere, 1, 0), EFAULT);
    FAILS_ERRNO(poll(nowhere, 1, 100), EFAULT);
    ticker_end();
}

/* The events arrive while poll is waiting. */
static void m_poll_wakeups(void)
{
    ticker_start();
    int p[2];
    make_pipe(p);
    struct later *l = after_ms(100, do_write, IP(p[1]));
    struct pollfd f[2] = { { .fd = p[0], .events = POLLIN }, { .fd = p[1], .events = 0 } };
    long t0 = atomic_load(&ticks);
    CHECK(poll(f, 2, 10000) == 1);
    REVENTS(f[0], POLLIN);
    REVENTS(f[1], 0);
    PARKED(t0);
    later_join(l);

    /* The writer goes away: POLLHUP. */
    char c;
    CHECK(read(p[0], &c, 1) == 1);
    l = after_ms(100, do_close, IP(p[1]));
    struct pollfd h = { .fd = p[0], .events = POLLIN };
    t0 = atomic_load(&ticks);
    CHECK(ppoll(&h, 1, &(struct timespec){ 10, 0 }, NULL) == 1);
    REVENTS(h, POLLHUP);
    PARKED(t0);
    later_join(l);
    close(p[0]);

    /* The reader goes away from under a writer waiting on a full pipe: POLLERR. */
    make_pipe(p);
    fill_pipe(p[1]);
    l = after_ms(100, do_close, IP(p[0]));
    struct pollfd e = { .fd = p[1], .events = POLLOUT };
    t0 = atomic_load(&ticks);
    CHECK(poll(&e, 1, 10000) == 1);
    REVENTS(e, POLLERR);
    PARKED(t0);
    later_join(l);
    close(p[1]);

    /* The peer shuts down its side: POLLIN | POLLRDHUP. */
    int sp[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
    l = after_ms(100, do_shut_wr, IP(sp[1]));
    struct pollfd r = { .fd = sp[0], .events = POLLIN | POLLRDHUP };
    t0 = atomic_load(&ticks);
    CHECK(poll(&r, 1, 10000) == 1);
    REVENTS(r, POLLIN | POLLRDHUP);
    PARKED(t0);
    later_join(l);

    /* Urgent data on TCP: POLLPRI. */
    int cl, sv;
    tcp_pair(&cl, &sv);
    l = after_ms(100, do_oob, IP(cl));
    struct pollfd u = { .fd = sv, .events = POLLPRI };
    t0 = atomic_load(&ticks);
    CHECK(poll(&u, 1, 10000) == 1);
    REVENTS(u, POLLPRI);
    PARKED(t0);
    later_join(l);
    close(cl);
    close(sv);

    /* A timeout: 0, revents cleared, not early. */
    make_pipe(p);
    struct pollfd q = { .fd = p[0], .events = POLLIN, .revents = POLLHUP };
    int64_t t = mono_ns();
    t0 = atomic_load(&ticks);
    CHECK(poll(&q, 1, 150) == 0);
    REVENTS(q, 0);
    CHECKF(ms_since(t) >= 150, "poll(150 ms) timed out after %lld ms", (long long)ms_since(t));
    CHECKF(ms_since(t) < 5000, "poll(150 ms) timed out after %lld ms", (long long)ms_since(t));
    PARKED(t0);
    t = mono_ns();
    CHECK(ppoll(&q, 1, &(struct timespec){ 0, 150000000 }, NULL) == 0);
    CHECKF(ms_since(t) >= 150, "ppoll(150 ms) timed out after %lld ms", (long long)ms_since(t));
    /* Invalid timeouts are the kernel's to refuse. */
    FAILS_ERRNO(ppoll(&q, 1, &(struct timespec){ 0, 1000000000 }, NULL), EINVAL);
    FAILS_ERRNO(ppoll(&q, 1, &(struct timespec){ -1, 0 }, NULL), EINVAL);
    ticker_end();
}

/* ---- select -------------------------------------------------------------------*/

static void m_select_sets(void)
{
    ticker_start();
    int data[2], empty[2], hup[2], full[2];
    make_pipe(data);
    make_pipe(empty);
    make_pipe(hup);
    make_pipe(full);
    CHECK(write(data[1], "x", 1) == 1);
    close(hup[1]);
    fill_pipe(full[1]);
    int cl, sv;
    tcp_pair(&cl, &sv);
    CHECK(send(cl, "!", 1, MSG_OOB) == 1);
    int nfds = 0;
    int all[] = { data[0], empty[0], hup[0], empty[1], full[1], sv, cl };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (all[i] >= nfds)
            nfds = all[i] + 1;

    fd_set r, w, e;
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_ZERO(&e);
    FD_SET(data[0], &r);
    FD_SET(empty[0], &r);
    FD_SET(hup[0], &r);
    FD_SET(empty[1], &w);
    FD_SET(full[1], &w);
    FD_SET(sv, &e);
    FD_SET(cl, &e);
    struct timeval tv = { 10, 0 };
    int n = select(nfds, &r, &w, &e, &tv);
    CHECKF(n == 4, "select returned %d, expected 4", n);
    SET_IS(&r, nfds, data[0] < hup[0] ? fds_str(data[0], hup[0], -1) : fds_str(hup[0], data[0], -1));
    SET_IS(&w, nfds, fds_str(empty[1], -1, -1));
    SET_IS(&e, nfds, fds_str(sv, -1, -1));
    /* Linux writes back the time left. */
    CHECKF(tv.tv_sec >= 8 && tv.tv_sec <= 10, "select left tv = %ld.%06ld", (long)tv.tv_sec,
           (long)tv.tv_usec);

    /* Bits at or above nfds are not looked at, and come back cleared. */
    FD_ZERO(&r);
    FD_SET(data[0], &r);
    FD_SET(hup[0], &r);
    int lo = data[0] < hup[0] ? data[0] : hup[0], hi = data[0] + hup[0] - lo;
    tv = (struct timeval){ 10, 0 };
    CHECK(select(hi, &r, NULL, NULL, &tv) == 1);
    SET_IS(&r, FD_SETSIZE, fds_str(lo, -1, -1));

    /* Null sets and a timeout: a portable sleep; it parks, is not early,
     * and leaves tv at zero. */
    tv = (struct timeval){ 0, 150000 };
    int64_t t = mono_ns();
    long t0 = atomic_load(&ticks);
    CHECK(select(0, NULL, NULL, NULL, &tv) == 0);
    CHECKF(ms_since(t) >= 150, "select(150 ms) returned after %lld ms", (long long)ms_since(t));
    CHECKF(tv.tv_sec == 0 && tv.tv_usec == 0, "tv left %ld.%06ld, expected 0", (long)tv.tv_sec,
           (long)tv.tv_usec);
    PARKED(t0);

    /* A timeout with fds: all sets come back empty. */
    FD_ZERO(&r);
    FD_SET(empty[0], &r);
    FD_ZERO(&w);
    FD_SET(full[1], &w);
    tv = (struct timeval){ 0, 100000 };
    t = mono_ns();
    CHECK(select(nfds, &r, &w, NULL, &tv) == 0);
    CHECKF(ms_since(t) >= 100, "select(100 ms) returned after %lld ms", (long long)ms_since(t));
    SET_IS(&r, nfds, "");
    SET_IS(&w, nfds, "");

    /* pselect: the same answers; its timeout is not written back. */
    FD_ZERO(&r);
    FD_SET(data[0], &r);
    FD_SET(empty[0], &r);
    struct timespec ts = { 10, 0 };
    CHECK(pselect(nfds, &r, NULL, NULL, &ts, NULL) == 1);
    SET_IS(&r, nfds, fds_str(data[0], -1, -1));
    CHECK(ts.tv_sec == 10 && ts.tv_nsec == 0);
    ticker_end();
}

static void m_select_wakeups(void)
{
    ticker_start();
    int p[2], q[2];
    make_pipe(p);
    make_pipe(q);
    int nfds = (p[0] > q[0] ? p[0] : q[0]) + 1;
    struct later *l = after_ms(100, do_write, IP(q[1]));
    fd_set r;
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    FD_SET(q[0], &r);
    struct timeval tv = { 10, 0 };
    long t0 = atomic_load(&ticks);
    CHECK(select(nfds, &r, NULL, NULL, &tv) == 1);
    SET_IS(&r, nfds, fds_str(q[0], -1, -1));
    PARKED(t0);
    /* About 9.9 s left, written back. */
    CHECKF(tv.tv_sec >= 8 && tv.tv_sec <= 9,
           "select left tv = %ld.%06ld after ~0.1 s of 10 s", (long)tv.tv_sec, (long)tv.tv_usec);
    later_join(l);

    /* The writer closes: readable (EOF). */
    l = after_ms(100, do_close, IP(p[1]));
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    tv = (struct timeval){ 10, 0 };
    CHECK(select(nfds, &r, NULL, NULL, &tv) == 1);
    SET_IS(&r, nfds, fds_str(p[0], -1, -1));
    later_join(l);

    /* The reader closes under a writer waiting on a full pipe: writable (EPIPE). */
    int f[2];
    make_pipe(f);
    fill_pipe(f[1]);
    l = after_ms(100, do_close, IP(f[0]));
    fd_set w;
    FD_ZERO(&w);
    FD_SET(f[1], &w);
    tv = (struct timeval){ 10, 0 };
    CHECK(select(f[1] + 1, NULL, &w, NULL, &tv) == 1);
    SET_IS(&w, f[1] + 1, fds_str(f[1], -1, -1));
    later_join(l);

    /* Urgent data arrives: exceptional condition. */
    int cl, sv;
    tcp_pair(&cl, &sv);
    l = after_ms(100, do_oob, IP(cl));
    fd_set e;
    FD_ZERO(&e);
    FD_SET(sv, &e);
    struct timespec ts = { 10, 0 };
    CHECK(pselect(sv + 1, NULL, NULL, &e, &ts, NULL) == 1);
    SET_IS(&e, sv + 1, fds_str(sv, -1, -1));
    later_join(l);
    ticker_end();
}

static void m_select_errors(void)
{
    ticker_start();
    int p[2];
    make_pipe(p);
    CHECK(write(p[1], "x", 1) == 1);
    int bad = just_closed_fd();
    int nfds = (bad > p[0] ? bad : p[0]) + 1;
    fd_set r, saved;
    /* A closed fd in a set: EBADF, even with another fd ready, at once, and
     * the sets are left as they were. */
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    FD_SET(bad, &r);
    saved = r;
    struct timeval tv = { 5, 0 };
    int64_t t = mono_ns();
    FAILS_ERRNO(select(nfds, &r, NULL, NULL, &tv), EBADF);
    CHECK(ms_since(t) < 2000);
    CHECK(!memcmp(&r, &saved, sizeof r));
    fd_set w;
    FD_ZERO(&w);
    FD_SET(bad, &w);
    tv = (struct timeval){ 5, 0 };
    FAILS_ERRNO(select(nfds, NULL, &w, NULL, &tv), EBADF);
    FAILS_ERRNO(pselect(nfds, NULL, &w, NULL, &(struct timespec){ 5, 0 }, NULL), EBADF);
    /* ... unless nfds leaves it out. */
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    FD_SET(bad, &r);
    tv = (struct timeval){ 5, 0 };
    if (bad > p[0]) {
        CHECK(select(bad, &r, NULL, NULL, &tv) == 1);
        SET_IS(&r, bad, fds_str(p[0], -1, -1));
    }
    /* Bad arguments. */
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    tv = (struct timeval){ 5, 0 };
    FAILS_ERRNO(select(-1, &r, NULL, NULL, &tv), EINVAL);
    tv = (struct timeval){ 0, -1 };
    FAILS_ERRNO(select(nfds, &r, NULL, NULL, &tv), EINVAL);
    tv = (struct timeval){ -1, 0 };
    FAILS_ERRNO(select(nfds, &r, NULL, NULL, &tv), EINVAL);
    FAILS_ERRNO(pselect(nfds, &r, NULL, NULL, &(struct timespec){ 0, 1000000000 }, NULL), EINVAL);
    ticker_end();
}

/* A timeval with a million microseconds or more is normalised by the
 * kernel, not refused: it is a wait like any other. */
static void m_select_usec_overflow(void)
{
    ticker_start();
    int p[2];
    make_pipe(p);
    fd_set r;
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    struct timeval tv = { 0, 1200000 };
    int64_t t = mono_ns();
    long t0 = atomic_load(&ticks);
    CHECK(select(p[0] + 1, &r, NULL, NULL, &tv) == 0);
    CHECKF(ms_since(t) >= 1200, "select(1.2 s) returned after %lld ms", (long long)ms_since(t));
    SET_IS(&r, p[0] + 1, "");
    PARKED(t0);
    CHECK(write(p[1], "x", 1) == 1);
    FD_SET(p[0], &r);
    tv = (struct timeval){ 0, 1000000 };
    CHECK(select(p[0] + 1, &r, NULL, NULL, &tv) == 1);
    ticker_end();
}

/* An absolute time before the clock's epoch is invalid (EINVAL), not past. */
static void m_sleep_abs_negative(void)
{
    ticker_start();
    RC(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &(struct timespec){ -5, 0 }, NULL), EINVAL);
    RC(clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &(struct timespec){ -1, 0 }, NULL), EINVAL);
    ticker_end();
}

/* select on more than FD_SETSIZE fds, with sets the program allocated
 * itself (the kernel takes any nfds up to the fd limit). */
static void m_select_large_nfds(void)
{
    ticker_start();
    int p[2];
    make_pipe(p);
    CHECK(write(p[1], "x", 1) == 1);
    int nfds = FD_SETSIZE + 64;
    size_t bytes = (size_t)(nfds + 63) / 64 * 8;
    fd_set *r = calloc(1, bytes);
    FD_SET(p[0], r);
    struct timeval tv = { 5, 0 };
    int n = select(nfds, r, NULL, NULL, &tv);
    CHECKF(n == 1, "select(%d, ...) returned %d (%s)", nfds, n, n < 0 ? ename(errno) : "");
    free(r);
    /* The old idiom: select(getdtablesize(), ...) with FD_SETSIZE sets. The
     * kernel reads no further than its fd table (a few hundred fds here). */
    fd_set small;
    FD_ZERO(&small);
    FD_SET(p[0], &small);
    n = select(1 << 20, &small, NULL, NULL, &tv);
    CHECKF(n == 1 && FD_ISSET(p[0], &small), "select(1 << 20, ...) returned %d (%s)", n,
           n < 0 ? ename(errno) : "");
    ticker_end();
}

/* ---- epoll on the program's own epoll fd ----------------------------------------- */

static void m_epoll_own(void)
{
    ticker_start();
    /* tracked: made and used through libc (corun has seen it, and a green
     * thread waits in read() on it first); untracked: made and written with
     * raw system calls, so corun knows nothing of it. */
    int tracked[2], raw[2];
    make_pipe(tracked);
    CHECK(syscall(SYS_pipe2, raw, 0) == 0);
    struct later *l = after_ms(50, do_write, IP(tracked[1]));
    char c;
    CHECK(read(tracked[0], &c, 1) == 1);
    later_join(l);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0x1111 };
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, tracked[0], &ev) == 0);
    ev = (struct epoll_event){ .events = EPOLLIN, .data.u64 = 0x2222 };
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, raw[0], &ev) == 0);
    struct epoll_event out[4];

    /* The untracked member becomes ready while epoll_wait waits. */
    l = after_ms(100, do_raw_write, IP(raw[1]));
    long t0 = atomic_load(&ticks);
    int n = epoll_wait(ep, out, 4, 10000);
    CHECKF(n == 1, "epoll_wait returned %d", n);
    CHECK(out[0].events == EPOLLIN && out[0].data.u64 == 0x2222);
    PARKED(t0);
    later_join(l);
    CHECK(syscall(SYS_read, raw[0], &c, 1) == 1);

    /* The tracked member, through epoll_pwait. */
    l = after_ms(100, do_write, IP(tracked[1]));
    t0 = atomic_load(&ticks);
    n = epoll_pwait(ep, out, 4, 10000, NULL);
    CHECKF(n == 1, "epoll_pwait returned %d", n);
    CHECK(out[0].events == EPOLLIN && out[0].data.u64 == 0x1111);
    PARKED(t0);
    later_join(l);
    CHECK(read(tracked[0], &c, 1) == 1);

    /* Both ready: both reported, at most maxevents at a time. */
    CHECK(write(tracked[1], "a", 1) == 1);
    CHECK(syscall(SYS_write, raw[1], "b", 1) == 1);
    n = epoll_pwait2(ep, out, 4, &(struct timespec){ 10, 0 }, NULL);
    CHECKF(n == 2, "epoll_pwait2 returned %d", n);
    CHECK(n == 2 && out[0].data.u64 + out[1].data.u64 == 0x3333);
    n = epoll_wait(ep, out, 1, 10000);      /* level-triggered: still there */
    CHECK(n == 1);

    /* The member's writer closes: EPOLLHUP. */
    close(tracked[1]);
    CHECK(read(tracked[0], &c, 1) == 1);
    n = epoll_wait(ep, out, 4, 10000);
    CHECK(n == 2);
    for (int i = 0; i < n; i++)
        if (out[i].data.u64 == 0x1111)
            CHECKF(out[i].events == EPOLLHUP, "events 0x%x, expected EPOLLHUP", out[i].events);
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, tracked[0], NULL) == 0);
    CHECK(syscall(SYS_read, raw[0], &c, 1) == 1);

    /* Edge-triggered: one report per edge, then a full timeout. */
    ev = (struct epoll_event){ .events = EPOLLIN | EPOLLET, .data.u64 = 0x3333 };
    CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, raw[0], &ev) == 0);
    l = after_ms(100, do_raw_write, IP(raw[1]));
    CHECK(epoll_wait(ep, out, 4, 10000) == 1 && out[0].data.u64 == 0x3333);
    later_join(l);
    int64_t t = mono_ns();
    t0 = atomic_load(&ticks);
    CHECK(epoll_wait(ep, out, 4, 150) == 0);
    CHECKF(ms_since(t) >= 150, "epoll_wait(150 ms) returned after %lld ms", (long long)ms_since(t));
    PARKED(t0);
    t = mono_ns();
    CHECK(epoll_pwait2(ep, out, 4, &(struct timespec){ 0, 150000000 }, NULL) == 0);
    CHECKF(ms_since(t) >= 150, "epoll_pwait2(150 ms) returned after %lld ms", (long long)ms_since(t));

    /* An epoll fd inside another epoll fd. */
    int outer = epoll_create1(0);
    ev = (struct epoll_event){ .events = EPOLLIN, .data.u64 = 0x4444 };
    CHECK(epoll_ctl(outer, EPOLL_CTL_ADD, ep, &ev) == 0);
    l = after_ms(100, do_raw_write, IP(raw[1]));
    CHECK(epoll_wait(outer, out, 4, 10000) == 1 && out[0].data.u64 == 0x4444);
    later_join(l);
    close(outer);

    /* Errors, as the kernel gives them. */
    FAILS_ERRNO(epoll_wait(ep, out, 0, 1000), EINVAL);
    volatile int negative = -1;
    FAILS_ERRNO(epoll_wait(ep, out, negative, 1000), EINVAL);
    FAILS_ERRNO(epoll_wait(closed_fd(), out, 4, 1000), EBADF);
    FAILS_ERRNO(epoll_wait(raw[0], out, 4, 1000), EINVAL);    /* not an epoll fd */
    FAILS_ERRNO(epoll_pwait2(ep, out, 4, &(struct timespec){ 0, 1000000000 }, NULL), EINVAL);
    close(ep);
    close(raw[0]);
    close(raw[1]);
    ticker_end();
}

/* ---- EINTR from a signal handler without SA_RESTART ---------------------------------- */

static atomic_int handled;
static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&handled, 1);
}

/* A process-directed SIGUSR1 in `ms` milliseconds (a POSIX timer). */
static timer_t signal_in(int ms)
{
    struct sigaction sa = { .sa_handler = on_usr1 };      /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1 };
    timer_t t;
    CHECK(timer_create(CLOCK_MONOTONIC, &sev, &t) == 0);
    struct itimerspec its = { .it_value = { ms / 1000, (long)(ms % 1000) * 1000000 } };
    CHECK(timer_settime(t, 0, &its, NULL) == 0);
    return t;
}

enum intr_call { I_POLL, I_PPOLL, I_SELECT, I_PSELECT, I_EPOLL, I_EPOLL_PWAIT2, I_NANOSLEEP,
                 I_CLOCK_NANOSLEEP, I_CLOCK_NANOSLEEP_ABS, I_SLEEP, I_USLEEP };

/* The call waits 3 s for something that never comes; the signal arrives
 * after 150 ms. `alone`: no other thread, so corun makes the real call. */
static void interrupted(enum intr_call call, bool alone)
{
    if (!alone)
        ticker_start();
    int p[2];
    make_pipe(p);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN };
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0);
    atomic_store(&handled, 0);
    timer_t tm = signal_in(150);
    int64_t t = mono_ns();
    int rc, err;
    struct timespec rem = { -1, -1 };
    errno = 0;
    switch (call) {
    case I_POLL: {
        struct pollfd f = { .fd = p[0], .events = POLLIN };
        rc = poll(&f, 1, 3000);
        break;
    }
    case I_PPOLL: {
        struct pollfd f = { .fd = p[0], .events = POLLIN };
        rc = ppoll(&f, 1, &(struct timespec){ 3, 0 }, NULL);
        break;
    }
    case I_SELECT: {
        fd_set r;
        FD_ZERO(&r);
        FD_SET(p[0], &r);
        rc = select(p[0] + 1, &r, NULL, NULL, &(struct timeval){ 3, 0 });
        break;
    }
    case I_PSELECT: {
        fd_set r;
        FD_ZERO(&r);
        FD_SET(p[0], &r);
        rc = pselect(p[0] + 1, &r, NULL, NULL, &(struct timespec){ 3, 0 }, NULL);
        break;
    }
    case I_EPOLL: {
        struct epoll_event out;
        rc = epoll_wait(ep, &out, 1, 3000);
        break;
    }
    case I_EPOLL_PWAIT2: {
        struct epoll_event out;
        rc = epoll_pwait2(ep, &out, 1, &(struct timespec){ 3, 0 }, NULL);
        break;
    }
    case I_NANOSLEEP:
        rc = nanosleep(&(struct timespec){ 3, 0 }, &rem);
        break;
    case I_CLOCK_NANOSLEEP:
        /* returns the error; sets no errno */
        rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &(struct timespec){ 3, 0 }, &rem);
        break;
    case I_CLOCK_NANOSLEEP_ABS: {
        struct timespec until = abs_in(CLOCK_REALTIME, 3000 * MS);
        rc = clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &until, &rem);
        break;
    }
    case I_SLEEP:
        rc = (int)sleep(3);              /* returns the seconds not slept */
        break;
    case I_USLEEP:
        rc = usleep(3000000);
        break;
    default:
        rc = -2;
    }
    err = errno;
    int64_t took = ms_since(t);
    CHECKF(atomic_load(&handled) == 1, "handler ran %d times", atomic_load(&handled));
    CHECKF(took < 2500, "the call went on for %lld ms after the signal", (long long)took);
    if (call == I_CLOCK_NANOSLEEP || call == I_CLOCK_NANOSLEEP_ABS) {
        CHECKF(rc == EINTR, "clock_nanosleep returned %d (%s), expected EINTR", rc, ename(rc));
    } else if (call == I_SLEEP) {
        CHECKF(rc >= 2 && rc <= 3, "sleep(3) interrupted after 0.15 s returned %d", rc);
    } else {
        CHECKF(rc == -1 && err == EINTR, "returned %d errno %s, expected -1 EINTR", rc, ename(err));
    }
    if (call == I_NANOSLEEP || call == I_CLOCK_NANOSLEEP) {
        /* The time left is written: about 2.85 s of 3 s. */
        int64_t left = (int64_t)rem.tv_sec * 1000 + rem.tv_nsec / 1000000;
        CHECKF(left > 500 && left < 3000 && rem.tv_nsec >= 0 && rem.tv_nsec < 1000000000,
               "rem = %ld.%09ld after ~0.15 s of 3 s", (long)rem.tv_sec, rem.tv_nsec);
    }
    if (call == I_CLOCK_NANOSLEEP_ABS)          /* absolute: rem is not touched */
        CHECK(rem.tv_sec == -1 && rem.tv_nsec == -1);
    timer_delete(tm);
    close(ep);
    close(p[0]);
    close(p[1]);
    if (!alone)
        ticker_end();
}

#define INTR(name, call)                                                      \
    static void m_eintr_##name(void) { interrupted(call, false); }            \
    static void m_eintr_##name##_alone(void) { interrupted(call, true); }
INTR(poll, I_POLL)
INTR(ppoll, I_PPOLL)
INTR(select, I_SELECT)
INTR(pselect, I_PSELECT)
INTR(epoll_wait, I_EPOLL)
INTR(epoll_pwait2, I_EPOLL_PWAIT2)
INTR(nanosleep, I_NANOSLEEP)
INTR(clock_nanosleep, I_CLOCK_NANOSLEEP)
INTR(clock_nanosleep_abs, I_CLOCK_NANOSLEEP_ABS)
INTR(sleep, I_SLEEP)
INTR(usleep, I_USLEEP)

/* ppoll's signal mask: SIGUSR1 is blocked except while ppoll waits. */
static void m_eintr_ppoll_mask(void)
{
    ticker_start();
    sigset_t block, during;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    CHECK(pthread_sigmask(SIG_BLOCK, &block, NULL) == 0);
    pthread_sigmask(SIG_SETMASK, NULL, &during);
    sigdelset(&during, SIGUSR1);
    int p[2];
    make_pipe(p);
    atomic_store(&handled, 0);
    timer_t tm = signal_in(150);
    struct pollfd f = { .fd = p[0], .events = POLLIN };
    int64_t t = mono_ns();
    FAILS_ERRNO(ppoll(&f, 1, &(struct timespec){ 3, 0 }, &during), EINTR);
    CHECKF(ms_since(t) < 2500, "ppoll went on for %lld ms after the signal", (long long)ms_since(t));
    CHECKF(atomic_load(&handled) == 1, "handler ran %d times", atomic_load(&handled));
    /* Blocked again afterwards. */
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    CHECK(sigismember(&now, SIGUSR1));
    timer_delete(tm);
    ticker_end();
}

/* ---- sleeping: not early, both clocks, absolute and relative -------------------------- */

/* Another thread burns CPU without a system call between our sleeps
 * (slices of `arg` ms, then sched_yield), so a clock cached at the last
 * loop turn would be stale by that much. */
static atomic_bool spin_stop;
static void *spinner(void *arg)
{
    int64_t slice = (int64_t)(intptr_t)arg * MS;
    while (!atomic_load(&spin_stop)) {
        int64_t until = mono_ns() + slice;
        while (mono_ns() < until)
            ;
        sched_yield();
    }
    return NULL;
}

enum sleeper { S_USLEEP, S_NANOSLEEP, S_MONO_REL, S_REAL_REL, S_MONO_ABS, S_REAL_ABS, S_SELECT,
               S_POLL, S_N };
static const char *const sleeper_name[] = { "usleep", "nanosleep", "clock_nanosleep(MONOTONIC)",
                                            "clock_nanosleep(REALTIME)", "clock_nanosleep(MONOTONIC, ABSTIME)",
                                            "clock_nanosleep(REALTIME, ABSTIME)", "select", "poll" };

static void sleeps(int spin_ms, int64_t late_ms)
{
    ticker_start();
    atomic_store(&spin_stop, false);
    pthread_t sp;
    OK(pthread_create(&sp, NULL, spinner, IP(spin_ms)));
    const int64_t want = 50 * MS;
    for (int round = 0; round < 3; round++) {
        for (int k = 0; k < S_N; k++) {
            struct timespec rel = { 0, want }, until;
            int64_t t0 = mono_ns(), r0 = ns_on(CLOCK_REALTIME);
            int rc = 0;
            switch (k) {
            case S_USLEEP: rc = usleep(50000); break;
            case S_NANOSLEEP: rc = nanosleep(&rel, NULL); break;
            case S_MONO_REL: rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &rel, NULL); break;
            case S_REAL_REL: rc = clock_nanosleep(CLOCK_REALTIME, 0, &rel, NULL); break;
            case S_MONO_ABS:
                until = abs_in(CLOCK_MONOTONIC, want);
                rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL);
                CHECKF(ns_on(CLOCK_MONOTONIC) >= (int64_t)until.tv_sec * 1000000000 + until.tv_nsec,
                       "%s woke before its deadline", sleeper_name[k]);
                break;
            case S_REAL_ABS:
                until = abs_in(CLOCK_REALTIME, want);
                rc = clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &until, NULL);
                CHECKF(ns_on(CLOCK_REALTIME) >= (int64_t)until.tv_sec * 1000000000 + until.tv_nsec,
                       "%s woke before its deadline", sleeper_name[k]);
                break;
            case S_SELECT: rc = select(0, NULL, NULL, NULL, &(struct timeval){ 0, 50000 }); break;
            case S_POLL: rc = poll(NULL, 0, 50); break;
            }
            int64_t took = mono_ns() - t0, rtook = ns_on(CLOCK_REALTIME) - r0;
            CHECKF(rc == 0, "%s returned %d", sleeper_name[k], rc);
            /* A realtime deadline is kept on its clock (pt_common.h: wait_start). */
            int64_t kept = k == S_REAL_ABS && rtook > took ? rtook : took;
            CHECKF(kept >= want, "%s(50 ms) woke after %.3f ms (early)", sleeper_name[k], kept / 1e6);
            if (k == S_REAL_REL || k == S_REAL_ABS)
                CHECKF(rtook >= want - 1 * MS, "%s(50 ms): realtime advanced %.3f ms", sleeper_name[k],
                       rtook / 1e6);
            CHECKF(took < late_ms * MS, "%s(50 ms) took %.3f ms (late)", sleeper_name[k], took / 1e6);
        }
    }
    atomic_store(&spin_stop, true);
    OK(pthread_join(sp, NULL));
    ticker_end();
}

/* Timers never fire early, with another thread busy in 2 ms slices. */
static void m_sleep_not_early(void) { sleeps(2, 2000); }

/* Nor late by much when the busy thread yields every 20 ms: natively the
 * sleeper gets the CPU back within a time slice or so. */
static void m_sleep_not_late(void) { sleeps(20, 500); }

/* Whole seconds too, and the sleeps park (the ticker runs meanwhile). */
static void m_sleep_parks(void)
{
    ticker_start();
    long t0 = atomic_load(&ticks);
    int64_t t = mono_ns();
    CHECK(sleep(1) == 0);
    CHECKF(ms_since(t) >= 1000, "sleep(1) took %lld ms", (long long)ms_since(t));
    PARKED(t0);
    t0 = atomic_load(&ticks);
    t = mono_ns();
    CHECK(usleep(200000) == 0);
    CHECKF(ms_since(t) >= 200, "usleep(200 ms) took %lld ms", (long long)ms_since(t));
    PARKED(t0);
    CHECK(sleep(0) == 0);
    CHECK(usleep(0) == 0);
    ticker_end();
}

static void m_sleep_errors(void)
{
    ticker_start();
    struct timespec rem = { 7, 7 };
    FAILS_ERRNO(nanosleep(&(struct timespec){ 0, 1000000000 }, &rem), EINVAL);
    FAILS_ERRNO(nanosleep(&(struct timespec){ 0, -1 }, &rem), EINVAL);
    FAILS_ERRNO(nanosleep(&(struct timespec){ -1, 0 }, &rem), EINVAL);
    CHECK(rem.tv_sec == 7 && rem.tv_nsec == 7);
    errno = 0;
    RC(clock_nanosleep(CLOCK_MONOTONIC, 0, &(struct timespec){ 0, 1000000000 }, NULL), EINVAL);
    RC(clock_nanosleep(CLOCK_REALTIME, 0, &(struct timespec){ -1, 0 }, NULL), EINVAL);
    RC(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &(struct timespec){ 0, -5 }, NULL), EINVAL);
    CHECKF(errno == 0, "clock_nanosleep set errno %s (it returns its error)", ename(errno));
    RC(clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, 0, &(struct timespec){ 0, 1000 }, NULL), EINVAL);
    RC(clock_nanosleep((clockid_t)1234, 0, &(struct timespec){ 0, 1000 }, NULL), EINVAL);
    /* Absolute times in the past return at once. */
    int64_t t = mono_ns();
    OK(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &(struct timespec){ 0, 0 }, NULL));
    OK(clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &(struct timespec){ 1, 0 }, NULL));
    CHECK(ms_since(t) < 1000);
    /* A zero sleep is a sleep of nothing. */
    OK(clock_nanosleep(CLOCK_MONOTONIC, 0, &(struct timespec){ 0, 0 }, NULL));
    CHECK(nanosleep(&(struct timespec){ 0, 0 }, NULL) == 0);
    ticker_end();
}

/* ---- sched_yield -------------------------------------------------------------------*/

static atomic_int yield_turns;
static void *yielder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++) {
        atomic_fetch_add(&yield_turns, 1);
        CHECK(sched_yield() == 0);
    }
    return NULL;
}

static void m_yield(void)
{
    CHECK(sched_yield() == 0);                 /* alone */
    pthread_t th;
    OK(pthread_create(&th, NULL, yielder, NULL));
    int64_t t = mono_ns();
    /* Each yield lets the other thread run: it finishes while we only yield. */
    while (atomic_load(&yield_turns) < 100 && ms_since(t) < 10000)
        CHECK(sched_yield() == 0);
    CHECK(atomic_load(&yield_turns) == 100);
    OK(pthread_join(th, NULL));
    note_tasks();
}

/* ---- a program's own event loop on non-blocking fds ---------------------------------- */

enum { LOOP_ROUNDS = 20000 };
static int loop_sp[2];
static atomic_bool loop_stop;

/* An echo server as event-loop programs write it: non-blocking socket,
 * epoll_wait with a timeout, read until EAGAIN, write back. */
static void *event_loop(void *arg)
{
    (void)arg;
    int fd = loop_sp[1];
    CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd }, out[8];
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
    int eagains = 0;
    while (!atomic_load(&loop_stop)) {
        int n = epoll_wait(ep, out, 8, 100);
        if (n < 0 && errno == EINTR)
            continue;
        CHECKF(n >= 0, "epoll_wait: %s", ename(errno));
        for (int i = 0; i < n; i++) {
            char buf[256];
            ssize_t r;
            while ((r = read(fd, buf, sizeof buf)) > 0)
                CHECK(write(fd, buf, (size_t)r) == r);
            if (r < 0 && errno == EAGAIN)
                eagains++;
            else if (r == 0)
                atomic_store(&loop_stop, true);
            else
                failf(__LINE__, "read: %zd %s", r, ename(errno));
        }
    }
    CHECKF(eagains > 0, "the non-blocking fd never said EAGAIN");
    close(ep);
    return NULL;
}

/* 20,000 one-byte round trips between a blocking client thread and the
 * event loop: every byte comes back; the rate is printed (test_wait_green
 * only bounds the time generously). */
static void m_event_loop(void)
{
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, loop_sp) == 0);
    pthread_t th;
    OK(pthread_create(&th, NULL, event_loop, NULL));
    int64_t t = mono_ns();
    for (int i = 0; i < LOOP_ROUNDS; i++) {
        char c = (char)i, back = 0;
        CHECK(write(loop_sp[0], &c, 1) == 1);
        ssize_t r = read(loop_sp[0], &back, 1);
        if (r != 1 || back != c) {
            failf(__LINE__, "round %d: read %zd byte %d, expected %d", i, r, back, c);
            break;
        }
    }
    int64_t ms = ms_since(t);
    note_tasks();
    shutdown(loop_sp[0], SHUT_WR);
    OK(pthread_join(th, NULL));
    printf("event loop: %d round trips in %lld ms\n", LOOP_ROUNDS, (long long)ms);
    CHECKF(ms < 20000, "%d round trips took %lld ms", LOOP_ROUNDS, (long long)ms);
}

/* ---- many waiters at once ----------------------------------------------------------- */

enum many_kind { MK_POLL, MK_SELECT, MK_EPOLL, MK_NANOSLEEP };
static int many_pipe[2];
static atomic_int many_done, many_timeouts;

static void *many_waiter(void *arg)
{
    enum many_kind k = (enum many_kind)(intptr_t)arg;
    int rc = -1;
    if (k == MK_POLL) {
        struct pollfd f = { .fd = many_pipe[0], .events = POLLIN };
        rc = poll(&f, 1, 1000);
    } else if (k == MK_SELECT) {
        fd_set r;
        FD_ZERO(&r);
        FD_SET(many_pipe[0], &r);
        rc = select(many_pipe[0] + 1, &r, NULL, NULL, &(struct timeval){ 1, 0 });
    } else if (k == MK_EPOLL) {
        int ep = epoll_create1(0);
        struct epoll_event ev = { .events = EPOLLIN }, out;
        CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, many_pipe[0], &ev) == 0);
        rc = epoll_wait(ep, &out, 1, 1000);
        close(ep);
    } else {
        rc = nanosleep(&(struct timespec){ 1, 0 }, NULL);
    }
    if (rc == 0)
        atomic_fetch_add(&many_timeouts, 1);
    else
        failf(__LINE__, "waiter %d returned %d (%s)", (int)k, rc, ename(errno));
    if (atomic_fetch_add(&many_done, 1) == 50)
        note_tasks();
    return NULL;
}

/* 100 threads each wait 1 s for nothing, for each kind of wait: all at
 * once (serially that would be 100 s per kind). */
static void m_many(void)
{
    make_pipe(many_pipe);
    for (int k = MK_POLL; k <= MK_NANOSLEEP; k++) {
        pthread_t th[100];
        atomic_store(&many_done, 0);
        atomic_store(&many_timeouts, 0);
        int64_t t = mono_ns();
        for (int i = 0; i < 100; i++)
            OK(pthread_create(&th[i], NULL, many_waiter, IP(k)));
        for (int i = 0; i < 100; i++)
            OK(pthread_join(th[i], NULL));
        int64_t took = ms_since(t);
        CHECKF(atomic_load(&many_timeouts) == 100, "kind %d: %d of 100 timed out", k,
               atomic_load(&many_timeouts));
        CHECKF(took >= 1000 && took < 5000, "kind %d: 100 waits of 1 s took %lld ms", k,
               (long long)took);
        printf("kind %d: 100 concurrent 1 s waits in %lld ms\n", k, (long long)took);
    }
}

int main(int argc, char **argv)
{
    static const struct pt_mode modes[] = {
        { "zero_timeout", m_zero_timeout },
        { "zero_spin_runnable", m_zero_spin_runnable },
        { "zero_spin_sleeper", m_zero_spin_sleeper },
        { "zero_spin_reader", m_zero_spin_reader },
        { "ready_spin_runnable", m_ready_spin_runnable },
        { "ready_spin_sleeper", m_ready_spin_sleeper },
        { "ready_spin_reader", m_ready_spin_reader },
        { "poll_revents", m_poll_revents },
        { "poll_wakeups", m_poll_wakeups },
        { "select_sets", m_select_sets },
        { "select_wakeups", m_select_wakeups },
        { "select_errors", m_select_errors },
        { "select_usec_overflow", m_select_usec_overflow },
        { "select_large_nfds", m_select_large_nfds },
        { "epoll_own", m_epoll_own },
        { "eintr_poll", m_eintr_poll },
        { "eintr_poll_alone", m_eintr_poll_alone },
        { "eintr_ppoll", m_eintr_ppoll },
        { "eintr_ppoll_alone", m_eintr_ppoll_alone },
        { "eintr_ppoll_mask", m_eintr_ppoll_mask },
        { "eintr_select", m_eintr_select },
        { "eintr_select_alone", m_eintr_select_alone },
        { "eintr_pselect", m_eintr_pselect },
        { "eintr_pselect_alone", m_eintr_pselect_alone },
        { "eintr_epoll_wait", m_eintr_epoll_wait },
        { "eintr_epoll_wait_alone", m_eintr_epoll_wait_alone },
        { "eintr_epoll_pwait2", m_eintr_epoll_pwait2 },
        { "eintr_epoll_pwait2_alone", m_eintr_epoll_pwait2_alone },
        { "eintr_nanosleep", m_eintr_nanosleep },
        { "eintr_nanosleep_alone", m_eintr_nanosleep_alone },
        { "eintr_clock_nanosleep", m_eintr_clock_nanosleep },
        { "eintr_clock_nanosleep_alone", m_eintr_clock_nanosleep_alone },
        { "eintr_clock_nanosleep_abs", m_eintr_clock_nanosleep_abs },
        { "eintr_clock_nanosleep_abs_alone", m_eintr_clock_nanosleep_abs_alone },
        { "eintr_sleep", m_eintr_sleep },
        { "eintr_sleep_alone", m_eintr_sleep_alone },
        { "eintr_usleep", m_eintr_usleep },
        { "eintr_usleep_alone", m_eintr_usleep_alone },
        { "sleep_not_early", m_sleep_not_early },
        { "sleep_not_late", m_sleep_not_late },
        { "sleep_parks", m_sleep_parks },
        { "sleep_errors", m_sleep_errors },
        { "sleep_abs_negative", m_sleep_abs_negative },
        { "yield", m_yield },
        { "event_loop", m_event_loop },
        { "many", m_many },
    };
    return pt_main(modes, sizeof modes / sizeof *modes, argc, argv);
}
