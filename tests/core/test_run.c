/* Runtime entry: results, configuration errors, logging, deadlock reporting. */
#define _GNU_SOURCE
#include "../test.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

static int return_42(void *arg)
{
    (void)arg;
    return 42;
}
static int return_eio(void *arg)
{
    (void)arg;
    return -EIO;
}

/* crl_run returns what the root task returned. */
TEST_PLAIN(run_returns_main_result)
{
    CHECK_EQ(crl_run(NULL, return_42, NULL), 42);
    CHECK_EQ(crl_run(NULL, return_eio, NULL), -EIO);
}

static int failing_child(void *arg)
{
    (void)arg;
    return -EPROTO;
}
static int spawn_failing(struct crl_scope *s, void *arg)
{
    (void)arg;
    return crl_spawn(s, failing_child, NULL);
}
static int main_with_failing_scope(void *arg)
{
    (void)arg;
    return crl_scope_run(spawn_failing, NULL);
}

/* A child's error travels up through its scope and out of crl_run. */
TEST_PLAIN(run_returns_child_error_through_scopes)
{
    CHECK_EQ(crl_run(NULL, main_with_failing_scope, NULL), -EPROTO);
}

/* Bad configurations are refused before anything runs. */
TEST_PLAIN(run_rejects_bad_config)
{
    struct crl_config many = {.cores = 100000}; /* more than the affinity mask has */
    CHECK_EQ(crl_run(&many, return_42, NULL), -EINVAL);
    struct crl_config tiny = {.stack_size = 1024};
    CHECK_EQ(crl_run(&tiny, return_42, NULL), -EINVAL);
    struct crl_config level = {.log_level = 99};
    CHECK_EQ(crl_run(&level, return_42, NULL), -EINVAL);
}

/* crl_run inside a running runtime is refused. */
TEST(run_nested_is_busy) { CHECK_EQ(crl_run(NULL, return_42, NULL), -EBUSY); }

struct captured {
    int lines;
    char last[256];
    enum crl_log_level level;
};

static void capture(void *ctx, enum crl_log_level level, const char *line)
{
    struct captured *c = ctx;
    c->lines++;
    c->level = level;
    snprintf(c->last, sizeof c->last, "%s", line);
}

static int log_some(void *arg)
{
    (void)arg;
    crl_log(CRL_LOG_DEBUG, "dropped %d", 1);
    crl_log(CRL_LOG_WARN, "kept %d", 2);
    return 0;
}

/* Messages go to the configured sink, filtered by level. */
TEST_PLAIN(log_hook_receives_lines_at_or_below_level)
{
    struct captured cap = {0};
    struct crl_config cfg = {.log_fn = capture, .log_ctx = &cap, .log_level = CRL_LOG_INFO};
    CHECK_EQ(crl_run(&cfg, log_some, NULL), 0);
    CHECK_EQ(cap.lines, 1);
    CHECK_EQ(cap.level, CRL_LOG_WARN);
    CHECK(strcmp(cap.last, "kept 2") == 0);
}

static int wait_forever(void *arg)
{
    struct crl_event ev;
    crl_event_init(&ev);
    (void)arg;
    return crl_event_wait(&ev);
}

static void run_deadlocked(void *arg)
{
    (void)arg;
    crl_run(NULL, wait_forever, NULL);
}

/* A runtime whose tasks all wait on nothing that can happen aborts with the scope tree. */
TEST_PLAIN(deadlock_aborts_naming_the_blocked_task)
{
    struct child_result r;
    test_in_child(run_deadlocked, NULL, &r);
    CHECK(WIFSIGNALED(r.status));
    CHECK_EQ(WTERMSIG(r.status), SIGABRT);
    CHECK(strstr(r.err, "deadlock") != NULL);
    CHECK(strstr(r.err, "task 'main' parked") != NULL);
}

/* The clock never goes backwards. */
TEST(now_is_monotonic)
{
    int64_t a = crl_now_ns(), b = crl_now_ns();
    CHECK_GE(b, a);
    CHECK(a > 0);
}
