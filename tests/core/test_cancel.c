/* Cancellation and deadlines: timeouts, nesting, moving deadlines, shields, checkpoints. */
#include "../test.h"

#include <errno.h>

static int sleep_10s(void *arg)
{
    int rc = crl_sleep_ns(10 * CRL_SEC_NS);
    if (arg)
        *(int *)arg = rc;
    return rc;
}

/* A deadline that passes turns the blocking call and the scope into -ETIMEDOUT. */
TEST(with_timeout_returns_etimedout)
{
    int seen = 0;
    int64_t t0 = crl_now_ns();
    CHECK_EQ(crl_with_timeout(5 * CRL_MSEC_NS, sleep_10s, &seen), -ETIMEDOUT);
    CHECK_EQ(seen, -ETIMEDOUT);
    int64_t took = crl_now_ns() - t0;
    CHECK_GE(took, 5 * CRL_MSEC_NS);
    CHECK_LT(took, 2 * CRL_SEC_NS);
}

static int inner_short(void *arg)
{
    (void)arg;
    int rc = crl_with_timeout(5 * CRL_MSEC_NS, sleep_10s, NULL);
    CHECK_EQ(rc, -ETIMEDOUT);
    CHECK_EQ(crl_checkpoint(), 0); /* the outer deadline has not fired */
    return 0;
}

/* An inner deadline shorter than the outer one fires the inner scope only. */
TEST(inner_deadline_fires_inner_scope_only)
{
    CHECK_EQ(crl_with_timeout(10 * CRL_SEC_NS, inner_short, NULL), 0);
}

static int inner_no_deadline(struct crl_scope *s, void *arg)
{
    (void)s;
    return sleep_10s(arg);
}

static int run_inner_scope(void *arg)
{
    int rc = crl_scope_run(inner_no_deadline, arg);
    CHECK_EQ(rc, -ETIMEDOUT);
    return rc;
}

/* An outer deadline reaches into a nested scope, whose failure carries -ETIMEDOUT up. */
TEST(outer_deadline_reaches_nested_scope)
{
    int seen = 0;
    CHECK_EQ(crl_with_timeout(5 * CRL_MSEC_NS, run_inner_scope, &seen), -ETIMEDOUT);
    CHECK_EQ(seen, -ETIMEDOUT);
}

static int move_later(struct crl_scope *s, void *arg)
{
    (void)arg;
    crl_scope_set_deadline(s, crl_now_ns() + 5 * CRL_MSEC_NS);
    crl_scope_set_deadline(s, crl_now_ns() + 10 * CRL_SEC_NS);
    CHECK_EQ(crl_sleep_ns(30 * CRL_MSEC_NS), 0);
    CHECK(!crl_scope_cancelled(s));
    crl_scope_set_deadline(s, CRL_NO_DEADLINE);
    CHECK_EQ(crl_scope_deadline(s), CRL_NO_DEADLINE);
    return 0;
}

/* A deadline moved later does not fire at its old time; one removed never fires. */
TEST(deadline_moved_later_does_not_fire_early) { CHECK_EQ(crl_scope_run(move_later, NULL), 0); }

static int move_earlier(struct crl_scope *s, void *arg)
{
    int64_t *took = arg;
    int64_t t0 = crl_now_ns();
    crl_scope_set_deadline(s, t0 + 10 * CRL_SEC_NS);
    crl_scope_set_deadline(s, t0 + 5 * CRL_MSEC_NS);
    int rc = crl_sleep_ns(10 * CRL_SEC_NS);
    *took = crl_now_ns() - t0;
    return rc;
}

/* A deadline moved earlier fires at the new time. */
TEST(deadline_moved_earlier_fires_sooner)
{
    int64_t took = 0;
    CHECK_EQ(crl_scope_run(move_earlier, &took), -ETIMEDOUT);
    CHECK_GE(took, 5 * CRL_MSEC_NS);
    CHECK_LT(took, 2 * CRL_SEC_NS);
}

static int past_deadline(struct crl_scope *s, void *arg)
{
    (void)arg;
    crl_scope_set_deadline(s, crl_now_ns() - 1);
    CHECK(crl_scope_cancelled(s));
    return crl_checkpoint();
}

/* A deadline already in the past cancels at once. */
TEST(deadline_in_past_cancels_immediately)
{
    CHECK_EQ(crl_scope_run(past_deadline, NULL), -ETIMEDOUT);
}

struct shielded {
    int cleanup_sleep, after;
};

static int cleanup_body(struct crl_scope *s, void *arg)
{
    struct shielded *sh = arg;
    crl_scope_shield(s, true);
    sh->cleanup_sleep = crl_sleep_ns(2 * CRL_MSEC_NS);
    return 0;
}

static int cancelled_then_cleanup(struct crl_scope *s, void *arg)
{
    struct shielded *sh = arg;
    crl_scope_cancel(s);
    CHECK_EQ(crl_checkpoint(), -ECANCELED);
    CHECK_EQ(crl_scope_run(cleanup_body, sh), 0);
    sh->after = crl_sleep_ns(CRL_MSEC_NS);
    return 0;
}

/* Inside a shield, cleanup can block while the enclosing scope is cancelled. */
TEST(shield_lets_cleanup_block)
{
    struct shielded sh = {1, 1};
    CHECK_EQ(crl_scope_run(cancelled_then_cleanup, &sh), 0);
    CHECK_EQ(sh.cleanup_sleep, 0);
    CHECK_EQ(sh.after, -ECANCELED);
}

static int shield_with_own_deadline(struct crl_scope *s, void *arg)
{
    (void)arg;
    crl_scope_shield(s, true);
    crl_scope_set_deadline(s, crl_now_ns() + 2 * CRL_MSEC_NS);
    return crl_sleep_ns(10 * CRL_SEC_NS);
}

static int cancelled_then_shield_deadline(struct crl_scope *s, void *arg)
{
    crl_scope_cancel(s);
    *(int *)arg = crl_scope_run(shield_with_own_deadline, NULL);
    return 0;
}

/* A shielded scope's own deadline still applies. */
TEST(shield_keeps_its_own_deadline)
{
    int rc = 0;
    CHECK_EQ(crl_scope_run(cancelled_then_shield_deadline, &rc), 0);
    CHECK_EQ(rc, -ETIMEDOUT);
}

struct lowered {
    struct crl_scope *shielded;
    int sleep_rc;
};

static int shielded_sleeper_body(struct crl_scope *s, void *arg)
{
    struct lowered *l = arg;
    crl_scope_shield(s, true);
    l->shielded = s;
    l->sleep_rc = crl_sleep_ns(10 * CRL_SEC_NS);
    return 0;
}

static int shielded_sleeper(void *arg) { return crl_scope_run(shielded_sleeper_body, arg); }

static int lower_shield_body(struct crl_scope *s, void *arg)
{
    struct lowered *l = arg;
    CHECK_EQ(crl_spawn(s, shielded_sleeper, l), 0);
    CHECK_EQ(crl_yield(), 0);
    crl_scope_cancel(s);
    CHECK_EQ(crl_yield(), -ECANCELED);
    CHECK_EQ(l->sleep_rc, 1); /* still asleep behind its shield */
    crl_scope_shield(l->shielded, false);
    return 0;
}

/* Lowering a shield delivers the cancellation that arrived while it was up. */
TEST(lowering_shield_delivers_pending_cancel)
{
    struct lowered l = {NULL, 1};
    CHECK_EQ(crl_scope_run(lower_shield_body, &l), 0);
    CHECK_EQ(l.sleep_rc, -ECANCELED);
}

static int cancel_self_then_checkpoints(struct crl_scope *s, void *arg)
{
    (void)arg;
    CHECK_EQ(crl_checkpoint(), 0);
    crl_scope_cancel(s);
    CHECK_EQ(crl_checkpoint(), -ECANCELED);
    CHECK_EQ(crl_yield(), -ECANCELED);
    CHECK_EQ(crl_sleep_ns(0), -ECANCELED);
    return 0;
}

/* Checkpoint, yield and sleep all report a pending cancellation. */
TEST(checkpoints_report_cancellation)
{
    CHECK_EQ(crl_scope_run(cancel_self_then_checkpoints, NULL), 0);
}

static int busy_then_check(void *arg)
{
    int *progress = arg;
    for (int i = 0; i < 1000; i++)
        ++*progress; /* no cancellation point: runs to the end */
    return crl_checkpoint();
}

static int cancel_before_child_runs(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, busy_then_check, arg), 0);
    crl_scope_cancel(s);
    return 0;
}

/* Cancellation is only delivered at cancellation points. */
TEST(cancellation_only_at_cancellation_points)
{
    int progress = 0;
    CHECK_EQ(crl_scope_run(cancel_before_child_runs, &progress), 0);
    CHECK_EQ(progress, 1000);
}

/* Computes without blocking for up to 300 ms, a checkpoint after each step of step_ns. */
static int compute_with_checkpoints(void *arg)
{
    int64_t step_ns = *(int64_t *)arg, end = crl_now_ns() + 300 * CRL_MSEC_NS;
    while (crl_now_ns() < end) {
        for (int64_t t = crl_now_ns() + step_ns; crl_now_ns() < t;) {
        }
        int rc = crl_checkpoint();
        if (rc)
            return rc;
    }
    return 0;
}

static void check_checkpoint_sees_deadline(int64_t step_ns)
{
    int64_t t0 = crl_now_ns();
    CHECK_EQ(crl_with_timeout(10 * CRL_MSEC_NS, compute_with_checkpoints, &step_ns), -ETIMEDOUT);
    int64_t took = crl_now_ns() - t0;
    CHECK_GE(took, 10 * CRL_MSEC_NS);
    CHECK_LT(took, 100 * CRL_MSEC_NS); /* not the whole 300 ms */
}

/* A CPU-bound loop's checkpoints see its deadline pass, though the loop never lets the runtime
 * run its timers: tight steps (many checkpoints per clock read) and long ones (1 ms). */
TEST(checkpoint_sees_a_deadline_pass_in_a_busy_loop)
{
    check_checkpoint_sees_deadline(0);
    check_checkpoint_sees_deadline(200);
    check_checkpoint_sees_deadline(CRL_MSEC_NS);
}

static int tight_then_long_steps(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++) { /* a tight loop grows the stride first */
        int rc = crl_checkpoint();
        if (rc)
            return rc; /* valgrind is slow enough to reach the deadline here */
    }
    int64_t end = crl_now_ns() + 2 * CRL_SEC_NS; /* then steps of 5 ms, for up to 2 s */
    while (crl_now_ns() < end) {
        for (int64_t t = crl_now_ns() + 5 * CRL_MSEC_NS; crl_now_ns() < t;) {
        }
        int rc = crl_checkpoint();
        if (rc)
            return rc;
    }
    return 0;
}

/* A stride grown in a tight loop shrinks again when the work between checkpoints grows: the
 * deadline is seen within 16 long steps (80 ms here), not after the stride's worth of them. */
TEST(checkpoint_stride_shrinks_when_steps_grow)
{
    int64_t t0 = crl_now_ns();
    CHECK_EQ(crl_with_timeout(50 * CRL_MSEC_NS, tight_then_long_steps, NULL), -ETIMEDOUT);
    CHECK_LT(crl_now_ns() - t0, CRL_SEC_NS);
}

static int sleeper_counts(void *arg)
{
    *(int *)arg = crl_sleep_ns(CRL_MSEC_NS);
    return 0;
}

static int compute_then_check_sleeper(struct crl_scope *s, void *arg)
{
    int *slept = arg;
    CHECK_EQ(crl_spawn(s, sleeper_counts, slept), 0);
    CHECK_EQ(crl_yield(), 0);
    int64_t end = crl_now_ns() + 2 * CRL_MSEC_NS;
    while (crl_now_ns() < end)
        CHECK_EQ(crl_checkpoint(), 0);
    for (int i = 0; i < 64; i++) /* a few looks after the sleep's deadline, however late */
        CHECK_EQ(crl_checkpoint(), 0);
    CHECK_EQ(*slept, 1); /* woken by the timer, not run yet: it runs when we yield */
    CHECK_EQ(crl_yield(), 0);
    CHECK_EQ(*slept, 0);
    return 0;
}

/* Timers a checkpoint finds due fire there; the tasks they wake run at the next yield. */
TEST(checkpoint_fires_due_timers_without_switching)
{
    int slept = 1;
    CHECK_EQ(crl_scope_run(compute_then_check_sleeper, &slept), 0);
}
