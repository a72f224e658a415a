/* The HTTP connection state machine over an in-memory transport: framing, persistence,
 * pipelining, bodies, limits, and the rejection of bad input (with nothing parsed after it). */
#define _GNU_SOURCE
#include "../test.h"
#include "mem_io.h"
#include "check_str.h"
#include "core.h"

#include <string.h>
#include <time.h>

/* What the handlers saw. */
struct seen {
    int calls;
    char body[4096];
    ssize_t body_len;
    ssize_t body_err;
    char target[256], path[256], query[256], host[64], authority[64];
    int version;
    int64_t content_length;
};

/* Echo the body (read with crl_http_req_read) back with the target in a header. */
static int echo(crl_http_req *req, crl_http_res *res, void *ctx)
{
    struct seen *s = ctx;
    s->calls++;
    snprintf(s->target, sizeof s->target, "%s", crl_http_req_target(req));
    snprintf(s->path, sizeof s->path, "%s", crl_http_req_path(req));
    const char *q = crl_http_req_query(req), *host = crl_http_req_header(req, "HOST");
    snprintf(s->query, sizeof s->query, "%s", q ? q : "(null)");
    snprintf(s->host, sizeof s->host, "%s", host ? host : "(null)");
    const char *authority = crl_http_req_host(req);
    snprintf(s->authority, sizeof s->authority, "%s", authority ? authority : "(null)");
    s->version = crl_http_req_version(req);
    s->content_length = crl_http_req_content_length(req);
    s->body_len = 0;
    for (;;) {
        ssize_t n =
            crl_http_req_read(req, s->body + s->body_len, sizeof s->body - 1 - (size_t)s->body_len);
        if (n < 0) {
            s->body_err = n;
            return (int)n;
        }
        if (n == 0)
            break;
        s->body_len += n;
    }
    s->body[s->body_len] = '\0';
    crl_http_res_header(res, "X-Target", crl_http_req_target(req));
    return crl_http_res_send(res, 200, "text/plain", s->body, (size_t)s->body_len);
}

static void serve(struct mem_io *m, const struct crl_http_limits *lim, crl_http_handler_fn *h,
                  struct seen *s)
{
    memset(s, 0, sizeof *s);
    CHECK_EQ(mem_serve(m, lim, h, s), 0);
}

/* A GET gets a 200 with Date, Content-Type and Content-Length; accessors see the request. */
TEST_PLAIN(get_is_answered_with_date_and_length)
{
    const char *in[] = {"GET /a/b?x=1&y HTTP/1.1\r\nHost:  example  \r\n\r\n", NULL};
    struct mem_io m = {.pieces = in};
    struct seen s;
    serve(&m, NULL, echo, &s);
    CHECK_EQ(s.calls, 1);
    CHECK(strncmp(m.out, "HTTP/1.1 200 OK\r\nDate: ", 23) == 0);
    CHECK_STR(m.out, " GMT\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n");
    CHECK_STR(m.out, "X-Target: /a/b?x=1&y\r\n");
    CHECK(strcmp(s.path, "/a/b") == 0);
    CHECK(strcmp(s.query, "x=1&y") == 0);
    CHECK(strcmp(s.host, "example") == 0);
    CHECK_EQ(s.version, 11);
    CHECK_EQ(s.content_length, 0);
    mem_free(&m);
}

/* Path and query split at the first '?' whatever the target's length (short targets are
 * scanned inline, long ones with memchr), and a target without '?' has no query. */
TEST_PLAIN(query_splits_at_the_first_question_mark_at_any_length)
{
    for (size_t len = 1; len <= 80; len++) {
        for (int with_query = 0; with_query <= 1; with_query++) {
            char target[128], req[256];
            memset(target, 'a', len);
            target[0] = '/';
            target[len] = '\0';
            if (with_query && len >= 2)
                target[len - 1] = '?'; /* the query is empty, its '?' the last byte */
            if (with_query && len >= 4)
                target[len / 2] = '?'; /* and now the first '?' is in the middle */
            snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", target);
            const char *in[] = {req, NULL};
            struct mem_io m = {.pieces = in};
            struct seen s;
            serve(&m, NULL, echo, &s);
            CHECK_EQ(s.calls, 1);
            const char *q = strchr(target, '?');
            if (!q) {
                CHECK(strcmp(s.query, "(null)") == 0);
                CHECK(strcmp(s.path, target) == 0);
            } else {
                CHECK(strcmp(s.query, q + 1) == 0);
                CHECK(strncmp(s.path, target, (size_t)(q - target)) == 0);
                CHECK_EQ(strlen(s.path), (size_t)(q - target));
            }
            mem_free(&m);
        }
    }
}

/* Serve one request with echo and check what the handler saw. */
static void expect_seen(const char *request, const char *target, const char *path,
                        const char *query, const char *authority)
{
    const char *in[] = {request, NULL};
    struct mem_io m = {.pieces = in};
    struct seen s;
    serve(&m, NULL, echo, &s);
    if (s.calls != 1 || strcmp(s.target, target) || strcmp(s.path, path) ||
        strcmp(s.query, query) || strcmp(s.authority, authority))
        test_fail(__FILE__, __LINE__, "%s: target %s path %s query %s host %s; got:\n%s", request,
                  s.target, s.path, s.query, s.authority, m.out);
    mem_free(&m);
}

/* An absolute-form target (RFC 9112 3.2.2) is served: the handler sees its path and query as
 * if sent in origin form, and its authority (not the Host header) as the host. */
TEST_PLAIN(absolute_form_target_is_routed_by_its_path)
{
    expect_seen("GET http://example.com:8080/a/b?x=1 HTTP/1.1\r\nHost: other\r\n\r\n", "/a/b?x=1",
                "/a/b", "x=1", "example.com:8080");
    expect_seen("GET HTTPS://Example.COM HTTP/1.1\r\nHost: x\r\n\r\n", "/", "/", "(null)",
                "Example.COM");
    expect_seen("GET http://h?q=1 HTTP/1.1\r\nHost: h\r\n\r\n", "/?q=1", "/", "q=1", "h");
    expect_seen("GET http://h:80?q HTTP/1.1\r\nHost: h\r\n\r\n", "/?q", "/", "q", "h:80");
    expect_seen("GET http://[::1]:8080//x/ HTTP/1.1\r\nHost: h\r\n\r\n", "//x/", "//x/", "(null)",
                "[::1]:8080");
    expect_seen("POST http://a.b/c HTTP/1.0\r\n\r\n", "/c", "/c", "(null)", "a.b");
}

/* Without an absolute-form target the host is the Host header's value, as sent: any valid
 * RFC 3986 authority (reg-name, IPv4, IPv6, IPvFuture, a port, or empty), NULL in a 1.0
 * request without one. */
TEST_PLAIN(req_host_is_the_host_header_for_origin_form)
{
    expect_seen("GET /p HTTP/1.1\r\nHost: Example.com:80 \r\n\r\n", "/p", "/p", "(null)",
                "Example.com:80");
    expect_seen("GET / HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n", "/", "/", "(null)", "10.0.0.1");
    expect_seen("GET / HTTP/1.1\r\nHost: [fe80::1:2]:1\r\n\r\n", "/", "/", "(null)",
                "[fe80::1:2]:1");
    expect_seen("GET / HTTP/1.1\r\nHost: [v7.a:b]\r\n\r\n", "/", "/", "(null)", "[v7.a:b]");
    expect_seen("GET / HTTP/1.1\r\nHost: a-b_c~d%41!$&'()*+,;=\r\n\r\n", "/", "/", "(null)",
                "a-b_c~d%41!$&'()*+,;=");
    expect_seen("GET / HTTP/1.1\r\nHost: h:\r\n\r\n", "/", "/", "(null)", "h:");
    expect_seen("GET / HTTP/1.1\r\nHost:\r\n\r\n", "/", "/", "(null)", "");
    expect_seen("GET / HTTP/1.0\r\n\r\n", "/", "/", "(null)", "(null)");
    expect_seen("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", "*", "*", "(null)", "h");
}

/* A higher minor version of HTTP/1 is served as 1.1 (RFC 9110 2.5), the connection kept. */
TEST_PLAIN(higher_minor_version_is_served_as_1_1)
{
    const char *in[] = {"GET /1 HTTP/1.2\r\nHost: a\r\n\r\nGET /2 HTTP/1.9\r\nHost: a\r\n\r\n",
                        NULL};
    struct mem_io m = {.pieces = in};
    struct seen s;
    serve(&m, NULL, echo, &s);
    CHECK_EQ(s.calls, 2);
    CHECK_EQ(s.version, 11);
    CHECK_EQ(count_str(m.out, "HTTP/1.1 200 OK\r\n"), 2);
    CHECK_NO_STR(m.out, "Connection: close");
    mem_free(&m);
}

/* HTTP/1.1 keeps the connection: requests arriving in separate reads are all answered. */
TEST_PLAIN(http11_keeps_the_connection)
{
    const char *in[] = {"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n", "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
                        NULL};
    struct mem_io m = {.pieces = in};
    struct seen s;
    serve(&m, NULL, echo, &s);
    CHECK_EQ(s.calls, 2);
    CHECK_EQ(count_str(m.out, "HTTP/1.1 200 OK"), 2);
    CHECK_NO_STR(m.out, "Connection:");
    CHECK_EQ(m.writes, 2);
    mem_free(&m);
}

/* Pipelined requests are answered in order, in one write. */
TEST_PLAIN(pipelined_responses_coalesce_in_order)
{
    const char *in[] = {"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\n"
                        "Content-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
                        NULL};
    struct mem_io m = {.pieces = in};
    struct seen s;
    serve(&m, NULL, echo, &s);
    CHECK_EQ(s.calls, 3);
    CHECK_EQ(m.writes, 1);
    const char *t1 = strstr(m.out, "X-Target: /1"), *t2 = strstr(m.out, "X-Target: /2"),
               *t3 = strstr(m.out, "X-Target: /3");
    CHECK(t1 && t2 && t3 && t1 < t2 && t2 < t3);
    CHECK_STR(m.out, "Content-Length: 3\r\nX-Target: /2\r\n\r\nabc");
    mem_free(&m);
}

/* HTTP/1.0 closes unless the client asks for keep-alive; 1.1 keeps unless it asks to close. */
TEST_PLAIN(persistence_follows_version_and_connection)
{
    const char *close10[] = {"GET /1 HTTP/1.0\r\n\r\nGET /2 HTTP/1.0\r\n\r\n", NULL};
    struct mem_io m = {.pieces = close10};
    struct seen s;
    serve(&m, NULL, echo, &s);
    CHECK_EQ(s.calls, 1);
    CHECK_EQ(s.version, 10);
    CHECK_STR(m.out, "Connection: close\r\n");
    mem_free(&m);

    const char *keep10[] = {"GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                            "GET /2 HTTP/1.0\r\n\r\n", NULL};
    m = (struct mem_io){.pieces = keep10};
    serve(&m, NULL, echo, &s);
    CHECK_EQ(s.calls, 2);
    CHECK_EQ(count_str(m.out, "Connection: keep-alive\r\n"), 1);
    CHECK_EQ(count_str(m.out, "Connection: close\r\n"), 1);
    mem_free(&m);

    const char *close11[] = {"GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                             "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
                             NULL};
    m = (struct mem_io){.pieces = close11};
    serve(&m, NULL, echo, &s);
    CHECK_EQ(s.calls, 1);
    CHECK_STR(m.out, "Connection: close\r\n");
    mem_free(&m);
}

/* A chunked request body arrives de-chunked, even when split across reads. */
TEST_PLAIN(chunked_request_body_is_decoded)
{
    const char *in[] = {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
                        "lo\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n", NULL};
    struct mem_io m = {.pieces = in};
    struct seen s;
    serve(&m, NULL, echo, &s);
    CHECK_EQ(s.calls, 1);
    CHECK_EQ(s.content_length, -1);
    CHECK(strcmp(s.body, "hello world") == 0);
    CHECK_STR(m.out, "Content-Length: 11\r\n");
    mem_free(&m);
}

static int stream3(crl_http_req *req, crl_http_res *res, void *ctx)
{
    (void)req, (void)ctx;
    CHECK_EQ(crl_http_res_start(res, 200, "text/plain"), 0);
    CHECK_EQ(crl_http_res_header(res, "X-Late", "1"), -EALREADY);
    CHECK_EQ(crl_http_res_write(res, "hello", 5), 0);
    CHECK_EQ(crl_http_res_write(res, "", 0), 0);
    CHECK_EQ(crl_http_res_write(res, "0123456789abcdefg", 17), 0);
    CHECK_EQ(crl_http_res_end(res), 0);
    CHECK_EQ(crl_http_res_end(res), -EINVAL);
    return 0;
}

/* A streamed response is chunked for 1.1 and close-delimited for 1.0. */
TEST_PLAIN(streamed_response_framing)
{
    const char *in11[] = {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", NULL};
    struct mem_io m = {.pieces = in11};
    CHECK_EQ(mem_serve(&m, NULL, stream3, NULL), 0);
    CHECK_STR(m.out, "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n11\r\n0123456789abcdefg\r\n"
                     "0\r\n\r\n");
    CHECK_NO_STR(m.out, "Connection:");
    mem_free(&m);

    const char *in10[] = {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", NULL};
    m = (struct mem_io){.pieces = in10};
    CHECK_EQ(mem_serve(&m, NULL, stream3, NULL), 0);
    CHECK_STR(m.out, "Connection: close\r\n\r\nhello0123456789abcdefg");
    CHECK_NO_STR(m.out, "Transfer-Encoding");
    mem_free(&m);
}

/* HEAD gets the head (with the body's Content-Length) and no body. */
TEST_PLAIN(head_gets_no_body)
{
    const char *in[] = {"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
                        NULL};
    struct mem_io m = {.pieces = in};
    struct seen s;
    serve(&m, NULL, echo, &s);
    CHECK_EQ(s.calls, 2);
    CHECK_EQ(count_str(m.out, "HTTP/1.1 200 OK"), 2);
    mem_free(&m);
}

static int send_hello(crl_http_req *req, crl_http_res *res, void *ctx)
{
    (void)req;
    if (ctx)
        ++*(int *)ctx;
    return crl_http_res_send(res, 200, "text/plain", "hello", 5);
}

/* HEAD's head carries the length GET's would, but the body is not sent. */
TEST_PLAIN(head_has_length_without_body)
{
    const char *in[] = {"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", NULL};
    struct mem_io m = {.pieces = in};
    CHECK_EQ(mem_serve(&m, NULL, send_hello, NULL), 0);
    CHECK_STR(m.out, "Content-Length: 5\r\n\r\n");
    CHECK_NO_STR(m.out, "hello");
    mem_free(&m);
}

/* Expect: 100-continue gets "100 Continue" when the handler reads a body not yet sent. */
TEST_PLAIN(expect_continue_is_answered_before_the_body_is_read)
{
    const char *in[] = {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                        "Expect: 100-continue\r\n\r\n",
                        "body", NULL};
    struct mem_io m = {.pieces = in};
    struct seen s;
    serve(&m, NULL, echo, &s);
    CHECK(strcmp(s.body, "body") == 0);
    CHECK(strncmp(m.out, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 42) == 0);
    mem_free(&m);
}

/* A handler that does not read a 100-continue body closes the connection after answering:
 * the client may or may not send the body. */
TEST_PLAIN(expect_continue_unread_closes)
{
    const char *in[] = {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                        "Expect: 100-continue\r\n\r\n",
                        "GET / HTTP/1.1\r\nHost: a\r\n\r\n", NULL};
    struct mem_io m = {.pieces = in};
    int calls = 0;
    CHECK_EQ(mem_serve(&m, NULL, send_hello, &calls), 0);
    CHECK_EQ(calls, 1);
    CHECK_NO_STR(m.out, "100 Continue");
    CHECK_STR(m.out, "Connection: close\r\n");
    mem_free(&m);
}

/* An unread body is drained so the next request on the connection is parsed correctly. */
TEST_PLAIN(unread_body_is_drained)
{
    const char *in[] = {"POST /1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "3\r\nGET\r\n",
                        "0\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n", NULL};
    struct mem_io m = {.pieces = in};
    int calls = 0;
    CHECK_EQ(mem_serve(&m, NULL, send_hello, &calls), 0);
    CHECK_EQ(calls, 2);
    CHECK_EQ(count_str(m.out, "HTTP/1.1 200 OK"), 2);
    mem_free(&m);
}

static int no_response(crl_http_req *req, crl_http_res *res, void *ctx)
{
    (void)req, (void)ctx;
    CHECK_EQ(crl_http_res_header(res, "X-Lost", "1"), 0);
    return 0;
}

/* A handler that returns without a response gets a 500 and a close. */
TEST_PLAIN(handler_without_response_gets_500)
{
    const char *in[] = {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", NULL};
    struct mem_io m = {.pieces = in};
    CHECK_EQ(mem_serve(&m, NULL, no_response, NULL), 0);
    CHECK(strncmp(m.out, "HTTP/1.1 500 Internal Server Error\r\n", 36) == 0);
    CHECK_STR(m.out, "Connection: close\r\n");
    CHECK_NO_STR(m.out, "X-Lost");
    mem_free(&m);
}

static int bad_headers(crl_http_req *req, crl_http_res *res, void *ctx)
{
    (void)req, (void)ctx;
    CHECK_EQ(crl_http_res_header(res, "X-A", "a\r\nInjected: 1"), -EINVAL);
    CHECK_EQ(crl_http_res_header(res, "Bad Name", "v"), -EINVAL);
    CHECK_EQ(crl_http_res_header(res, "", "v"), -EINVAL);
    CHECK_EQ(crl_http_res_header(res, "Content-Length", "3"), -EINVAL);
    CHECK_EQ(crl_http_res_send(res, 99, NULL, NULL, 0), -EINVAL);
    CHECK_EQ(crl_http_res_send(res, 200, "text/plain\r\nX: y", NULL, 0), -EINVAL);
    CHECK_EQ(crl_http_res_write(res, "x", 1), -EINVAL);
    CHECK_EQ(crl_http_res_header(res, "Connection", "close"), 0);
    CHECK_EQ(crl_http_res_send(res, 204, NULL, NULL, 0), 0);
    CHECK_EQ(crl_http_res_send(res, 200, NULL, NULL, 0), -EALREADY);
    CHECK_EQ(crl_http_res_header(res, "X-B", "b"), -EALREADY);
    return 0;
}

/* Response headers are checked; 204 has no Content-Length; Connection: close is honoured. */
TEST_PLAIN(response_headers_are_validated)
{
    const char *in[] = {"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", NULL};
    struct mem_io m = {.pieces = in};
    CHECK_EQ(mem_serve(&m, NULL, bad_headers, NULL), 0);
    CHECK_EQ(count_str(m.out, "HTTP/1.1 204 No Content\r\n"), 1);
    CHECK_NO_STR(m.out, "Content-Length");
    CHECK_NO_STR(m.out, "Injected");
    CHECK_STR(m.out, "Connection: close\r\n\r\n");
    mem_free(&m);
}

/* ---- Bad input -------------------------------------------------------------------------- */

struct bad_case {
    const char *name;
    const char *head; /* followed by a valid request that must never be parsed */
    size_t len;       /* 0: strlen */
    int status;
};

static const struct bad_case bad_cases[] = {
    {"CL with TE",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     0, 400},
    {"TE with CL",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
     "Content-Length: 3\r\n\r\n0\r\n\r\n",
     0, 400},
    {"duplicate CL",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 0, 400},
    {"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx", 0, 400},
    {"CL sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", 0, 400},
    {"CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x1\r\n\r\nx", 0, 400},
    {"bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0,
     400},
    {"chunk size overflow",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     "fffffffffffffffff\r\n",
     0, 400},
    {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", 0, 400},
    {"bare CR", "GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n", 0, 400},
    {"bare LF", "GET / HTTP/1.1\nHost: a\n\n", 0, 400},
    {"NUL in value", "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n", 30, 400},
    {"invalid method", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400},
    {"space in name", "GET / HTTP/1.1\r\nHo st: a\r\n\r\n", 0, 400},
    {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 0, 400},
    {"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", 0, 400},
    {"missing Host", "GET / HTTP/1.1\r\n\r\n", 0, 400},
    {"repeated Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0, 400},
    /* Header names match in any case. */
    {"duplicate CL, cases differ",
     "POST / HTTP/1.1\r\nHost: a\r\nCONTENT-LENGTH: 1\r\ncontent-Length: 1\r\n\r\nx", 0, 400},
    {"repeated Host, cases differ", "GET / HTTP/1.1\r\nHOST: a\r\nhost: b\r\n\r\n", 0, 400},
    {"TE gzip, upper case", "POST / HTTP/1.1\r\nHost: a\r\nTRANSFER-ENCODING: gzip\r\n\r\n", 0,
     400},
    {"TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, 400},
    {"TE gzip (chunked not last)", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
     0, 400},
    {"TE gzip, chunked",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
     "0\r\n\r\n",
     0, 501},
    {"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 0, 501},
    {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 0, 505},
    {"HTTP/3.0", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", 0, 505},
    {"HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", 0, 505},
    {"no version (HTTP/0.9 style)", "GET /\r\n\r\n", 0, 400},
    {"two-digit minor", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 0, 400},
    {"space after the version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 0, 400},
    {"two spaces before the target", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400},
    /* obs-fold in every position, framing headers too (RFC 9112 5.2) */
    {"obs-fold before the value", "GET / HTTP/1.1\r\nHost: a\r\nX:\r\n 2\r\n\r\n", 0, 400},
    {"obs-fold, empty continuation", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n \r\n\r\n", 0, 400},
    {"obs-fold, empty value and continuation", "GET / HTTP/1.1\r\nHost: a\r\nX:\r\n\t\r\n\r\n", 0,
     400},
    {"folded Transfer-Encoding",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 0, 400},
    {"folded Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n 1\r\n\r\nx", 0,
     400},
    {"folded Host", "GET / HTTP/1.1\r\nHost:\r\n a\r\n\r\n", 0, 400},
    {"obs-fold in a trailer",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n 2\r\n\r\n", 0,
     400},
    {"obs-fold before a trailer's value",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX:\r\n 2\r\n\r\n", 0,
     400},
    {"obs-fold after an empty trailer value",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX:\r\n \r\n\r\n", 0,
     400},
    /* A trailer field's name is a token (RFC 9110 5.1; found by diff_h11) */
    {"trailer with an empty name",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n: 1\r\n\r\n", 0, 400},
    {"trailer with an empty name, after another",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\nX: 1\r\n:-T: "
     "1\r\n\r\n",
     0, 400},
    /* The target and the authority (RFC 9112 3.2, RFC 3986 3.2) */
    {"Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 0, 400},
    {"Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 0, 400},
    {"Host with a bad port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 0, 400},
    {"Host with a path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 0, 400},
    {"Host with a bad IPv6 literal", "GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n", 0, 400},
    {"Host with a bad percent-encoding", "GET / HTTP/1.1\r\nHost: a%2\r\n\r\n", 0, 400},
    {"Host in 1.0, invalid", "GET / HTTP/1.0\r\nHost: a<b\r\n\r\n", 0, 400},
    {"absolute-form, other scheme", "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400},
    {"absolute-form, userinfo", "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400},
    {"absolute-form, empty host", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400},
    {"absolute-form, no Host", "GET http://a/ HTTP/1.1\r\n\r\n", 0, 400},
    {"asterisk-form for GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400},
    {"fragment in the target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 0, 400},
};

static const char smuggled[] = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

/* Each bad request gets its status and Connection: close, and what follows it is never
 * parsed as a request (no handler call for it, no second response). */
TEST_PLAIN(bad_input_is_rejected_and_nothing_after_it_parsed)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        const struct bad_case *b = &bad_cases[i];
        size_t len = b->len ? b->len : strlen(b->head);
        char in0[1024];
        memcpy(in0, b->head, len);
        memcpy(in0 + len, smuggled, sizeof smuggled);
        const char *in[] = {in0, NULL};
        struct mem_io m = {.pieces = in, .lens = {len + sizeof smuggled - 1}};
        struct seen s;
        serve(&m, NULL, echo, &s);
        char want[64];
        snprintf(want, sizeof want, "HTTP/1.1 %d ", b->status);
        /* A bad body is found by the handler's read: one call, for the bad request only. */
        if (strncmp(m.out, want, strlen(want)) != 0 || s.calls > 1 ||
            strcmp(s.target, "/smuggled") == 0 || count_str(m.out, "HTTP/1.1") != 1 ||
            !strstr(m.out, "Connection: close\r\n"))
            test_fail(__FILE__, __LINE__, "%s: %d handler calls, got:\n%s", b->name, s.calls,
                      m.out);
        mem_free(&m);
    }
}

/* A Transfer-Encoding without chunked as its final coding, even an empty one, leaves the body's
 * length unknown (RFC 9112 6.3): 400, also next to a Content-Length another parser would frame
 * by (found by tests/http/diff_h11.py). */
TEST_PLAIN(empty_transfer_encoding_is_rejected)
{
    static const char *heads[] = {
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\nContent-Length: 3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: \r\n\r\nabc",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:\r\n\r\n"
        "0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof heads / sizeof *heads; i++) {
        char in0[512];
        snprintf(in0, sizeof in0, "%s%s", heads[i], smuggled);
        const char *in[] = {in0, NULL};
        struct mem_io m = {.pieces = in};
        struct seen s;
        serve(&m, NULL, echo, &s);
        if (strncmp(m.out, "HTTP/1.1 400 ", 13) != 0 || s.calls != 0)
            test_fail(__FILE__, __LINE__, "%s: %d handler calls, got:\n%s", heads[i], s.calls,
                      m.out);
        mem_free(&m);
    }
}

/* Empty lines (CRLF) before a request line are skipped (RFC 9112 2.2), a bare CR is not: it
 * is invalid wherever it appears (found by tests/http/diff_h11.py). */
TEST_PLAIN(bare_cr_before_the_request_line_is_rejected)
{
    static const char *ins[] = {
        "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n\r\r\rGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n\r\n\rGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof ins / sizeof *ins; i++) {
        const char *in[] = {ins[i], NULL};
        struct mem_io m = {.pieces = in};
        struct seen s;
        serve(&m, NULL, echo, &s);
        if (!strstr(m.out, "HTTP/1.1 400 ") || strcmp(s.target, "/smuggled") == 0)
            test_fail(__FILE__, __LINE__, "case %zu: %d handler calls, got:\n%s", i, s.calls,
                      m.out);
        mem_free(&m);
    }
    const char *ok[] = {"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", NULL};
    struct mem_io m = {.pieces = ok};
    struct seen s;
    serve(&m, NULL, echo, &s);
    CHECK_EQ(s.calls, 1);
    CHECK_STR(m.out, "HTTP/1.1 200 ");
    mem_free(&m);
}

/* ---- Limits ----------------------------------------------------------------------------- */

static void expect_status(const char *input, const struct crl_http_limits *lim, int status)
{
    const char *in[] = {input, NULL};
    struct mem_io m = {.pieces = in};
    struct seen s;
    serve(&m, lim, echo, &s);
    char want[32];
    snprintf(want, sizeof want, "HTTP/1.1 %d ", status);
    if (strncmp(m.out, want, strlen(want)) != 0 || !strstr(m.out, "Connection: close\r\n"))
        test_fail(__FILE__, __LINE__, "want %d for:\n%s\ngot:\n%s", status, input, m.out);
    mem_free(&m);
}

/* The request line's parts are split by one SP each (RFC 9112 3): llhttp took a run of them
 * (found by tests/http/diff_h11.py). */
TEST_PLAIN(request_line_with_a_run_of_spaces_is_rejected)
{
    expect_status("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", NULL, 400);
    expect_status("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", NULL, 400);
    expect_status("GET /a/b   HTTP/1.1\r\nHost: a\r\n\r\n", NULL, 400);
}

/* A request line over max_request_line gets 414, even split over many reads. */
TEST_PLAIN(long_request_line_gets_414)
{
    struct crl_http_limits lim = {.max_request_line = 64};
    char line[256];
    snprintf(line, sizeof line, "GET /%0100d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
    expect_status(line, &lim, 414);
    expect_status("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
                  "HTTP/1.1\r\nHost: a\r\n\r\n",
                  &lim, 414);
    /* Under the default 8 KiB limit, a 100 KiB target never fits: 414 as the buffer fills. */
    static char huge[100 * 1024];
    memset(huge, 'a', sizeof huge - 1);
    memcpy(huge, "GET /", 5);
    expect_status(huge, NULL, 414);
}

/* Header bytes over max_header_bytes, or more than max_headers headers, get 431. */
TEST_PLAIN(large_or_many_headers_get_431)
{
    struct crl_http_limits lim = {.max_header_bytes = 64, .max_headers = 3};
    expect_status(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
        &lim, 431);
    expect_status("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &lim, 431);
    static char huge[64 * 1024];
    char *p = huge + sprintf(huge, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    memset(p, 'v', sizeof huge - 1 - (size_t)(p - huge));
    expect_status(huge, NULL, 431);
}

/* A Content-Length over max_body gets 413 before the handler runs. */
TEST_PLAIN(large_content_length_gets_413)
{
    struct crl_http_limits lim = {.max_body = 10};
    expect_status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n01234567890", &lim, 413);
}

/* A chunked body growing over max_body: the handler's read fails with -EMSGSIZE and the
 * client gets 413. */
TEST_PLAIN(large_chunked_body_gets_413)
{
    struct crl_http_limits lim = {.max_body = 10};
    const char *in[] = {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "6\r\n012345\r\n6\r\n678901\r\n0\r\n\r\n",
                        NULL};
    struct mem_io m = {.pieces = in};
    struct seen s;
    serve(&m, &lim, echo, &s);
    CHECK_EQ(s.body_err, -EMSGSIZE);
    CHECK(strncmp(m.out, "HTTP/1.1 413 ", 13) == 0);
    mem_free(&m);
}

/* A transport timeout in the middle of a head gets 408; between requests, a silent close. */
TEST_PLAIN(timeouts_in_head_and_idle)
{
    const char *partial[] = {"GET / HTTP/1.1\r\nHo", NULL};
    struct mem_io m = {.pieces = partial, .timeout_at_end = true};
    struct seen s;
    serve(&m, NULL, echo, &s);
    CHECK(strncmp(m.out, "HTTP/1.1 408 ", 13) == 0);
    mem_free(&m);

    const char *idle[] = {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", NULL};
    m = (struct mem_io){.pieces = idle, .timeout_at_end = true};
    serve(&m, NULL, echo, &s);
    CHECK_EQ(count_str(m.out, "HTTP/1.1"), 1);
    CHECK(strncmp(m.out, "HTTP/1.1 200 ", 13) == 0);
    mem_free(&m);
}

/* Blank out every Date value (the clock may tick between two runs). */
static void mask_dates(char *out)
{
    for (char *p = out; (p = strstr(p, "Date: ")) != NULL; p += 6)
        for (char *q = p + 6; *q && *q != '\r'; q++)
            *q = '#';
}

/* A transport that writes and starts the next read in one call (the socket server's
 * write_read) gets the same bytes out as one that flushes, then reads: keep-alive,
 * pipelining, 100-continue, chunked bodies, timeouts and bad input alike. */
TEST_PLAIN(write_read_transport_answers_alike)
{
    static const char *const scripts[][4] = {
        {"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n", "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n", NULL},
        {"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\n",
         "Host: a\r\n\r\n", NULL},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n", "body",
         "GET / HTTP/1.1\r\nHost: a\r\n\r\n", NULL},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
         "0\r\n\r\n", NULL},
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHo", NULL},
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", NULL},
    };
    for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
        struct mem_io plain = {.pieces = scripts[i], .timeout_at_end = true};
        struct mem_io wr = {.pieces = scripts[i], .timeout_at_end = true, .write_read = true};
        struct seen s;
        serve(&plain, NULL, echo, &s);
        serve(&wr, NULL, echo, &s);
        mask_dates(plain.out);
        mask_dates(wr.out);
        CHECK(strstr(plain.out, "HTTP/1.1 ") != NULL);
        CHECK(strcmp(plain.out, wr.out) == 0);
        mem_free(&plain);
        mem_free(&wr);
    }
}

/* A body that stops coming gets 408 (the handler's read returns -ETIMEDOUT). */
TEST_PLAIN(body_timeout_gets_408)
{
    const char *in[] = {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc", NULL};
    struct mem_io m = {.pieces = in, .timeout_at_end = true};
    struct seen s;
    serve(&m, NULL, echo, &s);
    CHECK_EQ(s.body_err, -ETIMEDOUT);
    CHECK(strncmp(m.out, "HTTP/1.1 408 ", 13) == 0);
    mem_free(&m);
}

static int whole_body(crl_http_req *req, crl_http_res *res, void *ctx)
{
    struct seen *s = ctx;
    const void *body;
    s->calls++;
    s->body_len = crl_http_req_body(req, &body);
    if (s->body_len < 0)
        return (int)s->body_len;
    return crl_http_res_send(res, 200, NULL, body, (size_t)s->body_len);
}

/* crl_http_req_body returns the whole body, in place or buffered, chunked or not. */
TEST_PLAIN(whole_body_is_buffered)
{
    const char *in[] = {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
                        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nwor",
                        "ld!",
                        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "2\r\nab\r\n",
                        "1\r\nc\r\n0\r\n\r\n",
                        NULL};
    struct mem_io m = {.pieces = in};
    struct seen s;
    serve(&m, NULL, whole_body, &s);
    CHECK_EQ(s.calls, 3);
    CHECK_STR(m.out, "Content-Length: 5\r\n\r\nhello");
    CHECK_STR(m.out, "Content-Length: 6\r\n\r\nworld!");
    CHECK_STR(m.out, "Content-Length: 3\r\n\r\nabc");
    mem_free(&m);
}

/* Headers are listed in order with their values trimmed; empty values are "". */
static int list_headers(crl_http_req *req, crl_http_res *res, void *ctx)
{
    (void)ctx;
    CHECK_EQ(crl_http_req_header_count(req), 3);
    const char *n, *v;
    crl_http_req_header_at(req, 1, &n, &v);
    CHECK(strcmp(n, "X-Empty") == 0 && strcmp(v, "") == 0);
    crl_http_req_header_at(req, 2, &n, &v);
    CHECK(strcmp(n, "x-tab") == 0 && strcmp(v, "a \t b") == 0);
    crl_http_req_header_at(req, 3, &n, &v);
    CHECK(n == NULL && v == NULL);
    CHECK(crl_http_req_header(req, "missing") == NULL);
    CHECK(strcmp(crl_http_req_header(req, "X-TAB"), "a \t b") == 0);
    CHECK(strcmp(crl_http_req_method(req), "DELETE") == 0);
    CHECK(strcmp(crl_http_req_path(req), "/x") == 0);
    CHECK(crl_http_req_query(req) == NULL);
    return crl_http_res_send(res, 200, NULL, NULL, 0);
}

TEST_PLAIN(request_headers_are_listed)
{
    const char *in[] = {"DELETE /x HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nx-tab:\t a \t b \t\r\n\r\n",
                        NULL};
    struct mem_io m = {.pieces = in};
    CHECK_EQ(mem_serve(&m, NULL, list_headers, NULL), 0);
    CHECK(strncmp(m.out, "HTTP/1.1 200 ", 13) == 0);
    mem_free(&m);
}

/* The first headers are indexed inside the connection, the rest (up to max_headers, 100 by
 * default) on the heap: every one of 100 is listed in order, on every request of the
 * connection, and a 101st gets 431. */
static int count_headers(crl_http_req *req, crl_http_res *res, void *ctx)
{
    int *calls = ctx;
    ++*calls;
    CHECK_EQ(crl_http_req_header_count(req), 100);
    for (size_t i = 1; i < 100; i++) {
        const char *n, *v;
        char want_n[16], want_v[16];
        crl_http_req_header_at(req, i, &n, &v);
        snprintf(want_n, sizeof want_n, "X-%zu", i);
        snprintf(want_v, sizeof want_v, "v%zu-%d", i, *calls);
        CHECK(n && strcmp(n, want_n) == 0);
        CHECK(v && strcmp(v, want_v) == 0);
    }
    CHECK(strcmp(crl_http_req_header(req, "x-99"), *calls == 1 ? "v99-1" : "v99-2") == 0);
    return crl_http_res_send(res, 200, NULL, NULL, 0);
}

static void many_headers(char *buf, size_t cap, int n, int round)
{
    size_t len = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "X-%d: v%d-%d\r\n", i, i, round);
    snprintf(buf + len, cap - len, "\r\n");
}

TEST_PLAIN(headers_beyond_the_inline_index_are_kept)
{
    static char first[4096], second[4096], too_many[4096];
    many_headers(first, sizeof first, 100, 1);
    many_headers(second, sizeof second, 100, 2);
    const char *in[] = {first, second, NULL};
    struct mem_io m = {.pieces = in};
    int calls = 0;
    CHECK_EQ(mem_serve(&m, NULL, count_headers, &calls), 0);
    CHECK_EQ(calls, 2);
    CHECK(strncmp(m.out, "HTTP/1.1 200 ", 13) == 0);
    CHECK(strstr(m.out + 13, "HTTP/1.1 200 ") != NULL);
    mem_free(&m);
    many_headers(too_many, sizeof too_many, 101, 1);
    expect_status(too_many, NULL, 431);
}

/* An Upgrade request is answered as an ordinary one, then the connection closes: the bytes
 * after it are never parsed as HTTP. */
TEST_PLAIN(upgrade_request_is_answered_then_closed)
{
    const char *in[] = {
        "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        NULL};
    struct mem_io m = {.pieces = in};
    struct seen s;
    serve(&m, NULL, echo, &s);
    CHECK_EQ(s.calls, 1);
    CHECK(strcmp(s.target, "/ws") == 0);
    CHECK_EQ(count_str(m.out, "HTTP/1.1 200 OK"), 1);
    CHECK_STR(m.out, "Connection: close\r\n");
    mem_free(&m);
}

/* The Date header is an IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT". */
TEST_PLAIN(date_header_is_imf_fixdate)
{
    const char *d = crl__http_date(&crl__http_core()->date, crl__now_coarse_ns());
    char day[4], mon[4];
    int mday, year, h, m, s, n = 0;
    CHECK_EQ(sscanf(d, "%3[A-Za-z], %2d %3s %4d %2d:%2d:%2d GMT%n", day, &mday, mon, &year, &h, &m,
                    &s, &n),
             7);
    CHECK_EQ(n, CRL__HTTP_DATE_LEN);
    CHECK(strlen(day) == 3 && strstr("Mon,Tue,Wed,Thu,Fri,Sat,Sun", day) != NULL);
    CHECK(strstr("JanFebMarAprMayJunJulAugSepOctNovDec", mon) != NULL);
    CHECK_GE(year, 2024);
    CHECK(crl__http_date(&crl__http_core()->date, crl__now_coarse_ns()) ==
          d); /* one cached string per core */
}

/* The wall clock's second, coarse: what the Date header must show. */
static time_t wall_second(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return ts.tv_sec;
}

/* The cached Date moves on with the wall clock's second (it is checked against the monotonic
 * clock, and the two must agree on where a second ends). */
TEST_PLAIN(date_header_follows_the_wall_clock_second)
{
    char before[CRL__HTTP_DATE_LEN + 1];
    time_t sec = wall_second();
    strcpy(before, crl__http_date(&crl__http_core()->date, crl__now_coarse_ns()));
    while (wall_second() == sec) /* at most a second */
        nanosleep(&(struct timespec){.tv_nsec = 5 * 1000 * 1000}, NULL);
    time_t next = wall_second();
    const char *after = crl__http_date(&crl__http_core()->date, crl__now_coarse_ns());
    if (wall_second() != next)
        return; /* a second went by again meanwhile: nothing to compare (rare) */
    CHECK(strcmp(before, after) != 0);
    struct tm tm;
    char want[64];
    gmtime_r(&next, &tm);
    strftime(want, sizeof want, "%a, %d %b %Y %H:%M:%S GMT", &tm); /* C locale in tests */
    CHECK(strcmp(after, want) == 0);
}

/* Timeouts of INT64_MAX (as good as none) do not overflow the deadlines made from them (the
 * ASan+UBSan build traps signed overflow); requests, bodies and pipelining work as usual. */
TEST_PLAIN(limits_of_int64_max_timeouts_serve_as_usual)
{
    const char *in[] = {"POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                        "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
                        NULL};
    struct crl_http_limits lim = {.header_timeout_ns = INT64_MAX,
                                  .body_timeout_ns = INT64_MAX,
                                  .idle_timeout_ns = INT64_MAX,
                                  .write_timeout_ns = INT64_MAX};
    struct mem_io m = {.pieces = in};
    struct seen s;
    serve(&m, &lim, echo, &s);
    CHECK_EQ(s.calls, 2);
    CHECK_STR(m.out, "Content-Length: 3\r\nX-Target: /1\r\n\r\nabc");
    CHECK_STR(m.out, "X-Target: /2\r\n");
    mem_free(&m);
}
