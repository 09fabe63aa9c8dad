/*
 * Scheduler and coroutine lifecycle.
 *
 * Switching: a coroutine that blocks or yields switches directly to the next
 * runnable coroutine. Only when nothing is runnable (or every POLL_EVERY
 * dispatches or coarse clock tick, so I/O and timers are not starved by busy
 * coroutines) does it
 * switch to the scheduler's loop context, which runs the libuv loop on its own
 * stack and then dispatches whatever became runnable.
 *
 * Polling: the scheduler's epoll set holds the fds coroutines wait on and
 * libuv's backend fd, so one epoll_pwait2 serves both; libuv runs (without
 * blocking) only when its fd is ready or it has work due. libuv stays the
 * loop for everything it owns (thread pool, async wakeups, its handles).
 *
 * Timers: deadlines are CLOCK_MONOTONIC nanoseconds in a heap; the poll
 * sleeps until the earliest with nanosecond resolution, and expiry is
 * judged against a fresh clock reading, never libuv's cached loop time, so a
 * timeout cannot fire early.
 */
#include "sched.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <threads.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "config.h"
#include "context.h"
#include "diag.h"
#include "fdtab.h"
#include "gsignal.h"
#include "gthread.h"
#include "inspect.h"

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

__thread struct sched *corun_tls_sched __attribute__((tls_model("initial-exec")));
/* Set on threads the hooks must leave alone (libuv's workers, threads of
 * their own), and while a scheduler is being built. */
static __thread bool tls_hooks_off __attribute__((tls_model("initial-exec")));
/* A kernel thread the program created (CORUN_THREADS=native): it gets a
 * scheduler of its own for the I/O hooks. */
static __thread bool tls_program_thread __attribute__((tls_model("initial-exec")));

void sched_mark_program_thread(void)
{
    tls_program_thread = true;
}
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
    /* Without a guard, an overflow runs into whatever lies below the stack:
     * the faulting stack pointer of the running coroutine gives it away.
     * (During a switch, current is still the coroutine switching out.) */
    struct sched *s = corun_tls_sched;
    const struct corun *co = s ? s->current : NULL;
    if (co && co->stack_lo) {
        uintptr_t sp = (uintptr_t)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RSP];
        uintptr_t lo = (uintptr_t)co->stack_lo;
        if (sp < lo + 256 && lo - sp <= ((uintptr_t)1 << 20))
            overflow_abort(co, "its stack pointer went below its stack");
    }
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
    if (co->flags & CO_MAIN)
        return;                           /* lives on the thread's own stack */
    inspect_forget(co->sched, co);
    free(co->tsd);
    if (!co->stack.cls)
        return;                           /* the program's own stack (pthread_attr_setstack) */
    struct stack_slot slot = co->stack;   /* the header goes with the stack */
    stack_release(&slot);
}


/* Runs in every context right after it is resumed. The scheduler's current
 * coroutine changes only here, so until the switch is complete it still
 * names the coroutine switching out (the overflow handler relies on it). */
static inline void after_switch(struct sched *s, struct corun *self)
{
    s->current = self;
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
    s->stats.switches++;
    if (unlikely(s->stats.loop_left_ns))
        inspect_note_switch(s, from);
    ASAN_SWITCH_START(from, to, 0);
    corun_ctx_switch(&from->sp, to->sp, NULL);
    ASAN_SWITCH_DONE(from);
    after_switch(s, from);
    if (unlikely(from->sig_pending != 0))
        gsignal_run_pending(s, from);
}

__attribute__((noreturn)) static void sched_switch_final(struct corun *from,
                                                         struct corun *to)
{
    stack_check(from);
    to->state = CO_RUNNING;
    from->sched->stats.switches++;
    if (unlikely(from->sched->stats.loop_left_ns))
        inspect_note_switch(from->sched, from);
    ASAN_SWITCH_START(from, to, 1);
    corun_ctx_switch(&from->sp, to->sp, NULL);
    __builtin_unreachable();
}

/* The coarse clock's reading (a tick of a few ms) as a number that changes
 * at each tick: a few ns through the vDSO, cheap enough for every dispatch. */
static inline uint64_t coarse_tick(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
    return (uint64_t)t.tv_sec * 1000000000 + (uint64_t)t.tv_nsec;
}

/* Run the loop next (poll timers and I/O) after POLL_EVERY dispatches, or
 * once the coarse clock has ticked since the last poll: coroutines that
 * work for milliseconds between yields would otherwise make every timer
 * and wakeup late by POLL_EVERY of their slices. At most one extra poll
 * per tick. */
static inline bool poll_due(struct sched *s)
{
    return s->dispatches >= POLL_EVERY || coarse_tick() != s->polled_tick;
}

static inline struct corun *pick_next(struct sched *s)
{
    if (likely(!poll_due(s))) {
        struct corun *n = coq_pop(&s->runq);
        if (n) {
            s->dispatches++;
            return n;
        }
    }
    return s->loop_co;
}

/* ---- polling -------------------------------------------------------------*/

#define UV_BACKEND_TAG UINT64_MAX     /* epoll data of libuv's backend fd */
#define SIGNAL_TAG (UINT64_MAX - 1)   /* ... and of the scheduler's signal eventfd */
#define POLL_BATCH 256

static void timers_expire(struct sched *s)
{
    struct timer_node *t = timerheap_min(&s->timers);
    if (!t)
        return;
    uint64_t now = clock_now_ns();
    while ((t = timerheap_min(&s->timers)) && t->deadline <= now)
        sched_wake((struct corun *)((char *)t - offsetof(struct corun, timer)), WAKE_TIMEOUT);
}

static int epoll_wait_ns(int epfd, struct epoll_event *ev, int n, int64_t timeout_ns)
{
    static int have_pwait2 = 1;
    if (have_pwait2) {
        struct timespec ts = { (time_t)(timeout_ns / 1000000000), (long)(timeout_ns % 1000000000) };
        int r = (int)syscall(SYS_epoll_pwait2, epfd, ev, n, timeout_ns < 0 ? NULL : &ts, NULL, 8);
        if (r >= 0 || errno != ENOSYS)
            return r;
        have_pwait2 = 0;
    }
    /* Millisecond fallback, rounded up so a timeout never fires early. */
    int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
    return (int)syscall(SYS_epoll_pwait, epfd, ev, n, ms, NULL, 8);
}

/* Collect readiness, due timers and libuv work; wait for some if `block`
 * and nothing is due. Runs in the loop context. */
static void sched_poll(struct sched *s, bool block)
{
    int64_t timeout = 0;
    bool uv_alive = uv_loop_alive(&s->loop);
    if (block) {
        timeout = -1;
        struct timer_node *t = timerheap_min(&s->timers);
        if (t) {
            uint64_t now = clock_now_ns();
            timeout = t->deadline > now ? (int64_t)(t->deadline - now) : 0;
        }
        if (uv_alive) {
            int ms = uv_backend_timeout(&s->loop);
            if (ms >= 0 && (timeout < 0 || (int64_t)ms * 1000000 < timeout))
                timeout = (int64_t)ms * 1000000;
        }
    }
    struct epoll_event ev[POLL_BATCH];
    bool uv_ready = false;
    __atomic_store_n(&s->polling, timeout != 0, __ATOMIC_RELAXED);
    int n = epoll_wait_ns(s->epfd, ev, POLL_BATCH, timeout);
    __atomic_store_n(&s->polling, false, __ATOMIC_RELAXED);
    for (int i = 0; i < n; i++) {
        if (ev[i].data.u64 == UV_BACKEND_TAG) {
            uv_ready = true;
        } else if (ev[i].data.u64 == SIGNAL_TAG) {
            uint64_t v;
            syscall(SYS_read, s->sigfd, &v, sizeof v);
        } else
            fdtab_event(ev[i].data.u64, ev[i].events);
    }
    if (s->sig_arrived)
        gsignal_dispatch(s);
    timers_expire(s);
    if (uv_ready || (uv_alive && uv_backend_timeout(&s->loop) == 0))
        uv_run(&s->loop, UV_RUN_NOWAIT);
}

/* ---- park / wake ---------------------------------------------------------*/

int sched_park(struct sched *s, uint64_t deadline)
{
    struct corun *cur = s->current;
    cur->state = CO_PARKED;
    inspect_note_park(s, cur);
    if (deadline != DEADLINE_NONE) {
        cur->timer.deadline = deadline;
        if (timerheap_insert(&s->timers, &cur->timer) != 0)
            diag_fatal("out of memory for the timer queue");
    }
    sched_switch(s, cur, pick_next(s));
    cur->wait_kind = WAIT_OTHER;
    return cur->wake_reason;
}

int sched_park_cancellable(struct sched *s, uint64_t deadline)
{
    struct corun *cur = s->current;
    if (cur->cancel_pending && !cur->cancel_disabled) {
        if (cur->queue)
            coq_remove(cur->queue, cur);   /* the caller queued it already */
        return WAKE_CANCELED;
    }
    cur->in_cancel_point = true;
    int why = sched_park(s, deadline);
    cur->in_cancel_point = false;
    return why;
}

/* Off the list of interruptibly parked coroutines: done by any wake, so that
 * a handler run right after it may park again. */
static void intr_unlink(struct sched *s, struct corun *co)
{
    if (co->intr_prev)
        co->intr_prev->intr_next = co->intr_next;
    else
        s->intr_head = co->intr_next;
    if (co->intr_next)
        co->intr_next->intr_prev = co->intr_prev;
    co->intr_next = co->intr_prev = NULL;
    co->intr = INTR_NONE;
}

int sched_park_interruptible(struct sched *s, uint64_t deadline, enum intr_mode mode)
{
    struct corun *cur = s->current;
    cur->intr = (uint8_t)mode;
    cur->intr_prev = NULL;
    cur->intr_next = s->intr_head;
    if (s->intr_head)
        s->intr_head->intr_prev = cur;
    s->intr_head = cur;
    int why = sched_park_cancellable(s, deadline);
    if (cur->intr != INTR_NONE)
        intr_unlink(s, cur);       /* not parked after all (a pending cancel) */
    return why;
}

struct corun *sched_hooks_suspend(struct sched *s)
{
    struct corun *was = s->current;
    /* The handler's mutex calls act for the thread it interrupted (for
     * the main one if it interrupted the loop), as natively they would be
     * that kernel thread's. */
    if (s->handler_depth++ == 0)
        s->handler_co = was != s->loop_co ? was : s->main_co;
    s->current = s->loop_co;       /* the hook gate's "corun's own code" */
    return was;
}

void sched_hooks_resume(struct sched *s, struct corun *was)
{
    if (--s->handler_depth == 0)
        s->handler_co = NULL;
    s->current = was;
}

bool sched_alone(struct sched *s)
{
    return s->alive == 1 && coq_empty(&s->runq) && !timerheap_min(&s->timers) &&
           !uv_loop_alive(&s->loop);
}

bool sched_wake(struct corun *co, int reason)
{
    if (co->state != CO_PARKED)
        return false;
    if (co->queue)
        coq_remove(co->queue, co);
    if (timer_queued(&co->timer))
        timerheap_remove(&co->sched->timers, &co->timer);
    if (co->intr != INTR_NONE)
        intr_unlink(co->sched, co);
    co->wake_reason = (uint8_t)reason;
    co->state = CO_RUNNABLE;
    coq_push(&co->sched->runq, co);
    return true;
}

/* ---- coroutines ----------------------------------------------------------*/

/* Header at the top of the stack slot, and an initial context running
 * entry(arg) below it. */
static struct corun *coroutine_on_slot(struct sched *s, const struct stack_slot *slot,
                                       size_t stack_size, ctx_entry_fn entry, void *arg)
{
    struct corun *co = (struct corun *)(((uintptr_t)slot->lo + slot->size - CO_HDR) & ~(uintptr_t)63);
    memset(co, 0, sizeof *co);
    co->stack = *slot;
    co->stack_lo = slot->lo;
    co->stack_size = stack_size;
    co->sched = s;
    if (!slot->guarded) {
        co->canary = (uint64_t *)(((uintptr_t)slot->lo + 7) & ~(uintptr_t)7);
        *co->canary = STACK_CANARY;
    }
#ifdef CORUN_SANITIZERS
    co->asan_bottom = slot->lo;
    co->asan_size = (size_t)((char *)co - slot->lo);
#endif
    co->sp = ctx_make(co, entry, arg ? arg : co);
    return co;
}

static int coroutine_new(struct sched *s, size_t stack_size, size_t guard, ctx_entry_fn entry,
                         void *arg, struct corun **out)
{
    struct stack_slot slot;
    int r = stack_alloc(stack_size + CO_HDR, guard, &slot);
    if (r)
        return r;
    *out = coroutine_on_slot(s, &slot, stack_size, entry, arg);
    return 0;
}

__attribute__((noreturn)) static void coroutine_exit(struct corun *co)
{
    struct sched *s = co->sched;
    co->state = CO_DONE;
    if (--s->alive == 0)
        exit(0);
    gsignal_thread_finished(s, co);      /* main ended with pthread_exit and this was the last thread */
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
    sched_switch_final(co, next);
}

void sched_exit_current(void *retval)
{
    struct corun *co = sched_self()->current;
    co->retval = retval;
    coroutine_exit(co);
}

static void coroutine_entry(void *arg, void *xfer)
{
    (void)xfer;
    struct corun *co = arg;
    struct sched *s = co->sched;
    ASAN_SWITCH_DONE_NEW();
    co->saved_errno = 0;                 /* a new thread starts with errno 0 */
    after_switch(s, co);
    gthread_return(co->fn(co->arg));
}

static void loop_main(void *arg, void *xfer)
{
    (void)xfer;
    struct sched *s = arg;
    ASAN_SWITCH_DONE_NEW();
    after_switch(s, s->loop_co);
    for (;;) {
        s->dispatches = 0;
        s->polled_tick = coarse_tick();
        __atomic_store_n(&s->turns, s->turns + 1, __ATOMIC_RELAXED);
        if (unlikely(s->dump_pending))
            inspect_dump(s);
        sched_poll(s, coq_empty(&s->runq));
        struct corun *n = coq_pop(&s->runq);
        if (n) {
            s->dispatches = 1;
            s->loop_co->state = CO_LOOP;
            if (unlikely(s->stats.loop_left_ns))
                s->stats.loop_left_ns = clock_now_ns();
            sched_switch(s, s->loop_co, n);
            if (unlikely(s->stats.loop_left_ns))
                inspect_note_loop_turn(s);
        }
    }
}

/* ---- scheduler -----------------------------------------------------------*/

/* The eventfd a signal handler pokes so that the loop, maybe about to
 * sleep in epoll, looks at the signals that came in. */
static void signal_fd_open(struct sched *s)
{
    s->sigfd = (int)syscall(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = SIGNAL_TAG };
    if (s->sigfd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->sigfd, &ev) != 0)
        diag_fatal("cannot set up the signal eventfd: %s", strerror(errno));
}

static pthread_once_t process_once = PTHREAD_ONCE_INIT;
static tss_t sched_exit_key;

/* The OS thread is exiting: give back its loop, epoll set and stacks. If
 * coroutines other than the thread's own are still alive they are lost with
 * the thread, and so is their memory: then nothing is freed. */
static void sched_destroy(void *arg)
{
    struct sched *s = arg;
    if (!s || s->alive > 1 || s->current != s->main_co)
        return;
    corun_tls_sched = NULL;
    inspect_sched_destroyed(s);
    fdtab_forget_sched(s);
    syscall(SYS_close, s->epfd);
    syscall(SYS_close, s->sigfd);
    if (s->has_kick_timer)
        timer_delete(s->kick_timer);
    if (uv_loop_close(&s->loop) != 0) {
        uv_run(&s->loop, UV_RUN_NOWAIT);
        uv_loop_close(&s->loop);
    }
    coroutine_release(s->loop_co);
    free(s->timers.v);
    free(s->main_co->tsd);
    free(s->main_co);
    free(s);
}

/*
 * In a forked child only the forking green thread lives on (as POSIX keeps
 * only the calling thread). The epoll sets (ours and libuv's) are shared
 * with the parent across fork: the child gets new ones, so nothing it does
 * can remove the parent's registrations.
 */
static void sched_after_fork_child(void)
{
    fdtab_mark_all_shared();
    struct sched *s = corun_tls_sched;
    if (!s)
        return;
    fdtab_forget_sched(s);
    syscall(SYS_close, s->epfd);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0)
        diag_fatal("epoll_create1 failed in a forked child: %s", strerror(errno));
    int r = uv_loop_fork(&s->loop);
    if (r)
        diag_fatal("uv_loop_fork failed: %s", uv_strerror(r));
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = UV_BACKEND_TAG };
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, uv_backend_fd(&s->loop), &ev) != 0)
        diag_fatal("cannot watch libuv's backend fd in a forked child: %s", strerror(errno));
    syscall(SYS_close, s->sigfd);
    signal_fd_open(s);
    s->has_kick_timer = false;       /* timers are not inherited */
    /* The other green threads stay behind, never to run again. */
    while (coq_pop(&s->runq))
        ;
    while (timerheap_min(&s->timers))
        timerheap_remove(&s->timers, timerheap_min(&s->timers));
    s->alive = 1;
    s->dead = NULL;
    s->intr_head = NULL;
    gsignal_reset(s);
    inspect_after_fork_child(s);
}

static void process_init(void)
{
    config_load();
    segv_install();
    if (tss_create(&sched_exit_key, sched_destroy) != thrd_success)
        diag_fatal("cannot register the thread-exit hook");
    pthread_atfork(NULL, fdtab_mark_all_shared, sched_after_fork_child);
}

static struct sched *sched_create(void)
{
    pthread_once(&process_once, process_init);
    struct sched *s = calloc(1, sizeof *s);
    struct corun *main_co = calloc(1, sizeof *main_co);
    if (!s || !main_co)
        diag_fatal("out of memory creating a scheduler");
    s->errno_loc = &errno;
    int r = uv_loop_init(&s->loop);
    if (r)
        diag_fatal("uv_loop_init failed: %s", uv_strerror(r));
    s->loop.data = s;

    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0)
        diag_fatal("epoll_create1 failed: %s", strerror(errno));
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = UV_BACKEND_TAG };
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, uv_backend_fd(&s->loop), &ev) != 0)
        diag_fatal("cannot watch libuv's backend fd: %s", strerror(errno));
    signal_fd_open(s);

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
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &main_co->sigmask, 8);
    main_co->tsd = gthread_take_thread_tsd();
    s->main_co = main_co;
    s->current = main_co;
    s->alive = 1;
    gsignal_reset(s);

    r = coroutine_new(s, LOOP_STACK_SIZE, stack_page_size(), loop_main, s, &s->loop_co);
    if (r)
        diag_fatal("cannot allocate the event loop's stack: %s", strerror(r));
    s->loop_co->state = CO_LOOP;
    strcpy(s->loop_co->name, "corun-loop");

    altstack_ensure();
    corun_tls_sched = s;
    tss_set(sched_exit_key, s);
    inspect_sched_created(s);
    return s;
}

struct sched *sched_self(void)
{
    struct sched *s = corun_tls_sched;
    if (likely(s != NULL))
        return s;
    bool off = tls_hooks_off;
    tls_hooks_off = true;             /* hooks called while building it pass through */
    s = sched_create();
    tls_hooks_off = off;
    return s;
}

struct sched *sched_for_hook_slow(void)
{
    if (tls_hooks_off)
        return NULL;
    config_load();                    /* hooks may run before our constructor */
    /* Green threads live on the process's main thread, on kernel threads the
     * program made in native mode, and on threads that use the explicit API
     * (which have a scheduler already). */
    if (!tls_program_thread && syscall(SYS_gettid) != getpid()) {
        tls_hooks_off = true;
        return NULL;
    }
    return sched_self();
}

/* The main thread's scheduler is built as the library loads, before the
 * program's own code runs: the synchronisation hooks never build one (see
 * sched_for_sync_hook), so an object locked before it existed would be
 * glibc's and unlocked as corun's. */
__attribute__((constructor)) static void sched_on_load(void)
{
    sched_for_hook_slow();
}

/* ---- public API ----------------------------------------------------------*/

static void coroutine_start(struct sched *s, struct corun *co, const char *name, bool detached,
                            corun_fn fn, void *arg)
{
    struct corun *cur = s->current;
    co->fn = fn;
    co->arg = arg;
    co->id = atomic_fetch_add(&next_id, 1);
    co->parent = cur;
    co->parent_id = cur->id;
    if (detached)
        co->flags |= CO_DETACHED;
    if (name)
        snprintf(co->name, sizeof co->name, "%s", name);
    co->sigmask = cur->sigmask;           /* a new thread inherits its creator's mask */
    co->state = CO_RUNNABLE;
    s->alive++;
    gsignal_thread_started(s, co);
    inspect_note_spawn(s, co);
    coq_push(&s->runq, co);
}

int sched_spawn(struct sched *s, size_t stack_size, size_t guard, const char *name,
                bool detached, corun_fn fn, void *arg, struct corun **out)
{
    struct corun *co;
    int r = coroutine_new(s, stack_size, guard, coroutine_entry, NULL, &co);
    if (r)
        return r;
    coroutine_start(s, co, name, detached, fn, arg);
    *out = co;
    return 0;
}

int sched_spawn_on_stack(struct sched *s, void *lo, size_t size, bool detached, corun_fn fn,
                         void *arg, struct corun **out)
{
    if (size < CO_HDR + 4096)
        return EINVAL;
    struct stack_slot slot = { .lo = lo, .size = size, .cls = NULL, .guarded = false };
    struct corun *co = coroutine_on_slot(s, &slot, size, coroutine_entry, NULL);
    coroutine_start(s, co, NULL, detached, fn, arg);
    *out = co;
    return 0;
}

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
    const char *name = attr ? attr->name : NULL;
    if (name && strlen(name) >= CORUN_NAME_MAX)
        return ERANGE;
    int saved = errno;                    /* the API never touches errno */
    struct corun *co;
    int r = sched_spawn(sched_self(), size, guard, name && *name ? name : NULL,
                        !out || (attr && attr->detached), fn, arg, &co);
    errno = saved;
    if (!r && out)
        *out = co;
    return r;
}

int sched_join(struct corun *co, void **retval, uint64_t deadline, bool try, bool cancellable)
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
        if (try)
            return EBUSY;
        co->joiner = cur;
        sched_wait_on(s, WAIT_JOIN, co, -1);
        int why = cancellable ? sched_park_cancellable(s, deadline) : sched_park(s, deadline);
        if (why != WAKE_SIGNALED) {
            co->joiner = NULL;
            if (why == WAKE_CANCELED)
                return ECANCELED;
            return ETIMEDOUT;
        }
    }
    if (retval)
        *retval = co->retval;
    coroutine_release(co);
    return 0;
}

__attribute__((visibility("default"))) int corun_join_timeout(corun_t *co, void **retval,
                                                              int64_t timeout_ns)
{
    int saved = errno;
    int r = sched_join(co, retval, deadline_after(timeout_ns), timeout_ns == 0, false);
    errno = saved;
    return r == EBUSY ? EAGAIN : r;
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
    sched_wait_on(s, WAIT_SLEEP, NULL, -1);
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
    int target_state = target->state;
    if (target_state == CO_RUNNABLE)
        coq_remove(&s->runq, target);
    else if (target->state != CO_SUSPENDED)
        diag_fatal("corun_switch: green thread %llu is %s; only a runnable green thread or one "
                   "suspended in corun_switch can be switched to",
                   (unsigned long long)target->id, state_name(target->state));
    if (target_state == CO_SUSPENDED)
        target->xfer = value;     /* a runnable target's xfer may hold its wake-up message */
    cur->state = CO_SUSPENDED;
    sched_switch(s, cur, target);
    return cur->xfer;
}
