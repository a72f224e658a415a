/* smp.h - what the rest of the runtime needs from the cross-core layer. */
#ifndef CRL_SMP_SMP_H
#define CRL_SMP_SMP_H

#include "../core/core.h"

#include <stdatomic.h>

/* Ring capacity per ordered core pair; each core may have half of it in flight to one target
 * (requests one way and replies the other way then always fit). */
enum { CRL__RING_CAPACITY = 1024 };

/* A full memory barrier (store-load ordering), for the Dekker-style hand-shakes around
 * `sleeping`. On x86-64 a locked add to the stack is one to three times cheaper than MFENCE
 * and orders ordinary memory the same way (Linux's smp_mb() does the same); ThreadSanitizer
 * gets the C11 fence it understands. */
static inline void crl__full_fence(void)
{
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
    __asm__ volatile("lock addl $0, -8(%%rsp)" ::: "memory", "cc");
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

int crl__smp_init(struct crl__runtime *rt);
void crl__smp_fini(struct crl__runtime *rt);
int crl__smp_core_init(struct crl__core *c);
void crl__smp_core_fini(struct crl__core *c);
/* Take in what other cores sent this one (requests, replies, cancellations). Never blocks. */
void crl__smp_poll(struct crl__core *c);
/* Wake core c (another core's loop, or a foreign thread). */
void crl__smp_notify(struct crl__core *c);
/* After publishing a message to core c: wake it only if it sleeps (or is about to). */
void crl__smp_kick(struct crl__core *c);
/* True if some core has sent this one something not taken in yet. */
bool crl__smp_pending(struct crl__core *c);
/* A wake-up for waiters on another core (cross-core channels): when taken in by that core,
 * `event` is set, then `queued` cleared (after which the note may be freed). */
struct crl__xnote {
    struct crl__xnote *next;
    struct crl_event *event;
    _Atomic bool queued;
};
/* Send note n to core c (any core, this one included); a note already on its way is not sent
 * twice. Never blocks. */
void crl__smp_post(struct crl__core *c, struct crl__xnote *n);
/* An idle core: poll for messages up to idle_poll_ns, then, unless one came, announce that
 * it sleeps and wait in the backend until deadline_ns. */
void crl__smp_idle(struct crl__core *c, int64_t deadline_ns);

#endif
