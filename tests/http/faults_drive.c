/* The fault-mode driver: the HTTP server end to end, with raw-socket clients and the corral
 * client, under the faults CORRAL_FAULTS asks for (meson runs it over seeds 1..8), held to
 * what must hold under faults: no crash; every response either correct or its connection
 * closed with an error; no fd left open (and, in the ASan build, no memory leaked); and the
 * server still serving once injection stops. The server starts and is checked with injection
 * paused; only the client phase runs under faults.
 *
 * Decisions are deterministic per core given the same sequence of operations; on a real
 * kernel the interleaving itself does not replay, so a rerun of a failing seed meets the
 * same decisions only as far as the operations come in the same order. */
#define _GNU_SOURCE
#include "../test.h"
#include "io/io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { RAW_CLIENTS = 4, LIB_CLIENTS = 2, ROUNDS = 12, ECHO_MAX = 6000, HANG_S = 60 };

static const char *volatile phase = "start-up";

struct drive {
    char addr[64];
    struct crl_event ready;
    int serve_rc;
    unsigned long ok, failed; /* exchanges answered right, connections that ended in error */
    unsigned running;         /* client tasks not done yet */
};

static struct drive drive;

static void on_ready(void *ctx, const struct sockaddr *addr, socklen_t len)
{
    (void)len;
    struct drive *d = ctx;
    const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
    snprintf(d->addr, sizeof d->addr, "127.0.0.1:%u", ntohs(in->sin_port));
    crl_event_set(&d->ready);
}

static int route(crl_http_req *req, crl_http_res *res, void *ctx)
{
    (void)ctx;
    const char *path = crl_http_req_path(req);
    if (strcmp(path, "/echo") == 0) {
        const void *body;
        ssize_t n = crl_http_req_body(req, &body);
        if (n < 0)
            return (int)n;
        return crl_http_res_send(res, 200, "application/octet-stream", body, (size_t)n);
    }
    if (strcmp(path, "/stream") == 0) {
        int rc = crl_http_res_start(res, 200, "text/plain");
        rc = rc ? rc : crl_http_res_write(res, "one,", 4);
        rc = rc ? rc : crl_http_res_write(res, "two", 3);
        return rc ? rc : crl_http_res_end(res);
    }
    return crl_http_res_send(res, 200, "text/plain", "hello", 5);
}

static int server_task(void *arg)
{
    struct drive *d = arg;
    struct crl_http_server_opts opts = {0};
    opts.serve.on_ready = on_ready;
    opts.serve.drain_ns = 200 * CRL_MSEC_NS;
    d->serve_rc = crl_http_serve("127.0.0.1:0", &opts, route, d);
    return 0;
}

/* ---- Raw-socket clients ----------------------------------------------------------------- */

static void fill(char *buf, size_t len, unsigned salt)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)('a' + (i * 7 + salt) % 26);
}

/* Read one response into buf (head and Content-Length body); its status, or -1 when the
 * connection failed or closed first. *body and *body_len point into buf. */
static int read_response(int fd, char *buf, size_t cap, const char **body, size_t *body_len)
{
    size_t len = 0;
    for (;;) {
        buf[len] = '\0';
        const char *end = strstr(buf, "\r\n\r\n");
        const char *cl = end ? strcasestr(buf, "\r\nContent-Length: ") : NULL;
        if (end && cl && cl < end) {
            size_t want = strtoul(cl + 18, NULL, 10);
            if ((size_t)(end + 4 - buf) + want <= len) {
                *body = end + 4;
                *body_len = want;
                return atoi(buf + 9);
            }
        } else if (end) {
            test_fail(__FILE__, __LINE__, "a response without Content-Length: %.200s", buf);
        }
        if (len + 1 >= cap)
            test_fail(__FILE__, __LINE__, "a response over %zu bytes", cap);
        ssize_t n = crl_recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            return -1;
        len += (size_t)n;
    }
}

/* All of buf, by crl_send (no SIGPIPE when the server closed): false on an error. */
static bool send_all(int fd, const char *buf, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = crl_send(fd, buf + done, len - done, 0);
        if (n <= 0)
            return false;
        done += (size_t)n;
    }
    return true;
}

struct bufs {
    char req[ECHO_MAX + 256], resp[ECHO_MAX + 1024], body[ECHO_MAX];
};

/* One exchange on *fd (dialled if -1): true if answered right, false if the connection
 * ended in an error (then it is closed and *fd is -1). A wrong answer fails the test. */
static bool raw_exchange_in(struct bufs *b, int *fd, unsigned round, unsigned salt)
{
    if (*fd < 0 && (*fd = crl_tcp_connect(drive.addr, crl_now_ns() + CRL_SEC_NS)) < 0) {
        return false;
    }
    size_t blen = round % 2 ? (round * 997 + salt * 131) % ECHO_MAX : 0;
    fill(b->body, blen, salt + round);
    int n = round % 2
                ? snprintf(b->req, sizeof b->req,
                           "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", blen)
                : snprintf(b->req, sizeof b->req, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    memcpy(b->req + n, b->body, blen);
    const char *got;
    size_t got_len;
    int status = -1;
    if (send_all(*fd, b->req, (size_t)n + blen))
        status = read_response(*fd, b->resp, sizeof b->resp, &got, &got_len);
    if (status == 200) {
        const char *want = round % 2 ? b->body : "hello";
        size_t want_len = round % 2 ? blen : 5;
        if (got_len != want_len || memcmp(got, want, want_len) != 0)
            test_fail(__FILE__, __LINE__, "round %u: a wrong body of %zu bytes (%zu expected)",
                      round, got_len, want_len);
        return true;
    }
    if (status != -1 && status != 500 && status != 503) /* the server's own failure */
        test_fail(__FILE__, __LINE__, "round %u: status %d", round, status);
    crl_close(*fd);
    *fd = -1;
    return false;
}

static bool raw_exchange(int *fd, unsigned round, unsigned salt)
{
    struct bufs *b = malloc(sizeof *b); /* a task's own: the tasks interleave */
    CHECK(b != NULL);
    bool ok = raw_exchange_in(b, fd, round, salt);
    free(b);
    return ok;
}
static int raw_client(void *arg)
{
    unsigned salt = (unsigned)(uintptr_t)arg;
    int fd = -1;
    for (unsigned r = 0; r < ROUNDS; r++) {
        if (raw_exchange(&fd, r, salt))
            drive.ok++;
        else
            drive.failed++;
    }
    if (fd >= 0)
        crl_close(fd);
    drive.running--;
    return 0;
}

/* ---- Clients of the corral client ------------------------------------------------------- */

static bool lib_exchange(struct crl_http_client *c, unsigned round, unsigned salt)
{
    char *body = malloc(ECHO_MAX); /* a task's own: the tasks interleave */
    CHECK(body != NULL);
    size_t blen = (round * 389 + salt) % ECHO_MAX;
    fill(body, blen, salt ^ round);
    static const char *const targets[] = {"/", "/echo", "/stream"};
    const char *target = targets[round % 3];
    bool echo = round % 3 == 1;
    struct crl_http_request req = {.method = echo ? "POST" : "GET",
                                   .target = target,
                                   .body = echo ? body : NULL,
                                   .body_len = echo ? blen : 0,
                                   .deadline_ns = crl_now_ns() + 2 * CRL_SEC_NS};
    struct crl_http_response resp;
    int rc = crl_http_client_request(c, &req, &resp);
    if (rc == 0) {
        const char *want = echo ? body : round % 3 ? "one,two" : "hello";
        size_t want_len = echo ? blen : strlen(want);
        if (resp.status != 200 && resp.status != 500 && resp.status != 503)
            test_fail(__FILE__, __LINE__, "round %u: status %d", round, resp.status);
        if (resp.status == 200 &&
            (resp.body_len != want_len || memcmp(resp.body, want, want_len) != 0))
            test_fail(__FILE__, __LINE__, "round %u: a wrong body of %zu bytes on %s", round,
                      resp.body_len, target);
        rc = resp.status == 200 ? 0 : -EIO;
    } else if (rc == -EINVAL || rc == -EBUSY) {
        test_fail(__FILE__, __LINE__, "round %u: %s", round, strerror(-rc));
    }
    crl_http_response_fini(&resp);
    free(body);
    return rc == 0;
}

static int lib_client(void *arg)
{
    unsigned salt = (unsigned)(uintptr_t)arg;
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, drive.addr, NULL), 0);
    for (unsigned r = 0; r < ROUNDS; r++) {
        if (lib_exchange(c, r, salt))
            drive.ok++;
        else
            drive.failed++;
    }
    crl_http_client_close(c);
    drive.running--;
    return 0;
}

/* ---- The phases ------------------------------------------------------------------------- */

static int dump_here(void *arg)
{
    (void)arg;
    crl_dump_tree(2);
    return 0;
}

static int clients_body(struct crl_scope *s, void *arg)
{
    (void)arg;
    drive.running = RAW_CLIENTS + LIB_CLIENTS;
    for (unsigned i = 0; i < RAW_CLIENTS; i++)
        CHECK_EQ(crl_spawn(s, raw_client, (void *)(uintptr_t)i), 0);
    for (unsigned i = 0; i < LIB_CLIENTS; i++)
        CHECK_EQ(crl_spawn(s, lib_client, (void *)(uintptr_t)(i + 100)), 0);
    crl__faults_pause(false); /* spawned: the clients run under faults from here on */
    int64_t give_up = crl_now_ns() + 10 * CRL_SEC_NS;
    while (drive.running) {
        crl_sleep_ns(20 * CRL_MSEC_NS); /* a timer: no op to fail */
        if (crl_now_ns() > give_up) {
            crl__faults_pause(true);
            crl_dump_tree(2);
            for (unsigned k = 1; k < crl_core_count(); k++)
                crl_call(k, dump_here, NULL);
            test_fail(__FILE__, __LINE__, "%u clients hung", drive.running);
        }
    }
    return 0;
}

/* Without faults, the server answers a new connection and the client right. */
static void check_still_serving(void)
{
    int fd = -1;
    if (!raw_exchange(&fd, 0, 1)) {
        crl_dump_tree(2);
        for (unsigned k = 1; k < crl_core_count(); k++)
            crl_call(k, dump_here, NULL);
        test_fail(__FILE__, __LINE__, "the server stopped serving (crl_http_serve: %d)",
                  drive.serve_rc);
    }
    CHECK(raw_exchange(&fd, 1, 2));
    CHECK_EQ(crl_close(fd), 0);
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, drive.addr, NULL), 0);
    for (unsigned r = 0; r < 3; r++)
        CHECK(lib_exchange(c, r, 3));
    crl_http_client_close(c);
}

static int drive_body(struct crl_scope *s, void *arg)
{
    (void)arg;
    crl_event_init(&drive.ready);
    CHECK_EQ(crl_spawn(s, server_task, &drive), 0);
    CHECK_EQ(crl_event_wait(&drive.ready), 0);
    phase = "warm-up";
    check_still_serving(); /* answered: every core of the server is up, faults can start */
    phase = "clients under faults";
    int rc = crl_scope_run(clients_body, NULL);
    crl__faults_pause(true);
    CHECK_EQ(rc, 0); /* no hang, no client's own failure */
    phase = "check without faults";
    check_still_serving();
    phase = "server stop";
    crl_scope_cancel(s);
    return 0;
}

static int drive_main(void *arg)
{
    (void)arg;
    return crl_scope_run(drive_body, NULL);
}

/* The reproducer, printed first: a failure (or a crash) leaves it in the log. */
static char reproducer[1024];

/* A hang the watchdog task cannot see (a core stuck, a phase without it) still fails, and
 * says where and how to reproduce it. */
static void on_alarm(int sig)
{
    (void)sig;
    char msg[1200];
    int n = snprintf(msg, sizeof msg, "FAIL: hung in phase '%s'; %s", phase, reproducer);
    if (write(2, msg, (size_t)n) < 0)
        _exit(2);
    _exit(1);
}

static void print_reproducer(void)
{
    const char *spec = getenv("CORRAL_FAULTS"), *backend = getenv("CORRAL_BACKEND");
    char exe[512];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    snprintf(reproducer, sizeof reproducer,
             "reproduce a failure with: CORRAL_FAULTS='%s' CORRAL_BACKEND=%s %s\n",
             spec ? spec : "", backend ? backend : "uring", exe);
    fprintf(stderr, "faults: %s; %s", spec ? spec : "(CORRAL_FAULTS unset: no faults)", reproducer);
    signal(SIGALRM, on_alarm);
    alarm(HANG_S);
}

TEST_PLAIN(http_server_and_clients_hold_up_under_faults)
{
    print_reproducer();
    crl__faults_pause(true); /* the runtime and the server start without faults */
    int fds = test_count_fds();
    unsigned long injected = crl__faults_injected();
    struct crl_config cfg = {.cores = test_cannot_run_cores(2) ? 1 : 2};
    CHECK_EQ(crl_run(&cfg, drive_main, NULL), 0);
    CHECK_EQ(drive.serve_rc, 0);
    CHECK_EQ(test_count_fds(), fds); /* every connection closed, on either side */
    fprintf(stderr, "faults: %lu injected, %lu exchanges right, %lu connections failed\n",
            crl__faults_injected() - injected, drive.ok, drive.failed);
    CHECK_EQ(drive.ok + drive.failed, (RAW_CLIENTS + LIB_CLIENTS) * ROUNDS);
    alarm(0);
}
