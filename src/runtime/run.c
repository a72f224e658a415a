/* run.c - crl_run: sets up a core on the calling thread, runs the root task in the root scope
 * until every task has ended, tears the core down; and the scope-tree dump. */
#define _GNU_SOURCE
#include "runtime.h"

#include "../io/pool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DEFAULT_STACK = 64 * 1024, SIM_MAX_CORES = 1024 };

/* Executors by default: CORRAL_CORES from the environment, else one per CPU the process may
 * run on (simulated: one, whatever the machine). */
static unsigned default_cores(bool sim)
{
    const char *env = getenv("CORRAL_CORES");
    if (env && *env) {
        char *end;
        unsigned long n = strtoul(env, &end, 10);
        if (*end == '\0' && n > 0 && n <= CPU_SETSIZE)
            return (unsigned)n;
        crl_log(CRL_LOG_WARN, "corral: CORRAL_CORES=%s is not a core count; ignored", env);
    }
    cpu_set_t mask;
    if (sim || sched_getaffinity(0, sizeof mask, &mask) != 0)
        return 1;
    int n = CPU_COUNT(&mask);
    return n > 0 ? (unsigned)n : 1;
}

/* A config crl_run refuses: say why, through the config's own sink. */
static int refuse(const struct crl_config *in, const char *why)
{
    crl__log_cfg(in, CRL_LOG_ERROR, "corral: crl_run: bad config: %s", why);
    return -EINVAL;
}

static int config_resolve(const struct crl_config *in, struct crl_config *out)
{
    *out = in ? *in : (struct crl_config){0};
    if (out->log_level > CRL_LOG_DEBUG)
        return refuse(in, "log_level is not an enum crl_log_level");
    if ((unsigned)out->backend > CRL_BACKEND_SIM)
        return refuse(in, "backend is not an enum crl_backend");
    out->backend = crl__io_backend_choice(out->backend);
    bool sim = out->backend == CRL_BACKEND_SIM;
    if (out->cores == 0)
        out->cores = default_cores(sim);
    if (sim && out->cores > SIM_MAX_CORES)
        return refuse(in, "the sim backend runs 1024 cores at the most");
    if (sim)
        out->stall_ns = -1; /* the watchdog is a thread on the real clock */
    if (out->stack_trim_ns == 0)
        out->stack_trim_ns = 10 * CRL_SEC_NS;
    if (out->idle_poll_ns == 0)
        out->idle_poll_ns = 20 * CRL_USEC_NS;
    if (out->reply_poll_ns == 0)
        out->reply_poll_ns = 100 * CRL_USEC_NS;
    if (out->reply_poll_ns < out->idle_poll_ns)
        out->reply_poll_ns = out->idle_poll_ns;
    if (out->stack_size == 0)
        out->stack_size = DEFAULT_STACK;
    if (out->stack_size < 16 * 1024 || out->stack_size > (size_t)1 << 30)
        return refuse(in, "stack_size is outside 16 KiB .. 1 GiB");
    size_t page = crl__page_size();
    out->stack_size = (out->stack_size + page - 1) & ~(page - 1);
    if (out->log_level == CRL_LOG_DEFAULT)
        out->log_level = CRL_LOG_INFO;
    return 0;
}

struct root_call {
    crl_task_fn *main;
    void *arg;
    int result;
};

static int root_task(void *p)
{
    struct root_call *rc = p;
    rc->result = rc->main(rc->arg);
    return rc->result;
}

static int core_start(struct crl__executor *ex, struct crl__runtime *rt, struct crl_scope *root,
                      unsigned id)
{
    memset(ex, 0, sizeof *ex);
    crl__executor_wire(ex, rt, id);
    struct crl__core *c = &ex->core;
    if (rt->sim) {
        ex->io.sim = rt->sim;
        c->sim = crl__sim_sched(rt->sim);
    }
    if (rt->watchdog)
        crl__stall_core_start(ex);
    c->trace = rt->trace_rings ? rt->trace_rings[id] : NULL;
    int rc = crl__core_init(c, root);
    if (!rc)
        rc = crl__smp_core_init(c);
    return rc ? rc : crl__io_start(c, rt->cfg.backend);
}

static void core_stop(struct crl__executor *ex)
{
    struct crl__core *c = &ex->core;
    crl__core_locals_destroy(c);
    crl__dump_core_fini(&ex->dump);
    crl__smp_core_fini(c);
    crl__io_stop(c);
    crl__core_fini(c);
}

/* ---- Several cores --------------------------------------------------------------------- */

/* Tests set this to k > 0 to make creating executor thread k fail. */
unsigned crl__test_fail_thread;

static void gate_init(struct crl__gate *g, unsigned expected)
{
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    g->arrived = 0;
    g->expected = expected;
}

static void gate_fini(struct crl__gate *g)
{
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
}

static void gate_wait(struct crl__gate *g)
{
    pthread_mutex_lock(&g->lock);
    if (++g->arrived >= g->expected)
        pthread_cond_broadcast(&g->cond);
    while (g->arrived < g->expected)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

/* Only n threads will come (some were never created). */
static void gate_expect(struct crl__gate *g, unsigned n)
{
    pthread_mutex_lock(&g->lock);
    g->expected = n;
    if (g->arrived >= n)
        pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

/* The first n CPUs of the calling thread's affinity mask, or -EINVAL if it has fewer. */
static int pick_cpus(unsigned n, int *cpus, cpu_set_t *mask)
{
    if (sched_getaffinity(0, sizeof *mask, mask) != 0)
        return -errno;
    unsigned found = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && found < n; cpu++)
        if (CPU_ISSET(cpu, mask))
            cpus[found++] = cpu;
    return found == n ? 0 : -EINVAL;
}

static void pin_to(int cpu)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    sched_setaffinity(0, sizeof one, &one);
}

struct core_thread {
    struct crl__runtime *rt;
    pthread_t thread;
    unsigned id;
    int cpu;
};

static bool all_started(struct crl__runtime *rt)
{
    for (unsigned i = 0; i < rt->ncores; i++)
        if (!rt->smp.cores[i])
            return false;
    return true;
}

/* Cores 1..n-1: each serves calls from the others until core 0 is done. Process signals are
 * left to core 0's thread (and the signalfds); faults stay deliverable. */
static void *secondary_main(void *arg)
{
    struct core_thread *ct = arg;
    sigset_t set;
    sigfillset(&set);
    sigdelset(&set, SIGSEGV);
    sigdelset(&set, SIGBUS);
    sigdelset(&set, SIGFPE);
    sigdelset(&set, SIGILL);
    sigdelset(&set, SIGABRT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pin_to(ct->cpu);
    struct crl__executor ex;
    struct crl_scope root;
    crl__cur = &ex.core;
    int rc = core_start(&ex, ct->rt, &root, ct->id);
    ct->rt->smp.cores[ct->id] = rc ? NULL : &ex.core;
    gate_wait(&ct->rt->started);
    if (all_started(ct->rt))
        crl__loop(&ex);
    /* Core 0 may still be writing our wake-up fd: tear down only once it is done. */
    gate_wait(&ct->rt->stopped);
    core_stop(&ex);
    crl__cur = NULL;
    return NULL;
}

static int start_secondaries(struct crl__runtime *rt, struct core_thread *ct, const int *cpus,
                             unsigned *started)
{
    for (unsigned i = 1; i < rt->ncores; i++) {
        ct[i] = (struct core_thread){.rt = rt, .id = i, .cpu = cpus[i]};
        int rc = crl__test_fail_thread == i
                     ? EAGAIN
                     : pthread_create(&ct[i].thread, NULL, secondary_main, &ct[i]);
        if (rc) { /* the i threads up (core 0's included) meet at the gates without the rest */
            gate_expect(&rt->started, i);
            gate_expect(&rt->stopped, i);
            *started = i;
            return -rc;
        }
    }
    *started = rt->ncores;
    return 0;
}

static void stop_secondaries(struct crl__runtime *rt, struct core_thread *ct, unsigned started)
{
    atomic_store(&rt->stopping, true);
    for (unsigned i = 1; i < started; i++)
        if (rt->smp.cores[i])
            crl__smp_notify(rt->smp.cores[i]);
    if (started > 1)
        gate_wait(&rt->stopped);
    for (unsigned i = 1; i < started; i++)
        pthread_join(ct[i].thread, NULL);
}

struct run_state {
    struct crl__runtime rt;
    struct core_thread ct[CPU_SETSIZE];
    int cpus[CPU_SETSIZE];
    cpu_set_t saved_mask;
    sigset_t saved_sigmask; /* core 0's thread's, restored after (the stall signal let in) */
};

static int runtime_init(struct run_state *st, const struct crl_config *cfg)
{
    struct crl__runtime *rt = &st->rt;
    int rc = config_resolve(cfg, &rt->cfg);
    if (rc || (rc = crl__faults_check()))
        return rc; /* before any core starts: nothing to tear down */
    rt->ncores = rt->cfg.cores;
    bool sim = rt->cfg.backend == CRL_BACKEND_SIM; /* its cores are records, not threads */
    if (!sim && rt->ncores > 1 && (rc = pick_cpus(rt->ncores, st->cpus, &st->saved_mask))) {
        if (rc == -EINVAL)
            crl__log_cfg(cfg, CRL_LOG_ERROR,
                         "corral: crl_run: bad config: cores = %u, more than the %d CPUs of "
                         "the affinity mask",
                         rt->ncores, CPU_COUNT(&st->saved_mask));
        return rc;
    }
    if (sim && (rc = crl__sim_begin(&rt->sim)))
        return rc; /* before the cores read a clock: theirs is the world's */
    rc = crl__smp_group_init(&rt->smp, rt->ncores);
    if (rc) {
        crl__sim_end(rt->sim);
        return rc;
    }
    if ((rc = crl__stall_init(rt)) || (rc = crl__tracing_init(rt))) {
        crl__stall_fini(rt);
        crl__smp_group_fini(&rt->smp);
        crl__sim_end(rt->sim);
        return rc;
    }
    atomic_init(&rt->stopping, false);
    gate_init(&rt->started, rt->ncores);
    gate_init(&rt->stopped, rt->ncores);
    return 0;
}

static void runtime_fini(struct run_state *st)
{
    gate_fini(&st->rt.started);
    gate_fini(&st->rt.stopped);
    crl__tracing_fini(&st->rt);
    crl__stall_fini(&st->rt);
    crl__smp_group_fini(&st->rt.smp);
    crl__sim_end(st->rt.sim);
}

/* Real cores: core 0 on the calling thread, the others on threads of their own, each pinned
 * to a CPU. */
static int run_threads(struct run_state *st, struct root_call *call)
{
    struct crl__runtime *rt = &st->rt;
    if (rt->ncores > 1)
        pin_to(st->cpus[0]);
    unsigned started = 1;
    int rc = start_secondaries(rt, st->ct, st->cpus, &started);
    struct crl__executor ex;
    struct crl_scope root;
    crl__cur = &ex.core;
    pthread_sigmask(SIG_SETMASK, NULL, &st->saved_sigmask);
    int start_rc = core_start(&ex, rt, &root, 0);
    rt->smp.cores[0] = start_rc ? NULL : &ex.core;
    gate_wait(&rt->started);
    if (!rc)
        rc = start_rc ? start_rc : all_started(rt) ? 0 : -ENOMEM;
    if (!rc)
        rc = crl__spawn(&root, root_task, call, "main", 0);
    if (!rc) {
        int wd = crl__stall_start(rt);
        if (wd)
            crl__logf(CRL_LOG_WARN, "corral: no stall detector: %s", strerror(-wd));
        crl__dump_register(rt);
        crl__loop(&ex);
        crl__dump_unregister(rt); /* waits for a dump under way, which may read every core */
        crl__stall_stop(rt);
        rc = root.error ? root.error : call->result;
    }
    stop_secondaries(rt, st->ct, started);
    core_stop(&ex);
    crl__cur = NULL;
    pthread_sigmask(SIG_SETMASK, &st->saved_sigmask, NULL);
    if (rt->ncores > 1)
        sched_setaffinity(0, sizeof st->saved_mask, &st->saved_mask);
    return rc;
}

/* Simulated cores: every one a record on the calling thread, with no thread, gate, CPU pin
 * or wake-up write; their loops take turns drawn from the seed (crl__loop_sim). So a
 * simulated runtime of N cores runs the same on any machine. */
static int run_simulated(struct crl__runtime *rt, struct root_call *call)
{
    unsigned n = rt->ncores, tried = 0;
    struct crl__executor *ex = calloc(n, sizeof *ex);
    struct crl_scope *roots = calloc(n, sizeof *roots);
    int rc = ex && roots ? 0 : -ENOMEM;
    while (!rc && tried < n) {
        unsigned i = tried++;
        crl__cur = &ex[i].core;
        rc = core_start(&ex[i], rt, &roots[i], i);
        rt->smp.cores[i] = rc ? NULL : &ex[i].core;
    }
    crl__cur = ex ? &ex[0].core : NULL;
    if (!rc)
        rc = crl__spawn(&roots[0], root_task, call, "main", 0);
    if (!rc) {
        crl__dump_register(rt);
        crl__loop_sim(rt);
        crl__dump_unregister(rt);
        rc = roots[0].error ? roots[0].error : call->result;
    }
    while (tried > 0) { /* the reverse of their start: core 0 last */
        unsigned i = --tried;
        crl__cur = &ex[i].core;
        core_stop(&ex[i]);
    }
    crl__cur = NULL;
    free(roots);
    free(ex);
    return rc;
}

int crl_run(const struct crl_config *cfg, crl_task_fn *main, void *arg)
{
    if (crl__cur)
        return -EBUSY;
    struct run_state *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    struct crl__runtime *rt = &st->rt;
    int rc = runtime_init(st, cfg);
    if (rc) {
        free(st);
        return rc;
    }
    struct root_call call = {main, arg, 0};
    rc = rt->sim ? run_simulated(rt, &call) : run_threads(st, &call);
    crl__tracing_to_file(rt);
    crl__pool_stop();
    runtime_fini(st);
    free(st);
    return rc;
}
