/*
 * M:N: the program's green threads run on CORUN_PROCS OS threads.
 *
 * Each OS thread (the program's main one, and CORUN_PROCS - 1 workers of
 * corun's) keeps its own scheduler exactly as in N:1: its run queue, loop,
 * epoll set and timers are touched only by that OS thread. What crosses
 * between them:
 *  - threads: at each loop turn a scheduler with two or more runnable
 *    threads more than the least loaded member hands half the difference
 *    to it (its inbox: a lock-free list, and a poke of its wake eventfd).
 *    Only a thread no frame of corun's on its stack refers to may move: one
 *    not yet started, or preempted (CO_MOVABLE) outside any program code
 *    corun called (`pinned`). Everything else a scheduler keeps for a
 *    thread (its place on wait queues, its timer) exists only while it is
 *    parked, and parked threads never move. A pair that keeps waking each
 *    other stays together: one of them is always parked at a turn.
 *  - the global queue: a new thread whose creator has others queued and no
 *    member idle goes there, for whichever member runs out of work first
 *    (a member with nothing queued but preempted CPU hogs takes a share;
 *    a busier one takes one thread at each turn: none waits there for
 *    long, and a new thread still runs ahead of the hogs).
 *  - threads woken from a park: an idle member asks the busiest for one
 *    (mn_ask_for_work); the next of its threads to return from a hook to
 *    the program while others wait there yields (no frame of corun's below
 *    it holds s then) and is handed over if the asker is still idle.
 *  - wakes: a parked thread is woken by its own scheduler; other OS threads
 *    post the wake (sched_xwake_post), as kernel threads always did.
 *  - the end of a thread: joiners and detachers may be on another OS
 *    thread, so it is published finished (under mn_lock) only after its
 *    stack was left.
 * The first pthread_create (with own TLS and the catch in force) starts the
 * workers; an idle one waits in its epoll set, costing nothing.
 */
#include "sched_int.h"

#include <errno.h>
#include <stdlib.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "catch.h"
#include "config.h"
#include "diag.h"
#include "lock.h"
#include "real.h"
#include "tls.h"

bool mn_active;
unsigned long mn_alive;
static cr_lock_t mn_lock = CR_LOCK_INIT;          /* a thread's end against join and detach */
static struct sched *members[PROCS_MAX];
static unsigned nmembers;                          /* atomic */

/* Queued threads counted, and looked at for one to move, per turn at most:
 * a longer queue means this worker is busy anyway, and the movable ones
 * (new or preempted) sit near the tail. */
#define MOVE_SCAN 64
#define STALE_NS (20 * 1000000ull)       /* a member that has not turned for this long is busy */

bool sched_is_member(const struct sched *s)
{
    unsigned n = __atomic_load_n(&nmembers, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n; i++)
        if (members[i] == s)
            return true;
    return false;
}

static unsigned long mn_peak;

void mn_count_start(void)
{
    unsigned long n = __atomic_add_fetch(&mn_alive, 1, __ATOMIC_SEQ_CST);
    unsigned long p = __atomic_load_n(&mn_peak, __ATOMIC_RELAXED);
    while (n > p && !__atomic_compare_exchange_n(&mn_peak, &p, n, true, __ATOMIC_RELAXED,
                                                 __ATOMIC_RELAXED))
        ;
}

unsigned long sched_mn_peak_alive(void)
{
    return __atomic_load_n(&mn_peak, __ATOMIC_RELAXED);
}

unsigned sched_members(struct sched **out, unsigned max)
{
    unsigned n = __atomic_load_n(&nmembers, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n && i < max; i++)
        out[i] = members[i];
    return n < max ? n : max;
}

static cr_lock_t add_lock = CR_LOCK_INIT;
static unsigned workers_ready;                     /* atomic: started, member or not */

static void member_add(struct sched *s)
{
    s->mn_member = true;
    cr_lock(&add_lock);
    unsigned i = __atomic_load_n(&nmembers, __ATOMIC_RELAXED);
    members[i] = s;
    __atomic_store_n(&nmembers, i + 1, __ATOMIC_RELEASE);
    cr_unlock(&add_lock);
}

/* ---- the workers ------------------------------------------------------------*/

/* Signals the program handles are blocked in a worker's own context, so a
 * worker's kernel thread takes one only when a green thread there does not
 * block it (gsignal.c). Not blocked: faults, the catch's and preemption's,
 * corun's own, and glibc's (setuid broadcasts SIGSETXID to every thread). */
void worker_block_signals(void)
{
    sigset_t m;
    sigfillset(&m);
    static const int keep[] = { SIGSYS, PREEMPT_SIGNAL, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP,
                                SIGKILL, SIGSTOP, 32, 33 };
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        sigdelset(&m, keep[i]);
    sigdelset(&m, CORUN_KICK_SIGNAL);
    sigdelset(&m, CORUN_DETECT_SIGNAL);
    if (cr_config.dump_signal)
        sigdelset(&m, cr_config.dump_signal);
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &m, NULL, 8);
}

static void *worker_main(void *arg)
{
    (void)arg;
    worker_block_signals();
    syscall(SYS_prctl, PR_SET_NAME, "corun-worker", 0L, 0L, 0L);
    struct sched *s = sched_create_worker();
    int err = catch_arm(s);
    if (err) {
        /* Without the catch a glibc lock wait would block this OS thread:
         * it takes no threads. */
        diag_log(LOG_WARN, "a worker cannot catch system calls outside the hooks (%s): it "
                 "stays idle", strerror(err));
    } else {
        preempt_arm(s);
        s->load_at = clock_coarse_ns();
        handoff_start();              /* the monitor, by the first worker (not main: its name) */
        handoff_member_ready(s, false);
        member_add(s);
    }
    __atomic_add_fetch(&workers_ready, 1, __ATOMIC_RELEASE);
    /* Its own context has nothing to do: the loop runs what is handed over. */
    sched_worker_idle(s);
}

void mn_start(struct sched *s)
{
    static bool warned;
    const char *why = !tls_own     ? "each green thread needs TLS of its own (CORUN_TLS=own)"
                      : !s->catch_armed ? "the system-call catch is not in force (CORUN_CATCH)"
                                        : NULL;
    if (why) {
        if (!warned && cr_config.procs_set)   /* the default quietly stays on one */
            diag_log(LOG_WARN, "CORUN_PROCS=%u: %s; green threads stay on the OS thread "
                     "that made them", cr_config.procs, why);
        warned = true;
        return;
    }
    mn_alive = mn_peak = s->alive;
    s->load_at = clock_coarse_ns();
    handoff_member_ready(s, true);
    member_add(s);
    __atomic_store_n(&mn_active, true, __ATOMIC_RELEASE);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 256 << 10);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    unsigned started = 1;
    for (; started < cr_config.procs; started++) {
        pthread_t t;
        int r = libc_pthread_create(&t, &a, worker_main, NULL);
        if (r) {
            diag_log(LOG_WARN, "CORUN_PROCS=%u: cannot start worker %u (%s)", cr_config.procs,
                     started, strerror(r));
            break;
        }
    }
    pthread_attr_destroy(&a);
    /* Ready before this first thread is queued, so that it and the next
     * ones can go where the CPUs are (a worker starts in well under 1 ms). */
    uint64_t give_up = clock_now_ns() + 1000000000ull;
    while (__atomic_load_n(&workers_ready, __ATOMIC_ACQUIRE) < started - 1 &&
           clock_now_ns() < give_up)
        syscall(SYS_sched_yield);
}

/* ---- moving threads ------------------------------------------------------------*/

#define CO_HOG 0x40u   /* moving: it came off the preempted threads' queue */

static bool movable(const struct corun *co)
{
    return (co->flags & (CO_MOVABLE | CO_OWN_TLS | CO_PREEMPTIBLE | CO_MAIN)) ==
               (CO_MOVABLE | CO_OWN_TLS | CO_PREEMPTIBLE) &&
           co->pinned == 0 && co->state == CO_RUNNABLE;
}

static void adopt(struct sched *s, struct corun *co)
{
    co->sched = s;
    s->alive++;
    dlist_push(&s->all, &co->all_link);
    /* What in its TCB names the OS thread: the tid, malloc's cache and arena,
     * and corun's own copy of the scheduler. */
    tls_moved(co->fsbase, s->fsbase);
    *(struct sched **)(co->fsbase - tls_offset_of(&sched_tls)) = s;
    OBSERVERS_CALL(thread_arriving, s, co);
    if (co->flags & CO_HOG) {
        __atomic_and_fetch(&co->flags, ~CO_HOG, __ATOMIC_RELAXED);
        if (coq_empty(&s->hogs))
            s->hogs_served = clock_coarse_ns();
        coq_push(&s->hogs, co);
    } else {
        coq_push(&s->runq, co);
    }
    s->stats.moved_in++;
}

static void adopt_inbox(struct sched *s)
{
    if (!__atomic_load_n(&s->inbox, __ATOMIC_RELAXED))
        return;
    struct corun *co = __atomic_exchange_n(&s->inbox, NULL, __ATOMIC_ACQUIRE), *fifo = NULL;
    while (co) {
        struct corun *next = co->next;
        co->next = fifo;
        fifo = co;
        co = next;
    }
    while (fifo) {
        struct corun *next = fifo->next;
        fifo->next = NULL;
        adopt(s, fifo);
        fifo = next;
    }
}

static unsigned queued(const struct coq *q, unsigned cap)
{
    unsigned n = 0;
    for (const struct corun *co = q->head; co && n < cap; co = co->next)
        n++;
    return n;
}

/* Take co off s (on s's OS thread) and chain it on *list. */
static void leave(struct sched *s, struct corun *co, struct corun **list)
{
    if (co->queue == &s->hogs)
        __atomic_or_fetch(&co->flags, CO_HOG, __ATOMIC_RELAXED);
    coq_remove(co->queue, co);
    s->alive--;
    OBSERVERS_CALL(thread_leaving, s, co);
    all_unlink(s, co);
    s->stats.moved_out++;
    co->next = *list;
    *list = co;
}

static unsigned take_from(struct sched *s, struct coq *q, unsigned want, struct corun **list)
{
    unsigned n = 0, looked = 0;
    struct corun *co = q->tail;
    while (co && n < want && looked++ < MOVE_SCAN) {
        struct corun *prev = co->prev;
        if (movable(co)) {
            leave(s, co, list);
            n++;
        }
        co = prev;
    }
    return n;
}

static void hand_over(struct sched *to, struct corun *list, struct corun *last)
{
    struct corun *head = __atomic_load_n(&to->inbox, __ATOMIC_RELAXED);
    do
        last->next = head;
    while (!__atomic_compare_exchange_n(&to->inbox, &head, list, true, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
    uint64_t one = 1;
    syscall(SYS_write, to->wake_fd, &one, sizeof one);
}

/* The member other than s with the fewest runnable threads (NULL: none
 * that would run them soon). */
static struct sched *least_loaded(struct sched *s, uint64_t now, unsigned *load)
{
    struct sched *to = NULL;
    unsigned to_load = 0, n = __atomic_load_n(&nmembers, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n; i++) {
        struct sched *m = members[i];
        if (m == s)
            continue;
        unsigned l = __atomic_load_n(&m->load, __ATOMIC_RELAXED);
        /* One stuck in a real blocking call would not run what it is given. */
        if (!__atomic_load_n(&m->polling, __ATOMIC_RELAXED) &&
            now - __atomic_load_n(&m->load_at, __ATOMIC_RELAXED) > STALE_NS)
            continue;
        if (!to || l < to_load) {
            to = m;
            to_load = l;
        }
    }
    *load = to_load;
    return to;
}

static void balance(struct sched *s)
{
    unsigned mine = queued(&s->runq, MOVE_SCAN) + queued(&s->hogs, MOVE_SCAN);
    uint64_t now = clock_coarse_ns();
    __atomic_store_n(&s->load, mine, __ATOMIC_RELAXED);
    __atomic_store_n(&s->load_at, now, __ATOMIC_RELAXED);
    if (mine < 2)
        return;
    unsigned to_load;
    struct sched *to = least_loaded(s, now, &to_load);
    if (!to || mine < to_load + 2)
        return;
    unsigned want = (mine - to_load) / 2;
    struct corun *list = NULL;
    unsigned got = take_from(s, &s->hogs, want, &list);
    if (got < want)
        got += take_from(s, &s->runq, want - got, &list);
    if (!got)
        return;
    struct corun *last = list;
    while (last->next)
        last = last->next;
    __atomic_add_fetch(&to->load, got, __ATOMIC_RELAXED);
    __atomic_store_n(&s->load, mine - got, __ATOMIC_RELAXED);
    hand_over(to, list, last);
}

/* ---- the global queue --------------------------------------------------------*/

/* Threads any member may run (new ones), FIFO on `next`. */
static cr_lock_t global_lock = CR_LOCK_INIT;
static struct corun *global_head, *global_tail;
static unsigned global_n;                          /* atomic: how many */

/* At most this many taken at once by a member out of work. */
#define GLOBAL_BATCH 32

/* Put co (off its scheduler: leave()) on the global queue, and poke the
 * members out of work, which take it at their next turn. One that is just
 * going to sleep saw global_n or gets the poke (both sides' accesses are
 * sequentially consistent: its load of 0, then global_n; here global_n,
 * then the loads). Every such member: one whose load reads 0 may have
 * just taken threads and not yet published them. */
static void global_put(struct sched *s, struct corun *co)
{
    co->next = NULL;
    cr_lock(&global_lock);
    if (global_tail)
        global_tail->next = co;
    else
        global_head = co;
    global_tail = co;
    __atomic_add_fetch(&global_n, 1, __ATOMIC_SEQ_CST);
    cr_unlock(&global_lock);
    unsigned n = __atomic_load_n(&nmembers, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n; i++) {
        struct sched *m = members[i];
        if (m != s && __atomic_load_n(&m->load, __ATOMIC_SEQ_CST) == 0) {
            uint64_t one = 1;
            syscall(SYS_write, m->wake_fd, &one, sizeof one);
        }
    }
}

/* Adopt up to max threads of the global queue: how many. */
static unsigned global_take(struct sched *s, unsigned max)
{
    if (!__atomic_load_n(&global_n, __ATOMIC_SEQ_CST))
        return 0;
    cr_lock(&global_lock);
    struct corun *list = global_head, *last = NULL;
    unsigned got = 0;
    for (struct corun *co = list; co && got < max; co = co->next) {
        last = co;
        got++;
    }
    if (got) {
        global_head = last->next;
        if (!global_head)
            global_tail = NULL;
        last->next = NULL;
        __atomic_sub_fetch(&global_n, got, __ATOMIC_SEQ_CST);
    }
    cr_unlock(&global_lock);
    while (list) {
        struct corun *next = list->next;
        bool own = list->sched == s;
        list->next = NULL;
        adopt(s, list);
        s->stats.from_global++;
        if (own) {                     /* back where it was made: no move */
            s->stats.moved_in--;
            s->stats.moved_out--;
        }
        list = next;
    }
    return got;
}

bool mn_take_global_idle(struct sched *s)
{
    unsigned n = __atomic_load_n(&global_n, __ATOMIC_SEQ_CST);
    if (!n)
        return false;
    /* A share, as Go's findrunnable takes: the queue over the members. */
    unsigned share = n / (__atomic_load_n(&nmembers, __ATOMIC_ACQUIRE) ?: 1) + 1;
    return global_take(s, share < GLOBAL_BATCH ? share : GLOBAL_BATCH) != 0;
}

void mn_spawned(struct sched *s, struct corun *co)
{
    unsigned to_load;
    struct sched *to = least_loaded(s, clock_coarse_ns(), &to_load);
    if (!to || !movable(co))
        return;
    /* To a worker asleep for want of work when its creator has another
     * thread besides (a ticker beside a new CPU-bound thread; a pair made
     * by a thread that then waits for it stays together), else, when the
     * creator has enough queued (counted only as far as that decides), to
     * the global queue: the member that runs out first takes it (the loads
     * published at turns lag behind the threads handed over since). */
    bool idle = to_load == 0 && __atomic_load_n(&to->polling, __ATOMIC_RELAXED) && s->alive >= 3;
    if (!idle && queued(&s->runq, to_load + 2) < to_load + 2)
        return;
    struct corun *list = NULL;
    leave(s, co, &list);
    if (!idle) {
        global_put(s, co);
        return;
    }
    __atomic_add_fetch(&to->load, 1, __ATOMIC_RELAXED);
    hand_over(to, list, list);
}

void mn_turn(struct sched *s)
{
    if (__atomic_load_n(&s->returning, __ATOMIC_RELAXED))
        handoff_take_returning(s);
    adopt_inbox(s);
    /* New threads run ahead of preempted hogs, as they would have in
     * their creator's run queue (taken only when both queues were empty,
     * or once in 61 turns, they waited seconds behind CPU-bound threads). */
    if (coq_empty(&s->runq))
        mn_take_global_idle(s);
    else
        global_take(s, 1);
    balance(s);
}

/* Threads woken from a park cannot be moved by balance (corun's frames on
 * their stacks hold s). An idle member pulls instead: it asks the member
 * with the most threads queued, whose next thread to leave a hook for the
 * program while others wait there yields and is handed over. One thread
 * per request, and only to a member still idle then: pushing woken threads
 * by the loads published at turns overshot (six of eight threads swung
 * from one worker to the other every round). */
void mn_ask_for_work(struct sched *s)
{
    struct sched *from = NULL;
    unsigned most = 0, n = __atomic_load_n(&nmembers, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n; i++) {
        struct sched *m = members[i];
        unsigned l = __atomic_load_n(&m->load, __ATOMIC_RELAXED);
        if (m != s && l > most) {
            from = m;
            most = l;
        }
    }
    if (!from)
        return;
    struct sched *none = NULL;
    if (__atomic_compare_exchange_n(&from->shed_to, &none, s, false, __ATOMIC_RELEASE,
                                    __ATOMIC_RELAXED))
        __atomic_store_n(&from->release_shed, true, __ATOMIC_RELEASE);
}

void mn_shed(struct sched *s, struct corun *co, struct sched *to)
{
    coq_push(&s->runq, co);
    /* Not `polling`: the asker may not have reached its wait yet (the
     * hand-over's poke wakes it either way). */
    if (!movable(co) || __atomic_load_n(&to->load, __ATOMIC_RELAXED) != 0)
        return;                   /* it found work meanwhile: co runs on here */
    struct corun *list = NULL;
    leave(s, co, &list);
    __atomic_add_fetch(&to->load, 1, __ATOMIC_RELAXED);
    hand_over(to, list, list);
}

/* ---- the end of a thread ----------------------------------------------------*/

void mn_finished(struct sched *s, struct corun *co)
{
    cr_lock(&mn_lock);
    co->state = CO_DONE;
    struct corun *j = co->joiner;
    struct sched_xwake *jx = co->joiner_xw;
    bool detached = co->flags & CO_DETACHED;
    cr_unlock(&mn_lock);
    if (j) {
        if (j->sched == s) {
            if (jx)
                __atomic_store_n(&jx->delivered, 1, __ATOMIC_RELEASE);
            sched_wake(j, WAKE_SIGNALED);
        } else if (jx) {
            sched_xwake_post(jx);
        } else {
            /* A join that began before M:N did (sched_join's N:1 path
             * keeps no record): a record of the loop's own. */
            struct sched_xwake *x = calloc(1, sizeof *x);
            if (!x)
                diag_fatal("out of memory waking a joiner");
            x->co = j;
            x->heap = true;
            sched_xwake_post(x);
        }
    } else if (detached) {
        coroutine_release(co);
    }
}

int mn_join(struct sched *s, struct corun *co, void **retval, uint64_t deadline, bool try,
            bool cancellable)
{
    struct corun *cur = s->current;
    cr_lock(&mn_lock);
    if (co->state == CO_RELEASED) {
        cr_unlock(&mn_lock);
        return ESRCH;
    }
    if ((co->flags & CO_DETACHED) || co->joiner) {
        cr_unlock(&mn_lock);
        return EINVAL;
    }
    if (co->state != CO_DONE) {
        if (try) {
            cr_unlock(&mn_lock);
            return EBUSY;
        }
        struct sched_xwake xw = { .co = cur };
        co->joiner = cur;
        co->joiner_xw = &xw;
        cr_unlock(&mn_lock);
        sched_wait_on(s, WAIT_JOIN, co, -1);
        int why = sched_park(s, deadline, cancellable ? PARK_CANCEL : PARK_PLAIN);
        s = cur->sched;
        if (why != WAKE_SIGNALED) {
            cr_lock(&mn_lock);
            if (co->state != CO_DONE) {
                co->joiner = NULL;
                co->joiner_xw = NULL;
                cr_unlock(&mn_lock);
                return why == WAKE_CANCELED ? ECANCELED : ETIMEDOUT;
            }
            cr_unlock(&mn_lock);
            /* It finished meanwhile and its wake is on the way to this
             * record: wait for it, and the join is done. */
            while (!__atomic_load_n(&xw.delivered, __ATOMIC_ACQUIRE))
                sched_park(s, DEADLINE_NONE, PARK_PLAIN);
        }
    } else {
        cr_unlock(&mn_lock);
    }
    if (retval)
        *retval = co->retval;
    coroutine_release(co);
    return 0;
}

int mn_detach(struct corun *co)
{
    cr_lock(&mn_lock);
    if ((co->flags & CO_DETACHED) || co->joiner) {
        cr_unlock(&mn_lock);
        return EINVAL;
    }
    if (co->state == CO_DONE) {
        cr_unlock(&mn_lock);
        coroutine_release(co);
        return 0;
    }
    __atomic_or_fetch(&co->flags, CO_DETACHED, __ATOMIC_RELAXED);
    cr_unlock(&mn_lock);
    return 0;
}

/* ---- fork -------------------------------------------------------------------*/

/* The child has the forking OS thread only: N:1 again until its next
 * pthread_create starts workers of its own. */
void mn_fork_child(struct sched *s)
{
    mn_lock = (cr_lock_t)CR_LOCK_INIT;
    add_lock = (cr_lock_t)CR_LOCK_INIT;
    global_lock = (cr_lock_t)CR_LOCK_INIT;    /* its threads were the parent's others */
    global_head = global_tail = NULL;
    global_n = 0;
    workers_ready = 0;
    mn_active = false;
    nmembers = 0;
    handoff_fork_child();
    if (s) {
        s->mn_member = false;
        s->inbox = NULL;
        s->exited = NULL;
        s->load = 0;
        s->handoff_ok = false;
        s->block_word = 0;
        s->returning = NULL;
    }
}
