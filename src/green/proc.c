#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "config.h"
#include "fdtab.h"
#include "gsignal.h"
#include "gthread.h"
#include "lock.h"
#include "ownfd.h"
#include "rawsys.h"
#include "real.h"
#include "sched.h"

extern char **environ;

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
struct kids {
    pid_t pid, *out;
    unsigned n, max;
};

static bool task_children(pid_t tid, void *arg)
{
    struct kids *k = arg;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)tid);
    k->n = read_children(path, k->pid, k->out, k->n, k->max);
    return k->n < k->max;
}

static unsigned children(pid_t pid, pid_t *kids, unsigned max)
{
    if (pid > 0) {
        kids[0] = pid;
        return 1;
    }
    struct kids k = { pid, kids, 0, max };
    ownfd_each_task(task_children, &k);
    return k.n;
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
        fds[watched] = (struct pollfd){ .fd = pfd, .events = POLLIN };
        ownfd_own(&fds[watched].fd);      /* hidden from the program while it waits */
        fdtab_opened(fds[watched++].fd);
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
        ownfd_release(&fds[i].fd);
    }
    errno = saved;
    if (err == ECANCELED)
        gthread_act_on_cancel(WAKE_CANCELED);
    return err == EINTR ? EINTR : 0;
}

/* ---- waits --------------------------------------------------------------------*/

pid_t proc_wait4(struct sched *s, pid_t pid, int *status, int options, struct rusage *ru)
{
    for (;;) {
        pid_t r = (pid_t)syscall(SYS_wait4, pid, status, options | WNOHANG, ru);
        if (r != 0)
            return r;                 /* a child, or an error (ECHILD, EINVAL...) */
        if (proc_wait_change(s, pid, options & (WUNTRACED | WCONTINUED)) == EINTR) {
            errno = EINTR;
            return -1;
        }
    }
}

int proc_waitid(struct sched *s, idtype_t type, id_t id, siginfo_t *info, int options)
{
    pid_t pid = type == P_PID ? (pid_t)id : type == P_ALL ? -1 : id == 0 ? 0 : -(pid_t)id;
    for (;;) {
        info->si_pid = 0;
        int r = (int)syscall(SYS_waitid, type, id, info, options | WNOHANG, NULL);
        if (r != 0 || info->si_pid != 0)
            return r;
        if (proc_wait_change(s, pid, options & (WSTOPPED | WCONTINUED)) == EINTR) {
            errno = EINTR;
            return -1;
        }
    }
}

/* Wait for pid whatever handlers run meanwhile; its status, or -1. */
static int reap(struct sched *s, pid_t pid)
{
    int status;
    pid_t r;
    if (s) {
        while ((r = proc_wait4(s, pid, &status, 0, NULL)) < 0 && errno == EINTR)
            ;
    } else {
        while ((r = (pid_t)syscall(SYS_wait4, pid, &status, 0, NULL)) < 0 && errno == EINTR)
            ;
    }
    return r == pid ? status : -1;
}

/* ---- system -----------------------------------------------------------------------*/

/* system() ignores SIGINT and SIGQUIT in the caller while a command runs;
 * with several threads in system() at once, the first one in saves the
 * actions and the last one out puts them back. The lock is never held
 * across a wait. */
static cr_lock_t system_lock = CR_LOCK_INIT;
static int system_users;
static struct sigaction saved_int, saved_quit;

/* The calling thread's mask: the green thread's own, or the kernel
 * thread's in native mode (as pthread_sigmask's hook would choose). */
static void mask_set(struct sched *s, int how, const sigset_t *set, sigset_t *old)
{
    if (cr_config.threads_native)
        libc_pthread_sigmask(how, set, old);
    else
        gsignal_setmask(s, how, set, old);
}

int proc_system(struct sched *s, const char *cmd)
{
    cr_lock(&system_lock);
    if (system_users++ == 0) {
        struct sigaction ign;
        memset(&ign, 0, sizeof ign);
        ign.sa_handler = SIG_IGN;
        sigemptyset(&ign.sa_mask);
        gsignal_action(SIGINT, &ign, &saved_int, libc_sigaction);
        gsignal_action(SIGQUIT, &ign, &saved_quit, libc_sigaction);
    }
    sigset_t def;
    sigemptyset(&def);
    if (saved_int.sa_handler != SIG_IGN)
        sigaddset(&def, SIGINT);
    if (saved_quit.sa_handler != SIG_IGN)
        sigaddset(&def, SIGQUIT);
    cr_unlock(&system_lock);
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    mask_set(s, SIG_BLOCK, &chld, &old);

    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setsigmask(&attr, &old);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    char *argv[] = { "sh", "-c", "--", (char *)cmd, NULL };
    pid_t pid;
    int status;
    int err = posix_spawn(&pid, "/bin/sh", NULL, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    if (err == 0)
        status = reap(s, pid);
    else
        status = W_EXITCODE(127, 0);    /* as if the shell could not run */
    int e = errno;
    mask_set(s, SIG_SETMASK, &old, NULL);
    cr_lock(&system_lock);
    if (--system_users == 0) {
        gsignal_action(SIGINT, &saved_int, NULL, libc_sigaction);
        gsignal_action(SIGQUIT, &saved_quit, NULL, libc_sigaction);
    }
    cr_unlock(&system_lock);
    errno = e;
    return status;
}

/* ---- popen / pclose -----------------------------------------------------------------*/

/* Streams proc_popen() made, to find the child's pid at pclose(). */
struct piped {
    struct dlink link;
    FILE *f;
    pid_t pid;
    int fd;
};
static struct dlist pipes;
static cr_lock_t pipes_lock = CR_LOCK_INIT;

/* A thread of another OS thread (M:N) may have held one at the fork. */
static void locks_fork_child(struct sched *s)
{
    (void)s;
    system_lock = (cr_lock_t)CR_LOCK_INIT;
    pipes_lock = (cr_lock_t)CR_LOCK_INIT;
}

static const struct sched_observer locks_observer = { .fork_child = locks_fork_child };
SCHED_OBSERVER(locks_observer);

static void close_fd(int fd)
{
    fdtab_close(fd);
    syscall(SYS_close, fd);
}

FILE *proc_popen(struct sched *s, const char *cmd, const char *mode)
{
    bool rd = mode[0] == 'r', cloexec = false;
    if ((mode[0] != 'r' && mode[0] != 'w') || (mode[1] && (mode[1] != 'e' || mode[2]))) {
        errno = EINVAL;
        return NULL;
    }
    cloexec = mode[1] == 'e';
    struct piped *p = malloc(sizeof *p);
    int fds[2];
    if (!p || syscall(SYS_pipe2, fds, O_CLOEXEC) != 0) {
        free(p);
        return NULL;
    }
    fdtab_created(fds[0], FD_PIPE, false, false);
    fdtab_created(fds[1], FD_PIPE, false, false);
    int mine = rd ? fds[0] : fds[1], theirs = rd ? fds[1] : fds[0];
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    int target = rd ? 1 : 0;
    if (theirs == target) {
        /* Already the right number: dup2 would be a no-op that keeps
         * FD_CLOEXEC, so move it out of the way first. */
        posix_spawn_file_actions_adddup2(&fa, theirs, 100);
        posix_spawn_file_actions_adddup2(&fa, 100, target);
        posix_spawn_file_actions_addclose(&fa, 100);
    } else {
        posix_spawn_file_actions_adddup2(&fa, theirs, target);
    }
    /* POSIX: streams of earlier popen() calls are closed in the new child. */
    cr_lock(&pipes_lock);
    dlist_foreach(&pipes, it) {
        struct piped *q = container_of(it, struct piped, link);
        if (q->fd != target)
            posix_spawn_file_actions_addclose(&fa, q->fd);
    }
    cr_unlock(&pipes_lock);
    char *argv[] = { "sh", "-c", "--", (char *)cmd, NULL };
    pid_t pid;
    int err = posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close_fd(theirs);
    FILE *f = NULL;
    if (err == 0) {
        if (!cloexec)
            syscall(SYS_fcntl, mine, F_SETFD, 0);
        f = libc_fdopen(mine, rd ? "r" : "w");
    }
    if (!f) {
        int e = err ? err : errno;
        close_fd(mine);
        if (err == 0)
            reap(s, pid);
        free(p);
        errno = e;
        return NULL;
    }
    *p = (struct piped){ .f = f, .pid = pid, .fd = mine };
    cr_lock(&pipes_lock);
    dlist_push(&pipes, &p->link);
    cr_unlock(&pipes_lock);
    return f;
}

bool proc_pclose(struct sched *s, FILE *f, int *status)
{
    struct piped *p = NULL;
    cr_lock(&pipes_lock);
    dlist_foreach(&pipes, it)
        if (container_of(it, struct piped, link)->f == f) {
            p = container_of(it, struct piped, link);
            dlist_remove(&pipes, &p->link);
            break;
        }
    cr_unlock(&pipes_lock);
    if (!p)
        return false;
    pid_t pid = p->pid;
    fdtab_close(p->fd);
    free(p);
    libc_fclose(f);
    *status = reap(s, pid);
    return true;
}
