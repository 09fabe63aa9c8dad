/*
 * The catch's SIGSYS handler (src/core/catch.h): a system call the program
 * makes without a hook seeing it (glibc's inline calls in stdio and its
 * locks, liburing's io_uring_enter, a raw syscall instruction) on an OS
 * thread whose scheduler runs green threads arrives here instead of the
 * kernel. Numbers syscall_route knows go where their hooks go (a blocking
 * one parks only its green thread); the handler makes every other call
 * itself, from corun's allowed section, so the result is the kernel's.
 *
 * The handler runs on the green thread's own stack (no SA_ONSTACK) and may
 * park there: SA_NODEFER lets the green threads that run meanwhile be
 * caught too. What the sigreturn restores from the frame (the signal mask,
 * the alternate stack) is brought up to date when the call changed it or
 * when other green threads ran.
 */
#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "catch.h"
#include "config.h"
#include "diag.h"
#include "gate.h"
#include "gsignal.h"
#include "syscall_route.h"

#ifndef PR_SET_SYSCALL_USER_DISPATCH
#define PR_SET_SYSCALL_USER_DISPATCH 59
#define PR_SYS_DISPATCH_OFF 0
#endif
#ifndef SYS_USER_DISPATCH
#define SYS_USER_DISPATCH 2          /* si_code of a dispatched call */
#endif

/* The kernel's sigaction, with its restorer (the SIGSYS handler's own). */
struct kernel_sigaction {
    uintptr_t handler;            /* SIG_DFL, SIG_IGN or a handler */
    unsigned long flags;
    void (*restorer)(void);
    uint64_t mask;
};
#define KSA_RESTORER 0x04000000

/* Why the catch is not in force ("" while it is, or before the decision). */
static char off_reason[160];
static bool sigsys_ignored;          /* the program inherited SIGSYS ignored */
static atomic_bool warned_off;

const char *catch_off_reason(void)
{
    return off_reason;
}

/* The program takes SIGSYS, seccomp's traps or the dispatch for itself:
 * corun's catch steps aside (on this OS thread at once: the dispatch is
 * per thread; schedulers not yet armed never will be). */
static void catch_give_up(const char *why)
{
    catch_wanted = false;
    struct sched *s = sched_tls;
    if (s)
        catch_disarm(s);
    snprintf(off_reason, sizeof off_reason, "%s", why);
    if (!atomic_exchange(&warned_off, true))
        diag_log(LOG_WARN, "%s: system calls made outside the hooks are no longer caught "
                 "(they block the OS thread)", why);
}

void catch_notice(long nr, const long a[6])
{
    if (!catch_wanted)
        return;
    if (nr == SYS_rt_sigaction && a[0] == SIGSYS && a[1])
        catch_give_up("the program sets its own SIGSYS action");
    else if (nr == SYS_prctl && a[0] == PR_SET_SYSCALL_USER_DISPATCH)
        catch_give_up("the program uses Syscall User Dispatch itself");
    else if ((nr == SYS_prctl && a[0] == PR_SET_SECCOMP) || nr == SYS_seccomp)
        catch_give_up("the program installs a seccomp filter");
}

static void count(long nr)
{
    size_t i = nr >= 0 && nr < CATCH_NR_MAX ? (size_t)nr : CATCH_NR_MAX;
    __atomic_fetch_add(&catch_counts[i], 1, __ATOMIC_RELAXED);
}

/* A clone whose child gets a stack of its own (a thread, posix_spawn's
 * child): it cannot return through this handler's frame, so it starts at
 * the caught call's return address with the caught registers. */
static long clone_on_new_stack(long nr, const long a[6], const greg_t *g, bool shares_memory)
{
    struct catch_clone c = {
        .nr = nr, .a = { a[0], a[1], a[2], a[3], a[4] },
        .rbx = g[REG_RBX], .rbp = g[REG_RBP], .r12 = g[REG_R12], .r13 = g[REG_R13],
        .r14 = g[REG_R14], .r15 = g[REG_R15], .rdi = g[REG_RDI], .rsi = g[REG_RSI],
        .rdx = g[REG_RDX], .r10 = g[REG_R10], .r8 = g[REG_R8], .r9 = g[REG_R9],
        .rip = g[REG_RIP],
    };
    long r = catch_clone_run(&c);
    /* A child sharing memory reads c from this frame: it stays until then. */
    if (r > 0 && shares_memory)
        while (!c.taken)
            __builtin_ia32_pause();
    return r;
}

/* clone and clone3 with no stack of the child's own share this frame's
 * stack only with CLONE_VM (vfork's way): a copy of the memory is a
 * correct vfork (as the vfork hook makes it). */
#define VFORK_FLAGS ((unsigned long)(CLONE_VM | CLONE_VFORK))

static long caught_clone(long nr, long a[6], const greg_t *g)
{
    if (nr == SYS_clone) {
        unsigned long flags = (unsigned long)a[0];
        if (a[1] == 0) {
            if (flags & CLONE_VM)
                a[0] = (long)(flags & ~VFORK_FLAGS);
            return catch_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        }
        return clone_on_new_stack(nr, a, g, flags & CLONE_VM);
    }
    struct clone_args *ca = (struct clone_args *)a[0];
    if (!ca || (size_t)a[1] < offsetof(struct clone_args, stack_size) + sizeof ca->stack_size)
        return catch_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);   /* the kernel's error */
    if (ca->stack == 0) {
        if (!(ca->flags & CLONE_VM))
            return catch_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        struct clone_args copy[2];
        size_t size = (size_t)a[1] < sizeof copy ? (size_t)a[1] : sizeof copy;
        memset(copy, 0, sizeof copy);
        memcpy(copy, ca, size);
        copy[0].flags &= ~VFORK_FLAGS;
        return catch_raw(nr, (long)copy, (long)size, 0, 0, 0, 0);
    }
    return clone_on_new_stack(nr, a, g, ca->flags & CLONE_VM);
}

/* The thread's signal mask now, as the one the sigreturn puts back; never
 * with SIGSYS blocked: a dispatch with SIGSYS blocked kills the process
 * (glibc blocks every signal around its clone, and many programs fill a
 * handler's sa_mask), so corun keeps it deliverable while it catches. */
static void frame_mask_now(ucontext_t *uc)
{
    catch_raw(SYS_rt_sigprocmask, SIG_BLOCK, 0, (long)&uc->uc_sigmask, 8, 0, 0);
    sigdelset(&uc->uc_sigmask, SIGSYS);
}

/* The calls whose effect the sigreturn would undo, or that cannot be made
 * from inside a handler as they are. Returns false for an ordinary call. */
static bool caught_special(long nr, long a[6], ucontext_t *uc, long *r)
{
    greg_t *g = uc->uc_mcontext.gregs;
    switch (nr) {
    case SYS_rt_sigprocmask:
        *r = catch_raw(nr, a[0], a[1], a[2], a[3], 0, 0);
        if (*r == 0)   /* the frame's mask is the one the sigreturn puts back */
            frame_mask_now(uc);
        return true;
    case SYS_sigaltstack:
        *r = catch_raw(nr, a[0], a[1], 0, 0, 0, 0);
        if (*r == 0 && a[0])
            catch_raw(SYS_sigaltstack, 0, (long)&uc->uc_stack, 0, 0, 0, 0);
        return true;
    case SYS_vfork:
        *r = catch_raw(SYS_fork, 0, 0, 0, 0, 0, 0);
        return true;
    case SYS_clone:
    case SYS_clone3:
        *r = caught_clone(nr, a, g);
        return true;
    default:
        return false;
    }
}

/* A SIGSYS that is no dispatch (seccomp's trap without a handler of the
 * program's, kill -SYS): what the program's own action would have done. */
static void foreign_sigsys(void)
{
    if (sigsys_ignored)
        return;
    struct kernel_sigaction dfl = { .handler = (uintptr_t)SIG_DFL };
    catch_raw(SYS_rt_sigaction, SIGSYS, (long)&dfl, 0, 8, 0, 0);
    catch_raw(SYS_tgkill, getpid(), catch_raw(SYS_gettid, 0, 0, 0, 0, 0, 0), SIGSYS, 0, 0, 0);
}

static void sigsys_handler(int sig, siginfo_t *si, void *ucv)
{
    (void)sig;
    struct sched *s = sched_tls;
    uint8_t was = s ? s->catch_sel : CATCH_ALLOW;
    if (s)
        s->catch_sel = CATCH_ALLOW;   /* first of all: this handler's calls are corun's */
    if (!s || si->si_code != SYS_USER_DISPATCH) {
        foreign_sigsys();
        if (s)
            s->catch_sel = was;
        return;
    }
    ucontext_t *uc = ucv;
    greg_t *g = uc->uc_mcontext.gregs;
    long nr = si->si_syscall;
    if (nr == SYS_rt_sigreturn) {
        /* A handler of the program's returning through glibc's restorer: its
         * frame is where the caught call's stack pointer says. */
        s->catch_sel = CATCH_BLOCK;
        catch_sigreturn_at((uintptr_t)g[REG_RSP]);
    }
    int saved_errno = errno;
    count(nr);
    long a[6] = { g[REG_RDI], g[REG_RSI], g[REG_RDX], g[REG_R10], g[REG_R8], g[REG_R9] };
    unsigned long switches = s->stats.switches;
    long r;
    if (!caught_special(nr, a, uc, &r) && !syscall_route(nr, a, (const void *)g[REG_RIP], &r))
        r = catch_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    g[REG_RAX] = r;
    if (s->stats.switches != switches) {
        /* Others ran meanwhile and may have changed the thread's mask or
         * alternate stack: the sigreturn must not put back a stale one. */
        frame_mask_now(uc);
        catch_raw(SYS_sigaltstack, 0, (long)&uc->uc_stack, 0, 0, 0, 0);
    }
    errno = saved_errno;
    s->catch_sel = CATCH_BLOCK;       /* it was caught: it came from the program */
}

/* ---- the decision, at load --------------------------------------------------*/

static bool under_valgrind(void)
{
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload");
}

/* Why the catch cannot be had here, or NULL. */
static const char *unavailable(void)
{
#ifdef CORUN_SANITIZERS
    if (cr_config.catch_mode == CATCH_MODE_AUTO)
        return "a sanitizer build (its runtime's own system calls would all be caught)";
#endif
    if (under_valgrind())
        return "running under valgrind";
    if (catch_raw(SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_OFF, 0, 0, 0, 0) != 0)
        return "the kernel has no Syscall User Dispatch (Linux 5.11+, CONFIG_GENERIC_ENTRY)";
    struct kernel_sigaction old;
    if (catch_raw(SYS_rt_sigaction, SIGSYS, 0, (long)&old, 8, 0, 0) != 0)
        return "SIGSYS cannot be handled";
    if (old.handler == (uintptr_t)SIG_IGN)
        sigsys_ignored = true;
    else if (old.handler != (uintptr_t)SIG_DFL)
        return "SIGSYS has a handler already";
    return NULL;
}

static void catch_decide(void)
{
    config_load();
    if (cr_config.catch_mode == CATCH_MODE_PLT) {
        snprintf(off_reason, sizeof off_reason, "CORUN_CATCH=plt");
        return;
    }
    const char *why = unavailable();
    if (why) {
        snprintf(off_reason, sizeof off_reason, "%s", why);
        if (cr_config.catch_mode == CATCH_MODE_SUD)
            diag_log(LOG_WARN, "CORUN_CATCH=sud: cannot catch system calls outside the hooks "
                     "(%s); only the hooks see calls", why);
        return;
    }
    caller_is_foreign(NULL);   /* the text ranges, found now rather than in a handler */
    struct kernel_sigaction sa = {
        .handler = (uintptr_t)sigsys_handler,
        .flags = SA_SIGINFO | SA_NODEFER | KSA_RESTORER,
        .restorer = catch_restorer,
    };
    if (catch_raw(SYS_rt_sigaction, SIGSYS, (long)&sa, 0, 8, 0, 0) != 0) {
        snprintf(off_reason, sizeof off_reason, "cannot install the SIGSYS handler");
        return;
    }
    catch_wanted = true;
}

__attribute__((constructor)) static void catch_on_load(void)
{
    catch_decide();
    if (cr_config.report_catch) {
        /* coro-run --doctor: whether calls outside the hooks would be caught. */
        if (catch_wanted)
            diag_printf_fd(1, "sud\n");
        else
            diag_printf_fd(1, "plt: %s\n", off_reason);
        _exit(0);
    }
}


/* sigaction(SIGSYS) by the program while corun's handler is installed: the
 * program sees and sets its own action. SIG_DFL and SIG_IGN are kept here
 * (the handler acts on them for a SIGSYS that is no dispatch); a handler of
 * the program's own means it uses SIGSYS itself: the catch steps aside. */
int catch_sigsys_action(const struct sigaction *act, struct sigaction *old,
                        int (*install)(int, const struct sigaction *, struct sigaction *))
{
    if (!catch_wanted)
        return install(SIGSYS, act, old);
    struct sigaction was;
    memset(&was, 0, sizeof was);
    was.sa_handler = sigsys_ignored ? SIG_IGN : SIG_DFL;
    if (act && act->sa_handler != SIG_DFL && act->sa_handler != SIG_IGN) {
        catch_give_up("the program sets its own SIGSYS action");
        int r = install(SIGSYS, act, NULL);
        if (r == 0 && old)
            *old = was;
        return r;
    }
    if (old)
        *old = was;
    if (act)
        sigsys_ignored = act->sa_handler == SIG_IGN;
    return 0;
}
