/*
 * test_timerheap.c - the timer queue (src/core/timerheap.c) against a
 * plain scan: the earliest deadline after every insert and removal, from
 * any position, with many equal deadlines; and 100,000 timers queued in
 * reverse order, then taken out in order.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "timerheap.h"

TestSuite(timerheap, .timeout = 60);

#define NODES 2000

static struct timer_node nodes[NODES];

static uint64_t scan_min(size_t *count)
{
    uint64_t m = UINT64_MAX;
    *count = 0;
    for (int i = 0; i < NODES; i++)
        if (timer_queued(&nodes[i])) {
            (*count)++;
            if (nodes[i].deadline < m)
                m = nodes[i].deadline;
        }
    return m;
}

Test(timerheap, random_against_scan)
{
    struct timerheap h = { 0 };
    srandom(12345);
    for (int op = 0; op < 40000; op++) {
        struct timer_node *t = &nodes[random() % NODES];
        int what = (int)(random() % 4);
        if (!timer_queued(t)) {
            t->deadline = (uint64_t)(random() % 64);   /* many ties */
            timerheap_insert(&h, t);
        } else if (what == 0) {
            struct timer_node *m = timerheap_min(&h);  /* the earliest goes */
            cr_assert_not_null(m);
            timerheap_remove(&h, m);
            cr_assert(!timer_queued(m));
        } else {
            timerheap_remove(&h, t);                   /* any position */
        }
        size_t count;
        uint64_t want = scan_min(&count);
        cr_assert_eq(h.n, count, "op %d: %zu queued, the queue says %zu", op, count, h.n);
        struct timer_node *m = timerheap_min(&h);
        if (count == 0)
            cr_assert_null(m, "op %d: empty, yet a minimum", op);
        else
            cr_assert(m && timer_queued(m) && m->deadline == want,
                      "op %d: earliest %llu, the queue says %llu", op,
                      (unsigned long long)want, m ? (unsigned long long)m->deadline : 0ULL);
    }
    while (timerheap_min(&h))
        timerheap_remove(&h, timerheap_min(&h));
    cr_assert_eq(h.n, 0);
}

Test(timerheap, many_in_reverse_come_out_in_order)
{
    enum { N = 100000 };
    struct timer_node *v = calloc(N, sizeof *v);
    cr_assert_not_null(v);
    struct timerheap h = { 0 };
    for (int i = 0; i < N; i++) {
        v[i].deadline = (uint64_t)(N - i);
        timerheap_insert(&h, &v[i]);
    }
    /* Every other one out from the middle of the queue first. */
    for (int i = 0; i < N; i += 2)
        timerheap_remove(&h, &v[i]);
    uint64_t last = 0;
    size_t out = 0;
    for (struct timer_node *m; (m = timerheap_min(&h)); out++) {
        cr_assert_geq(m->deadline, last, "%llu after %llu", (unsigned long long)m->deadline,
                      (unsigned long long)last);
        last = m->deadline;
        timerheap_remove(&h, m);
    }
    cr_assert_eq(out, (size_t)N / 2);
    cr_assert_eq(h.n, 0);
    free(v);
}
