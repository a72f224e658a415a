/* count.h - how a core updates its own counters (struct crl_stats, corral.h).
 *
 * Only the core that owns a struct crl_stats writes it, so an update is a plain read of the
 * old value and a relaxed atomic store of the new one: no read-modify-write instruction (no
 * lock prefix) on the hot path, and other threads (crl_stats_core, /metrics, the watchdog)
 * read the fields with relaxed atomic loads without a data race. */
#ifndef CRL_CORE_COUNT_H
#define CRL_CORE_COUNT_H

#include "corral.h"

/* s->field += n, by the owning core only, always (a count the runtime itself needs). On
 * x86-64 one add to memory: without a lock prefix it is no read-modify-write atomic, which it
 * need not be (one writer), and its store is single-copy atomic, so a reader's relaxed atomic
 * load sees the old value or the new one. Elsewhere, and under TSan, which must see it as an
 * atomic store, a plain read and a relaxed atomic store. */
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
#define CRL__STAT_ADD(s, field, n)                                                                 \
    __asm__("addq %1, %0" : "+m"((s)->field) : "er"((uint64_t)(n)) : "cc")
#else
#define CRL__STAT_ADD(s, field, n)                                                                 \
    __atomic_store_n(&(s)->field, (s)->field + (uint64_t)(n), __ATOMIC_RELAXED)
#endif
#define CRL__STAT_SUB(s, field, n) CRL__STAT_ADD(s, field, -(uint64_t)(n))

/* The counters a user reads (and the stall detector watches), compiled out by the meson
 * option diagnostics=false (-DCRL_NO_DIAGNOSTICS), the build their cost is measured against.
 * field may be an array element: io_started[k]. */
#ifndef CRL_NO_DIAGNOSTICS
#define CRL__COUNT_ADD(s, field, n) CRL__STAT_ADD(s, field, n)
#define CRL__COUNT_SUB(s, field, n) CRL__STAT_SUB(s, field, n)
/* A high-water mark (runq_high): raised to v when v is above it. */
#define CRL__COUNT_MAX(s, field, v)                                                                \
    do {                                                                                           \
        uint64_t v_ = (uint64_t)(v);                                                               \
        if (v_ > (s)->field)                                                                       \
            __atomic_store_n(&(s)->field, v_, __ATOMIC_RELAXED);                                   \
    } while (0)
#else
#define CRL__COUNT_ADD(s, field, n) ((void)sizeof((s)->field), (void)sizeof(n))
#define CRL__COUNT_SUB(s, field, n) ((void)sizeof((s)->field), (void)sizeof(n))
#define CRL__COUNT_MAX(s, field, v) ((void)sizeof((s)->field), (void)sizeof(v))
#endif
#define CRL__COUNT(s, field) CRL__COUNT_ADD(s, field, 1)
/* Another thread's view of a counter. */
#define CRL__COUNT_LOAD(s, field) __atomic_load_n(&(s)->field, __ATOMIC_RELAXED)

#endif
