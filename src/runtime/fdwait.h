/* Waiting for fd readiness: one epoll registration per fd, edge-triggered,
 * in a per-scheduler epoll set that the libuv loop watches through a single
 * uv_poll_t; every coroutine waiting on an fd sits on that fd's one wait
 * list with the events it wants. */
#ifndef CORUN_FDWAIT_H
#define CORUN_FDWAIT_H

#include <stdint.h>

struct sched;

/*
 * Park until fd is ready for `events` (POLLIN/POLLOUT) or the deadline.
 * Returns 0 and the poll(2) revents in *revents, or EBADF, EAGAIN (deadline
 * already reached), ETIMEDOUT.
 */
int fd_wait_ready(struct sched *s, int fd, short events, uint64_t deadline, int dont_wait,
                  short *revents);

#endif
