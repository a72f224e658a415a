/* Operations with a deadline (io.h: crl__op_run_until, crl__op_pair_until): an operation
 * that outlives its deadline ends with -ETIMEDOUT, one that completes in time keeps its
 * result, and one timer serves a sequence of operations. */
#define _GNU_SOURCE
#include "../test.h"
#include "io/io.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int64_t in_ms(int64_t ms) { return crl_now_ns() + ms * CRL_MSEC_NS; }

static int recv_until(struct crl__op_timer *t, int fd, char *buf, size_t len, int64_t deadline)
{
    struct crl__op op = {.kind = CRL__OP_RECV, .fd = fd, .a.rw = {buf, len}};
    return crl__op_run_until(t, &op, deadline);
}

/* A receive from a silent peer is cancelled at its deadline: -ETIMEDOUT. */
TEST(receive_past_its_deadline_times_out)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct crl__op_timer t;
    crl__op_timer_init(&t);
    char buf[8];
    int64_t start = crl_now_ns();
    CHECK_EQ(recv_until(&t, sv[0], buf, sizeof buf, in_ms(20)), -ETIMEDOUT);
    CHECK_GE(crl_now_ns() - start, 20 * CRL_MSEC_NS);
    crl__op_timer_fini(&t);
    crl_close(sv[0]);
    crl_close(sv[1]);
}

/* The timer stays armed for an early deadline between operations, yet a later operation
 * with a later deadline (or none) completes: the early firing only moves the timer on. */
TEST(timer_serves_a_sequence_of_operations)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct crl__op_timer t;
    crl__op_timer_init(&t);
    char buf[8];
    CHECK_EQ(write(sv[1], "a", 1), 1);
    CHECK_EQ(recv_until(&t, sv[0], buf, sizeof buf, in_ms(10)), 1); /* armed for 10 ms */
    CHECK_EQ(crl_sleep_ns(20 * CRL_MSEC_NS), 0);                    /* it fires, idle */
    CHECK_EQ(write(sv[1], "b", 1), 1);
    CHECK_EQ(recv_until(&t, sv[0], buf, sizeof buf, CRL_NO_DEADLINE), 1);
    CHECK_EQ(buf[0], 'b');
    CHECK_EQ(recv_until(&t, sv[0], buf, sizeof buf, in_ms(15)), -ETIMEDOUT);
    crl__op_timer_fini(&t);
    crl_close(sv[0]);
    crl_close(sv[1]);
}

/* A send and the receive of its answer: the receive's deadline fires, the send made it. */
TEST(pair_times_out_the_receive_after_the_send)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct crl__op_timer t;
    crl__op_timer_init(&t);
    char buf[8];
    struct crl__op send = {.kind = CRL__OP_SEND,
                           .fd = sv[0],
                           .flags = MSG_NOSIGNAL | MSG_WAITALL,
                           .a.rw = {"ping", 4}};
    struct crl__op recv = {.kind = CRL__OP_RECV, .fd = sv[0], .a.rw = {buf, sizeof buf}};
    int w = 0, n = 0;
    CHECK_EQ(crl__op_pair_until(&t, &send, in_ms(10), &recv, in_ms(30), &w, &n), 0);
    CHECK_EQ(w, 4);
    CHECK_EQ(n, -ETIMEDOUT);
    CHECK(t.fired);
    CHECK_EQ(read(sv[1], buf, sizeof buf), 4);
    CHECK(memcmp(buf, "ping", 4) == 0);
    crl__op_timer_fini(&t);
    crl_close(sv[0]);
    crl_close(sv[1]);
}

/* The answer arrives in time: both results, and no deadline fired. */
TEST(pair_returns_both_results)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CHECK_EQ(write(sv[1], "pong", 4), 4);
    struct crl__op_timer t;
    crl__op_timer_init(&t);
    char buf[8];
    struct crl__op send = {.kind = CRL__OP_SEND,
                           .fd = sv[0],
                           .flags = MSG_NOSIGNAL | MSG_WAITALL,
                           .a.rw = {"ping", 4}};
    struct crl__op recv = {.kind = CRL__OP_RECV, .fd = sv[0], .a.rw = {buf, sizeof buf}};
    int w = 0, n = 0;
    CHECK_EQ(crl__op_pair_until(&t, &send, in_ms(1000), &recv, in_ms(2000), &w, &n), 0);
    CHECK_EQ(w, 4);
    CHECK_EQ(n, 4);
    CHECK(!t.fired);
    CHECK(memcmp(buf, "pong", 4) == 0);
    crl__op_timer_fini(&t);
    crl_close(sv[0]);
    crl_close(sv[1]);
}

enum { BIG = 1 << 20 }; /* far more than a socket buffer */

/* The peer reads the whole of BIG after a while: a slow reader. */
static int slow_reader(void *arg)
{
    int fd = *(int *)arg;
    CHECK_EQ(crl_sleep_ns(60 * CRL_MSEC_NS), 0);
    static char sink[65536];
    size_t got = 0;
    while (got < BIG) {
        ssize_t n = crl_read(fd, sink, sizeof sink);
        CHECK(n > 0);
        got += (size_t)n;
    }
    return 0;
}

static int pair_with_slow_reader(struct crl_scope *s, void *arg)
{
    int *sv = arg;
    CHECK_EQ(crl_spawn(s, slow_reader, &sv[1]), 0);
    static char big[BIG];
    struct crl__op_timer t;
    crl__op_timer_init(&t);
    char buf[8];
    struct crl__op send = {.kind = CRL__OP_SEND,
                           .fd = sv[0],
                           .flags = MSG_NOSIGNAL | MSG_WAITALL,
                           .a.rw = {big, sizeof big}};
    struct crl__op recv = {.kind = CRL__OP_RECV, .fd = sv[0], .a.rw = {buf, sizeof buf}};
    int w = 0, n = 0;
    CHECK_EQ(crl__op_pair_until(&t, &send, in_ms(5000), &recv, in_ms(10), &w, &n), 0);
    CHECK_EQ(n, -ETIMEDOUT); /* nothing to read by its deadline */
    CHECK_EQ(w, BIG);        /* the send went on, all of it, within its own deadline */
    crl__op_timer_fini(&t);
    return 0;
}

/* The receive's deadline passes while the send is still on its way (the peer reads slowly):
 * the send is not cut short, it has until its own deadline. */
TEST(pair_receive_deadline_leaves_the_send_its_own)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CHECK_EQ(crl_scope_run(pair_with_slow_reader, sv), 0);
    crl_close(sv[0]);
    crl_close(sv[1]);
}
