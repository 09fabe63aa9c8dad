/*
 * Blocking I/O for green threads: each primitive behaves as the blocking
 * system call of the same shape (bytes, errno, partial results, timeouts
 * from SO_RCVTIMEO/SO_SNDTIMEO), but waits by parking the calling
 * coroutine. The fd's O_NONBLOCK flag is never changed, except around one
 * accept or connect on a socket the program created (and restored at once):
 * sockets and pipes are called with a per-call non-blocking flag
 * (MSG_DONTWAIT, RWF_NOWAIT); other fds are polled, then called. Where an fd
 * cannot be waited on, the real blocking call is made: slower, never wrong.
 * All return what the system call would, with errno set on failure.
 */
#ifndef CR_FDIO_H
#define CR_FDIO_H

#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

struct sched;
struct pollfd;
struct epoll_event;

ssize_t fdio_readv(struct sched *s, int fd, const struct iovec *iov, int cnt);
ssize_t fdio_writev(struct sched *s, int fd, const struct iovec *iov, int cnt);
ssize_t fdio_recvfrom(struct sched *s, int fd, void *buf, size_t n, int flags,
                      struct sockaddr *from, socklen_t *fromlen);
ssize_t fdio_sendto(struct sched *s, int fd, const void *buf, size_t n, int flags,
                    const struct sockaddr *to, socklen_t tolen);
ssize_t fdio_recvmsg(struct sched *s, int fd, struct msghdr *m, int flags);
ssize_t fdio_sendmsg(struct sched *s, int fd, const struct msghdr *m, int flags);
int fdio_recvmmsg(struct sched *s, int fd, struct mmsghdr *v, unsigned n, int flags,
                  struct timespec *timeout);
int fdio_sendmmsg(struct sched *s, int fd, struct mmsghdr *v, unsigned n, int flags);
int fdio_accept(struct sched *s, int fd, struct sockaddr *addr, socklen_t *len, int flags);
int fdio_connect(struct sched *s, int fd, const struct sockaddr *addr, socklen_t len);
/* sendfile(2), splice(2), tee(2), vmsplice(2) with their blocking semantics:
 * sendfile into a socket sends all of count (unless end of file, an error,
 * SO_SNDTIMEO or a signal); the others return once they moved something. */
ssize_t fdio_sendfile(struct sched *s, int out, int in, off_t *off, size_t count);
ssize_t fdio_splice(struct sched *s, int in, loff_t *inoff, int out, loff_t *outoff, size_t len,
                    unsigned flags);
ssize_t fdio_tee(struct sched *s, int in, int out, size_t len, unsigned flags);
ssize_t fdio_vmsplice(struct sched *s, int fd, const struct iovec *iov, size_t cnt, unsigned flags);

/* The result r of a poll-family call with a zero timeout, made for real
 * (s: the scheduler, NULL for a lone thread). A thread that found nothing
 * ready may be spinning on such calls until another thread acts: it yields,
 * so the others run and the loop polls I/O and timers (a yield does every
 * POLL_EVERY dispatches or clock tick); one that found something yields
 * once its time is up (sched_yield_if_due). Returns r. */
int fdio_polled_now(struct sched *s, int r);

/* poll(2)/ppoll(2) with a timeout in ns (< 0: none); mask as ppoll's. */
/* Park until a read of fd would not block (it has input, end of file or an
 * error): for reads corun does not see, such as stdio's own. Returns 0 or
 * an error number (EINTR, EBADF). */
int fdio_wait_input(struct sched *s, int fd);

int fdio_poll(struct sched *s, struct pollfd *fds, unsigned long n, int64_t timeout_ns,
              const sigset_t *mask);
/* epoll_pwait2(2) on the program's own epoll fd; timeout in ns (< 0: none). */
int fdio_epoll_wait(struct sched *s, int epfd, struct epoll_event *ev, int max,
                    int64_t timeout_ns, const sigset_t *mask);

/* select's timeout as Linux reads it: *ns (-1: none, the call waits for
 * ever); false when the kernel would refuse it (EINVAL). */
#include <stdbool.h>
#include <stdint.h>
#include <sys/select.h>
#include <sys/time.h>
bool fdio_select_timeout(const struct timeval *tv, int64_t *ns);

/* select/pselect over fdio_poll: the sets (any size the program made, nfds
 * cut to the fd table's size as the kernel does) become a pollfd array and
 * back; EBADF for a closed fd with the sets untouched; the time left
 * written to *left when it is not NULL (select). */
int fdio_select(struct sched *s, int nfds, fd_set *r, fd_set *w, fd_set *e, int64_t timeout_ns,
                const sigset_t *mask, struct timeval *left);

#endif
