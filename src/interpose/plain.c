/*
 * Hooks: calls that never block, made often (memory mappings, file
 * offsets, socket names, the terminal test). corun has nothing to do with
 * them but to keep its own fds hidden; they are hooked so that, on an OS
 * thread under the catch (src/core/catch.h), a program's call costs a
 * function call instead of a caught signal (one to two microseconds): the
 * hold, then libc. Calls glibc makes inside its own functions still reach
 * the catch. Sanitizer builds run without the catch and leave the memory
 * calls to their runtime's interceptors.
 */
#include <errno.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gate.h"
#include "rawsys.h"

/* A hook that passes the call on as it is. */
#define PASS_THROUGH(ret, name, params, args)  \
    REAL_DECL(ret, name, params);              \
    HOOK ret name params                       \
    {                                          \
        CATCH_HOLD();                          \
        return REAL(name) args;                \
    }

/* corun's own fds do not exist for the program; libuv's calls on them
 * (its epoll set, from the loop) are corun's. */
#define HIDDEN_FROM_CALLER(fd) \
    (ownfd_hidden(fd) && !caller_is_foreign(__builtin_return_address(0)))

/* The same for a call on an fd, which must not be one of corun's. */
#define PASS_THROUGH_FD(ret, name, params, args, fd) \
    REAL_DECL(ret, name, params);                    \
    HOOK ret name params                             \
    {                                                \
        CATCH_HOLD();                                \
        if (HIDDEN_FROM_CALLER(fd)) {                \
            errno = EBADF;                           \
            return -1;                               \
        }                                            \
        return REAL(name) args;                      \
    }

#ifndef CORUN_SANITIZERS
/* The memory calls are made raw (what libc's wrappers do): an allocator's
 * first mmap, before anything is resolved, must not go through dlsym. */
HOOK int munmap(void *a, size_t n)
{
    CATCH_HOLD();
    return (int)raw_syscall(SYS_munmap, a, n);
}

HOOK int mprotect(void *a, size_t n, int prot)
{
    CATCH_HOLD();
    return (int)raw_syscall(SYS_mprotect, a, n, prot);
}

HOOK int madvise(void *a, size_t n, int advice)
{
    CATCH_HOLD();
    return (int)raw_syscall(SYS_madvise, a, n, advice);
}
#endif

PASS_THROUGH(char *, getcwd, (char *buf, size_t n), (buf, n))
PASS_THROUGH_FD(off_t, lseek, (int fd, off_t off, int whence), (fd, off, whence), fd)
PASS_THROUGH_FD(off64_t, lseek64, (int fd, off64_t off, int whence), (fd, off, whence), fd)
PASS_THROUGH_FD(int, getsockname, (int fd, struct sockaddr *a, socklen_t *al), (fd, a, al), fd)
PASS_THROUGH_FD(int, getpeername, (int fd, struct sockaddr *a, socklen_t *al), (fd, a, al), fd)

/* isatty fails with 0 (errno EBADF), not -1. */
REAL_DECL(int, isatty, (int));

HOOK int isatty(int fd)
{
    CATCH_HOLD();
    if (HIDDEN_FROM_CALLER(fd)) {
        errno = EBADF;
        return 0;
    }
    return REAL(isatty)(fd);
}

/* A program's own epoll set (Redis registers each connection): neither the
 * set nor the fd may be corun's. */
REAL_DECL(int, epoll_ctl, (int, int, int, struct epoll_event *));

HOOK int epoll_ctl(int ep, int op, int fd, struct epoll_event *ev)
{
    CATCH_HOLD();
    if (HIDDEN_FROM_CALLER(ep) || HIDDEN_FROM_CALLER(fd)) {
        errno = EBADF;
        return -1;
    }
    return REAL(epoll_ctl)(ep, op, fd, ev);
}

#ifndef CORUN_SANITIZERS
/* An anonymous mapping takes fd -1; a file's must not be corun's. (mmap64
 * is the same call on x86_64: off_t is 64 bits.) */
HOOK void *mmap(void *a, size_t n, int prot, int flags, int fd, off_t off)
{
    CATCH_HOLD();
    if (!(flags & MAP_ANONYMOUS) && HIDDEN_FROM_CALLER(fd)) {
        errno = EBADF;
        return MAP_FAILED;
    }
    return (void *)raw_syscall(SYS_mmap, a, n, prot, flags, fd, off);
}

HOOK void *mmap64(void *a, size_t n, int prot, int flags, int fd, off64_t off)
    __attribute__((alias("mmap")));

/* mremap's fifth argument is there with MREMAP_FIXED or MREMAP_DONTUNMAP
 * only. */
REAL_DECL(void *, mremap, (void *, size_t, size_t, int, ...));

HOOK void *mremap(void *old, size_t old_n, size_t n, int flags, ...)
{
    CATCH_HOLD();
    void *at = NULL;
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
    if (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) {
        va_list ap;
        va_start(ap, flags);
        at = va_arg(ap, void *);
        va_end(ap);
    }
    return REAL(mremap)(old, old_n, n, flags, at);
}

#endif
