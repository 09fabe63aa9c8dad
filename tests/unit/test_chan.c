/*
 * test_chan.c - channels: unbuffered, bounded, unbounded, timeouts, close,
 * free, length and first-come-first-served waiters.
 */
#include "testutil.h"

TestSuite(chan, .timeout = 30);

static struct tu_log lg;

struct msg_arg {
    corun_chan_t *ch;
    int tag;
    void *msg;
    int64_t timeout;
    int rc;
    void *got;
};

static void *sender(void *arg)
{
    struct msg_arg *a = arg;
    tu_log_add(&lg, a->tag);
    a->rc = corun_chan_send(a->ch, a->msg, a->timeout);
    tu_log_add(&lg, a->tag + 1);
    return NULL;
}

static void *receiver(void *arg)
{
    struct msg_arg *a = arg;
    a->got = IP(0xdead);
    tu_log_add(&lg, a->tag);
    a->rc = corun_chan_recv(a->ch, &a->got, a->timeout);
    tu_log_add(&lg, a->tag + 1);
    return NULL;
}

Test(chan, new_len_free)
{
    static const size_t caps[] = { 0, 1, 5, CORUN_CHAN_UNBOUNDED };
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        corun_chan_t *ch = NULL;
        OK(corun_chan_new(&ch, caps[i]));
        cr_assert_not_null(ch);
        cr_assert_eq(corun_chan_len(ch), 0);
        OK(corun_chan_free(ch));
    }
}

Test(chan, unbuffered_rendezvous)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 0));
    struct msg_arg s = { .ch = ch, .tag = 10, .msg = IP(123), .timeout = CORUN_FOREVER };
    struct msg_arg r = { .ch = ch, .tag = 20, .timeout = CORUN_FOREVER };
    corun_t *cs, *cr;
    lg.n = 0;
    OK(corun_spawn(&cs, NULL, sender, &s));
    corun_yield();
    /* The sender is waiting for a receiver: nothing is buffered. */
    TU_EXPECT(&lg, 10);
    cr_assert_eq(corun_chan_len(ch), 0);
    OK(corun_spawn(&cr, NULL, receiver, &r));
    OK(corun_join(cs, NULL));
    OK(corun_join(cr, NULL));
    OK(s.rc);
    OK(r.rc);
    cr_assert_eq(PI(r.got), 123);
    /* The send completed only once the receiver arrived. */
    cr_assert_gt(tu_log_index(&lg, 11), tu_log_index(&lg, 20));
    OK(corun_chan_free(ch));
}

Test(chan, unbuffered_receiver_first)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 0));
    struct msg_arg r = { .ch = ch, .tag = 20, .timeout = CORUN_FOREVER };
    corun_t *cr;
    lg.n = 0;
    OK(corun_spawn(&cr, NULL, receiver, &r));
    corun_yield();
    TU_EXPECT(&lg, 20);
    /* A receiver is waiting: a send with timeout 0 needs no wait. */
    OK(corun_chan_send(ch, IP(5), 0));
    OK(corun_join(cr, NULL));
    OK(r.rc);
    cr_assert_eq(PI(r.got), 5);
    TU_EXPECT(&lg, 20, 21);
    OK(corun_chan_free(ch));
}

Test(chan, unbuffered_recv_zero_timeout_with_waiting_sender)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 0));
    struct msg_arg s = { .ch = ch, .tag = 10, .msg = IP(77), .timeout = CORUN_FOREVER };
    corun_t *cs;
    OK(corun_spawn(&cs, NULL, sender, &s));
    void *m = NULL;
    FAILS(corun_chan_recv(ch, &m, 0), EAGAIN); /* sender not started yet */
    corun_yield();
    OK(corun_chan_recv(ch, &m, 0));
    cr_assert_eq(PI(m), 77);
    OK(corun_join(cs, NULL));
    OK(s.rc);
    OK(corun_chan_free(ch));
}

Test(chan, unbuffered_zero_timeout_without_partner_is_eagain)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 0));
    void *m = IP(1);
    FAILS(corun_chan_send(ch, IP(1), 0), EAGAIN);
    FAILS(corun_chan_recv(ch, &m, 0), EAGAIN);
    cr_assert_eq(PI(m), 1, "msg written on failure");
    cr_assert_eq(corun_chan_len(ch), 0);
    OK(corun_chan_free(ch));
}

static void *send_seq(void *arg)
{
    struct msg_arg *a = arg;
    for (int i = 0; i < a->tag; i++) {
        int rc = corun_chan_send(a->ch, IP(i), CORUN_FOREVER);
        if (rc != 0)
            return IP(1000 + rc);
        tu_log_add(&lg, i);
    }
    return NULL;
}

Test(chan, bounded_blocks_when_full_and_keeps_order)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 3));
    struct msg_arg a = { .ch = ch, .tag = 10 };
    corun_t *s;
    lg.n = 0;
    OK(corun_spawn(&s, NULL, send_seq, &a));
    corun_yield();
    corun_yield();
    /* Three fit, the fourth send waits. */
    TU_EXPECT(&lg, 0, 1, 2);
    cr_assert_eq(corun_chan_len(ch), 3);
    FAILS(corun_chan_send(ch, IP(99), 0), EAGAIN);
    int64_t t0 = tu_now();
    FAILS(corun_chan_send(ch, IP(99), CORUN_MSEC(15)), ETIMEDOUT);
    cr_assert_geq(tu_now() - t0, CORUN_MSEC(15));
    for (int i = 0; i < 10; i++) {
        void *m;
        OK(corun_chan_recv(ch, &m, CORUN_FOREVER));
        cr_assert_eq(PI(m), (uintptr_t)i, "message %d was %lu", i, (unsigned long)PI(m));
    }
    void *r;
    OK(corun_join(s, &r));
    cr_assert_null(r);
    cr_assert_eq(corun_chan_len(ch), 0);
    OK(corun_chan_free(ch));
}

Test(chan, bounded_len_tracks_buffer)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 4));
    for (int i = 0; i < 4; i++) {
        OK(corun_chan_send(ch, IP(i), 0));
        cr_assert_eq(corun_chan_len(ch), (size_t)i + 1);
    }
    FAILS(corun_chan_send(ch, IP(4), 0), EAGAIN);
    cr_assert_eq(corun_chan_len(ch), 4);
    void *m;
    OK(corun_chan_recv(ch, &m, 0));
    cr_assert_eq(PI(m), 0);
    cr_assert_eq(corun_chan_len(ch), 3);
    OK(corun_chan_send(ch, IP(4), 0)); /* wraps around */
    for (int i = 1; i <= 4; i++) {
        OK(corun_chan_recv(ch, &m, 0));
        cr_assert_eq(PI(m), (uintptr_t)i);
    }
    cr_assert_eq(corun_chan_len(ch), 0);
    FAILS(corun_chan_recv(ch, &m, 0), EAGAIN);
    OK(corun_chan_free(ch));
}

Test(chan, unbounded_never_blocks)
{
    enum { N = 200000 };
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, CORUN_CHAN_UNBOUNDED));
    for (int i = 0; i < N; i++)
        OK(corun_chan_send(ch, IP(i), 0));
    cr_assert_eq(corun_chan_len(ch), N);
    for (int i = 0; i < N; i++) {
        void *m;
        OK(corun_chan_recv(ch, &m, 0));
        cr_assert_eq(PI(m), (uintptr_t)i);
    }
    cr_assert_eq(corun_chan_len(ch), 0);
    /* Interleaved sends and receives through a growing/shrinking buffer. */
    uintptr_t next_send = 0, next_recv = 0;
    for (int round = 0; round < 100; round++) {
        for (int i = 0; i < round * 7 % 53 + 1; i++)
            OK(corun_chan_send(ch, IP(next_send++), 0));
        for (int i = 0; i < round * 5 % 41 && next_recv < next_send; i++) {
            void *m;
            OK(corun_chan_recv(ch, &m, 0));
            cr_assert_eq(PI(m), next_recv++);
        }
        cr_assert_eq(corun_chan_len(ch), next_send - next_recv);
    }
    while (next_recv < next_send) {
        void *m;
        OK(corun_chan_recv(ch, &m, 0));
        cr_assert_eq(PI(m), next_recv++);
    }
    OK(corun_chan_free(ch));
}

Test(chan, null_messages_are_messages)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 2));
    OK(corun_chan_send(ch, NULL, 0));
    cr_assert_eq(corun_chan_len(ch), 1);
    void *m = IP(1);
    OK(corun_chan_recv(ch, &m, 0));
    cr_assert_null(m);
    OK(corun_chan_free(ch));
}

Test(chan, recv_timeouts)
{
    static const size_t caps[] = { 0, 2, CORUN_CHAN_UNBOUNDED };
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        corun_chan_t *ch;
        OK(corun_chan_new(&ch, caps[i]));
        void *m;
        FAILS(corun_chan_recv(ch, &m, 0), EAGAIN);
        int64_t t0 = tu_now();
        FAILS(corun_chan_recv(ch, &m, CORUN_MSEC(20)), ETIMEDOUT);
        int64_t el = tu_now() - t0;
        cr_assert_geq(el, CORUN_MSEC(20), "recv timed out after %lld ns", (long long)el);
        cr_assert_lt(el, CORUN_SEC(5));
        /* The timed-out receiver is gone: no waiter left behind. */
        if (caps[i] == 0)
            FAILS(corun_chan_send(ch, IP(1), 0), EAGAIN);
        OK(corun_chan_free(ch));
    }
}

Test(chan, send_timeouts)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 0));
    FAILS(corun_chan_send(ch, IP(1), 0), EAGAIN);
    int64_t t0 = tu_now();
    FAILS(corun_chan_send(ch, IP(1), CORUN_MSEC(20)), ETIMEDOUT);
    cr_assert_geq(tu_now() - t0, CORUN_MSEC(20));
    /* The timed-out sender left no message behind. */
    void *m;
    FAILS(corun_chan_recv(ch, &m, 0), EAGAIN);
    OK(corun_chan_free(ch));

    OK(corun_chan_new(&ch, 1));
    OK(corun_chan_send(ch, IP(1), 0));
    FAILS(corun_chan_send(ch, IP(2), 0), EAGAIN);
    t0 = tu_now();
    FAILS(corun_chan_send(ch, IP(2), CORUN_MSEC(20)), ETIMEDOUT);
    cr_assert_geq(tu_now() - t0, CORUN_MSEC(20));
    cr_assert_eq(corun_chan_len(ch), 1);
    OK(corun_chan_recv(ch, &m, 0));
    cr_assert_eq(PI(m), 1);
    FAILS(corun_chan_recv(ch, &m, 0), EAGAIN);
    OK(corun_chan_free(ch));
}

static void *send_after_ms(void *arg)
{
    struct msg_arg *a = arg;
    corun_sleep(a->timeout);
    a->rc = corun_chan_send(a->ch, a->msg, CORUN_FOREVER);
    return NULL;
}

Test(chan, timed_recv_succeeds_before_expiry)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 0));
    struct msg_arg s = { .ch = ch, .msg = IP(31), .timeout = CORUN_MSEC(10) };
    corun_t *cs;
    OK(corun_spawn(&cs, NULL, send_after_ms, &s));
    void *m = NULL;
    OK(corun_chan_recv(ch, &m, CORUN_SEC(10)));
    cr_assert_eq(PI(m), 31);
    OK(corun_join(cs, NULL));
    OK(s.rc);
    OK(corun_chan_free(ch));
}

Test(chan, timed_out_receiver_does_not_steal_later_message)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 0));
    struct msg_arg r0 = { .ch = ch, .tag = 10, .timeout = CORUN_MSEC(5) };
    struct msg_arg r1 = { .ch = ch, .tag = 20, .timeout = CORUN_FOREVER };
    corun_t *c0, *c1;
    OK(corun_spawn(&c0, NULL, receiver, &r0));
    OK(corun_spawn(&c1, NULL, receiver, &r1));
    OK(corun_join(c0, NULL)); /* r0 times out */
    FAILS(r0.rc, ETIMEDOUT);
    OK(corun_chan_send(ch, IP(8), CORUN_FOREVER));
    OK(corun_join(c1, NULL));
    OK(r1.rc);
    cr_assert_eq(PI(r1.got), 8);
    OK(corun_chan_free(ch));
}

Test(chan, close_wakes_all_receivers)
{
    enum { N = 5 };
    static const size_t caps[] = { 0, 3, CORUN_CHAN_UNBOUNDED };
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        corun_chan_t *ch;
        OK(corun_chan_new(&ch, caps[k]));
        struct msg_arg r[N];
        corun_t *c[N];
        lg.n = 0;
        for (int i = 0; i < N; i++) {
            r[i] = (struct msg_arg){ .ch = ch, .tag = 10 * i, .timeout = CORUN_FOREVER,
                                     .rc = -1 };
            OK(corun_spawn(&c[i], NULL, receiver, &r[i]));
        }
        corun_yield();
        TU_EXPECT(&lg, 0, 10, 20, 30, 40);
        OK(corun_chan_close(ch));
        for (int i = 0; i < N; i++) {
            OK(corun_join(c[i], NULL));
            FAILS(r[i].rc, EPIPE);
        }
        OK(corun_chan_free(ch));
    }
}

Test(chan, close_wakes_all_senders)
{
    enum { N = 5 };
    static const size_t caps[] = { 0, 1, 3 };
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        corun_chan_t *ch;
        OK(corun_chan_new(&ch, caps[k]));
        for (size_t i = 0; i < caps[k]; i++)
            OK(corun_chan_send(ch, IP(100 + i), 0)); /* fill it */
        struct msg_arg s[N];
        corun_t *c[N];
        for (int i = 0; i < N; i++) {
            s[i] = (struct msg_arg){ .ch = ch, .tag = 10 * i, .msg = IP(i),
                                     .timeout = CORUN_FOREVER, .rc = -1 };
            OK(corun_spawn(&c[i], NULL, sender, &s[i]));
        }
        corun_yield();
        for (int i = 0; i < N; i++)
            cr_assert_eq(s[i].rc, -1, "sender %d did not wait", i);
        OK(corun_chan_close(ch));
        for (int i = 0; i < N; i++) {
            OK(corun_join(c[i], NULL));
            FAILS(s[i].rc, EPIPE);
        }
        /* What was buffered before close is still delivered, then EPIPE. */
        cr_assert_eq(corun_chan_len(ch), caps[k]);
        for (size_t i = 0; i < caps[k]; i++) {
            void *m;
            OK(corun_chan_recv(ch, &m, CORUN_FOREVER));
            cr_assert_eq(PI(m), 100 + i);
        }
        void *m;
        FAILS(corun_chan_recv(ch, &m, CORUN_FOREVER), EPIPE);
        OK(corun_chan_free(ch));
    }
}

Test(chan, buffered_messages_delivered_after_close)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 10));
    for (int i = 0; i < 3; i++)
        OK(corun_chan_send(ch, IP(i + 1), 0));
    OK(corun_chan_close(ch));
    FAILS(corun_chan_send(ch, IP(9), 0), EPIPE);
    FAILS(corun_chan_send(ch, IP(9), CORUN_FOREVER), EPIPE);
    FAILS(corun_chan_send(ch, IP(9), CORUN_MSEC(10)), EPIPE);
    cr_assert_eq(corun_chan_len(ch), 3);
    for (int i = 0; i < 3; i++) {
        void *m;
        OK(corun_chan_recv(ch, &m, 0));
        cr_assert_eq(PI(m), (uintptr_t)i + 1);
        cr_assert_eq(corun_chan_len(ch), (size_t)(2 - i));
    }
    void *m = IP(5);
    FAILS(corun_chan_recv(ch, &m, 0), EPIPE);
    FAILS(corun_chan_recv(ch, &m, CORUN_FOREVER), EPIPE);
    FAILS(corun_chan_recv(ch, &m, CORUN_MSEC(10)), EPIPE);
    cr_assert_eq(PI(m), 5);
    OK(corun_chan_free(ch));
}

Test(chan, unbounded_messages_delivered_after_close)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, CORUN_CHAN_UNBOUNDED));
    for (int i = 0; i < 1000; i++)
        OK(corun_chan_send(ch, IP(i), 0));
    OK(corun_chan_close(ch));
    for (int i = 0; i < 1000; i++) {
        void *m;
        OK(corun_chan_recv(ch, &m, CORUN_FOREVER));
        cr_assert_eq(PI(m), (uintptr_t)i);
    }
    void *m;
    FAILS(corun_chan_recv(ch, &m, CORUN_FOREVER), EPIPE);
    OK(corun_chan_free(ch));
}

Test(chan, close_twice_is_epipe)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 0));
    OK(corun_chan_close(ch));
    FAILS(corun_chan_close(ch), EPIPE);
    OK(corun_chan_free(ch));
}

Test(chan, free_with_waiting_receiver_is_ebusy)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 0));
    struct msg_arg r = { .ch = ch, .tag = 10, .timeout = CORUN_FOREVER };
    corun_t *c;
    OK(corun_spawn(&c, NULL, receiver, &r));
    corun_yield();
    FAILS(corun_chan_free(ch), EBUSY);
    OK(corun_chan_send(ch, IP(3), 0));
    OK(corun_join(c, NULL));
    OK(r.rc);
    cr_assert_eq(PI(r.got), 3);
    OK(corun_chan_free(ch));
}

Test(chan, free_with_waiting_sender_is_ebusy)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 1));
    OK(corun_chan_send(ch, IP(1), 0));
    struct msg_arg s = { .ch = ch, .tag = 10, .msg = IP(2), .timeout = CORUN_FOREVER };
    corun_t *c;
    OK(corun_spawn(&c, NULL, sender, &s));
    corun_yield();
    FAILS(corun_chan_free(ch), EBUSY);
    void *m;
    OK(corun_chan_recv(ch, &m, 0));
    cr_assert_eq(PI(m), 1);
    OK(corun_join(c, NULL));
    OK(s.rc);
    OK(corun_chan_recv(ch, &m, 0));
    cr_assert_eq(PI(m), 2);
    OK(corun_chan_free(ch));
}

Test(chan, free_with_timed_waiter_is_ebusy)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 0));
    struct msg_arg r = { .ch = ch, .tag = 10, .timeout = CORUN_MSEC(20) };
    corun_t *c;
    OK(corun_spawn(&c, NULL, receiver, &r));
    corun_yield();
    FAILS(corun_chan_free(ch), EBUSY);
    OK(corun_join(c, NULL));
    FAILS(r.rc, ETIMEDOUT);
    OK(corun_chan_free(ch));
}

/* Freeing right after close, before the woken waiters have run: either the
 * channel is still busy, or it is released and the waiters must not touch it
 * any more. Both are fine; crashing or a use after free (ASan) is not. */
Test(chan, free_right_after_close)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 0));
    struct msg_arg r[3];
    corun_t *c[3];
    for (int i = 0; i < 3; i++) {
        r[i] = (struct msg_arg){ .ch = ch, .tag = 10, .timeout = i == 1 ? CORUN_SEC(30)
                                                                          : CORUN_FOREVER };
        OK(corun_spawn(&c[i], NULL, receiver, &r[i]));
    }
    corun_yield();
    OK(corun_chan_close(ch));
    int rc = corun_chan_free(ch);
    cr_assert(rc == 0 || rc == EBUSY, "free after close returned %d", rc);
    for (int i = 0; i < 3; i++) {
        OK(corun_join(c[i], NULL));
        FAILS(r[i].rc, EPIPE);
    }
    if (rc == EBUSY)
        OK(corun_chan_free(ch));
}

Test(chan, waiting_receivers_served_fifo)
{
    enum { N = 6 };
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 0));
    struct msg_arg r[N];
    corun_t *c[N];
    for (int i = 0; i < N; i++) {
        r[i] = (struct msg_arg){ .ch = ch, .tag = 10, .timeout = CORUN_FOREVER };
        OK(corun_spawn(&c[i], NULL, receiver, &r[i]));
    }
    corun_yield();
    for (int i = 0; i < N; i++)
        OK(corun_chan_send(ch, IP(100 + i), CORUN_FOREVER));
    for (int i = 0; i < N; i++) {
        OK(corun_join(c[i], NULL));
        OK(r[i].rc);
        cr_assert_eq(PI(r[i].got), (uintptr_t)(100 + i), "receiver %d got %lu", i,
                     (unsigned long)PI(r[i].got));
    }
    OK(corun_chan_free(ch));
}

Test(chan, waiting_senders_served_fifo)
{
    enum { N = 6 };
    static const size_t caps[] = { 0, 1, 2 };
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        corun_chan_t *ch;
        OK(corun_chan_new(&ch, caps[k]));
        struct msg_arg s[N];
        corun_t *c[N];
        for (int i = 0; i < N; i++) {
            s[i] = (struct msg_arg){ .ch = ch, .tag = 10, .msg = IP(i),
                                     .timeout = CORUN_FOREVER };
            OK(corun_spawn(&c[i], NULL, sender, &s[i]));
        }
        corun_yield();
        cr_assert_eq(corun_chan_len(ch), caps[k]);
        for (int i = 0; i < N; i++) {
            void *m;
            OK(corun_chan_recv(ch, &m, CORUN_FOREVER));
            cr_assert_eq(PI(m), (uintptr_t)i, "cap %zu: message %d was %lu", caps[k], i,
                         (unsigned long)PI(m));
        }
        for (int i = 0; i < N; i++) {
            OK(corun_join(c[i], NULL));
            OK(s[i].rc);
        }
        OK(corun_chan_free(ch));
    }
}

static void *pinger(void *arg)
{
    corun_chan_t **ch = arg;
    for (uintptr_t i = 0; i < 10000; i++) {
        if (corun_chan_send(ch[0], IP(i), CORUN_FOREVER) != 0)
            return IP(1);
        void *m;
        if (corun_chan_recv(ch[1], &m, CORUN_FOREVER) != 0 || PI(m) != i + 1)
            return IP(2);
    }
    return NULL;
}

static void *ponger(void *arg)
{
    corun_chan_t **ch = arg;
    for (;;) {
        void *m;
        int rc = corun_chan_recv(ch[0], &m, CORUN_FOREVER);
        if (rc == EPIPE)
            return NULL;
        if (rc != 0)
            return IP(3);
        if (corun_chan_send(ch[1], IP(PI(m) + 1), CORUN_FOREVER) != 0)
            return IP(4);
    }
}

Test(chan, ping_pong_between_coroutines)
{
    corun_chan_t *ch[2];
    OK(corun_chan_new(&ch[0], 0));
    OK(corun_chan_new(&ch[1], 0));
    corun_t *a, *b;
    OK(corun_spawn(&a, NULL, pinger, ch));
    OK(corun_spawn(&b, NULL, ponger, ch));
    void *r;
    OK(corun_join(a, &r));
    cr_assert_null(r, "pinger failed with %lu", (unsigned long)PI(r));
    OK(corun_chan_close(ch[0]));
    OK(corun_join(b, &r));
    cr_assert_null(r, "ponger failed with %lu", (unsigned long)PI(r));
    OK(corun_chan_free(ch[0]));
    OK(corun_chan_free(ch[1]));
}

static void *produce(void *arg)
{
    corun_chan_t *ch = arg;
    for (uintptr_t i = 0; i < 1000; i++)
        if (corun_chan_send(ch, IP(i), CORUN_FOREVER) != 0)
            return IP(1);
    return NULL;
}

static void *consume_sum(void *arg)
{
    corun_chan_t *ch = arg;
    uintptr_t sum = 0;
    void *m;
    while (corun_chan_recv(ch, &m, CORUN_FOREVER) == 0)
        sum += PI(m);
    return IP(sum);
}

Test(chan, many_producers_many_consumers)
{
    enum { P = 8, C = 5 };
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 4));
    corun_t *p[P], *c[C];
    for (int i = 0; i < C; i++)
        OK(corun_spawn(&c[i], NULL, consume_sum, ch));
    for (int i = 0; i < P; i++)
        OK(corun_spawn(&p[i], NULL, produce, ch));
    for (int i = 0; i < P; i++) {
        void *r;
        OK(corun_join(p[i], &r));
        cr_assert_null(r);
    }
    OK(corun_chan_close(ch));
    uintptr_t total = 0;
    for (int i = 0; i < C; i++) {
        void *r;
        OK(corun_join(c[i], &r));
        total += PI(r);
    }
    cr_assert_eq(total, (uintptr_t)P * (999 * 1000 / 2));
    OK(corun_chan_free(ch));
}

Test(chan, huge_timeouts_are_like_forever)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 0));
    struct msg_arg s = { .ch = ch, .msg = IP(17), .timeout = CORUN_MSEC(5) };
    corun_t *cs;
    OK(corun_spawn(&cs, NULL, send_after_ms, &s));
    void *m = NULL;
    OK(corun_chan_recv(ch, &m, INT64_MAX));
    cr_assert_eq(PI(m), 17);
    OK(corun_join(cs, NULL));
    OK(s.rc);

    struct msg_arg r = { .ch = ch, .tag = 10, .timeout = CORUN_FOREVER };
    corun_t *cr;
    OK(corun_spawn(&cr, NULL, receiver, &r));
    OK(corun_chan_send(ch, IP(18), INT64_MAX));
    OK(corun_join(cr, NULL));
    OK(r.rc);
    cr_assert_eq(PI(r.got), 18);
    OK(corun_chan_free(ch));
}

static void *recv_after(void *arg)
{
    struct msg_arg *a = arg;
    corun_sleep(a->timeout);
    a->rc = corun_chan_recv(a->ch, &a->got, CORUN_FOREVER);
    return NULL;
}

Test(chan, timed_send_succeeds_before_expiry)
{
    static const size_t caps[] = { 0, 1 };
    for (size_t k = 0; k < 2; k++) {
        corun_chan_t *ch;
        OK(corun_chan_new(&ch, caps[k]));
        if (caps[k])
            OK(corun_chan_send(ch, IP(1), 0));
        struct msg_arg r = { .ch = ch, .timeout = CORUN_MSEC(10) };
        corun_t *c;
        OK(corun_spawn(&c, NULL, recv_after, &r));
        int64_t t0 = tu_now();
        OK(corun_chan_send(ch, IP(2), CORUN_SEC(10)));
        cr_assert_lt(tu_now() - t0, CORUN_SEC(5));
        OK(corun_join(c, NULL));
        OK(r.rc);
        cr_assert_eq(PI(r.got), caps[k] ? 1 : 2);
        if (caps[k]) {
            void *m;
            OK(corun_chan_recv(ch, &m, 0));
            cr_assert_eq(PI(m), 2);
        }
        OK(corun_chan_free(ch));
    }
}
