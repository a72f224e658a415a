/* call.c - running a function on another core and awaiting its result (like Seastar's
 * submit_to). A call record lives in the caller's frame; the function, its argument and the
 * record's address travel to the target core in one message of the SPSC ring of that ordered
 * pair, and the result comes back with the address in the reverse ring. The target runs the
 * function as a task in a scope of its own, keeping its bookkeeping in a record of its own:
 * the caller's record never leaves the caller's cache, except when cancelling.
 *
 * Cancellation crosses cores without a message: the caller sets the record's atomic cancel
 * flag, bumps the target's cancel_gen and wakes it; the target, seeing a new cancel_gen,
 * looks at the flags of the calls it runs and cancels the remote scopes. The record stays
 * alive because the caller waits for the reply in any case, and the target never touches the
 * record after pushing the reply, so neither side can reach a dead frame.
 *
 * Credits: a core holds at most CRL__RING_CAPACITY / 2 calls in flight to one target, a
 * credit taken when the request is sent and given back when its reply is taken in. */
#define _GNU_SOURCE
#include "smp.h"
#include "ring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The caller's record, in its frame. */
struct crl__call {
    int result;
    struct crl__core *target_core;
    struct crl_task *caller;
    _Atomic bool cancel; /* set by the caller, read by the target */
    bool done, waiting;
};

/* The target's record of a call running there. */
struct remote {
    struct crl__list link;  /* in remote_calls of the target core */
    struct crl__call *call; /* the caller's record: only its cancel flag is read here */
    crl_task_fn *fn;
    void *arg;
    unsigned from;           /* the caller's core */
    struct crl_scope *scope; /* the remote scope, once the task started */
    bool cancelled;          /* the caller's cancel flag was seen */
    int result;
};

static struct crl__ring *ring(struct crl__smp_group *g, unsigned from, unsigned to)
{
    return &g->rings[from * g->ncores + to];
}

int crl__smp_group_init(struct crl__smp_group *rt, unsigned ncores)
{
    rt->ncores = ncores;
    rt->cores = calloc(ncores, sizeof *rt->cores);
    if (!rt->cores)
        return -ENOMEM;
    size_t n = (size_t)rt->ncores * rt->ncores;
    rt->rings = calloc(n, sizeof *rt->rings);
    if (!rt->rings)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int rc = crl__ring_init(&rt->rings[i], CRL__RING_CAPACITY);
        if (rc) {
            rt->ncores = (unsigned)(i / rt->ncores); /* free what was made */
            crl__smp_group_fini(rt);
            return rc;
        }
    }
    return 0;
}

void crl__smp_group_fini(struct crl__smp_group *rt)
{
    free(rt->cores);
    rt->cores = NULL;
    if (!rt->rings)
        return;
    for (size_t i = 0; i < (size_t)rt->ncores * rt->ncores; i++)
        crl__ring_fini(&rt->rings[i]);
    free(rt->rings);
    rt->rings = NULL;
}

int crl__smp_core_init(struct crl__core *c)
{
    crl__list_init(&c->smp->remote_calls);
    atomic_init(&c->smp->notes, NULL);
    atomic_init(&c->smp->cancel_gen, 0);
    c->smp->cancel_seen = 0;
    /* A task computing between checkpoints keeps the loop from polling: its checkpoints take
     * in what other cores sent meanwhile, a cancellation of the call it runs among them. */
    c->checkpoint_hook = crl__smp_poll;
    pthread_mutex_init(&c->smp->foreign_lock, NULL);
    c->smp->foreign = NULL;
    c->smp->foreign_closed = false;
    atomic_init(&c->smp->foreign_pending, false);
    crl_event_init(&c->smp->credit_freed);
    c->smp->credits = malloc(c->smp->group->ncores * sizeof *c->smp->credits);
    if (!c->smp->credits)
        return -ENOMEM;
    for (unsigned i = 0; i < c->smp->group->ncores; i++)
        c->smp->credits[i] = CRL__RING_CAPACITY / 2;
    return 0;
}

static void fail_foreign(struct crl__core *c);

void crl__smp_core_fini(struct crl__core *c)
{
    fail_foreign(c);
    pthread_mutex_destroy(&c->smp->foreign_lock);
    free(c->smp->credits);
    c->smp->credits = NULL;
}

void crl__smp_notify(struct crl__core *c)
{
    struct crl__core *me = crl__cur; /* NULL on a foreign thread: counted nowhere */
    if (me)
        CRL__COUNT(&me->stats, wakeups_sent);
    c->smp->wake(c);
}

/* The sender published (a ring push, a cancel flag), then looks at `sleeping`; the sleeper
 * sets `sleeping`, then looks at its rings. With a full fence on both sides at least one of
 * them sees the other's write: no wake-up is lost, and none is sent to a core that is up. */
void crl__smp_kick(struct crl__core *c)
{
    crl__full_fence();
    if (atomic_load_explicit(&c->smp->sleeping, memory_order_relaxed))
        crl__smp_notify(c);
}

bool crl__smp_pending(struct crl__core *c)
{
    struct crl__smp_group *rt = c->smp->group;
    if (atomic_load_explicit(&c->smp->foreign_pending, memory_order_relaxed) ||
        atomic_load_explicit(&c->smp->notes, memory_order_relaxed))
        return true;
    for (unsigned from = 0; from < rt->ncores; from++)
        if (from != c->id && !crl__ring_empty(ring(rt, from, c->id)))
            return true;
    /* a call running here was cancelled */
    return atomic_load_explicit(&c->smp->cancel_gen, memory_order_relaxed) != c->smp->cancel_seen;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* Spin until a message comes (true), a task became runnable through the rest of the core
 * (its I/O, which must not wait meanwhile: poll_rest) (true), or the clock passes until_ns
 * (false). The clock and the I/O poll cost more than a look at the rings, so they come once
 * every 16 looks. */
bool crl__smp_spin(struct crl__core *c, int64_t until_ns)
{
    do {
        if (c->smp->poll_rest(c))
            return true;
        for (int i = 0; i < 16; i++) {
            if (crl__smp_pending(c))
                return true;
            cpu_relax();
        }
    } while (crl_now_ns() < until_ns);
    return false;
}

bool crl__smp_idle_poll(struct crl__core *c, int64_t *poll_ns)
{
    bool polled = c->smp->polled_enough;
    c->smp->polled_enough = false;
    /* A core waiting for replies polls longer: the reply comes a wake-up sooner awake. */
    *poll_ns = c->smp->remote_pending ? c->cfg->reply_poll_ns : c->cfg->idle_poll_ns;
    return c->smp->group->ncores > 1 && *poll_ns > 0 && !polled;
}

bool crl__smp_sleep_begin(struct crl__core *c)
{
    atomic_store_explicit(&c->smp->sleeping, true, memory_order_relaxed);
    crl__full_fence();
    return c->smp->group->ncores == 1 || !crl__smp_pending(c);
}

void crl__smp_sleep_end(struct crl__core *c)
{
    atomic_store_explicit(&c->smp->sleeping, false, memory_order_relaxed);
}

/* ---- The target's side ------------------------------------------------------------------ */

static void reply(struct crl__core *c, struct remote *r, int result)
{
    struct crl__ring_msg m = {.ptr = r->call, .value = result}; /* p1 = NULL: a reply */
    /* The caller's credit guarantees room; after the push the record is the caller's. */
    while (!crl__ring_push(ring(c->smp->group, c->id, r->from), &m))
        crl__yield_held();
    crl__smp_kick(c->smp->group->cores[r->from]);
}

static int remote_body(struct crl_scope *s, void *arg)
{
    struct remote *r = arg;
    r->scope = s;
    if (r->cancelled) /* cancelled before it started */
        crl_scope_cancel(s);
    r->result = r->fn(r->arg);
    return r->result;
}

static int remote_task(void *arg)
{
    struct remote *r = arg;
    int rc = crl_scope_run(remote_body, r);
    if (rc < 0 && r->result >= 0)
        r->result = rc; /* a child of the remote scope failed */
    crl__list_del(&r->link);
    reply(crl__core(), r, r->result);
    free(r);
    return 0; /* the result travels in the reply, not into this core's root scope */
}

static void take_request(struct crl__core *c, const struct crl__ring_msg *m, unsigned from)
{
    CRL__COUNT(&c->stats, calls_received);
    CRL__TRACE_EV(c, CRL__TRACE_XCORE_RECV, from, 0);
    struct remote *r = malloc(sizeof *r);
    struct remote failed = {.call = m->ptr, .from = from};
    if (!r) {
        reply(c, &failed, -ENOMEM);
        return;
    }
    *r = (struct remote){.call = m->ptr, .fn = (crl_task_fn *)m->p1, .arg = m->p2, .from = from};
    crl__list_add_tail(&c->smp->remote_calls, &r->link);
    if (crl_spawn_named(c->root, remote_task, r, "remote call") != 0) {
        crl__list_del(&r->link);
        free(r);
        reply(c, &failed, -ENOMEM);
    }
}

/* ---- Calls from foreign threads --------------------------------------------------------- */

/* A foreign thread's call: the thread blocks on cond until done (the cold path: a mutex, a
 * condition variable and an eventfd write per call). */
struct crl__foreign {
    struct crl__foreign *next;
    crl_task_fn *fn;
    void *arg;
    int result;
    bool done;
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

static void finish_foreign(struct crl__foreign *f, int result)
{
    pthread_mutex_lock(&f->lock);
    f->result = result;
    f->done = true;
    pthread_cond_signal(&f->cond); /* after the unlock below, f belongs to its thread */
    pthread_mutex_unlock(&f->lock);
}

static int foreign_task(void *arg)
{
    struct crl__foreign *f = arg;
    finish_foreign(f, f->fn(f->arg));
    return 0;
}

static void take_foreign(struct crl__core *c)
{
    pthread_mutex_lock(&c->smp->foreign_lock);
    struct crl__foreign *f = c->smp->foreign;
    c->smp->foreign = NULL;
    pthread_mutex_unlock(&c->smp->foreign_lock);
    while (f) {
        struct crl__foreign *next = f->next;
        if (crl_spawn_named(c->root, foreign_task, f, "foreign call") != 0)
            finish_foreign(f, -ENOMEM);
        f = next;
    }
}

/* The core stops: calls that arrived too late fail instead of waiting forever. */
static void fail_foreign(struct crl__core *c)
{
    pthread_mutex_lock(&c->smp->foreign_lock);
    struct crl__foreign *f = c->smp->foreign;
    c->smp->foreign = NULL;
    c->smp->foreign_closed = true;
    pthread_mutex_unlock(&c->smp->foreign_lock);
    while (f) {
        struct crl__foreign *next = f->next;
        finish_foreign(f, -ESHUTDOWN);
        f = next;
    }
}

struct crl_runtime *crl_runtime_current(void)
{
    struct crl__core *c = crl__core();
    return c ? (struct crl_runtime *)c->smp->group : NULL;
}

int crl_runtime_call(struct crl_runtime *handle, unsigned core, crl_task_fn *fn, void *arg)
{
    struct crl__smp_group *rt = (struct crl__smp_group *)handle;
    if (crl__core())
        return -EBUSY;
    if (!rt || core >= rt->ncores)
        return -EINVAL;
    struct crl__core *c = rt->cores[core];
    if (c->sim)
        return -ENOTSUP; /* a simulated runtime's thread runs nothing it does not draw */
    struct crl__foreign f = {.fn = fn, .arg = arg};
    pthread_mutex_init(&f.lock, NULL);
    pthread_cond_init(&f.cond, NULL);
    pthread_mutex_lock(&c->smp->foreign_lock);
    bool closed = c->smp->foreign_closed;
    if (!closed) {
        f.next = c->smp->foreign;
        c->smp->foreign = &f;
    }
    pthread_mutex_unlock(&c->smp->foreign_lock);
    if (!closed) {
        atomic_store_explicit(&c->smp->foreign_pending, true, memory_order_relaxed);
        crl__smp_notify(c); /* always: this is not an executor that could know c is awake */
        pthread_mutex_lock(&f.lock);
        while (!f.done)
            pthread_cond_wait(&f.cond, &f.lock);
        pthread_mutex_unlock(&f.lock);
    }
    pthread_cond_destroy(&f.cond);
    pthread_mutex_destroy(&f.lock);
    return closed ? -ESHUTDOWN : f.result;
}

/* ---- The caller's side ------------------------------------------------------------------ */

static void take_reply(struct crl__core *c, const struct crl__ring_msg *m, unsigned from)
{
    struct crl__call *call = m->ptr;
    call->result = m->value;
    c->smp->credits[from]++;
    c->smp->remote_pending--;
    call->done = true;
    if (call->waiting) {
        call->waiting = false;
        crl__wake(call->caller, 0);
    }
    if (c->smp->credit_freed.waiters_.head_)
        crl_event_set(&c->smp->credit_freed);
}

static void check_cancels(struct crl__core *c)
{
    for (struct crl__list *l = c->smp->remote_calls.next; l != &c->smp->remote_calls; l = l->next) {
        struct remote *r = crl__container_of(l, struct remote, link);
        if (!r->cancelled && atomic_load_explicit(&r->call->cancel, memory_order_relaxed)) {
            r->cancelled = true;
            if (r->scope) /* else remote_body cancels it when it starts */
                crl_scope_cancel(r->scope);
        }
    }
}

static void take_foreign(struct crl__core *c);

void crl__smp_post(struct crl__core *c, struct crl__xnote *n)
{
    /* acquire: pairs with take_notes' release, so our write of n->next follows its read */
    if (atomic_exchange_explicit(&n->queued, true, memory_order_acquire))
        return; /* on its way: taking it in will set the event, after our change */
    struct crl__xnote *head = atomic_load_explicit(&c->smp->notes, memory_order_relaxed);
    do
        n->next = head;
    while (!atomic_compare_exchange_weak_explicit(&c->smp->notes, &head, n, memory_order_release,
                                                  memory_order_relaxed));
    crl__smp_kick(c);
}

static void take_notes(struct crl__core *c)
{
    struct crl__xnote *n = atomic_exchange_explicit(&c->smp->notes, NULL, memory_order_acquire);
    while (n) {
        struct crl__xnote *next = n->next;
        crl_event_set(n->event);
        atomic_store_explicit(&n->queued, false, memory_order_release); /* n may go now */
        n = next;
    }
}

void crl__smp_poll(struct crl__core *c)
{
    struct crl__smp_group *rt = c->smp->group;
    if (atomic_load_explicit(&c->smp->notes, memory_order_relaxed))
        take_notes(c);
    if (atomic_load_explicit(&c->smp->foreign_pending, memory_order_relaxed)) {
        atomic_store_explicit(&c->smp->foreign_pending, false, memory_order_relaxed);
        take_foreign(c); /* under the lock: sees every call pushed before the flag */
    }
    if (rt->ncores < 2)
        return;
    /* Read before the rings: a cancellation bumps it after sending the call it cancels. */
    uint32_t gen = atomic_load_explicit(&c->smp->cancel_gen, memory_order_acquire);
    struct crl__ring_msg batch[32];
    for (unsigned from = 0; from < rt->ncores; from++) {
        if (from == c->id)
            continue;
        size_t n;
        while ((n = crl__ring_pop(ring(rt, from, c->id), batch, 32))) {
            for (size_t i = 0; i < n; i++) {
                if (batch[i].p1)
                    take_request(c, &batch[i], from);
                else
                    take_reply(c, &batch[i], from);
            }
        }
    }
    if (gen != c->smp->cancel_seen) {
        c->smp->cancel_seen = gen;
        check_cancels(c);
    }
}

/* Cancellation reached a caller waiting for its reply: flag the record, wake the target. */
static void call_unpark(struct crl_task *t)
{
    struct crl__call *call = t->park_obj;
    call->waiting = false;
    atomic_store_explicit(&call->cancel, true, memory_order_relaxed);
    /* release: the target, seeing the new gen, sees the flag (and the call itself) */
    atomic_fetch_add_explicit(&call->target_core->smp->cancel_gen, 1, memory_order_release);
    crl__smp_kick(call->target_core);
}

/* With nothing else to run on this core, the caller waits for its reply in place, polling
 * the rings itself as the idle loop would, which saves two context switches and a loop turn
 * on each side of the wait. It gives up (and parks) when another task becomes runnable, a
 * timer is due, or reply_poll_ns passes. Returns true if the reply came. */
static bool reply_in_place(struct crl__core *c, struct crl__call *call)
{
    int64_t poll_ns = c->cfg->reply_poll_ns;
    if (c->runq_head || poll_ns <= 0 || c->sim)
        return false; /* simulated: the clock stands still while a core runs, so park */
    int64_t until = crl__deadline_after(crl_now_ns(), poll_ns),
            timer = crl__wheel_next_ns(&c->wheel);
    if (timer >= 0 && timer < until)
        until = timer;
    while (crl__smp_spin(c, until)) {
        crl__smp_poll(c); /* takes our reply in (call->waiting is false: no wake-up) */
        if (call->done)
            return true;
        if (c->runq_head)
            return false;
    }
    c->smp->polled_enough = true; /* the core has polled long enough: it may sleep at once */
    return false;
}

static int call_with_credit(struct crl_task *t, unsigned core, crl_task_fn *fn, void *arg);

int crl_call(unsigned core, crl_task_fn *fn, void *arg)
{
    struct crl_task *t = crl__self();
    struct crl__core *c = t->core;
    if (core >= c->smp->group->ncores)
        return -EINVAL;
    int rc = crl__cancel_status(t);
    if (rc)
        return rc;
    if (core == c->id)
        return fn(arg);
    while (c->smp->credits[core] == 0) { /* wait for a reply to free a credit */
        crl_event_clear(&c->smp->credit_freed);
        rc = crl__event_wait_for(&c->smp->credit_freed, "a cross-core call credit");
        if (rc)
            return rc;
    }
    return call_with_credit(t, core, fn, arg);
}

/* Send the call (a credit is free) and wait for its reply: a cancellation of the caller,
 * already there or to come, is sent on to the remote task, whose end is still waited for. */
static int call_with_credit(struct crl_task *t, unsigned core, crl_task_fn *fn, void *arg)
{
    struct crl__core *c = t->core;
    struct crl__call call = {.caller = t, .target_core = c->smp->group->cores[core]};
    atomic_init(&call.cancel, false);
    c->smp->credits[core]--;
    c->smp->remote_pending++;
    struct crl__ring_msg m = {.ptr = &call, .p1 = (void *)fn, .p2 = arg};
    crl__ring_push(ring(c->smp->group, c->id, core), &m); /* a credit guarantees room */
    CRL__COUNT(&c->stats, calls_sent);
    CRL__TRACE_EV(c, CRL__TRACE_XCORE_SEND, core, 0);
    crl__smp_kick(call.target_core);
    if (reply_in_place(c, &call))
        return call.result;
    call.waiting = true;
    int rc = crl__park(call_unpark, &call);
    while (!call.done) { /* fn may point into our frame: wait for the target to finish */
        call.waiting = true;
        crl__park_held(call_unpark, &call);
    }
    if (rc && (call.result == -ECANCELED || call.result == -ETIMEDOUT))
        return rc;
    return call.result;
}

__attribute__((constructor)) static void name_parks(void)
{
    crl__trace_name_park(call_unpark, CRL__PARK_CALL);
}

bool crl__smp_describe_wait(void (*unpark)(struct crl_task *t), const void *obj, int64_t now_ns,
                            char *out, size_t cap)
{
    (void)now_ns;
    if (unpark != call_unpark)
        return false;
    const struct crl__call *call = obj;
    snprintf(out, cap, "reply from core %u", call->target_core->id);
    return true;
}

unsigned crl_core_id(void)
{
    struct crl__core *c = crl__core();
    return c ? c->id : 0;
}

unsigned crl_core_count(void)
{
    struct crl__core *c = crl__core();
    return c ? c->smp->group->ncores : 0;
}

/* ---- Children on other cores ------------------------------------------------------------ */

/* A local child of the scope stands in for the remote one: it makes the call, so the scope
 * joins the remote task through it, gets its result as the child's, and cancelling the scope
 * cancels the call, which cancels the remote task. */
struct remote_child {
    crl_task_fn *fn;
    void *arg;
    unsigned core;
};

/* Wait for a credit to core *target, shielded: a child spawned on another core runs even
 * once its scope is cancelled. */
static int wait_credit_shielded(struct crl_scope *s, void *target)
{
    struct crl__core *c = crl__core();
    crl_scope_shield(s, true);
    while (c->smp->credits[*(unsigned *)target] == 0) {
        crl_event_clear(&c->smp->credit_freed);
        crl__event_wait_for(&c->smp->credit_freed, "a cross-core call credit");
    }
    return 0;
}

/* A child on another core: the call that runs it there. It is made even when the scope was
 * cancelled before this proxy ran, as a child spawned on its own core runs then too (it may
 * own what it was given): the cancellation goes with the call, and the task sees it at its
 * first cancellation point. */
static int remote_child_proxy(void *p)
{
    struct remote_child rc = *(struct remote_child *)p;
    free(p);
    struct crl_task *t = crl__self();
    if (t->core->smp->credits[rc.core] == 0)
        crl_scope_run(wait_credit_shielded, &rc.core);
    return call_with_credit(t, rc.core, rc.fn, rc.arg);
}

int crl_spawn_on_named(struct crl_scope *s, unsigned core, crl_task_fn *fn, void *arg,
                       const char *name)
{
    struct crl__core *c = crl__core();
    if (!c || core >= c->smp->group->ncores)
        return -EINVAL;
    if (core == c->id)
        return crl_spawn_named(s, fn, arg, name);
    struct remote_child *rc = malloc(sizeof *rc);
    if (!rc)
        return -ENOMEM;
    *rc = (struct remote_child){fn, arg, core};
    int err = crl_spawn_named(s, remote_child_proxy, rc, name);
    if (err)
        free(rc);
    return err;
}
