/* fd exhaustion: an accepting server backs off instead of spinning while accept fails with
 * EMFILE, and serves again as soon as fds are freed. Attempts are counted, not timed. */
#define _GNU_SOURCE
#include "../test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum { CLIENTS = 3, MAX_FILLERS = 4096 };

struct server {
    int lfd;
    struct crl_listener *listener; /* NULL: crl_accept */
    int accepted;
    int fillers[MAX_FILLERS];
    int nfillers;
};

static int acceptor(void *arg)
{
    struct server *sv = arg;
    while (sv->accepted < CLIENTS) {
        int fd = sv->listener ? crl_listener_accept(sv->listener) : crl_accept(sv->lfd, NULL, NULL);
        CHECK(fd >= 0);
        sv->accepted++;
        CHECK_EQ(crl_close(fd), 0);
    }
    return 0;
}

static int exhausted_body(struct crl_scope *s, void *arg)
{
    struct server *sv = arg;
    struct crl_stats before, during;
    crl_stats_get(&before);
    CHECK_EQ(crl_spawn(s, acceptor, sv), 0);
    CHECK_EQ(crl_sleep_ns(60 * CRL_MSEC_NS), 0);
    crl_stats_get(&during);
    uint64_t attempts = during.accept_calls - before.accept_calls;
    CHECK_EQ(sv->accepted, 0);
    CHECK(during.accept_emfile > before.accept_emfile);
    /* Backing off 1, 2, 4, ... ms, 60 ms allow about 7 attempts; a spinning loop would make
     * thousands. */
    CHECK_LT(attempts, 12);
    CHECK_GE(attempts, 2);
    for (int i = 0; i < sv->nfillers; i++)
        CHECK_EQ(crl_close(sv->fillers[i]), 0); /* wakes the acceptor at once */
    sv->nfillers = 0;
    return 0;
}

static void exhaust_then_serve(bool use_listener)
{
    struct server sv = {0};
    char addr[64];
    sv.lfd = test_listen_loopback(addr, sizeof addr);
    int clients[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        clients[i] = crl_tcp_connect(addr, CRL_NO_DEADLINE); /* queued in the backlog */
        CHECK(clients[i] >= 0);
    }
    struct rlimit old, low;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 256;
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fd;
    while ((fd = dup(0)) >= 0) { /* use up every fd below the limit */
        CHECK(sv.nfillers < MAX_FILLERS);
        sv.fillers[sv.nfillers++] = fd;
    }
    CHECK_EQ(errno, EMFILE);
    if (use_listener)
        CHECK_EQ(crl_listener_open(&sv.listener, sv.lfd), 0);
    CHECK_EQ(crl_scope_run(exhausted_body, &sv), 0);
    CHECK_EQ(sv.accepted, CLIENTS);
    if (use_listener)
        crl_listener_close(sv.listener);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    for (int i = 0; i < CLIENTS; i++)
        CHECK_EQ(crl_close(clients[i]), 0);
    CHECK_EQ(crl_close(sv.lfd), 0);
}

/* Out of fds, accept waits (a handful of attempts, not a spin); freed fds restart service. */
TEST(accept_backs_off_on_emfile_and_resumes)
{
    if (test_under_valgrind())
        TEST_SKIP("valgrind keeps fds below the limit for itself");
    exhaust_then_serve(false);
}

/* The same through a listener's standing accept. */
TEST(listener_backs_off_on_emfile_and_resumes)
{
    if (test_under_valgrind())
        TEST_SKIP("valgrind keeps fds below the limit for itself");
    exhaust_then_serve(true);
}
