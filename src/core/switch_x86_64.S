/*
 * Context switch for x86_64 System V.
 *
 * void *cr_ctx_switch(void **save_sp, void *new_sp, void *transfer)
 *   Saves the callee-saved registers, MXCSR and the x87 control word on the
 *   current stack, stores the stack pointer in *save_sp, loads new_sp and
 *   restores the same set from there. Returns `transfer` in the resumed
 *   context. Caller-saved registers need no saving: the call itself
 *   clobbers them as far as the compiler is concerned.
 *
 * Saved frame, from the saved stack pointer upwards:
 *   +0  MXCSR (4 bytes), x87 control word (2 bytes), padding
 *   +8  r15, r14, r13, r12, rbx, rbp
 *   +56 return address
 * context.h builds the same frame for a new context, with the return
 * address pointing at cr_ctx_trampoline.
 */
	.text

	.globl	cr_ctx_switch
	.hidden	cr_ctx_switch
	.type	cr_ctx_switch, @function
	.p2align 4
cr_ctx_switch:
	.cfi_startproc
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	pushq	%rbx
	.cfi_adjust_cfa_offset 8
	pushq	%r12
	.cfi_adjust_cfa_offset 8
	pushq	%r13
	.cfi_adjust_cfa_offset 8
	pushq	%r14
	.cfi_adjust_cfa_offset 8
	pushq	%r15
	.cfi_adjust_cfa_offset 8
	subq	$8, %rsp
	.cfi_adjust_cfa_offset 8
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp
	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	addq	$8, %rsp
	.cfi_adjust_cfa_offset -8
	popq	%r15
	.cfi_adjust_cfa_offset -8
	popq	%r14
	.cfi_adjust_cfa_offset -8
	popq	%r13
	.cfi_adjust_cfa_offset -8
	popq	%r12
	.cfi_adjust_cfa_offset -8
	popq	%rbx
	.cfi_adjust_cfa_offset -8
	popq	%rbp
	.cfi_adjust_cfa_offset -8
	movq	%rdx, %rax
	ret
	.cfi_endproc
	.size	cr_ctx_switch, .-cr_ctx_switch

/*
 * First code run by a new context. The initial frame put r12 = argument and
 * r13 = entry function; rax holds the transfer value of the switch that
 * started us. entry(arg, transfer) must never return.
 */
	.globl	cr_ctx_trampoline
	.hidden	cr_ctx_trampoline
	.type	cr_ctx_trampoline, @function
	.p2align 4
cr_ctx_trampoline:
	.cfi_startproc
	.cfi_undefined rip
	movq	%r12, %rdi
	movq	%rax, %rsi
	callq	*%r13
	ud2
	.cfi_endproc
	.size	cr_ctx_trampoline, .-cr_ctx_trampoline

	.section .note.GNU-stack,"",@progbits
