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
 * So far a world is one core, and its operations are no-ops (crl_io_nop) and the blocking
 * pool's jobs, which run on the real pool and take no virtual time (the loop waits for them
 * before it moves the clock). Other operations end with -ENOSYS, and the socket calls with
 * -EAFNOSUPPORT, until the in-memory network and files come (issue 21). */
#include "io.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

/* The virtual clock starts here, well clear of 0 (which some deadlines use as "now"). */
#define START_NS (1000 * CRL_SEC_NS)
/* An operation completes 0 .. MAX_LATENCY_NS after its submission, drawn from the seed. */
#define MAX_LATENCY_NS (50 * CRL_USEC_NS)

struct crl__sim_world {
    int64_t now_ns; /* the virtual monotonic clock */
    uint64_t seed;
    struct crl__sim_sched sched;
    const int64_t *saved_clock; /* this thread's clock before the world began */
};

/* This backend's state of an op, in its backend_ bytes. */
struct sim_op {
    struct crl__op *next; /* in the core's queue of ops to complete, by due time */
    int64_t due_ns;
};
_Static_assert(sizeof(struct sim_op) <= CRL__OP_BACKEND_SIZE, "sim_op must fit in an op");

static struct sim_op *sop(struct crl__op *op) { return (struct sim_op *)(void *)op->backend_; }

struct sim_core {
    struct crl__sim_world *w;
    struct crl__op *due; /* submitted, not completed: by due time, then submission */
};

static struct sim_core *sc_of(struct crl__core *c) { return c->io->state; }

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

static int sim_init(struct crl__core *c)
{
    if (!c->io->sim)
        return -EINVAL; /* a world is the runtime's to begin (crl__sim_begin) */
    struct sim_core *sc = calloc(1, sizeof *sc);
    if (!sc)
        return -ENOMEM;
    sc->w = c->io->sim;
    c->io->state = sc;
    return 0;
}

static void sim_fini(struct crl__core *c)
{
    free(c->io->state);
    c->io->state = NULL;
}

static int64_t draw_latency(struct crl__sim_world *w)
{
    uint64_t r = crl__sim_next(&w->sched.rng);
    return r % 4 == 0 ? 0 : (int64_t)((r >> 2) % MAX_LATENCY_NS);
}

/* Queue op to complete at its due time, after every op due no later. */
static void enqueue(struct sim_core *sc, struct crl__op *op)
{
    struct crl__op **link = &sc->due;
    while (*link && sop(*link)->due_ns <= sop(op)->due_ns)
        link = &sop(*link)->next;
    sop(op)->next = *link;
    *link = op;
}

static void complete(struct crl__core *c, struct sim_core *sc, struct crl__op *op, int res)
{
    crl__sim_record(&sc->w->sched, CRL__SIM_COMPLETE, (uint64_t)op->kind << 32 | (uint32_t)res);
    crl__op_complete(c, op, res);
}

static void sim_submit(struct crl__core *c, struct crl__op *op)
{
    struct sim_core *sc = sc_of(c);
    crl__sim_record(&sc->w->sched, CRL__SIM_SUBMIT, op->kind);
    if (op->kind != CRL__OP_NOP) {
        complete(c, sc, op, -ENOSYS); /* not simulated yet */
        return;
    }
    sop(op)->due_ns = sc->w->now_ns + draw_latency(sc->w);
    enqueue(sc, op);
}

static void sim_cancel(struct crl__core *c, struct crl__op *op)
{
    struct sim_core *sc = sc_of(c);
    for (struct crl__op **link = &sc->due; *link; link = &sop(*link)->next)
        if (*link == op) {
            *link = sop(op)->next;
            complete(c, sc, op, -ECANCELED);
            return;
        }
}

/* Complete every op due by now, in order; true if there was one. */
static bool deliver_due(struct crl__core *c, struct sim_core *sc)
{
    bool any = false;
    while (sc->due && sop(sc->due)->due_ns <= sc->w->now_ns) {
        struct crl__op *op = sc->due;
        sc->due = sop(op)->next;
        complete(c, sc, op, 0);
        any = true;
    }
    return any;
}

/* Take in the blocking pool's finished jobs, waiting for one if block. */
static void take_pool(struct crl__core *c, bool block)
{
    struct pollfd p = {.fd = c->io->wake_fd, .events = POLLIN};
    if (poll(&p, 1, block ? -1 : 0) > 0)
        crl__core_woken(c);
}

static void sim_wait(struct crl__core *c, int64_t deadline_ns)
{
    struct sim_core *sc = sc_of(c);
    struct crl__sim_world *w = sc->w;
    if (c->io->offload_pending)
        take_pool(c, false);
    if (deliver_due(c, sc) || deadline_ns == 0 || c->runq_head)
        return;
    if (c->io->offload_pending) { /* real work takes no virtual time: wait for it first */
        take_pool(c, true);
        return;
    }
    int64_t next = sc->due ? sop(sc->due)->due_ns : -1;
    if (deadline_ns > 0 && (next < 0 || deadline_ns < next))
        next = deadline_ns;
    if (next < 0) /* every task waits, and nothing simulated will ever end a wait */
        crl__deadlock(c);
    if (next > w->now_ns) {
        w->now_ns = next;
        crl__sim_record(&w->sched, CRL__SIM_CLOCK, (uint64_t)(next - START_NS));
    }
    deliver_due(c, sc);
}

static void sim_forget(struct crl__core *c, int fd) { (void)c, (void)fd; }

/* ---- Socket calls: no simulated sockets yet ------------------------------------------------- */

static int no_socket(int family, int type) { return (void)family, (void)type, -EAFNOSUPPORT; }

static int no_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    return (void)fd, (void)level, (void)name, (void)val, (void)len, -ENOTSOCK;
}

static int no_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    return (void)fd, (void)addr, (void)len, -ENOTSOCK;
}

static int no_listen(int fd, int backlog) { return (void)fd, (void)backlog, -ENOTSOCK; }

static int no_name(int fd, struct sockaddr *addr, socklen_t *len)
{
    return (void)fd, (void)addr, (void)len, -ENOTSOCK;
}

static int no_shutdown(int fd, int how) { return (void)fd, (void)how, -ENOTSOCK; }

/* The process's own fds (a pipe a test made) still close. */
static int real_close(int fd) { return crl__kernel_sys.close(fd); }

static const struct crl__sys_ops sim_sys = {
    .socket = no_socket,
    .setsockopt = no_setsockopt,
    .bind = no_bind,
    .listen = no_listen,
    .getsockname = no_name,
    .getpeername = no_name,
    .shutdown = no_shutdown,
    .close = real_close,
};

const struct crl__io_ops crl__io_sim_ops = {
    .name = "sim",
    .init = sim_init,
    .fini = sim_fini,
    .submit = sim_submit,
    .cancel = sim_cancel,
    .wait = sim_wait,
    .forget = sim_forget,
    .sys = &sim_sys,
};
