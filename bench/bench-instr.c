/* bench-instr.c - the workloads whose instructions bench/instr.sh counts under valgrind: it
 * runs each at two sizes and divides the difference, so that start-up and exit cancel out.
 *
 *   bench-instr spawn N   N times crl_spawn(trivial) + crl_scope_join in one scope, on one
 *                         core (like bench-core's corral_spawn_join)
 *   bench-instr http K    K pipelined `GET /` requests, in batches of 16 as wrk's pipeline.lua
 *                         sends them, through the HTTP connection state machine over a
 *                         transport in memory (no sockets, no runtime), each answered with
 *                         corral-httpd's hello response; the responses are counted, not kept
 *   bench-instr http1 K   K keep-alive `GET /` requests one at a time (each read holds one),
 *                         served by one task that waits for the next in place: how a
 *                         connection was served before it could wait without a task
 *   bench-instr http-park K  the same K requests, the connection waiting without a task
 *                         between them as crl_http_serve's do: per request a task is
 *                         spawned, serves it from a fresh state machine, parks and ends
 *                         (crl_serve's readiness wait, a syscall, is not in the count)
 *
 * Exits non-zero if the work was not done as asked (a wrong count of responses or bytes). */
#define _GNU_SOURCE
#include "corral.h"
#include "http/http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- spawn + join ----------------------------------------------------------------------- */

static int trivial(void *arg)
{
    (void)arg;
    return 0;
}

static int spawn_join_loop(struct crl_scope *s, void *arg)
{
    long n = *(long *)arg;
    for (long i = 0; i < n; i++) {
        int rc = crl_spawn(s, trivial, NULL);
        if (rc < 0)
            return rc;
        crl_scope_join(s);
    }
    return 0;
}

static int spawn_main(void *arg) { return crl_scope_run(spawn_join_loop, arg); }

static int run_spawn(long n)
{
    struct crl_config cfg = {.cores = 1}; /* no other core's idle polls in the count */
    if (getenv("BENCH_INSTR_TRACE")) {
        /* Tracing on, in the smallest ring: full at both sizes, so writing it at exit costs
         * the same and cancels out, leaving the recording's cost per operation. */
        cfg.trace_file = "/dev/null";
        cfg.trace_events = 16;
    }
    return crl_run(&cfg, spawn_main, &n);
}

/* ---- pipelined HTTP requests over memory ------------------------------------------------ */

enum { BATCH = 16 };

static const char request[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

/* The client: K requests in reads of one batch each, then end of stream. */
struct pipe_io {
    const char *batch; /* BATCH requests back to back */
    long requests_left;
    size_t batch_off; /* of the batch being read */
    size_t bytes_out; /* response bytes, counted */
};

static ssize_t pipe_read(void *ctx, void *buf, size_t len, int64_t deadline_ns)
{
    (void)deadline_ns;
    struct pipe_io *p = ctx;
    if (p->requests_left <= 0)
        return 0;
    long in_batch = p->requests_left < BATCH ? p->requests_left : BATCH;
    size_t end = (size_t)in_batch * (sizeof request - 1), n = end - p->batch_off;
    if (n > len)
        n = len;
    memcpy(buf, p->batch + p->batch_off, n);
    p->batch_off += n;
    if (p->batch_off == end) {
        p->requests_left -= in_batch;
        p->batch_off = 0;
    }
    return (ssize_t)n;
}

/* A write that takes everything: its bytes are added to *counted. */
static ssize_t count_writev(size_t *counted, const struct iovec *iov, int iovcnt)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    *counted += total;
    return (ssize_t)total;
}

static ssize_t pipe_writev(void *ctx, const struct iovec *iov, int iovcnt, int64_t deadline_ns)
{
    (void)deadline_ns;
    return count_writev(&((struct pipe_io *)ctx)->bytes_out, iov, iovcnt);
}

/* As the socket server does: the responses and the next read in one call. */
static ssize_t pipe_write_read(void *ctx, const void *out, size_t out_len,
                               int64_t write_deadline_ns, void *buf, size_t len,
                               int64_t read_deadline_ns, int *write_err)
{
    struct iovec v = {(void *)out, out_len};
    ssize_t w = pipe_writev(ctx, &v, 1, write_deadline_ns);
    *write_err = w < 0 ? (int)w : 0;
    return pipe_read(ctx, buf, len, read_deadline_ns);
}

static const struct crl__http_io pipe_transport = {
    .read = pipe_read, .writev = pipe_writev, .write_read = pipe_write_read};

static long responses;

static int hello(crl_http_req *req, crl_http_res *res, void *ctx)
{
    (void)req, (void)ctx;
    responses++;
    return crl_http_res_send(res, 200, "text/plain", "Hello, world!", 13);
}

/* The length of one hello response: its head has a Date of fixed width. */
static size_t response_len(void)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nDate: \r\nContent-Type: text/plain\r\n"
                               "Content-Length: 13\r\n\r\nHello, world!";
    return sizeof head - 1 + CRL__HTTP_DATE_LEN;
}

static int run_http(long k)
{
    static struct crl__http_conn conn;
    char batch[BATCH * (sizeof request - 1)];
    for (int i = 0; i < BATCH; i++)
        memcpy(batch + (size_t)i * (sizeof request - 1), request, sizeof request - 1);
    struct pipe_io p = {.batch = batch, .requests_left = k};
    struct crl_http_limits lim = {0};
    int rc = crl__http_conn_serve(&conn, &pipe_transport, &p, &lim, hello, NULL);
    if (rc < 0 || responses != k || p.bytes_out != (size_t)k * response_len()) {
        fprintf(stderr, "bench-instr http: rc %d, %ld responses of %ld, %zu bytes (want %zu)\n", rc,
                responses, k, p.bytes_out, (size_t)k * response_len());
        return 1;
    }
    return 0;
}

/* ---- keep-alive requests one at a time ------------------------------------------------- */

/* The client of http1 and http-park: one request per read while any is left. */
struct one_io {
    long requests_left;
    size_t bytes_out;
};

static ssize_t one_read(void *ctx, void *buf, size_t len, int64_t deadline_ns)
{
    (void)deadline_ns;
    struct one_io *p = ctx;
    if (p->requests_left <= 0 || len < sizeof request - 1)
        return 0;
    p->requests_left--;
    memcpy(buf, request, sizeof request - 1);
    return (ssize_t)(sizeof request - 1);
}

static ssize_t one_writev(void *ctx, const struct iovec *iov, int iovcnt, int64_t deadline_ns)
{
    (void)deadline_ns;
    return count_writev(&((struct one_io *)ctx)->bytes_out, iov, iovcnt);
}

static ssize_t one_write_read(void *ctx, const void *out, size_t out_len, int64_t write_deadline_ns,
                              void *buf, size_t len, int64_t read_deadline_ns, int *write_err)
{
    struct iovec v = {(void *)out, out_len};
    ssize_t w = one_writev(ctx, &v, 1, write_deadline_ns);
    *write_err = w < 0 ? (int)w : 0;
    return one_read(ctx, buf, len, read_deadline_ns);
}

static const struct crl__http_io one_transport = {
    .read = one_read, .writev = one_writev, .write_read = one_write_read};

struct ka_run {
    long k;
    bool park;
    int rc;
    struct one_io io;
    struct crl__http_park state;
};

/* One call of the connection: crl_serve's task of a connection that waits without one. */
static int ka_task(void *arg)
{
    struct ka_run *r = arg;
    struct crl__http_conn conn; /* in the task's frame, as the socket server's */
    struct crl_http_limits lim = {0};
    r->rc = crl__http_conn_serve_parked(&conn, &one_transport, &r->io, &lim, hello, NULL,
                                        r->park ? &r->state : NULL);
    r->state.resumed = true;
    return 0;
}

static int ka_loop(struct crl_scope *s, void *arg)
{
    struct ka_run *r = arg;
    do {
        int rc = crl_spawn(s, ka_task, r);
        if (rc < 0)
            return rc;
        crl_scope_join(s);
    } while (r->rc == 1);
    return 0;
}

static int ka_main(void *arg) { return crl_scope_run(ka_loop, arg); }

static int run_keep_alive(long k, bool park)
{
    crl__http_park_after_ns = 0; /* the memory transport never makes a read wait: park at once */
    struct ka_run r = {.k = k, .park = park, .io = {.requests_left = k}, .state = {.first = true}};
    struct crl_config cfg = {.cores = 1};
    int rc = crl_run(&cfg, ka_main, &r);
    if (rc < 0 || r.rc < 0 || responses != k || r.io.bytes_out != (size_t)k * response_len()) {
        fprintf(stderr, "bench-instr http%s: rc %d/%d, %ld responses of %ld, %zu bytes\n",
                park ? "-park" : "1", rc, r.rc, responses, k, r.io.bytes_out);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    long n = argc == 3 ? strtol(argv[2], NULL, 10) : 0;
    const char *w = argc == 3 ? argv[1] : "";
    if (n <= 0 || (strcmp(w, "spawn") != 0 && strcmp(w, "http") != 0 && strcmp(w, "http1") != 0 &&
                   strcmp(w, "http-park") != 0)) {
        fprintf(stderr, "usage: bench-instr spawn N | http K | http1 K | http-park K\n");
        return 2;
    }
    if (strcmp(w, "spawn") == 0)
        return run_spawn(n) < 0;
    if (strcmp(w, "http1") == 0 || strcmp(w, "http-park") == 0)
        return run_keep_alive(n, strcmp(w, "http-park") == 0);
    return run_http(n);
}
