/* call.c - running a function on another core and awaiting its result (like Seastar's
 * submit_to). A call record lives in the caller's frame; its address travels to the target
 * core through the SPSC ring of that ordered pair, and back through the reverse ring as the
 * reply. The target runs the function as a task in a scope of its own.
 *
 * Cancellation crosses cores without a message: the caller sets the record's atomic cancel
 * flag and wakes the target, which cancels the remote scope when it next polls. The record
 * stays alive because the caller waits for the reply in any case, and the target never
 * touches the record after pushing the reply, so neither side can reach a dead frame.
 *
 * Credits: a core holds at most CRL__RING_CAPACITY / 2 calls in flight to one target, a
 * credit taken when the request is sent and given back when its reply is taken in. */
#define _GNU_SOURCE
#include "smp.h"
#include "ring.h"
#include "../io/io.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

struct crl__call {
    crl_task_fn *fn;
    void *arg;
    int result;
    struct crl__core *from; /* the caller's core */
    struct crl__core *target_core;
    struct crl_task *caller;
    _Atomic bool cancel; /* set by the caller, read by the target */
    /* the target's side, while the call runs there */
    struct crl__list link;   /* in target->remote_calls */
    struct crl_scope *scope; /* the remote scope, once the task started */
    bool cancelled;          /* the target acted on cancel */
    /* the caller's side */
    bool done, waiting;
};

static struct crl__ring *ring(struct crl__runtime *rt, unsigned from, unsigned to)
{
    return &rt->rings[from * rt->ncores + to];
}

int crl__smp_init(struct crl__runtime *rt)
{
    size_t n = (size_t)rt->ncores * rt->ncores;
    rt->rings = calloc(n, sizeof *rt->rings);
    if (!rt->rings)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int rc = crl__ring_init(&rt->rings[i], CRL__RING_CAPACITY);
        if (rc) {
            rt->ncores = (unsigned)(i / rt->ncores); /* free what was made */
            crl__smp_fini(rt);
            return rc;
        }
    }
    return 0;
}

void crl__smp_fini(struct crl__runtime *rt)
{
    if (!rt->rings)
        return;
    for (size_t i = 0; i < (size_t)rt->ncores * rt->ncores; i++)
        crl__ring_fini(&rt->rings[i]);
    free(rt->rings);
    rt->rings = NULL;
}

int crl__smp_core_init(struct crl__core *c)
{
    crl__list_init(&c->remote_calls);
    atomic_init(&c->notes, NULL);
    pthread_mutex_init(&c->foreign_lock, NULL);
    c->foreign = NULL;
    c->foreign_closed = false;
    atomic_init(&c->foreign_pending, false);
    crl_event_init(&c->credit_freed);
    c->credits = malloc(c->rt->ncores * sizeof *c->credits);
    if (!c->credits)
        return -ENOMEM;
    for (unsigned i = 0; i < c->rt->ncores; i++)
        c->credits[i] = CRL__RING_CAPACITY / 2;
    return 0;
}

static void fail_foreign(struct crl__core *c);

void crl__smp_core_fini(struct crl__core *c)
{
    fail_foreign(c);
    pthread_mutex_destroy(&c->foreign_lock);
    free(c->credits);
    c->credits = NULL;
}

void crl__smp_notify(struct crl__core *c)
{
    uint64_t one = 1;
    ssize_t unused = write(c->wake_fd, &one, sizeof one);
    (void)unused;
}

/* The sender published (a ring push, a cancel flag), then looks at `sleeping`; the sleeper
 * sets `sleeping`, then looks at its rings. With a full fence on both sides at least one of
 * them sees the other's write: no wake-up is lost, and none is sent to a core that is up. */
void crl__smp_kick(struct crl__core *c)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&c->sleeping, memory_order_relaxed))
        crl__smp_notify(c);
}

bool crl__smp_pending(struct crl__core *c)
{
    struct crl__runtime *rt = c->rt;
    if (atomic_load_explicit(&c->foreign_pending, memory_order_relaxed) ||
        atomic_load_explicit(&c->notes, memory_order_relaxed))
        return true;
    for (unsigned from = 0; from < rt->ncores; from++)
        if (from != c->id && !crl__ring_empty(ring(rt, from, c->id)))
            return true;
    /* a cancel flag raised on a call running here */
    for (struct crl__list *l = c->remote_calls.next; l != &c->remote_calls; l = l->next) {
        struct crl__call *call = crl__container_of(l, struct crl__call, link);
        if (!call->cancelled && atomic_load_explicit(&call->cancel, memory_order_relaxed))
            return true;
    }
    return false;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

void crl__smp_idle(struct crl__core *c, int64_t deadline_ns)
{
    if (c->rt->ncores > 1 && c->rt->cfg.idle_poll_ns > 0) {
        int64_t until = crl_now_ns() + c->rt->cfg.idle_poll_ns;
        if (deadline_ns >= 0 && deadline_ns < until)
            until = deadline_ns;
        do {
            if (crl__smp_pending(c))
                return; /* the loop takes it in */
            cpu_relax();
        } while (crl_now_ns() < until);
    }
    atomic_store_explicit(&c->sleeping, true, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (c->rt->ncores == 1 || !crl__smp_pending(c))
        c->io->wait(c, deadline_ns);
    atomic_store_explicit(&c->sleeping, false, memory_order_relaxed);
}

/* ---- The target's side ------------------------------------------------------------------ */

static int remote_body(struct crl_scope *s, void *arg)
{
    struct crl__call *call = arg;
    call->scope = s;
    if (atomic_load_explicit(&call->cancel, memory_order_acquire)) {
        call->cancelled = true;
        crl_scope_cancel(s);
    }
    call->result = call->fn(call->arg);
    return call->result;
}

static int remote_task(void *arg)
{
    struct crl__call *call = arg;
    struct crl__core *c = crl__core();
    int rc = crl_scope_run(remote_body, call);
    if (rc < 0 && call->result >= 0)
        call->result = rc; /* a child of the remote scope failed */
    crl__list_del(&call->link);
    call->scope = NULL;
    struct crl__core *back = call->from;
    /* The caller's credit guarantees room; after the push the record is the caller's. */
    while (!crl__ring_push(ring(c->rt, c->id, back->id), call))
        crl_yield();
    crl__smp_kick(back);
    return 0; /* the result travels in the record, not into this core's root scope */
}

static void take_request(struct crl__core *c, struct crl__call *call)
{
    crl__list_add_tail(&c->remote_calls, &call->link);
    call->scope = NULL;
    call->cancelled = false;
    if (crl_spawn_named(c->root, remote_task, call, "remote call") != 0) {
        call->result = -ENOMEM;
        crl__list_del(&call->link);
        while (!crl__ring_push(ring(c->rt, c->id, call->from->id), call))
            ; /* cannot happen: the caller's credit reserved the slot */
        crl__smp_kick(call->from);
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
    pthread_mutex_lock(&c->foreign_lock);
    struct crl__foreign *f = c->foreign;
    c->foreign = NULL;
    pthread_mutex_unlock(&c->foreign_lock);
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
    pthread_mutex_lock(&c->foreign_lock);
    struct crl__foreign *f = c->foreign;
    c->foreign = NULL;
    c->foreign_closed = true;
    pthread_mutex_unlock(&c->foreign_lock);
    while (f) {
        struct crl__foreign *next = f->next;
        finish_foreign(f, -ESHUTDOWN);
        f = next;
    }
}

struct crl_runtime *crl_runtime_current(void)
{
    struct crl__core *c = crl__core();
    return c ? (struct crl_runtime *)c->rt : NULL;
}

int crl_runtime_call(struct crl_runtime *handle, unsigned core, crl_task_fn *fn, void *arg)
{
    struct crl__runtime *rt = (struct crl__runtime *)handle;
    if (crl__core())
        return -EBUSY;
    if (!rt || core >= rt->ncores)
        return -EINVAL;
    struct crl__core *c = rt->cores[core];
    struct crl__foreign f = {.fn = fn, .arg = arg};
    pthread_mutex_init(&f.lock, NULL);
    pthread_cond_init(&f.cond, NULL);
    pthread_mutex_lock(&c->foreign_lock);
    bool closed = c->foreign_closed;
    if (!closed) {
        f.next = c->foreign;
        c->foreign = &f;
    }
    pthread_mutex_unlock(&c->foreign_lock);
    if (!closed) {
        atomic_store_explicit(&c->foreign_pending, true, memory_order_relaxed);
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

static void take_reply(struct crl__core *c, struct crl__call *call, unsigned from)
{
    c->credits[from]++;
    c->remote_pending--;
    call->done = true;
    if (call->waiting) {
        call->waiting = false;
        crl__wake(call->caller, 0);
    }
    if (c->credit_freed.waiters_.head_)
        crl_event_set(&c->credit_freed);
}

static void check_cancels(struct crl__core *c)
{
    for (struct crl__list *l = c->remote_calls.next; l != &c->remote_calls; l = l->next) {
        struct crl__call *call = crl__container_of(l, struct crl__call, link);
        if (!call->cancelled && call->scope &&
            atomic_load_explicit(&call->cancel, memory_order_acquire)) {
            call->cancelled = true;
            crl_scope_cancel(call->scope);
        }
    }
}

static void take_foreign(struct crl__core *c);

void crl__smp_post(struct crl__core *c, struct crl__xnote *n)
{
    /* acquire: pairs with take_notes' release, so our write of n->next follows its read */
    if (atomic_exchange_explicit(&n->queued, true, memory_order_acquire))
        return; /* on its way: taking it in will set the event, after our change */
    struct crl__xnote *head = atomic_load_explicit(&c->notes, memory_order_relaxed);
    do
        n->next = head;
    while (!atomic_compare_exchange_weak_explicit(&c->notes, &head, n, memory_order_release,
                                                  memory_order_relaxed));
    crl__smp_kick(c);
}

static void take_notes(struct crl__core *c)
{
    struct crl__xnote *n = atomic_exchange_explicit(&c->notes, NULL, memory_order_acquire);
    while (n) {
        struct crl__xnote *next = n->next;
        crl_event_set(n->event);
        atomic_store_explicit(&n->queued, false, memory_order_release); /* n may go now */
        n = next;
    }
}

void crl__smp_poll(struct crl__core *c)
{
    struct crl__runtime *rt = c->rt;
    if (atomic_load_explicit(&c->notes, memory_order_relaxed))
        take_notes(c);
    if (atomic_load_explicit(&c->foreign_pending, memory_order_relaxed)) {
        atomic_store_explicit(&c->foreign_pending, false, memory_order_relaxed);
        take_foreign(c); /* under the lock: sees every call pushed before the flag */
    }
    if (rt->ncores < 2)
        return;
    void *batch[32];
    for (unsigned from = 0; from < rt->ncores; from++) {
        if (from == c->id)
            continue;
        size_t n;
        while ((n = crl__ring_pop(ring(rt, from, c->id), batch, 32))) {
            for (size_t i = 0; i < n; i++) {
                struct crl__call *call = batch[i];
                if (call->from == c)
                    take_reply(c, call, from);
                else
                    take_request(c, call);
            }
        }
    }
    if (!crl__list_empty(&c->remote_calls))
        check_cancels(c);
}

/* Cancellation reached a caller waiting for its reply: flag the record, wake the target. */
static void call_unpark(struct crl_task *t)
{
    struct crl__call *call = t->park_obj;
    call->waiting = false;
    atomic_store_explicit(&call->cancel, true, memory_order_release);
    crl__smp_kick(call->target_core);
}

int crl_call(unsigned core, crl_task_fn *fn, void *arg)
{
    struct crl_task *t = crl__self();
    struct crl__core *c = t->core;
    if (core >= c->rt->ncores)
        return -EINVAL;
    int rc = crl__cancel_status(t);
    if (rc)
        return rc;
    if (core == c->id)
        return fn(arg);
    while (c->credits[core] == 0) { /* wait for a reply to free a credit */
        crl_event_clear(&c->credit_freed);
        rc = crl_event_wait(&c->credit_freed);
        if (rc)
            return rc;
    }
    struct crl__call call = {
        .fn = fn, .arg = arg, .from = c, .caller = t, .target_core = c->rt->cores[core]};
    atomic_init(&call.cancel, false);
    c->credits[core]--;
    c->remote_pending++;
    crl__ring_push(ring(c->rt, c->id, core), &call); /* a credit guarantees room */
    crl__smp_kick(call.target_core);
    call.waiting = true;
    rc = crl__park(call_unpark, &call);
    while (!call.done) { /* fn may point into our frame: wait for the target to finish */
        call.waiting = true;
        crl__park(NULL, &call);
    }
    if (rc && (call.result == -ECANCELED || call.result == -ETIMEDOUT))
        return rc;
    return call.result;
}

unsigned crl_core_id(void)
{
    struct crl__core *c = crl__core();
    return c ? c->id : 0;
}

unsigned crl_core_count(void)
{
    struct crl__core *c = crl__core();
    return c ? c->rt->ncores : 0;
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

static int remote_child_proxy(void *p)
{
    struct remote_child rc = *(struct remote_child *)p;
    free(p);
    return crl_call(rc.core, rc.fn, rc.arg);
}

int crl_spawn_on_named(struct crl_scope *s, unsigned core, crl_task_fn *fn, void *arg,
                       const char *name)
{
    struct crl__core *c = crl__core();
    if (!c || core >= c->rt->ncores)
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
