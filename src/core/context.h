/* Machine contexts: a saved stack pointer and the code to make a new one. */
#ifndef CR_CONTEXT_H
#define CR_CONTEXT_H

#include <stdint.h>
#include <string.h>

/* Save the current context into *save_sp and resume new_sp; the resumed
 * context sees `transfer` as this function's return value. */
void *cr_ctx_switch(void **save_sp, void *new_sp, void *transfer);
void cr_ctx_trampoline(void);

typedef void (*ctx_entry_fn)(void *arg, void *transfer);

/*
 * Build a context on the stack whose highest usable address is `top`: when
 * first switched to, it runs entry(arg, transfer). MXCSR and the x87 control
 * word start as the creator's, as a new thread's do.
 */
static inline void *ctx_make(void *top, ctx_entry_fn entry, void *arg)
{
    uintptr_t t = (uintptr_t)top & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(t - 80);  /* 16-aligned: trampoline sees rsp % 16 == 0 */
    uint32_t mxcsr;
    uint16_t fpucw;

    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    memset(sp, 0, 80);
    memcpy(&sp[0], &mxcsr, sizeof mxcsr);
    memcpy((char *)&sp[0] + 4, &fpucw, sizeof fpucw);
    /* sp[1..6] = r15, r14, r13, r12, rbx, rbp */
    sp[3] = (uint64_t)(uintptr_t)entry;   /* r13 */
    sp[4] = (uint64_t)(uintptr_t)arg;     /* r12 */
    sp[7] = (uint64_t)(uintptr_t)cr_ctx_trampoline;
    return sp;
}

#endif
