/* I/O on whichever backend CORRAL_BACKEND selects: pipes, TCP, UDP, Unix sockets, files,
 * readiness, and cancellation of blocked operations. */
#define _GNU_SOURCE
#include "../test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The backend named by CORRAL_BACKEND is the one in use. */
TEST(backend_is_the_one_asked_for)
{
    const char *want = getenv("CORRAL_BACKEND");
    const char *have = crl_io_backend();
    if (want && strcmp(want, "epoll") == 0)
        CHECK(strcmp(have, "epoll") == 0);
    else
        CHECK(strcmp(have, "io_uring") == 0 || strcmp(have, "epoll") == 0);
}

struct pipe_io {
    int fds[2];
    char got[16];
    ssize_t n;
};

static int pipe_reader(void *arg)
{
    struct pipe_io *p = arg;
    p->n = crl_read(p->fds[0], p->got, sizeof p->got);
    return 0;
}

static int pipe_body(struct crl_scope *s, void *arg)
{
    struct pipe_io *p = arg;
    CHECK_EQ(crl_spawn(s, pipe_reader, p), 0);
    CHECK_EQ(crl_sleep_ns(2 * CRL_MSEC_NS), 0); /* the reader blocks first */
    CHECK_EQ(p->n, -1);
    CHECK_EQ(crl_write(p->fds[1], "hello", 5), 5);
    return 0;
}

/* A read blocks its task until data arrives; the writer's task is not blocked. */
TEST(pipe_read_waits_for_data)
{
    struct pipe_io p = {.n = -1};
    CHECK_EQ(pipe(p.fds), 0);
    CHECK_EQ(crl_scope_run(pipe_body, &p), 0);
    CHECK_EQ(p.n, 5);
    CHECK(memcmp(p.got, "hello", 5) == 0);
    CHECK_EQ(crl_close(p.fds[0]), 0);
    CHECK_EQ(crl_close(p.fds[1]), 0);
}

struct echo {
    int lfd;
    char addr[64];
    char reply[64];
    ssize_t reply_len;
};

static int echo_server(void *arg)
{
    struct echo *e = arg;
    int fd = crl_accept(e->lfd, NULL, NULL);
    CHECK(fd >= 0);
    char buf[64];
    ssize_t n;
    while ((n = crl_recv(fd, buf, sizeof buf, 0)) > 0)
        CHECK_EQ(crl_write_all(fd, buf, (size_t)n), n);
    CHECK_EQ(n, 0);
    return crl_close(fd);
}

static int echo_client(void *arg)
{
    struct echo *e = arg;
    int fd = crl_tcp_connect(e->addr, crl_now_ns() + 5 * CRL_SEC_NS);
    CHECK(fd >= 0);
    CHECK_EQ(crl_tcp_set_nodelay(fd, true), 0);
    CHECK_EQ(crl_socket_set_keepalive(fd, true), 0);
    struct iovec iov[2] = {{"ping ", 5}, {"pong", 4}};
    CHECK_EQ(crl_writev(fd, iov, 2), 9);
    size_t got = 0;
    while (got < 9) {
        ssize_t n = crl_read(fd, e->reply + got, sizeof e->reply - got);
        CHECK(n > 0);
        got += (size_t)n;
    }
    e->reply_len = (ssize_t)got;
    CHECK_EQ(crl_shutdown(fd, SHUT_WR), 0);
    return crl_close(fd);
}

static int echo_body(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, echo_server, arg), 0);
    CHECK_EQ(crl_spawn(s, echo_client, arg), 0);
    return 0;
}

/* TCP over IPv4: listen, connect with a deadline, writev, recv, write_all, shutdown. */
TEST(tcp_echo_over_loopback)
{
    struct echo e = {0};
    e.lfd = test_listen_loopback(e.addr, sizeof e.addr);
    CHECK_EQ(crl_scope_run(echo_body, &e), 0);
    CHECK_EQ(e.reply_len, 9);
    CHECK(memcmp(e.reply, "ping pong", 9) == 0);
    CHECK_EQ(crl_close(e.lfd), 0);
}

/* TCP over IPv6 loopback. */
TEST(tcp_echo_over_ipv6)
{
    struct echo e = {0};
    e.lfd = crl_tcp_listen("[::1]:0", NULL);
    if (e.lfd == -EADDRNOTAVAIL || e.lfd == -EAFNOSUPPORT)
        TEST_SKIP("no IPv6 loopback");
    CHECK(e.lfd >= 0);
    struct sockaddr_storage ss;
    socklen_t len;
    CHECK_EQ(crl_socket_local_addr(e.lfd, &ss, &len), 0);
    snprintf(e.addr, sizeof e.addr, "[::1]:%d", ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    CHECK_EQ(crl_scope_run(echo_body, &e), 0);
    CHECK_EQ(e.reply_len, 9);
    CHECK_EQ(crl_close(e.lfd), 0);
}

/* UDP: sendto / recvfrom carry the datagram and the sender's address. */
TEST(udp_sendto_recvfrom)
{
    int a = crl_udp_bind("127.0.0.1:0"), b = crl_udp_bind("127.0.0.1:0");
    CHECK(a >= 0 && b >= 0);
    struct sockaddr_storage to, from;
    socklen_t tolen, fromlen = sizeof from;
    CHECK_EQ(crl_socket_local_addr(b, &to, &tolen), 0);
    CHECK_EQ(crl_sendto(a, "datagram", 8, 0, (struct sockaddr *)&to, tolen), 8);
    char buf[32];
    CHECK_EQ(crl_recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &fromlen), 8);
    CHECK(memcmp(buf, "datagram", 8) == 0);
    struct sockaddr_storage a_addr;
    socklen_t a_len;
    CHECK_EQ(crl_socket_local_addr(a, &a_addr, &a_len), 0);
    CHECK_EQ(fromlen, a_len);
    CHECK(memcmp(&from, &a_addr, a_len) == 0);
    CHECK_EQ(crl_close(a), 0);
    CHECK_EQ(crl_close(b), 0);
}

struct unix_pair {
    int lfd;
    char path[108];
    char got[8];
};

static int unix_server(void *arg)
{
    struct unix_pair *u = arg;
    int fd = crl_accept(u->lfd, NULL, NULL);
    CHECK(fd >= 0);
    CHECK_EQ(crl_read(fd, u->got, 4), 4);
    return crl_close(fd);
}

static int unix_client(void *arg)
{
    struct unix_pair *u = arg;
    int fd = crl_unix_connect(u->path);
    CHECK(fd >= 0);
    CHECK_EQ(crl_send(fd, "unix", 4, 0), 4);
    return crl_close(fd);
}

static int unix_body(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, unix_server, arg), 0);
    CHECK_EQ(crl_spawn(s, unix_client, arg), 0);
    return 0;
}

/* Unix stream sockets: listen on a path, connect, send, read. */
TEST(unix_stream_socket)
{
    struct unix_pair u = {0};
    snprintf(u.path, sizeof u.path, "/tmp/corral-test-%d.sock", (int)getpid());
    unlink(u.path);
    u.lfd = crl_unix_listen(u.path, 0);
    CHECK(u.lfd >= 0);
    CHECK_EQ(crl_scope_run(unix_body, &u), 0);
    CHECK(memcmp(u.got, "unix", 4) == 0);
    CHECK_EQ(crl_close(u.lfd), 0);
    unlink(u.path);
}

struct drain {
    int fds[2]; /* fds[0] is read through corral, fds[1] written with plain syscalls */
};

static int late_writer(void *arg)
{
    struct drain *d = arg;
    CHECK_EQ(crl_sleep_ns(2 * CRL_MSEC_NS), 0);
    CHECK_EQ(write(d->fds[1], "defgh", 5), 5);
    return 0;
}

static int late_end(void *arg)
{
    struct drain *d = arg;
    CHECK_EQ(crl_sleep_ns(2 * CRL_MSEC_NS), 0);
    CHECK_EQ(shutdown(d->fds[1], SHUT_WR), 0);
    return 0;
}

static int drain_body(struct crl_scope *s, void *arg)
{
    struct drain *d = arg;
    char buf[100];
    CHECK_EQ(write(d->fds[1], "abc", 3), 3);
    CHECK_EQ(crl_recv(d->fds[0], buf, sizeof buf, 0), 3); /* short: the queue is empty */
    CHECK_EQ(crl_spawn(s, late_writer, d), 0);
    CHECK_EQ(crl_recv(d->fds[0], buf, sizeof buf, 0), 5); /* woken by the data's arrival */
    CHECK(memcmp(buf, "defgh", 5) == 0);
    CHECK_EQ(write(d->fds[1], "ij", 2), 2); /* arrives before the next recv is asked */
    CHECK_EQ(crl_recv(d->fds[0], buf, sizeof buf, 0), 2);
    CHECK(memcmp(buf, "ij", 2) == 0);
    CHECK_EQ(crl_spawn(s, late_end, d), 0);
    CHECK_EQ(crl_recv(d->fds[0], buf, sizeof buf, 0), 0);
    CHECK_EQ(crl_sleep_ns(2 * CRL_MSEC_NS), 0);           /* every event of the end is consumed */
    CHECK_EQ(crl_recv(d->fds[0], buf, sizeof buf, 0), 0); /* the end stays readable */
    return 0;
}

/* Run body in a scope over a fresh AF_UNIX stream pair, then close both ends. */
static void run_on_pair(int (*body)(struct crl_scope *, void *))
{
    struct drain d;
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, d.fds), 0);
    CHECK_EQ(crl_scope_run(body, &d), 0);
    CHECK_EQ(crl_close(d.fds[0]), 0);
    CHECK_EQ(close(d.fds[1]), 0);
}

/* A stream socket read short (emptied), then fed by the peer later, at once, and ended:
 * every recv sees its bytes or the end, and none waits for an event that never comes (the
 * epoll backend skips the try of a recv after a short one until the next input event). */
TEST(recv_after_short_recv_sees_new_data_and_end) { run_on_pair(drain_body); }

static int late_data_and_end(void *arg)
{
    struct drain *d = arg;
    CHECK_EQ(crl_sleep_ns(2 * CRL_MSEC_NS), 0);
    CHECK_EQ(write(d->fds[1], "xyz", 3), 3);
    CHECK_EQ(shutdown(d->fds[1], SHUT_WR), 0); /* before the loop looks: one event for both */
    return 0;
}

static int data_and_end_body(struct crl_scope *s, void *arg)
{
    struct drain *d = arg;
    char buf[100];
    crl_scope_set_deadline(s, crl_now_ns() + 5 * CRL_SEC_NS); /* a hang fails, not stalls */
    CHECK_EQ(crl_spawn(s, late_data_and_end, d), 0);
    CHECK_EQ(crl_recv(d->fds[0], buf, sizeof buf, 0), 3); /* short, woken by the event */
    CHECK(memcmp(buf, "xyz", 3) == 0);
    CHECK_EQ(crl_recv(d->fds[0], buf, sizeof buf, 0), 0); /* the end came with that event */
    return 0;
}

/* Data and the end arriving together while a recv waits: the recv that follows the short
 * one sees the end at once (the epoll backend must not wait for another input event: the
 * end's was spent on the data). */
TEST(recv_after_data_that_came_with_the_end_sees_the_end) { run_on_pair(data_and_end_body); }

enum { SEND_ALL_LEN = 1 << 20 };

struct send_all {
    int fds[2]; /* fds[0] sends, fds[1] receives */
    unsigned char *data;
    ssize_t sent;
};

static int slow_reader(void *arg)
{
    struct send_all *a = arg;
    static unsigned char buf[64 * 1024];
    for (size_t total = 0; total < SEND_ALL_LEN;) {
        ssize_t n = crl_recv(a->fds[1], buf, sizeof buf, 0);
        CHECK(n > 0);
        CHECK(memcmp(buf, a->data + total, (size_t)n) == 0);
        total += (size_t)n;
        CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS / 4), 0);
    }
    return 0;
}

static int stuck_sender(void *arg)
{
    struct send_all *a = arg;
    a->sent = crl_send(a->fds[0], a->data, SEND_ALL_LEN, MSG_WAITALL);
    return 0;
}

static int send_all_body(struct crl_scope *s, void *arg)
{
    struct send_all *a = arg;
    /* A plain send into a small socket buffer stops short... */
    ssize_t n = crl_send(a->fds[0], a->data, SEND_ALL_LEN, 0);
    CHECK(n > 0 && n < SEND_ALL_LEN);
    unsigned char *drop = malloc((size_t)n);
    CHECK(drop != NULL);
    CHECK_EQ(crl_recv(a->fds[1], drop, (size_t)n, MSG_WAITALL), n);
    free(drop);
    /* ...one with MSG_WAITALL returns when every byte went, whatever the reader's pace. */
    CHECK_EQ(crl_spawn(s, slow_reader, a), 0);
    CHECK_EQ(crl_send(a->fds[0], a->data, SEND_ALL_LEN, MSG_WAITALL), SEND_ALL_LEN);
    return 0;
}

static int send_all_cancel_body(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, stuck_sender, arg), 0);
    CHECK_EQ(crl_sleep_ns(2 * CRL_MSEC_NS), 0);
    crl_scope_cancel(s);
    return 0;
}

/* A send with MSG_WAITALL completes only when all of it is sent; cancelled halfway (no
 * reader), it reports the bytes that went, which are exactly those the peer can read. */
TEST(send_waitall_sends_everything_or_reports_what_went)
{
    struct send_all a = {.data = malloc(SEND_ALL_LEN)};
    CHECK(a.data != NULL);
    for (size_t i = 0; i < SEND_ALL_LEN; i++)
        a.data[i] = (unsigned char)(i * 7 + i / 251);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a.fds), 0);
    int small = 4096;
    CHECK_EQ(setsockopt(a.fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    CHECK_EQ(crl_scope_run(send_all_body, &a), 0);

    a.sent = 0;
    CHECK_EQ(crl_scope_run(send_all_cancel_body, &a), 0);
    CHECK(a.sent > 0 && a.sent < SEND_ALL_LEN);
    ssize_t got = 0, n;
    while ((n = recv(a.fds[1], a.data, SEND_ALL_LEN, MSG_DONTWAIT)) > 0)
        got += n;
    CHECK_EQ(got, a.sent);
    CHECK_EQ(crl_close(a.fds[0]), 0);
    CHECK_EQ(crl_close(a.fds[1]), 0);
    free(a.data);
}

/* Files: open, pwrite and pread at offsets, fsync, close. */
TEST(file_read_write_at_offsets)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/corral-test-%d.dat", (int)getpid());
    int fd = crl_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK_EQ(crl_pwrite(fd, "0123456789", 10, 0), 10);
    CHECK_EQ(crl_pwrite(fd, "AB", 2, 4), 2);
    CHECK_EQ(crl_fsync(fd), 0);
    char buf[16] = {0};
    CHECK_EQ(crl_pread(fd, buf, 6, 2), 6);
    CHECK(memcmp(buf, "23AB67", 6) == 0);
    CHECK_EQ(crl_pread(fd, buf, 4, 10), 0); /* at the end */
    CHECK_EQ(crl_pread(fd, buf, 4, -1), -EINVAL);
    CHECK_EQ(crl_close(fd), 0);
    CHECK_EQ(crl_open("/nonexistent/corral", O_RDONLY, 0), -ENOENT);
    unlink(path);
}

struct poller {
    int fds[2];
    int revents;
};

static int wait_readable(void *arg)
{
    struct poller *p = arg;
    p->revents = crl_poll(p->fds[0], POLLIN);
    return 0;
}

static int poll_body(struct crl_scope *s, void *arg)
{
    struct poller *p = arg;
    CHECK_EQ(crl_spawn(s, wait_readable, p), 0);
    CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    CHECK_EQ(p->revents, -1);
    CHECK_EQ(crl_write(p->fds[1], "x", 1), 1);
    return 0;
}

/* Waiting for an arbitrary fd's readiness. */
TEST(poll_waits_for_readiness)
{
    struct poller p = {.revents = -1};
    CHECK_EQ(pipe(p.fds), 0);
    CHECK_EQ(crl_scope_run(poll_body, &p), 0);
    CHECK(p.revents & POLLIN);
    CHECK_EQ(crl_close(p.fds[0]), 0);
    CHECK_EQ(crl_close(p.fds[1]), 0);
}

/* More waiters made ready by one write than the io_uring backend's completion ring holds
 * (8192): every one is woken, however the kernel batches the completions or holds back
 * those the ring has no room for. */
enum { MANY_POLLERS = 10000 };

struct many_pollers {
    int fds[2];
    int waiting, woken;
};

static int wait_readable_and_count(void *arg)
{
    struct many_pollers *m = arg;
    m->waiting++;
    int revents = crl_poll(m->fds[0], POLLIN);
    m->woken += revents > 0 && (revents & POLLIN);
    return revents < 0 ? revents : 0;
}

static int many_pollers_body(struct crl_scope *s, void *arg)
{
    struct many_pollers *m = arg;
    for (int i = 0; i < MANY_POLLERS; i++)
        CHECK_EQ(crl_spawn(s, wait_readable_and_count, m), 0);
    while (m->waiting < MANY_POLLERS)
        crl_yield();
    CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0); /* every poll is in the kernel */
    CHECK_EQ(m->woken, 0);
    CHECK_EQ(crl_write(m->fds[1], "x", 1), 1);
    return 0;
}

TEST(completions_beyond_the_ring_all_arrive)
{
#if defined(__SANITIZE_THREAD__)
    TEST_SKIP("TSan counts every task as a thread, and stops at 8128");
#endif
    struct many_pollers m = {0};
    CHECK_EQ(pipe(m.fds), 0);
    CHECK_EQ(crl_scope_run(many_pollers_body, &m), 0);
    CHECK_EQ(m.woken, MANY_POLLERS);
    CHECK_EQ(crl_close(m.fds[0]), 0);
    CHECK_EQ(crl_close(m.fds[1]), 0);
}

struct blocked_read {
    int fds[2];
    char buf[8];
    ssize_t n;
};

static int read_forever(void *arg)
{
    struct blocked_read *b = arg;
    b->n = crl_read(b->fds[0], b->buf, sizeof b->buf);
    return 0;
}

static int cancel_read_body(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, read_forever, arg), 0);
    CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    crl_scope_cancel(s);
    return 0;
}

/* A read blocked on an empty pipe returns -ECANCELED when its scope is cancelled, and the
 * pipe is still usable after. */
TEST(blocked_read_is_cancelled)
{
    struct blocked_read b = {.n = 1};
    CHECK_EQ(pipe(b.fds), 0);
    CHECK_EQ(crl_scope_run(cancel_read_body, &b), 0);
    CHECK_EQ(b.n, -ECANCELED);
    CHECK_EQ(crl_write(b.fds[1], "after", 5), 5);
    char buf[8];
    CHECK_EQ(crl_read(b.fds[0], buf, sizeof buf), 5);
    CHECK_EQ(crl_close(b.fds[0]), 0);
    CHECK_EQ(crl_close(b.fds[1]), 0);
}

static int accept_forever(void *arg)
{
    int lfd = *(int *)arg;
    return crl_accept(lfd, NULL, NULL);
}

/* An accept with a deadline gives -ETIMEDOUT. */
TEST(accept_times_out)
{
    char addr[64];
    int lfd = test_listen_loopback(addr, sizeof addr);
    int64_t t0 = crl_now_ns();
    CHECK_EQ(crl_with_timeout(5 * CRL_MSEC_NS, accept_forever, &lfd), -ETIMEDOUT);
    CHECK_LT(crl_now_ns() - t0, 2 * CRL_SEC_NS);
    CHECK_EQ(crl_close(lfd), 0);
}

static int report_backend(void *arg)
{
    *(const char **)arg = crl_io_backend();
    return 0;
}

/* The config's backend wins over CORRAL_BACKEND, which wins over the default. */
TEST_PLAIN(config_backend_beats_environment)
{
    const char *env = getenv("CORRAL_BACKEND");
    char saved[16] = "";
    if (env)
        snprintf(saved, sizeof saved, "%s", env);
    const char *got = NULL, *uring_here = NULL;
    setenv("CORRAL_BACKEND", "uring", 1);
    CHECK_EQ(crl_run(NULL, report_backend, &uring_here), 0); /* io_uring, unless refused */
    struct crl_config epoll_cfg = {.backend = CRL_BACKEND_EPOLL};
    CHECK_EQ(crl_run(&epoll_cfg, report_backend, &got), 0);
    CHECK(strcmp(got, "epoll") == 0);
    setenv("CORRAL_BACKEND", "epoll", 1);
    CHECK_EQ(crl_run(NULL, report_backend, &got), 0);
    CHECK(strcmp(got, "epoll") == 0);
    struct crl_config uring_cfg = {.backend = CRL_BACKEND_URING};
    CHECK_EQ(crl_run(&uring_cfg, report_backend, &got), 0);
    CHECK(strcmp(got, uring_here) == 0);
    if (saved[0])
        setenv("CORRAL_BACKEND", saved, 1);
    else
        unsetenv("CORRAL_BACKEND");
}
