/* http.c - the "http" scenario: crl_http_serve on the simulated network under concurrent
 * clients, with the faults the seed draws (corral-sim's swarm: resets, short transfers,
 * delays, EINTR and EAGAIN, at a rate of its own). The clients, each drawn from the seed:
 *   - corral clients (crl_http_client): keep-alive GETs, POSTs whose sum the server returns,
 *     large chunked responses that fill the socket buffers;
 *   - raw pipelining clients: a batch of requests in writes cut at seeded places, the last
 *     one asking to close;
 *   - a slow client that stops halfway through its head (408 at the header timeout);
 *   - an idle client that waits after its response (a silent close at the idle timeout);
 *   - a client sending bad input (400, 413, 431, 505, then the close).
 * Checked as it runs:
 *   - every response is the right one, complete, or the connection ends cleanly (an error
 *     or end of stream, never a wrong byte); with no faults drawn, every request is answered;
 *   - pipelined responses come in the order of their requests;
 *   - a timeout fires at its virtual time (none early, none more than SLACK_NS late), and a
 *     rejected request gets its status;
 *   - at the end the server has returned and no simulated socket is left open (no fd leak;
 *     corral-sim runs LeakSanitizer on each seed where it is built in). */
#define _GNU_SOURCE
#include "scenario.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HEADER_TIMEOUT_NS (2 * CRL_SEC_NS)
#define IDLE_TIMEOUT_NS (3 * CRL_SEC_NS)
#define SLACK_NS (50 * CRL_MSEC_NS) /* a timer's wheel rounding and the network's latencies */
enum { MAX_BODY = 4096, MAX_HEADER_BYTES = 2048, MAX_PIPELINE = 12, BIG_MAX = 200 * 1024 };

struct run {
    uint64_t rng;
    struct sim_verdict *v;
    bool faults; /* the swarm drew faults: a connection may end early */
    char addr[64];
    struct crl_event ready;
    struct crl_scope *server;
    int answered, ended_early;
};

/* The body of GET /big/N: N bytes of a pattern. */
static char big_byte(size_t i) { return (char)('a' + (i * 31 + i / 977) % 26); }

/* ---- The server ----------------------------------------------------------------------------- */

static int send_big(crl_http_res *res, size_t n)
{
    int rc = crl_http_res_start(res, 200, "application/octet-stream");
    char chunk[8192];
    for (size_t at = 0; rc == 0 && at < n;) {
        size_t k = n - at < sizeof chunk ? n - at : sizeof chunk;
        for (size_t i = 0; i < k; i++)
            chunk[i] = big_byte(at + i);
        rc = crl_http_res_write(res, chunk, k);
        at += k;
    }
    return rc ? rc : crl_http_res_end(res);
}

static int handler(crl_http_req *req, crl_http_res *res, void *ctx)
{
    (void)ctx;
    const char *path = crl_http_req_path(req);
    char body[64];
    if (strncmp(path, "/big/", 5) == 0)
        return send_big(res, strtoul(path + 5, NULL, 10));
    if (strcmp(path, "/sum") == 0) {
        const void *data;
        ssize_t n = crl_http_req_body(req, &data);
        if (n < 0)
            return (int)n; /* the server answers the error itself */
        unsigned sum = 0;
        for (ssize_t i = 0; i < n; i++)
            sum += ((const unsigned char *)data)[i];
        int len = snprintf(body, sizeof body, "len=%zd sum=%u", n, sum);
        return crl_http_res_send(res, 200, "text/plain", body, (size_t)len);
    }
    int len = snprintf(body, sizeof body, "%s", path + (path[0] == '/'));
    return crl_http_res_send(res, 200, "text/plain", body, (size_t)len);
}

static void on_ready(void *ctx, const struct sockaddr *addr, socklen_t len)
{
    struct run *r = ctx;
    crl_format_addr(addr, len, r->addr, sizeof r->addr);
    crl_event_set(&r->ready);
}

static int server_body(struct crl_scope *s, void *arg)
{
    struct run *r = arg;
    r->server = s;
    struct crl_http_server_opts opts = {
        .limits = {.max_body = MAX_BODY,
                   .max_header_bytes = MAX_HEADER_BYTES,
                   .header_timeout_ns = HEADER_TIMEOUT_NS,
                   .idle_timeout_ns = IDLE_TIMEOUT_NS},
        .serve = {.on_ready = on_ready, .drain_ns = CRL_SEC_NS},
    };
    int rc = crl_http_serve("127.0.0.1:0", &opts, handler, r);
    if (rc)
        sim_fail(r->v, "crl_http_serve returned %d", rc);
    return 0;
}

static int server_task(void *arg) { return crl_scope_run(server_body, arg); }

/* ---- Raw bytes ------------------------------------------------------------------------------ */

/* A connection's input so far. */
struct input {
    char buf[BIG_MAX + 4096];
    size_t len;
    int end; /* 0 while open; 1 at end of stream; or the error that ended it */
};

static struct input *input_new(struct run *r)
{
    struct input *in = calloc(1, sizeof *in);
    if (!in)
        sim_fail(r->v, "out of memory for a client's input");
    return in;
}

/* Read more into in; false once the stream has ended. */
static bool read_more(int fd, struct input *in)
{
    if (in->end)
        return false;
    if (in->len == sizeof in->buf) {
        in->end = -EMSGSIZE;
        return false;
    }
    ssize_t n = crl_read(fd, in->buf + in->len, sizeof in->buf - in->len);
    if (n > 0) {
        in->len += (size_t)n;
        return true;
    }
    in->end = n == 0 ? 1 : (int)n;
    return false;
}

/* One response parsed from the front of in (Content-Length framing, as the server sends
 * for these requests): 1 with its status and body, 0 if incomplete, -1 if malformed. */
static int parse_response(const struct input *in, size_t at, int *status, const char **body,
                          size_t *body_len, size_t *next)
{
    const char *p = in->buf + at, *end = in->buf + in->len;
    const char *head_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
    if (!head_end)
        return 0;
    if (end - p < 12 || memcmp(p, "HTTP/1.1 ", 9) != 0)
        return -1;
    *status = atoi(p + 9);
    long clen = 0;
    for (const char *line = memchr(p, '\n', (size_t)(head_end - p)); line && line < head_end;
         line = memchr(line + 1, '\n', (size_t)(head_end - line))) {
        if (strncasecmp(line + 1, "Content-Length:", 15) == 0)
            clen = strtol(line + 16, NULL, 10);
        if (strncasecmp(line + 1, "Transfer-Encoding:", 18) == 0)
            return -1; /* not for these requests */
    }
    const char *b = head_end + 4;
    if (clen < 0 || end - b < clen)
        return clen < 0 ? -1 : 0;
    *body = b;
    *body_len = (size_t)clen;
    *next = (size_t)(b + clen - in->buf);
    return 1;
}

/* Send len bytes in pieces cut at seeded places; 0 or the error. */
static int send_cut(struct run *r, int fd, const char *data, size_t len)
{
    while (len) {
        size_t k = len < 2 ? len : 1 + sim_below(&r->rng, (unsigned)len);
        ssize_t n = crl_write_all(fd, data, k);
        if (n < 0)
            return (int)n;
        data += k;
        len -= k;
        if (sim_below(&r->rng, 3) == 0 && crl_sleep_ns(sim_below(&r->rng, 2000) * CRL_USEC_NS))
            return -ECANCELED;
    }
    return 0;
}

/* The connection ended before it should have: only a fault may do that. */
static int early_end(struct run *r, const char *who, int end)
{
    r->ended_early++;
    if (!r->faults)
        return sim_fail(r->v, "%s: the connection ended early (%d) with no fault drawn", who, end);
    return 0;
}

static int dial(struct run *r, const char *who)
{
    int fd = crl_tcp_connect(r->addr, CRL_NO_DEADLINE);
    if (fd < 0 && !r->faults)
        sim_fail(r->v, "%s: connect failed: %d", who, fd);
    return fd;
}

/* ---- The clients ---------------------------------------------------------------------------- */

static int pipeliner(struct run *r)
{
    int fd = dial(r, "pipeliner");
    if (fd < 0)
        return 0;
    unsigned n = 1 + sim_below(&r->rng, MAX_PIPELINE);
    char reqs[MAX_PIPELINE * 80];
    size_t len = 0;
    for (unsigned i = 0; i < n; i++)
        len += (size_t)snprintf(reqs + len, sizeof reqs - len,
                                "GET /p%u HTTP/1.1\r\nHost: s\r\n%s\r\n", i,
                                i + 1 == n ? "Connection: close\r\n" : "");
    struct input *in = input_new(r);
    if (!in) {
        crl_close(fd);
        return 0;
    }
    int rc = send_cut(r, fd, reqs, len);
    unsigned got = 0;
    size_t at = 0;
    while (got < n) {
        int status;
        const char *body;
        size_t blen, next;
        int p = parse_response(in, at, &status, &body, &blen, &next);
        if (p < 0) {
            rc = sim_fail(r->v, "pipeliner: a malformed response after %u of %u", got, n);
            break;
        }
        if (p == 0) {
            if (!read_more(fd, in)) {
                early_end(r, "pipeliner", in->end);
                break;
            }
            continue;
        }
        if (status == 408 && rc < 0) { /* our send failed halfway through a request */
            early_end(r, "pipeliner", rc);
            break;
        }
        char want[16];
        int wlen = snprintf(want, sizeof want, "p%u", got);
        if (status != 200 || blen != (size_t)wlen || memcmp(body, want, blen) != 0) {
            rc = sim_fail(r->v, "pipeliner: response %u of %u is %d \"%.*s\", not 200 \"%s\"", got,
                          n, status, (int)(blen < 32 ? blen : 32), body, want);
            break;
        }
        got++;
        r->answered++;
        at = next;
    }
    if (got == n && in->len == at && read_more(fd, in) && !r->v->failed)
        rc = sim_fail(r->v, "pipeliner: bytes after the last response, which asked to close");
    free(in);
    crl_close(fd);
    return rc == -ECANCELED ? rc : 0;
}

static int corral_client(struct run *r)
{
    struct crl_http_client *c;
    int rc = crl_http_client_open(&c, r->addr, NULL);
    if (rc)
        return sim_fail(r->v, "crl_http_client_open: %d", rc);
    unsigned n = 1 + sim_below(&r->rng, 6);
    unsigned char data[MAX_BODY];
    for (unsigned i = 0; i < n && !r->v->failed; i++) {
        unsigned kind = sim_below(&r->rng, 3);
        char target[32], want[64];
        struct crl_http_request rq = {
            .method = "GET", .target = target, .deadline_ns = CRL_NO_DEADLINE};
        size_t big = 0;
        unsigned sum = 0;
        if (kind == 0) {
            snprintf(target, sizeof target, "/c%u", i);
            snprintf(want, sizeof want, "c%u", i);
        } else if (kind == 1) {
            size_t len = sim_below(&r->rng, MAX_BODY);
            for (size_t k = 0; k < len; k++)
                sum += data[k] = (unsigned char)sim_draw(&r->rng);
            rq = (struct crl_http_request){.method = "POST",
                                           .target = "/sum",
                                           .body = data,
                                           .body_len = len,
                                           .deadline_ns = CRL_NO_DEADLINE,
                                           .chunked = sim_below(&r->rng, 2)};
            snprintf(want, sizeof want, "len=%zu sum=%u", len, sum);
        } else {
            big = 1 + sim_below(&r->rng, BIG_MAX);
            snprintf(target, sizeof target, "/big/%zu", big);
        }
        struct crl_http_response res;
        rc = crl_http_client_request(c, &rq, &res);
        if (rc == -ECANCELED)
            break;
        if (rc) {
            early_end(r, "corral client", rc);
            continue;
        }
        bool right = res.status == 200;
        if (right && big) {
            right = res.body_len == big;
            for (size_t k = 0; right && k < big; k++)
                right = res.body[k] == big_byte(k);
        } else if (right) {
            right = res.body_len == strlen(want) && memcmp(res.body, want, res.body_len) == 0;
        }
        if (!right)
            sim_fail(r->v, "corral client: %s %s answered %d with %zu bytes \"%.*s\"", rq.method,
                     rq.target, res.status, res.body_len,
                     (int)(res.body_len < 32 ? res.body_len : 32), res.body);
        r->answered++;
        crl_http_response_fini(&res);
    }
    crl_http_client_close(c);
    return rc == -ECANCELED ? rc : 0;
}

/* Read one whole response; its status, 0 if the stream ended first. */
static int read_status(int fd, struct input *in)
{
    int status;
    const char *body;
    size_t blen, next;
    for (;;) {
        int p = parse_response(in, 0, &status, &body, &blen, &next);
        if (p)
            return p < 0 ? -1 : status;
        if (!read_more(fd, in))
            return 0;
    }
}

/* A timed event: its virtual time within [want, want + SLACK_NS]. */
static void check_time(struct run *r, const char *what, int64_t took, int64_t want)
{
    if (took < want - CRL_MSEC_NS || took > want + SLACK_NS)
        sim_fail(r->v, "%s after %lld ms, not %lld ms", what, (long long)(took / CRL_MSEC_NS),
                 (long long)(want / CRL_MSEC_NS));
}

static int slow_client(struct run *r)
{
    int fd = dial(r, "slow client");
    if (fd < 0)
        return 0;
    static const char half[] = "GET /slow HTTP/1.1\r\nHost: s\r\nX-Wait: ";
    struct input *in = input_new(r);
    int64_t t0 = crl_now_ns();
    int status = !in || crl_write_all(fd, half, sizeof half - 1) < 0 ? 0 : read_status(fd, in);
    if (status == 408)
        check_time(r, "the slow client's 408", crl_now_ns() - t0, HEADER_TIMEOUT_NS);
    else if (status != 0 || !r->faults)
        sim_fail(r->v, "the slow client got %d, not 408", status);
    while (status == 408 && read_more(fd, in))
        ;
    if (status == 408 && in->end != 1 && !r->faults)
        sim_fail(r->v, "the slow client's connection ended with %d after its 408", in->end);
    free(in);
    crl_close(fd);
    return 0;
}

static int idle_client(struct run *r)
{
    int fd = dial(r, "idle client");
    if (fd < 0)
        return 0;
    static const char req[] = "GET /i HTTP/1.1\r\nHost: s\r\n\r\n";
    struct input *in = input_new(r);
    int status = !in || crl_write_all(fd, req, sizeof req - 1) < 0 ? 0 : read_status(fd, in);
    free(in);
    if (status != 200) {
        if (status != 0 || !r->faults)
            sim_fail(r->v, "the idle client got %d, not 200", status);
        crl_close(fd);
        return 0;
    }
    r->answered++;
    int64_t t0 = crl_now_ns();
    char byte;
    ssize_t n = crl_read(fd, &byte, 1);
    if (n == 0)
        check_time(r, "the idle close", crl_now_ns() - t0, IDLE_TIMEOUT_NS);
    else if (!r->faults)
        sim_fail(r->v, "the idle client read %zd, not the end of stream", n);
    crl_close(fd);
    return 0;
}

static int bad_client(struct run *r)
{
    static const struct {
        const char *input;
        int status;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: s\r\nContent-Length: 99999\r\n\r\n", 413},
        {"GET / HTTP/7.1\r\nHost: s\r\n\r\n", 505},
        {"GET / HTTP/1.1\r\nHost: s\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
        {"G@T / HTTP/1.1\r\n\r\n", 400},
    };
    unsigned pick = sim_below(&r->rng, sizeof cases / sizeof cases[0] + 1);
    static char big_head[MAX_HEADER_BYTES + 256];
    const char *input;
    int want;
    if (pick < sizeof cases / sizeof cases[0]) {
        input = cases[pick].input;
        want = cases[pick].status;
    } else { /* a head over max_header_bytes */
        int n = snprintf(big_head, sizeof big_head, "GET / HTTP/1.1\r\nHost: s\r\nX-Big: ");
        memset(big_head + n, 'x', sizeof big_head - (size_t)n - 5);
        memcpy(big_head + sizeof big_head - 5, "\r\n\r\n", 5);
        input = big_head;
        want = 431;
    }
    int fd = dial(r, "bad client");
    if (fd < 0)
        return 0;
    struct input *in = input_new(r);
    int status = !in || send_cut(r, fd, input, strlen(input)) < 0 ? 0 : read_status(fd, in);
    if (status != want && (status != 0 || !r->faults))
        sim_fail(r->v, "bad input %u got %d, not %d", pick, status, want);
    free(in);
    crl_close(fd);
    return 0;
}

/* ---- The run -------------------------------------------------------------------------------- */

enum { CORRAL, PIPELINER, SLOW, IDLE, BAD, KINDS };

struct client {
    struct run *r;
    int kind;
};

static int client_task(void *arg)
{
    struct client *c = arg;
    static int (*const run[KINDS])(struct run *) = {corral_client, pipeliner, slow_client,
                                                    idle_client, bad_client};
    return run[c->kind](c->r);
}

static int clients_body(struct crl_scope *s, void *arg)
{
    struct run *r = arg;
    static struct client cs[KINDS * 3];
    unsigned n = 0;
    static const unsigned most[KINDS] = {2, 2, 1, 1, 2}; /* beyond the first corral client */
    unsigned count[KINDS];
    for (int k = 0; k < KINDS; k++) /* one draw after the other: an initializer's order is not */
        count[k] = (k == 0) + sim_below(&r->rng, most[k] + 1);
    for (int k = 0; k < KINDS; k++)
        for (unsigned i = 0; i < count[k]; i++)
            cs[n++] = (struct client){r, k};
    for (unsigned i = 0; i < n; i++) {
        int rc = crl_spawn(s, client_task, &cs[i]);
        if (rc)
            return sim_fail(r->v, "crl_spawn of a client: %d", rc);
    }
    return 0;
}

static int run_body(struct crl_scope *s, void *arg)
{
    struct run *r = arg;
    int rc = crl_spawn(s, server_task, r);
    if (rc)
        return sim_fail(r->v, "crl_spawn of the server: %d", rc);
    if ((rc = crl_event_wait(&r->ready)))
        return sim_fail(r->v, "waiting for the server: %d", rc);
    rc = crl_scope_run(clients_body, r);
    if (rc && !r->v->failed)
        sim_fail(r->v, "the clients' scope returned %d", rc);
    crl_scope_cancel(r->server);
    return 0;
}

static int http_run(uint64_t seed, struct sim_verdict *v)
{
    struct run r = {.rng = seed ^ 0x4177bULL, .v = v, .faults = sim_faults_on()};
    crl_event_init(&r.ready);
    int rc = crl_scope_run(run_body, &r);
    if (rc && !v->failed)
        return sim_fail(v, "the run's scope returned %d", rc);
    if (crl__sim_open_fds() != 0)
        return sim_fail(v, "%zu simulated sockets left open", crl__sim_open_fds());
    return v->failed ? -EPROTO : 0;
}

const struct sim_scenario sim_scenario_http = {
    .name = "http",
    .about = "crl_http_serve under corral, pipelining, slow, idle and bad clients, with faults",
    .run = http_run,
    .swarm = true,
};
