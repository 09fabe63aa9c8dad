/* Inside the fd I/O files (fdio.c: the engine; fdio_accept.c,
 * fdio_connect.c, fdio_xfer.c, fdio_wait.c): what they share. Never
 * included outside them. */
#ifndef CR_FDIO_INT_H
#define CR_FDIO_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "fdio.h"
#include "fdtab.h"
#include "sched.h"

/*
 * One call, attempted without blocking (nowait) or as the real blocking call.
 * `extra` adds MSG_* flags on sockets (MSG_NOSIGNAL after partial progress).
 */
struct io_op {
    ssize_t (*attempt)(struct io_op *op, bool nowait, int extra);
    int fd;
    bool sock;
    int flags;
    const struct iovec *iov;
    int cnt;
    void *buf;
    size_t n;
    struct sockaddr *from;
    socklen_t *fromlen;
    const struct sockaddr *to;
    socklen_t tolen;
    struct msghdr *msg;
};

/* ---- fdio.c */
int io_await(struct sched *s, int fd, struct fd_entry *e, bool wr, uint64_t *deadline);
ssize_t io_write(struct sched *s, struct io_op *op, struct fd_entry *e, bool stream);
ssize_t attempt_writev(struct io_op *op, bool nowait, int extra);
ssize_t attempt_sendto(struct io_op *op, bool nowait, int extra);
struct fd_entry *io_entry(int fd);
struct fd_entry *io_entry_checked(struct fd_entry *e);
bool known_unready(struct sched *s, const struct fd_entry *e, bool wr);

/* A primitive's result: errno stays the program's unless the call failed. */
#define RETURN_PRESERVING_ERRNO(expr)          \
    do {                                       \
        int saved_errno_ = errno;              \
        ssize_t r_ = (expr);                   \
        if (r_ >= 0)                           \
            errno = saved_errno_;              \
        return r_;                             \
    } while (0)

/* ---- fdio_accept.c: the kick timer (it bounds a real blocking call) */
#include <signal.h>
#include <time.h>
#define KICK_NS 2000000
/* Each scheduler's kick timer, made on first use. */
struct kick_sched {
    timer_t timer;
    bool made;
};
extern __thread volatile sig_atomic_t kicked __attribute__((tls_model("initial-exec")));
struct kick_sched *ks(const struct sched *s);
/* The scheduler's kick timer, made on first use; false if it cannot be. */
bool kick_timer_ready(struct sched *s);

/* ---- fdio_connect.c */
int wait_until_ready(struct sched *s, int fd, bool wr);

#endif
