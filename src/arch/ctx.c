/* ctx.c - builds the first frame of a fresh context for the architecture's switch, so that the
 * first crl__ctx_switch() into it lands in crl__ctx_start with entry and arg in registers. */
#include "ctx.h"

#include <stdint.h>
#include <string.h>

void crl__ctx_start(void);

#if defined(__x86_64__)
enum { FRAME_WORDS = 8 };

void *crl__ctx_make(void *top, void (*entry)(void *), void *arg)
{
    /* After the resume address is popped rsp == top, 16-byte aligned as the call in
     * crl__ctx_start requires. */
    uintptr_t *sp = (uintptr_t *)top - FRAME_WORDS;
    memset(sp, 0, FRAME_WORDS * sizeof *sp);
    uint32_t mxcsr = 0x1f80;  /* SysV defaults: all exceptions masked, round to nearest */
    uint16_t x87_cw = 0x037f;
    memcpy((char *)sp, &mxcsr, sizeof mxcsr);
    memcpy((char *)sp + 4, &x87_cw, sizeof x87_cw);
    sp[3] = (uintptr_t)entry; /* r13 */
    sp[4] = (uintptr_t)arg;   /* r12 */
    sp[7] = (uintptr_t)crl__ctx_start;
    return sp;
}
#elif defined(__aarch64__)
enum { FRAME_WORDS = 22 };

void *crl__ctx_make(void *top, void (*entry)(void *), void *arg)
{
    uintptr_t *sp = (uintptr_t *)top - FRAME_WORDS;
    memset(sp, 0, FRAME_WORDS * sizeof *sp);
    sp[0] = (uintptr_t)arg;             /* x19 */
    sp[1] = (uintptr_t)entry;           /* x20 */
    sp[11] = (uintptr_t)crl__ctx_start; /* x30 */
    return sp;                          /* FPCR slot 0: IEEE defaults */
}
#endif
