/* The SPSC ring: order, capacity, wrap-around, and two threads on two CPUs passing a
 * million messages without loss, duplication or reordering. */
#define _GNU_SOURCE
#include "../test.h"
#include "smp/ring.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>

/* A message whose words are derived from i. */
static bool push(struct crl__ring *r, uintptr_t i)
{
    struct crl__ring_msg m = {(void *)i, (void *)(i + 1), (void *)(i + 2), -(int32_t)i};
    return crl__ring_push(r, &m);
}

/* Messages come out in the order they went in; a full ring refuses; indices wrap. */
TEST_PLAIN(ring_is_fifo_bounded_and_wraps)
{
    struct crl__ring r;
    CHECK_EQ(crl__ring_init(&r, 3), -EINVAL);
    CHECK_EQ(crl__ring_init(&r, 4), 0);
    struct crl__ring_msg out[8];
    for (uintptr_t round = 0; round < 1000; round++) { /* wraps the indices many times */
        for (uintptr_t i = 1; i <= 4; i++)
            CHECK(push(&r, round * 10 + i));
        CHECK(!push(&r, 99));
        CHECK_EQ(crl__ring_pop(&r, out, 3), 3);
        CHECK_EQ((uintptr_t)out[0].ptr, round * 10 + 1);
        CHECK_EQ((uintptr_t)out[2].ptr, round * 10 + 3);
        CHECK_EQ(out[2].value, -(int32_t)(round * 10 + 3)); /* every word of the payload */
        CHECK_EQ((uintptr_t)out[2].p2, round * 10 + 3 + 2);
        CHECK(push(&r, round * 10 + 5));
        CHECK_EQ(crl__ring_pop(&r, out, 8), 2);
        CHECK_EQ((uintptr_t)out[0].ptr, round * 10 + 4);
        CHECK_EQ((uintptr_t)out[1].p1, round * 10 + 5 + 1);
        CHECK(crl__ring_empty(&r));
        CHECK_EQ(crl__ring_pop(&r, out, 8), 0);
    }
    crl__ring_fini(&r);
}

enum { MESSAGES = 1000000 };

static struct crl__ring shared;

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set); /* best effort: a 1-CPU mask just shares */
}

static void *producer(void *arg)
{
    (void)arg;
    pin(1);
    for (uintptr_t i = 1; i <= MESSAGES; i++)
        while (!push(&shared, i))
            sched_yield();
    return NULL;
}

/* Two threads, a million messages through a 64-slot ring: every one arrives once, in order. */
TEST_PLAIN(ring_passes_messages_between_threads)
{
    CHECK_EQ(crl__ring_init(&shared, 64), 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, producer, NULL), 0);
    pin(0);
    uintptr_t expect = 1;
    struct crl__ring_msg batch[32];
    while (expect <= MESSAGES) {
        size_t n = crl__ring_pop(&shared, batch, 32);
        if (n == 0)
            sched_yield();
        for (size_t i = 0; i < n; i++) {
            CHECK_EQ((uintptr_t)batch[i].p2, expect + 2);
            CHECK_EQ((uintptr_t)batch[i].ptr, expect++);
        }
    }
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK(crl__ring_empty(&shared));
    crl__ring_fini(&shared);
    cpu_set_t all;
    CPU_ZERO(&all);
    for (int i = 0; i < CPU_SETSIZE; i++)
        CPU_SET(i, &all);
    sched_setaffinity(0, sizeof all, &all);
}
