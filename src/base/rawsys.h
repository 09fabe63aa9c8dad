/* Raw system calls for the runtime. The runtime never calls the libc
 * functions corun interposes (read, send, fcntl, poll, ...): inside
 * libcorun.so such a call would land in corun's own hook. A raw syscall
 * cannot, and its semantics are exactly the kernel's. Each returns -1 with
 * errno set on failure, as libc does. */
#ifndef CR_RAWSYS_H
#define CR_RAWSYS_H

#include <fcntl.h>
#include <stdbool.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* What the layers' syscall() calls are (rawsys.c). */
long raw_syscall(long nr, ...);

/* An asymmetric fence: a fast side that only stores then loads (with a
 * compiler barrier between), and a rare slow side that stores, runs
 * rs_membarrier() (a full barrier on every running thread of the process),
 * then loads: each sees the other's store, or the fast side's load comes
 * after the barrier and sees the slow side's. rs_membarrier_ready() says,
 * once and for good, whether the kernel has it (it registers the process);
 * after a yes, rs_membarrier() fails only if the kernel changed its mind. */
bool rs_membarrier_ready(void);
bool rs_membarrier(void);

static inline ssize_t rs_readv(int fd, const struct iovec *iov, int cnt)
{
    return syscall(SYS_readv, fd, iov, cnt);
}

static inline ssize_t rs_writev(int fd, const struct iovec *iov, int cnt)
{
    return syscall(SYS_writev, fd, iov, cnt);
}

/* readv/writev at the current position, never waiting (RWF_NOWAIT). */
static inline ssize_t rs_readv_nowait(int fd, const struct iovec *iov, int cnt)
{
    return syscall(SYS_preadv2, fd, iov, cnt, -1L, -1L, RWF_NOWAIT);
}

static inline ssize_t rs_writev_nowait(int fd, const struct iovec *iov, int cnt)
{
    return syscall(SYS_pwritev2, fd, iov, cnt, -1L, -1L, RWF_NOWAIT);
}

static inline ssize_t rs_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *a,
                                  socklen_t *al)
{
    return syscall(SYS_recvfrom, fd, buf, n, flags, a, al);
}

static inline ssize_t rs_sendto(int fd, const void *buf, size_t n, int flags,
                                const struct sockaddr *a, socklen_t al)
{
    return syscall(SYS_sendto, fd, buf, n, flags, a, al);
}

static inline ssize_t rs_recvmsg(int fd, struct msghdr *m, int flags)
{
    return syscall(SYS_recvmsg, fd, m, flags);
}

static inline ssize_t rs_sendmsg(int fd, const struct msghdr *m, int flags)
{
    return syscall(SYS_sendmsg, fd, m, flags);
}

static inline int rs_fcntl(int fd, int cmd, long arg)
{
    return (int)syscall(SYS_fcntl, fd, cmd, arg);
}

static inline short rs_poll_now(int fd, short events)
{
    struct pollfd p = { .fd = fd, .events = events, .revents = 0 };
    struct timespec zero = { 0, 0 };
    if (syscall(SYS_ppoll, &p, 1, &zero, NULL, 8) < 0)
        return 0;
    return p.revents;
}

/* A small file (a /proc one) read into buf, NUL-terminated: its length,
 * or -1. */
static inline ssize_t rs_read_file(const char *path, char *buf, size_t size)
{
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = syscall(SYS_read, fd, buf, size - 1);
    syscall(SYS_close, fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}


/* Memory mappings. libcorun hooks these for the program (interpose/plain.c:
 * a call costs a hook, not a caught signal); the layers make them raw.
 * Sanitizer builds have no such hooks (nor the catch) and call libc's,
 * which their runtime intercepts to keep its shadow memory right. */
#include <sys/mman.h>
#ifdef CORUN_SANITIZERS
#define rs_mmap mmap
#define rs_munmap munmap
#define rs_mprotect mprotect
#define rs_madvise madvise
#else
static inline void *rs_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

static inline int rs_munmap(void *addr, size_t len)
{
    return (int)syscall(SYS_munmap, addr, len);
}

static inline int rs_mprotect(void *addr, size_t len, int prot)
{
    return (int)syscall(SYS_mprotect, addr, len, prot);
}

static inline int rs_madvise(void *addr, size_t len, int advice)
{
    return (int)syscall(SYS_madvise, addr, len, advice);
}
#endif

/* Copy n bytes from the program's pointer src without faulting: false
 * (errno EFAULT) where the kernel would have said EFAULT for the call
 * whose argument it is (a process reading its own memory by
 * process_vm_readv gets EFAULT, not a signal). */
static inline bool rs_user_read(void *dst, const void *src, size_t n)
{
    struct iovec local = { dst, n }, remote = { (void *)src, n };
    return raw_syscall(SYS_process_vm_readv, (long)getpid(), &local, 1L, &remote, 1L, 0L) == (long)n;
}

#endif
