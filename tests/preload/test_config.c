/*
 * test_config.c - CORUN_STACK_SIZE validation and use, by running the
 * corun_helper program with a controlled environment.
 */
#include <signal.h>

#include "testutil.h"

#ifndef TEST_BUILDDIR
#error "TEST_BUILDDIR must be defined (the build tree's top directory)"
#endif

#define HELPER TEST_BUILDDIR "/tests/corun_helper"

TestSuite(config, .timeout = 60);

extern char **environ;

/* Run the helper with the current environment minus every CORUN_* variable,
 * plus setting (e.g. "CORUN_STACK_SIZE=64K", or NULL for none). */
static void run_helper(const char *setting, const char *a1, const char *a2,
                       struct tu_child *c)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = calloc(n + 2, sizeof *envp);
    cr_assert_not_null(envp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "CORUN_", 6) != 0)
            envp[k++] = environ[i];
    if (setting)
        envp[k++] = (char *)setting;
    envp[k] = NULL;
    char *argv[] = { (char *)HELPER, (char *)a1, (char *)a2, NULL };
    tu_exec_run(HELPER, argv, envp, c);
    free(envp);
}

static void expect_ok(const char *setting, const char *a1, const char *a2,
                      const char *want_out)
{
    struct tu_child c;
    char st[128];
    run_helper(setting, a1, a2, &c);
    cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0,
              "%s %s %s: helper %s\nstdout: %s\nstderr: %s", setting ? setting : "(unset)",
              a1, a2 ? a2 : "", tu_status_str(c.status, st, sizeof st), c.out, c.err);
    cr_assert(strstr(c.out, want_out), "%s: stdout [%s] lacks [%s]",
              setting ? setting : "(unset)", c.out, want_out);
}

Test(config, helper_runs_without_settings)
{
    expect_ok(NULL, "hello", NULL, "hello ok");
    expect_ok("CORUN_STACK_SIZE=", "hello", NULL, "hello ok"); /* empty: unset */
}

static void expect_rejected(const char *value)
{
    char setting[256];
    struct tu_child c;
    char st[128];
    snprintf(setting, sizeof setting, "CORUN_STACK_SIZE=%s", value);
    run_helper(setting, "hello", NULL, &c);
    cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 2,
              "%s: helper %s, expected exit status 2\nstdout: %s\nstderr: %s", setting,
              tu_status_str(c.status, st, sizeof st), c.out, c.err);
    cr_assert_null(strstr(c.out, "ok"), "%s: the program ran anyway: %s", setting, c.out);
    cr_assert(strstr(c.err, "CORUN_STACK_SIZE"), "%s: message does not name the variable: [%s]",
              setting, c.err);
    cr_assert(strstr(c.err, value), "%s: message does not show the rejected value: [%s]",
              setting, c.err);
    /* What is allowed: at least the minimum must be stated. */
    cr_assert(strstr(c.err, "16K") || strstr(c.err, "16384") || strstr(c.err, "16 K"),
              "%s: message does not say what is allowed: [%s]", setting, c.err);
}

Test(config, stack_size_banana_rejected)
{
    expect_rejected("banana");
}

Test(config, stack_size_one_rejected)
{
    expect_rejected("1");
}

Test(config, stack_size_negative_rejected)
{
    expect_rejected("-5");
}

Test(config, stack_size_other_garbage_rejected)
{
    expect_rejected("64Q");
    expect_rejected("12 K");
    expect_rejected("K");
    expect_rejected("16383");
    expect_rejected("99999999999999999999999999");
    expect_rejected("18446744073709551615K");
}

Test(config, stack_size_64k_is_honoured)
{
    /* Fits in 64 KiB. */
    expect_ok("CORUN_STACK_SIZE=64K", "use", "24", "used 24 ok");
    expect_ok("CORUN_STACK_SIZE=65536", "use", "24", "used 24 ok");

    /* Does not fit in 64 KiB (it would in the 8 MiB default): overflow. */
    static const char *const settings[] = { "CORUN_STACK_SIZE=64K",
                                            "CORUN_STACK_SIZE=65536" };
    for (size_t i = 0; i < 2; i++) {
        struct tu_child c;
        char st[128];
        run_helper(settings[i], "use", "256", &c);
        cr_assert(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT,
                  "%s use 256: helper %s, expected SIGABRT\nstdout: %s\nstderr: %s",
                  settings[i], tu_status_str(c.status, st, sizeof st), c.out, c.err);
        cr_assert(strstr(c.err, "CORUN_STACK_SIZE"), "diagnostic: [%s]", c.err);
        cr_assert(strstr(c.err, "65536") || strstr(c.err, "64K") || strstr(c.err, "64 K"),
                  "diagnostic does not mention the 64 KiB stack: [%s]", c.err);
    }
}

Test(config, stack_size_larger_values_are_honoured)
{
    expect_ok("CORUN_STACK_SIZE=1M", "use", "256", "used 256 ok");
    expect_ok("CORUN_STACK_SIZE=16K", "hello", NULL, "hello ok");
    expect_ok(NULL, "use", "256", "used 256 ok");
}
