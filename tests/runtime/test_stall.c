/* The stall detector: a task that runs past the threshold without a switch point is reported
 * with its name and a backtrace, again at doubling intervals, then once when it ends; an idle
 * core never is; the threshold comes from the config or CORRAL_STALL_MS; reports are limited
 * to 5 a minute per core. */
#define _GNU_SOURCE
#include "../test.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* What the log sink got: the watchdog calls it from its own thread. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char logged[64][4096];
static int nlogged;

static void sink(void *ctx, enum crl_log_level level, const char *msg)
{
    (void)ctx, (void)level;
    pthread_mutex_lock(&log_lock);
    if (nlogged < 64)
        snprintf(logged[nlogged++], sizeof logged[0], "%s", msg);
    pthread_mutex_unlock(&log_lock);
}

void test_before_each(void)
{
    pthread_mutex_lock(&log_lock);
    nlogged = 0;
    pthread_mutex_unlock(&log_lock);
    unsetenv("CORRAL_STALL_MS");
}

/* Messages containing what. */
static int count_logged(const char *what)
{
    int n = 0;
    pthread_mutex_lock(&log_lock);
    for (int i = 0; i < nlogged; i++)
        n += strstr(logged[i], what) != NULL;
    pthread_mutex_unlock(&log_lock);
    return n;
}

static void print_logged(void)
{
    pthread_mutex_lock(&log_lock);
    for (int i = 0; i < nlogged; i++)
        fprintf(stderr, "log %d: %s\n", i, logged[i]);
    pthread_mutex_unlock(&log_lock);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Exported (dladdr without libdw sees only those) and kept as a frame of its own. */
KEEP_FRAME int stall_test_spin(int64_t ns);
KEEP_FRAME int stall_test_spin(int64_t ns)
{
    volatile uint64_t x = 0;
    int64_t end = mono_ns() + ns;
    while (mono_ns() < end)
        x++;
    return (int)(x & 1);
}

/* Blocked in the kernel, as a handler calling sleep() would be: the sample's signal cuts a
 * nanosleep short (EINTR), so it sleeps again until the time is up. */
KEEP_FRAME int stall_test_block(int64_t ns);
KEEP_FRAME int stall_test_block(int64_t ns)
{
    int64_t end = mono_ns() + ns;
    int64_t left;
    while ((left = end - mono_ns()) > 0) {
        struct timespec ts = {left / 1000000000, left % 1000000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

struct job {
    int (*fn)(int64_t);
    int64_t ns;
};

static int run_job(void *arg)
{
    struct job *j = arg;
    return j->fn(j->ns);
}

static int spawn_body(struct crl_scope *s, void *arg)
{
    return crl_spawn_ex(s, run_job, arg, &(struct crl_spawn_opts){.name = "spinner"});
}

static int run_in_named_task(void *arg) { return crl_scope_run(spawn_body, arg); }

static struct crl_config cfg_with(int64_t stall_ns)
{
    return (struct crl_config){.cores = 1, .stall_ns = stall_ns, .log_fn = sink};
}

/* A 60 ms spin under 20 ms: reported with the task's name and a backtrace through the
 * spinning function, at 20 and 40 ms (doubling: the next would be at 80), then its end. */
TEST_PLAIN(spinning_task_is_reported_with_name_and_backtrace)
{
    if (test_slow_env())
        TEST_SKIP("signals are deferred under valgrind and TSan: the sample may not come");
    struct crl_config cfg = cfg_with(20 * CRL_MSEC_NS);
    struct job j = {stall_test_spin, 60 * CRL_MSEC_NS};
    CHECK_EQ(crl_run(&cfg, run_in_named_task, &j), 0);
    if (count_logged("stall: task 'spinner'") == 0)
        print_logged();
    CHECK(count_logged("stall: task 'spinner'") >= 1);
    CHECK(count_logged("stall_test_spin") >= 1);
    CHECK_EQ(count_logged("stall ended after"), 1);
    int reports = count_logged("stall: task 'spinner'");
    if (reports < 1 || reports > 3)
        print_logged();
    CHECK(reports >= 1 && reports <= 3); /* 2, at 20 and 40 ms, give or take a tick */
}

/* The doubling rule over a longer stall: 20, 40, 80, 160 ms -> 4 reports in 250 ms. */
TEST_PLAIN(reports_come_at_doubling_intervals)
{
    if (test_slow_env())
        TEST_SKIP("signals are deferred under valgrind and TSan: no timing checks");
    struct crl_config cfg = cfg_with(20 * CRL_MSEC_NS);
    struct job j = {stall_test_spin, 250 * CRL_MSEC_NS};
    CHECK_EQ(crl_run(&cfg, run_in_named_task, &j), 0);
    int reports = count_logged("stall: task 'spinner'");
    if (reports < 3 || reports > 5)
        print_logged();
    CHECK(reports >= 3 && reports <= 5);
}

/* A task blocked in a syscall (sleep) stalls its core just the same: wall time, not CPU. */
TEST_PLAIN(task_blocked_in_syscall_is_reported)
{
    if (test_slow_env())
        TEST_SKIP("signals are deferred under valgrind and TSan: the sample may not come");
    struct crl_config cfg = cfg_with(20 * CRL_MSEC_NS);
    struct job j = {stall_test_block, 80 * CRL_MSEC_NS};
    CHECK_EQ(crl_run(&cfg, run_in_named_task, &j), 0);
    if (count_logged("stall_test_block") == 0)
        print_logged();
    CHECK(count_logged("stall: task 'spinner'") >= 1);
    CHECK(count_logged("stall_test_block") >= 1);
}

static int sleeps(void *arg)
{
    (void)arg;
    return crl_sleep_ns(120 * CRL_MSEC_NS);
}

/* A core asleep in its wait is idle, not stalled. */
TEST_PLAIN(idle_core_is_never_reported)
{
    if (test_slow_env()) /* valgrind's first translation of the start-up code outlasts 10 ms */
        TEST_SKIP("10 ms without a switch is not a stall under valgrind or TSan");
    struct crl_config cfg = cfg_with(10 * CRL_MSEC_NS);
    CHECK_EQ(crl_run(&cfg, sleeps, NULL), 0);
    CHECK_EQ(count_logged("stall"), 0);
}

/* stall_ns < 0, or CORRAL_STALL_MS=0 with stall_ns 0: no detector. */
TEST_PLAIN(detector_turned_off)
{
    struct crl_config cfg = cfg_with(-1);
    struct job j = {stall_test_spin, 50 * CRL_MSEC_NS};
    CHECK_EQ(crl_run(&cfg, run_in_named_task, &j), 0);
    CHECK_EQ(count_logged("stall"), 0);
    setenv("CORRAL_STALL_MS", "0", 1);
    cfg = cfg_with(0);
    CHECK_EQ(crl_run(&cfg, run_in_named_task, &j), 0);
    CHECK_EQ(count_logged("stall"), 0);
}

/* CORRAL_STALL_MS sets the threshold when the config leaves it 0. */
TEST_PLAIN(threshold_from_environment)
{
    if (test_slow_env())
        TEST_SKIP("signals are deferred under valgrind and TSan: the sample may not come");
    setenv("CORRAL_STALL_MS", "15", 1);
    struct crl_config cfg = cfg_with(0);
    struct job j = {stall_test_spin, 60 * CRL_MSEC_NS};
    CHECK_EQ(crl_run(&cfg, run_in_named_task, &j), 0);
    CHECK(count_logged("stall: task 'spinner'") >= 1);
    setenv("CORRAL_STALL_MS", "1000", 1);
    test_before_each();
    setenv("CORRAL_STALL_MS", "1000", 1);
    CHECK_EQ(crl_run(&cfg, run_in_named_task, &j), 0);
    CHECK_EQ(count_logged("stall"), 0);
}

static int stalls_seven_times(void *arg)
{
    (void)arg;
    for (int i = 0; i < 7; i++) {
        stall_test_spin(40 * CRL_MSEC_NS);
        int rc = crl_sleep_ns(60 * CRL_MSEC_NS);
        if (rc)
            return rc;
    }
    return 0;
}

/* Seven stalls in a few hundred ms: five reports, and the stalls all counted. */
TEST_PLAIN(at_most_five_reports_a_minute)
{
    if (test_slow_env())
        TEST_SKIP("signals are deferred under valgrind and TSan: no timing checks");
    struct crl_config cfg = cfg_with(25 * CRL_MSEC_NS); /* one report each (the next: 50) */
    CHECK_EQ(crl_run(&cfg, stalls_seven_times, NULL), 0);
    /* A sample that did not come back in time names the task '?': count every report. */
    int reports = count_logged("stall: task '"), ended = count_logged("stall ended after");
    if (reports != 5 || ended < 6)
        print_logged();
    /* Each stall is seen on its own, unless a starved watchdog merged two: then fewer. */
    CHECK(ended >= 4);
    CHECK_EQ(reports, ended >= 5 ? 5 : ended);
}
