/*
 * preload_run.h - run one of the plain test programs of the build tree
 * (tests/PROG MODE) natively or under LD_PRELOAD=libcorun.so, with
 * extra environment entries, capturing its output (test_pthread_green,
 * test_wait_green, test_fileio, test_ffi_offload). Include after
 * testutil.h; needs TEST_BUILDDIR.
 */
#ifndef CORUN_PRELOAD_RUN_H
#define CORUN_PRELOAD_RUN_H

#include <sys/syscall.h>

#include "preload_how.h"

#ifndef TEST_BUILDDIR
#error "TEST_BUILDDIR must name the build directory"
#endif

extern char **environ;

static inline bool pr_env_is(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return !strncmp(entry, name, n) && entry[n] == '=';
}

/*
 * An environment for a child: ours minus LD_PRELOAD, CORUN_* and
 * ASAN_OPTIONS; LD_PRELOAD=libcorun.so if `preload`; then `extra`
 * (NULL-terminated, may be NULL). calloc'd; the strings are ours or static.
 *
 * The preload is libcorun alone, in every build. In sanitizer builds the
 * programs are instrumented and load the ASan runtime themselves; ASan only
 * objects that it is not first in the library list, and LeakSanitizer has
 * nothing to say about their threads. Preloading libasan first instead
 * would put ASan's pthread_create interceptor in front of corun's hook, and
 * corun leaves the sanitizer runtimes' own pthread calls to glibc: the
 * program's threads would stay kernel threads.
 */
static inline char **pr_env(bool preload, const char *const *extra)
{
    static char pre[2048], asan[1024];
    size_t n = 0, more = 0;
    while (environ[n])
        n++;
    while (extra && extra[more])
        more++;
    char **env = calloc(n + more + 3, sizeof *env);
    cr_assert_not_null(env);
    size_t e = 0;
    bool procs_given = false;
    for (size_t i = 0; i < more; i++)
        procs_given |= pr_env_is(extra[i], "CORUN_PROCS");
    for (size_t i = 0; i < n; i++)
        if ((!pr_env_is(environ[i], "LD_PRELOAD") && strncmp(environ[i], "CORUN_", 6) &&
             !pr_env_is(environ[i], "ASAN_OPTIONS")) ||
            (pr_env_is(environ[i], "CORUN_PROCS") && !procs_given))
            env[e++] = environ[i];   /* the suite runs at a CORUN_PROCS of its caller's */
    if (preload) {
        snprintf(pre, sizeof pre, "LD_PRELOAD=%s", TEST_BUILDDIR "/.libs/libcorun.so");
        env[e++] = pre;
    }
    const char *ao = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof asan, "ASAN_OPTIONS=%s%sdetect_leaks=0:verify_asan_link_order=0",
             ao ? ao : "", ao && *ao ? ":" : "");
    env[e++] = asan;
    for (size_t i = 0; i < more; i++)
        env[e++] = (char *)extra[i];
    env[e] = NULL;
    return env;
}

/* The most OS threads a green program may run on: CORUN_PROCS as the
 * suite was started with (corun's workers), else its default, the CPUs
 * this process may run on. */
static inline long pr_procs(void)
{
    const char *p = getenv("CORUN_PROCS");
    if (p && *p)
        return strtol(p, NULL, 10);
    unsigned long mask[16] = { 0 };
    long got = syscall(SYS_sched_getaffinity, 0, sizeof mask, mask);
    long n = 0;
    for (long i = 0; i < got / (long)sizeof mask[0]; i++)
        n += __builtin_popcountl(mask[i]);
    return n > 0 ? n : 1;
}

/* Run TEST_BUILDDIR/tests/prog with args (NULL-terminated) in pr_env(). */
static inline void pr_run(const char *prog, const char *const *args, bool preload,
                          const char *const *extra, struct tu_child *c)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/tests/%s", TEST_BUILDDIR, prog);
    cr_assert_eq(access(path, X_OK), 0, "%s: %s (build it with make check)", path, strerror(errno));
    char *argv[16];
    int k = 0;
    argv[k++] = path;
    for (int i = 0; args && args[i] && k < 15; i++)
        argv[k++] = (char *)args[i];
    argv[k] = NULL;
    char **env = pr_env(preload, extra);
    tu_exec_run(path, argv, env, c);
    free(env);
}

/* Assertion message: how the child ended, and its output. */
#define PR_FMT "%s: %s\n--- stdout ---\n%s--- stderr ---\n%s"
#define PR_ARGS(what, c, st) what, tu_status_str((c)->status, st, sizeof st), (c)->out, (c)->err

/* The integer after `key=` in the child's stdout, or -1. */
static inline long pr_value(const struct tu_child *c, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "%s=", key);
    const char *p = strstr(c->out, k);
    return p ? strtol(p + strlen(k), NULL, 10) : -1;
}

/* ---- the green / native / plain matrix -------------------------------------------*/

/* How a program runs: PT_PRELOAD is libcorun preloaded with CORUN_THREADS
 * unset (or as `extra` says). (The enum is in preload_how.h, so that a
 * driver's MATRIX_SKIP can be defined before this file.) */
static inline const char *pt_how_name(enum pt_how how)
{
    return how == PT_GREEN ? "LD_PRELOAD=libcorun.so CORUN_THREADS=green"
         : how == PT_NATIVE ? "LD_PRELOAD=libcorun.so CORUN_THREADS=native"
         : how == PT_PRELOAD ? "LD_PRELOAD=libcorun.so"
                             : "without libcorun";
}

/* Run tests/PROG with args (NULL-terminated), plus what `how` needs and
 * `extra` (NULL-terminated, may be NULL). */
static inline void pt_run(const char *prog, const char *const *args, enum pt_how how,
                          const char *const *extra, struct tu_child *c)
{
    const char *env[32];
    int k = 0;
    if (how == PT_GREEN || how == PT_NATIVE)
        env[k++] = how == PT_GREEN ? "CORUN_THREADS=green" : "CORUN_THREADS=native";
    for (int i = 0; extra && extra[i] && k < 31; i++)
        env[k++] = extra[i];
    env[k] = NULL;
    pr_run(prog, args, how != PT_PLAIN, env, c);
}

/* Assertion message: what ran, how it ended, and its output. */
#define PT_FMT "%s %s, %s: %s\n--- stdout ---\n%s--- stderr ---\n%s"
#define PT_ARGS(prog, mode, how, c, st)                                                      \
    prog, mode, pt_how_name(how), tu_status_str((c)->status, st, sizeof st), (c)->out, (c)->err

#ifndef MATRIX_SKIP
#define MATRIX_SKIP(prog, mode, how) ((void)0)
#endif

/* Run `PROG MODE` as `how` and require a pass: exit 0 and "PASS MODE";
 * libcorun loaded (or not, plain); green runs on one OS thread. */
static inline void matrix_check(const char *prog, const char *mode, enum pt_how how,
                                const char *const *extra)
{
    MATRIX_SKIP(prog, mode, how);
#ifdef CORUN_SANITIZERS
    /* Without libcorun the run tests only the sanitizer's runtime with
     * glibc: not here (pt_thread detach hung in CI so, ASan's allocator
     * lock against glibc's stack cache lock in exiting threads). */
    if (how == PT_PLAIN)
        cr_skip_test("the reference run is the normal build's");
#endif
    struct tu_child *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    const char *args[] = { mode, NULL };
    pt_run(prog, args, how, extra, c);
    char st[128], pass[128];
    snprintf(pass, sizeof pass, "PASS %s\n", mode);
    long procs = pr_procs();            /* or as `extra` sets it */
    /* PT_EXTRA_TASKS=N: an OS thread stuck in a real blocking call while
     * another runs its green threads (CORUN_HANDOFF_MS) counts besides. */
    for (int i = 0; extra && extra[i]; i++)
        if (pr_env_is(extra[i], "CORUN_PROCS"))
            procs = strtol(extra[i] + strlen("CORUN_PROCS="), NULL, 10);
        else if (pr_env_is(extra[i], "PT_EXTRA_TASKS"))
            procs += strtol(extra[i] + strlen("PT_EXTRA_TASKS="), NULL, 10);
    cr_assert(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0 && strstr(c->out, pass),
              PT_FMT, PT_ARGS(prog, mode, how, c, st));
    if (how == PT_PLAIN)
        cr_assert(strstr(c->out, "corun=0 green=0"), PT_FMT, PT_ARGS(prog, mode, how, c, st));
    else if (how == PT_NATIVE)
        cr_assert(strstr(c->out, "corun=1 green=0"),
                  "libcorun was not loaded (preload failed?): " PT_FMT,
                  PT_ARGS(prog, mode, how, c, st));
    else
        cr_assert(strstr(c->out, "corun=1 green=1 max_tasks=") &&
                      pr_value(c, "max_tasks") >= 1 && pr_value(c, "max_tasks") <= procs,
                  "not green threads on CORUN_PROCS OS threads: " PT_FMT,
                  PT_ARGS(prog, mode, how, c, st));
    free(c);
}

/* One mode of PROG as three tests, in suites SUITE_green, SUITE_native and
 * SUITE_plain; the variadic part is extra environment entries (NULL: none). */
#define MATRIX(suite, name, prog, mode, ...)                                                 \
    Test(suite##_green, name)                                                                \
    {                                                                                        \
        const char *const extra_[] = { __VA_ARGS__ };                                        \
        matrix_check(#prog, #mode, PT_GREEN, extra_);                                        \
    }                                                                                        \
    Test(suite##_native, name)                                                               \
    {                                                                                        \
        const char *const extra_[] = { __VA_ARGS__ };                                        \
        matrix_check(#prog, #mode, PT_NATIVE, extra_);                                       \
    }                                                                                        \
    Test(suite##_plain, name)                                                                \
    {                                                                                        \
        const char *const extra_[] = { __VA_ARGS__ };                                        \
        matrix_check(#prog, #mode, PT_PLAIN, extra_);                                        \
    }

#endif
