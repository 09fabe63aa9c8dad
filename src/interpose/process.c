/* Hooks: child waits park the green thread until a child may have changed
 * state (proc.c), then ask the kernel again, so the status is exactly the
 * kernel's; system() and popen()/pclose() wait the same way. SIGCHLD's
 * disposition stays the program's. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc.h"
#include "gate.h"
#include "real.h"
#include "sched.h"

REAL_DECL(pid_t, waitpid, (pid_t, int *, int));
REAL_DECL(pid_t, wait4, (pid_t, int *, int, struct rusage *));
REAL_DECL(int, waitid, (idtype_t, id_t, siginfo_t *, int));
REAL_DECL(int, system, (const char *));
REAL_DECL(FILE *, popen, (const char *, const char *));
REAL_DECL(int, pclose, (FILE *));

static struct sched *wait_gate(int options)
{
    return (options & WNOHANG) ? NULL : gate_blocking();
}

HOOK pid_t waitpid(pid_t pid, int *status, int options)
{
    CATCH_HOLD();
    struct sched *s = wait_gate(options);
    if (!s)
        return REAL(waitpid)(pid, status, options);
    return proc_wait4(s, pid, status, options, NULL);
}

HOOK pid_t wait(int *status)
{
    CATCH_HOLD();
    return waitpid(-1, status, 0);
}

HOOK pid_t wait4(pid_t pid, int *status, int options, struct rusage *ru)
{
    CATCH_HOLD();
    struct sched *s = wait_gate(options);
    if (!s)
        return REAL(wait4)(pid, status, options, ru);
    return proc_wait4(s, pid, status, options, ru);
}

HOOK pid_t wait3(int *status, int options, struct rusage *ru)
{
    CATCH_HOLD();
    return wait4(-1, status, options, ru);
}

HOOK int waitid(idtype_t type, id_t id, siginfo_t *info, int options)
{
    CATCH_HOLD();
    struct sched *s = wait_gate(options);
    if (!s || !info || (type != P_PID && type != P_PGID && type != P_ALL))
        return REAL(waitid)(type, id, info, options);   /* P_PIDFD and the rest: blocking */
    return proc_waitid(s, type, id, info, options);
}

/* ---- system, popen, pclose --------------------------------------------------------*/

HOOK int system(const char *cmd)
{
    CATCH_HOLD();
    struct sched *s = gate_blocking();
    if (!s || !cmd)
        return REAL(system)(cmd);       /* NULL: "is there a shell?" */
    return proc_system(s, cmd);
}

HOOK FILE *popen(const char *cmd, const char *mode)
{
    CATCH_HOLD();
    struct sched *s = gate_any();
    if (!s)
        return REAL(popen)(cmd, mode);
    return proc_popen(s, cmd, mode);
}

HOOK int pclose(FILE *f)
{
    CATCH_HOLD();
    int status;
    if (!proc_pclose(gate_blocking(), f, &status))
        return REAL(pclose)(f);          /* not ours: glibc's popen made it */
    return status;
}
