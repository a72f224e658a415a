/* Runtime entry: results, configuration errors, logging, deadlock reporting. */
#define _GNU_SOURCE
#include "../test.h"

#include <errno.h>
#include <sched.h>
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

/* Set by tests to make creating executor thread k fail (src/core/run.c). */
extern unsigned crl__test_fail_thread;

static int cpus_in_mask(void)
{
    cpu_set_t set;
    return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
}

/* Several threads under valgrind stall while one waits in io_uring_enter (valgrind 3.19). */
static bool threads_stall_here(void)
{
    const char *backend = getenv("CORRAL_BACKEND");
    return test_under_valgrind() && !(backend && strcmp(backend, "epoll") == 0);
}

static int core_count(void *arg)
{
    (void)arg;
    return (int)crl_core_count();
}

/* By default one executor per CPU of the affinity mask; CORRAL_CORES overrides that, and a
 * value that is not a count is ignored. */
TEST_PLAIN(run_defaults_to_every_cpu)
{
    if (threads_stall_here() && cpus_in_mask() > 1)
        TEST_SKIP("valgrind with io_uring and several threads");
    const char *saved = getenv("CORRAL_CORES");
    char keep[32] = "";
    if (saved)
        snprintf(keep, sizeof keep, "%s", saved);
    unsetenv("CORRAL_CORES");
    CHECK_EQ(crl_run(NULL, core_count, NULL), cpus_in_mask());
    setenv("CORRAL_CORES", "1", 1);
    CHECK_EQ(crl_run(NULL, core_count, NULL), 1);
    setenv("CORRAL_CORES", "two", 1);
    CHECK_EQ(crl_run(NULL, core_count, NULL), cpus_in_mask());
    if (saved)
        setenv("CORRAL_CORES", keep, 1);
    else
        unsetenv("CORRAL_CORES");
}

/* If an executor thread cannot be created, crl_run fails with the error instead of leaving
 * the threads already started waiting for it, and the next crl_run works. */
TEST_PLAIN(run_fails_cleanly_when_a_thread_cannot_start)
{
    int cpus = cpus_in_mask();
    if (cpus < 2)
        TEST_SKIP("one CPU: no executor threads to start");
    if (threads_stall_here())
        TEST_SKIP("valgrind with io_uring and several threads");
    unsigned cores = cpus >= 3 ? 3 : 2;
    crl__test_fail_thread = cores - 1; /* with 3 cores, thread 1 is up when thread 2 fails */
    CHECK_EQ(crl_run(&(struct crl_config){.cores = cores}, return_42, NULL), -EAGAIN);
    crl__test_fail_thread = 0;
    CHECK_EQ(crl_run(&(struct crl_config){.cores = cores}, return_42, NULL), 42);
}
