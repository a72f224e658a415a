/* test_fetch.c - requests by URL over the per-core connection pool, against a small server
 * on loopback that answers every request with the client's port and the target it got, so
 * that a test sees which connection carried what. */
#include "../test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

struct server {
    struct crl_scope *scope;
    struct crl_event ready;
    unsigned port;
    bool close_after; /* close each connection after its response, silently */
    int accepts, ended;
    char url[64]; /* "http://127.0.0.1:PORT" */
};

static void on_ready(void *ctx, const struct sockaddr *addr, socklen_t len)
{
    struct server *sv = ctx;
    sv->port = ntohs(((const struct sockaddr_in *)addr)->sin_port);
    snprintf(sv->url, sizeof sv->url, "http://127.0.0.1:%u", sv->port);
    crl_event_set(&sv->ready);
}

/* Read one request head (no bodies here) into buf: its length, 0 at end of stream. */
static size_t read_head(struct crl_conn *conn, char *buf, size_t cap)
{
    size_t len = 0;
    while (len == 0 || !strstr(buf, "\r\n\r\n")) {
        crl_conn_set_idle(conn, len == 0);
        ssize_t n = crl_read(conn->fd, buf + len, cap - 1 - len);
        if (n <= 0)
            return 0;
        len += (size_t)n;
        buf[len] = 0;
    }
    crl_conn_set_idle(conn, false);
    return len;
}

static int serve_conn(struct crl_conn *conn, void *ctx)
{
    struct server *sv = ctx;
    sv->accepts++;
    char head[4096];
    while (read_head(conn, head, sizeof head) > 0) {
        char target[1024] = "";
        sscanf(head, "%*s %1023s", target);
        char body[1100], out[1300];
        int n = snprintf(body, sizeof body, "%u %s",
                         ntohs(((struct sockaddr_in *)&conn->peer)->sin_port), target);
        int m =
            snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", n, body);
        if (crl_write_all(conn->fd, out, (size_t)m) != m || sv->close_after)
            break;
    }
    sv->ended++;
    return 0;
}

static int serve_body(struct crl_scope *s, void *arg)
{
    struct server *sv = arg;
    sv->scope = s;
    struct crl_serve_opts o = {.on_ready = on_ready, .drain_ns = -1};
    int rc = crl_serve("127.0.0.1:0", &o, serve_conn, sv);
    crl_event_set(&sv->ready);
    return rc;
}

static int run_server(void *arg) { return crl_scope_run(serve_body, arg); }

struct fixture {
    struct server sv;
    int (*client)(struct server *sv);
};

static int fixture_body(struct crl_scope *s, void *arg)
{
    struct fixture *f = arg;
    CHECK_EQ(crl_spawn(s, run_server, &f->sv), 0);
    CHECK_EQ(crl_event_wait(&f->sv.ready), 0);
    CHECK(f->sv.port != 0);
    int rc = f->client(&f->sv);
    crl_scope_cancel(f->sv.scope);
    return rc;
}

/* Run client against a fresh server; returns the server's record for the checks. */
static void run(struct fixture *f, int (*client)(struct server *sv))
{
    crl_event_init(&f->sv.ready);
    f->client = client;
    CHECK_EQ(crl_scope_run(fixture_body, f), 0);
}

static int64_t soon(void) { return crl_now_ns() + 5 * CRL_SEC_NS; }

/* GET url; returns the client port the server saw, checking it got target. */
static unsigned get_port(const char *url, const char *target)
{
    struct crl_http_response r;
    CHECK_EQ(crl_http_get(url, &r, soon()), 0);
    CHECK_EQ(r.status, 200);
    unsigned port = 0;
    char got[1024] = "";
    CHECK_EQ(sscanf(r.body, "%u %1023s", &port, got), 2);
    if (strcmp(got, target) != 0)
        test_fail(__FILE__, __LINE__, "target \"%s\", want \"%s\"", got, target);
    crl_http_response_fini(&r);
    return port;
}

static void wait_for(int *counter, int want)
{
    for (int i = 0; i < 5000 && *counter < want; i++)
        crl_sleep_ns(CRL_MSEC_NS);
    CHECK_EQ(*counter, want);
}

/* ---- Reuse ------------------------------------------------------------------------------- */

static int two_gets(struct server *sv)
{
    char url[128];
    snprintf(url, sizeof url, "%s/one", sv->url);
    unsigned first = get_port(url, "/one");
    snprintf(url, sizeof url, "%s/two?x=1", sv->url);
    CHECK_EQ(get_port(url, "/two?x=1"), first);
    struct crl_http_pool_stats st;
    crl_http_pool_stats(&st);
    CHECK_EQ(st.opened, 1);
    CHECK_EQ(st.reused, 1);
    CHECK_EQ(st.idle, 1);
    return 0;
}

TEST(two_gets_by_url_share_one_connection)
{
    struct fixture f = {0};
    run(&f, two_gets);
    CHECK_EQ(f.sv.accepts, 1);
}

static int gets_after_server_close(struct server *sv)
{
    sv->close_after = true;
    unsigned first = get_port(sv->url, "/");
    wait_for(&sv->ended, 1); /* the server closed it while it sat in the pool */
    unsigned second = get_port(sv->url, "/");
    CHECK(second != first);
    return 0;
}

TEST(a_connection_the_server_closed_while_idle_is_replaced_transparently)
{
    struct fixture f = {0};
    run(&f, gets_after_server_close);
    CHECK_EQ(f.sv.accepts, 2);
}

static int by_name(struct server *sv)
{
    char url[128];
    snprintf(url, sizeof url, "http://localhost:%u/named", sv->port);
    unsigned first = get_port(url, "/named");
    snprintf(url, sizeof url, "http://LOCALHOST:%u", sv->port); /* the same host */
    CHECK_EQ(get_port(url, "/"), first);
    return 0;
}

TEST(a_url_with_a_host_name_resolves_and_reuses)
{
    const char *why = test_cannot_run_other_threads();
    if (why)
        TEST_SKIP(why);
    struct fixture f = {0};
    run(&f, by_name);
    CHECK_EQ(f.sv.accepts, 1);
}

/* ---- Bounds -------------------------------------------------------------------------------- */

struct parallel {
    const char *url;
    int rc;
};

static int one_get(void *arg)
{
    struct parallel *p = arg;
    struct crl_http_response r;
    p->rc = crl_http_get(p->url, &r, soon());
    crl_http_response_fini(&r);
    return 0;
}

/* n GETs at once to url: n connections, all back in the pool (within its bounds) after. */
static int parallel_body(struct crl_scope *s, void *arg)
{
    struct parallel *p = arg;
    for (int i = 0; p[i].url; i++)
        CHECK_EQ(crl_spawn(s, one_get, &p[i]), 0);
    return 0;
}

static void parallel_gets(const char *url, int n)
{
    struct parallel p[9] = {{0}};
    CHECK_LT(n, 9);
    for (int i = 0; i < n; i++)
        p[i].url = url;
    CHECK_EQ(crl_scope_run(parallel_body, p), 0);
    for (int i = 0; i < n; i++)
        CHECK_EQ(p[i].rc, 0);
}

static int per_host_bound(struct server *sv)
{
    CHECK_EQ(crl_http_pool_set_opts(&(struct crl_http_pool_opts){.max_idle_per_host = 2}), 0);
    parallel_gets(sv->url, 3);
    CHECK_EQ(sv->accepts, 3);
    struct crl_http_pool_stats st;
    crl_http_pool_stats(&st);
    CHECK_EQ(st.idle, 2);
    wait_for(&sv->ended, 1); /* the third was closed */
    return 0;
}

TEST(the_pool_keeps_at_most_max_idle_per_host)
{
    struct fixture f = {0};
    run(&f, per_host_bound);
}

static int total_bound(struct server *sv)
{
    CHECK_EQ(crl_http_pool_set_opts(&(struct crl_http_pool_opts){.max_idle = 3}), 0);
    char by_name[128];
    snprintf(by_name, sizeof by_name, "http://localhost:%u/", sv->port); /* another key */
    parallel_gets(sv->url, 2);
    parallel_gets(by_name, 2);
    struct crl_http_pool_stats st;
    crl_http_pool_stats(&st);
    CHECK_EQ(st.idle, 3);
    wait_for(&sv->ended, 1);
    get_port(sv->url, "/"); /* the oldest went, one of the first two: one is left */
    crl_http_pool_stats(&st);
    CHECK_EQ(st.reused, 1);
    return 0;
}

TEST(the_pool_keeps_at_most_max_idle_in_all_closing_the_oldest)
{
    struct fixture f = {0};
    run(&f, total_bound);
    CHECK_EQ(f.sv.accepts, 4);
}

static int idle_timeout(struct server *sv)
{
    CHECK_EQ(
        crl_http_pool_set_opts(&(struct crl_http_pool_opts){.idle_timeout_ns = 20 * CRL_MSEC_NS}),
        0);
    get_port(sv->url, "/");
    struct crl_http_pool_stats st;
    crl_http_pool_stats(&st);
    CHECK_EQ(st.idle, 1);
    wait_for(&sv->ended, 1); /* closed by the pool's timer, with no request to prompt it */
    crl_http_pool_stats(&st);
    CHECK_EQ(st.idle, 0);
    return 0;
}

TEST(an_idle_connection_is_closed_after_the_idle_timeout)
{
    struct fixture f = {0};
    run(&f, idle_timeout);
}

static int no_keep(struct server *sv)
{
    CHECK_EQ(crl_http_pool_set_opts(&(struct crl_http_pool_opts){.idle_timeout_ns = -1}), 0);
    unsigned first = get_port(sv->url, "/");
    CHECK(get_port(sv->url, "/") != first);
    return 0;
}

TEST(a_negative_idle_timeout_keeps_no_connection)
{
    struct fixture f = {0};
    run(&f, no_keep);
    CHECK_EQ(f.sv.accepts, 2);
}

/* ---- The pool and the runtime ------------------------------------------------------------ */

static struct fixture leftover;

static int leave_idle(void *arg)
{
    run(&leftover, two_gets);
    struct crl_http_pool_stats st;
    crl_http_pool_stats(&st);
    CHECK_EQ(st.idle, 1); /* still in the pool when the runtime ends */
    return 0;
}

TEST_PLAIN(the_pool_is_closed_when_the_runtime_ends)
{
    int before = test_count_fds();
    CHECK_EQ(crl_run(NULL, leave_idle, NULL), 0);
    CHECK_EQ(test_count_fds(), before);
    struct crl_http_pool_stats st;
    crl_http_pool_stats(&st);
    CHECK_EQ(st.idle, 0); /* outside a runtime */
    CHECK_EQ(crl_http_pool_set_opts(NULL), -EINVAL);
}

/* ---- URLs ---------------------------------------------------------------------------------- */

static int url_forms(struct server *sv)
{
    char url[160];
    snprintf(url, sizeof url, "%s?q=1#frag", sv->url);
    get_port(url, "/?q=1");
    snprintf(url, sizeof url, "HTTP://127.0.0.1:%u/a/b#x", sv->port);
    get_port(url, "/a/b");
    snprintf(url, sizeof url, "http://[::1]:%u/v6", sv->port); /* nobody there: refused */
    struct crl_http_response r;
    CHECK_EQ(crl_http_get(url, &r, soon()), -ECONNREFUSED);
    /* POST with a body and a header, through crl_http_fetch. */
    struct crl_http_header h = {"X-Test", "1"};
    struct crl_http_request req = {.headers = &h, .header_count = 1, .deadline_ns = soon()};
    snprintf(url, sizeof url, "%s/post", sv->url);
    CHECK_EQ(crl_http_fetch("HEAD", url, &req, &r), 0);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(r.body_len, 0);
    crl_http_response_fini(&r);
    CHECK_EQ(crl_http_fetch(NULL, url, NULL, &r), 0); /* GET, no deadline */
    CHECK(strstr(r.body, " /post") != NULL);
    crl_http_response_fini(&r);
    return 0;
}

TEST(urls_give_their_target_without_the_fragment)
{
    struct fixture f = {0};
    run(&f, url_forms);
}

TEST(bad_urls_are_refused_before_anything_is_sent)
{
    struct crl_http_response r;
    CHECK_EQ(crl_http_get("https://localhost/", &r, soon()), -EPROTONOSUPPORT);
    CHECK_EQ(crl_http_get("HTTPS://localhost:443/x", &r, soon()), -EPROTONOSUPPORT);
    const char *bad[] = {"ftp://localhost/", "localhost:80/x",    "http://",
                         "http:///x",        "http://:80/",       "http://host:99999/",
                         "http://host:8o/",  "http://user@host/", "http://[::1/",
                         "http://[::1]x/",   "http://h/a b",      "http://bad host/",
                         "//localhost/"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = crl_http_get(bad[i], &r, soon());
        if (rc != -EINVAL)
            test_fail(__FILE__, __LINE__, "%s: %d, want -EINVAL", bad[i], rc);
        CHECK(r.body == NULL);
    }
    CHECK_EQ(crl_http_get(NULL, &r, soon()), -EINVAL);
    struct crl_http_pool_stats st;
    crl_http_pool_stats(&st);
    CHECK_EQ(st.opened, 0);
}

TEST(an_unknown_host_name_fails_to_resolve)
{
    struct crl_http_response r;
    int rc = crl_http_get("http://no-such-host.invalid/", &r, crl_now_ns() + 3 * CRL_SEC_NS);
    CHECK(rc == -ENOENT || rc == -EAGAIN || rc == -ETIMEDOUT);
}

/* ---- A pool per core ------------------------------------------------------------------------ */

struct on_core {
    const char *url;
    struct crl_http_pool_stats st;
};

static int gets_on_this_core(void *arg)
{
    struct on_core *oc = arg;
    unsigned first = get_port(oc->url, "/");
    CHECK_EQ(get_port(oc->url, "/"), first);
    crl_http_pool_stats(&oc->st);
    return 0;
}

static int per_core(struct server *sv)
{
    struct on_core oc = {.url = sv->url};
    CHECK_EQ(crl_call(1, gets_on_this_core, &oc), 0);
    CHECK_EQ(oc.st.opened, 1);
    CHECK_EQ(oc.st.reused, 1);
    CHECK_EQ(oc.st.idle, 1); /* left in core 1's pool, closed when core 1 stops */
    struct crl_http_pool_stats here;
    crl_http_pool_stats(&here);
    CHECK_EQ(here.opened, 0);
    CHECK_EQ(here.idle, 0);
    return 0;
}

static int per_core_main(void *arg)
{
    struct fixture f = {0};
    run(&f, per_core);
    return 0;
}

TEST_PLAIN(each_core_has_a_pool_of_its_own)
{
    TEST_NEED_CORES(2);
    int before = test_count_fds();
    struct crl_config cfg = {.cores = 2};
    CHECK_EQ(crl_run(&cfg, per_core_main, NULL), 0);
    CHECK_EQ(test_count_fds(), before);
}
