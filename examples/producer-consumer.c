/*
 * producer-consumer - a producer and a consumer coroutine talking over
 * channels.
 *
 * A C rendering of the classic generator demo in which a producer drives a
 * consumer with send() and the consumer answers each item:
 *
 *     def consumer():                     def produce(c):
 *         r = ''                              next(c)
 *         while True:                         for n in range(1, 6):
 *             n = yield r                         print('producing', n)
 *             print('consuming', n)               r = c.send(n)
 *             r = '200 OK'                        print('consumer said', r)
 *                                             c.close()
 *
 * Here "send" is corun_chan_send() on an unbuffered channel (the producer
 * waits until the consumer has taken the item), the answer travels back on a
 * second channel, and "close" is corun_chan_close(): the consumer's next
 * receive fails with EPIPE, which ends its loop.
 */
#include <corun.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ITEMS 5

struct pipes {
    corun_chan_t *items;   /* producer -> consumer */
    corun_chan_t *replies; /* consumer -> producer */
};

static void check(int err, const char *what)
{
    if (err != 0) {
        fprintf(stderr, "producer-consumer: %s: %s\n", what, strerror(err));
        exit(1);
    }
}

static void *consumer(void *arg)
{
    struct pipes *p = arg;
    intptr_t consumed = 0;

    for (;;) {
        void *msg;
        int err = corun_chan_recv(p->items, &msg, CORUN_FOREVER);
        if (err == EPIPE) {
            printf("    [consumer] channel closed (EPIPE): stopping\n");
            break;
        }
        check(err, "consumer: receive");
        printf("    [consumer] consuming %d...\n", (int)(intptr_t)msg);
        consumed++;
        check(corun_chan_send(p->replies, "200 OK", CORUN_FOREVER),
              "consumer: reply");
    }
    return (void *)consumed;
}

static void *producer(void *arg)
{
    struct pipes *p = arg;

    for (int n = 1; n <= ITEMS; n++) {
        printf("[producer] producing %d...\n", n);
        check(corun_chan_send(p->items, (void *)(intptr_t)n, CORUN_FOREVER),
              "producer: send");
        void *reply;
        check(corun_chan_recv(p->replies, &reply, CORUN_FOREVER),
              "producer: receive reply");
        printf("[producer] consumer returned: %s\n", (const char *)reply);
    }
    printf("[producer] closing the channel\n");
    check(corun_chan_close(p->items), "producer: close");
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct pipes p;
    check(corun_chan_new(&p.items, 0), "new items channel");
    check(corun_chan_new(&p.replies, 0), "new replies channel");

    corun_t *cons, *prod;
    check(corun_spawn(&cons, &(corun_attr_t){ .name = "consumer" }, consumer, &p),
          "spawn consumer");
    check(corun_spawn(&prod, &(corun_attr_t){ .name = "producer" }, producer, &p),
          "spawn producer");

    void *consumed;
    check(corun_join(prod, NULL), "join producer");
    check(corun_join(cons, &consumed), "join consumer");
    printf("main: consumer handled %d of %d items and returned\n",
           (int)(intptr_t)consumed, ITEMS);

    check(corun_chan_free(p.items), "free items channel");
    check(corun_chan_free(p.replies), "free replies channel");
    return 0;
}
