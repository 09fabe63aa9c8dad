/*
 * fsbase: what the FS-base write costs in a context switch, apart from the
 * rest of corun. Two contexts ping-pong through a switch with corun's frame
 * (six callee-saved registers, MXCSR and the x87 control word: the same
 * instructions as src/core/switch_x86_64.S), once as is and once with a
 * WRFSBASE before each switch, as CORUN_TLS=own adds (the value written is
 * the current one: the thread's TLS stays valid). Runs alternate; prints
 * the medians and their difference.
 *   fsbase [-r REPS (1..101, default 9)] [-n SWITCHES (default 4000000)]
 *   @result plain_ns=... wrfsbase_ns=... wrfsbase_cost_ns=...
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "benchutil.h"

void *fsb_switch(void **save_sp, void *new_sp);

__asm__(".text\n"
        ".p2align 4\n"
        "fsb_switch:\n"
        "  pushq %rbp; pushq %rbx; pushq %r12; pushq %r13; pushq %r14; pushq %r15\n"
        "  subq $8, %rsp; stmxcsr (%rsp); fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi); movq %rsi, %rsp\n"
        "  ldmxcsr (%rsp); fldcw 4(%rsp); addq $8, %rsp\n"
        "  popq %r15; popq %r14; popq %r13; popq %r12; popq %rbx; popq %rbp\n"
        "  ret\n");

static void *main_sp, *other_sp;
static volatile int with_fs;
static uintptr_t fs;

static inline void write_fs(void)
{
    __asm__ volatile("wrfsbase %0" : : "r"(fs) : "memory");
}

static void other(void)
{
    for (;;) {
        if (with_fs)
            write_fs();
        fsb_switch(&other_sp, main_sp);
    }
}

static double run(long n, int fsw)
{
    with_fs = fsw;
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        if (fsw)
            write_fs();
        fsb_switch(&main_sp, other_sp);
    }
    return (double)(now_ns() - t0) / (2.0 * (double)n);
}

int main(int argc, char **argv)
{
    int reps = 9, opt;
    long n = 4000000;
    while ((opt = getopt(argc, argv, "r:n:")) != -1) {
        if (opt == 'r')
            reps = atoi(optarg);
        else if (opt == 'n')
            n = atol(optarg);
        else {
            fprintf(stderr, "usage: fsbase [-r REPS (1..101)] [-n SWITCHES]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > MAX_REPS || n < 1) {
        fprintf(stderr, "fsbase: -r must be 1..%d and -n positive\n", MAX_REPS);
        return 2;
    }
    if (!(getauxval(AT_HWCAP2) & 2)) {   /* HWCAP2_FSGSBASE */
        printf("fsbase: this CPU or kernel does not let user space write the FS base\n");
        return 0;
    }
    __asm__ volatile("rdfsbase %0" : "=r"(fs));
    /* The other context's first frame: zeroed registers, this thread's
     * MXCSR and x87 control word, returning into other(). */
    static _Alignas(16) char stack[65536];
    uint64_t *sp = (uint64_t *)(stack + sizeof stack);
    *--sp = 0;                                   /* alignment: other() sees a call frame */
    *--sp = (uint64_t)(uintptr_t)other;
    for (int i = 0; i < 6; i++)
        *--sp = 0;
    uint32_t mx;
    uint16_t cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mx));
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    *--sp = (uint64_t)mx | (uint64_t)cw << 32;
    other_sp = sp;
    double plain[MAX_REPS], wr[MAX_REPS], diff[MAX_REPS];
    run(n / 4, 0);
    for (int r = 0; r < reps; r++) {
        plain[r] = run(n, 0);
        wr[r] = run(n, 1);
        diff[r] = wr[r] - plain[r];
    }
    struct stats p = summarise(plain, reps), w = summarise(wr, reps), d = summarise(diff, reps);
    printf("switch with corun's frame       %6.2f ns  [%.2f .. %.2f]\n", p.median, p.min, p.max);
    printf("  plus a WRFSBASE per switch    %6.2f ns  [%.2f .. %.2f]\n", w.median, w.min, w.max);
    printf("  the WRFSBASE (pairwise)       %6.2f ns  [%.2f .. %.2f]\n", d.median, d.min, d.max);
    printf("@result plain_ns=%.2f wrfsbase_ns=%.2f wrfsbase_cost_ns=%.2f\n", p.median, w.median,
           d.median);
    return 0;
}
