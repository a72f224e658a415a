/* RFC 9112 (HTTP/1.1) conformance of the server, end to end over the memory transport: one
 * case per server-side MUST / MUST NOT of sections 2 to 9 (the section in its name), and one
 * per request-smuggling class of the HTTP Garden and PortSwigger catalogues (smuggling_*).
 * tests/http/README.md maps each section to its test, here or elsewhere. */
#define _GNU_SOURCE
#include "conform.h"

/* ---- 2. Message ------------------------------------------------------------------------- */

/* 2.2: a bare CR anywhere in the head is invalid: 400. */
TEST_PLAIN(rfc9112_2_2_bare_cr_is_rejected)
{
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r2\r\n\r\n", 400);
    EXPECT_REJECTED("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\rHost: a\r\n\r\n", 400);
}

/* 2.2: whitespace between the start-line and the first field line: rejected (400). */
TEST_PLAIN(rfc9112_2_2_whitespace_before_the_first_field_is_rejected)
{
    EXPECT_REJECTED("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\n\tHost: a\r\n\r\n", 400);
}

/* 2.2: empty lines before a request line are ignored (SHOULD). */
TEST_PLAIN(rfc9112_2_2_empty_lines_before_the_request_line_are_ignored)
{
    struct mem_io m;
    struct app a = {0};
    EXPECT_SERVED("\r\nGET /1 HTTP/1.1\r\nHost: a\r\n\r\n\r\n", 1, &a, &m);
    mem_free(&m);
}

/* 2.3: the response's version is the server's, HTTP/1.1, for a 1.0 request too. */
TEST_PLAIN(rfc9112_2_3_response_version_is_1_1)
{
    struct mem_io m;
    struct app a = {0};
    exchange(&m, "GET / HTTP/1.0\r\n\r\n", 0, &a);
    CHECK(strncmp(m.out, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK_EQ(a.version, 10);
    mem_free(&m);
}

/* 2.3 (and RFC 9110 2.5): a higher minor version is processed as 1.1; another major gets
 * 505; a version not of the form DIGIT.DIGIT, or none, gets 400. */
TEST_PLAIN(rfc9112_2_3_versions_are_checked)
{
    struct mem_io m;
    struct app a = {0};
    EXPECT_SERVED("GET / HTTP/1.7\r\nHost: a\r\n\r\n", 1, &a, &m);
    CHECK_EQ(a.version, 11);
    mem_free(&m);
    EXPECT_REJECTED("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
    EXPECT_REJECTED("GET / HTTP/3.1\r\nHost: a\r\n\r\n", 505);
    EXPECT_REJECTED("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505);
    EXPECT_REJECTED("GET / HTTP/1.01\r\nHost: a\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1\r\nHost: a\r\n\r\n", 400);
    EXPECT_REJECTED("GET / http/1.1\r\nHost: a\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1x\r\nHost: a\r\n\r\n", 400);
    EXPECT_REJECTED("GET /\r\n\r\n", 400);
}

/* ---- 3. Request line -------------------------------------------------------------------- */

/* 3: method SP target SP version, single spaces: other whitespace gets 400. */
TEST_PLAIN(rfc9112_3_request_line_with_other_whitespace_gets_400)
{
    EXPECT_REJECTED("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    EXPECT_REJECTED("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    EXPECT_REJECTED("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400);
    EXPECT_REJECTED(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    EXPECT_REJECTED("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

/* 3.1 (RFC 9110 9.1): a method that is a token we do not implement gets 501 (methods are
 * case-sensitive); a method that is no token gets 400. */
TEST_PLAIN(rfc9112_3_1_unknown_method_gets_501)
{
    EXPECT_REJECTED("FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 501);
    EXPECT_REJECTED("get / HTTP/1.1\r\nHost: a\r\n\r\n", 501);
    EXPECT_REJECTED("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

/* 3: a target longer than the server parses gets 414. */
TEST_PLAIN(rfc9112_3_long_target_gets_414)
{
    static char req[16 * 1024];
    memcpy(req, "GET /", 5);
    memset(req + 5, 'a', 10 * 1024);
    strcpy(req + 5 + 10 * 1024, " HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_REJECTED(req, 414);
}

/* 3.2: a 1.1 request without Host, with two Host lines, or with an invalid Host gets 400. */
TEST_PLAIN(rfc9112_3_2_host_missing_repeated_or_invalid_gets_400)
{
    EXPECT_REJECTED("GET / HTTP/1.1\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\"b\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: http://a\r\n\r\n", 400);
}

/* 3.2.1: origin-form: the handler gets the path and the query. */
TEST_PLAIN(rfc9112_3_2_1_origin_form_gives_path_and_query)
{
    struct mem_io m;
    struct app a = {0};
    exchange(&m, "GET /a/b?c=d HTTP/1.1\r\nHost: h:1\r\n\r\n", 0, &a);
    CHECK(strcmp(a.target, "/a/b?c=d") == 0);
    CHECK(strcmp(a.path, "/a/b") == 0);
    CHECK(strcmp(a.host, "h:1") == 0);
    mem_free(&m);
}

/* 3.2.2: an absolute-form target MUST be accepted; its authority is the host (Host is
 * ignored) and the handler sees the path as if in origin form. */
TEST_PLAIN(rfc9112_3_2_2_absolute_form_is_accepted_and_host_ignored)
{
    struct mem_io m;
    struct app a = {0};
    EXPECT_SERVED("GET http://example.org:81/p/q?r HTTP/1.1\r\nHost: other\r\n\r\n", 1, &a, &m);
    mem_free(&m);
    exchange(&m, "GET http://example.org:81/p/q?r HTTP/1.1\r\nHost: other\r\n\r\n", 0, &a);
    CHECK(strcmp(a.target, "/p/q?r") == 0);
    CHECK(strcmp(a.path, "/p/q") == 0);
    CHECK(strcmp(a.host, "example.org:81") == 0);
    mem_free(&m);
    exchange(&m, "OPTIONS http://h HTTP/1.1\r\nHost: h\r\n\r\n", 0, &a);
    CHECK(strcmp(a.target, "/") == 0);
    mem_free(&m);
    EXPECT_REJECTED("GET http://a b/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    EXPECT_REJECTED("GET http://a:x/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    EXPECT_REJECTED("GET http://u:p@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    EXPECT_REJECTED("GET mailto:a@b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

/* 3.2.3: authority-form is for CONNECT only (which this server does not implement: 501). */
TEST_PLAIN(rfc9112_3_2_3_authority_form_is_for_connect_only)
{
    EXPECT_REJECTED("GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    EXPECT_REJECTED("CONNECT a:80 HTTP/1.1\r\nHost: a:80\r\n\r\n", 501);
}

/* 3.2.4: asterisk-form is for OPTIONS only. */
TEST_PLAIN(rfc9112_3_2_4_asterisk_form_is_for_options_only)
{
    struct mem_io m;
    struct app a = {0};
    exchange(&m, "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0, &a);
    CHECK_EQ(first_status(m.out), 200);
    CHECK(strcmp(a.target, "*") == 0);
    mem_free(&m);
    EXPECT_REJECTED("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    EXPECT_REJECTED("POST * HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 400);
}

/* ---- 4. Status line --------------------------------------------------------------------- */

/* 4: HTTP-version SP 3DIGIT SP reason-phrase CRLF, for the server's own errors too. */
TEST_PLAIN(rfc9112_4_status_line_is_version_code_and_reason)
{
    struct mem_io m;
    struct app a = {0};
    exchange(&m, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, &a);
    CHECK(strncmp(m.out, "HTTP/1.1 200 OK\r\n", 17) == 0);
    mem_free(&m);
    exchange(&m, "GET / HTTP/1.1\r\n\r\n", 0, &a);
    CHECK(strncmp(m.out, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
    mem_free(&m);
}

/* ---- 5. Field syntax -------------------------------------------------------------------- */

/* 5.1: whitespace between a field name and the colon: 400. */
TEST_PLAIN(rfc9112_5_1_whitespace_before_the_colon_gets_400)
{
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nX\t: 1\r\n\r\n", 400);
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 1\r\n\r\nx", 400);
}

/* 5.1: a field line must have a name made of token characters, then a colon. */
TEST_PLAIN(rfc9112_5_1_malformed_field_lines_get_400)
{
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nNo colon\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\n: empty name\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nX\"y: 1\r\n\r\n", 400);
}

/* 5.2: obs-fold in a request: rejected with 400, wherever it is. */
TEST_PLAIN(rfc9112_5_2_obs_fold_gets_400)
{
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\t2\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nX:\r\n 2\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n \r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  \r\n  \r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost:\r\n a\r\n\r\n", 400);
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n 0\r\n\r\nx", 400);
}

/* 5 (RFC 9110 5.4): a field section larger than the server processes gets 431. */
TEST_PLAIN(rfc9112_5_large_field_section_gets_431)
{
    static char req[40 * 1024];
    char *p = req + sprintf(req, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    memset(p, 'v', 20 * 1024);
    strcpy(p + 20 * 1024, "\r\n\r\n");
    EXPECT_REJECTED(req, 431);
}

/* ---- 6. Message body -------------------------------------------------------------------- */

/* 6.1: a transfer coding the server does not understand (before chunked): 501. */
TEST_PLAIN(rfc9112_6_1_unknown_transfer_coding_gets_501)
{
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                    "0\r\n\r\n",
                    501);
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                    501);
}

/* 6.1: Transfer-Encoding in a 1.0 request: the framing is faulty: 400 and close, even with
 * a Content-Length. */
TEST_PLAIN(rfc9112_6_1_transfer_encoding_in_1_0_is_faulty_framing)
{
    EXPECT_REJECTED("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
    EXPECT_REJECTED("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
                    "0\r\n\r\n",
                    400);
}

/* 6.1: no Transfer-Encoding in a 1xx or 204 response, nor in any response to a 1.0 request
 * (a streamed body is then delimited by the close). */
TEST_PLAIN(rfc9112_6_1_no_transfer_encoding_in_204_or_to_1_0)
{
    struct mem_io m;
    struct app a = {0};
    exchange(&m, "GET /stream204 HTTP/1.1\r\nHost: a\r\n\r\n", 0, &a);
    CHECK(strncmp(m.out, "HTTP/1.1 204 ", 13) == 0);
    CHECK_NO_STR(m.out, "Transfer-Encoding");
    CHECK_NO_STR(m.out, "one,");
    mem_free(&m);
    exchange(&m, "GET /stream HTTP/1.0\r\n\r\n", 0, &a);
    CHECK_NO_STR(m.out, "Transfer-Encoding");
    CHECK_STR(m.out, "Connection: close\r\n\r\none,two");
    mem_free(&m);
}

/* 6.2: no Content-Length in a 204 or 304 response; and a HEAD response's Content-Length is
 * the one GET would carry. */
TEST_PLAIN(rfc9112_6_2_content_length_only_where_allowed)
{
    struct mem_io m;
    struct app a = {0};
    exchange(&m, "GET /204 HTTP/1.1\r\nHost: a\r\n\r\nGET /304 HTTP/1.1\r\nHost: a\r\n\r\n", 0, &a);
    CHECK_EQ(count_str(m.out, "HTTP/1.1 "), 2);
    CHECK_NO_STR(m.out, "Content-Length");
    CHECK_NO_STR(m.out, "nobody");
    mem_free(&m);
    exchange(&m, "HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n", 0, &a);
    CHECK_EQ(count_str(m.out, "Content-Length: 3\r\n"), 2);
    mem_free(&m);
}

/* 6.3: Content-Length with Transfer-Encoding: rejected (400) and the connection closed. */
TEST_PLAIN(rfc9112_6_3_cl_and_te_is_rejected)
{
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                    400);
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                    "Content-Length: 4\r\n\r\n0\r\n\r\n",
                    400);
}

/* 6.3: Transfer-Encoding whose final coding is not chunked: 400 and close. */
TEST_PLAIN(rfc9112_6_3_chunked_not_final_gets_400)
{
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400);
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400);
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                    "Transfer-Encoding: identity\r\n\r\n0\r\n\r\n",
                    400);
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
                    "0\r\n\r\n",
                    400);
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n0\r\n\r\n", 400);
}

/* 6.3: an invalid Content-Length: 400 and close. */
TEST_PLAIN(rfc9112_6_3_invalid_content_length_gets_400)
{
    const char *bad[] = {"-1",  "+1", "1.0", "0x1", "1 1",
                         "1,1", "",   "a",   "1a",  "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char req[256];
        snprintf(req, sizeof req, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %s\r\n\r\nx",
                 bad[i]);
        EXPECT_REJECTED(req, 400);
    }
}

/* 6.3: a request with neither Content-Length nor Transfer-Encoding has no body: what follows
 * is the next request. A valid Content-Length (leading zeros too) delimits the body. */
TEST_PLAIN(rfc9112_6_3_request_without_length_has_no_body)
{
    struct mem_io m;
    struct app a = {0};
    EXPECT_SERVED("POST / HTTP/1.1\r\nHost: a\r\n\r\n", 1, &a, &m);
    mem_free(&m);
    EXPECT_SERVED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 003\r\n\r\nabc", 1, &a, &m);
    CHECK_STR(m.out, "ok:abc");
    mem_free(&m);
}

/* 6.3: a body cut short by the close is incomplete: no handler sees it whole, no 200. */
TEST_PLAIN(rfc9112_6_3_incomplete_body_is_not_served)
{
    struct mem_io m;
    struct app a = {0};
    exchange(&m, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc", 0, &a);
    CHECK(a.body_len < 0);
    CHECK_NO_STR(m.out, "200 OK");
    mem_free(&m);
}

/* ---- 7. Transfer codings ---------------------------------------------------------------- */

/* 7.1: the chunked coding is decoded (sizes in any case, leading zeros), even byte by byte. */
TEST_PLAIN(rfc9112_7_1_chunked_is_decoded)
{
    struct mem_io m;
    struct app a = {0};
    EXPECT_SERVED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "0A\r\n0123456789\r\n00a\r\nabcdefghij\r\n000\r\n\r\n",
                  1, &a, &m);
    mem_free(&m);
    static const char req[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "3\r\nabc\r\n0\r\n\r\n";
    static char bytes[sizeof req][2];
    const char *pieces[sizeof req];
    for (size_t i = 0; i + 1 < sizeof req; i++) {
        bytes[i][0] = req[i];
        pieces[i] = bytes[i];
    }
    pieces[sizeof req - 1] = NULL;
    exchange_pieces(&m, pieces, &a, NULL);
    CHECK(strcmp(a.body, "abc") == 0);
    mem_free(&m);
}

/* 7.1: chunk sizes that overflow, or are not hex, get 400. */
TEST_PLAIN(rfc9112_7_1_bad_chunk_size_gets_400)
{
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "10000000000000000\r\n",
                    400, 413);
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "g\r\nx\r\n0\r\n\r\n",
                    400);
}

/* 7.1.1: unrecognized chunk extensions are ignored. */
TEST_PLAIN(rfc9112_7_1_1_unknown_chunk_extensions_are_ignored)
{
    struct mem_io m;
    struct app a = {0};
    EXPECT_SERVED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "3;c;a=b\r\nabc\r\n0;last=\"x y\"\r\n\r\n",
                  1, &a, &m);
    CHECK_STR(m.out, "ok:abc");
    mem_free(&m);
}

/* A chunked request for / with chunk lines line1 (before "abc") and line2 (the last chunk's,
 * before the trailer "X: 1"), followed by the request for /smuggled. */
static char *ext_request(const char *line1, const char *line2)
{
    static char req[8192];
    snprintf(req, sizeof req,
             "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n%s\r\nabc\r\n%s\r\n"
             "X: 1\r\n\r\n",
             line1, line2);
    return req;
}

/* Serve input one byte per read; the response to it is in m->out. */
static void exchange_bytewise(struct mem_io *m, const char *input, struct app *a)
{
    size_t n = strlen(input);
    char(*bytes)[2] = calloc(n, sizeof *bytes);
    const char **pieces = calloc(n + 1, sizeof *pieces);
    CHECK(bytes && pieces);
    for (size_t i = 0; i < n; i++) {
        bytes[i][0] = input[i];
        pieces[i] = bytes[i];
    }
    exchange_pieces(m, pieces, a, NULL);
    free(pieces);
    free(bytes);
}

/* The valid chunk lines of RFC 9112 7.1.1's grammar (BWS, several extensions, token and
 * quoted values, quoted-pairs, obs-text): each ignored, in one read and byte by byte. llhttp
 * 8.1 alone rejects all but the first few (a=b;c, quoted-pairs, any BWS). */
static const char *const valid_chunk_lines[] = {
    "3;a",
    "3;a=b",
    "3;a;b",
    "3;a=\"q s\"",
    "3;a=\"b\";c",
    "3;a=b;c",
    "3;a=b;c=d",
    "3;name=\"va\\\"l\"",
    "3;n=\"\\\\\"",
    "3;n=\"\t\\\t\xe9\\\xe9\"",
    "3 ;a",
    "3\t;a",
    "3; a",
    "3;a =b",
    "3;a= b",
    "3 ; a = b",
    "3 \t; \ta\t =\t b ; c = \"d\" ;e",
    "3;!#$%&'*+-.^_`|~09AZaz=!#$%&'*+-.^_`|~09AZaz",
    "003;a=b",
};

/* 7.1.1: every valid chunk extension is ignored: the body is delivered, and the next
 * request is served. */
TEST_PLAIN(rfc9112_7_1_1_valid_chunk_extensions_are_ignored)
{
    for (size_t i = 0; i < sizeof valid_chunk_lines / sizeof *valid_chunk_lines; i++) {
        const char *line = valid_chunk_lines[i];
        for (int last = 0; last < 2; last++) { /* on a chunk, then on the last chunk */
            struct mem_io m;
            struct app a = {0};
            char last_line[64];
            snprintf(last_line, sizeof last_line, "0%s", line + strspn(line, "0123456789"));
            EXPECT_SERVED(ext_request(last ? "3" : line, last ? last_line : "0"), 1, &a, &m);
            CHECK_STR(m.out, "ok:abc");
            mem_free(&m);
        }
    }
}

/* 7.1.1: the same, a byte per read (an extension, a quoted-pair, BWS cut across reads). */
TEST_PLAIN(rfc9112_7_1_1_chunk_extensions_split_across_reads_are_ignored)
{
    for (size_t i = 0; i < sizeof valid_chunk_lines / sizeof *valid_chunk_lines; i++) {
        struct mem_io m;
        struct app a = {0};
        char input[9000];
        snprintf(input, sizeof input, "%s%s", ext_request(valid_chunk_lines[i], "0;x = \"y\""),
                 "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi");
        exchange_bytewise(&m, input, &a);
        CHECK_EQ(a.calls, 2);
        CHECK_EQ(count_str(m.out, "HTTP/1.1 200 OK\r\n"), 2);
        CHECK_STR(m.out, "ok:abc");
        CHECK_STR(m.out, "ok:hi");
        mem_free(&m);
    }
}

/* 7.1.1: chunk lines outside the grammar get 400 and close, on a chunk and on the last one:
 * an empty extension, name or value, a name or value that is no token, whitespace with no
 * ';' after it, a bare CR or LF, a control character or DEL, an unterminated quoted
 * string, a quoted-pair of a CTL. */
TEST_PLAIN(rfc9112_7_1_1_invalid_chunk_extensions_get_400)
{
    static const char *const lines[] = {
        "3;",           "3;;a",         "3;a;",           "3;=b",
        "3;a=",         "3;a=;b",       "3;a@b",          "3;a/b=c",
        "3;a=b@",       "3;a=b c",      "3;a b",          "3 ",
        "3;a ",         "3;a=b ",       "3;a=\"b\" ",     "3;a=\"b\"c",
        "3 a",          "3;a=\"b",      "3;a=\"b\\\"",    "3;a=\"b\rc\"",
        "3;a=\"b\nc\"", "3;a\rb",       "3;a\nb",         "3;a=b\n",
        "3;a=\"\x01\"", "3;a=\"\x7f\"", "3;a=\"\\\x01\"", "3;a=\"\\\x7f\"",
        "3;a\x01",      "3;a=b\x7f",    "3;\x80",         ";a",
        "3;a=\"\"\"",   "3,a",
    };
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        EXPECT_REJECTED(ext_request(lines[i], "0"), 400);
        char last[64];
        bool sized = lines[i][0] == '3'; /* (";a" stays as it is) */
        snprintf(last, sizeof last, "%s%s", sized ? "0" : "", lines[i] + sized);
        EXPECT_REJECTED(ext_request("3", last), 400);
    }
}

/* 7.1.1: a chunk line is at most 4 KiB (CRLF included); a longer one gets 400 however it is
 * cut. */
TEST_PLAIN(rfc9112_7_1_1_long_chunk_lines_get_400)
{
    char line[5000] = "3;a=\"";
    memset(line + 5, 'x', 4088 - 5 - 1);
    line[4088 - 1] = '"'; /* 4088 bytes, 4090 with CRLF: taken */
    struct mem_io m;
    struct app a = {0};
    EXPECT_SERVED(ext_request(line, "0"), 1, &a, &m);
    CHECK_STR(m.out, "ok:abc");
    mem_free(&m);
    memcpy(line + 4088 - 1, "xxxxxx\"", 8); /* 4094 bytes + CRLF: 4096 */
    EXPECT_SERVED(ext_request(line, "0"), 1, &a, &m);
    mem_free(&m);
    memcpy(line + 4094 - 1, "x\"", 3); /* one more: 4097 */
    EXPECT_REJECTED(ext_request(line, "0"), 400);
    exchange_bytewise(&m, ext_request(line, "0"), &a);
    CHECK_EQ(first_status(m.out), 400);
    CHECK_STR(m.out, "Connection: close\r\n");
    mem_free(&m);
    char zeros[5000];
    memset(zeros, '0', 4200);
    zeros[4200] = '\0';
    EXPECT_REJECTED(ext_request("3", zeros), 400); /* leading zeros count too */
}

/* 7.1.2: trailer fields are not merged into the header section. */
TEST_PLAIN(rfc9112_7_1_2_trailers_are_not_header_fields)
{
    struct mem_io m;
    struct app a = {.hdr_name = "X-Trailer"};
    exchange(&m,
             "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
             "1\r\nz\r\n0\r\nX-Trailer: 1\r\nHost: evil\r\n\r\n",
             0, &a);
    CHECK_STR(m.out, "ok:z");
    CHECK(strcmp(a.hdr, "(null)") == 0);
    CHECK(strcmp(a.host, "a") == 0);
    mem_free(&m);
}

/* ---- 9. Connection management ----------------------------------------------------------- */

/* 9.3: "close" in the request: the connection ends after the response, which says close;
 * nothing after it is processed. */
TEST_PLAIN(rfc9112_9_3_close_option_ends_the_connection)
{
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 200);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n", 200);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nConnection: x, close\r\n\r\n", 200);
}

/* 9.3: HTTP/1.1 persists by default; 1.0 only with keep-alive. */
TEST_PLAIN(rfc9112_9_3_persistence_follows_version)
{
    struct mem_io m;
    struct app a = {0};
    EXPECT_SERVED("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1, &a, &m);
    mem_free(&m);
    EXPECT_SERVED("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1, &a, &m);
    CHECK_STR(m.out, "Connection: keep-alive\r\n");
    mem_free(&m);
    EXPECT_REJECTED("GET / HTTP/1.0\r\n\r\n", 200);
}

/* 9.3.2: pipelined requests get their responses in the order received. */
TEST_PLAIN(rfc9112_9_3_2_pipelined_responses_keep_their_order)
{
    struct mem_io m;
    struct app a = {0};
    exchange(&m,
             "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nA"
             "POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nB\r\n0\r\n\r\n"
             "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
             0, &a);
    const char *one = strstr(m.out, "ok:A"), *two = strstr(m.out, "ok:B"),
               *three = strstr(m.out, "ok:HTTP");
    CHECK(one && two && one < two);
    CHECK(three == NULL);
    CHECK_EQ(a.calls, 3);
    CHECK_EQ(count_str(m.out, "HTTP/1.1 200 OK\r\n"), 3);
    mem_free(&m);
}

/* 9.6: a server that sends "close" stops there: no further request is processed. */
TEST_PLAIN(rfc9112_9_6_server_close_processes_nothing_after)
{
    EXPECT_REJECTED("GET /close HTTP/1.1\r\nHost: a\r\n\r\n", 200);
}

/* 9.6: a response sent before the body is read (Expect: 100-continue unanswered) says
 * whether the connection closes: it does. */
TEST_PLAIN(rfc9112_9_6_early_response_says_close)
{
    EXPECT_REJECTED("POST /unread HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                    "Expect: 100-continue\r\n\r\n",
                    200);
}

/* ---- Request smuggling (HTTP Garden, PortSwigger) --------------------------------------- */

/* CL.TE and TE.CL: both framings in one request. */
TEST_PLAIN(smuggling_cl_te_and_te_cl_are_rejected)
{
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
                    400);
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
                    400);
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                    "Content-Length: 0\r\n\r\n5\r\nxxxxx\r\n0\r\n\r\n",
                    400);
}

/* TE.TE: obfuscated Transfer-Encoding headers, with and without a Content-Length beside
 * them: each is rejected, never read as another framing. */
TEST_PLAIN(smuggling_te_te_obfuscations_are_rejected)
{
    const char *te[] = {
        "Transfer-Encoding: xchunked\r\n",
        "Transfer-Encoding: chunkedx\r\n",
        "Transfer-Encoding: chunk\r\n",
        "Transfer-Encoding: \"chunked\"\r\n",
        "Transfer-Encoding: chunked;x=1\r\n",
        "Transfer-Encoding: chunked, identity\r\n",
        "Transfer-Encoding: identity\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n",
        "Transfer-Encoding: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n",
        "Transfer-Encoding : chunked\r\n",
        "Transfer-Encoding\t: chunked\r\n",
        " Transfer-Encoding: chunked\r\n",
        "X: y\r\n Transfer-Encoding: chunked\r\n",
        "Transfer-Encoding:\r\n chunked\r\n",
        "Transfer-Encoding: chunked\r\n \r\n",
        "Transfer-Encoding:\x0b"
        "chunked\r\n",
        "Transfer-Encoding:\x0c"
        "chunked\r\n",
        "Transfer-Encoding: chu\rnked\r\n",
        "Transfer-Encoding: chunked\r\r\n",
        "X: y\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\n",
        "Transfer-Encoding\r\n: chunked\r\n",
        "Transfer-Encoding: \xff"
        "chunked\r\n",
        "Transfer-Encoding: chunked\x00\r\n",
    };
    for (size_t i = 0; i < sizeof te / sizeof *te; i++) {
        for (int cl = 0; cl <= 1; cl++) {
            char req[512];
            size_t n = (size_t)snprintf(req, sizeof req, "POST / HTTP/1.1\r\nHost: a\r\n%s", te[i]);
            if (i == sizeof te / sizeof *te - 1) { /* the NUL cut the format: put it back */
                n = (size_t)snprintf(req, sizeof req,
                                     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked");
                req[n++] = '\0';
                n += (size_t)snprintf(req + n, sizeof req - n, "\r\n");
            }
            n += (size_t)snprintf(req + n, sizeof req - n, "%s\r\n0\r\n\r\n",
                                  cl ? "Content-Length: 5\r\n" : "");
            expect_rejected_at(__FILE__, __LINE__, req, n, (const int[]){400, 501, 0});
        }
    }
}

/* Duplicate or malformed Content-Length: 400 (duplicates even when equal). */
TEST_PLAIN(smuggling_duplicate_or_malformed_content_length_is_rejected)
{
    const char *cl[] = {
        "Content-Length: 1\r\nContent-Length: 2\r\n",
        "Content-Length: 1\r\nContent-Length: 1\r\n",
        "Content-Length: 1\r\ncontent-length: 1\r\n",
        "Content-Length: 1, 2\r\n",
        "Content-Length: 1,1\r\n",
        "Content-Length: 1 2\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: +1\r\n",
        "Content-Length: 0x1\r\n",
        "Content-Length: 1e1\r\n",
        "Content-Length: \r\n",
        "Content-Length: \"1\"\r\n",
        "Content-Length:\r\n 1\r\n",
        "Content-Length : 1\r\n",
        "Content-Length: 18446744073709551617\r\n",
        "Content-Length: 1\r\n\tContent-Length: 2\r\n",
    };
    for (size_t i = 0; i < sizeof cl / sizeof *cl; i++) {
        char req[512];
        snprintf(req, sizeof req, "POST / HTTP/1.1\r\nHost: a\r\n%s\r\nxx", cl[i]);
        EXPECT_REJECTED(req, 400);
    }
}

/* Chunk-size tricks: signs, prefixes, whitespace, overflow, bare LF or CR, too much or too
 * little data, a missing CRLF after the data, NUL. */
TEST_PLAIN(smuggling_chunk_size_tricks_are_rejected)
{
    const char *body[] = {
        "+3\r\nabc\r\n0\r\n\r\n",
        "-3\r\nabc\r\n0\r\n\r\n",
        "0x3\r\nabc\r\n0\r\n\r\n",
        " 3\r\nabc\r\n0\r\n\r\n",
        "3 \r\nabc\r\n0\r\n\r\n",
        "3\t\r\nabc\r\n0\r\n\r\n",
        "3\nabc\r\n0\r\n\r\n",
        "3\r\nabc\n0\r\n\r\n",
        "3\r\nabc\r\n0\n\r\n",
        "3\r\nabc\r\n0\r\n\n",
        "3\rabc\r\n0\r\n\r\n",
        "3\r\nabcd\r\n0\r\n\r\n",
        "3\r\nab\r\n0\r\n\r\n",
        "3\r\nabc0\r\n\r\n",
        "1000000000000000000003\r\nabc\r\n0\r\n\r\n",
        "3;x=\"a\nb\"\r\nabc\r\n0\r\n\r\n",
        "3;\r\nabc\r\n0\r\n\r\n",
        "3\r\nabc\r\n0\r\nX: 1\n\r\n",
        "3\r\nabc\r\n0\r\nX : 1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof body / sizeof *body; i++) {
        char req[512];
        snprintf(req, sizeof req,
                 "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n%s", body[i]);
        EXPECT_REJECTED(req, 400, 413);
    }
    static const char nul[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "3\0\r\nabc\r\n0\r\n\r\n";
    EXPECT_REJECTED_N(nul, sizeof nul - 1, 400);
}

/* Whitespace before the colon, in any framing header. */
TEST_PLAIN(smuggling_whitespace_before_the_colon_is_rejected)
{
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc", 400);
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
                    400);
    EXPECT_REJECTED("POST / HTTP/1.1\r\nHost : a\r\n\r\n", 400);
}

/* Bare CR and bare LF as line ends or inside lines. */
TEST_PLAIN(smuggling_bare_cr_and_lf_are_rejected)
{
    EXPECT_REJECTED("GET / HTTP/1.1\nHost: a\n\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\n\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nX: 1\n2\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400);
    EXPECT_REJECTED("GET /\n HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

/* NUL in the method, target, version, a name or a value. */
TEST_PLAIN(smuggling_nul_bytes_are_rejected)
{
#define NUL_CASE(s)                                                                                \
    {                                                                                              \
        (s), sizeof(s) - 1                                                                         \
    }
    static const struct {
        const char *req;
        size_t len;
    } reqs[] = {
        NUL_CASE("G\0T / HTTP/1.1\r\nHost: a\r\n\r\n"),
        NUL_CASE("GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n"),
        NUL_CASE("GET / HTTP/1.1\0\r\nHost: a\r\n\r\n"),
        NUL_CASE("GET / HTTP/1.1\r\nHo\0st: a\r\n\r\n"),
        NUL_CASE("GET / HTTP/1.1\r\nHost: a\0\r\n\r\n"),
        NUL_CASE("GET / HTTP/1.1\r\nHost: a\r\nX: \0\r\n\r\n"),
        NUL_CASE("\0GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
    };
#undef NUL_CASE
    for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++)
        EXPECT_REJECTED_N(reqs[i].req, reqs[i].len, 400, 501);
}

/* Other catalogue entries: Host confusion and request-line games. */
TEST_PLAIN(smuggling_host_and_request_line_confusion_is_rejected)
{
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
    EXPECT_REJECTED("GET / HTTP/1.1 GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}
