/* Waiting for child processes without blocking the loop. */
#ifndef CR_PROC_H
#define CR_PROC_H

#include <stdbool.h>
#include <sys/types.h>

struct sched;

/*
 * Park until a child selected by `pid` (waitpid's convention: > 0 that
 * child, -1 any, 0 our process group, < -1 group -pid) may have changed
 * state; the caller then asks the kernel again (WNOHANG), which has the
 * exact answer. Exits wake it through the children's pidfds; stops and
 * continues (`stops`), and children started meanwhile, are seen at the next
 * look, a few milliseconds later. Returns 0, or EINTR when a signal handler
 * without SA_RESTART ran for this thread.
 */
int proc_wait_change(struct sched *s, pid_t pid, bool stops);

#endif
