/* ring.c - setup of the SPSC ring (ring.h holds the lock-free push and pop). */
#include "ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int crl__ring_init(struct crl__ring *r, uint32_t capacity)
{
    if (capacity < 2 || (capacity & (capacity - 1)))
        return -EINVAL;
    r->slots = aligned_alloc(64, capacity * sizeof *r->slots);
    if (!r->slots)
        return -ENOMEM;
    memset(r->slots, 0, capacity * sizeof *r->slots);
    for (uint32_t i = 0; i < capacity; i++)
        atomic_init(&r->slots[i].seq, i); /* free for message i */
    r->head = 0;
    r->tail = 0;
    r->mask = capacity - 1;
    return 0;
}

void crl__ring_fini(struct crl__ring *r)
{
    free(r->slots);
    r->slots = NULL;
}
