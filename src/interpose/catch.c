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
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <ucontext.h>
#include <unistd.h>

#include "catch.h"
#include "config.h"
#include "diag.h"
#include "gate.h"
#include "gsignal.h"
#include "rawsys.h"
#include "syscall_route.h"
#include "tls.h"

#ifndef PR_SET_SYSCALL_USER_DISPATCH
#define PR_SET_SYSCALL_USER_DISPATCH 59
#define PR_SYS_DISPATCH_OFF 0
#endif
#ifndef SYS_USER_DISPATCH
#define SYS_USER_DISPATCH 2          /* si_code of a dispatched call */
#endif

/* Why the catch is not in force ("" while it is, or before the decision). */
static char off_reason[160];
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

bool catch_rt_sigaction(const long a[6], long *ret)
{
    catch_notice(SYS_rt_sigaction, a);
    if (!catch_wanted || !a[1] || a[3] != 8)
        return false;
    /* A handler's mask with SIGSYS in it would kill at the first caught
     * call the handler makes: SIGSYS stays out, as with sigaction(). */
    struct kernel_sigaction k;
    if (!rs_user_read(&k, (const void *)a[1], sizeof k))
        return false;                  /* the kernel's EFAULT */
    k.mask &= ~((uint64_t)1 << (SIGSYS - 1));
    *ret = catch_raw(SYS_rt_sigaction, a[0], (long)&k, a[2], a[3], 0, 0);
    return true;
}

const sigset_t *catch_mask_filter(int how, const sigset_t *set, sigset_t *copy)
{
    if (!catch_wanted || !set || how == SIG_UNBLOCK || !sigismember(set, SIGSYS))
        return set;
    *copy = *set;
    sigdelset(copy, SIGSYS);
    return copy;
}

bool catch_rt_sigprocmask(const long a[6], long *ret)
{
    if (!catch_wanted || !a[1] || a[0] == SIG_UNBLOCK || a[3] != 8)
        return false;
    uint64_t set;
    if (!rs_user_read(&set, (const void *)a[1], sizeof set))
        return false;                  /* the kernel's EFAULT */
    const uint64_t sys = (uint64_t)1 << (SIGSYS - 1);
    if (!(set & sys))
        return false;
    set &= ~sys;
    *ret = catch_raw(SYS_rt_sigprocmask, a[0], (long)&set, a[2], a[3], 0, 0);
    return true;
}

void catch_notice(long nr, const long a[6])
{
    if (!catch_wanted)
        return;
    uint64_t probe;
    bool sets_action = nr == SYS_rt_sigaction && a[1] &&
                       rs_user_read(&probe, (const void *)a[1], sizeof probe);   /* else EFAULT */
    if (sets_action && a[0] == PREEMPT_SIGNAL)
        preempt_give_up();             /* the program takes preemption's signal by number */
    if (sets_action && a[0] == SIGSYS)
        catch_give_up("the program sets its own SIGSYS action");
    else if (nr == SYS_prctl && a[0] == PR_SET_SYSCALL_USER_DISPATCH)
        catch_give_up("the program uses Syscall User Dispatch itself");
    else if ((nr == SYS_prctl && a[0] == PR_SET_SECCOMP) || nr == SYS_seccomp)
        catch_give_up("the program installs a seccomp filter");
}

/* ---- where a caught call may park --------------------------------------------
 * Inside the dynamic loader (dlopen's reads) a park would let another green
 * thread into it: its lock is a recursive mutex owned by the kernel tid,
 * which an OS thread's green threads share. Inside glibc, a park while it
 * holds a FILE lock lets another green thread into that stream unless each
 * green thread is its own lock owner (CORUN_TLS=own): with shared TLS only
 * glibc's futex waits (on kernel threads' locks) may park there. Other
 * callers (the program, liburing) park. */
#define TEXT_MAX 4
static struct text { uintptr_t lo, hi; } libc_text[TEXT_MAX], ldso_text[TEXT_MAX];
/* Preemption's (catch.h): corun's own code, and a malloc of the program's. */
static struct text corun_text[TEXT_MAX], alloc_text[TEXT_MAX];

struct text_of {
    uintptr_t base;
    struct text *out;
};

static int collect_text(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct text_of *t = arg;
    if (info->dlpi_addr != t->base)
        return 0;
    int n = 0;
    for (int i = 0; i < info->dlpi_phnum && n < TEXT_MAX; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            t->out[n].lo = info->dlpi_addr + ph->p_vaddr;
            t->out[n].hi = t->out[n].lo + ph->p_memsz;
            n++;
        }
    }
    return 1;
}

static void find_text(const void *sym, struct text *out)
{
    Dl_info di;
    if (sym && dladdr(sym, &di)) {
        struct text_of t = { (uintptr_t)di.dli_fbase, out };
        dl_iterate_phdr(collect_text, &t);
    }
}

static bool in_text(const struct text *t, uintptr_t ip)
{
    for (int i = 0; i < TEXT_MAX && t[i].hi; i++)
        if (ip >= t[i].lo && ip < t[i].hi)
            return true;
    return false;
}

static bool may_park(long nr, uintptr_t ip)
{
    if (in_text(ldso_text, ip))
        return false;
    return tls_own || nr == SYS_futex || !in_text(libc_text, ip);
}

static void count(long nr)
{
    size_t i = nr >= 0 && nr < CATCH_NR_MAX ? (size_t)nr : CATCH_NR_MAX;
    __atomic_fetch_add(&catch_counts[i], 1, __ATOMIC_RELAXED);
}

/* A clone whose child gets a stack of its own (a thread, posix_spawn's
 * child): it cannot return through this handler's frame, so it starts at
 * the caught call's return address with the caught registers. */
static long clone_on_new_stack(long nr, const long a[6], const greg_t *g,
                               const struct _libc_fpstate *uc_fp, bool shares_memory)
{
    struct catch_clone c = {
        .nr = nr, .a = { a[0], a[1], a[2], a[3], a[4] },
        .rbx = g[REG_RBX], .rbp = g[REG_RBP], .r12 = g[REG_R12], .r13 = g[REG_R13],
        .r14 = g[REG_R14], .r15 = g[REG_R15], .rdi = g[REG_RDI], .rsi = g[REG_RSI],
        .rdx = g[REG_RDX], .r10 = g[REG_R10], .r8 = g[REG_R8], .r9 = g[REG_R9],
        .rip = g[REG_RIP],
    };
    c.mxcsr = 0x1f80;
    c.fcw = 0x37f;
    if (uc_fp) {
        c.mxcsr = uc_fp->mxcsr;
        c.fcw = uc_fp->cwd;
    }
    if (shares_memory)
        ownfd_proc_open();             /* before a second kernel thread (ownfd.h) */
    long r = catch_clone_run(&c);
    /* A child sharing memory reads c from this frame: it stays until then. */
    if (r > 0 && shares_memory)
        while (!c.taken)
            catch_raw(SYS_sched_yield, 0, 0, 0, 0, 0, 0);   /* the child may need this CPU */
    return r;
}

/* clone and clone3 with no stack of the child's own share this frame's
 * stack only with CLONE_VM (vfork's way): a copy of the memory is a
 * correct vfork (as the vfork hook makes it). */
#define VFORK_FLAGS ((unsigned long)(CLONE_VM | CLONE_VFORK))

static long caught_clone(long nr, long a[6], const ucontext_t *uc)
{
    const greg_t *g = uc->uc_mcontext.gregs;
    const struct _libc_fpstate *fp = uc->uc_mcontext.fpregs;
    if (nr == SYS_clone) {
        unsigned long flags = (unsigned long)a[0];
        if (a[1] == 0) {
            if (flags & CLONE_VM)
                a[0] = (long)(flags & ~VFORK_FLAGS);
            return catch_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        }
        return clone_on_new_stack(nr, a, g, fp, flags & CLONE_VM);
    }
    /* The program's struct, read without faulting (a bad pointer is the
     * kernel's EFAULT, not a crash). */
    struct clone_args copy[2];
    size_t size = (size_t)a[1] < sizeof copy ? (size_t)a[1] : sizeof copy;
    memset(copy, 0, sizeof copy);
    if (!a[0] || (size_t)a[1] < offsetof(struct clone_args, stack_size) + sizeof copy->stack_size ||
        !rs_user_read(copy, (const void *)a[0], size))
        return catch_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);   /* the kernel's error */
    if (copy[0].stack == 0) {
        if (!(copy[0].flags & CLONE_VM))
            return catch_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        copy[0].flags &= ~VFORK_FLAGS;
        return catch_raw(nr, (long)copy, (long)size, 0, 0, 0, 0);
    }
    return clone_on_new_stack(nr, a, g, fp, copy[0].flags & CLONE_VM);
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
        *r = caught_clone(nr, a, uc);
        return true;
    default:
        return false;
    }
}

/* A SIGSYS that is no dispatch (seccomp's trap without a handler of the
 * program's, kill -SYS): what the program's own action would have done. */
static void foreign_sigsys(void)
{
    if (catch_sigsys_ignored)
        return;
    struct kernel_sigaction dfl = { .handler = (uintptr_t)SIG_DFL };
    catch_raw(SYS_rt_sigaction, SIGSYS, (long)&dfl, 0, 8, 0, 0);
    catch_raw(SYS_tgkill, getpid(), catch_raw(SYS_gettid, 0, 0, 0, 0, 0, 0), SIGSYS, 0, 0, 0);
}

/* A call caught on an OS thread stuck in a real call whose scheduler
 * another OS thread runs now (a handler there: glibc's SIGSETXID one
 * changing this kernel thread's ids, say): this kernel thread's own, made
 * as it is, nothing of the scheduler's touched (its selector, which this
 * thread still reads, is the new one's). */
static void stranded_call(siginfo_t *si, ucontext_t *uc)
{
    greg_t *g = uc->uc_mcontext.gregs;
    long nr = si->si_syscall;
    if (nr == SYS_rt_sigreturn)
        catch_sigreturn_at((uintptr_t)g[REG_RSP]);
    long a[6] = { g[REG_RDI], g[REG_RSI], g[REG_RDX], g[REG_R10], g[REG_R8], g[REG_R9] };
    long r;
    if (!((nr == SYS_rt_sigprocmask || nr == SYS_sigaltstack) && caught_special(nr, a, uc, &r)))
        r = catch_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    g[REG_RAX] = r;
}

static void sigsys_handler(int sig, siginfo_t *si, void *ucv)
{
    (void)sig;
    if (si->si_code == SYS_USER_DISPATCH && sched_blocking_stranded()) {
        int saved_errno = errno;
        stranded_call(si, ucv);
        errno = saved_errno;
        return;
    }
    if (sched_blocking_end_check())   /* it interrupted a real call, and follows it (handoff.c) */
        catch_frame_refresh(ucv);
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
    const void *ip = (const void *)g[REG_RIP];
    bool parks = may_park(nr, (uintptr_t)ip);
    if (!caught_special(nr, a, uc, &r) &&
        !(parks ? syscall_route(nr, a, ip, &r) : syscall_route_noblock(nr, a, ip, &r))) {
        /* Made for real: if it blocks for long, another OS thread takes
         * over this one's green threads (not for ld.so: its locks name
         * this kernel thread). */
        bool section = parks && syscall_may_block(nr, a);
        if (section)
            sched_blocking_begin(s, (int)nr);
        r = catch_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (section)
            sched_blocking_end();
    }
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

/* ---- preemption (catch.h) --------------------------------------------------*/

/* PREEMPT_SIGNAL, sent by the OS thread's CPU-time timer after each slice
 * (CORUN_PREEMPT_MS) of running: a green thread that has not switched
 * since the last one yields, if it is in the program's own code. The
 * kernel sends it only on the way back to user space, so it never cuts a
 * waiting call short. */
/* Re-arm the timer from the handler: corun's own calls with the selector
 * held and the program's errno kept. */
static void preempt_rearm(struct sched *s, void (*how)(struct sched *))
{
    uint8_t was = s->catch_sel;
    s->catch_sel = CATCH_ALLOW;
    int saved_errno = errno;
    how(s);
    errno = saved_errno;
    s->catch_sel = was;
}

static void preempt_handler(int sig, siginfo_t *si, void *ucv)
{
    (void)sig;
    (void)si;
    if (sched_blocking_end_check())   /* it interrupted a real blocking call (handoff.c) */
        catch_frame_refresh(ucv);
    struct sched *s = sched_tls;
    if (!s || !s->preempt_armed)
        return;
    s->poll_tick = 1;                  /* the loop polls at the next switch (sched.c) */
    if (!s->catch_armed)
        return;                        /* without the catch a lock wait would block for good */
    unsigned long switches = s->stats.switches;
    bool whole_slice = switches == s->preempt_switches;
    s->preempt_switches = switches;
    /* Only in the program's own code: not inside corun (the selector is
     * ALLOW there), nor in a handler of the program's that interrupted
     * corun (the hooks are suspended then: current is the loop), nor inside
     * ld.so (its recursive locks are owned by the kernel tid every green
     * thread shares), nor inside glibc (malloc's arena lock, which corun's
     * own allocations on this OS thread need: a thread preempted holding
     * it would leave them waiting in the kernel for good). Such a tick is
     * skipped; a later one finds the thread back in its own code. */
    struct corun *cur = s->current;
    ucontext_t *uc = ucv;
    uintptr_t ip = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    if (!whole_slice && s->catch_sel == CATCH_BLOCK && s->alive >= 2 && cur != s->loop_co &&
        !in_text(corun_text, ip)) {
        /* It switched since the last look: the next one when the earliest
         * sleeper is due (corun's books are consistent in program code). */
        preempt_rearm(s, preempt_resumed);
        return;
    }
    if (!whole_slice || s->alive < 2 || cur == s->loop_co || cur->state != CO_RUNNING ||
        !(cur->flags & CO_PREEMPTIBLE))
        return;
    if (s->catch_sel != CATCH_BLOCK) {
        /* Inside corun (a hook, or libc called from one): a thread that
         * spends its time in calls into corun yields on its way out
         * (release_work), or at the next look, soon, if that is not to
         * the program's own code. */
        s->release_preempt = true;
        preempt_rearm(s, preempt_retry_soon);
        return;
    }
    uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    /* corun's own code runs with the selector BLOCK for a few instructions
     * (a hook's prologue, a handler's entry: the SIGSYS handler's frame
     * must not be left for others to change the mask under); a program's
     * handler may run on the OS thread's alternate stack, which the next
     * delivery would overwrite. */
    stack_t alt;
    bool elsewhere = in_text(corun_text, ip) ||
                     (cur->flags & CO_MAIN
                          ? catch_raw(SYS_sigaltstack, 0, (long)&alt, 0, 0, 0, 0) != 0 ||
                                (alt.ss_flags & SS_ONSTACK)
                          : sp < (uintptr_t)cur->stack_lo || sp >= (uintptr_t)cur->stack_hi);
    if (elsewhere || in_text(ldso_text, ip) || in_text(libc_text, ip) ||
        in_text(alloc_text, ip)) {
        /* Still due: look again soon (it stays due while it does not switch). */
        preempt_rearm(s, preempt_retry_soon);
        return;
    }
    s->catch_sel = CATCH_ALLOW;
    int saved_errno = errno;
    s->stats.preempted++;
    sched_preempt_current(s, true);    /* its frames above are the program's and the handler's */
    s = sched_tls;                     /* it may resume on another OS thread (M:N) */
    preempt_resumed(s);
    /* Others ran meanwhile and may have changed the thread's mask or
     * alternate stack: the sigreturn must not put back a stale one. */
    frame_mask_now(uc);
    catch_raw(SYS_sigaltstack, 0, (long)&uc->uc_stack, 0, 0, 0, 0);
    s->preempt_switches = s->stats.switches;
    errno = saved_errno;
    s->catch_sel = CATCH_BLOCK;
}

/* A hook returns to the program at ra with release work (catch.h): a
 * preemption that came due inside corun, or an idle member asking for a
 * thread (mn_ask_for_work). No frame of corun's below the hook holds s,
 * so the thread may move. Not when ra is in glibc, ld.so or a malloc of
 * the program's (locks of theirs may be held, as for the signal), nor on
 * a signal stack. */
static void release_work(struct sched *s, uintptr_t ra)
{
    bool preempt = s->release_preempt;
    s->release_preempt = false;
    struct corun *cur = s->current;
    if (s->release_shed && coq_empty(&s->runq) && coq_empty(&s->hogs)) {
        /* Nothing waits here to give: the asker asks again when it next
         * turns idle. */
        s->release_shed = false;
        __atomic_store_n(&s->shed_to, NULL, __ATOMIC_RELAXED);
    }
    if (s->alive < 2 || cur == s->loop_co || cur->state != CO_RUNNING ||
        !(cur->flags & CO_PREEMPTIBLE) || in_text(corun_text, ra) || in_text(ldso_text, ra) ||
        in_text(libc_text, ra) || in_text(alloc_text, ra))
        return;
    preempt = preempt && s->stats.switches == s->preempt_switches;
    /* Shed a thread that was woken in this call while others wait here,
     * and may move; else the request stays for the next. Not one that
     * woke another and goes on (a mutex and condvar ping-pong): that would
     * part the pair. */
    bool shed = s->release_shed && s->woken_co == cur &&
                (cur->flags & (CO_MAIN | CO_OWN_TLS)) == CO_OWN_TLS && cur->pinned == 0;
    if (!preempt && !shed)
        return;
    char here;
    if (cur->flags & CO_MAIN) {
        stack_t alt;
        if (catch_raw(SYS_sigaltstack, 0, (long)&alt, 0, 0, 0, 0) != 0 || (alt.ss_flags & SS_ONSTACK))
            return;
    } else if ((uintptr_t)&here < (uintptr_t)cur->stack_lo ||
               (uintptr_t)&here >= (uintptr_t)cur->stack_hi) {
        return;
    }
    struct sched *to = NULL;
    if (shed) {
        s->release_shed = false;
        to = __atomic_exchange_n(&s->shed_to, NULL, __ATOMIC_ACQUIRE);
    }
    if (!to && !preempt)
        return;
    s->catch_sel = CATCH_ALLOW;
    int saved_errno = errno;
    if (to) {
        sched_shed_current(s, to);
    } else {
        s->stats.preempted++;
        /* May move, as a thread preempted in its own code: a CPU-bound
         * thread that calls into corun all the time (a clock read in its
         * loop) is preempted here nearly always, and kept in place it never
         * spread over the workers (pt_mn cancel_kill ran on one). */
        sched_preempt_current(s, true);
    }
    s = sched_tls;                     /* it may resume on another OS thread */
    preempt_resumed(s);
    s->preempt_switches = s->stats.switches;
    errno = saved_errno;
    s->catch_sel = CATCH_BLOCK;
}

/* Before Linux 5.12 a CPU timer's signal came from the tick, and could
 * cut a waiting system call short with EINTR. */
static bool kernel_at_least(int major, int minor)
{
    struct utsname u;
    if (catch_raw(SYS_uname, (long)&u, 0, 0, 0, 0, 0) != 0)
        return false;
    int ma = 0, mi = 0;
    if (sscanf(u.release, "%d.%d", &ma, &mi) != 2)
        return false;
    return ma > major || (ma == major && mi >= minor);
}

static void preempt_decide(void)
{
    if (!cr_config.preempt_ms || !kernel_at_least(5, 12))
        return;
    /* A malloc of the program's own (jemalloc, tcmalloc) has its locks
     * too: corun's allocations go there. */
    const void *m = dlsym(RTLD_DEFAULT, "malloc");
    Dl_info mi, li;
    if (m && dladdr(m, &mi) && !(dladdr(dlsym(RTLD_NEXT, "fputs"), &li) &&
                                 mi.dli_fbase == li.dli_fbase))
        find_text(m, alloc_text);
    preempt_handler_fn = preempt_handler;
    preempt_wanted = true;
}

/* ---- the decision, at load --------------------------------------------------*/

static void catch_decide(void)
{
    config_load();
    if (cr_config.catch_mode == CATCH_MODE_PLT) {
        snprintf(off_reason, sizeof off_reason, "CORUN_CATCH=plt");
        return;
    }
    const char *why = catch_unavailable();
    if (why) {
        snprintf(off_reason, sizeof off_reason, "%s", why);
        if (cr_config.catch_mode == CATCH_MODE_SUD)
            diag_log(LOG_WARN, "CORUN_CATCH=sud: cannot catch system calls outside the hooks "
                     "(%s); only the hooks see calls", why);
        return;
    }
    caller_is_foreign_slow(NULL);   /* the text ranges, found now rather than in a handler */
    find_text(dlsym(RTLD_NEXT, "fputs"), libc_text);
    find_text(dlsym(RTLD_DEFAULT, "_dl_allocate_tls"), ldso_text);
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
    find_text((const void *)release_work, corun_text);
    catch_release_work = release_work;
    preempt_decide();
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
    was.sa_handler = catch_sigsys_ignored ? SIG_IGN : SIG_DFL;
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
        catch_sigsys_ignored = act->sa_handler == SIG_IGN;
    return 0;
}
