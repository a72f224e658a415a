/* Cross-core channels: values arrive in order and exactly once across cores, both sides wait
 * and wake, close drains then fails, cancellation of a waiting side, misuse aborts. */
#define _GNU_SOURCE
#include "../test.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

struct flow {
    struct crl_xchan *ch;
    long count;       /* values each sender sends */
    long received;    /* by all receivers (written on the receiving core only) */
    long sum;         /* of the values received */
    bool in_order;    /* one sender: values came 0, 1, 2, ... */
    int recv_end;     /* what ended the receivers' loop */
    unsigned on_core; /* where the receivers ran */
};

static int sender(void *arg)
{
    struct flow *f = arg;
    for (long i = 0; i < f->count; i++)
        CHECK_EQ(crl_xchan_send(f->ch, &i), 0);
    return 0;
}

static int receiver(void *arg)
{
    struct flow *f = arg;
    f->on_core = crl_core_id();
    long v;
    int rc;
    while ((rc = crl_xchan_recv(f->ch, &v)) == 0) {
        if (v != f->received)
            f->in_order = false;
        f->received++;
        f->sum += v;
    }
    f->recv_end = rc;
    return 0;
}

static int senders_body(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, sender, arg), 0);
    return 0;
}

static int one_way_body(struct crl_scope *s, void *arg)
{
    struct flow *f = arg;
    CHECK_EQ(crl_spawn_on(s, 1, receiver, f), 0);
    CHECK_EQ(crl_scope_run(senders_body, f), 0); /* all sent */
    crl_xchan_close(f->ch);                      /* the receiver drains, then sees -EPIPE */
    return 0;
}

static int one_way(void *arg)
{
    struct flow *f = arg;
    CHECK_EQ(crl_xchan_create(&f->ch, sizeof(long), 64, 0, 1), 0);
    CHECK_EQ(crl_scope_run(one_way_body, f), 0);
    crl_xchan_destroy(f->ch);
    return 0;
}

/* 200 000 values through a 64-slot channel from core 0 to core 1: all arrive, in order (both
 * sides wait and wake many times), and the receiver sees -EPIPE after the last. */
TEST_PLAIN(xchan_carries_values_in_order_across_cores)
{
    TEST_NEED_CORES(2);
    struct flow f = {.count = test_slow_env() ? 20000 : 200000, .in_order = true};
    CHECK_EQ(crl_run(&(struct crl_config){.cores = 2}, one_way, &f), 0);
    CHECK_EQ(f.on_core, 1);
    CHECK_EQ(f.received, f.count);
    CHECK(f.in_order);
    CHECK_EQ(f.recv_end, -EPIPE);
}

enum { SENDERS = 3, RECEIVERS = 2, EACH = 5000 };

struct many {
    struct crl_xchan *ch;
    struct flow senders[SENDERS];
    struct flow receivers[RECEIVERS];
};

static int many_senders_body(struct crl_scope *s, void *arg)
{
    struct many *m = arg;
    for (int i = 0; i < SENDERS; i++)
        CHECK_EQ(crl_spawn(s, sender, &m->senders[i]), 0);
    return 0;
}

static int many_body(struct crl_scope *s, void *arg)
{
    struct many *m = arg;
    for (int i = 0; i < RECEIVERS; i++)
        CHECK_EQ(crl_spawn_on(s, 1, receiver, &m->receivers[i]), 0);
    CHECK_EQ(crl_scope_run(many_senders_body, m), 0);
    crl_xchan_close(m->ch);
    return 0;
}

static int many_main(void *arg)
{
    struct many *m = arg;
    CHECK_EQ(crl_xchan_create(&m->ch, sizeof(long), 16, 0, 1), 0);
    for (int i = 0; i < SENDERS; i++)
        m->senders[i] = (struct flow){.ch = m->ch, .count = EACH};
    for (int i = 0; i < RECEIVERS; i++)
        m->receivers[i] = (struct flow){.ch = m->ch};
    CHECK_EQ(crl_scope_run(many_body, m), 0);
    crl_xchan_destroy(m->ch);
    return 0;
}

/* Several tasks on each side: every value is received exactly once. */
TEST_PLAIN(xchan_many_tasks_per_side)
{
    TEST_NEED_CORES(2);
    struct many m;
    CHECK_EQ(crl_run(&(struct crl_config){.cores = 2}, many_main, &m), 0);
    long received = 0, sum = 0;
    for (int i = 0; i < RECEIVERS; i++) {
        received += m.receivers[i].received;
        sum += m.receivers[i].sum;
        CHECK_EQ(m.receivers[i].recv_end, -EPIPE);
    }
    CHECK_EQ(received, (long)SENDERS * EACH);
    CHECK_EQ(sum, (long)SENDERS * ((long)EACH * (EACH - 1) / 2));
}

static int blocked_sender(void *arg)
{
    struct flow *f = arg;
    long v = 7;
    CHECK_EQ(crl_xchan_send(f->ch, &v), 0);  /* fills the one slot */
    f->recv_end = crl_xchan_send(f->ch, &v); /* waits: full */
    return 0;
}

static int close_from_receiver(void *arg)
{
    struct flow *f = arg;
    CHECK_EQ(crl_sleep_ns(20 * CRL_MSEC_NS), 0); /* the sender is waiting by now */
    crl_xchan_close(f->ch);
    long v;
    CHECK_EQ(crl_xchan_recv(f->ch, &v), 0); /* what was sent before the close drains */
    CHECK_EQ(v, 7);
    CHECK_EQ(crl_xchan_recv(f->ch, &v), -EPIPE);
    return 0;
}

static int close_body(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, blocked_sender, arg), 0);
    CHECK_EQ(crl_spawn_on(s, 1, close_from_receiver, arg), 0);
    return 0;
}

static int close_main(void *arg)
{
    struct flow *f = arg;
    CHECK_EQ(crl_xchan_create(&f->ch, sizeof(long), 1, 0, 1), 0);
    CHECK_EQ(crl_scope_run(close_body, f), 0);
    crl_xchan_destroy(f->ch);
    return 0;
}

/* Closing from the receiving side wakes a sender waiting on the other core with -EPIPE. */
TEST_PLAIN(xchan_close_wakes_the_other_core)
{
    TEST_NEED_CORES(2);
    struct flow f = {0};
    CHECK_EQ(crl_run(&(struct crl_config){.cores = 2}, close_main, &f), 0);
    CHECK_EQ(f.recv_end, -EPIPE);
}

static int wait_cancelled(void *arg)
{
    struct flow *f = arg;
    long v;
    CHECK_EQ(crl_with_timeout(10 * CRL_MSEC_NS, receiver, f), -ETIMEDOUT);
    CHECK_EQ(f->recv_end, -ETIMEDOUT);                /* the wait ended with the deadline */
    CHECK_EQ(crl_xchan_try_recv(f->ch, &v), -EAGAIN); /* and the channel still works */
    return 0;
}

/* Same core on both sides, in one runtime: the blocking forms, try forms, a deadline on a
 * waiting receiver, and bad arguments. */
TEST(xchan_on_one_core)
{
    struct flow f = {.in_order = true};
    struct crl_xchan *bad;
    CHECK_EQ(crl_xchan_create(&bad, 0, 4, 0, 0), -EINVAL);
    CHECK_EQ(crl_xchan_create(&bad, 8, 4, 0, 1), -EINVAL);       /* one core only */
    CHECK_EQ(crl_xchan_create(&f.ch, sizeof(long), 3, 0, 0), 0); /* rounded up to 4 */
    long v = 1;
    for (int i = 0; i < 4; i++)
        CHECK_EQ(crl_xchan_try_send(f.ch, &v), 0);
    CHECK_EQ(crl_xchan_try_send(f.ch, &v), -EAGAIN);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(crl_xchan_try_recv(f.ch, &v), 0);
    CHECK_EQ(crl_xchan_try_recv(f.ch, &v), -EAGAIN);
    CHECK_EQ(wait_cancelled(&f), 0);
    crl_xchan_close(f.ch);
    CHECK_EQ(crl_xchan_try_send(f.ch, &v), -EPIPE);
    CHECK_EQ(crl_xchan_recv(f.ch, &v), -EPIPE);
    crl_xchan_destroy(f.ch);
}

static int same_core_body(struct crl_scope *s, void *arg)
{
    struct flow *f = arg;
    CHECK_EQ(crl_spawn(s, receiver, f), 0);
    CHECK_EQ(crl_scope_run(senders_body, f), 0);
    crl_xchan_close(f->ch);
    return 0;
}

static int same_core(void *arg)
{
    struct flow *f = arg;
    CHECK_EQ(crl_xchan_create(&f->ch, sizeof(long), 4, 0, 0), 0);
    CHECK_EQ(crl_scope_run(same_core_body, f), 0);
    crl_xchan_destroy(f->ch);
    return 0;
}

/* Both sides on one core of a one-core runtime, each waiting in turn for the other: a side
 * woken by a task of its own core wakes (the wake-up is not left for a loop that would first
 * find every task blocked and call it a deadlock). */
TEST_PLAIN(xchan_same_core_sides_wake_each_other)
{
    struct flow f = {.count = 1000, .in_order = true};
    CHECK_EQ(crl_run(&(struct crl_config){.cores = 1}, same_core, &f), 0);
    CHECK_EQ(f.received, f.count);
    CHECK(f.in_order);
    CHECK_EQ(f.recv_end, -EPIPE);
}

#ifndef NDEBUG
static int misuse(void *arg)
{
    (void)arg;
    struct crl_xchan *ch;
    CHECK_EQ(crl_xchan_create(&ch, sizeof(long), 4, 0, 1), 0);
    long v = 1;
    return crl_xchan_try_recv(ch, &v); /* core 0 is the sending side */
}

static void run_misuse(void *arg)
{
    (void)arg;
    crl_run(&(struct crl_config){.cores = 2}, misuse, NULL);
}
#endif

/* Receiving on the sending core aborts, naming the side and both cores. */
TEST_PLAIN(xchan_wrong_side_aborts)
{
#ifdef NDEBUG
    TEST_SKIP("ownership checks are compiled out of this build");
#else
    TEST_NEED_CORES(2);
    struct child_result r;
    test_in_child(run_misuse, NULL, &r);
    CHECK(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT);
    CHECK(strstr(r.err, "the receiving side of cross-core channel") != NULL);
    CHECK(strstr(r.err, "belongs to core 1 but was used from core 0") != NULL);
#endif
}
