/* The HTTP/1.1 client against scripted servers written here with corral's socket calls:
 * each server reads whole requests (recording the exact bytes the client sent) and answers
 * with raw responses, so framing, keep-alive, limits, deadlines and retries are checked on
 * the wire. */
#define _GNU_SOURCE
#include "../test.h"
#include "http/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_EX = 6, GOT = 160 * 1024 };

/* What the server does to a kept-alive connection once it has sat idle for a while. */
enum idle_end {
    IDLE_KEEP,    /* nothing */
    IDLE_CLOSE,   /* close it (FIN), as nginx does at keepalive_timeout */
    IDLE_RESET,   /* abort it (RST: SO_LINGER 0) */
    IDLE_GARBAGE, /* send bytes no request asked for (here a whole bogus response) */
};

/* One request the server expects and what it does about it. */
struct exch {
    const char *reply;
    bool close_after;  /* close the connection after replying */
    bool hang;         /* never reply: read until the client closes */
    enum idle_end end; /* after replying: wait IDLE_NS, then this */
};

enum { IDLE_NS = 20 * CRL_MSEC_NS };

struct script {
    int lfd;
    char addr[64];
    struct exch ex[MAX_EX];
    int nex;
    int accepts;  /* connections the server accepted */
    int served;   /* exchanges done */
    bool idled;   /* the idle end of an exchange has happened */
    size_t extra; /* bytes the server received after the script's last request */
    int (*client)(struct script *s);
    char got[MAX_EX][GOT]; /* each request as received */
    size_t got_len[MAX_EX];
};

/* True once buf holds a whole request: its head, then a Content-Length or chunked body. */
static bool request_complete(const char *buf, size_t len)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return false;
    size_t head = (size_t)(end - buf) + 4;
    const char *cl = memmem(buf, head, "Content-Length: ", 16);
    if (cl)
        return len >= head + strtoul(cl + 16, NULL, 10);
    if (memmem(buf, head, "Transfer-Encoding: chunked", 26))
        return len >= head + 5 && memcmp(buf + len - 5, "0\r\n\r\n", 5) == 0;
    return true;
}

/* Read request i into s->got[i]. A connection that ends before a request begins is
 * replaced by the next one accepted (the client may have dropped it and redialled). */
static void read_request(struct script *s, int *fd, int i)
{
    size_t len = 0;
    while (!request_complete(s->got[i], len)) {
        if (*fd < 0) {
            *fd = crl_accept(s->lfd, NULL, NULL);
            CHECK(*fd >= 0);
            s->accepts++;
        }
        ssize_t n = crl_read(*fd, s->got[i] + len, GOT - 1 - len);
        if (n <= 0) { /* end of stream or reset */
            CHECK_EQ(len, 0);
            CHECK_EQ(crl_close(*fd), 0);
            *fd = -1;
            continue;
        }
        len += (size_t)n;
    }
    s->got[i][len] = 0;
    s->got_len[i] = len;
}

/* Read and drop until the client closes fd, then close it; returns the bytes dropped. */
static size_t linger(int fd)
{
    char buf[256];
    size_t total = 0;
    ssize_t n;
    while ((n = crl_read(fd, buf, sizeof buf)) > 0)
        total += (size_t)n;
    CHECK_EQ(crl_close(fd), 0);
    return total;
}

static const char bogus[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nbogus";

/* After an idle while, end (or spoil) kept-alive connection *fd as e says. */
static void idle_end(struct script *s, int *fd, enum idle_end e)
{
    if (e == IDLE_KEEP)
        return;
    CHECK_EQ(crl_sleep_ns(IDLE_NS), 0);
    if (e == IDLE_GARBAGE) {
        CHECK_EQ(crl_write_all(*fd, bogus, strlen(bogus)), strlen(bogus));
    } else {
        struct linger abort = {.l_onoff = 1, .l_linger = 0};
        if (e == IDLE_RESET)
            CHECK_EQ(setsockopt(*fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort), 0);
        CHECK_EQ(crl_close(*fd), 0);
        *fd = -1;
    }
    s->idled = true;
}

static struct exch reply(const char *r) { return (struct exch){.reply = r}; }
static struct exch reply_close(const char *r)
{
    return (struct exch){.reply = r, .close_after = true};
}
static struct exch silence(void) { return (struct exch){.hang = true}; }

static int server(void *arg)
{
    struct script *s = arg;
    int fd = -1;
    for (int i = 0; i < s->nex; i++) {
        read_request(s, &fd, i);
        if (s->ex[i].hang) {
            linger(fd);
            fd = -1;
        } else {
            size_t n = strlen(s->ex[i].reply);
            CHECK_EQ(crl_write_all(fd, s->ex[i].reply, n), n);
            if (s->ex[i].close_after) {
                CHECK_EQ(crl_close(fd), 0);
                fd = -1;
            } else {
                idle_end(s, &fd, s->ex[i].end);
            }
        }
        s->served++;
    }
    if (fd >= 0)
        s->extra = linger(fd); /* ends only once the client closed its end */
    return 0;
}

static int script_body(struct crl_scope *sc, void *arg)
{
    struct script *s = arg;
    CHECK_EQ(crl_spawn(sc, server, s), 0);
    int rc = s->client(s);
    /* A server still waiting now means the client failed to (re)connect or to close. */
    crl_scope_set_deadline(sc, crl_now_ns() + 2 * CRL_SEC_NS);
    return rc;
}

/* Run client(s) against the scripted server; every exchange must have happened and every
 * fd be closed afterwards. */
static void run_script(struct script *s, int (*client)(struct script *s))
{
    int before = test_count_fds();
    s->lfd = test_listen_loopback(s->addr, sizeof s->addr);
    s->client = client;
    CHECK_EQ(crl_scope_run(script_body, s), 0);
    CHECK_EQ(s->served, s->nex);
    CHECK_EQ(crl_close(s->lfd), 0);
    CHECK_EQ(test_count_fds(), before);
}

static struct script *new_script(void)
{
    struct script *s = calloc(1, sizeof *s);
    CHECK(s != NULL);
    return s;
}

static int64_t soon(void) { return crl_now_ns() + 2 * CRL_SEC_NS; }

/* The request the client should have sent for GET target with no extra fields. */
static void expect_get(struct script *s, int i, const char *target)
{
    char want[256];
    snprintf(want, sizeof want, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, s->addr);
    if (strcmp(s->got[i], want) != 0)
        test_fail(__FILE__, __LINE__, "request %d: got \"%s\", want \"%s\"", i, s->got[i], want);
}

static int get(struct crl_http_client *c, const char *target, struct crl_http_response *r)
{
    struct crl_http_request req = {.method = "GET", .target = target, .deadline_ns = soon()};
    return crl_http_client_request(c, &req, r);
}

/* ---- Host names --------------------------------------------------------------------------- */

static int by_name_client(struct script *s)
{
    char name[64];
    snprintf(name, sizeof name, "localhost:%s", strrchr(s->addr, ':') + 1);
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, name, NULL), 0);
    struct crl_http_response r;
    CHECK_EQ(get(c, "/n", &r), 0);
    CHECK(strcmp(r.body, "named") == 0);
    crl_http_response_fini(&r);
    crl_http_client_close(c);
    return 0;
}

/* A client opened on "localhost:PORT" resolves the name when it dials, and says it in Host. */
TEST(client_dials_a_host_name)
{
    const char *why = test_cannot_run_other_threads();
    if (why)
        TEST_SKIP(why);
    struct script *s = new_script();
    s->ex[0] = reply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnamed");
    s->nex = 1;
    run_script(s, by_name_client);
    char want[256];
    snprintf(want, sizeof want, "GET /n HTTP/1.1\r\nHost: localhost:%s\r\n\r\n",
             strrchr(s->addr, ':') + 1);
    CHECK(strcmp(s->got[0], want) == 0);
    free(s);
}

/* ---- Framing and keep-alive ------------------------------------------------------------- */

static int get_client(struct script *s)
{
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, s->addr, NULL), 0);
    struct crl_http_header accept = {"Accept", "*/*"};
    struct crl_http_request req = {.method = "GET",
                                   .target = "/hello?x=1",
                                   .headers = &accept,
                                   .header_count = 1,
                                   .deadline_ns = soon()};
    struct crl_http_response r;
    CHECK_EQ(crl_http_client_request(c, &req, &r), 0);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(r.version, 11);
    CHECK_EQ(r.header_count, 2);
    CHECK(strcmp(r.headers[1].name, "X-Test") == 0 && strcmp(r.headers[1].value, "yes") == 0);
    CHECK(strcmp(crl_http_response_header(&r, "x-TEST"), "yes") == 0);
    CHECK(crl_http_response_header(&r, "X-Missing") == NULL);
    CHECK_EQ(r.body_len, 5);
    CHECK(strcmp(r.body, "hello") == 0);
    crl_http_response_fini(&r);
    crl_http_client_close(c);
    return 0;
}

/* GET sends the request line, Host first, the caller's fields, and no body framing; a
 * Content-Length response is read whole. */
TEST(get_reads_a_content_length_response)
{
    struct script *s = new_script();
    s->ex[0] = reply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Test: yes\r\n\r\nhello");
    s->nex = 1;
    run_script(s, get_client);
    char want[256];
    snprintf(want, sizeof want, "GET /hello?x=1 HTTP/1.1\r\nHost: %s\r\nAccept: */*\r\n\r\n",
             s->addr);
    CHECK(strcmp(s->got[0], want) == 0);
    free(s);
}

static int two_gets_client(struct script *s)
{
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, s->addr, NULL), 0);
    struct crl_http_response r;
    CHECK_EQ(get(c, "/one", &r), 0);
    CHECK(strcmp(r.body, "first") == 0);
    crl_http_response_fini(&r);
    CHECK_EQ(get(c, "/two", &r), 0);
    CHECK_EQ(r.status, 404);
    CHECK(strcmp(r.body, "second!") == 0);
    crl_http_response_fini(&r);
    crl_http_client_close(c);
    return 0;
}

/* Two requests in turn travel over one kept-alive connection. */
TEST(keep_alive_reuses_the_connection)
{
    struct script *s = new_script();
    s->ex[0] = reply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
    s->ex[1] = reply("HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\n\r\nsecond!");
    s->nex = 2;
    run_script(s, two_gets_client);
    CHECK_EQ(s->accepts, 1);
    expect_get(s, 0, "/one");
    expect_get(s, 1, "/two");
    free(s);
}

/* A chunked response is reassembled, and the connection stays usable after it. */
TEST(chunked_response_is_reassembled)
{
    struct script *s = new_script();
    s->ex[0] = reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "2\r\nfi\r\n3;ext=1\r\nrst\r\n0\r\nTrailer: x\r\n\r\n");
    s->ex[1] = reply("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "7\r\nsecond!\r\n0\r\n\r\n");
    s->nex = 2;
    run_script(s, two_gets_client);
    CHECK_EQ(s->accepts, 1);
    free(s);
}

/* A body with neither length nor chunks ends when the server closes; the next request then
 * dials a new connection. */
TEST(close_delimited_response_ends_at_eof)
{
    struct script *s = new_script();
    s->ex[0] = reply_close("HTTP/1.1 200 OK\r\n\r\nfirst");
    s->ex[1] = reply_close("HTTP/1.0 404 Not Found\r\n\r\nsecond!");
    s->nex = 2;
    run_script(s, two_gets_client);
    CHECK_EQ(s->accepts, 2);
    free(s);
}

/* "Connection: close" in a response ends the connection even if the server keeps it open. */
TEST(connection_close_response_is_not_reused)
{
    struct script *s = new_script();
    s->ex[0] = reply("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\n"
                     "first");
    s->ex[1] = reply("HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\n\r\nsecond!");
    s->nex = 2;
    run_script(s, two_gets_client);
    CHECK_EQ(s->accepts, 2);
    free(s);
}

/* ---- Request bodies --------------------------------------------------------------------- */

static int post_client(struct script *s)
{
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, s->addr, NULL), 0);
    struct crl_http_header type = {"Content-Type", "text/plain"};
    struct crl_http_request req = {.method = "POST",
                                   .target = "/submit",
                                   .headers = &type,
                                   .header_count = 1,
                                   .body = "hello world",
                                   .body_len = 11,
                                   .deadline_ns = soon()};
    struct crl_http_response r;
    CHECK_EQ(crl_http_client_request(c, &req, &r), 0);
    CHECK_EQ(r.status, 201);
    crl_http_response_fini(&r);
    req.chunked = true;
    CHECK_EQ(crl_http_client_request(c, &req, &r), 0);
    CHECK_EQ(r.status, 201);
    crl_http_response_fini(&r);
    req.body_len = 0; /* an empty chunked body is the last chunk alone */
    CHECK_EQ(crl_http_client_request(c, &req, &r), 0);
    crl_http_response_fini(&r);
    req.chunked = false; /* an empty POST still says Content-Length: 0 */
    CHECK_EQ(crl_http_client_request(c, &req, &r), 0);
    crl_http_response_fini(&r);
    crl_http_client_close(c);
    return 0;
}

/* POST bodies go out with Content-Length or as chunks, byte for byte as HTTP/1.1 says. */
TEST(post_sends_length_and_chunked_bodies)
{
    struct script *s = new_script();
    for (int i = 0; i < 4; i++)
        s->ex[i] = reply("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    s->nex = 4;
    run_script(s, post_client);
    CHECK_EQ(s->accepts, 1);
    const char *bodies[4] = {
        "Content-Length: 11\r\n\r\nhello world",
        "Transfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n",
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "Content-Length: 0\r\n\r\n",
    };
    for (int i = 0; i < 4; i++) {
        char want[256];
        snprintf(want, sizeof want,
                 "POST /submit HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\n%s", s->addr,
                 bodies[i]);
        if (strcmp(s->got[i], want) != 0)
            test_fail(__FILE__, __LINE__, "request %d: got \"%s\", want \"%s\"", i, s->got[i],
                      want);
    }
    free(s);
}

enum { BIG = 100 * 1000 };

static int big_post_client(struct script *s)
{
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, s->addr, NULL), 0);
    char *body = malloc(BIG);
    CHECK(body != NULL);
    for (int i = 0; i < BIG; i++)
        body[i] = (char)('a' + i % 26);
    struct crl_http_request req = {
        .method = "PUT", .target = "/big", .body = body, .body_len = BIG, .deadline_ns = soon()};
    struct crl_http_response r;
    CHECK_EQ(crl_http_client_request(c, &req, &r), 0);
    crl_http_response_fini(&r);
    req.chunked = true;
    CHECK_EQ(crl_http_client_request(c, &req, &r), 0);
    crl_http_response_fini(&r);
    free(body);
    crl_http_client_close(c);
    return 0;
}

/* A body too big to copy behind the head is sent from the caller's buffer, whole, in both
 * framings. */
TEST(big_body_is_sent_whole)
{
    struct script *s = new_script();
    s->ex[0] = s->ex[1] = reply("HTTP/1.1 204 No Content\r\n\r\n");
    s->nex = 2;
    run_script(s, big_post_client);
    for (int i = 0; i < 2; i++) {
        const char *body = strstr(s->got[i], "\r\n\r\n") + 4;
        if (i == 1) { /* one chunk: its size in hex, the data, the last chunk */
            CHECK(strncmp(body, "186a0\r\n", 7) == 0);
            body += 7;
            CHECK(strcmp(body + BIG, "\r\n0\r\n\r\n") == 0);
        } else {
            CHECK(strstr(s->got[i], "Content-Length: 100000\r\n") != NULL);
            CHECK_EQ(strlen(body), BIG);
        }
        for (int k = 0; k < BIG; k++)
            if (body[k] != 'a' + k % 26)
                test_fail(__FILE__, __LINE__, "request %d: byte %d is %c", i, k, body[k]);
    }
    free(s);
}

/* ---- HEAD and interim responses --------------------------------------------------------- */

static int head_client(struct script *s)
{
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, s->addr, NULL), 0);
    struct crl_http_request req = {.method = "HEAD", .target = "/file", .deadline_ns = soon()};
    struct crl_http_response r;
    CHECK_EQ(crl_http_client_request(c, &req, &r), 0);
    CHECK_EQ(r.status, 200);
    CHECK(strcmp(crl_http_response_header(&r, "Content-Length"), "1234") == 0);
    CHECK_EQ(r.body_len, 0);
    CHECK(strcmp(r.body, "") == 0);
    crl_http_response_fini(&r);
    CHECK_EQ(get(c, "/next", &r), 0);
    CHECK(strcmp(r.body, "ok") == 0);
    crl_http_response_fini(&r);
    crl_http_client_close(c);
    return 0;
}

/* A response to HEAD has no body whatever its Content-Length says, and the connection stays
 * in step for the next request. */
TEST(head_response_has_no_body)
{
    struct script *s = new_script();
    s->ex[0] = reply("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
    s->ex[1] = reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    s->nex = 2;
    run_script(s, head_client);
    CHECK_EQ(s->accepts, 1);
    char want[256];
    snprintf(want, sizeof want, "HEAD /file HTTP/1.1\r\nHost: %s\r\n\r\n", s->addr);
    CHECK(strcmp(s->got[0], want) == 0);
    free(s);
}

static int interim_client(struct script *s)
{
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, s->addr, NULL), 0);
    struct crl_http_response r;
    CHECK_EQ(get(c, "/", &r), 0);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(r.header_count, 1);
    CHECK(crl_http_response_header(&r, "Link") == NULL);
    CHECK(strcmp(r.body, "ok") == 0);
    crl_http_response_fini(&r);
    crl_http_client_close(c);
    return 0;
}

/* An interim 1xx response is skipped; the final one is returned. */
TEST(interim_response_is_skipped)
{
    struct script *s = new_script();
    s->ex[0] = reply("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    s->nex = 1;
    run_script(s, interim_client);
    free(s);
}

/* ---- Limits and bad responses ----------------------------------------------------------- */

/* A response head of three fields; its body "abc" follows it. */
static const char small_head[] = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nContent-Length: 3\r\n\r\n";

static int limited_get(struct script *s, const struct crl_http_client_opts *o)
{
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, s->addr, o), 0);
    struct crl_http_response r;
    int rc = get(c, "/", &r);
    CHECK(rc != 0 || strcmp(r.body, "abc") == 0);
    crl_http_response_fini(&r);
    crl_http_client_close(c);
    return rc;
}

static int head_limit_client(struct script *s)
{
    struct crl_http_client_opts o = {.max_head_bytes = sizeof small_head - 1};
    CHECK_EQ(limited_get(s, &o), 0);
    o.max_head_bytes--;
    CHECK_EQ(limited_get(s, &o), -EMSGSIZE);
    o = (struct crl_http_client_opts){.max_headers = 3};
    CHECK_EQ(limited_get(s, &o), 0);
    o.max_headers = 2;
    CHECK_EQ(limited_get(s, &o), -EMSGSIZE);
    return 0;
}

/* A head of exactly max_head_bytes is read, one byte less is -EMSGSIZE; likewise the header
 * count against max_headers. */
TEST(head_limits_give_emsgsize)
{
    struct script *s = new_script();
    static char full[128];
    snprintf(full, sizeof full, "%sabc", small_head);
    for (int i = 0; i < 4; i++)
        s->ex[i] = reply_close(full);
    s->nex = 4;
    run_script(s, head_limit_client);
    CHECK_EQ(s->accepts, 4);
    free(s);
}

static int body_limit_client(struct script *s)
{
    struct crl_http_client_opts o = {.max_body = 3};
    CHECK_EQ(limited_get(s, &o), 0);         /* Content-Length: 3 */
    CHECK_EQ(limited_get(s, &o), -EMSGSIZE); /* Content-Length: 4 */
    CHECK_EQ(limited_get(s, &o), -EMSGSIZE); /* chunks adding up to 4 */
    CHECK_EQ(limited_get(s, &o), -EMSGSIZE); /* close-delimited, 4 bytes */
    return 0;
}

/* A body over max_body is -EMSGSIZE, however it is framed. */
TEST(body_limit_gives_emsgsize)
{
    struct script *s = new_script();
    s->ex[0] = reply_close("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
    s->ex[1] = reply_close("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd");
    s->ex[2] = reply_close(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n");
    s->ex[3] = reply_close("HTTP/1.1 200 OK\r\n\r\nabcd");
    s->nex = 4;
    run_script(s, body_limit_client);
    free(s);
}

static int trailer_client(struct script *s)
{
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, s->addr, NULL), 0);
    struct crl_http_response r;
    CHECK_EQ(get(c, "/", &r), 0);
    CHECK_EQ(r.header_count, 1);
    CHECK(crl_http_response_header(&r, "X-Sum") == NULL);
    CHECK(strcmp(r.body, "abc") == 0);
    crl_http_response_fini(&r);
    crl_http_client_close(c);
    struct crl_http_client_opts o = {.max_head_bytes = 100};
    CHECK_EQ(limited_get(s, &o), -EMSGSIZE);
    return 0;
}

/* Trailer fields after a chunked body are dropped, and held to max_head_bytes. */
TEST(trailers_are_dropped_and_bounded)
{
    struct script *s = new_script();
    static char long_trailer[512];
    snprintf(long_trailer, sizeof long_trailer,
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
             "X-Sum: %0200d\r\n\r\n",
             7);
    s->ex[0] = reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n");
    s->ex[1] = reply_close(long_trailer);
    s->nex = 2;
    run_script(s, trailer_client);
    free(s);
}

static int malformed_client(struct script *s)
{
    for (int i = 0; i < s->nex; i++)
        CHECK_EQ(limited_get(s, NULL), -EPROTO);
    return 0;
}

/* A response the parser rejects, one cut short, or a switch of protocols nobody asked for
 * is -EPROTO. */
TEST(malformed_response_gives_eproto)
{
    struct script *s = new_script();
    s->ex[0] = reply_close("HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n");
    s->ex[1] = reply_close("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhi");
    s->ex[2] = reply_close("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    s->ex[3] = reply_close("HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n");
    s->ex[4] = reply_close("HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n");
    s->ex[5] = reply_close("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n"
                           "Connection: upgrade\r\n\r\n");
    s->nex = 6;
    run_script(s, malformed_client);
    free(s);
}

/* ---- Deadlines, retries, errors --------------------------------------------------------- */

static int deadline_client(struct script *s)
{
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, s->addr, NULL), 0);
    int64_t start = crl_now_ns();
    struct crl_http_request req = {
        .method = "GET", .target = "/slow", .deadline_ns = start + 50 * CRL_MSEC_NS};
    struct crl_http_response r;
    CHECK_EQ(crl_http_client_request(c, &req, &r), -ETIMEDOUT);
    int64_t took = crl_now_ns() - start;
    CHECK_GE(took, 50 * CRL_MSEC_NS);
    CHECK_LT(took, CRL_SEC_NS);
    CHECK_EQ(r.body_len, 0);
    crl_http_response_fini(&r);
    crl_http_client_close(c);
    return 0;
}

/* A server that never answers gives -ETIMEDOUT at the request's deadline, and the client
 * closes the connection (the server's read then ends). */
TEST(deadline_times_out_a_silent_server)
{
    struct script *s = new_script();
    s->ex[0] = silence();
    s->nex = 1;
    run_script(s, deadline_client);
    free(s);
}

struct busy {
    struct crl_http_client *c;
    int rc;
};

static int second_request(void *arg)
{
    struct busy *b = arg;
    struct crl_http_response r;
    b->rc = get(b->c, "/also", &r);
    crl_http_response_fini(&r);
    return 0;
}

static int busy_body(struct crl_scope *sc, void *arg)
{
    struct busy *b = arg;
    CHECK_EQ(crl_spawn(sc, second_request, b), 0);
    struct crl_http_request req = {
        .method = "GET", .target = "/slow", .deadline_ns = crl_now_ns() + 30 * CRL_MSEC_NS};
    struct crl_http_response r;
    CHECK_EQ(crl_http_client_request(b->c, &req, &r), -ETIMEDOUT);
    return 0;
}

static int busy_client(struct script *s)
{
    struct busy b = {NULL, 1};
    CHECK_EQ(crl_http_client_open(&b.c, s->addr, NULL), 0);
    CHECK_EQ(crl_scope_run(busy_body, &b), 0);
    CHECK_EQ(b.rc, -EBUSY);
    crl_http_client_close(b.c);
    return 0;
}

/* A second task's request on a client already in use is refused with -EBUSY. */
TEST(concurrent_request_is_ebusy)
{
    struct script *s = new_script();
    s->ex[0] = silence();
    s->nex = 1;
    run_script(s, busy_client);
    free(s);
}

static int stale_get_client(struct script *s)
{
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, s->addr, NULL), 0);
    struct crl_http_response r;
    CHECK_EQ(get(c, "/one", &r), 0);
    crl_http_response_fini(&r);
    CHECK_EQ(crl_sleep_ns(5 * CRL_MSEC_NS), 0); /* the server's FIN arrives */
    CHECK_EQ(get(c, "/two", &r), 0);
    CHECK(strcmp(r.body, "second!") == 0);
    crl_http_response_fini(&r);
    crl_http_client_close(c);
    return 0;
}

/* A GET on a kept-alive connection the server has since closed goes on a new connection. */
TEST(stale_connection_is_redialled_for_get)
{
    struct script *s = new_script();
    s->ex[0] = reply_close("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
    s->ex[1] = reply("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsecond!");
    s->nex = 2;
    run_script(s, stale_get_client);
    CHECK_EQ(s->accepts, 2);
    expect_get(s, 1, "/two");
    free(s);
}

static int unanswered_get_client(struct script *s)
{
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, s->addr, NULL), 0);
    struct crl_http_response r;
    CHECK_EQ(get(c, "/one", &r), 0);
    crl_http_response_fini(&r);
    CHECK_EQ(get(c, "/two", &r), 0);
    CHECK(strcmp(r.body, "second!") == 0);
    crl_http_response_fini(&r);
    crl_http_client_close(c);
    return 0;
}

/* A GET that a kept-alive connection took but closed without a response byte (the server
 * gave up on the connection as the request arrived) is sent again, once, on a new one. */
TEST(unanswered_get_on_a_reused_connection_is_sent_again)
{
    struct script *s = new_script();
    s->ex[0] = reply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
    s->ex[1] = reply_close(""); /* reads the GET, closes */
    s->ex[2] = reply("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsecond!");
    s->nex = 3;
    run_script(s, unanswered_get_client);
    CHECK_EQ(s->accepts, 2);
    expect_get(s, 1, "/two");
    expect_get(s, 2, "/two");
    free(s);
}

static const struct crl_http_request pay = {
    .method = "POST", .target = "/pay", .body = "amount=1", .body_len = 8};

static int unanswered_post_client(struct script *s)
{
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, s->addr, NULL), 0);
    struct crl_http_response r;
    CHECK_EQ(get(c, "/one", &r), 0);
    crl_http_response_fini(&r);
    struct crl_http_request req = pay;
    req.deadline_ns = soon();
    CHECK_EQ(crl_http_client_request(c, &req, &r), -ECONNRESET);
    crl_http_client_close(c);
    return 0;
}

/* A POST that went out on a kept-alive connection which then closed unanswered is not sent
 * again: the server may have acted on it. The caller gets -ECONNRESET. */
TEST(unanswered_post_on_a_reused_connection_is_not_sent_again)
{
    struct script *s = new_script();
    s->ex[0] = reply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
    s->ex[1] = reply_close(""); /* reads the POST, closes */
    s->nex = 2;
    run_script(s, unanswered_post_client);
    CHECK_EQ(s->accepts, 1);
    free(s);
}

/* GET, wait until the server has ended (or spoiled) the idle connection, then POST. */
static int post_after_idle_client(struct script *s)
{
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, s->addr, NULL), 0);
    struct crl_http_response r;
    CHECK_EQ(get(c, "/one", &r), 0);
    CHECK(strcmp(r.body, "first") == 0);
    crl_http_response_fini(&r);
    while (!s->idled)
        CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    CHECK_EQ(crl_sleep_ns(5 * CRL_MSEC_NS), 0); /* the FIN, RST or bytes arrive */
    struct crl_http_request req = pay;
    req.deadline_ns = soon();
    CHECK_EQ(crl_http_client_request(c, &req, &r), 0);
    CHECK_EQ(r.status, 200);
    CHECK(strcmp(r.body, "paid") == 0);
    crl_http_response_fini(&r);
    crl_http_client_close(c);
    return 0;
}

/* The POST reaches the server once, whole, on a second connection. */
static void post_after_idle(enum idle_end e)
{
    struct script *s = new_script();
    s->ex[0] = reply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
    s->ex[0].end = e;
    s->ex[1] = reply("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\npaid");
    s->nex = 2;
    run_script(s, post_after_idle_client);
    CHECK_EQ(s->accepts, 2);
    char want[256];
    snprintf(want, sizeof want,
             "POST /pay HTTP/1.1\r\nHost: %s\r\nContent-Length: 8\r\n\r\namount=1", s->addr);
    if (strcmp(s->got[1], want) != 0)
        test_fail(__FILE__, __LINE__, "got \"%s\", want \"%s\"", s->got[1], want);
    CHECK_EQ(s->extra, 0); /* no second POST */
    free(s);
}

/* A kept-alive connection the server closed while it sat idle (nginx's keepalive_timeout)
 * is seen to be closed before a request is risked on it: a POST goes on a new connection
 * instead of failing with -ECONNRESET. */
TEST(post_after_the_server_closed_an_idle_connection_goes_on_a_new_one)
{
    post_after_idle(IDLE_CLOSE);
}

/* The same when the server aborted the idle connection with a reset. */
TEST(post_after_the_server_reset_an_idle_connection_goes_on_a_new_one)
{
    post_after_idle(IDLE_RESET);
}

/* Bytes that arrived on an idle connection answer no request: they are not taken for the
 * next request's response, and the connection is not used again. */
TEST(bytes_sent_on_an_idle_connection_are_not_taken_for_the_response)
{
    post_after_idle(IDLE_GARBAGE);
}

/* A fresh connection closed before any response byte is not retried: -ECONNRESET. */
static int dropped_client(struct script *s)
{
    CHECK_EQ(limited_get(s, NULL), -ECONNRESET);
    return 0;
}

TEST(fresh_connection_closed_unanswered_is_econnreset)
{
    struct script *s = new_script();
    s->ex[0] = reply_close("");
    s->nex = 1;
    run_script(s, dropped_client);
    CHECK_EQ(s->accepts, 1);
    free(s);
}

/* Nothing listening: the connect's error is returned. */
TEST(refused_connection_gives_its_error)
{
    char addr[64];
    int lfd = test_listen_loopback(addr, sizeof addr);
    CHECK_EQ(crl_close(lfd), 0);
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, addr, NULL), 0);
    struct crl_http_response r;
    CHECK_EQ(get(c, "/", &r), -ECONNREFUSED);
    crl_http_client_close(c);
}

/* Requests that could not be sent as asked, or would smuggle a field, are refused before
 * anything is sent; so are addresses that are not HOST:PORT. */
TEST(bad_requests_are_einval)
{
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, "localhost", NULL), -EINVAL);
    CHECK(c == NULL);
    CHECK_EQ(crl_http_client_open(&c, "bad host:80", NULL), -EINVAL);
    CHECK_EQ(crl_http_client_open(&c, "[localhost]:80", NULL), -EINVAL);
    CHECK_EQ(crl_http_client_open(&c, "127.0.0.1:9", NULL), 0); /* never dialled */
    struct crl_http_header inject = {"X-A", "1\r\nX-B: 2"}, framing = {"content-length", "3"},
                           bad_name = {"X A", "1"};
    struct crl_http_request reqs[] = {
        {.method = "GE T", .target = "/"},
        {.method = "GET", .target = "/a b"},
        {.method = "GET", .target = ""},
        {.method = "GET", .target = "/", .headers = &inject, .header_count = 1},
        {.method = "GET", .target = "/", .headers = &framing, .header_count = 1},
        {.method = "GET", .target = "/", .headers = &bad_name, .header_count = 1},
        {.method = "POST", .target = "/", .body = NULL, .body_len = 3},
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        struct crl_http_response r;
        reqs[i].deadline_ns = CRL_NO_DEADLINE;
        CHECK_EQ(crl_http_client_request(c, &reqs[i], &r), -EINVAL);
    }
    crl_http_client_close(c);
}

struct cancelled {
    struct crl_http_client *c;
    int rc;
};

static int doomed_request(void *arg)
{
    struct cancelled *k = arg;
    struct crl_http_response r;
    k->rc = get(k->c, "/slow", &r);
    return 0;
}

static int cancel_body(struct crl_scope *sc, void *arg)
{
    CHECK_EQ(crl_spawn(sc, doomed_request, arg), 0);
    CHECK_EQ(crl_sleep_ns(10 * CRL_MSEC_NS), 0);
    crl_scope_cancel(sc);
    return 0;
}

static int cancel_client(struct script *s)
{
    struct cancelled k = {NULL, 1};
    CHECK_EQ(crl_http_client_open(&k.c, s->addr, NULL), 0);
    CHECK_EQ(crl_scope_run(cancel_body, &k), 0);
    CHECK_EQ(k.rc, -ECANCELED);
    crl_http_client_close(k.c);
    return 0;
}

/* A request whose task is cancelled returns -ECANCELED and drops its connection. */
TEST(cancelled_request_is_ecanceled)
{
    struct script *s = new_script();
    s->ex[0] = silence();
    s->nex = 1;
    run_script(s, cancel_client);
    free(s);
}

/* ---- A handed-in connection (as the fuzzer drives the client) ------------------------- */

/* Answer a request with bytes given beforehand, cut into records of piece bytes: one end of
 * a SOCK_SEQPACKET socketpair holds them (each read of the client returns one record), the
 * other is handed to the client as its connection. Returns the request's result. */
static int answer_in_pieces(const char *method, const char *bytes, size_t len, size_t piece,
                            const struct crl_http_client_opts *o, struct crl_http_response *r)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    for (size_t off = 0; off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        CHECK_EQ(send(sv[1], bytes + off, n, MSG_DONTWAIT), n);
    }
    CHECK_EQ(shutdown(sv[1], SHUT_WR), 0);
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, "127.0.0.1:9", o), 0); /* never dialled */
    crl__http_client_adopt(c, sv[0]);
    struct crl_http_request req = {.method = method, .target = "/", .deadline_ns = soon()};
    int rc = crl_http_client_request(c, &req, r);
    crl_http_client_close(c);
    CHECK_EQ(fcntl(sv[0], F_GETFD), -1); /* the client closed its connection */
    CHECK_EQ(close(sv[1]), 0);
    return rc;
}

/* A response read one byte at a time, or in any other cut, is the same response: interim
 * responses, chunk extensions and trailers included. */
TEST(response_cut_anywhere_is_parsed_the_same)
{
    static const char bytes[] = "HTTP/1.1 100 Continue\r\n\r\n"
                                "HTTP/1.1 200 OK\r\nX-A: b\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nX-T: 1\r\n\r\n";
    for (size_t piece = 1; piece <= sizeof bytes; piece++) {
        struct crl_http_response r;
        CHECK_EQ(answer_in_pieces("GET", bytes, sizeof bytes - 1, piece, NULL, &r), 0);
        CHECK_EQ(r.status, 200);
        CHECK_EQ(r.header_count, 2);
        CHECK(strcmp(crl_http_response_header(&r, "x-a"), "b") == 0);
        CHECK_EQ(r.body_len, 6);
        CHECK(strcmp(r.body, "hello!") == 0);
        crl_http_response_fini(&r);
    }
}

/* A chunked response with chunk line line (before "abc") and then last-chunk line last,
 * answered in pieces of piece bytes: the request's result, the body in *r. */
static int chunked_answer(const char *line, const char *last, size_t piece,
                          struct crl_http_response *r)
{
    char bytes[512];
    int n = snprintf(bytes, sizeof bytes,
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s\r\nabc\r\n%s\r\n"
                     "X-T: 1\r\n\r\n",
                     line, last);
    return answer_in_pieces("GET", bytes, (size_t)n, piece, NULL, r);
}

/* RFC 9112 7.1.1: chunk extensions in every form of the grammar are ignored (BWS, several,
 * token and quoted values, quoted-pairs; llhttp 8.1 alone rejects most), in one piece and
 * byte by byte, on a chunk and on the last chunk. */
TEST(valid_chunk_extensions_are_ignored)
{
    static const char *const exts[] = {
        ";a",   ";a=b", ";a=b;c", ";a=\"b\";c", ";a=b;c=d", ";n=\"va\\\"l\"", " ;a",
        "\t;a", "; a",  ";a =b",  ";a= b",      " ; a = b", ";a=\"\xe9\"",    ";a=\"\\\t\""};
    for (size_t i = 0; i < sizeof exts / sizeof *exts; i++) {
        char line[64], last[64];
        snprintf(line, sizeof line, "3%s", exts[i]);
        snprintf(last, sizeof last, "0%s", exts[i]);
        for (size_t piece = 1; piece <= 512; piece += 511) {
            struct crl_http_response r;
            CHECK_EQ(chunked_answer(line, "0", piece, &r), 0);
            CHECK(r.body_len == 3 && strcmp(r.body, "abc") == 0);
            crl_http_response_fini(&r);
            CHECK_EQ(chunked_answer("3", last, piece, &r), 0);
            CHECK(r.body_len == 3 && strcmp(r.body, "abc") == 0);
            crl_http_response_fini(&r);
        }
    }
}

/* RFC 9112 7.1.1: chunk lines outside the grammar are -EPROTO, as are chunk lines longer
 * than 4 KiB and trailer lines with no name: an empty extension, name or value, whitespace before
 * the line's end, a name that is no token, a bare CR or LF, a CTL or DEL, an unterminated quoted
 * string. */
TEST(invalid_chunk_extensions_give_eproto)
{
    static const char *const exts[] = {
        ";",     ";=b",         ";a=",         ";a ",           ";a=b ",     " ",
        ";a@b",  ";a=b c",      ";a=\"b",      ";a=\"b\\\"",    ";a=\"\r\"", ";a\rb",
        ";a\nb", ";a=\"\x01\"", ";a=\"\x7f\"", ";a=\"\\\x7f\"", ";a=\"b\"c", ";\x80"};
    for (size_t i = 0; i < sizeof exts / sizeof *exts; i++) {
        char line[64], last[64];
        snprintf(line, sizeof line, "3%s", exts[i]);
        snprintf(last, sizeof last, "0%s", exts[i]);
        for (size_t piece = 1; piece <= 512; piece += 511) {
            struct crl_http_response r;
            CHECK_EQ(chunked_answer(line, "0", piece, &r), -EPROTO);
            crl_http_response_fini(&r);
            CHECK_EQ(chunked_answer("3", last, piece, &r), -EPROTO);
            crl_http_response_fini(&r);
        }
    }
    static const char *const bad_trailers[] = {": 1", "X: 1\r\n:a"}; /* no name */
    for (size_t i = 0; i < 2; i++) {
        struct crl_http_response r;
        char last[32];
        snprintf(last, sizeof last, "0\r\n%s", bad_trailers[i]);
        CHECK_EQ(chunked_answer("3", last, 512, &r), -EPROTO);
        crl_http_response_fini(&r);
    }
    static char bytes[5000];
    int n = snprintf(bytes, sizeof bytes, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    memset(bytes + n, '0', 4100); /* leading zeros: a last chunk of 4102 bytes */
    memcpy(bytes + n + 4100, "\r\n\r\n", 4);
    struct crl_http_response r;
    CHECK_EQ(answer_in_pieces("GET", bytes, (size_t)n + 4104, 4096, NULL, &r), -EPROTO);
    crl_http_response_fini(&r);
    memmove(bytes + n, bytes + n + 10, 4094); /* 4092 bytes: taken */
    CHECK_EQ(answer_in_pieces("GET", bytes, (size_t)n + 4094, 4096, NULL, &r), 0);
    CHECK_EQ(r.body_len, 0);
    crl_http_response_fini(&r);
}

/* A status line of a version this client does not speak (llhttp accepts "HTTP/2.0") is
 * malformed, not a response of version 20 (found by fuzz_client). */
TEST(response_of_a_version_other_than_1_0_or_1_1_is_eproto)
{
    static const char *const heads[] = {"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
                                        "HTTP/0.9 200 OK\r\nContent-Length: 0\r\n\r\n",
                                        "HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n",
                                        "HTTP/3.0 200 OK\r\nContent-Length: 0\r\n\r\n"};
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        struct crl_http_response r;
        CHECK_EQ(answer_in_pieces("GET", heads[i], strlen(heads[i]), 100, NULL, &r), -EPROTO);
        crl_http_response_fini(&r);
    }
    static const char ok10[] = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
    struct crl_http_response r;
    CHECK_EQ(answer_in_pieces("GET", ok10, strlen(ok10), 100, NULL, &r), 0);
    CHECK_EQ(r.version, 10);
    crl_http_response_fini(&r);
}

/* ---- Against corral's own HTTP server --------------------------------------------------- */

struct served {
    char addr[64];
    struct crl_event ready;
    int serve_rc;
};

/* on_ready gets the server's own context, not ours: the fixture is reached through here. */
static struct served *served_now;

static void served_ready(void *ctx, const struct sockaddr *addr, socklen_t len)
{
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)addr;
    CHECK_EQ(addr->sa_family, AF_INET);
    snprintf(served_now->addr, sizeof served_now->addr, "127.0.0.1:%u", ntohs(v4->sin_port));
    crl_event_set(&served_now->ready);
}

/* Answers with the request's body and its method in X-Method. */
static int echo_handler(crl_http_req *req, crl_http_res *res, void *ctx)
{
    const void *body;
    ssize_t n = crl_http_req_body(req, &body);
    if (n < 0)
        return (int)n;
    CHECK_EQ(crl_http_res_header(res, "X-Method", crl_http_req_method(req)), 0);
    return crl_http_res_send(res, 200, "application/octet-stream", body, (size_t)n);
}

static int http_server(void *arg)
{
    struct served *sv = arg;
    struct crl_http_server_opts o = {.serve.on_ready = served_ready};
    sv->serve_rc = crl_http_serve("127.0.0.1:0", &o, echo_handler, sv);
    crl_event_set(&sv->ready); /* in case it failed before listening */
    return 0;
}

/* POST body (chunked or not) to the echo server; the echo must be the same bytes. */
static void echo_post(struct crl_http_client *c, const char *body, size_t len, bool chunked)
{
    struct crl_http_request req = {.method = "POST",
                                   .target = "/echo",
                                   .body = body,
                                   .body_len = len,
                                   .chunked = chunked,
                                   .deadline_ns = soon()};
    struct crl_http_response r;
    CHECK_EQ(crl_http_client_request(c, &req, &r), 0);
    CHECK_EQ(r.status, 200);
    CHECK(strcmp(crl_http_response_header(&r, "X-Method"), "POST") == 0);
    CHECK_EQ(r.body_len, len);
    CHECK(memcmp(r.body, body, len) == 0);
    crl_http_response_fini(&r);
}

static int served_body(struct crl_scope *sc, void *arg)
{
    struct served *sv = arg;
    CHECK_EQ(crl_spawn(sc, http_server, sv), 0);
    CHECK_EQ(crl_event_wait(&sv->ready), 0);
    CHECK_EQ(sv->serve_rc, 1); /* still serving */
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, sv->addr, NULL), 0);
    enum { LEN = 40000 };
    char *big = malloc(LEN);
    CHECK(big != NULL);
    for (int i = 0; i < LEN; i++)
        big[i] = (char)(i * 7);
    echo_post(c, "ping", 4, false);
    echo_post(c, "ping", 4, true);
    echo_post(c, big, LEN, false);
    echo_post(c, big, LEN, true);
    struct crl_http_response r;
    CHECK_EQ(get(c, "/", &r), 0);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(r.body_len, 0);
    crl_http_response_fini(&r);
    free(big);
    crl_http_client_close(c);
    crl_scope_cancel(sc); /* stops the server */
    return 0;
}

/* The client against crl_http_serve: POST echoes, both framings, small and large bodies, over
 * one kept-alive connection. */
TEST(client_and_server_echo_a_post)
{
    struct served sv = {.serve_rc = 1};
    crl_event_init(&sv.ready);
    served_now = &sv;
    int before = test_count_fds();
    CHECK_EQ(crl_scope_run(served_body, &sv), 0);
    CHECK_EQ(sv.serve_rc, 0);
    CHECK_EQ(test_count_fds(), before);
}

/* ---- Against a real nginx (skipped when it is not installed) ---------------------------- */

/* nginx's path: on PATH or in /usr/sbin (Debian's place, often off a user's PATH). */
static bool find_nginx(char *out, size_t cap)
{
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s:/usr/sbin", path ? path : "");
    for (char *save, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, cap, "%s/nginx", d);
        if (access(out, X_OK) == 0)
            return true;
    }
    return false;
}

struct nginx {
    char prefix[512]; /* its own directory, under the working directory (the build dir) */
    char addr[64];
    pid_t pid;
};

/* Write the configuration: one process in the foreground, on addr, keepalive_timeout 1s,
 * every path under the prefix, and a 200 for any request. */
static void nginx_conf(const struct nginx *n)
{
    char file[600];
    snprintf(file, sizeof file, "%s/nginx.conf", n->prefix);
    FILE *f = fopen(file, "w");
    CHECK(f != NULL);
    fprintf(f,
            "daemon off; master_process off; worker_processes 1;\n"
            "pid %1$s/nginx.pid; error_log %1$s/error.log;\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            "  access_log off; keepalive_timeout 1s;\n"
            "  client_body_temp_path %1$s/body; proxy_temp_path %1$s/proxy;\n"
            "  fastcgi_temp_path %1$s/fastcgi; uwsgi_temp_path %1$s/uwsgi;\n"
            "  scgi_temp_path %1$s/scgi;\n"
            "  server { listen %2$s; location / { return 200 \"ok\\n\"; } }\n"
            "}\n",
            n->prefix, n->addr);
    CHECK_EQ(fclose(f), 0);
}

/* Start nginx on a free loopback port and wait until it accepts connections. */
static void nginx_start(struct nginx *n, const char *bin)
{
    char cwd[256];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    snprintf(n->prefix, sizeof n->prefix, "%s/nginx-client-test-XXXXXX", cwd);
    CHECK(mkdtemp(n->prefix) != NULL);
    CHECK_EQ(crl_close(test_listen_loopback(n->addr, sizeof n->addr)), 0); /* a free port */
    nginx_conf(n);
    char conf[600], err[600];
    snprintf(conf, sizeof conf, "%s/nginx.conf", n->prefix);
    snprintf(err, sizeof err, "%s/error.log", n->prefix);
    char *argv[] = {(char *)bin, "-p", n->prefix, "-c", conf, "-e", err, NULL};
    pid_t parent = getpid();
    n->pid = fork();
    CHECK(n->pid >= 0);
    if (n->pid == 0) { /* dies with the test, even one that failed; holds none of its pipes */
        int null = open("/dev/null", O_RDWR);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent || null < 0 ||
            dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
            _exit(127);
        execv(bin, argv);
        _exit(127);
    }
    for (int i = 0;; i++) {
        int fd = crl_tcp_connect(n->addr, crl_now_ns() + CRL_SEC_NS);
        if (fd >= 0) {
            CHECK_EQ(crl_close(fd), 0);
            return;
        }
        CHECK(i < 100); /* 5 s */
        CHECK_EQ(crl_sleep_ns(50 * CRL_MSEC_NS), 0);
    }
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void nginx_stop(struct nginx *n)
{
    int status;
    CHECK_EQ(kill(n->pid, SIGTERM), 0);
    CHECK_EQ(waitpid(n->pid, &status, 0), n->pid);
    CHECK_EQ(nftw(n->prefix, remove_entry, 8, FTW_DEPTH | FTW_PHYS), 0);
}

/* nginx closes a kept-alive connection after keepalive_timeout (1 s here) idle: a POST
 * after 1.3 s goes on a new connection and succeeds. */
TEST(post_after_nginx_keepalive_timeout_succeeds)
{
    char bin[512];
    if (!find_nginx(bin, sizeof bin))
        TEST_SKIP("nginx is not installed");
    struct nginx n;
    nginx_start(&n, bin);
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, n.addr, NULL), 0);
    struct crl_http_response r;
    CHECK_EQ(get(c, "/", &r), 0);
    CHECK_EQ(r.status, 200);
    CHECK(strcmp(crl_http_response_header(&r, "connection"), "keep-alive") == 0);
    crl_http_response_fini(&r);
    CHECK_EQ(crl_sleep_ns(1300 * CRL_MSEC_NS), 0);
    struct crl_http_request req = pay;
    req.deadline_ns = soon();
    CHECK_EQ(crl_http_client_request(c, &req, &r), 0);
    CHECK_EQ(r.status, 200);
    CHECK(strcmp(r.body, "ok\n") == 0);
    crl_http_response_fini(&r);
    crl_http_client_close(c);
    nginx_stop(&n);
}
