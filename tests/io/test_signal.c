/* Awaiting signals: a task receives a signal sent to the process; cancelled, it gives up
 * the wait and its signalfd. */
#define _GNU_SOURCE
#include "../test.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>

struct waiter {
    sigset_t set;
    int got;
};

static int wait_signal(void *arg)
{
    struct waiter *w = arg;
    w->got = crl_signal_wait(&w->set);
    return 0;
}

static int send_later(void *arg)
{
    (void)arg;
    CHECK_EQ(crl_sleep_ns(2 * CRL_MSEC_NS), 0);
    CHECK_EQ(kill(getpid(), SIGUSR1), 0);
    return 0;
}

static int signal_body(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, wait_signal, arg), 0);
    CHECK_EQ(crl_spawn(s, send_later, arg), 0);
    return 0;
}

/* SIGUSR1 sent to the process is delivered to the waiting task, not to its default action. */
TEST(signal_wait_receives_signal)
{
    struct waiter w = {.got = 0};
    sigemptyset(&w.set);
    sigaddset(&w.set, SIGUSR1);
    CHECK_EQ(crl_scope_run(signal_body, &w), 0);
    CHECK_EQ(w.got, SIGUSR1);
}

static int cancel_wait_body(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, wait_signal, arg), 0);
    CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    crl_scope_cancel(s);
    return 0;
}

/* A cancelled wait returns -ECANCELED and closes its signalfd. */
TEST(signal_wait_cancelled)
{
    struct waiter w = {.got = 0};
    sigemptyset(&w.set);
    sigaddset(&w.set, SIGUSR2);
    int before = test_count_fds();
    CHECK_EQ(crl_scope_run(cancel_wait_body, &w), 0);
    CHECK_EQ(w.got, -ECANCELED);
    CHECK_EQ(test_count_fds(), before);
}
