/* The time rule of corral.h, at its edges, for every call that takes a time: only
 * CRL_NO_DEADLINE (-1) means no deadline; any other deadline at or before now has passed
 * (0, -2, INT64_MIN); a relative timeout at or below 0 has expired; INT64_MAX is the far
 * future. No edge may overflow (the ASan+UBSan build traps signed overflow). */
#include "../test.h"

#include <errno.h>

#define PASSED_DEADLINES                                                                           \
    {                                                                                              \
        0, -2, INT64_MIN, 1                                                                        \
    }
#define EXPIRED_TIMEOUTS                                                                           \
    {                                                                                              \
        0, -1, -2, INT64_MIN                                                                       \
    }

/* Runs fn(arg) under a 5 ms timeout: for a call that must block "forever". */
static int blocks_until_cancelled(crl_task_fn *fn, void *arg)
{
    int64_t t0 = crl_now_ns();
    int rc = crl_with_timeout(5 * CRL_MSEC_NS, fn, arg);
    CHECK_GE(crl_now_ns() - t0, 5 * CRL_MSEC_NS);
    return rc;
}

static int sleep_until_arg(void *arg) { return crl_sleep_until(*(int64_t *)arg); }
static int sleep_ns_arg(void *arg) { return crl_sleep_ns(*(int64_t *)arg); }

/* A sleep until a deadline that has passed returns 0 at once. */
TEST(sleep_until_a_passed_deadline_returns_at_once)
{
    int64_t ds[] = PASSED_DEADLINES;
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        int64_t t0 = crl_now_ns();
        CHECK_EQ(crl_sleep_until(ds[i]), 0);
        CHECK_LT(crl_now_ns() - t0, 100 * CRL_MSEC_NS);
    }
}

/* A sleep until no deadline, or the far future, lasts until the task is cancelled. */
TEST(sleep_until_no_deadline_or_int64_max_sleeps_until_cancelled)
{
    int64_t never = CRL_NO_DEADLINE, far = INT64_MAX;
    CHECK_EQ(blocks_until_cancelled(sleep_until_arg, &never), -ETIMEDOUT);
    CHECK_EQ(blocks_until_cancelled(sleep_until_arg, &far), -ETIMEDOUT);
}

/* A sleep of 0 or less returns 0 at once; of INT64_MAX ("forever") lasts until cancelled. */
TEST(sleep_ns_edges)
{
    int64_t ts[] = EXPIRED_TIMEOUTS;
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        int64_t t0 = crl_now_ns();
        CHECK_EQ(crl_sleep_ns(ts[i]), 0);
        CHECK_LT(crl_now_ns() - t0, 100 * CRL_MSEC_NS);
    }
    int64_t forever = INT64_MAX;
    CHECK_EQ(blocks_until_cancelled(sleep_ns_arg, &forever), -ETIMEDOUT);
}

static int sleep_1ms(void *arg)
{
    (void)arg;
    return crl_sleep_ns(CRL_MSEC_NS);
}

/* crl_with_deadline: a passed deadline fails at the first cancellation point; no deadline
 * and INT64_MAX let the work finish. */
TEST(with_deadline_edges)
{
    int64_t ds[] = PASSED_DEADLINES;
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
        CHECK_EQ(crl_with_deadline(ds[i], sleep_1ms, NULL), -ETIMEDOUT);
    CHECK_EQ(crl_with_deadline(CRL_NO_DEADLINE, sleep_1ms, NULL), 0);
    CHECK_EQ(crl_with_deadline(INT64_MAX, sleep_1ms, NULL), 0);
}

/* crl_with_timeout: a timeout at or below 0 has expired (-1 included: it is not "none");
 * INT64_MAX does not overflow and lets the work finish. */
TEST(with_timeout_edges)
{
    int64_t ts[] = EXPIRED_TIMEOUTS;
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        CHECK_EQ(crl_with_timeout(ts[i], sleep_1ms, NULL), -ETIMEDOUT);
    CHECK_EQ(crl_with_timeout(INT64_MAX, sleep_1ms, NULL), 0);
    CHECK_EQ(crl_with_timeout(INT64_MAX - 1, sleep_1ms, NULL), 0);
}

static int set_deadline_then_sleep(struct crl_scope *s, void *arg)
{
    int64_t d = *(int64_t *)arg;
    crl_scope_set_deadline(s, d);
    CHECK_EQ(crl_scope_deadline(s), d);
    bool passed = d != CRL_NO_DEADLINE && d != INT64_MAX;
    CHECK_EQ(crl_scope_cancelled(s), passed);
    return crl_sleep_ns(CRL_MSEC_NS);
}

/* crl_scope_set_deadline takes the same rule; crl_scope_deadline gives back what was set. */
TEST(scope_set_deadline_edges)
{
    int64_t ds[] = PASSED_DEADLINES;
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
        CHECK_EQ(crl_scope_run(set_deadline_then_sleep, &ds[i]), -ETIMEDOUT);
    int64_t never = CRL_NO_DEADLINE, far = INT64_MAX;
    CHECK_EQ(crl_scope_run(set_deadline_then_sleep, &never), 0);
    CHECK_EQ(crl_scope_run(set_deadline_then_sleep, &far), 0);
}

static int moves_a_deadline_back_to_none(struct crl_scope *s, void *arg)
{
    (void)arg;
    /* 50 ms of margin: under valgrind the two calls can be a millisecond apart,
     * and a deadline that passed before it was moved has already cancelled. */
    crl_scope_set_deadline(s, crl_now_ns() + 50 * CRL_MSEC_NS);
    crl_scope_set_deadline(s, CRL_NO_DEADLINE);
    CHECK_EQ(crl_sleep_ns(100 * CRL_MSEC_NS), 0);
    crl_scope_set_deadline(s, INT64_MAX);
    return crl_sleep_ns(CRL_MSEC_NS);
}

/* A deadline moved to none or to INT64_MAX before it fired does not fire. */
TEST(deadline_moved_to_none_or_int64_max_does_not_fire)
{
    CHECK_EQ(crl_scope_run(moves_a_deadline_back_to_none, NULL), 0);
}

/* crl_tcp_connect: a passed deadline is -ETIMEDOUT; none and INT64_MAX connect. */
TEST(tcp_connect_deadline_edges)
{
    char addr[64];
    int lfd = test_listen_loopback(addr, sizeof addr);
    int64_t ds[] = PASSED_DEADLINES;
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
        CHECK_EQ(crl_tcp_connect(addr, ds[i]), -ETIMEDOUT);
    int64_t ok[] = {CRL_NO_DEADLINE, INT64_MAX};
    for (size_t i = 0; i < 2; i++) {
        int fd = crl_tcp_connect(addr, ok[i]);
        CHECK_GE(fd, 0);
        crl_close(fd);
    }
    crl_close(lfd);
}

static int sleeps_2ms(void *arg)
{
    (void)arg;
    return crl_sleep_ns(2 * CRL_MSEC_NS);
}

/* The config's durations at their edges: INT64_MAX and INT64_MIN do not overflow. */
TEST_PLAIN(config_durations_at_their_edges_run)
{
    int64_t vs[] = {INT64_MAX, INT64_MIN, -1};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        struct crl_config cfg = {.cores = 1, .stack_trim_ns = vs[i], .idle_poll_ns = vs[i]};
        CHECK_EQ(crl_run(&cfg, sleeps_2ms, NULL), 0);
    }
}
