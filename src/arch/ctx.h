/* ctx.h - the contract of the per-architecture context switch (x86_64.S, aarch64.S).
 *
 * A context is just a saved stack pointer. crl__ctx_switch() saves the callee-saved registers
 * and the FP control state (x86-64: MXCSR and the x87 control word; aarch64: FPCR) on the
 * current stack, stores the stack pointer in *save_sp, loads load_sp and resumes the context
 * saved there. It ends in an indirect jump, not `ret`, so resuming at a different call site
 * does not mispredict the return stack. */
#ifndef CRL_ARCH_CTX_H
#define CRL_ARCH_CTX_H

#include <stddef.h>

#if !defined(__x86_64__) && !defined(__aarch64__)
#error "corral: no context switch for this architecture (x86_64 and aarch64 exist)"
#endif

void crl__ctx_switch(void **save_sp, void *load_sp);

/* Prepare a fresh context at the top of a stack (top is 16-byte aligned): its first resume
 * calls entry(arg) on that stack. entry must never return. Returns the sp to resume. */
void *crl__ctx_make(void *top, void (*entry)(void *), void *arg);

#endif
