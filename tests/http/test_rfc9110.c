/* RFC 9110 (HTTP semantics) conformance of the server, end to end over the memory
 * transport: one case per server-side MUST / MUST NOT of sections 5 (fields), 6 (message
 * abstraction), 7.2 (Host), 8.6 (Content-Length), 9.3 (GET, HEAD), 10.1.1 (Expect) and 15
 * (the status codes it sends); section 13 (conditional requests) is tested on the static-file
 * route in tests/tools/test_httpd.c. tests/http/README.md maps each section to its test. */
#define _GNU_SOURCE
#include "conform.h"

/* ---- 5. Fields -------------------------------------------------------------------------- */

/* 5.1: field names are case-insensitive, framing and Host included. */
TEST_PLAIN(rfc9110_5_1_field_names_are_case_insensitive)
{
    struct mem_io m;
    struct app a = {.hdr_name = "x-CUSTOM"};
    EXPECT_SERVED("POST / HTTP/1.1\r\nhOsT: h\r\nCONTENT-length: 2\r\nX-Custom: v\r\n\r\nab", 1, &a,
                  &m);
    CHECK_STR(m.out, "ok:ab");
    mem_free(&m);
    exchange(&m, "GET / HTTP/1.1\r\nhOsT: h\r\nX-Custom: v\r\n\r\n", 0, &a);
    CHECK(strcmp(a.hdr, "v") == 0);
    CHECK(strcmp(a.host, "h") == 0);
    mem_free(&m);
}

/* 5.4: more fields than the server processes: 431. */
TEST_PLAIN(rfc9110_5_4_too_many_fields_get_431)
{
    static char req[64 * 1024];
    char *p = req + sprintf(req, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 200; i++)
        p += sprintf(p, "X-%d: v\r\n", i);
    strcpy(p, "\r\n");
    EXPECT_REJECTED(req, 431);
}

/* 5.5: leading and trailing whitespace is not part of a field value. */
TEST_PLAIN(rfc9110_5_5_value_whitespace_is_trimmed)
{
    struct mem_io m;
    struct app a = {.hdr_name = "X"};
    exchange(&m, "GET / HTTP/1.1\r\nHost: \t h \t\r\nX:  \t a  b \t \r\n\r\n", 0, &a);
    CHECK(strcmp(a.hdr, "a  b") == 0);
    CHECK(strcmp(a.host, "h") == 0);
    mem_free(&m);
}

/* 5.5: CR, LF or NUL in a field value: the message is rejected. */
TEST_PLAIN(rfc9110_5_5_cr_lf_nul_in_a_value_are_rejected)
{
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r2\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nX: 1\n2\r\n\r\n", 400);
    static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: 1\0002\r\n\r\n";
    EXPECT_REJECTED_N(nul, sizeof nul - 1, 400);
}

/* 5.6.1: empty list elements are ignored: ", close" closes, ", ,chunked" is chunked. (An
 * empty element after chunked gets 400: llhttp 8.1 does not take that body as chunked, and
 * the server never frames a body otherwise than llhttp does.) */
TEST_PLAIN(rfc9110_5_6_1_empty_list_elements_are_ignored)
{
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nConnection: , close\r\n\r\n", 200);
    struct mem_io m;
    struct app a = {0};
    EXPECT_SERVED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , ,chunked\r\n\r\n"
                  "2\r\nab\r\n0\r\n\r\n",
                  1, &a, &m);
    CHECK_STR(m.out, "ok:ab");
    mem_free(&m);
}

/* 5.6.2: a field name is a token. */
TEST_PLAIN(rfc9110_5_6_2_field_names_are_tokens)
{
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nX Y: 1\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nX@: 1\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nX\x7f: 1\r\n\r\n", 400);
}

/* ---- 6. Message abstraction ------------------------------------------------------------- */

/* 6.4.1: responses to HEAD, and 204 and 304 responses, have no content. */
TEST_PLAIN(rfc9110_6_4_1_some_responses_have_no_content)
{
    struct mem_io m;
    struct app a = {0};
    exchange(&m,
             "HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nHEAD /stream HTTP/1.1\r\nHost: a\r\n\r\n"
             "GET /204 HTTP/1.1\r\nHost: a\r\n\r\nGET /304 HTTP/1.1\r\nHost: a\r\n\r\n",
             0, &a);
    CHECK_EQ(count_str(m.out, "HTTP/1.1 "), 4);
    CHECK_NO_STR(m.out, "ok:");
    CHECK_NO_STR(m.out, "one,");
    CHECK_NO_STR(m.out, "nobody");
    CHECK_NO_STR(m.out, "\r\n0\r\n"); /* not even a last chunk */
    mem_free(&m);
}

/* 6.5: trailer fields are not merged into the header section. */
TEST_PLAIN(rfc9110_6_5_trailers_are_not_merged_into_the_header)
{
    struct mem_io m;
    struct app a = {.hdr_name = "Content-Type"};
    exchange(&m,
             "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
             "1\r\nz\r\n0\r\nContent-Type: evil\r\n\r\n",
             0, &a);
    CHECK(strcmp(a.hdr, "(null)") == 0);
    CHECK_EQ(a.nhdrs, 2);
    mem_free(&m);
}

/* 6.6.1: an origin server with a clock sends Date in every 2xx, 3xx, 4xx response (and its
 * own 5xx), as an IMF-fixdate. */
TEST_PLAIN(rfc9110_6_6_1_date_is_in_every_response)
{
    const char *reqs[] = {"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                          "GET /304 HTTP/1.1\r\nHost: a\r\n\r\n", "GET / HTTP/1.1\r\n\r\n",
                          "GET / HTTP/2.0\r\nHost: a\r\n\r\n"};
    for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++) {
        struct mem_io m;
        struct app a = {0};
        exchange(&m, reqs[i], 0, &a);
        const char *d = strstr(m.out, "\r\nDate: ");
        CHECK(d != NULL);
        CHECK_EQ(strcspn(d + 8, "\r"), 29);
        CHECK(strncmp(d + 8 + 25, " GMT", 4) == 0);
        mem_free(&m);
    }
}

/* ---- 7.2 Host --------------------------------------------------------------------------- */

/* 7.2: a 1.1 request needs one valid Host; the handler gets it as the authority. */
TEST_PLAIN(rfc9110_7_2_host_is_required_and_given_to_the_handler)
{
    EXPECT_REJECTED("GET / HTTP/1.1\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400);
    struct mem_io m;
    struct app a = {0};
    exchange(&m, "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 0, &a);
    CHECK(strcmp(a.host, "[::1]:8080") == 0);
    mem_free(&m);
    exchange(&m, "GET / HTTP/1.0\r\n\r\n", 0, &a);
    CHECK(strcmp(a.host, "(null)") == 0);
    mem_free(&m);
}

/* ---- 8.6 Content-Length ----------------------------------------------------------------- */

/* 8.6: a large Content-Length is parsed without overflow (413 over the limit, 400 past
 * 64 bits), and a handler cannot send its own (the server frames every response). */
TEST_PLAIN(rfc9110_8_6_content_length_is_parsed_safely)
{
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n",
                    413);
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n",
                    400);
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999999\r\n"
                    "\r\n",
                    400);
}

static int own_length(crl_http_req *req, crl_http_res *res, void *ctx)
{
    (void)req, (void)ctx;
    CHECK_EQ(crl_http_res_header(res, "Content-Length", "1"), -EINVAL);
    CHECK_EQ(crl_http_res_header(res, "transfer-encoding", "chunked"), -EINVAL);
    return crl_http_res_send(res, 200, NULL, "abc", 3);
}

/* 8.6: the Content-Length sent is the content's length, never with Transfer-Encoding. */
TEST_PLAIN(rfc9110_8_6_content_length_is_the_servers_own)
{
    const char *in[] = {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", NULL};
    struct mem_io m = {.pieces = in};
    CHECK_EQ(mem_serve(&m, NULL, own_length, NULL), 0);
    CHECK_EQ(count_str(m.out, "Content-Length"), 1);
    CHECK_STR(m.out, "Content-Length: 3\r\n\r\nabc");
    CHECK_NO_STR(m.out, "Transfer-Encoding");
    mem_free(&m);
    struct app a = {0};
    exchange(&m, "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n", 0, &a);
    CHECK_STR(m.out, "Transfer-Encoding: chunked\r\n");
    CHECK_NO_STR(m.out, "Content-Length");
    mem_free(&m);
}

/* ---- 9.3 Methods ------------------------------------------------------------------------ */

/* 9.3.1: content in a GET has no meaning, but it is framed: the next request follows it. */
TEST_PLAIN(rfc9110_9_3_1_get_with_content_is_framed)
{
    struct mem_io m;
    struct app a = {0};
    EXPECT_SERVED("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nGET /", 1, &a, &m);
    mem_free(&m);
    EXPECT_SERVED("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "5\r\nGET /\r\n0\r\n\r\n",
                  1, &a, &m);
    mem_free(&m);
}

/* 9.3.2: HEAD gets the header fields GET would (Content-Length too), and no content. */
TEST_PLAIN(rfc9110_9_3_2_head_gets_gets_fields_without_content)
{
    struct mem_io m;
    struct app a = {0};
    exchange(&m, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 0, &a);
    const char *get_fields = strstr(m.out, "Content-Type");
    char want[256];
    snprintf(want, sizeof want, "%.*s", (int)(strstr(get_fields, "\r\n\r\n") - get_fields),
             get_fields);
    mem_free(&m);
    exchange(&m, "HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n", 0, &a);
    CHECK_STR(m.out, want);
    CHECK(strstr(m.out, "\r\n\r\n")[4] == '\0');
    CHECK(strcmp(a.method, "HEAD") == 0);
    mem_free(&m);
}

/* ---- 10.1.1 Expect ---------------------------------------------------------------------- */

/* 10.1.1: 100 (Continue) goes out when the handler reads the content, then the final
 * status; a 1.0 request's expectation is ignored (no 1xx to a 1.0 client, 15.2). */
TEST_PLAIN(rfc9110_10_1_1_continue_then_a_final_status)
{
    const char *in[] = {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
                        "Expect: 100-continue\r\n\r\n",
                        "ab", NULL};
    struct mem_io m;
    struct app a = {0};
    exchange_pieces(&m, in, &a, NULL);
    CHECK(strncmp(m.out, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 42) == 0);
    CHECK_STR(m.out, "ok:ab");
    mem_free(&m);
    const char *in10[] = {"POST / HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
                          "ab", NULL};
    exchange_pieces(&m, in10, &a, NULL);
    CHECK_NO_STR(m.out, "100 Continue");
    CHECK_STR(m.out, "ok:ab");
    mem_free(&m);
}

/* 10.1.1: a final response without reading the content (no 100 sent) closes the
 * connection and says so. */
TEST_PLAIN(rfc9110_10_1_1_final_status_without_continue_closes)
{
    EXPECT_REJECTED("POST /unread HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
                    "Expect: 100-continue\r\n\r\n",
                    200);
}

/* ---- 15. Status codes ------------------------------------------------------------------- */

static int informational(crl_http_req *req, crl_http_res *res, void *ctx)
{
    (void)req, (void)ctx;
    CHECK_EQ(crl_http_res_send(res, 100, NULL, NULL, 0), -EINVAL);
    CHECK_EQ(crl_http_res_start(res, 101, NULL), -EINVAL);
    return crl_http_res_send(res, 200, NULL, "x", 1);
}

/* 15.2: a handler cannot send a 1xx (the server sends 100 Continue itself, never to 1.0). */
TEST_PLAIN(rfc9110_15_2_handlers_send_no_1xx)
{
    const char *in[] = {"GET / HTTP/1.0\r\n\r\n", NULL};
    struct mem_io m = {.pieces = in};
    CHECK_EQ(mem_serve(&m, NULL, informational, NULL), 0);
    CHECK(strncmp(m.out, "HTTP/1.1 200 OK\r\n", 17) == 0);
    mem_free(&m);
}

/* 15.3.5, 15.4.5: 204 and 304 end at their header section: no content, no length. */
TEST_PLAIN(rfc9110_15_3_5_and_15_4_5_204_and_304_end_at_the_header)
{
    struct mem_io m;
    struct app a = {0};
    EXPECT_SERVED("GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 1, &a, &m);
    mem_free(&m);
    exchange(&m, "GET /204 HTTP/1.1\r\nHost: a\r\n\r\nGET /304 HTTP/1.1\r\nHost: a\r\n\r\n", 0, &a);
    CHECK(strncmp(m.out, "HTTP/1.1 204 No Content\r\n", 25) == 0);
    CHECK_STR(m.out, "\r\n\r\nHTTP/1.1 304 Not Modified\r\n");
    CHECK(strstr(strstr(m.out, "304"), "\r\n\r\n")[4] == '\0');
    mem_free(&m);
}

/* 15.5, 15.6: the server's own errors carry their reason, Content-Length: 0 and close. */
TEST_PLAIN(rfc9110_15_5_server_errors_are_complete_responses)
{
    struct crl_http_limits lim = {.max_body = 1};
    const char *in[] = {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab", NULL};
    struct mem_io m;
    struct app a = {0};
    exchange_pieces(&m, in, &a, &lim);
    CHECK(strncmp(m.out, "HTTP/1.1 413 Content Too Large\r\n", 32) == 0);
    CHECK_STR(m.out, "Content-Length: 0\r\nConnection: close\r\n\r\n");
    mem_free(&m);
    exchange(&m, "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 0, &a);
    CHECK(strncmp(m.out, "HTTP/1.1 505 HTTP Version Not Supported\r\n", 41) == 0);
    mem_free(&m);
    exchange(&m, "FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 0, &a);
    CHECK(strncmp(m.out, "HTTP/1.1 501 Not Implemented\r\n", 30) == 0);
    mem_free(&m);
}

/* 15.5.9: a request head that does not arrive in time: 408 and close. */
TEST_PLAIN(rfc9110_15_5_9_incomplete_head_gets_408)
{
    const char *in[] = {"GET / HTTP/1.1\r\nHost:", NULL};
    struct mem_io m;
    struct app a = {0};
    app_reset(&a);
    m = (struct mem_io){.pieces = in, .timeout_at_end = true};
    CHECK_EQ(mem_serve(&m, NULL, app_handler, &a), 0);
    CHECK(strncmp(m.out, "HTTP/1.1 408 Request Timeout\r\n", 30) == 0);
    CHECK_STR(m.out, "Connection: close\r\n");
    CHECK_EQ(a.calls, 0);
    mem_free(&m);
}
