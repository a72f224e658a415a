/* trace.h - the flight recorders of a runtime's cores as Chrome trace-event JSON.
 *
 * The output is the JSON object format ({"traceEvents": [...]}) that Perfetto
 * (ui.perfetto.dev) and chrome://tracing read: one process, one thread per core (named
 * "core N"), each task's slice a "B"/"E" pair named after the task, and instant events ("i")
 * for spawn, wake, I/O submit and complete, cross-core send and receive and stalls.
 * Timestamps are in microseconds (the ring's ns / 1000, three decimals), never going back
 * on a core. The output always pairs: a ring that wrapped mid-slice (its first slice event a
 * park) gets a "B" at its first event, and a slice still open at the end (a task running or
 * stalled when the trace was taken) is closed at end_ns. */
#ifndef CRL_RUNTIME_TRACE_H
#define CRL_RUNTIME_TRACE_H

#include "../core/trace.h"

#include <stdint.h>

/* A task's printable name from what the ring holds: the id and the b of a spawn or run event
 * (0 for the slice made up at a wrapped ring's start). NULL = "task". */
typedef const char *crl__trace_name_fn(void *ctx, unsigned core, uint32_t id, uint64_t name);

struct crl__trace_json_opts {
    /* Where slices still open at the end are closed (ns, the rings' clock): e.g. the time
     * the trace is taken, so that a stalled task's slice reaches it. Below a core's last
     * event (0 included) = that event. */
    int64_t end_ns;
    /* NULL: b of spawn and run events is the task's name as a const char *, read now, so it
     * must still be valid (string literals are). */
    crl__trace_name_fn *task_name;
    void *ctx; /* task_name's */
    /* NULL, or ncores rings (NULL entries allowed) of events recorded by another thread than
     * the core's (the watchdog's stalls), merged by time into each core's timeline. */
    struct crl__trace_ring *const *stall_rings;
};

/* Write the rings of ncores cores (rings[i] of core i; NULL = that core does not trace) to fd
 * as one JSON document. Any thread; the rings may be written meanwhile (each is snapshot
 * once, see crl__trace_snapshot). Allocates (not async-signal-safe). opts NULL = defaults.
 * Returns 0, -ENODATA (no ring at all), -ENOMEM, or a negative errno of write(2). */
int crl__trace_write_json(int fd, struct crl__trace_ring *const *rings, unsigned ncores,
                          const struct crl__trace_json_opts *opts);

#endif
