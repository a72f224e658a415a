/* Fault injection (CORRAL_FAULTS, src/io/faults.c): the spec's parser, the determinism of
 * the decisions, and each fault as the caller sees it: EINTR and EAGAIN absorbed by the
 * backend, ECONNRESET and ENOMEM reported, short reads and writes really short with the data
 * intact, delayed ops completing out of order, spawns refused. */
#define _GNU_SOURCE
#include "../test.h"
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- The spec --------------------------------------------------------------------------- */

TEST_PLAIN(faults_spec_parses_good_values)
{
    struct crl__faults_cfg cfg;
    CHECK_EQ(crl__faults_parse("", &cfg), 0);
    CHECK(!cfg.on);
    CHECK_EQ(crl__faults_parse(NULL, &cfg), 0);
    CHECK(!cfg.on);
    CHECK_EQ(crl__faults_parse("seed=7,rate=0.02,errors=EINTR:EAGAIN:ECONNRESET:ENOMEM:short:delay",
                               &cfg),
             0);
    CHECK(cfg.on);
    CHECK_EQ(cfg.seed, 7);
    CHECK(cfg.rate == 0.02);
    CHECK_EQ(__builtin_popcount(cfg.errors), 6);
    CHECK_EQ(crl__faults_parse("errors=ENOMEM", &cfg), 0);
    CHECK_EQ(cfg.errors, CRL__FAULT_BIT(CRL__FAULT_ENOMEM));
    CHECK_EQ(cfg.seed, 1); /* the defaults for what is not said */
    CHECK(cfg.rate == 0.01);
    CHECK_EQ(crl__faults_parse("seed=0x10,rate=1,errors=all", &cfg), 0);
    CHECK_EQ(cfg.seed, 16);
    CHECK_EQ(__builtin_popcount(cfg.errors), 6);
    CHECK_EQ(crl__faults_parse("rate=0", &cfg), 0);
    CHECK(cfg.on);
}

TEST_PLAIN(faults_spec_refuses_bad_values)
{
    static const char *const bad[] = {
        "seed",           "seed=",         "seed=x",        "seed=-1",
        "rate=2",         "rate=-0.1",     "rate=0.5x",     "rate=nan",
        "errors=",        "errors=EBOGUS", "errors=EINTR:", "errors=:EINTR",
        "bogus=1",        "seed=1,",       ",seed=1",       "=1",
        "seed=1,,rate=1",
    };
    struct crl__faults_cfg cfg;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (crl__faults_parse(bad[i], &cfg) != -EINVAL)
            test_fail(__FILE__, __LINE__, "'%s' was accepted", bad[i]);
        CHECK(!cfg.on);
    }
}

static void run_with_bad_env(void *arg)
{
    (void)arg;
    setenv("CORRAL_FAULTS", "rate=7", 1);
    crl__faults_override(NULL);
    exit(crl_run(NULL, NULL, NULL) == -EINVAL ? 0 : 1);
}

/* A bad CORRAL_FAULTS is an error crl_run reports (and logs), not a run without faults. */
TEST_PLAIN(bad_faults_spec_makes_crl_run_refuse)
{
    struct child_result r;
    test_in_child(run_with_bad_env, NULL, &r);
    if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
        test_fail(__FILE__, __LINE__, "child status %#x, stderr:\n%s", r.status, r.err);
    CHECK(strstr(r.err, "CORRAL_FAULTS=rate=7") != NULL);
}

/* ---- Decisions -------------------------------------------------------------------------- */

static void draw_many(uint64_t seed, unsigned core, enum crl__fault *out, size_t n)
{
    struct crl__faults_cfg cfg;
    CHECK_EQ(crl__faults_parse("rate=0.3", &cfg), 0);
    struct crl__fault_rng r;
    crl__fault_rng_seed(&r, seed, core);
    for (size_t i = 0; i < n; i++)
        out[i] = crl__faults_draw(&r, &cfg, ~0u);
}

/* The same seed and core id give the same decisions; another seed or core, others. */
TEST_PLAIN(same_seed_and_core_draw_the_same_faults)
{
    enum { N = 2000 };
    static enum crl__fault a[N], b[N], other_core[N], other_seed[N];
    draw_many(7, 0, a, N);
    draw_many(7, 0, b, N);
    draw_many(7, 1, other_core, N);
    draw_many(8, 0, other_seed, N);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, other_core, sizeof a) != 0);
    CHECK(memcmp(a, other_seed, sizeof a) != 0);
    size_t faults = 0, seen = 0;
    for (size_t i = 0; i < N; i++) {
        faults += a[i] != CRL__FAULT_NONE;
        seen |= 1u << a[i];
    }
    CHECK(faults > N / 5 && faults < N * 2 / 5);  /* about the rate */
    CHECK_EQ(seen, (1u << CRL__FAULT_COUNT) - 1); /* each fault, and none */
}

/* A decision only picks among the faults the op admits, and rate 0 picks none. */
TEST_PLAIN(draws_keep_to_the_allowed_faults)
{
    struct crl__faults_cfg cfg;
    CHECK_EQ(crl__faults_parse("rate=1", &cfg), 0);
    struct crl__fault_rng r;
    crl__fault_rng_seed(&r, 1, 0);
    unsigned allowed = CRL__FAULT_BIT(CRL__FAULT_EINTR) | CRL__FAULT_BIT(CRL__FAULT_DELAY);
    for (int i = 0; i < 200; i++) {
        enum crl__fault f = crl__faults_draw(&r, &cfg, allowed);
        CHECK(f == CRL__FAULT_EINTR || f == CRL__FAULT_DELAY);
    }
    CHECK_EQ(crl__faults_draw(&r, &cfg, 0), CRL__FAULT_NONE);
    CHECK_EQ(crl__faults_parse("rate=0", &cfg), 0);
    for (int i = 0; i < 200; i++)
        CHECK_EQ(crl__faults_draw(&r, &cfg, ~0u), CRL__FAULT_NONE);
}

/* ---- Each fault in a run ---------------------------------------------------------------- */

static void run_faulty(const char *spec, crl_task_fn *body)
{
    CHECK_EQ(crl__faults_override(spec), 0);
    int rc = crl_run(NULL, body, NULL);
    crl__faults_override(NULL);
    CHECK_EQ(rc, 0);
}

static void socket_pair(int sv[2])
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

static int absorbed_body(void *arg)
{
    (void)arg;
    int sv[2];
    socket_pair(sv);
    unsigned long before = crl__faults_injected();
    char buf[16] = {0};
    CHECK_EQ(write(sv[1], "hello", 5), 5);
    CHECK_EQ(crl_read(sv[0], buf, sizeof buf), 5); /* data there at once */
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(crl_send(sv[0], "world", 5, 0), 5);
    CHECK_EQ(crl_recv(sv[1], buf, sizeof buf, 0), 5);
    CHECK(memcmp(buf, "world", 5) == 0);
    CHECK_GE(crl__faults_injected() - before, 6); /* three per op, the most an op takes */
    crl_close(sv[0]);
    crl_close(sv[1]);
    return 0;
}

/* At rate 1, EINTR and EAGAIN are injected on each op's first tries: the backend retries
 * (after readiness, for EAGAIN) and the caller gets the data, never the error. */
TEST_PLAIN(injected_eintr_and_eagain_are_absorbed_by_the_backend)
{
    run_faulty("seed=3,rate=1,errors=EINTR:EAGAIN", absorbed_body);
    run_faulty("seed=4,rate=1,errors=EINTR", absorbed_body);
    run_faulty("seed=5,rate=1,errors=EAGAIN", absorbed_body);
}

static int recv_one(void *arg)
{
    char buf[8];
    return (int)crl_recv(*(int *)arg, buf, sizeof buf, 0);
}

static int waiting_body(void *arg)
{
    (void)arg;
    int sv[2];
    socket_pair(sv);
    int64_t t0 = crl_now_ns();
    CHECK_EQ(crl_with_deadline(t0 + 20 * CRL_MSEC_NS, recv_one, &sv[0]), -ETIMEDOUT);
    CHECK_GE(crl_now_ns() - t0, 20 * CRL_MSEC_NS); /* an injected EAGAIN is not an answer */
    crl_close(sv[0]);
    crl_close(sv[1]);
    return 0;
}

/* A receive with nothing to read, met by injected EAGAINs, waits as without them; its
 * cancellation comes back as a timeout, not as EAGAIN. */
TEST_PLAIN(receive_under_injected_eagain_still_waits_and_times_out)
{
    run_faulty("seed=6,rate=1,errors=EINTR:EAGAIN", waiting_body);
}

static int reset_body(void *arg)
{
    (void)arg;
    int sv[2];
    socket_pair(sv);
    char buf[8];
    CHECK_EQ(write(sv[1], "x", 1), 1);
    CHECK_EQ(crl_recv(sv[0], buf, sizeof buf, 0), -ECONNRESET);
    CHECK_EQ(crl_send(sv[0], "y", 1, 0), -ECONNRESET);
    CHECK_EQ(crl_read(sv[0], buf, sizeof buf), -ECONNRESET);
    char path[] = "/tmp/corral-faults-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    CHECK_EQ(write(fd, "file", 4), 4);
    CHECK_EQ(crl_pread(fd, buf, sizeof buf, 0), 4); /* a file cannot be reset */
    crl_close(fd);
    crl_close(sv[0]);
    crl_close(sv[1]);
    return 0;
}

/* An injected ECONNRESET reaches the caller of a socket op, and only of a socket op. */
TEST_PLAIN(injected_econnreset_reaches_the_caller)
{
    run_faulty("seed=1,rate=1,errors=ECONNRESET", reset_body);
}

static int child(void *arg)
{
    (void)arg;
    return 0;
}

static int spawn_body(struct crl_scope *s, void *arg)
{
    (void)arg;
    CHECK_EQ(crl_spawn(s, child, NULL), -ENOMEM);
    struct crl_spawn_opts big = {.stack_size = 256 * 1024};
    CHECK_EQ(crl_spawn_ex(s, child, NULL, &big), -ENOMEM);
    crl__faults_pause(true);
    CHECK_EQ(crl_spawn(s, child, NULL), 0); /* paused: the hook lets it through */
    crl__faults_pause(false);
    return 0;
}

static int enomem_body(void *arg)
{
    (void)arg;
    int sv[2];
    socket_pair(sv);
    char buf[8];
    CHECK_EQ(write(sv[1], "x", 1), 1);
    CHECK_EQ(crl_recv(sv[0], buf, sizeof buf, 0), -ENOMEM);
    CHECK_EQ(crl_scope_run(spawn_body, NULL), 0);
    crl_close(sv[0]);
    crl_close(sv[1]);
    return 0;
}

/* ENOMEM fails ops and, through the hook in stack allocation, spawns (the root task, which
 * the run cannot do without, is spared). */
TEST_PLAIN(injected_enomem_fails_ops_and_spawns)
{
    run_faulty("seed=2,rate=1,errors=ENOMEM", enomem_body);
}

enum { SHORT_LEN = 4000 };

static int short_body(void *arg)
{
    (void)arg;
    int sv[2];
    socket_pair(sv);
    static char out[SHORT_LEN], in[SHORT_LEN];
    for (int i = 0; i < SHORT_LEN; i++)
        out[i] = (char)(i * 7 + i / 251);
    ssize_t n = crl_write(sv[1], out, SHORT_LEN);
    CHECK(n >= 1 && n < SHORT_LEN);
    CHECK_EQ(crl_write_all(sv[1], out + n, SHORT_LEN - (size_t)n), SHORT_LEN - n);
    struct iovec iov[3] = {{out, 10}, {out + 10, 10}, {out + 20, 10}};
    n = crl_writev(sv[1], iov, 3);
    CHECK(n == 10 || n == 20); /* a strict prefix, whole vectors */
    size_t got = 0;
    int reads = 0;
    while (got < SHORT_LEN) {
        ssize_t r = crl_read(sv[0], in + got, SHORT_LEN - got);
        CHECK(r >= 1 && (r < (ssize_t)(SHORT_LEN - got) || SHORT_LEN - got == 1));
        got += (size_t)r;
        reads++;
    }
    CHECK(memcmp(in, out, SHORT_LEN) == 0); /* what a short read left is read next */
    CHECK_GE(reads, 2);
    char v[20];
    CHECK_EQ(crl_recv(sv[0], v, 1, 0), 1); /* one byte cannot be shortened */
    CHECK_EQ(v[0], out[0]);
    crl_close(sv[0]);
    crl_close(sv[1]);
    return 0;
}

/* A short read or write really moved only the bytes it reports: the stream stays whole. */
TEST_PLAIN(short_reads_and_writes_are_short_and_the_data_intact)
{
    run_faulty("seed=9,rate=1,errors=short", short_body);
}

enum { NOPS = 64 };

struct order {
    int next;
    int done_at[NOPS];
};

static struct order order;

static int nop_task(void *arg)
{
    int i = (int)(intptr_t)arg;
    CHECK_EQ(crl_io_nop(), 0);
    order.done_at[i] = order.next++;
    return 0;
}

static int nops_body(struct crl_scope *s, void *arg)
{
    (void)arg;
    for (int i = 0; i < NOPS; i++)
        CHECK_EQ(crl_spawn(s, nop_task, (void *)(intptr_t)i), 0);
    return 0;
}

static int delay_body(void *arg)
{
    (void)arg;
    order = (struct order){0};
    CHECK_EQ(crl_scope_run(nops_body, NULL), 0);
    int inversions = 0;
    for (int i = 1; i < NOPS; i++)
        inversions += order.done_at[i] < order.done_at[i - 1];
    CHECK_GE(inversions, 1); /* started in order, done in another */
    int sv[2];
    socket_pair(sv);
    CHECK_EQ(crl_with_deadline(crl_now_ns() + CRL_MSEC_NS, recv_one, &sv[0]),
             -ETIMEDOUT); /* a held op can be cancelled */
    CHECK_EQ(crl_close(sv[0]), 0);
    crl_close(sv[1]);
    return 0;
}

/* Delayed ops complete, in another order than they were started in, and can be cancelled
 * while held. */
TEST_PLAIN(delayed_ops_complete_out_of_order)
{
    run_faulty("seed=11,rate=1,errors=delay", delay_body);
}
