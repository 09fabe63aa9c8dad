/*
 * Hooks: pthread lifecycle, identity, keys, once, cancellation, names,
 * signals masks — pthreads as green threads. A green thread's pthread_t is
 * its coroutine. With CORUN_THREADS=native, and on threads that run no green
 * threads (libuv's workers), every call goes to glibc.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "gsync.h"
#include "gsignal.h"
#include "gthread.h"
#include "real.h"
#include "sched.h"
#include "thread_gate.h"

REAL_DECL(int, pthread_create, (pthread_t *, const pthread_attr_t *, void *(*)(void *), void *));
REAL_DECL(int, pthread_join, (pthread_t, void **));
REAL_DECL(int, pthread_tryjoin_np, (pthread_t, void **));
REAL_DECL(int, pthread_timedjoin_np, (pthread_t, void **, const struct timespec *));
REAL_DECL(int, pthread_clockjoin_np, (pthread_t, void **, clockid_t, const struct timespec *));
REAL_DECL(int, pthread_detach, (pthread_t));
REAL_DECL(void, pthread_exit, (void *));
REAL_DECL(pthread_t, pthread_self, (void));
REAL_DECL(int, pthread_setname_np, (pthread_t, const char *));
REAL_DECL(int, pthread_getname_np, (pthread_t, char *, size_t));
REAL_DECL(int, sched_yield, (void));
REAL_DECL(int, pthread_once, (pthread_once_t *, void (*)(void)));
REAL_DECL(int, pthread_key_create, (pthread_key_t *, void (*)(void *)));
REAL_DECL(int, pthread_key_delete, (pthread_key_t));
REAL_DECL(void *, pthread_getspecific, (pthread_key_t));
REAL_DECL(int, pthread_setspecific, (pthread_key_t, const void *));
REAL_DECL(int, pthread_cancel, (pthread_t));
REAL_DECL(void, pthread_testcancel, (void));
REAL_DECL(int, pthread_setcancelstate, (int, int *));
REAL_DECL(int, pthread_setcanceltype, (int, int *));
REAL_DECL(void, __pthread_register_cancel, (__pthread_unwind_buf_t *));
REAL_DECL(void, __pthread_unregister_cancel, (__pthread_unwind_buf_t *));
REAL_DECL(void, __pthread_unwind_next, (__pthread_unwind_buf_t *));
REAL_DECL(int, pthread_kill, (pthread_t, int));
REAL_DECL(int, pthread_getattr_np, (pthread_t, pthread_attr_t *));
REAL_DECL(int, pthread_getcpuclockid, (pthread_t, clockid_t *));
REAL_DECL(int, pthread_getschedparam, (pthread_t, int *, struct sched_param *));
REAL_DECL(int, pthread_setschedparam, (pthread_t, int, const struct sched_param *));
REAL_DECL(int, pthread_setschedprio, (pthread_t, int));
REAL_DECL(int, pthread_getaffinity_np, (pthread_t, size_t, cpu_set_t *));
REAL_DECL(int, pthread_setaffinity_np, (pthread_t, size_t, const cpu_set_t *));

#define CO(t) ((struct corun *)(t))

/* A pthread_t of this scheduler's green threads (not, say, the real id of
 * a kernel thread, which glibc must handle). */
static bool green_id(struct sched *s, pthread_t t)
{
    return t && CO(t)->sched == s;
}

/* ---- creation and ending ----------------------------------------------------*/

/*
 * What glibc's attribute object says beyond its public getters: whether the
 * program set a stack size (unset reads back as the default, which then
 * means corun's default) or a stack of its own. glibc's struct pthread_attr
 * (stable since 2.x): sched_param, policy, flags (0x8: stack address set),
 * guardsize, stackaddr, stacksize (0 when unset).
 */
struct glibc_attr {
    int sched_priority, policy, flags;
    size_t guardsize;
    void *stackaddr;
    size_t stacksize;
};

struct attr_view {
    bool size_set, user_stack;
};

static struct attr_view attr_view(const pthread_attr_t *attr)
{
    const struct glibc_attr *g = (const struct glibc_attr *)(const void *)attr;
    size_t sz = 0;
    pthread_attr_getstacksize(attr, &sz);
    struct attr_view v = { .size_set = true };
    if (g->stacksize == 0 || g->stacksize == sz) {   /* the layout is as expected */
        v.size_set = g->stacksize != 0;
        v.user_stack = (g->flags & 0x8) != 0;
    }
    return v;
}

/* CORUN_THREADS=native: the program's kernel threads get schedulers of their
 * own (its blocking calls park only green threads of that thread: those it
 * makes with the explicit API). */
struct native_start {
    void *(*fn)(void *);
    void *arg;
};

static void *native_thread(void *p)
{
    struct native_start st = *(struct native_start *)p;
    free(p);
    sched_mark_program_thread();
    return st.fn(st.arg);
}

HOOK int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    void *ra = __builtin_return_address(0);
    struct sched *s = thread_gate(ra);
    if (!s) {
        struct native_start *st;
        if (corun_config.threads_native == 0 || caller_is_foreign(ra) || !(st = malloc(sizeof *st)))
            return REAL(pthread_create)(t, attr, fn, arg);
        *st = (struct native_start){ fn, arg };
        int r = REAL(pthread_create)(t, attr, native_thread, st);
        if (r)
            free(st);
        return r;
    }
    size_t stack = corun_config.stack_size, guard = stack_page_size();
    int detach = PTHREAD_CREATE_JOINABLE;
    void *user_stack = NULL;
    size_t user_size = 0;
    if (attr) {
        struct attr_view v = attr_view(attr);
        if (v.user_stack && pthread_attr_getstack(attr, &user_stack, &user_size) != 0)
            return EINVAL;
        size_t sz;
        if (v.size_set && pthread_attr_getstacksize(attr, &sz) == 0)
            stack = sz < CORUN_STACK_MIN ? CORUN_STACK_MIN : sz;   /* an explicit size is honoured */
        size_t g;
        if (pthread_attr_getguardsize(attr, &g) == 0)
            guard = g;
        pthread_attr_getdetachstate(attr, &detach);
    }
    struct corun *co;
    bool detached = detach == PTHREAD_CREATE_DETACHED;
    int r = user_stack ? sched_spawn_on_stack(s, user_stack, user_size, detached, fn, arg, &co)
                       : sched_spawn(s, stack, guard, NULL, detached, fn, arg, &co);
    if (r)
        return r == ENOMEM ? EAGAIN : r;
    *t = (pthread_t)co;
    return 0;
}

static int join_common(pthread_t t, void **ret, uint64_t deadline, bool try)
{
    int r = sched_join(CO(t), ret, deadline, try, !try);
    if (r == ECANCELED)
        gthread_act_on_cancel(WAKE_CANCELED);
    return r;
}

HOOK int pthread_join(pthread_t t, void **ret)
{
    struct sched *s = thread_gate(__builtin_return_address(0));
    if (!s || !green_id(s, t))
        return REAL(pthread_join)(t, ret);
    return join_common(t, ret, DEADLINE_NONE, false);
}

HOOK int pthread_tryjoin_np(pthread_t t, void **ret)
{
    struct sched *s = thread_gate(__builtin_return_address(0));
    if (!s || !green_id(s, t))
        return REAL(pthread_tryjoin_np)(t, ret);
    return join_common(t, ret, DEADLINE_NONE, true);
}

HOOK int pthread_clockjoin_np(pthread_t t, void **ret, clockid_t clock, const struct timespec *abs)
{
    struct sched *s = thread_gate(__builtin_return_address(0));
    if (!s || !green_id(s, t))
        return REAL(pthread_clockjoin_np)(t, ret, clock, abs);
    uint64_t deadline = DEADLINE_NONE;
    if (abs) {
        int r = deadline_from_abstime(clock, abs, &deadline);
        if (r)
            return r;
    }
    return join_common(t, ret, deadline, false);
}

HOOK int pthread_timedjoin_np(pthread_t t, void **ret, const struct timespec *abs)
{
    struct sched *s = thread_gate(__builtin_return_address(0));
    if (!s || !green_id(s, t))
        return REAL(pthread_timedjoin_np)(t, ret, abs);
    return pthread_clockjoin_np(t, ret, CLOCK_REALTIME, abs);
}

HOOK int pthread_detach(pthread_t t)
{
    struct sched *s = thread_gate(__builtin_return_address(0));
    if (!s || !green_id(s, t))
        return REAL(pthread_detach)(t);
    return corun_detach(CO(t));
}

HOOK void pthread_exit(void *ret)
{
    if (!thread_gate(__builtin_return_address(0)))
        REAL(pthread_exit)(ret);
    gthread_exit(ret);
}

/* ---- identity ---------------------------------------------------------------*/

HOOK pthread_t pthread_self(void)
{
    struct sched *s = sync_gate(__builtin_return_address(0));
    if (!s)
        return REAL(pthread_self)();
    return (pthread_t)(s->current != s->loop_co ? s->current : s->handler_co);
}

/* pthread_equal compares the ids, whatever they are: glibc's is right. */

HOOK int pthread_setname_np(pthread_t t, const char *name)
{
    struct sched *s = thread_gate(__builtin_return_address(0));
    if (!s || !green_id(s, t))
        return REAL(pthread_setname_np)(t, name);
    if (strlen(name) > 15)        /* the kernel's limit, kept for the same errors */
        return ERANGE;
    return corun_set_name(CO(t), name);
}

HOOK int pthread_getname_np(pthread_t t, char *buf, size_t len)
{
    struct sched *s = thread_gate(__builtin_return_address(0));
    if (!s || !green_id(s, t))
        return REAL(pthread_getname_np)(t, buf, len);
    const char *n = CO(t)->name;
    if (!n[0])            /* unnamed: the kernel thread's name, as a new thread inherits it */
        return REAL(pthread_getname_np)(REAL(pthread_self)(), buf, len);
    if (strlen(n) + 1 > len)
        return ERANGE;
    strcpy(buf, n);
    return 0;
}

HOOK int sched_yield(void)
{
    if (!thread_gate(__builtin_return_address(0)))
        return REAL(sched_yield)();
    corun_yield();
    return 0;
}

/* glibc's header renames pthread_yield to sched_yield; older programs still
 * call the pthread_yield symbol. */
HOOK int hook_pthread_yield(void) __asm__("pthread_yield");
HOOK int hook_pthread_yield(void)
{
    return sched_yield();
}

HOOK int pthread_once(pthread_once_t *once, void (*fn)(void))
{
    if (!sync_gate(__builtin_return_address(0)))
        return REAL(pthread_once)(once, fn);
    return gonce(once, fn);
}

/* ---- keys: corun's on every thread once in green mode ------------------------
 * (keys made through glibc and through corun must never mix) */

HOOK int pthread_key_create(pthread_key_t *key, void (*destructor)(void *))
{
    if (!threads_green(__builtin_return_address(0)))
        return REAL(pthread_key_create)(key, destructor);
    return gthread_key_create(key, destructor);
}

HOOK int pthread_key_delete(pthread_key_t key)
{
    if (!threads_green(__builtin_return_address(0)))
        return REAL(pthread_key_delete)(key);
    return gthread_key_delete(key);
}

HOOK void *pthread_getspecific(pthread_key_t key)
{
    if (!threads_green(__builtin_return_address(0)))
        return REAL(pthread_getspecific)(key);
    return gthread_getspecific(key);
}

HOOK int pthread_setspecific(pthread_key_t key, const void *value)
{
    if (!threads_green(__builtin_return_address(0)))
        return REAL(pthread_setspecific)(key, value);
    return gthread_setspecific(key, value);
}

/* ---- cancellation -------------------------------------------------------------*/

HOOK int pthread_cancel(pthread_t t)
{
    struct sched *s = thread_gate(__builtin_return_address(0));
    if (!s || !green_id(s, t))
        return REAL(pthread_cancel)(t);
    if (CO(t)->state == CO_DONE)
        return 0;
    return gthread_cancel(CO(t));
}

HOOK void pthread_testcancel(void)
{
    if (!thread_gate(__builtin_return_address(0))) {
        REAL(pthread_testcancel)();
        return;
    }
    gthread_testcancel();
}

HOOK int pthread_setcancelstate(int state, int *old)
{
    if (!thread_gate(__builtin_return_address(0)))
        return REAL(pthread_setcancelstate)(state, old);
    if (state != PTHREAD_CANCEL_ENABLE && state != PTHREAD_CANCEL_DISABLE)
        return EINVAL;
    bool was;
    gthread_setcancelstate(state == PTHREAD_CANCEL_DISABLE, &was);
    if (old)
        *old = was ? PTHREAD_CANCEL_DISABLE : PTHREAD_CANCEL_ENABLE;
    return 0;
}

/* Asynchronous cancellation is honoured as deferred: a green thread can only
 * be stopped where it waits. */
HOOK int pthread_setcanceltype(int type, int *old)
{
    if (!thread_gate(__builtin_return_address(0)))
        return REAL(pthread_setcanceltype)(type, old);
    if (type != PTHREAD_CANCEL_DEFERRED && type != PTHREAD_CANCEL_ASYNCHRONOUS)
        return EINVAL;
    if (old)
        *old = PTHREAD_CANCEL_DEFERRED;
    return 0;
}

HOOK void __pthread_register_cancel(__pthread_unwind_buf_t *buf)
{
    if (!thread_gate(__builtin_return_address(0))) {
        REAL(__pthread_register_cancel)(buf);
        return;
    }
    gthread_cleanup_push(buf);
}

HOOK void __pthread_unregister_cancel(__pthread_unwind_buf_t *buf)
{
    if (!thread_gate(__builtin_return_address(0))) {
        REAL(__pthread_unregister_cancel)(buf);
        return;
    }
    gthread_cleanup_pop(buf);
}

HOOK void __pthread_unwind_next(__pthread_unwind_buf_t *buf)
{
    if (!thread_gate(__builtin_return_address(0)))
        REAL(__pthread_unwind_next)(buf);
    gthread_cleanup_next(buf);
}

/* ---- signals --------------------------------------------------------------------
 * (masks and dispositions: signal.c) */

/* A signal for one green thread: its handler runs in that thread, and
 * interrupts its parked call as a handler would. */
HOOK int pthread_kill(pthread_t t, int sig)
{
    struct sched *s = thread_gate(__builtin_return_address(0));
    if (!s || !green_id(s, t))
        return REAL(pthread_kill)(t, sig);
    return gsignal_kill(s, CO(t), sig);
}

/* ---- calls about the kernel thread behind a green thread ------------------------ */

HOOK int pthread_getattr_np(pthread_t t, pthread_attr_t *attr)
{
    struct sched *s = thread_gate(__builtin_return_address(0));
    if (!s || !green_id(s, t))
        return REAL(pthread_getattr_np)(t, attr);
    int r = REAL(pthread_getattr_np)(REAL(pthread_self)(), attr);
    struct corun *co = CO(t);
    if (r == 0 && co != s->main_co) {
        size_t size = co->stack.cls ? (size_t)((char *)co - co->stack_lo) : co->stack.size;
        pthread_attr_setstack(attr, co->stack_lo, size);
        pthread_attr_setdetachstate(attr, (co->flags & CO_DETACHED) ? PTHREAD_CREATE_DETACHED
                                                                    : PTHREAD_CREATE_JOINABLE);
    }
    return r;
}

#define ON_KERNEL_THREAD(call, t, ...)                                   \
    do {                                                                 \
        struct sched *s_ = thread_gate(__builtin_return_address(0));     \
        if (s_ && green_id(s_, t))                                       \
            t = REAL(pthread_self)();                                    \
        return REAL(call)(t, __VA_ARGS__);                               \
    } while (0)

HOOK int pthread_getcpuclockid(pthread_t t, clockid_t *clock)
{
    ON_KERNEL_THREAD(pthread_getcpuclockid, t, clock);
}

HOOK int pthread_getschedparam(pthread_t t, int *policy, struct sched_param *p)
{
    ON_KERNEL_THREAD(pthread_getschedparam, t, policy, p);
}

HOOK int pthread_setschedparam(pthread_t t, int policy, const struct sched_param *p)
{
    ON_KERNEL_THREAD(pthread_setschedparam, t, policy, p);
}

HOOK int pthread_setschedprio(pthread_t t, int prio)
{
    ON_KERNEL_THREAD(pthread_setschedprio, t, prio);
}

HOOK int pthread_getaffinity_np(pthread_t t, size_t n, cpu_set_t *set)
{
    ON_KERNEL_THREAD(pthread_getaffinity_np, t, n, set);
}

HOOK int pthread_setaffinity_np(pthread_t t, size_t n, const cpu_set_t *set)
{
    ON_KERNEL_THREAD(pthread_setaffinity_np, t, n, set);
}
