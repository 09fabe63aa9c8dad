/*
 * insn_syscall.h - a system call made with the syscall instruction in the
 * test's own code: no hook sees it (libc's syscall() is one of corun's
 * hooks, which routes the numbers corun knows). Returns the kernel's
 * result: a value, or -errno. For tests that need the kernel's own view
 * (what is really open) or a call corun must not see (the blocking
 * detector's subjects, a blocking library function only offload helps).
 */
#ifndef INSN_SYSCALL_H
#define INSN_SYSCALL_H

static inline __attribute__((unused)) long insn_syscall(long nr, long a1, long a2, long a3,
                                                        long a4, long a5, long a6)
{
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    long r;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "0"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return r;
}

#endif
