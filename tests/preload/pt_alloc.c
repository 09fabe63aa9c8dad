/*
 * pt_alloc.c - a plain pthread program (not linked with corun) with its own
 * malloc, initialised on first use as jemalloc is: under a pthread mutex,
 * registering its fork handlers with pthread_atfork and setting a pthread
 * key. Redis's BGSAVE hung because corun, entered through that mutex,
 * built its scheduler there, which mallocs: the allocator's initialisation
 * ran again inside itself and registered its handlers twice, so the second
 * prepare handler waited for the locks the first had taken.
 *
 * Mode atfork_once: the first allocation happens in a constructor of the
 * program (before any other hooked call); a fork then runs the prepare
 * handler exactly once, and the allocator initialised once.
 *
 * Run by tests/test_pthread_green as `pt_alloc MODE`; see tests/preload/pt_thread.c
 * for the output conventions.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pt_common.h"

/* ---- a bump allocator ------------------------------------------------------------
 * Never frees; an atomic bump, since libuv's pool threads may allocate. */
#define ARENA_SIZE ((size_t)256 << 20)
#define HDR 16
static char arena[ARENA_SIZE] __attribute__((aligned(64)));
static atomic_size_t arena_used;
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t alloc_key;
static atomic_int init_runs, prepare_runs;
static atomic_bool initialised;

static int held_for_fork;

/* Taken in prepare, released after (a trylock: registered twice, the
 * second would wait for the first forever). */
static void alloc_prepare(void)
{
    atomic_fetch_add(&prepare_runs, 1);
    if (pthread_mutex_trylock(&init_lock) == 0)
        held_for_fork++;
}

static void alloc_release(void)
{
    for (; held_for_fork > 0; held_for_fork--)
        pthread_mutex_unlock(&init_lock);
}

/* No guard against running inside itself: natively nothing it calls
 * allocates before `initialised` is set. */
static void alloc_init(void)
{
    if (atomic_load(&initialised))
        return;
    pthread_mutex_lock(&init_lock);
    if (!atomic_load(&initialised)) {
        atomic_fetch_add(&init_runs, 1);
        pthread_atfork(alloc_prepare, alloc_release, alloc_release);
        pthread_key_create(&alloc_key, NULL);
        pthread_setspecific(alloc_key, &arena_used);
        atomic_store(&initialised, true);
    }
    pthread_mutex_unlock(&init_lock);
}

static void *bump(size_t size, size_t align)
{
    alloc_init();
    if (align < HDR)
        align = HDR;
    size_t need = HDR + size + align, off = atomic_fetch_add(&arena_used, need);
    if (off + need > ARENA_SIZE)
        return NULL;
    uintptr_t p = ((uintptr_t)arena + off + HDR + align - 1) & ~(uintptr_t)(align - 1);
    ((size_t *)p)[-1] = size;
    return (void *)p;
}

void *malloc(size_t size) { return bump(size, HDR); }
void free(void *p) { (void)p; }
void *calloc(size_t n, size_t size) { return n && size > SIZE_MAX / n ? NULL : bump(n * size, HDR); }
void *memalign(size_t align, size_t size) { return bump(size, align); }
void *aligned_alloc(size_t align, size_t size) { return bump(size, align); }
void *valloc(size_t size) { return bump(size, 4096); }
void *pvalloc(size_t size) { return bump((size + 4095) & ~(size_t)4095, 4096); }
size_t malloc_usable_size(void *p) { return p ? ((size_t *)p)[-1] : 0; }

int posix_memalign(void **out, size_t align, size_t size)
{
    void *p = bump(size, align);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

void *realloc(void *old, size_t size)
{
    void *p = bump(size, HDR);
    if (p && old) {
        size_t was = ((size_t *)old)[-1];
        memcpy(p, old, was < size ? was : size);
    }
    return p;
}

/* The first allocation, before main and before any other hooked call. */
__attribute__((constructor)) static void first_allocation(void)
{
    alarm(30);                  /* pt_main's bound, for a hang before main */
    free(malloc(16));
}

static void m_atfork_once(void)
{
    pid_t c = fork();
    if (c == 0)
        _exit(0);
    int st = 0;
    CHECK(c > 0 && waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECKF(atomic_load(&init_runs) == 1, "the allocator was initialised %d times",
           atomic_load(&init_runs));
    CHECKF(atomic_load(&prepare_runs) == 1, "its prepare handler ran %d times for one fork",
           atomic_load(&prepare_runs));
    CHECK(pthread_getspecific(alloc_key) == &arena_used);
}

static const struct pt_mode modes[] = {
    { "atfork_once", m_atfork_once },
};

int main(int argc, char **argv)
{
    return pt_main(modes, sizeof modes / sizeof modes[0], argc, argv);
}
