/*
 * Scheduler and coroutine lifecycle.
 *
 * Switching: a coroutine that blocks or yields switches directly to the next
 * runnable coroutine. Only when nothing is runnable (or every POLL_EVERY
 * dispatches, so I/O and timers are not starved by busy coroutines) does it
 * switch to the scheduler's loop context, which runs the libuv loop on its own
 * stack and then dispatches whatever became runnable.
 *
 * Timers: deadlines are CLOCK_MONOTONIC nanoseconds in a heap; one timerfd,
 * armed with an absolute deadline and watched by the loop, wakes it. libuv's
 * cached loop time is never used, so a timeout cannot fire early.
 */
#include "sched.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "context.h"
#include "diag.h"

#ifdef CORUN_SANITIZERS
#include <sanitizer/common_interface_defs.h>
#endif

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define POLL_EVERY 64                        /* dispatches between loop polls */
#define LOOP_STACK_SIZE ((size_t)256 << 10)
#define STACK_CANARY 0xC0DE5AFEF00DFACEull
/* The coroutine header lives at the top of its own stack slot. */
#define CO_HDR ((sizeof(struct corun) + 63) & ~(size_t)63)

static __thread struct sched *tls_sched __attribute__((tls_model("initial-exec")));
static atomic_uint_fast64_t next_id = 1;

/* ---- time ----------------------------------------------------------------*/

uint64_t clock_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t deadline_after(int64_t timeout_ns)
{
    if (timeout_ns < 0)
        return DEADLINE_NONE;
    uint64_t d = clock_now_ns() + (uint64_t)timeout_ns;
    return d < (uint64_t)timeout_ns ? DEADLINE_NONE : d;
}

/* ---- diagnostics ---------------------------------------------------------*/

__attribute__((noreturn)) static void overflow_abort(const struct corun *co, const char *how)
{
    diag_fatal("stack overflow in green thread %llu%s%s%s (%s): its stack is %zu bytes. "
               "Give green threads more with CORUN_STACK_SIZE (e.g. CORUN_STACK_SIZE=%zuK) "
               "or a larger stack size attribute",
               (unsigned long long)co->id, co->name[0] ? " '" : "", co->name,
               co->name[0] ? "'" : "", how, co->stack_size, co->stack_size / 1024 * 2);
}

static inline void stack_check(const struct corun *co)
{
    if (unlikely(co->canary && *co->canary != STACK_CANARY))
        overflow_abort(co, "its stack canary was overwritten");
}

static struct sigaction segv_prev;

static void segv_handler(int sig, siginfo_t *si, void *uc)
{
    char *hi;
    size_t size;
    if (stack_guard_hit(si->si_addr, &hi, &size))
        overflow_abort((const struct corun *)(hi - CO_HDR), "it ran into its guard page");
    /* Not a corun stack: behave as if this handler were not there. */
    if ((segv_prev.sa_flags & SA_SIGINFO) && segv_prev.sa_sigaction) {
        segv_prev.sa_sigaction(sig, si, uc);
    } else if (segv_prev.sa_handler == SIG_DFL || segv_prev.sa_handler == SIG_IGN) {
        sigaction(SIGSEGV, &segv_prev, NULL);   /* the fault repeats, with the old action */
    } else {
        segv_prev.sa_handler(sig);
    }
}

static void segv_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &segv_prev);
}

/* The overflow report runs on an alternate signal stack: the faulting stack
 * has no room left. */
static void altstack_ensure(void)
{
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return;
    size_t len = 64 << 10;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return;
    stack_t ss = { .ss_sp = p, .ss_size = len, .ss_flags = 0 };
    sigaltstack(&ss, NULL);
}

/* ---- switching -----------------------------------------------------------*/

#ifdef CORUN_SANITIZERS
#define ASAN_SWITCH_START(from, to, dying) \
    __sanitizer_start_switch_fiber((dying) ? NULL : &(from)->asan_fake, (to)->asan_bottom, (to)->asan_size)
#define ASAN_SWITCH_DONE(self) __sanitizer_finish_switch_fiber((self)->asan_fake, NULL, NULL)
#define ASAN_SWITCH_DONE_NEW() __sanitizer_finish_switch_fiber(NULL, NULL, NULL)
#else
#define ASAN_SWITCH_START(from, to, dying) ((void)0)
#define ASAN_SWITCH_DONE(self) ((void)0)
#define ASAN_SWITCH_DONE_NEW() ((void)0)
#endif

static void coroutine_release(struct corun *co)
{
    struct stack_slot slot = co->stack;   /* the header goes with the stack */
    stack_release(&slot);
}

/* Runs in every context right after it is resumed. */
static inline void after_switch(struct sched *s, struct corun *self)
{
    *s->errno_loc = self->saved_errno;
    if (unlikely(s->dead != NULL)) {
        struct corun *d = s->dead;
        s->dead = NULL;
        coroutine_release(d);
    }
}

static inline void sched_switch(struct sched *s, struct corun *from, struct corun *to)
{
    stack_check(from);
    from->saved_errno = *s->errno_loc;
    to->state = CO_RUNNING;
    s->current = to;
    ASAN_SWITCH_START(from, to, 0);
    corun_ctx_switch(&from->sp, to->sp, NULL);
    ASAN_SWITCH_DONE(from);
    after_switch(s, from);
}

__attribute__((noreturn)) static void sched_switch_final(struct sched *s, struct corun *from,
                                                         struct corun *to)
{
    stack_check(from);
    to->state = CO_RUNNING;
    s->current = to;
    ASAN_SWITCH_START(from, to, 1);
    corun_ctx_switch(&from->sp, to->sp, NULL);
    __builtin_unreachable();
}

static inline struct corun *pick_next(struct sched *s)
{
    if (likely(s->dispatches < POLL_EVERY)) {
        struct corun *n = coq_pop(&s->runq);
        if (n) {
            s->dispatches++;
            return n;
        }
    }
    return s->loop_co;
}

/* ---- timers --------------------------------------------------------------*/

static void timers_arm(struct sched *s)
{
    struct timer_node *t = timerheap_min(&s->timers);
    /* Only ever move the alarm earlier: a late-firing timerfd finds nothing
     * due and is re-armed then, which saves a syscall per cancelled wait. */
    if (!t || t->deadline >= s->timer_armed)
        return;
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_sec = (time_t)(t->deadline / 1000000000u);
    its.it_value.tv_nsec = (long)(t->deadline % 1000000000u);
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
        its.it_value.tv_nsec = 1;
    if (timerfd_settime(s->timerfd, TFD_TIMER_ABSTIME, &its, NULL) != 0)
        diag_fatal("timerfd_settime failed: %s", strerror(errno));
    s->timer_armed = t->deadline;
}

static void timers_fire(uv_poll_t *w, int status, int events)
{
    (void)status;
    (void)events;
    struct sched *s = w->data;
    uint64_t ticks;
    while (syscall(SYS_read, s->timerfd, &ticks, sizeof ticks) < 0 && errno == EINTR)
        ;
    s->timer_armed = DEADLINE_NONE;
    uint64_t now = clock_now_ns();
    struct timer_node *t;
    while ((t = timerheap_min(&s->timers)) && t->deadline <= now)
        sched_wake((struct corun *)((char *)t - offsetof(struct corun, timer)), WAKE_TIMEOUT);
    timers_arm(s);
}

/* ---- park / wake ---------------------------------------------------------*/

int sched_park(struct sched *s, uint64_t deadline)
{
    struct corun *cur = s->current;
    cur->state = CO_PARKED;
    if (deadline != DEADLINE_NONE) {
        cur->timer.deadline = deadline;
        if (timerheap_insert(&s->timers, &cur->timer) != 0)
            diag_fatal("out of memory for the timer queue");
        timers_arm(s);
    }
    sched_switch(s, cur, pick_next(s));
    return cur->wake_reason;
}

bool sched_wake(struct corun *co, int reason)
{
    if (co->state != CO_PARKED)
        return false;
    if (co->queue)
        coq_remove(co->queue, co);
    if (timer_queued(&co->timer))
        timerheap_remove(&co->sched->timers, &co->timer);
    co->wake_reason = (uint8_t)reason;
    co->state = CO_RUNNABLE;
    coq_push(&co->sched->runq, co);
    return true;
}

/* ---- coroutines ----------------------------------------------------------*/

/* Stack slot, header at its top and an initial context running entry(arg). */
static int coroutine_new(struct sched *s, size_t stack_size, size_t guard, ctx_entry_fn entry,
                         void *arg, struct corun **out)
{
    struct stack_slot slot;
    int r = stack_alloc(stack_size + CO_HDR, guard, &slot);
    if (r)
        return r;
    struct corun *co = (struct corun *)(slot.lo + slot.size - CO_HDR);
    memset(co, 0, sizeof *co);
    co->stack = slot;
    co->stack_lo = slot.lo;
    co->stack_size = stack_size;
    co->sched = s;
    if (!slot.guarded) {
        co->canary = (uint64_t *)slot.lo;
        *co->canary = STACK_CANARY;
    }
#ifdef CORUN_SANITIZERS
    co->asan_bottom = slot.lo;
    co->asan_size = (size_t)((char *)co - slot.lo);
#endif
    co->sp = ctx_make(co, entry, arg ? arg : co);
    *out = co;
    return 0;
}

__attribute__((noreturn)) static void coroutine_exit(struct corun *co)
{
    struct sched *s = co->sched;
    co->state = CO_DONE;
    if (co->joiner)
        sched_wake(co->joiner, WAKE_SIGNALED);
    struct corun *next = NULL;
    /* Greenlet rule: a spawner waiting in corun_switch() gets the result.
     * parent may have been released; its slot stays mapped, and the id
     * check tells a live parent from a reused or zeroed slot. */
    struct corun *p = co->parent;
    if (p && p->id == co->parent_id && p->state == CO_SUSPENDED) {
        p->xfer = co->retval;
        next = p;
    }
    if (co->flags & CO_DETACHED)
        s->dead = co;
    if (!next)
        next = pick_next(s);
    sched_switch_final(s, co, next);
}

static void coroutine_entry(void *arg, void *xfer)
{
    (void)xfer;
    struct corun *co = arg;
    struct sched *s = co->sched;
    ASAN_SWITCH_DONE_NEW();
    co->saved_errno = 0;                 /* a new thread starts with errno 0 */
    after_switch(s, co);
    co->retval = co->fn(co->arg);
    coroutine_exit(co);
}

static void loop_main(void *arg, void *xfer)
{
    (void)xfer;
    struct sched *s = arg;
    ASAN_SWITCH_DONE_NEW();
    after_switch(s, s->loop_co);
    for (;;) {
        s->dispatches = 0;
        uv_run(&s->loop, coq_empty(&s->runq) ? UV_RUN_ONCE : UV_RUN_NOWAIT);
        struct corun *n = coq_pop(&s->runq);
        if (n) {
            s->dispatches = 1;
            s->loop_co->state = CO_LOOP;
            sched_switch(s, s->loop_co, n);
        }
    }
}

/* ---- scheduler -----------------------------------------------------------*/

static pthread_once_t process_once = PTHREAD_ONCE_INIT;

static void process_init(void)
{
    config_load();
    segv_install();
}

static struct sched *sched_create(void)
{
    pthread_once(&process_once, process_init);
    struct sched *s = calloc(1, sizeof *s);
    struct corun *main_co = calloc(1, sizeof *main_co);
    if (!s || !main_co)
        diag_fatal("out of memory creating a scheduler");
    s->errno_loc = &errno;
    s->timer_armed = DEADLINE_NONE;
    int r = uv_loop_init(&s->loop);
    if (r)
        diag_fatal("uv_loop_init failed: %s", uv_strerror(r));
    s->loop.data = s;

    s->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (s->timerfd < 0)
        diag_fatal("timerfd_create failed: %s", strerror(errno));
    uv_poll_init(&s->loop, &s->timer_watch, s->timerfd);
    s->timer_watch.data = s;
    uv_poll_start(&s->timer_watch, UV_READABLE, timers_fire);

    main_co->sched = s;
    main_co->state = CO_RUNNING;
    main_co->flags = CO_MAIN;
    main_co->id = atomic_fetch_add(&next_id, 1);
#ifdef CORUN_SANITIZERS
    pthread_attr_t pa;
    if (pthread_getattr_np(pthread_self(), &pa) == 0) {
        void *lo;
        size_t sz;
        pthread_attr_getstack(&pa, &lo, &sz);
        main_co->asan_bottom = lo;
        main_co->asan_size = sz;
        pthread_attr_destroy(&pa);
    }
#endif
    s->main_co = main_co;
    s->current = main_co;

    r = coroutine_new(s, LOOP_STACK_SIZE, stack_page_size(), loop_main, s, &s->loop_co);
    if (r)
        diag_fatal("cannot allocate the event loop's stack: %s", strerror(r));
    s->loop_co->state = CO_LOOP;
    strcpy(s->loop_co->name, "corun-loop");

    altstack_ensure();
    tls_sched = s;
    return s;
}

struct sched *sched_self(void)
{
    struct sched *s = tls_sched;
    return likely(s != NULL) ? s : sched_create();
}

/* ---- public API ----------------------------------------------------------*/

__attribute__((visibility("default"))) int corun_spawn(corun_t **out, const corun_attr_t *attr,
                                                       corun_fn fn, void *arg)
{
    if (!fn)
        return EINVAL;
    size_t size = attr && attr->stack_size ? attr->stack_size : corun_config.stack_size;
    if (size < CORUN_STACK_MIN || size > ((size_t)1 << 40))
        return EINVAL;
    size_t guard = stack_page_size();
    if (attr && attr->guard_size)
        guard = attr->guard_size == CORUN_GUARD_NONE ? 0 : attr->guard_size;
    if (guard > ((size_t)1 << 30))
        return EINVAL;
    size_t name_len = attr && attr->name ? strlen(attr->name) : 0;
    if (name_len >= CORUN_NAME_MAX)
        return ERANGE;

    struct sched *s = sched_self();
    struct corun *co;
    int r = coroutine_new(s, size, guard, coroutine_entry, NULL, &co);
    if (r)
        return r;
    co->fn = fn;
    co->arg = arg;
    co->id = atomic_fetch_add(&next_id, 1);
    co->parent = s->current;
    co->parent_id = s->current->id;
    if (!out || (attr && attr->detached))
        co->flags |= CO_DETACHED;
    if (name_len)
        memcpy(co->name, attr->name, name_len + 1);
    co->state = CO_RUNNABLE;
    coq_push(&s->runq, co);
    if (out)
        *out = co;
    return 0;
}

__attribute__((visibility("default"))) int corun_join_timeout(corun_t *co, void **retval,
                                                              int64_t timeout_ns)
{
    struct sched *s = sched_self();
    struct corun *cur = s->current;
    if (co == cur)
        return EDEADLK;
    if (co->sched != s)
        return EXDEV;
    if ((co->flags & CO_DETACHED) || co->joiner)
        return EINVAL;
    if (co->state != CO_DONE) {
        if (timeout_ns == 0)
            return EAGAIN;
        co->joiner = cur;
        if (sched_park(s, deadline_after(timeout_ns)) == WAKE_TIMEOUT) {
            co->joiner = NULL;
            return ETIMEDOUT;
        }
    }
    if (retval)
        *retval = co->retval;
    coroutine_release(co);
    return 0;
}

__attribute__((visibility("default"))) int corun_join(corun_t *co, void **retval)
{
    return corun_join_timeout(co, retval, CORUN_FOREVER);
}

__attribute__((visibility("default"))) int corun_detach(corun_t *co)
{
    if ((co->flags & CO_DETACHED) || co->joiner)
        return EINVAL;
    if (co->sched != sched_self())
        return EXDEV;
    co->flags |= CO_DETACHED;
    if (co->state == CO_DONE)
        coroutine_release(co);
    return 0;
}

__attribute__((visibility("default"))) void corun_yield(void)
{
    struct sched *s = sched_self();
    struct corun *cur = s->current;
    cur->state = CO_RUNNABLE;
    coq_push(&s->runq, cur);
    struct corun *next = pick_next(s);
    if (next == cur) {
        cur->state = CO_RUNNING;
        return;
    }
    sched_switch(s, cur, next);
}

__attribute__((visibility("default"))) int corun_sleep(int64_t ns)
{
    if (ns <= 0) {
        corun_yield();
        return 0;
    }
    struct sched *s = sched_self();
    sched_park(s, deadline_after(ns));
    return 0;
}

__attribute__((visibility("default"))) corun_t *corun_current(void)
{
    return sched_self()->current;
}

__attribute__((visibility("default"))) uint64_t corun_id(const corun_t *co)
{
    return co->id;
}

__attribute__((visibility("default"))) const char *corun_name(const corun_t *co)
{
    return co->name;
}

__attribute__((visibility("default"))) int corun_set_name(corun_t *co, const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n >= CORUN_NAME_MAX)
        return ERANGE;
    if (n)
        memcpy(co->name, name, n);
    co->name[n] = '\0';
    return 0;
}

static const char *state_name(int st)
{
    switch (st) {
    case CO_PARKED: return "parked in a blocking call";
    case CO_DONE: return "finished";
    case CO_LOOP: return "the scheduler's loop";
    default: return "not resumable";
    }
}

__attribute__((visibility("default"))) void *corun_switch(corun_t *target, void *value)
{
    struct sched *s = sched_self();
    struct corun *cur = s->current;
    if (target == cur)
        return value;
    if (target->sched != s)
        diag_fatal("corun_switch: green thread %llu belongs to another OS thread",
                   (unsigned long long)target->id);
    if (target->state == CO_RUNNABLE)
        coq_remove(&s->runq, target);
    else if (target->state != CO_SUSPENDED)
        diag_fatal("corun_switch: green thread %llu is %s; only a runnable green thread or one "
                   "suspended in corun_switch can be switched to",
                   (unsigned long long)target->id, state_name(target->state));
    target->xfer = value;
    cur->state = CO_SUSPENDED;
    sched_switch(s, cur, target);
    return cur->xfer;
}
