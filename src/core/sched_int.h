/* The core's own internals, shared by its files (sched.c, poller.c,
 * overflow.c): never included outside src/core. */
#ifndef CR_SCHED_INT_H
#define CR_SCHED_INT_H

#include "sched.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define STACK_CANARY 0xC0DE5AFEF00DFACEull

/* Size of the coroutine header (struct corun and the parts) at the top of
 * its stack slot; fixed once the parts are laid out. */
extern size_t co_hdr_size;
/* ... and of struct sched with its parts. */
extern size_t sched_size;

/* Lay out the registered parts (once, before the first scheduler). */
void parts_layout(void);

/* Observers: call member `fn` of every registered observer. */
#define OBSERVERS_CALL(fn, ...)                                   \
    REGISTRY_FOREACH(sched_observers, o_)                        \
        if ((*o_)->fn)                                           \
            (*o_)->fn(__VA_ARGS__)

/* ---- overflow.c */
__attribute__((noreturn)) void overflow_abort(const struct corun *co, const char *how);
void overflow_install(void);       /* the SIGSEGV handler: once per process */
void altstack_ensure(void);        /* an alternate signal stack: once per OS thread */

#ifdef CORUN_SANITIZERS
/* A stack that overran its end may have frames of its own, with their
 * redzones, over the canary: AddressSanitizer must not stop the check. */
__attribute__((noinline, no_sanitize_address)) static uint64_t canary_read(const uint64_t *c)
{
    return *c;
}
#else
#define canary_read(c) (*(c))
#endif

static inline void stack_check(const struct corun *co)
{
    if (unlikely(co->canary && canary_read(co->canary) != STACK_CANARY))
        overflow_abort(co, "its stack canary was overwritten");
}

/* ---- poller.c */
/* Collect readiness, due timers and libuv work; wait for some if `block`
 * and nothing is due. Runs in the loop context. */
void poller_poll(struct sched *s, bool block);
/* A new epoll set holding libuv's backend fd (a new scheduler, a fork
 * child). */
void poller_open(struct sched *s);
void poller_close(struct sched *s);

/* ---- sched.c */
void all_unlink(struct sched *s, struct corun *co);
void coroutine_release(struct corun *co);

/* ---- workers.c (M:N) */
extern unsigned long mn_alive;     /* atomic: the program's threads alive, on every worker */
/* The first green thread beside the first: start the other workers. */
void mn_start(struct sched *s);
/* A thread of the program's begins (any worker): counted, with the peak. */
void mn_count_start(void);
/* At each loop turn of a member: adopt what others handed over, hand over
 * movable threads to a less loaded worker. */
void mn_turn(struct sched *s);
/* A member out of work takes a share of the global queue: whether it got
 * any. */
bool mn_take_global_idle(struct sched *s);
/* co was just queued on s: hand it to a less loaded worker when s has
 * enough to run without it. */
void mn_spawned(struct sched *s, struct corun *co);
/* co finished on s and its stack was left: wake its joiner, or release it. */
void mn_finished(struct sched *s, struct corun *co);
int mn_join(struct sched *s, struct corun *co, void **retval, uint64_t deadline, bool try,
            bool cancellable);
int mn_detach(struct corun *co);
void mn_fork_child(struct sched *s);
/* An idle member asks a busy one for a thread; the busy one hands over co,
 * shed on its way out of a hook (sched_shed_current). */
void mn_ask_for_work(struct sched *s);
void mn_shed(struct sched *s, struct corun *co, struct sched *to);
/* A worker's scheduler (sched.c), and its own context leaving for good. */
struct sched *sched_create_worker(void);
__attribute__((noreturn)) void sched_worker_idle(struct sched *s);

/* ---- handoff.c (M:N): an OS thread that runs a scheduler, or waits for
 * one to run (a spare). */
struct mthread {
    struct mthread *next;          /* on the spare list */
    pid_t tid;
    uintptr_t fsbase;              /* its own thread pointer */
    int *errno_loc;                /* its own errno */
    void *ctx_sp;                  /* its own context, saved while a scheduler's loop or a
                                    * green thread runs on it (NULL: none made yet) */
    bool tcb_lent;                 /* its own TCB is the program's main thread's */
    struct sched *assigned;        /* atomic: the scheduler the monitor gave it */
    uint32_t gen;                  /* futex: 1 once `assigned` is set */
};
/* A member's OS thread (workers.c): its record, and the hand-off on (the
 * main one's TCB is the program's main thread's). */
void handoff_member_ready(struct sched *s, bool main_thread);
/* M:N starts: the monitor, if CORUN_HANDOFF_MS is not 0. */
void handoff_start(void);
void handoff_fork_child(void);
/* On the OS thread that lost s, in the green thread me whose call ended:
 * go to m's own context, me to be resumed by s wherever s runs (sched.c). */
void sched_rejoin(struct sched *s, struct corun *me);
/* The OS thread m takes s over (sched.c): its books name m from now on. */
void sched_adopt_os(struct sched *s, struct mthread *m);
/* The calling OS thread runs no scheduler any more (a spare). */
void sched_os_detach(void);
/* On its way to its OS thread's own context: signals blocked, then, if
 * me is still away (a handler in between may have taken it to its
 * scheduler's new OS thread: then the mask is put back and false
 * returned), the catch off (its selector is the scheduler's, which another
 * OS thread flips now) (handoff.c). */
bool handoff_leave_os(struct corun *me, uint64_t *mask);
/* Threads whose call ended on the OS thread that lost s: queue them. */
void handoff_take_returning(struct sched *s);
/* The signals a worker's own context blocks (workers.c). */
void worker_block_signals(void);

/* ---- stats (sched.c) */
void stats_note_switch(struct sched *s, struct corun *from);
void stats_note_loop_turn(struct sched *s);

#endif
