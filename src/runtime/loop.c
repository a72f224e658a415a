/* loop.c - each core's loop: the one place that steps every layer in turn. */
#include "runtime.h"

#include <stdatomic.h>

static int64_t earlier(int64_t a, int64_t b) { return a < 0 ? b : b < 0 || a < b ? a : b; }

/* The I/O of a core, polled without waiting while the core spins for messages: true if that
 * made a task runnable (smp's poll_rest). */
static bool poll_io(struct crl__core *c)
{
    crl__io_poll(c);
    return c->runq_head != NULL;
}

/* Busy and idle time: the clock is read only around an idle wait, which costs a syscall or
 * a spin anyway. The time up to idle_start was busy, from it to now idle. */
static void account_idle(struct crl__executor *ex, int64_t idle_start)
{
    struct crl__core *c = &ex->core;
    int64_t now = crl_now_ns();
    CRL__COUNT_ADD(&c->stats, busy_ns, idle_start - ex->busy_since_ns);
    CRL__COUNT_ADD(&c->stats, idle_ns, now - idle_start);
    ex->busy_since_ns = now;
    c->now_ns = now;
}

/* The run queue's depth high-water, sampled as a loop turn starts (the queue is walked then:
 * a push or a pick costs nothing more). Bounded: a deeper queue counts as this deep. */
static void sample_runq(struct crl__core *c)
{
#ifndef CRL_NO_DIAGNOSTICS
    uint64_t n = 0;
    for (const struct crl_task *t = c->runq_head; t && n < 65536; t = t->run_next)
        n++;
    CRL__COUNT_MAX(&c->stats, runq_high, n);
#else
    (void)c;
#endif
}

static bool keep_running(struct crl__executor *ex)
{
    struct crl__core *c = &ex->core;
    if (c->root->nlive)
        return true;
    return c->id != 0 && !atomic_load_explicit(&c->rt->stopping, memory_order_acquire);
}

/* Settle the stack cache once the core has run no task for CRL__SETTLE_NS; else when it is
 * due (-1: nothing to settle). Not merely on an idle wait: a loaded core waits often, and a
 * settle there makes the stacks fault their pages back at their next use (with it, hello c800's
 * p99 was 20..50 ms in half the rounds, 7..9 ms without: bench/RESULTS.md). */
static int64_t settle_if_quiet(struct crl__executor *ex)
{
    struct crl__core *c = &ex->core;
    if (!crl__stack_settle_pending(c))
        return -1;
    int64_t due = ex->worked_ns + CRL__SETTLE_NS;
    if (c->now_ns < due)
        return due;
    crl__stack_settle(c);
    return -1;
}

/* Nothing runnable: with several cores, poll for messages a while (a wake-up costs more
 * than the poll), then sleep in the backend until the next timer, stack trim or settle. With
 * nothing that could ever wake a task (core 0 only: the others wait for calls from it), a deadlock.
 */
static void idle_wait(struct crl__executor *ex)
{
    struct crl__core *c = &ex->core;
    int64_t next = crl__wheel_next_ns(&c->wheel);
    if (next < 0 && ex->io.pending == 0 && ex->io.offload_pending == 0 &&
        ex->smp.remote_pending == 0 && c->id == 0)
        crl__deadlock(c);
    crl__stack_trim_if_due(c);
    int64_t deadline = earlier(next, crl__stack_next_trim_ns(c)), poll_ns;
    deadline = earlier(deadline, settle_if_quiet(ex));
    int64_t start = crl_now_ns();
    if (crl__smp_idle_poll(c, &poll_ns)) {
        int64_t until = crl__deadline_after(start, poll_ns);
        if (deadline >= 0 && deadline < until)
            until = deadline;
        if (crl__smp_spin(c, until)) {
            account_idle(ex, start);
            return; /* the loop takes it in */
        }
    }
    if (crl__smp_sleep_begin(c)) {
        CRL__COUNT(&c->stats, sleeps);
        ex->io.ops->wait(c, deadline);
    }
    crl__smp_sleep_end(c);
    account_idle(ex, start);
}

bool crl__loop_turn(struct crl__executor *ex)
{
    struct crl__core *c = &ex->core;
    if (!keep_running(ex))
        return false;
    CRL__COUNT(&c->stats, loop_turns);
    sample_runq(c);
    crl__dump_poll(ex, &ex->dump);
    if (crl__run_next(c, ex->io.pending != 0))
        ex->worked_ns = c->now_ns;
    if (c->runq_head)
        crl__io_poll(c);
    else if (keep_running(ex))
        idle_wait(ex);
    crl__smp_poll(c);
    /* The clock once a turn, timers armed or not: the tasks' spawn and switch-in times (for
     * the dump) are this cached value, at no clock read of their own. */
    c->now_ns = crl_now_ns();
    if (c->wheel.count)
        crl__wheel_advance(&c->wheel, c->now_ns);
    return true;
}

void crl__loop(struct crl__executor *ex)
{
    ex->busy_since_ns = ex->worked_ns = crl_now_ns();
    atomic_store_explicit(&ex->dump.loop_state, CRL__DUMP_LOOPING, memory_order_release);
    while (crl__loop_turn(ex))
        ;
    atomic_store_explicit(&ex->dump.loop_state, CRL__DUMP_LEFT_LOOP, memory_order_release);
}

/* ---- A simulated runtime: every core's loop on this one thread ---------------------------- */

/* What a simulated core with nothing to run waits for: its next timer, stack trim or settle,
 * or the ops its fault wrapper holds back; -1 for nothing. */
static int64_t sim_core_deadline(struct crl__executor *ex)
{
    struct crl__core *c = &ex->core;
    int64_t d = earlier(crl__wheel_next_ns(&c->wheel), crl__stack_next_trim_ns(c));
    if (crl__stack_settle_pending(c))
        d = earlier(d, ex->worked_ns + CRL__SETTLE_NS);
    return earlier(d, crl__faults_next_ns(c));
}

/* A simulated core's turn: crl__loop_turn's steps, but it never waits (the driver moves the
 * clock once no core can run), and it takes the other cores' messages at turns drawn from
 * the seed, so that a message may wait for a while. */
static void sim_turn(struct crl__executor *ex)
{
    struct crl__core *c = &ex->core;
    CRL__COUNT(&c->stats, loop_turns);
    sample_runq(c);
    crl__dump_poll(ex, &ex->dump);
    if (crl__run_next(c, ex->io.pending != 0))
        ex->worked_ns = c->now_ns;
    crl__io_poll(c);
    if (!c->runq_head) {
        crl__stack_trim_if_due(c);
        settle_if_quiet(ex);
    }
    if (c->smp->group->ncores == 1 || crl__sim_next(&c->sim->rng) % 2)
        crl__smp_poll(c);
    c->now_ns = crl_now_ns();
    if (c->wheel.count)
        crl__wheel_advance(&c->wheel, c->now_ns);
}

/* No core can run: give each core's backend (and fault wrapper) a wait that does not block,
 * and if still none can, core 0's wait, which moves the world's clock to the next due
 * operation or to deadline (the earliest any core waits for). */
static void sim_idle(struct crl__runtime *rt, int64_t deadline)
{
    bool runnable = false;
    for (unsigned i = 0; i < rt->ncores; i++) {
        struct crl__core *c = rt->smp.cores[i];
        crl__cur = c;
        crl__io_poll(c);
    }
    for (unsigned i = 0; i < rt->ncores && !runnable; i++)
        runnable = rt->smp.cores[i]->runq_head != NULL;
    struct crl__core *c0 = rt->smp.cores[0];
    crl__cur = c0;
    if (!runnable)
        c0->io->ops->wait(c0, deadline);
}

/* Whether simulated core ex has something to do at `now`. */
static bool sim_core_ready(struct crl__executor *ex, int64_t now, int64_t *deadline)
{
    struct crl__core *c = &ex->core;
    if (c->runq_head || crl__smp_pending(c))
        return true;
    int64_t d = sim_core_deadline(ex);
    if (d >= 0 && d <= now)
        return true;
    *deadline = earlier(*deadline, d);
    return false;
}

void crl__loop_sim(struct crl__runtime *rt)
{
    unsigned n = rt->ncores, ready[n];
    struct crl__sim_sched *sched = rt->smp.cores[0]->sim;
    for (unsigned i = 0; i < n; i++) {
        struct crl__executor *ex = crl__executor_of(rt->smp.cores[i]);
        ex->busy_since_ns = ex->worked_ns = crl_now_ns();
        atomic_store_explicit(&ex->dump.loop_state, CRL__DUMP_LOOPING, memory_order_release);
    }
    for (;;) {
        if (!rt->smp.cores[0]->root->nlive)
            atomic_store_explicit(&rt->stopping, true, memory_order_release);
        unsigned nready = 0, alive = 0;
        int64_t now = crl_now_ns(), deadline = -1;
        for (unsigned i = 0; i < n; i++) {
            struct crl__executor *ex = crl__executor_of(rt->smp.cores[i]);
            if (!keep_running(ex))
                continue;
            alive++;
            if (sim_core_ready(ex, now, &deadline))
                ready[nready++] = i;
        }
        if (!alive)
            break;
        if (!nready) {
            sim_idle(rt, deadline);
            continue;
        }
        unsigned k = ready[0];
        if (n > 1) {
            k = ready[crl__sim_next(&sched->rng) % nready];
            crl__sim_record(sched, CRL__SIM_CORE, k);
        }
        crl__cur = rt->smp.cores[k];
        sim_turn(crl__executor_of(crl__cur));
    }
    crl__cur = rt->smp.cores[0];
    for (unsigned i = 0; i < n; i++)
        atomic_store_explicit(&crl__executor_of(rt->smp.cores[i])->dump.loop_state,
                              CRL__DUMP_LEFT_LOOP, memory_order_release);
}

void crl__executor_wire(struct crl__executor *ex, struct crl__runtime *rt, unsigned id)
{
    struct crl__core *c = &ex->core;
    c->id = id;
    c->cfg = &rt->cfg;
    c->rt = rt;
    c->io = &ex->io;
    c->smp = &ex->smp;
    c->http = &ex->http;
    ex->io.wake_fd = -1;
    ex->smp.group = &rt->smp;
    ex->smp.wake = crl__io_wake;
    ex->smp.poll_rest = poll_io;
}
