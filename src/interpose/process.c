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

extern char **environ;

static struct sched *wait_gate(int options)
{
    return (options & WNOHANG) ? NULL : gate_blocking();
}

/* Ask with WNOHANG; park until something may have changed; again. */
static pid_t wait_child(struct sched *s, pid_t pid, int *status, int options, struct rusage *ru)
{
    for (;;) {
        pid_t r = ru ? REAL(wait4)(pid, status, options | WNOHANG, ru)
                     : REAL(waitpid)(pid, status, options | WNOHANG);
        if (r != 0)
            return r;                 /* a child, or an error (ECHILD, EINVAL...) */
        if (proc_wait_change(s, pid, options & (WUNTRACED | WCONTINUED)) == EINTR) {
            errno = EINTR;
            return -1;
        }
    }
}

HOOK pid_t waitpid(pid_t pid, int *status, int options)
{
    struct sched *s = wait_gate(options);
    if (!s)
        return REAL(waitpid)(pid, status, options);
    return wait_child(s, pid, status, options, NULL);
}

HOOK pid_t wait(int *status)
{
    return waitpid(-1, status, 0);
}

HOOK pid_t wait4(pid_t pid, int *status, int options, struct rusage *ru)
{
    struct sched *s = wait_gate(options);
    if (!s)
        return REAL(wait4)(pid, status, options, ru);
    return wait_child(s, pid, status, options, ru);
}

HOOK pid_t wait3(int *status, int options, struct rusage *ru)
{
    return wait4(-1, status, options, ru);
}

HOOK int waitid(idtype_t type, id_t id, siginfo_t *info, int options)
{
    struct sched *s = wait_gate(options);
    if (!s || !info || (type != P_PID && type != P_PGID && type != P_ALL))
        return REAL(waitid)(type, id, info, options);   /* P_PIDFD and the rest: blocking */
    pid_t pid = type == P_PID ? (pid_t)id : type == P_ALL ? -1 : id == 0 ? 0 : -(pid_t)id;
    for (;;) {
        info->si_pid = 0;
        int r = REAL(waitid)(type, id, info, options | WNOHANG);
        if (r != 0 || info->si_pid != 0)
            return r;
        if (proc_wait_change(s, pid, options & (WSTOPPED | WCONTINUED)) == EINTR) {
            errno = EINTR;
            return -1;
        }
    }
}

/* ---- system ---------------------------------------------------------------------*/

/* system() ignores SIGINT and SIGQUIT in the caller while a command runs;
 * with several green threads in system() at once, the first one in saves
 * the actions and the last one out puts them back. */
static int system_users;
static struct sigaction saved_int, saved_quit;

HOOK int system(const char *cmd)
{
    struct sched *s = gate_blocking();
    if (!s || !cmd)
        return REAL(system)(cmd);       /* NULL: "is there a shell?" */
    if (system_users++ == 0) {
        struct sigaction ign;
        memset(&ign, 0, sizeof ign);
        ign.sa_handler = SIG_IGN;
        sigemptyset(&ign.sa_mask);
        sigaction(SIGINT, &ign, &saved_int);
        sigaction(SIGQUIT, &ign, &saved_quit);
    }
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &chld, &old);

    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t def;
    sigemptyset(&def);
    if (saved_int.sa_handler != SIG_IGN)
        sigaddset(&def, SIGINT);
    if (saved_quit.sa_handler != SIG_IGN)
        sigaddset(&def, SIGQUIT);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setsigmask(&attr, &old);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    char *argv[] = { "sh", "-c", "--", (char *)cmd, NULL };
    pid_t pid;
    int status;
    int err = posix_spawn(&pid, "/bin/sh", NULL, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    if (err == 0) {
        pid_t r;
        while ((r = wait_child(s, pid, &status, 0, NULL)) < 0 && errno == EINTR)
            ;
        if (r != pid)
            status = -1;
    } else {
        status = W_EXITCODE(127, 0);    /* as if the shell could not run */
    }
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (--system_users == 0) {
        sigaction(SIGINT, &saved_int, NULL);
        sigaction(SIGQUIT, &saved_quit, NULL);
    }
    errno = e;
    return status;
}

/* ---- popen / pclose ------------------------------------------------------------------*/

/* Streams this file's popen() made, to find the child's pid at pclose(). */
struct piped {
    FILE *f;
    pid_t pid;
    int fd;
    struct piped *next;
};
static struct piped *pipes;

HOOK FILE *popen(const char *cmd, const char *mode)
{
    struct sched *s = gate_any();
    if (!s)
        return REAL(popen)(cmd, mode);
    bool rd = mode[0] == 'r', cloexec = false;
    if ((mode[0] != 'r' && mode[0] != 'w') || (mode[1] && (mode[1] != 'e' || mode[2]))) {
        errno = EINVAL;
        return NULL;
    }
    cloexec = mode[1] == 'e';
    struct piped *p = malloc(sizeof *p);
    int fds[2];
    if (!p || pipe2(fds, O_CLOEXEC) != 0) {
        free(p);
        return NULL;
    }
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
    for (struct piped *q = pipes; q; q = q->next)
        if (q->fd != target)
            posix_spawn_file_actions_addclose(&fa, q->fd);
    char *argv[] = { "sh", "-c", "--", (char *)cmd, NULL };
    pid_t pid;
    int err = posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(theirs);
    FILE *f = NULL;
    if (err == 0) {
        if (!cloexec)
            fcntl(mine, F_SETFD, 0);
        f = fdopen(mine, rd ? "r" : "w");
    }
    if (!f) {
        int e = err ? err : errno;
        close(mine);
        if (err == 0) {
            int st;
            wait_child(s, pid, &st, 0, NULL);
        }
        free(p);
        errno = e;
        return NULL;
    }
    *p = (struct piped){ .f = f, .pid = pid, .fd = mine, .next = pipes };
    pipes = p;
    return f;
}

HOOK int pclose(FILE *f)
{
    struct piped **pp = &pipes;
    while (*pp && (*pp)->f != f)
        pp = &(*pp)->next;
    if (!*pp)
        return REAL(pclose)(f);          /* not ours: glibc's popen made it */
    struct piped *p = *pp;
    *pp = p->next;
    pid_t pid = p->pid;
    free(p);
    fclose(f);
    struct sched *s = gate_blocking();
    int status;
    pid_t r;
    if (s) {
        while ((r = wait_child(s, pid, &status, 0, NULL)) < 0 && errno == EINTR)
            ;
    } else {
        while ((r = REAL(waitpid)(pid, &status, 0)) < 0 && errno == EINTR)
            ;
    }
    return r == pid ? status : -1;
}
