/* Scopes: borrowing from the parent's frame, errors up, cancellation down, nesting. */
#define _GNU_SOURCE
#include "../test.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct slot_arg {
    int *array;
    int index;
};

static int write_slot(void *arg)
{
    struct slot_arg *a = arg;
    CHECK_EQ(crl_sleep_ns((a->index % 3) * CRL_MSEC_NS), 0);
    a->array[a->index] = a->index * 10;
    return 0;
}

static int fill_parent_array(struct crl_scope *s, void *arg)
{
    struct slot_arg *args = arg;
    for (int i = 0; i < 8; i++)
        CHECK_EQ(crl_spawn(s, write_slot, &args[i]), 0);
    return 0;
}

/* Children write into an array in the parent's stack frame; the scope joins them first. */
TEST(child_writes_into_parent_stack_array)
{
    int array[8] = {0};
    struct slot_arg args[8];
    for (int i = 0; i < 8; i++)
        args[i] = (struct slot_arg){array, i};
    CHECK_EQ(crl_scope_run(fill_parent_array, args), 0);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(array[i], i * 10);
}

static int sleep_long_record(void *arg)
{
    *(int *)arg = crl_sleep_ns(10 * CRL_SEC_NS);
    return *(int *)arg;
}

static int fail_soon(void *arg)
{
    (void)arg;
    crl_sleep_ns(CRL_MSEC_NS);
    return -EIO;
}

static int spawn_sleepers_and_failure(struct crl_scope *s, void *arg)
{
    int *results = arg;
    CHECK_EQ(crl_spawn(s, sleep_long_record, &results[0]), 0);
    CHECK_EQ(crl_spawn(s, fail_soon, NULL), 0);
    CHECK_EQ(crl_spawn(s, sleep_long_record, &results[1]), 0);
    return 0;
}

/* The first child error cancels the siblings and is what the scope returns. */
TEST(child_error_cancels_siblings_and_is_returned)
{
    int results[2] = {1, 1};
    int64_t t0 = crl_now_ns();
    CHECK_EQ(crl_scope_run(spawn_sleepers_and_failure, results), -EIO);
    CHECK_EQ(results[0], -ECANCELED);
    CHECK_EQ(results[1], -ECANCELED);
    CHECK_LT(crl_now_ns() - t0, 5 * CRL_SEC_NS);
}

static int body_fails_after_spawning(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, sleep_long_record, arg), 0);
    return -ENOENT;
}

/* A body that fails cancels its children and the scope returns the body's error. */
TEST(body_error_cancels_children)
{
    int result = 1;
    CHECK_EQ(crl_scope_run(body_fails_after_spawning, &result), -ENOENT);
    CHECK_EQ(result, -ECANCELED);
}

static int sleeper(void *arg)
{
    *(int *)arg = crl_sleep_ns(10 * CRL_SEC_NS);
    return 0;
}

static int spawn_then_cancel(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, sleeper, arg), 0);
    CHECK_EQ(crl_yield(), 0); /* let it start sleeping */
    crl_scope_cancel(s);
    CHECK(crl_scope_cancelled(s));
    return 0;
}

/* A child blocked in sleep wakes with -ECANCELED when its scope is cancelled; a scope that
 * was cancelled on purpose returns 0. */
TEST(cancel_wakes_sleeping_child)
{
    int rc = 1;
    CHECK_EQ(crl_scope_run(spawn_then_cancel, &rc), 0);
    CHECK_EQ(rc, -ECANCELED);
}

static int cancel_then_spawn(struct crl_scope *s, void *arg)
{
    crl_scope_cancel(s);
    CHECK_EQ(crl_spawn(s, sleeper, arg), 0);
    return 0;
}

/* A task spawned into a cancelled scope still runs, and its first blocking call fails. */
TEST(spawn_into_cancelled_scope_starts_cancelled)
{
    int rc = 1;
    CHECK_EQ(crl_scope_run(cancel_then_spawn, &rc), 0);
    CHECK_EQ(rc, -ECANCELED);
}

static int return_seven(struct crl_scope *s, void *arg)
{
    (void)s, (void)arg;
    return 7;
}

/* With no failure, the scope returns the body's (non-negative) result. */
TEST(scope_returns_body_result) { CHECK_EQ(crl_scope_run(return_seven, NULL), 7); }

struct nested {
    int inner_result;
    int grandchild;
};

static int grandchild_sleeps(void *arg)
{
    struct nested *n = arg;
    n->grandchild = crl_sleep_ns(10 * CRL_SEC_NS);
    return n->grandchild;
}

static int inner_body(struct crl_scope *s, void *arg)
{
    return crl_spawn(s, grandchild_sleeps, arg);
}

static int child_with_inner_scope(void *arg)
{
    struct nested *n = arg;
    n->inner_result = crl_scope_run(inner_body, n);
    return n->inner_result;
}

static int outer_body(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, child_with_inner_scope, arg), 0);
    CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    crl_scope_cancel(s);
    return 0;
}

/* Cancelling a scope reaches tasks in scopes nested below it, in other tasks. */
TEST(cancel_reaches_nested_scopes)
{
    struct nested n = {1, 1};
    CHECK_EQ(crl_scope_run(outer_body, &n), 0);
    CHECK_EQ(n.grandchild, -ECANCELED);
    CHECK_EQ(n.inner_result, -ECANCELED);
}

struct chain {
    int depth, reached, cancelled;
};

static int descend(void *arg);

static int descend_body(struct crl_scope *s, void *arg) { return crl_spawn(s, descend, arg); }

static int descend(void *arg)
{
    struct chain *c = arg;
    if (++c->reached < c->depth)
        return crl_scope_run(descend_body, c);
    int rc = crl_sleep_ns(10 * CRL_SEC_NS);
    if (rc == -ECANCELED)
        c->cancelled = 1;
    return rc;
}

static int deep_body(struct crl_scope *s, void *arg)
{
    struct chain *c = arg;
    CHECK_EQ(crl_spawn(s, descend, c), 0);
    while (c->reached < c->depth)
        CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    crl_scope_cancel(s); /* walks thousands of nested scopes from a 64 KiB stack */
    return 0;
}

/* Cancellation of a very deep scope tree does not recurse on the canceller's stack. */
TEST(cancel_of_deep_tree_is_iterative)
{
    struct chain c = {.depth = 3000};
    CHECK_EQ(crl_scope_run(deep_body, &c), 0);
    CHECK_EQ(c.cancelled, 1);
}

struct dump_arg {
    int fd;
    int sleep_rc; /* in the caller's frame: the body's own frame ends before the join */
};

static int dump_body(struct crl_scope *s, void *arg)
{
    struct dump_arg *d = arg;
    int fd = d->fd;
    CHECK_EQ(crl_spawn(s, sleeper, &d->sleep_rc), 0);
    CHECK_EQ(crl_yield(), 0);
    crl_dump_tree(fd);
    crl_scope_cancel(s);
    return 0;
}

/* The scope tree dump names the live tasks and their states. */
TEST(dump_tree_names_tasks)
{
    int fd = memfd_create("tree", 0);
    CHECK(fd >= 0);
    struct dump_arg d = {fd, 1};
    CHECK_EQ(crl_scope_run(dump_body, &d), 0);
    CHECK_EQ(d.sleep_rc, -ECANCELED);
    char buf[2048] = {0};
    CHECK(pread(fd, buf, sizeof buf - 1, 0) > 0);
    close(fd);
    CHECK(strstr(buf, "task 'sleeper' parked") != NULL);
    CHECK(strstr(buf, "task 'main' running") != NULL);
    CHECK(strstr(buf, "(root)") != NULL);
}

static int borrow_body_local(void *arg)
{
    int *slot = arg;
    CHECK_EQ(crl_sleep_ns(2 * CRL_MSEC_NS), 0);
    *slot = 42;
    return 0;
}

static int join_before_return(struct crl_scope *s, void *arg)
{
    int local = 0; /* borrowed by the child: safe only because we join before returning */
    CHECK_EQ(crl_spawn(s, borrow_body_local, &local), 0);
    CHECK_EQ(crl_scope_join(s), 0);
    CHECK_EQ(local, 42);
    *(int *)arg = local;
    return 0;
}

/* crl_scope_join lets a body wait for its children before its own locals go away. */
TEST(scope_join_waits_inside_body)
{
    int out = 0;
    CHECK_EQ(crl_scope_run(join_before_return, &out), 0);
    CHECK_EQ(out, 42);
}
