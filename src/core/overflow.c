/* Stack overflows of green threads: a guard page hit, a stack pointer below
 * the stack, or an overwritten canary is reported with the thread's name and
 * what to do, instead of a bare SIGSEGV. */
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "catch.h"
#include "diag.h"
#include "real.h"
#include "sched_int.h"
#include "rawsys.h"

__attribute__((noreturn)) void overflow_abort(const struct corun *co, const char *how)
{
    diag_fatal("stack overflow in green thread %llu%s%s%s (%s): its stack is %zu bytes. "
               "Give green threads more with CORUN_STACK_SIZE (e.g. CORUN_STACK_SIZE=%zuK) "
               "or a larger stack size attribute",
               (unsigned long long)co->id, co->name[0] ? " '" : "", co->name,
               co->name[0] ? "'" : "", how, co->stack_size, co->stack_size / 1024 * 2);
}

static struct sigaction segv_prev;

static void segv_handler(int sig, siginfo_t *si, void *uc)
{
    uint8_t held = catch_hold();
    char *hi;
    size_t size;
    if (stack_guard_hit(si->si_addr, &hi, &size))
        overflow_abort((const struct corun *)(hi - co_hdr_size), "it ran into its guard page");
    /* Without a guard, an overflow runs into whatever lies below the stack:
     * the faulting stack pointer of the running coroutine gives it away.
     * (During a switch, current is still the coroutine switching out.) */
    struct sched *s = sched_tls;
    const struct corun *co = s ? s->current : NULL;
    if (co && co->stack_lo) {
        uintptr_t sp = (uintptr_t)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RSP];
        uintptr_t lo = (uintptr_t)co->stack_lo;
        if (sp < lo + 256 && lo - sp <= ((uintptr_t)1 << 20))
            overflow_abort(co, "its stack pointer went below its stack");
    }
    /* Not a corun stack: behave as if this handler were not there. */
    catch_release(&held);
    if ((segv_prev.sa_flags & SA_SIGINFO) && segv_prev.sa_sigaction) {
        segv_prev.sa_sigaction(sig, si, uc);
    } else if (segv_prev.sa_handler == SIG_DFL || segv_prev.sa_handler == SIG_IGN) {
        libc_sigaction(SIGSEGV, &segv_prev, NULL);   /* the fault repeats, with the old action */
    } else {
        segv_prev.sa_handler(sig);
    }
}

void overflow_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    libc_sigaction(SIGSEGV, &sa, &segv_prev);
}

/* The overflow report runs on an alternate signal stack: the faulting stack
 * has no room left. */
void altstack_ensure(void)
{
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return;
    size_t len = 64 << 10;
    void *p = rs_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return;
    stack_t ss = { .ss_sp = p, .ss_size = len, .ss_flags = 0 };
    sigaltstack(&ss, NULL);
}
