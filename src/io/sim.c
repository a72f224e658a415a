/* sim.c - the simulated backend: CORRAL_BACKEND=sim (CRL_BACKEND_SIM), CORRAL_SEED=n.
 *
 * A world, one per simulated runtime and driven on the runtime's thread, holds a virtual
 * clock, which every clock read on that thread takes (core/clock.h), and the seeded state
 * every core of it shares (struct crl__sim_sched, core.h): the run-queue pick and each
 * operation's latency are drawn from the seed, and every pick, submission, completion and
 * clock jump is mixed into the trace hash. When nothing is due now the clock jumps to the
 * next due completion or to the deadline the loop waits for (its next timer): a 30 s
 * timeout takes microseconds, and the same seed gives the same run on any machine.
 *
 * An operation waits in the world's queue until its due time, then is tried: a no-op ends,
 * an operation on a simulated socket runs in the in-memory network (sim_net.c), which may
 * park it until its socket changes. The blocking pool's jobs run on the real pool and take
 * no virtual time (the loop waits for them before it moves the clock). So far a world is one
 * core; files are not simulated yet, and their operations (and any on a real fd) end with
 * -ENOSYS. */
#include "sim.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

/* The virtual clock starts here, well clear of 0 (which some deadlines use as "now"). */
#define START_NS (1000 * CRL_SEC_NS)
/* An operation completes 0 .. MAX_LATENCY_NS after its submission, drawn from the seed. */
#define MAX_LATENCY_NS (50 * CRL_USEC_NS)

static struct crl__sim_op *sop(struct crl__op *op) { return crl__sim_op(op); }

static struct crl__sim_world *world_of(struct crl__core *c) { return c->io->state; }

/* ---- The world ---------------------------------------------------------------------------- */

static __thread struct {
    bool ran;
    uint64_t seed, hash, events;
} last_trace;

static uint64_t seed_from_env(void)
{
    const char *env = getenv("CORRAL_SEED");
    if (!env || !*env)
        return 1;
    char *end;
    unsigned long long n = strtoull(env, &end, 0);
    if (*end != '\0') {
        crl__logf(CRL_LOG_WARN, "corral: CORRAL_SEED=%s is not a number; seed 1", env);
        return 1;
    }
    return n;
}

int crl__sim_begin(struct crl__sim_world **out)
{
    if (crl__clock_virtual)
        return -EBUSY; /* one world a thread */
    struct crl__sim_world *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    if (!(w->net = crl__sim_net_new())) {
        free(w);
        return -ENOMEM;
    }
    w->seed = seed_from_env();
    w->now_ns = START_NS;
    w->sched.rng = w->seed;
    w->sched.hash = w->seed;
    w->saved_clock = crl__clock_virtual;
    crl__clock_virtual = &w->now_ns;
    *out = w;
    return 0;
}

void crl__sim_end(struct crl__sim_world *w)
{
    if (!w)
        return;
    crl__clock_virtual = w->saved_clock;
    last_trace.ran = true;
    last_trace.seed = w->seed;
    last_trace.hash = w->sched.hash;
    last_trace.events = w->sched.events;
    crl__sim_net_free(w->net);
    free(w->cores);
    free(w);
}

struct crl__sim_sched *crl__sim_sched(struct crl__sim_world *w) { return &w->sched; }

bool crl__sim_last_trace(uint64_t *seed, uint64_t *hash, uint64_t *events)
{
    *seed = last_trace.seed;
    *hash = last_trace.hash;
    *events = last_trace.events;
    return last_trace.ran;
}

/* ---- The backend ------------------------------------------------------------------------- */

struct crl__sim_world *crl__sim_here(void)
{
    struct crl__core *c = crl__core();
    return c && c->io->sim ? c->io->sim : NULL;
}

uint64_t crl__sim_draw(struct crl__sim_world *w) { return crl__sim_next(&w->sched.rng); }

static int sim_init(struct crl__core *c)
{
    struct crl__sim_world *w = c->io->sim;
    if (!w)
        return -EINVAL; /* a world is the runtime's to begin (crl__sim_begin) */
    if (w->ncores == w->cores_cap) {
        unsigned cap = w->cores_cap ? 2 * w->cores_cap : 8;
        struct crl__core **grown = realloc(w->cores, cap * sizeof *grown);
        if (!grown)
            return -ENOMEM;
        w->cores = grown;
        w->cores_cap = cap;
    }
    w->cores[w->ncores++] = c;
    c->io->state = w;
    return 0;
}

static void sim_fini(struct crl__core *c)
{
    struct crl__sim_world *w = world_of(c);
    for (unsigned i = 0; i < w->ncores; i++)
        if (w->cores[i] == c) {
            memmove(&w->cores[i], &w->cores[i + 1], (w->ncores - i - 1) * sizeof *w->cores);
            w->ncores--;
            break;
        }
    c->io->state = NULL;
}

/* Act as core c (the cores of a world share this thread): what runs now, a watch's function
 * or a task made runnable, is c's. Returns the core acted as before, to go back to. */
static struct crl__core *act_as(struct crl__core *c)
{
    struct crl__core *was = crl__cur;
    crl__cur = c;
    return was;
}

static int64_t draw_latency(struct crl__sim_world *w)
{
    uint64_t r = crl__sim_draw(w);
    return r % 4 == 0 ? 0 : (int64_t)((r >> 2) % MAX_LATENCY_NS);
}

/* Queue op to be tried at its due time, after every op due no later. */
static void enqueue(struct crl__sim_world *w, struct crl__op *op)
{
    struct crl__op **link = &w->due;
    while (*link && sop(*link)->due_ns <= sop(op)->due_ns)
        link = &sop(*link)->next;
    sop(op)->next = *link;
    sop(op)->where = CRL__SIM_DUE;
    *link = op;
}

void crl__sim_requeue(struct crl__sim_world *w, struct crl__op *op)
{
    sop(op)->due_ns = w->now_ns + draw_latency(w);
    enqueue(w, op);
}

void crl__sim_complete(struct crl__sim_world *w, struct crl__op *op, int res)
{
    sop(op)->where = CRL__SIM_NOWHERE;
    crl__sim_record(&w->sched, CRL__SIM_COMPLETE, (uint64_t)op->kind << 32 | (uint32_t)res);
    struct crl__core *was = act_as(sop(op)->core);
    crl__op_complete(sop(op)->core, op, res);
    crl__cur = was;
}

static void sim_submit(struct crl__core *c, struct crl__op *op)
{
    struct crl__sim_world *w = world_of(c);
    crl__sim_record(&w->sched, CRL__SIM_SUBMIT, op->kind);
    sop(op)->core = c;
    sop(op)->sock = NULL;
    if (op->kind != CRL__OP_NOP && !crl__sim_net_takes(op)) {
        crl__sim_complete(w, op, -ENOSYS); /* files and real fds: not simulated yet */
        return;
    }
    crl__sim_requeue(w, op);
}

static bool unqueue(struct crl__sim_world *w, struct crl__op *op)
{
    for (struct crl__op **link = &w->due; *link; link = &sop(*link)->next)
        if (*link == op) {
            *link = sop(op)->next;
            return true;
        }
    return false;
}

static void sim_cancel(struct crl__core *c, struct crl__op *op)
{
    struct crl__sim_world *w = world_of(c);
    if (op->done)
        return;
    if (sop(op)->where == CRL__SIM_PARKED)
        crl__sim_net_unpark(op);
    else if (sop(op)->where != CRL__SIM_DUE || !unqueue(w, op))
        return;
    crl__sim_complete(w, op, -ECANCELED);
}

void crl__sim_due_forget(struct crl__sim_world *w, int fd)
{
    struct crl__op *ended = NULL, **tail = &ended; /* taken out first: completing one runs a
                                                       watch's function, which may queue more */
    for (struct crl__op **link = &w->due; *link;) {
        struct crl__op *op = *link;
        if (op->fd != fd || op->kind == CRL__OP_NOP) {
            link = &sop(op)->next;
            continue;
        }
        *link = sop(op)->next;
        sop(op)->next = NULL;
        *tail = op;
        tail = &sop(op)->next;
    }
    while (ended) {
        struct crl__op *op = ended;
        ended = sop(op)->next;
        crl__sim_complete(w, op, -EBADF);
    }
}

/* Try every op due by now, in order; true if there was one. */
static bool deliver_due(struct crl__sim_world *w)
{
    bool any = false;
    while (w->due && sop(w->due)->due_ns <= w->now_ns) {
        struct crl__op *op = w->due;
        w->due = sop(op)->next;
        sop(op)->where = CRL__SIM_NOWHERE;
        if (op->kind == CRL__OP_NOP)
            crl__sim_complete(w, op, 0);
        else
            crl__sim_net_attempt(w, op);
        any = true;
    }
    return any;
}

/* Whether a task of the world is runnable, on any of its cores. */
static bool world_runnable(const struct crl__sim_world *w)
{
    for (unsigned i = 0; i < w->ncores; i++)
        if (w->cores[i]->runq_head)
            return true;
    return false;
}

static bool world_offloading(const struct crl__sim_world *w)
{
    for (unsigned i = 0; i < w->ncores; i++)
        if (w->cores[i]->io->offload_pending)
            return true;
    return false;
}

/* Take in the blocking pool's finished jobs, on every core with some out, waiting for one
 * if block. */
static void take_pool(struct crl__sim_world *w, bool block)
{
    enum { MAX_POLL = 64 };
    struct pollfd p[MAX_POLL];
    struct crl__core *of[MAX_POLL];
    unsigned n = 0;
    for (unsigned i = 0; i < w->ncores && n < MAX_POLL; i++)
        if (w->cores[i]->io->offload_pending) {
            of[n] = w->cores[i];
            p[n++] = (struct pollfd){.fd = w->cores[i]->io->wake_fd, .events = POLLIN};
        }
    if (poll(p, n, block ? -1 : 0) <= 0)
        return;
    for (unsigned i = 0; i < n; i++)
        if (p[i].revents) {
            struct crl__core *was = act_as(of[i]);
            crl__core_woken(of[i]);
            crl__cur = was;
        }
}

/* The wait of every core of the world: it moves the clock only when no task of any core can
 * run, to the next due operation or to deadline_ns, which the runtime's driver computes over
 * every core (loop.c). */
static void sim_wait(struct crl__core *c, int64_t deadline_ns)
{
    struct crl__sim_world *w = world_of(c);
    bool offloading = world_offloading(w);
    if (offloading)
        take_pool(w, false);
    if (deliver_due(w) || deadline_ns == 0 || world_runnable(w))
        return;
    if (offloading) { /* real work takes no virtual time: wait for it first */
        take_pool(w, true);
        return;
    }
    int64_t next = w->due ? sop(w->due)->due_ns : -1;
    if (deadline_ns > 0 && (next < 0 || deadline_ns < next))
        next = deadline_ns;
    if (next < 0) /* every task waits, and nothing simulated will ever end a wait */
        crl__deadlock(c);
    if (next > w->now_ns) {
        w->now_ns = next;
        crl__sim_record(&w->sched, CRL__SIM_CLOCK, (uint64_t)(next - START_NS));
    }
    deliver_due(w);
}

static void sim_forget(struct crl__core *c, int fd)
{
    struct crl__sim_world *w = world_of(c);
    crl__sim_due_forget(w, fd);
    crl__sim_net_forget(w, fd);
}

const struct crl__io_ops crl__io_sim_ops = {
    .name = "sim",
    .init = sim_init,
    .fini = sim_fini,
    .submit = sim_submit,
    .cancel = sim_cancel,
    .wait = sim_wait,
    .forget = sim_forget,
    .sys = &crl__sim_net_sys,
};
