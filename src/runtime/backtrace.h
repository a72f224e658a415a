/* backtrace.h - backtraces of the running thread and of parked tasks, and their symbols.
 *
 * Capturing and symbolizing are apart: crl__bt_capture (async-signal-safe, for the stall
 * detector's signal handler) and crl__bt_from_saved (a parked task's stack, for the dump)
 * record raw addresses only; crl__bt_symbolize and crl__bt_write turn them into names
 * outside signal context (they take a lock and allocate).
 *
 * Convention of a capture: pcs[0] is the exact address of the innermost frame (the
 * interrupted instruction, or a parked task's resume address), the other entries are return
 * addresses, which point after their call: they are looked up at pc - 1. */
#ifndef CRL_RUNTIME_BACKTRACE_H
#define CRL_RUNTIME_BACKTRACE_H

#include <stddef.h>
#include <stdint.h>

/* Up to max frames of the calling thread's stack, unwound with the CFI of the code
 * (.eh_frame, so through libc, which has no frame pointers). Called from a signal handler,
 * the capture starts at the interrupted instruction (the handler's own frames and the
 * signal frame are left out); called directly, at the caller of crl__bt_capture.
 * Async-signal-safe once crl__bt_warm has run. Returns the number of frames stored. */
int crl__bt_capture(uintptr_t *pcs, int max);

/* One capture up front: the unwinder's first use may allocate and lock, which a signal
 * handler must not. Call before installing a handler that captures; idempotent. */
void crl__bt_warm(void);

/* The backtrace of a context switched out by crl__ctx_switch, from the saved stack pointer:
 * the resume address, then the return addresses of the frame-pointer chain from the saved
 * frame pointer (the code that parks is corral's, built with frame pointers). The walk stops
 * at max frames, or at a frame pointer that does not climb, is misaligned or leaves the stack
 * [stack_lo, stack_hi). A fresh context (never run) has one frame. Async-signal-safe; reads
 * only that stack. Returns the number of frames stored (0 if saved_sp is outside the stack). */
int crl__bt_from_saved(void *saved_sp, const void *stack_lo, const void *stack_hi, uintptr_t *pcs,
                       int max);

/* "func+0xoff (file.c:123)" for the code at pc (with libdw and debug info; without the line
 * table "func+0xoff (module)"; unknown code: "0x... (module)" or "0x..."), NUL-terminated
 * in out[cap]. pc is looked up as given: pass a return address minus 1. Thread-safe, not
 * async-signal-safe; callable from a task (with libdw the lookup runs on a symbolizer thread
 * of corral's, started on first use: libdw needs more stack than a task has). */
void crl__bt_symbolize(uintptr_t pc, char *out, size_t cap);

/* One line a frame to fd: indent, "#N ", the symbol (see crl__bt_symbolize; the frames after
 * the first are looked up at pc - 1) and "\n". Not async-signal-safe; callable from a task
 * (one hop to the symbolizer thread for the whole backtrace). */
void crl__bt_write(int fd, const uintptr_t *pcs, int n, const char *indent);

#endif
