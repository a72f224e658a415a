/* trace.c - the flight recorder's ring: allocation and the lock-free snapshot (see trace.h). */
#include "trace.h"
#include "core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int crl__trace_init(struct crl__trace_ring *r, unsigned events)
{
    memset(r, 0, sizeof *r);
    if (events == 0)
        events = CRL__TRACE_DEFAULT_EVENTS;
    if (events > CRL__TRACE_MAX_EVENTS)
        return -EINVAL;
    size_t size = CRL__TRACE_MIN_EVENTS;
    while (size < events)
        size <<= 1;
    r->events = calloc(size, sizeof *r->events);
    if (!r->events)
        return -ENOMEM;
    r->mask = size - 1;
    return 0;
}

void crl__trace_fini(struct crl__trace_ring *r)
{
    free(r->events);
    memset(r, 0, sizeof *r);
}

struct crl__trace_ring *crl__trace_new(unsigned events)
{
    struct crl__trace_ring *r = malloc(sizeof *r);
    if (!r)
        return NULL;
    int err = crl__trace_init(r, events);
    if (err < 0) {
        free(r);
        errno = -err;
        return NULL;
    }
    return r;
}

void crl__trace_free(struct crl__trace_ring *r)
{
    if (!r)
        return;
    crl__trace_fini(r);
    free(r);
}

static void load_event(const struct crl__trace_event *e, struct crl__trace_event *out)
{
    out->ts = __atomic_load_n(&e->ts, __ATOMIC_ACQUIRE);
    out->b = __atomic_load_n(&e->b, __ATOMIC_ACQUIRE);
    out->a = __atomic_load_n(&e->a, __ATOMIC_ACQUIRE);
    out->kind = __atomic_load_n(&e->kind, __ATOMIC_ACQUIRE);
    memset(out->pad_, 0, sizeof out->pad_);
}

/* One attempt: copy [lo, published), then keep what the writer cannot have touched since. */
static size_t snapshot_once(const struct crl__trace_ring *r, struct crl__trace_event *out,
                            size_t cap, uint64_t *first)
{
    uint64_t size = r->mask + 1;
    uint64_t end = __atomic_load_n(&r->published, __ATOMIC_ACQUIRE);
    uint64_t span = size < cap ? size : cap;
    uint64_t lo = end > span ? end - span : 0;
    for (uint64_t i = lo; i < end; i++)
        load_event(&r->events[i & r->mask], &out[i - lo]);
    /* The loads above acquire the writer's release stores: if any read an event written
     * after the copy began, this load sees that event's claim. */
    uint64_t claimed = __atomic_load_n(&r->claimed, __ATOMIC_RELAXED);
    /* The writer is at most filling slot claimed - 1, which held event claimed - 1 - size. */
    uint64_t safe = claimed > size ? claimed - size : 0;
    uint64_t keep_from = safe > lo ? safe : lo;
    if (keep_from >= end) {
        *first = end;
        return 0;
    }
    size_t n = (size_t)(end - keep_from);
    if (keep_from > lo)
        memmove(out, out + (keep_from - lo), n * sizeof *out);
    *first = keep_from;
    return n;
}

size_t crl__trace_snapshot(const struct crl__trace_ring *r, struct crl__trace_event *out,
                           size_t cap, uint64_t *first)
{
    uint64_t first_ = cap == 0 ? __atomic_load_n(&r->published, __ATOMIC_ACQUIRE) : 0;
    size_t n = 0;
    /* A writer that laps the whole copy leaves nothing: try again a few times. */
    for (int attempt = 0; attempt < 4 && cap > 0; attempt++) {
        n = snapshot_once(r, out, cap, &first_);
        uint64_t end = first_ + n;
        if (n > 0 || end == 0)
            break;
    }
    if (first)
        *first = first_;
    return n;
}

void crl__trace_record(struct crl__trace_ring *r, uint8_t kind, uint32_t a, uint64_t b)
{
    crl__trace(r, crl__clock_mono_ns(), kind, a, b);
}
