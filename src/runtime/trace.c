/* trace.c - the flight recorders as Chrome trace-event JSON (see trace.h).
 *
 * Each core's ring is snapshot once into a buffer, then turned into events in ring order:
 * a run event ends the open slice (if any) and begins one, a park ends it, everything else
 * is an instant. Output goes through a small buffer to fd. */
#include "trace.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { NAME_MAX_CHARS = 200 }; /* longer task names are cut */

struct out {
    int fd;
    int pid; /* getpid() is a system call: once */
    int err; /* the first write error, sticky */
    bool first_event;
    size_t len;
    char buf[8192];
};

static void out_flush(struct out *o)
{
    size_t done = 0;
    while (done < o->len && o->err == 0) {
        ssize_t n = write(o->fd, o->buf + done, o->len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            o->err = n < 0 ? -errno : -EIO;
        else
            done += (size_t)n;
    }
    o->len = 0;
}

static void out_char(struct out *o, char ch)
{
    if (o->len == sizeof o->buf)
        out_flush(o);
    o->buf[o->len++] = ch;
}

static void out_printf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Pieces printed here are short (numbers, fixed names): at most a few dozen bytes. */
static void out_printf(struct out *o, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = sizeof o->buf - o->len;
        int n = vsnprintf(o->buf + o->len, room, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < room) {
            o->len += (size_t)n;
            return;
        }
        out_flush(o);
    }
}

/* s as a JSON string, quotes included; control characters escaped, cut at NAME_MAX_CHARS. */
static void out_string(struct out *o, const char *s)
{
    out_char(o, '"');
    for (size_t i = 0; s[i] && i < NAME_MAX_CHARS; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            out_char(o, '\\');
            out_char(o, (char)ch);
        } else if (ch < 0x20 || ch == 0x7f) {
            out_printf(o, "\\u%04x", ch);
        } else {
            out_char(o, (char)ch);
        }
    }
    out_char(o, '"');
}

/* ns as microseconds with three decimals, exactly. */
static void out_us(struct out *o, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    out_printf(o, "%" PRId64 ".%03d", ns / 1000, (int)(ns % 1000));
}

/* The start of one event object, up to the comma before its own fields. */
static void event_begin(struct out *o, char ph, unsigned core, int64_t ts, bool has_ts)
{
    out_printf(o, "%s\n{\"ph\":\"%c\",\"pid\":%d,\"tid\":%u", o->first_event ? "" : ",", ph, o->pid,
               core);
    o->first_event = false;
    if (has_ts) {
        out_printf(o, ",\"ts\":");
        out_us(o, ts);
    }
}

static void metadata(struct out *o, unsigned core, const char *what, const char *arg,
                     const char *value, long number)
{
    event_begin(o, 'M', core, 0, false);
    out_printf(o, ",\"name\":\"%s\",\"args\":{\"%s\":", what, arg);
    if (value)
        out_string(o, value);
    else
        out_printf(o, "%ld", number);
    out_printf(o, "}}");
}

static const char *const park_names[CRL__PARK_REASONS] = {
    [CRL__PARK_YIELD] = "yield", [CRL__PARK_EXIT] = "exit", [CRL__PARK_IO] = "io",
    [CRL__PARK_TIMER] = "timer", [CRL__PARK_CHAN] = "chan", [CRL__PARK_CALL] = "call",
    [CRL__PARK_POOL] = "pool",   [CRL__PARK_SYNC] = "sync", [CRL__PARK_JOIN] = "join",
    [CRL__PARK_OTHER] = "other",
};

/* DESIGN19's enum crl_io_kind, in its order. */
static const char *const io_names[] = {
    "read", "write", "recv", "send", "accept", "connect", "poll", "open", "sync", "stat", "other",
};

static void out_named(struct out *o, const char *const *names, size_t count, uint64_t v)
{
    if (v < count && names[v])
        out_string(o, names[v]);
    else
        out_printf(o, "%" PRIu64, v);
}

struct core_state {
    unsigned core;
    const struct crl__trace_json_opts *opts;
    bool open;       /* a slice has begun and not ended */
    int64_t last_ts; /* never goes back */
};

static int64_t step_ts(struct core_state *st, int64_t ts)
{
    if (ts > st->last_ts)
        st->last_ts = ts;
    return st->last_ts;
}

static const char *task_name(const struct core_state *st, uint32_t id, uint64_t name)
{
    const char *s;
    if (st->opts->task_name)
        s = st->opts->task_name(st->opts->ctx, st->core, id, name);
    else
        s = (const char *)(uintptr_t)name;
    return s ? s : "task";
}

static void slice_begin(struct out *o, struct core_state *st, int64_t ts, uint32_t id,
                        const char *name, bool truncated)
{
    event_begin(o, 'B', st->core, ts, true);
    out_printf(o, ",\"cat\":\"task\",\"name\":");
    out_string(o, name);
    out_printf(o, ",\"args\":{\"task\":%" PRIu32 "%s}}", id,
               truncated ? ",\"truncated\":true" : "");
    st->open = true;
}

static void slice_end(struct out *o, struct core_state *st, int64_t ts, const char *reason,
                      uint64_t code)
{
    event_begin(o, 'E', st->core, ts, true);
    if (reason) {
        out_printf(o, ",\"args\":{\"%s\":", reason);
        out_named(o, park_names, CRL__PARK_REASONS, code);
        out_char(o, '}');
    }
    out_char(o, '}');
    st->open = false;
}

static void instant(struct out *o, const struct core_state *st, int64_t ts, const char *cat,
                    const char *name)
{
    event_begin(o, 'i', st->core, ts, true);
    out_printf(o, ",\"s\":\"t\",\"cat\":\"%s\",\"name\":\"%s\",\"args\":{", cat, name);
}

static void one_event(struct out *o, struct core_state *st, const struct crl__trace_event *e)
{
    int64_t ts = step_ts(st, e->ts);
    switch (e->kind) {
    case CRL__TRACE_RUN:
        if (st->open)
            slice_end(o, st, ts, NULL, 0);
        slice_begin(o, st, ts, e->a, task_name(st, e->a, e->b), false);
        return;
    case CRL__TRACE_PARK:
        if (st->open) /* else its run was lost: nothing to end */
            slice_end(o, st, ts, "reason", e->b);
        return;
    case CRL__TRACE_SPAWN:
        instant(o, st, ts, "task", "spawn");
        out_printf(o, "\"task\":%" PRIu32 ",\"name\":", e->a);
        out_string(o, task_name(st, e->a, e->b));
        break;
    case CRL__TRACE_WAKE:
        instant(o, st, ts, "task", "wake");
        out_printf(o, "\"task\":%" PRIu32, e->a);
        if (e->b != UINT64_MAX)
            out_printf(o, ",\"from_core\":%" PRIu64, e->b);
        break;
    case CRL__TRACE_IO_SUBMIT:
    case CRL__TRACE_IO_COMPLETE: {
        bool submit = e->kind == CRL__TRACE_IO_SUBMIT;
        instant(o, st, ts, "io", submit ? "io submit" : "io complete");
        out_printf(o, "\"op\":");
        out_named(o, io_names, sizeof io_names / sizeof io_names[0], e->a);
        if (submit)
            out_printf(o, ",\"fd\":%" PRId64, (int64_t)e->b);
        else
            out_printf(o, ",\"res\":%" PRId64, (int64_t)e->b);
        break;
    }
    case CRL__TRACE_XCORE_SEND:
    case CRL__TRACE_XCORE_RECV:
        instant(o, st, ts, "xcore", e->kind == CRL__TRACE_XCORE_SEND ? "xcore send" : "xcore recv");
        out_printf(o, "\"peer\":%" PRIu32 ",\"what\":%" PRIu64, e->a, e->b);
        break;
    case CRL__TRACE_STALL_BEGIN:
    case CRL__TRACE_STALL_END:
        instant(o, st, ts, "stall", e->kind == CRL__TRACE_STALL_BEGIN ? "stall" : "stall end");
        out_printf(o, "\"task\":%" PRIu32 ",\"ms\":%.3f", e->a, (double)e->b / 1e6);
        break;
    default:
        instant(o, st, ts, "other", "event");
        out_printf(o, "\"kind\":%u,\"a\":%" PRIu32 ",\"b\":%" PRIu64, e->kind, e->a, e->b);
        break;
    }
    out_printf(o, "}}");
}

/* A ring that wrapped mid-slice: its first slice event is a park. */
static const struct crl__trace_event *first_slice_event(const struct crl__trace_event *ev, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ev[i].kind == CRL__TRACE_RUN || ev[i].kind == CRL__TRACE_PARK)
            return &ev[i];
    return NULL;
}

/* A core's events: n of its own (lost: how many earlier ones are gone), and ns others
 * (stalls), each in time order, merged. */
struct core_events {
    const struct crl__trace_event *ev, *other;
    size_t n, nother;
    uint64_t lost;
};

static void write_core(struct out *o, struct core_state *st, const struct core_events *e)
{
    char name[32];
    snprintf(name, sizeof name, "core %u", st->core);
    metadata(o, st->core, "thread_name", "name", name, 0);
    metadata(o, st->core, "thread_sort_index", "sort_index", NULL, (long)st->core);
    if (e->n == 0 && e->nother == 0)
        return;
    int64_t first_ts = e->n ? e->ev[0].ts : e->other[0].ts;
    if (e->nother && e->other[0].ts < first_ts)
        first_ts = e->other[0].ts;
    st->last_ts = first_ts;
    if (e->lost > 0) {
        instant(o, st, first_ts, "trace", "earlier events lost");
        out_printf(o, "\"lost\":%" PRIu64 "}}", e->lost);
    }
    const struct crl__trace_event *fs = first_slice_event(e->ev, e->n);
    if (fs && fs->kind == CRL__TRACE_PARK)
        slice_begin(o, st, first_ts, fs->a, task_name(st, fs->a, 0), true);
    size_t j = 0;
    for (size_t i = 0; i < e->n; i++) {
        for (; j < e->nother && e->other[j].ts <= e->ev[i].ts; j++)
            one_event(o, st, &e->other[j]);
        one_event(o, st, &e->ev[i]);
    }
    for (; j < e->nother; j++)
        one_event(o, st, &e->other[j]);
    if (st->open)
        slice_end(o, st, step_ts(st, st->opts->end_ns), NULL, 0);
}

int crl__trace_write_json(int fd, struct crl__trace_ring *const *rings, unsigned ncores,
                          const struct crl__trace_json_opts *opts)
{
    static const struct crl__trace_json_opts defaults;
    if (!opts)
        opts = &defaults;
    size_t cap = 0, cap_other = 1;
    for (unsigned i = 0; i < ncores; i++) {
        if (rings[i] && crl__trace_size(rings[i]) > cap)
            cap = crl__trace_size(rings[i]);
        const struct crl__trace_ring *other = opts->stall_rings ? opts->stall_rings[i] : NULL;
        if (other && crl__trace_size(other) > cap_other)
            cap_other = crl__trace_size(other);
    }
    if (cap == 0)
        return -ENODATA;
    struct crl__trace_event *ev = malloc(cap * sizeof *ev);
    struct crl__trace_event *other = malloc(cap_other * sizeof *other);
    struct out *o = malloc(sizeof *o);
    if (!ev || !other || !o) {
        free(ev);
        free(other);
        free(o);
        return -ENOMEM;
    }
    *o = (struct out){.fd = fd, .pid = (int)getpid(), .first_event = true};
    out_printf(o, "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[");
    metadata(o, 0, "process_name", "name", "corral", 0);
    for (unsigned i = 0; i < ncores; i++) {
        if (!rings[i])
            continue;
        struct core_events e = {.ev = ev, .other = other};
        e.n = crl__trace_snapshot(rings[i], ev, cap, &e.lost);
        if (opts->stall_rings && opts->stall_rings[i])
            e.nother = crl__trace_snapshot(opts->stall_rings[i], other, cap_other, NULL);
        struct core_state st = {.core = i, .opts = opts};
        write_core(o, &st, &e);
    }
    out_printf(o, "\n]}\n");
    out_flush(o);
    int err = o->err;
    free(ev);
    free(other);
    free(o);
    return err;
}
