/* A simulated runtime of several cores (loop.c's crl__loop_sim, run.c's run_simulated):
 * every core a record driven on the calling thread, the core that runs next and the turns
 * at which a core takes its messages drawn from the seed, so that N cores run the same on
 * any machine, 8 on this 2-CPU one included. */
#define _GNU_SOURCE
#include "../test.h"
#include "io/io.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static int run_on(unsigned cores, unsigned long long seed, crl_task_fn *fn, void *arg)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", seed);
    setenv("CORRAL_SEED", buf, 1);
    struct crl_config cfg = {.backend = CRL_BACKEND_SIM, .cores = cores};
    return crl_run(&cfg, fn, arg);
}

static uint64_t last_hash(void)
{
    uint64_t seed, hash, events;
    CHECK(crl__sim_last_trace(&seed, &hash, &events));
    return hash;
}

/* ---- Every core on the one thread ------------------------------------------------------- */

struct where {
    pthread_t thread;
    unsigned core;
};

static int where_am_i(void *arg)
{
    struct where *w = arg;
    w->thread = pthread_self();
    w->core = crl_core_id();
    return (int)crl_core_id() + 100;
}

static int call_each_core(void *arg)
{
    (void)arg;
    CHECK_EQ(crl_core_count(), 8u);
    for (unsigned i = 0; i < 8; i++) {
        struct where w = {0};
        CHECK_EQ(crl_call(i, where_am_i, &w), (int)i + 100);
        CHECK_EQ(w.core, i);
        CHECK(pthread_equal(w.thread, pthread_self()));
    }
    return 0;
}

/* Eight simulated cores on a machine of two CPUs: each runs its calls, all on this thread. */
TEST_PLAIN(eight_cores_run_on_the_calling_thread)
{
    CHECK_EQ(run_on(8, 1, call_each_core, NULL), 0);
}

static int count_cores(void *arg)
{
    *(unsigned *)arg = crl_core_count();
    return 0;
}

/* With cores 0 a simulated runtime has one core whatever the machine; 1024 at the most. */
TEST_PLAIN(the_core_count_is_the_configs_not_the_machines)
{
    unsetenv("CORRAL_CORES");
    unsigned n = 0;
    CHECK_EQ(run_on(0, 1, count_cores, &n), 0);
    CHECK_EQ(n, 1u);
    CHECK_EQ(run_on(1025, 1, count_cores, &n), -EINVAL);
}

/* ---- The interleaving is the seed's ----------------------------------------------------- */

enum { LOG_MAX = 512, WORKERS_PER_CORE = 3, STEPS = 4 };

struct log {
    int n;
    unsigned short entry[LOG_MAX]; /* core << 8 | worker << 4 | step */
};

static struct log *the_log;

static void note(unsigned worker, unsigned step)
{
    if (the_log->n < LOG_MAX)
        the_log->entry[the_log->n++] = (unsigned short)(crl_core_id() << 8 | worker << 4 | step);
}

static int worker(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    for (unsigned step = 0; step < STEPS; step++) {
        note(id, step);
        crl_yield();
    }
    return 0;
}

static int spread_body(struct crl_scope *s, void *arg)
{
    (void)arg;
    for (unsigned core = 0; core < crl_core_count(); core++)
        for (uintptr_t w = 0; w < WORKERS_PER_CORE; w++)
            CHECK_EQ(crl_spawn_on(s, core, worker, (void *)w), 0);
    return 0;
}

static int spread(void *arg) { return crl_scope_run(spread_body, arg); }

static void log_of(unsigned long long seed, struct log *out, uint64_t *hash)
{
    memset(out, 0, sizeof *out);
    the_log = out;
    CHECK_EQ(run_on(4, seed, spread, NULL), 0);
    CHECK_EQ(out->n, 4 * WORKERS_PER_CORE * STEPS);
    *hash = last_hash();
}

/* Tasks on four cores: the same seed gives the same interleaving across cores and the same
 * trace; other seeds give others. */
TEST_PLAIN(the_same_seed_interleaves_the_cores_the_same)
{
    static struct log a, b, other;
    uint64_t ha, hb, ho;
    log_of(7, &a, &ha);
    log_of(7, &b, &hb);
    CHECK_EQ(memcmp(&a, &b, sizeof a), 0);
    CHECK_EQ(ha, hb);
    int differ = 0;
    for (unsigned long long seed = 8; seed < 16; seed++) {
        log_of(seed, &other, &ho);
        differ += memcmp(&a, &other, sizeof a) != 0;
        CHECK(ho != ha);
    }
    CHECK_EQ(differ, 8);
}

/* Not one core after another: the log switches cores many times. */
TEST_PLAIN(the_cores_interleave)
{
    static struct log a;
    uint64_t h;
    log_of(3, &a, &h);
    int switches = 0;
    for (int i = 1; i < a.n; i++)
        switches += (a.entry[i] >> 8) != (a.entry[i - 1] >> 8);
    CHECK(switches > 8);
}

/* ---- Time, cancellation and channels across cores --------------------------------------- */

static int sleep_on_core(void *arg)
{
    int64_t *woke = arg;
    int64_t t0 = crl_now_ns();
    int rc = crl_sleep_ns(10 * CRL_SEC_NS);
    *woke = crl_now_ns() - t0;
    return rc;
}

static int call_body(struct crl_scope *s, void *arg)
{
    crl_scope_set_deadline(s, crl_now_ns() + CRL_SEC_NS);
    CHECK_EQ(crl_call(3, sleep_on_core, arg), -ETIMEDOUT);
    return 0;
}

static int call_cancelled(void *arg)
{
    int64_t t0 = crl_now_ns();
    CHECK_EQ(crl_scope_run(call_body, arg), -ETIMEDOUT);
    int64_t took = crl_now_ns() - t0; /* the deadline, at the wheel's tick */
    CHECK(took >= CRL_SEC_NS && took < CRL_SEC_NS + CRL_MSEC_NS);
    return 0;
}

/* A call to another core, cancelled by its caller's deadline: the remote sleep is cancelled
 * at that virtual time, and the call returns then. */
TEST_PLAIN(a_call_to_another_core_is_cancelled_at_its_virtual_deadline)
{
    int64_t slept = -1;
    CHECK_EQ(run_on(4, 5, call_cancelled, &slept), 0);
    /* woken by the cancel, 1 s in, not by its own 10 s */
    CHECK(slept >= CRL_SEC_NS && slept < CRL_SEC_NS + CRL_MSEC_NS);
}

struct pipe_state {
    struct crl_xchan *ch;
    int64_t sum;
};

static int producer(void *arg)
{
    struct pipe_state *p = arg;
    for (int64_t i = 1; i <= 1000; i++)
        CHECK_EQ(crl_xchan_send(p->ch, &i), 0);
    crl_xchan_close(p->ch);
    return 0;
}

static int consumer(void *arg)
{
    struct pipe_state *p = arg;
    int64_t v, last = 0;
    int rc;
    while ((rc = crl_xchan_recv(p->ch, &v)) == 0) {
        CHECK_EQ(v, last + 1); /* FIFO from one core to another */
        last = v;
        p->sum += v;
    }
    CHECK_EQ(rc, -EPIPE);
    return 0;
}

static int channel_body(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn_on(s, 1, producer, arg), 0);
    CHECK_EQ(crl_spawn_on(s, 2, consumer, arg), 0);
    return 0;
}

static int channel_main(void *arg)
{
    struct pipe_state *p = arg;
    CHECK_EQ(crl_xchan_create(&p->ch, sizeof(int64_t), 8, 1, 2), 0);
    int rc = crl_scope_run(channel_body, p);
    crl_xchan_destroy(p->ch);
    return rc;
}

/* A cross-core channel between two other cores delivers everything, in order. */
TEST_PLAIN(a_channel_between_simulated_cores_delivers_in_order)
{
    struct pipe_state p = {0};
    CHECK_EQ(run_on(3, 11, channel_main, &p), 0);
    CHECK_EQ(p.sum, 1000 * 1001 / 2);
}

static int recv_one(void *arg)
{
    int v;
    return crl_xchan_recv(arg, &v);
}

static int recv_gives_up(void *arg)
{
    CHECK_EQ(crl_with_timeout(CRL_MSEC_NS, recv_one, arg), -ETIMEDOUT);
    return 0;
}

static int spawn_receiver(struct crl_scope *s, void *ch)
{
    return crl_spawn_on(s, 1, recv_gives_up, ch);
}

static int send_then_destroy_cancelled(struct crl_scope *s, void *ch)
{
    crl_scope_cancel(s);
    int v = 1;
    CHECK_EQ(crl_xchan_try_send(ch, &v), 0); /* a wake-up goes to core 1, whose waiter left */
    crl_xchan_destroy(ch);                   /* cancelled: must still let core 1 take it in */
    return 0;
}

static int destroy_main(void *arg)
{
    (void)arg;
    struct crl_xchan *ch;
    CHECK_EQ(crl_xchan_create(&ch, sizeof(int), 4, 0, 1), 0);
    CHECK_EQ(crl_scope_run(spawn_receiver, ch), 0);
    CHECK_EQ(crl_scope_run(send_then_destroy_cancelled, ch), 0);
    return 0;
}

/* A cancelled task destroying a channel waits for the wake-up still on its way to the other
 * core by giving up its turn, which a cancelled crl_yield does not: on the simulator's one
 * thread that was a livelock (xcore4 seed 33). */
TEST_PLAIN(a_cancelled_task_destroys_a_channel_with_a_wake_up_on_its_way)
{
    CHECK_EQ(run_on(2, 1, destroy_main, NULL), 0);
}

/* ---- What is not simulated -------------------------------------------------------------- */

struct foreign {
    struct crl_runtime *rt;
    int rc;
};

static int never(void *arg) { return (void)arg, 0; }

static void *foreign_thread(void *arg)
{
    struct foreign *f = arg;
    f->rc = crl_runtime_call(f->rt, 1, never, NULL);
    return NULL;
}

static int foreign_main(void *arg)
{
    struct foreign *f = arg;
    f->rt = crl_runtime_current();
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, foreign_thread, f), 0);
    pthread_join(t, NULL); /* returns at once: the call is refused, not queued */
    return 0;
}

/* A call from a thread that is not the runtime's would run at no seeded point: refused. */
TEST_PLAIN(a_foreign_thread_call_is_refused)
{
    struct foreign f = {0};
    CHECK_EQ(run_on(2, 1, foreign_main, &f), 0);
    CHECK_EQ(f.rc, -ENOTSUP);
}
