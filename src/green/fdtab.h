/*
 * The fd table: what corun knows about each file descriptor, and waiting for
 * readiness on it.
 *
 * One entry per fd number, created on first use and never freed (so event
 * dispatch can index it without locks); a generation number, bumped when
 * the fd is closed, tells stale epoll events from current ones. An fd is
 * registered once, edge-triggered for both directions, in the epoll set of
 * the scheduler that first waits on it; all its waiters (readers and writers)
 * sit on one list, each with the events it wants.
 */
#ifndef CR_FDTAB_H
#define CR_FDTAB_H

#include <stdbool.h>
#include <stdint.h>

#include "sched.h"

#include "list.h"

struct pollfd;

struct sched;

enum fd_kind {
    FD_UNKNOWN = 0,  /* not classified yet (or closed since) */
    FD_SOCKET,
    FD_PIPE,         /* pipes and FIFOs */
    FD_CHAR,         /* ttys and other character devices */
    FD_REGULAR,      /* regular files and directories: never waited on */
    FD_OTHER,        /* epoll, eventfd, timerfd, signalfd, ... */
};

/* One fd of a coroutine waiting on several at once (poll, select). */
struct fd_poller {
    struct dlink link;            /* on fd_entry.pollers */
    struct corun *co;
    short events;
};

struct fd_entry {
    struct coq waiters;
    struct dlist pollers;         /* poll/select/epoll waits including this fd */
    struct sched *reg;        /* whose epoll set the fd is in, or NULL */
    uint32_t gen;
    uint8_t kind;
    bool stream;              /* SOCK_STREAM socket: a short read drains it */
    bool created;             /* made by the program through a hooked call */
    bool nonblock;            /* O_NONBLOCK as last set through a hooked call */
    bool shared;              /* description may be shared: ask the kernel about O_NONBLOCK */
    bool no_nowait;           /* RWF_NOWAIT unsupported: poll, then call (files: reads) */
    bool wr_no_nowait;        /* regular file: RWF_NOWAIT unsupported for writes */
    bool file_inline;         /* directory, tmpfs, /proc, /sys: never worth offloading */
    bool file_sync;           /* regular file opened O_SYNC, O_DSYNC or O_DIRECT */
    bool rd_ready, wr_ready;  /* no EAGAIN seen since the last readiness event */
    bool hup;                 /* hang-up or error seen: readiness is now permanent */
    bool wr_shutdown;         /* the program shut down its sending side */
    int64_t rcvtimeo, sndtimeo; /* SO_RCVTIMEO / SO_SNDTIMEO in ns, 0 = none */
};

/* M:N: the fd's lock (a stripe of them), for a short step no other OS
 * thread's call on the same fd may interleave with (O_NONBLOCK set around
 * one accept or connect). No-ops while green threads run on one OS thread. */
void fdtab_lock(int fd);
void fdtab_unlock(int fd);

/* The entry for fd, classified (fstat etc.) on first use; NULL if fd is not
 * open (errno EBADF) or out of range. */
struct fd_entry *fdtab_get(int fd);

/* Record an fd just created through a hooked call. */
void fdtab_created(int fd, enum fd_kind kind, bool stream, bool nonblock);

/* fd was just opened by a call corun does not classify (open, fopen,
 * eventfd, ...): forget what the number meant before; classified on use. */
void fdtab_opened(int fd);

/* The program called shutdown(fd, how): waiters try their calls again (the
 * kernel does not always signal a socket's own waiters). */
void fdtab_shutdown(int fd, int how);

/* fd was accepted on listening socket lfd (accept4 flags). */
void fdtab_accepted(int lfd, int fd, int flags);

/* newfd now shares olddesc's open file description (dup family). */
void fdtab_dup(int oldfd, int newfd);

/* fd is about to be closed (or replaced by dup2): wake its waiters with
 * EBADF, drop its registration and forget it. */
void fdtab_close(int fd);

/* The socket's SO_SNDTIMEO (write) or SO_RCVTIMEO in ns, 0 for none. */
int64_t fd_timeout(int fd, struct fd_entry *e, bool write);

/* Record a successful setsockopt of SO_RCVTIMEO / SO_SNDTIMEO. */
void fdtab_set_timeout(int fd, bool write, int64_t ns);

/* Record O_NONBLOCK as the program just set it (fcntl, ioctl FIONBIO). */
void fdtab_set_nonblock(int fd, bool on);

/* After fork every description is shared with another process, which may
 * change its flags: stop trusting what corun tracked. */
void fdtab_mark_all_shared(void);

/* Is the fd's description non-blocking right now? */
bool fd_is_nonblocking(int fd, struct fd_entry *e);

/*
 * Park the current coroutine until fd is readable (or writable), or until
 * the deadline. Returns 0 (try the call again), ETIMEDOUT, EBADF (closed
 * meanwhile), ECANCELED (the thread is to act on pthread_cancel: the wait is
 * a cancellation point), or ENOTSUP when the fd cannot be waited on here
 * (the caller then makes the real, blocking call).
 */
int fd_wait_readable(struct sched *s, int fd, struct fd_entry *e, uint64_t deadline);
int fd_wait_writable(struct sched *s, int fd, struct fd_entry *e, uint64_t deadline);


/*
 * Park until one of fds[0..n) has one of its events (or an error or
 * hang-up), or until the deadline: for poll, select and friends, which then
 * ask the kernel for the exact answer. fds with fd < 0 are skipped; fds that
 * cannot be waited on here (regular files: always ready) make it return at
 * once. Returns 0, ETIMEDOUT, ECANCELED, EINTR (a signal handler ran and
 * `intr` says the wait ends then), or ENOMEM.
 */
int fd_wait_any(struct sched *s, const struct pollfd *fds, unsigned long n, uint64_t deadline,
                enum park_mode intr);

#endif
