/* Static forms: join-all, try-join, race, race-ok, with-deadline. */
#include "../test.h"

#include <errno.h>

static int ok_after_2ms(void *arg)
{
    (void)arg;
    int rc = crl_sleep_ns(2 * CRL_MSEC_NS);
    return rc ? rc : 1;
}

static int fail_eio(void *arg)
{
    (void)arg;
    return -EIO;
}

static int fail_enoent_later(void *arg)
{
    (void)arg;
    int rc = crl_sleep_ns(CRL_MSEC_NS);
    return rc ? rc : -ENOENT;
}

/* join-all waits for every job whatever they return, and reports the lowest-indexed error. */
TEST(join_all_waits_for_all)
{
    struct crl_job jobs[] = {CRL_JOB(ok_after_2ms, NULL), CRL_JOB(fail_enoent_later, NULL),
                             CRL_JOB(fail_eio, NULL), CRL_JOB(ok_after_2ms, NULL)};
    CHECK_EQ(crl_join_all(jobs, 4), -ENOENT);
    CHECK_EQ(jobs[0].result, 1);
    CHECK_EQ(jobs[1].result, -ENOENT);
    CHECK_EQ(jobs[2].result, -EIO);
    CHECK_EQ(jobs[3].result, 1);
}

static int sleep_10s(void *arg)
{
    (void)arg;
    return crl_sleep_ns(10 * CRL_SEC_NS);
}

/* try-join fails fast: the first error cancels the other jobs and is returned. */
TEST(try_join_fails_fast)
{
    struct crl_job jobs[] = {CRL_JOB(sleep_10s, NULL), CRL_JOB(fail_enoent_later, NULL),
                             CRL_JOB(sleep_10s, NULL)};
    int64_t t0 = crl_now_ns();
    CHECK_EQ(crl_try_join(jobs, 3), -ENOENT);
    CHECK_LT(crl_now_ns() - t0, 5 * CRL_SEC_NS);
    CHECK_EQ(jobs[0].result, -ECANCELED);
    CHECK_EQ(jobs[1].result, -ENOENT);
    CHECK_EQ(jobs[2].result, -ECANCELED);
}

/* try-join with no failure returns 0 and every result. */
TEST(try_join_all_succeed)
{
    struct crl_job jobs[] = {CRL_JOB(ok_after_2ms, NULL), CRL_JOB(ok_after_2ms, NULL)};
    CHECK_EQ(crl_try_join(jobs, 2), 0);
    CHECK_EQ(jobs[0].result, 1);
    CHECK_EQ(jobs[1].result, 1);
}

static int seven_after_1ms(void *arg)
{
    (void)arg;
    int rc = crl_sleep_ns(CRL_MSEC_NS);
    return rc ? rc : 7;
}

/* race: the first job to end wins; the others are cancelled and joined. */
TEST(race_first_wins_rest_cancelled)
{
    struct crl_job jobs[] = {CRL_JOB(sleep_10s, NULL), CRL_JOB(seven_after_1ms, NULL),
                             CRL_JOB(sleep_10s, NULL)};
    CHECK_EQ(crl_race(jobs, 3), 1);
    CHECK_EQ(jobs[1].result, 7);
    CHECK_EQ(jobs[0].result, -ECANCELED);
    CHECK_EQ(jobs[2].result, -ECANCELED);
}

/* race of nothing is an error. */
TEST(race_of_nothing_is_einval) { CHECK_EQ(crl_race(NULL, 0), -EINVAL); }

static int race_in_cancelled_scope(struct crl_scope *s, void *arg)
{
    struct crl_job jobs[] = {CRL_JOB(sleep_10s, NULL), CRL_JOB(sleep_10s, NULL)};
    crl_scope_cancel(s);
    *(int *)arg = crl_race(jobs, 2);
    return 0;
}

/* A race cancelled from outside has no winner and says so. */
TEST(race_cancelled_from_outside_returns_ecanceled)
{
    int rc = 0;
    CHECK_EQ(crl_scope_run(race_in_cancelled_scope, &rc), 0);
    CHECK_EQ(rc, -ECANCELED);
}

/* race-ok: a job that fails first does not win; the first success does, the rest are
 * cancelled. */
TEST(race_ok_first_success_wins_over_earlier_failure)
{
    struct crl_job jobs[] = {CRL_JOB(fail_eio, NULL), CRL_JOB(sleep_10s, NULL),
                             CRL_JOB(seven_after_1ms, NULL), CRL_JOB(fail_enoent_later, NULL)};
    int64_t t0 = crl_now_ns();
    CHECK_EQ(crl_race_ok(jobs, 4), 2);
    CHECK_LT(crl_now_ns() - t0, 5 * CRL_SEC_NS);
    CHECK_EQ(jobs[0].result, -EIO);
    CHECK_EQ(jobs[1].result, -ECANCELED);
    CHECK_EQ(jobs[2].result, 7);
    /* It ended at the same time as the winner or was cancelled: either way not a success. */
    CHECK(jobs[3].result == -ENOENT || jobs[3].result == -ECANCELED);
}

/* The same jobs under crl_race: the failure ends the race, as it always did. */
TEST(race_is_won_by_a_failure_where_race_ok_is_not)
{
    struct crl_job jobs[] = {CRL_JOB(fail_eio, NULL), CRL_JOB(seven_after_1ms, NULL)};
    CHECK_EQ(crl_race(jobs, 2), 0);
    CHECK_EQ(jobs[0].result, -EIO);
    CHECK_EQ(jobs[1].result, -ECANCELED);
}

/* race-ok where every job fails: the lowest-indexed job's error, every result kept. */
TEST(race_ok_all_fail_returns_lowest_indexed_error)
{
    struct crl_job jobs[] = {CRL_JOB(fail_enoent_later, NULL), CRL_JOB(fail_eio, NULL)};
    CHECK_EQ(crl_race_ok(jobs, 2), -ENOENT);
    CHECK_EQ(jobs[0].result, -ENOENT);
    CHECK_EQ(jobs[1].result, -EIO);
}

TEST(race_ok_of_nothing_is_einval) { CHECK_EQ(crl_race_ok(NULL, 0), -EINVAL); }

static int race_ok_in_cancelled_scope(struct crl_scope *s, void *arg)
{
    struct crl_job jobs[] = {CRL_JOB(sleep_10s, NULL), CRL_JOB(fail_eio, NULL)};
    crl_scope_cancel(s);
    *(int *)arg = crl_race_ok(jobs, 2);
    return 0;
}

/* A race-ok cancelled from outside with no success reports the cancellation, not a job's
 * error. */
TEST(race_ok_cancelled_from_outside_returns_ecanceled)
{
    int rc = 0;
    CHECK_EQ(crl_scope_run(race_ok_in_cancelled_scope, &rc), 0);
    CHECK_EQ(rc, -ECANCELED);
}

static int race_ok_under_deadline(struct crl_scope *s, void *arg)
{
    struct crl_job jobs[] = {CRL_JOB(sleep_10s, NULL), CRL_JOB(sleep_10s, NULL)};
    crl_scope_set_deadline(s, crl_now_ns() + 2 * CRL_MSEC_NS);
    *(int *)arg = crl_race_ok(jobs, 2);
    return *(int *)arg;
}

/* An enclosing deadline ends a race-ok that nothing won with -ETIMEDOUT. */
TEST(race_ok_under_a_deadline_times_out)
{
    int rc = 0;
    CHECK_EQ(crl_scope_run(race_ok_under_deadline, &rc), -ETIMEDOUT);
    CHECK_EQ(rc, -ETIMEDOUT);
}

static int return_5(void *arg)
{
    (void)arg;
    return 5;
}

/* with-deadline passes the function's result through when the deadline does not fire. */
TEST(with_deadline_passes_result_through)
{
    CHECK_EQ(crl_with_deadline(crl_now_ns() + CRL_SEC_NS, return_5, NULL), 5);
    CHECK_EQ(crl_with_timeout(CRL_SEC_NS, fail_eio, NULL), -EIO);
}
