/* test_resolve.c - host names in "HOST:PORT": crl_resolve on the blocking pool (cancellable,
 * a late result freed when it comes), and crl_tcp_listen / crl_tcp_connect / crl_serve taking
 * names. A fake resolver (crl__resolve_hook) stands in for a slow or scripted name server:
 * there is no network here, only /etc/hosts and loopback. */
#include "../test.h"

#include "net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

/* ---- Fake resolvers ---------------------------------------------------------------------- */

static atomic_int hook_calls;

static int v4(struct sockaddr_storage *a, socklen_t *len, const char *ip, unsigned port)
{
    struct sockaddr_in *in = (struct sockaddr_in *)a;
    memset(a, 0, sizeof *a);
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &in->sin_addr);
    *len = sizeof *in;
    return 0;
}

/* Counts its calls and resolves every name to 127.0.0.1. */
static int counting_hook(const char *host, const char *port, struct sockaddr_storage *addrs,
                         socklen_t *lens, size_t max)
{
    atomic_fetch_add(&hook_calls, 1);
    v4(&addrs[0], &lens[0], "127.0.0.1", (unsigned)atoi(port));
    return 1;
}

/* Two addresses, in this order: first_ip then 127.0.0.1, both on the port asked. */
static const char *first_ip;
static unsigned first_port; /* 0: the port asked */

static int two_address_hook(const char *host, const char *port, struct sockaddr_storage *addrs,
                            socklen_t *lens, size_t max)
{
    unsigned p = (unsigned)atoi(port);
    v4(&addrs[0], &lens[0], first_ip, first_port ? first_port : p);
    if (max < 2)
        return 1;
    v4(&addrs[1], &lens[1], "127.0.0.1", p);
    return 2;
}

/* The counting resolver, its count back at 0 (the cases may share a process: NOFORK). */
static void use_counting_hook(void)
{
    atomic_store(&hook_calls, 0);
    crl__resolve_hook = counting_hook;
}

/* Blocks until released: a name server that takes its time. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int entered;
    bool released;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false};
static atomic_int slow_returned;

/* No hook, no count, the gate closed: every case starts as if alone in its process. */
void test_before_each(void)
{
    crl__resolve_hook = NULL;
    atomic_store(&hook_calls, 0);
    first_ip = NULL;
    first_port = 0;
    gate.entered = 0;
    gate.released = false;
    atomic_store(&slow_returned, 0);
}

static int slow_hook(const char *host, const char *port, struct sockaddr_storage *addrs,
                     socklen_t *lens, size_t max)
{
    pthread_mutex_lock(&gate.lock);
    gate.entered++;
    pthread_cond_broadcast(&gate.cond);
    while (!gate.released)
        pthread_cond_wait(&gate.cond, &gate.lock);
    pthread_mutex_unlock(&gate.lock);
    int rc = counting_hook(host, port, addrs, lens, max);
    atomic_fetch_add(&slow_returned, 1);
    return rc;
}

/* The slow resolver, its gate closed again: the cases of a file may run in one process
 * (CORRAL_TEST_NOFORK, the valgrind stage), after a case that opened it. */
static void use_slow_hook(void)
{
    pthread_mutex_lock(&gate.lock);
    gate.entered = 0;
    gate.released = false;
    pthread_mutex_unlock(&gate.lock);
    atomic_store(&slow_returned, 0);
    crl__resolve_hook = slow_hook;
}

static int gate_entered(void)
{
    pthread_mutex_lock(&gate.lock);
    int n = gate.entered;
    pthread_mutex_unlock(&gate.lock);
    return n;
}

static void gate_release(void)
{
    pthread_mutex_lock(&gate.lock);
    gate.released = true;
    pthread_cond_broadcast(&gate.cond);
    pthread_mutex_unlock(&gate.lock);
}

/* Wait (letting the core run) until the pool threads are in the slow hook n times. */
static void wait_entered(int n)
{
    for (int i = 0; i < 10000 && gate_entered() < n; i++)
        crl_sleep_ns(CRL_MSEC_NS);
    CHECK_EQ(gate_entered(), n);
}

/* Wait until every lookup record has been freed (a late one, when its result comes). */
static void wait_jobs_freed(void)
{
    for (int i = 0; i < 10000 && atomic_load(&crl__resolve_jobs_live) != 0; i++)
        crl_sleep_ns(CRL_MSEC_NS);
    CHECK_EQ(atomic_load(&crl__resolve_jobs_live), 0);
}

/* ---- Helpers ------------------------------------------------------------------------------ */

static unsigned port_of(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len;
    CHECK_EQ(crl_socket_local_addr(fd, &ss, &len), 0);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port); /* same offset in sockaddr_in6 */
}

static bool is_loopback(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24 == 127;
    return a->ss_family == AF_INET6 &&
           IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

/* Connect to addr and check a byte goes through to the listener lfd. */
static void check_connects(const char *addr, int lfd)
{
    int fd = crl_tcp_connect(addr, crl_now_ns() + 5 * CRL_SEC_NS);
    CHECK(fd >= 0);
    int afd = crl_accept(lfd, NULL, NULL);
    CHECK(afd >= 0);
    char ch = 'n', got = 0;
    CHECK_EQ(crl_write(fd, &ch, 1), 1);
    CHECK_EQ(crl_read(afd, &got, 1), 1);
    CHECK_EQ(got, 'n');
    crl_close(afd);
    crl_close(fd);
}

/* ---- Names that resolve ------------------------------------------------------------------- */

TEST(localhost_resolves_to_loopback_on_the_port_given)
{
    struct sockaddr_storage addrs[4];
    socklen_t lens[4];
    int n = crl_resolve("localhost:8080", addrs, lens, 4, crl_now_ns() + 5 * CRL_SEC_NS);
    CHECK_GE(n, 1);
    for (int i = 0; i < n; i++) {
        CHECK(is_loopback(&addrs[i]));
        CHECK_EQ(ntohs(((struct sockaddr_in *)&addrs[i])->sin_port), 8080);
        CHECK_EQ(lens[i], addrs[i].ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                        : sizeof(struct sockaddr_in6));
    }
    CHECK_EQ(atomic_load(&crl__resolve_jobs_live), 0);
}

TEST_PLAIN(resolve_outside_a_task_blocks_the_thread_and_works)
{
    struct sockaddr_storage addr;
    socklen_t len;
    CHECK_EQ(crl_resolve("localhost:80", &addr, &len, 1, CRL_NO_DEADLINE), 1);
    CHECK(is_loopback(&addr));
}

TEST(tcp_listen_and_connect_take_localhost)
{
    int lfd = crl_tcp_listen("localhost:0", NULL);
    CHECK(lfd >= 0);
    struct sockaddr_storage ss;
    socklen_t len;
    CHECK_EQ(crl_socket_local_addr(lfd, &ss, &len), 0);
    CHECK(is_loopback(&ss));
    char addr[64];
    snprintf(addr, sizeof addr, "localhost:%u", port_of(lfd));
    check_connects(addr, lfd);
    crl_close(lfd);
}

/* A name of /etc/hosts other than localhost, if it has one on loopback (the resolver reads
 * the file as it comes: nothing here edits it). */
static bool hosts_name_on_loopback(char *name, size_t cap, char *ip_out)
{
    FILE *f = fopen("/etc/hosts", "r");
    if (!f)
        return false;
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        char ip[64], host[256];
        if (sscanf(line, "%63s %255s", ip, host) == 2 && !strncmp(ip, "127.", 4) &&
            strcmp(host, "localhost") && strlen(host) < cap && !strchr(host, ':')) {
            snprintf(name, cap, "%s", host);
            snprintf(ip_out, 64, "%s", ip);
            found = true;
        }
    }
    fclose(f);
    return found;
}

TEST(a_name_from_etc_hosts_connects)
{
    char name[128], ip[64];
    if (!hosts_name_on_loopback(name, sizeof name, ip))
        TEST_SKIP("/etc/hosts names nothing on 127.x but localhost");
    char addr[200];
    snprintf(addr, sizeof addr, "%s:0", ip);
    int lfd = crl_tcp_listen(addr, NULL);
    CHECK(lfd >= 0);
    snprintf(addr, sizeof addr, "%s:%u", name, port_of(lfd));
    check_connects(addr, lfd);
    crl_close(lfd);
}

struct serve_fixture {
    struct crl_scope *scope;
    struct crl_event ready;
    unsigned port;
    int rc;
};

static void on_ready(void *ctx, const struct sockaddr *addr, socklen_t len)
{
    struct serve_fixture *f = ctx;
    f->port = ntohs(((const struct sockaddr_in *)addr)->sin_port);
    crl_event_set(&f->ready);
}

static int echo_byte(struct crl_conn *conn, void *ctx)
{
    char ch;
    if (crl_read(conn->fd, &ch, 1) == 1)
        crl_write(conn->fd, &ch, 1);
    return 0;
}

static int serve_body(struct crl_scope *s, void *arg)
{
    struct serve_fixture *f = arg;
    f->scope = s;
    struct crl_serve_opts o = {.on_ready = on_ready};
    f->rc = crl_serve("localhost:0", &o, echo_byte, f);
    crl_event_set(&f->ready);
    return 0;
}

static int run_server(void *arg) { return crl_scope_run(serve_body, arg); }

static int serve_client_body(struct crl_scope *s, void *arg)
{
    struct serve_fixture *f = arg;
    CHECK_EQ(crl_spawn(s, run_server, f), 0);
    CHECK_EQ(crl_event_wait(&f->ready), 0);
    CHECK_EQ(f->rc, 0);
    char addr[64];
    snprintf(addr, sizeof addr, "localhost:%u", f->port);
    int fd = crl_tcp_connect(addr, crl_now_ns() + 5 * CRL_SEC_NS);
    CHECK(fd >= 0);
    char ch = 's', got = 0;
    CHECK_EQ(crl_write(fd, &ch, 1), 1);
    CHECK_EQ(crl_read(fd, &got, 1), 1);
    CHECK_EQ(got, 's');
    crl_close(fd);
    crl_scope_cancel(f->scope);
    return 0;
}

TEST(serve_listens_on_localhost)
{
    struct serve_fixture f = {0};
    crl_event_init(&f.ready);
    CHECK_EQ(crl_scope_run(serve_client_body, &f), 0);
    CHECK_EQ(f.rc, 0);
}

/* ---- Several addresses -------------------------------------------------------------------- */

TEST(connect_tries_the_addresses_in_order_until_one_answers)
{
    int dead = crl_tcp_listen("127.0.0.1:0", NULL); /* a port nobody listens on, once closed */
    CHECK(dead >= 0);
    first_port = port_of(dead);
    crl_close(dead);
    first_ip = "127.0.0.1";
    crl__resolve_hook = two_address_hook;
    int lfd = crl_tcp_listen("127.0.0.1:0", NULL);
    CHECK(lfd >= 0);
    char addr[64];
    snprintf(addr, sizeof addr, "two.test:%u", port_of(lfd));
    check_connects(addr, lfd); /* the first is refused, the second answers */
    crl_close(lfd);
}

TEST(connect_returns_the_last_error_when_no_address_answers)
{
    int dead = crl_tcp_listen("127.0.0.1:0", NULL);
    CHECK(dead >= 0);
    unsigned port = port_of(dead);
    crl_close(dead);
    first_ip = "127.0.0.1";
    first_port = 0;
    crl__resolve_hook = two_address_hook;
    char addr[64];
    snprintf(addr, sizeof addr, "two.test:%u", port);
    CHECK_EQ(crl_tcp_connect(addr, crl_now_ns() + 5 * CRL_SEC_NS), -ECONNREFUSED);
}

TEST(listen_on_a_name_binds_its_first_address)
{
    first_ip = "127.0.0.2";
    first_port = 0;
    crl__resolve_hook = two_address_hook;
    int lfd = crl_tcp_listen("two.test:0", NULL);
    CHECK(lfd >= 0);
    struct sockaddr_storage ss;
    socklen_t len;
    CHECK_EQ(crl_socket_local_addr(lfd, &ss, &len), 0);
    CHECK_EQ(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), 0x7f000002);
    crl_close(lfd);
}

/* ---- Numeric addresses, bad input, names that do not resolve ------------------------------ */

TEST(numeric_addresses_never_reach_the_resolver)
{
    use_counting_hook();
    struct sockaddr_storage a;
    socklen_t len;
    CHECK_EQ(crl_resolve("127.0.0.1:80", &a, &len, 1, CRL_NO_DEADLINE), 1);
    CHECK_EQ(crl_resolve("[::1]:80", &a, &len, 1, CRL_NO_DEADLINE), 1);
    CHECK_EQ(a.ss_family, AF_INET6);
    int lfd = crl_tcp_listen("127.0.0.1:0", NULL);
    CHECK(lfd >= 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", port_of(lfd));
    check_connects(addr, lfd);
    crl_close(lfd);
    int ufd = crl_udp_bind("127.0.0.1:0");
    CHECK(ufd >= 0);
    crl_close(ufd);
    CHECK_EQ(atomic_load(&hook_calls), 0);
    CHECK_EQ(crl_resolve("some.name:80", &a, &len, 1, CRL_NO_DEADLINE), 1); /* a name does */
    CHECK_EQ(atomic_load(&hook_calls), 1);
}

TEST(malformed_addresses_are_einval)
{
    use_counting_hook();
    struct sockaddr_storage a;
    socklen_t len;
    const char *bad[] = {"localhost",   "localhost:",     "localhost:65536", "localhost:8o", ":80",
                         "bad host:80", "[localhost]:80", "a:b:80",          "localhost:-1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_EQ(crl_resolve(bad[i], &a, &len, 1, CRL_NO_DEADLINE), -EINVAL);
    CHECK_EQ(crl_resolve(NULL, &a, &len, 1, CRL_NO_DEADLINE), -EINVAL);
    CHECK_EQ(crl_resolve("localhost:80", &a, &len, 0, CRL_NO_DEADLINE), -EINVAL);
    CHECK_EQ(atomic_load(&hook_calls), 0);
}

TEST(an_unknown_name_fails_with_a_documented_error)
{
    struct sockaddr_storage a;
    socklen_t len;
    int64_t deadline = crl_now_ns() + 3 * CRL_SEC_NS; /* no network: a DNS try may hang */
    int rc = crl_resolve("no-such-host.invalid:80", &a, &len, 1, deadline);
    CHECK(rc == -ENOENT || rc == -EAGAIN || rc == -ETIMEDOUT);
    rc = crl_tcp_connect("no-such-host.invalid:80", crl_now_ns() + 3 * CRL_SEC_NS);
    CHECK(rc == -ENOENT || rc == -EAGAIN || rc == -ETIMEDOUT);
    wait_jobs_freed();
}

static int failing_hook(const char *host, const char *port, struct sockaddr_storage *addrs,
                        socklen_t *lens, size_t max)
{
    return -ENOENT;
}

TEST(a_lookup_error_is_returned_by_listen_and_connect)
{
    crl__resolve_hook = failing_hook;
    CHECK_EQ(crl_tcp_listen("nowhere.test:0", NULL), -ENOENT);
    CHECK_EQ(crl_tcp_connect("nowhere.test:80", CRL_NO_DEADLINE), -ENOENT);
    CHECK_EQ(crl_serve("nowhere.test:0", NULL, echo_byte, NULL), -ENOENT);
}

/* ---- Slow lookups: deadlines and cancellation --------------------------------------------- */

TEST(a_slow_lookup_past_its_deadline_times_out_and_is_freed_when_it_ends)
{
    use_slow_hook();
    struct sockaddr_storage a;
    socklen_t len;
    /* A deadline that passes while the lookup is still queued takes it off the queue (freed
     * at once); grow it until a pool thread has picked the lookup up by then. */
    for (int64_t wait = 10 * CRL_MSEC_NS; atomic_load(&crl__resolve_jobs_live) == 0; wait *= 2) {
        CHECK_LT(wait, 100 * CRL_SEC_NS);
        CHECK_EQ(crl_resolve("slow.test:80", &a, &len, 1, crl_now_ns() + wait), -ETIMEDOUT);
    }
    wait_entered(1);                          /* the one left running */
    CHECK_EQ(atomic_load(&slow_returned), 0); /* it returned before the lookup did */
    CHECK_EQ(atomic_load(&crl__resolve_jobs_live), 1);
    gate_release();
    wait_jobs_freed();
    CHECK_EQ(atomic_load(&slow_returned), 1);
}

TEST(connect_to_a_slow_name_times_out_at_its_deadline)
{
    use_slow_hook();
    CHECK_EQ(crl_tcp_connect("slow.test:80", crl_now_ns() + 20 * CRL_MSEC_NS), -ETIMEDOUT);
    CHECK_EQ(atomic_load(&slow_returned), 0);
    gate_release();
    wait_jobs_freed();
}

struct cancel_fixture {
    struct crl_scope *scope;
    int rc;
};

static int lookup_task(void *arg)
{
    struct cancel_fixture *f = arg;
    struct sockaddr_storage a;
    socklen_t len;
    f->rc = crl_resolve("slow.test:80", &a, &len, 1, CRL_NO_DEADLINE);
    return 0;
}

static int cancel_body(struct crl_scope *s, void *arg)
{
    struct cancel_fixture *f = arg;
    CHECK_EQ(crl_spawn(s, lookup_task, f), 0);
    wait_entered(1);
    crl_scope_cancel(s);
    return 0;
}

TEST(cancelling_the_scope_mid_lookup_returns_at_once)
{
    use_slow_hook();
    struct cancel_fixture f = {0};
    CHECK_EQ(crl_scope_run(cancel_body, &f), 0);
    CHECK_EQ(f.rc, -ECANCELED);
    CHECK_EQ(atomic_load(&slow_returned), 0);
    gate_release();
    wait_jobs_freed();
}

/* The result is back on the core's list, not yet taken in, when the caller is cancelled:
 * the core frees it when it takes it in. */
static int done_list_has_jobs(void)
{
    struct crl__core *c = crl__core();
    pthread_mutex_lock(&c->io->done_lock);
    bool some = c->io->done_jobs != NULL;
    pthread_mutex_unlock(&c->io->done_lock);
    return some;
}

static int cancel_after_result_body(struct crl_scope *s, void *arg)
{
    struct cancel_fixture *f = arg;
    CHECK_EQ(crl_spawn(s, lookup_task, f), 0);
    CHECK_EQ(crl_yield(), 0); /* the task submits its lookup and parks */
    gate_release();
    while (!done_list_has_jobs()) /* do not let the core run: it would take the result in */
        ;
    crl_scope_cancel(s);
    return 0;
}

TEST(cancelled_after_the_result_came_back_frees_it_on_the_core)
{
    use_slow_hook();
    struct cancel_fixture f = {0};
    CHECK_EQ(crl_scope_run(cancel_after_result_body, &f), 0);
    CHECK_EQ(f.rc, -ECANCELED);
    wait_jobs_freed();
}

/* With one pool thread busy, a second lookup waits in the queue: cancelling it takes it off
 * and frees it at once. */
static int queued_body(struct crl_scope *s, void *arg)
{
    struct cancel_fixture *f = arg;
    CHECK_EQ(crl_spawn(s, lookup_task, &f[0]), 0);
    wait_entered(1);
    CHECK_EQ(crl_spawn(s, lookup_task, &f[1]), 0);
    CHECK_EQ(crl_yield(), 0);
    CHECK_EQ(atomic_load(&crl__resolve_jobs_live), 2);
    crl_scope_cancel(s);
    CHECK_EQ(crl_yield(), -ECANCELED);
    CHECK_EQ(atomic_load(&crl__resolve_jobs_live), 1); /* the queued one, freed already */
    return 0;
}

static int queued_main(void *arg)
{
    struct cancel_fixture f[2] = {{0}, {0}};
    CHECK_EQ(crl_scope_run(queued_body, f), 0);
    CHECK_EQ(f[0].rc, -ECANCELED);
    CHECK_EQ(f[1].rc, -ECANCELED);
    CHECK_EQ(gate_entered(), 1);
    gate_release();
    wait_jobs_freed();
    return 0;
}

TEST_PLAIN(a_cancelled_lookup_still_queued_is_freed_at_once)
{
    use_slow_hook();
    struct crl_config cfg = {.offload_threads = 1};
    CHECK_EQ(crl_run(&cfg, queued_main, NULL), 0);
}

/* The runtime may end while an abandoned lookup still runs: its record is freed all the
 * same (by the pool thread, which crl_run waits for). */
static int abandon_body(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, lookup_task, arg), 0);
    wait_entered(1);
    crl_scope_cancel(s);
    return 0;
}

static int abandon_main(void *arg)
{
    struct cancel_fixture f = {0};
    CHECK_EQ(crl_scope_run(abandon_body, &f), 0);
    CHECK_EQ(f.rc, -ECANCELED);
    CHECK_EQ(atomic_load(&crl__resolve_jobs_live), 1);
    gate_release(); /* the lookup ends as the runtime does */
    return 0;
}

TEST_PLAIN(a_lookup_running_when_the_runtime_ends_is_freed)
{
    use_slow_hook();
    CHECK_EQ(crl_run(NULL, abandon_main, NULL), 0);
    CHECK_EQ(atomic_load(&crl__resolve_jobs_live), 0);
}

/* ---- Addresses as text ------------------------------------------------------------------- */

/* Parse text, format it back: the same text, and the same address parsed again. */
static void check_round_trip(const char *text)
{
    struct sockaddr_storage a, b;
    socklen_t alen, blen;
    char buf[64];
    CHECK_EQ(crl_parse_addr(text, &a, &alen), 0);
    int n = crl_format_addr((struct sockaddr *)&a, alen, buf, sizeof buf);
    CHECK_EQ(n, strlen(text));
    if (strcmp(buf, text) != 0)
        test_fail(__FILE__, __LINE__, "formatted \"%s\", want \"%s\"", buf, text);
    CHECK_EQ(crl_parse_addr(buf, &b, &blen), 0);
    CHECK_EQ(blen, alen);
    CHECK(memcmp(&a, &b, alen) == 0);
}

TEST_PLAIN(format_addr_is_the_inverse_of_parse_addr)
{
    check_round_trip("127.0.0.1:8080");
    check_round_trip("0.0.0.0:0");
    check_round_trip("255.255.255.255:65535");
    check_round_trip("[::1]:8080");
    check_round_trip("[::]:0");
    check_round_trip("[fd00::2]:443");
    check_round_trip("[2001:db8::ff00:42:8329]:1");
    check_round_trip("[::ffff:10.0.0.1]:80");
}

TEST_PLAIN(format_addr_into_a_buffer_too_small_is_enospc)
{
    struct sockaddr_storage a;
    socklen_t len;
    char buf[64];
    CHECK_EQ(crl_parse_addr("[::1]:8080", &a, &len), 0); /* 10 characters */
    CHECK_EQ(crl_format_addr((struct sockaddr *)&a, len, buf, 10), -ENOSPC);
    CHECK_EQ(buf[0], 0);
    CHECK_EQ(crl_format_addr((struct sockaddr *)&a, len, buf, 11), 10);
    CHECK_EQ(crl_parse_addr("1.2.3.4:5", &a, &len), 0);
    CHECK_EQ(crl_format_addr((struct sockaddr *)&a, len, buf, 9), -ENOSPC);
    CHECK_EQ(crl_format_addr((struct sockaddr *)&a, len, buf, 10), 9);
    /* The longest there is fits in 48 bytes. */
    CHECK_EQ(crl_parse_addr("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535", &a, &len), 0);
    CHECK_LT(crl_format_addr((struct sockaddr *)&a, len, buf, 48), 48);
}

TEST_PLAIN(format_addr_refuses_other_families_and_short_lengths)
{
    struct sockaddr_storage a;
    socklen_t len;
    char buf[64];
    CHECK_EQ(crl_parse_addr("[::1]:80", &a, &len), 0);
    CHECK_EQ(crl_format_addr((struct sockaddr *)&a, sizeof(struct sockaddr_in), buf, sizeof buf),
             -EINVAL);
    CHECK_EQ(crl_format_addr(NULL, len, buf, sizeof buf), -EINVAL);
    CHECK_EQ(crl_format_addr((struct sockaddr *)&a, len, buf, 0), -EINVAL);
    a.ss_family = AF_UNIX;
    CHECK_EQ(crl_format_addr((struct sockaddr *)&a, len, buf, sizeof buf), -EAFNOSUPPORT);
}

TEST(socket_local_name_tells_the_port_a_listener_got)
{
    int lfd = crl_tcp_listen("127.0.0.1:0", NULL);
    CHECK(lfd >= 0);
    char name[48], want[48];
    snprintf(want, sizeof want, "127.0.0.1:%u", port_of(lfd));
    CHECK_EQ(crl_socket_local_name(lfd, name, sizeof name), strlen(want));
    CHECK(strcmp(name, want) == 0);
    check_connects(name, lfd);
    crl_close(lfd);
    int l6 = crl_tcp_listen("[::1]:0", NULL);
    CHECK(l6 >= 0);
    CHECK_GE(crl_socket_local_name(l6, name, sizeof name), 6);
    CHECK(strncmp(name, "[::1]:", 6) == 0);
    check_connects(name, l6);
    crl_close(l6);
    CHECK_EQ(crl_socket_local_name(-1, name, sizeof name), -EBADF);
}
