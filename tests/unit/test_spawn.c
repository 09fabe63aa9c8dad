/*
 * test_spawn.c - corun_spawn, corun_join, corun_join_timeout, corun_detach.
 */
#include <sys/resource.h>

#include "testutil.h"

TestSuite(spawn, .timeout = 30);

static void *ret_arg_plus_one(void *arg)
{
    return IP(PI(arg) + 1);
}

static int ran;
static void *set_ran(void *arg)
{
    ran += (int)PI(arg);
    return IP(0xabc);
}

/* Block on a channel until the test releases us; return what was sent. */
static void *wait_on_chan(void *arg)
{
    corun_chan_t *ch = arg;
    void *m = NULL;
    int rc = corun_chan_recv(ch, &m, CORUN_FOREVER);
    if (rc != 0)
        return IP(1000 + rc);
    return m;
}

Test(spawn, join_passes_return_value)
{
    corun_t *co[16];
    for (int i = 0; i < 16; i++)
        OK(corun_spawn(&co[i], NULL, ret_arg_plus_one, IP(i * 100)));
    for (int i = 15; i >= 0; i--) {
        void *r = NULL;
        OK(corun_join(co[i], &r));
        cr_assert_eq(PI(r), (uintptr_t)(i * 100 + 1));
    }
}

Test(spawn, join_null_retval_is_fine)
{
    corun_t *co;
    ran = 0;
    OK(corun_spawn(&co, NULL, set_ran, IP(1)));
    OK(corun_join(co, NULL));
    cr_assert_eq(ran, 1);
}

Test(spawn, null_fn_is_einval)
{
    corun_t *co = NULL;
    FAILS(corun_spawn(&co, NULL, NULL, NULL), EINVAL);
    FAILS(corun_spawn(NULL, NULL, NULL, NULL), EINVAL);
}

Test(spawn, does_not_run_before_caller_blocks)
{
    corun_t *co;
    ran = 0;
    OK(corun_spawn(&co, NULL, set_ran, IP(1)));
    cr_assert_eq(ran, 0, "spawned coroutine ran before the spawner blocked or yielded");
    corun_yield();
    cr_assert_eq(ran, 1, "spawned coroutine did not run during corun_yield()");
    void *r;
    OK(corun_join(co, &r));
    cr_assert_eq(PI(r), 0xabc);
}

Test(spawn, join_of_finished_coroutine_returns_at_once)
{
    corun_t *co;
    ran = 0;
    OK(corun_spawn(&co, NULL, set_ran, IP(1)));
    corun_yield();
    corun_yield();
    cr_assert_eq(ran, 1);
    void *r = NULL;
    OK(corun_join(co, &r));
    cr_assert_eq(PI(r), 0xabc);
}

Test(spawn, join_timeout_of_finished_coroutine_with_zero_succeeds)
{
    corun_t *co;
    ran = 0;
    OK(corun_spawn(&co, NULL, set_ran, IP(1)));
    corun_yield();
    cr_assert_eq(ran, 1);
    void *r = NULL;
    OK(corun_join_timeout(co, &r, 0));
    cr_assert_eq(PI(r), 0xabc);
}

static void *join_self(void *arg)
{
    (void)arg;
    int rc1 = corun_join(corun_current(), NULL);
    int rc2 = corun_join_timeout(corun_current(), NULL, CORUN_MSEC(10));
    return IP(rc1 * 1000 + rc2);
}

Test(spawn, join_self_is_edeadlk)
{
    corun_t *co;
    OK(corun_spawn(&co, NULL, join_self, NULL));
    void *r;
    OK(corun_join(co, &r));
    cr_assert_eq(PI(r), (uintptr_t)(EDEADLK * 1000 + EDEADLK),
                 "join(self)/join_timeout(self) returned %d/%d, expected EDEADLK",
                 (int)(PI(r) / 1000), (int)(PI(r) % 1000));
}

Test(spawn, join_of_detached_is_einval)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 0));

    /* Detached at spawn: still alive (parked), so the handle is valid. */
    corun_t *a;
    corun_attr_t attr = { .detached = 1 };
    OK(corun_spawn(&a, &attr, wait_on_chan, ch));
    FAILS(corun_join(a, NULL), EINVAL);
    corun_yield(); /* let it park on the channel */
    FAILS(corun_join(a, NULL), EINVAL);
    FAILS(corun_join_timeout(a, NULL, 0), EINVAL);
    FAILS(corun_join_timeout(a, NULL, CORUN_MSEC(5)), EINVAL);

    /* Detached later. */
    corun_t *b;
    OK(corun_spawn(&b, NULL, wait_on_chan, ch));
    corun_yield();
    OK(corun_detach(b));
    FAILS(corun_join(b, NULL), EINVAL);

    OK(corun_chan_send(ch, IP(1), CORUN_FOREVER));
    OK(corun_chan_send(ch, IP(2), CORUN_FOREVER));
    corun_yield();
    corun_yield();
    OK(corun_chan_close(ch));
    OK(corun_chan_free(ch));
}

static corun_t *target;
static void *joiner(void *arg)
{
    (void)arg;
    void *r = NULL;
    int rc = corun_join(target, &r);
    if (rc != 0)
        return IP(5000 + rc);
    return r;
}

Test(spawn, second_concurrent_joiner_is_einval)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 0));
    OK(corun_spawn(&target, NULL, wait_on_chan, ch));
    corun_t *j1;
    OK(corun_spawn(&j1, NULL, joiner, NULL));
    corun_yield(); /* target parks on ch, j1 parks in join */

    FAILS(corun_join(target, NULL), EINVAL);
    FAILS(corun_join_timeout(target, NULL, 0), EINVAL);
    FAILS(corun_join_timeout(target, NULL, CORUN_MSEC(5)), EINVAL);
    FAILS(corun_detach(target), EINVAL);

    OK(corun_chan_send(ch, IP(77), CORUN_FOREVER));
    void *r = NULL;
    OK(corun_join(j1, &r));
    cr_assert_eq(PI(r), 77, "first joiner got %lu", (unsigned long)PI(r));
    OK(corun_chan_free(ch));
}

static corun_t *self_handle;
static int detached_done;
static void *publish_self_and_wait(void *arg)
{
    self_handle = corun_current();
    void *m = wait_on_chan(arg);
    detached_done = (int)PI(m);
    return NULL;
}

Test(spawn, null_out_starts_detached)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 0));
    self_handle = NULL;
    detached_done = 0;
    OK(corun_spawn(NULL, NULL, publish_self_and_wait, ch));
    corun_yield();
    cr_assert_not_null(self_handle, "coroutine spawned with out == NULL did not run");
    /* It is parked, so its handle is still valid: it must be detached. */
    FAILS(corun_join(self_handle, NULL), EINVAL);
    FAILS(corun_detach(self_handle), EINVAL);
    OK(corun_chan_send(ch, IP(9), CORUN_FOREVER));
    corun_yield();
    corun_yield();
    cr_assert_eq(detached_done, 9);
    OK(corun_chan_free(ch));
}

Test(spawn, attr_detached_runs)
{
    corun_t *co;
    corun_attr_t attr = { .detached = 1 };
    ran = 0;
    OK(corun_spawn(&co, &attr, set_ran, IP(1)));
    corun_yield();
    corun_yield();
    cr_assert_eq(ran, 1);
}

Test(spawn, stack_size_below_min_is_einval)
{
    static const size_t bad[] = { 1, 4096, CORUN_STACK_MIN - 1 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        corun_t *co = NULL;
        corun_attr_t attr = { .stack_size = bad[i] };
        ran = 0;
        FAILS(corun_spawn(&co, &attr, set_ran, IP(1)), EINVAL);
        corun_yield();
        cr_assert_eq(ran, 0, "a coroutine rejected with EINVAL ran anyway");
    }
}

Test(spawn, absurd_stack_size_is_einval)
{
    corun_t *co = NULL;
    corun_attr_t attr = { .stack_size = SIZE_MAX };
    FAILS(corun_spawn(&co, &attr, set_ran, IP(1)), EINVAL);
    attr.stack_size = SIZE_MAX / 2 + 1;
    FAILS(corun_spawn(&co, &attr, set_ran, IP(1)), EINVAL);
}

Test(spawn, stack_size_min_and_odd_sizes_work)
{
    static const size_t good[] = { CORUN_STACK_MIN, CORUN_STACK_MIN + 1, 100000,
                                   1 << 20 };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        corun_t *co;
        corun_attr_t attr = { .stack_size = good[i] };
        OK(corun_spawn(&co, &attr, ret_arg_plus_one, IP(i)));
        void *r;
        OK(corun_join(co, &r));
        cr_assert_eq(PI(r), i + 1);
    }
}

Test(spawn, guard_sizes_work)
{
    static const size_t guards[] = { 0, 4096, 65536, CORUN_GUARD_NONE };
    for (size_t i = 0; i < sizeof guards / sizeof guards[0]; i++) {
        corun_t *co;
        corun_attr_t attr = { .stack_size = 65536, .guard_size = guards[i] };
        OK(corun_spawn(&co, &attr, ret_arg_plus_one, IP(i)));
        void *r;
        OK(corun_join(co, &r));
        cr_assert_eq(PI(r), i + 1);
    }
}

Test(spawn, name_too_long_is_erange)
{
    char name[CORUN_NAME_MAX + 8];
    corun_t *co = NULL;

    memset(name, 'x', CORUN_NAME_MAX);
    name[CORUN_NAME_MAX] = '\0'; /* CORUN_NAME_MAX bytes + NUL: one too many */
    corun_attr_t attr = { .name = name };
    ran = 0;
    FAILS(corun_spawn(&co, &attr, set_ran, IP(1)), ERANGE);
    corun_yield();
    cr_assert_eq(ran, 0);

    name[CORUN_NAME_MAX - 1] = '\0'; /* the longest allowed */
    OK(corun_spawn(&co, &attr, set_ran, IP(1)));
    cr_assert_str_eq(corun_name(co), name);
    OK(corun_join(co, NULL));
    cr_assert_eq(ran, 1);
}

static void *sleep_then_return(void *arg)
{
    corun_sleep(CORUN_MSEC(PI(arg)));
    return IP(4242);
}

Test(spawn, join_timeout_zero_is_eagain)
{
    corun_t *co;
    OK(corun_spawn(&co, NULL, sleep_then_return, IP(20)));
    void *r = IP(1);
    FAILS(corun_join_timeout(co, &r, 0), EAGAIN);
    cr_assert_eq(PI(r), 1, "retval written on failure");
    corun_yield(); /* now it is sleeping */
    FAILS(corun_join_timeout(co, &r, 0), EAGAIN);
    OK(corun_join(co, &r));
    cr_assert_eq(PI(r), 4242);
}

Test(spawn, join_timeout_expires_and_stays_joinable)
{
    corun_t *co;
    OK(corun_spawn(&co, NULL, sleep_then_return, IP(300)));
    void *r = IP(1);
    int64_t t0 = tu_now();
    FAILS(corun_join_timeout(co, &r, CORUN_MSEC(30)), ETIMEDOUT);
    int64_t el = tu_now() - t0;
    cr_assert_geq(el, CORUN_MSEC(30), "join_timeout returned ETIMEDOUT early, after %lld ns",
                  (long long)el);
    cr_assert_lt(el, CORUN_MSEC(290), "join_timeout waited for the coroutine (%lld ns)",
                 (long long)el);
    /* Still joinable, also by a timed join, and a second timeout works too. */
    FAILS(corun_join_timeout(co, &r, CORUN_MSEC(10)), ETIMEDOUT);
    OK(corun_join_timeout(co, &r, CORUN_SEC(10)));
    cr_assert_eq(PI(r), 4242);
}

Test(spawn, join_timeout_after_timeout_then_plain_join)
{
    corun_t *co;
    OK(corun_spawn(&co, NULL, sleep_then_return, IP(50)));
    FAILS(corun_join_timeout(co, NULL, CORUN_MSEC(5)), ETIMEDOUT);
    /* After the timed-out join, another coroutine may join it. */
    target = co;
    corun_t *j;
    OK(corun_spawn(&j, NULL, joiner, NULL));
    void *r = NULL;
    OK(corun_join(j, &r));
    cr_assert_eq(PI(r), 4242);
}

Test(spawn, join_timeout_succeeds_before_expiry)
{
    corun_t *co;
    OK(corun_spawn(&co, NULL, sleep_then_return, IP(10)));
    void *r = NULL;
    int64_t t0 = tu_now();
    OK(corun_join_timeout(co, &r, CORUN_SEC(20)));
    cr_assert_eq(PI(r), 4242);
    cr_assert_lt(tu_now() - t0, CORUN_SEC(5));
}

Test(spawn, join_timeout_forever_is_join)
{
    corun_t *co;
    OK(corun_spawn(&co, NULL, sleep_then_return, IP(5)));
    void *r = NULL;
    OK(corun_join_timeout(co, &r, CORUN_FOREVER));
    cr_assert_eq(PI(r), 4242);
}

Test(spawn, detach_of_finished_releases)
{
    corun_t *co;
    ran = 0;
    OK(corun_spawn(&co, NULL, set_ran, IP(1)));
    corun_yield();
    cr_assert_eq(ran, 1);
    OK(corun_detach(co));
    /* co is invalid now; spawning more must still work. */
    OK(corun_spawn(&co, NULL, set_ran, IP(1)));
    OK(corun_join(co, NULL));
    cr_assert_eq(ran, 2);
}

Test(spawn, detach_before_start_then_runs)
{
    corun_t *co;
    ran = 0;
    OK(corun_spawn(&co, NULL, set_ran, IP(1)));
    OK(corun_detach(co));
    corun_yield();
    corun_yield();
    cr_assert_eq(ran, 1);
}

Test(spawn, detach_twice_is_einval)
{
    corun_chan_t *ch;
    OK(corun_chan_new(&ch, 0));
    corun_t *co;
    OK(corun_spawn(&co, NULL, wait_on_chan, ch));
    OK(corun_detach(co));
    FAILS(corun_detach(co), EINVAL); /* not yet started */
    corun_yield();
    FAILS(corun_detach(co), EINVAL); /* parked */
    OK(corun_chan_send(ch, IP(1), CORUN_FOREVER));
    corun_yield();
    corun_yield();
    OK(corun_chan_free(ch));
}

static void *yield_n(void *arg)
{
    uintptr_t n = PI(arg);
    for (uintptr_t i = 0; i < n; i++)
        corun_yield();
    return IP(n);
}

Test(spawn, join_waits_for_yielding_coroutine)
{
    corun_t *co;
    OK(corun_spawn(&co, NULL, yield_n, IP(1000)));
    void *r;
    OK(corun_join(co, &r));
    cr_assert_eq(PI(r), 1000);
}

/* A coroutine joining a coroutine it spawned itself. */
static void *spawn_and_join(void *arg)
{
    uintptr_t depth = PI(arg);
    if (depth == 0)
        return IP(1);
    corun_t *child;
    if (corun_spawn(&child, NULL, spawn_and_join, IP(depth - 1)) != 0)
        return IP(0);
    void *r = NULL;
    if (corun_join(child, &r) != 0)
        return IP(0);
    return IP(PI(r) + 1);
}

Test(spawn, nested_spawn_and_join)
{
    corun_t *co;
    corun_attr_t attr = { .stack_size = 64 * 1024 };
    OK(corun_spawn(&co, &attr, spawn_and_join, IP(50)));
    void *r;
    OK(corun_join(co, &r));
    cr_assert_eq(PI(r), 51);
}

Test(spawn, many_sequential_spawn_join_cycles)
{
    corun_attr_t attr = { .stack_size = CORUN_STACK_MIN };
    for (int i = 0; i < 20000; i++) {
        corun_t *co;
        OK(corun_spawn(&co, (i & 1) ? &attr : NULL, ret_arg_plus_one, IP(i)));
        void *r;
        OK(corun_join(co, &r));
        cr_assert_eq(PI(r), (uintptr_t)i + 1);
    }
}

Test(spawn, attr_is_not_retained)
{
    corun_attr_t *attr = malloc(sizeof *attr);
    char *name = strdup("temporary");
    cr_assert_not_null(attr);
    cr_assert_not_null(name);
    *attr = (corun_attr_t){ .stack_size = 65536, .name = name };
    corun_t *co;
    OK(corun_spawn(&co, attr, ret_arg_plus_one, IP(1)));
    memset(name, 'Z', strlen(name));
    free(name);
    memset(attr, 0xff, sizeof *attr);
    free(attr);
    cr_assert_str_eq(corun_name(co), "temporary");
    void *r;
    OK(corun_join(co, &r));
    cr_assert_eq(PI(r), 2);
}

static void *detach_self(void *arg)
{
    int rc = corun_detach(corun_current());
    corun_yield();
    ran = rc == 0 ? 1 : -rc;
    return arg;
}

Test(spawn, detach_self_while_running)
{
    corun_t *co;
    ran = 0;
    OK(corun_spawn(&co, NULL, detach_self, NULL));
    corun_yield();
    FAILS(corun_join(co, NULL), EINVAL); /* detached by itself, still alive */
    corun_yield();
    corun_yield();
    cr_assert_eq(ran, 1);
}

Test(spawn, join_timeout_huge_is_like_forever)
{
    corun_t *co;
    OK(corun_spawn(&co, NULL, sleep_then_return, IP(5)));
    void *r = NULL;
    OK(corun_join_timeout(co, &r, INT64_MAX));
    cr_assert_eq(PI(r), 4242);
}

#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif

#ifndef TU_ASAN
/* In a child: with the address space limited, a big stack cannot be had.
 * spawn must fail with ENOMEM or EAGAIN, not crash; small spawns still work.
 * Exit status: 0 ok, 10 + rc for a wrong error, 1-9 other failures. */
static void no_address_space_child(void *arg)
{
    (void)arg;
    corun_t *co;
    void *r;
    if (corun_spawn(&co, NULL, ret_arg_plus_one, IP(1)) != 0 || corun_join(co, &r) != 0)
        _exit(1);
    struct rlimit rl = { .rlim_cur = (rlim_t)4 << 30, .rlim_max = RLIM_INFINITY };
    getrlimit(RLIMIT_AS, &rl);
    rl.rlim_cur = (rlim_t)4 << 30; /* 4 GiB: far less than 16 stacks of 1 GiB */
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        _exit(2);
    corun_attr_t big = { .stack_size = (size_t)1 << 30 };
    int rc = corun_spawn(&co, &big, ret_arg_plus_one, IP(1));
    if (rc == 0) {
        /* Only reserving address space lazily might still succeed; then it
         * must run. */
        if (corun_join(co, &r) != 0 || PI(r) != 2)
            _exit(3);
    } else if (rc != ENOMEM && rc != EAGAIN) {
        _exit(10 + rc);
    }
    corun_attr_t small = { .stack_size = CORUN_STACK_MIN };
    if (corun_spawn(&co, &small, ret_arg_plus_one, IP(5)) != 0 || corun_join(co, &r) != 0 ||
        PI(r) != 6)
        _exit(4);
    _exit(0);
}
#endif

Test(spawn, spawn_without_address_space_fails_cleanly)
{
#ifdef TU_ASAN
    cr_skip_test("RLIMIT_AS cannot be lowered under AddressSanitizer");
#else
    struct tu_child c;
    char st[128];
    tu_fork_run(no_address_space_child, NULL, &c);
    cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0,
              "child %s (10+errno: wrong error)\nstderr: %s",
              tu_status_str(c.status, st, sizeof st), c.err);
#endif
}
