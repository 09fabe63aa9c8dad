/*
 * The catch's stubs (catch.h), in the section the kernel always lets
 * through (corun_allowed): a system call made here is never turned into a
 * SIGSYS, whatever the selector says. rawsys.c puts raw_syscall here too.
 */
#undef syscall		/* the layers' -Dsyscall=raw_syscall is for C */
	.section corun_allowed,"ax",@progbits

/* long catch_raw(long nr, long a1, long a2, long a3, long a4, long a5, long a6) */
	.globl	catch_raw
	.hidden	catch_raw
	.type	catch_raw, @function
	.p2align 4
catch_raw:
	.cfi_startproc
	movq	%rdi, %rax
	movq	%rsi, %rdi
	movq	%rdx, %rsi
	movq	%rcx, %rdx
	movq	%r8, %r10
	movq	%r9, %r8
	movq	8(%rsp), %r9
	syscall
	ret
	.cfi_endproc
	.size	catch_raw, .-catch_raw

/* void catch_sigreturn_at(uintptr_t sp): the kernel finds the frame at sp - 8. */
	.globl	catch_sigreturn_at
	.hidden	catch_sigreturn_at
	.type	catch_sigreturn_at, @function
	.p2align 4
catch_sigreturn_at:
	movq	%rdi, %rsp
	movl	$15, %eax		/* SYS_rt_sigreturn */
	syscall
	hlt
	.size	catch_sigreturn_at, .-catch_sigreturn_at

/* The SIGSYS handler's sa_restorer. */
	.globl	catch_restorer
	.hidden	catch_restorer
	.type	catch_restorer, @function
	.p2align 4
catch_restorer:
	movq	$15, %rax		/* glibc's encoding: unwinders know a signal frame by it */
	syscall
	hlt
	.size	catch_restorer, .-catch_restorer

/*
 * long catch_clone_run(struct catch_clone *c): makes c->nr with c->a[0..4];
 * the parent (or a failure) returns the result. The child, on the stack the
 * kernel gave it, loads the caught context's registers from *c, marks c
 * taken (the parent may then let go of it) and jumps to c->rip with rax 0,
 * rcx holding rip as after a real syscall (r11, the flags there, is its
 * scratch), and the caught context's MXCSR and x87 control word (the
 * handler runs with the defaults; a new thread inherits its creator's).
 */
	.globl	catch_clone_run
	.hidden	catch_clone_run
	.type	catch_clone_run, @function
	.p2align 4
catch_clone_run:
	.cfi_startproc
	pushq	%r12
	.cfi_adjust_cfa_offset 8
	movq	%rdi, %r12
	movq	0(%r12), %rax
	movq	8(%r12), %rdi
	movq	16(%r12), %rsi
	movq	24(%r12), %rdx
	movq	32(%r12), %r10
	movq	40(%r12), %r8
	syscall
	testq	%rax, %rax
	jz	1f
	popq	%r12
	.cfi_adjust_cfa_offset -8
	ret
1:	movq	%r12, %r11
	movq	48(%r11), %rbx
	movq	56(%r11), %rbp
	movq	64(%r11), %r12
	movq	72(%r11), %r13
	movq	80(%r11), %r14
	movq	88(%r11), %r15
	movq	96(%r11), %rdi
	movq	104(%r11), %rsi
	movq	112(%r11), %rdx
	movq	120(%r11), %r10
	movq	128(%r11), %r8
	movq	136(%r11), %r9
	movq	144(%r11), %rcx
	ldmxcsr	156(%r11)
	fldcw	160(%r11)
	movl	$1, 152(%r11)
	xorl	%eax, %eax
	jmp	*%rcx
	.cfi_endproc
	.size	catch_clone_run, .-catch_clone_run

	.section .note.GNU-stack,"",@progbits
