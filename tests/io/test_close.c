/* Closing an fd with tasks blocked on it: every blocking call on it ends with -EBADF (not a
 * cancellation: the task's scope goes on), and the file is really closed (the peer sees the
 * end of the stream, a closed listener refuses connections). */
#define _GNU_SOURCE
#include "../test.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

enum call { READ, READV, RECV, RECVFROM, POLL, WRITE, SEND, ACCEPT, LISTENER_ACCEPT, CONNECT };

struct blocked {
    enum call call;
    int fd;
    struct crl_listener *l;
    struct sockaddr_storage to; /* CONNECT */
    socklen_t tolen;
    ssize_t rc;
    bool sleep_after; /* after the call, sleep 1 ms instead of a crl_checkpoint() */
    int after;        /* what that returned */
    bool ended;
};

static char big[1 << 16]; /* what writers write and the peer drains into */

static ssize_t blocking_call(struct blocked *b)
{
    char buf[64];
    struct iovec iov = {buf, sizeof buf};
    switch (b->call) {
    case READ: return crl_read(b->fd, buf, sizeof buf);
    case READV: return crl_readv(b->fd, &iov, 1);
    case RECV: return crl_recv(b->fd, buf, sizeof buf, 0);
    case RECVFROM: return crl_recvfrom(b->fd, buf, sizeof buf, 0, NULL, NULL);
    case POLL: return crl_poll(b->fd, POLLIN);
    case WRITE: /* on until it blocks: a full buffer may free room as the peer's ACKs come */
        for (ssize_t n;;)
            if ((n = crl_write(b->fd, big, sizeof big)) <= 0)
                return n;
    case SEND:
        for (ssize_t n;;)
            if ((n = crl_send(b->fd, big, sizeof big, 0)) <= 0)
                return n;
    case ACCEPT: return crl_accept(b->fd, NULL, NULL);
    case LISTENER_ACCEPT: return crl_listener_accept(b->l);
    case CONNECT: return crl_connect(b->fd, (struct sockaddr *)&b->to, b->tolen);
    }
    return -EINVAL;
}

static int blocked_task(void *arg)
{
    struct blocked *b = arg;
    b->rc = blocking_call(b);
    b->after = b->sleep_after ? crl_sleep_ns(CRL_MSEC_NS) : crl_checkpoint();
    b->ended = true;
    return 0;
}

static int close_body(struct crl_scope *s, void *arg)
{
    struct blocked *b = arg;
    CHECK_EQ(crl_spawn(s, blocked_task, b), 0);
    CHECK_EQ(crl_sleep_ns(5 * CRL_MSEC_NS), 0);
    CHECK(!b->ended); /* it is blocked */
    CHECK_EQ(crl_close(b->fd), 0);
    for (int i = 0; i < 1000 && !b->ended; i++)
        CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    if (!b->ended)
        crl_scope_cancel(s); /* never woke: end the test with the check below, not a hang */
    return 0;
}

/* Block a task in b->call on b->fd, close b->fd from another task: the call ends with
 * -EBADF within a second, and the task is not cancelled. */
static void check_close_wakes(struct blocked *b)
{
    CHECK_EQ(crl_scope_run(close_body, b), 0);
    CHECK(b->ended);
    CHECK_EQ(b->rc, -EBADF);
    CHECK_EQ(b->after, 0);
}

static int drain(void *arg)
{
    ssize_t n;
    while ((n = crl_read(*(int *)arg, big, sizeof big)) > 0)
        ;
    return (int)n;
}

/* The peer's reads come to the end of the stream (0) within a second: the file is closed. */
static void check_peer_sees_eof(int fd)
{
    CHECK_EQ(crl_with_timeout(CRL_SEC_NS, drain, &fd), 0);
    CHECK_EQ(crl_close(fd), 0);
}

static void check_closed_on(enum call call)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    struct blocked b = {.call = call, .fd = sv[0]};
    check_close_wakes(&b);
    check_peer_sees_eof(sv[1]);
}

TEST(close_wakes_a_blocked_read_with_ebadf_and_the_peer_sees_eof) { check_closed_on(READ); }

TEST(close_wakes_a_blocked_readv_with_ebadf_and_the_peer_sees_eof) { check_closed_on(READV); }

TEST(close_wakes_a_blocked_poll_with_ebadf_and_the_peer_sees_eof) { check_closed_on(POLL); }

/* A connected TCP pair on loopback. */
static void tcp_pair(int fds[2])
{
    char addr[64];
    int lfd = test_listen_loopback(addr, sizeof addr);
    CHECK(lfd >= 0);
    fds[0] = crl_tcp_connect(addr, crl_now_ns() + CRL_SEC_NS);
    CHECK(fds[0] >= 0);
    fds[1] = crl_accept(lfd, NULL, NULL);
    CHECK(fds[1] >= 0);
    CHECK_EQ(crl_close(lfd), 0);
}

static void check_closed_on_tcp(enum call call)
{
    int fds[2];
    tcp_pair(fds);
    struct blocked b = {.call = call, .fd = fds[0]};
    check_close_wakes(&b);
    check_peer_sees_eof(fds[1]);
}

TEST(close_wakes_a_blocked_recv_on_tcp_with_ebadf_and_the_peer_sees_eof)
{
    check_closed_on_tcp(RECV);
}

TEST(close_wakes_a_blocked_recvfrom_on_tcp_with_ebadf_and_the_peer_sees_eof)
{
    check_closed_on_tcp(RECVFROM);
}

/* Fill fd's send buffer (and the peer's receive buffer) until a write would block; returns
 * how many bytes that took. */
static size_t fill(int fd)
{
    size_t total = 0;
    ssize_t n;
    while ((n = send(fd, big, sizeof big, MSG_DONTWAIT)) > 0)
        total += (size_t)n;
    CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
    return total;
}

static void check_closed_on_full_tcp(enum call call)
{
    int fds[2];
    tcp_pair(fds);
    fill(fds[0]);
    struct blocked b = {.call = call, .fd = fds[0]};
    check_close_wakes(&b);
    check_peer_sees_eof(fds[1]); /* what was sent before, then the end */
}

TEST(close_wakes_a_writer_blocked_on_a_full_buffer_with_ebadf) { check_closed_on_full_tcp(WRITE); }

TEST(close_wakes_a_sender_blocked_on_a_full_buffer_with_ebadf) { check_closed_on_full_tcp(SEND); }

/* A listener closed under a blocked accept refuses connections: it is really closed. */
static void check_refused(const char *addr)
{
    CHECK_EQ(crl_tcp_connect(addr, crl_now_ns() + CRL_SEC_NS), -ECONNREFUSED);
}

TEST(close_wakes_a_blocked_accept_with_ebadf_and_the_listener_is_closed)
{
    char addr[64];
    struct blocked b = {.call = ACCEPT, .fd = test_listen_loopback(addr, sizeof addr)};
    CHECK(b.fd >= 0);
    check_close_wakes(&b);
    check_refused(addr);
}

/* On io_uring the standing accept is a multishot op in the kernel: closing the fd ends it. */
TEST(close_wakes_a_blocked_listener_accept_with_ebadf_and_the_listener_is_closed)
{
    char addr[64];
    struct blocked b = {.call = LISTENER_ACCEPT, .fd = test_listen_loopback(addr, sizeof addr)};
    CHECK(b.fd >= 0);
    CHECK_EQ(crl_listener_open(&b.l, b.fd), 0);
    check_close_wakes(&b);
    check_refused(addr);
    CHECK_EQ(crl_listener_accept(b.l), -EBADF); /* and stays so: it does not accept again */
    crl_listener_close(b.l);
}

/* A listener whose accept queue is full drops SYNs: a connect to it waits (retransmitting). */
TEST(close_wakes_a_blocked_connect_with_ebadf)
{
    char addr[64];
    int lfd = test_listen_loopback(addr, sizeof addr);
    CHECK_EQ(listen(lfd, 0), 0);
    struct blocked b = {.call = CONNECT};
    CHECK_EQ(crl_parse_addr(addr, &b.to, &b.tolen), 0);
    int fill[2];
    for (int i = 0; i < 2; i++) { /* the queue holds one; without waiting for either */
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        CHECK(fill[i] >= 0);
        CHECK(connect(fill[i], (struct sockaddr *)&b.to, b.tolen) == 0 || errno == EINPROGRESS);
    }
    CHECK_EQ(crl_sleep_ns(2 * CRL_MSEC_NS), 0);
    b.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(b.fd >= 0);
    check_close_wakes(&b);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(crl_close(fill[i]), 0);
    CHECK_EQ(crl_close(lfd), 0);
}

static int listener_accept(void *arg) { return crl_listener_accept(arg); }

/* A listener closed with no task waiting in it: the next accept says -EBADF. */
TEST(listener_accept_after_its_fd_was_closed_says_ebadf)
{
    char addr[64];
    int lfd = test_listen_loopback(addr, sizeof addr);
    CHECK(lfd >= 0);
    struct crl_listener *l;
    CHECK_EQ(crl_listener_open(&l, lfd), 0);
    CHECK_EQ(crl_sleep_ns(2 * CRL_MSEC_NS), 0); /* the standing accept reaches the kernel */
    CHECK_EQ(crl_close(lfd), 0);
    CHECK_EQ(crl_with_timeout(CRL_SEC_NS, listener_accept, l), -EBADF);
    check_refused(addr);
    crl_listener_close(l);
}

static int two_body(struct crl_scope *s, void *arg)
{
    struct blocked *b = arg;
    CHECK_EQ(crl_spawn(s, blocked_task, &b[1]), 0);
    return close_body(s, &b[0]);
}

/* Two tasks blocked on one fd (a reader and a poller) both wake; neither is cancelled. */
TEST(close_wakes_every_task_blocked_on_the_fd)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    struct blocked b[2] = {{.call = READ, .fd = sv[0]}, {.call = POLL, .fd = sv[0]}};
    CHECK_EQ(crl_scope_run(two_body, b), 0);
    for (int i = 0; i < 2; i++) {
        CHECK(b[i].ended);
        CHECK_EQ(b[i].rc, -EBADF);
        CHECK_EQ(b[i].after, 0);
    }
    check_peer_sees_eof(sv[1]);
}

/* The task woken by the close goes on blocking as usual: its scope was not cancelled. */
TEST(close_does_not_cancel_the_blocked_task)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    struct blocked b = {.call = READ, .fd = sv[0], .sleep_after = true};
    check_close_wakes(&b);
    CHECK_EQ(crl_close(sv[1]), 0);
}

/* ---- An fd number closed with close(2) behind corral's back and reused ------------------ */

struct reader {
    int fd;
    bool recv; /* crl_recv (which keeps the input's drained state) rather than crl_read */
    char got[8];
    ssize_t n;
};

static int read_once(void *arg)
{
    struct reader *r = arg;
    r->n = r->recv ? crl_recv(r->fd, r->got, sizeof r->got, 0)
                   : crl_read(r->fd, r->got, sizeof r->got);
    return 0;
}

static int read_bounded(void *arg) { return crl_with_timeout(CRL_SEC_NS, read_once, arg); }

struct wait_then_write {
    struct reader r;
    int peer;
};

static int wait_then_write_body(struct crl_scope *s, void *arg)
{
    struct wait_then_write *w = arg;
    CHECK_EQ(crl_spawn(s, read_bounded, &w->r), 0);
    CHECK_EQ(crl_sleep_ns(5 * CRL_MSEC_NS), 0); /* the read blocks: the fd is registered */
    CHECK_EQ(w->r.n, -1);
    CHECK_EQ(write(w->peer, "hi", 2), 2);
    return 0;
}

/* A read on fd blocks until the peer writes "hi", and wakes with it (within a second). */
static void check_read_wakes(int fd, int peer, bool recv)
{
    struct wait_then_write w = {.r = {.fd = fd, .recv = recv, .n = -1}, .peer = peer};
    CHECK_EQ(crl_scope_run(wait_then_write_body, &w), 0);
    CHECK_EQ(w.r.n, 2);
    CHECK(memcmp(w.r.got, "hi", 2) == 0);
}

static void plain_pair(int sv[2])
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

/* Socket A is used (registered with epoll), closed with close(2); socket B gets its number:
 * a read on B still wakes when B's peer writes. */
TEST(read_on_a_reused_fd_number_wakes_after_a_plain_close)
{
    int a[2], b[2];
    plain_pair(a);
    check_read_wakes(a[0], a[1], false);
    close(a[0]);
    close(a[1]);
    plain_pair(b);
    CHECK_EQ(b[0], a[0]);
    check_read_wakes(b[0], b[1], false);
    CHECK_EQ(crl_close(b[0]), 0);
    CHECK_EQ(crl_close(b[1]), 0);
}

/* The same when A's last receive came up short (epoll then waits for an edge before trying
 * again) and B's data is there before the receive. */
TEST(recv_on_a_reused_fd_number_finds_data_already_there)
{
    int a[2], b[2];
    plain_pair(a);
    check_read_wakes(a[0], a[1], true); /* 2 bytes of 8: short */
    close(a[0]);
    close(a[1]);
    plain_pair(b);
    CHECK_EQ(b[0], a[0]);
    CHECK_EQ(write(b[1], "hi", 2), 2);
    struct reader r = {.fd = b[0], .recv = true, .n = -1};
    CHECK_EQ(read_bounded(&r), 0);
    CHECK_EQ(r.n, 2);
    CHECK_EQ(crl_close(b[0]), 0);
    CHECK_EQ(crl_close(b[1]), 0);
}

/* A's number was closed while a dup kept A's file open (so epoll keeps A's registration,
 * keyed by number and file): B on that number still wakes, and A's events do not wake B. */
TEST(read_on_a_reused_fd_number_wakes_while_a_dup_keeps_the_old_file)
{
    int a[2], b[2];
    plain_pair(a);
    check_read_wakes(a[0], a[1], false);
    int keep = fcntl(a[0], F_DUPFD_CLOEXEC, 100);
    CHECK(keep >= 0);
    int num = a[0];
    close(a[0]);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, b), 0);
    CHECK_EQ(b[0], num);
    CHECK_EQ(write(a[1], "xx", 2), 2); /* A's file gets data: nothing for B's reader */
    check_read_wakes(b[0], b[1], false);
    close(keep);
    close(a[1]);
    CHECK_EQ(crl_close(b[0]), 0);
    CHECK_EQ(crl_close(b[1]), 0);
}

/* A had a writer's interest too (it was blocked on a full buffer, then woken): B on A's
 * number is read as usual. */
static int write_big(void *arg)
{
    return crl_write_all(*(int *)arg, big, sizeof big) == (ssize_t)sizeof big ? 0 : -EIO;
}

static int write_interest_body(struct crl_scope *s, void *arg)
{
    int *a = arg;
    size_t left = fill(a[0]) + sizeof big;
    CHECK_EQ(crl_spawn(s, write_big, &a[0]), 0);
    CHECK_EQ(crl_sleep_ns(5 * CRL_MSEC_NS), 0); /* the writer blocks: registered */
    static char sink[1 << 16];
    while (left) {
        ssize_t n = crl_read(a[1], sink, sizeof sink);
        CHECK(n > 0);
        left -= (size_t)n;
    }
    return 0;
}

TEST(read_on_a_reused_fd_number_of_a_writer_wakes_after_a_plain_close)
{
    int a[2], b[2];
    plain_pair(a);
    CHECK_EQ(crl_scope_run(write_interest_body, a), 0);
    close(a[0]);
    close(a[1]);
    plain_pair(b);
    CHECK_EQ(b[0], a[0]);
    check_read_wakes(b[0], b[1], false);
    CHECK_EQ(crl_close(b[0]), 0);
    CHECK_EQ(crl_close(b[1]), 0);
}
