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
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* The outermost cancelled scope up to the nearest shield is the one whose cancellation the
 * task sees (and the one that absorbs it, see scope_result): its reason wins. */
int crl__cancel_walk(struct crl_task *t)
{
    int reason = 0;
    for (const struct crl_scope *s = t->scope; s; s = s->parent) {
        if (s->cancel_reason)
            reason = s->cancel_reason;
        if (s->shield)
            break;
    }
    if (!reason)
        t->cancel_hint = false;
    return -reason;
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

static bool is_cancellation(int err) { return err == -ECANCELED || err == -ETIMEDOUT; }

/* Record a failure of task `who` in s: the first error cancels s and becomes its result; a
 * cancellation error that s itself caused is absorbed; a later error is logged, since nothing
 * else would ever see it. */
static void scope_fail(struct crl_scope *s, int err, const char *who)
{
    if (is_cancellation(err) && s->cancel_reason)
        return;
    if (s->error) {
        crl__logf(CRL_LOG_WARN,
                  "corral: task '%s' failed with %d (%s) in a scope that had already failed "
                  "with %d (%s): this error is dropped",
                  who, err, strerror(-err), s->error, strerror(-s->error));
        return;
    }
    s->error = err;
    scope_cancel(s, ECANCELED);
}

void crl__scope_child_done(struct crl_scope *s, struct crl_task *t, int result)
{
    if (result < 0)
        scope_fail(s, result, t->name);
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
    s->magic = CRL__SCOPE_LIVE;
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
    s->token_slot = 0;
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

static void token_release(struct crl_scope *s);

static void scope_close(struct crl_scope *s)
{
    s->magic = 0;
    if (s->token_slot)
        token_release(s);
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
    crl__scope_check(s, "crl_scope_join");
    if (crl__self() != s->owner)
        crl__panic("corral: crl_scope_join from a task that does not own the scope");
    scope_wait_children(s);
    return s->error;
}

/* The cancellation reason of the outermost cancelled scope enclosing s that s can see (none
 * if s is shielded), or 0. */
static int outer_cancel_reason(const struct crl_scope *s)
{
    int reason = 0;
    if (s->shield)
        return 0;
    for (const struct crl_scope *p = s->parent; p; p = p->parent) {
        if (p->cancel_reason)
            reason = p->cancel_reason;
        if (p->shield)
            break;
    }
    return reason;
}

/* What crl_scope_run returns for s, closed, whose body returned rc. As in Trio, the
 * outermost cancelled scope catches a cancellation: a scope that ended cancelled (its own
 * cancellation, or a child's or the body's cancellation error) while an enclosing scope is
 * cancelled too passes that scope's cancellation on, so that the code after it is skipped. */
static int scope_result(const struct crl_scope *s, int rc)
{
    if (s->error && !is_cancellation(s->error))
        return s->error;
    int outer = outer_cancel_reason(s);
    if (outer && (s->error || s->cancel_reason || is_cancellation(rc)))
        return -outer;
    if (s->error)
        return s->error;
    if (s->cancel_reason == ETIMEDOUT)
        return -ETIMEDOUT;
    return rc < 0 ? 0 : rc;
}

int crl_scope_run(crl_body_fn *body, void *arg)
{
    struct crl_task *t = crl__self();
    struct crl_scope s;
    scope_open(&s, t);
    int rc = body(&s, arg);
    if (rc < 0)
        scope_fail(&s, rc, t->name);
    scope_wait_children(&s);
    scope_close(&s);
    return scope_result(&s, rc);
}

/* ---- Public controls -------------------------------------------------------------------- */

/* A scope record that is not open (it returned: its record lies in a dead frame) is a misuse
 * that would corrupt memory: abort naming the call. Best effort, a magic value. Also, where
 * assertions are on, a scope belongs to its core. */
void crl__scope_check(const struct crl_scope *s, const char *call)
{
    if (!s || s->magic != CRL__SCOPE_LIVE)
        crl__panic("corral: %s on scope %p, which is not open (its crl_scope_run returned, or "
                   "it is not a scope)",
                   call, (const void *)s);
#ifndef NDEBUG
    struct crl__core *c = crl__cur;
    if (c && s->core != c)
        crl__panic("corral: scope %p belongs to core %u but was used from core %u (%s)",
                   (const void *)s, s->core->id, c->id, call);
#endif
}

void crl_scope_cancel(struct crl_scope *s)
{
    crl__scope_check(s, "crl_scope_cancel");
    scope_cancel(s, ECANCELED);
}

void crl_scope_set_deadline(struct crl_scope *s, int64_t deadline_ns)
{
    crl__scope_check(s, "crl_scope_set_deadline");
    s->deadline_ns = deadline_ns;
    if (s->cancel_reason)
        return;
    crl__timer_disarm(&s->core->wheel, &s->deadline);
    if (deadline_ns == CRL_NO_DEADLINE)
        return;
    if (deadline_ns <= crl_now_ns())
        scope_cancel(s, ETIMEDOUT);
    else
        crl__timer_arm(&s->core->wheel, &s->deadline, deadline_ns);
}

int64_t crl_scope_deadline(const struct crl_scope *s)
{
    crl__scope_check(s, "crl_scope_deadline");
    return s->deadline_ns;
}

bool crl__bug_shield_ignored;

void crl_scope_shield(struct crl_scope *s, bool on)
{
    crl__scope_check(s, "crl_scope_shield");
    bool was = s->shield;
    s->shield = on && !crl__bug_shield_ignored;
    /* Lowering a shield delivers a cancellation that arrived while it was up. */
    if (was && !on && outer_cancel_reason(s))
        propagate_cancel(s);
}

/* As Trio's cancel_called: a deadline that has passed, though its timer has not fired yet,
 * cancels the scope here, so that what this says and what cancellation points see agree.
 * (Scopes are never const objects: the cast is only the query's.) */
bool crl_scope_cancelled(const struct crl_scope *s)
{
    crl__scope_check(s, "crl_scope_cancelled");
    if (!s->cancel_reason && s->deadline_ns != CRL_NO_DEADLINE && s->deadline_ns <= crl_now_ns())
        scope_cancel((struct crl_scope *)s, ETIMEDOUT);
    return s->cancel_reason != 0;
}

/* ---- Cancellation tokens ---------------------------------------------------------------
 *
 * A scope lives in the frame of crl_scope_run, so a token cannot point at it: it names an
 * entry of its core's token table instead, with a generation. The entry holds the scope
 * while it is open and is cleared when it closes, so a token of a scope that returned finds
 * a free entry or one of another generation, never the dead frame. Generations come from
 * one process-wide counter: no two tokens ever share one, whichever core or run made them. */

static _Atomic uint64_t token_gen_last;

static uint32_t token_slot_alloc(struct crl__core *c)
{
    if (c->token_free) {
        uint32_t i = c->token_free;
        c->token_free = c->tokens[i].next_free;
        return i;
    }
    if (c->ntokens == 0)
        c->ntokens = 1;                         /* entry 0 means none */
    if ((c->ntokens & (c->ntokens - 1)) == 0) { /* full at a power of two: double */
        struct crl__token_slot *t = realloc(c->tokens, 2 * c->ntokens * sizeof *t);
        if (!t)
            return 0;
        c->tokens = t;
    }
    return c->ntokens++;
}

static void token_release(struct crl_scope *s)
{
    struct crl__core *c = s->core;
    struct crl__token_slot *e = &c->tokens[s->token_slot];
    e->scope = NULL;
    e->gen = 0;
    e->next_free = c->token_free;
    c->token_free = s->token_slot;
    s->token_slot = 0;
}

int crl_scope_token(struct crl_scope *s, struct crl_cancel_token *out)
{
    crl__scope_check(s, "crl_scope_token");
    struct crl__core *c = s->core;
    if (!s->token_slot) {
        uint32_t i = token_slot_alloc(c);
        if (!i)
            return -ENOMEM;
        c->tokens[i] = (struct crl__token_slot){s, atomic_fetch_add(&token_gen_last, 1) + 1, 0};
        s->token_slot = i;
    }
    *out = (struct crl_cancel_token){c->tokens[s->token_slot].gen, c->id, s->token_slot};
    return 0;
}

/* The open scope token names, or NULL if it finished (or never was on this core's table). */
static struct crl_scope *token_scope(const struct crl__core *c, struct crl_cancel_token token)
{
    if (token.slot_ == 0 || token.slot_ >= c->ntokens || c->tokens[token.slot_].gen != token.gen_)
        return NULL;
    return c->tokens[token.slot_].scope;
}

int crl_token_cancel(struct crl_cancel_token token)
{
    if (token.gen_ == 0)
        return -EINVAL;
    struct crl__core *c = crl__cur;
    if (!c || c->id != token.core_)
        return -EXDEV;
    struct crl_scope *s = token_scope(c, token);
    if (!s)
        return -ESRCH;
    scope_cancel(s, ECANCELED);
    return 0;
}

unsigned crl_token_core(struct crl_cancel_token token) { return token.core_; }

void crl__tokens_fini(struct crl__core *c)
{
    free(c->tokens);
    c->tokens = NULL;
    c->ntokens = c->token_free = 0;
}
