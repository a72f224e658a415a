/* Nested cancellation as Trio defines it (its test_cancel_scope_nesting and friends, written
 * in C): the outermost cancelled scope up to a shield catches a cancellation, an inner
 * cancelled scope passes it on, and a scope is "cancelled" once its deadline has passed. */
#include "../test.h"

#include <errno.h>

struct nest {
    struct crl_scope *outer; /* scope2 of Trio's test */
    int sleep_rc;
    int inner_rc;
    int inner_reason; /* how the inner scope is cancelled: ECANCELED or ETIMEDOUT */
    int outer_reason;
};

static void cancel_as(struct crl_scope *s, int reason)
{
    if (reason == ETIMEDOUT)
        crl_scope_set_deadline(s, crl_now_ns() - 1);
    else
        crl_scope_cancel(s);
}

static int innermost(struct crl_scope *s, void *arg)
{
    struct nest *n = arg;
    cancel_as(s, n->inner_reason);
    cancel_as(n->outer, n->outer_reason);
    n->sleep_rc = crl_sleep_ns(10 * CRL_SEC_NS);
    return n->sleep_rc;
}

static int middle(struct crl_scope *s, void *arg)
{
    struct nest *n = arg;
    n->outer = s;
    n->inner_rc = crl_scope_run(innermost, n);
    return n->inner_rc; /* "code after it is skipped": the error goes up */
}

static int outermost(struct crl_scope *s, void *arg)
{
    int rc = crl_scope_run(middle, arg);
    CHECK(!crl_scope_cancelled(s)); /* scope1: never cancelled */
    return rc;
}

/* Two nested scopes cancelled at once: the inner one passes the cancellation on (its
 * crl_scope_run returns it, so the code after it is skipped) and the outer one catches it. */
TEST(outermost_cancelled_scope_catches_the_cancellation)
{
    struct nest n = {.inner_reason = ECANCELED, .outer_reason = ECANCELED};
    CHECK_EQ(crl_scope_run(outermost, &n), 0);
    CHECK_EQ(n.sleep_rc, -ECANCELED);
    CHECK_EQ(n.inner_rc, -ECANCELED);
    CHECK_EQ(crl_checkpoint(), 0);
}

/* An inner deadline and an outer cancel: the outer scope's reason is what the blocked call
 * and the inner scope report, and the outer scope absorbs it. */
TEST(outer_cancel_wins_over_inner_deadline)
{
    struct nest n = {.inner_reason = ETIMEDOUT, .outer_reason = ECANCELED};
    CHECK_EQ(crl_scope_run(outermost, &n), 0);
    CHECK_EQ(n.sleep_rc, -ECANCELED);
    CHECK_EQ(n.inner_rc, -ECANCELED);
}

/* An inner cancel and an outer deadline: -ETIMEDOUT everywhere, and the outer scope, whose
 * deadline fired, returns it (as crl_with_timeout does). */
TEST(outer_deadline_wins_over_inner_cancel)
{
    struct nest n = {.inner_reason = ECANCELED, .outer_reason = ETIMEDOUT};
    CHECK_EQ(crl_scope_run(outermost, &n), -ETIMEDOUT);
    CHECK_EQ(n.sleep_rc, -ETIMEDOUT);
    CHECK_EQ(n.inner_rc, -ETIMEDOUT);
}

static int child_sleeps(void *arg)
{
    struct nest *n = arg;
    n->sleep_rc = crl_sleep_ns(10 * CRL_SEC_NS);
    return n->sleep_rc;
}

static int inner_with_child(struct crl_scope *s, void *arg)
{
    struct nest *n = arg;
    CHECK_EQ(crl_spawn(s, child_sleeps, n), 0);
    CHECK_EQ(crl_yield(), 0); /* the child blocks */
    cancel_as(s, n->inner_reason);
    cancel_as(n->outer, n->outer_reason);
    return 0;
}

static int middle_with_child(struct crl_scope *s, void *arg)
{
    struct nest *n = arg;
    n->outer = s;
    n->inner_rc = crl_scope_run(inner_with_child, n);
    return n->inner_rc;
}

/* The same when the cancelled work is a child task of the inner scope. */
TEST(outermost_cancelled_scope_catches_a_childs_cancellation)
{
    struct nest n = {.inner_reason = ECANCELED, .outer_reason = ECANCELED};
    CHECK_EQ(crl_scope_run(middle_with_child, &n), 0);
    CHECK_EQ(n.sleep_rc, -ECANCELED);
    CHECK_EQ(n.inner_rc, -ECANCELED);
}

static int cancels_itself_and_returns(struct crl_scope *s, void *arg)
{
    (void)arg;
    crl_scope_cancel(s);
    return 5; /* no cancellation point ran: nothing was cancelled */
}

/* Trio: "if a scope is pending, but then gets popped off the stack, then it isn't
 * delivered": a cancelled scope left without a cancellation point leaves nothing behind. */
TEST(cancel_of_a_scope_that_returns_is_not_delivered_after_it)
{
    CHECK_EQ(crl_scope_run(cancels_itself_and_returns, NULL), 5);
    CHECK_EQ(crl_checkpoint(), 0);
    CHECK_EQ(crl_sleep_ns(0), 0);
}

static int cancel_then_checkpoint(struct crl_scope *s, void *arg)
{
    (void)arg;
    crl_scope_cancel(s);
    int rc = crl_checkpoint();
    CHECK_EQ(rc, -ECANCELED);
    return rc;
}

/* Trio's test_cancel_scope_basic: a scope cancelled by itself catches its cancellation. */
TEST(scope_catches_its_own_cancellation)
{
    CHECK_EQ(crl_scope_run(cancel_then_checkpoint, NULL), 0);
    CHECK_EQ(crl_checkpoint(), 0);
}

static int shielded_cancelled_itself(struct crl_scope *s, void *arg)
{
    (void)arg;
    CHECK_EQ(crl_checkpoint(), -ECANCELED); /* the outer cancellation reaches us */
    crl_scope_shield(s, true);
    CHECK_EQ(crl_checkpoint(), 0);
    crl_scope_cancel(s);
    return crl_checkpoint(); /* -ECANCELED: our own */
}

static int cancelled_outside_a_shield(struct crl_scope *s, void *arg)
{
    crl_scope_cancel(s);
    int rc = crl_scope_run(shielded_cancelled_itself, arg);
    CHECK_EQ(rc, 0); /* the shielded scope catches its own: it cannot see ours */
    CHECK_EQ(crl_checkpoint(), -ECANCELED);
    return -ECANCELED;
}

/* The shield part of Trio's test: a shielded scope catches its own cancellation even inside
 * a cancelled scope, whose cancellation it does not see. */
TEST(shielded_scope_catches_its_own_cancellation_inside_a_cancelled_one)
{
    CHECK_EQ(crl_scope_run(cancelled_outside_a_shield, NULL), 0);
}

static int three_deep(struct crl_scope *s, void *arg)
{
    struct crl_scope **outer = arg;
    crl_scope_cancel(s);
    crl_scope_cancel(outer[0]);
    crl_scope_cancel(outer[1]);
    return crl_checkpoint();
}

static int two_deep(struct crl_scope *s, void *arg)
{
    struct crl_scope **outer = arg;
    outer[1] = s;
    int rc = crl_scope_run(three_deep, outer);
    CHECK_EQ(rc, -ECANCELED);
    return rc;
}

static int one_deep(struct crl_scope *s, void *arg)
{
    struct crl_scope **outer = arg;
    outer[0] = s;
    int rc = crl_scope_run(two_deep, outer);
    CHECK_EQ(rc, -ECANCELED);
    return rc;
}

/* Three cancelled scopes: both inner ones pass the cancellation on, the outermost catches it. */
TEST(cancellation_passes_every_cancelled_scope_up_to_the_outermost)
{
    struct crl_scope *outer[2] = {NULL, NULL};
    CHECK_EQ(crl_scope_run(one_deep, outer), 0);
}

static void spin_until(int64_t t)
{
    while (crl_now_ns() < t) {
    }
}

static int deadline_passes_unseen(struct crl_scope *s, void *arg)
{
    (void)arg;
    int64_t deadline = crl_now_ns() + 100 * CRL_MSEC_NS; /* valgrind is slow */
    crl_scope_set_deadline(s, deadline);
    if (crl_now_ns() < deadline)
        CHECK(!crl_scope_cancelled(s));
    spin_until(deadline + CRL_MSEC_NS); /* no cancellation point: no timer fired */
    CHECK(crl_scope_cancelled(s));
    return 0;
}

/* As Trio's cancel_called: a scope whose deadline has passed is cancelled, even before the
 * runtime had a turn to fire its timer (asking cancels it, as in Trio), and the scope's
 * deadline has then fired: -ETIMEDOUT. */
TEST(scope_is_cancelled_once_its_deadline_passed)
{
    CHECK_EQ(crl_scope_run(deadline_passes_unseen, NULL), -ETIMEDOUT);
}

/* arg: the timeout it runs under, in ns; it spins 10 ms past it. */
static int busy_past_the_deadline_then_one_checkpoint(void *arg)
{
    int64_t timeout_ns = *(const int64_t *)arg;
    spin_until(crl_now_ns() + timeout_ns + 10 * CRL_MSEC_NS);
    return crl_checkpoint();
}

static int tight_checkpoints_then_busy(void *arg)
{
    /* A stride grown by a tight loop must not hide it (200 grow it to its top, 16; the
     * timeout leaves them room under valgrind on a loaded runner). */
    for (int i = 0; i < 200; i++)
        CHECK_EQ(crl_checkpoint(), 0);
    return busy_past_the_deadline_then_one_checkpoint(arg);
}

/* Trio: a checkpoint sees a passed deadline. The first checkpoint after a deadline passed
 * (in code that computed past it without one) reports it, whatever came before. */
TEST(first_checkpoint_after_a_deadline_passed_reports_it)
{
    int64_t short_ns = 10 * CRL_MSEC_NS, roomy_ns = 200 * CRL_MSEC_NS;
    CHECK_EQ(crl_with_timeout(short_ns, busy_past_the_deadline_then_one_checkpoint, &short_ns),
             -ETIMEDOUT);
    CHECK_EQ(crl_with_timeout(roomy_ns, tight_checkpoints_then_busy, &roomy_ns), -ETIMEDOUT);
}
