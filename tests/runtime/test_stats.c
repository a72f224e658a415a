/* The runtime's counters (crl_stats_core, crl_stats_get) and their Prometheus text
 * (crl_metrics_text): after a scripted HTTP workload over loopback (known requests, statuses
 * and body sizes, one malformed request, one head that never ends) the connection and HTTP
 * counters equal the exact counts on the core that served each connection and summed, and
 * the text, read by python3-prometheus-client's parser (check_metrics.py), says the same. */
#define _GNU_SOURCE
#include "../test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The header timeout: the script's unfinished head waits for it; the other heads arrive in
 * one write, well within it even under valgrind. */
enum { MAX_CORES = 2, HEADER_TIMEOUT_MS = 1000 };

/* ---- The server ------------------------------------------------------------------------- */

static int send_str(crl_http_res *res, int status, const char *body)
{
    return crl_http_res_send(res, status, "text/plain", body, strlen(body));
}

static int route(crl_http_req *req, crl_http_res *res, void *ctx)
{
    const char *path = crl_http_req_path(req);
    if (strcmp(path, "/echo") == 0) {
        const void *body;
        ssize_t n = crl_http_req_body(req, &body);
        return n < 0 ? (int)n : crl_http_res_send(res, 200, "text/plain", body, (size_t)n);
    }
    if (strcmp(path, "/created") == 0)
        return send_str(res, 201, "made");
    if (strcmp(path, "/moved") == 0)
        return send_str(res, 302, "moved");
    if (strcmp(path, "/fail") == 0)
        return send_str(res, 500, "oops");
    if (strcmp(path, "/missing") == 0)
        return send_str(res, 404, "not found");
    return send_str(res, 200, "hello");
}

struct srv {
    char addr[64];
    struct crl_event ready;
    int serve_rc;
    int (*client)(struct srv *s);
};

static void on_ready(void *ctx, const struct sockaddr *addr, socklen_t len)
{
    struct srv *s = ctx;
    snprintf(s->addr, sizeof s->addr, "127.0.0.1:%u",
             ntohs(((const struct sockaddr_in *)addr)->sin_port));
    crl_event_set(&s->ready);
}

static int server_task(void *arg)
{
    struct srv *s = arg;
    struct crl_http_server_opts opts = {
        .serve = {.balance = CRL_BALANCE_ROUND_ROBIN, .on_ready = on_ready},
        .limits = {.header_timeout_ns = HEADER_TIMEOUT_MS * CRL_MSEC_NS},
    };
    s->serve_rc = crl_http_serve("127.0.0.1:0", &opts, route, s);
    return 0;
}

static int with_server_body(struct crl_scope *scope, void *arg)
{
    struct srv *s = arg;
    crl_scope_set_deadline(scope, crl_now_ns() + 20 * CRL_SEC_NS); /* a hang fails the test */
    CHECK_EQ(crl_spawn(scope, server_task, s), 0);
    CHECK_EQ(crl_event_wait(&s->ready), 0);
    int rc = s->client(s);
    crl_scope_cancel(scope); /* the server drains and returns */
    return rc;
}

/* Run client against a server on every core; returns once the server has stopped. */
static void with_server(int (*client)(struct srv *s))
{
    struct srv s = {.client = client};
    crl_event_init(&s.ready);
    CHECK_EQ(crl_scope_run(with_server_body, &s), 0);
    CHECK_EQ(s.serve_rc, 0);
}

/* ---- The client ------------------------------------------------------------------------- */

static int dial(struct srv *s)
{
    int fd = crl_tcp_connect(s->addr, crl_now_ns() + 5 * CRL_SEC_NS);
    CHECK(fd >= 0);
    return fd;
}

/* Send text, then read until the server closes: the bytes received. */
static size_t exchange(struct srv *s, const char *text, char *got, size_t cap)
{
    int fd = dial(s);
    CHECK_EQ(crl_write_all(fd, text, strlen(text)), (ssize_t)strlen(text));
    size_t len = 0;
    for (;;) {
        ssize_t n = crl_read(fd, got + len, cap - 1 - len);
        CHECK(n >= 0);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    got[len] = '\0';
    crl_close(fd);
    return len;
}

static unsigned count_str(const char *hay, const char *needle)
{
    unsigned n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The script: four connections, in this order, handed to cores 0, 1, 0, 1 (round robin). */
static const char *const script[] = {
    /* 200, 404, 200 (an echoed body of 10 bytes), pipelined */
    "GET /ok HTTP/1.1\r\nHost: t\r\n\r\n"
    "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n"
    "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
    "0123456789",
    /* 201, 302, 500 */
    "GET /created HTTP/1.1\r\nHost: t\r\n\r\n"
    "GET /moved HTTP/1.1\r\nHost: t\r\n\r\n"
    "GET /fail HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    /* a header line without a colon: 400 from the parser */
    "GET /ok HTTP/1.1\r\nHost t\r\n\r\n",
    /* a head that never ends: 408 at the header timeout */
    "GET /ok HTTP/1.1\r\nHost: t\r\n",
};
enum { SCRIPT_CONNS = sizeof script / sizeof script[0] };

/* What each connection must count on its core (class index 0 = 1xx). */
static const struct {
    unsigned requests, responses[5], parse_errors, header_timeouts;
} script_counts[SCRIPT_CONNS] = {
    {3, {0, 2, 0, 1, 0}, 0, 0},
    {3, {0, 1, 1, 0, 1}, 0, 0},
    {0, {0, 0, 0, 1, 0}, 1, 0},
    {0, {0, 0, 0, 1, 0}, 0, 1},
};
static const char *const script_status[SCRIPT_CONNS] = {"HTTP/1.1 404 ", "HTTP/1.1 500 ",
                                                        "HTTP/1.1 400 ", "HTTP/1.1 408 "};

/* What the workload run saw, and the counters read at its end. */
static struct result {
    unsigned cores;
    size_t bytes_in[SCRIPT_CONNS], bytes_out[SCRIPT_CONNS];
    struct crl_stats per_core[MAX_CORES], sum;
    char *text; /* crl_metrics_text, malloc'd */
    size_t text_len;
} result;

static int script_client(struct srv *s)
{
    static char got[16384];
    for (unsigned i = 0; i < SCRIPT_CONNS; i++) {
        result.bytes_in[i] = strlen(script[i]);
        result.bytes_out[i] = exchange(s, script[i], got, sizeof got);
        CHECK_EQ(count_str(got, "HTTP/1.1 "), script_counts[i].requests ? 3 : 1);
        CHECK(strstr(got, script_status[i]) != NULL);
    }
    return 0;
}

static void read_counters(void)
{
    result.cores = crl_core_count();
    for (unsigned k = 0; k < result.cores; k++)
        CHECK_EQ(crl_stats_core(k, &result.per_core[k]), 0);
    crl_stats_get(&result.sum);
    /* Another core's time counters move meanwhile: a value may grow a digit between the two
     * calls, so the room asked for gets some slack. */
    size_t need = crl_metrics_text(NULL, 0), cap = need + 4096;
    result.text = malloc(cap);
    CHECK(result.text != NULL);
    result.text_len = crl_metrics_text(result.text, cap);
    CHECK(result.text_len < cap);
    CHECK_EQ(strlen(result.text), result.text_len);
}

static int workload_main(void *arg)
{
    with_server(script_client);
    read_counters();
    return 0;
}

/* The counters connection i leaves on core k = i % cores, added to want[k]. */
static void expect(struct crl_stats *want, unsigned cores)
{
    memset(want, 0, cores * sizeof *want);
    want[0].conns_accepted = SCRIPT_CONNS; /* core 0 accepts every one and hands them out */
    for (unsigned i = 0; i < SCRIPT_CONNS; i++) {
        struct crl_stats *w = &want[i % cores];
        w->http_requests += script_counts[i].requests;
        for (int c = 0; c < 5; c++)
            w->http_responses[c] += script_counts[i].responses[c];
        w->http_bytes_in += result.bytes_in[i];
        w->http_bytes_out += result.bytes_out[i];
        w->http_parse_errors += script_counts[i].parse_errors;
        w->http_timeouts[CRL_HTTP_TIMEOUT_HEADER] += script_counts[i].header_timeouts;
    }
}

static void check_http_counters(const struct crl_stats *got, const struct crl_stats *want)
{
    CHECK_EQ(got->conns_accepted, want->conns_accepted);
    CHECK_EQ(got->conns_live, 0);
    CHECK_EQ(got->http_requests, want->http_requests);
    for (int c = 0; c < 5; c++)
        CHECK_EQ(got->http_responses[c], want->http_responses[c]);
    CHECK_EQ(got->http_bytes_in, want->http_bytes_in);
    CHECK_EQ(got->http_bytes_out, want->http_bytes_out);
    CHECK_EQ(got->http_parse_errors, want->http_parse_errors);
    for (int k = 0; k < CRL_HTTP_TIMEOUT_KINDS; k++)
        CHECK_EQ(got->http_timeouts[k], want->http_timeouts[k]);
}

static void run_workload(unsigned cores)
{
    free(result.text);
    memset(&result, 0, sizeof result);
    CHECK_EQ(crl_run(&(struct crl_config){.cores = cores}, workload_main, NULL), 0);
    CHECK_EQ(result.cores, cores);
}

static void check_workload(unsigned cores)
{
    struct crl_stats want[MAX_CORES], total = {0};
    expect(want, cores);
    for (unsigned k = 0; k < cores; k++) {
        check_http_counters(&result.per_core[k], &want[k]);
        total.conns_accepted += want[k].conns_accepted;
        total.http_requests += want[k].http_requests;
        for (int c = 0; c < 5; c++)
            total.http_responses[c] += want[k].http_responses[c];
        total.http_bytes_in += want[k].http_bytes_in;
        total.http_bytes_out += want[k].http_bytes_out;
        total.http_parse_errors += want[k].http_parse_errors;
        for (int t = 0; t < CRL_HTTP_TIMEOUT_KINDS; t++)
            total.http_timeouts[t] += want[k].http_timeouts[t];
    }
    check_http_counters(&result.sum, &total);
}

/* ---- The text, through the Python checker ----------------------------------------------- */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    CHECK_EQ(fputs(text, f) >= 0, 1);
    CHECK_EQ(fclose(f), 0);
}

static void expect_line(FILE *f, const char *name, unsigned core, const char *label, uint64_t value)
{
    fprintf(f, "%s core=%u%s%s %llu\n", name, core, label ? "," : "", label ? label : "",
            (unsigned long long)value);
}

/* The samples the text must hold: the workload's counters as crl_stats_core read them. */
static void write_expected(const char *path)
{
    static const char *const classes[5] = {"class=1xx", "class=2xx", "class=3xx", "class=4xx",
                                           "class=5xx"};
    static const char *const timeouts[CRL_HTTP_TIMEOUT_KINDS] = {"kind=header", "kind=body",
                                                                 "kind=idle", "kind=write"};
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    for (unsigned k = 0; k < result.cores; k++) {
        const struct crl_stats *s = &result.per_core[k];
        expect_line(f, "corral_conns_accepted_total", k, NULL, s->conns_accepted);
        expect_line(f, "corral_conns_live", k, NULL, s->conns_live);
        expect_line(f, "corral_http_requests_total", k, NULL, s->http_requests);
        for (int c = 0; c < 5; c++)
            expect_line(f, "corral_http_responses_total", k, classes[c], s->http_responses[c]);
        expect_line(f, "corral_http_bytes_in_total", k, NULL, s->http_bytes_in);
        expect_line(f, "corral_http_bytes_out_total", k, NULL, s->http_bytes_out);
        expect_line(f, "corral_http_parse_errors_total", k, NULL, s->http_parse_errors);
        for (int t = 0; t < CRL_HTTP_TIMEOUT_KINDS; t++)
            expect_line(f, "corral_http_timeouts_total", k, timeouts[t], s->http_timeouts[t]);
        expect_line(f, "corral_accept_calls_total", k, NULL, s->accept_calls);
    }
    CHECK_EQ(fclose(f), 0);
}

/* Run check_metrics.py (CORRAL_CHECK_METRICS) on the files; its exit status. */
static int run_checker(const char *metrics, unsigned cores, const char *expected)
{
    const char *checker = getenv("CORRAL_CHECK_METRICS");
    if (!checker)
        test_fail(__FILE__, __LINE__, "CORRAL_CHECK_METRICS is not set (meson test sets it)");
    char ncores[12];
    snprintf(ncores, sizeof ncores, "%u", cores);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        execl("/usr/bin/python3", "python3", checker, metrics, ncores, expected, (char *)NULL);
        _exit(127);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void check_text(void)
{
    const char *checker = getenv("CORRAL_CHECK_METRICS");
    if (checker && strcmp(checker, "none") == 0) /* a cross build: no host Python to run */
        return;
    char dir[] = "/tmp/corral-metrics-XXXXXX", metrics[64], expected[64];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(metrics, sizeof metrics, "%s/metrics.txt", dir);
    snprintf(expected, sizeof expected, "%s/expected.txt", dir);
    write_text(metrics, result.text);
    write_expected(expected);
    int rc = run_checker(metrics, result.cores, expected);
    unlink(metrics);
    unlink(expected);
    rmdir(dir);
    CHECK_EQ(rc, 0);
}

/* ---- Tests ------------------------------------------------------------------------------ */

TEST_PLAIN(one_core_counts_the_scripted_workload_exactly)
{
    run_workload(1);
    check_workload(1);
}

TEST_PLAIN(two_cores_count_each_connection_on_its_core_and_sum)
{
    TEST_NEED_CORES(2);
    run_workload(2);
    check_workload(2);
}

TEST_PLAIN(metrics_text_parses_and_matches_the_counters)
{
    unsigned cores = test_cannot_run_cores(2) ? 1 : 2;
    run_workload(cores);
    check_text();
}

static int open_client(struct srv *s)
{
    char got[512] = "";
    int fd = dial(s);
    const char *req = "GET /ok HTTP/1.1\r\nHost: t\r\n\r\n";
    CHECK_EQ(crl_write_all(fd, req, strlen(req)), (ssize_t)strlen(req));
    size_t len = 0;
    while (!strstr(got, "hello")) { /* the response is in: the connection is being served */
        ssize_t n = crl_read(fd, got + len, sizeof got - 1 - len);
        CHECK(n > 0);
        len += (size_t)n;
        got[len] = '\0';
    }
    struct crl_stats st;
    crl_stats_get(&st);
    CHECK_EQ(st.conns_live, 1);
    CHECK_EQ(st.conns_accepted, 1);
    crl_close(fd);
    return 0;
}

TEST(conns_live_counts_a_connection_while_it_is_served)
{
    with_server(open_client);
    struct crl_stats st;
    crl_stats_get(&st);
    CHECK_EQ(st.conns_live, 0); /* the server has stopped: every connection ended */
}

TEST(stats_core_refuses_a_core_the_runtime_does_not_have)
{
    struct crl_stats st = {.switches = 7};
    CHECK_EQ(crl_stats_core(crl_core_count(), &st), -EINVAL);
    CHECK_EQ(st.switches, 7); /* left as it was */
    CHECK_EQ(crl_stats_core(0, &st), 0);
    CHECK_GE(st.tasks_live, 1); /* this task */
}

TEST(metrics_text_is_cut_like_snprintf)
{
    size_t need = crl_metrics_text(NULL, 0);
    CHECK(need > 100);
    char small[32];
    memset(small, 'x', sizeof small);
    CHECK_EQ(crl_metrics_text(small, sizeof small), need);
    CHECK_EQ(strlen(small), sizeof small - 1);
    CHECK_EQ(strncmp(small, "# HELP corral_", 14), 0);
}

/* What a thread that is not an executor reads through the runtime's handle. */
struct foreign_read {
    struct crl_runtime *rt;
    struct crl_stats all, core0, bad;
    int all_rc, core0_rc, bad_rc, null_rc;
    size_t text_len, null_len;
    char text[64];
};

static void *read_from_thread(void *arg)
{
    struct foreign_read *f = arg;
    f->all_rc = crl_runtime_stats(f->rt, CRL_ALL_CORES, &f->all);
    f->core0_rc = crl_runtime_stats(f->rt, 0, &f->core0);
    f->bad.switches = 7;
    f->bad_rc = crl_runtime_stats(f->rt, crl_core_count() + 1, &f->bad);
    f->null_rc = crl_runtime_stats(NULL, 0, &f->bad);
    f->text_len = crl_runtime_metrics_text(f->rt, f->text, sizeof f->text);
    f->null_len = crl_runtime_metrics_text(NULL, NULL, 0);
    return NULL;
}

/* A foreign thread reads the counters and their text through crl_runtime_current()'s
 * handle while this core, blocked in pthread_join, answers nothing: no core is asked. */
TEST(runtime_stats_are_read_from_another_thread_without_asking_a_core)
{
    struct foreign_read f = {.rt = crl_runtime_current()};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, read_from_thread, &f), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(f.all_rc, 0);
    CHECK_EQ(f.core0_rc, 0);
    CHECK_GE(f.core0.tasks_live, 1); /* this task, if core 0 is ours */
    CHECK_GE(f.all.tasks_spawned, f.core0.tasks_spawned);
    CHECK_EQ(f.bad_rc, -EINVAL);
    CHECK_EQ(f.bad.switches, 7); /* left as it was */
    CHECK_EQ(f.null_rc, -EINVAL);
    CHECK(f.text_len > 100); /* the whole text, though cut to 64 bytes */
    CHECK_EQ(strlen(f.text), sizeof f.text - 1);
    CHECK_EQ(strncmp(f.text, "# HELP corral_", 14), 0);
    CHECK_EQ(f.null_len, 0);
}

TEST_PLAIN(outside_a_runtime_there_is_nothing_to_read)
{
    struct crl_stats st = {.switches = 7};
    CHECK_EQ(crl_stats_core(0, &st), -ESRCH);
    crl_stats_get(&st);
    CHECK_EQ(st.switches, 0);
    char buf[8] = "x";
    CHECK_EQ(crl_metrics_text(buf, sizeof buf), 0);
    CHECK_EQ(buf[0], '\0');
}
