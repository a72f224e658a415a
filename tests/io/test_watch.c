/* Watches (io.h: crl__watch_start): readiness with no task waiting. The report comes exactly
 * once, with poll's revents when the fd is ready, -ECANCELED after a cancel, -EBADF when the
 * fd is closed; the I/O layer counts a watch in flight as any operation. */
#define _GNU_SOURCE
#include "../test.h"
#include "io/io.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

struct watch {
    struct crl__op op;
    int reports;
    int res;
    bool inside_start; /* the report came from inside crl__watch_start */
    bool starting;
};

static void on_report(struct crl__core *c, struct crl__op *op, int res)
{
    (void)c;
    struct watch *w = op->a.watch.arg;
    CHECK(op == &w->op);
    w->reports++;
    w->res = res;
    w->inside_start = w->starting;
}

static void start(struct watch *w, int fd, short events)
{
    *w = (struct watch){.starting = true};
    crl__watch_start(crl__core(), &w->op, fd, events, on_report, w);
    w->starting = false;
}

/* Let the loop run until w reports (the test's own task sleeps meanwhile), up to 2 s. */
static void await_report(struct watch *w)
{
    for (int i = 0; i < 2000 && !w->reports; i++)
        CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    CHECK_EQ(w->reports, 1);
}

static void pair(int sv[2]) { CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0); }

static void close_pair(int sv[2])
{
    crl_close(sv[0]);
    crl_close(sv[1]);
}

/* Bytes that arrive later make the watch report POLLIN, while no task waits on it. */
TEST(watch_reports_bytes_that_arrive_later)
{
    int sv[2];
    pair(sv);
    size_t pending = crl__core()->io->pending;
    struct watch w;
    start(&w, sv[0], POLLIN);
    CHECK_EQ(crl__core()->io->pending, pending + 1);
    CHECK_EQ(crl_sleep_ns(5 * CRL_MSEC_NS), 0);
    CHECK_EQ(w.reports, 0); /* nothing to read yet */
    CHECK_EQ(write(sv[1], "x", 1), 1);
    await_report(&w);
    CHECK(w.res > 0 && (w.res & POLLIN));
    CHECK_EQ(crl__core()->io->pending, pending);
    char b;
    CHECK_EQ(read(sv[0], &b, 1), 1); /* the watch took nothing */
    close_pair(sv);
}

/* An fd readable already is reported too (at once on epoll, from the ring on io_uring). */
TEST(watch_reports_an_fd_already_readable)
{
    int sv[2];
    pair(sv);
    CHECK_EQ(write(sv[1], "x", 1), 1);
    struct watch w;
    start(&w, sv[0], POLLIN);
    await_report(&w);
    CHECK(w.res & POLLIN);
    CHECK_EQ(crl_sleep_ns(2 * CRL_MSEC_NS), 0);
    CHECK_EQ(w.reports, 1); /* once, though the byte is still there */
    close_pair(sv);
}

/* The peer's end of stream is readiness as well: the reader sees 0 next. */
TEST(watch_reports_the_peers_close)
{
    int sv[2];
    pair(sv);
    struct watch w;
    start(&w, sv[0], POLLIN);
    CHECK_EQ(close(sv[1]), 0);
    await_report(&w);
    CHECK(w.res > 0 && (w.res & (POLLIN | POLLHUP)));
    char b;
    CHECK_EQ(read(sv[0], &b, 1), 0);
    crl_close(sv[0]);
}

/* A cancelled watch reports -ECANCELED, once; cancelling it again does nothing. */
TEST(cancelled_watch_reports_ecanceled_once)
{
    int sv[2];
    pair(sv);
    size_t pending = crl__core()->io->pending;
    struct watch w;
    start(&w, sv[0], POLLIN);
    crl__watch_cancel(crl__core(), &w.op);
    await_report(&w);
    CHECK_EQ(w.res, -ECANCELED);
    crl__watch_cancel(crl__core(), &w.op);
    CHECK_EQ(write(sv[1], "x", 1), 1);
    CHECK_EQ(crl_sleep_ns(5 * CRL_MSEC_NS), 0);
    CHECK_EQ(w.reports, 1);
    CHECK_EQ(crl__core()->io->pending, pending);
    close_pair(sv);
}

/* A watch reported already is not cancelled: its result stands. */
TEST(cancel_after_the_report_changes_nothing)
{
    int sv[2];
    pair(sv);
    CHECK_EQ(write(sv[1], "x", 1), 1);
    struct watch w;
    start(&w, sv[0], POLLIN);
    await_report(&w);
    crl__watch_cancel(crl__core(), &w.op);
    CHECK_EQ(crl_sleep_ns(2 * CRL_MSEC_NS), 0);
    CHECK_EQ(w.reports, 1);
    CHECK(w.res & POLLIN);
    close_pair(sv);
}

/* crl_close of the watched fd ends the watch with -EBADF. */
TEST(closing_the_fd_ends_its_watch_with_ebadf)
{
    int sv[2];
    pair(sv);
    struct watch w;
    start(&w, sv[0], POLLIN);
    CHECK_EQ(crl_close(sv[0]), 0);
    await_report(&w);
    CHECK_EQ(w.res, -EBADF);
    crl_close(sv[1]);
}

/* Many watches at once, each reporting its own fd: the connection records of a server. */
TEST(many_watches_report_their_own_fds)
{
    enum { N = 64 };
    static int sv[N][2];
    static struct watch w[N];
    for (int i = 0; i < N; i++) {
        pair(sv[i]);
        start(&w[i], sv[i][0], POLLIN);
    }
    for (int i = 0; i < N; i += 2)
        CHECK_EQ(write(sv[i][1], "x", 1), 1);
    for (int i = 0; i < N; i += 2)
        await_report(&w[i]);
    for (int i = 1; i < N; i += 2) {
        CHECK_EQ(w[i].reports, 0);
        crl__watch_cancel(crl__core(), &w[i].op);
        await_report(&w[i]);
        CHECK_EQ(w[i].res, -ECANCELED);
    }
    for (int i = 0; i < N; i++)
        close_pair(sv[i]);
}
