/* Cancellation tokens: cancelling a scope from a sibling without a pointer into its frame,
 * and what a token says once its scope is gone. */
#include "../test.h"

#include <errno.h>
#include <string.h>
#include <sys/wait.h>

struct worker {
    struct crl_cancel_token token;
    bool published;
    int sleep_rc;
    int scope_rc;
};

static int worker_body(struct crl_scope *s, void *arg)
{
    struct worker *w = arg;
    CHECK_EQ(crl_scope_token(s, &w->token), 0);
    w->published = true;
    w->sleep_rc = crl_sleep_ns(10 * CRL_SEC_NS);
    return w->sleep_rc;
}

static int worker(void *arg)
{
    struct worker *w = arg;
    w->scope_rc = crl_scope_run(worker_body, w);
    return 0;
}

struct sibling {
    struct worker *w;
    int cancel_rc, again_rc, after_rc;
};

static int canceller(void *arg)
{
    struct sibling *c = arg;
    while (!c->w->published)
        CHECK_EQ(crl_yield(), 0);
    struct crl_cancel_token t = c->w->token; /* a value: the worker's frame is not needed */
    CHECK_EQ(crl_sleep_ns(2 * CRL_MSEC_NS), 0);
    c->cancel_rc = crl_token_cancel(t);
    c->again_rc = crl_token_cancel(t); /* idempotent while the scope is open */
    while (c->w->scope_rc == 1)
        CHECK_EQ(crl_yield(), 0);
    c->after_rc = crl_token_cancel(t);
    return 0;
}

static int worker_and_sibling(struct crl_scope *s, void *arg)
{
    struct sibling *c = arg;
    CHECK_EQ(crl_spawn(s, worker, c->w), 0);
    CHECK_EQ(crl_spawn(s, canceller, c), 0);
    return 0;
}

/* A sibling cancels the scope a task opened, through a token it was handed; the scope
 * catches its own cancellation (0), and the token then reports it finished. */
TEST(sibling_cancels_a_scope_through_its_token)
{
    struct worker w = {.scope_rc = 1};
    struct sibling c = {.w = &w};
    int64_t t0 = crl_now_ns();
    CHECK_EQ(crl_scope_run(worker_and_sibling, &c), 0);
    CHECK_LT(crl_now_ns() - t0, 5 * CRL_SEC_NS);
    CHECK_EQ(c.cancel_rc, 0);
    CHECK_EQ(c.again_rc, 0);
    CHECK_EQ(w.sleep_rc, -ECANCELED);
    CHECK_EQ(w.scope_rc, 0);
    CHECK_EQ(c.after_rc, -ESRCH);
}

static int keep_token(struct crl_scope *s, void *arg)
{
    struct crl_cancel_token *t = arg;
    CHECK_EQ(crl_scope_token(s, t), 0);
    struct crl_cancel_token again;
    CHECK_EQ(crl_scope_token(s, &again), 0);
    CHECK(memcmp(t, &again, sizeof again) == 0); /* one token per scope */
    CHECK(!crl_scope_cancelled(s));
    return 0;
}

/* After crl_scope_run returned, the token says "finished", however often it is asked. */
TEST(token_after_its_scope_returned_reports_finished)
{
    struct crl_cancel_token t;
    CHECK_EQ(crl_scope_run(keep_token, &t), 0);
    CHECK_EQ(crl_token_cancel(t), -ESRCH);
    CHECK_EQ(crl_token_cancel(t), -ESRCH);
    CHECK_EQ(crl_token_core(t), crl_core_id());
}

struct reuse {
    struct crl_cancel_token old;
    const void *old_addr, *new_addr;
    int stale_rc;
    bool new_cancelled;
    struct crl_cancel_token fresh;
};

static int first_scope(struct crl_scope *s, void *arg)
{
    struct reuse *r = arg;
    r->old_addr = s;
    return crl_scope_token(s, &r->old);
}

static int second_scope(struct crl_scope *s, void *arg)
{
    struct reuse *r = arg;
    r->new_addr = s;
    CHECK_EQ(crl_scope_token(s, &r->fresh), 0);
    r->stale_rc = crl_token_cancel(r->old);
    r->new_cancelled = crl_scope_cancelled(s);
    return 0;
}

static __attribute__((noinline)) int open_scope_here(crl_body_fn *body, struct reuse *r)
{
    return crl_scope_run(body, r);
}

/* A scope opened later at the same address, taking the same table entry, is not cancelled
 * by the token of the one before. */
TEST(stale_token_does_not_cancel_a_new_scope_at_the_same_address)
{
    struct reuse r = {0};
    CHECK_EQ(open_scope_here(first_scope, &r), 0);
    CHECK_EQ(open_scope_here(second_scope, &r), 0);
    /* The same frame, so the same record (unless ASan's fake stacks moved it), and the same
     * entry of the table either way. */
    if (r.old_addr != r.new_addr)
        fprintf(stderr, "note: the second scope is at another address (ASan fake stack)\n");
    CHECK_EQ(r.fresh.slot_, r.old.slot_);
    CHECK_EQ(r.stale_rc, -ESRCH);
    CHECK(!r.new_cancelled);
    CHECK(r.fresh.gen_ != r.old.gen_);
}

/* A zeroed token names nothing. */
TEST(zeroed_token_is_einval)
{
    struct crl_cancel_token none = {0};
    CHECK_EQ(crl_token_cancel(none), -EINVAL);
}

enum { MANY = 300 };

struct many {
    struct crl_cancel_token tokens[MANY];
    int published;
    int results[MANY];
};

struct member {
    struct many *m;
    int index;
};

static int member_body(struct crl_scope *s, void *arg)
{
    struct member *me = arg;
    CHECK_EQ(crl_scope_token(s, &me->m->tokens[me->index]), 0);
    me->m->published++;
    /* The ones to be cancelled would sleep past the test's end. */
    int64_t ns = me->index % 2 ? 100 * CRL_SEC_NS : 10 * CRL_MSEC_NS;
    me->m->results[me->index] = crl_sleep_ns(ns);
    return me->m->results[me->index];
}

static int member_task(void *arg)
{
    struct member *me = arg;
    CHECK_EQ(crl_scope_run(member_body, me), 0); /* a scope catches its own cancel */
    return 0;
}

static int spawn_members(struct crl_scope *s, void *arg)
{
    struct many *m = arg;
    for (int i = 0; i < MANY; i++) {
        struct member me = {m, i};
        CHECK_EQ(crl_spawn_copy(s, member_task, &me, sizeof me), 0);
    }
    while (m->published < MANY)
        CHECK_EQ(crl_yield(), 0);
    for (int i = 1; i < MANY; i += 2)
        CHECK_EQ(crl_token_cancel(m->tokens[i]), 0);
    return 0;
}

/* Hundreds of scopes with tokens at once (the table grows): each token cancels its own
 * scope and no other; afterwards every one reports finished. */
TEST(many_tokens_each_cancel_only_their_scope)
{
    static struct many m;
    memset(&m, 0, sizeof m);
    CHECK_EQ(crl_scope_run(spawn_members, &m), 0);
    for (int i = 0; i < MANY; i++) {
        CHECK_EQ(m.results[i], i % 2 ? -ECANCELED : 0);
        CHECK_EQ(crl_token_cancel(m.tokens[i]), -ESRCH);
    }
}

/* ---- Across cores and runs -------------------------------------------------------------- */

struct across {
    struct crl_cancel_token token;
    int from_other_core, through_call, after_run_outside, in_next_run;
};

static int cancel_here(void *arg) { return crl_token_cancel(*(struct crl_cancel_token *)arg); }

static int cancel_from_core_1(struct crl_scope *s, void *arg)
{
    struct across *a = arg;
    CHECK_EQ(crl_scope_token(s, &a->token), 0);
    a->from_other_core = crl_call(1, cancel_here, &a->token);
    a->through_call = crl_call(crl_token_core(a->token), cancel_here, &a->token);
    CHECK(crl_scope_cancelled(s));
    return 0;
}

static int two_core_main(void *arg) { return crl_scope_run(cancel_from_core_1, arg); }

static int next_run_main(void *arg)
{
    struct across *a = arg;
    a->in_next_run = crl_token_cancel(a->token);
    return 0;
}

/* From another core a token says -EXDEV; a crl_call to its core cancels. Once the runtime
 * has stopped, and in the next one, the token cancels nothing. */
TEST_PLAIN(token_from_another_core_or_run)
{
    TEST_NEED_CORES(2);
    struct across a = {0};
    struct crl_config cfg = {.cores = 2};
    CHECK_EQ(crl_run(&cfg, two_core_main, &a), 0);
    CHECK_EQ(a.from_other_core, -EXDEV);
    CHECK_EQ(a.through_call, 0);
    CHECK_EQ(crl_token_cancel(a.token), -EXDEV); /* no runtime: not from a task of its core */
    struct crl_config one = {.cores = 1};
    CHECK_EQ(crl_run(&one, next_run_main, &a), 0);
    CHECK_EQ(a.in_next_run, -ESRCH);
}

static int token_of_dead(struct crl_scope *s, void *arg)
{
    *(struct crl_scope **)arg = s;
    return 0;
}

static int token_of_returned_scope(void *arg)
{
    (void)arg;
    struct crl_scope *dead = NULL;
    CHECK_EQ(crl_scope_run(token_of_dead, &dead), 0);
    struct crl_cancel_token t;
    crl_scope_token(dead, &t); /* aborts */
    return 0;
}

static void misuse_child(void *arg)
{
    (void)arg;
    struct crl_config cfg = {.cores = 1};
    crl_run(&cfg, token_of_returned_scope, NULL);
}

/* A token of a scope that already returned cannot be made: abort naming the call. */
TEST_PLAIN(token_of_a_scope_that_returned_aborts_naming_the_call)
{
    struct child_result r;
    test_in_child(misuse_child, NULL, &r);
    if (strstr(r.err, "stack-use-after-return")) { /* ASan saw the dead frame first */
        CHECK(!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0);
        return;
    }
    if (!WIFSIGNALED(r.status) || WTERMSIG(r.status) != SIGABRT)
        test_fail(__FILE__, __LINE__, "status %#x, stderr: %s", r.status, r.err);
    CHECK(strstr(r.err, "crl_scope_token") != NULL);
    CHECK(strstr(r.err, "not open") != NULL);
}
