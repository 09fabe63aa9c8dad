/* The core scheduler: one per OS thread, created lazily; coroutines, the run
 * queue, the one park primitive with deadlines, and the poller (an epoll set
 * holding libuv's backend fd and the fds of registered poll sources) run
 * when nothing is runnable.
 *
 * The core knows no fds, signals or pthreads. Upper layers reach it three
 * ways, all registered at link time (registry.h), so the core names none of
 * their symbols:
 *  - parts: per-thread and per-scheduler state of their own, kept in
 *    extension areas after the core's structs (sched_part, thread_part());
 *  - observers: told of scheduler and thread lifecycle events, forks, a
 *    thread resuming with work pending, loop turns asked for;
 *  - poll sources: fds in the scheduler's epoll set whose readiness the
 *    core hands to them.
 */
#ifndef CR_SCHED_H
#define CR_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>

#include "corun.h"
#include "clock.h"
#include "list.h"
#include "registry.h"
#include "stack.h"
#include "timerheap.h"

/* libuv stays inside the core: the rest sees the loop as an opaque type. */
typedef struct uv_loop_s uv_loop_t;

enum co_state {
    CO_RUNNING,      /* the scheduler's current coroutine */
    CO_RUNNABLE,     /* on the run queue (including not yet started) */
    CO_PARKED,       /* waiting in sched_park() */
    CO_SUSPENDED,    /* waiting in corun_switch() for someone to switch back */
    CO_DONE,         /* finished, not yet joined */
    CO_LOOP,         /* the scheduler's event-loop context, not running */
    CO_RELEASED,     /* joined or detached and finished: its slot is given back */
};

/* Why a parked coroutine was woken. */
enum wake_reason {
    WAKE_SIGNALED = 0,  /* the awaited thing happened */
    WAKE_TIMEOUT,       /* the deadline passed */
    WAKE_CLOSED,        /* the object waited on was closed */
    WAKE_CANCELED,      /* a cancel request reached a cancellable park */
    WAKE_INTERRUPTED,   /* an interruption (a signal handler ran): the call fails with EINTR */
    WAKE_RESTART,       /* an interruption in a restartable call: it tries again */
};

/* How a park may end early besides its wake-up and deadline (see
 * sched_park). The interruption modes follow signal(7). */
enum park_mode {
    PARK_PLAIN,          /* only a wake-up or the deadline (mutex, join...) */
    PARK_CANCEL,         /* also a pending cancel: WAKE_CANCELED */
    PARK_INTR_RESTART,   /* cancellable, and interrupted unless the handler restarts (read, accept...) */
    PARK_INTR_ALWAYS,    /* cancellable, and always interrupted (poll, sleep, sem_wait...) */
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
    unsigned long preempted;      /* green threads made to yield after a CPU-time slice */
    unsigned long moved_in, moved_out;   /* green threads taken from / handed to other workers */
    unsigned long from_global;           /* green threads taken from the global queue (its
                                          * own ones back too) */
    unsigned long handed_off;     /* times another OS thread took it over from one stuck in a call */
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
#define CO_KERNEL_TID 0x4u  /* has the kernel thread's tid (see gthread_tid) */
#define CO_OWN_TLS 0x8u     /* has a TCB and TLS of its own (tls.h) */
#define CO_PREEMPTIBLE 0x10u /* a pthread (or main) that has not used the explicit API (catch.h) */
#define CO_MOVABLE 0x20u    /* not started, or preempted: no frame of corun's on its stack holds
                             * its scheduler, so it may resume on another OS thread (M:N) */

struct sched;
struct mthread;

/* A wake of a parked green thread posted from another OS thread (a kernel
 * thread unlocking a mutex a green thread waits for). It lives with the
 * waiter, which must not leave its wait before `delivered` is set: the
 * scheduler's loop sets it, and wakes co, when it drains its list. */
struct sched_xwake {
    struct sched_xwake *next;
    struct corun *co;
    unsigned delivered;           /* atomic */
    bool heap;                    /* malloc'd: the loop frees it once delivered */
};

struct corun {
    void *sp;                     /* saved stack pointer while not running */
    struct corun *next, *prev;    /* link on `queue` */
    struct coq *queue;            /* run queue or wait queue it is on, or NULL */
    struct sched *sched;
    uint8_t state;
    uint8_t wake_reason;
    uint8_t park_mode;            /* enum park_mode of the current park */
    bool cancel_pending, cancel_disabled, in_cancel_point;
    unsigned flags;
    int saved_errno;
    int *errno_loc;               /* its errno: the OS thread's unless it has TLS of its own */
    uintptr_t fsbase;             /* its thread pointer: the OS thread's, or its own TCB (tls.h) */
    uint64_t resume_work;         /* nonzero: observers' resumed() runs when it next resumes */
    struct timer_node timer;
    void *xfer;                   /* message or switch value handed over */
    char *stack_lo;               /* lowest usable stack byte; NULL for main */
    char *stack_hi;               /* above its highest one (its TLS area or header is there) */
    uint64_t *canary;             /* checked at every switch when unguarded */
    struct stack_slot stack;
    corun_fn fn;
    void *arg;
    void *retval;
    struct corun *joiner;
    struct sched_xwake *joiner_xw;    /* the joiner's record, when it may be on another OS thread */
    unsigned pinned;              /* program code called from corun's frames: must not move */
    struct mthread *away_os;      /* in a real blocking call on that OS thread, which lost its
                                   * scheduler to another meanwhile (handoff.c); atomic */
    struct corun *parent;         /* spawner, for corun_switch's return rule */
    uint64_t parent_id;
    uint64_t id;
    size_t stack_size;            /* as requested, for diagnostics */
#ifdef CORUN_SANITIZERS
    void *asan_fake;
    const void *asan_bottom;
    size_t asan_size;
#endif
    struct dlink intr_link;       /* on sched.interruptible while parked interruptibly */
    struct dlink all_link;        /* on sched.all: every coroutine of the scheduler */
    char name[CORUN_NAME_MAX];
    /* What it waits for while parked (see enum wait_kind). */
    uint8_t wait_kind;            /* set just before sched_park, cleared after */
    uint8_t wait_hint;            /* set for a whole call (accept, connect, DNS...): wins */
    short wait_want;              /* what it wants of the wait queue it is on (the queue owner's) */
    int wait_fd;
    const void *wait_obj;         /* mutex, condvar, coroutine joined... */
    uint64_t wait_since;          /* when it parked (only while sched_park_times) */
    _Alignas(16) unsigned char ext[];   /* the parts of upper layers */
};

struct sched {
    struct corun *current;
    struct corun *main_co;
    struct corun *loop_co;
    struct coq runq;
    struct corun *dead;           /* detached coroutine whose stack to release after the switch */
    struct corun *preempted;      /* made to yield: queued after what the loop's next turn wakes */
    struct coq hogs;              /* preempted threads: run when runq is empty, or every slice */
    uint64_t hogs_served;         /* coarse time a hog last started or ended a slice, or
                                     one moved in to an empty queue */
    int *errno_loc;               /* the OS thread's errno */
    uintptr_t fsbase;             /* the OS thread's own thread pointer */
    unsigned dispatches;          /* since events were last polled */
    uint64_t polled_tick;         /* coarse clock at that poll */
    volatile sig_atomic_t poll_tick;  /* preemption's signal came since (poll_due) */
    int epfd;                     /* fds waited on, plus libuv's own backend fd */
    int wake_fd;                  /* eventfd in epfd: other OS threads posted wakes */
    struct sched_xwake *xwakes;   /* atomic: posted by other OS threads, LIFO */
    struct sched_call *calls;     /* atomic: work other OS threads asked it to do, LIFO */
    unsigned xwake_posters;       /* atomic: other threads posting (they poke wake_fd) */
    unsigned long alive;          /* coroutines not finished, main included */
    struct timerheap timers;
    struct stack_slot stack_spare;   /* its last released stack, out of the pool (stack.h) */
    uint64_t id_next, id_end;        /* thread ids it hands out (a block of the global count) */
    struct dlist interruptible;   /* coroutines parked interruptibly */
    struct dlist all;             /* every coroutine not yet released, main included */
    uv_loop_t *loop;              /* libuv's loop, allocated with the scheduler */
    unsigned long turns;          /* loop turns, read by the blocking detector */
    bool polling;                 /* the loop is waiting for events, not blocked */
    volatile sig_atomic_t loop_work;  /* nonzero: observers' loop_turn() runs at the next turn */
    pid_t tid;                    /* the OS thread's kernel tid */
    pid_t home_tid;               /* ... of its first OS thread: its main thread's tid */
    volatile uint8_t catch_sel;   /* the catch's selector (catch.h): read by the kernel */
    bool catch_armed;             /* the catch is on for this OS thread */
    bool preempt_armed;           /* its CPU-time timer runs (catch.h, preemption) */
    int preempt_timer;            /* ... the kernel's timer id */
    unsigned long preempt_switches;   /* stats.switches at the timer's last signal */
    /* Work for the running thread's way back from corun to the program
     * (catch_release): separate bytes, as the preemption signal's handler
     * sets one and the loop the other. */
    volatile bool release_preempt;    /* a due signal found it inside corun: yield */
    volatile bool release_shed;       /* M:N: an idle worker asks for a thread (shed_to) */
    struct corun *woken_co;           /* resumed from a park since the last catch_hold */
    struct sched *shed_to;            /* atomic: that worker */
    struct corun *shed_out;           /* yielded to be handed to shed_out_to at the next turn */
    struct sched *shed_out_to;
    /* M:N (CORUN_PROCS > 1; workers.c) */
    bool mn_member;               /* runs the program's green threads with other OS threads */
    bool worker;                  /* one of corun's worker OS threads */
    bool spawn_pthread;           /* the next spawn is a pthread's (CO_PREEMPTIBLE) */
    struct corun *exited;         /* finished: published (joiner, release) after the switch */
    struct corun *inbox;          /* atomic: green threads other workers handed over (LIFO) */
    unsigned load;                /* atomic: runnable green threads at the last loop turn */
    uint64_t load_at;             /* atomic: coarse time of that turn */
    /* Hand-off (handoff.c): a green thread in a real blocking call lets
     * the monitor give this scheduler to another OS thread. */
    bool handoff_ok;              /* a worker's: it may be handed over */
    uintptr_t block_word;         /* atomic: the thread in such a call (bit 0: being taken) */
    unsigned block_seq;           /* atomic: such calls begun, to tell one from the next */
    int block_nr;                 /* its system call's number (-1: a hook's), for the log */
    struct mthread *os;           /* the OS thread that runs it now */
    struct corun *returning;      /* atomic: threads whose call ended on the OS thread that
                                   * lost it: they resume here (LIFO on `next`) */
    struct sched_stats stats;
    _Alignas(16) unsigned char ext[];   /* the parts of upper layers */
};

/* ---- what upper layers register -------------------------------------------*/

/* A part: `thread_size` bytes in every coroutine and `sched_size` in every
 * scheduler, zeroed at creation; the core fills in the offsets before the
 * first scheduler exists. */
struct sched_part {
    size_t thread_size, sched_size;
    size_t thread_off, sched_off;     /* set by the core */
};
REGISTRY_SET(sched_parts, struct sched_part);
#define SCHED_PART(name) REGISTER(sched_parts, name)

static inline void *thread_part(const struct corun *co, const struct sched_part *p)
{
    return (char *)co + p->thread_off;
}

static inline void *sched_part(const struct sched *s, const struct sched_part *p)
{
    return (char *)s + p->sched_off;
}

/* Lifecycle observers; any member may be NULL. Called in link order. */
struct sched_observer {
    void (*sched_created)(struct sched *s);
    void (*sched_destroyed)(struct sched *s);
    void (*fork_prepare)(void);
    void (*fork_parent)(void);
    /* In the child, after the core made its scheduler (if the forking
     * thread had one: else s is NULL) fresh: a new epoll set and loop. */
    void (*fork_child)(struct sched *s);
    void (*thread_started)(struct sched *s, struct corun *co);   /* queued, not yet run */
    void (*thread_exiting)(struct sched *s, struct corun *co);   /* on its own stack, may park */
    void (*thread_finished)(struct sched *s, struct corun *co);  /* returned, before the switch away */
    void (*thread_released)(struct sched *s, struct corun *co);  /* about to be freed */
    void (*resumed)(struct sched *s, struct corun *co);          /* co->resume_work was set */
    void (*loop_turn)(struct sched *s);                          /* s->loop_work was set */
    void (*polled)(struct sched *s);      /* after each poll's events, before timers expire */
    /* M:N: a runnable green thread moves to another OS thread's scheduler:
     * leaving runs on the old one's OS thread, arriving on the new one's. */
    void (*thread_leaving)(struct sched *s, struct corun *co);
    void (*thread_arriving)(struct sched *s, struct corun *co);
    /* M:N: s now runs on another OS thread (handoff.c), called there: what
     * an upper layer keeps per kernel thread (a timer aimed at its tid). */
    void (*rehomed)(struct sched *s);
};
REGISTRY_SET(sched_observers, const struct sched_observer);
#define SCHED_OBSERVER(name) REGISTER(sched_observers, name)

/* A poll source: fds it adds with sched_watch_fd() come back to ready(). */
struct poll_source {
    void (*ready)(struct sched *s, uint64_t data, uint32_t events);
};
REGISTRY_SET(poll_sources, const struct poll_source);
#define POLL_SOURCE(name) REGISTER(poll_sources, name)

/* The bits of epoll data a source may use. */
#define POLL_DATA_MASK (((uint64_t)1 << 56) - 1)

/* The epoll data (source tag and the source's own 56 bits) for an fd of
 * `src` with `data`: for EPOLL_CTL_ADD/MOD by the source itself. */
uint64_t sched_poll_data(const struct poll_source *src, uint64_t data);

/* Add fd to s's epoll set for `events`, reported to src with `data`.
 * Returns 0 or an errno value. */
int sched_watch_fd(struct sched *s, int fd, uint32_t events, const struct poll_source *src,
                   uint64_t data);

/* ---- the scheduler ---------------------------------------------------------*/

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

/* The calling OS thread's scheduler, created on first use. */
struct sched *sched_self(void);

/* The calling kernel thread was created by the program (native mode): the
 * hooks may give it a scheduler. */
void sched_mark_program_thread(void);

extern __thread struct sched *sched_tls __attribute__((tls_model("initial-exec")));
struct sched *sched_for_program_slow(void);

/*
 * The scheduler a call of the program should park on, or NULL when the call
 * must go straight to libc (corun's own loop context, threads that run no
 * green threads, before the library is set up). A few instructions on the
 * fast path. The hooks' gates (interpose/gate.h) build on it.
 */
static inline struct sched *sched_for_program(void)
{
    struct sched *s = sched_tls;
    if (__builtin_expect(s != NULL, 1))
        return s->current != s->loop_co ? s : NULL;
    return sched_for_program_slow();
}

/* Nothing but the current coroutine could run or be woken here (no other
 * coroutine alive, no timer, no libuv work): a real blocking call would
 * behave exactly as parking does, faster and with the kernel's own EINTR. */
bool sched_alone(struct sched *s);

/*
 * The one park primitive: park the current coroutine until sched_wake(),
 * the deadline (DEADLINE_NONE: none), or what `mode` adds (a pending cancel,
 * an interruption). A caller waiting on something first puts the coroutine
 * on that thing's wait queue with coq_push(); any wake, the timeout's
 * included, takes it off again. Returns the wake reason; a cancellable park
 * with a cancel already pending returns WAKE_CANCELED without parking.
 */
int sched_park(struct sched *s, uint64_t deadline, enum park_mode mode);

/* Make a parked coroutine runnable with `reason` (taking it off its wait
 * queue, timer and the interruptible list). Returns false if it was not
 * parked. */
bool sched_wake(struct corun *co, int reason);

/* Work for another scheduler's OS thread (M:N), run in its loop context:
 * what its green threads' wait queues need, which only it may touch. */
struct sched_call {
    struct sched_call *next;
    void (*fn)(struct sched *s, void *arg);
    void *arg;
    struct sched_xwake reply;     /* the caller, woken when fn has run */
    unsigned done;                /* atomic */
};

/* Run fn(target, arg) on target's OS thread and wait for it (parking the
 * calling green thread, if there is one). Directly when target is the
 * caller's own scheduler. */
void sched_run_on(struct sched *target, void (*fn)(struct sched *, void *), void *arg);

/* Post xw (xw->co set, parked on its own scheduler's OS thread) from any
 * thread: the loop of xw->co->sched wakes it with WAKE_SIGNALED. Lock-free,
 * async-signal-safe. */
void sched_xwake_post(struct sched_xwake *xw);

/* Let other runnable coroutines run, and the loop poll when it is due: the
 * current coroutine goes to the back of the run queue. */
void sched_yield_current(struct sched *s);

/* The current green thread kept the CPU for a whole slice (catch.h's
 * preemption): the loop turns now, and the thread waits with the other
 * preempted ones, behind every thread that became runnable otherwise (a
 * sleeper whose time came goes first), one of them running at least every
 * slice. With may_move (M:N), it may resume on another OS thread: no
 * frame of corun's below holds s. */
void sched_preempt_current(struct sched *s, bool may_move);

/* M:N: the current thread, on its way from a hook back to the program
 * (no frame of corun's below holds s), yields to be handed to the idle
 * worker `to` at the loop's next turn. */
void sched_shed_current(struct sched *s, struct sched *to);

/* For calls that could have waited but return at once (poll, epoll_wait):
 * yield as sched_yield_current() does if the loop has not polled for a
 * coarse clock tick (or POLL_EVERY dispatches), so that a coroutine
 * looping on such a call cannot starve the others. */
void sched_yield_if_due(struct sched *s);

/* Switch to target (runnable or suspended in sched_switch_to), leaving the
 * current coroutine suspended; returns the value it is switched back with.
 * See corun_switch(). Aborts on a target that cannot be switched to. */
void *sched_switch_to(struct sched *s, struct corun *target, void *value);

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

/* Mark co detached (released when it finishes). 0, EINVAL or EXDEV. */
int sched_detach(struct corun *co);

/* The first coroutine parked interruptibly that `pick` accepts, newest
 * first, or NULL (signal delivery chooses its target with it). */
struct corun *sched_find_interruptible(struct sched *s, bool (*pick)(struct corun *, void *),
                                       void *arg);

/* CORUN_STATS at exit: count the running coroutine's slice and the loop's
 * open stretch as if they ended now. */
void sched_stats_flush(struct sched *s);

/* ---- M:N (workers.c) ------------------------------------------------------*/

/* Green threads run on CORUN_PROCS OS threads (set once the first worker
 * starts; never cleared but in a fork child). */
extern bool mn_active;

/* s is one of the schedulers running the program's green threads together
 * (any pointer may be asked: a pthread_t that is no green thread's). */
bool sched_is_member(const struct sched *s);

/* The most green threads alive at once over all workers since M:N started
 * (0: it never did). */
unsigned long sched_mn_peak_alive(void);

/* The member schedulers (at most max of them, in out); returns how many. */
unsigned sched_members(struct sched **out, unsigned max);

/* ---- real blocking calls: the hand-off (handoff.c) ---------------------------*/

/* A call corun could not turn into a park blocks its OS thread, and with
 * it every green thread queued there. Around such a call a member's green
 * thread marks itself; if the call lasts longer than CORUN_HANDOFF_MS while
 * others are on its scheduler, a monitor hands the scheduler to another OS
 * thread (a spare), and the thread, when its call returns, resumes there as
 * any runnable one. `blocking_co` is in each green thread's own TLS: a
 * signal handler of corun's that interrupts such a call (catch_hold) first
 * takes the scheduler back, or follows it (sched_blocking_resolve). */
extern __thread struct corun *blocking_co __attribute__((tls_model("initial-exec")));

void sched_blocking_begin_slow(struct sched *s, int nr);
bool sched_blocking_resolve(void);
/* In such a call whose scheduler another OS thread has, or is being given
 * (a handler on the old OS thread: it must not touch the scheduler). */
bool sched_blocking_stranded(void);

/* Before a real call that may block for long (not on behalf of ld.so,
 * whose locks name the kernel thread): system call nr, or -1. */
static inline void sched_blocking_begin(struct sched *s, int nr)
{
    if (__builtin_expect(s->handoff_ok, 0))
        sched_blocking_begin_slow(s, nr);
}

/* The same from a hook, for the calling green thread (none: nothing). */
static inline void sched_blocking_begin_here(int nr)
{
    struct sched *s = sched_tls;
    if (__builtin_expect(s && s->handoff_ok, 0) && s->current != s->loop_co)
        sched_blocking_begin_slow(s, nr);
}

/* After it: the thread owns its scheduler again, possibly on another OS
 * thread. */
void sched_blocking_done(bool moved);

static inline void sched_blocking_end(void)
{
    if (__builtin_expect(blocking_co != NULL, 0))
        sched_blocking_done(sched_blocking_resolve());
}

/* First thing in corun's handlers (catch_hold): the same, but the call
 * itself goes on (or fails EINTR) after the handler, and ends with
 * sched_blocking_end. True if the thread now runs on another OS thread:
 * the handler's frame then holds the old one's signal mask and alternate
 * stack, which its sigreturn must not put back (catch_frame_refresh). */
static inline bool sched_blocking_end_check(void)
{
    if (__builtin_expect(blocking_co != NULL, 0))
        return sched_blocking_resolve();
    return false;
}

/* Record park start times (the live dump shows how long each waits). */
extern bool sched_park_times;

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
