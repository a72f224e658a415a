/* xcore.c - the cross-core scenarios, "xcore4" and "xcore8": a random tree of scopes whose
 * tasks run on cores drawn from the seed. Children are spawned on other cores; calls go to
 * another core and on from there to a third; channels run between two cores; all under
 * deadlines, cancels through scope tokens (sent by crl_call to the token's core) and
 * errors. Checked as it runs:
 *   - a task, call or channel side runs on the core it was sent to;
 *   - every scope joins: when crl_scope_run returns, none of its tasks on any core is alive;
 *   - a crl_call returns only once its function has ended on the other core (it may borrow
 *     the caller's frame), with that function's result unless the call was cancelled;
 *   - a child's -EIO on another core is its scope's result, whatever cancellations came;
 *   - a scope's result is 0, -EIO or a cancellation, and 0 when no scope around it could be
 *     cancelled (a deadline, a token, an error);
 *   - a scope with a deadline ends within a few ms of it (there are no shields here);
 *   - a channel delivers in order what was sent, then -EPIPE after its close; everything,
 *     when its scope was not cancelled;
 *   - at the end every task that started has ended.
 * The state below is shared by every core without locks: the scenario runs only on the
 * simulator, whose cores share one thread. */
#include "scenario.h"

#include <errno.h>
#include <string.h>

enum { MAX_DEPTH = 3, MAX_KIDS = 4, TOKENS = 8, CHANNEL_VALUES = 200 };
#define SLACK_NS (5 * CRL_MSEC_NS) /* a deadline's cancellation reaching every core */

struct world {
    struct sim_verdict *v;
    unsigned cores;
    int live, started, ended;
    struct crl_cancel_token tokens[TOKENS]; /* scopes any task may cancel */
    unsigned ntokens;
};

/* What a task is sent with: its scope, the core it must run on, and its own draws. */
struct node {
    struct scope_rec *home;
    unsigned core;
    uint64_t rng;
};

struct scope_rec {
    struct node kid[MAX_KIDS]; /* its tasks' arguments, which outlive them */
    struct scope_rec *up;
    struct world *w;
    uint64_t rng; /* the scope body's own draws */
    int depth;
    bool may_cancel;     /* it has a deadline, a token, or a child that may fail */
    bool io_error;       /* a direct child returned -EIO */
    int64_t deadline_ns; /* as last set, or CRL_NO_DEADLINE */
    int live, kids;
};

static bool is_cancel(int rc) { return rc == -ECANCELED || rc == -ETIMEDOUT; }

/* Whether rec or a scope around it could be cancelled (so a cancellation may reach rec). */
static bool cancellable(const struct scope_rec *r)
{
    for (; r; r = r->up)
        if (r->may_cancel)
            return true;
    return false;
}

static int check_core(struct world *w, unsigned want, const char *what)
{
    if (crl_core_id() != want)
        return sim_fail(w->v, "%s ran on core %u, not core %u", what, crl_core_id(), want);
    return 0;
}

static int check_blocking(struct world *w, const char *what, int rc)
{
    if (rc != 0 && !is_cancel(rc))
        return sim_fail(w->v, "%s returned %d, not 0 or a cancellation", what, rc);
    return 0;
}

static unsigned other_core(struct world *w, uint64_t *rng)
{
    unsigned here = crl_core_id(), k = sim_below(rng, w->cores - 1);
    return k >= here ? k + 1 : k;
}

static int do_sleep(struct world *w, uint64_t *rng)
{
    int64_t d = (int64_t)sim_below(rng, 30) * CRL_MSEC_NS, t0 = crl_now_ns();
    int rc = crl_sleep_ns(d);
    if (rc == 0 && crl_now_ns() - t0 < d)
        return sim_fail(w->v, "a sleep of %lld ns returned 0 early", (long long)d);
    return check_blocking(w, "crl_sleep_ns", rc);
}

/* ---- Calls from core to core ------------------------------------------------------------ */

struct call {
    struct world *w;
    unsigned core; /* where fn must run */
    int hops;      /* further calls it makes, one after the other core */
    uint64_t rng;
    bool started, ended; /* set by the function as it starts and as it returns (a call made
                            cancelled returns at once, its function never run) */
};

static int called(void *arg)
{
    struct call *c = arg;
    c->started = true;
    int rc = check_core(c->w, c->core, "a called function");
    if (!rc && c->hops > 0) {
        struct call next = {.w = c->w, .hops = c->hops - 1};
        next.core = other_core(c->w, &c->rng);
        next.rng = sim_draw(&c->rng);
        int got = crl_call(next.core, called, &next);
        if (next.started != next.ended || (got >= 0 && !next.ended))
            rc = sim_fail(c->w->v, "crl_call returned %d before its function ended", got);
        else if (got < 0 && !is_cancel(got))
            rc = got == -EPROTO ? got : sim_fail(c->w->v, "a nested crl_call returned %d", got);
        else if (got >= 0 && got != (int)next.core)
            rc = sim_fail(c->w->v, "a call to core %u returned %d", next.core, got);
    }
    if (!rc)
        rc = do_sleep(c->w, &c->rng);
    c->ended = true;
    return rc ? rc : (int)c->core; /* its core: what the caller checks */
}

static int do_call(struct world *w, uint64_t *rng)
{
    struct call c = {.w = w};
    c.core = other_core(w, rng);
    c.hops = (int)sim_below(rng, 3);
    c.rng = sim_draw(rng);
    int rc = crl_call(c.core, called, &c);
    if (c.started != c.ended || (rc >= 0 && !c.ended))
        return sim_fail(w->v, "crl_call returned %d before its function ended", rc);
    if (rc >= 0)
        return rc == (int)c.core ? 0 : sim_fail(w->v, "a call returned %d", rc);
    return rc == -EPROTO ? rc : check_blocking(w, "crl_call", rc);
}

/* ---- A token cancel sent to the token's core -------------------------------------------- */

static int cancel_here(void *arg) { return crl_token_cancel(*(struct crl_cancel_token *)arg); }

static int do_token_cancel(struct world *w, uint64_t *rng)
{
    if (!w->ntokens)
        return 0;
    struct crl_cancel_token t = w->tokens[sim_below(rng, w->ntokens)];
    int rc = crl_call(crl_token_core(t), cancel_here, &t);
    if (rc != 0 && rc != -ESRCH)
        return check_blocking(w, "a token cancel", rc);
    return 0;
}

/* ---- A channel between two cores -------------------------------------------------------- */

struct pipe {
    struct world *w;
    struct crl_xchan *ch;
    unsigned from, to;
    int sent, received;
    int64_t sum; /* of what was received */
};

static int produce(void *arg)
{
    struct pipe *p = arg;
    int rc = check_core(p->w, p->from, "a channel's sender");
    for (int i = 1; !rc && i <= CHANNEL_VALUES; i++) {
        if ((rc = crl_xchan_send(p->ch, &i)) != 0)
            break;
        p->sent = i;
    }
    crl_xchan_close(p->ch);
    if (rc == -EPIPE || rc == -EPROTO || is_cancel(rc))
        return rc == -EPIPE ? 0 : rc; /* a cancellation passed on: the scope ends cancelled */
    return check_blocking(p->w, "crl_xchan_send", rc);
}

static int consume(void *arg)
{
    struct pipe *p = arg;
    int rc = check_core(p->w, p->to, "a channel's receiver"), v;
    while (!rc && (rc = crl_xchan_recv(p->ch, &v)) == 0) {
        if (v != p->received + 1)
            return sim_fail(p->w->v, "a channel gave %d after %d", v, p->received);
        p->received = v;
        p->sum += v;
    }
    if (rc == -EPIPE || rc == -EPROTO || is_cancel(rc))
        return rc == -EPIPE ? 0 : rc;
    return check_blocking(p->w, "crl_xchan_recv", rc);
}

static int pipe_body(struct crl_scope *s, void *arg)
{
    struct pipe *p = arg;
    int rc = crl_spawn_on(s, p->from, produce, p);
    if (!rc)
        rc = crl_spawn_on(s, p->to, consume, p);
    return rc;
}

static int do_channel(struct world *w, uint64_t *rng)
{
    struct pipe p = {.w = w, .from = other_core(w, rng)};
    p.to = sim_below(rng, 2) ? other_core(w, rng) : p.from;
    if (crl_xchan_create(&p.ch, sizeof(int), 1 + sim_below(rng, 16), p.from, p.to) != 0)
        return sim_fail(w->v, "crl_xchan_create failed");
    int rc = crl_scope_run(pipe_body, &p);
    crl_xchan_destroy(p.ch);
    if (w->v->failed)
        return -EPROTO;
    if (p.received > p.sent || p.sum != (int64_t)p.received * (p.received + 1) / 2)
        return sim_fail(w->v, "a channel received %d of %d sent", p.received, p.sent);
    if (rc == 0 && p.received != CHANNEL_VALUES)
        return sim_fail(w->v, "a channel nothing cancelled carried %d of %d", p.received,
                        CHANNEL_VALUES);
    return check_blocking(w, "a channel's scope", rc);
}

/* ---- The tree --------------------------------------------------------------------------- */

static int run_scope(struct world *w, struct scope_rec *up, int depth, uint64_t seed);

static int node_task(void *arg)
{
    struct node *n = arg;
    struct scope_rec *home = n->home;
    struct world *w = home->w;
    w->started++;
    w->live++;
    int rc = check_core(w, n->core, "a task spawned on another core");
    if (!rc) {
        switch (sim_below(&n->rng, home->depth < MAX_DEPTH ? 7 : 6)) {
        case 0: rc = do_sleep(w, &n->rng); break;
        case 1: rc = do_call(w, &n->rng); break;
        case 2: rc = do_channel(w, &n->rng); break;
        case 3: rc = do_token_cancel(w, &n->rng); break;
        case 4: /* fail, after a while: the error goes up the tree, cancelling each scope */
            for (struct scope_rec *r = home; r; r = r->up)
                r->may_cancel = true;
            rc = do_sleep(w, &n->rng);
            rc = rc == -EPROTO ? rc : -EIO;
            break;
        case 5: rc = crl_yield() == 0 ? do_call(w, &n->rng) : 0; break;
        default: rc = run_scope(w, home, home->depth + 1, sim_draw(&n->rng)); break;
        }
    }
    w->live--;
    w->ended++;
    home->live--;
    if (rc == -EIO)
        home->io_error = true;
    return rc == -EIO || rc == -EPROTO ? -EIO : 0; /* a cancellation stays with its scope */
}

static int scope_body(struct crl_scope *s, void *arg)
{
    struct scope_rec *r = arg;
    struct world *w = r->w;
    unsigned kind = sim_below(&r->rng, 4); /* 0: a deadline, 1: cancels itself, else plain */
    if (kind == 0) {
        r->may_cancel = true;
        r->deadline_ns = crl_now_ns() + (int64_t)sim_below(&r->rng, 40) * CRL_MSEC_NS;
        crl_scope_set_deadline(s, r->deadline_ns);
    }
    if (w->ntokens < TOKENS && sim_below(&r->rng, 3) == 0 &&
        crl_scope_token(s, &w->tokens[w->ntokens]) == 0) {
        r->may_cancel = true;
        w->ntokens++;
    }
    if (kind == 1)
        r->may_cancel = true;
    for (int i = 0, n = 1 + (int)sim_below(&r->rng, MAX_KIDS); i < n; i++) {
        struct node *kid = &r->kid[i];
        *kid = (struct node){.home = r};
        kid->core = sim_below(&r->rng, w->cores);
        kid->rng = sim_draw(&r->rng);
        if (crl_spawn_on(s, kid->core, node_task, kid) == 0) {
            r->live++;
            r->kids++;
        }
    }
    if (kind == 1) { /* whether the sleep ran out or was cancelled from above */
        (void)crl_sleep_ns((int64_t)sim_below(&r->rng, 30) * CRL_MSEC_NS);
        crl_scope_cancel(s);
    }
    return 0;
}

static int run_scope(struct world *w, struct scope_rec *up, int depth, uint64_t seed)
{
    struct scope_rec r = {
        .up = up, .w = w, .rng = seed, .depth = depth, .deadline_ns = CRL_NO_DEADLINE};
    int rc = crl_scope_run(scope_body, &r);
    int64_t end = crl_now_ns();
    if (w->v->failed)
        return -EPROTO;
    if (r.live != 0)
        return sim_fail(w->v, "a scope at depth %d returned with %d of its %d tasks alive", depth,
                        r.live, r.kids);
    if (r.io_error && rc != -EIO)
        return sim_fail(w->v, "a scope whose child failed with -EIO returned %d", rc);
    if (rc != 0 && rc != -EIO && !is_cancel(rc))
        return sim_fail(w->v, "a scope returned %d", rc);
    if (rc != 0 && !cancellable(&r))
        return sim_fail(w->v, "a scope nothing could cancel returned %d", rc);
    if (r.deadline_ns != CRL_NO_DEADLINE && end > r.deadline_ns + SLACK_NS)
        return sim_fail(w->v, "a scope ended %lld ns after its deadline",
                        (long long)(end - r.deadline_ns));
    return rc;
}

static int xcore_run(uint64_t seed, struct sim_verdict *v)
{
    struct world w = {.v = v, .cores = crl_core_count()};
    if (w.cores < 2)
        return sim_fail(v, "a cross-core scenario on %u core", w.cores);
    int rc = 0;
    for (int round = 0; round < 3 && !v->failed; round++) {
        w.ntokens = 0; /* a round's tokens name its own scopes (old ones report -ESRCH) */
        rc = run_scope(&w, NULL, 0, seed ^ (0x7c07e5ULL + (uint64_t)round));
    }
    if (v->failed)
        return -EPROTO;
    if (rc != 0 && rc != -EIO && !is_cancel(rc))
        return sim_fail(v, "the tree returned %d", rc);
    if (w.live != 0 || w.started != w.ended)
        return sim_fail(v, "%d tasks alive at the end (%d started, %d ended)", w.live, w.started,
                        w.ended);
    return 0;
}

const struct sim_scenario sim_scenario_xcore4 = {
    .name = "xcore4",
    .about = "scopes across 4 cores: children on other cores, chained calls, channels, "
             "deadlines, token cancels, errors",
    .run = xcore_run,
    .cores = 4,
};

const struct sim_scenario sim_scenario_xcore8 = {
    .name = "xcore8",
    .about = "the same on 8 cores",
    .run = xcore_run,
    .cores = 8,
};
