/* run.c - crl_run: sets up a core on the calling thread, runs the root task in the root scope
 * until every task has ended, tears the core down; and the scope-tree dump. */
#define _GNU_SOURCE
#include "core.h"

#include "../io/io.h"
#include "../io/pool.h"
#include "../smp/smp.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__thread struct crl__core *crl__cur __attribute__((tls_model("initial-exec")));

enum { DEFAULT_STACK = 64 * 1024 };

/* Executors by default: CORRAL_CORES from the environment, else one per CPU the process may
 * run on. */
static unsigned default_cores(void)
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
    if (sched_getaffinity(0, sizeof mask, &mask) != 0)
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
    if ((unsigned)out->backend > CRL_BACKEND_EPOLL)
        return refuse(in, "backend is not an enum crl_backend");
    if (out->cores == 0)
        out->cores = default_cores();
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

/* The loop context runs on the thread's own stack; sanitizers need its bounds. */
static void loop_stack_bounds(struct crl_task *loop)
{
    pthread_attr_t attr;
    void *addr;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
        /* As a task's: stack.base + CRL__STACK_GUARD is the usable bottom. */
        loop->stack.base = (char *)addr - CRL__STACK_GUARD;
        loop->stack.size = size + CRL__STACK_GUARD;
    }
    pthread_attr_destroy(&attr);
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

static int core_start(struct crl__core *c, struct crl__runtime *rt, struct crl_scope *root,
                      unsigned id)
{
    memset(c, 0, sizeof *c);
    c->wake_fd = -1;
    c->rt = rt;
    c->id = id;
    c->loop.name = "(loop)";
    c->loop.core = c;
    c->loop.state = CRL__RUNNING;
#if defined(__SANITIZE_THREAD__)
    c->loop.tsan_fiber = __tsan_get_current_fiber();
#endif
    c->cur = &c->loop;
    loop_stack_bounds(&c->loop);
    c->now_ns = crl_now_ns();
    crl__wheel_init(&c->wheel, c->now_ns);
    c->ckpt_stride = c->ckpt_left = 1;
    c->ckpt_ns = c->now_ns;
    /* the class of the spawn fast path */
    c->stacks.cls[0].size = crl__stack_region_size(rt->cfg.stack_size);
    crl_event_init(&c->fd_freed);
    crl__scope_init_root(root, c);
    c->root = root;
    int rc = crl__smp_core_init(c);
    if (!rc)
        rc = crl__stack_overflow_handler_install(c);
    return rc ? rc : crl__io_start(c, rt->cfg.backend);
}

static void core_stop(struct crl__core *c)
{
    crl__core_locals_destroy(c);
    crl__smp_core_fini(c);
    crl__io_stop(c);
    crl__stack_pool_fini(c);
    crl__stack_overflow_handler_remove(c);
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
        if (!rt->cores[i])
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
    struct crl__core core;
    struct crl_scope root;
    crl__cur = &core;
    int rc = core_start(&core, ct->rt, &root, ct->id);
    ct->rt->cores[ct->id] = rc ? NULL : &core;
    gate_wait(&ct->rt->started);
    if (all_started(ct->rt))
        crl__loop(&core);
    /* Core 0 may still be writing our wake-up fd: tear down only once it is done. */
    gate_wait(&ct->rt->stopped);
    core_stop(&core);
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
        if (rt->cores[i])
            crl__smp_notify(rt->cores[i]);
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
};

static int runtime_init(struct run_state *st, const struct crl_config *cfg)
{
    struct crl__runtime *rt = &st->rt;
    int rc = config_resolve(cfg, &rt->cfg);
    if (rc || (rc = crl__faults_check()))
        return rc; /* before any core starts: nothing to tear down */
    rt->ncores = rt->cfg.cores;
    if (rt->ncores > 1 && (rc = pick_cpus(rt->ncores, st->cpus, &st->saved_mask))) {
        if (rc == -EINVAL)
            crl__log_cfg(cfg, CRL_LOG_ERROR,
                         "corral: crl_run: bad config: cores = %u, more than the %d CPUs of "
                         "the affinity mask",
                         rt->ncores, CPU_COUNT(&st->saved_mask));
        return rc;
    }
    rt->cores = calloc(rt->ncores, sizeof *rt->cores);
    if (!rt->cores)
        return -ENOMEM;
    rc = crl__smp_init(rt);
    if (rc) {
        free(rt->cores);
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
    crl__smp_fini(&st->rt);
    free(st->rt.cores);
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
    if (rt->ncores > 1)
        pin_to(st->cpus[0]);
    unsigned started = 1;
    rc = start_secondaries(rt, st->ct, st->cpus, &started);
    struct crl__core core;
    struct crl_scope root;
    crl__cur = &core;
    int start_rc = core_start(&core, rt, &root, 0);
    rt->cores[0] = start_rc ? NULL : &core;
    gate_wait(&rt->started);
    if (!rc)
        rc = start_rc ? start_rc : all_started(rt) ? 0 : -ENOMEM;
    struct root_call call = {main, arg, 0};
    if (!rc)
        rc = crl__spawn(&root, root_task, &call, "main", 0);
    if (!rc) {
        crl__loop(&core);
        rc = root.error ? root.error : call.result;
    }
    stop_secondaries(rt, st->ct, started);
    core_stop(&core);
    crl__cur = NULL;
    crl__pool_stop();
    if (rt->cfg.cores > 1)
        sched_setaffinity(0, sizeof st->saved_mask, &st->saved_mask);
    runtime_fini(st);
    free(st);
    return rc;
}

/* ---- Scope tree dump -------------------------------------------------------------------- */

static const char *state_name(enum crl__task_state s)
{
    switch (s) {
    case CRL__RUNNABLE: return "runnable";
    case CRL__RUNNING: return "running";
    case CRL__PARKED: return "parked";
    case CRL__DONE: return "done";
    }
    return "?";
}

static void dump_scope(int fd, const struct crl_scope *s, int depth)
{
    dprintf(fd, "%*sscope %p%s%s%s live=%u\n", depth * 2, "", (const void *)s,
            s->owner ? " opened by " : " (root)", s->owner ? s->owner->name : "",
            s->cancel_reason == ETIMEDOUT ? " timed-out"
            : s->cancel_reason            ? " cancelled"
                                          : "",
            s->nlive);
    for (const struct crl__list *l = s->tasks.next; l != &s->tasks; l = l->next) {
        const struct crl_task *t = crl__container_of(l, struct crl_task, scope_link);
        dprintf(fd, "%*stask '%s' %s%s\n", depth * 2 + 2, "", t->name, state_name(t->state),
                t->state == CRL__PARKED && !t->unpark ? " (joining)" : "");
    }
    if (s->owner && s->owner->scope == s)
        dprintf(fd, "%*sbody of '%s' %s\n", depth * 2 + 2, "", s->owner->name,
                state_name(s->owner->state));
    for (const struct crl__list *l = s->kids.next; l != &s->kids; l = l->next)
        dump_scope(fd, crl__container_of(l, struct crl_scope, kid_link), depth + 1);
}

void crl_dump_tree(int fd)
{
    struct crl__core *c = crl__cur;
    if (!c) {
        dprintf(fd, "corral: no runtime on this thread\n");
        return;
    }
    dprintf(fd, "corral: core scope tree, %zu live task(s)\n", c->ntasks);
    dump_scope(fd, c->root, 1);
}

void crl_stats_get(struct crl_stats *out)
{
    struct crl__core *c = crl__cur;
    if (!c) {
        *out = (struct crl_stats){0};
        return;
    }
    *out = c->stats;
    out->tasks_live = c->ntasks;
}
