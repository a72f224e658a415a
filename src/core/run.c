/* run.c - crl_run: sets up a core on the calling thread, runs the root task in the root scope
 * until every task has ended, tears the core down; and the scope-tree dump. */
#define _GNU_SOURCE
#include "core.h"

#include "../io/io.h"
#include "../io/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

__thread struct crl__core *crl__cur __attribute__((tls_model("initial-exec")));

enum { DEFAULT_STACK = 64 * 1024 };

static int config_resolve(const struct crl_config *in, struct crl_config *out)
{
    *out = in ? *in : (struct crl_config){0};
    if (out->cores > 1)
        return -ENOTSUP; /* one executor until the multi-core runtime lands */
    out->cores = 1;
    if (out->stack_size == 0)
        out->stack_size = DEFAULT_STACK;
    if (out->stack_size < 16 * 1024 || out->stack_size > (size_t)1 << 30)
        return -EINVAL;
    size_t page = crl__page_size();
    out->stack_size = (out->stack_size + page - 1) & ~(page - 1);
    if (out->log_level == CRL_LOG_DEFAULT)
        out->log_level = CRL_LOG_INFO;
    if (out->log_level > CRL_LOG_DEBUG || (unsigned)out->backend > CRL_BACKEND_EPOLL)
        return -EINVAL;
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
        size_t page = crl__page_size();
        loop->stack.base = (char *)addr - page; /* stack.base + page is the usable bottom */
        loop->stack.size = size + page;
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

static int core_start(struct crl__core *c, struct crl__runtime *rt, struct crl_scope *root)
{
    memset(c, 0, sizeof *c);
    c->wake_fd = -1;
    c->rt = rt;
    c->loop.name = "(loop)";
    c->loop.core = c;
    c->loop.state = CRL__RUNNING;
    c->cur = &c->loop;
    loop_stack_bounds(&c->loop);
    c->now_ns = crl_now_ns();
    crl__wheel_init(&c->wheel, c->now_ns);
    c->stacks.cls[0].size = rt->cfg.stack_size; /* the class of the spawn fast path */
    crl_event_init(&c->fd_freed);
    crl__scope_init_root(root, c);
    c->root = root;
    int rc = crl__stack_overflow_handler_install(c);
    return rc ? rc : crl__io_start(c, rt->cfg.backend);
}

static void core_stop(struct crl__core *c)
{
    crl__io_stop(c);
    crl__stack_pool_fini(c);
    crl__stack_overflow_handler_remove(c);
}

int crl_run(const struct crl_config *cfg, crl_task_fn *main, void *arg)
{
    if (crl__cur)
        return -EBUSY;
    struct crl__runtime rt;
    int rc = config_resolve(cfg, &rt.cfg);
    if (rc)
        return rc;
    struct crl__core core;
    struct crl_scope root;
    crl__cur = &core;
    rc = core_start(&core, &rt, &root);
    struct root_call call = {main, arg, 0};
    if (!rc)
        rc = crl__spawn(&root, root_task, &call, "main", 0);
    if (!rc) {
        crl__loop(&core);
        rc = root.error ? root.error : call.result;
    }
    core_stop(&core);
    crl__cur = NULL;
    crl__pool_stop();
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
