/* scope.c - scopes (nurseries) and Trio-style cancellation: errors flow up to the scope,
 * cancellation and deadlines flow down the tree of scopes, stopping at shields.
 *
 * A task's cancellation state is found by walking from its innermost scope up to the nearest
 * shield. A task is reached from above in one of two ways: as the owner of the scope it last
 * opened, or, while it has opened none, as a child in its home scope's task list; so opening
 * and closing a scope moves nothing between lists. Propagation marks every task it reaches
 * with cancel_hint, and only hinted tasks walk their chain at a cancellation point. A hint is
 * conservative: it is set wherever a task's state may have become "cancelled" (propagation,
 * spawn, leaving a shielded scope) and cleared when a walk finds nothing. */
#include "core.h"

#include <errno.h>
#include <string.h>

int crl__cancel_walk(struct crl_task *t)
{
    for (const struct crl_scope *s = t->scope; s; s = s->parent) {
        if (s->cancel_reason)
            return -s->cancel_reason;
        if (s->shield)
            break;
    }
    t->cancel_hint = false;
    return 0;
}

/* ---- Cancellation: wake every cancellable waiter under a scope --------------------------- */

static void reach_task(struct crl_task *t, struct crl_scope *s)
{
    t->cancel_hint = true;
    if (t->scope == s)
        crl__cancel_wake(t);
}

/* Hint and wake the tasks whose innermost scope is s: its owner and its children. */
static void wake_tasks_of(struct crl_scope *s)
{
    if (s->owner)
        reach_task(s->owner, s);
    struct crl__list *l = s->tasks.next;
    while (l != &s->tasks) {
        struct crl_task *t = crl__container_of(l, struct crl_task, scope_link);
        l = l->next;
        reach_task(t, s);
    }
}

static struct crl_scope *unshielded_from(struct crl__list *from, struct crl__list *head)
{
    for (struct crl__list *l = from; l != head; l = l->next) {
        struct crl_scope *k = crl__container_of(l, struct crl_scope, kid_link);
        if (!k->shield)
            return k;
    }
    return NULL;
}

/* Depth-first over root's subtree without recursion (a deep tree must not overflow the
 * canceller's stack), skipping shielded scopes and what is below them. */
static void propagate_cancel(struct crl_scope *root)
{
    struct crl_scope *s = root;
    for (;;) {
        wake_tasks_of(s);
        struct crl_scope *k = unshielded_from(s->kids.next, &s->kids);
        if (k) {
            s = k;
            continue;
        }
        for (;;) {
            if (s == root)
                return;
            struct crl_scope *p = s->parent;
            k = unshielded_from(s->kid_link.next, &p->kids);
            if (k) {
                s = k;
                break;
            }
            s = p;
        }
    }
}

static void scope_cancel(struct crl_scope *s, int reason)
{
    if (s->cancel_reason)
        return;
    s->cancel_reason = reason;
    crl__timer_disarm(&s->core->wheel, &s->deadline);
    propagate_cancel(s);
}

/* Record a failure in s. A cancellation error that s itself caused is absorbed. */
static void scope_fail(struct crl_scope *s, int err)
{
    if ((err == -ECANCELED || err == -ETIMEDOUT) && s->cancel_reason)
        return;
    if (!s->error)
        s->error = err;
    scope_cancel(s, ECANCELED);
}

void crl__scope_child_done(struct crl_scope *s, struct crl_task *t, int result)
{
    (void)t;
    if (result < 0)
        scope_fail(s, result);
    if (--s->nlive == 0 && s->joining)
        crl__wake(s->owner, 0);
}

/* ---- Opening and closing ---------------------------------------------------------------- */

static void deadline_fire(struct crl__timer *tm)
{
    scope_cancel(crl__container_of(tm, struct crl_scope, deadline), ETIMEDOUT);
}

/* Field by field: a memset of the whole scope costs more than the rest of opening it. */
static void scope_init(struct crl_scope *s, struct crl__core *c)
{
    s->parent = NULL;
    s->owner = NULL;
    crl__list_init(&s->tasks);
    crl__list_init(&s->kids);
    crl__list_init(&s->kid_link);
    s->core = c;
    s->nlive = 0;
    s->error = 0;
    s->cancel_reason = 0;
    s->shield = false;
    s->joining = false;
    s->deadline.next = NULL;
    s->deadline.pprev = NULL;
    s->deadline.fire = deadline_fire;
    s->deadline_ns = CRL_NO_DEADLINE;
}

void crl__scope_init_root(struct crl_scope *s, struct crl__core *c) { scope_init(s, c); }

static void scope_open(struct crl_scope *s, struct crl_task *owner)
{
    scope_init(s, owner->core);
    s->parent = owner->scope;
    s->owner = owner;
    crl__list_add_tail(&s->parent->kids, &s->kid_link);
    owner->scope = s;
}

static void scope_close(struct crl_scope *s)
{
    if (crl__timer_armed(&s->deadline))
        crl__timer_disarm(&s->core->wheel, &s->deadline);
    crl__list_del(&s->kid_link);
    s->owner->scope = s->parent;
    if (s->shield)
        s->owner->cancel_hint = true; /* back under whatever the shield held off */
}

static void scope_wait_children(struct crl_scope *s)
{
    if (s->nlive) {
        s->joining = true;
        crl__park(NULL, s); /* not cancellable: cancellation reaches the children instead */
        s->joining = false;
    }
}

int crl_scope_join(struct crl_scope *s)
{
    if (crl__self() != s->owner)
        crl__panic("corral: crl_scope_join from a task that does not own the scope");
    scope_wait_children(s);
    return s->error;
}

int crl_scope_run(crl_body_fn *body, void *arg)
{
    struct crl_task *t = crl__self();
    struct crl_scope s;
    scope_open(&s, t);
    int rc = body(&s, arg);
    if (rc < 0)
        scope_fail(&s, rc);
    scope_wait_children(&s);
    scope_close(&s);
    if (s.error)
        return s.error;
    if (s.cancel_reason == ETIMEDOUT)
        return -ETIMEDOUT;
    return rc < 0 ? 0 : rc;
}

/* ---- Public controls -------------------------------------------------------------------- */

/* A scope belongs to its core (checked where assertions are on). */
#ifndef NDEBUG
static void check_scope_owner(const struct crl_scope *s)
{
    struct crl__core *c = crl__cur;
    if (c && s->core != c)
        crl__panic("corral: scope %p belongs to core %u but was used from core %u", (const void *)s,
                   s->core->id, c->id);
}
#else
#define check_scope_owner(s) ((void)0)
#endif

void crl_scope_cancel(struct crl_scope *s)
{
    check_scope_owner(s);
    scope_cancel(s, ECANCELED);
}

void crl_scope_set_deadline(struct crl_scope *s, int64_t deadline_ns)
{
    check_scope_owner(s);
    s->deadline_ns = deadline_ns < 0 ? CRL_NO_DEADLINE : deadline_ns;
    if (s->cancel_reason)
        return;
    crl__timer_disarm(&s->core->wheel, &s->deadline);
    if (deadline_ns < 0)
        return;
    if (deadline_ns <= crl_now_ns())
        scope_cancel(s, ETIMEDOUT);
    else
        crl__timer_arm(&s->core->wheel, &s->deadline, deadline_ns);
}

int64_t crl_scope_deadline(const struct crl_scope *s) { return s->deadline_ns; }

static bool outer_cancelled(const struct crl_scope *s)
{
    for (const struct crl_scope *p = s->parent; p; p = p->parent) {
        if (p->cancel_reason)
            return true;
        if (p->shield)
            break;
    }
    return false;
}

void crl_scope_shield(struct crl_scope *s, bool on)
{
    check_scope_owner(s);
    bool was = s->shield;
    s->shield = on;
    /* Lowering a shield delivers a cancellation that arrived while it was up. */
    if (was && !on && outer_cancelled(s))
        propagate_cancel(s);
}

bool crl_scope_cancelled(const struct crl_scope *s) { return s->cancel_reason != 0; }
