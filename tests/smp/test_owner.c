/* Ownership checks (builds with assertions): an object used from a core other than its own
 * aborts with a message naming the object, its owner core and the offending core. */
#define _GNU_SOURCE
#include "../test.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int use_channel(void *arg)
{
    int v = 1;
    return crl_chan_try_send(arg, &v);
}

static int use_mutex(void *arg) { return crl_mutex_trylock(arg); }

static int make_and_misuse(void *arg)
{
    crl_task_fn *misuse = *(crl_task_fn **)arg;
    struct crl_chan ch;
    struct crl_mutex m;
    CHECK_EQ(crl_chan_init(&ch, sizeof(int), 4), 0);
    crl_mutex_init(&m);
    int v = 0;
    CHECK_EQ(crl_chan_try_send(&ch, &v), 0); /* core 0 is its owner */
    return crl_call(1, misuse, misuse == use_mutex ? (void *)&m : (void *)&ch);
}

static void run_misuse(void *arg)
{
    struct crl_config cfg = {.cores = 2};
    crl_run(&cfg, make_and_misuse, arg);
}

static struct crl_scope *scope_of_core0;

static int cancel_foreign_scope(void *arg)
{
    (void)arg;
    crl_scope_cancel(scope_of_core0);
    return 0;
}

/* A deadline is a timer of the scope's core's wheel: arming it from elsewhere is misuse. */
static int set_foreign_deadline(void *arg)
{
    (void)arg;
    crl_scope_set_deadline(scope_of_core0, crl_now_ns() + CRL_SEC_NS);
    return 0;
}

static int scope_body(struct crl_scope *s, void *arg)
{
    scope_of_core0 = s;
    return crl_call(1, arg, NULL);
}

static int misuse_scope(void *arg) { return crl_scope_run(scope_body, arg); }

static void run_scope_misuse(void *arg)
{
    struct crl_config cfg = {.cores = 2};
    crl_run(&cfg, misuse_scope, arg);
}

static const char *cannot_check(void)
{
#ifdef NDEBUG
    return "ownership checks are compiled out of this build";
#else
    return test_cannot_run_cores(2);
#endif
}

static void expect_abort(struct child_result *r, const char *what)
{
    if (!WIFSIGNALED(r->status))
        fprintf(stderr, "child status %#x, stderr:\n%s\n", r->status, r->err);
    CHECK(WIFSIGNALED(r->status));
    CHECK_EQ(WTERMSIG(r->status), SIGABRT);
    char want[128];
    snprintf(want, sizeof want, "corral: %s ", what);
    CHECK(strstr(r->err, want) != NULL);
    CHECK(strstr(r->err, "belongs to core 0 but was used from core 1") != NULL);
}

/* A channel made on core 0 and used on core 1 aborts the process, naming both cores. */
TEST_PLAIN(channel_used_from_another_core_aborts)
{
    const char *why = cannot_check();
    if (why)
        TEST_SKIP(why);
    crl_task_fn *misuse = use_channel;
    struct child_result r;
    test_in_child(run_misuse, &misuse, &r);
    expect_abort(&r, "channel");
}

/* The same for a mutex. */
TEST_PLAIN(mutex_used_from_another_core_aborts)
{
    const char *why = cannot_check();
    if (why)
        TEST_SKIP(why);
    crl_task_fn *misuse = use_mutex;
    struct child_result r;
    test_in_child(run_misuse, &misuse, &r);
    expect_abort(&r, "mutex");
}

/* And for a scope cancelled from another core. */
TEST_PLAIN(scope_cancelled_from_another_core_aborts)
{
    const char *why = cannot_check();
    if (why)
        TEST_SKIP(why);
    struct child_result r;
    test_in_child(run_scope_misuse, (void *)cancel_foreign_scope, &r);
    expect_abort(&r, "scope");
}

/* And for a scope's deadline (its timer) set from another core. */
TEST_PLAIN(scope_deadline_set_from_another_core_aborts)
{
    const char *why = cannot_check();
    if (why)
        TEST_SKIP(why);
    struct child_result r;
    test_in_child(run_scope_misuse, (void *)set_foreign_deadline, &r);
    expect_abort(&r, "scope");
}

/* ---- Sockets and listeners ---------------------------------------------------------------- */

static int close_fd(void *arg) { return crl_close(*(int *)arg); }

static int write_byte(void *arg)
{
    char c = 'x';
    return (int)crl_write(*(int *)arg, &c, 1);
}

static int adopt_and_write(void *arg)
{
    crl_fd_adopt(*(int *)arg);
    return write_byte(arg);
}

static int make_socket_and_misuse(void *arg)
{
    bool adopt = *(bool *)arg;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    CHECK_EQ(write_byte(&sv[0]), 1); /* core 0 owns sv[0] now */
    CHECK_EQ(crl_call(1, adopt ? adopt_and_write : write_byte, &sv[0]), 1);
    CHECK_EQ(crl_call(1, close_fd, &sv[0]), 0); /* core 1 owns it now: closes it */
    crl_close(sv[1]);
    return 0;
}

static void run_socket_misuse(void *arg)
{
    struct crl_config cfg = {.cores = 2};
    exit(crl_run(&cfg, make_socket_and_misuse, arg) == 0 ? 0 : 3);
}

/* A socket used from a core other than the one that first used it aborts, naming the fd. */
TEST_PLAIN(socket_used_from_another_core_aborts)
{
    const char *why = cannot_check();
    if (why)
        TEST_SKIP(why);
    bool adopt = false;
    struct child_result r;
    test_in_child(run_socket_misuse, &adopt, &r);
    expect_abort(&r, "fd");
}

/* Handed over with crl_fd_adopt, the same socket is the other core's to use and close. */
TEST_PLAIN(adopted_socket_moves_to_the_other_core)
{
    const char *why = cannot_check();
    if (why)
        TEST_SKIP(why);
    bool adopt = true;
    struct child_result r;
    test_in_child(run_socket_misuse, &adopt, &r);
    if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
        fprintf(stderr, "child status %#x, stderr:\n%s\n", r.status, r.err);
    CHECK(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
}

static int accept_on(void *arg) { return crl_listener_accept(arg); }

static int make_listener_and_misuse(void *arg)
{
    (void)arg;
    char addr[64];
    int lfd = test_listen_loopback(addr, sizeof addr);
    CHECK(lfd >= 0);
    struct crl_listener *l;
    CHECK_EQ(crl_listener_open(&l, lfd), 0);
    return crl_call(1, accept_on, l);
}

static void run_listener_misuse(void *arg)
{
    struct crl_config cfg = {.cores = 2};
    crl_run(&cfg, make_listener_and_misuse, arg);
}

/* A listener is its core's: accepting on it from another core aborts. */
TEST_PLAIN(listener_used_from_another_core_aborts)
{
    const char *why = cannot_check();
    if (why)
        TEST_SKIP(why);
    struct child_result r;
    test_in_child(run_listener_misuse, NULL, &r);
    expect_abort(&r, "listener");
}
