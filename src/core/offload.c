#include "offload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <uv.h>

#include "catch.h"
#include "config.h"
#include "lock.h"
#include "ownfd.h"
#include "diag.h"
#include "sched.h"

struct offload {
    uv_work_t req;
    void (*fn)(void *);
    void *arg;
    int err;                    /* errno as the function left it, on the pool thread */
    struct corun *waiter;
    bool done;
};

static void offload_work(uv_work_t *req)
{
    struct offload *o = req->data;
    errno = 0;
    o->fn(o->arg);
    o->err = errno;
}

static void offload_done(uv_work_t *req, int status)
{
    (void)status;
    struct offload *o = req->data;
    o->done = true;
    sched_wake(o->waiter, WAKE_SIGNALED);
}

/* The tids of this process's threads: how many (at most max), or
 * -1 when /proc cannot be read or there are more. */
struct tids {
    pid_t *out;
    int n, max;
};

static bool collect_tid(pid_t tid, void *arg)
{
    struct tids *t = arg;
    if (t->n == t->max) {
        t->n = -1;
        return false;
    }
    t->out[t->n++] = tid;
    return true;
}

static int task_ids(pid_t *out, int max)
{
    struct tids t = { out, 0, max };
    return ownfd_each_task(collect_tid, &t) < 0 ? -1 : t.n;
}

/* Once per process (and after a fork), over few threads where they are
 * green: a scan. */
static bool among(const pid_t *ids, int n, pid_t tid)
{
    for (int i = 0; i < n; i++)
        if (ids[i] == tid)
            return true;
    return false;
}

/* A thread's name as /proc shows it (with its newline), "" if unreadable;
 * the fd, open for writing a new one, or -1. */
static long task_comm_open(const char *path, char comm[17])
{
    memset(comm, 0, 17);
    long fd = catch_raw(SYS_openat, ownfd_proc(), (long)path, O_RDWR | O_CLOEXEC, 0, 0, 0);
    if (fd >= 0 && catch_raw(SYS_read, fd, (long)comm, 16, 0, 0, 0) < 0)
        comm[0] = '\0';
    return fd;
}

/* Name "corun-pool" the threads that are not in before[] and carry the
 * starter's name `was` (or libuv's own, libuv-worker, from 1.50 on). A
 * thread someone else made in that moment with the same name is renamed
 * too: the one gap. */
static void name_pool_threads(const char *was, const pid_t *before, int nbefore, pid_t *after,
                              int max)
{
    int n = task_ids(after, max);
    for (int i = 0; i < n; i++) {
        if (among(before, nbefore, after[i]))
            continue;
        char path[48], comm[17];
        snprintf(path, sizeof path, "self/task/%d/comm", (int)after[i]);
        long fd = task_comm_open(path, comm);
        if (fd < 0)
            continue;
        if (!strcmp(comm, was) || !strcmp(comm, "libuv-worker\n"))
            catch_raw(SYS_write, fd, (long)"corun-pool", 10, 0, 0, 0);   /* the offset is ignored */
        catch_raw(SYS_close, fd, 0, 0, 0, 0, 0);
    }
}

/* At most this many threads before the pool starts for its threads to be
 * told apart (more: they keep the name they inherit). */
#define POOL_NAMING_MAX 4096
#define POOL_THREADS_MAX 1024     /* libuv's ceiling, CORUN_POOL_SIZE's */

static int pool_started;          /* atomic: the first work was queued */
static bool pool_in_fork_child;   /* this process is a fork child (offload_fork_child) */
static cr_lock_t pool_start_lock = CR_LOCK_INIT;

/* libuv sizes its pool from UV_THREADPOOL_SIZE once, on the first queued
 * work: show it CORUN_POOL_SIZE for that moment only, so that the program's
 * children do not inherit a variable they never had. The user's own
 * UV_THREADPOOL_SIZE wins when CORUN_POOL_SIZE is unset.
 * That first work also starts the pool's threads, which take the name of
 * the OS thread starting them (the program's, and when that is the main
 * thread the process's, which is not to change even for a moment: pgrep
 * would miss it). They are renamed "corun-pool" through /proc once started
 * (libuv waits for them all), so that top -H, the dump and the tests tell
 * them from the threads running the program's. */
static int pool_queue(uv_loop_t *loop, uv_work_t *req)
{
    if (__atomic_load_n(&pool_started, __ATOMIC_ACQUIRE))
        return uv_queue_work(loop, req, offload_work, offload_done);
    cr_lock(&pool_start_lock);
    if (__atomic_load_n(&pool_started, __ATOMIC_RELAXED)) {
        cr_unlock(&pool_start_lock);
        return uv_queue_work(loop, req, offload_work, offload_done);
    }
    const char *user = getenv("UV_THREADPOOL_SIZE");
    /* Not in a fork child: glibc does not reset setenv's lock at fork, and
     * a thread the child does not have may have held it (the child's pool
     * takes libuv's default size, or the user's variable). */
    bool ours = !pool_in_fork_child && (cr_config.pool_size_set || !user);
    char *saved = user ? strdup(user) : NULL;
    if (ours) {
        char n[16];
        snprintf(n, sizeof n, "%u", cr_config.pool_size);
        setenv("UV_THREADPOOL_SIZE", n, 1);
    }
    static pid_t before[POOL_NAMING_MAX], after[POOL_NAMING_MAX + POOL_THREADS_MAX];
    ownfd_proc_open();                  /* before more kernel threads (ownfd.h) */
    int nbefore = task_ids(before, POOL_NAMING_MAX);
    char was[17];                       /* what the pool's threads will be called */
    long self = task_comm_open("thread-self/comm", was);
    if (self >= 0)
        catch_raw(SYS_close, self, 0, 0, 0, 0, 0);
    int rc = uv_queue_work(loop, req, offload_work, offload_done);
    if (ours) {
        if (saved)
            setenv("UV_THREADPOOL_SIZE", saved, 1);
        else
            unsetenv("UV_THREADPOOL_SIZE");
    }
    free(saved);
    if (rc == 0 && nbefore > 0 && was[0])
        name_pool_threads(was, before, nbefore, after, POOL_NAMING_MAX + POOL_THREADS_MAX);
    __atomic_store_n(&pool_started, 1, __ATOMIC_RELEASE);
    cr_unlock(&pool_start_lock);
    return rc;
}

void offload_fork_child(void)
{
    /* libuv starts a new pool in the child at its first work (its own
     * fork handler): name it again. */
    pool_started = 0;
    pool_in_fork_child = true;
    pool_start_lock = (cr_lock_t)CR_LOCK_INIT;
}

void offload_run(struct sched *s, void (*fn)(void *), void *arg)
{
    struct offload o = { .fn = fn, .arg = arg, .waiter = s->current };
    o.req.data = &o;
    if (pool_queue(s->loop, &o.req) != 0) {
        fn(arg);                /* no pool: the call blocks here, still correct */
        return;
    }
    s->stats.offloads++;
    while (!o.done) {
        sched_wait_on(s, WAIT_OFFLOAD, (const void *)fn, -1);
        sched_park(s, DEADLINE_NONE, PARK_PLAIN);
    }
    errno = o.err;
}
