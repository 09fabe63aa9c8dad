/*
 * test_catch_green.c - calls no hook sees (tests/pt_catch, a plain pthread
 * program not linked with corun), run as `pt_catch MODE` three ways:
 *
 *   catch_green   LD_PRELOAD=libcorun.so CORUN_THREADS=green: caught
 *                 (src/interpose/catch.c), so a blocking one parks
 *   catch_native  LD_PRELOAD=libcorun.so CORUN_THREADS=native
 *   catch_plain   no libcorun: the program's expectations are the kernel's
 *
 * The green runs need the catch (CORUN_CHECK_ONLY=catch says whether this
 * machine and build have it): without it the blocking modes hang.
 */
#include "testutil.h"

/* "sud", or "plt: why". */
static const char *ask_lib(const char *what, const char *env)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s CORUN_CHECK_ONLY=%s LD_PRELOAD=" TEST_BUILDDIR
             "/.libs/libcorun.so /bin/true", env, what);
    static char out[2][256];
    char *o = out[what[0] == 't'];
    FILE *p = popen(cmd, "r");
    if (!p || !fgets(o, 256, p))
        snprintf(o, 256, "cannot ask libcorun");
    if (p)
        pclose(p);
    o[strcspn(o, "\n")] = '\0';
    return o;
}

static const char *catch_unavailable(void)
{
    const char *m = ask_lib("catch", "");
    return strcmp(m, "sud") ? m : NULL;
}

/* The FILE-lock mode also needs a TCB per green thread. */
static const char *own_tls_unavailable(void)
{
    const char *m = ask_lib("tls", "CORUN_TLS=own");
    return strncmp(m, "own", 3) ? m : NULL;
}

#define MATRIX_SKIP(prog, mode, how)                                                       \
    do {                                                                                   \
        const char *why_ = (how) == PT_GREEN ? catch_unavailable() : NULL;                 \
        if (why_)                                                                          \
            cr_skip_test("no catch of system calls here (%s)", why_);                      \
        why_ = (how) == PT_GREEN && !strncmp(mode, "flockfile", 9) ? own_tls_unavailable()  \
                                                                : NULL;                   \
        if (why_)                                                                          \
            cr_skip_test("no own TLS for green threads here (%s)", why_);                  \
    } while (0)

#include "preload_run.h"

TestSuite(catch_green, .timeout = 90);
TestSuite(catch_native, .timeout = 90);
TestSuite(catch_plain, .timeout = 90);

#define CATCH(mode, ...) MATRIX(catch, mode, pt_catch, mode, __VA_ARGS__ NULL)

/* stdio (fputs/fflush/fgets) between threads, 4.2 MB each way, on pipes
 * and on sockets: glibc's own writes and reads park. */
CATCH(stdio_pipe)
CATCH(stdio_socket)
/* fclose flushing into a full pipe whose reader starts later: the flush
 * parks (the fclose hook held the catch around the real call: the OS
 * thread blocked, the reader with it, at 1 and 2 OS threads alike). */
CATCH(stdio_fclose_full)
MATRIX(catch, stdio_fclose_full2, pt_catch, stdio_fclose_full, "CORUN_PROCS=2", NULL)
/* read by a syscall instruction parks; errors are the kernel's; errno stays. */
CATCH(insn_read)
/* Calls corun does not route (getppid, fstat) come back as the kernel's. */
CATCH(insn_plain)
/* futex wait and wake by instruction between green threads... */
CATCH(insn_futex)
/* ...and a green wake of a kernel thread waiting in the kernel. */
CATCH(insn_futex_kernel)
/* flockfile held across a sleep: another thread's fputs waits its turn,
 * parked (glibc's inline FILE-lock wait), with a TCB per green thread. */
CATCH(flockfile, "CORUN_TLS=own",)
/* The same wait from a key's destructor run as its thread ends. */
CATCH(flockfile_dtor, "CORUN_TLS=own",)
/* posix_spawn's clone (a child on its own stack, sharing memory until exec). */
CATCH(posix_spawn)
/* fork by instruction: the child is a copy, its status comes back. */
CATCH(insn_fork)
/* A child forked from a thread makes threads of its own: stdio between
 * them parks (the catch armed again in the child). */
CATCH(fork_child_threads)
/* glibc's own pthread_create from a green thread: a kernel thread. */
CATCH(kernel_thread)
/* rt_sigprocmask by instruction: the kernel's mask at once; a signal it
 * unblocks is handled before the call returns. */
CATCH(insn_sigmask)
/* A handler interrupting the program's code returns through glibc's
 * sigreturn; stdio between threads still parks afterwards. */
CATCH(sigreturn)
/* The program's view of SIGSYS is its own; with a handler of its own the
 * catch steps aside (one warning) and the program's handler gets SIGSYS. */
Test(catch_green, sigsys_own_warns_once)
{
    if (catch_unavailable())
        cr_skip_test("no catch of system calls here (%s)", catch_unavailable());
    struct tu_child *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    const char *args[] = { "sigsys_own", NULL };
    const char *const extra[] = { NULL };
    pt_run("pt_catch", args, PT_GREEN, extra, c);
    char st[128];
    cr_assert(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0 && strstr(c->out, "PASS sigsys_own"),
              PT_FMT, PT_ARGS("pt_catch", "sigsys_own", PT_GREEN, c, st));
    const char *w = "the program sets its own SIGSYS action";
    const char *first = strstr(c->err, w);
    cr_assert(first && !strstr(first + 1, w), "expected one warning, stderr: %s", c->err);
    free(c);
}
CATCH(sigsys_own)

/* CORUN_STATS counts the caught calls by number: insn_plain's 2,001
 * getppid instructions are there, most frequent first. */
Test(catch_green, stats_count_caught_calls)
{
    if (catch_unavailable())
        cr_skip_test("no catch of system calls here (%s)", catch_unavailable());
    struct tu_child *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    const char *args[] = { "insn_plain", NULL };
    const char *const extra[] = { "CORUN_STATS=1", NULL };
    pt_run("pt_catch", args, PT_GREEN, extra, c);
    char st[128];
    cr_assert(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0, PT_FMT,
              PT_ARGS("pt_catch", "insn_plain", PT_GREEN, c, st));
    const char *total = strstr(c->err, "calls caught (no hook)");
    const char *first = total ? strstr(total, "caught: ") : NULL;
    cr_assert(first, "no caught calls in the stats: %s", c->err);
    cr_assert(!strncmp(first, "caught: getppid", 15), "getppid is not the most caught: %s", total);
    long n = strtol(first + 15, NULL, 10);
    cr_assert(n >= 2001, "getppid caught %ld times, expected at least 2001: %s", n, total);
    free(c);
}
#ifdef HAVE_LIBURING
/* liburing's io_uring_wait_cqe parks until the completion. */
CATCH(liburing_wait)
#endif
