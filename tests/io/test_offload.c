/* The blocking pool: offloaded calls run on other threads while the core keeps serving
 * tasks; cancellation takes back a queued job and waits for a running one. */
#define _GNU_SOURCE
#include "../test.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int sleep_ms_then_double(void *arg)
{
    int *v = arg;
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL); /* blocks its pool thread, not the core */
    *v *= 2;
    return *v;
}

struct progress {
    int value;
    int ticks;
    int result;
};

static int offloader(void *arg)
{
    struct progress *p = arg;
    p->result = crl_offload(sleep_ms_then_double, &p->value);
    return 0;
}

static int ticker(void *arg)
{
    struct progress *p = arg;
    while (p->result == 0) {
        p->ticks++;
        CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    }
    return 0;
}

static int offload_body(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, offloader, arg), 0);
    CHECK_EQ(crl_spawn(s, ticker, arg), 0);
    return 0;
}

/* The task waiting for an offloaded call gets its result; other tasks ran meanwhile. */
TEST(offload_returns_result_while_core_runs_on)
{
    struct progress p = {.value = 21};
    CHECK_EQ(crl_scope_run(offload_body, &p), 0);
    CHECK_EQ(p.result, 42);
    CHECK_EQ(p.value, 42);
    CHECK_GE(p.ticks, 5); /* the core was not blocked for the 20 ms */
}

static atomic_int gate; /* 0: hold the pool threads, 1: let them go */
static atomic_int running;

static int hold_until_released(void *arg)
{
    atomic_fetch_add(&running, 1);
    while (!atomic_load(&gate))
        usleep(100);
    return *(int *)arg;
}

struct held_job {
    int id;
    int result;
};

static int offload_one(void *arg)
{
    struct held_job *j = arg;
    j->result = crl_offload(hold_until_released, &j->id);
    return 0;
}

static int cancel_body(struct crl_scope *s, void *arg)
{
    struct held_job *jobs = arg;
    for (int i = 0; i < 8; i++)
        CHECK_EQ(crl_spawn(s, offload_one, &jobs[i]), 0);
    while (atomic_load(&running) < 4) /* 4 pool threads are busy, 4 jobs still queued */
        CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    crl_scope_cancel(s);
    CHECK_EQ(crl_yield(), -ECANCELED);
    atomic_store(&gate, 1);
    return 0;
}

/* Cancelled, the 4 queued jobs are dropped (-ECANCELED) and the 4 running ones are waited
 * for, their results handed back. */
TEST(offload_cancel_drops_queued_and_waits_running)
{
    if (test_under_valgrind() && strcmp(crl_io_backend(), "io_uring") == 0)
        TEST_SKIP("valgrind 3.19 starves the pool threads while a thread waits in io_uring_enter");
    struct held_job jobs[8];
    for (int i = 0; i < 8; i++)
        jobs[i] = (struct held_job){100 + i, 0};
    atomic_store(&gate, 0);
    atomic_store(&running, 0);
    CHECK_EQ(crl_scope_run(cancel_body, jobs), 0);
    int dropped = 0, finished = 0;
    for (int i = 0; i < 8; i++) {
        if (jobs[i].result == -ECANCELED)
            dropped++;
        else if (jobs[i].result == 100 + i)
            finished++;
    }
    CHECK_EQ(atomic_load(&running), 4);
    CHECK_EQ(finished, 4);
    CHECK_EQ(dropped, 4);
}

static int nops(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(crl_io_nop(), 0);
    return 0;
}

/* A no-op makes the round trip through the backend. */
TEST(io_nop_round_trips)
{
    CHECK_EQ(nops(NULL), 0);
    struct crl_stats st;
    crl_stats_get(&st);
    CHECK_GE(st.io_ops, 1000);
}

enum { BURST_TASKS = 32, BURST_CALLS = 20 };

static int add_one(void *arg) { return *(int *)arg + 1; }

static int burst_offloader(void *arg)
{
    int base = (int)(intptr_t)arg;
    for (int i = 0; i < BURST_CALLS; i++) {
        int v = base + i;
        CHECK_EQ(crl_offload(add_one, &v), base + i + 1);
    }
    return 0;
}

static int burst_body(struct crl_scope *s, void *arg)
{
    (void)arg;
    for (int t = 0; t < BURST_TASKS; t++)
        CHECK_EQ(crl_spawn(s, burst_offloader, (void *)(intptr_t)(t * 1000)), 0);
    return 0;
}

/* Jobs that finish together, on several pool threads, each come back with their own result:
 * a job handed back while an earlier one is still to be taken in shares its wake-up, and
 * none is left waiting. */
TEST(offload_burst_every_job_returns)
{
    struct crl_stats before, after;
    crl_stats_get(&before);
    CHECK_EQ(crl_scope_run(burst_body, NULL), 0);
    crl_stats_get(&after);
    CHECK_EQ(after.pool_run - before.pool_run, BURST_TASKS * BURST_CALLS);
    CHECK_LT(after.wakeups_received - before.wakeups_received, BURST_TASKS * BURST_CALLS + 1);
}
