/*
 * test_ident.c - corun_current, corun_id, corun_name, corun_set_name.
 */
#include "testutil.h"

TestSuite(ident, .timeout = 30);

static void *report_current(void *arg)
{
    corun_t **slot = arg;
    *slot = corun_current();
    return IP(corun_id(corun_current()));
}

Test(ident, main_coroutine_is_id_1_and_stable)
{
    corun_t *m = corun_current();
    cr_assert_not_null(m);
    cr_assert_eq(corun_current(), m);
    cr_assert_eq(corun_id(m), 1, "the first scheduler's main coroutine has id %llu",
                 (unsigned long long)corun_id(m));
    corun_yield();
    corun_sleep(CORUN_MSEC(1));
    cr_assert_eq(corun_current(), m);
    cr_assert_eq(corun_id(corun_current()), 1);
}

Test(ident, current_inside_coroutine_is_its_handle)
{
    corun_t *seen = NULL;
    corun_t *co;
    OK(corun_spawn(&co, NULL, report_current, &seen));
    uint64_t id = corun_id(co);
    void *r;
    OK(corun_join(co, &r));
    cr_assert_eq(seen, co);
    cr_assert_eq(PI(r), id);
    cr_assert_neq(id, 1);
}

static void *nothing(void *arg)
{
    return arg;
}

Test(ident, ids_are_unique_and_increasing)
{
    enum { N = 200 };
    corun_t *co[N];
    uint64_t ids[N];
    uint64_t main_id = corun_id(corun_current());
    for (int i = 0; i < N; i++) {
        OK(corun_spawn(&co[i], NULL, nothing, NULL));
        ids[i] = corun_id(co[i]);
        cr_assert_gt(ids[i], main_id);
        if (i > 0)
            cr_assert_gt(ids[i], ids[i - 1], "id %llu after %llu",
                         (unsigned long long)ids[i], (unsigned long long)ids[i - 1]);
    }
    for (int i = 0; i < N; i++)
        OK(corun_join(co[i], NULL));
    /* Never reused: new coroutines get ids above all earlier ones. */
    for (int i = 0; i < N; i++) {
        corun_t *c;
        OK(corun_spawn(&c, NULL, nothing, NULL));
        cr_assert_gt(corun_id(c), ids[N - 1]);
        OK(corun_join(c, NULL));
    }
}

Test(ident, names_from_attr_and_default_empty)
{
    corun_t *a, *b;
    corun_attr_t attr = { .name = "worker-1" };
    OK(corun_spawn(&a, &attr, nothing, NULL));
    OK(corun_spawn(&b, NULL, nothing, NULL));
    cr_assert_str_eq(corun_name(a), "worker-1");
    cr_assert_not_null(corun_name(b));
    cr_assert_str_eq(corun_name(b), "");
    cr_assert_not_null(corun_name(corun_current()));
    OK(corun_join(a, NULL));
    OK(corun_join(b, NULL));
}

Test(ident, name_is_copied)
{
    char buf[CORUN_NAME_MAX] = "original";
    corun_attr_t attr = { .name = buf };
    corun_t *a;
    OK(corun_spawn(&a, &attr, nothing, NULL));
    strcpy(buf, "changed");
    cr_assert_str_eq(corun_name(a), "original");

    strcpy(buf, "renamed");
    OK(corun_set_name(a, buf));
    strcpy(buf, "changed");
    cr_assert_str_eq(corun_name(a), "renamed");
    OK(corun_join(a, NULL));
}

Test(ident, set_name_and_clear)
{
    corun_t *me = corun_current();
    OK(corun_set_name(me, "main"));
    cr_assert_str_eq(corun_name(me), "main");
    OK(corun_set_name(me, NULL));
    cr_assert_str_eq(corun_name(me), "");
    OK(corun_set_name(me, "again"));
    cr_assert_str_eq(corun_name(me), "again");
    OK(corun_set_name(me, ""));
    cr_assert_str_eq(corun_name(me), "");
}

Test(ident, set_name_length_limits)
{
    char name[CORUN_NAME_MAX + 1];
    corun_t *me = corun_current();

    memset(name, 'n', CORUN_NAME_MAX);
    name[CORUN_NAME_MAX] = '\0';
    FAILS(corun_set_name(me, name), ERANGE);

    name[CORUN_NAME_MAX - 1] = '\0';
    OK(corun_set_name(me, name));
    cr_assert_str_eq(corun_name(me), name);
    cr_assert_eq(strlen(corun_name(me)), CORUN_NAME_MAX - 1);

    char longer[200];
    memset(longer, 'L', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    FAILS(corun_set_name(me, longer), ERANGE);
}

static void *rename_self(void *arg)
{
    corun_set_name(corun_current(), arg);
    corun_yield();
    return NULL;
}

Test(ident, set_name_of_other_coroutines)
{
    corun_t *a;
    corun_attr_t attr = { .name = "before" };
    OK(corun_spawn(&a, &attr, rename_self, "by-itself"));
    OK(corun_set_name(a, "by-main"));
    cr_assert_str_eq(corun_name(a), "by-main");
    corun_yield();
    cr_assert_str_eq(corun_name(a), "by-itself");
    OK(corun_join(a, NULL));
}
