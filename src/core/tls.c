/*
 * Own TLS and TCB per green thread (tls.h).
 *
 * x86_64 glibc keeps the thread control block (struct pthread, starting
 * with tcbhead_t) at the thread pointer, the FS base, and the static TLS
 * blocks of all modules just below it. ld.so's _dl_allocate_tls(tp) builds
 * the DTV and copies each module's TLS image below tp: corun gives it
 * memory at the top of the green thread's stack slot and fills in the few
 * TCB fields glibc's start_thread would (self pointers, canary and pointer
 * guard, an empty robust list, the first block of keys, rseq marked
 * unregistered so sched_getcpu asks the kernel). The TCB's tid is the OS
 * thread's: glibc's internals that use it (raise, abort, robust and PI
 * futexes) must name a kernel thread.
 */
#include "tls.h"

#include <dlfcn.h>
#include <errno.h>
#include <ctype.h>
#include <link.h>
#include <locale.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "catch.h"
#include "config.h"
#include "diag.h"
#include "list.h"
#include "lock.h"
#include "stack.h"

/* The resolver state (struct __res_state) each thread has: <resolv.h>
 * itself cannot come in here, its macros rename ELF fields. */
#define RES_STATE_SIZE 568

#ifndef HWCAP2_FSGSBASE
#define HWCAP2_FSGSBASE (1 << 1)
#endif

bool tls_own;
bool tls_wrfsbase;

/* glibc's libthread_db descriptors: {size in bits (or sizeof), count, offset}. */
typedef const uint32_t thread_db_desc[3];

/* tcbhead_t's fields at fixed offsets (the x86_64 ABI: GCC's stack
 * protector reads fs:0x28). */
#define TCB_SELF_TCB 0x00
#define TCB_DTV 0x08
#define TCB_SELF 0x10
#define TCB_MULTIPLE_THREADS 0x18
#define TCB_SYSINFO 0x20
#define TCB_STACK_GUARD 0x28
#define TCB_POINTER_GUARD 0x30
#define TCB_FEATURE_1 0x48

#define KEY_2NDLEVEL 32                /* PTHREAD_KEY_2NDLEVEL_SIZE */
#define RSEQ_CPU_ID_UNREGISTERED ((uint32_t)-2)

static struct {
    void *(*allocate)(void *tp);
    void *(*allocate_init)(void *tp, bool init_tls);
    void (*deallocate)(void *tp, bool dealloc_tcb);
    void (*call_tls_dtors)(void);
    void (*ctype_init)(void);
    size_t static_size, static_align;
    size_t tcb_size;
    size_t list_off, tid_off, specific_off, spec1_off, robust_off;
    long rseq_off;
    bool rseq;
    size_t errno_off, h_errno_off, resp_off, dlerror_off;   /* below tp */
    size_t libc_off, libc_size;        /* libc's own TLS block, below tp */
    size_t tcache_off, arena_off;      /* malloc's tcache and thread_arena, below tp (0: unknown) */
    size_t area;                       /* bytes a TLS area takes */
    size_t lm_tls_off;                 /* link_map's l_tls_offset (0: unknown) */
    bool keep_dtv;                     /* a pooled area keeps its DTV (dtv_layout_ok) */
    size_t dtv_cap;                    /* entries of a DTV kept in a pooled area (0: malloc'ed) */
    size_t dtv_room;                   /* bytes the area gives it */
} L;

static char why_not[160];

const char *tls_unavailable_reason(void)
{
    return why_not;
}

size_t tls_area_size(void)
{
    return L.area;
}

/* ---- the load-time check --------------------------------------------------*/

static const uint32_t *desc(const char *name)
{
    return dlvsym(RTLD_DEFAULT, name, "GLIBC_PRIVATE");
}

struct libc_block { uintptr_t lo; size_t size; uintptr_t errno_addr; };

static int find_libc_block(struct dl_phdr_info *info, size_t n, void *arg)
{
    (void)n;
    struct libc_block *b = arg;
    if (!info->dlpi_tls_data)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = (uintptr_t)info->dlpi_tls_data;
        if (ph->p_type == PT_TLS && b->errno_addr >= lo && b->errno_addr < lo + ph->p_memsz) {
            b->lo = lo;
            b->size = ph->p_memsz;
            return 1;
        }
    }
    return 0;
}

/*
 * malloc's per-thread state in libc's block: green threads of an OS thread
 * use its tcache and arena, as they did with shared TLS. A tcache of their
 * own would be lost at their exit (glibc frees it only for threads it
 * made), and with the chunks it caches, about 300 bytes per thread would
 * pile up. Neither variable is exported: the tcache is the word that points
 * at a struct whose first bin holds a chunk just freed; the arena is what
 * is left non-zero once the known words are set aside.
 */
extern void *__libc_malloc(size_t size);
extern void __libc_free(void *p);

static bool find_malloc_state(uintptr_t tp, uintptr_t lo)
{
    /* glibc's own malloc, even if the program brings its own (this runs in
     * corun's constructor: a program's malloc may take a hooked lock). */
    void *probe = __libc_malloc(24);
    __libc_free(probe);                 /* now the first entry of tcache bin 0 */
    size_t n = L.libc_size / sizeof(uintptr_t);
    uintptr_t w[64];
    if (n > 64)
        return false;
    memcpy(w, (void *)lo, n * sizeof w[0]);
    bool known[64] = { false };
    const void *named[] = { &errno, &h_errno, __ctype_b_loc(), __ctype_toupper_loc(),
                            __ctype_tolower_loc() };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        known[((uintptr_t)named[i] - lo) / 8] = true;
    known[(tp - L.resp_off - lo) / 8] = known[(tp - L.dlerror_off - lo) / 8] = true;
    /* uselocale's word: the one that follows a change of locale. */
    locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (c) {
        uselocale(c);
        for (size_t i = 0; i < n; i++)
            if (*(uintptr_t *)(lo + i * 8) == (uintptr_t)c && w[i] != (uintptr_t)c)
                known[i] = true;
        uselocale(LC_GLOBAL_LOCALE);
        freelocale(c);
    }
    size_t tc = 0, ntc = 0, ar = 0, nar = 0;
    for (size_t i = 0; i < n; i++) {
        if (known[i] || !w[i])
            continue;
        /* struct tcache_perthread_struct: uint16_t counts[64], then entries[64]. */
        if (!(w[i] & 15) && w[i] > 65536 && *(void **)(w[i] + 64 * 2) == probe &&
            *(uint16_t *)w[i] >= 1) {
            tc = i;
            ntc++;
        } else {
            ar = i;
            nar++;
        }
    }
    if (ntc != 1)
        return false;
    L.tcache_off = tp - (lo + tc * 8);
    L.arena_off = nar == 1 ? tp - (lo + ar * 8) : 0;
    return true;
}

/*
 * The DTV (glibc's dtv_t array, TCB word 1 points at entry 0): 16-byte
 * entries {pointer, to_free}; entry -1 holds its length, entry 0 the
 * generation, entry m module m's block. glibc's stack cache keeps a DTV
 * with a reused stack: so does corun's pool (tls_create), which needs
 * that layout. Checked against this thread's own DTV: every module with
 * TLS must be found at its index.
 */
typedef struct {
    uintptr_t val, to_free;
} dtv_entry;

static int dtv_check_module(struct dl_phdr_info *info, size_t n, void *arg)
{
    (void)n;
    const dtv_entry *dtv = arg;
    if (!info->dlpi_tls_modid || !info->dlpi_tls_data)
        return 0;
    if (info->dlpi_tls_modid > dtv[-1].val ||
        dtv[info->dlpi_tls_modid].val != (uintptr_t)info->dlpi_tls_data)
        return 1;
    return 0;
}

static bool dtv_layout_ok(uintptr_t tp)
{
    const dtv_entry *dtv = *(const dtv_entry **)(tp + TCB_DTV);
    if (!dtv || dtv[-1].val == 0 || dtv[-1].val > 65536)
        return false;
    return dl_iterate_phdr(dtv_check_module, (void *)dtv) == 0;
}

/*
 * A pooled area keeps its DTV in its own pages: a sleeping thread then
 * costs two pages, not two pages and a 300-byte block of the heap. ld.so
 * frees a thread's DTV when its TLS goes, and reallocs it from the
 * thread's own __tls_get_addr when a dlopen added more modules than it
 * has room for. It calls the global malloc's functions through pointers
 * it looked up at startup and keeps in its RELRO (glibc's __rtld_free
 * and __rtld_realloc); corun points those two at functions that leave a
 * DTV in a stack arena alone, or copy it to the heap. The pointers are
 * found by value: the words of ld.so's RELRO that hold the global
 * malloc, calloc, free and realloc, each exactly once, all four within
 * 64 bytes. Anything else keeps the DTV on the heap.
 */
static struct {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*realloc)(void *, size_t);
} rtld;

static void rtld_free_hook(void *p)
{
    if (p && stack_in_pool(p))
        return;                        /* a DTV in its area: goes with the area */
    rtld.free(p);
}

static void *rtld_realloc_hook(void *p, size_t n)
{
    if (!p || !stack_in_pool(p))
        return rtld.realloc(p, n);
    /* p is &dtv[-1], whose first word is the DTV's length in entries. */
    size_t have = (((const dtv_entry *)p)->val + 2) * sizeof(dtv_entry);
    void *q = rtld.malloc(n);
    if (q)
        memcpy(q, p, have < n ? have : n);
    return q;
}

struct relro { uintptr_t base, lo, hi; };

static int find_relro(struct dl_phdr_info *info, size_t n, void *arg)
{
    (void)n;
    struct relro *r = arg;
    if (info->dlpi_addr != r->base)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_GNU_RELRO) {
            r->lo = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
            r->hi = r->lo + info->dlpi_phdr[i].p_memsz;
        }
    return 1;
}

static bool rtld_hooks_install(void)
{
    Dl_info di;
    struct link_map *lm = NULL;
    if (!dladdr1((void *)L.allocate, &di, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
        return false;
    struct relro r = { .base = lm->l_addr };
    if (!dl_iterate_phdr(find_relro, &r) || r.hi <= r.lo)
        return false;
    static const char *const names[4] = { "malloc", "calloc", "free", "realloc" };
    uintptr_t want[4], *at[4] = { NULL };
    for (int k = 0; k < 4; k++)
        if (!(want[k] = (uintptr_t)dlsym(RTLD_DEFAULT, names[k])))
            return false;
    for (uintptr_t *w = (uintptr_t *)((r.lo + 7) & ~(uintptr_t)7); (uintptr_t)(w + 1) <= r.hi; w++)
        for (int k = 0; k < 4; k++)
            if (*w == want[k]) {
                if (at[k])
                    return false;      /* twice: not the allocator's pointers */
                at[k] = w;
            }
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int k = 0; k < 4; k++) {
        if (!at[k])
            return false;
        lo = (uintptr_t)at[k] < lo ? (uintptr_t)at[k] : lo;
        hi = (uintptr_t)at[k] > hi ? (uintptr_t)at[k] : hi;
    }
    if (hi - lo >= 64)
        return false;
    size_t page = stack_page_size();
    uintptr_t plo = lo & ~(page - 1), phi = (hi + 8 + page - 1) & ~(page - 1);
    if (rs_mprotect((void *)plo, phi - plo, PROT_READ | PROT_WRITE) != 0)
        return false;
    rtld.malloc = (void *(*)(size_t))want[0];
    rtld.free = (void (*)(void *))want[2];
    rtld.realloc = (void *(*)(void *, size_t))want[3];
    *at[2] = (uintptr_t)rtld_free_hook;
    *at[3] = (uintptr_t)rtld_realloc_hook;
    rs_mprotect((void *)plo, phi - plo, PROT_READ);
    return true;
}

#define REFUSE(...)                                                 \
    do {                                                            \
        snprintf(why_not, sizeof why_not, __VA_ARGS__);             \
        return false;                                               \
    } while (0)

/* Offset below tp of a TLS address of the calling thread, if in static TLS. */
static bool below_tp(uintptr_t tp, const void *addr, size_t *off)
{
    uintptr_t a = (uintptr_t)addr;
    if (!addr || a >= tp || tp - a > L.static_size)
        return false;
    *off = tp - a;
    return true;
}

static bool layout_check(void)
{
    unsigned long hw2 = getauxval(AT_HWCAP2);
    tls_wrfsbase = (hw2 & HWCAP2_FSGSBASE) != 0;

    void (*static_info)(size_t *, size_t *) = dlvsym(RTLD_DEFAULT, "_dl_get_tls_static_info",
                                                     "GLIBC_PRIVATE");
    L.allocate = dlvsym(RTLD_DEFAULT, "_dl_allocate_tls", "GLIBC_PRIVATE");
    L.deallocate = dlvsym(RTLD_DEFAULT, "_dl_deallocate_tls", "GLIBC_PRIVATE");
    L.allocate_init = dlvsym(RTLD_DEFAULT, "_dl_allocate_tls_init", "GLIBC_PRIVATE");
    L.call_tls_dtors = dlvsym(RTLD_DEFAULT, "__call_tls_dtors", "GLIBC_PRIVATE");
    L.ctype_init = dlvsym(RTLD_DEFAULT, "__ctype_init", "GLIBC_PRIVATE");
    if (!static_info || !L.allocate || !L.deallocate || !L.call_tls_dtors || !L.ctype_init)
        REFUSE("this C library does not export ld.so's TLS allocator (glibc 2.36's "
               "_dl_allocate_tls and friends)");
    static_info(&L.static_size, &L.static_align);

    const uint32_t *sz = desc("_thread_db_sizeof_pthread"), *list = desc("_thread_db_pthread_list"),
                   *tid = desc("_thread_db_pthread_tid"), *spec = desc("_thread_db_pthread_specific"),
                   *dtvp = desc("_thread_db_pthread_dtvp");
    if (!sz || !list || !tid || !spec || !dtvp)
        REFUSE("this C library does not describe its thread control block (libthread_db data)");
    L.tcb_size = sz[0];
    L.list_off = list[2];
    L.tid_off = tid[2];
    L.specific_off = spec[2];
    if (L.tcb_size < 1024 || L.tcb_size > 16384 || L.static_align < 16 ||
        L.static_align > 4096 || L.static_size <= L.tcb_size || L.static_size > (1u << 20))
        REFUSE("unexpected TLS sizes (TCB %zu, static TLS %zu, align %zu)", L.tcb_size,
               L.static_size, L.static_align);
    if (dtvp[2] != TCB_DTV || list[0] != 128 || tid[0] != 32 ||
        spec[0] != 32 * 8 * sizeof(void *) || L.list_off + 16 > L.tcb_size ||
        L.tid_off + 4 > L.tcb_size || L.specific_off + 32 * sizeof(void *) > L.tcb_size ||
        L.specific_off < KEY_2NDLEVEL * 16)
        REFUSE("unexpected thread control block layout");
    L.spec1_off = L.specific_off - KEY_2NDLEVEL * 16;   /* specific_1stblock precedes specific */

    uintptr_t tp = tls_read_fs();
    if (*(uintptr_t *)(tp + TCB_SELF) != tp)
        REFUSE("the thread pointer does not point at a TCB");
    if (*(void **)(tp + L.specific_off) != (void *)(tp + L.spec1_off))
        REFUSE("the TCB's first key block is not where expected");
    if (*(pid_t *)(tp + L.tid_off) != (pid_t)raw_syscall(SYS_gettid))
        REFUSE("the TCB's thread id is not where expected");
    void *head = NULL;
    size_t len = 0;
    if (raw_syscall(SYS_get_robust_list, 0, &head, &len) != 0 || len != 24 ||
        (uintptr_t)head < tp + L.tid_off + 4 || (uintptr_t)head + 24 > tp + L.tcb_size)
        REFUSE("the TCB's robust mutex list is not where expected");
    L.robust_off = (uintptr_t)head - tp;

    const int *rseq_off = dlvsym(RTLD_DEFAULT, "__rseq_offset", "GLIBC_2.35");
    const unsigned *rseq_size = dlvsym(RTLD_DEFAULT, "__rseq_size", "GLIBC_2.35");
    L.rseq = rseq_off && rseq_size && *rseq_size >= 8;
    if (L.rseq) {
        L.rseq_off = *rseq_off;
        if (L.rseq_off < 0 ? (size_t)-L.rseq_off > L.static_size
                           : (size_t)L.rseq_off + 8 > L.tcb_size)
            REFUSE("the rseq area is not in the TCB");
    }

    struct libc_block b = { .errno_addr = (uintptr_t)&errno };
    if (!dl_iterate_phdr(find_libc_block, &b) || !below_tp(tp, (void *)b.lo, &L.libc_off) ||
        b.size > L.libc_off)
        REFUSE("libc's TLS block is not in static TLS");
    L.libc_size = b.size;
    if (!below_tp(tp, &errno, &L.errno_off) || !below_tp(tp, &h_errno, &L.h_errno_off) ||
        !below_tp(tp, dlvsym(RTLD_DEFAULT, "__resp", "GLIBC_PRIVATE"), &L.resp_off) ||
        !below_tp(tp, dlvsym(RTLD_DEFAULT, "__libc_dlerror_result", "GLIBC_PRIVATE"),
                  &L.dlerror_off))
        REFUSE("libc's thread variables are not in static TLS");

    if (!find_malloc_state(tp, b.lo))
        REFUSE("malloc's per-thread cache is not where expected in libc's TLS");
    L.keep_dtv = L.allocate_init && dtv_layout_ok(tp);
    const uint32_t *lm_off = desc("_thread_db_link_map_l_tls_offset");
    L.lm_tls_off = lm_off && lm_off[0] == 64 ? lm_off[2] : 0;
    return true;
}

/* `own` is the default where the catch (catch.h) is in force: without it a
 * FILE lock held by a parked green thread would make the next one wait in
 * the kernel and block the OS thread (glibc's stdio locks are inline futex
 * waits, no calls a hook sees). */

static int sync_module(struct dl_phdr_info *info, size_t n, void *arg);

void tls_decide(void)
{
    enum tls_mode m = cr_config.tls;
    const char *no_catch = catch_unavailable();
    bool want = m == TLS_OWN || (m == TLS_DEFAULT && !no_catch);
    if (m == TLS_DEFAULT && no_catch) {
        snprintf(why_not, sizeof why_not, "system calls no hook sees are not caught here (%s): "
                 "glibc's FILE-lock waits would block the OS thread", no_catch);
        /* A machine that cannot have the default says so once; a setting
         * or a build that chose it does not. */
        if (!strncmp(no_catch, "the kernel", 10))
            diag_log(LOG_WARN, "CORUN_TLS: green threads share their OS thread's thread-local "
                     "storage: %s", why_not);
    }
#ifdef CORUN_SANITIZERS
    /* The sanitizers keep their per-thread state in the OS thread's TLS. */
    snprintf(why_not, sizeof why_not, "a sanitizer build keeps its state in the OS thread's TLS");
    if (m != TLS_OWN)
        return;
#endif
    const char *pre = getenv("LD_PRELOAD");
    if (pre && strstr(pre, "vgpreload"))
        snprintf(why_not, sizeof why_not, "valgrind does not emulate a switch of the FS base");
    else if (layout_check() && !tls_wrfsbase && m == TLS_DEFAULT)
        snprintf(why_not, sizeof why_not, "the CPU or kernel does not let user space write the "
                 "FS base (FSGSBASE), and a system call per switch costs too much");
    if (!want)
        return;
    if (why_not[0]) {
        diag_log(LOG_WARN, "CORUN_TLS: green threads share their OS thread's thread-local storage: %s",
                  why_not);
        return;
    }
    tls_own = true;
    if (L.keep_dtv && rtld_hooks_install()) {
        /* As long as the one ld.so gave this thread: its modules and room to spare. */
        L.dtv_cap = (*(const dtv_entry **)(tls_read_fs() + TCB_DTV))[-1].val;
        L.dtv_room = (L.dtv_cap + 2) * sizeof(dtv_entry);
    }
    /* The area: the TCB and static TLS, the resolver state below them, the
     * DTV's room and the record at the bottom. */
    L.area = (L.static_size + RES_STATE_SIZE + L.dtv_room + L.static_align + 128 + 63) &
             ~(size_t)63;
    if (L.lm_tls_off)
        dl_iterate_phdr(sync_module, (void *)1);   /* note what is in static TLS now */
}

/* ---- areas ---------------------------------------------------------------*/

/* A record at the bottom of every area. `live` holds the record's address
 * xor AREA_LIVE while a thread uses the area (tls_sync_static finds the
 * live areas of pooled stacks by walking the pool; the others, few, are
 * on a list). An area whose thread finished and whose stack went back to
 * the pool keeps its DTV there for the next thread on that stack (`kept`
 * then holds the address xor AREA_KEPT). Either tag on a stack that was
 * handed back to the kernel (zeros) or used as plain stack is never taken
 * for one. A pooled area's own DTV, if it has one (rtld_hooks_install),
 * follows the record. */
struct area_rec {
    struct dlink link;
    uintptr_t tp;
    dtv_entry *dtv;
    uintptr_t kept;
    uintptr_t live;
};
#define AREA_KEPT ((uintptr_t)0x6b65707464747621)
#define AREA_LIVE ((uintptr_t)0x6576696c64747621)

static bool area_kept(const struct area_rec *rec)
{
    return rec->kept == ((uintptr_t)rec ^ AREA_KEPT);
}

static dtv_entry *area_dtv_room(struct area_rec *rec)
{
    return (dtv_entry *)(rec + 1);
}

static cr_lock_t areas_lock = CR_LOCK_INIT;
static struct dlist areas;             /* live areas not on a pooled stack */
static int areas_walking;              /* atomic: tls_sync_static walks the pool */
static void (*pool_walk)(void (*fn)(char *hi, void *arg), void *arg);

void tls_set_pool_walk(void (*walk)(void (*fn)(char *hi, void *arg), void *arg))
{
    pool_walk = walk;
}

static struct area_rec *area_rec_of(char *hi);

static inline void put_word(uintptr_t at, uintptr_t v)
{
    memcpy((void *)at, &v, sizeof v);
}

static void area_unlist(struct area_rec *rec, bool pooled)
{
    if (pooled) {
        /* Not live, then no walk under way (or it saw this): the stack may
         * be reused at once, and a walk must not write into it then. The
         * walker fences for both (rs_membarrier): no lock prefix here. */
        if (rs_membarrier_ready()) {
            __atomic_store_n(&rec->live, 0, __ATOMIC_RELEASE);
            __atomic_signal_fence(__ATOMIC_SEQ_CST);
        } else {
            __atomic_store_n(&rec->live, 0, __ATOMIC_SEQ_CST);
        }
        while (__atomic_load_n(&areas_walking, __ATOMIC_SEQ_CST))
            raw_syscall(SYS_sched_yield);
    } else {
        cr_lock(&areas_lock);
        dlist_remove(&areas, &rec->link);
        cr_unlock(&areas_lock);
    }
    rec->tp = 0;
}

/* Where the TCB of the area below hi lies. */
static uintptr_t area_tp(char *hi)
{
    uintptr_t top = (uintptr_t)hi & ~(uintptr_t)63;
    return (top - L.tcb_size) & ~(uintptr_t)(L.static_align - 1);
}

uintptr_t tls_create(char *hi, bool pooled)
{
    uintptr_t tp = area_tp(hi);
    uintptr_t blocks = tp - (L.static_size - L.tcb_size);
    uintptr_t res = (blocks - RES_STATE_SIZE) & ~(uintptr_t)15;
    struct area_rec *rec = area_rec_of(hi);
    if (res < (uintptr_t)(rec + 1) + L.dtv_room)
        diag_fatal("TLS area too small (%zu bytes)", L.area);

    /* Live before ld.so copies the images: a dlopen whose module the copy
     * misses finds the area in tls_sync_static (ld.so's TLS lock, taken by
     * both, orders the store before the walk). */
    rec->tp = tp;
    if (pooled) {
        __atomic_store_n(&rec->live, (uintptr_t)rec ^ AREA_LIVE, __ATOMIC_RELEASE);
    } else {
        cr_lock(&areas_lock);
        dlist_push(&areas, &rec->link);
        cr_unlock(&areas_lock);
    }
    uintptr_t cur = tls_read_fs();
    if (area_kept(rec)) {
        /* The last thread's DTV, its dynamic blocks freed at its release:
         * cleared and filled anew, as glibc does for a cached stack. */
        rec->kept = 0;
        memset(rec->dtv, 0, (rec->dtv[-1].val + 1) * sizeof *rec->dtv);
        put_word(tp + TCB_DTV, (uintptr_t)rec->dtv);
        if (!L.allocate_init((void *)tp, true))
            goto fail;
    } else if (pooled && L.dtv_cap) {
        dtv_entry *room = area_dtv_room(rec);
        memset(room, 0, L.dtv_room);
        room[0].val = L.dtv_cap;
        put_word(tp + TCB_DTV, (uintptr_t)(room + 1));
        if (!L.allocate_init((void *)tp, true))
            goto fail;
    } else if (!L.allocate((void *)tp)) {
        goto fail;
    }
    /* The TCB cleared only now, all but the DTV ld.so just put there: its
     * TLS lock is a lock-prefixed instruction, which would first wait for
     * every one of these stores to drain. */
    uintptr_t dtv_word;
    memcpy(&dtv_word, (void *)(tp + TCB_DTV), sizeof dtv_word);
    memset((void *)tp, 0, L.tcb_size);
    put_word(tp + TCB_DTV, dtv_word);
    put_word(tp + TCB_SELF_TCB, tp);
    put_word(tp + TCB_SELF, tp);
    /* glibc's SINGLE_THREAD_P reads this field of THREAD_SELF: 0 lets malloc
     * use main_arena without its lock. Green threads are threads, and real
     * ones (libuv's pool) may run beside them: set in the new TCB and, as
     * glibc's pthread_create does, in its creator's. */
    const int one = 1;
    memcpy((void *)(tp + TCB_MULTIPLE_THREADS), &one, sizeof one);
    memcpy((void *)(cur + TCB_MULTIPLE_THREADS), &one, sizeof one);
    memcpy((void *)(tp + TCB_SYSINFO), (void *)(cur + TCB_SYSINFO), 8);
    memcpy((void *)(tp + TCB_STACK_GUARD), (void *)(cur + TCB_STACK_GUARD), 8);
    memcpy((void *)(tp + TCB_POINTER_GUARD), (void *)(cur + TCB_POINTER_GUARD), 8);
    memcpy((void *)(tp + TCB_FEATURE_1), (void *)(cur + TCB_FEATURE_1), 4);
    put_word(tp + L.list_off, tp + L.list_off);          /* a list of its own (fork) */
    put_word(tp + L.list_off + 8, tp + L.list_off);
    memcpy((void *)(tp + L.tid_off), (void *)(cur + L.tid_off), sizeof(pid_t));
    put_word(tp + L.robust_off - 8, tp + L.robust_off);  /* robust_prev */
    put_word(tp + L.robust_off, tp + L.robust_off);      /* an empty robust list */
    memcpy((void *)(tp + L.robust_off + 8), (void *)(cur + L.robust_off + 8), 8);
    put_word(tp + L.specific_off, tp + L.spec1_off);
    if (L.rseq) {
        uint32_t cpu[2] = { 0, RSEQ_CPU_ID_UNREGISTERED };
        memcpy((void *)(tp + L.rseq_off), cpu, sizeof cpu);
    }

    memcpy((void *)(tp - L.tcache_off), (void *)(cur - L.tcache_off), sizeof(void *));
    if (L.arena_off)
        memcpy((void *)(tp - L.arena_off), (void *)(cur - L.arena_off), sizeof(void *));
    memset((void *)(tp - L.errno_off), 0, sizeof(int));
    memset((void *)(tp - L.h_errno_off), 0, sizeof(int));
    put_word(tp - L.dlerror_off, 0);
    memset((void *)res, 0, RES_STATE_SIZE);
    put_word(tp - L.resp_off, res);
    return tp;
fail:
    area_unlist(rec, pooled);
    return 0;
}

void tls_moved(uintptr_t tp, uintptr_t os_tp)
{
    memcpy((void *)(tp + L.tid_off), (void *)(os_tp + L.tid_off), sizeof(pid_t));
    memcpy((void *)(tp - L.tcache_off), (void *)(os_tp - L.tcache_off), sizeof(void *));
    if (L.arena_off)
        memcpy((void *)(tp - L.arena_off), (void *)(os_tp - L.arena_off), sizeof(void *));
}

int *tls_errno_location(uintptr_t tp)
{
    return (int *)(tp - L.errno_off);
}

void tls_started(void)
{
    L.ctype_init();
}

void tls_exiting(void)
{
    L.call_tls_dtors();
    uselocale(LC_GLOBAL_LOCALE);
}

static struct area_rec *area_rec_of(char *hi)
{
    return (struct area_rec *)(((uintptr_t)hi - L.area + 15) & ~(uintptr_t)15);
}

void tls_release(uintptr_t tp, char *hi, bool pooled)
{
    struct area_rec *rec = area_rec_of(hi);
    if (rec->tp != tp)
        diag_fatal("TLS area of thread pointer %#lx not found", (unsigned long)tp);
    area_unlist(rec, pooled);
    if (!pooled || !L.keep_dtv) {
        L.deallocate((void *)tp, false);
        return;
    }
    /* Keep the DTV with the stack; the blocks of modules loaded with
     * dlopen go now (as _dl_deallocate_tls frees them). */
    dtv_entry *dtv = *(dtv_entry **)(tp + TCB_DTV);
    for (size_t i = 1; i <= dtv[-1].val; i++)
        if (dtv[i].to_free)
            free((void *)dtv[i].to_free);
    rec->dtv = dtv;
    rec->kept = (uintptr_t)rec ^ AREA_KEPT;
}

void tls_forget(char *hi)
{
    struct area_rec *rec = area_rec_of(hi);
    if (!tls_own || !area_kept(rec))
        return;
    rec->kept = 0;
    if (rec->dtv != area_dtv_room(rec) + 1)
        free(&rec->dtv[-1]);           /* where glibc's calloc'ed block starts */
}

/* Modules in static TLS whose image every live area has (link map and
 * offset: a later module may reuse a closed one's). */
#define SYNCED_MAX 256
static struct { const void *lm; size_t off; } synced[SYNCED_MAX];
static unsigned nsynced;
static cr_lock_t sync_lock = CR_LOCK_INIT;

static bool was_synced(const void *lm, size_t off)
{
    for (unsigned i = 0; i < nsynced; i++)
        if (synced[i].lm == lm && synced[i].off == off)
            return true;
    return false;
}

struct image { const char *bytes; size_t off, filesz, memsz; };

static void image_into(uintptr_t tp, const struct image *im)
{
    memcpy((char *)(tp - im->off), im->bytes, im->filesz);
    memset((char *)(tp - im->off) + im->filesz, 0, im->memsz - im->filesz);
}

static void image_into_pooled(char *hi, void *arg)
{
    struct area_rec *rec = area_rec_of(hi);
    if (__atomic_load_n(&rec->live, __ATOMIC_SEQ_CST) == ((uintptr_t)rec ^ AREA_LIVE))
        image_into(area_tp(hi), arg);
}

static int sync_module(struct dl_phdr_info *info, size_t n, void *arg)
{
    (void)n;
    (void)arg;
    if (!info->dlpi_tls_modid)
        return 0;
    const ElfW(Phdr) *tls = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_TLS)
            tls = &info->dlpi_phdr[i];
    if (!tls)
        return 0;
    /* Its link map: the loaded objects' chain, matched by load address. */
    struct link_map *lm = NULL;
    for (struct link_map *m = _r_debug.r_map; m; m = m->l_next)
        if (m->l_addr == info->dlpi_addr && !strcmp(m->l_name, info->dlpi_name)) {
            lm = m;
            break;
        }
    if (!lm)
        return 0;
    size_t off;
    memcpy(&off, (char *)lm + L.lm_tls_off, sizeof off);
    if (off == 0 || off == (size_t)-1 || off > L.static_size || was_synced(lm, off))
        return 0;                      /* dynamic TLS, or already there */
    if (nsynced < SYNCED_MAX) {
        synced[nsynced].lm = lm;
        synced[nsynced++].off = off;
    }
    if (arg)
        return 0;                      /* at load: every area gets it from ld.so */
    /* New in static TLS since the areas were made: an initial-exec
     * library dlopen'ed later. Give every live area its image. */
    struct image im = { (const char *)(info->dlpi_addr + tls->p_vaddr), off, tls->p_filesz,
                        tls->p_memsz };
    if (pool_walk) {
        /* A thread releasing its area meanwhile waits for the walk's end
         * (area_unlist): its stack is not reused under the copy. */
        __atomic_store_n(&areas_walking, 1, __ATOMIC_SEQ_CST);
        if (rs_membarrier_ready() && !rs_membarrier())
            diag_fatal("membarrier failed after its registration succeeded (%s)", strerror(errno));
        pool_walk(image_into_pooled, &im);
        __atomic_store_n(&areas_walking, 0, __ATOMIC_SEQ_CST);
    }
    cr_lock(&areas_lock);
    dlist_foreach(&areas, it)
        image_into(container_of(it, struct area_rec, link)->tp, &im);
    cr_unlock(&areas_lock);
    return 0;
}

void tls_fork_child(void)
{
    /* Another OS thread may have held one at fork: it is not in the child. */
    areas_lock = (cr_lock_t)CR_LOCK_INIT;
    sync_lock = (cr_lock_t)CR_LOCK_INIT;
    areas_walking = 0;
}

void tls_sync_static(void)
{
    if (!tls_own || !L.lm_tls_off)
        return;
    cr_lock(&sync_lock);
    dl_iterate_phdr(sync_module, NULL);
    cr_unlock(&sync_lock);
}
