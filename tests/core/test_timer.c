/* The timer wheel (driven directly with a virtual clock) and sleeping. */
#include "../test.h"
#include "core.h"

#include <errno.h>
#include <string.h>

enum { N = 20000, TICK_NS = 1024 };

struct probe {
    struct crl__timer t;
    int64_t fired_at; /* virtual time of the advance that fired it, -1 if not fired */
    int64_t prev_at;  /* virtual time of the advance before that one */
};

static int64_t virtual_now, virtual_prev;
static int fired_count;

static void probe_fire(struct crl__timer *t)
{
    struct probe *p = crl__container_of(t, struct probe, t);
    p->fired_at = virtual_now;
    p->prev_at = virtual_prev;
    fired_count++;
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Every timer fires in the first advance past its deadline's tick, never before its
 * deadline: random deadlines from microseconds to hours, random steps of the clock. */
TEST_PLAIN(wheel_fires_each_timer_once_on_time)
{
    static struct probe probes[N];
    static struct crl__wheel w;
    virtual_now = 1000 * CRL_SEC_NS;
    fired_count = 0;
    crl__wheel_init(&w, virtual_now);
    for (int i = 0; i < N; i++) {
        int64_t span = (int64_t)1 << (next_rand() % 43); /* 1 ns .. ~2.4 h */
        probes[i] = (struct probe){.t = {.fire = probe_fire}, .fired_at = -1};
        crl__timer_arm(&w, &probes[i].t, virtual_now + (int64_t)(next_rand() % (uint64_t)span));
    }
    int64_t end = virtual_now + 3 * 3600 * CRL_SEC_NS;
    while (virtual_now < end) {
        int64_t prev = virtual_now;
        int64_t next = crl__wheel_next_ns(&w);
        int64_t step = (int64_t)(next_rand() % (uint64_t)(((int64_t)1 << (next_rand() % 36)) + 1));
        virtual_now += step;
        if (next >= 0 && next < virtual_now && next_rand() % 2)
            virtual_now = next; /* sometimes wake exactly when the wheel asked to */
        if (virtual_now <= prev)
            virtual_now = prev + 1;
        virtual_prev = prev;
        crl__wheel_advance(&w, virtual_now);
    }
    CHECK_EQ(fired_count, N);
    CHECK_EQ(w.count, 0);
    for (int i = 0; i < N; i++) {
        int64_t d = probes[i].t.deadline_ns;
        CHECK(probes[i].fired_at >= 0);
        CHECK_LT(d, probes[i].fired_at); /* fired only once the deadline had passed */
        CHECK_GE(d / TICK_NS, probes[i].prev_at / TICK_NS); /* and not left waiting a round */
    }
}

/* The wheel's next wake-up is never later than one tick after the earliest deadline. */
TEST_PLAIN(wheel_next_wakeup_covers_earliest_deadline)
{
    static struct probe probes[1000];
    struct crl__wheel w;
    int64_t now = 5 * CRL_SEC_NS;
    crl__wheel_init(&w, now);
    CHECK_EQ(crl__wheel_next_ns(&w), -1);
    int64_t earliest = INT64_MAX;
    for (int i = 0; i < 1000; i++) {
        int64_t d = now + 1 + (int64_t)(next_rand() % (uint64_t)(100 * CRL_SEC_NS));
        probes[i] = (struct probe){.t = {.fire = probe_fire}, .fired_at = -1};
        crl__timer_arm(&w, &probes[i].t, d);
        if (d < earliest)
            earliest = d;
    }
    int64_t next = crl__wheel_next_ns(&w);
    CHECK(next > now);
    CHECK(next <= earliest + 2 * TICK_NS);
}

static struct crl__wheel *pair_wheel;
static struct probe pair[2];

static void disarm_partner(struct crl__timer *t)
{
    struct probe *p = crl__container_of(t, struct probe, t);
    probe_fire(t);
    crl__timer_disarm(pair_wheel, &pair[p == &pair[0]].t);
}

/* A callback may disarm a timer that expired in the same advance: it then does not fire.
 * Two timers due together each disarm the other, so exactly one of them fires. */
TEST_PLAIN(wheel_callback_can_disarm_a_timer_due_with_it)
{
    struct crl__wheel w;
    virtual_now = CRL_SEC_NS;
    crl__wheel_init(&w, virtual_now);
    pair_wheel = &w;
    for (int i = 0; i < 2; i++) {
        pair[i] = (struct probe){.t = {.fire = disarm_partner}, .fired_at = -1};
        crl__timer_arm(&w, &pair[i].t, virtual_now + 10 * CRL_USEC_NS);
    }
    fired_count = 0;
    virtual_now += CRL_MSEC_NS;
    crl__wheel_advance(&w, virtual_now);
    CHECK_EQ(fired_count, 1);
    CHECK((pair[0].fired_at < 0) != (pair[1].fired_at < 0));
    CHECK_EQ(w.count, 0);
}

static struct probe rearmed;

/* Fires, then arms its probe again for a deadline later in the same tick (what an
 * operation's timer does when it fired for an earlier deadline than its operation's). */
static void rearm_same_tick(struct crl__timer *t)
{
    struct probe *p = crl__container_of(t, struct probe, t);
    probe_fire(t);
    if (fired_count == 1) {
        p->t.fire = probe_fire;
        crl__timer_arm(pair_wheel, &p->t, p->t.deadline_ns + 1);
    }
}

/* A timer a callback arms for the tick being fired fires at the next advance, not when the
 * wheel next comes round to that slot (corral-sim's http scenario found such a deadline
 * lost, and the connection waiting on it hung). */
TEST_PLAIN(wheel_timer_rearmed_for_the_current_tick_fires)
{
    static struct crl__wheel w;
    virtual_now = CRL_SEC_NS;
    crl__wheel_init(&w, virtual_now);
    pair_wheel = &w;
    rearmed = (struct probe){.t = {.fire = rearm_same_tick}, .fired_at = -1};
    int64_t deadline = virtual_now + 10 * CRL_USEC_NS;
    deadline -= deadline % TICK_NS; /* the start of a tick: its deadline + 1 is in the same */
    crl__timer_arm(&w, &rearmed.t, deadline);
    fired_count = 0;
    virtual_now = deadline + TICK_NS;
    crl__wheel_advance(&w, virtual_now);
    CHECK_EQ(fired_count, 1);
    CHECK_EQ(w.count, 1);
    CHECK_EQ(crl__wheel_next_ns(&w), 0); /* due now */
    virtual_now += CRL_SEC_NS; /* a jump, as a simulated clock makes when all else waits */
    crl__wheel_advance(&w, virtual_now);
    CHECK_EQ(fired_count, 2);
    CHECK_EQ(w.count, 0);
}

/* Disarmed timers never fire; re-arming moves a timer. */
TEST_PLAIN(wheel_disarm_and_rearm)
{
    struct crl__wheel w;
    struct probe a = {.t = {.fire = probe_fire}, .fired_at = -1};
    struct probe b = {.t = {.fire = probe_fire}, .fired_at = -1};
    virtual_now = 0;
    crl__wheel_init(&w, 0);
    crl__timer_arm(&w, &a.t, CRL_MSEC_NS);
    crl__timer_arm(&w, &b.t, CRL_MSEC_NS);
    crl__timer_disarm(&w, &a.t);
    CHECK(!crl__timer_armed(&a.t));
    crl__timer_arm(&w, &b.t, 10 * CRL_SEC_NS);
    virtual_now = CRL_SEC_NS;
    crl__wheel_advance(&w, virtual_now);
    CHECK_EQ(a.fired_at, -1);
    CHECK_EQ(b.fired_at, -1);
    virtual_now = 11 * CRL_SEC_NS;
    crl__wheel_advance(&w, virtual_now);
    CHECK_EQ(b.fired_at, 11 * CRL_SEC_NS);
}

/* Deadlines beyond the wheel's ~52-day window still fire, once their time comes. */
TEST_PLAIN(wheel_far_deadlines_fire)
{
    struct crl__wheel w;
    struct probe far = {.t = {.fire = probe_fire}, .fired_at = -1};
    int64_t day = 86400 * CRL_SEC_NS;
    virtual_now = 3 * day;
    crl__wheel_init(&w, virtual_now);
    crl__timer_arm(&w, &far.t, virtual_now + 200 * day);
    while (far.fired_at < 0 && virtual_now < 300 * day) {
        int64_t next = crl__wheel_next_ns(&w);
        CHECK(next > 0);
        virtual_now = next;
        crl__wheel_advance(&w, virtual_now);
    }
    CHECK(far.fired_at >= 203 * day);
    CHECK_LT(far.fired_at, 203 * day + 2 * TICK_NS);
}

/* A sleep lasts at least as long as asked. */
TEST(sleep_lasts_at_least_its_duration)
{
    for (int i = 0; i < 5; i++) {
        int64_t t0 = crl_now_ns();
        CHECK_EQ(crl_sleep_ns(3 * CRL_MSEC_NS), 0);
        CHECK_GE(crl_now_ns() - t0, 3 * CRL_MSEC_NS);
    }
    int64_t d = crl_now_ns() + 2 * CRL_MSEC_NS;
    CHECK_EQ(crl_sleep_until(d), 0);
    CHECK_GE(crl_now_ns(), d);
}
