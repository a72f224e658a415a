/* crl_dump: every task of every core, with its state, what it waits for, its times and its
 * backtrace; from a task or from a foreign thread; a core that does not answer (a task spins
 * on it) is shown as such, with the stall detector's report. */
#define _GNU_SOURCE
#include "../test.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- The dump, into memory ---------------------------------------------------------- */

static char dumped[1 << 18];

/* crl_dump into a memfd, then its text into dumped[]. */
static void dump_to_text(void)
{
    int fd = memfd_create("dump", MFD_CLOEXEC);
    CHECK(fd >= 0);
    crl_dump(fd);
    off_t len = lseek(fd, 0, SEEK_CUR);
    CHECK(len > 0);
    if ((size_t)len >= sizeof dumped)
        len = sizeof dumped - 1;
    CHECK_EQ(pread(fd, dumped, (size_t)len, 0), len);
    dumped[len] = '\0';
    close(fd);
    if (getenv("DUMP_TEST_SHOW"))
        fprintf(stderr, "%s", dumped);
}

/* The dump's line of task name ("task 'name' ..."), or NULL. */
static const char *task_line(const char *name)
{
    char key[128];
    snprintf(key, sizeof key, "task '%s' ", name);
    return strstr(dumped, key);
}

/* True if what occurs between the task's line and the next task line (its backtrace). */
static bool in_task_block(const char *name, const char *what)
{
    const char *line = task_line(name);
    if (!line)
        return false;
    const char *end = strstr(line + 1, "task '");
    const char *hit = strstr(line, what);
    return hit && (!end || hit < end);
}

static bool check_or_print(bool ok)
{
    if (!ok)
        fprintf(stderr, "the dump:\n%s\n", dumped);
    return ok;
}

/* ---- A task parked forever on a read --------------------------------------------------- */

static int pipe_fds[2];

KEEP_FRAME int dump_test_reader(int fd);
KEEP_FRAME int dump_test_reader(int fd)
{
    char c;
    ssize_t n = crl_read(fd, &c, 1);
    return n < 0 ? (int)n : 0;
}

static int reader(void *arg)
{
    (void)arg;
    return dump_test_reader(pipe_fds[0]);
}

static int read_body(struct crl_scope *s, void *arg)
{
    (void)arg;
    CHECK_EQ(crl_spawn_named(s, reader, NULL, "reader"), 0);
    CHECK_EQ(crl_sleep_ns(20 * CRL_MSEC_NS), 0); /* it parks on its read */
    dump_to_text();
    crl_scope_cancel(s);
    return 0;
}

TEST(parked_read_shows_name_state_fd_and_backtrace)
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pipe_fds), 0);
    CHECK_EQ(crl_scope_run(read_body, NULL), 0);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    char want[64];
    snprintf(want, sizeof want, "parked: read fd %d", pipe_fds[0]);
    const char *line = task_line("reader");
    CHECK(check_or_print(line != NULL));
    CHECK(check_or_print(strncmp(line + strlen("task 'reader' "), want, strlen(want)) == 0));
    CHECK(check_or_print(in_task_block("reader", "spawned ")));
    CHECK(check_or_print(in_task_block("reader", "last ran ")));
    CHECK(check_or_print(in_task_block("reader", "dump_test_reader")));
    /* the caller (main) on its own core: running, its backtrace through crl_dump */
    CHECK(check_or_print(strstr(dumped, "task 'main' running") != NULL));
    CHECK(check_or_print(strstr(dumped, "core 0: ") != NULL));
}

/* ---- A sleeping task -------------------------------------------------------------------- */

static int sleeper(void *arg)
{
    (void)arg;
    return crl_sleep_ns(10 * CRL_SEC_NS);
}

static int sleep_body(struct crl_scope *s, void *arg)
{
    (void)arg;
    CHECK_EQ(crl_spawn_named(s, sleeper, NULL, "sleeper"), 0);
    CHECK_EQ(crl_yield(), 0); /* it parks on its sleep */
    dump_to_text();
    crl_scope_cancel(s);
    return 0;
}

TEST(sleeping_task_shows_its_deadline)
{
    CHECK_EQ(crl_scope_run(sleep_body, NULL), 0);
    CHECK(check_or_print(in_task_block("sleeper", "parked: sleep until +")));
    const char *at = strstr(task_line("sleeper"), "sleep until +");
    double ms = strtod(at + strlen("sleep until +"), NULL);
    CHECK(ms > 9000 && ms <= 10000);
}

/* ---- A join and a channel wait -------------------------------------------------------------- */

static int spawn_sleeper(struct crl_scope *s, void *arg)
{
    (void)arg;
    return crl_spawn_named(s, sleeper, NULL, "sleeper");
}

static int parent(void *arg)
{
    (void)arg;
    return crl_scope_run(spawn_sleeper, NULL); /* joins its sleeping child */
}

static int join_body(struct crl_scope *s, void *arg)
{
    (void)arg;
    CHECK_EQ(crl_spawn_named(s, parent, NULL, "parent"), 0);
    CHECK_EQ(crl_sleep_ns(5 * CRL_MSEC_NS), 0);
    dump_to_text();
    crl_scope_cancel(s);
    return 0;
}

TEST(joining_task_shows_the_join)
{
    CHECK_EQ(crl_scope_run(join_body, NULL), 0);
    CHECK(check_or_print(in_task_block("parent", "parked: joining scope ")));
    CHECK(check_or_print(in_task_block("sleeper", "parked: sleep until +")));
}

static struct crl_chan chan;

static int receiver(void *arg)
{
    (void)arg;
    int v;
    return crl_chan_recv(&chan, &v);
}

static int chan_body(struct crl_scope *s, void *arg)
{
    (void)arg;
    CHECK_EQ(crl_spawn_named(s, receiver, NULL, "receiver"), 0);
    CHECK_EQ(crl_yield(), 0);
    dump_to_text();
    crl_scope_cancel(s);
    return 0;
}

TEST(channel_wait_shows_the_channel)
{
    CHECK_EQ(crl_chan_init(&chan, sizeof(int), 1), 0);
    CHECK_EQ(crl_scope_run(chan_body, NULL), 0);
    crl_chan_fini(&chan);
    CHECK(check_or_print(in_task_block("receiver", "parked: channel recv ")));
}

/* ---- A cancelled task still waiting for its pool job --------------------------------------- */

static _Atomic bool job_started, remote_started;

/* Sleep until *flag is set (by another thread or core), for at most 10 s. */
static void await_flag(_Atomic bool *flag)
{
    for (int i = 0; i < 10000 && !atomic_load(flag); i++)
        CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    CHECK(atomic_load(flag));
}

static int slow_job(void *arg)
{
    (void)arg;
    atomic_store(&job_started, true);
    struct timespec nap = {0, 300 * 1000 * 1000};
    nanosleep(&nap, NULL); /* a running job is not interrupted by the cancellation */
    return 0;
}

static int offloader(void *arg)
{
    (void)arg;
    return crl_offload(slow_job, NULL);
}

static struct crl_scope *inner;

static int spawn_offloader(struct crl_scope *s, void *arg)
{
    (void)arg;
    inner = s;
    return crl_spawn_named(s, offloader, NULL, "offloader");
}

static int holder(void *arg)
{
    (void)arg;
    return crl_scope_run(spawn_offloader, NULL);
}

static int held_body(struct crl_scope *s, void *arg)
{
    (void)arg;
    atomic_store(&job_started, false);
    CHECK_EQ(crl_spawn_named(s, holder, NULL, "holder"), 0);
    await_flag(&job_started); /* the job runs on a pool thread: too late to take it back */
    crl_scope_cancel(inner);
    CHECK_EQ(crl_sleep_ns(5 * CRL_MSEC_NS), 0); /* the offloader takes it in, waits on */
    dump_to_text();
    return 0;
}

TEST(cancelled_task_still_waiting_for_its_pool_job)
{
    const char *why = test_cannot_run_other_threads();
    if (why)
        TEST_SKIP(why);
    CHECK_EQ(crl_scope_run(held_body, NULL), 0);
    CHECK(check_or_print(
        in_task_block("offloader", "parked: cancelled, still waiting for blocking pool job")));
}

/* ---- A crl_call waiting for another core -------------------------------------------------- */

static int remote_sleep(void *arg)
{
    (void)arg;
    atomic_store(&remote_started, true);
    return crl_sleep_ns(5 * CRL_SEC_NS); /* until cancelled */
}

static int caller(void *arg)
{
    (void)arg;
    return crl_call(1, remote_sleep, NULL);
}

static int call_body(struct crl_scope *s, void *arg)
{
    (void)arg;
    atomic_store(&remote_started, false);
    CHECK_EQ(crl_spawn_named(s, caller, NULL, "caller"), 0);
    await_flag(&remote_started);
    CHECK_EQ(crl_sleep_ns(5 * CRL_MSEC_NS), 0); /* it parks in its sleep on core 1 */
    dump_to_text();
    crl_scope_cancel(s);
    return 0;
}

static int run_call_body(void *arg) { return crl_scope_run(call_body, arg); }

TEST_PLAIN(cross_core_call_shows_the_wait_for_its_reply)
{
    TEST_NEED_CORES(2);
    struct crl_config cfg = {.cores = 2};
    CHECK_EQ(crl_run(&cfg, run_call_body, NULL), 0);
    CHECK(check_or_print(in_task_block("caller", "parked: reply from core 1")));
    CHECK(check_or_print(strstr(dumped, "core 1: ") != NULL));
    /* core 1's part: the call runs there as a task, asleep */
    const char *core1 = strstr(dumped, "core 1: ");
    CHECK(check_or_print(core1 && strstr(core1, "sleep until +") != NULL));
}

/* ---- From a foreign thread ---------------------------------------------------------------- */

/* From a thread of its own, once the core sleeps in its backend's wait (nothing to run, no
 * timer): the request's wake-up makes it turn its loop and answer. Then it lets main go. */
static void *foreign_dump(void *arg)
{
    (void)arg;
    struct timespec nap = {0, 20 * 1000 * 1000};
    nanosleep(&nap, NULL);
    dump_to_text();
    CHECK_EQ(write(pipe_fds[1], "x", 1), 1);
    return NULL;
}

static int foreign_body(struct crl_scope *s, void *arg)
{
    (void)s, (void)arg;
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, foreign_dump, NULL), 0);
    CHECK_EQ(dump_test_reader(pipe_fds[0]), 0); /* until the thread has dumped */
    pthread_join(th, NULL);
    return 0;
}

TEST(dump_from_a_foreign_thread)
{
    const char *why = test_cannot_run_other_threads();
    if (why)
        TEST_SKIP(why);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pipe_fds), 0);
    CHECK_EQ(crl_scope_run(foreign_body, NULL), 0);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    CHECK(check_or_print(strstr(dumped, "dump of 1 running runtime(s)") != NULL));
    char want[64];
    snprintf(want, sizeof want, "task 'main' parked: read fd %d", pipe_fds[0]);
    CHECK(check_or_print(strstr(dumped, want) != NULL));
    CHECK(check_or_print(in_task_block("main", "dump_test_reader")));
    CHECK(check_or_print(strstr(dumped, "(the caller's)") == NULL));
}

/* ---- A core that does not answer --------------------------------------------------------- */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

KEEP_FRAME int dump_test_spin(int64_t ns);
KEEP_FRAME int dump_test_spin(int64_t ns)
{
    volatile uint64_t x = 0;
    int64_t end = mono_ns() + ns;
    while (mono_ns() < end)
        x++;
    return (int)(x & 1);
}

static void *late_dump(void *arg)
{
    (void)arg;
    struct timespec nap = {0, 100 * 1000 * 1000};
    nanosleep(&nap, NULL); /* the spin has been going on 100 ms: stalled and reported */
    dump_to_text();
    return NULL;
}

static void quiet_sink(void *ctx, enum crl_log_level level, const char *line)
{
    (void)ctx, (void)level, (void)line;
}

static int spin_main(void *arg)
{
    (void)arg;
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, late_dump, NULL), 0);
    dump_test_spin(600 * CRL_MSEC_NS); /* past the dump's 200 ms bound */
    pthread_join(th, NULL);
    return 0;
}

TEST_PLAIN(stalled_core_is_shown_as_not_answering)
{
    if (test_slow_env())
        TEST_SKIP("under valgrind and TSan the timing of the stall and the dump is not kept");
    struct crl_config cfg = {.cores = 1, .stall_ns = 20 * CRL_MSEC_NS, .log_fn = quiet_sink};
    CHECK_EQ(crl_run(&cfg, spin_main, NULL), 0);
    CHECK(check_or_print(strstr(dumped, "core 0: not answering (stalled?)") != NULL));
    CHECK(check_or_print(strstr(dumped, "task 'main' had run") != NULL));
    CHECK(check_or_print(strstr(dumped, "dump_test_spin") != NULL));
}

/* ---- crl_dump_tree is as it was ---------------------------------------------------------- */

static int tree_body(struct crl_scope *s, void *arg)
{
    (void)arg;
    CHECK_EQ(crl_spawn_named(s, sleeper, NULL, "sleeper"), 0);
    CHECK_EQ(crl_yield(), 0);
    int fd = memfd_create("tree", MFD_CLOEXEC);
    CHECK(fd >= 0);
    crl_dump_tree(fd);
    off_t len = lseek(fd, 0, SEEK_CUR);
    CHECK(len > 0 && (size_t)len < sizeof dumped);
    CHECK_EQ(pread(fd, dumped, (size_t)len, 0), len);
    dumped[len] = '\0';
    close(fd);
    crl_scope_cancel(s);
    return 0;
}

TEST(dump_tree_is_the_callers_core_only)
{
    CHECK_EQ(crl_scope_run(tree_body, NULL), 0);
    CHECK(check_or_print(strstr(dumped, "corral: core scope tree, ") == dumped));
    CHECK(check_or_print(strstr(dumped, "task 'sleeper' parked\n") != NULL));
}
