/* The explicit API of include/corun.h over the core scheduler: spawn, join,
 * detach, yield, sleep, names and the greenlet-style switch. The API never
 * touches errno. (Channels: chan.c; fd waits: fdtab.c.) */
#include <errno.h>
#include <string.h>

#include "catch.h"
#include "config.h"
#include "corun.h"
#include "sched.h"
#include "stack.h"

#define API __attribute__((visibility("default")))

API int corun_spawn(corun_t **out, const corun_attr_t *attr, corun_fn fn, void *arg)
{
    CATCH_HOLD();
    if (!fn)
        return EINVAL;
    size_t size = attr && attr->stack_size ? attr->stack_size : cr_config.stack_size;
    if (size < CORUN_STACK_MIN || size > ((size_t)1 << 40))
        return EINVAL;
    size_t guard = stack_page_size();
    if (attr && attr->guard_size)
        guard = attr->guard_size == CORUN_GUARD_NONE ? 0 : attr->guard_size;
    if (guard > ((size_t)1 << 30))
        return EINVAL;
    const char *name = attr ? attr->name : NULL;
    if (name && strlen(name) >= CORUN_NAME_MAX)
        return ERANGE;
    int saved = errno;
    struct corun *co;
    /* The explicit API is cooperative ("runs when the caller next blocks
     * or yields"): a thread that uses it is never preempted from now on. */
    struct corun *cur = sched_self()->current;
    if (__atomic_load_n(&cur->flags, __ATOMIC_RELAXED) & CO_PREEMPTIBLE)   /* no lock prefix after */
        __atomic_and_fetch(&cur->flags, ~CO_PREEMPTIBLE, __ATOMIC_RELAXED);
    int r = sched_spawn(sched_self(), size, guard, name && *name ? name : NULL,
                        !out || (attr && attr->detached), fn, arg, &co);
    errno = saved;
    if (!r && out)
        *out = co;
    return r;
}

API int corun_join_timeout(corun_t *co, void **retval, int64_t timeout_ns)
{
    CATCH_HOLD();
    int saved = errno;
    int r = sched_join(co, retval, deadline_after(timeout_ns), timeout_ns == 0, false);
    errno = saved;
    return r == EBUSY ? EAGAIN : r;
}

API int corun_join(corun_t *co, void **retval)
{
    CATCH_HOLD();
    return corun_join_timeout(co, retval, CORUN_FOREVER);
}

API int corun_detach(corun_t *co)
{
    CATCH_HOLD();
    return sched_detach(co);
}

API void corun_yield(void)
{
    CATCH_HOLD();
    sched_yield_current(sched_self());
}

API int corun_sleep(int64_t ns)
{
    CATCH_HOLD();
    if (ns <= 0) {
        corun_yield();
        return 0;
    }
    struct sched *s = sched_self();
    sched_wait_on(s, WAIT_SLEEP, NULL, -1);
    sched_park(s, deadline_after(ns), PARK_PLAIN);
    return 0;
}

API corun_t *corun_current(void)
{
    CATCH_HOLD();
    return sched_self()->current;
}

API uint64_t corun_id(const corun_t *co)
{
    CATCH_HOLD();
    return co->id;
}

API const char *corun_name(const corun_t *co)
{
    CATCH_HOLD();
    return co->name;
}

API int corun_set_name(corun_t *co, const char *name)
{
    CATCH_HOLD();
    size_t n = name ? strlen(name) : 0;
    if (n >= CORUN_NAME_MAX)
        return ERANGE;
    if (n)
        memcpy(co->name, name, n);
    co->name[n] = '\0';
    return 0;
}

API void *corun_switch(corun_t *target, void *value)
{
    CATCH_HOLD();
    __atomic_and_fetch(&sched_self()->current->flags, ~CO_PREEMPTIBLE,
                       __ATOMIC_RELAXED);   /* cooperative from now on */
    return sched_switch_to(sched_self(), target, value);
}
