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

/* Resume the context saved at load_sp, saving nothing: for a context that ends. */
_Noreturn void crl__ctx_jump(void *load_sp);

void crl__ctx_start(void);

/* Prepare a fresh context at the top of a stack (top is 16-byte aligned): its first resume
 * calls entry(arg) on that stack. entry must never return. Returns the sp to resume. Only the
 * words the first resume uses are written; the other saved registers may hold anything. */
static inline void *crl__ctx_make(void *top, void (*entry)(void *), void *arg)
{
#if defined(__x86_64__)
    /* frame: [0] MXCSR | x87 CW << 32, [1] r15, [2] r14, [3] r13, [4] r12, [5] rbx, [6] rbp,
     * [7] resume address; after it is popped rsp == top, aligned for crl__ctx_start's call. */
    unsigned long *sp = (unsigned long *)top - 8;
    sp[0] = 0x1f80ul | 0x037ful << 32; /* SysV defaults: exceptions masked, round to nearest */
    sp[3] = (unsigned long)entry;
    sp[4] = (unsigned long)arg;
    sp[7] = (unsigned long)crl__ctx_start;
#else
    /* frame (22 words): [0] x19, [1] x20, ..., [11] x30 (resume address), [20] FPCR */
    unsigned long *sp = (unsigned long *)top - 22;
    sp[0] = (unsigned long)arg;
    sp[1] = (unsigned long)entry;
    sp[11] = (unsigned long)crl__ctx_start;
    sp[20] = 0; /* FPCR: IEEE defaults */
#endif
    return sp;
}

#endif
