/* smp.h - what the rest of the runtime needs from the cross-core layer. */
#ifndef CRL_SMP_SMP_H
#define CRL_SMP_SMP_H

#include "../core/core.h"

#include <pthread.h>
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

struct crl__ring;
struct crl__foreign;
struct crl__xnote;

/* What the cores of one runtime share for messaging: the rings of every ordered pair. */
struct crl__smp_group {
    unsigned ncores;
    struct crl__core **cores; /* by id, each set by its own thread before the start barrier */
    struct crl__ring *rings;  /* ncores x ncores: rings[from * ncores + to] */
};

/* The cross-core layer's part of a core. */
struct crl__smp_core {
    struct crl__smp_group *group;
    /* Set by the runtime layer: wake this core's thread from its wait (another thread's
     * call), and poll the rest of this core (its I/O) without waiting, true if that made a
     * task runnable. */
    void (*wake)(struct crl__core *c);
    bool (*poll_rest)(struct crl__core *c);
    struct crl__list remote_calls; /* calls from other cores running here (call.c) */
    unsigned *credits;             /* per target core: calls this core may still send */
    size_t remote_pending;         /* this core's calls waiting for a reply */
    uint32_t cancel_seen;          /* cancel_gen when this core last looked at remote_calls */
    bool polled_enough;            /* a caller just spun idle_poll_ns for its reply */
    pthread_mutex_t foreign_lock;  /* guards foreign (call.c) */
    struct crl__foreign *foreign;  /* calls from non-executor threads, newest first */
    bool foreign_closed;
    struct crl_event credit_freed; /* a reply came back: a credit is free again */
    /* The mailbox: what other cores write or read here, on a cache line of its own so that
     * it does not bounce with the fields this core updates all the time. */
    _Alignas(64) _Atomic bool sleeping; /* about to block or blocked in the backend's wait */
    _Atomic bool foreign_pending;       /* set after a push to foreign */
    _Atomic uint32_t cancel_gen;        /* bumped by a core cancelling a call running here */
    _Atomic(struct crl__xnote *) notes; /* wake-ups posted by other cores (xchan.c) */
};

int crl__smp_group_init(struct crl__smp_group *g, unsigned ncores);
void crl__smp_group_fini(struct crl__smp_group *g);
/* Set up c's part (c->smp linked, its group, wake and poll_rest set). */
int crl__smp_core_init(struct crl__core *c);
void crl__smp_core_fini(struct crl__core *c);
/* Take in what other cores sent this one (requests, replies, cancellations). Never blocks. */
void crl__smp_poll(struct crl__core *c);
/* The dump's describer of smp's parks: a crl_call waiting for its reply. */
crl__wait_describer crl__smp_describe_wait;
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
/* An idle core, before it waits: true if it should first poll for messages (several cores,
 * a poll time, and no caller just polled in its place), with how long in *poll_ns. */
bool crl__smp_idle_poll(struct crl__core *c, int64_t *poll_ns);
/* Spin until a message comes or poll_rest made a task runnable (true), or the clock passes
 * until_ns (false). */
bool crl__smp_spin(struct crl__core *c, int64_t until_ns);
/* Around the backend's wait: announce that the core sleeps; false if a message came in
 * meanwhile (then do not wait). crl__smp_sleep_end after the wait in any case. */
bool crl__smp_sleep_begin(struct crl__core *c);
void crl__smp_sleep_end(struct crl__core *c);
/* Calls of this core still waiting for their reply (a core with none may stop waiting). */
static inline size_t crl__smp_calls_pending(const struct crl__core *c)
{
    return c->smp->remote_pending;
}

#endif
