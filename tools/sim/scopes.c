/* scopes.c - the "scopes" scenario: a random tree of tasks and nested scopes that sleep,
 * wait with timeouts, run no-ops, fail, shield themselves, set and move deadlines, and cancel
 * themselves and each other through tokens. Checked as it runs (the Trio rules of
 * crl_scope_run):
 *   - every scope joins: when crl_scope_run returns, none of its tasks is alive;
 *   - a child's error (-EIO) is its scope's result, whatever cancellations came with it
 *     (a task returns only its errors: a cancellation stays with the scope it came from);
 *   - a scope's result is 0, -EIO or a cancellation (-ECANCELED, -ETIMEDOUT), and 0 when
 *     nothing could cancel it (inside a shield, no deadline or cancel of its own);
 *   - inside a shield, sleeps and timeouts run their full length;
 *   - a scope with a deadline and no shield below ends within a few ms of the deadline;
 *   - a blocking call returns 0 or a cancellation, and a sleep that returned 0 slept;
 *   - at the end every task that started has ended. */
#include "scenario.h"

#include <errno.h>
#include <string.h>

enum { MAX_DEPTH = 3, MAX_KIDS = 4, TOKENS = 8 };
#define SLACK_NS (5 * CRL_MSEC_NS) /* a deadline's cancellation reaching every task */

struct world {
    uint64_t rng;
    struct sim_verdict *v;
    int live, started, ended;
    struct crl_cancel_token tokens[TOKENS]; /* scopes any task may cancel */
    unsigned ntokens;
};

struct scope_rec {
    struct scope_rec *up; /* the scope enclosing this one, in the tree drawn here */
    struct world *w;
    int depth;
    bool shielded;       /* from the outside: in a shield, not cancellable below it */
    bool shield;         /* this scope is a shield */
    bool under_shield;   /* it or a scope above it is a shield: no errors here (an error
                            cancels its way up to the shield, shielded siblings included) */
    bool cancellable;    /* it has a deadline or cancels itself */
    bool shield_below;   /* a shield at or below it: its end may wait for shielded work */
    bool io_error;       /* a direct child returned -EIO */
    int64_t deadline_ns; /* its deadline as last set, or CRL_NO_DEADLINE */
    int live;            /* its tasks alive */
    int kids;
};

struct node {
    struct scope_rec *home; /* the scope it was spawned into */
};

static bool is_cancel(int rc) { return rc == -ECANCELED || rc == -ETIMEDOUT; }

static int check_call(struct world *w, const char *what, int rc)
{
    if (rc != 0 && !is_cancel(rc))
        return sim_fail(w->v, "%s returned %d, not 0 or a cancellation", what, rc);
    return 0;
}

static int do_sleep(struct world *w, bool shielded)
{
    int64_t d = (int64_t)sim_below(&w->rng, 50) * CRL_MSEC_NS, t0 = crl_now_ns();
    int rc = crl_sleep_ns(d);
    int64_t took = crl_now_ns() - t0;
    if (shielded && rc != 0)
        return sim_fail(w->v, "a sleep inside a shield returned %d", rc);
    if (rc == 0 && took < d)
        return sim_fail(w->v, "a sleep of %lld ns returned 0 after %lld", (long long)d,
                        (long long)took);
    return check_call(w, "crl_sleep_ns", rc);
}

static int wait_forever(void *arg) { return crl_event_wait(arg); }

static int do_wait(struct world *w, bool shielded)
{
    struct crl_event never;
    crl_event_init(&never);
    int64_t t = (int64_t)(1 + sim_below(&w->rng, 30)) * CRL_MSEC_NS, t0 = crl_now_ns();
    int rc = crl_with_timeout(t, wait_forever, &never);
    int64_t took = crl_now_ns() - t0;
    if (!is_cancel(rc))
        return sim_fail(w->v, "a wait that nothing ends returned %d", rc);
    if (shielded && (rc != -ETIMEDOUT || took < t))
        return sim_fail(w->v, "a %lld ns timeout inside a shield returned %d after %lld",
                        (long long)t, rc, (long long)took);
    return 0;
}

static int do_nops(struct world *w)
{
    for (unsigned i = 0, n = 1 + sim_below(&w->rng, 4); i < n; i++) {
        int rc = crl_io_nop();
        if (rc)
            return check_call(w, "crl_io_nop", rc);
    }
    return 0;
}

static int do_token_cancel(struct world *w)
{
    if (!w->ntokens)
        return 0;
    int rc = crl_token_cancel(w->tokens[sim_below(&w->rng, w->ntokens)]);
    if (rc != 0 && rc != -ESRCH)
        return sim_fail(w->v, "crl_token_cancel returned %d", rc);
    return 0;
}

static int run_scope(struct world *w, struct scope_rec *up, bool shielded, int depth);

static int node_task(void *arg)
{
    struct node *n = arg;
    struct scope_rec *home = n->home;
    struct world *w = home->w;
    w->started++;
    w->live++;
    int rc = 0;
    switch (sim_below(&w->rng, home->depth < MAX_DEPTH ? 7 : 6)) {
    case 0: rc = do_sleep(w, home->shielded); break;
    case 1: rc = do_wait(w, home->shielded); break;
    case 2: rc = do_nops(w); break;
    case 3: /* fail; not under a shield, where the error would cancel shielded tasks */
        rc = !home->under_shield && sim_below(&w->rng, 3) == 0 ? -EIO : do_nops(w);
        break;
    case 4: rc = do_token_cancel(w); break;
    case 5: rc = crl_yield() == 0 ? do_sleep(w, home->shielded) : 0; break;
    default: rc = run_scope(w, home, home->shielded, home->depth + 1); break;
    }
    w->live--;
    w->ended++;
    home->live--;
    if (rc == -EIO)
        home->io_error = true;
    /* Only an error fails the home scope (a broken invariant too, noted already); a
     * cancellation is the home's own business, and a nested scope's deadline is its own. */
    return rc == -EIO || rc == -EPROTO ? -EIO : 0;
}

static void mark_shield_up(struct scope_rec *r)
{
    for (; r; r = r->up)
        r->shield_below = true;
}

static int scope_body(struct crl_scope *s, void *arg)
{
    struct scope_rec *r = arg;
    struct world *w = r->w;
    if (r->shield) {
        crl_scope_shield(s, true);
        mark_shield_up(r);
    }
    bool self_cancel = r->cancellable && sim_below(&w->rng, 2);
    if (r->cancellable && !self_cancel) {
        r->deadline_ns = crl_now_ns() + (int64_t)sim_below(&w->rng, 40) * CRL_MSEC_NS;
        crl_scope_set_deadline(s, r->deadline_ns);
    }
    if (!r->shielded && w->ntokens < TOKENS && sim_below(&w->rng, 3) == 0 &&
        crl_scope_token(s, &w->tokens[w->ntokens]) == 0)
        w->ntokens++;
    for (int i = 0, n = 1 + (int)sim_below(&w->rng, MAX_KIDS); i < n; i++) {
        struct node kid = {r};
        if (crl_spawn_copy(s, node_task, &kid, sizeof kid) == 0) {
            r->live++;
            r->kids++;
        }
    }
    if (r->deadline_ns != CRL_NO_DEADLINE && sim_below(&w->rng, 2)) { /* move it */
        if (crl_yield() == 0) {
            r->deadline_ns = crl_now_ns() + (int64_t)sim_below(&w->rng, 40) * CRL_MSEC_NS;
            crl_scope_set_deadline(s, r->deadline_ns);
        }
    }
    if (self_cancel) { /* whether the sleep ran out or was cancelled from above */
        (void)crl_sleep_ns((int64_t)sim_below(&w->rng, 30) * CRL_MSEC_NS);
        crl_scope_cancel(s);
    }
    return 0;
}

static int run_scope(struct world *w, struct scope_rec *up, bool shielded, int depth)
{
    struct scope_rec r = {.up = up, .w = w, .depth = depth, .deadline_ns = CRL_NO_DEADLINE};
    unsigned kind = sim_below(&w->rng, 4); /* 0: shield, 1: cancellable, else plain */
    r.shield = kind == 0;
    r.under_shield = r.shield || (up && up->under_shield);
    r.cancellable = kind == 1;
    r.shielded = (shielded || r.shield) && !r.cancellable;
    int rc = crl_scope_run(scope_body, &r);
    int64_t end = crl_now_ns();
    if (r.live != 0)
        return sim_fail(w->v, "a scope at depth %d returned with %d of its %d tasks alive", depth,
                        r.live, r.kids);
    if (r.io_error && rc != -EIO)
        return sim_fail(w->v, "a scope whose child failed with -EIO returned %d", rc);
    if (rc != 0 && rc != -EIO && !is_cancel(rc))
        return sim_fail(w->v, "a scope returned %d", rc);
    if (r.shielded && !r.io_error && rc != 0)
        return sim_fail(w->v, "a scope nothing could cancel returned %d", rc);
    if (r.deadline_ns != CRL_NO_DEADLINE && !r.shield_below && end > r.deadline_ns + SLACK_NS)
        return sim_fail(w->v, "a scope ended %lld ns after its deadline",
                        (long long)(end - r.deadline_ns));
    return rc;
}

static int scopes_run(uint64_t seed, struct sim_verdict *v)
{
    struct world w = {.rng = seed ^ 0x5c09e5ULL, .v = v};
    int rc = run_scope(&w, NULL, false, 0);
    if (v->failed)
        return -EPROTO;
    if (rc != 0 && rc != -EIO && !is_cancel(rc))
        return sim_fail(v, "the tree returned %d", rc);
    if (w.live != 0 || w.started != w.ended)
        return sim_fail(v, "%d tasks alive at the end (%d started, %d ended)", w.live, w.started,
                        w.ended);
    return 0;
}

const struct sim_scenario sim_scenario_scopes = {
    .name = "scopes",
    .about = "random trees of scopes: cancellation, deadlines moved, shields, errors, tokens",
    .run = scopes_run,
};
