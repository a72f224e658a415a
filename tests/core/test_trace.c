/* The flight recorder's ring (src/core/trace.h): sizes, order, wrap-around, the NULL ring
 * of tracing off, and a reader thread snapshotting while the owner writes (TSan build: no
 * race; every build: no torn or out-of-order event in any snapshot). */
#include "../test.h"
#include "core/trace.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>

/* The fields of event i, derived from i so that a torn event shows. */
static void record(struct crl__trace_ring *r, uint64_t i)
{
    crl__trace(r, (int64_t)i * 10, (uint8_t)(1 + i % (CRL__TRACE_KINDS - 1)), (uint32_t)(i * 7),
               i * 3 + 1);
}

static bool is_event(const struct crl__trace_event *e, uint64_t i)
{
    return e->ts == (int64_t)i * 10 && e->kind == 1 + i % (CRL__TRACE_KINDS - 1) &&
           e->a == (uint32_t)(i * 7) && e->b == i * 3 + 1;
}

/* Sizes round up to a power of two, 0 is the default, too many is refused. */
TEST_PLAIN(trace_ring_sizes)
{
    struct crl__trace_ring r;
    CHECK_EQ(crl__trace_init(&r, 0), 0);
    CHECK_EQ(crl__trace_size(&r), CRL__TRACE_DEFAULT_EVENTS);
    crl__trace_fini(&r);
    CHECK_EQ(crl__trace_init(&r, 1), 0);
    CHECK_EQ(crl__trace_size(&r), CRL__TRACE_MIN_EVENTS);
    crl__trace_fini(&r);
    CHECK_EQ(crl__trace_init(&r, 1000), 0);
    CHECK_EQ(crl__trace_size(&r), 1024);
    crl__trace_fini(&r);
    CHECK_EQ(crl__trace_init(&r, CRL__TRACE_MAX_EVENTS + 1), -EINVAL);
    CHECK(crl__trace_new(CRL__TRACE_MAX_EVENTS + 1) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(sizeof(struct crl__trace_event), 24);
}

/* Fewer events than slots come back all, in order, with every field. */
TEST_PLAIN(trace_ring_keeps_events_in_order)
{
    struct crl__trace_ring *r = crl__trace_new(64);
    CHECK(r != NULL);
    struct crl__trace_event out[64];
    uint64_t first = 99;
    CHECK_EQ(crl__trace_snapshot(r, out, 64, &first), 0);
    CHECK_EQ(first, 0);
    for (uint64_t i = 0; i < 40; i++)
        record(r, i);
    CHECK_EQ(crl__trace_snapshot(r, out, 64, &first), 40);
    CHECK_EQ(first, 0);
    for (uint64_t i = 0; i < 40; i++)
        CHECK(is_event(&out[i], i));
    crl__trace_free(r);
    crl__trace_free(NULL);
}

/* A ring that wrapped keeps the last N; a smaller buffer gets the newest that fit. */
TEST_PLAIN(trace_ring_wraps_to_the_newest)
{
    struct crl__trace_ring *r = crl__trace_new(16);
    CHECK(r != NULL);
    for (uint64_t i = 0; i < 3 * 16 + 5; i++)
        record(r, i);
    struct crl__trace_event out[16];
    uint64_t first;
    CHECK_EQ(crl__trace_snapshot(r, out, 16, &first), 16);
    CHECK_EQ(first, 2 * 16 + 5);
    for (uint64_t i = 0; i < 16; i++)
        CHECK(is_event(&out[i], first + i));
    CHECK_EQ(crl__trace_snapshot(r, out, 5, &first), 5);
    CHECK_EQ(first, 3 * 16);
    CHECK(is_event(&out[4], 3 * 16 + 4));
    crl__trace_free(r);
}

/* Tracing off is a NULL ring: the hook does nothing (and does not evaluate into it). */
TEST_PLAIN(trace_hook_with_null_ring_is_off)
{
    struct crl__trace_ring *off = NULL;
    CRL__TRACE(off, 1, CRL__TRACE_RUN, 2, 3);
    struct crl__trace_ring *on = crl__trace_new(16);
    CHECK(on != NULL);
    CRL__TRACE(on, 5, CRL__TRACE_PARK, 7, CRL__PARK_IO);
    struct crl__trace_event out[16];
    CHECK_EQ(crl__trace_snapshot(on, out, 16, NULL), 1);
    CHECK_EQ(out[0].ts, 5);
    CHECK_EQ(out[0].kind, CRL__TRACE_PARK);
    CHECK_EQ(out[0].a, 7);
    CHECK_EQ(out[0].b, CRL__PARK_IO);
    crl__trace_free(on);
}

struct race {
    struct crl__trace_ring *ring;
    uint64_t events;
    int done; /* atomic: the writer finished */
};

static void *race_writer(void *arg)
{
    struct race *rc = arg;
    for (uint64_t i = 0; i < rc->events; i++)
        record(rc->ring, i);
    __atomic_store_n(&rc->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* A reader snapshotting a small ring (so the writer laps it all the time) gets, every time,
 * consecutive events whose fields all belong together, never a torn one. */
TEST_PLAIN(trace_snapshot_while_written_is_consistent)
{
    struct race rc = {.ring = crl__trace_new(64), .events = test_slow_env() ? 200000 : 3000000};
    CHECK(rc.ring != NULL);
    pthread_t writer;
    CHECK_EQ(pthread_create(&writer, NULL, race_writer, &rc), 0);
    struct crl__trace_event out[64];
    uint64_t snapshots = 0, seen = 0, last_first = 0;
    for (bool done = false; !done;) {
        done = __atomic_load_n(&rc.done, __ATOMIC_ACQUIRE);
        uint64_t first;
        size_t n = crl__trace_snapshot(rc.ring, out, 64, &first);
        CHECK(first >= last_first); /* the window only moves forward */
        last_first = first;
        for (size_t i = 0; i < n; i++)
            if (!is_event(&out[i], first + i))
                test_fail(__FILE__, __LINE__, "event %llu of a snapshot at %llu is torn",
                          (unsigned long long)i, (unsigned long long)first);
        snapshots++;
        seen += n;
    }
    CHECK_EQ(pthread_join(writer, NULL), 0);
    /* After the writer: the last 64, exactly. */
    uint64_t first;
    CHECK_EQ(crl__trace_snapshot(rc.ring, out, 64, &first), 64);
    CHECK_EQ(first, rc.events - 64);
    CHECK(is_event(&out[63], rc.events - 1));
    CHECK(snapshots > 0);
    fprintf(stderr, "%llu snapshots, %llu events read\n", (unsigned long long)snapshots,
            (unsigned long long)seen);
    crl__trace_free(rc.ring);
}
