/* stats.c - the counters of a runtime's cores (struct crl_stats): one core's, their sums,
 * and the Prometheus text exposition format (version 0.0.4) that /metrics serves.
 *
 * Each core writes only its own counters, with relaxed atomic stores (src/core/count.h);
 * here any thread reads them with relaxed atomic loads, field by field, without stopping
 * anything: a task through its own runtime (crl__cur), a foreign thread through the handle
 * of crl_runtime_current(). Every field of struct crl_stats is a uint64_t, or an array of them, and
 * is named once in the table below: its metric's name, type, help text and the label of its index.
 */
#include "runtime.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

/* ---- The table of counters -------------------------------------------------------------- */

enum metric_type { COUNTER, GAUGE };

/* The label that tells apart the elements of an array field, and its values by index. */
struct index_label {
    const char *name;
    const char *const *values;
};

static const char *const io_kind_names[CRL_IO_KINDS] = {
    [CRL_IO_READ] = "read", [CRL_IO_WRITE] = "write",   [CRL_IO_RECV] = "recv",
    [CRL_IO_SEND] = "send", [CRL_IO_ACCEPT] = "accept", [CRL_IO_CONNECT] = "connect",
    [CRL_IO_POLL] = "poll", [CRL_IO_OPEN] = "open",     [CRL_IO_SYNC] = "sync",
    [CRL_IO_STAT] = "stat", [CRL_IO_OTHER] = "other",
};
static const char *const status_class_names[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
static const char *const timeout_kind_names[CRL_HTTP_TIMEOUT_KINDS] = {
    [CRL_HTTP_TIMEOUT_HEADER] = "header",
    [CRL_HTTP_TIMEOUT_BODY] = "body",
    [CRL_HTTP_TIMEOUT_IDLE] = "idle",
    [CRL_HTTP_TIMEOUT_WRITE] = "write",
};

static const struct index_label io_kind = {"kind", io_kind_names};
static const struct index_label status_class = {"class", status_class_names};
static const struct index_label timeout_kind = {"kind", timeout_kind_names};

/* X(field, type, elements, index label or NULL, help): every field, in the struct's order. */
#define STATS_FIELDS(X)                                                                            \
    X(tasks_spawned, COUNTER, 1, NULL, "Tasks started.")                                           \
    X(tasks_live, GAUGE, 1, NULL, "Tasks not ended yet.")                                          \
    X(switches, COUNTER, 1, NULL, "Switches from one task to another.")                            \
    X(runq_high, GAUGE, 1, NULL, "Most tasks ever runnable at once.")                              \
    X(busy_ns, COUNTER, 1, NULL, "Nanoseconds spent running tasks.")                               \
    X(idle_ns, COUNTER, 1, NULL, "Nanoseconds spent waiting for something to do.")                 \
    X(loop_turns, COUNTER, 1, NULL, "Turns of the scheduler's loop.")                              \
    X(sleeps, COUNTER, 1, NULL, "Waits of the loop that blocked its thread.")                      \
    X(wakeups_sent, COUNTER, 1, NULL, "Wake-ups sent to other cores.")                             \
    X(wakeups_received, COUNTER, 1, NULL, "Wake-ups received from other threads.")                 \
    X(io_started, COUNTER, CRL_IO_KINDS, &io_kind, "I/O operations started, by kind.")             \
    X(io_completed, COUNTER, CRL_IO_KINDS, &io_kind, "I/O operations completed, by kind.")         \
    X(io_cancelled, COUNTER, CRL_IO_KINDS, &io_kind, "I/O operations cancelled, by kind.")         \
    X(timers_armed, COUNTER, 1, NULL, "Timers armed.")                                             \
    X(timers_fired, COUNTER, 1, NULL, "Timers that reached their deadline.")                       \
    X(calls_sent, COUNTER, 1, NULL, "Cross-core calls made from this core.")                       \
    X(calls_received, COUNTER, 1, NULL, "Cross-core calls run on this core.")                      \
    X(chan_sent, COUNTER, 1, NULL, "Cross-core channel messages sent.")                            \
    X(chan_received, COUNTER, 1, NULL, "Cross-core channel messages received.")                    \
    X(pool_queued, COUNTER, 1, NULL, "Blocking-pool jobs queued.")                                 \
    X(pool_run, COUNTER, 1, NULL, "Blocking-pool jobs finished.")                                  \
    X(stalls, COUNTER, 1, NULL, "Stalls the watchdog reported.")                                   \
    X(conns_accepted, COUNTER, 1, NULL, "Connections accepted by crl_serve.")                      \
    X(conns_live, GAUGE, 1, NULL, "Connections being served.")                                     \
    X(http_requests, COUNTER, 1, NULL, "HTTP requests handed to a handler.")                       \
    X(http_responses, COUNTER, 5, &status_class, "HTTP responses made, by status class.")          \
    X(http_bytes_in, COUNTER, 1, NULL, "Bytes the HTTP server read.")                              \
    X(http_bytes_out, COUNTER, 1, NULL, "Bytes the HTTP server wrote.")                            \
    X(http_parse_errors, COUNTER, 1, NULL, "HTTP requests rejected as malformed or too large.")    \
    X(http_timeouts, COUNTER, CRL_HTTP_TIMEOUT_KINDS, &timeout_kind,                               \
      "HTTP server timeouts, by kind.")                                                            \
    X(io_ops, COUNTER, 1, NULL, "I/O operations started (every kind).")                            \
    X(accept_calls, COUNTER, 1, NULL, "Accept attempts.")                                          \
    X(accept_emfile, COUNTER, 1, NULL, "Accepts that failed for lack of fds and backed off.")

struct metric {
    const char *field;
    enum metric_type type;
    unsigned elements;
    const struct index_label *label; /* NULL for a single value */
    size_t offset;                   /* in struct crl_stats */
    const char *help;
};

#define METRIC_ROW(f, t, n, l, h) {#f, t, n, l, offsetof(struct crl_stats, f), h},
static const struct metric metrics[] = {STATS_FIELDS(METRIC_ROW)};
#undef METRIC_ROW

/* The table names every field of struct crl_stats: a field added there must be added here. */
#define METRIC_SIZE(f, t, n, l, h) +(n) * sizeof(uint64_t)
static_assert(0 STATS_FIELDS(METRIC_SIZE) == sizeof(struct crl_stats),
              "every field of struct crl_stats is in STATS_FIELDS");
#undef METRIC_SIZE
#define METRIC_ARRAY(f, t, n, l, h)                                                                \
    static_assert(sizeof((struct crl_stats *)0)->f == (n) * sizeof(uint64_t), #f " has " #n);
STATS_FIELDS(METRIC_ARRAY)
#undef METRIC_ARRAY

enum { STATS_WORDS = sizeof(struct crl_stats) / sizeof(uint64_t) };

/* ---- Reading the cores ------------------------------------------------------------------ */

/* The word at offset in core c's counters, read with a relaxed atomic load (c may be another
 * thread's core). */
static uint64_t load_word(const struct crl__runtime *rt, unsigned id, size_t offset)
{
    const struct crl__core *c = rt->smp.cores[id];
    if (offset == offsetof(struct crl_stats, stalls)) /* the watchdog's count */
        return crl__stall_count(rt, id);
    if (offset == offsetof(struct crl_stats, timers_armed)) /* the wheel's own */
        return __atomic_load_n(&c->wheel.armed, __ATOMIC_RELAXED);
    if (offset == offsetof(struct crl_stats, timers_fired))
        return __atomic_load_n(&c->wheel.fired, __ATOMIC_RELAXED);
    return __atomic_load_n((const uint64_t *)((const char *)&c->stats + offset), __ATOMIC_RELAXED);
}

static void load_core(const struct crl__runtime *rt, unsigned id, struct crl_stats *out)
{
    uint64_t *to = (uint64_t *)out;
    for (size_t i = 0; i < STATS_WORDS; i++)
        to[i] = load_word(rt, id, i * sizeof(uint64_t));
}

/* The sums of rt's cores' counters. */
static void load_sums(const struct crl__runtime *rt, struct crl_stats *out)
{
    *out = (struct crl_stats){0};
    uint64_t *sum = (uint64_t *)out;
    for (unsigned k = 0; k < rt->ncores; k++) {
        struct crl_stats one;
        load_core(rt, k, &one);
        const uint64_t *w = (const uint64_t *)&one;
        for (size_t i = 0; i < STATS_WORDS; i++)
            sum[i] += w[i];
    }
}

/* The runtime behind a handle of crl_runtime_current(), which is its smp group. */
static const struct crl__runtime *runtime_of(struct crl_runtime *handle)
{
    return crl__container_of((struct crl__smp_group *)handle, struct crl__runtime, smp);
}

int crl_stats_core(unsigned core, struct crl_stats *out)
{
    const struct crl__core *c = crl__cur;
    if (!c)
        return -ESRCH;
    if (core >= c->rt->ncores)
        return -EINVAL;
    load_core(c->rt, core, out);
    return 0;
}

void crl_stats_get(struct crl_stats *out)
{
    const struct crl__core *c = crl__cur;
    if (c)
        load_sums(c->rt, out);
    else
        *out = (struct crl_stats){0};
}

int crl_runtime_stats(struct crl_runtime *handle, unsigned core, struct crl_stats *out)
{
    if (!handle)
        return -EINVAL;
    const struct crl__runtime *rt = runtime_of(handle);
    if (core == CRL_ALL_CORES)
        load_sums(rt, out);
    else if (core < rt->ncores)
        load_core(rt, core, out);
    else
        return -EINVAL;
    return 0;
}

/* ---- The text format -------------------------------------------------------------------- */

/* Text going into buf like snprintf's: at most cap - 1 bytes and a NUL; len counts it all. */
struct text {
    char *buf;
    size_t cap, len;
};

static void put(struct text *t, const char *s, size_t n)
{
    if (t->len + 1 < t->cap) {
        size_t room = t->cap - 1 - t->len;
        memcpy(t->buf + t->len, s, n < room ? n : room);
    }
    t->len += n;
}

static void put_str(struct text *t, const char *s) { put(t, s, strlen(s)); }

static void put_u64(struct text *t, uint64_t v)
{
    char tmp[20];
    size_t n = sizeof tmp;
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(t, tmp + n, sizeof tmp - n);
}

/* s with the format's escapes: backslash and newline everywhere, the double quote too in a
 * label value. */
static void put_escaped(struct text *t, const char *s, bool label_value)
{
    for (; *s; s++) {
        if (*s == '\\')
            put(t, "\\\\", 2);
        else if (*s == '\n')
            put(t, "\\n", 2);
        else if (*s == '"' && label_value)
            put(t, "\\\"", 2);
        else
            put(t, s, 1);
    }
}

static void put_name(struct text *t, const struct metric *m)
{
    put_str(t, "corral_");
    put_str(t, m->field);
    if (m->type == COUNTER)
        put_str(t, "_total");
}

static void put_label(struct text *t, const char *name, const char *value)
{
    put_str(t, name);
    put(t, "=\"", 2);
    put_escaped(t, value, true);
    put(t, "\"", 1);
}

/* One sample: NAME{core="K"[,LABEL="VALUE"]} VALUE */
static void put_sample(struct text *t, const struct metric *m, unsigned core, unsigned i,
                       uint64_t value)
{
    char id[12];
    size_t n = sizeof id - 1;
    id[n] = '\0';
    do {
        id[--n] = (char)('0' + core % 10);
        core /= 10;
    } while (core);
    put_name(t, m);
    put(t, "{", 1);
    put_label(t, "core", id + n);
    if (m->label) {
        put(t, ",", 1);
        put_label(t, m->label->name, m->label->values[i]);
    }
    put(t, "} ", 2);
    put_u64(t, value);
    put(t, "\n", 1);
}

static void put_family(struct text *t, const struct metric *m, const struct crl__runtime *rt)
{
    put_str(t, "# HELP ");
    put_name(t, m);
    put(t, " ", 1);
    put_escaped(t, m->help, false);
    put_str(t, "\n# TYPE ");
    put_name(t, m);
    put_str(t, m->type == COUNTER ? " counter\n" : " gauge\n");
    for (unsigned k = 0; k < rt->ncores; k++)
        for (unsigned i = 0; i < m->elements; i++)
            put_sample(t, m, k, i, load_word(rt, k, m->offset + i * sizeof(uint64_t)));
}

static size_t metrics_text(const struct crl__runtime *rt, char *buf, size_t cap)
{
    struct text t = {buf, cap, 0};
    if (rt)
        for (size_t i = 0; i < sizeof metrics / sizeof metrics[0]; i++)
            put_family(&t, &metrics[i], rt);
    if (cap)
        buf[t.len < cap ? t.len : cap - 1] = '\0';
    return t.len;
}

size_t crl_metrics_text(char *buf, size_t cap)
{
    const struct crl__core *c = crl__cur;
    return metrics_text(c ? c->rt : NULL, buf, cap);
}

size_t crl_runtime_metrics_text(struct crl_runtime *handle, char *buf, size_t cap)
{
    return metrics_text(handle ? runtime_of(handle) : NULL, buf, cap);
}
