/* The catch's per-thread arming (catch.h); the SIGSYS handler that does the
 * work is the hooks' layer's (src/interpose/catch.c). */
#include "catch.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"
#include "diag.h"
#include "rawsys.h"

#ifndef PR_SET_SYSCALL_USER_DISPATCH
#define PR_SET_SYSCALL_USER_DISPATCH 59
#define PR_SYS_DISPATCH_OFF 0
#define PR_SYS_DISPATCH_ON 1
#endif

bool catch_wanted;
bool catch_sigsys_ignored;
unsigned long catch_counts[CATCH_NR_MAX + 1];

/* The section's bounds, from the linker. */
extern const char __start_corun_allowed[] __attribute__((visibility("hidden")));
extern const char __stop_corun_allowed[] __attribute__((visibility("hidden")));

int catch_arm(struct sched *s)
{
    if (s->catch_armed)
        return 0;
    s->catch_sel = CATCH_ALLOW;         /* the caller is corun: a hook */
    long r = syscall(SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON,
                     (unsigned long)__start_corun_allowed,
                     (unsigned long)(__stop_corun_allowed - __start_corun_allowed),
                     (unsigned long)&s->catch_sel);
    if (r != 0)
        return errno;
    s->catch_armed = true;
    return 0;
}

void catch_disarm(struct sched *s)
{
    if (!s->catch_armed)
        return;
    syscall(SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_OFF, 0L, 0L, 0L);
    s->catch_armed = false;
}

/* The kernel's sigaction: only the handler is looked at. */
struct ksigaction_view {
    uintptr_t handler;
    unsigned long flags;
    uintptr_t restorer;
    uint64_t mask;
};

static const char *decide_unavailable(void)
{
    config_load();
    if (cr_config.catch_mode == CATCH_MODE_PLT)
        return "CORUN_CATCH=plt";
#ifdef CORUN_SANITIZERS
    if (cr_config.catch_mode == CATCH_MODE_AUTO)
        return "a sanitizer build (its runtime's own system calls would all be caught)";
#endif
    const char *pre = getenv("LD_PRELOAD");
    if (pre && strstr(pre, "vgpreload"))
        return "running under valgrind";
    if (syscall(SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_OFF, 0L, 0L, 0L) != 0)
        return "the kernel has no Syscall User Dispatch (Linux 5.11+)";
    struct ksigaction_view old;
    if (syscall(SYS_rt_sigaction, SIGSYS, NULL, &old, 8L) != 0)
        return "SIGSYS cannot be handled";
    if (old.handler == (uintptr_t)SIG_IGN)
        catch_sigsys_ignored = true;
    else if (old.handler != (uintptr_t)SIG_DFL)
        return "SIGSYS has a handler already";
    return NULL;
}

const char *catch_unavailable(void)
{
    static const char *why;
    static int decided;
    if (!decided) {
        why = decide_unavailable();
        decided = 1;
    }
    return why;
}
