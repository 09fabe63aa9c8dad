/* The catch's per-thread arming (catch.h); the SIGSYS handler that does the
 * work is the hooks' layer's (src/interpose/catch.c). */
#include "catch.h"

#include <errno.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "diag.h"
#include "rawsys.h"

#ifndef PR_SET_SYSCALL_USER_DISPATCH
#define PR_SET_SYSCALL_USER_DISPATCH 59
#define PR_SYS_DISPATCH_OFF 0
#define PR_SYS_DISPATCH_ON 1
#endif

bool catch_wanted;
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
