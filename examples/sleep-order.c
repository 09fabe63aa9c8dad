/*
 * sleep-order - three coroutines sleeping concurrently.
 *
 * A C rendering of the gevent demo in which tasks sleeping 2 s, 1 s and 0 s
 * are started together:
 *
 *     def task(n, secs):
 *         print(n)               # 1, 2, 3: in the order they start
 *         gevent.sleep(secs)
 *         print(7 - n)           # 6, 5, 4: in the order they wake
 *
 * The tasks start in spawn order and print 1 2 3; they then wake shortest
 * sleep first, so the 0 s task prints 6, the 1 s task 5 and the 2 s task 4.
 * Because the sleeps overlap, the whole run takes about 2 s, not 3 s.
 */
#include <corun.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct task {
    int start_no;   /* printed when the task starts */
    int wake_no;    /* printed when it wakes */
    int secs;       /* how long it sleeps */
};

static struct timespec t0;

static double elapsed(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
}

static void check(int err, const char *what)
{
    if (err != 0) {
        fprintf(stderr, "sleep-order: %s: %s\n", what, strerror(err));
        exit(1);
    }
}

static void *task(void *arg)
{
    const struct task *t = arg;
    printf("[%5.3f s] %d   (task %d starts, sleeps %d s)\n",
           elapsed(), t->start_no, t->start_no, t->secs);
    corun_sleep(CORUN_SEC(t->secs));
    printf("[%5.3f s] %d   (task %d wakes after %d s)\n",
           elapsed(), t->wake_no, t->start_no, t->secs);
    return NULL;
}

int main(void)
{
    static const struct task tasks[] = {
        { .start_no = 1, .wake_no = 4, .secs = 2 },
        { .start_no = 2, .wake_no = 5, .secs = 1 },
        { .start_no = 3, .wake_no = 6, .secs = 0 },
    };
    enum { N = sizeof tasks / sizeof tasks[0] };
    corun_t *co[N];

    setvbuf(stdout, NULL, _IOLBF, 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);

    for (int i = 0; i < N; i++)
        check(corun_spawn(&co[i], NULL, task, (void *)&tasks[i]), "spawn");
    for (int i = 0; i < N; i++)
        check(corun_join(co[i], NULL), "join");

    printf("all done in %.3f s (the sleeps overlapped: about 2 s, not 3 s)\n",
           elapsed());
    return 0;
}
