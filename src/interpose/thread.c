/*
 * Hooks: pthread lifecycle, identity, keys, once, cancellation, names,
 * signals masks — pthreads as green threads. A green thread's pthread_t is
 * its coroutine. With CORUN_THREADS=native, and on threads that run no green
 * threads (libuv's workers), every call goes to glibc.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "gsync.h"
#include "gsignal.h"
#include "gthread.h"
#include "real.h"
#include "sched.h"
#include "gate.h"

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
REAL_DECL(pid_t, gettid, (void));
REAL_DECL(int, tgkill, (pid_t, pid_t, int));
REAL_DECL(int, sched_setaffinity, (pid_t, size_t, const cpu_set_t *));
REAL_DECL(int, sched_getaffinity, (pid_t, size_t, cpu_set_t *));
REAL_DECL(int, sched_setparam, (pid_t, const struct sched_param *));
REAL_DECL(int, sched_getparam, (pid_t, struct sched_param *));
REAL_DECL(int, sched_setscheduler, (pid_t, int, const struct sched_param *));
REAL_DECL(int, sched_getscheduler, (pid_t));
REAL_DECL(int, sched_rr_get_interval, (pid_t, struct timespec *));
REAL_DECL(int, getpriority, (__priority_which_t, id_t));
REAL_DECL(int, setpriority, (__priority_which_t, id_t, int));

#define CO(t) ((struct corun *)(t))

/* A pthread_t of this scheduler's green threads (not, say, the real id of
 * a kernel thread, which glibc must handle). */
static bool green_id(struct sched *s, pthread_t t)
{
    if (!t)
        return false;
    struct sched *ts = CO(t)->sched;
    return ts == s || (s->mn_member && sched_is_member(ts));
}

/* ---- creation and ending ----------------------------------------------------*/

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
    CATCH_HOLD();
    void *ra = __builtin_return_address(0);
    struct sched *s = gate_thread(ra);
    if (!s) {
        struct native_start *st;
        if (cr_config.threads_native == 0 || caller_is_foreign(ra) || !(st = malloc(sizeof *st)))
            return libc_pthread_create(t, attr, fn, arg);
        *st = (struct native_start){ fn, arg };
        int r = libc_pthread_create(t, attr, native_thread, st);
        if (r)
            free(st);
        return r;
    }
    struct corun *co;
    int r = gthread_create(s, attr, fn, arg, &co);
    if (r)
        return r;
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
    CATCH_HOLD();
    struct sched *s = gate_thread(__builtin_return_address(0));
    if (!s || !green_id(s, t))
        return REAL(pthread_join)(t, ret);
    return join_common(t, ret, DEADLINE_NONE, false);
}

HOOK int pthread_tryjoin_np(pthread_t t, void **ret)
{
    CATCH_HOLD();
    struct sched *s = gate_thread(__builtin_return_address(0));
    if (!s || !green_id(s, t))
        return REAL(pthread_tryjoin_np)(t, ret);
    return join_common(t, ret, DEADLINE_NONE, true);
}

HOOK int pthread_clockjoin_np(pthread_t t, void **ret, clockid_t clock, const struct timespec *abs)
{
    CATCH_HOLD();
    struct sched *s = gate_thread(__builtin_return_address(0));
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
    CATCH_HOLD();
    struct sched *s = gate_thread(__builtin_return_address(0));
    if (!s || !green_id(s, t))
        return REAL(pthread_timedjoin_np)(t, ret, abs);
    return pthread_clockjoin_np(t, ret, CLOCK_REALTIME, abs);
}

HOOK int pthread_detach(pthread_t t)
{
    CATCH_HOLD();
    struct sched *s = gate_thread(__builtin_return_address(0));
    if (!s || !green_id(s, t))
        return REAL(pthread_detach)(t);
    return sched_detach(CO(t));
}

HOOK void pthread_exit(void *ret)
{
    CATCH_HOLD();
    if (!gate_thread(__builtin_return_address(0)))
        REAL(pthread_exit)(ret);
    gthread_exit(ret);
}

/* ---- identity ---------------------------------------------------------------*/

HOOK pthread_t pthread_self(void)
{
    CATCH_HOLD();
    struct sched *s = gate_thread(__builtin_return_address(0));
    return s ? (pthread_t)s->current : REAL(pthread_self)();
}

/* pthread_equal compares the ids, whatever they are: glibc's is right. */

/* Thread ids: each green thread has its own (gthread_tid), wherever the
 * program asks: gettid() and syscall(SYS_gettid). /proc/self/task still
 * lists only kernel threads. */
HOOK pid_t gettid(void)
{
    CATCH_HOLD();
    struct sched *s = gate_thread(__builtin_return_address(0));
    return s ? gthread_tid(s->current) : REAL(gettid)();
}

/* tgkill/tkill naming a green thread of this scheduler (or the kernel
 * thread's tid, which names the green thread that has it) reach that green
 * thread, as pthread_kill does; other ids are the kernel's. */
HOOK int tgkill(pid_t tgid, pid_t tid, int sig)
{
    CATCH_HOLD();
    struct sched *s = gate_thread(__builtin_return_address(0));
    int r = s ? gsignal_kill_tid(s, tgid, tid, sig) : -1;
    if (r < 0)
        return REAL(tgkill)(tgid, tid, sig);
    if (r)
        errno = r;
    return r ? -1 : 0;
}

HOOK int pthread_setname_np(pthread_t t, const char *name)
{
    CATCH_HOLD();
    struct sched *s = gate_thread(__builtin_return_address(0));
    if (!s || !green_id(s, t))
        return REAL(pthread_setname_np)(t, name);
    if (strlen(name) > 15)        /* the kernel's limit, kept for the same errors */
        return ERANGE;
    return corun_set_name(CO(t), name);
}

HOOK int pthread_getname_np(pthread_t t, char *buf, size_t len)
{
    CATCH_HOLD();
    struct sched *s = gate_thread(__builtin_return_address(0));
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
    CATCH_HOLD();
    struct sched *s = gate_thread(__builtin_return_address(0));
    if (!s)
        return REAL(sched_yield)();
    sched_yield_current(s);
    return 0;
}

/* glibc's header renames pthread_yield to sched_yield; older programs still
 * call the pthread_yield symbol. */
HOOK int hook_pthread_yield(void) __asm__("pthread_yield");
HOOK int hook_pthread_yield(void)
{
    CATCH_HOLD();
    return sched_yield();
}

HOOK int pthread_once(pthread_once_t *once, void (*fn)(void))
{
    CATCH_HOLD();
    /* corun's for every caller in green mode, as the sync objects are. */
    if (!gate_threads_green(__builtin_return_address(0)))
        return REAL(pthread_once)(once, fn);
    return gonce(once, fn);
}

/* ---- keys: corun's on every thread once in green mode ------------------------
 * (keys made through glibc and through corun must never mix) */

HOOK int pthread_key_create(pthread_key_t *key, void (*destructor)(void *))
{
    CATCH_HOLD();
    if (!gate_threads_green(__builtin_return_address(0)))
        return REAL(pthread_key_create)(key, destructor);
    return gthread_key_create(key, destructor);
}

HOOK int pthread_key_delete(pthread_key_t key)
{
    CATCH_HOLD();
    if (!gate_threads_green(__builtin_return_address(0)))
        return REAL(pthread_key_delete)(key);
    return gthread_key_delete(key);
}

HOOK void *pthread_getspecific(pthread_key_t key)
{
    CATCH_HOLD();
    if (!gate_threads_green(__builtin_return_address(0)))
        return REAL(pthread_getspecific)(key);
    return gthread_getspecific(key);
}

HOOK int pthread_setspecific(pthread_key_t key, const void *value)
{
    CATCH_HOLD();
    if (!gate_threads_green(__builtin_return_address(0)))
        return REAL(pthread_setspecific)(key, value);
    return gthread_setspecific(key, value);
}

/* ---- cancellation -------------------------------------------------------------*/

HOOK int pthread_cancel(pthread_t t)
{
    CATCH_HOLD();
    struct sched *s = gate_thread(__builtin_return_address(0));
    if (!s || !green_id(s, t))
        return REAL(pthread_cancel)(t);
    if (CO(t)->state == CO_DONE)
        return 0;
    return gthread_cancel(CO(t));
}

HOOK void pthread_testcancel(void)
{
    CATCH_HOLD();
    if (!gate_thread(__builtin_return_address(0))) {
        REAL(pthread_testcancel)();
        return;
    }
    gthread_testcancel();
}

HOOK int pthread_setcancelstate(int state, int *old)
{
    CATCH_HOLD();
    if (!gate_thread(__builtin_return_address(0)))
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
    CATCH_HOLD();
    if (!gate_thread(__builtin_return_address(0)))
        return REAL(pthread_setcanceltype)(type, old);
    if (type != PTHREAD_CANCEL_DEFERRED && type != PTHREAD_CANCEL_ASYNCHRONOUS)
        return EINVAL;
    if (old)
        *old = PTHREAD_CANCEL_DEFERRED;
    return 0;
}

HOOK void __pthread_register_cancel(__pthread_unwind_buf_t *buf)
{
    CATCH_HOLD();
    if (!gate_thread(__builtin_return_address(0))) {
        REAL(__pthread_register_cancel)(buf);
        return;
    }
    gthread_cleanup_push(buf);
}

HOOK void __pthread_unregister_cancel(__pthread_unwind_buf_t *buf)
{
    CATCH_HOLD();
    if (!gate_thread(__builtin_return_address(0))) {
        REAL(__pthread_unregister_cancel)(buf);
        return;
    }
    gthread_cleanup_pop(buf);
}

HOOK void __pthread_unwind_next(__pthread_unwind_buf_t *buf)
{
    CATCH_HOLD();
    if (!gate_thread(__builtin_return_address(0)))
        REAL(__pthread_unwind_next)(buf);
    gthread_cleanup_next(buf);
}

/* ---- signals --------------------------------------------------------------------
 * (masks and dispositions: signal.c) */

/* A signal for one green thread: its handler runs in that thread, and
 * interrupts its parked call as a handler would. */
HOOK int pthread_kill(pthread_t t, int sig)
{
    CATCH_HOLD();
    struct sched *s = gate_thread(__builtin_return_address(0));
    if (!s || !green_id(s, t))
        return REAL(pthread_kill)(t, sig);
    return gsignal_kill(s, CO(t), sig);
}

/* ---- calls about the kernel thread behind a green thread ------------------------ */

HOOK int pthread_getattr_np(pthread_t t, pthread_attr_t *attr)
{
    CATCH_HOLD();
    struct sched *s = gate_thread(__builtin_return_address(0));
    if (!s || !green_id(s, t))
        return REAL(pthread_getattr_np)(t, attr);
    int r = REAL(pthread_getattr_np)(REAL(pthread_self)(), attr);
    struct corun *co = CO(t);
    if (r == 0 && co != s->main_co) {
        size_t size = co->stack.cls ? (size_t)(co->stack_hi - co->stack_lo) : co->stack.size;
        pthread_attr_setstack(attr, co->stack_lo, size);
        pthread_attr_setdetachstate(attr, (co->flags & CO_DETACHED) ? PTHREAD_CREATE_DETACHED
                                                                    : PTHREAD_CREATE_JOINABLE);
    }
    return r;
}

#define ON_KERNEL_THREAD(call, t, ...)                                   \
    do {                                                                 \
        struct sched *s_ = gate_thread(__builtin_return_address(0));     \
        if (s_ && green_id(s_, t))                                       \
            t = REAL(pthread_self)();                                    \
        return REAL(call)(t, __VA_ARGS__);                               \
    } while (0)

HOOK int pthread_getcpuclockid(pthread_t t, clockid_t *clock)
{
    CATCH_HOLD();
    ON_KERNEL_THREAD(pthread_getcpuclockid, t, clock);
}

HOOK int pthread_getschedparam(pthread_t t, int *policy, struct sched_param *p)
{
    CATCH_HOLD();
    ON_KERNEL_THREAD(pthread_getschedparam, t, policy, p);
}

HOOK int pthread_setschedparam(pthread_t t, int policy, const struct sched_param *p)
{
    CATCH_HOLD();
    ON_KERNEL_THREAD(pthread_setschedparam, t, policy, p);
}

HOOK int pthread_setschedprio(pthread_t t, int prio)
{
    CATCH_HOLD();
    ON_KERNEL_THREAD(pthread_setschedprio, t, prio);
}

HOOK int pthread_getaffinity_np(pthread_t t, size_t n, cpu_set_t *set)
{
    CATCH_HOLD();
    ON_KERNEL_THREAD(pthread_getaffinity_np, t, n, set);
}

HOOK int pthread_setaffinity_np(pthread_t t, size_t n, const cpu_set_t *set)
{
    CATCH_HOLD();
    ON_KERNEL_THREAD(pthread_setaffinity_np, t, n, set);
}

/* The same for calls that take a thread id: a green thread's id stands for
 * the kernel thread that runs it (its affinity, priority and scheduling
 * are that thread's, shared by its green threads); other ids are passed
 * on as they are. */
static pid_t kernel_tid(pid_t id, const void *ra)
{
    struct sched *s = gate_thread(ra);
    return s ? gthread_kernel_tid(s, id) : id;
}

#define ON_KERNEL_TID(call, id, ...) \
    return REAL(call)(kernel_tid(id, __builtin_return_address(0)), __VA_ARGS__)

/* (glibc 2.3.3's versions of the affinity calls are an older ABI.) */
HOOK int sched_setaffinity(pid_t id, size_t n, const cpu_set_t *set)
{
    CATCH_HOLD();
    return REAL_V(sched_setaffinity, "GLIBC_2.3.4")(kernel_tid(id, __builtin_return_address(0)),
                                                    n, set);
}

HOOK int sched_getaffinity(pid_t id, size_t n, cpu_set_t *set)
{
    CATCH_HOLD();
    return REAL_V(sched_getaffinity, "GLIBC_2.3.4")(kernel_tid(id, __builtin_return_address(0)),
                                                    n, set);
}

HOOK int sched_setparam(pid_t id, const struct sched_param *p)
{
    CATCH_HOLD();
    ON_KERNEL_TID(sched_setparam, id, p);
}

HOOK int sched_getparam(pid_t id, struct sched_param *p)
{
    CATCH_HOLD();
    ON_KERNEL_TID(sched_getparam, id, p);
}

HOOK int sched_setscheduler(pid_t id, int policy, const struct sched_param *p)
{
    CATCH_HOLD();
    ON_KERNEL_TID(sched_setscheduler, id, policy, p);
}

HOOK int sched_getscheduler(pid_t id)
{
    CATCH_HOLD();
    return REAL(sched_getscheduler)(kernel_tid(id, __builtin_return_address(0)));
}

HOOK int sched_rr_get_interval(pid_t id, struct timespec *t)
{
    CATCH_HOLD();
    ON_KERNEL_TID(sched_rr_get_interval, id, t);
}

HOOK int getpriority(__priority_which_t which, id_t who)
{
    CATCH_HOLD();
    if (which == PRIO_PROCESS)
        who = (id_t)kernel_tid((pid_t)who, __builtin_return_address(0));
    return REAL(getpriority)(which, who);
}

HOOK int setpriority(__priority_which_t which, id_t who, int prio)
{
    CATCH_HOLD();
    if (which == PRIO_PROCESS)
        who = (id_t)kernel_tid((pid_t)who, __builtin_return_address(0));
    return REAL(setpriority)(which, who, prio);
}
