/* The simulated backend's network (sim_net.c): stream sockets in memory with the kernel's
 * answers, seeded short reads and writes and latencies, no kernel socket made. Each case runs
 * a simulated runtime of its own. */
#define _GNU_SOURCE
#include "../test.h"
#include "io/io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t last_hash(void)
{
    uint64_t seed, hash, events;
    CHECK(crl__sim_last_trace(&seed, &hash, &events));
    return hash;
}

static int run_sim(unsigned long long seed, crl_task_fn *fn, void *arg)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", seed);
    setenv("CORRAL_SEED", buf, 1);
    struct crl_config cfg = {.backend = CRL_BACKEND_SIM};
    return crl_run(&cfg, fn, arg);
}

/* A listener on 127.0.0.1 and its "HOST:PORT". */
static int listen_any(char *name, size_t len)
{
    int lfd = crl_tcp_listen("127.0.0.1:0", NULL);
    CHECK(lfd >= 0);
    CHECK(crl_socket_local_name(lfd, name, len) > 0);
    return lfd;
}

static int names_main(void *arg)
{
    (void)arg;
    char name[64];
    int lfd = listen_any(name, sizeof name);
    CHECK(lfd >= (1 << 29)); /* above any fd the kernel gives */
    CHECK_EQ(strncmp(name, "127.0.0.1:", 10), 0);
    int cfd = crl_tcp_connect(name, CRL_NO_DEADLINE);
    CHECK(cfd >= 0);
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    int afd = crl_accept(lfd, (struct sockaddr *)&peer, &plen);
    CHECK(afd >= 0);
    CHECK_EQ(plen, sizeof(struct sockaddr_in));
    char client[64], seen[64];
    CHECK(crl_socket_local_name(cfd, client, sizeof client) > 0);
    CHECK(crl_format_addr((struct sockaddr *)&peer, plen, seen, sizeof seen) > 0);
    CHECK_EQ(strcmp(client, seen), 0); /* the server sees the client's address */
    CHECK(strcmp(client, name) != 0);
    CHECK_EQ(crl__sim_open_fds(), 3u);
    CHECK_EQ(close(afd), -1); /* a stray real close cannot hit a simulated fd */
    CHECK_EQ(errno, EBADF);
    CHECK_EQ(crl_write_all(cfd, "ping", 4), 4);
    char buf[8];
    ssize_t n = 0;
    while (n < 4) {
        ssize_t k = crl_read(afd, buf + n, sizeof buf - (size_t)n);
        CHECK(k > 0);
        n += k;
    }
    CHECK_EQ(memcmp(buf, "ping", 4), 0);
    CHECK_EQ(crl_close(cfd), 0);
    CHECK_EQ(crl_read(afd, buf, sizeof buf), 0); /* the peer's close: end of stream */
    CHECK_EQ(crl_close(afd), 0);
    CHECK_EQ(crl_close(lfd), 0);
    CHECK_EQ(crl_close(lfd), -EBADF);
    CHECK_EQ(crl__sim_open_fds(), 0u);
    return 0;
}

/* Listen, connect, accept, names, a round of bytes and the close, all in memory. */
TEST_PLAIN(a_connection_carries_bytes_and_names_in_memory)
{
    CHECK_EQ(run_sim(1, names_main, NULL), 0);
}

static int refused_main(void *arg)
{
    (void)arg;
    CHECK_EQ(crl_tcp_connect("127.0.0.1:80", CRL_NO_DEADLINE), -ECONNREFUSED);
    char name[64];
    int lfd = listen_any(name, sizeof name);
    CHECK_EQ(crl_tcp_listen(name, NULL), -EADDRINUSE);
    struct crl_listen_opts shared = {.reuseport = true};
    int a = crl_tcp_listen("127.0.0.1:7000", &shared),
        b = crl_tcp_listen("127.0.0.1:7000", &shared);
    CHECK(a >= 0 && b >= 0); /* SO_REUSEPORT on both: both listen */
    CHECK_EQ(crl_tcp_listen("0.0.0.0:7000", NULL), -EADDRINUSE); /* the wildcard covers it */
    crl_close(a);
    crl_close(b);
    crl_close(lfd);
    CHECK_EQ(crl_tcp_connect(name, CRL_NO_DEADLINE), -ECONNREFUSED); /* closed: nobody there */
    CHECK_EQ(crl_udp_bind("127.0.0.1:0"), -EPROTONOSUPPORT);         /* no datagrams yet */
    return 0;
}

static int unix_main(void *arg)
{
    (void)arg;
    const char *path = "/tmp/corral-sim-test.sock";
    int lfd = crl_unix_listen(path, 0);
    CHECK(lfd >= 0);
    CHECK_EQ(access(path, F_OK), -1); /* no file: the socket is the world's */
    CHECK_EQ(crl_unix_listen(path, 0), -EADDRINUSE);
    int cfd = crl_unix_connect(path);
    CHECK(cfd >= 0);
    int afd = crl_accept(lfd, NULL, NULL);
    CHECK(afd >= 0);
    CHECK_EQ(crl_write_all(cfd, "u", 1), 1);
    char byte = 0;
    CHECK_EQ(crl_read(afd, &byte, 1), 1);
    CHECK_EQ(byte, 'u');
    crl_close(afd);
    crl_close(cfd);
    crl_close(lfd);
    CHECK_EQ(crl_unix_connect(path), -ECONNREFUSED);
    return 0;
}

/* Unix stream sockets too, named by their path and never touching the file system. */
TEST_PLAIN(unix_sockets_are_simulated_by_path) { CHECK_EQ(run_sim(8, unix_main, NULL), 0); }

/* The kernel's answers: nobody listening, an address taken, SO_REUSEPORT shares it. */
TEST_PLAIN(refusals_and_taken_addresses_are_the_kernels)
{
    CHECK_EQ(run_sim(2, refused_main, NULL), 0);
}

enum { BIG = 1 << 20 };

static char pattern(size_t i) { return (char)(i * 7 + (i >> 11)); }

static int send_bulk(void *arg)
{
    int fd = *(int *)arg;
    char *data = malloc(BIG);
    CHECK(data);
    for (size_t i = 0; i < BIG; i++)
        data[i] = pattern(i);
    CHECK_EQ(crl_write_all(fd, data, BIG), BIG);
    CHECK_EQ(crl_shutdown(fd, SHUT_WR), 0);
    free(data);
    return 0;
}

/* Read fd to its end into got: how many bytes; *short_reads counts reads cut short. */
static size_t read_to_end(int fd, char *got, size_t cap, int *short_reads)
{
    size_t n = 0;
    for (;;) {
        size_t want = 16384 < cap - n ? 16384 : cap - n;
        ssize_t k = crl_read(fd, got + n, want);
        CHECK(k >= 0);
        if (k == 0)
            return n;
        *short_reads += (size_t)k < want;
        n += (size_t)k;
    }
}

static int bulk_body(struct crl_scope *s, void *arg)
{
    int *cfd = arg;
    char name[64];
    int lfd = listen_any(name, sizeof name);
    *cfd = crl_tcp_connect(name, CRL_NO_DEADLINE);
    CHECK(*cfd >= 0);
    int afd = crl_accept(lfd, NULL, NULL);
    CHECK(afd >= 0);
    CHECK_EQ(crl_spawn(s, send_bulk, cfd), 0);
    static char got[BIG + 1];
    int short_reads = 0;
    CHECK_EQ(read_to_end(afd, got, sizeof got, &short_reads), (size_t)BIG);
    for (size_t i = 0; i < BIG; i++)
        if (got[i] != pattern(i))
            CHECK_EQ(i, (size_t)BIG); /* names the first byte out of place */
    CHECK(short_reads > 0);           /* the seed cut some reads short */
    crl_close(afd);
    crl_close(lfd);
    return 0;
}

static int bulk_main(void *arg)
{
    int cfd = -1;
    CHECK_EQ(crl_scope_run(bulk_body, &cfd), 0);
    crl_close(cfd);
    *(uint64_t *)arg = crl__sim_open_fds();
    return 0;
}

/* A megabyte through a 64 KiB socket buffer, with short reads and writes: every byte in
 * order; the same seed, the same trace. */
TEST_PLAIN(a_megabyte_arrives_whole_and_in_order)
{
    uint64_t open = 1;
    CHECK_EQ(run_sim(3, bulk_main, &open), 0);
    CHECK_EQ(open, 0u);
    uint64_t hash = last_hash();
    CHECK_EQ(run_sim(3, bulk_main, &open), 0);
    CHECK_EQ(last_hash(), hash);
    CHECK_EQ(run_sim(4, bulk_main, &open), 0);
    CHECK(last_hash() != hash);
}

/* Two connected sockets: *a the client's, *b the server's. */
static void pair(int *a, int *b)
{
    char name[64];
    int lfd = listen_any(name, sizeof name);
    *a = crl_tcp_connect(name, CRL_NO_DEADLINE);
    CHECK(*a >= 0);
    *b = crl_accept(lfd, NULL, NULL);
    CHECK(*b >= 0);
    crl_close(lfd);
}

static int ends_main(void *arg)
{
    (void)arg;
    int a, b;
    char buf[16];
    pair(&a, &b);
    CHECK_EQ(crl_shutdown(a, SHUT_WR), 0); /* a half-close: b reads the end, still writes */
    CHECK_EQ(crl_read(b, buf, sizeof buf), 0);
    CHECK_EQ(crl_write_all(b, "late", 4), 4);
    CHECK_EQ(crl_recv(a, buf, 4, MSG_WAITALL), 4); /* all four, though reads may be short */
    CHECK_EQ(crl_send(a, "x", 1, 0), -EPIPE);      /* after our own shutdown */
    crl_close(a);
    CHECK_EQ(crl_send(b, "x", 1, 0), -EPIPE); /* after the peer's close */
    crl_close(b);

    pair(&a, &b);
    CHECK_EQ(crl_write_all(a, "unread", 6), 6);
    CHECK_EQ(crl_poll(b, POLLIN) & POLLIN, POLLIN);
    crl_close(b); /* closed with bytes unread: a reset */
    CHECK_EQ(crl_read(a, buf, sizeof buf), -ECONNRESET);
    CHECK_EQ(crl_read(a, buf, sizeof buf), 0); /* reported once */
    crl_close(a);

    char name[64];
    int lfd = listen_any(name, sizeof name);
    a = crl_tcp_connect(name, CRL_NO_DEADLINE); /* left in the backlog */
    CHECK(a >= 0);
    crl_close(lfd);
    CHECK_EQ(crl_read(a, buf, sizeof buf), -ECONNRESET);
    crl_close(a);
    return 0;
}

/* Half-close, EPIPE, a close with bytes unread and a listener's backlog: what TCP says. */
TEST_PLAIN(the_ends_of_a_connection_are_tcps) { CHECK_EQ(run_sim(5, ends_main, NULL), 0); }

static int read_one(void *arg)
{
    char byte;
    return (int)crl_read(*(int *)arg, &byte, 1);
}

struct closer {
    int fd;
    int rc;
};

static int reader_task(void *arg)
{
    struct closer *c = arg;
    c->rc = read_one(&c->fd);
    return 0;
}

static int waits_body(struct crl_scope *s, void *arg)
{
    (void)arg;
    int a, b;
    pair(&a, &b);
    int64_t t0 = crl_now_ns();
    CHECK_EQ(crl_with_timeout(2 * CRL_SEC_NS, read_one, &a), -ETIMEDOUT); /* cancelled */
    CHECK_GE(crl_now_ns() - t0, 2 * CRL_SEC_NS);
    static struct closer c;
    c = (struct closer){.fd = a, .rc = 1};
    CHECK_EQ(crl_spawn(s, reader_task, &c), 0);
    CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    CHECK_EQ(crl_close(a), 0); /* under the parked read */
    CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    CHECK_EQ(c.rc, -EBADF);
    crl_close(b);
    return 0;
}

static int waits_main(void *arg) { return crl_scope_run(waits_body, arg); }

/* A read waiting for bytes ends at its deadline (virtual), or with EBADF under a close. */
TEST_PLAIN(a_waiting_read_is_cancelled_or_closed_under)
{
    CHECK_EQ(run_sim(6, waits_main, NULL), 0);
}

static int hello(crl_http_req *req, crl_http_res *res, void *ctx)
{
    (void)ctx;
    char body[128];
    int n = snprintf(body, sizeof body, "hello %s", crl_http_req_path(req));
    return crl_http_res_send(res, 200, "text/plain", body, (size_t)n);
}

struct http_run {
    char addr[64];
    struct crl_event ready;
    struct crl_scope *server;
};

static void http_ready(void *ctx, const struct sockaddr *addr, socklen_t len)
{
    struct http_run *h = ctx;
    CHECK(crl_format_addr(addr, len, h->addr, sizeof h->addr) > 0);
    crl_event_set(&h->ready);
}

static int http_server(struct crl_scope *s, void *arg)
{
    struct http_run *h = arg;
    h->server = s;
    struct crl_http_server_opts opts = {.serve.on_ready = http_ready};
    return crl_http_serve("127.0.0.1:0", &opts, hello, h);
}

static int http_server_task(void *arg) { return crl_scope_run(http_server, arg); }

static int http_body(struct crl_scope *s, void *arg)
{
    struct http_run *h = arg;
    crl_event_init(&h->ready);
    CHECK_EQ(crl_spawn(s, http_server_task, h), 0);
    CHECK_EQ(crl_event_wait(&h->ready), 0);
    struct crl_http_client *c;
    CHECK_EQ(crl_http_client_open(&c, h->addr, NULL), 0);
    for (int i = 0; i < 3; i++) { /* one kept-alive connection */
        char path[16], want[32];
        snprintf(path, sizeof path, "/r%d", i);
        snprintf(want, sizeof want, "hello /r%d", i);
        struct crl_http_request rq = {
            .method = "GET", .target = path, .deadline_ns = CRL_NO_DEADLINE};
        struct crl_http_response r;
        CHECK_EQ(crl_http_client_request(c, &rq, &r), 0);
        CHECK_EQ(r.status, 200);
        CHECK_EQ(r.body_len, strlen(want));
        CHECK_EQ(memcmp(r.body, want, r.body_len), 0);
        crl_http_response_fini(&r);
    }
    crl_http_client_close(c);
    crl_scope_cancel(h->server);
    return 0;
}

static int http_main(void *arg)
{
    CHECK_EQ(crl_scope_run(http_body, arg), 0);
    CHECK_EQ(crl__sim_open_fds(), 0u);
    return 0;
}

/* The HTTP server and client over the simulated network, keep-alive and all. */
TEST_PLAIN(http_runs_over_the_simulated_network)
{
    static struct http_run h;
    CHECK_EQ(run_sim(7, http_main, &h), 0);
    uint64_t hash = last_hash();
    CHECK_EQ(run_sim(7, http_main, &h), 0);
    CHECK_EQ(last_hash(), hash);
}
