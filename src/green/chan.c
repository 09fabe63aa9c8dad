/*
 * Channels. Invariant: receivers wait only while the buffer is empty, senders
 * only while it is full (always, for an unbuffered channel), so a message
 * either goes straight to a waiting receiver or through the ring buffer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "catch.h"
#include "corun.h"
#include "sched.h"

struct corun_chan {
    struct sched *sched;
    size_t cap;                 /* 0, N, or CORUN_CHAN_UNBOUNDED */
    void **ring;
    size_t ring_cap, head, len; /* ring grows on demand up to cap */
    struct coq senders, receivers;
    int closed;
};

#define API __attribute__((visibility("default")))

static int ring_push(struct corun_chan *ch, void *msg)
{
    if (ch->len == ch->ring_cap) {
        size_t n = ch->ring_cap ? ch->ring_cap * 2 : 16;
        if (n > ch->cap)
            n = ch->cap;
        void **r = malloc(n * sizeof *r);
        if (!r)
            return ENOMEM;
        for (size_t i = 0; i < ch->len; i++)
            r[i] = ch->ring[(ch->head + i) % ch->ring_cap];
        free(ch->ring);
        ch->ring = r;
        ch->ring_cap = n;
        ch->head = 0;
    }
    ch->ring[(ch->head + ch->len) % ch->ring_cap] = msg;
    ch->len++;
    return 0;
}

static void *ring_pop(struct corun_chan *ch)
{
    void *m = ch->ring[ch->head];
    ch->head = (ch->head + 1) % ch->ring_cap;
    ch->len--;
    return m;
}

static int wait_result(int why)
{
    switch (why) {
    case WAKE_SIGNALED: return 0;
    case WAKE_TIMEOUT: return ETIMEDOUT;
    default: return EPIPE;
    }
}

API int corun_chan_new(corun_chan_t **out, size_t capacity)
{
    CATCH_HOLD();
    struct corun_chan *ch = calloc(1, sizeof *ch);
    if (!ch)
        return ENOMEM;
    ch->sched = sched_self();
    ch->cap = capacity;
    *out = ch;
    return 0;
}

API int corun_chan_send(corun_chan_t *ch, void *msg, int64_t timeout_ns)
{
    CATCH_HOLD();
    struct sched *s = sched_self();
    if (ch->sched != s)
        return EXDEV;
    if (ch->closed)
        return EPIPE;
    struct corun *r = ch->receivers.head;
    if (r) {
        r->xfer = msg;
        sched_wake(r, WAKE_SIGNALED);
        return 0;
    }
    if (ch->len < ch->cap)
        return ring_push(ch, msg);
    if (timeout_ns == 0)
        return EAGAIN;
    struct corun *cur = s->current;
    cur->xfer = msg;
    coq_push(&ch->senders, cur);
    sched_wait_on(s, WAIT_CHAN, ch, -1);
    return wait_result(sched_park(s, deadline_after(timeout_ns), PARK_PLAIN));
}

API int corun_chan_recv(corun_chan_t *ch, void **msg, int64_t timeout_ns)
{
    CATCH_HOLD();
    struct sched *s = sched_self();
    if (ch->sched != s)
        return EXDEV;
    struct corun *w = ch->senders.head;
    if (ch->len) {
        *msg = ring_pop(ch);
        if (w && ring_push(ch, w->xfer) == 0)   /* room again: take the next sender's message */
            sched_wake(w, WAKE_SIGNALED);
        return 0;
    }
    if (w) {                                    /* unbuffered: straight from the sender */
        *msg = w->xfer;
        sched_wake(w, WAKE_SIGNALED);
        return 0;
    }
    if (ch->closed)
        return EPIPE;
    if (timeout_ns == 0)
        return EAGAIN;
    struct corun *cur = s->current;
    coq_push(&ch->receivers, cur);
    sched_wait_on(s, WAIT_CHAN, ch, -1);
    int err = wait_result(sched_park(s, deadline_after(timeout_ns), PARK_PLAIN));
    if (!err)
        *msg = cur->xfer;
    return err;
}

API int corun_chan_close(corun_chan_t *ch)
{
    CATCH_HOLD();
    if (ch->sched != sched_self())
        return EXDEV;
    if (ch->closed)
        return EPIPE;
    ch->closed = 1;
    while (!coq_empty(&ch->senders))
        sched_wake(ch->senders.head, WAKE_CLOSED);
    while (!coq_empty(&ch->receivers))
        sched_wake(ch->receivers.head, WAKE_CLOSED);
    return 0;
}

API size_t corun_chan_len(const corun_chan_t *ch)
{
    CATCH_HOLD();
    return ch->len;
}

API int corun_chan_free(corun_chan_t *ch)
{
    CATCH_HOLD();
    if (!coq_empty(&ch->senders) || !coq_empty(&ch->receivers))
        return EBUSY;
    free(ch->ring);
    free(ch);
    return 0;
}
