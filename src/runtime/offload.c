#include "offload.h"

#include <errno.h>
#include <stdlib.h>
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

void offload_run(struct sched *s, void (*fn)(void *), void *arg)
{
    struct offload o = { .fn = fn, .arg = arg, .waiter = s->current };
    o.req.data = &o;
    if (uv_queue_work(&s->loop, &o.req, offload_work, offload_done) != 0) {
        fn(arg);                /* no pool: the call blocks here, still correct */
        return;
    }
    while (!o.done)
        sched_park(s, DEADLINE_NONE);
    errno = o.err;
}

/* libuv sizes its pool from UV_THREADPOOL_SIZE when first used: make room
 * for many slow lookups at once unless the user chose. */
__attribute__((constructor)) static void offload_pool_size(void)
{
    if (!getenv("UV_THREADPOOL_SIZE"))
        setenv("UV_THREADPOOL_SIZE", "64", 0);
}
