/* The flight recorders as Chrome trace-event JSON (src/runtime/trace.c): scripted rings are
 * written to a file that tests/runtime/check_trace.py (named by CORRAL_TRACE_CHECK) checks:
 * valid JSON, every B ended by an E on its tid, timestamps never going back on a tid. The
 * checker itself is shown to refuse broken traces. */
#include "../test.h"
#include "runtime/trace.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *checker(void)
{
    const char *path = getenv("CORRAL_TRACE_CHECK");
    return path && access(path, R_OK) == 0 && access(TEST_PYTHON, X_OK) == 0 ? path : NULL;
}

#define NEED_CHECKER()                                                                             \
    do {                                                                                           \
        if (!checker())                                                                            \
            TEST_SKIP("no " TEST_PYTHON " or CORRAL_TRACE_CHECK");                                 \
    } while (0)

/* Run the checker on a file with NULL-terminated options; its exit status. */
#define check_file(...) test_python(checker(), __VA_ARGS__)

struct tmp {
    char path[64];
    int fd;
};

static void tmp_open(struct tmp *t)
{
    snprintf(t->path, sizeof t->path, "/tmp/corral-trace-XXXXXX");
    t->fd = mkstemp(t->path);
    CHECK(t->fd >= 0);
}

static void tmp_close(struct tmp *t)
{
    close(t->fd);
    unlink(t->path);
}

/* The file's text (static buffer, NUL-terminated). */
static const char *tmp_text(struct tmp *t)
{
    static char buf[1 << 20];
    ssize_t n = pread(t->fd, buf, sizeof buf - 1, 0);
    CHECK(n >= 0);
    buf[n] = 0;
    return buf;
}

static void write_to(struct tmp *t, struct crl__trace_ring *const *rings, unsigned n,
                     const struct crl__trace_json_opts *opts)
{
    CHECK_EQ(ftruncate(t->fd, 0), 0);
    CHECK_EQ(lseek(t->fd, 0, SEEK_SET), 0);
    CHECK_EQ(crl__trace_write_json(t->fd, rings, n, opts), 0);
}

#define NAME(s) ((uint64_t)(uintptr_t)(s))

/* Two cores' scripted timelines: every slice pairs, every core is a named thread. */
TEST_PLAIN(trace_json_pairs_the_slices_of_two_cores)
{
    NEED_CHECKER();
    struct crl__trace_ring *r[3] = {crl__trace_new(64), NULL, crl__trace_new(64)};
    CHECK(r[0] && r[2]);
    crl__trace(r[0], 1000, CRL__TRACE_SPAWN, 1, NAME("root"));
    crl__trace(r[0], 1500, CRL__TRACE_RUN, 1, NAME("root"));
    crl__trace(r[0], 2000, CRL__TRACE_IO_SUBMIT, 0 /* read */, 5);
    crl__trace(r[0], 2100, CRL__TRACE_PARK, 1, CRL__PARK_IO);
    crl__trace(r[0], 9000, CRL__TRACE_IO_COMPLETE, 0, 42);
    crl__trace(r[0], 9001, CRL__TRACE_WAKE, 1, UINT64_MAX);
    crl__trace(r[0], 9100, CRL__TRACE_RUN, 1, NAME("root"));
    crl__trace(r[0], 9900, CRL__TRACE_XCORE_SEND, 2, 1);
    crl__trace(r[0], 9950, CRL__TRACE_PARK, 1, CRL__PARK_EXIT);
    crl__trace(r[2], 1200, CRL__TRACE_XCORE_RECV, 0, 1);
    crl__trace(r[2], 1300, CRL__TRACE_RUN, 2, NAME("worker"));
    crl__trace(r[2], 1400, CRL__TRACE_PARK, 2, CRL__PARK_YIELD);
    crl__trace(r[2], 1500, CRL__TRACE_RUN, 2, NAME("worker"));
    crl__trace(r[2], 1600, CRL__TRACE_RUN, 3, NAME("other")); /* ends worker's slice */
    crl__trace(r[2], 1700, CRL__TRACE_STALL_BEGIN, 3, 25000000);
    crl__trace(r[2], 1800, CRL__TRACE_STALL_END, 3, 30000000);
    crl__trace(r[2], 1900, CRL__TRACE_PARK, 3, CRL__PARK_TIMER);
    struct tmp t;
    tmp_open(&t);
    write_to(&t, r, 3, NULL);
    CHECK_EQ(check_file(t.path, "--slices", "5", "--threads", "2", "--name", "root", "--name",
                        "worker", "--name", "io submit", "--name", "xcore send", "--name",
                        "xcore recv", "--name", "stall", NULL),
             0);
    const char *text = tmp_text(&t);
    CHECK(strstr(text, "\"name\":\"core 2\"") != NULL);
    CHECK(strstr(text, "\"core 1\"") == NULL);   /* no ring, no thread */
    CHECK(strstr(text, "\"ts\":1.500") != NULL); /* ns to us */
    CHECK(strstr(text, "\"reason\":\"io\"") != NULL);
    CHECK(strstr(text, "\"op\":\"read\",\"fd\":5") != NULL);
    tmp_close(&t);
    crl__trace_free(r[0]);
    crl__trace_free(r[2]);
}

/* A ring that wrapped in the middle of a slice, and ends inside another: the first slice
 * begins at the window's first event, the last ends at end_ns; everything pairs. */
TEST_PLAIN(trace_json_wrapped_ring_still_pairs)
{
    NEED_CHECKER();
    struct crl__trace_ring *r = crl__trace_new(16);
    CHECK(r != NULL);
    /* run, submit, park, ... 50 events: the last 16 (34..49) begin with a submit and a park
     * (its run is gone) and end inside the slice run at 48. */
    for (uint32_t i = 0; i < 50; i++) {
        static const uint8_t kinds[3] = {CRL__TRACE_RUN, CRL__TRACE_IO_SUBMIT, CRL__TRACE_PARK};
        uint8_t kind = kinds[i % 3];
        crl__trace(r, 1000 * (int64_t)i, kind, i / 3,
                   kind == CRL__TRACE_RUN ? NAME("looper") : CRL__PARK_IO);
    }
    struct tmp t;
    tmp_open(&t);
    struct crl__trace_json_opts opts = {.end_ns = 1000000};
    write_to(&t, &r, 1, &opts);
    /* The made-up start, the runs at 36..48 (the last closed at end_ns). */
    CHECK_EQ(check_file(t.path, "--slices", "6", "--threads", "1", "--name", "looper", NULL), 0);
    const char *text = tmp_text(&t);
    CHECK(strstr(text, "\"truncated\":true") != NULL);
    CHECK(strstr(text, "\"lost\":34") != NULL);
    CHECK(strstr(text, "\"ts\":1000.000") != NULL); /* the open slice reaches end_ns */
    tmp_close(&t);
    crl__trace_free(r);
}

/* A park whose run is gone, at the very start, with nothing after: still pairs. */
TEST_PLAIN(trace_json_lone_park_pairs)
{
    NEED_CHECKER();
    struct crl__trace_ring *r = crl__trace_new(16);
    CHECK(r != NULL);
    crl__trace(r, 5000, CRL__TRACE_PARK, 9, CRL__PARK_CHAN);
    crl__trace(r, 6000, CRL__TRACE_PARK, 9, CRL__PARK_CHAN); /* a second one ends nothing */
    struct tmp t;
    tmp_open(&t);
    write_to(&t, &r, 1, NULL);
    CHECK_EQ(check_file(t.path, "--slices", "1", NULL), 0);
    tmp_close(&t);
    crl__trace_free(r);
}

/* Names with quotes, backslashes and control characters stay valid JSON and come back. */
TEST_PLAIN(trace_json_escapes_names)
{
    NEED_CHECKER();
    static const char odd[] = "a \"quoted\" \\ name\n\twith \x01 controls";
    struct crl__trace_ring *r = crl__trace_new(16);
    CHECK(r != NULL);
    crl__trace(r, 10, CRL__TRACE_RUN, 1, NAME(odd));
    crl__trace(r, 20, CRL__TRACE_PARK, 1, CRL__PARK_EXIT);
    crl__trace(r, 30, CRL__TRACE_RUN, 2, 0);   /* NULL: "task" */
    crl__trace(r, 40, CRL__TRACE_PARK, 2, 77); /* an unknown reason: its number */
    struct tmp t;
    tmp_open(&t);
    write_to(&t, &r, 1, NULL);
    CHECK_EQ(check_file(t.path, "--slices", "2", "--name", odd, "--name", "task", NULL), 0);
    CHECK(strstr(tmp_text(&t), "\"reason\":77") != NULL);
    tmp_close(&t);
    crl__trace_free(r);
}

/* A clock that went back (the caller's bug) does not make time go back in the output. */
TEST_PLAIN(trace_json_keeps_time_monotonic)
{
    NEED_CHECKER();
    struct crl__trace_ring *r = crl__trace_new(16);
    CHECK(r != NULL);
    crl__trace(r, 5000, CRL__TRACE_RUN, 1, NAME("t"));
    crl__trace(r, 4000, CRL__TRACE_IO_SUBMIT, 1, 3);
    crl__trace(r, 3000, CRL__TRACE_PARK, 1, CRL__PARK_IO);
    crl__trace(r, 6000, CRL__TRACE_WAKE, 1, 1);
    crl__trace(r, 100, CRL__TRACE_SPAWN, 2, NAME("u"));
    struct tmp t;
    tmp_open(&t);
    write_to(&t, &r, 1, NULL);
    CHECK_EQ(check_file(t.path, "--slices", "1", NULL), 0);
    tmp_close(&t);
    crl__trace_free(r);
}

static const char *name_by_id(void *ctx, unsigned core, uint32_t id, uint64_t name)
{
    static char buf[64];
    snprintf(buf, sizeof buf, "%s-%u-%u", (const char *)ctx, core, id);
    return buf;
}

/* With a name callback, names come from it, for the made-up slice of a wrapped ring too. */
TEST_PLAIN(trace_json_names_through_the_callback)
{
    NEED_CHECKER();
    struct crl__trace_ring *r[2] = {NULL, crl__trace_new(16)};
    CHECK(r[1] != NULL);
    crl__trace(r[1], 10, CRL__TRACE_PARK, 4, CRL__PARK_SYNC);
    crl__trace(r[1], 20, CRL__TRACE_RUN, 5, 0);
    struct tmp t;
    tmp_open(&t);
    struct crl__trace_json_opts opts = {.task_name = name_by_id, .ctx = "cb"};
    write_to(&t, r, 2, &opts);
    CHECK_EQ(check_file(t.path, "--slices", "2", "--name", "cb-1-4", "--name", "cb-1-5", NULL), 0);
    tmp_close(&t);
    crl__trace_free(r[1]);
}

/* The watchdog's stall events, in rings of their own, land in time order on their core's
 * timeline: the stall between the slice's begin and its end, its end after. */
TEST_PLAIN(trace_json_merges_the_stall_events)
{
    NEED_CHECKER();
    struct crl__trace_ring *r[2] = {crl__trace_new(16), crl__trace_new(16)};
    struct crl__trace_ring *stalls[2] = {NULL, crl__trace_new(16)};
    CHECK(r[0] && r[1] && stalls[1]);
    crl__trace(r[1], 1000, CRL__TRACE_RUN, 7, NAME("spinner"));
    crl__trace(r[1], 90000, CRL__TRACE_PARK, 7, CRL__PARK_YIELD);
    crl__trace(r[1], 95000, CRL__TRACE_RUN, 8, NAME("after"));
    crl__trace(stalls[1], 2000, CRL__TRACE_STALL_BEGIN, 7, 20000);
    crl__trace(stalls[1], 91000, CRL__TRACE_STALL_END, 7, 89000);
    crl__trace(r[0], 500, CRL__TRACE_RUN, 1, NAME("elsewhere"));
    struct tmp t;
    tmp_open(&t);
    struct crl__trace_json_opts opts = {.end_ns = 100000, .stall_rings = stalls};
    write_to(&t, r, 2, &opts);
    CHECK_EQ(check_file(t.path, "--slices", "3", "--name", "stall", "--name", "stall end",
                        "--reason", "yield", NULL),
             0);
    const char *text = tmp_text(&t);
    const char *spin = strstr(text, "\"name\":\"spinner\"");
    const char *begin = strstr(text, "\"name\":\"stall\"");
    const char *end = strstr(text, "\"name\":\"stall end\"");
    const char *after = strstr(text, "\"name\":\"after\"");
    CHECK(spin && begin && end && after);
    CHECK(spin < begin && begin < end && end < after);
    CHECK(strstr(begin, "\"task\":7,\"ms\":0.020") != NULL);
    CHECK(strstr(end, "\"ms\":0.089") != NULL);
    tmp_close(&t);
    for (int i = 0; i < 2; i++) {
        crl__trace_free(r[i]);
        crl__trace_free(stalls[i]);
    }
}

/* No ring at all: -ENODATA; a bad fd: its write error. */
TEST_PLAIN(trace_json_errors)
{
    struct crl__trace_ring *none[2] = {NULL, NULL};
    CHECK_EQ(crl__trace_write_json(1, none, 2, NULL), -ENODATA);
    CHECK_EQ(crl__trace_write_json(1, none, 0, NULL), -ENODATA);
    struct crl__trace_ring *r = crl__trace_new(16);
    CHECK(r != NULL);
    crl__trace(r, 10, CRL__TRACE_RUN, 1, NAME("t"));
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    close(fds[1]);
    CHECK_EQ(crl__trace_write_json(fds[1], &r, 1, NULL), -EBADF);
    close(fds[0]);
    crl__trace_free(r);
}

struct busy_core {
    struct crl__trace_ring *ring;
    int stop; /* atomic */
};

/* A core's thread: slices, I/O and wakes, until told to stop. */
static void *busy_core_main(void *arg)
{
    struct busy_core *bc = arg;
    static const char *const names[3] = {"accept", "conn", "timer"};
    int64_t ts = 0;
    for (uint32_t i = 0; !__atomic_load_n(&bc->stop, __ATOMIC_ACQUIRE); i++) {
        crl__trace(bc->ring, ts += 10, CRL__TRACE_RUN, i % 3, NAME(names[i % 3]));
        crl__trace(bc->ring, ts += 10, CRL__TRACE_IO_SUBMIT, i % 11, i);
        crl__trace(bc->ring, ts += 10, CRL__TRACE_PARK, i % 3, CRL__PARK_IO);
        crl__trace(bc->ring, ts += 10, CRL__TRACE_IO_COMPLETE, i % 11, 1);
        crl__trace(bc->ring, ts += 10, CRL__TRACE_WAKE, i % 3, UINT64_MAX);
    }
    return NULL;
}

/* Written while its core records (TSan: no race), each trace still checks out. */
TEST_PLAIN(trace_json_while_the_core_records)
{
    NEED_CHECKER();
    struct busy_core bc = {.ring = crl__trace_new(256)};
    CHECK(bc.ring != NULL);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, busy_core_main, &bc), 0);
    struct tmp t;
    tmp_open(&t);
    for (int round = 0; round < 8; round++) {
        write_to(&t, &bc.ring, 1, NULL);
        CHECK_EQ(check_file(t.path, "--threads", "1", NULL), 0);
    }
    __atomic_store_n(&bc.stop, 1, __ATOMIC_RELEASE);
    CHECK_EQ(pthread_join(th, NULL), 0);
    write_to(&t, &bc.ring, 1, NULL);
    CHECK_EQ(check_file(t.path, "--min-slices", "40", "--name", "conn", NULL), 0);
    tmp_close(&t);
    crl__trace_free(bc.ring);
}

static void write_text(struct tmp *t, const char *text)
{
    CHECK_EQ(ftruncate(t->fd, 0), 0);
    CHECK_EQ(pwrite(t->fd, text, strlen(text), 0), (ssize_t)strlen(text));
}

#define NAMED                                                                                      \
    "{\"ph\":\"M\",\"pid\":1,\"tid\":0,\"name\":\"thread_name\",\"args\":{\"name\":\"c\"}}"

/* The checker refuses what it must: it is not a test that always passes. */
TEST_PLAIN(trace_checker_refuses_broken_traces)
{
    NEED_CHECKER();
    static const char *const broken[] = {
        "{\"traceEvents\":[",
        "[]",
        "{\"traceEvents\":[" NAMED ",{\"ph\":\"E\",\"pid\":1,\"tid\":0,\"ts\":1}]}",
        "{\"traceEvents\":[" NAMED ",{\"ph\":\"B\",\"pid\":1,\"tid\":0,\"ts\":1,\"name\":\"x\"}]}",
        "{\"traceEvents\":[" NAMED ",{\"ph\":\"i\",\"pid\":1,\"tid\":0,\"ts\":2,\"name\":\"x\"},"
        "{\"ph\":\"i\",\"pid\":1,\"tid\":0,\"ts\":1,\"name\":\"y\"}]}",
        "{\"traceEvents\":[{\"ph\":\"i\",\"pid\":1,\"tid\":3,\"ts\":2,\"name\":\"x\"}]}",
        "{\"traceEvents\":[" NAMED ",{\"ph\":\"i\",\"pid\":1,\"tid\":0,\"name\":\"x\"}]}",
    };
    struct tmp t;
    tmp_open(&t);
    write_text(&t, "{\"traceEvents\":[" NAMED ",{\"ph\":\"B\",\"pid\":1,\"tid\":0,\"ts\":1,"
                   "\"name\":\"x\"},{\"ph\":\"E\",\"pid\":1,\"tid\":0,\"ts\":1.5}]}");
    CHECK_EQ(check_file(t.path, "--slices", "1", "--name", "x", NULL), 0);
    CHECK_EQ(check_file(t.path, "--slices", "2", NULL), 1);
    CHECK_EQ(check_file(t.path, "--name", "y", NULL), 1);
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        write_text(&t, broken[i]);
        if (check_file(t.path, NULL) != 1)
            test_fail(__FILE__, __LINE__, "the checker passed %s", broken[i]);
    }
    tmp_close(&t);
}
