/*
 * pt_signal.c - a plain pthread program (not linked with corun): signal
 * handlers interrupting blocking calls with EINTR (or not, with SA_RESTART),
 * which thread a process signal interrupts, timers (setitimer), the sigwait
 * family, sigsuspend, pause, and calls that fail with EINTR whatever the
 * flags (poll, nanosleep, sem_wait, pselect with its mask).
 *
 * Run by tests/test_pthread_green as `pt_signal MODE`, natively and under
 * LD_PRELOAD=libcorun.so; see tests/preload/pt_thread.c for the output conventions.
 * Other threads are kept parked or busy during each wait, so that under corun
 * the call really parks (a lone thread would make the real call).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "pt_common.h"

static volatile sig_atomic_t got;        /* the last signal a handler saw */
static atomic_int handled;               /* how many handler runs */

static void on_signal(int sig)
{
    got = sig;
    atomic_fetch_add(&handled, 1);
}

static void install(int sig, int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = flags;
    CHECK(sigaction(sig, &sa, NULL) == 0);
}

static sigset_t only(int sig)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    return s;
}

/* A thread parked in read() on a pipe nobody writes until the end. */
struct idler {
    pthread_t t;
    int p[2];
};

static void *idle_reader(void *arg)
{
    struct idler *i = arg;
    char c;
    while (read(i->p[0], &c, 1) < 0 && errno == EINTR)
        ;
    return NULL;
}

static void idler_start(struct idler *i)
{
    CHECK(pipe(i->p) == 0);
    OK(pthread_create(&i->t, NULL, idle_reader, i));
}

static void idler_stop(struct idler *i)
{
    CHECK(write(i->p[1], "x", 1) == 1);
    OK(pthread_join(i->t, NULL));
    close(i->p[0]);
    close(i->p[1]);
}

/* Send `sig` to the process from another thread after `ms`. */
struct sender {
    pthread_t t;
    int sig;
    int ms;
};

static void *send_later(void *arg)
{
    struct sender *s = arg;
    usleep((useconds_t)s->ms * 1000);
    kill(getpid(), s->sig);
    return NULL;
}

static void sender_start(struct sender *s, int sig, int ms)
{
    s->sig = sig;
    s->ms = ms;
    OK(pthread_create(&s->t, NULL, send_later, s));
}

static int listener(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(l, 8) == 0);
    return l;
}

/* ---- EINTR and SA_RESTART ----------------------------------------------------------*/

/* The server pattern: SIGTERM's handler (no SA_RESTART) sets a flag, the
 * accept loop sees EINTR and stops. The signal comes from another thread
 * while a third is parked in read(). */
static void m_accept_eintr(void)
{
    install(SIGTERM, 0);
    struct idler i;
    idler_start(&i);
    struct sender s;
    sender_start(&s, SIGTERM, 50);
    int l = listener();
    errno = 0;
    int c = accept(l, NULL, NULL);
    int e = errno;
    CHECKF(c == -1 && e == EINTR, "accept returned %d errno %s, expected -1 EINTR", c, ename(e));
    CHECK(got == SIGTERM);
    OK(pthread_join(s.t, NULL));
    idler_stop(&i);
    close(l);
}

/* With SA_RESTART the handler runs and accept goes on waiting. */
static int restart_port;

static void *connect_later(void *arg)
{
    (void)arg;
    usleep(150000);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = (in_port_t)restart_port,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    CHECK(connect(c, (struct sockaddr *)&a, sizeof a) == 0);
    return IP(c);
}

static void m_accept_restart(void)
{
    install(SIGUSR1, SA_RESTART);
    int l = listener();
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    CHECK(getsockname(l, (struct sockaddr *)&a, &al) == 0);
    restart_port = a.sin_port;
    struct sender s;
    sender_start(&s, SIGUSR1, 50);
    pthread_t ct;
    OK(pthread_create(&ct, NULL, connect_later, NULL));
    errno = 0;
    int c = accept(l, NULL, NULL);
    int e = errno;
    CHECKF(c >= 0, "accept returned %d errno %s; with SA_RESTART it restarts", c, ename(e));
    CHECKF(got == SIGUSR1, "the handler did not run");
    void *cfd;
    OK(pthread_join(ct, &cfd));
    OK(pthread_join(s.t, NULL));
    close((int)(intptr_t)cfd);
    close(c);
    close(l);
}

/* read() on a pipe, interrupted by a timer (setitimer/SIGALRM). */
static void m_read_itimer(void)
{
    install(SIGALRM, 0);
    struct idler i;
    idler_start(&i);
    int p[2];
    CHECK(pipe(p) == 0);
    struct itimerval it = { .it_value = { 0, 100000 } };
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
    char c;
    errno = 0;
    ssize_t r = read(p[0], &c, 1);
    int e = errno;
    CHECKF(r == -1 && e == EINTR, "read returned %zd errno %s, expected -1 EINTR", r, ename(e));
    CHECK(got == SIGALRM);
    alarm(30);                            /* pt_main's guard, which setitimer replaced */
    idler_stop(&i);
    close(p[0]);
    close(p[1]);
}

/* poll and nanosleep: EINTR even when the handler has SA_RESTART. */
static void m_poll_always_eintr(void)
{
    install(SIGUSR1, SA_RESTART);
    struct idler i;
    idler_start(&i);
    int p[2];
    CHECK(pipe(p) == 0);
    struct sender s;
    sender_start(&s, SIGUSR1, 50);
    struct pollfd pf = { .fd = p[0], .events = POLLIN };
    errno = 0;
    int r = poll(&pf, 1, 5000);
    int e = errno;
    CHECKF(r == -1 && e == EINTR, "poll returned %d errno %s, expected -1 EINTR", r, ename(e));
    OK(pthread_join(s.t, NULL));
    idler_stop(&i);
    close(p[0]);
    close(p[1]);
}

static void m_nanosleep_rem(void)
{
    install(SIGUSR1, SA_RESTART);
    struct idler i;
    idler_start(&i);
    struct sender s;
    sender_start(&s, SIGUSR1, 100);
    struct timespec req = { 2, 0 }, rem = { -1, -1 };
    int64_t t0 = mono_ns();
    errno = 0;
    int r = nanosleep(&req, &rem);
    int e = errno;
    int64_t el = mono_ns() - t0;
    CHECKF(r == -1 && e == EINTR, "nanosleep returned %d errno %s, expected -1 EINTR", r, ename(e));
    CHECKF(el < 1500 * MS, "nanosleep went on for %lld ms after the signal", (long long)(el / MS));
    int64_t left = (int64_t)rem.tv_sec * 1000000000 + rem.tv_nsec;
    CHECKF(left > 500 * MS && left <= 2000 * MS && rem.tv_nsec >= 0 && rem.tv_nsec < 1000000000,
           "remaining time %lld.%09ld s, expected about 1.9 s", (long long)rem.tv_sec, rem.tv_nsec);
    OK(pthread_join(s.t, NULL));
    idler_stop(&i);
}

/* sem_wait: EINTR without SA_RESTART (with it, Linux restarts the futex wait,
 * whatever signal(7) says). */
static void m_sem_eintr(void)
{
    install(SIGUSR1, 0);
    struct idler i;
    idler_start(&i);
    sem_t sem;
    CHECK(sem_init(&sem, 0, 0) == 0);
    struct sender s;
    sender_start(&s, SIGUSR1, 50);
    errno = 0;
    int r = sem_wait(&sem);
    int e = errno;
    CHECKF(r == -1 && e == EINTR, "sem_wait returned %d errno %s, expected -1 EINTR", r, ename(e));
    int v = -1;
    CHECK(sem_getvalue(&sem, &v) == 0 && v == 0);
    OK(pthread_join(s.t, NULL));
    idler_stop(&i);
    sem_destroy(&sem);
}

/* pselect's mask is the thread's for the wait only: a blocked signal gets
 * through during it, and is blocked again afterwards. */
static void m_pselect_mask(void)
{
    install(SIGUSR1, SA_RESTART);
    sigset_t blk = only(SIGUSR1), empty, now;
    sigemptyset(&empty);
    OK(pthread_sigmask(SIG_BLOCK, &blk, NULL));
    struct idler i;
    idler_start(&i);
    struct sender s;
    sender_start(&s, SIGUSR1, 50);
    int p[2];
    CHECK(pipe(p) == 0);
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    struct timespec ts = { 5, 0 };
    errno = 0;
    int r = pselect(p[0] + 1, &rd, NULL, NULL, &ts, &empty);
    int e = errno;
    CHECKF(r == -1 && e == EINTR, "pselect returned %d errno %s, expected -1 EINTR", r, ename(e));
    CHECK(got == SIGUSR1);
    OK(pthread_sigmask(SIG_SETMASK, NULL, &now));
    CHECK(sigismember(&now, SIGUSR1) == 1);
    OK(pthread_join(s.t, NULL));
    idler_stop(&i);
    close(p[0]);
    close(p[1]);
}

/* A signal already pending when ppoll, pselect or epoll_pwait unblocks it
 * with the call's mask: its handler runs and, nothing being ready, the
 * call fails EINTR at once (the pselect idiom: block, check a flag, wait
 * with the signal unblocked). corun ran the handler and then waited out
 * the timeout. The same with a zero timeout for ppoll and pselect (corun
 * made the real call, to which a signal pending for a green thread is
 * not pending: 0, no handler); epoll_pwait's zero timeout returns 0 at
 * once, the handler not run, natively too. */
static void m_mask_pending(void)
{
    install(SIGUSR1, SA_RESTART);
    sigset_t blk = only(SIGUSR1), empty, now;
    sigemptyset(&empty);
    OK(pthread_sigmask(SIG_BLOCK, &blk, NULL));
    struct idler i;
    idler_start(&i);
    int p[2];
    CHECK(pipe(p) == 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = p[0] };
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0);
    static const char *const calls[] = { "ppoll", "pselect", "epoll_pwait",
                                         "ppoll, zero timeout", "pselect, zero timeout" };
    for (int call = 0; call < 5; call++) {
        got = 0;
        int runs = atomic_load(&handled);
        OK(pthread_kill(pthread_self(), SIGUSR1));
        CHECK(got == 0);
        struct timespec ts = { call < 3 ? 5 : 0, 0 };
        struct pollfd pf = { .fd = p[0], .events = POLLIN };
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(p[0], &rd);
        struct epoll_event out;
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        errno = 0;
        int r = call % 3 == 0 ? ppoll(&pf, 1, &ts, &empty)
                : call % 3 == 1 ? pselect(p[0] + 1, &rd, NULL, NULL, &ts, &empty)
                                : epoll_pwait(ep, &out, 1, 5000, &empty);
        int e = errno;
        clock_gettime(CLOCK_MONOTONIC, &b);
        CHECKF(r == -1 && e == EINTR, "%s returned %d errno %s, expected -1 EINTR", calls[call], r,
               ename(e));
        CHECKF(got == SIGUSR1 && atomic_load(&handled) == runs + 1, "%s: the handler ran %d times",
               calls[call], atomic_load(&handled) - runs);
        CHECKF(b.tv_sec - a.tv_sec < 3, "%s waited %ld s", calls[call], (long)(b.tv_sec - a.tv_sec));
        OK(pthread_sigmask(SIG_SETMASK, NULL, &now));
        CHECK(sigismember(&now, SIGUSR1) == 1);
    }
    /* epoll_pwait, zero timeout: 0, and the signal stays pending. */
    got = 0;
    OK(pthread_kill(pthread_self(), SIGUSR1));
    struct epoll_event out;
    CHECK(epoll_pwait(ep, &out, 1, 0, &empty) == 0);
    CHECK(got == 0);
    sigset_t pending;
    OK(sigpending(&pending));
    CHECK(sigismember(&pending, SIGUSR1) == 1);
    OK(pthread_sigmask(SIG_UNBLOCK, &blk, NULL));
    CHECK(got == SIGUSR1);
    idler_stop(&i);
    close(ep);
    close(p[0]);
    close(p[1]);
}

/* ---- which thread -------------------------------------------------------------------*/

/* The main thread blocks SIGUSR1, a worker parked in read() does not: the
 * worker's read is the one interrupted. */
static atomic_int worker_rc, worker_errno;

static void *read_unblocked(void *arg)
{
    sigset_t s = only(SIGUSR1);
    OK(pthread_sigmask(SIG_UNBLOCK, &s, NULL));
    char c;
    errno = 0;
    atomic_store(&worker_rc, (int)read(*(int *)arg, &c, 1));
    atomic_store(&worker_errno, errno);
    return NULL;
}

static void m_worker_interrupted(void)
{
    install(SIGUSR1, 0);
    sigset_t s = only(SIGUSR1);
    OK(pthread_sigmask(SIG_BLOCK, &s, NULL));
    int p[2];
    CHECK(pipe(p) == 0);
    pthread_t w;
    OK(pthread_create(&w, NULL, read_unblocked, &p[0]));
    struct idler i;
    idler_start(&i);
    usleep(50000);
    kill(getpid(), SIGUSR1);
    for (int k = 0; k < 200 && atomic_load(&handled) == 0; k++)
        usleep(5000);
    usleep(20000);
    bool stuck = atomic_load(&worker_errno) == 0;
    if (stuck)
        CHECK(write(p[1], "x", 1) == 1);
    OK(pthread_join(w, NULL));
    CHECKF(!stuck && atomic_load(&worker_rc) == -1 && atomic_load(&worker_errno) == EINTR,
           "the worker's read %s (rc %d errno %s), expected -1 EINTR",
           stuck ? "was not interrupted" : "returned", atomic_load(&worker_rc),
           ename(atomic_load(&worker_errno)));
    idler_stop(&i);
    close(p[0]);
    close(p[1]);
}

/* pthread_kill to a thread parked in a restartable call (read on a pipe,
 * sem_wait) with an SA_RESTART handler: the handler runs at once, in that
 * thread (here it tells main through a self-pipe), and the call goes on
 * waiting until its real wake-up. */
static int self_pipe[2];
static pthread_t handler_thread;
static volatile char tell_byte;          /* what the handler writes: main sets it per step */

static void on_signal_tell(int sig)
{
    (void)sig;
    int e = errno;
    handler_thread = pthread_self();
    char c = tell_byte;
    (void)!write(self_pipe[1], &c, 1);
    errno = e;
}

struct restartee {
    int p[2];
    sem_t sem;
    ssize_t read_rc;
    int sem_rc, read_errno, sem_errno;
    char byte;
};

static void *restartee_main(void *arg)
{
    struct restartee *r = arg;
    errno = 0;
    r->read_rc = read(r->p[0], &r->byte, 1);
    r->read_errno = errno;
    errno = 0;
    r->sem_rc = sem_wait(&r->sem);
    r->sem_errno = errno;
    return NULL;
}

/* Send SIGUSR2 to t and wait (2 s at most) for its handler's byte, which
 * must be this step's (not a late run from an earlier step). */
static bool handler_told(pthread_t t, char step)
{
    tell_byte = step;
    OK(pthread_kill(t, SIGUSR2));
    struct pollfd pf = { .fd = self_pipe[0], .events = POLLIN };
    char c;
    return poll(&pf, 1, 2000) == 1 && read(self_pipe[0], &c, 1) == 1 && c == step;
}

static void m_kill_restart(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal_tell;
    sa.sa_flags = SA_RESTART;
    CHECK(sigaction(SIGUSR2, &sa, NULL) == 0);
    CHECK(pipe(self_pipe) == 0);
    struct restartee r = { 0 };
    CHECK(pipe(r.p) == 0);
    CHECK(sem_init(&r.sem, 0, 0) == 0);
    pthread_t t;
    OK(pthread_create(&t, NULL, restartee_main, &r));

    usleep(50000);                              /* parked in read() */
    CHECKF(handler_told(t, 'r'), "the handler did not run while its thread waited in read()");
    CHECK(pthread_equal(handler_thread, t));
    usleep(20000);
    CHECKF(r.read_rc == 0 && r.read_errno == 0, "read() ended early (rc %zd errno %s)",
           r.read_rc, ename(r.read_errno));
    CHECK(write(r.p[1], "d", 1) == 1);

    usleep(50000);                              /* parked in sem_wait() */
    CHECKF(handler_told(t, 's'), "the handler did not run while its thread waited in sem_wait()");
    CHECK(pthread_equal(handler_thread, t));
    /* Once more, and the post comes right after the signal: the restarted
     * wait must find the unit the post left. */
    usleep(20000);
    tell_byte = 't';
    OK(pthread_kill(t, SIGUSR2));
    CHECK(sem_post(&r.sem) == 0);
    OK(pthread_join(t, NULL));
    CHECKF(r.read_rc == 1 && r.byte == 'd', "read returned %zd errno %s, expected the byte",
           r.read_rc, ename(r.read_errno));
    CHECKF(r.sem_rc == 0, "sem_wait returned %d errno %s, expected 0 (restarted)", r.sem_rc,
           ename(r.sem_errno));
    sem_destroy(&r.sem);
    close(r.p[0]);
    close(r.p[1]);
    close(self_pipe[0]);
    close(self_pipe[1]);
}

/* A socket with SO_RCVTIMEO: its recv is never restarted, SA_RESTART or
 * not (signal(7)); EINTR long before the timeout. */
static void m_rcvtimeo_eintr(void)
{
    install(SIGUSR1, SA_RESTART);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    struct timeval tv = { 5, 0 };
    CHECK(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
    struct idler i;
    idler_start(&i);
    struct sender snd;
    sender_start(&snd, SIGUSR1, 50);
    char c;
    struct timeval t0, t1;
    gettimeofday(&t0, NULL);
    errno = 0;
    ssize_t r = recv(sv[0], &c, 1, 0);
    int e = errno;
    gettimeofday(&t1, NULL);
    CHECKF(r == -1 && e == EINTR, "recv returned %zd errno %s, expected -1 EINTR", r, ename(e));
    CHECKF(t1.tv_sec - t0.tv_sec < 4, "recv waited for its timeout");
    CHECK(got == SIGUSR1);
    OK(pthread_join(snd.t, NULL));
    idler_stop(&i);
    close(sv[0]);
    close(sv[1]);
}

/* ---- waiting for signals ----------------------------------------------------------------*/

static void m_sigwait_thread(void)
{
    sigset_t s = only(SIGUSR2);
    OK(pthread_sigmask(SIG_BLOCK, &s, NULL));    /* inherited by every thread */
    struct idler i;
    idler_start(&i);
    struct sender snd;
    sender_start(&snd, SIGUSR2, 50);
    int sig = 0;
    OK(sigwait(&s, &sig));
    CHECK(sig == SIGUSR2);
    siginfo_t info;
    struct timespec ts = { 0, 50 * MS };
    errno = 0;
    int r = sigtimedwait(&s, &info, &ts);
    int e = errno;
    CHECKF(r == -1 && e == EAGAIN, "sigtimedwait returned %d errno %s, expected -1 EAGAIN", r,
           ename(e));
    sender_start(&snd, SIGUSR2, 30);
    OK(pthread_join(snd.t, NULL));
    r = sigwaitinfo(&s, &info);
    CHECKF(r == SIGUSR2 && info.si_signo == SIGUSR2 && info.si_pid == getpid(),
           "sigwaitinfo returned %d (signo %d pid %d)", r, info.si_signo, (int)info.si_pid);
    idler_stop(&i);
}

static void m_sigsuspend(void)
{
    install(SIGUSR1, SA_RESTART);
    sigset_t s = only(SIGUSR1), empty, now;
    sigemptyset(&empty);
    OK(pthread_sigmask(SIG_BLOCK, &s, NULL));
    struct idler i;
    idler_start(&i);
    struct sender snd;
    sender_start(&snd, SIGUSR1, 50);
    errno = 0;
    int r = sigsuspend(&empty);
    int e = errno;
    CHECKF(r == -1 && e == EINTR, "sigsuspend returned %d errno %s", r, ename(e));
    CHECK(got == SIGUSR1);
    OK(pthread_sigmask(SIG_SETMASK, NULL, &now));
    CHECK(sigismember(&now, SIGUSR1) == 1);
    OK(pthread_join(snd.t, NULL));
    idler_stop(&i);
}

static void m_pause(void)
{
    install(SIGUSR1, SA_RESTART);
    struct idler i;
    idler_start(&i);
    struct sender snd;
    sender_start(&snd, SIGUSR1, 50);
    errno = 0;
    int r = pause();
    int e = errno;
    CHECKF(r == -1 && e == EINTR, "pause returned %d errno %s", r, ename(e));
    CHECK(got == SIGUSR1);
    OK(pthread_join(snd.t, NULL));
    idler_stop(&i);
}

/* signal() (BSD semantics) restarts; siginterrupt(sig, 1) makes it interrupt. */
static void m_signal_siginterrupt(void)
{
    CHECK(signal(SIGUSR1, on_signal) != SIG_ERR);
    struct sigaction cur;
    CHECK(sigaction(SIGUSR1, NULL, &cur) == 0);
    CHECK(cur.sa_handler == on_signal && (cur.sa_flags & SA_RESTART));
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    CHECK(siginterrupt(SIGUSR1, 1) == 0);    /* old, but programs still call it */
#pragma GCC diagnostic pop
    CHECK(sigaction(SIGUSR1, NULL, &cur) == 0);
    CHECK(cur.sa_handler == on_signal && !(cur.sa_flags & SA_RESTART));
    struct idler i;
    idler_start(&i);
    int p[2];
    CHECK(pipe(p) == 0);
    struct sender snd;
    sender_start(&snd, SIGUSR1, 50);
    char c;
    errno = 0;
    ssize_t r = read(p[0], &c, 1);
    int e = errno;
    CHECKF(r == -1 && e == EINTR, "read returned %zd errno %s, expected -1 EINTR", r, ename(e));
    OK(pthread_join(snd.t, NULL));
    idler_stop(&i);
    close(p[0]);
    close(p[1]);
}

static const struct pt_mode modes[] = {
    { "accept_eintr", m_accept_eintr },
    { "accept_restart", m_accept_restart },
    { "read_itimer", m_read_itimer },
    { "poll_always_eintr", m_poll_always_eintr },
    { "nanosleep_rem", m_nanosleep_rem },
    { "sem_eintr", m_sem_eintr },
    { "pselect_mask", m_pselect_mask },
    { "mask_pending", m_mask_pending },
    { "worker_interrupted", m_worker_interrupted },
    { "kill_restart", m_kill_restart },
    { "rcvtimeo_eintr", m_rcvtimeo_eintr },
    { "sigwait_thread", m_sigwait_thread },
    { "sigsuspend", m_sigsuspend },
    { "pause", m_pause },
    { "signal_siginterrupt", m_signal_siginterrupt },
};

int main(int argc, char **argv)
{
    return pt_main(modes, sizeof modes / sizeof modes[0], argc, argv);
}
