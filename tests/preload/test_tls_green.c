/*
 * test_tls_green.c - thread-local storage per thread (CORUN_TLS=own), seen
 * from unmodified programs: tests/pt_tls (C) and tests/pt_tls_cxx (C++),
 * each mode run green with own TLS, native, and without corun (MATRIX), so
 * every expectation is also what glibc's own threads do.
 */
#include "testutil.h"

/* Green runs need CORUN_TLS=own to be had here (not in a sanitizer build):
 * the library says which mode a program would get (CORUN_CHECK_ONLY=tls). */
static const char *own_tls_unavailable(void)
{
    static char why[256];
    if (!why[0]) {
        FILE *p = popen("CORUN_TLS=own CORUN_CHECK_ONLY=tls LD_PRELOAD=" TEST_BUILDDIR
                        "/.libs/libcorun.so /bin/true", "r");
        if (!p || !fgets(why, sizeof why, p))
            snprintf(why, sizeof why, "cannot ask libcorun for its TLS mode");
        if (p)
            pclose(p);
        why[strcspn(why, "\n")] = '\0';
    }
    return strncmp(why, "own", 3) ? why : NULL;
}

#define MATRIX_SKIP(prog, mode, how)                                                 \
    do {                                                                             \
        const char *why_ = (how) == PT_GREEN ? own_tls_unavailable() : NULL;         \
        if (why_)                                                                    \
            cr_skip_test("no own TLS for green threads here (%s)", why_);           \
    } while (0)

#include "preload_run.h"

TestSuite(tls_green, .timeout = 120);
TestSuite(tls_native, .timeout = 120);
TestSuite(tls_plain, .timeout = 120);

#define TLS(mode) \
    MATRIX(tls, mode, pt_tls, mode, "CORUN_TLS=own", "PT_LIBDIR=" TEST_BUILDDIR "/tests/.libs", NULL)
#define TLS_CXX(mode) MATRIX(tls, cxx_##mode, pt_tls_cxx, mode, "CORUN_TLS=own", NULL)

/* __thread variables: each thread its own, initialised from the image,
 * across sleeps while the others write theirs. */
TLS(tls_vars)
/* errno is per thread (not corun's save and restore): distinct addresses. */
TLS(errno_own)
/* uselocale is per thread; a new thread starts with the global locale. */
TLS(uselocale)
/* glibc's thread identity: a FILE lock held (across a sleep) by one thread
 * is busy for another, recursive for its holder. */
TLS(file_lock_owner)
/* glibc's multi-thread flag in every thread's TCB (malloc's locking). */
TLS(multiple_threads)
/* Stack protector canary and pointer guard (setjmp/longjmp) intact. */
TLS(guards)
/* fork from a thread while others live: the child runs, the parent goes on. */
TLS(fork_from_thread)
/* 100,000 short-lived threads that malloc and free: RSS stays flat. */
TLS(short_lived)
/* Initial-exec and general-dynamic TLS of libraries dlopen'ed while
 * threads exist: every thread sees the initial values, then its own. */
TLS(dlopen_tls)
/* ... with 48 threads alive on one OS thread: on stacks of two arenas, the
 * second used up (at 2 OS threads the other's stacks change the count). */
MATRIX(tls, dlopen_tls_48, pt_tls, dlopen_tls_48, "CORUN_TLS=own", "CORUN_PROCS=1",
       "PT_LIBDIR=" TEST_BUILDDIR "/tests/.libs", NULL)
/* 20,000 threads in batches on reused stacks: each starts from the TLS
 * images (executable, initial-exec and general-dynamic libraries); the
 * heap stays flat (corun keeps a finished thread's DTV with its stack). */
TLS(reuse_tls)
/* More TLS modules dlopen'ed than a thread's DTV has room for: ld.so grows
 * the DTVs corun keeps in the threads' stack areas (copies them to the
 * heap), on reused stacks too, and after the libraries are closed. */
TLS(dtv_grows)
/* A program with its own malloc whose first call, from a constructor, takes
 * a lock: corun's load-time look at glibc's malloc state must not call it
 * (it hung in corun's own once). */
#ifndef CORUN_SANITIZERS   /* it replaces malloc, which an ASan-built program cannot */
MATRIX(tls, alloc_atfork_once, pt_alloc, atfork_once, "CORUN_TLS=own", NULL)
#endif
/* C++: `throw;` across a blocking call rethrows the thread's own exception;
 * thread_local objects are destroyed when their thread exits. */
TLS_CXX(rethrow)
TLS_CXX(thread_local_dtors)
