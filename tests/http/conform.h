/* conform.h - helpers of the RFC conformance suites (test_rfc9112.c, test_rfc9110.c): one
 * exchange over the memory transport with an application handler that routes by path and
 * records what it saw, and the check that a request is rejected with nothing after it
 * served. */
#ifndef CRL_TESTS_HTTP_CONFORM_H
#define CRL_TESTS_HTTP_CONFORM_H

#include "../test.h"
#include "check_str.h"
#include "mem_io.h"

#include <stdio.h>
#include <string.h>

/* What the application saw of the last request, and how many it served. */
struct app {
    int calls;
    char method[16], target[256], path[256], host[128], body[4096];
    const char *hdr_name; /* when set: the value of this header goes to hdr */
    char hdr[256];
    int version;
    ssize_t body_len; /* or the read's error */
    size_t nhdrs;
    bool smuggled; /* a request for /smuggled was served */
};

static inline void app_record(crl_http_req *req, struct app *a)
{
    a->calls++;
    const char *host = crl_http_req_host(req);
    snprintf(a->method, sizeof a->method, "%s", crl_http_req_method(req));
    snprintf(a->target, sizeof a->target, "%s", crl_http_req_target(req));
    snprintf(a->path, sizeof a->path, "%s", crl_http_req_path(req));
    snprintf(a->host, sizeof a->host, "%s", host ? host : "(null)");
    a->version = crl_http_req_version(req);
    a->nhdrs = crl_http_req_header_count(req);
    a->hdr[0] = '\0';
    if (a->hdr_name) {
        const char *v = crl_http_req_header(req, a->hdr_name);
        snprintf(a->hdr, sizeof a->hdr, "%s", v ? v : "(null)");
    }
    if (strcmp(a->path, "/smuggled") == 0)
        a->smuggled = true;
}

/* Routes: /204 and /304 (a body offered, which must not go out), /stream (a streamed body),
 * /close (asks to close), /unread (answers without reading the body); anything else reads
 * the whole body and answers 200 with "ok:" and it. */
static inline int app_handler(crl_http_req *req, crl_http_res *res, void *ctx)
{
    struct app *a = ctx;
    app_record(req, a);
    if (strcmp(a->path, "/204") == 0)
        return crl_http_res_send(res, 204, "text/plain", "nobody", 6);
    if (strcmp(a->path, "/304") == 0)
        return crl_http_res_send(res, 304, "text/plain", "nobody", 6);
    if (strcmp(a->path, "/stream") == 0 || strcmp(a->path, "/stream204") == 0) {
        crl_http_res_start(res, a->path[7] ? 204 : 200, "text/plain");
        crl_http_res_write(res, "one,", 4);
        crl_http_res_write(res, "two", 3);
        return crl_http_res_end(res);
    }
    if (strcmp(a->path, "/close") == 0)
        crl_http_res_header(res, "Connection", "close");
    if (strcmp(a->path, "/unread") == 0)
        return crl_http_res_send(res, 200, "text/plain", "early", 5);
    const void *body;
    a->body_len = crl_http_req_body(req, &body);
    if (a->body_len < 0)
        return (int)a->body_len;
    snprintf(a->body, sizeof a->body, "%.*s", (int)a->body_len, (const char *)body);
    char out[4200];
    int n = snprintf(out, sizeof out, "ok:%s", a->body);
    return crl_http_res_send(res, 200, "text/plain", out, (size_t)n);
}

static inline void app_reset(struct app *a)
{
    const char *name = a->hdr_name;
    memset(a, 0, sizeof *a);
    a->hdr_name = name;
}

/* Serve pieces (NULL-terminated, each read gets one) with lim; m->out holds the answer (free
 * with mem_free). */
static inline void exchange_pieces(struct mem_io *m, const char *const *pieces, struct app *a,
                                   const struct crl_http_limits *lim)
{
    app_reset(a);
    *m = (struct mem_io){.pieces = pieces};
    CHECK_EQ(mem_serve(m, lim, app_handler, a), 0);
}

/* Serve input (len bytes; 0: strlen) in one piece. */
static inline void exchange(struct mem_io *m, const char *input, size_t len, struct app *a)
{
    static const char *one[2];
    one[0] = input;
    app_reset(a);
    *m = (struct mem_io){.pieces = one, .lens = {len}};
    CHECK_EQ(mem_serve(m, NULL, app_handler, a), 0);
}

/* The status of the first response in out, or 0. */
static inline int first_status(const char *out)
{
    int status = 0;
    return sscanf(out, "HTTP/1.1 %d ", &status) == 1 ? status : 0;
}

static const char smuggled_req[] = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

/* input (len bytes; 0: strlen), followed by a request for /smuggled, is rejected with one of
 * the statuses (0-terminated list): that one response with Connection: close, and /smuggled
 * never served. A bad body may be found by the handler's read (one handler call). */
static inline void expect_rejected_at(const char *file, int line, const char *input, size_t len,
                                      const int *statuses)
{
    size_t n = len ? len : strlen(input);
    char *in = malloc(n + sizeof smuggled_req);
    CHECK(in != NULL);
    memcpy(in, input, n);
    memcpy(in + n, smuggled_req, sizeof smuggled_req);
    struct mem_io m;
    struct app a = {0};
    exchange(&m, in, n + sizeof smuggled_req - 1, &a);
    int st = first_status(m.out);
    bool ok = false;
    for (const int *s = statuses; *s; s++)
        ok = ok || st == *s;
    if (!ok || a.smuggled || a.calls > 1 || count_str(m.out, "HTTP/1.1 ") != 1 ||
        !strstr(m.out, "Connection: close\r\n"))
        test_fail(file, line, "not rejected as it must be (%d handler calls):\n%.*s\ngot:\n%s",
                  a.calls, (int)n, input, m.out);
    mem_free(&m);
    free(in);
}

#define EXPECT_REJECTED(input, ...)                                                                \
    expect_rejected_at(__FILE__, __LINE__, (input), 0, (const int[]){__VA_ARGS__, 0})
#define EXPECT_REJECTED_N(input, len, ...)                                                         \
    expect_rejected_at(__FILE__, __LINE__, (input), (len), (const int[]){__VA_ARGS__, 0})

/* input, followed by a request for /smuggled, is served: every request answered 200 in
 * order, the last one /smuggled's. */
static inline void expect_served_at(const char *file, int line, const char *input, int requests,
                                    struct app *a, struct mem_io *m)
{
    size_t n = strlen(input);
    char *in = malloc(n + sizeof smuggled_req);
    CHECK(in != NULL);
    memcpy(in, input, n);
    memcpy(in + n, smuggled_req, sizeof smuggled_req);
    exchange(m, in, n + sizeof smuggled_req - 1, a);
    free(in);
    if (count_str(m->out, "HTTP/1.1 200 OK\r\n") != requests + 1 || !a->smuggled ||
        a->calls != requests + 1)
        test_fail(file, line, "not served (%d handler calls):\n%s\ngot:\n%s", a->calls, input,
                  m->out);
}

#define EXPECT_SERVED(input, requests, a, m)                                                       \
    expect_served_at(__FILE__, __LINE__, (input), (requests), (a), (m))

#endif
