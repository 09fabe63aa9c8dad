/* Hooks: waiting for one particular child parks the green thread on the
 * child's pidfd; the status is then collected by the real call, so it is
 * exactly the kernel's. Waits for any child, for process groups, or for
 * stops and continues are left to the real (blocking) call. */
#include <sys/resource.h>
#include <sys/wait.h>

#include "proc.h"
#include "real.h"
#include "sched.h"

REAL_DECL(pid_t, waitpid, (pid_t, int *, int));
REAL_DECL(pid_t, wait4, (pid_t, int *, int, struct rusage *));

/* The scheduler to park on for a wait with these arguments, or NULL. */
static struct sched *wait_gate(pid_t pid, int options)
{
    if (pid <= 0 || (options & (WNOHANG | WUNTRACED | WCONTINUED)))
        return NULL;
    return sched_for_blocking_hook();
}

HOOK pid_t waitpid(pid_t pid, int *status, int options)
{
    struct sched *s = wait_gate(pid, options);
    if (s) {
        pid_t r = REAL(waitpid)(pid, status, options | WNOHANG);
        if (r != 0)
            return r;                 /* collected, or an error (ECHILD...) */
        proc_wait_exited(s, pid);     /* then the real call finds it (or blocks) */
    }
    return REAL(waitpid)(pid, status, options);
}

HOOK pid_t wait4(pid_t pid, int *status, int options, struct rusage *ru)
{
    struct sched *s = wait_gate(pid, options);
    if (s) {
        pid_t r = REAL(wait4)(pid, status, options | WNOHANG, ru);
        if (r != 0)
            return r;
        proc_wait_exited(s, pid);
    }
    return REAL(wait4)(pid, status, options, ru);
}
