/* ring.h - a single-producer single-consumer ring of pointers, the channel between one
 * ordered pair of cores. Lock-free: the producer owns tail, the consumer owns head, each on
 * its own cache line, and each side keeps a cached copy of the other's index so that it
 * touches the shared line only when its cached view runs out (once per batch, not per
 * message). Capacity is a power of two. */
#ifndef CRL_SMP_RING_H
#define CRL_SMP_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct crl__ring {
    _Alignas(64) _Atomic uint32_t tail; /* next slot the producer writes */
    uint32_t head_seen;                 /* producer's last view of head */
    _Alignas(64) _Atomic uint32_t head; /* next slot the consumer reads */
    uint32_t tail_seen;                 /* consumer's last view of tail */
    _Alignas(64) uint32_t mask;
    void **slots;
};

/* capacity: a power of two >= 2. Returns 0, -EINVAL or -ENOMEM. */
int crl__ring_init(struct crl__ring *r, uint32_t capacity);
void crl__ring_fini(struct crl__ring *r);

/* Producer side: append msg; false if the ring is full. */
static inline bool crl__ring_push(struct crl__ring *r, void *msg)
{
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (tail - r->head_seen > r->mask) {
        r->head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
        if (tail - r->head_seen > r->mask)
            return false;
    }
    r->slots[tail & r->mask] = msg;
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release); /* publishes the slot */
    return true;
}

/* Consumer side: take up to max messages into out, oldest first; returns how many. */
static inline size_t crl__ring_pop(struct crl__ring *r, void **out, size_t max)
{
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (r->tail_seen - head < max) /* the cached view cannot fill the batch: look again */
        r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
    size_t n = 0;
    while (n < max && head != r->tail_seen)
        out[n++] = r->slots[head++ & r->mask];
    if (n)
        atomic_store_explicit(&r->head, head, memory_order_release); /* frees the slots */
    return n;
}

/* Consumer side: true if nothing is waiting (a hint: the producer may be pushing). */
static inline bool crl__ring_empty(struct crl__ring *r)
{
    return atomic_load_explicit(&r->head, memory_order_relaxed) ==
           atomic_load_explicit(&r->tail, memory_order_acquire);
}

#endif
