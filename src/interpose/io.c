/* Hooks: read and write family, close, dup family, pipes, fcntl, ioctl. */
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "config.h"
#include "fdio.h"
#include "fileio.h"
#include "fdtab.h"
#include "gate.h"
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
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(read)(fd, buf, n);
    struct iovec v = { buf, n };
    return fdio_readv(s, fd, &v, 1);
}

HOOK ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    CATCH_HOLD();
    if (n > buflen)
        REAL(__chk_fail)();
    return read(fd, buf, n);
}

HOOK ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(readv)(fd, iov, cnt);
    return fdio_readv(s, fd, iov, cnt);
}

HOOK ssize_t write(int fd, const void *buf, size_t n)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(write)(fd, buf, n);
    struct iovec v = { (void *)buf, n };
    return fdio_writev(s, fd, &v, 1);
}

HOOK ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(writev)(fd, iov, cnt);
    return fdio_writev(s, fd, iov, cnt);
}

HOOK int close(int fd)
{
    CATCH_HOLD();
    GATE_HIDDEN_FD(fd);
    if (gate_any())
        fdtab_close(fd);
    return REAL(close)(fd);
}

HOOK int dup(int fd)
{
    CATCH_HOLD();
    GATE_HIDDEN_FD(fd);
    int r = REAL(dup)(fd);
    if (r >= 0 && gate_any())
        fdtab_dup(fd, r);
    return r;
}

HOOK int dup2(int fd, int to)
{
    CATCH_HOLD();
    GATE_HIDDEN_FD(fd);
    ownfd_evict(to);                   /* corun's file moves out of its way */
    struct sched *s = gate_any();
    if (s && fd != to)
        fdtab_close(to);
    int r = REAL(dup2)(fd, to);
    if (r >= 0 && s && fd != to)
        fdtab_dup(fd, to);
    return r;
}

HOOK int dup3(int fd, int to, int flags)
{
    CATCH_HOLD();
    GATE_HIDDEN_FD(fd);
    ownfd_evict(to);
    struct sched *s = gate_any();
    if (s && fd != to)
        fdtab_close(to);
    int r = REAL(dup3)(fd, to, flags);
    if (r >= 0 && s)
        fdtab_dup(fd, to);
    return r;
}

static void pipe_created(int p[2], int flags)
{
    if (ownfd_internal()) {            /* libuv's, made for corun */
        p[0] = ownfd_adopt(p[0]);
        p[1] = ownfd_adopt(p[1]);
        return;
    }
    if (!gate_any())
        return;
    fdtab_created(p[0], FD_PIPE, false, flags & O_NONBLOCK);
    fdtab_created(p[1], FD_PIPE, false, flags & O_NONBLOCK);
}

HOOK int pipe(int p[2])
{
    CATCH_HOLD();
    int r = REAL(pipe)(p);
    if (r == 0)
        pipe_created(p, 0);
    return r;
}

HOOK int pipe2(int p[2], int flags)
{
    CATCH_HOLD();
    int r = REAL(pipe2)(p, flags);
    if (r == 0)
        pipe_created(p, flags);
    return r;
}

/* fcntl's third argument is an int or a pointer; both travel as a long.
 * Unknown commands pass through untouched. */
static int fcntl_common(int r, int fd, int cmd, long arg)
{
    if (r < 0 || !gate_any())
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

/* A record lock's wait is made for real (corun cannot park it): one that
 * lasts hands the OS thread's other green threads over (CORUN_HANDOFF_MS). */
static inline bool lock_wait(int cmd)
{
    return cmd == F_SETLKW || cmd == F_OFD_SETLKW;
}

HOOK int fcntl(int fd, int cmd, ...)
{
    CATCH_HOLD();
    GATE_HIDDEN_FD(fd);
    va_list ap;
    va_start(ap, cmd);
    long arg = va_arg(ap, long);
    va_end(ap);
    if (lock_wait(cmd))
        sched_blocking_begin_here(SYS_fcntl);
    int r = REAL(fcntl)(fd, cmd, arg);
    sched_blocking_end();
    return fcntl_common(r, fd, cmd, arg);
}

HOOK int fcntl64(int fd, int cmd, ...)
{
    CATCH_HOLD();
    GATE_HIDDEN_FD(fd);
    va_list ap;
    va_start(ap, cmd);
    long arg = va_arg(ap, long);
    va_end(ap);
    if (lock_wait(cmd))
        sched_blocking_begin_here(SYS_fcntl);
    int r = REAL(fcntl64)(fd, cmd, arg);
    sched_blocking_end();
    return fcntl_common(r, fd, cmd, arg);
}

/* The terminal requests that wait for output to drain or a modem line to
 * change: made for real, they may block for long. */
static inline bool ioctl_waits(unsigned long req)
{
    return req == TCSBRK || req == TCSBRKP || req == TCSETSW || req == TCSETSF ||
           req == TCSETAW || req == TCSETAF || req == TIOCMIWAIT;
}

HOOK int ioctl(int fd, unsigned long req, ...)
{
    CATCH_HOLD();
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (ioctl_waits(req))
        sched_blocking_begin_here(SYS_ioctl);
    int r = REAL(ioctl)(fd, req, arg);
    sched_blocking_end();
    if (r == 0 && req == FIONBIO && arg && gate_any())
        fdtab_set_nonblock(fd, *(int *)arg != 0);
    return r;
}

/* ---- calls that create fds corun does not classify at once -----------------
 * Each forgets what the fd number meant before: it may have been closed where
 * corun could not see it (fclose, a raw syscall). Regular files pass
 * straight through afterwards. */

static int opened(int fd)
{
    if (fd >= 0 && ownfd_internal())
        return ownfd_adopt(fd);        /* libuv's, made for corun */
    if (fd >= 0 && gate_any())
        fdtab_opened(fd);
    return fd;
}

/* CORUN_FILE_IO=offload: the openat system call (which glibc's open family
 * makes) runs on the pool; else -2: the caller makes the real call. */
static int open_offloaded(int dir, const char *path, int flags, mode_t mode)
{
    struct sched *s = cr_config.file_io == FILE_IO_OFFLOAD ? gate_blocking() : NULL;
    if (!s)
        return -2;
    return opened((int)fileio_offload_syscall(s, SYS_openat, dir, (long)path, flags, mode, 0));
}

#define OPEN_OFFLOADED(dir, path, flags, mode)                   \
    do {                                                         \
        int fd_ = open_offloaded(dir, path, flags, mode);        \
        if (fd_ != -2)                                           \
            return fd_;                                          \
    } while (0)

static mode_t open_mode(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

REAL_DECL(int, open, (const char *, int, ...));
REAL_DECL(int, open64, (const char *, int, ...));
REAL_DECL(int, openat, (int, const char *, int, ...));
REAL_DECL(int, openat64, (int, const char *, int, ...));
REAL_DECL(int, __open_2, (const char *, int));
REAL_DECL(int, __open64_2, (const char *, int));
REAL_DECL(int, __openat_2, (int, const char *, int));
REAL_DECL(int, __openat64_2, (int, const char *, int));
REAL_DECL(int, creat, (const char *, mode_t));
REAL_DECL(int, creat64, (const char *, mode_t));
REAL_DECL(FILE *, fopen, (const char *, const char *));
REAL_DECL(FILE *, fopen64, (const char *, const char *));
REAL_DECL(FILE *, fdopen, (int, const char *));
REAL_DECL(FILE *, freopen, (const char *, const char *, FILE *));
REAL_DECL(FILE *, freopen64, (const char *, const char *, FILE *));
REAL_DECL(int, fclose, (FILE *));
REAL_DECL(void, closefrom, (int));

HOOK int open(const char *path, int flags, ...)
{
    CATCH_HOLD();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    OPEN_OFFLOADED(AT_FDCWD, path, flags, mode);
    return opened(REAL(open)(path, flags, mode));
}

HOOK int open64(const char *path, int flags, ...)
{
    CATCH_HOLD();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    OPEN_OFFLOADED(AT_FDCWD, path, flags, mode);
    return opened(REAL(open64)(path, flags, mode));
}

HOOK int openat(int dir, const char *path, int flags, ...)
{
    CATCH_HOLD();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    OPEN_OFFLOADED(dir, path, flags, mode);
    return opened(REAL(openat)(dir, path, flags, mode));
}

HOOK int openat64(int dir, const char *path, int flags, ...)
{
    CATCH_HOLD();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    OPEN_OFFLOADED(dir, path, flags, mode);
    return opened(REAL(openat64)(dir, path, flags, mode));
}

HOOK int __open_2(const char *path, int flags)
{
    CATCH_HOLD();
    OPEN_OFFLOADED(AT_FDCWD, path, flags, 0);
    return opened(REAL(__open_2)(path, flags));
}

HOOK int __open64_2(const char *path, int flags)
{
    CATCH_HOLD();
    OPEN_OFFLOADED(AT_FDCWD, path, flags, 0);
    return opened(REAL(__open64_2)(path, flags));
}

HOOK int __openat_2(int dir, const char *path, int flags)
{
    CATCH_HOLD();
    OPEN_OFFLOADED(dir, path, flags, 0);
    return opened(REAL(__openat_2)(dir, path, flags));
}

HOOK int __openat64_2(int dir, const char *path, int flags)
{
    CATCH_HOLD();
    OPEN_OFFLOADED(dir, path, flags, 0);
    return opened(REAL(__openat64_2)(dir, path, flags));
}

HOOK int creat(const char *path, mode_t mode)
{
    CATCH_HOLD();
    OPEN_OFFLOADED(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
    return opened(REAL(creat)(path, mode));
}

HOOK int creat64(const char *path, mode_t mode)
{
    CATCH_HOLD();
    OPEN_OFFLOADED(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
    return opened(REAL(creat64)(path, mode));
}

static FILE *stream_opened(FILE *f)
{
    if (f)
        opened(fileno(f));
    return f;
}

HOOK FILE *fopen(const char *path, const char *mode)
{
    CATCH_HOLD();
    return stream_opened(REAL(fopen)(path, mode));
}

HOOK FILE *fopen64(const char *path, const char *mode)
{
    CATCH_HOLD();
    return stream_opened(REAL(fopen64)(path, mode));
}

HOOK FILE *fdopen(int fd, const char *mode)
{
    CATCH_HOLD();
    return REAL(fdopen)(fd, mode);   /* same fd, same file: nothing to forget */
}

/* Whether this thread's system calls outside the hold are caught: then
 * the flush and close of fclose and freopen (glibc's own write and close)
 * run as the program's code, where the write parks on a full pipe or
 * socket and the close goes through the close hook (held around the real
 * call, the flush blocked the OS thread, and a reader there with it: a
 * hang, pt_catch stdio_fclose_full). */
static bool stream_close_caught(void)
{
    CATCH_HOLD();
    struct sched *s = gate_any();
    return s && s->catch_armed;
}

static FILE *stream_reopened(FILE *f)
{
    CATCH_HOLD();
    return stream_opened(f);
}

HOOK FILE *freopen(const char *path, const char *mode, FILE *f)
{
    if (stream_close_caught())
        return stream_reopened(REAL(freopen)(path, mode, f));
    CATCH_HOLD();
    if (f && gate_any())
        fdtab_close(fileno(f));
    return stream_opened(REAL(freopen)(path, mode, f));
}

HOOK FILE *freopen64(const char *path, const char *mode, FILE *f)
{
    if (stream_close_caught())
        return stream_reopened(REAL(freopen64)(path, mode, f));
    CATCH_HOLD();
    if (f && gate_any())
        fdtab_close(fileno(f));
    return stream_opened(REAL(freopen64)(path, mode, f));
}

HOOK int fclose(FILE *f)
{
    if (stream_close_caught())
        return REAL(fclose)(f);
    CATCH_HOLD();
    int fd = f ? fileno(f) : -1;
    if (fd >= 0 && gate_any())
        fdtab_close(fd);
    return REAL(fclose)(f);
}

HOOK int close_range(unsigned first, unsigned last, int flags)
{
    CATCH_HOLD();
    if (gate_any() && !(flags & CLOSE_RANGE_CLOEXEC))
        for (unsigned fd = first; fd <= last && fd < (1u << 20); fd++)
            fdtab_close((int)fd);
    return ownfd_close_range(first, last, (unsigned)flags);
}

HOOK void closefrom(int low)
{
    CATCH_HOLD();
    if (gate_any())
        for (int fd = low < 0 ? 0 : low; fd < (1 << 20); fd++)
            fdtab_close(fd);
    /* glibc's closefrom is close_range(low, ~0U): it would take corun's fds
     * along. Its fallback (no close_range: before Linux 5.9) walks
     * /proc/self/fd and does too. */
    int saved = errno;
    if (ownfd_close_range(low < 0 ? 0 : (unsigned)low, ~0U, 0) != 0)
        REAL(closefrom)(low);
    errno = saved;
}

REAL_DECL(int, eventfd, (unsigned, int));
REAL_DECL(int, signalfd, (int, const sigset_t *, int));
REAL_DECL(int, timerfd_create, (int, int));
REAL_DECL(int, epoll_create, (int));
REAL_DECL(int, epoll_create1, (int));
REAL_DECL(int, memfd_create, (const char *, unsigned));
REAL_DECL(int, inotify_init, (void));
REAL_DECL(int, inotify_init1, (int));

HOOK int eventfd(unsigned initval, int flags)
{
    CATCH_HOLD();
    return opened(REAL(eventfd)(initval, flags));
}

HOOK int signalfd(int fd, const sigset_t *mask, int flags)
{
    CATCH_HOLD();
    int r = REAL(signalfd)(fd, mask, flags);
    return fd == -1 ? opened(r) : r;   /* -1 makes a new fd; else fd is updated */
}

HOOK int timerfd_create(int clock, int flags)
{
    CATCH_HOLD();
    return opened(REAL(timerfd_create)(clock, flags));
}

HOOK int epoll_create(int size)
{
    CATCH_HOLD();
    return opened(REAL(epoll_create)(size));
}

HOOK int epoll_create1(int flags)
{
    CATCH_HOLD();
    return opened(REAL(epoll_create1)(flags));
}

HOOK int memfd_create(const char *name, unsigned flags)
{
    CATCH_HOLD();
    return opened(REAL(memfd_create)(name, flags));
}

HOOK int inotify_init(void)
{
    CATCH_HOLD();
    return opened(REAL(inotify_init)());
}

HOOK int inotify_init1(int flags)
{
    CATCH_HOLD();
    return opened(REAL(inotify_init1)(flags));
}

/* vfork's child borrows the parent's memory: a hook running there (close,
 * dup2 before exec) would change the parent's fd table and scheduler. A
 * fork is always a correct vfork, and corun's fork handler gives the child
 * state of its own. */
REAL_DECL(pid_t, fork, (void));

HOOK pid_t vfork(void)
{
    CATCH_HOLD();
    return REAL(fork)();
}
