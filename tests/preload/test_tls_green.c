/*
 * test_tls_green.c - thread-local storage per thread (CORUN_TLS=own), seen
 * from unmodified programs: tests/pt_tls (C) and tests/pt_tls_cxx (C++),
 * each mode run green with own TLS, native, and without corun (MATRIX), so
 * every expectation is also what glibc's own threads do.
 */
#include "testutil.h"
#include "preload_run.h"

TestSuite(tls_green, .timeout = 120);
TestSuite(tls_native, .timeout = 120);
TestSuite(tls_plain, .timeout = 120);

#define TLS(mode) \
    MATRIX(tls, mode, pt_tls, mode, "CORUN_TLS=own", "PT_LIBDIR=" TEST_BUILDDIR "/tests/.libs")
#define TLS_CXX(mode) MATRIX(tls, cxx_##mode, pt_tls_cxx, mode, "CORUN_TLS=own")

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
/* Stack protector canary and pointer guard (setjmp/longjmp) intact. */
TLS(guards)
/* fork from a thread while others live: the child runs, the parent goes on. */
TLS(fork_from_thread)
/* 100,000 short-lived threads that malloc and free: RSS stays flat. */
TLS(short_lived)
/* Initial-exec and general-dynamic TLS of libraries dlopen'ed while
 * threads exist: every thread sees the initial values, then its own. */
TLS(dlopen_tls)
/* C++: `throw;` across a blocking call rethrows the thread's own exception;
 * thread_local objects are destroyed when their thread exits. */
TLS_CXX(rethrow)
TLS_CXX(thread_local_dtors)
