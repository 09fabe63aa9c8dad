/* Waiting for child processes without blocking the loop. */
#ifndef CORUN_PROC_H
#define CORUN_PROC_H

#include <sys/types.h>

struct sched;

/*
 * Park until child `pid` has exited (its pidfd becomes readable), then
 * return. Returns 0, or -1 when the child cannot be watched this way (no
 * pidfd support, not a child, ...): the caller then makes the real call.
 */
int proc_wait_exited(struct sched *s, pid_t pid);

#endif
