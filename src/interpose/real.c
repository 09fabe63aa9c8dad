#include "real.h"

#include <dlfcn.h>

#include "diag.h"
#include "thread_gate.h"

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

/* ---- where libuv's code lies -------------------------------------------------*/

#include <link.h>
#include <stdint.h>
#include <uv.h>

static uintptr_t uv_lo, uv_hi;

static int find_uv_text(struct dl_phdr_info *info, size_t size, void *base)
{
    (void)size;
    if ((void *)info->dlpi_addr != base)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            uv_lo = info->dlpi_addr + ph->p_vaddr;
            uv_hi = uv_lo + ph->p_memsz;
            return 1;
        }
    }
    return 0;
}

bool caller_in_libuv(const void *ra)
{
    if (__builtin_expect(uv_hi == 0, 0)) {
        Dl_info di;
        if (!dladdr((void *)uv_run, &di) || !dl_iterate_phdr(find_uv_text, di.dli_fbase))
            uv_hi = 1;           /* linked in statically: no separate range */
    }
    return (uintptr_t)ra >= uv_lo && (uintptr_t)ra < uv_hi;
}
