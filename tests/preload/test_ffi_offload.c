/*
 * test_ffi_offload.c - CORUN_OFFLOAD: functions of a library built by the
 * tests (tests/preload/offtest_lib.c) run on the pool through libffi closures,
 * called by tests/pt_offload (linked with the library) and
 * tests/pt_offload_dl (loads a library that calls it, with dlopen).
 *
 * offtest_slow sleeps 200 ms in a raw system call: called by 8 green
 * threads at once it takes 8 x 200 ms when it blocks the loop, about
 * 200 ms when offloaded. The bounds are generous (under 1 s offloaded, at
 * least 1.4 s not); the ticker thread must keep ticking meanwhile.
 */
#include "testutil.h"
#include "preload_run.h"

TestSuite(ffi_offload, .timeout = 120);

#define SLOW_SIG "libofftest.so:offtest_slow:l(idpl)"
#define GRADE_SIG "libofftest.so:offtest_grade:c(Cfp)"
#define OTHER_SIGS "libofftest.so:offtest_scale:d(ds),libofftest.so:offtest_fail:i(i)"

static const char *threads_env = "CORUN_THREADS=green";

static struct tu_child *run(const char *prog, const char *mode, bool preload, const char *offload)
{
    struct tu_child *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    static char off[1024];
    snprintf(off, sizeof off, "CORUN_OFFLOAD=%s", offload ? offload : "");
    /* The library's blocking call is its own syscall instruction: caught
     * (the default where the kernel can), it would park without any
     * offload; these tests measure the offload alone. */
    const char *extra[] = { off, threads_env, "CORUN_CATCH=plt", NULL };
    const char *args[] = { mode, NULL };
    pr_run(prog, args, preload, extra, c);
    char st[128], pass[64], what[1200];
    snprintf(pass, sizeof pass, "PASS %s\n", mode);
    snprintf(what, sizeof what, "%s %s, %s, CORUN_OFFLOAD='%s'", prog, mode,
             preload ? "preloaded" : "native", offload ? offload : "");
    cr_assert(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0 && strstr(c->out, pass), PR_FMT,
              PR_ARGS(what, c, st));
    if (preload)
        cr_assert(strstr(c->out, threads_env[14] == 'g' ? "corun=1 green=1" : "corun=1 green=0"),
                  "not as %s: " PR_FMT, threads_env, PR_ARGS(what, c, st));
    return c;
}

static void offloaded_concurrently(const char *prog)
{
    struct tu_child *c = run(prog, "concurrent", true, SLOW_SIG "," GRADE_SIG);
    long ms = pr_value(c, "elapsed_ms"), ticks = pr_value(c, "ticks");
    cr_assert(ms >= 0 && ms < 1000, "8 offloaded 200 ms calls took %ld ms:\n%s", ms, c->out);
    cr_assert_geq(ticks, 20, "the ticker thread stalled during the calls:\n%s", c->out);
    free(c);
}

Test(ffi_offload, linked_calls_run_concurrently)
{
    free(run("pt_offload", "concurrent", false, NULL));
    offloaded_concurrently("pt_offload");
}

/* Without the setting, the same calls block the loop one after the other:
 * proof that the bound above measures the offload. */
Test(ffi_offload, without_offload_calls_serialise)
{
    struct tu_child *c = run("pt_offload", "concurrent", true, NULL);
    long ms = pr_value(c, "elapsed_ms");
    cr_assert_geq(ms, 1400, "8 blocking 200 ms calls took only %ld ms:\n%s", ms, c->out);
    free(c);
}

Test(ffi_offload, dlopened_objects_are_patched)
{
    free(run("pt_offload_dl", "concurrent", false, NULL));
    offloaded_concurrently("pt_offload_dl");
    free(run("pt_offload_dl", "values", true, SLOW_SIG "," GRADE_SIG));
}

Test(ffi_offload, signatures_and_errno)
{
    free(run("pt_offload", "values", false, NULL));
    free(run("pt_offload", "values", true, SLOW_SIG "," GRADE_SIG "," OTHER_SIGS));
}

Test(ffi_offload, lone_thread_calls_directly)
{
    free(run("pt_offload", "lone", true, SLOW_SIG));
    free(run("pt_offload_dl", "lone", true, SLOW_SIG));
}

/* Naming what is not there is a warning, never a crash; the rest works. */
Test(ffi_offload, unknown_function_warns)
{
    struct tu_child *c = run("pt_offload", "concurrent", true,
                             "libofftest.so:offtest_missing:i()," SLOW_SIG);
    cr_assert(strstr(c->err, "warning: CORUN_OFFLOAD:") && strstr(c->err, "offtest_missing"),
              "no warning:\n%s", c->err);
    cr_assert_lt(pr_value(c, "elapsed_ms"), 1000, "%s", c->out);
    free(c);
}

Test(ffi_offload, unknown_library_warns)
{
    struct tu_child *c = run("pt_offload", "lone", true, "libnot-there.so.7:f:v()");
    cr_assert(strstr(c->err, "warning: CORUN_OFFLOAD: libnot-there.so.7 was never loaded"),
              "no warning:\n%s", c->err);
    free(c);
}

static void rejected(const char *value, const char *why)
{
    struct tu_child c;
    char env[512];
    snprintf(env, sizeof env, "CORUN_OFFLOAD=%s", value);
    const char *extra[] = { env, NULL };
    const char *args[] = { "lone", NULL };
    pr_run("pt_offload", args, true, extra, &c);
    char st[128];
    cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 2, PR_FMT, PR_ARGS(value, &c, st));
    cr_assert(strstr(c.err, "invalid CORUN_OFFLOAD=") && strstr(c.err, why) &&
                  strstr(c.err, "LIB:FUNCTION:SIGNATURE"),
              "message for '%s' should say '%s' and the syntax:\n%s", value, why, c.err);
}

Test(ffi_offload, malformed_settings_exit_2)
{
    rejected("libofftest.so:offtest_slow", "three fields");
    rejected("libofftest.so:offtest_slow:l(idpl):x", "three fields");
    rejected("libofftest.so:offtest_slow:l(idpx)", "'x' is not a type letter");
    rejected("libofftest.so:offtest_slow:l idpl", "not RET(ARGS)");
    rejected("libofftest.so:offtest_slow:v(v)", "only allowed as the return type");
    rejected(":offtest_slow:l()", "library name is empty");
    rejected("libofftest.so:9lives:i()", "not a C function name");
    rejected(SLOW_SIG ",", "entry 2 is empty");
    rejected(SLOW_SIG "," SLOW_SIG, "named twice");
    rejected("libofftest.so:f:i(iiiiiiiiiiiiiiiii)", "more than 16 arguments");
}

/* Kernel threads (CORUN_THREADS=native) each run alone on their loop: the
 * closure calls the function directly, in parallel as natively. */
Test(ffi_offload, native_threads_call_directly)
{
    threads_env = "CORUN_THREADS=native";
    struct tu_child *c = run("pt_offload", "concurrent", true, SLOW_SIG "," GRADE_SIG);
    long ms = pr_value(c, "elapsed_ms");
    cr_assert(ms >= 0 && ms < 1000, "8 kernel threads' 200 ms calls took %ld ms:\n%s", ms, c->out);
    free(c);
    free(run("pt_offload", "values", true, SLOW_SIG "," GRADE_SIG "," OTHER_SIGS));
}
