/*
 * test_errno.c - errno is private to each coroutine and untouched by the API.
 */
#include <fcntl.h>
#include <poll.h>

#include "testutil.h"

TestSuite(errno_, .timeout = 30);

enum how { BY_YIELD, BY_SLEEP, BY_CHAN, BY_FD, BY_JOIN_TIMEOUT };

struct errno_arg {
    int value;
    enum how how;
    corun_chan_t *ch;
    int fd;
    int rounds;
};

/* Set errno, block in some way, check it is unchanged after resuming. */
static void *keep_errno(void *p)
{
    struct errno_arg *a = p;
    for (int i = 0; i < a->rounds; i++) {
        int mine = a->value + i;
        errno = mine;
        switch (a->how) {
        case BY_YIELD:
            corun_yield();
            break;
        case BY_SLEEP:
            corun_sleep(CORUN_MSEC(1));
            break;
        case BY_CHAN: {
            void *m;
            corun_chan_recv(a->ch, &m, CORUN_MSEC(1));
            break;
        }
        case BY_FD:
            corun_wait_fd(a->fd, POLLIN, CORUN_MSEC(1), NULL);
            break;
        case BY_JOIN_TIMEOUT:
            corun_join_timeout(corun_current(), NULL, 0); /* EDEADLK, no errno */
            corun_yield();
            break;
        }
        if (errno != mine)
            return IP(1 + i);
    }
    return NULL;
}

static void run_pair(enum how how)
{
    corun_chan_t *ch;
    int p[2];
    OK(corun_chan_new(&ch, 0));
    cr_assert_eq(pipe(p), 0);
    struct errno_arg a = { .value = 1234, .how = how, .ch = ch, .fd = p[0], .rounds = 20 };
    struct errno_arg b = { .value = 5678, .how = how, .ch = ch, .fd = p[0], .rounds = 20 };
    corun_t *ca, *cb;
    errno = 42;
    OK(corun_spawn(&ca, NULL, keep_errno, &a));
    OK(corun_spawn(&cb, NULL, keep_errno, &b));
    void *ra, *rb;
    OK(corun_join(ca, &ra));
    int after_first = errno;
    OK(corun_join(cb, &rb));
    int after_both = errno;
    OK(corun_chan_free(ch));
    close(p[0]);
    close(p[1]);
    cr_assert_eq(after_first, 42, "main's errno changed to %d while it was joining",
                 after_first);
    cr_assert_null(ra, "coroutine A lost its errno in round %lu", (unsigned long)PI(ra) - 1);
    cr_assert_null(rb, "coroutine B lost its errno in round %lu", (unsigned long)PI(rb) - 1);
    cr_assert_eq(after_both, 42);
}

Test(errno_, preserved_across_yield)
{
    run_pair(BY_YIELD);
}

Test(errno_, preserved_across_sleep)
{
    run_pair(BY_SLEEP);
}

Test(errno_, preserved_across_channel_wait)
{
    run_pair(BY_CHAN);
}

Test(errno_, preserved_across_fd_wait)
{
    run_pair(BY_FD);
}

Test(errno_, preserved_across_failed_calls_and_yield)
{
    run_pair(BY_JOIN_TIMEOUT);
}

/* The exact scenario from the issue: A sets 1234 and yields, B sets 5678 and
 * yields, each sees its own value after resuming. */
static struct tu_log lg;
static void *set_and_yield(void *arg)
{
    int v = (int)PI(arg);
    errno = v;
    tu_log_add(&lg, v);
    corun_yield();
    tu_log_add(&lg, errno);
    return NULL;
}

Test(errno_, issue_scenario)
{
    corun_t *a, *b;
    lg.n = 0;
    (void)corun_current(); /* scheduler creation is tested separately */
    errno = 7;
    OK(corun_spawn(&a, NULL, set_and_yield, IP(1234)));
    OK(corun_spawn(&b, NULL, set_and_yield, IP(5678)));
    corun_yield();
    cr_assert_eq(errno, 7);
    OK(corun_join(a, NULL));
    OK(corun_join(b, NULL));
    cr_assert_eq(errno, 7);
    TU_EXPECT(&lg, 1234, 5678, 1234, 5678);
}

static void *errno_switcher(void *arg)
{
    corun_t *main_co = arg;
    errno = 111;
    void *v = corun_switch(main_co, NULL);
    (void)v;
    return IP(errno);
}

Test(errno_, preserved_across_switch)
{
    corun_t *a;
    corun_t *self = corun_current(); /* creation is tested separately */
    errno = 222;
    OK(corun_spawn(&a, NULL, errno_switcher, self));
    corun_switch(a, NULL);
    cr_assert_eq(errno, 222);
    errno = 333;
    void *r = corun_switch(a, NULL); /* a finishes, returns its errno */
    cr_assert_eq(PI(r), 111);
    cr_assert_eq(errno, 333);
    OK(corun_join(a, NULL));
}

static void *noop(void *arg)
{
    return arg;
}

/* The first call creates the scheduler (libuv loop, timerfd, ...): that must
 * not leak an errno value either. */
Test(errno_, first_call_leaves_errno_alone)
{
    errno = 9999;
    corun_t *me = corun_current();
    cr_assert_not_null(me);
    cr_assert_eq(errno, 9999, "creating the scheduler changed errno to %d (%s)", errno,
                 strerror(errno));
}

/* "No function of this API reads or writes errno." */
Test(errno_, api_calls_leave_errno_alone)
{
    corun_t *co = NULL;
    (void)corun_current(); /* before the pipes: creation is tested above */
    corun_chan_t *ch;
    int p[2];
    cr_assert_eq(pipe(p), 0);
    int closed[2];
    cr_assert_eq(pipe(closed), 0);
    close(closed[0]);
    close(closed[1]);

#define UNTOUCHED(call)                                                       \
    do {                                                                      \
        errno = 9999;                                                         \
        (void)(call);                                                         \
        cr_assert_eq(errno, 9999, "%s changed errno to %d (%s)", #call,       \
                     errno, strerror(errno));                                 \
    } while (0)

    UNTOUCHED(corun_current());
    UNTOUCHED(corun_spawn(&co, NULL, NULL, NULL));
    corun_attr_t small = { .stack_size = 1 };
    UNTOUCHED(corun_spawn(&co, &small, noop, NULL));
    corun_attr_t huge = { .stack_size = SIZE_MAX };
    UNTOUCHED(corun_spawn(&co, &huge, noop, NULL));
    char longname[100];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    corun_attr_t named = { .name = longname };
    UNTOUCHED(corun_spawn(&co, &named, noop, NULL));
    UNTOUCHED(corun_set_name(corun_current(), longname));
    UNTOUCHED(corun_set_name(corun_current(), "ok"));
    UNTOUCHED(corun_join(corun_current(), NULL));
    UNTOUCHED(corun_yield());
    UNTOUCHED(corun_sleep(CORUN_MSEC(1)));
    UNTOUCHED(corun_sleep(0));
    UNTOUCHED(corun_chan_new(&ch, 0));
    void *m;
    UNTOUCHED(corun_chan_recv(ch, &m, 0));
    UNTOUCHED(corun_chan_recv(ch, &m, CORUN_MSEC(1)));
    UNTOUCHED(corun_chan_send(ch, NULL, 0));
    UNTOUCHED(corun_chan_send(ch, NULL, CORUN_MSEC(1)));
    UNTOUCHED(corun_chan_close(ch));
    UNTOUCHED(corun_chan_close(ch));
    UNTOUCHED(corun_chan_recv(ch, &m, 0));
    UNTOUCHED(corun_chan_free(ch));
    UNTOUCHED(corun_wait_fd(closed[0], POLLIN, 0, NULL));
    UNTOUCHED(corun_wait_fd(-1, POLLIN, CORUN_FOREVER, NULL));
    UNTOUCHED(corun_wait_fd(p[0], 0, 0, NULL));
    UNTOUCHED(corun_wait_fd(p[0], POLLIN, 0, NULL));
    UNTOUCHED(corun_wait_fd(p[0], POLLIN, CORUN_MSEC(1), NULL));
    UNTOUCHED(corun_wait_fd(p[1], POLLOUT, 0, NULL));
    UNTOUCHED(corun_spawn(&co, NULL, noop, NULL));
    UNTOUCHED(corun_join_timeout(co, NULL, 0));
    UNTOUCHED(corun_join(co, NULL));
#undef UNTOUCHED
    close(p[0]);
    close(p[1]);
}

static void *check_errno_at_start(void *arg)
{
    (void)arg;
    int was = errno;
    errno = 5555;
    corun_yield();
    return IP(was);
}

/* A coroutine does not inherit its spawner's errno by accident of sharing:
 * changes made by the new coroutine never leak back. */
Test(errno_, new_coroutine_changes_do_not_leak)
{
    (void)corun_current(); /* creation is tested separately */
    errno = 4321;
    corun_t *a;
    OK(corun_spawn(&a, NULL, check_errno_at_start, NULL));
    corun_yield();
    cr_assert_eq(errno, 4321);
    errno = 0;
    OK(corun_join(a, NULL));
    cr_assert_eq(errno, 0);
}
