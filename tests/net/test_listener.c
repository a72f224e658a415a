/* The standing accept: a burst of connections is delivered through one listener, queued
 * connections are never lost to cancellation, and closing leaks nothing. */
#define _GNU_SOURCE
#include "../test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

enum { BURST = 50 };

struct burst {
    struct crl_listener *l;
    char addr[64];
    int clients[BURST];
    int served;
};

static int server(void *arg)
{
    struct burst *b = arg;
    for (int i = 0; i < BURST; i++) {
        int fd = crl_listener_accept(b->l);
        CHECK(fd >= 0);
        char byte;
        CHECK_EQ(crl_read(fd, &byte, 1), 1);
        CHECK_EQ(crl_write(fd, &byte, 1), 1);
        CHECK_EQ(crl_close(fd), 0);
        b->served++;
    }
    return 0;
}

static int client(void *arg)
{
    struct burst *b = arg;
    int fd = crl_tcp_connect(b->addr, CRL_NO_DEADLINE);
    CHECK(fd >= 0);
    char byte = 'q';
    CHECK_EQ(crl_write(fd, &byte, 1), 1);
    CHECK_EQ(crl_read(fd, &byte, 1), 1);
    CHECK_EQ(byte, 'q');
    return crl_close(fd);
}

static int burst_body(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, server, arg), 0);
    for (int i = 0; i < BURST; i++)
        CHECK_EQ(crl_spawn(s, client, arg), 0);
    return 0;
}

/* A burst of clients is served through one listener; closing it leaks no fd. */
TEST(listener_serves_a_burst)
{
    struct burst b = {.served = 0};
    int before = test_count_fds();
    int lfd = test_listen_loopback(b.addr, sizeof b.addr);
    CHECK_EQ(crl_listener_open(&b.l, lfd), 0);
    CHECK_EQ(crl_scope_run(burst_body, &b), 0);
    CHECK_EQ(b.served, BURST);
    crl_listener_close(b.l);
    CHECK_EQ(crl_close(lfd), 0);
    CHECK_EQ(test_count_fds(), before);
}

struct cancelled_wait {
    struct crl_listener *l;
    int rc;
};

static int accept_until_cancelled(void *arg)
{
    struct cancelled_wait *w = arg;
    w->rc = crl_listener_accept(w->l);
    return 0;
}

static int cancel_body(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, accept_until_cancelled, arg), 0);
    CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    crl_scope_cancel(s);
    return 0;
}

/* A cancelled accept returns -ECANCELED; a connection made afterwards is taken by the next
 * call; connections left queued at close are closed. */
TEST(listener_survives_cancel_and_closes_queued)
{
    char addr[64];
    int before = test_count_fds();
    int lfd = test_listen_loopback(addr, sizeof addr);
    struct cancelled_wait w = {NULL, 1};
    CHECK_EQ(crl_listener_open(&w.l, lfd), 0);
    CHECK_EQ(crl_scope_run(cancel_body, &w), 0);
    CHECK_EQ(w.rc, -ECANCELED);
    int c1 = crl_tcp_connect(addr, CRL_NO_DEADLINE);
    CHECK(c1 >= 0);
    int fd = crl_listener_accept(w.l);
    CHECK(fd >= 0);
    CHECK_EQ(crl_close(fd), 0);
    int c2 = crl_tcp_connect(addr, CRL_NO_DEADLINE), c3 = crl_tcp_connect(addr, CRL_NO_DEADLINE);
    CHECK(c2 >= 0 && c3 >= 0);
    CHECK_EQ(crl_sleep_ns(2 * CRL_MSEC_NS), 0); /* io_uring: both now queued in the listener */
    crl_listener_close(w.l);
    CHECK_EQ(crl_close(lfd), 0);
    CHECK_EQ(crl_close(c1), 0);
    CHECK_EQ(crl_close(c2), 0);
    CHECK_EQ(crl_close(c3), 0);
    CHECK_EQ(test_count_fds(), before);
}
