/* Waiting for child processes without blocking the loop. */
#ifndef CR_PROC_H
#define CR_PROC_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>

struct rusage;

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

/* wait4 (waitpid: ru NULL) without WNOHANG: ask with WNOHANG, park until
 * something may have changed, ask again. -1/EINTR when a handler without
 * SA_RESTART ran. */
pid_t proc_wait4(struct sched *s, pid_t pid, int *status, int options, struct rusage *ru);
/* The same for waitid with P_PID, P_PGID or P_ALL. */
int proc_waitid(struct sched *s, idtype_t type, id_t id, siginfo_t *info, int options);

/* system(cmd) for a non-NULL cmd, the wait a park. */
int proc_system(struct sched *s, const char *cmd);
/* popen(), with the child started by posix_spawn and its pid kept for
 * proc_pclose. */
FILE *proc_popen(struct sched *s, const char *cmd, const char *mode);
/* pclose() of a stream proc_popen made: closes it, waits for the child
 * (parking when s, else blocking) and stores its status; false if f is
 * not such a stream. */
bool proc_pclose(struct sched *s, FILE *f, int *status);

#endif
