/*
 * io_uring completion waits of green threads: an io_uring_enter that would
 * wait for completions parks the green thread on the ring's fd (which polls
 * readable when the completion queue has entries) instead of blocking its
 * OS thread.
 */
#ifndef CR_GURING_H
#define CR_GURING_H

#include <stdbool.h>
#include <stddef.h>

struct sched;

/*
 * io_uring_enter(fd, to_submit, min_complete, flags, arg, argsz) for a
 * green thread that may park on s: submits without waiting, then parks
 * until the kernel has min_complete completions (asked with a zero
 * timeout), the EXT_ARG timeout passes (-ETIME) or a signal handler runs
 * (-EINTR), and returns what the kernel would: the number submitted if
 * any, else the wait's result. True with that (or -errno) in *ret; false
 * for a call that does not wait, or whose shape corun does not know
 * (a registered ring index, a signal mask, flags newer than these
 * headers): the caller makes the real call.
 */
bool guring_enter(struct sched *s, int fd, unsigned to_submit, unsigned min_complete,
                  unsigned flags, const void *arg, size_t argsz, long *ret);

#endif
