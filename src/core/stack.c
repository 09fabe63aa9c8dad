/*
 * Stacks are carved from large anonymous mappings ("arenas") so that a
 * million stacks do not need a million mappings (vm.max_map_count is 65530 by
 * default). Each slot is [guard][usable], slots back to back. Arenas are
 * MAP_NORESERVE and never huge-paged: a stack costs only the pages it
 * touches. Arenas are never unmapped, so a stale pointer into one stays
 * readable (fault handlers and parent checks rely on that).
 */
#include "stack.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lock.h"
#include "rawsys.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STACK_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define STACK_ASAN 1
#endif
#ifdef STACK_ASAN
#include <sanitizer/asan_interface.h>
#endif

#define WARM_MAX 64                    /* stacks kept with their pages per class */
#define PENDING_MAX 64                 /* released stacks whose pages go back in one batch */
#define ARENA_FIRST_SLOTS 16
#define ARENA_MAX_SLOTS 8192
#define ARENA_MAX_BYTES ((size_t)64 << 30)

struct arena {
    char *base;
    size_t len;
    struct stack_class *cls;
    struct arena *next;
};

struct stack_class {
    size_t usable, guard, slot;
    struct stack_class *next;
    struct arena *newest;              /* where carve is */
    char *carve;                       /* next uncarved slot of the newest arena */
    size_t carve_left;
    size_t next_arena_slots;
    uintptr_t warm[WARM_MAX];          /* slot lo | guarded bit */
    size_t nwarm;
    uintptr_t pending[PENDING_MAX];    /* released, pages not yet given back */
    size_t npending;
    uintptr_t *cold;                   /* released slots, pages given back */
    size_t ncold, capcold;
};

enum guard_method { GUARD_UNKNOWN, GUARD_MADVISE, GUARD_MPROTECT };

static cr_lock_t pool_lock = CR_LOCK_INIT;
static struct stack_class *classes;
static _Atomic(struct arena *) arenas;
static enum guard_method guard_method;
static long mprotect_budget = -1;      /* guards we may still add with mprotect */
static size_t page_size;

size_t stack_page_size(void)
{
    if (!page_size)
        page_size = (size_t)sysconf(_SC_PAGESIZE);
    return page_size;
}

static size_t round_page(size_t n)
{
    size_t p = stack_page_size();
    return (n + p - 1) & ~(p - 1);
}

static long read_max_map_count(void)
{
    char buf[32];
    long v;
    if (rs_read_file("/proc/sys/vm/max_map_count", buf, sizeof buf) <= 0 ||
        sscanf(buf, "%ld", &v) != 1)
        v = 65530;
    return v;
}

static struct stack_class *class_get(size_t usable, size_t guard)
{
    for (struct stack_class *c = classes; c; c = c->next)
        if (c->usable == usable && c->guard == guard)
            return c;
    struct stack_class *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->usable = usable;
    c->guard = guard;
    c->slot = usable + guard;
    c->next_arena_slots = ARENA_FIRST_SLOTS;
    c->next = classes;
    classes = c;
    return c;
}

static int arena_new(struct stack_class *c)
{
    size_t n = c->next_arena_slots;
    if (n * c->slot > ARENA_MAX_BYTES)
        n = ARENA_MAX_BYTES / c->slot;
    if (n == 0)
        n = 1;
    size_t len = n * c->slot;
    char *p = rs_mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return EAGAIN;
    rs_madvise(p, len, MADV_NOHUGEPAGE);
    struct arena *a = malloc(sizeof *a);
    if (!a) {
        rs_munmap(p, len);
        return EAGAIN;
    }
    a->base = p;
    a->len = len;
    a->cls = c;
    a->next = atomic_load(&arenas);
    while (!atomic_compare_exchange_weak(&arenas, &a->next, a))
        ;
    c->newest = a;
    c->carve = p;
    c->carve_left = n;
    if (c->next_arena_slots < ARENA_MAX_SLOTS)
        c->next_arena_slots *= 2;
    return 0;
}

static bool guard_install(char *at, size_t len)
{
    if (guard_method == GUARD_UNKNOWN) {
        guard_method = rs_madvise(at, len, MADV_GUARD_INSTALL) == 0 ? GUARD_MADVISE : GUARD_MPROTECT;
        if (guard_method == GUARD_MADVISE)
            return true;
    } else if (guard_method == GUARD_MADVISE) {
        return rs_madvise(at, len, MADV_GUARD_INSTALL) == 0;
    }
    /* Each mprotect'ed guard splits the arena's mapping: keep a quarter of
     * the map budget for them and leave the rest to the program. */
    if (mprotect_budget < 0)
        mprotect_budget = read_max_map_count() / 4 / 2;
    if (mprotect_budget == 0)
        return false;
    if (rs_mprotect(at, len, PROT_NONE) != 0)
        return false;
    mprotect_budget--;
    return true;
}

/* A stack about to be used again. */
static inline void handed_out(const struct stack_slot *out)
{
#ifdef STACK_ASAN
    /* Frames that never returned (a finished coroutine's entry) left their
     * redzones poisoned near the top. */
    size_t clear = out->size < (64u << 10) ? out->size : (64u << 10);
    ASAN_UNPOISON_MEMORY_REGION(out->lo + out->size - clear, clear);
#else
    (void)out;
#endif
}

int stack_alloc(size_t size, size_t guard, struct stack_slot *out)
{
    size_t usable = round_page(size);
    guard = round_page(guard);
    if (usable < size || usable > ((size_t)1 << 40))
        return EINVAL;

    cr_lock(&pool_lock);
    struct stack_class *c = class_get(usable, guard);
    if (!c) {
        cr_unlock(&pool_lock);
        return EAGAIN;
    }
    uintptr_t enc;
    if (c->nwarm) {
        enc = c->warm[--c->nwarm];
    } else if (c->npending) {
        enc = c->pending[--c->npending];
    } else if (c->ncold) {
        enc = c->cold[--c->ncold];
    } else {
        if (!c->carve_left) {
            int r = arena_new(c);
            if (r) {
                cr_unlock(&pool_lock);
                return r;
            }
        }
        char *slot = c->carve;
        c->carve += c->slot;
        c->carve_left--;
        bool guarded = guard && guard_install(slot, guard);
        enc = (uintptr_t)(slot + guard) | (guarded ? 1u : 0u);
    }
    cr_unlock(&pool_lock);

    out->lo = (char *)(enc & ~(uintptr_t)1);
    out->size = usable;
    out->cls = c;
    out->guarded = enc & 1;
    handed_out(out);
    return 0;
}

int stack_alloc_cached(struct stack_slot *cache, size_t size, size_t guard, struct stack_slot *out)
{
    const struct stack_class *c = cache->cls;
    if (!c || c->usable != round_page(size) || c->guard != round_page(guard))
        return stack_alloc(size, guard, out);
    *out = *cache;
    cache->cls = NULL;
    handed_out(out);
    return 0;
}

void stack_release_cached(struct stack_slot *cache, const struct stack_slot *s)
{
    if (cache && !cache->cls)
        *cache = *s;
    else
        stack_release(s);
}

void stack_cache_drop(struct stack_slot *cache)
{
    if (!cache->cls)
        return;
    struct stack_slot s = *cache;
    cache->cls = NULL;
    stack_release(&s);
}

static int cmp_enc(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* Give the pages of a batch of released stacks back to the kernel. Slots that
 * are neighbours in an arena go in one madvise (guard markers survive
 * MADV_DONTNEED; mprotect'ed guards are separate mappings, so those are not
 * merged). Then the slots join the cold list. */
static void (*cold_hook)(const struct stack_slot *slot);

void stack_set_cold_hook(void (*hook)(const struct stack_slot *slot))
{
    cold_hook = hook;
}

static void release_batch(struct stack_class *c, uintptr_t *batch, size_t n)
{
    for (size_t i = 0; cold_hook && i < n; i++) {
        struct stack_slot slot = { (char *)(batch[i] & ~(uintptr_t)1), c->usable, c, batch[i] & 1 };
        cold_hook(&slot);
    }
    qsort(batch, n, sizeof *batch, cmp_enc);
    bool mergeable = !c->guard || guard_method == GUARD_MADVISE;
    for (size_t i = 0; i < n;) {
        char *lo = (char *)(batch[i] & ~(uintptr_t)1);
        size_t j = i + 1;
        while (mergeable && j < n && (batch[j] & ~(uintptr_t)1) == (batch[j - 1] & ~(uintptr_t)1) + c->slot)
            j++;
        char *last = (char *)(batch[j - 1] & ~(uintptr_t)1);
        rs_madvise(lo, (size_t)(last - lo) + c->usable, MADV_DONTNEED);
        i = j;
    }

    cr_lock(&pool_lock);
    if (c->ncold + n > c->capcold) {
        size_t cap = c->capcold ? c->capcold : 1024;
        while (cap < c->ncold + n)
            cap *= 2;
        uintptr_t *nc = realloc(c->cold, cap * sizeof *nc);
        if (!nc) {                     /* leave the slots out: only address space is lost */
            cr_unlock(&pool_lock);
            return;
        }
        c->cold = nc;
        c->capcold = cap;
    }
    memcpy(c->cold + c->ncold, batch, n * sizeof *batch);
    c->ncold += n;
    cr_unlock(&pool_lock);
}

void stack_release(const struct stack_slot *s)
{
    struct stack_class *c = s->cls;
    uintptr_t enc = (uintptr_t)s->lo | (s->guarded ? 1u : 0u);
    uintptr_t batch[PENDING_MAX];

    cr_lock(&pool_lock);
    if (c->nwarm < WARM_MAX) {
        c->warm[c->nwarm++] = enc;
        cr_unlock(&pool_lock);
        return;
    }
    c->pending[c->npending++] = enc;
    size_t n = 0;
    if (c->npending == PENDING_MAX) {
        n = c->npending;
        memcpy(batch, c->pending, n * sizeof *batch);
        c->npending = 0;
    }
    cr_unlock(&pool_lock);
    if (n)
        release_batch(c, batch, n);
}

bool stack_guard_hit(const void *addr, char **hi, size_t *size)
{
    uintptr_t a = (uintptr_t)addr;
    for (struct arena *ar = atomic_load(&arenas); ar; ar = ar->next) {
        uintptr_t b = (uintptr_t)ar->base;
        if (a < b || a >= b + ar->len)
            continue;
        const struct stack_class *c = ar->cls;
        size_t i = (a - b) / c->slot, off = (a - b) % c->slot;
        if (off >= c->guard)
            return false;
        *hi = ar->base + (i + 1) * c->slot;
        *size = c->usable;
        return true;
    }
    return false;
}

bool stack_in_pool(const void *addr)
{
    uintptr_t a = (uintptr_t)addr;
    for (struct arena *ar = atomic_load(&arenas); ar; ar = ar->next)
        if (a - (uintptr_t)ar->base < ar->len)
            return true;
    return false;
}

void stack_foreach_slot(void (*fn)(char *lo, size_t size, void *arg), void *arg)
{
    cr_lock(&pool_lock);
    for (struct arena *ar = atomic_load(&arenas); ar; ar = ar->next) {
        const struct stack_class *c = ar->cls;
        char *end = ar == c->newest ? c->carve : ar->base + ar->len;   /* carved so far */
        for (char *slot = ar->base; slot + c->slot <= end; slot += c->slot)
            fn(slot + c->guard, c->usable, arg);
    }
    cr_unlock(&pool_lock);
}

/* The pool's lock is held across a fork, so that the child never inherits
 * it held by a thread it does not have (a fork while another OS thread made
 * its scheduler hung the child in its first stack_alloc). */
void stack_fork_prepare(void)
{
    cr_lock(&pool_lock);
}

void stack_fork_parent(void)
{
    cr_unlock(&pool_lock);
}

void stack_fork_child(void)
{
    atomic_store(&pool_lock.state, 0);
}
