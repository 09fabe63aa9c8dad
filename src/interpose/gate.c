/* The part of the hook gate that is not inline: which code must keep
 * glibc's own pthreads. */
#include "gate.h"

#include <dlfcn.h>

/*
 * libuv's threads and mutexes, and the sanitizer runtimes' own bookkeeping
 * (their thread registry lives in pthread keys), must see glibc's pthreads,
 * never green ones. Their text ranges are found once. */

#include <link.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

#define FOREIGN_MAX 8
static struct { uintptr_t lo, hi; } foreign[FOREIGN_MAX];
static int nforeign = -1;

static bool is_foreign_object(const char *name, const void *base, const void *uv_base)
{
    if (base == uv_base)
        return true;
    const char *slash = strrchr(name, '/');
    const char *file = slash ? slash + 1 : name;
    return !strncmp(file, "libasan.", 8) || !strncmp(file, "libubsan.", 9) ||
           !strncmp(file, "liblsan.", 8) || !strncmp(file, "libtsan.", 8) ||
           !strncmp(file, "libclang_rt.", 12);
}

static int collect_foreign(struct dl_phdr_info *info, size_t size, void *uv_base)
{
    (void)size;
    if (!is_foreign_object(info->dlpi_name ? info->dlpi_name : "", (void *)info->dlpi_addr, uv_base))
        return 0;
    for (int i = 0; i < info->dlpi_phnum && nforeign < FOREIGN_MAX; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            foreign[nforeign].lo = info->dlpi_addr + ph->p_vaddr;
            foreign[nforeign].hi = foreign[nforeign].lo + ph->p_memsz;
            nforeign++;
        }
    }
    return 0;
}

/* Call sites found to be the program's, by address: a loop of pthread
 * calls asks about the same few (a lock, a wait, a signal, an unlock),
 * which a single remembered one would not hold. Racy words: an entry only
 * ever says "the program's". */
const void *gate_known_native[GATE_KNOWN_NATIVE];

bool caller_is_foreign_slow(const void *ra)
{
    if (__builtin_expect(nforeign < 0, 0)) {
        Dl_info di;
        void *uv_base = dladdr((void *)uv_run, &di) ? di.dli_fbase : NULL;
        nforeign = 0;
        dl_iterate_phdr(collect_foreign, uv_base);
    }
    for (int i = 0; i < nforeign; i++)
        if ((uintptr_t)ra >= foreign[i].lo && (uintptr_t)ra < foreign[i].hi)
            return true;
    __atomic_store_n(&gate_known_native[((uintptr_t)ra >> 3) % GATE_KNOWN_NATIVE], ra,
                     __ATOMIC_RELAXED);
    return false;
}
