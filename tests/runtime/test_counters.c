/* The runtime's own counters (crl_stats): each equals the exact count of what a scripted
 * workload did, read as a difference before and after it on the core that did it. */
#define _GNU_SOURCE
#include "../test.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { N = 37 };

static struct crl_stats before, after;

static void snap(struct crl_stats *s) { CHECK_EQ(crl_stats_core(0, s), 0); }

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

static int spawn_n(struct crl_scope *s, void *arg)
{
    (void)arg;
    for (int i = 0; i < N; i++)
        CHECK_EQ(crl_spawn(s, nothing, NULL), 0);
    return 0;
}

/* N spawns: tasks_spawned grows by N, tasks_live is back where it was, switches moved. */
TEST(spawns_are_counted_and_live_tasks_come_back)
{
    snap(&before);
    CHECK_EQ(crl_scope_run(spawn_n, NULL), 0);
    snap(&after);
    CHECK_EQ(after.tasks_spawned - before.tasks_spawned, (uint64_t)N);
    CHECK_EQ(after.tasks_live, before.tasks_live);
    CHECK(after.switches - before.switches >= (uint64_t)N + 1); /* into each child, back */
    CHECK(after.runq_high >= 1);
    struct crl_stats sum;
    crl_stats_get(&sum);
    CHECK(sum.tasks_live >= 1); /* this test's task */
}

/* N sleeps: N timers armed and fired; the core slept and was idle for about that long. */
TEST(sleeps_arm_and_fire_timers_and_count_idle_time)
{
    snap(&before);
    for (int i = 0; i < N; i++)
        CHECK_EQ(crl_sleep_ns(100 * CRL_USEC_NS), 0);
    snap(&after);
    CHECK_EQ(after.timers_armed - before.timers_armed, (uint64_t)N);
    CHECK_EQ(after.timers_fired - before.timers_fired, (uint64_t)N);
    CHECK(after.sleeps - before.sleeps >= 1);
    CHECK(after.idle_ns - before.idle_ns >= (uint64_t)N * 50 * CRL_USEC_NS);
    CHECK(after.busy_ns > 0);
    CHECK(after.loop_turns - before.loop_turns >= (uint64_t)N);
}

/* N reads of ready data, then one read cancelled by a timeout: started and completed by
 * kind, and the cancelled one. */
TEST(io_operations_are_counted_by_kind)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    char b = 'x';
    snap(&before);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(crl_write(sv[1], &b, 1), 1);
        CHECK_EQ(crl_read(sv[0], &b, 1), 1);
    }
    snap(&after);
    CHECK_EQ(after.io_started[CRL_IO_READ] - before.io_started[CRL_IO_READ], (uint64_t)N);
    CHECK_EQ(after.io_completed[CRL_IO_READ] - before.io_completed[CRL_IO_READ], (uint64_t)N);
    CHECK_EQ(after.io_started[CRL_IO_WRITE] - before.io_started[CRL_IO_WRITE], (uint64_t)N);
    CHECK_EQ(after.io_cancelled[CRL_IO_READ] - before.io_cancelled[CRL_IO_READ], 0);
    CHECK_EQ(after.io_ops - before.io_ops, 2 * (uint64_t)N);
    close(sv[0]);
    close(sv[1]);
}

static int read_forever(void *arg)
{
    char b;
    return (int)crl_read(*(int *)arg, &b, 1);
}

/* A read given up by its timeout is started, completed and counted as cancelled. */
TEST(cancelled_read_is_counted)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    snap(&before);
    CHECK_EQ(crl_with_timeout(2 * CRL_MSEC_NS, read_forever, &sv[0]), -ETIMEDOUT);
    snap(&after);
    CHECK_EQ(after.io_started[CRL_IO_READ] - before.io_started[CRL_IO_READ], 1);
    CHECK_EQ(after.io_completed[CRL_IO_READ] - before.io_completed[CRL_IO_READ], 1);
    CHECK_EQ(after.io_cancelled[CRL_IO_READ] - before.io_cancelled[CRL_IO_READ], 1);
    close(sv[0]);
    close(sv[1]);
}

static int offloaded(void *arg)
{
    (void)arg;
    return 7;
}

/* N blocking-pool jobs: queued and run N times. */
TEST(pool_jobs_are_counted)
{
    const char *why = test_cannot_run_other_threads(); /* 37 jobs took 200 s of its 300 */
    if (why)
        TEST_SKIP(why);
    snap(&before);
    for (int i = 0; i < N; i++)
        CHECK_EQ(crl_offload(offloaded, NULL), 7);
    snap(&after);
    CHECK_EQ(after.pool_queued - before.pool_queued, (uint64_t)N);
    CHECK_EQ(after.pool_run - before.pool_run, (uint64_t)N);
}

static int on_core_one(void *arg)
{
    (void)arg;
    return 0;
}

static int send_n(void *arg)
{
    struct crl_xchan *ch = arg;
    for (int i = 0; i < N; i++)
        if (crl_xchan_send(ch, &i))
            return -EIO;
    return 0;
}

static int two_cores(void *arg)
{
    (void)arg;
    struct crl_stats b0, b1, a0, a1;
    CHECK_EQ(crl_stats_core(0, &b0), 0);
    CHECK_EQ(crl_stats_core(1, &b1), 0);
    for (int i = 0; i < N; i++)
        CHECK_EQ(crl_call(1, on_core_one, NULL), 0);
    CHECK_EQ(crl_stats_core(0, &a0), 0);
    CHECK_EQ(crl_stats_core(1, &a1), 0);
    CHECK_EQ(a0.calls_sent - b0.calls_sent, (uint64_t)N);
    CHECK_EQ(a1.calls_received - b1.calls_received, (uint64_t)N);
    return 0;
}

/* Cross-core calls: sent on the caller's core, received on the target's, N each. */
TEST_PLAIN(cross_core_calls_are_counted_on_both_sides)
{
    TEST_NEED_CORES(2);
    struct crl_config cfg = {.cores = 2};
    CHECK_EQ(crl_run(&cfg, two_cores, NULL), 0);
}

static struct crl_xchan *chan;

static int recv_n(void *arg)
{
    (void)arg;
    for (int i = 0; i < N; i++) {
        int v;
        if (crl_xchan_recv(chan, &v) || v != i)
            return -EIO;
    }
    return 0;
}

static int sender_on_one(void *arg)
{
    (void)arg;
    return send_n(chan);
}

static int chan_sides(struct crl_scope *s, void *arg)
{
    (void)arg;
    CHECK_EQ(crl_spawn(s, recv_n, NULL), 0);
    return crl_call(1, sender_on_one, NULL);
}

static int chan_main(void *arg)
{
    (void)arg;
    CHECK_EQ(crl_xchan_create(&chan, sizeof(int), 8, 1, 0), 0);
    struct crl_stats b0, b1, a0, a1;
    CHECK_EQ(crl_stats_core(0, &b0), 0);
    CHECK_EQ(crl_stats_core(1, &b1), 0);
    CHECK_EQ(crl_scope_run(chan_sides, NULL), 0);
    CHECK_EQ(crl_stats_core(0, &a0), 0);
    CHECK_EQ(crl_stats_core(1, &a1), 0);
    crl_xchan_destroy(chan);
    CHECK_EQ(a1.chan_sent - b1.chan_sent, (uint64_t)N);
    CHECK_EQ(a0.chan_received - b0.chan_received, (uint64_t)N);
    CHECK_EQ(a0.chan_sent - b0.chan_sent, 0);
    return 0;
}

/* A channel from core 1 to core 0: N sent on 1, N received on 0. */
TEST_PLAIN(channel_messages_are_counted_on_their_sides)
{
    TEST_NEED_CORES(2);
    struct crl_config cfg = {.cores = 2};
    CHECK_EQ(crl_run(&cfg, chan_main, NULL), 0);
}
