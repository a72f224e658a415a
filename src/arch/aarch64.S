/* aarch64.S - the AAPCS64 context switch (see ctx.h for the contract).
 *
 * Saved frame (176 bytes), from the saved sp upwards:
 *   [0] x19 x20  [16] x21 x22  [32] x23 x24  [48] x25 x26  [64] x27 x28  [80] x29 x30
 *   [96] d8 d9  [112] d10 d11  [128] d12 d13  [144] d14 d15  [160] FPCR  [168] unused
 * The resume address is the saved x30; the switch ends in `br`, not `ret`, so the return
 * predictor is not trained with a call site that the resumed context did not come from. */
        .text
        .globl  crl__ctx_switch
        .type   crl__ctx_switch, %function
        .p2align 4
crl__ctx_switch:
        sub     sp, sp, #176
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mrs     x9, fpcr
        str     x9, [sp, #160]          /* FPCR reloaded unconditionally, as on x86-64 */
        mov     x10, sp
        str     x10, [x0]
        mov     sp, x1
.Lrestore:
        ldr     x11, [sp, #160]
        msr     fpcr, x11
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #176
        br      x30
        .size   crl__ctx_switch, .-crl__ctx_switch

        .globl  crl__ctx_jump
        .type   crl__ctx_jump, %function
        .p2align 4
crl__ctx_jump:
        mov     sp, x0
        b       .Lrestore
        .size   crl__ctx_jump, .-crl__ctx_jump

/* First resume of a fresh context: x19 = arg, x20 = entry. */
        .globl  crl__ctx_start
        .type   crl__ctx_start, %function
crl__ctx_start:
        mov     x0, x19
        mov     x29, #0
        blr     x20
        brk     #0
        .size   crl__ctx_start, .-crl__ctx_start

        .section .note.GNU-stack,"",%progbits
