#include "proc.h"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fdtab.h"
#include "gthread.h"
#include "sched.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

int proc_wait_exited(struct sched *s, pid_t pid)
{
    int saved = errno;
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0) {
        errno = saved;
        return -1;
    }
    fdtab_opened(pfd);
    struct fd_entry *e = fdtab_get(pfd);
    int err = e ? 0 : -1;
    if (e) {
        e->rd_ready = false;       /* readable only once the child has exited */
        sched_wait_hint(s, WAIT_CHILD);
        err = fd_wait_readable(s, pfd, e, DEADLINE_NONE);
        sched_wait_hint(s, WAIT_OTHER);
    }
    fdtab_close(pfd);
    syscall(SYS_close, pfd);
    errno = saved;
    if (err == ECANCELED)
        gthread_act_on_cancel(WAKE_CANCELED);
    return err ? -1 : 0;
}
