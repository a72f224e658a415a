/* faults.c - fault injection: a wrapper around the backend's ops table, turned on by
 * CORRAL_FAULTS (see io.h and README.md).
 *
 * Every decision comes from this core's own PRNG (splitmix64, seeded with the seed mixed with
 * the core id), so that the same sequence of operations on a core meets the same faults; on a
 * real kernel the interleaving itself does not replay, a simulator backend will make it. The
 * wrapper fails or shortens an op at submission, or holds it back a few loop iterations;
 * EINTR and EAGAIN are handed to the backend (crl__faults_kernel) as if the kernel had
 * answered them, which it must absorb: retry, or wait for readiness and retry. */
#define _GNU_SOURCE
#include "io.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* ---- The configuration ------------------------------------------------------------------ */

static const char *const fault_names[CRL__FAULT_COUNT] = {
    [CRL__FAULT_EINTR] = "EINTR",           [CRL__FAULT_EAGAIN] = "EAGAIN",
    [CRL__FAULT_ECONNRESET] = "ECONNRESET", [CRL__FAULT_ENOMEM] = "ENOMEM",
    [CRL__FAULT_SHORT] = "short",           [CRL__FAULT_DELAY] = "delay",
};

#define ALL_FAULTS (CRL__FAULT_BIT(CRL__FAULT_COUNT) - 2u) /* every bit but NONE's */

/* "E1:E2:..." (or "all") into a mask of faults; 0 if a name is unknown. */
static unsigned parse_errors(const char *s, size_t len)
{
    if (len == 3 && strncasecmp(s, "all", 3) == 0)
        return ALL_FAULTS;
    unsigned mask = 0;
    while (len) {
        const char *colon = memchr(s, ':', len);
        size_t n = colon ? (size_t)(colon - s) : len;
        unsigned bit = 0;
        for (int f = CRL__FAULT_EINTR; f < CRL__FAULT_COUNT; f++)
            if (strlen(fault_names[f]) == n && strncasecmp(s, fault_names[f], n) == 0)
                bit = CRL__FAULT_BIT(f);
        if (!bit)
            return 0;
        mask |= bit;
        s += n + (colon ? 1 : 0);
        len -= n + (colon ? 1 : 0);
        if (colon && !len)
            return 0; /* a trailing ':' */
    }
    return mask;
}

/* One "key=value" of the spec. */
static int parse_item(const char *item, size_t len, struct crl__faults_cfg *cfg)
{
    const char *eq = memchr(item, '=', len);
    if (!eq || eq == item || eq + 1 == item + len)
        return -EINVAL;
    size_t klen = (size_t)(eq - item), vlen = len - klen - 1;
    char val[128];
    if (vlen >= sizeof val)
        return -EINVAL;
    memcpy(val, eq + 1, vlen);
    val[vlen] = '\0';
    char *end;
    errno = 0;
    if (klen == 4 && strncmp(item, "seed", 4) == 0) {
        cfg->seed = strtoull(val, &end, 0);
        return *end || errno || val[0] == '-' ? -EINVAL : 0;
    }
    if (klen == 4 && strncmp(item, "rate", 4) == 0) {
        cfg->rate = strtod(val, &end);
        return *end || errno || !(cfg->rate >= 0 && cfg->rate <= 1) ? -EINVAL : 0;
    }
    if (klen == 6 && strncmp(item, "errors", 6) == 0) {
        cfg->errors = parse_errors(val, vlen);
        return cfg->errors ? 0 : -EINVAL;
    }
    return -EINVAL;
}

int crl__faults_parse(const char *spec, struct crl__faults_cfg *cfg)
{
    *cfg = (struct crl__faults_cfg){.seed = 1, .rate = 0.01, .errors = ALL_FAULTS};
    if (!spec || !*spec)
        return 0;
    for (const char *p = spec;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (parse_item(p, len, cfg)) {
            *cfg = (struct crl__faults_cfg){0};
            return -EINVAL;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    cfg->on = true;
    return 0;
}

/* The process's configuration: CORRAL_FAULTS, read once, or a test's override. */
static pthread_mutex_t cfg_lock = PTHREAD_MUTEX_INITIALIZER;
static bool cfg_read, cfg_bad, cfg_overridden;
static struct crl__faults_cfg cfg_env, cfg_test;
static _Atomic bool paused;
static _Atomic unsigned long injected;

int crl__faults_override(const char *spec)
{
    struct crl__faults_cfg cfg;
    int rc = spec ? crl__faults_parse(spec, &cfg) : 0;
    if (rc)
        return rc;
    pthread_mutex_lock(&cfg_lock);
    cfg_overridden = spec != NULL;
    if (spec)
        cfg_test = cfg;
    else
        cfg_read = false; /* read CORRAL_FAULTS again */
    pthread_mutex_unlock(&cfg_lock);
    return 0;
}

void crl__faults_pause(bool p) { atomic_store_explicit(&paused, p, memory_order_relaxed); }

unsigned long crl__faults_injected(void) { return atomic_load(&injected); }

/* The configuration to run with, or -EINVAL (logged once) for a bad CORRAL_FAULTS. */
static int current_cfg(struct crl__faults_cfg *out)
{
    pthread_mutex_lock(&cfg_lock);
    if (!cfg_read) {
        cfg_read = true;
        const char *env = getenv("CORRAL_FAULTS");
        cfg_bad = crl__faults_parse(env, &cfg_env) != 0;
        if (cfg_bad)
            crl__logf(CRL_LOG_ERROR,
                      "corral: CORRAL_FAULTS=%s is not seed=N,rate=0..1,errors=E1:E2:... "
                      "(EINTR EAGAIN ECONNRESET ENOMEM short delay, or all): crl_run refuses",
                      env);
        else if (cfg_env.on)
            crl__logf(CRL_LOG_WARN, "corral: fault injection on: CORRAL_FAULTS=%s", env);
    }
    int rc = cfg_overridden ? 0 : cfg_bad ? -EINVAL : 0;
    *out = cfg_overridden ? cfg_test : cfg_env;
    pthread_mutex_unlock(&cfg_lock);
    return rc;
}

int crl__faults_check(void)
{
    struct crl__faults_cfg cfg;
    return current_cfg(&cfg);
}

/* ---- Decisions -------------------------------------------------------------------------- */

void crl__fault_rng_seed(struct crl__fault_rng *r, uint64_t seed, unsigned core_id)
{
    r->state = seed ^ ((uint64_t)core_id * 0xd1b54a32d192ed03u);
}

uint64_t crl__fault_rng_next(struct crl__fault_rng *r) /* splitmix64 */
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

enum crl__fault crl__faults_draw(struct crl__fault_rng *r, const struct crl__faults_cfg *cfg,
                                 unsigned allowed)
{
    unsigned mask = cfg->errors & allowed;
    if (!mask || atomic_load_explicit(&paused, memory_order_relaxed))
        return CRL__FAULT_NONE;
    double u = (double)(crl__fault_rng_next(r) >> 11) * 0x1p-53;
    if (u >= cfg->rate)
        return CRL__FAULT_NONE;
    unsigned k = (unsigned)(crl__fault_rng_next(r) % (unsigned)__builtin_popcount(mask));
    for (int f = CRL__FAULT_EINTR;; f++)
        if ((mask & CRL__FAULT_BIT(f)) && k-- == 0) {
            atomic_fetch_add_explicit(&injected, 1, memory_order_relaxed);
            return (enum crl__fault)f;
        }
}

/* ---- Per core --------------------------------------------------------------------------- */

enum { MAX_HELD = 32, MAX_DELAY_ITERATIONS = 4, HELD_WAIT_NS = 100 * CRL_USEC_NS };

struct held {
    struct crl__op *op;
    uint64_t until; /* the loop iteration it is submitted at */
};

struct crl__faults {
    struct crl__io_ops ops; /* c->io->ops while injecting: the wrappers, as the inner backend */
    const struct crl__io_ops *inner;
    struct crl__faults_cfg cfg;
    struct crl__fault_rng rng;
    uint64_t iteration; /* calls of wait so far */
    unsigned nheld;
    struct held held[MAX_HELD]; /* delayed ops, in submission order */
};

#define B(f) CRL__FAULT_BIT(CRL__FAULT_##f)

static bool is_kind(const struct crl__op *op, unsigned kinds) { return kinds >> op->kind & 1; }

#define K(k) (1u << CRL__OP_##k)
enum {
    KINDS_SOCKET = K(RECV) | K(SEND) | K(RECVMSG) | K(SENDMSG),
    KINDS_RW = K(READ) | K(WRITE) | K(READV) | K(WRITEV),
    KINDS_ENOMEM = KINDS_SOCKET | KINDS_RW | K(ACCEPT) | K(CONNECT) | K(OPENAT),
    /* ops the backends retry after readiness when the kernel says EAGAIN */
    KINDS_EAGAIN = KINDS_SOCKET | KINDS_RW | K(ACCEPT),
};

static int sock_type(const struct crl__faults *f, int fd) { return f->inner->sys->sock_type(fd); }

/* Shrink op to a strict prefix of what it asked for; false if it cannot be. A datagram
 * would lose its tail, and a send that must send all may not stop short. */
static bool shorten(struct crl__faults *f, struct crl__op *op)
{
    if (is_kind(op, K(READV) | K(WRITEV) | K(SENDMSG))) {
        int *cnt = op->kind == CRL__OP_SENDMSG ? NULL : &op->a.v.iovcnt;
        size_t n = cnt ? (size_t)*cnt : op->a.msg->msg_iovlen;
        if (n < 2 || (!cnt && sock_type(f, op->fd) != SOCK_STREAM))
            return false;
        n = 1 + crl__fault_rng_next(&f->rng) % (n - 1);
        if (cnt)
            *cnt = (int)n;
        else
            op->a.msg->msg_iovlen = n;
        return true;
    }
    if (!is_kind(op, K(READ) | K(WRITE) | K(RECV) | K(SEND)) || op->a.rw.len < 2 ||
        crl__is_send_all(op) || sock_type(f, op->fd) > SOCK_STREAM)
        return false;
    op->a.rw.len = 1 + crl__fault_rng_next(&f->rng) % (op->a.rw.len - 1);
    return true;
}

static bool hold(struct crl__faults *f, struct crl__op *op)
{
    if (f->nheld == MAX_HELD)
        return false;
    uint64_t n = 1 + crl__fault_rng_next(&f->rng) % MAX_DELAY_ITERATIONS;
    f->held[f->nheld++] = (struct held){op, f->iteration + n};
    return true;
}

static unsigned submit_faults(const struct crl__op *op)
{
    unsigned allowed = B(DELAY);
    if (is_kind(op, KINDS_SOCKET | KINDS_RW))
        allowed |= B(ECONNRESET) | B(SHORT);
    if (is_kind(op, KINDS_ENOMEM))
        allowed |= B(ENOMEM);
    return allowed;
}

static void faults_submit(struct crl__core *c, struct crl__op *op)
{
    struct crl__faults *f = c->io->faults;
    switch (crl__faults_draw(&f->rng, &f->cfg, submit_faults(op))) {
    case CRL__FAULT_ECONNRESET:
        /* a file read or write cannot be reset */
        if (!is_kind(op, KINDS_RW) || sock_type(f, op->fd) >= 0) {
            crl__op_complete(c, op, -ECONNRESET);
            return;
        }
        break;
    case CRL__FAULT_ENOMEM: crl__op_complete(c, op, -ENOMEM); return;
    case CRL__FAULT_SHORT: shorten(f, op); break;
    case CRL__FAULT_DELAY:
        if (hold(f, op))
            return;
        break;
    default: break;
    }
    f->inner->submit(c, op);
}

int crl__faults_kernel(struct crl__core *c, struct crl__op *op)
{
    struct crl__faults *f = c->io->faults;
    if ((op->fault & 3) == 3 || op->kind == CRL__OP_NOP)
        return 0; /* three per op at the most: a retried op gets through */
    unsigned allowed = B(EINTR) | (is_kind(op, KINDS_EAGAIN) ? B(EAGAIN) : 0);
    enum crl__fault d = crl__faults_draw(&f->rng, &f->cfg, allowed);
    if (d == CRL__FAULT_NONE)
        return 0;
    op->fault = (uint8_t)((op->fault & 3) + 1) | (uint8_t)(d << 2);
    return d == CRL__FAULT_EINTR ? -EINTR : -EAGAIN;
}

int crl__faults_result(struct crl__op *op, int res)
{
    unsigned d = op->fault >> 2;
    op->fault &= 3;
    if (!d || res < 0)
        return res; /* not a stand-in, or it was cancelled */
    return d == CRL__FAULT_EINTR ? -EINTR : -EAGAIN;
}

/* Submit the held ops whose time came, in the order they were held. */
static void release_held(struct crl__core *c, struct crl__faults *f)
{
    unsigned keep = 0, n = f->nheld;
    struct crl__op *due[MAX_HELD];
    unsigned ndue = 0;
    for (unsigned i = 0; i < n; i++) {
        if (f->held[i].until <= f->iteration)
            due[ndue++] = f->held[i].op;
        else
            f->held[keep++] = f->held[i];
    }
    f->nheld = keep;
    for (unsigned i = 0; i < ndue; i++)
        f->inner->submit(c, due[i]);
}

int64_t crl__faults_next_ns(const struct crl__core *c)
{
    const struct crl__faults *f = c->io->faults;
    return f && f->nheld ? crl_now_ns() + HELD_WAIT_NS : -1;
}

static void faults_wait(struct crl__core *c, int64_t deadline_ns)
{
    struct crl__faults *f = c->io->faults;
    f->iteration++;
    release_held(c, f);
    int64_t soon = crl__faults_next_ns(c); /* come back soon for the ops still held */
    if (soon >= 0 && (deadline_ns < 0 || deadline_ns > soon))
        deadline_ns = soon;
    if (c->runq_head) /* a released op completed in its submit: its task must not wait on us */
        deadline_ns = 0;
    f->inner->wait(c, deadline_ns);
}

/* Complete the held ops that match (op, or every op on fd) with res; how many did. */
static unsigned drop_held(struct crl__core *c, const struct crl__op *op, int fd, int res)
{
    struct crl__faults *f = c->io->faults;
    unsigned keep = 0, dropped = 0, n = f->nheld;
    struct crl__op *gone[MAX_HELD];
    for (unsigned i = 0; i < n; i++) {
        struct crl__op *h = f->held[i].op;
        if (h == op || (!op && h->fd == fd && h->kind != CRL__OP_OPENAT))
            gone[dropped++] = h;
        else
            f->held[keep++] = f->held[i];
    }
    f->nheld = keep;
    for (unsigned i = 0; i < dropped; i++)
        crl__op_complete(c, gone[i], res);
    return dropped;
}

static void faults_cancel(struct crl__core *c, struct crl__op *op)
{
    if (!drop_held(c, op, -1, -ECANCELED))
        c->io->faults->inner->cancel(c, op);
}

static void faults_forget(struct crl__core *c, int fd)
{
    drop_held(c, NULL, fd, -EBADF);
    if (c->io->faults->inner->forget)
        c->io->faults->inner->forget(c, fd);
}

static void faults_fini(struct crl__core *c)
{
    struct crl__faults *f = c->io->faults;
    c->io->ops = f->inner;
    c->io->faults = NULL;
    c->stack_fault = NULL;
    free(f);
    c->io->ops->fini(c);
}

/* The root task is never refused: without it there is no run to inject faults into. */
static bool stack_fault(struct crl__core *c)
{
    return c->stats.tasks_live > 0 && crl__faults_draw(&c->io->faults->rng, &c->io->faults->cfg,
                                                       B(ENOMEM)) == CRL__FAULT_ENOMEM;
}

int crl__faults_start(struct crl__core *c)
{
    struct crl__faults_cfg cfg;
    int rc = current_cfg(&cfg);
    if (rc || !cfg.on)
        return rc;
    struct crl__faults *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->inner = c->io->ops;
    f->ops = *c->io->ops;
    f->ops.submit = faults_submit;
    f->ops.cancel = faults_cancel;
    f->ops.wait = faults_wait;
    f->ops.forget = faults_forget;
    f->ops.fini = faults_fini;
    f->cfg = cfg;
    crl__fault_rng_seed(&f->rng, cfg.seed, c->id);
    c->io->faults = f;
    c->io->ops = &f->ops;
    c->stack_fault = stack_fault;
    return 0;
}
