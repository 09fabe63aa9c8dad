#include "gthread.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "catch.h"
#include "config.h"
#include "lock.h"
#include "real.h"
#include "stack.h"
#include "sched.h"

/* ---- keys -----------------------------------------------------------------*/

struct gthread_tsd {
    size_t n;
    struct {
        void *value;
        uint64_t seq;       /* the key's sequence when set: a deleted key's value is stale */
    } v[];
};

static struct {
    uint64_t seq;           /* odd: in use */
    void (*destructor)(void *);
} keys[GTHREAD_KEYS_MAX];
static cr_lock_t keys_lock = CR_LOCK_INIT;

static __thread struct gthread_tsd *tls_tsd __attribute__((tls_model("initial-exec")));
/* The first values of such a thread go in a block of glibc's own malloc,
 * not the program's (as glibc keeps its first 32 in place): jemalloc sets
 * a key in the middle of its own initialisation, where its malloc would
 * re-enter it. One per OS thread, until it has a scheduler; not in static
 * TLS, which every green thread has a copy of (tls.h). */
#define TSD_INLINE 32
#define TSD_BOOT_SIZE (sizeof(struct gthread_tsd) + TSD_INLINE * 2 * sizeof(uint64_t))
static __thread struct gthread_tsd *tls_boot __attribute__((tls_model("initial-exec")));
extern void *__libc_malloc(size_t size);
extern void __libc_free(void *p);

/* The pthread-level state of a green thread. */
struct gthread_part {
    struct gthread_tsd *tsd;      /* pthread key values */
    void *cleanup;                /* innermost pthread_cleanup_push buffer */
};

static struct sched_part part = { .thread_size = sizeof(struct gthread_part) };
SCHED_PART(part);

static inline struct gthread_part *gt(const struct corun *co)
{
    return thread_part(co, &part);
}

/* Where the calling thread's values live. */
static struct gthread_tsd **tsd_slot(void)
{
    struct sched *s = sched_tls;
    if (s && s->current != s->loop_co)
        return &gt(s->current)->tsd;
    return &tls_tsd;
}

/* A new scheduler's main green thread keeps the values its OS thread had. */
static void on_sched_created(struct sched *s)
{
    struct gthread_tsd *t = tls_tsd;
    tls_tsd = NULL;
    if (t && t == tls_boot) {            /* the coroutine's must be freeable */
        size_t size = sizeof *t + t->n * sizeof t->v[0];
        struct gthread_tsd *g = malloc(size);
        if (g)
            memcpy(g, t, size);
        t = g;
    }
    __libc_free(tls_boot);               /* a thread that ends would leave it behind */
    tls_boot = NULL;
    gt(s->main_co)->tsd = t;
}

static void on_thread_released(struct sched *s, struct corun *co)
{
    (void)s;
    free(gt(co)->tsd);
    gt(co)->tsd = NULL;
}

static void run_destructors(void);

/* Key destructors run on the exiting thread's own stack, whichever way it
 * ends (return, pthread_exit, cancellation, the explicit API). */
static void on_thread_exiting(struct sched *s, struct corun *co)
{
    (void)s;
    (void)co;
    run_destructors();
}

/* A thread of another OS thread (M:N) may have held it at the fork. */
static void on_fork_child(struct sched *s)
{
    (void)s;
    keys_lock = (cr_lock_t)CR_LOCK_INIT;
}

static const struct sched_observer observer = {
    .sched_created = on_sched_created,
    .fork_child = on_fork_child,
    .thread_released = on_thread_released,
    .thread_exiting = on_thread_exiting,
};
SCHED_OBSERVER(observer);

int gthread_key_create(unsigned *key, void (*destructor)(void *))
{
    cr_lock(&keys_lock);
    for (unsigned k = 0; k < GTHREAD_KEYS_MAX; k++) {
        if (!(keys[k].seq & 1)) {
            keys[k].seq++;
            keys[k].destructor = destructor;
            cr_unlock(&keys_lock);
            *key = k;
            return 0;
        }
    }
    cr_unlock(&keys_lock);
    return EAGAIN;
}

int gthread_key_delete(unsigned key)
{
    int r = EINVAL;
    cr_lock(&keys_lock);
    if (key < GTHREAD_KEYS_MAX && (keys[key].seq & 1)) {
        keys[key].seq++;
        keys[key].destructor = NULL;
        r = 0;
    }
    cr_unlock(&keys_lock);
    return r;
}

void *gthread_getspecific(unsigned key)
{
    struct gthread_tsd *t = *tsd_slot();
    if (!t || key >= t->n || t->v[key].seq != keys[key].seq)
        return NULL;
    return t->v[key].value;
}

int gthread_setspecific(unsigned key, const void *value)
{
    if (key >= GTHREAD_KEYS_MAX || !(keys[key].seq & 1))
        return EINVAL;
    struct gthread_tsd **slot = tsd_slot(), *t = *slot;
    if (!t && slot == &tls_tsd && key < TSD_INLINE) {
        if (!tls_boot)
            tls_boot = __libc_malloc(TSD_BOOT_SIZE);
        if ((t = tls_boot)) {
            memset(t, 0, TSD_BOOT_SIZE);
            t->n = TSD_INLINE;
            *slot = t;
        }
    }
    if (!t || key >= t->n) {
        size_t n = t ? t->n : 0, want = key + 1 > 8 ? (size_t)key + 1 : 8;
        if (want < 2 * n)
            want = 2 * n;
        if (want > GTHREAD_KEYS_MAX)
            want = GTHREAD_KEYS_MAX;
        bool inline_block = t && t == tls_boot;
        /* The boot block's values, copied first: the malloc may come back
         * through a hook that gives this thread a scheduler, which frees
         * the block (on_sched_created). */
        char boot[TSD_BOOT_SIZE];
        if (inline_block)
            memcpy(boot, t, sizeof *t + n * sizeof t->v[0]);
        struct gthread_tsd *g = realloc(inline_block ? NULL : t, sizeof *g + want * sizeof g->v[0]);
        if (!g)
            return ENOMEM;
        if (inline_block)
            memcpy(g, boot, sizeof *g + n * sizeof g->v[0]);
        memset(&g->v[n], 0, (want - n) * sizeof g->v[0]);
        g->n = want;
        *slot = t = g;
    }
    t->v[key].value = (void *)value;
    t->v[key].seq = keys[key].seq;
    return 0;
}

/* POSIX: destructors of keys with non-NULL values, repeated while values
 * keep appearing, at most PTHREAD_DESTRUCTOR_ITERATIONS (4) rounds. */
static void run_destructors(void)
{
    for (int round = 0; round < 4; round++) {
        struct gthread_tsd *t = *tsd_slot();
        bool ran = false;
        for (size_t k = 0; t && k < t->n; k++) {
            void *v = t->v[k].value;
            void (*d)(void *) = keys[k].destructor;
            if (!v || !d || t->v[k].seq != keys[k].seq)
                continue;
            t->v[k].value = NULL;
            uint8_t held = catch_program_begin();
            d(v);
            catch_program_end(held);
            ran = true;
            t = *tsd_slot();        /* a destructor may have grown it */
        }
        if (!ran)
            break;
    }
}

/* ---- exit and cleanup handlers ---------------------------------------------*/

/* glibc's pthread_cleanup_push (C) keeps a __pthread_unwind_buf_t on the
 * stack with a jmp_buf to its handler; we chain them per green thread
 * through its first spare pointer. */
struct unwind_buf {
    struct {
        __jmp_buf jmp;
        int mask_was_saved;
    } cancel_jmp_buf[1];
    void *pad[4];
};

/* glibc's pthread_cleanup_push saves into a jmp_buf without room for a
 * signal mask (it never saves one); longjmp only reads what is there, but
 * gcc cannot tell and warns about the smaller object. */
static __attribute__((noreturn)) void jump_to_handler(struct unwind_buf *b)
{
    catch_program_begin();             /* into the program's handler, for good */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
    longjmp((struct __jmp_buf_tag *)(void *)b->cancel_jmp_buf, 1);
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
}

void gthread_cleanup_push(void *buf)
{
    struct corun *co = sched_self()->current;
    ((struct unwind_buf *)buf)->pad[0] = gt(co)->cleanup;
    gt(co)->cleanup = buf;
}

void gthread_cleanup_pop(void *buf)
{
    gt(sched_self()->current)->cleanup = ((struct unwind_buf *)buf)->pad[0];
}

__attribute__((noreturn)) static void finish(void)
{
    sched_exit_current(sched_self()->current->retval);
}

void gthread_cleanup_next(void *buf)
{
    struct corun *co = sched_self()->current;
    struct unwind_buf *next = ((struct unwind_buf *)buf)->pad[0];
    gt(co)->cleanup = next;
    if (next)   /* into the next handler's frame: it runs, then comes back here */
        jump_to_handler(next);
    finish();
}

void gthread_exit(void *retval)
{
    struct corun *co = sched_self()->current;
    co->retval = retval;
    co->cancel_disabled = true;       /* handlers may block; no second cancellation */
    struct unwind_buf *top = gt(co)->cleanup;
    if (top)
        jump_to_handler(top);
    finish();
}


/* ---- cancellation ----------------------------------------------------------*/

struct cancel_req {
    struct corun *t;
    bool moved;                    /* it was no longer this scheduler's: ask its new one */
};

static void cancel_here(struct sched *s, void *arg)
{
    struct cancel_req *c = arg;
    struct corun *t = c->t;
    t->cancel_pending = true;      /* a thread on its way elsewhere sees it at its next park */
    c->moved = t->sched != s;
    if (!c->moved && t->state == CO_PARKED && t->in_cancel_point && !t->cancel_disabled)
        sched_wake(t, WAKE_CANCELED);
}

int gthread_cancel(struct corun *t)
{
    struct cancel_req c = { t, false };
    struct sched *ts;
    do {
        ts = __atomic_load_n(&t->sched, __ATOMIC_ACQUIRE);
        if (mn_active && ts != sched_tls)
            sched_run_on(ts, cancel_here, &c);   /* M:N: its wake is its scheduler's */
        else
            cancel_here(ts, &c);
    } while (c.moved && mn_active);
    return 0;
}

void gthread_testcancel(void)
{
    struct corun *co = sched_self()->current;
    if (co->cancel_pending && !co->cancel_disabled)
        gthread_exit(GTHREAD_CANCELED);
}

int gthread_setcancelstate(bool disabled, bool *was_disabled)
{
    struct corun *co = sched_self()->current;
    if (was_disabled)
        *was_disabled = co->cancel_disabled;
    co->cancel_disabled = disabled;
    return 0;
}

void gthread_act_on_cancel(int wake_reason)
{
    if (wake_reason == WAKE_CANCELED)
        gthread_exit(GTHREAD_CANCELED);
}

/* ---- sleeping -------------------------------------------------------------------*/

uint64_t gthread_sleep_until(struct sched *s, uint64_t deadline)
{
    int why;
    do {
        sched_wait_on(s, WAIT_SLEEP, NULL, -1);
        why = sched_park(s, deadline, PARK_INTR_ALWAYS);
    } while (why == WAKE_SIGNALED);        /* nothing else wakes a sleeper: be safe */
    gthread_act_on_cancel(why);
    if (why != WAKE_INTERRUPTED)
        return 0;
    uint64_t now = clock_now_ns();
    return deadline > now ? deadline - now : 1;   /* interrupted: some time was left */
}

int gthread_clock_sleep(struct sched *s, clockid_t clock, int flags, const struct timespec *req,
                        struct timespec *rem)
{
    if (!ts_valid(req))                    /* absolute times too */
        return EINVAL;
    uint64_t deadline;
    if (flags & TIMER_ABSTIME) {
        struct timespec now;
        clock_gettime(clock, &now);
        int64_t left = (int64_t)(req->tv_sec - now.tv_sec) * NS_PER_SEC + (req->tv_nsec - now.tv_nsec);
        if (left <= 0)
            return 0;
        deadline = deadline_after(left);
    } else {
        deadline = deadline_after((int64_t)ts_to_ns(req));
    }
    uint64_t left = gthread_sleep_until(s, deadline);
    if (!left)
        return 0;
    if (rem && !(flags & TIMER_ABSTIME))
        *rem = ns_to_ts((int64_t)left);
    return EINTR;
}

/* ---- creation -------------------------------------------------------------------*/

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

int gthread_create(struct sched *s, const pthread_attr_t *attr, void *(*fn)(void *), void *arg,
                   struct corun **out)
{
    size_t stack = cr_config.stack_size, guard = stack_page_size();
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
    bool detached = detach == PTHREAD_CREATE_DETACHED;
    libc_became_multithreaded();
    s->spawn_pthread = true;           /* a thread, not an explicit coroutine (catch.h) */
    int r = user_stack ? sched_spawn_on_stack(s, user_stack, user_size, detached, fn, arg, out)
                       : sched_spawn(s, stack, guard, NULL, detached, fn, arg, out);
    s->spawn_pthread = false;          /* (not consumed if it failed) */
    return r == ENOMEM ? EAGAIN : r;
}

/* ---- thread ids -------------------------------------------------------------*/

#define TID_SPAN (0x7fffffff - GTHREAD_TID_BASE)

pid_t gthread_tid(const struct corun *co)
{
    if (co->flags & CO_KERNEL_TID)
        return co->sched->home_tid;    /* main's is getpid() wherever it runs */
    return GTHREAD_TID_BASE + (pid_t)(co->id % TID_SPAN);
}

static struct corun *by_tid_in(struct sched *s, pid_t tid)
{
    if (tid != s->home_tid && tid < GTHREAD_TID_BASE)
        return NULL;
    dlist_foreach(&s->all, it) {
        struct corun *co = container_of(it, struct corun, all_link);
        if (gthread_tid(co) == tid)
            return co;
    }
    return NULL;
}

struct tid_req {
    pid_t tid;
    struct corun *found;
};

static void by_tid_there(struct sched *s, void *arg)
{
    struct tid_req *r = arg;
    r->found = by_tid_in(s, r->tid);
}

struct corun *gthread_by_tid(struct sched *s, pid_t tid)
{
    struct corun *co = by_tid_in(s, tid);
    if (co || !mn_active || !s->mn_member || tid < GTHREAD_TID_BASE)
        return co;
    /* M:N: a thread of another worker's, in that worker's own list. */
    struct sched *m[64];
    unsigned n = sched_members(m, 64);
    for (unsigned i = 0; i < n; i++) {
        if (m[i] == s)
            continue;
        struct tid_req r = { tid, NULL };
        sched_run_on(m[i], by_tid_there, &r);
        if (r.found)
            return r.found;
    }
    return NULL;
}

pid_t gthread_kernel_tid(struct sched *s, pid_t id)
{
    struct corun *co = id >= GTHREAD_TID_BASE ? gthread_by_tid(s, id) : NULL;
    return co ? __atomic_load_n(&co->sched, __ATOMIC_RELAXED)->tid : id;
}
