/* ring.c - setup of the SPSC ring (ring.h holds the lock-free push and pop). */
#include "ring.h"

#include <errno.h>
#include <stdlib.h>

int crl__ring_init(struct crl__ring *r, uint32_t capacity)
{
    if (capacity < 2 || (capacity & (capacity - 1)))
        return -EINVAL;
    r->slots = calloc(capacity, sizeof *r->slots);
    if (!r->slots)
        return -ENOMEM;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    r->head_seen = 0;
    r->tail_seen = 0;
    r->mask = capacity - 1;
    return 0;
}

void crl__ring_fini(struct crl__ring *r)
{
    free(r->slots);
    r->slots = NULL;
}
