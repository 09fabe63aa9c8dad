/*
 * Scheduler and coroutine lifecycle.
 *
 * Switching: a coroutine that blocks or yields switches directly to the next
 * runnable coroutine. Only when nothing is runnable (or every POLL_EVERY
 * dispatches or coarse clock tick, so I/O and timers are not starved by busy
 * coroutines) does it switch to the scheduler's loop context, which polls
 * (poller.c) on its own stack and then dispatches whatever became runnable.
 *
 * Upper layers' state lives in parts after the core's structs; they hear of
 * lifecycle events through observers (sched.h).
 */
#include "sched_int.h"

#include <uv.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <threads.h>
#include <unistd.h>

#include "config.h"
#include "context.h"
#include "diag.h"
#include "lock.h"
#include "ownfd.h"
#include "real.h"
#include "catch.h"
#include "ids.h"
#include "offload.h"
#include "tls.h"
#include "uvfds.h"

#ifdef CORUN_SANITIZERS
#include <sanitizer/common_interface_defs.h>
#endif

#define POLL_EVERY 64                        /* dispatches between loop polls */
#define LOOP_STACK_SIZE ((size_t)256 << 10)

__thread struct sched *sched_tls __attribute__((tls_model("initial-exec")));
/* Set on threads the hooks must leave alone (libuv's workers, threads of
 * their own), and while a scheduler is being built. */
static __thread bool tls_hooks_off __attribute__((tls_model("initial-exec")));
/* A kernel thread the program created (CORUN_THREADS=native): it gets a
 * scheduler of its own for the I/O hooks. */
static __thread bool tls_program_thread __attribute__((tls_model("initial-exec")));

bool sched_park_times;
size_t co_hdr_size;
size_t sched_size;

void sched_mark_program_thread(void)
{
    tls_program_thread = true;
}
static atomic_uint_fast64_t next_id = 1;

/* Ids are taken from the global count in blocks, one block per scheduler
 * at a time: a lock-prefixed add per thread would cost about 10 ns, more
 * right after a new thread's TCB was cleared (it waits for those stores).
 * A process with one scheduler numbers its threads 1, 2, 3... as before. */
#define ID_BLOCK 256

static uint64_t next_thread_id(struct sched *s)
{
    if (unlikely(s->id_next == s->id_end)) {
        s->id_next = atomic_fetch_add(&next_id, ID_BLOCK);
        s->id_end = s->id_next + ID_BLOCK;
    }
    return s->id_next++;
}

/* ---- parts ----------------------------------------------------------------*/

#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~(size_t)((a) - 1))

void parts_layout(void)
{
    size_t t = sizeof(struct corun), s = sizeof(struct sched);
    REGISTRY_FOREACH(sched_parts, p) {
        (*p)->thread_off = t = ALIGN_UP(t, 16);
        t += (*p)->thread_size;
        (*p)->sched_off = s = ALIGN_UP(s, 16);
        s += (*p)->sched_size;
    }
    co_hdr_size = ALIGN_UP(t, 64);   /* the header is 64-aligned at the top of its stack */
    sched_size = ALIGN_UP(s, 16);     /* libuv's loop follows */
}

/* ---- stats ----------------------------------------------------------------*/

static inline void note_park(struct sched *s, struct corun *cur)
{
    uint8_t kind = cur->wait_hint ? cur->wait_hint : cur->wait_kind;
    cur->wait_kind = kind;
    s->stats.parks[kind]++;
    if (unlikely(sched_park_times))
        cur->wait_since = clock_now_ns();
}

void stats_note_switch(struct sched *s, struct corun *from)
{
    uint64_t now = clock_now_ns();
    if (from != s->loop_co && s->stats.slice_start) {
        uint64_t ran = now - s->stats.slice_start;
        if (ran > s->stats.max_slice_ns) {
            s->stats.max_slice_ns = ran;
            s->stats.max_slice_id = from->id;
            memcpy(s->stats.max_slice_name, from->name, sizeof s->stats.max_slice_name);
        }
        if (ran > s->stats.stretch_top_ns) {
            s->stats.stretch_top_ns = ran;
            s->stats.stretch_top_id = from->id;
            memcpy(s->stats.stretch_top_name, from->name, sizeof s->stats.stretch_top_name);
        }
    }
    s->stats.slice_start = now;
}

void stats_note_loop_turn(struct sched *s)
{
    uint64_t now = clock_now_ns();
    uint64_t blocked = now - s->stats.loop_left_ns;
    if (blocked > s->stats.max_block_ns) {
        s->stats.max_block_ns = blocked;
        s->stats.max_block_dispatches = s->dispatches;
        s->stats.max_block_top_ns = s->stats.stretch_top_ns;
        s->stats.max_block_top_id = s->stats.stretch_top_id;
        memcpy(s->stats.max_block_top_name, s->stats.stretch_top_name,
               sizeof s->stats.max_block_top_name);
    }
    s->stats.stretch_top_ns = 0;
    s->stats.loop_left_ns = 1;             /* closed: the loop has control */
}

void sched_stats_flush(struct sched *s)
{
    stats_note_switch(s, s->current);    /* the running slice ends here */
    if (s->stats.loop_left_ns > 1)
        stats_note_loop_turn(s);
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

void all_unlink(struct sched *s, struct corun *co)
{
    if (dlink_linked(&s->all, &co->all_link))
        dlist_remove(&s->all, &co->all_link);
}

void coroutine_release(struct corun *co)
{
    if (co->flags & CO_MAIN)
        return;                           /* lives on the thread's own stack */
    OBSERVERS_CALL(thread_released, co->sched, co);
    all_unlink(co->sched, co);
    co->state = CO_RELEASED;              /* a second join finds ESRCH while the slot waits */
    if (co->flags & CO_OWN_TLS)
        tls_release(co->fsbase, (char *)co, co->stack.cls != NULL);
    if (!co->stack.cls)
        return;                           /* the program's own stack (pthread_attr_setstack) */
    struct stack_slot slot = co->stack;   /* the header goes with the stack */
    struct sched *me = sched_tls;         /* the releasing OS thread's */
    stack_release_cached(me ? &me->stack_spare : NULL, &slot);
}

static void run_resumed(struct sched *s, struct corun *co)
{
    OBSERVERS_CALL(resumed, s, co);
}

/* Runs in every context right after it is resumed. The scheduler's current
 * coroutine changes only here, so until the switch is complete it still
 * names the coroutine switching out (the overflow handler relies on it). */
static inline void after_switch(struct sched *s, struct corun *self)
{
    s->current = self;
    if (unlikely(self->flags & CO_MOVABLE)) {  /* its frames hold s again (handlers may run) */
        if (mn_active)                          /* other OS threads may look at the flags */
            __atomic_and_fetch(&self->flags, ~CO_MOVABLE, __ATOMIC_RELAXED);
        else
            self->flags &= ~CO_MOVABLE;
    }
    if (!(self->flags & CO_OWN_TLS))
        *self->errno_loc = self->saved_errno;   /* shared with the OS thread: put back */
    if (unlikely(s->dead != NULL)) {
        struct corun *d = s->dead;
        s->dead = NULL;
        coroutine_release(d);
    }
    if (unlikely(s->exited != NULL)) {
        struct corun *d = s->exited;
        s->exited = NULL;
        mn_finished(s, d);                /* off its stack now: others may free it */
    }
}

static inline void sched_switch(struct sched *s, struct corun *from, struct corun *to)
{
    stack_check(from);
    if (!(from->flags & CO_OWN_TLS))
        from->saved_errno = *from->errno_loc;   /* own TLS: its errno stays its own */
    to->state = CO_RUNNING;
    s->stats.switches++;
    if (unlikely(s->stats.loop_left_ns))
        stats_note_switch(s, from);
    ASAN_SWITCH_START(from, to, 0);
    if (from->fsbase != to->fsbase)
        tls_write_fs(to->fsbase);
    cr_ctx_switch(&from->sp, to->sp, NULL);
    ASAN_SWITCH_DONE(from);
    s = from->sched;                      /* a moved thread resumes on another (M:N) */
    after_switch(s, from);
    if (unlikely(from->resume_work != 0))
        run_resumed(s, from);
}

__attribute__((noreturn)) static void sched_switch_final(struct corun *from,
                                                         struct corun *to)
{
    stack_check(from);
    to->state = CO_RUNNING;
    from->sched->stats.switches++;
    if (unlikely(from->sched->stats.loop_left_ns))
        stats_note_switch(from->sched, from);
    ASAN_SWITCH_START(from, to, 1);
    if (from->fsbase != to->fsbase)
        tls_write_fs(to->fsbase);
    cr_ctx_switch(&from->sp, to->sp, NULL);
    __builtin_unreachable();
}

/* Run the loop next (poll timers and I/O) after POLL_EVERY dispatches, or
 * once the coarse clock has ticked since the last poll: coroutines that
 * work for milliseconds between yields would otherwise make every timer
 * and wakeup late by POLL_EVERY of their slices. At most one extra poll
 * per tick. A look at the clock costs a few ns, as much as the rest of a
 * switch: while preemption's CPU-time timer is armed, its signal marks a
 * long run on the CPU (poll_tick), and the clock, which also sees time
 * spent off it (a real blocking call), is read at every 8th dispatch. */
static inline bool poll_due_exact(struct sched *s)
{
    return s->dispatches >= POLL_EVERY || s->poll_tick || clock_coarse_ns() != s->polled_tick;
}

static inline bool poll_due(struct sched *s)
{
    if (s->preempt_armed && (s->dispatches & 7) != 0 && !s->poll_tick &&
        !__atomic_load_n(&preempt_given_up, __ATOMIC_RELAXED))
        return s->dispatches >= POLL_EVERY;
    return poll_due_exact(s);
}

/* The next runnable thread. Preempted (CPU-bound) ones wait while others
 * are runnable, as the kernel lets a thread that slept run before one
 * that used its slice; but one runs at least every slice, so that a
 * thread that spins on sched_yield waiting for a CPU-bound one, or threads
 * that keep waking each other, cannot hold them off for good. */
static inline struct corun *next_runnable(struct sched *s)
{
    if (unlikely(!coq_empty(&s->hogs))) {
        uint64_t now = clock_coarse_ns();
        if (coq_empty(&s->runq) ||
            now - s->hogs_served > (uint64_t)cr_config.preempt_ms * 1000000) {
            s->hogs_served = now;
            return coq_pop(&s->hogs);
        }
    }
    return coq_pop(&s->runq);
}

static inline struct corun *pick_next(struct sched *s)
{
    if (likely(!poll_due(s))) {
        struct corun *n = next_runnable(s);
        if (n) {
            s->dispatches++;
            return n;
        }
    }
    return s->loop_co;
}

/* ---- park / wake ---------------------------------------------------------*/

static void intr_unlink(struct sched *s, struct corun *co)
{
    dlist_remove(&s->interruptible, &co->intr_link);
}

static inline bool park_interruptible(uint8_t mode)
{
    return mode == PARK_INTR_RESTART || mode == PARK_INTR_ALWAYS;
}

int sched_park(struct sched *s, uint64_t deadline, enum park_mode mode)
{
    struct corun *cur = s->current;
    if (mode != PARK_PLAIN) {
        if (cur->cancel_pending && !cur->cancel_disabled) {
            if (cur->queue)
                coq_remove(cur->queue, cur);   /* the caller queued it already */
            cur->wait_kind = WAIT_OTHER;
            return WAKE_CANCELED;
        }
        cur->in_cancel_point = true;
        if (park_interruptible((uint8_t)mode))
            dlist_push(&s->interruptible, &cur->intr_link);
    }
    cur->park_mode = (uint8_t)mode;
    cur->state = CO_PARKED;
    note_park(s, cur);
    if (deadline != DEADLINE_NONE) {
        cur->timer.deadline = deadline;
        timerheap_insert(&s->timers, &cur->timer);
    }
    sched_switch(s, cur, pick_next(s));
    s->woken_co = cur;                /* parked threads never move: s is still its own */
    cur->wait_kind = WAIT_OTHER;
    cur->in_cancel_point = false;
    cur->park_mode = PARK_PLAIN;
    return cur->wake_reason;
}

struct corun *sched_find_interruptible(struct sched *s, bool (*pick)(struct corun *, void *),
                                       void *arg)
{
    dlist_foreach(&s->interruptible, it) {
        struct corun *co = container_of(it, struct corun, intr_link);
        if (pick(co, arg))
            return co;
    }
    return NULL;
}

struct corun *sched_hooks_suspend(struct sched *s)
{
    struct corun *was = s->current;
    s->current = s->loop_co;       /* the hook gate's "corun's own code" */
    return was;
}

void sched_hooks_resume(struct sched *s, struct corun *was)
{
    s->current = was;
}

bool sched_alone(struct sched *s)
{
    /* M:N: another worker may hand this one threads, which a real blocking
     * call would keep from running. */
    return !mn_active && s->alive == 1 && coq_empty(&s->runq) && coq_empty(&s->hogs) && !timerheap_min(&s->timers) &&
           !uv_loop_alive(s->loop);
}

bool sched_wake(struct corun *co, int reason)
{
    if (co->state != CO_PARKED)
        return false;
    if (co->queue)
        coq_remove(co->queue, co);
    if (timer_queued(&co->timer))
        timerheap_remove(&co->sched->timers, &co->timer);
    if (park_interruptible(co->park_mode)) {
        intr_unlink(co->sched, co);
        co->park_mode = PARK_CANCEL;  /* off the list: a second wake must not unlink again */
    }
    co->wake_reason = (uint8_t)reason;
    co->state = CO_RUNNABLE;
    coq_push(&co->sched->runq, co);
    return true;
}

void sched_yield_current(struct sched *s)
{
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

void sched_preempt_current(struct sched *s, bool may_move)
{
    struct corun *cur = s->current;
    cur->state = CO_RUNNABLE;
    s->preempted = cur;
    if (may_move && cur->pinned == 0 && mn_active)
        __atomic_or_fetch(&cur->flags, CO_MOVABLE, __ATOMIC_RELAXED);
    sched_switch(s, cur, s->loop_co);     /* after_switch clears CO_MOVABLE */
}

void sched_shed_current(struct sched *s, struct sched *to)
{
    struct corun *cur = s->current;
    cur->state = CO_RUNNABLE;
    s->shed_out = cur;
    s->shed_out_to = to;
    __atomic_or_fetch(&cur->flags, CO_MOVABLE, __ATOMIC_RELAXED);
    sched_switch(s, cur, s->loop_co);     /* after_switch clears CO_MOVABLE */
}

void sched_yield_if_due(struct sched *s)
{
    if (poll_due_exact(s))        /* a call that returns at once counts no dispatch */
        sched_yield_current(s);
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

void *sched_switch_to(struct sched *s, struct corun *target, void *value)
{
    struct corun *cur = s->current;
    if (target == cur)
        return value;
    if (target->sched != s)
        diag_fatal("corun_switch: green thread %llu belongs to another OS thread",
                   (unsigned long long)target->id);
    int target_state = target->state;
    if (target_state == CO_RUNNABLE && target->queue)
        coq_remove(target->queue, target);      /* the run queue or the preempted ones' */
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

/* ---- coroutines ----------------------------------------------------------*/

/* Where a slot's header lies: 64-aligned at its top. */
static inline char *slot_header(const char *lo, size_t size)
{
    return (char *)(((uintptr_t)lo + size - co_hdr_size) & ~(uintptr_t)63);
}

/* A pooled stack slot leaves the TLS area an earlier thread had on it
 * (it becomes plain stack, or its pages go back to the kernel). */
static void slot_forget_area(const struct stack_slot *slot)
{
    if (tls_own && slot->size >= co_hdr_size + tls_area_size())
        tls_forget(slot_header(slot->lo, slot->size));
}

struct area_walk { void (*fn)(char *hi, void *arg); void *arg; };

static void area_of_slot(char *lo, size_t size, void *arg)
{
    const struct area_walk *w = arg;
    if (size >= co_hdr_size + tls_area_size())
        w->fn(slot_header(lo, size), w->arg);
}

/* tls_sync_static's walk of the areas on pooled stacks. */
static void walk_pool_areas(void (*fn)(char *hi, void *arg), void *arg)
{
    struct area_walk w = { fn, arg };
    stack_foreach_slot(area_of_slot, &w);
}

/* Header at the top of the stack slot, and an initial context running
 * entry(arg) below it. The stack proper starts `below` bytes above the
 * slot's lowest byte. */
static struct corun *coroutine_on_slot(struct sched *s, const struct stack_slot *slot,
                                       size_t below, size_t stack_size, bool own_tls,
                                       ctx_entry_fn entry, void *arg)
{
    struct corun *co =
        (struct corun *)slot_header(slot->lo, slot->size);
    memset(co, 0, co_hdr_size);
    co->stack = *slot;
    co->stack_lo = slot->lo + below;
    co->stack_hi = (char *)co;
    co->stack_size = stack_size;
    co->sched = s;
    co->errno_loc = s->errno_loc;
    co->fsbase = s->fsbase;
    if (!own_tls && slot->cls)
        slot_forget_area(slot);           /* a DTV kept on this stack by an earlier thread */
    if (own_tls) {
        /* Its TCB and TLS lie between its header and its stack. */
        uintptr_t tp = tls_create((char *)co, slot->cls != NULL);
        if (!tp)
            return NULL;
        co->stack_hi = (char *)co - tls_area_size();
        co->fsbase = tp;
        co->errno_loc = tls_errno_location(tp);
        co->flags |= CO_OWN_TLS;
        /* Its copy of corun's own thread state, so that a signal handler
         * of corun's finds the scheduler from its first instruction. */
        *(struct sched **)(tp - tls_offset_of(&sched_tls)) = s;
        *(bool *)(tp - tls_offset_of(&tls_program_thread)) = tls_program_thread;
    }
    if (!slot->guarded) {
        /* A pooled stack has room below the range the thread reports as its
         * stack (an uninstalled guard, or a page of its own): the canary
         * goes there, out of the way of a program that writes or guards
         * the bottom of its stack (HotSpot mprotects its lowest pages). On
         * a program's own stack it must take the lowest word. */
        co->canary = slot->cls ? (uint64_t *)co->stack_lo - 1
                               : (uint64_t *)(((uintptr_t)slot->lo + 7) & ~(uintptr_t)7);
        *co->canary = STACK_CANARY;
    }
#ifdef CORUN_SANITIZERS
    co->asan_bottom = co->stack_lo;
    co->asan_size = (size_t)(co->stack_hi - co->stack_lo);
#endif
    co->sp = ctx_make(co->stack_hi, entry, arg ? arg : co);
    return co;
}

static int coroutine_new(struct sched *s, size_t stack_size, size_t guard, bool own_tls,
                         ctx_entry_fn entry, void *arg, struct corun **out)
{
    /* Without a guard region the canary needs a page below the stack. */
    size_t below = guard ? 0 : stack_page_size();
    struct stack_slot slot;
    int r = stack_alloc_cached(&s->stack_spare,
                               stack_size + co_hdr_size + below + (own_tls ? tls_area_size() : 0),
                               guard, &slot);
    if (r)
        return r;
    *out = coroutine_on_slot(s, &slot, below, stack_size, own_tls, entry, arg);
    if (!*out) {
        stack_release(&slot);
        return ENOMEM;
    }
    return 0;
}

__attribute__((noreturn)) static void coroutine_exit(struct corun *co)
{
    struct sched *s = co->sched;
    if (unlikely(mn_active)) {
        /* Joiners and detachers may be on other OS threads: the thread is
         * published finished once its stack is left (after_switch). */
        s->alive--;
        if (__atomic_sub_fetch(&mn_alive, 1, __ATOMIC_SEQ_CST) == 0)
            exit(0);
        OBSERVERS_CALL(thread_finished, s, co);
        all_unlink(s, co);
        struct corun *next = NULL, *p = co->parent;
        if (p && p->id == co->parent_id && p->sched == s && p->state == CO_SUSPENDED) {
            p->xfer = co->retval;
            next = p;
        }
        s->exited = co;
        sched_switch_final(co, next ? next : pick_next(s));
    }
    co->state = CO_DONE;
    if (--s->alive == 0)
        exit(0);
    OBSERVERS_CALL(thread_finished, s, co);
    if (co->joiner)
        sched_wake(co->joiner, WAKE_SIGNALED);
    struct corun *next = NULL;
    /* Greenlet rule: a spawner waiting in corun_switch() gets the result.
     * parent may have been released; its slot stays mapped, and the id
     * check tells a live parent from a reused or zeroed slot. */
    struct corun *p = co->parent;
    if (p && p->id == co->parent_id && p->sched == s && p->state == CO_SUSPENDED) {
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
    struct sched *s = sched_self();
    struct corun *co = s->current;
    co->retval = retval;
    if (co->flags & CO_OWN_TLS) {
        uint8_t held = catch_program_begin();
        tls_exiting();                   /* thread_local destructors come before keys' */
        catch_program_end(held);
    }
    OBSERVERS_CALL(thread_exiting, s, co);
    coroutine_exit(co);
}

static void coroutine_entry(void *arg, void *xfer)
{
    (void)xfer;
    struct corun *co = arg;
    struct sched *s = co->sched;
    ASAN_SWITCH_DONE_NEW();
    co->saved_errno = 0;                 /* a new thread starts with errno 0 */
    if (co->flags & CO_OWN_TLS)
        tls_started();
    after_switch(s, co);
    s->catch_sel = CATCH_BLOCK;          /* the program's code (catch.h) */
    void *ret = co->fn(co->arg);
    s = co->sched;
    s->catch_sel = CATCH_ALLOW;
    sched_exit_current(ret);
}

/* While CPU-bound threads share the OS thread: those this turn of the loop
 * woke (a sleep over, I/O ready) go before the ones already queued (new
 * threads that have not yet run a slice), as the kernel lets a thread that
 * slept run first; otherwise a ticker beside eight new CPU-bound threads
 * would wait for eight slices. `mark` was the queue's tail before the turn. */
static void woken_first(struct coq *q, struct corun *mark)
{
    if (!mark || mark->queue != q || mark == q->tail)
        return;                           /* none queued before, or none woken */
    struct corun *first = mark->next, *last = q->tail, *head = q->head;
    mark->next = NULL;
    q->tail = mark;
    first->prev = NULL;
    last->next = head;
    head->prev = last;
    q->head = first;
}

static void loop_main(void *arg, void *xfer)
{
    (void)xfer;
    struct sched *s = arg;
    ASAN_SWITCH_DONE_NEW();
    after_switch(s, s->loop_co);
    for (;;) {
        s->dispatches = 0;
        s->poll_tick = 0;
        s->polled_tick = clock_coarse_ns();
        __atomic_store_n(&s->turns, s->turns + 1, __ATOMIC_RELAXED);
        if (unlikely(s->loop_work)) {
            s->loop_work = 0;
            OBSERVERS_CALL(loop_turn, s);
        }
        if (unlikely(s->shed_out)) {
            mn_shed(s, s->shed_out, s->shed_out_to);
            s->shed_out = NULL;
        }
        struct corun *queued_before = s->runq.tail;
        bool idle = coq_empty(&s->runq) && coq_empty(&s->hogs) && !s->preempted;
        if (unlikely(s->mn_member) && idle) {
            __atomic_store_n(&s->load, 0, __ATOMIC_SEQ_CST);   /* others may hand it threads */
            if (mn_take_global_idle(s))
                idle = false;
            else if (cr_config.steal)
                mn_ask_for_work(s);   /* CORUN_STEAL (on by default): docs/design.md */
        }
        poller_poll(s, idle);
        if (unlikely(s->preempted || !coq_empty(&s->hogs)))
            woken_first(&s->runq, queued_before);
        if (s->preempted) {
            /* Its slice ends now: the others get a whole slice before the
             * next hog. Counted from the slice's start, a slice longer
             * than CORUN_PREEMPT_MS of wall time (the OS thread sharing a
             * CPU with other processes) let the hogs go first at every
             * turn, and a ticker beside them starved. */
            s->hogs_served = clock_coarse_ns();
            coq_push(&s->hogs, s->preempted);
            s->preempted = NULL;
        }
        if (unlikely(s->mn_member))
            mn_turn(s);                   /* take threads handed over, hand some over */
        struct corun *n = next_runnable(s);
        if (n) {
            s->dispatches = 1;
            s->loop_co->state = CO_LOOP;
            if (unlikely(s->stats.loop_left_ns))
                s->stats.loop_left_ns = clock_now_ns();
            sched_switch(s, s->loop_co, n);
            if (unlikely(s->stats.loop_left_ns))
                stats_note_loop_turn(s);
        }
    }
}

/* ---- scheduler -----------------------------------------------------------*/

static pthread_once_t process_once = PTHREAD_ONCE_INIT;
static tss_t sched_exit_key;

/* The OS thread is exiting: give back its loop, epoll set and stacks. If
 * coroutines other than the thread's own are still alive they are lost with
 * the thread, and so is their memory: then nothing is freed. */
static void sched_destroy(void *arg)
{
    struct sched *s = arg;
    if (!s)
        return;
    preempt_disarm(s);
    catch_disarm(s);                   /* the kernel reads its selector at every call */
    if (s->alive > 1 || s->current != s->main_co)
        return;
    sched_tls = NULL;
    while (__atomic_load_n(&s->xwake_posters, __ATOMIC_ACQUIRE))
        syscall(SYS_sched_yield);      /* a poster is about to poke wake_fd */
    OBSERVERS_CALL(sched_destroyed, s);
    OBSERVERS_CALL(thread_released, s, s->main_co);
    poller_close(s);
    if (uvfds_loop_close(s->loop) != 0) {
        uv_run(s->loop, UV_RUN_NOWAIT);
        uvfds_loop_close(s->loop);
    }
    coroutine_release(s->loop_co);
    stack_cache_drop(&s->stack_spare);
    free(s->main_co);
    free(s);
}

/* glibc runs the fork handlers in the program's context: they are corun's
 * entries like the hooks (catch.h). */
static void fork_prepare(void)
{
    CATCH_HOLD();
    OBSERVERS_CALL(fork_prepare);
    ownfd_fork_prepare();
    stack_fork_prepare();
}

static void fork_parent(void)
{
    CATCH_HOLD();
    stack_fork_parent();
    ownfd_fork_parent();
    OBSERVERS_CALL(fork_parent);
}

/*
 * In a forked child only the forking green thread lives on (as POSIX keeps
 * only the calling thread). The epoll sets (ours and libuv's) are shared
 * with the parent across fork: the child gets new ones, so nothing it does
 * can remove the parent's registrations.
 */
static void fork_child(void)
{
    CATCH_HOLD();
    stack_fork_child();
    ownfd_fork_child();
    ids_fork_child();
    tls_fork_child();
    offload_fork_child();
    uvfds_fork_child_begin();
    struct sched *s = sched_tls;
    if (s) {
        poller_close(s);
        int r = uvfds_loop_fork(s->loop);
        if (r)
            diag_fatal("uv_loop_fork failed: %s", uv_strerror(r));
        poller_open(s);
        /* The other green threads stay behind, never to run again. */
        while (coq_pop(&s->hogs))
            ;
        while (coq_pop(&s->runq))
            ;
        while (timerheap_min(&s->timers))
            timerheap_remove(&s->timers, timerheap_min(&s->timers));
        s->alive = 1;
        s->dead = NULL;
        s->preempted = NULL;
        s->shed_out = NULL;
        s->shed_to = NULL;
        s->release_shed = false;
        s->interruptible.head = NULL;
        s->xwakes = NULL;                /* their waiters stayed behind */
        s->calls = NULL;
        s->xwake_posters = 0;
        s->all.head = NULL;
        dlist_push(&s->all, &s->current->all_link);
        s->tid = s->home_tid = (pid_t)syscall(SYS_gettid);
        /* The child's one thread has the tid getpid() returns. */
        s->main_co->flags &= ~CO_KERNEL_TID;
        s->current->flags |= CO_KERNEL_TID;
        /* The kernel does not hand the dispatch on to a child; the child's
         * one green thread arms it again when it makes a second. */
        s->catch_armed = false;
    }
    mn_fork_child(s);
    preempt_fork_child(s);
    OBSERVERS_CALL(fork_child, s);
}

static void process_init(void)
{
    config_load();
    parts_layout();
    stack_set_cold_hook(slot_forget_area);
    tls_set_pool_walk(walk_pool_areas);
    tls_decide();
    if (cr_config.report_tls) {
        /* coro-run --doctor: which TLS mode a program would get, and why. */
        if (tls_own)
            diag_printf_fd(1, "own\n");
        else if (tls_unavailable_reason()[0])
            diag_printf_fd(1, "shared: %s\n", tls_unavailable_reason());
        else
            diag_printf_fd(1, "shared (the default; CORUN_TLS=own gives each green thread its own)\n");
        _exit(0);
    }
    overflow_install();
    sched_park_times = cr_config.dump_signal != 0;
    if (tss_create(&sched_exit_key, sched_destroy) != thrd_success)
        diag_fatal("cannot register the thread-exit hook");
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* At load: corun's fork handlers must come before the program's, whose
 * child handlers may unlock mutexes other threads waited on (the waiters
 * are gone in the child: the green layer forgets them in its handler). */
__attribute__((constructor)) static void process_init_on_load(void)
{
    libc_pthread_once(&process_once, process_init);
}

static struct sched *sched_create(bool worker)
{
    libc_pthread_once(&process_once, process_init);
    struct sched *s = calloc(1, sched_size + sizeof(uv_loop_t));
    struct corun *main_co = calloc(1, co_hdr_size);
    if (!s || !main_co)
        diag_fatal("out of memory creating a scheduler");
    s->errno_loc = &errno;
    s->fsbase = tls_read_fs();
    s->loop = (uv_loop_t *)((char *)s + sched_size);
    int r = uvfds_loop_init(s->loop);
    if (r)
        diag_fatal("uv_loop_init failed: %s", uv_strerror(r));
    s->loop->data = s;
    poller_open(s);
    s->tid = s->home_tid = (pid_t)syscall(SYS_gettid);

    main_co->sched = s;
    main_co->errno_loc = s->errno_loc;
    main_co->fsbase = s->fsbase;
    main_co->state = CO_RUNNING;
    main_co->flags = CO_MAIN | CO_KERNEL_TID | (worker ? 0 : CO_PREEMPTIBLE);
    /* A worker's own context is no thread of the program's: no id. */
    main_co->id = worker ? 0 : atomic_fetch_add(&next_id, 1);
    s->worker = worker;
    if (worker)
        strcpy(main_co->name, "corun-worker");
#ifdef CORUN_SANITIZERS
    void *lo;
    size_t sz;
    if (libc_thread_stack(&lo, &sz) == 0) {
        main_co->asan_bottom = lo;
        main_co->asan_size = sz;
    }
#endif
    s->main_co = main_co;
    s->current = main_co;
    s->alive = 1;
    dlist_push(&s->all, &main_co->all_link);

    r = coroutine_new(s, LOOP_STACK_SIZE, stack_page_size(), false, loop_main, s, &s->loop_co);
    if (r)
        diag_fatal("cannot allocate the event loop's stack: %s", strerror(r));
    s->loop_co->state = CO_LOOP;
    strcpy(s->loop_co->name, "corun-loop");

    altstack_ensure();
    sched_tls = s;
    tss_set(sched_exit_key, s);
    OBSERVERS_CALL(sched_created, s);
    return s;
}

struct sched *sched_self(void)
{
    struct sched *s = sched_tls;
    if (likely(s != NULL))
        return s;
    bool off = tls_hooks_off;
    tls_hooks_off = true;             /* hooks called while building it pass through */
    int saved = errno;                /* a hook's call may well succeed: errno is the program's */
    s = sched_create(false);
    errno = saved;
    tls_hooks_off = off;
    return s;
}

struct sched *sched_create_worker(void)
{
    tls_hooks_off = true;
    struct sched *s = sched_create(true);
    tls_hooks_off = false;
    return s;
}

void sched_worker_idle(struct sched *s)
{
    struct corun *cur = s->main_co;
    cur->state = CO_PARKED;           /* for good: no park counted, nobody wakes it */
    sched_switch(s, cur, pick_next(s));
    diag_fatal("a worker's own context was resumed");
}

/* ---- the hand-off (handoff.c) ----------------------------------------------------*/

void sched_rejoin(struct sched *s, struct corun *me)
{
    /* Signals off first: a handler of corun's coming now would rejoin
     * itself, and this one, resumed after it on the new OS thread, must
     * then not leave that thread too. */
    uint64_t mask;
    if (!handoff_leave_os(me, &mask))
        return;                           /* a handler did it: we run where s runs */
    int saved_errno = errno;              /* the call's: what runs at the resume may set it */
    struct mthread *m = __atomic_load_n(&me->away_os, __ATOMIC_ACQUIRE);
    /* To the OS thread's own context, which queues me on s once off its
     * stack; s's loop, on whichever OS thread runs it, resumes it here. */
    tls_write_fs(m->fsbase);
    cr_ctx_switch(&me->sp, m->ctx_sp, me);
    s = me->sched;
    after_switch(s, me);
    if (unlikely(me->resume_work != 0))
        run_resumed(s, me);
    errno = saved_errno;
}

void sched_adopt_os(struct sched *s, struct mthread *m)
{
    sched_tls = s;
    tls_hooks_off = false;
    s->os = m;
    s->tid = m->tid;
    s->fsbase = m->fsbase;
    s->errno_loc = m->errno_loc;
    s->loop_co->fsbase = m->fsbase;
    s->loop_co->errno_loc = m->errno_loc;
    /* What the TCBs of its threads say of the OS thread (tid, malloc's
     * cache and arena), but those away in a call on another one. */
    dlist_foreach(&s->all, it) {
        struct corun *co = (struct corun *)((char *)it - offsetof(struct corun, all_link));
        bool program_main = co == s->main_co && (co->flags & CO_PREEMPTIBLE);
        if ((co->flags & CO_OWN_TLS || program_main) &&
            !__atomic_load_n(&co->away_os, __ATOMIC_ACQUIRE))
            tls_moved(co->fsbase, m->fsbase);
    }
    /* The kernel's per-thread state: the catch reads s's selector here now,
     * and the preemption timer counts this thread's CPU time. */
    s->catch_sel = CATCH_ALLOW;
    s->catch_armed = false;
    worker_block_signals();           /* a worker's mask: SIGSYS open for the catch */
    int err = catch_arm(s);
    if (err)
        diag_fatal("a spare OS thread cannot catch system calls (%s)", strerror(err));
    preempt_arm(s);
    s->load_at = clock_coarse_ns();
    OBSERVERS_CALL(rehomed, s);
    __atomic_store_n(&s->block_word, 0, __ATOMIC_RELEASE);
}

void sched_os_detach(void)
{
    sched_tls = NULL;
    tls_hooks_off = true;
}

struct sched *sched_for_program_slow(void)
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

/* ---- spawn, join, detach -----------------------------------------------------*/

/* A scheduler with a second green thread has something to run while one
 * waits: from now on the calls no hook sees are caught (catch.h). */
static void catch_on_first_spawn(struct sched *s)
{
    int err = catch_arm(s);
    if (err) {
        catch_wanted = false;
        diag_log(LOG_WARN, "cannot catch system calls outside the hooks on this thread (%s): "
                  "they block the OS thread", strerror(err));
        return;
    }
    err = preempt_arm(s);
    if (err)
        diag_log(LOG_WARN, "cannot preempt green threads that keep this OS thread busy (%s): "
                  "a CPU-bound one runs until it blocks or yields", strerror(err));
}

static void coroutine_start(struct sched *s, struct corun *co, const char *name, bool detached,
                            corun_fn fn, void *arg)
{
    if (unlikely(catch_wanted && !s->catch_armed))
        catch_on_first_spawn(s);
    /* A pthread, in green mode: start the workers. */
    if (unlikely(cr_config.procs > 1 && !mn_active) && s->spawn_pthread && !cr_config.threads_native)
        mn_start(s);
    if (unlikely(mn_active))
        mn_count_start();
    struct corun *cur = s->current;
    co->fn = fn;
    co->arg = arg;
    co->id = next_thread_id(s);
    co->parent = cur;
    co->parent_id = cur->id;
    if (detached)
        co->flags |= CO_DETACHED;
    if (name)
        snprintf(co->name, sizeof co->name, "%s", name);
    co->flags |= CO_MOVABLE;              /* until it starts (M:N) */
    if (s->spawn_pthread) {               /* set before it is queued: another worker may run it */
        co->flags |= CO_PREEMPTIBLE;
        s->spawn_pthread = false;
    }
    co->state = CO_RUNNABLE;
    s->alive++;
    s->stats.created++;
    if (s->alive > s->stats.peak_alive)
        s->stats.peak_alive = s->alive;
    dlist_push(&s->all, &co->all_link);
    OBSERVERS_CALL(thread_started, s, co);
    coq_push(&s->runq, co);
    if (unlikely(mn_active))
        mn_spawned(s, co);                /* to an idle worker, if this one has others to run */
}

int sched_spawn(struct sched *s, size_t stack_size, size_t guard, const char *name,
                bool detached, corun_fn fn, void *arg, struct corun **out)
{
    struct corun *co;
    int r = coroutine_new(s, stack_size, guard, tls_own, coroutine_entry, NULL, &co);
    if (r)
        return r;
    coroutine_start(s, co, name, detached, fn, arg);
    *out = co;
    return 0;
}

int sched_spawn_on_stack(struct sched *s, void *lo, size_t size, bool detached, corun_fn fn,
                         void *arg, struct corun **out)
{
    if (size < co_hdr_size + (tls_own ? tls_area_size() : 0) + 4096)
        return EINVAL;
    struct stack_slot slot = { .lo = lo, .size = size, .cls = NULL, .guarded = false };
    struct corun *co = coroutine_on_slot(s, &slot, 0, size, tls_own, coroutine_entry, NULL);
    if (!co)
        return ENOMEM;
    coroutine_start(s, co, NULL, detached, fn, arg);
    *out = co;
    return 0;
}

int sched_join(struct corun *co, void **retval, uint64_t deadline, bool try, bool cancellable)
{
    struct sched *s = sched_self();
    struct corun *cur = s->current;
    if (co->state == CO_RELEASED)
        return ESRCH;
    if (co == cur)
        return EDEADLK;
    if (s->mn_member && sched_is_member(co->sched))
        return mn_join(s, co, retval, deadline, try, cancellable);
    if (co->sched != s)
        return EXDEV;
    if ((co->flags & CO_DETACHED) || co->joiner)
        return EINVAL;
    if (co->state != CO_DONE) {
        if (try)
            return EBUSY;
        co->joiner = cur;
        sched_wait_on(s, WAIT_JOIN, co, -1);
        int why = sched_park(s, deadline, cancellable ? PARK_CANCEL : PARK_PLAIN);
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

int sched_detach(struct corun *co)
{
    struct sched *s = sched_self();
    if (s->mn_member && sched_is_member(co->sched))
        return mn_detach(co);
    if ((co->flags & CO_DETACHED) || co->joiner)
        return EINVAL;
    if (co->sched != s)
        return EXDEV;
    co->flags |= CO_DETACHED;
    if (co->state == CO_DONE)
        coroutine_release(co);
    return 0;
}
