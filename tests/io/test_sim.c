/* The simulated backend (CRL_BACKEND_SIM): a virtual clock that jumps to the next timer when
 * every task waits, a run-queue pick drawn from CORRAL_SEED, and a trace hash of the run that
 * the same seed gives again. */
#define _GNU_SOURCE
#include "../test.h"
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * CRL_SEC_NS + ts.tv_nsec;
}

static int run_sim(unsigned long long seed, crl_task_fn *fn, void *arg)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", seed);
    setenv("CORRAL_SEED", buf, 1);
    struct crl_config cfg = {.backend = CRL_BACKEND_SIM};
    return crl_run(&cfg, fn, arg);
}

static int sleep_long(void *arg)
{
    int64_t *slept = arg;
    CHECK_EQ(strcmp(crl_io_backend(), "sim"), 0);
    int64_t t0 = crl_now_ns();
    CHECK_EQ(crl_sleep_ns(30 * CRL_SEC_NS), 0);
    *slept = crl_now_ns() - t0;
    return 0;
}

/* A 30 s sleep takes 30 s of virtual time and next to none of the real clock's. */
TEST_PLAIN(a_30s_sleep_takes_no_real_time)
{
    int64_t slept = 0, t0 = real_ns();
    CHECK_EQ(run_sim(1, sleep_long, &slept), 0);
    CHECK_GE(slept, 30 * CRL_SEC_NS);
    CHECK_LT(slept, 30 * CRL_SEC_NS + 2 * CRL_MSEC_NS); /* the wheel's rounding at most */
    CHECK_LT(real_ns() - t0, CRL_SEC_NS);
}

static int never(void *arg) { return crl_event_wait(arg); }

static int deadline_main(void *arg)
{
    int64_t *took = arg;
    struct crl_event ev;
    crl_event_init(&ev);
    int64_t t0 = crl_now_ns();
    CHECK_EQ(crl_with_timeout(5 * CRL_SEC_NS, never, &ev), -ETIMEDOUT);
    *took = crl_now_ns() - t0;
    return 0;
}

/* A deadline fires at its virtual time, not before. */
TEST_PLAIN(a_deadline_fires_at_its_virtual_time)
{
    int64_t took = 0;
    CHECK_EQ(run_sim(3, deadline_main, &took), 0);
    CHECK_GE(took, 5 * CRL_SEC_NS);
    CHECK_LT(took, 5 * CRL_SEC_NS + 2 * CRL_MSEC_NS);
}

enum { WORKERS = 12, STEPS = 6 };

struct order {
    int seq[WORKERS * STEPS]; /* the worker that took each step, in the order taken */
    int n;
};

struct worker {
    struct order *o;
    int id;
};

static int step_worker(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < STEPS; i++) {
        w->o->seq[w->o->n++] = w->id;
        CHECK_EQ(i % 2 ? crl_yield() : crl_io_nop(), 0); /* a switch, or a simulated op */
    }
    return 0;
}

static int workers_body(struct crl_scope *s, void *arg)
{
    static struct worker ws[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        ws[i] = (struct worker){arg, i};
        CHECK_EQ(crl_spawn(s, step_worker, &ws[i]), 0);
    }
    return 0;
}

static int workers_main(void *arg) { return crl_scope_run(workers_body, arg); }

struct trace {
    struct order o;
    uint64_t seed, hash, events;
};

static void trace_of(unsigned long long seed, struct trace *t)
{
    memset(t, 0, sizeof *t);
    CHECK_EQ(run_sim(seed, workers_main, &t->o), 0);
    CHECK_EQ(t->o.n, WORKERS * STEPS);
    CHECK(crl__sim_last_trace(&t->seed, &t->hash, &t->events));
    CHECK_EQ(t->seed, seed);
    CHECK(t->events > (uint64_t)(WORKERS * STEPS));
}

static bool fifo(const struct order *o)
{
    for (int i = 0; i < o->n; i++)
        if (o->seq[i] != i % WORKERS)
            return false;
    return true;
}

/* The same seed runs the tasks in the same order, with the same trace hash. */
TEST_PLAIN(the_same_seed_gives_the_same_run)
{
    static struct trace a, b;
    trace_of(42, &a);
    trace_of(42, &b);
    CHECK_EQ(memcmp(&a.o, &b.o, sizeof a.o), 0);
    CHECK_EQ(a.hash, b.hash);
    CHECK_EQ(a.events, b.events);
}

/* Other seeds give other interleavings (and hashes), none of them the FIFO of a real core. */
TEST_PLAIN(other_seeds_give_other_runs)
{
    static struct trace first, t;
    trace_of(1, &first);
    CHECK(!fifo(&first.o));
    int differ = 0;
    for (unsigned long long seed = 2; seed <= 9; seed++) {
        trace_of(seed, &t);
        CHECK(!fifo(&t.o));
        differ += memcmp(&t.o, &first.o, sizeof t.o) != 0;
        CHECK(t.hash != first.hash);
    }
    CHECK_EQ(differ, 8);
}

static int offload_fn(void *arg) { return *(int *)arg + 1; }

static int offload_main(void *arg)
{
    int in = 41;
    int64_t t0 = crl_now_ns();
    CHECK_EQ(crl_offload(offload_fn, &in), 42);
    *(int64_t *)arg = crl_now_ns() - t0;
    return 0;
}

/* A blocking-pool job runs (on the real pool) and takes no virtual time. */
TEST_PLAIN(offloaded_work_runs_in_no_virtual_time)
{
    int64_t took = -1;
    CHECK_EQ(run_sim(5, offload_main, &took), 0);
    CHECK_EQ(took, 0);
}

static int unsupported_main(void *arg)
{
    (void)arg;
    CHECK_EQ(crl_udp_bind("127.0.0.1:0"), -EPROTONOSUPPORT); /* no kernel socket made */
    char byte;
    CHECK_EQ(crl_read(0, &byte, 1), -ENOSYS);              /* nor a kernel read */
    CHECK_EQ(crl_open("/dev/null", O_RDONLY, 0), -ENOSYS); /* nor a kernel file */
    return 0;
}

/* Nothing reaches the kernel's sockets or files: what is not simulated yet says so (the
 * network is, test_sim_net.c). */
TEST_PLAIN(what_is_not_simulated_is_refused) { CHECK_EQ(run_sim(1, unsupported_main, NULL), 0); }

static int trivial(void *arg) { return (void)arg, 0; }

/* The environment picks the backend too, and a trivial run's trace is the seed's. (Several
 * simulated cores: tests/runtime/test_sim_cores.c.) */
TEST_PLAIN(the_environment_picks_the_sim_backend)
{
    unsetenv("CORRAL_CORES");
    CHECK_EQ(run_sim(1, trivial, NULL), 0);
    setenv("CORRAL_BACKEND", "sim", 1); /* the environment picks it too */
    struct crl_config dflt = {0};
    uint64_t seed, hash, events, hash_before;
    CHECK(crl__sim_last_trace(&seed, &hash_before, &events));
    CHECK_EQ(crl_run(&dflt, trivial, NULL), 0);
    CHECK(crl__sim_last_trace(&seed, &hash, &events));
    CHECK_EQ(hash, hash_before); /* the same seed, the same (trivial) run */
    unsetenv("CORRAL_BACKEND");
}
