/* Several executors: core 0 runs main, the others serve cross-core calls; results come back,
 * many calls run at once, and cancelling a caller cancels the remote task. */
#define _GNU_SOURCE
#include "../test.h"

#include <errno.h>
#include <pthread.h>

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int whoami(void *arg)
{
    *(unsigned *)arg = crl_core_id();
    return 40 + (int)crl_core_id();
}

static int call_core1(void *arg)
{
    (void)arg;
    CHECK_EQ(crl_core_count(), 2);
    CHECK_EQ(crl_core_id(), 0);
    unsigned where = 99;
    CHECK_EQ(crl_call(1, whoami, &where), 41); /* arg points into this frame */
    CHECK_EQ(where, 1);
    CHECK_EQ(crl_call(0, whoami, &where), 40); /* one's own core: run directly */
    CHECK_EQ(where, 0);
    CHECK_EQ(crl_call(2, whoami, &where), -EINVAL);
    return 0;
}

/* A function called on core 1 runs there and its result comes back to core 0. */
TEST_PLAIN(call_runs_on_the_other_core)
{
    TEST_NEED_CORES(2);
    struct crl_config cfg = {.cores = 2};
    CHECK_EQ(crl_run(&cfg, call_core1, NULL), 0);
}

enum { CALLERS = 100, CALLS = 200 };

static int add_one(void *arg)
{
    CHECK_EQ(crl_core_id(), 1);
    return *(int *)arg + 1;
}

static int caller(void *arg)
{
    long *sum = arg;
    for (int i = 0; i < CALLS; i++) {
        int v = i;
        int r = crl_call(1, add_one, &v);
        CHECK_EQ(r, i + 1);
        *sum += r;
    }
    return 0;
}

static int many_callers(struct crl_scope *s, void *arg)
{
    for (int i = 0; i < CALLERS; i++)
        CHECK_EQ(crl_spawn(s, caller, arg), 0);
    return 0;
}

static int run_many(void *arg) { return crl_scope_run(many_callers, arg); }

/* 100 tasks each making 200 calls to core 1: every result is right. */
TEST_PLAIN(many_concurrent_calls)
{
    TEST_NEED_CORES(2);
    long sum = 0;
    struct crl_config cfg = {.cores = 2};
    CHECK_EQ(crl_run(&cfg, run_many, &sum), 0);
    CHECK_EQ(sum, (long)CALLERS * CALLS * (CALLS + 1) / 2);
}

struct remote_sleep {
    int remote_rc;
    int call_rc;
};

static int sleep_long(void *arg)
{
    struct remote_sleep *r = arg;
    r->remote_rc = crl_sleep_ns(10 * CRL_SEC_NS);
    return r->remote_rc;
}

static int call_and_be_cancelled(void *arg)
{
    struct remote_sleep *r = arg;
    r->call_rc = crl_call(1, sleep_long, r);
    return 0;
}

static int cancel_body(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, call_and_be_cancelled, arg), 0);
    CHECK_EQ(crl_sleep_ns(5 * CRL_MSEC_NS), 0);
    crl_scope_cancel(s);
    return 0;
}

static int run_cancel(void *arg)
{
    int64_t t0 = crl_now_ns();
    CHECK_EQ(crl_scope_run(cancel_body, arg), 0);
    CHECK_LT(crl_now_ns() - t0, 2 * CRL_SEC_NS);
    return 0;
}

/* Cancelling the caller cancels the task on the other core, and waits for it. */
TEST_PLAIN(cancel_crosses_cores)
{
    TEST_NEED_CORES(2);
    struct remote_sleep r = {1, 1};
    struct crl_config cfg = {.cores = 2};
    CHECK_EQ(crl_run(&cfg, run_cancel, &r), 0);
    CHECK_EQ(r.remote_rc, -ECANCELED);
    CHECK_EQ(r.call_rc, -ECANCELED);
}

static int deadline_call(void *arg)
{
    struct remote_sleep *r = arg;
    return crl_call(1, sleep_long, r);
}

static int run_deadline(void *arg)
{
    struct remote_sleep *r = arg;
    r->call_rc = crl_with_timeout(5 * CRL_MSEC_NS, deadline_call, r);
    return 0;
}

/* A caller's deadline reaches the remote task as a cancellation; the caller sees -ETIMEDOUT. */
TEST_PLAIN(deadline_crosses_cores)
{
    TEST_NEED_CORES(2);
    struct remote_sleep r = {1, 1};
    struct crl_config cfg = {.cores = 2};
    CHECK_EQ(crl_run(&cfg, run_deadline, &r), 0);
    CHECK_EQ(r.remote_rc, -ECANCELED);
    CHECK_EQ(r.call_rc, -ETIMEDOUT);
}

/* Computes on core 1 for up to 2 s, a checkpoint every microsecond or so. */
static int compute_remotely(void *arg)
{
    struct remote_sleep *r = arg;
    int64_t end = crl_now_ns() + 2 * CRL_SEC_NS;
    r->remote_rc = 0;
    while (crl_now_ns() < end) {
        r->remote_rc = crl_checkpoint();
        if (r->remote_rc)
            break;
    }
    return r->remote_rc;
}

static int call_computation(void *arg) { return crl_call(1, compute_remotely, arg); }

static int run_deadline_on_computation(void *arg)
{
    struct remote_sleep *r = arg;
    int64_t t0 = crl_now_ns();
    r->call_rc = crl_with_timeout(10 * CRL_MSEC_NS, call_computation, r);
    CHECK_LT(crl_now_ns() - t0, CRL_SEC_NS); /* not the remote loop's 2 s */
    return 0;
}

/* A caller's cancellation reaches a task on another core that only computes and checkpoints,
 * never letting its core's loop run. */
TEST_PLAIN(cancel_reaches_a_computing_remote_task_at_its_checkpoint)
{
    TEST_NEED_CORES(2);
    if (test_under_valgrind()) /* its lock goes to the spinning thread, again and again */
        TEST_SKIP("valgrind starves core 0's thread while core 1's computes");
    struct remote_sleep r = {1, 1};
    struct crl_config cfg = {.cores = 2};
    CHECK_EQ(crl_run(&cfg, run_deadline_on_computation, &r), 0);
    CHECK_EQ(r.remote_rc, -ECANCELED);
    CHECK_EQ(r.call_rc, -ETIMEDOUT);
}

static int local_key = -1;

static int bump_local(void *arg)
{
    long *v = crl_core_local_get(local_key);
    CHECK(v != NULL);
    *v += *(long *)arg;
    return (int)*v;
}

static int shard_counts(void *arg)
{
    (void)arg;
    long one = 1, ten = 10;
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(bump_local(&one), i + 1);                     /* core 0's instance */
        CHECK_EQ(crl_call(1, bump_local, &ten), 10 * (i + 1)); /* core 1's instance */
    }
    CHECK(crl_core_local_get(CRL_CORE_LOCALS_MAX) == NULL);
    return 0;
}

/* Each core has its own instance of a per-core local, zeroed at first use. */
TEST_PLAIN(core_locals_are_per_core)
{
    TEST_NEED_CORES(2);
    if (local_key < 0)
        local_key = crl_core_local_create(sizeof(long), NULL);
    CHECK(local_key >= 0);
    struct crl_config cfg = {.cores = 2};
    CHECK_EQ(crl_run(&cfg, shard_counts, NULL), 0);
    CHECK_EQ(crl_core_local_create(0, NULL), -EINVAL);
}

struct fill {
    int *slot;
    int value;
};

static int fill_on_other_core(void *arg)
{
    struct fill *f = arg;
    CHECK_EQ(crl_core_id(), 1);
    CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    *f->slot = f->value;
    return 0;
}

static int spawn_remote_fillers(struct crl_scope *s, void *arg)
{
    struct fill *fills = arg;
    for (int i = 0; i < 4; i++)
        CHECK_EQ(crl_spawn_on(s, 1, fill_on_other_core, &fills[i]), 0);
    CHECK_EQ(crl_spawn_on(s, 7, fill_on_other_core, &fills[0]), -EINVAL);
    return 0;
}

static int remote_children(void *arg)
{
    (void)arg;
    int results[4] = {0};
    struct fill fills[4];
    for (int i = 0; i < 4; i++)
        fills[i] = (struct fill){&results[i], 10 + i};
    CHECK_EQ(crl_scope_run(spawn_remote_fillers, fills), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(results[i], 10 + i); /* the scope joined them, on core 1 */
    return 0;
}

/* Children spawned on another core write into the parent's frame; the scope joins them. */
TEST_PLAIN(scope_joins_children_on_another_core)
{
    TEST_NEED_CORES(2);
    struct crl_config cfg = {.cores = 2};
    CHECK_EQ(crl_run(&cfg, remote_children, NULL), 0);
}

static int fail_remotely(void *arg)
{
    (void)arg;
    CHECK_EQ(crl_core_id(), 1);
    CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    return -EIO;
}

static int sleep_locally(void *arg)
{
    *(int *)arg = crl_sleep_ns(10 * CRL_SEC_NS);
    return 0;
}

static int remote_failure_body(struct crl_scope *s, void *arg)
{
    struct remote_sleep *r = arg;
    CHECK_EQ(crl_spawn(s, sleep_locally, &r->call_rc), 0);
    CHECK_EQ(crl_spawn_on(s, 1, fail_remotely, NULL), 0);
    CHECK_EQ(crl_spawn_on(s, 1, sleep_long, r), 0);
    return 0;
}

static int remote_failure(void *arg)
{
    CHECK_EQ(crl_scope_run(remote_failure_body, arg), -EIO);
    return 0;
}

/* A remote child's error fails the scope and cancels the other children, local and remote. */
TEST_PLAIN(remote_child_error_cancels_siblings)
{
    TEST_NEED_CORES(2);
    struct remote_sleep r = {1, 1};
    struct crl_config cfg = {.cores = 2};
    CHECK_EQ(crl_run(&cfg, remote_failure, &r), 0);
    CHECK_EQ(r.call_rc, -ECANCELED);   /* the local sibling */
    CHECK_EQ(r.remote_rc, -ECANCELED); /* the sibling on core 1 */
}

struct started_late {
    unsigned core;
    int sleep_rc;
};

static int record_start(void *arg)
{
    struct started_late *r = arg;
    r->core = crl_core_id();
    r->sleep_rc = crl_sleep_ns(10 * CRL_SEC_NS); /* its first cancellation point */
    return 0;
}

static int spawn_into_cancelled(struct crl_scope *s, void *arg)
{
    crl_scope_cancel(s);
    CHECK_EQ(crl_spawn_on(s, 1, record_start, arg), 0);
    return 0;
}

static int run_spawned_cancelled(void *arg)
{
    CHECK_EQ(crl_scope_run(spawn_into_cancelled, arg), 0);
    return 0;
}

/* A child spawned on another core into a scope already cancelled still runs, as one spawned
 * on its own core does (it may own what it was given), and sees the cancellation at its first
 * cancellation point. It used not to run at all (found by corral-sim's xcore4 scenario). */
TEST_PLAIN(a_remote_child_of_a_cancelled_scope_still_runs)
{
    TEST_NEED_CORES(2);
    struct started_late r = {99, 1};
    struct crl_config cfg = {.cores = 2};
    CHECK_EQ(crl_run(&cfg, run_spawned_cancelled, &r), 0);
    CHECK_EQ(r.core, 1u);
    CHECK_EQ(r.sleep_rc, -ECANCELED);
}

struct foreign {
    struct crl_runtime *rt;
    unsigned where[2];
    int results[2];
};

static int whoami_plus(void *arg)
{
    *(unsigned *)arg = crl_core_id();
    return 100 + (int)crl_core_id();
}

static void *foreign_thread(void *arg)
{
    struct foreign *f = arg;
    for (unsigned core = 0; core < 2; core++)
        f->results[core] = crl_runtime_call(f->rt, core, whoami_plus, &f->where[core]);
    return NULL;
}

static int join_thread(void *arg) { return -pthread_join(*(pthread_t *)arg, NULL); }

static int foreign_main(void *arg)
{
    struct foreign *f = arg;
    f->rt = crl_runtime_current();
    CHECK(f->rt != NULL);
    CHECK_EQ(crl_runtime_call(f->rt, 0, whoami_plus, &f->where[0]), -EBUSY); /* executors can't */
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, foreign_thread, f), 0);
    CHECK_EQ(crl_offload(join_thread, &t), 0); /* wait for it without blocking core 0 */
    return 0;
}

/* A thread that is not an executor runs functions on each core and gets their results. */
TEST_PLAIN(foreign_thread_calls_into_cores)
{
    TEST_NEED_CORES(2);
    struct foreign f = {0};
    struct crl_config cfg = {.cores = 2};
    CHECK_EQ(crl_run(&cfg, foreign_main, &f), 0);
    CHECK_EQ(f.results[0], 100);
    CHECK_EQ(f.results[1], 101);
    CHECK_EQ(f.where[0], 0);
    CHECK_EQ(f.where[1], 1);
}

enum { EXCHANGES = 50 };

static int ping_pong_loopback(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    int64_t t0 = crl_now_ns();
    for (int i = 0; i < EXCHANGES; i++) { /* each read waits in the backend: the core idles */
        char c = 'x';
        CHECK_EQ(crl_write(sv[0], &c, 1), 1);
        CHECK_EQ(crl_read(sv[1], &c, 1), 1);
        CHECK_EQ(crl_write(sv[1], &c, 1), 1);
        CHECK_EQ(crl_read(sv[0], &c, 1), 1);
    }
    int64_t took = crl_now_ns() - t0;
    crl_close(sv[0]);
    crl_close(sv[1]);
    /* With the I/O left waiting while the idle core polls its rings, each of the 200 I/O
     * calls would take the whole 50 ms idle poll: 10 s. Taken in promptly: milliseconds. */
    CHECK_LT(took, 2 * CRL_SEC_NS);
    return 0;
}

/* An idle core polling its rings for calls keeps submitting and reaping I/O meanwhile. */
TEST_PLAIN(idle_poll_does_not_hold_io_back)
{
    TEST_NEED_CORES(2);
    struct crl_config cfg = {.cores = 2, .idle_poll_ns = 50 * CRL_MSEC_NS};
    CHECK_EQ(crl_run(&cfg, ping_pong_loopback, NULL), 0);
}
