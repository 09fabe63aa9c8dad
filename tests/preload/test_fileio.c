/*
 * test_fileio.c - regular files under the preload (CORUN_FILE_IO), through
 * the plain program tests/pt_file (see its modes).
 *
 * Every mode runs natively (the program's expectations are what the kernel
 * does) and under the preload with each policy. Beyond "PASS", the tests
 * check where the calls ran, by the OS threads the process had: libuv's
 * pool starts its threads on the first offloaded call, so a process that
 * stays at one OS thread offloaded nothing.
 */
#include <sys/stat.h>

#include "testutil.h"
#include "preload_run.h"

TestSuite(fileio, .timeout = 120);

static struct tu_child *run(const char *mode, bool preload, const char *policy, const char *dir)
{
    struct tu_child *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    static char pol[64], d[256];
    snprintf(pol, sizeof pol, "CORUN_FILE_IO=%s", policy ? policy : "");
    snprintf(d, sizeof d, "PT_FILE_DIR=%s", dir ? dir : "");
    /* These count OS threads to see the pool start: corun's workers
     * (CORUN_PROCS) would count too. */
    const char *extra[] = { pol, d, "CORUN_PROCS=1", NULL };
    const char *args[] = { mode, NULL };
    pr_run("pt_file", args, preload, extra, c);
    char st[128], pass[64], what[256];
    snprintf(pass, sizeof pass, "PASS %s\n", mode);
    snprintf(what, sizeof what, "pt_file %s, %s CORUN_FILE_IO=%s dir %s", mode,
             preload ? "preloaded" : "native", policy ? policy : "(default)", dir ? dir : "/tmp");
    cr_assert(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0 && strstr(c->out, pass), PR_FMT,
              PR_ARGS(what, c, st));
    if (preload)
        cr_assert(strstr(c->out, "corun=1 green=1"), "not green: " PR_FMT, PR_ARGS(what, c, st));
    return c;
}

static void semantics_in(const char *dir)
{
    free(run("semantics", false, NULL, dir));
    free(run("semantics", true, NULL, dir));
    free(run("semantics", true, "offload", dir));
    free(run("semantics", true, "inline", dir));
}

Test(fileio, semantics_disk)
{
    semantics_in("/tmp");
}

Test(fileio, semantics_tmpfs)
{
    struct stat st;
    if (stat("/dev/shm", &st) != 0)
        cr_skip_test("no /dev/shm");
    semantics_in("/dev/shm");
}

/* Page-cache hits and buffered writes are served inline: no pool thread
 * ever starts. */
Test(fileio, cached_reads_stay_inline)
{
    free(run("cached", false, NULL, NULL));
    struct tu_child *c = run("cached", true, NULL, NULL);
    cr_assert_eq(pr_value(c, "tasks"), 1, "cached reads started the pool:\n%s", c->out);
    free(c);
}

/* A read that must wait for the disk runs on the pool (a pool thread
 * appears), except with CORUN_FILE_IO=inline. */
Test(fileio, cold_read_offloaded)
{
    struct tu_child *c = run("cold", true, NULL, NULL);
    if (strstr(c->out, "SKIP cold"))
        cr_skip_test("the page cache could not be dropped here: %s", c->out);
    cr_assert_eq(pr_value(c, "tasks_before"), 1, "%s", c->out);
    cr_assert_gt(pr_value(c, "tasks_after"), 1, "the cold read did not run on the pool:\n%s", c->out);
    /* The pool's threads are named so (tests telling green threads' OS
     * threads from others count them apart). */
    cr_assert_eq(pr_value(c, "pool"), pr_value(c, "tasks_after") - 1, "%s", c->out);
    free(c);
    c = run("cold", true, "inline", NULL);
    if (!strstr(c->out, "SKIP cold"))
        cr_assert_eq(pr_value(c, "tasks_after"), 1, "CORUN_FILE_IO=inline offloaded:\n%s", c->out);
    free(c);
}

/* open/stat & co: same results everywhere; on the pool only with
 * CORUN_FILE_IO=offload. fsync and fdatasync (they wait for the disk): on
 * the pool unless CORUN_FILE_IO=inline. */
Test(fileio, metadata_calls)
{
    free(run("metadata", false, NULL, NULL));
    struct tu_child *c = run("metadata", true, NULL, NULL);
    cr_assert_eq(pr_value(c, "tasks"), 1, "the default policy offloaded a metadata call:\n%s", c->out);
    cr_assert_gt(pr_value(c, "tasks_sync"), 1, "the default policy made fsync inline:\n%s", c->out);
    free(c);
    c = run("metadata", true, "offload", NULL);
    cr_assert_gt(pr_value(c, "tasks"), 1, "CORUN_FILE_IO=offload did not use the pool:\n%s", c->out);
    free(c);
    c = run("metadata", true, "inline", NULL);
    cr_assert_eq(pr_value(c, "tasks_sync"), 1, "CORUN_FILE_IO=inline offloaded fsync:\n%s", c->out);
    free(c);
}

Test(fileio, bad_policy_exits_2)
{
    struct tu_child c;
    const char *extra[] = { "CORUN_FILE_IO=sometimes", NULL };
    const char *args[] = { "cached", NULL };
    pr_run("pt_file", args, true, extra, &c);
    char st[128];
    cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 2 && strstr(c.err, "CORUN_FILE_IO"),
              PR_FMT, PR_ARGS("CORUN_FILE_IO=sometimes", &c, st));
}

/* O_DSYNC writes go to the pool where RWF_NOWAIT cannot try them (ext4). */
Test(fileio, sync_writes_offloaded)
{
    free(run("sync_write", false, NULL, NULL));
    struct tu_child *c = run("sync_write", true, NULL, NULL);
    if (pr_value(c, "nowait_writes") != 0)
        cr_skip_test("this filesystem takes RWF_NOWAIT writes (or failed the probe): %s", c->out);
    cr_assert_gt(pr_value(c, "tasks"), 1, "O_DSYNC writes did not run on the pool:\n%s", c->out);
    free(c);
    c = run("sync_write", true, "inline", NULL);
    cr_assert_eq(pr_value(c, "tasks"), 1, "CORUN_FILE_IO=inline offloaded:\n%s", c->out);
    free(c);
}
