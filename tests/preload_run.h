/*
 * preload_run.h - run one of the plain test programs of the build tree
 * (tests/PROG MODE) natively or under LD_PRELOAD=libcorun.so, with
 * extra environment entries, capturing its output (test_pthread_green,
 * test_wait_green, test_fileio, test_ffi_offload). Include after
 * testutil.h; needs TEST_BUILDDIR.
 */
#ifndef CORUN_PRELOAD_RUN_H
#define CORUN_PRELOAD_RUN_H

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
    for (size_t i = 0; i < n; i++)
        if (!pr_env_is(environ[i], "LD_PRELOAD") && strncmp(environ[i], "CORUN_", 6) &&
            !pr_env_is(environ[i], "ASAN_OPTIONS"))
            env[e++] = environ[i];
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

#endif
