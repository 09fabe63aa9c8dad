/* Hook: dlopen, so that objects loaded later have their calls to the
 * CORUN_OFFLOAD functions redirected too.
 *
 * glibc's dlopen searches the DT_RUNPATH of the object that called it, which
 * it finds from its return address: a hook in C would become that caller.
 * So dlopen is a few instructions that jump to glibc's dlopen, the caller's
 * frame untouched, unless CORUN_OFFLOAD names functions; then the C part
 * loads, retries a bare name along the caller's own search path if corun's
 * failed, and patches. */
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ffi_offload.h"
#include "gate.h"
#include "real.h"
#include "tls.h"

extern char corun_dlopen_patching_on;
void *corun_real_dlopen;
void *corun_dlopen_patching(const char *file, int mode);

__asm__(".text\n"
        ".globl dlopen\n"
        ".type dlopen, @function\n"
        "dlopen:\n"
        "    movq corun_real_dlopen(%rip), %rax\n"
        "    testq %rax, %rax\n"
        "    jz corun_dlopen_patching\n"
        "    cmpb $0, corun_dlopen_patching_on(%rip)\n"
        "    jne corun_dlopen_patching\n"
        "    cmpb $0, tls_own(%rip)\n"
        "    jne corun_dlopen_patching\n"
        "    jmp *%rax\n"
        ".size dlopen, .-dlopen\n");

typedef void *(*dlopen_fn)(const char *, int);

/* file along the search path the caller's object would use (its
 * DT_RUNPATH included), or NULL. */
static void *dlopen_as(const void *caller, const char *file, int mode)
{
    Dl_info info;
    struct link_map *lm = NULL;
    if (!dladdr1(caller, &info, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
        return NULL;
    Dl_serinfo size;
    if (dlinfo(lm, RTLD_DI_SERINFOSIZE, &size) != 0)
        return NULL;
    Dl_serinfo *si = malloc(size.dls_size);
    if (!si)
        return NULL;
    si->dls_size = size.dls_size;
    si->dls_cnt = size.dls_cnt;
    void *h = NULL;
    if (dlinfo(lm, RTLD_DI_SERINFO, si) == 0) {
        for (unsigned i = 0; !h && i < si->dls_cnt; i++) {
            char path[4096];
            int n = snprintf(path, sizeof path, "%s/%s", si->dls_serpath[i].dls_name, file);
            if (n > 0 && (size_t)n < sizeof path && access(path, F_OK) == 0)
                h = ((dlopen_fn)corun_real_dlopen)(path, mode);
        }
    }
    free(si);
    return h;
}

__attribute__((noinline)) void *corun_dlopen_patching(const char *file, int mode)
{
    const void *caller = __builtin_return_address(0);
    if (!corun_real_dlopen)
        corun_real_dlopen = real_resolve("dlopen");
    dlopen_fn real = (dlopen_fn)corun_real_dlopen;
    /* Constructors run inside, under ld.so's lock, which records its owner
     * by the tid in the TCB: the thread must not move to another OS thread
     * meanwhile (M:N). */
    struct sched *s = sched_tls;
    struct corun *pin = s ? s->current : NULL;
    if (pin)
        pin->pinned++;
    void *h = real(file, mode);
    if (!h && file && !strchr(file, '/')) {
        h = dlopen_as(caller, file, mode);
        if (!h)
            real(file, mode);        /* dlerror() then tells the first failure */
    }
    if (pin)
        pin->pinned--;
    if (h) {
        CATCH_HOLD();          /* the loading itself was the program's (catch.h) */
        ffi_offload_patch_all();
        tls_sync_static();     /* initial-exec TLS of what it loaded, for live green threads */
    }
    return h;
}

/* Resolved before the program runs, so that dlopen is a plain jump. */
__attribute__((constructor)) static void dl_on_load(void)
{
    if (!corun_real_dlopen)
        corun_real_dlopen = real_resolve("dlopen");
}
