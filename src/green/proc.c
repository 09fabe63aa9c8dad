#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fdtab.h"
#include "gthread.h"
#include "rawsys.h"
#include "sched.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define MAX_WATCHED 256             /* children watched at once; more: timed looks */
#define LOOK_AGAIN_NS (50 * 1000000ull)
#define LOOK_AGAIN_STOPS_NS (10 * 1000000ull)

static bool selected(pid_t child, pid_t pid)
{
    if (pid > 0)
        return child == pid;
    if (pid == -1)
        return true;
    pid_t group = pid == 0 ? (pid_t)syscall(SYS_getpgid, 0) : -pid;
    return (pid_t)syscall(SYS_getpgid, child) == group;
}

/* Append the pids listed in `path` (a /proc children file) to kids. */
static unsigned read_children(const char *path, pid_t pid, pid_t *kids, unsigned n, unsigned max)
{
    char buf[4096];
    if (rs_read_file(path, buf, sizeof buf) <= 0)
        return n;
    for (char *p = buf; *p && n < max;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        if (selected((pid_t)v, pid))
            kids[n++] = (pid_t)v;
        p = end;
    }
    return n;
}

/* The children of every thread of this process that `pid` selects. */
static unsigned children(pid_t pid, pid_t *kids, unsigned max)
{
    if (pid > 0) {
        kids[0] = pid;
        return 1;
    }
    unsigned n = 0;
    int dfd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return 0;
    char buf[4096];
    long len;
    while (n < max && (len = syscall(SYS_getdents64, dfd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < len;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            off += d->d_reclen;
            if (d->d_name[0] == '.')
                continue;
            char path[320];
            snprintf(path, sizeof path, "/proc/self/task/%s/children", d->d_name);
            n = read_children(path, pid, kids, n, max);
        }
    }
    syscall(SYS_close, dfd);
    return n;
}

int proc_wait_change(struct sched *s, pid_t pid, bool stops)
{
    int saved = errno;
    pid_t kids[MAX_WATCHED];
    struct pollfd fds[MAX_WATCHED];
    unsigned n = children(pid, kids, MAX_WATCHED), watched = 0;
    for (unsigned i = 0; i < n; i++) {
        int pfd = (int)syscall(SYS_pidfd_open, kids[i], 0);
        if (pfd < 0)
            continue;
        fdtab_opened(pfd);
        fds[watched++] = (struct pollfd){ .fd = pfd, .events = POLLIN };
    }
    /* One child's exit is all a pidfd can tell; anything else needs a look. */
    uint64_t deadline = DEADLINE_NONE;
    if (stops)
        deadline = clock_now_ns() + LOOK_AGAIN_STOPS_NS;
    else if (pid <= 0 || watched == 0)
        deadline = clock_now_ns() + LOOK_AGAIN_NS;
    int err;
    sched_wait_hint(s, WAIT_CHILD);
    if (watched) {
        err = fd_wait_any(s, fds, watched, deadline, PARK_INTR_RESTART);
    } else {
        int why = sched_park(s, deadline, PARK_INTR_RESTART);
        err = why == WAKE_INTERRUPTED ? EINTR : why == WAKE_CANCELED ? ECANCELED : 0;
    }
    sched_wait_hint(s, WAIT_OTHER);
    for (unsigned i = 0; i < watched; i++) {
        fdtab_close(fds[i].fd);
        syscall(SYS_close, fds[i].fd);
    }
    errno = saved;
    if (err == ECANCELED)
        gthread_act_on_cancel(WAKE_CANCELED);
    return err == EINTR ? EINTR : 0;
}
