/* The scheduler: one per OS thread, created lazily; coroutines, run queue,
 * park/unpark with deadlines, and the libuv loop run when nothing is
 * runnable. */
#ifndef CORUN_SCHED_H
#define CORUN_SCHED_H

#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <uv.h>

#include "corun.h"
#include "list.h"
#include "stack.h"
#include "timerheap.h"

enum co_state {
    CO_RUNNING,      /* the scheduler's current coroutine */
    CO_RUNNABLE,     /* on the run queue (including not yet started) */
    CO_PARKED,       /* waiting in sched_park() */
    CO_SUSPENDED,    /* waiting in corun_switch() for someone to switch back */
    CO_DONE,         /* finished, not yet joined */
    CO_LOOP,         /* the scheduler's event-loop context, not running */
};

/* Why a parked coroutine was woken. */
enum wake_reason {
    WAKE_SIGNALED = 0,  /* the awaited thing happened */
    WAKE_TIMEOUT,       /* the deadline passed */
    WAKE_CLOSED,        /* the object waited on was closed */
    WAKE_CANCELED,      /* pthread_cancel() reached a cancellable wait */
    WAKE_INTERRUPTED,   /* a signal handler ran: the call fails with EINTR */
    WAKE_RESTART,       /* a handler ran in a restartable call: it tries again */
};

/* How a signal handler affects a parked call (see signal(7)). */
enum intr_mode {
    INTR_NONE,          /* never interrupted (mutex, join, condvar) */
    INTR_RESTART,       /* EINTR unless the handler has SA_RESTART (read, accept...) */
    INTR_ALWAYS,        /* EINTR whatever the flags (poll, sleep, sem_wait...) */
};

/* What a parked coroutine waits for: counted per park (CORUN_STATS) and
 * shown by the live dump. 0 is anything not described. */
enum wait_kind {
    WAIT_OTHER = 0, WAIT_READ, WAIT_WRITE, WAIT_ACCEPT, WAIT_CONNECT, WAIT_POLL, WAIT_SLEEP,
    WAIT_DNS, WAIT_MUTEX, WAIT_COND, WAIT_JOIN, WAIT_CHILD, WAIT_RWLOCK, WAIT_SEM,
    WAIT_BARRIER, WAIT_CHAN, WAIT_OFFLOAD, WAIT_KINDS
};

/* Per-scheduler figures for CORUN_STATS: plain counters, written only by
 * the scheduler's own OS thread. */
struct sched_stats {
    unsigned long created;        /* coroutines spawned */
    unsigned long peak_alive;
    unsigned long switches;
    unsigned long parks[WAIT_KINDS];
    unsigned long offloads;
    unsigned long fds_registered; /* fds added to the epoll set */
    uint64_t loop_left_ns;        /* when the loop last dispatched (0: not measuring) */
    uint64_t max_block_ns;        /* longest time between two loop turns */
    unsigned long max_block_dispatches;   /* coroutines run in that time */
    uint64_t stretch_top_ns;      /* longest run since the loop last had control, */
    uint64_t stretch_top_id;      /* and by whom: the culprit of a block */
    char stretch_top_name[CORUN_NAME_MAX];
    uint64_t max_block_top_ns;    /* the same for the longest block */
    uint64_t max_block_top_id;
    char max_block_top_name[CORUN_NAME_MAX];
    uint64_t slice_start;         /* when the running coroutine was switched to */
    uint64_t max_slice_ns;        /* longest run of one coroutine without a switch */
    uint64_t max_slice_id;
    char max_slice_name[CORUN_NAME_MAX];
};

#define CO_DETACHED 0x1u
#define CO_MAIN 0x2u        /* runs on the OS thread's own stack */

struct sched;

struct corun {
    void *sp;                     /* saved stack pointer while not running */
    struct corun *next, *prev;    /* link on `queue` */
    struct coq *queue;            /* run queue or wait queue it is on, or NULL */
    struct sched *sched;
    uint8_t state;
    uint8_t wake_reason;
    short wait_events;            /* fd waits: POLLIN/POLLOUT wanted */
    unsigned flags;
    int saved_errno;
    struct timer_node timer;
    void *xfer;                   /* message or switch value handed over */
    char *stack_lo;               /* lowest usable stack byte; NULL for main */
    uint64_t *canary;             /* checked at every switch when unguarded */
    struct stack_slot stack;
    corun_fn fn;
    void *arg;
    void *retval;
    struct corun *joiner;
    struct corun *parent;         /* spawner, for corun_switch's return rule */
    uint64_t parent_id;
    uint64_t id;
    size_t stack_size;            /* as requested, for diagnostics */
#ifdef CORUN_SANITIZERS
    void *asan_fake;
    const void *asan_bottom;
    size_t asan_size;
#endif
    /* pthread-level state (see gthread.h) */
    bool cancel_pending, cancel_disabled, in_cancel_point;
    struct gthread_tsd *tsd;      /* pthread key values */
    void *cleanup;                /* innermost pthread_cleanup_push buffer */
    sigset_t sigmask;             /* what pthread_sigmask says for this thread */
    uint8_t intr;                 /* enum intr_mode of the current park */
    struct corun *intr_next, *intr_prev;  /* on sched.intr_head while parked interruptibly */
    unsigned sig_seen;            /* handlers run for this thread, ever */
    uint64_t sig_pending;         /* sent to this thread (pthread_kill), not yet handled */
    char name[CORUN_NAME_MAX];
    /* What it waits for while parked (see enum wait_kind). */
    uint8_t wait_kind;            /* set just before sched_park, cleared after */
    uint8_t wait_hint;            /* set for a whole call (accept, connect, DNS...): wins */
    int wait_fd;
    const void *wait_obj;         /* mutex, condvar, coroutine joined... */
    uint64_t wait_since;          /* when it parked (only with CORUN_DUMP_SIGNAL) */
    struct corun *all_next, *all_prev;  /* every coroutine of the scheduler */
};

struct sched {
    struct corun *current;
    struct corun *main_co;
    struct corun *loop_co;
    struct coq runq;
    struct corun *dead;           /* detached coroutine whose stack to release after the switch */
    int *errno_loc;
    unsigned dispatches;          /* since events were last polled */
    uint64_t polled_tick;         /* coarse clock at that poll */
    int epfd;                     /* fds waited on, plus libuv's own backend fd */
    unsigned long alive;          /* coroutines not finished, main included */
    struct timerheap timers;
    /* signals (gsignal.c) */
    struct corun *intr_head;      /* coroutines parked interruptibly */
    unsigned nmasked;             /* coroutines with a non-empty mask */
    uint16_t nblocked[64];        /* per signal: coroutines that block it */
    uint64_t kmask;               /* what the kernel thread blocks */
    int sigfd;                    /* eventfd: a signal needs the loop's attention */
    timer_t kick_timer;           /* bounds a real accept on a shared socket (fdio.c) */
    bool has_kick_timer;
    volatile uint64_t sig_arrived;    /* signals for gsignal_dispatch */
    volatile uint64_t sig_norestart;  /* ... of which the handler lacks SA_RESTART */
    /* While a program's signal handler runs with the hooks off: the green
     * thread its lock and unlock calls act for (sched_for_sync_hook). */
    struct corun *handler_co;
    unsigned handler_depth;
    uv_loop_t loop;
    /* Introspection (inspect.c). */
    struct corun *all;            /* every coroutine not yet released, main included */
    unsigned long turns;          /* loop turns, read by the blocking detector */
    bool polling;                 /* the loop is waiting for events, not blocked */
    pid_t tid;
    struct sched *reg_next;       /* on the list of all schedulers */
    int dump_efd;                 /* eventfd in epfd: a live dump was asked for */
    volatile sig_atomic_t dump_pending;
    struct sched_stats stats;
    struct {                      /* the blocking detector's view of this loop */
        unsigned long turns;      /* as last seen */
        uint64_t since;           /* when that count was first seen */
        unsigned long warned;     /* turn count already warned about, plus one */
    } watch;
};

/* Bit of signal sig in a 64-bit mask word (glibc's sigset_t layout). */
#define SIGBIT(sig) ((uint64_t)1 << ((sig) - 1))
static inline uint64_t sigword(const sigset_t *set)
{
    return set->__val[0];
}

/* Describe the wait of the current coroutine's next park. */
static inline void sched_wait_on(struct sched *s, enum wait_kind kind, const void *obj, int fd)
{
    struct corun *cur = s->current;
    cur->wait_kind = (uint8_t)kind;
    cur->wait_obj = obj;
    cur->wait_fd = fd;
}

/* What the current coroutine's parks are for until the hint is cleared
 * (WAIT_OTHER), whatever the park site says (accept waits for readability). */
static inline void sched_wait_hint(struct sched *s, enum wait_kind kind)
{
    s->current->wait_hint = (uint8_t)kind;
}

#define DEADLINE_NONE UINT64_MAX

/* The calling OS thread's scheduler, created on first use. */
struct sched *sched_self(void);

/* The calling kernel thread was created by the program (native mode): the
 * hooks may give it a scheduler. */
void sched_mark_program_thread(void);

extern __thread struct sched *corun_tls_sched __attribute__((tls_model("initial-exec")));
struct sched *sched_for_hook_slow(void);

/*
 * The hook gate: the scheduler a hooked call should park on, or NULL when
 * the call must go straight to libc (corun's own loop context, threads that
 * run no green threads, before the library is set up). A few instructions
 * on the fast path.
 */
static inline struct sched *sched_for_hook(void)
{
    struct sched *s = corun_tls_sched;
    if (__builtin_expect(s != NULL, 1))
        return s->current != s->loop_co ? s : NULL;
    return sched_for_hook_slow();
}

uint64_t clock_now_ns(void);

/* Absolute deadline for a relative timeout (CORUN_FOREVER -> DEADLINE_NONE). */
uint64_t deadline_after(int64_t timeout_ns);

/*
 * Park the current coroutine until sched_wake() or the deadline. A caller
 * waiting on something first puts the coroutine on that thing's wait queue
 * with coq_push(); any wake, the timeout's included, takes it off again.
 * Returns the wake reason.
 */
int sched_park(struct sched *s, uint64_t deadline);

/* Like sched_park(), for waits that are pthread cancellation points: returns
 * WAKE_CANCELED (without parking, if one is already pending) when the
 * coroutine is to act on a pthread_cancel(). */
int sched_park_cancellable(struct sched *s, uint64_t deadline);

/* Like sched_park_cancellable(), and a signal handler run for this thread
 * makes it return WAKE_INTERRUPTED as `mode` says. */
int sched_park_interruptible(struct sched *s, uint64_t deadline, enum intr_mode mode);

/* Hooks off while a signal handler of the program runs at an arbitrary point
 * (it may have interrupted corun itself): returns what to pass to
 * sched_hooks_resume(). */
struct corun *sched_hooks_suspend(struct sched *s);
void sched_hooks_resume(struct sched *s, struct corun *was);

/* Create a coroutine running fn(arg) and queue it; see corun_spawn(). */
int sched_spawn(struct sched *s, size_t stack_size, size_t guard, const char *name,
                bool detached, corun_fn fn, void *arg, struct corun **out);

/* Same, on a stack the program provides ([lo, lo+size)); corun keeps its
 * header at the top and never frees the memory. */
int sched_spawn_on_stack(struct sched *s, void *lo, size_t size, bool detached, corun_fn fn,
                         void *arg, struct corun **out);

/* Finish the current coroutine with `retval`, from any depth of its stack.
 * If it was the last one alive after main finished this way, the process
 * exits with status 0, as it does when the last thread exits. */
__attribute__((noreturn)) void sched_exit_current(void *retval);

/* Wait for co to finish (try: EBUSY instead of waiting), then release it.
 * Returns 0, EDEADLK, EXDEV, EINVAL, EBUSY, ETIMEDOUT, or ECANCELED when a
 * cancellable join was canceled. */
int sched_join(struct corun *co, void **retval, uint64_t deadline, bool try, bool cancellable);


/* Nothing but the current coroutine could run or be woken here (no other
 * coroutine alive, no timer, no libuv work): a real blocking call would
 * behave exactly as parking does, faster and with the kernel's own EINTR. */
bool sched_alone(struct sched *s);

/*
 * The gate of the pthread synchronisation hooks (mutex, rwlock, condvar,
 * once, pthread_self...): like sched_for_hook(), but it never creates a
 * scheduler, since these calls come from inside allocators (jemalloc's own
 * initialisation locks a mutex: building a scheduler there, which mallocs,
 * re-enters that initialisation). Before a scheduler exists there is one
 * thread and glibc's objects are right. It also answers inside a signal
 * handler of the program, so that an object is never handled by glibc
 * there and by corun elsewhere (whose layouts differ): the handler acts
 * for the green thread it interrupted and must not park (gsync.c).
 */
static inline struct sched *sched_for_sync_hook(void)
{
    struct sched *s = corun_tls_sched;
    if (__builtin_expect(s == NULL, 0))
        return NULL;
    return s->current != s->loop_co || s->handler_co ? s : NULL;
}

/* The gate of hooks for calls that may block: like sched_for_hook(), but
 * NULL also when the caller is the only thing that could run, so the real
 * libc call (with its own EINTR and cancellation) is made. */
static inline struct sched *sched_for_blocking_hook(void)
{
    struct sched *s = sched_for_hook();
    return s && !sched_alone(s) ? s : NULL;
}

/* Make a parked coroutine runnable with `reason` (taking it off its wait
 * queue and timer). Returns false if it was not parked. */
bool sched_wake(struct corun *co, int reason);

/* ---- queues ---------------------------------------------------------------*/

static inline bool coq_empty(const struct coq *q)
{
    return q->head == NULL;
}

static inline void coq_push(struct coq *q, struct corun *co)
{
    co->next = NULL;
    co->prev = q->tail;
    if (q->tail)
        q->tail->next = co;
    else
        q->head = co;
    q->tail = co;
    co->queue = q;
}

static inline void coq_remove(struct coq *q, struct corun *co)
{
    if (co->prev)
        co->prev->next = co->next;
    else
        q->head = co->next;
    if (co->next)
        co->next->prev = co->prev;
    else
        q->tail = co->prev;
    co->next = co->prev = NULL;
    co->queue = NULL;
}

static inline struct corun *coq_pop(struct coq *q)
{
    struct corun *co = q->head;
    if (co)
        coq_remove(q, co);
    return co;
}

#endif
