/*
 * ktest_lib.c - a shared library that starts threads the way jemalloc
 * starts its background threads: with the pthread_create it finds by
 * dlsym(RTLD_NEXT). Loaded after libcorun, that is glibc's, so the thread
 * is a real kernel thread made behind corun's back (used by tests/pt_mixed).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
typedef int (*join_fn)(pthread_t, void **);

int ktest_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
    create_fn create = (create_fn)dlsym(RTLD_NEXT, "pthread_create");
    return create ? create(t, NULL, fn, arg) : ENOSYS;
}

int ktest_join(pthread_t t)
{
    join_fn join = (join_fn)dlsym(RTLD_NEXT, "pthread_join");
    return join ? join(t, NULL) : ENOSYS;
}
