/* ring.h - a single-producer single-consumer ring of small messages, the channel between one
 * ordered pair of cores. Lock-free, and with no shared index: each slot carries a sequence
 * number saying whose turn it is (slot i holds message i when seq = i + 1, and is free for
 * message i + capacity when seq = i + capacity). The producer and the consumer each keep
 * their own index on a cache line of their own, so a message costs the transfer of the
 * slot's cache line and nothing else. Capacity is a power of two. */
#ifndef CRL_SMP_RING_H
#define CRL_SMP_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A message: a pointer and two more words of payload, and a 32-bit value. */
struct crl__ring_msg {
    void *ptr, *p1, *p2;
    int32_t value;
};

struct crl__ring_slot { /* 32 bytes: two per cache line */
    _Atomic uint32_t seq;
    int32_t value;
    void *ptr, *p1, *p2;
};

struct crl__ring {
    _Alignas(64) uint32_t tail; /* the producer's: next message to write */
    _Alignas(64) uint32_t head; /* the consumer's: next message to read */
    _Alignas(64) uint32_t mask;
    struct crl__ring_slot *slots;
};

/* capacity: a power of two >= 2. Returns 0, -EINVAL or -ENOMEM. */
int crl__ring_init(struct crl__ring *r, uint32_t capacity);
void crl__ring_fini(struct crl__ring *r);

/* Producer side: append *m; false if the ring is full. */
static inline bool crl__ring_push(struct crl__ring *r, const struct crl__ring_msg *m)
{
    uint32_t tail = r->tail;
    struct crl__ring_slot *s = &r->slots[tail & r->mask];
    if (atomic_load_explicit(&s->seq, memory_order_acquire) != tail)
        return false; /* message tail - capacity is still unread */
    s->value = m->value;
    s->ptr = m->ptr;
    s->p1 = m->p1;
    s->p2 = m->p2;
    atomic_store_explicit(&s->seq, tail + 1, memory_order_release); /* publishes it */
    r->tail = tail + 1;
    return true;
}

/* Consumer side: take up to max messages into out, oldest first; returns how many. */
static inline size_t crl__ring_pop(struct crl__ring *r, struct crl__ring_msg *out, size_t max)
{
    size_t n = 0;
    uint32_t head = r->head;
    while (n < max) {
        struct crl__ring_slot *s = &r->slots[head & r->mask];
        if (atomic_load_explicit(&s->seq, memory_order_acquire) != head + 1)
            break;
        out[n++] = (struct crl__ring_msg){s->ptr, s->p1, s->p2, s->value};
        atomic_store_explicit(&s->seq, head + r->mask + 1, memory_order_release); /* frees it */
        head++;
    }
    r->head = head;
    return n;
}

/* Consumer side: true if no message is waiting (a hint: the producer may be writing one). */
static inline bool crl__ring_empty(struct crl__ring *r)
{
    const struct crl__ring_slot *s = &r->slots[r->head & r->mask];
    return atomic_load_explicit(&s->seq, memory_order_acquire) != r->head + 1;
}

#endif
