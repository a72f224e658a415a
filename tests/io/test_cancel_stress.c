/* Cancellation racing completion, thousands of times: whatever the interleaving, an accepted
 * connection is returned (and closed by its caller) or never made, a read either returns its
 * bytes or -ECANCELED, and the process ends with the fds it began with. ASan watches that no
 * cancelled operation writes into a frame that has returned. */
#define _GNU_SOURCE
#include "../test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

enum { ROUNDS = 3000 };

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static unsigned next_rand(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

struct race {
    int lfd;
    char addr[64];
    int accepted, cancelled, connected;
    int accepted_though_cancelled; /* the race this test is for */
};

static int acceptor(void *arg)
{
    struct race *r = arg;
    int fd = crl_accept(r->lfd, NULL, NULL);
    if (fd >= 0) {
        r->accepted++;
        if (crl_checkpoint() == -ECANCELED)
            r->accepted_though_cancelled++;
        crl_close(fd); /* the call handed it over even if cancellation came meanwhile */
    } else {
        CHECK(fd == -ECANCELED);
        r->cancelled++;
    }
    return 0;
}

static int connector(void *arg)
{
    struct race *r = arg;
    int fd = crl_tcp_connect(r->addr, CRL_NO_DEADLINE);
    if (fd >= 0) {
        r->connected++;
        crl_close(fd);
    }
    return 0;
}

static int accept_round(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, acceptor, arg), 0);
    if (next_rand(2))
        CHECK_EQ(crl_spawn(s, connector, arg), 0);
    for (unsigned i = next_rand(4); i > 0; i--)
        crl_yield(); /* cancel at a different point of the race every round */
    crl_scope_cancel(s);
    return 0;
}

/* Cancelled accepts never leak the connection they may have accepted. */
TEST(cancelled_accepts_leak_nothing)
{
    int before = test_count_fds();
    struct race r = {0};
    r.lfd = test_listen_loopback(r.addr, sizeof r.addr);
    for (int i = 0; i < ROUNDS; i++)
        CHECK_EQ(crl_scope_run(accept_round, &r), 0);
    /* Connections made but never accepted wait in the backlog; take them now. */
    CHECK_EQ(crl_close(r.lfd), 0);
    CHECK_EQ(r.accepted + r.cancelled, ROUNDS);
    CHECK(r.accepted > 0);
    CHECK(r.cancelled > 0);
    CHECK_EQ(test_count_fds(), before);
    printf("  %s: %d accepted (%d of them after cancellation arrived), %d cancelled\n",
           crl_io_backend(), r.accepted, r.accepted_though_cancelled, r.cancelled);
}

struct reads {
    int fds[2];
    int got_bytes, got_cancel;
    size_t sent, received;
};

static int reader(void *arg)
{
    struct reads *r = arg;
    char buf[64]; /* the kernel writes here: it must be done before we return */
    ssize_t n = crl_read(r->fds[0], buf, sizeof buf);
    if (n > 0) {
        r->got_bytes++;
        r->received += (size_t)n;
    } else {
        CHECK_EQ(n, -ECANCELED);
        r->got_cancel++;
    }
    return 0;
}

static int writer(void *arg)
{
    struct reads *r = arg;
    ssize_t n = crl_write(r->fds[1], "x", 1);
    if (n == 1)
        r->sent++;
    else
        CHECK_EQ(n, -ECANCELED); /* cancelled before it wrote: nothing to count */
    return 0;
}

static int read_round(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, reader, arg), 0);
    if (next_rand(2))
        CHECK_EQ(crl_spawn(s, writer, arg), 0);
    for (unsigned i = next_rand(4); i > 0; i--)
        crl_yield();
    crl_scope_cancel(s);
    return 0;
}

/* Bytes read by a cancelled read are returned, never dropped: what was sent is what was
 * received, counting what is still in the pipe. */
TEST(cancelled_reads_lose_no_bytes)
{
    struct reads r = {0};
    CHECK_EQ(pipe(r.fds), 0);
    for (int i = 0; i < ROUNDS; i++)
        CHECK_EQ(crl_scope_run(read_round, &r), 0);
    CHECK_EQ(r.got_bytes + r.got_cancel, ROUNDS);
    CHECK(r.got_cancel > 0);
    char rest[ROUNDS];
    size_t left = r.sent - r.received;
    while (left) {
        ssize_t n = crl_read(r.fds[0], rest, sizeof rest);
        CHECK(n > 0);
        left -= (size_t)n;
    }
    CHECK_EQ(crl_close(r.fds[0]), 0);
    CHECK_EQ(crl_close(r.fds[1]), 0);
}
