/* The runtime's syscall(). libcorun.so exports a syscall() hook for the
 * program; the layers below the hooks call this instead (Makefile.am
 * compiles them with -Dsyscall=raw_syscall), so that their own system calls
 * never go through that hook. The kernel's semantics exactly, as libc's:
 * -1 with errno set on failure. Six arguments are passed whatever the call
 * takes; reading those the caller did not pass touches its frame, which
 * AddressSanitizer would report. */
#include "rawsys.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <stdarg.h>

/* In corun_allowed (src/core/catch.h): the catch never turns corun's own
 * system calls into signals. */
__attribute__((no_sanitize_address, section("corun_allowed"))) long raw_syscall(long nr, ...)
{
    va_list ap;
    va_start(ap, nr);
    long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
    register long a4 __asm__("r10") = va_arg(ap, long);
    register long a5 __asm__("r8") = va_arg(ap, long);
    register long a6 __asm__("r9") = va_arg(ap, long);
    va_end(ap);
    long r;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "0"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(a4), "r"(a5), "r"(a6)
                     : "rcx", "r11", "memory");
    if ((unsigned long)r > -4096ul) {
        errno = (int)-r;
        return -1;
    }
    return r;
}

/* ---- membarrier: the slow side of an asymmetric fence ---------------------- */

static int membarrier_state;            /* 0 not tried, 1 registered, -1 refused */

bool rs_membarrier_ready(void)
{
    int b = __atomic_load_n(&membarrier_state, __ATOMIC_ACQUIRE);
    if (b == 0) {
        int saved = errno;
        b = raw_syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 ? 1 : -1;
        errno = saved;
        __atomic_store_n(&membarrier_state, b, __ATOMIC_RELEASE);
    }
    return b > 0;
}

bool rs_membarrier(void)
{
    int saved = errno;
    /* A fork child's process is not registered yet: it is, then. */
    bool ok = raw_syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0 ||
              (errno == EPERM &&
               raw_syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 &&
               raw_syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) ||
              raw_syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0;
    if (ok)
        errno = saved;
    return ok;
}
