/* Tracing end to end: with crl_config.trace_file (or CORRAL_TRACE) set, crl_run leaves a
 * Chrome trace-event JSON file of what every core did, checked by check_trace.py (valid
 * JSON, begin and end events paired, timestamps monotonic per core), naming the tasks that
 * ran; crl_trace_write writes the same on request; tracing off, it says -ENODATA. */
#define _GNU_SOURCE
#include "../test.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* The checker's exit status on a file, with NULL-terminated options. */
#define check_file(...) test_python(getenv("CORRAL_TRACE_CHECK"), __VA_ARGS__)

static char path[64];

static void tmp_path(void)
{
    snprintf(path, sizeof path, "/tmp/corral-trace-%d.json", (int)getpid());
    unlink(path);
}

static int worker(void *arg)
{
    int *sv = arg;
    char b = 'x';
    if (crl_write(sv[1], &b, 1) != 1 || crl_read(sv[0], &b, 1) != 1)
        return -EIO;
    return crl_sleep_ns(100 * CRL_USEC_NS);
}

static int spawn_workers(struct crl_scope *s, void *arg)
{
    for (int i = 0; i < 8; i++) {
        int rc = crl_spawn_ex(s, worker, arg, &(struct crl_spawn_opts){.name = "traced-worker"});
        if (rc)
            return rc;
    }
    return 0;
}

static int on_core_one(void *arg)
{
    (void)arg;
    return crl_yield();
}

static int workload(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    int rc = crl_scope_run(spawn_workers, sv);
    if (!rc && crl_core_count() > 1)
        rc = crl_call(1, on_core_one, NULL);
    close(sv[0]);
    close(sv[1]);
    return rc;
}

/* One core: the file is there after crl_run, valid, paired, and names the workers. */
TEST_PLAIN(trace_file_is_written_at_exit_and_pairs_up)
{
    tmp_path();
    struct crl_config cfg = {.cores = 1, .trace_file = path};
    CHECK_EQ(crl_run(&cfg, workload, NULL), 0);
    CHECK_EQ(check_file(path, "--min-slices", "8", "--name", "traced-worker", (char *)NULL), 0);
    unlink(path);
}

/* Two cores: one timeline per core. */
TEST_PLAIN(each_core_has_its_timeline)
{
    TEST_NEED_CORES(2);
    tmp_path();
    struct crl_config cfg = {.cores = 2, .trace_file = path};
    CHECK_EQ(crl_run(&cfg, workload, NULL), 0);
    CHECK_EQ(check_file(path, "--threads", "2", (char *)NULL), 0);
    unlink(path);
}

/* CORRAL_TRACE turns it on when the config does not. */
TEST_PLAIN(corral_trace_from_environment)
{
    tmp_path();
    setenv("CORRAL_TRACE", path, 1);
    struct crl_config cfg = {.cores = 1};
    int rc = crl_run(&cfg, workload, NULL);
    unsetenv("CORRAL_TRACE");
    CHECK_EQ(rc, 0);
    CHECK_EQ(check_file(path, "--min-slices", "8", (char *)NULL), 0);
    unlink(path);
}

static int writes_on_request(void *arg)
{
    (void)arg;
    CHECK_EQ(workload(NULL), 0);
    char req[80];
    snprintf(req, sizeof req, "%s.req", path);
    FILE *f = fopen(req, "w");
    CHECK(f != NULL);
    CHECK_EQ(crl_trace_write(fileno(f)), 0);
    fclose(f);
    CHECK_EQ(check_file(req, "--min-slices", "8", (char *)NULL), 0);
    unlink(req);
    return 0;
}

/* crl_trace_write from a task, while the cores run. */
TEST_PLAIN(trace_written_on_request)
{
    tmp_path();
    struct crl_config cfg = {.cores = 1, .trace_file = path};
    CHECK_EQ(crl_run(&cfg, writes_on_request, NULL), 0);
    unlink(path);
}

/* ---- Why each slice ended ---------------------------------------------------------------- */

static struct crl_chan reasons_chan;
static struct crl_mutex reasons_mutex;

static int chan_sender(void *arg)
{
    (void)arg;
    int v = 1;
    CHECK_EQ(crl_chan_send(&reasons_chan, &v), 0); /* fills the channel's one slot */
    return crl_chan_send(&reasons_chan, &v);       /* parks: the receiver has not come yet */
}

static int mutex_holder(void *arg)
{
    (void)arg;
    CHECK_EQ(crl_mutex_lock(&reasons_mutex), 0);
    CHECK_EQ(crl_sleep_ns(200 * CRL_USEC_NS), 0); /* the other one waits meanwhile */
    return crl_mutex_unlock(&reasons_mutex);
}

static int mutex_waiter(void *arg)
{
    (void)arg;
    CHECK_EQ(crl_mutex_lock(&reasons_mutex), 0); /* parks: the holder has it */
    return crl_mutex_unlock(&reasons_mutex);
}

static int reader(void *arg)
{
    int *sv = arg;
    char b;
    return crl_read(sv[0], &b, 1) == 1 ? 0 : -EIO; /* parks until the main task writes */
}

static int napper(void *arg)
{
    (void)arg;
    return crl_sleep_ns(CRL_MSEC_NS);
}

static int pool_job(void *arg)
{
    (void)arg;
    return 0;
}

/* Longer than the caller polls for its reply (reply_poll_ns, 100 us): the caller parks. */
static int nap_on_core_one(void *arg)
{
    (void)arg;
    return crl_sleep_ns(5 * CRL_MSEC_NS);
}

static int parks_of_each_kind(struct crl_scope *s, void *arg)
{
    int *sv = arg;
    CHECK_EQ(crl_spawn(s, chan_sender, NULL), 0);
    CHECK_EQ(crl_spawn(s, mutex_holder, NULL), 0);
    CHECK_EQ(crl_spawn(s, mutex_waiter, NULL), 0);
    CHECK_EQ(crl_spawn(s, reader, sv), 0);
    CHECK_EQ(crl_sleep_ns(100 * CRL_USEC_NS), 0); /* timer */
    int v;
    CHECK_EQ(crl_chan_recv(&reasons_chan, &v), 0);
    CHECK_EQ(crl_chan_recv(&reasons_chan, &v), 0);
    CHECK_EQ(crl_write(sv[1], "x", 1), 1); /* ends the reader's wait */
    CHECK_EQ(crl_offload(pool_job, NULL), 0);
    if (crl_core_count() > 1)
        CHECK_EQ(crl_call(1, nap_on_core_one, NULL), 0);
    return crl_spawn(s, napper, NULL); /* not yet run when the body returns: the join waits */
}

static int reasons_main(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    CHECK_EQ(crl_chan_init(&reasons_chan, sizeof(int), 1), 0);
    crl_mutex_init(&reasons_mutex);
    CHECK_EQ(crl_scope_run(parks_of_each_kind, sv), 0); /* and joins them: join */
    crl_chan_fini(&reasons_chan);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

/* Every park tells its reason: the layer whose wait it is names it. */
TEST_PLAIN(each_park_is_traced_with_its_reason)
{
    tmp_path();
    struct crl_config cfg = {.cores = 1, .trace_file = path};
    CHECK_EQ(crl_run(&cfg, reasons_main, NULL), 0);
    CHECK_EQ(check_file(path, "--reason", "timer", "--reason", "io", "--reason", "chan", "--reason",
                        "sync", "--reason", "pool", "--reason", "join", "--reason", "exit",
                        (char *)NULL),
             0);
    CHECK_EQ(check_file(path, "--reason", "other", (char *)NULL), 1); /* none unnamed */
    unlink(path);
}

/* A cross-core call's caller parks for its reply. */
TEST_PLAIN(cross_core_call_is_traced_as_call)
{
    TEST_NEED_CORES(2);
    tmp_path();
    struct crl_config cfg = {.cores = 2, .trace_file = path};
    CHECK_EQ(crl_run(&cfg, reasons_main, NULL), 0);
    CHECK_EQ(check_file(path, "--reason", "call", "--threads", "2", (char *)NULL), 0);
    unlink(path);
}

/* ---- A stall in the trace ------------------------------------------------------------------ */

static int spin_ns(void *arg)
{
    int64_t end = crl_now_ns() + *(const int64_t *)arg;
    volatile uint64_t x = 0;
    while (crl_now_ns() < end) /* never reaches a switch point */
        x++;
    return (int)(x & 0);
}

static void quiet_sink(void *ctx, enum crl_log_level level, const char *line)
{
    (void)ctx, (void)level, (void)line;
}

/* The watchdog's stall is on the core's timeline: its begin and its end, the spinning task's
 * slice around them. */
TEST_PLAIN(stall_is_on_the_cores_timeline)
{
    if (test_slow_env())
        TEST_SKIP("under valgrind and TSan the stall's timing is not kept");
    tmp_path();
    int64_t spin = 80 * CRL_MSEC_NS;
    struct crl_config cfg = {
        .cores = 1, .trace_file = path, .stall_ns = 20 * CRL_MSEC_NS, .log_fn = quiet_sink};
    CHECK_EQ(crl_run(&cfg, spin_ns, &spin), 0);
    CHECK_EQ(check_file(path, "--name", "stall", "--name", "stall end", (char *)NULL), 0);
    unlink(path);
}

/* Tracing off: nothing to write. */
TEST(trace_write_without_tracing_is_enodata) { CHECK_EQ(crl_trace_write(1), -ENODATA); }

/* Outside a runtime: -ESRCH. */
TEST_PLAIN(trace_write_outside_a_runtime_is_esrch) { CHECK_EQ(crl_trace_write(1), -ESRCH); }
