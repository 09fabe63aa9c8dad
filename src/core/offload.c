#include "offload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "config.h"
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

/* libuv sizes its pool from UV_THREADPOOL_SIZE once, on the first queued
 * work: show it CORUN_POOL_SIZE for that moment only, so that the program's
 * children do not inherit a variable they never had. The user's own
 * UV_THREADPOOL_SIZE wins when CORUN_POOL_SIZE is unset. */
static int pool_queue(uv_loop_t *loop, uv_work_t *req)
{
    static int sized;
    if (__atomic_load_n(&sized, __ATOMIC_ACQUIRE))
        return uv_queue_work(loop, req, offload_work, offload_done);
    const char *user = getenv("UV_THREADPOOL_SIZE");
    bool ours = cr_config.pool_size_set || !user;
    char *saved = user ? strdup(user) : NULL;
    if (ours) {
        char n[16];
        snprintf(n, sizeof n, "%u", cr_config.pool_size);
        setenv("UV_THREADPOOL_SIZE", n, 1);
    }
    int rc = uv_queue_work(loop, req, offload_work, offload_done);
    if (ours) {
        if (saved)
            setenv("UV_THREADPOOL_SIZE", saved, 1);
        else
            unsetenv("UV_THREADPOOL_SIZE");
    }
    free(saved);
    __atomic_store_n(&sized, 1, __ATOMIC_RELEASE);
    return rc;
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
