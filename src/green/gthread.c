#include "gthread.h"

#include <errno.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lock.h"
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
static corun_lock_t keys_lock = CORUN_LOCK_INIT;

static __thread struct gthread_tsd *tls_tsd __attribute__((tls_model("initial-exec")));
/* The first values of such a thread live in place, not on the heap (as
 * glibc keeps its first 32): jemalloc sets a key in the middle of its own
 * initialisation, where a malloc would re-enter it. */
#define TSD_INLINE 32
static __thread union {
    struct gthread_tsd t;
    char room[sizeof(struct gthread_tsd) + TSD_INLINE * 2 * sizeof(uint64_t)];
} tls_inline __attribute__((tls_model("initial-exec")));
_Static_assert(sizeof tls_inline.t.v[0] == 2 * sizeof(uint64_t), "room for TSD_INLINE values");

/* Where the calling thread's values live. */
static struct gthread_tsd **tsd_slot(void)
{
    struct sched *s = corun_tls_sched;
    if (s && s->current != s->loop_co)
        return &s->current->tsd;
    return &tls_tsd;
}

struct gthread_tsd *gthread_take_thread_tsd(void)
{
    struct gthread_tsd *t = tls_tsd;
    tls_tsd = NULL;
    if (t == &tls_inline.t) {            /* the coroutine's must be freeable */
        size_t size = sizeof *t + t->n * sizeof t->v[0];
        struct gthread_tsd *g = malloc(size);
        if (g)
            memcpy(g, t, size);
        t = g;
    }
    return t;
}

int gthread_key_create(unsigned *key, void (*destructor)(void *))
{
    corun_lock(&keys_lock);
    for (unsigned k = 0; k < GTHREAD_KEYS_MAX; k++) {
        if (!(keys[k].seq & 1)) {
            keys[k].seq++;
            keys[k].destructor = destructor;
            corun_unlock(&keys_lock);
            *key = k;
            return 0;
        }
    }
    corun_unlock(&keys_lock);
    return EAGAIN;
}

int gthread_key_delete(unsigned key)
{
    int r = EINVAL;
    corun_lock(&keys_lock);
    if (key < GTHREAD_KEYS_MAX && (keys[key].seq & 1)) {
        keys[key].seq++;
        keys[key].destructor = NULL;
        r = 0;
    }
    corun_unlock(&keys_lock);
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
        t = &tls_inline.t;
        memset(t, 0, sizeof tls_inline);
        t->n = TSD_INLINE;
        *slot = t;
    }
    if (!t || key >= t->n) {
        size_t n = t ? t->n : 0, want = key + 1 > 8 ? (size_t)key + 1 : 8;
        if (want < 2 * n)
            want = 2 * n;
        if (want > GTHREAD_KEYS_MAX)
            want = GTHREAD_KEYS_MAX;
        bool inline_block = t == &tls_inline.t;
        struct gthread_tsd *g = realloc(inline_block ? NULL : t, sizeof *g + want * sizeof g->v[0]);
        if (!g)
            return ENOMEM;
        if (inline_block)
            memcpy(g, t, sizeof *g + n * sizeof g->v[0]);
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
            d(v);
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
    ((struct unwind_buf *)buf)->pad[0] = co->cleanup;
    co->cleanup = buf;
}

void gthread_cleanup_pop(void *buf)
{
    sched_self()->current->cleanup = ((struct unwind_buf *)buf)->pad[0];
}

__attribute__((noreturn)) static void finish(void)
{
    run_destructors();
    sched_exit_current(sched_self()->current->retval);
}

void gthread_cleanup_next(void *buf)
{
    struct corun *co = sched_self()->current;
    struct unwind_buf *next = ((struct unwind_buf *)buf)->pad[0];
    co->cleanup = next;
    if (next)   /* into the next handler's frame: it runs, then comes back here */
        jump_to_handler(next);
    finish();
}

void gthread_exit(void *retval)
{
    struct corun *co = sched_self()->current;
    co->retval = retval;
    co->cancel_disabled = true;       /* handlers may block; no second cancellation */
    struct unwind_buf *top = co->cleanup;
    if (top)
        jump_to_handler(top);
    finish();
}

void gthread_return(void *retval)
{
    sched_self()->current->retval = retval;
    finish();
}

/* ---- cancellation ----------------------------------------------------------*/

int gthread_cancel(struct corun *t)
{
    t->cancel_pending = true;
    if (t->state == CO_PARKED && t->in_cancel_point && !t->cancel_disabled)
        sched_wake(t, WAKE_CANCELED);
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
