/* trace.h - the flight recorder's ring: the last N events of one core, with timestamps.
 *
 * Each core that traces owns one ring (tracing off: the core's ring pointer is NULL, and a
 * hook costs one predictable branch, see CRL__TRACE). The ring is written by its own thread
 * only and read by any other thread at any time (crl__trace_snapshot), without a lock: the
 * writer claims a slot (claimed = i + 1) before writing it and publishes it (published =
 * i + 1) after; a reader copies the published events, then drops those the writer may have
 * overwritten meanwhile (claimed - N and older). Every access is atomic (the event's fields
 * release/acquire, which are plain moves on x86), so a reader on another thread is not a data
 * race (TSan stays clean).
 *
 * Not async-signal-safe: a signal handler must not record into the ring of the thread it
 * interrupted (both would claim the same slot). A stall is recorded by the core itself.
 *
 * What a and b mean depends on the kind (see enum crl__trace_kind): mostly a is a task's id
 * and b its name (a const char *, read when the trace is written) or a detail. */
#ifndef CRL_CORE_TRACE_H
#define CRL_CORE_TRACE_H

#include <stddef.h>
#include <stdint.h>

enum crl__trace_kind {
    CRL__TRACE_NONE = 0,    /* a slot never written */
    CRL__TRACE_SPAWN,       /* a = new task's id, b = its name (const char *, NULL = "task") */
    CRL__TRACE_RUN,         /* a slice begins: a = task id, b = its name; ends the open slice */
    CRL__TRACE_PARK,        /* the running task's slice ends: a = task id, b = crl__trace_park */
    CRL__TRACE_WAKE,        /* a = woken task's id, b = the waking core (or ~0: this core) */
    CRL__TRACE_IO_SUBMIT,   /* a = op kind (crl_io_kind), b = fd */
    CRL__TRACE_IO_COMPLETE, /* a = op kind (crl_io_kind), b = result (int64_t) */
    CRL__TRACE_XCORE_SEND,  /* a = peer core, b = what (caller's code: call, reply, message) */
    CRL__TRACE_XCORE_RECV,  /* a = peer core, b = what */
    CRL__TRACE_STALL_BEGIN, /* a = task id (or 0: the loop), b = ns stalled so far */
    CRL__TRACE_STALL_END,   /* a = task id (or 0: the loop), b = the stall's total ns */
    CRL__TRACE_KINDS
};

/* Why a task's slice ended (b of CRL__TRACE_PARK); the JSON writer names them. */
enum crl__trace_park {
    CRL__PARK_YIELD = 0, /* still runnable (crl_yield, a checkpoint) */
    CRL__PARK_EXIT,      /* the task returned */
    CRL__PARK_IO,        /* an I/O operation */
    CRL__PARK_TIMER,     /* a sleep or deadline */
    CRL__PARK_CHAN,      /* a channel */
    CRL__PARK_CALL,      /* a cross-core call's reply */
    CRL__PARK_POOL,      /* the blocking pool */
    CRL__PARK_SYNC,      /* a mutex, condition, event or semaphore */
    CRL__PARK_JOIN,      /* a scope's tasks */
    CRL__PARK_OTHER,
    CRL__PARK_REASONS
};

/* 24 bytes. Each field is written and read atomically. */
struct crl__trace_event {
    int64_t ts; /* ns, the caller's clock */
    uint64_t b;
    uint32_t a;
    uint8_t kind; /* enum crl__trace_kind */
    uint8_t pad_[3];
};

struct crl__trace_ring {
    struct crl__trace_event *events; /* size of them */
    uint64_t mask;                   /* size - 1; size is a power of two */
    uint64_t claimed;                /* events whose slot the writer has begun to fill */
    uint64_t published;              /* events fully written: [published - size, published) */
};

enum {
    CRL__TRACE_DEFAULT_EVENTS = 65536, /* events 0 in crl__trace_init */
    CRL__TRACE_MIN_EVENTS = 16,
};
#define CRL__TRACE_MAX_EVENTS (UINT32_C(1) << 26) /* 1.5 GiB of events per core */

/* A ring of events slots (rounded up to a power of two, at least CRL__TRACE_MIN_EVENTS;
 * 0 = CRL__TRACE_DEFAULT_EVENTS). Returns 0, -EINVAL (more than CRL__TRACE_MAX_EVENTS) or
 * -ENOMEM. The memory is calloc'd: pages are touched only as the ring fills. */
int crl__trace_init(struct crl__trace_ring *r, unsigned events);
void crl__trace_fini(struct crl__trace_ring *r);

/* The same, allocated: NULL on failure (errno set). crl__trace_free(NULL) does nothing. */
struct crl__trace_ring *crl__trace_new(unsigned events);
void crl__trace_free(struct crl__trace_ring *r);

/* Slots of the ring. */
static inline size_t crl__trace_size(const struct crl__trace_ring *r)
{
    return (size_t)r->mask + 1;
}

/* Record one event; ts must not go back (the JSON writer clamps it if it does). Only the
 * ring's own thread calls this. */
static inline void crl__trace(struct crl__trace_ring *r, int64_t ts, uint8_t kind, uint32_t a,
                              uint64_t b)
{
    uint64_t i = __atomic_load_n(&r->claimed, __ATOMIC_RELAXED); /* our own store */
    __atomic_store_n(&r->claimed, i + 1, __ATOMIC_RELAXED);
    /* Release stores (plain moves on x86; no fence, which TSan cannot follow): a reader
     * that reads any of them sees the claim too, and drops the slot. */
    struct crl__trace_event *e = &r->events[i & r->mask];
    __atomic_store_n(&e->ts, ts, __ATOMIC_RELEASE);
    __atomic_store_n(&e->b, b, __ATOMIC_RELEASE);
    __atomic_store_n(&e->a, a, __ATOMIC_RELEASE);
    __atomic_store_n(&e->kind, kind, __ATOMIC_RELEASE);
    __atomic_store_n(&r->published, i + 1, __ATOMIC_RELEASE);
}

/* The hook as the hot path writes it: one predictable branch when tracing is off (ring
 * NULL), e.g. CRL__TRACE(c->trace, c->now_ns, CRL__TRACE_RUN, t->id, (uintptr_t)t->name). */
#define CRL__TRACE(ring, ts, kind, a, b)                                                           \
    do {                                                                                           \
        struct crl__trace_ring *crl_trace_r_ = (ring);                                             \
        if (__builtin_expect(crl_trace_r_ != NULL, 0))                                             \
            crl__trace(crl_trace_r_, (ts), (kind), (a), (b));                                      \
    } while (0)

/* Copy the ring's consistent events, oldest first, into out (room for cap; cap >=
 * crl__trace_size(r) gets all of them). Any thread, while the owner writes. Events the writer
 * overwrote during the copy are dropped from the oldest end. Returns the number copied;
 * *first (if not NULL) gets the index of the first one, i.e. how many earlier events are
 * gone (overwritten, or left out for lack of room). */
size_t crl__trace_snapshot(const struct crl__trace_ring *r, struct crl__trace_event *out,
                           size_t cap, uint64_t *first);

#endif
