/* Hooks: sockets. */
#include <errno.h>
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "fdio.h"
#include "fdtab.h"
#include "gate.h"
#include "real.h"
#include "sched.h"

REAL_DECL(int, socket, (int, int, int));
REAL_DECL(int, socketpair, (int, int, int, int[2]));
REAL_DECL(int, accept, (int, struct sockaddr *, socklen_t *));
REAL_DECL(int, accept4, (int, struct sockaddr *, socklen_t *, int));
REAL_DECL(int, connect, (int, const struct sockaddr *, socklen_t));
REAL_DECL(ssize_t, recv, (int, void *, size_t, int));
REAL_DECL(ssize_t, recvfrom, (int, void *, size_t, int, struct sockaddr *, socklen_t *));
REAL_DECL(ssize_t, recvmsg, (int, struct msghdr *, int));
REAL_DECL(int, recvmmsg, (int, struct mmsghdr *, unsigned, int, struct timespec *));
REAL_DECL(ssize_t, send, (int, const void *, size_t, int));
REAL_DECL(ssize_t, sendto, (int, const void *, size_t, int, const struct sockaddr *, socklen_t));
REAL_DECL(ssize_t, sendmsg, (int, const struct msghdr *, int));
REAL_DECL(int, sendmmsg, (int, struct mmsghdr *, unsigned, int));
REAL_DECL(int, shutdown, (int, int));
REAL_DECL(int, setsockopt, (int, int, int, const void *, socklen_t));
REAL_DECL(int, getsockopt, (int, int, int, void *, socklen_t *));
REAL_DECL(ssize_t, sendfile, (int, int, off_t *, size_t));
REAL_DECL(ssize_t, sendfile64, (int, int, off_t *, size_t));
REAL_DECL(ssize_t, splice, (int, loff_t *, int, loff_t *, size_t, unsigned));
REAL_DECL(ssize_t, tee, (int, int, size_t, unsigned));
REAL_DECL(ssize_t, vmsplice, (int, const struct iovec *, size_t, unsigned));
REAL_DECL(void, __chk_fail, (void));

static bool is_stream(int type)
{
    return (type & 0xf) == SOCK_STREAM;
}

HOOK int socket(int domain, int type, int proto)
{
    CATCH_HOLD();
    int fd = REAL(socket)(domain, type, proto);
    if (fd >= 0 && gate_any())
        fdtab_created(fd, FD_SOCKET, is_stream(type), type & SOCK_NONBLOCK);
    return fd;
}

HOOK int socketpair(int domain, int type, int proto, int sv[2])
{
    CATCH_HOLD();
    int r = REAL(socketpair)(domain, type, proto, sv);
    if (r == 0 && gate_any()) {
        fdtab_created(sv[0], FD_SOCKET, is_stream(type), type & SOCK_NONBLOCK);
        fdtab_created(sv[1], FD_SOCKET, is_stream(type), type & SOCK_NONBLOCK);
    }
    return r;
}

/* Accepted sockets are recorded even when the real call is made: they are
 * the program's own, not shared with anyone. */
static int accepted(int lfd, int fd, int flags)
{
    if (fd >= 0 && gate_any())
        fdtab_accepted(lfd, fd, flags);
    return fd;
}

/* fdio_accept, its parks counted and shown as accept waits. */
static int accept_described(struct sched *s, int fd, struct sockaddr *addr, socklen_t *len,
                            int flags)
{
    sched_wait_hint(s, WAIT_ACCEPT);
    int r = fdio_accept(s, fd, addr, len, flags);
    sched_wait_hint(s, WAIT_OTHER);
    return r;
}

HOOK int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return accepted(fd, REAL(accept)(fd, addr, len), 0);
    return accept_described(s, fd, addr, len, 0);
}

HOOK int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return accepted(fd, REAL(accept4)(fd, addr, len, flags), flags);
    return accept_described(s, fd, addr, len, flags);
}

HOOK int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(connect)(fd, addr, len);
    sched_wait_hint(s, WAIT_CONNECT);
    int r = fdio_connect(s, fd, addr, len);
    sched_wait_hint(s, WAIT_OTHER);
    return r;
}

HOOK ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(recv)(fd, buf, n, flags);
    return fdio_recvfrom(s, fd, buf, n, flags, NULL, NULL);
}

HOOK ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
    CATCH_HOLD();
    if (n > buflen)
        REAL(__chk_fail)();
    return recv(fd, buf, n, flags);
}

HOOK ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *from,
                      socklen_t *fromlen)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(recvfrom)(fd, buf, n, flags, from, fromlen);
    return fdio_recvfrom(s, fd, buf, n, flags, from, fromlen);
}

HOOK ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
                            struct sockaddr *from, socklen_t *fromlen)
{
    CATCH_HOLD();
    if (n > buflen)
        REAL(__chk_fail)();
    return recvfrom(fd, buf, n, flags, from, fromlen);
}

HOOK ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(recvmsg)(fd, m, flags);
    return fdio_recvmsg(s, fd, m, flags);
}

HOOK int recvmmsg(int fd, struct mmsghdr *v, unsigned n, int flags, struct timespec *t)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(recvmmsg)(fd, v, n, flags, t);
    return fdio_recvmmsg(s, fd, v, n, flags, t);
}

HOOK ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(send)(fd, buf, n, flags);
    return fdio_sendto(s, fd, buf, n, flags, NULL, 0);
}

HOOK ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *to,
                    socklen_t tolen)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(sendto)(fd, buf, n, flags, to, tolen);
    return fdio_sendto(s, fd, buf, n, flags, to, tolen);
}

HOOK ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(sendmsg)(fd, m, flags);
    return fdio_sendmsg(s, fd, m, flags);
}

HOOK int sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(sendmmsg)(fd, v, n, flags);
    return fdio_sendmmsg(s, fd, v, n, flags);
}

/* The kernel does not always signal the socket's own waiters (a writer
 * parked on it after shutdown(SHUT_WR)): wake them to try again and get
 * the kernel's answer. */
HOOK int shutdown(int fd, int how)
{
    CATCH_HOLD();
    int r = REAL(shutdown)(fd, how);
    if (r == 0 && gate_any())
        fdtab_shutdown(fd, how);
    return r;
}

static bool timeout_ns(int name, const void *val, socklen_t len, bool *write, int64_t *ns)
{
    if (name == SO_RCVTIMEO_OLD || name == SO_SNDTIMEO_OLD) {
        if (len < sizeof(struct timeval))
            return false;
        const struct timeval *tv = val;
        *ns = tv_to_ns(tv);
    } else if (name == SO_RCVTIMEO_NEW || name == SO_SNDTIMEO_NEW) {
        if (len < 2 * sizeof(long long))
            return false;
        const long long *tv = val;       /* struct __kernel_sock_timeval */
        *ns = tv[0] * 1000000000 + tv[1] * 1000;
    } else {
        return false;
    }
    *write = name == SO_SNDTIMEO_OLD || name == SO_SNDTIMEO_NEW;
    return true;
}

HOOK int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    CATCH_HOLD();
    int r = REAL(setsockopt)(fd, level, name, val, len);
    bool wr;
    int64_t ns;
    if (r == 0 && level == SOL_SOCKET && gate_any() && timeout_ns(name, val, len, &wr, &ns))
        fdtab_set_timeout(fd, wr, ns);
    return r;
}

HOOK int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    CATCH_HOLD();
    return REAL(getsockopt)(fd, level, name, val, len);
}

HOOK ssize_t sendfile(int out, int in, off_t *off, size_t count)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(sendfile)(out, in, off, count);
    return fdio_sendfile(s, out, in, off, count);
}

HOOK ssize_t sendfile64(int out, int in, off_t *off, size_t count)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(sendfile64)(out, in, off, count);
    return fdio_sendfile(s, out, in, off, count);
}

HOOK ssize_t splice(int in, loff_t *inoff, int out, loff_t *outoff, size_t len, unsigned flags)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(splice)(in, inoff, out, outoff, len, flags);
    return fdio_splice(s, in, inoff, out, outoff, len, flags);
}

HOOK ssize_t tee(int in, int out, size_t len, unsigned flags)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(tee)(in, out, len, flags);
    return fdio_tee(s, in, out, len, flags);
}

HOOK ssize_t vmsplice(int fd, const struct iovec *iov, size_t cnt, unsigned flags)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s)
        return REAL(vmsplice)(fd, iov, cnt, flags);
    return fdio_vmsplice(s, fd, iov, cnt, flags);
}
