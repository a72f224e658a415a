/* The synchronous socket calls (socket, setsockopt, bind, listen, getsockname, getpeername,
 * shutdown, a peek, close) reach the kernel only through the backend's table (c->io->ops->sys), so
 * a simulated backend can own every fd a task sees: here a counting table stands in for the
 * backend's, and each public call that makes one of them is seen passing through it. */
#define _GNU_SOURCE
#include "../test.h"
#include "io/io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static struct {
    int socket, setsockopt, bind, listen, getsockname, getpeername, shutdown, recv, close;
} seen;

static int c_socket(int family, int type)
{
    seen.socket++;
    return crl__kernel_sys.socket(family, type);
}
static int c_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    seen.setsockopt++;
    return crl__kernel_sys.setsockopt(fd, level, name, val, len);
}
static int c_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    seen.bind++;
    return crl__kernel_sys.bind(fd, addr, len);
}
static int c_listen(int fd, int backlog)
{
    seen.listen++;
    return crl__kernel_sys.listen(fd, backlog);
}
static int c_getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    seen.getsockname++;
    return crl__kernel_sys.getsockname(fd, addr, len);
}
static int c_getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    seen.getpeername++;
    return crl__kernel_sys.getpeername(fd, addr, len);
}
static int c_shutdown(int fd, int how)
{
    seen.shutdown++;
    return crl__kernel_sys.shutdown(fd, how);
}
static int c_recv(int fd, void *buf, size_t len, int flags)
{
    seen.recv++;
    return crl__kernel_sys.recv(fd, buf, len, flags);
}
static int c_sock_type(int fd) { return crl__kernel_sys.sock_type(fd); }
static int c_close(int fd)
{
    seen.close++;
    return crl__kernel_sys.close(fd);
}

static const struct crl__sys_ops counting = {
    .socket = c_socket,
    .setsockopt = c_setsockopt,
    .bind = c_bind,
    .listen = c_listen,
    .getsockname = c_getsockname,
    .getpeername = c_getpeername,
    .shutdown = c_shutdown,
    .recv = c_recv,
    .sock_type = c_sock_type,
    .close = c_close,
};

static struct crl__io_ops ops; /* the core's backend, with the counting table */
static const struct crl__io_ops *saved;

static void count_calls(void)
{
    struct crl__core *c = crl__core();
    saved = c->io->ops;
    ops = *saved;
    ops.sys = &counting;
    c->io->ops = &ops;
    memset(&seen, 0, sizeof seen);
}

static void stop_counting(void) { crl__core()->io->ops = saved; }

/* Listening, connecting, options, names and closes: each through the table, none past it. */
TEST(socket_calls_go_through_the_backend)
{
    CHECK(crl__core()->io->ops->sys == &crl__kernel_sys); /* io_uring and epoll: the kernel's */
    count_calls();
    int lfd = crl_tcp_listen("127.0.0.1:0", NULL);
    CHECK(lfd >= 0);
    CHECK_EQ(seen.socket, 1);
    CHECK_EQ(seen.setsockopt, 1); /* SO_REUSEADDR */
    CHECK_EQ(seen.bind, 1);
    CHECK_EQ(seen.listen, 1);
    char name[64];
    CHECK(crl_socket_local_name(lfd, name, sizeof name) > 0);
    CHECK_EQ(seen.getsockname, 1);
    int cfd = crl_tcp_connect(name, CRL_NO_DEADLINE);
    CHECK(cfd >= 0);
    CHECK_EQ(seen.socket, 2);
    CHECK_EQ(crl_tcp_set_nodelay(cfd, true), 0);
    CHECK_EQ(crl_socket_set_keepalive(cfd, true), 0);
    CHECK_EQ(seen.setsockopt, 3);
    int afd = crl_accept(lfd, NULL, NULL);
    CHECK(afd >= 0);
    CHECK_EQ(crl_close(afd), 0);
    CHECK_EQ(crl_close(cfd), 0);
    CHECK_EQ(crl_close(lfd), 0);
    CHECK_EQ(seen.close, 3);
    CHECK_EQ(crl_close(lfd), -EBADF); /* the table's answer is the caller's */
    CHECK_EQ(seen.close, 4);
    stop_counting();
}

/* A failure inside the table closes the half-made socket through it too. */
TEST(a_failed_bind_closes_through_the_backend)
{
    int lfd = crl_tcp_listen("127.0.0.1:0", NULL);
    CHECK(lfd >= 0);
    char name[64];
    CHECK(crl_socket_local_name(lfd, name, sizeof name) > 0);
    count_calls();
    CHECK_EQ(crl_tcp_listen(name, NULL), -EADDRINUSE); /* the port is listening already */
    CHECK_EQ(seen.socket, 1);
    CHECK_EQ(seen.bind, 1);
    CHECK_EQ(seen.listen, 0);
    CHECK_EQ(seen.close, 1);
    stop_counting();
    crl_close(lfd);
}

struct served {
    char addr[64];
    struct crl_event ready, waiting;
    struct crl_scope *server;
    int peer_len, serve_rc;
};

static void on_ready(void *ctx, const struct sockaddr *addr, socklen_t len)
{
    struct served *sv = ctx;
    CHECK(crl_format_addr(addr, len, sv->addr, sizeof sv->addr) > 0);
    crl_event_set(&sv->ready);
}

/* Waits, idle, for a request that never comes: a stopping server must end the wait. */
static int idle_conn(struct crl_conn *conn, void *ctx)
{
    struct served *sv = ctx;
    sv->peer_len = (int)conn->peer_len;
    char byte;
    crl_conn_set_idle(conn, true);
    crl_event_set(&sv->waiting);
    return (int)crl_read(conn->fd, &byte, 1);
}

static int serve_body(struct crl_scope *s, void *arg)
{
    struct served *sv = arg;
    sv->server = s;
    struct crl_serve_opts opts = {.on_ready = on_ready};
    sv->serve_rc = crl_serve("127.0.0.1:0", &opts, idle_conn, sv);
    return 0;
}

static int server(void *arg) { return crl_scope_run(serve_body, arg); }

static int serve_and_stop(struct crl_scope *s, void *arg)
{
    struct served *sv = arg;
    CHECK_EQ(crl_spawn(s, server, sv), 0);
    CHECK_EQ(crl_event_wait(&sv->ready), 0);
    int fd = crl_tcp_connect(sv->addr, CRL_NO_DEADLINE);
    CHECK(fd >= 0);
    CHECK_EQ(crl_event_wait(&sv->waiting), 0);
    int shutdowns = seen.shutdown;
    crl_scope_cancel(sv->server); /* stop: the idle connection's read side is shut */
    char byte;
    CHECK_EQ(crl_read(fd, &byte, 1), 0);
    CHECK_EQ(seen.shutdown, shutdowns + 1);
    crl_close(fd);
    return 0;
}

/* crl_serve takes each connection's peer, and ends idle connections on stop, through it. */
TEST(serve_names_peers_and_ends_idle_connections_through_the_backend)
{
    struct served sv = {.peer_len = -1};
    crl_event_init(&sv.ready);
    crl_event_init(&sv.waiting);
    count_calls();
    CHECK_EQ(crl_scope_run(serve_and_stop, &sv), 0);
    stop_counting();
    CHECK_EQ(sv.serve_rc, 0);
    CHECK_EQ(seen.getpeername, 1);
    CHECK_EQ(sv.peer_len, (int)sizeof(struct sockaddr_in));
}
