/* Hooks: read and write family, close, dup family, pipes, fcntl, ioctl. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fdio.h"
#include "fdtab.h"
#include "real.h"
#include "sched.h"

REAL_DECL(ssize_t, read, (int, void *, size_t));
REAL_DECL(ssize_t, readv, (int, const struct iovec *, int));
REAL_DECL(ssize_t, write, (int, const void *, size_t));
REAL_DECL(ssize_t, writev, (int, const struct iovec *, int));
REAL_DECL(int, close, (int));
REAL_DECL(int, dup, (int));
REAL_DECL(int, dup2, (int, int));
REAL_DECL(int, dup3, (int, int, int));
REAL_DECL(int, pipe, (int[2]));
REAL_DECL(int, pipe2, (int[2], int));
REAL_DECL(int, fcntl, (int, int, ...));
REAL_DECL(int, fcntl64, (int, int, ...));
REAL_DECL(int, ioctl, (int, unsigned long, ...));
REAL_DECL(void, __chk_fail, (void));

HOOK ssize_t read(int fd, void *buf, size_t n)
{
    struct sched *s = sched_for_hook();
    if (!s)
        return REAL(read)(fd, buf, n);
    struct iovec v = { buf, n };
    return fdio_readv(s, fd, &v, 1);
}

HOOK ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    if (n > buflen)
        REAL(__chk_fail)();
    return read(fd, buf, n);
}

HOOK ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
    struct sched *s = sched_for_hook();
    if (!s)
        return REAL(readv)(fd, iov, cnt);
    return fdio_readv(s, fd, iov, cnt);
}

HOOK ssize_t write(int fd, const void *buf, size_t n)
{
    struct sched *s = sched_for_hook();
    if (!s)
        return REAL(write)(fd, buf, n);
    struct iovec v = { (void *)buf, n };
    return fdio_writev(s, fd, &v, 1);
}

HOOK ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    struct sched *s = sched_for_hook();
    if (!s)
        return REAL(writev)(fd, iov, cnt);
    return fdio_writev(s, fd, iov, cnt);
}

HOOK int close(int fd)
{
    if (sched_for_hook())
        fdtab_close(fd);
    return REAL(close)(fd);
}

HOOK int dup(int fd)
{
    int r = REAL(dup)(fd);
    if (r >= 0 && sched_for_hook())
        fdtab_dup(fd, r);
    return r;
}

HOOK int dup2(int fd, int to)
{
    struct sched *s = sched_for_hook();
    if (s && fd != to)
        fdtab_close(to);
    int r = REAL(dup2)(fd, to);
    if (r >= 0 && s && fd != to)
        fdtab_dup(fd, to);
    return r;
}

HOOK int dup3(int fd, int to, int flags)
{
    struct sched *s = sched_for_hook();
    if (s && fd != to)
        fdtab_close(to);
    int r = REAL(dup3)(fd, to, flags);
    if (r >= 0 && s)
        fdtab_dup(fd, to);
    return r;
}

static void pipe_created(const int p[2], int flags)
{
    if (!sched_for_hook())
        return;
    fdtab_created(p[0], FD_PIPE, false, flags & O_NONBLOCK);
    fdtab_created(p[1], FD_PIPE, false, flags & O_NONBLOCK);
}

HOOK int pipe(int p[2])
{
    int r = REAL(pipe)(p);
    if (r == 0)
        pipe_created(p, 0);
    return r;
}

HOOK int pipe2(int p[2], int flags)
{
    int r = REAL(pipe2)(p, flags);
    if (r == 0)
        pipe_created(p, flags);
    return r;
}

/* fcntl's third argument is an int or a pointer; both travel as a long.
 * Unknown commands pass through untouched. */
static int fcntl_common(int r, int fd, int cmd, long arg)
{
    if (r < 0 || !sched_for_hook())
        return r;
    switch (cmd) {
    case F_SETFL:
        fdtab_set_nonblock(fd, arg & O_NONBLOCK);
        break;
    case F_DUPFD:
    case F_DUPFD_CLOEXEC:
        fdtab_dup(fd, r);
        break;
    default:
        break;
    }
    return r;
}

HOOK int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    long arg = va_arg(ap, long);
    va_end(ap);
    return fcntl_common(REAL(fcntl)(fd, cmd, arg), fd, cmd, arg);
}

HOOK int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    long arg = va_arg(ap, long);
    va_end(ap);
    return fcntl_common(REAL(fcntl64)(fd, cmd, arg), fd, cmd, arg);
}

HOOK int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int r = REAL(ioctl)(fd, req, arg);
    if (r == 0 && req == FIONBIO && arg && sched_for_hook())
        fdtab_set_nonblock(fd, *(int *)arg != 0);
    return r;
}
