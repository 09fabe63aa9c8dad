/* connect, and waiting until an fd is ready as a blocking call would. */
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

int fdio_connect(struct sched *s, int fd, const struct sockaddr *addr, socklen_t len)
{
    struct fd_entry *e = io_entry(fd);
    if (!e || e->kind != FD_SOCKET || !e->created || e->shared)   /* O_NONBLOCK not ours to flip */
        return (int)syscall(SYS_connect, fd, addr, len);
    int saved = errno;
    fdtab_lock(fd);                      /* against another OS thread's flip (M:N) */
    int fl = rs_fcntl(fd, F_GETFL, 0);
    if (fl < 0 || (fl & O_NONBLOCK) || rs_fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
        fdtab_unlock(fd);
        if (fl >= 0 && (fl & O_NONBLOCK))   /* the program's own: it expects EINPROGRESS */
            return (int)syscall(SYS_connect, fd, addr, len);
        return -1;
    }
    int r = (int)syscall(SYS_connect, fd, addr, len);
    int err = errno;
    rs_fcntl(fd, F_SETFL, fl);
    fdtab_unlock(fd);
    if (r == 0) {
        errno = saved;
        return 0;
    }
    if (err == EAGAIN)                   /* AF_UNIX backlog full: only the blocking call waits for room */
        return (int)syscall(SYS_connect, fd, addr, len);
    if (err != EINPROGRESS) {
        errno = err;
        return -1;
    }
    uint64_t deadline = 0;
    do {
        e->wr_ready = false;
        int a = io_await(s, fd, e, true, &deadline);
        if (a < 0) {
            if (errno == EAGAIN)         /* SO_SNDTIMEO expired: as the kernel says it */
                errno = EINPROGRESS;
            return -1;
        }
        if (a > 0) {
            struct pollfd p = { .fd = fd, .events = POLLOUT };
            syscall(SYS_ppoll, &p, 1, NULL, NULL, 8);
            break;
        }
    } while (!rs_poll_now(fd, POLLOUT));
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
        return -1;
    if (soerr) {
        errno = soerr;
        return -1;
    }
    errno = saved;
    return 0;
}

/* Wait (as a blocking call would) until fd can be read or written. */
int wait_until_ready(struct sched *s, int fd, bool wr)
{
    struct fd_entry *e = io_entry(fd);
    if (!e)
        return 0;
    uint64_t deadline = 0;
    while (!rs_poll_now(fd, wr ? POLLOUT : POLLIN)) {
        if (wr)
            e->wr_ready = false;
        else
            e->rd_ready = false;
        int a = io_await(s, fd, e, wr, &deadline);
        if (a < 0)
            return -1;
        if (a > 0)
            return 0;
    }
    return 0;
}
