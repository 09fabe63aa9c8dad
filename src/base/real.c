#include "real.h"
#include "ownfd.h"

#include <dlfcn.h>

#include "diag.h"

void *real_resolve(const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);
    if (!p)
        diag_fatal("cannot find the C library's %s: %s", name, dlerror());
    return p;
}

void *real_resolve_version(const char *name, const char *version)
{
    void *p = dlvsym(RTLD_NEXT, name, version);
    if (!p)
        diag_fatal("cannot find the C library's %s@%s: %s", name, version, dlerror());
    return p;
}

/* ---- libc functions corun hooks, for the layers below the hooks ---------
 * Inside libcorun.so a plain call would bind to corun's own hook. */

#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <sys/stat.h>

int libc_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    static int (*f)(int, const struct sigaction *, struct sigaction *);
    if (__builtin_expect(!f, 0))
        f = (__typeof__(f))real_resolve("sigaction");
    return f(sig, act, old);
}

int libc_pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    static int (*f)(int, const sigset_t *, sigset_t *);
    if (__builtin_expect(!f, 0))
        f = (__typeof__(f))real_resolve("pthread_sigmask");
    return f(how, set, old);
}

/* Set by libc_became_multithreaded: glibc's pthread_create has work of
 * its own to do at a process's first thread (below). */
static char *single_threaded;
static int late_init_owed;

int libc_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    static int (*f)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    if (__builtin_expect(!f, 0))
        f = (__typeof__(f))real_resolve("pthread_create");
    ownfd_proc_open();                 /* before a second kernel thread (ownfd.h) */
    if (__builtin_expect(__atomic_load_n(&late_init_owed, __ATOMIC_ACQUIRE), 0) &&
        __atomic_exchange_n(&late_init_owed, 0, __ATOMIC_ACQ_REL)) {
        /* The first real thread of a process with green ones: glibc sets
         * up for threads (the handler of SIGSETXID, by which setuid asks
         * every real thread to change its ids) only when it sees
         * __libc_single_threaded still set, which green threads cleared.
         * No other thread runs the program's code yet (M:N starts with
         * this), so setting it back for the call is unseen. */
        *single_threaded = 1;
        int r = f(t, attr, fn, arg);
        if (*single_threaded) {          /* it failed before: owed still */
            *single_threaded = 0;
            __atomic_store_n(&late_init_owed, 1, __ATOMIC_RELEASE);
        }
        return r;
    }
    return f(t, attr, fn, arg);
}

FILE *libc_fdopen(int fd, const char *mode)
{
    static FILE *(*f)(int, const char *);
    if (__builtin_expect(!f, 0))
        f = (__typeof__(f))real_resolve("fdopen");
    return f(fd, mode);
}

int libc_fclose(FILE *stream)
{
    static int (*f)(FILE *);
    if (__builtin_expect(!f, 0))
        f = (__typeof__(f))real_resolve("fclose");
    return f(stream);
}

/* glibc's once, not a lock of corun's own: it is fork-safe (a child forked
 * while another thread runs the init gets a fresh once). */
int libc_pthread_once(pthread_once_t *once, void (*fn)(void))
{
    static int (*f)(pthread_once_t *, void (*)(void));
    if (__builtin_expect(!f, 0))
        f = (__typeof__(f))real_resolve("pthread_once");
    return f(once, fn);
}

/* The kernel thread's own stack (the sanitizers' view of the main green
 * thread). */
int libc_thread_stack(void **lo, size_t *size)
{
    static pthread_t (*self)(void);
    static int (*getattr)(pthread_t, pthread_attr_t *);
    if (__builtin_expect(!self, 0)) {
        getattr = (__typeof__(getattr))real_resolve("pthread_getattr_np");
        self = (__typeof__(self))real_resolve("pthread_self");
    }
    pthread_attr_t pa;
    int r = getattr(self(), &pa);
    if (r == 0) {
        r = pthread_attr_getstack(&pa, lo, size);
        pthread_attr_destroy(&pa);
    }
    return r;
}

void *libc_dlopen(const char *file, int mode)
{
    static void *(*f)(const char *, int);
    if (__builtin_expect(!f, 0))
        f = (__typeof__(f))real_resolve("dlopen");
    return f(file, mode);
}

/* What glibc's pthread_create does when a process gets its second thread,
 * which green threads never tell it: stdio starts taking its FILE locks
 * (_IO_enable_locks, GLIBC_PRIVATE; without it two threads' fputs
 * interleave inside a flockfile'd region) and __libc_single_threaded (read
 * by libstdc++'s reference counts, among others) turns false. Idempotent. */
void libc_became_multithreaded(void)
{
    static int done;
    if (__builtin_expect(__atomic_load_n(&done, __ATOMIC_RELAXED), 1))
        return;
    __atomic_store_n(&done, 1, __ATOMIC_RELAXED);
    single_threaded = (char *)dlsym(RTLD_NEXT, "__libc_single_threaded");
    if (single_threaded && *single_threaded) {
        *single_threaded = 0;
        __atomic_store_n(&late_init_owed, 1, __ATOMIC_RELEASE);
    }
    void (*enable_locks)(void) = (void (*)(void))dlsym(RTLD_NEXT, "_IO_enable_locks");
    if (enable_locks)
        enable_locks();
}
