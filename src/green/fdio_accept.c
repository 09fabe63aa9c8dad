/* accept: O_NONBLOCK around the one call on sockets the program made;
 * on descriptions shared with other processes, poll then the real accept
 * under the kick timer (which also bounds splice into a socket). */
#include "fdio_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "fdtab.h"
#include "fileio.h"
#include "gsignal.h"
#include "gthread.h"
#include "rawsys.h"
#include "real.h"
#include "sched.h"

/* accept4 that cannot block: O_NONBLOCK set around this one call, then put
 * back as it was (only on sockets the program created, see fdio.h). */
static int accept_nowait(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    /* Threads on other OS threads (M:N) accepting on the same socket must
     * not see each other's flag, nor put back the wrong one. */
    fdtab_lock(fd);
    int fl = rs_fcntl(fd, F_GETFL, 0);
    if (fl < 0 || (!(fl & O_NONBLOCK) && rs_fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)) {
        int err = errno;
        fdtab_unlock(fd);
        errno = err;
        return -1;
    }
    int r = (int)syscall(SYS_accept4, fd, addr, len, flags);
    int err = errno;
    if (!(fl & O_NONBLOCK))
        rs_fcntl(fd, F_SETFL, fl);
    fdtab_unlock(fd);
    errno = err;
    return r;
}

/*
 * accept on a file description other processes may share (inherited, or
 * any after fork): accept has no per-call non-blocking flag, and its
 * O_NONBLOCK is not ours to flip, since another process's blocking accept
 * that starts meanwhile would fail with EAGAIN. So poll first, then make
 * the real call under a one-shot timer whose signal (CORUN_KICK_SIGNAL, a
 * handler without SA_RESTART) interrupts it if another process took the
 * connection poll promised: the OS thread blocks for KICK_NS at most.
 */
#ifndef sigev_notify_thread_id          /* glibc before 2.35 does not name it */
#define sigev_notify_thread_id _sigev_un._tid
#endif
__thread volatile sig_atomic_t kicked __attribute__((tls_model("initial-exec")));


static struct sched_part part = { .sched_size = sizeof(struct kick_sched) };
SCHED_PART(part);

struct kick_sched *ks(const struct sched *s)
{
    return sched_part(s, &part);
}

static void kick_sched_destroyed(struct sched *s)
{
    if (ks(s)->made)
        timer_delete(ks(s)->timer);
}

static void kick_fork_child(struct sched *s)
{
    if (s)
        ks(s)->made = false;         /* timers are not inherited */
}

/* Its scheduler went to another OS thread (handoff.c): the timer signals
 * the old one's tid; a new one is made at the next use. */
static void kick_rehomed(struct sched *s)
{
    if (ks(s)->made)
        timer_delete(ks(s)->timer);
    ks(s)->made = false;
}

static const struct sched_observer observer = {
    .sched_destroyed = kick_sched_destroyed,
    .fork_child = kick_fork_child,
    .rehomed = kick_rehomed,
};
SCHED_OBSERVER(observer);

static void kick_handler(int sig)
{
    (void)sig;
    kicked = 1;
}

/* The scheduler's kick timer, made on first use; false if it cannot be. */
bool kick_timer_ready(struct sched *s)
{
    static int handler_installed;
    if (ks(s)->made)
        return true;
    if (!__atomic_load_n(&handler_installed, __ATOMIC_ACQUIRE)) {
        struct sigaction sa = { .sa_handler = kick_handler };
        sigemptyset(&sa.sa_mask);
        if (libc_sigaction(CORUN_KICK_SIGNAL, &sa, NULL) != 0)
            return false;
        __atomic_store_n(&handler_installed, 1, __ATOMIC_RELEASE);
    }
    struct sigevent ev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = CORUN_KICK_SIGNAL };
    ev.sigev_notify_thread_id = s->tid;
    if (timer_create(CLOCK_MONOTONIC, &ev, &ks(s)->timer) != 0)
        return false;
    ks(s)->made = true;
    return true;
}

/* The real accept4, interrupted after KICK_NS; *lost if the timer did it. */
static int accept_kicked(struct sched *s, int fd, struct sockaddr *addr, socklen_t *len, int flags,
                         bool *lost)
{
    *lost = false;
    if (!kick_timer_ready(s))
        return (int)syscall(SYS_accept4, fd, addr, len, flags);   /* may block: still right */
    struct itimerspec arm = { .it_value = { 0, KICK_NS } }, off = { 0 };
    kicked = 0;
    timer_settime(ks(s)->timer, 0, &arm, NULL);
    int r = (int)syscall(SYS_accept4, fd, addr, len, flags);
    int err = errno;
    timer_settime(ks(s)->timer, 0, &off, NULL);
    *lost = r < 0 && err == EINTR && kicked;
    errno = err;
    return r;
}

int fdio_accept(struct sched *s, int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    struct fd_entry *e = io_entry(fd);
    if (!e || e->kind != FD_SOCKET)
        return (int)syscall(SYS_accept4, fd, addr, len, flags);
    int saved = errno;
    uint64_t deadline = 0;
    int r;
    if (known_unready(s, e, false)) {
        int a = io_await(s, fd, e, false, &deadline);
        if (a < 0)
            return -1;
        if (a > 0)
            goto blocking;
    }
    for (;;) {
        if (e->created && !e->shared) {
            r = accept_nowait(fd, addr, len, flags);
        } else if (rs_poll_now(fd, POLLIN)) {
            bool lost;
            r = accept_kicked(s, fd, addr, len, flags, &lost);
            if (lost)
                errno = EAGAIN;         /* another process took it: wait again */
        } else {
            r = -1;
            errno = EAGAIN;
        }
        if (r >= 0)
            break;
        if (errno != EAGAIN)
            return -1;
        e->rd_ready = false;
        int a = io_await(s, fd, e, false, &deadline);
        if (a < 0)
            return -1;
        if (a > 0)
            goto blocking;
    }
    goto accepted;
blocking:
    r = (int)syscall(SYS_accept4, fd, addr, len, flags);
    if (r < 0)
        return -1;
accepted:
    fdtab_accepted(fd, r, flags);
    errno = saved;
    return r;
}
