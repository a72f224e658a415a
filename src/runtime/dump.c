/* dump.c - crl_dump (see dump.h). */
#define _GNU_SOURCE
#include "dump.h"
#include "backtrace.h"
#include "runtime.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How long a requester waits for the cores' parts, in all: a core still busy after it is
 * stalled (or its thread descheduled) and shown as not answering. */
#define DUMP_WAIT_NS (200 * CRL_MSEC_NS)
enum { DUMP_FRAMES = 32, MAX_EXTRA_DESCRIBERS = 4 };
/* Starts a line of a part that holds a backtrace's raw addresses: "\1INDENT\tPC PC ...\n",
 * symbolized by the requester as it writes the part out. */
#define BT_MARK '\1'

/* ---- The registry of running runtimes --------------------------------------------------- */

/* Guards the list, and is held for a whole dump: a runtime on it stays up until the dump is
 * over (crl_run takes it off before its cores stop), and dumps run one at a time. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct crl__runtime *registry;

void crl__dump_register(struct crl__runtime *rt)
{
    pthread_mutex_lock(&registry_lock);
    rt->dump_next = registry;
    registry = rt;
    pthread_mutex_unlock(&registry_lock);
}

void crl__dump_unregister(struct crl__runtime *rt)
{
    pthread_mutex_lock(&registry_lock);
    for (struct crl__runtime **p = &registry; *p; p = &(*p)->dump_next)
        if (*p == rt) {
            *p = rt->dump_next;
            break;
        }
    pthread_mutex_unlock(&registry_lock);
}

void crl__dump_core_fini(struct crl__dump_core *d)
{
    free(atomic_exchange_explicit(&d->part, NULL, memory_order_acquire));
}

/* ---- What a parked task waits for ------------------------------------------------------- */

static crl__wait_describer *extra_describers[MAX_EXTRA_DESCRIBERS];
static _Atomic unsigned n_extra_describers;

void crl__dump_add_describer(crl__wait_describer *d)
{
    unsigned n = atomic_load_explicit(&n_extra_describers, memory_order_relaxed);
    if (n < MAX_EXTRA_DESCRIBERS) {
        extra_describers[n] = d;
        atomic_store_explicit(&n_extra_describers, n + 1, memory_order_release);
    }
}

/* Each layer in turn, lowest first; false if none knows the park. */
static bool describe_by_layers(void (*unpark)(struct crl_task *t), const void *obj, int64_t now,
                               char *out, size_t cap)
{
    if (crl__core_describe_wait(unpark, obj, now, out, cap) ||
        crl__io_describe_wait(unpark, obj, now, out, cap) ||
        crl__smp_describe_wait(unpark, obj, now, out, cap))
        return true;
    unsigned n = atomic_load_explicit(&n_extra_describers, memory_order_acquire);
    for (unsigned i = 0; i < n; i++)
        if (extra_describers[i](unpark, obj, now, out, cap))
            return true;
    return false;
}

static void describe_wait(const struct crl_task *t, int64_t now, char *out, size_t cap)
{
    if (t->unpark) {
        if (!describe_by_layers(t->unpark, t->park_obj, now, out, cap))
            snprintf(out, cap, "a wait of %p on %p", (void *)(uintptr_t)t->unpark, t->park_obj);
        return;
    }
    if (t->park_obj == t->scope) { /* crl_scope_run's join: the one park of NULL on a scope */
        snprintf(out, cap, "joining scope %p (%u live)", (const void *)t->scope, t->scope->nlive);
        return;
    }
    const struct crl__held_wait *h = t->park_obj; /* every other park of NULL is a held one */
    int len = snprintf(out, cap, "cancelled, still waiting for ");
    if (len < 0 || (size_t)len >= cap)
        return;
    if (!h || !describe_by_layers(h->was, h->obj, now, out + len, cap - (size_t)len))
        snprintf(out + len, cap - (size_t)len, "its wait to end");
}

/* ---- A core's part ---------------------------------------------------------------------- */

/* The task that calls crl_dump, when its own core's part is written, with its backtrace
 * (taken in crl_dump: its saved stack pointer is stale while it runs). */
struct dump_caller {
    const struct crl_task *task;
    int nframes;
    uintptr_t frames[DUMP_FRAMES];
};

struct part_ctx {
    int64_t now;
    const struct dump_caller *caller; /* NULL in a part written at a loop turn */
};

static double ms_since(int64_t now, int64_t then) { return (double)(now - then) / CRL_MSEC_NS; }

static void write_frames(FILE *f, int depth, const uintptr_t *pcs, int n)
{
    if (n <= 0)
        return;
    fprintf(f, "%c%*s\t", BT_MARK, depth * 2 + 2, "");
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%lx", i ? " " : "", (unsigned long)pcs[i]);
    fputc('\n', f);
}

static void task_line(FILE *f, const struct crl_task *t, int depth, void *arg)
{
    const struct part_ctx *ctx = arg;
    if (t->state == CRL__PARKED) {
        char what[256];
        describe_wait(t, ctx->now, what, sizeof what);
        fprintf(f, ": %s", what);
    }
    fprintf(f, "; spawned %.1f ms ago", ms_since(ctx->now, t->spawned_ns));
    if (t->state == CRL__RUNNING)
        fprintf(f, ", running now\n");
    else if (t->ran_ns > t->spawned_ns || (t->ran_ns == t->spawned_ns && t->state == CRL__PARKED))
        fprintf(f, ", last ran %.1f ms ago\n", ms_since(ctx->now, t->ran_ns));
    else
        fprintf(f, ", not run yet\n");
    if (ctx->caller && t == ctx->caller->task) {
        write_frames(f, depth + 1, ctx->caller->frames, ctx->caller->nframes);
        return;
    }
    if (t->state == CRL__RUNNING)
        return; /* not the caller: no saved stack to read */
    uintptr_t pcs[DUMP_FRAMES];
    /* the task record sits at the top of its stack (stack.c), the guard at its bottom */
    int n = crl__bt_from_saved(t->sp, t->stack.base + CRL__STACK_GUARD, (const void *)t, pcs,
                               DUMP_FRAMES);
    write_frames(f, depth + 1, pcs, n);
}

static void write_part(FILE *f, struct crl__executor *ex, const struct dump_caller *caller)
{
    struct crl__core *c = &ex->core;
    struct part_ctx ctx = {.now = crl_now_ns(), .caller = caller};
    fprintf(f, "core %u: %llu live task(s), %llu switches, %llu loop turns\n", c->id,
            (unsigned long long)c->stats.tasks_live, (unsigned long long)c->stats.switches,
            (unsigned long long)c->stats.loop_turns);
    crl__dump_scope(f, c->root, 1, task_line, &ctx);
}

/* The part as text, malloc'd (NULL if out of memory). */
static char *part_text(struct crl__executor *ex, const struct dump_caller *caller)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    write_part(f, ex, caller);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

void crl__dump_answer(struct crl__executor *ex)
{
    struct crl__dump_core *d = &ex->dump;
    uint32_t asked = atomic_load_explicit(&d->asked, memory_order_acquire);
    d->seen = asked;
    char *text = part_text(ex, NULL);
    if (!text)
        text = strdup("");
    /* An answer no requester took (it gave up) is replaced. */
    free(atomic_exchange_explicit(&d->part, text, memory_order_acq_rel));
    atomic_store_explicit(&d->answered, asked, memory_order_release);
}

/* ---- The requester ---------------------------------------------------------------------- */

static void write_all(int fd, const char *s, size_t len)
{
    while (len) {
        ssize_t n = write(fd, s, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        s += n;
        len -= (size_t)n;
    }
}

/* One backtrace line of a part ("\1INDENT\tPC PC ..."), symbolized. */
static void write_frames_line(int fd, char *line)
{
    char *tab = strchr(line, '\t');
    if (!tab)
        return;
    *tab = '\0';
    const char *indent = line + 1;
    uintptr_t pcs[DUMP_FRAMES];
    int n = 0;
    for (char *p = tab + 1, *end; n < DUMP_FRAMES && *p; p = end) {
        pcs[n] = (uintptr_t)strtoull(p, &end, 16);
        if (end == p)
            break;
        n++;
    }
    crl__bt_write(fd, pcs, n, indent);
}

static void write_part_out(int fd, char *text)
{
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        char *next = nl ? nl + 1 : line + strlen(line);
        if (*line == BT_MARK) {
            if (nl)
                *nl = '\0';
            write_frames_line(fd, line);
        } else {
            write_all(fd, line, (size_t)(next - line));
        }
        line = next;
    }
}

static void write_not_answering(int fd, struct crl__runtime *rt, unsigned id, bool left_loop)
{
    if (left_loop) {
        dprintf(fd, "core %u: stopping (out of its loop)\n", id);
        return;
    }
    dprintf(fd, "core %u: not answering (stalled?) after %lld ms\n", id,
            (long long)(DUMP_WAIT_NS / CRL_MSEC_NS));
    struct crl__stall_report r;
    if (!crl__stall_last(rt, id, &r)) {
        dprintf(fd, "  no stall report of it%s\n", rt->watchdog ? " yet" : " (no stall detector)");
        return;
    }
    dprintf(fd,
            "  last stall report, %.1f ms ago%s: task '%s' had run %lld ms without reaching a "
            "switch point\n",
            ms_since(crl__clock_mono_ns(), r.at_ns), r.ongoing ? " (stall still going on)" : "",
            r.task ? r.task : "?", (long long)r.ms);
    if (r.task)
        crl__bt_write(fd, r.frames, r.nframes, "    ");
    else
        dprintf(fd, "    (no backtrace: the core's thread did not take its sample)\n");
}

/* The executor of the calling thread if it is a core (a task, or the loop), else NULL. */
static struct crl__executor *own_executor(void)
{
    struct crl__core *c = crl__cur;
    return c ? crl__executor_of(c) : NULL;
}

static void post_requests(struct crl__executor *own)
{
    for (struct crl__runtime *rt = registry; rt; rt = rt->dump_next)
        for (unsigned i = 0; i < rt->ncores; i++) {
            struct crl__executor *ex = crl__executor_of(rt->smp.cores[i]);
            if (ex == own)
                continue;
            uint32_t ask = atomic_load_explicit(&ex->dump.asked, memory_order_relaxed) + 1;
            atomic_store_explicit(&ex->dump.asked, ask, memory_order_release);
            crl__io_wake(&ex->core); /* a core asleep in its backend's wait turns its loop */
        }
}

/* Wait until ex answered (its text, to free) or the deadline passed or it left its loop. */
static char *await_part(struct crl__executor *ex, int64_t deadline, bool *left_loop)
{
    uint32_t ask = atomic_load_explicit(&ex->dump.asked, memory_order_relaxed);
    *left_loop = false;
    for (;;) {
        if (atomic_load_explicit(&ex->dump.answered, memory_order_acquire) == ask)
            return atomic_exchange_explicit(&ex->dump.part, NULL, memory_order_acq_rel);
        if (atomic_load_explicit(&ex->dump.loop_state, memory_order_acquire) ==
            CRL__DUMP_LEFT_LOOP) {
            *left_loop = true;
            return NULL;
        }
        if (crl__clock_mono_ns() > deadline)
            return NULL;
        struct timespec nap = {0, 100 * 1000};
        nanosleep(&nap, NULL);
    }
}

static void write_core(int fd, struct crl__runtime *rt, unsigned id, struct crl__executor *own,
                       const struct dump_caller *caller, int64_t deadline)
{
    struct crl__executor *ex = crl__executor_of(rt->smp.cores[id]);
    char *text;
    bool left_loop = false;
    if (ex == own) /* this thread runs it: no loop turn can answer while we are here */
        text = part_text(ex, caller);
    else
        text = await_part(ex, deadline, &left_loop);
    if (text)
        write_part_out(fd, text);
    else
        write_not_answering(fd, rt, id, left_loop);
    free(text);
}

void crl_dump(int fd)
{
    struct crl__executor *own = own_executor();
    struct dump_caller caller = {0};
    if (own && own->core.cur != &own->core.loop) {
        caller.task = own->core.cur;
        caller.nframes = crl__bt_capture(caller.frames, DUMP_FRAMES); /* from crl_dump on */
    }
    pthread_mutex_lock(&registry_lock);
    unsigned nrt = 0;
    for (struct crl__runtime *rt = registry; rt; rt = rt->dump_next)
        nrt++;
    dprintf(fd, "corral: dump of %u running runtime(s)\n", nrt);
    post_requests(own);
    int64_t deadline = crl__clock_mono_ns() + DUMP_WAIT_NS;
    for (struct crl__runtime *rt = registry; rt; rt = rt->dump_next) {
        dprintf(fd, "runtime %p: %u core(s)%s\n", (void *)rt, rt->ncores,
                own && own->core.rt == rt ? " (the caller's)" : "");
        for (unsigned i = 0; i < rt->ncores; i++)
            write_core(fd, rt, i, own, &caller, deadline);
    }
    pthread_mutex_unlock(&registry_lock);
}
