/* Task-local storage. */
#include "../test.h"

#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

static int key = -1;
static int destroyed;

static void count_destroy(void *v)
{
    (void)v;
    destroyed++;
}

static int set_own_value(void *arg)
{
    CHECK(crl_task_local_get(key) == NULL); /* not inherited from the parent */
    CHECK_EQ(crl_task_local_set(key, arg), 0);
    CHECK_EQ(crl_yield(), 0);
    CHECK(crl_task_local_get(key) == arg); /* untouched by the sibling */
    return 0;
}

static int two_tasks(struct crl_scope *s, void *arg)
{
    int *vals = arg;
    CHECK_EQ(crl_spawn(s, set_own_value, &vals[0]), 0);
    CHECK_EQ(crl_spawn(s, set_own_value, &vals[1]), 0);
    return 0;
}

/* Each task has its own value; the destructor runs when a task ends. */
TEST(task_locals_are_per_task_and_destroyed)
{
    int vals[2];
    if (key < 0)
        key = crl_task_local_create(count_destroy);
    CHECK(key >= 0);
    CHECK_EQ(crl_task_local_set(key, &vals[0]), 0);
    destroyed = 0;
    CHECK_EQ(crl_scope_run(two_tasks, vals), 0);
    CHECK_EQ(destroyed, 2);
    CHECK(crl_task_local_get(key) == &vals[0]);
    CHECK_EQ(crl_task_local_set(key, NULL), 0);
}

/* Keys that were never created are refused. */
TEST(task_local_bad_key)
{
    CHECK_EQ(crl_task_local_set(-1, NULL), -EINVAL);
    CHECK_EQ(crl_task_local_set(CRL_TASK_LOCALS_MAX, NULL), -EINVAL);
    CHECK(crl_task_local_get(CRL_TASK_LOCALS_MAX - 1) == NULL);
}

static void exhaust_keys(void *arg)
{
    (void)arg;
    int last = 0;
    for (int i = 0; i < CRL_TASK_LOCALS_MAX + 1; i++)
        last = crl_task_local_create(NULL);
    _exit(last == -ENOSPC ? 0 : 1);
}

/* Keys run out with -ENOSPC (in a child process: keys are process-wide and never freed). */
TEST_PLAIN(task_local_keys_run_out)
{
    struct child_result r;
    test_in_child(exhaust_keys, NULL, &r);
    CHECK(WIFEXITED(r.status));
    CHECK_EQ(WEXITSTATUS(r.status), 0);
}
