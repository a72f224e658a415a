/* crl_serve: connections are served on the cores the balance mode says, a stopping server
 * lets busy connections finish and ends idle ones, the drain deadline cancels stragglers,
 * max_conns holds connections back, and nothing leaks. */
#define _GNU_SOURCE
#include "../test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

struct fixture {
    struct crl_serve_opts opts;
    char addr[80];
    struct crl_event ready;
    int serve_rc;
    int per_core[4];   /* connections each core served (written by core 0 only) */
    int64_t hold_ns;   /* how long the connection function works on a request */
    int fn_rc;         /* last result seen by a connection function, for drain tests */
    bool ignore_drain; /* the connection function waits forever, deaf to draining */
    struct crl_scope *server_scope;
    crl_conn_fn *fn;    /* the connection function: echo_core when NULL */
    int64_t idle_ns;    /* echo_parked: the idle deadline after each request, 0 none */
    int served;         /* echo_parked: requests answered, over every connection */
    int calls[4];       /* echo_parked: calls by conn->wake */
    int64_t expired_ns; /* echo_parked: how long the last expired connection idled */
    int received_wakes; /* echo_received: wake-ups that brought bytes in conn->received */
};

static void on_ready(void *ctx, const struct sockaddr *addr, socklen_t len)
{
    struct fixture *f = ctx;
    (void)len;
    char host[64];
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)addr;
    CHECK_EQ(addr->sa_family, AF_INET);
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    snprintf(f->addr, sizeof f->addr, "%s:%u", host, ntohs(v4->sin_port));
    crl_event_set(&f->ready);
}

/* Request: one byte. Reply: the serving core's id. Idle between requests. */
static int echo_core(struct crl_conn *conn, void *ctx)
{
    struct fixture *f = ctx;
    CHECK_EQ(conn->core, crl_core_id());
    CHECK(conn->peer_len > 0);
    for (;;) {
        char byte;
        crl_conn_set_idle(conn, true);
        ssize_t n = crl_read(conn->fd, &byte, 1);
        crl_conn_set_idle(conn, false);
        if (n <= 0)
            return (int)n;
        if (f->ignore_drain) {
            f->fn_rc = crl_sleep_ns(10 * CRL_SEC_NS);
            return f->fn_rc;
        }
        if (f->hold_ns)
            CHECK_EQ(crl_sleep_ns(f->hold_ns), 0); /* busy: a drain lets this finish */
        char id = (char)('0' + conn->core);
        if (crl_write(conn->fd, &id, 1) != 1 || crl_conn_draining(conn))
            return 0;
    }
}

/* The state echo_parked keeps between its calls. */
struct parked {
    struct crl_conn *conn; /* the record: the same at every call */
    int served;
    int64_t idle_since_ns;
};

/* echo_core's protocol, with no task between requests: CRL_CONN_WHEN_READABLE. */
static int echo_parked(struct crl_conn *conn, void *ctx)
{
    struct fixture *f = ctx;
    struct parked *st = conn->state;
    CHECK_EQ(conn->core, crl_core_id());
    CHECK((int)conn->wake >= CRL_CONN_NEW && (int)conn->wake <= CRL_CONN_STOPPING);
    __atomic_fetch_add(&f->calls[conn->wake], 1, __ATOMIC_RELAXED); /* from every core */
    if (conn->wake == CRL_CONN_NEW) {
        CHECK(st == NULL);
        st = calloc(1, sizeof *st);
        CHECK(st != NULL);
        st->conn = conn;
        conn->state = st;
    }
    CHECK(st->conn == conn);
    if (conn->wake == CRL_CONN_IDLE_EXPIRED)
        __atomic_store_n(&f->expired_ns, crl_now_ns() - st->idle_since_ns, __ATOMIC_RELAXED);
    char byte;
    ssize_t n = conn->wake == CRL_CONN_IDLE_EXPIRED || conn->wake == CRL_CONN_STOPPING
                    ? 0
                    : crl_read(conn->fd, &byte, 1);
    char id = (char)('0' + conn->core);
    if (n <= 0 || crl_write(conn->fd, &id, 1) != 1) {
        free(st);
        return (int)n;
    }
    st->served++;
    __atomic_fetch_add(&f->served, 1, __ATOMIC_RELAXED);
    st->idle_since_ns = crl_now_ns();
    conn->idle_deadline_ns = f->idle_ns ? st->idle_since_ns + f->idle_ns : CRL_NO_DEADLINE;
    return CRL_CONN_WHEN_READABLE;
}

static int serve_body(struct crl_scope *s, void *arg)
{
    struct fixture *f = arg;
    f->server_scope = s; /* cancelling it stops the server */
    f->opts.on_ready = on_ready;
    f->serve_rc = crl_serve("127.0.0.1:0", &f->opts, f->fn ? f->fn : echo_core, f);
    f->server_scope = NULL;
    crl_event_set(&f->ready); /* in case it failed before listening */
    return 0;
}

static int server(void *arg) { return crl_scope_run(serve_body, arg); }

static void stop_server(struct fixture *f)
{
    if (f->server_scope)
        crl_scope_cancel(f->server_scope);
}

/* One request on a new connection; returns the core that served it (0..), or < 0. */
static int ask(struct fixture *f, int *keep_fd)
{
    int fd = crl_tcp_connect(f->addr, CRL_NO_DEADLINE);
    if (fd < 0)
        return fd;
    char c = 'x';
    CHECK_EQ(crl_write(fd, &c, 1), 1);
    ssize_t n = crl_read(fd, &c, 1);
    if (keep_fd)
        *keep_fd = fd;
    else
        crl_close(fd);
    return n == 1 ? c - '0' : (int)(n < 0 ? n : -EPIPE);
}

typedef void scenario_fn(struct fixture *f);

struct run {
    struct fixture *f;
    scenario_fn *scenario;
};

static int run_body(struct crl_scope *s, void *arg)
{
    struct run *r = arg;
    crl_event_init(&r->f->ready);
    CHECK_EQ(crl_spawn(s, server, r->f), 0);
    CHECK_EQ(crl_event_wait(&r->f->ready), 0);
    CHECK_EQ(r->f->serve_rc, 0);
    r->scenario(r->f);
    stop_server(r->f);
    return 0;
}

static int run_main(void *arg) { return crl_scope_run(run_body, arg); }

/* Runs scenario against a server in a runtime of `cores` cores; checks no fd leaked. */
static void run_scenario(unsigned cores, struct fixture *f, scenario_fn *scenario)
{
    struct run r = {f, scenario};
    int before = test_count_fds();
    struct crl_config cfg = {.cores = cores};
    CHECK_EQ(crl_run(&cfg, run_main, &r), 0);
    CHECK_EQ(f->serve_rc, 0);
    CHECK_EQ(test_count_fds(), before);
}

enum { SEQUENTIAL = 20 };

static void count_sequential(struct fixture *f)
{
    for (int i = 0; i < SEQUENTIAL; i++) {
        int core = ask(f, NULL);
        CHECK(core >= 0 && core < 4);
        f->per_core[core]++;
    }
}

/* Round robin hands connections to the cores in turn. */
TEST_PLAIN(serve_round_robin_alternates)
{
    TEST_NEED_CORES(2);
    struct fixture f = {.opts = {.balance = CRL_BALANCE_ROUND_ROBIN}};
    run_scenario(2, &f, count_sequential);
    CHECK_EQ(f.per_core[0], SEQUENTIAL / 2);
    CHECK_EQ(f.per_core[1], SEQUENTIAL / 2);
}

/* With one SO_REUSEPORT listener per core, the kernel spreads connections over both. */
TEST_PLAIN(serve_reuseport_uses_every_core)
{
    TEST_NEED_CORES(2);
    struct fixture f = {.opts = {.balance = CRL_BALANCE_REUSEPORT}};
    run_scenario(2, &f, count_sequential);
    CHECK_EQ(f.per_core[0] + f.per_core[1], SEQUENTIAL);
    CHECK_GE(f.per_core[0], 1); /* all 20 on one core: odds 2^-19 */
    CHECK_GE(f.per_core[1], 1);
}

enum { HELD = 6 };

static void hold_open(struct fixture *f)
{
    int fds[HELD];
    for (int i = 0; i < HELD; i++) {
        int core = ask(f, &fds[i]);
        CHECK(core == 0 || core == 1);
        f->per_core[core]++;
        /* each went to the core with fewer live connections: never 2 apart */
        CHECK_LT(abs(f->per_core[0] - f->per_core[1]), 2);
    }
    /* End three on core 1 (or as many as it has): the next ones must all go there. */
    int closed = 0;
    for (int i = 0; i < HELD; i++) {
        char c = 'x';
        CHECK_EQ(crl_write(fds[i], &c, 1), 1);
        CHECK_EQ(crl_read(fds[i], &c, 1), 1);
        if (c == '1' && closed < 2) {
            crl_close(fds[i]);
            fds[i] = -1;
            closed++;
        }
    }
    CHECK_EQ(closed, 2);
    CHECK_EQ(crl_sleep_ns(20 * CRL_MSEC_NS), 0); /* core 1 sees them end */
    int extra[2];
    for (int i = 0; i < 2; i++)
        CHECK_EQ(ask(f, &extra[i]), 1); /* 3 live on core 0, 1 then 2 on core 1 */
    for (int i = 0; i < 2; i++)
        crl_close(extra[i]);
    for (int i = 0; i < HELD; i++)
        if (fds[i] >= 0)
            crl_close(fds[i]);
}

/* Least-loaded keeps live connections even across cores, whatever the order they end in. */
TEST_PLAIN(serve_least_loaded_evens_live_connections)
{
    TEST_NEED_CORES(2);
    struct fixture f = {.opts = {.balance = CRL_BALANCE_LEAST}};
    run_scenario(2, &f, hold_open);
    CHECK_EQ(f.per_core[0], HELD / 2);
    CHECK_EQ(f.per_core[1], HELD / 2);
}

/* One core: every mode serves everything on core 0. */
TEST_PLAIN(serve_single_core_every_mode)
{
    for (int mode = CRL_BALANCE_REUSEPORT; mode <= CRL_BALANCE_LEAST; mode++) {
        struct fixture f = {.opts = {.balance = (enum crl_balance)mode}};
        run_scenario(1, &f, count_sequential);
        CHECK_EQ(f.per_core[0], SEQUENTIAL);
    }
}

struct stop_test {
    struct fixture *f;
    int busy_fd, idle_fd;
    char busy_reply;
    ssize_t idle_read;
};

static int busy_client(void *arg)
{
    struct stop_test *t = arg;
    char c = 'x';
    CHECK_EQ(crl_write(t->busy_fd, &c, 1), 1);
    CHECK_EQ(crl_read(t->busy_fd, &t->busy_reply, 1), 1); /* finished despite the stop */
    return 0;
}

static int idle_client(void *arg)
{
    struct stop_test *t = arg;
    char c;
    t->idle_read = crl_read(t->idle_fd, &c, 1);
    return 0;
}

static int stopper(void *arg)
{
    struct stop_test *t = arg;
    CHECK_EQ(crl_sleep_ns(30 * CRL_MSEC_NS), 0); /* the busy request is in its handler */
    stop_server(t->f);
    return 0;
}

static int clients_body(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, busy_client, arg), 0);
    CHECK_EQ(crl_spawn(s, idle_client, arg), 0);
    CHECK_EQ(crl_spawn(s, stopper, arg), 0);
    return 0;
}

static void graceful(struct fixture *f)
{
    struct stop_test t = {.f = f, .idle_read = 99};
    CHECK_EQ(ask(f, &t.idle_fd), 0); /* served once, now idle */
    t.busy_fd = crl_tcp_connect(f->addr, CRL_NO_DEADLINE);
    CHECK(t.busy_fd >= 0);
    f->hold_ns = 100 * CRL_MSEC_NS;
    CHECK_EQ(crl_scope_run(clients_body, &t), 0);
    CHECK_EQ(t.busy_reply, '0'); /* the busy request finished */
    CHECK_EQ(t.idle_read, 0);    /* the idle connection was ended: EOF */
    while (f->server_scope)      /* then the server returns */
        CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    CHECK_EQ(crl_tcp_connect(f->addr, CRL_NO_DEADLINE), -ECONNREFUSED); /* not listening */
    crl_close(t.busy_fd);
    crl_close(t.idle_fd);
}

/* Stopping lets a request in progress finish, ends idle connections, stops listening. */
TEST_PLAIN(serve_stops_gracefully)
{
    struct fixture f = {.opts = {.balance = CRL_BALANCE_REUSEPORT}};
    run_scenario(1, &f, graceful);
}

static void straggler(struct fixture *f)
{
    int fd = crl_tcp_connect(f->addr, CRL_NO_DEADLINE);
    CHECK(fd >= 0);
    f->ignore_drain = true;
    char c = 'x';
    CHECK_EQ(crl_write(fd, &c, 1), 1);
    CHECK_EQ(crl_sleep_ns(20 * CRL_MSEC_NS), 0);
    int64_t t0 = crl_now_ns();
    stop_server(f);
    while (f->server_scope)
        CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    int64_t took = crl_now_ns() - t0;
    CHECK_GE(took, 40 * CRL_MSEC_NS); /* it waited for the drain deadline ... */
    CHECK_LT(took, 2 * CRL_SEC_NS);   /* ... then cancelled the straggler */
    CHECK_EQ(f->fn_rc, -ECANCELED);
    CHECK_EQ(crl_read(fd, &c, 1), 0); /* and closed its connection */
    crl_close(fd);
}

/* A connection that does not finish by the drain deadline is cancelled. */
TEST_PLAIN(serve_drain_deadline_cancels_stragglers)
{
    struct fixture f = {.opts = {.drain_ns = 50 * CRL_MSEC_NS}};
    run_scenario(1, &f, straggler);
}

static int read_one(void *arg)
{
    char c;
    return (int)crl_read(*(int *)arg, &c, 1);
}

static void limited(struct fixture *f)
{
    int first;
    CHECK_EQ(ask(f, &first), 0);
    int second = crl_tcp_connect(f->addr, CRL_NO_DEADLINE); /* the kernel's backlog takes it */
    CHECK(second >= 0);
    char c = 'x';
    CHECK_EQ(crl_write(second, &c, 1), 1);
    CHECK_EQ(crl_with_timeout(50 * CRL_MSEC_NS, read_one, &second), -ETIMEDOUT); /* held back */
    crl_close(first);
    CHECK_EQ(read_one(&second), 1); /* served once the first ended */
    crl_close(second);
}

/* At max_conns a core stops accepting until a connection ends. */
TEST_PLAIN(serve_max_conns_holds_back)
{
    struct fixture f = {.opts = {.max_conns = 1}};
    run_scenario(1, &f, limited);
}

static int serve_noop(struct crl_conn *conn, void *ctx)
{
    (void)conn;
    (void)ctx;
    return 0;
}

/* Bad options and a taken address fail at once. */
TEST(serve_refuses_bad_options_and_busy_address)
{
    char addr[64];
    int lfd = test_listen_loopback(addr, sizeof addr);
    CHECK(lfd >= 0);
    CHECK_EQ(crl_serve(addr, NULL, serve_noop, NULL), -EADDRINUSE);
    CHECK_EQ(crl_serve("127.0.0.1:0", &(struct crl_serve_opts){.balance = 7}, serve_noop, NULL),
             -EINVAL);
    CHECK_EQ(crl_serve("127.0.0.1:0", &(struct crl_serve_opts){.cores = 2}, serve_noop, NULL),
             -EINVAL); /* this runtime has one core */
    CHECK_EQ(crl_serve("nonsense", NULL, serve_noop, NULL), -EINVAL);
    CHECK_EQ(crl_serve("127.0.0.1:0", NULL, NULL, NULL), -EINVAL);
    crl_close(lfd);
}

/* ---- Connections that wait without a task (CRL_CONN_WHEN_READABLE) ----------------------- */

enum { PARKED = 40 };

static uint64_t tasks_live(void)
{
    struct crl_stats st;
    crl_stats_get(&st);
    return st.tasks_live;
}

static uint64_t conns_live(void)
{
    struct crl_stats st;
    crl_stats_get(&st);
    return st.conns_live;
}

/* One more request on fd: the core's answer, or < 0. */
static int ask_again(int fd)
{
    char c = 'x';
    CHECK_EQ(crl_write(fd, &c, 1), 1);
    ssize_t n = crl_read(fd, &c, 1);
    return n == 1 ? c - '0' : (int)(n < 0 ? n : -EPIPE);
}

static void many_parked(struct fixture *f)
{
    uint64_t tasks_before = tasks_live();
    int fds[PARKED];
    for (int i = 0; i < PARKED; i++)
        CHECK_EQ(ask(f, &fds[i]), 0);
    CHECK_EQ(crl_sleep_ns(10 * CRL_MSEC_NS), 0); /* the last tasks end */
    CHECK_EQ(conns_live(), PARKED);
    CHECK_LT(tasks_live(), tasks_before + 3); /* no task per connection */
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < PARKED; i++)
            CHECK_EQ(ask_again(fds[i]), 0);
    CHECK_EQ(f->served, 4 * PARKED);
    CHECK_EQ(f->calls[CRL_CONN_NEW], PARKED);
    CHECK_EQ(f->calls[CRL_CONN_READABLE], 3 * PARKED);
    for (int i = 0; i < PARKED; i++)
        crl_close(fds[i]);
    for (int i = 0; i < 200 && conns_live() > 0; i++)
        CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    CHECK_EQ(conns_live(), 0); /* each peer's close made a call that ended it */
    CHECK_EQ(f->calls[CRL_CONN_READABLE], 4 * PARKED);
}

/* Between requests a connection holds no task; each wake-up calls the function again with
 * the same record and state, and the peer's close ends the connection. */
TEST_PLAIN(serve_parked_connections_hold_no_task)
{
    struct fixture f = {.fn = echo_parked};
    run_scenario(1, &f, many_parked);
}

static void idles_out(struct fixture *f)
{
    int fd;
    CHECK_EQ(ask(f, &fd), 0);
    char c;
    CHECK_EQ(crl_read(fd, &c, 1), 0); /* the server closes it at the idle deadline */
    CHECK_EQ(f->calls[CRL_CONN_IDLE_EXPIRED], 1);
    CHECK_GE(f->expired_ns, f->idle_ns);
    CHECK_EQ(f->calls[CRL_CONN_READABLE], 0);
    crl_close(fd);
}

/* A parked connection whose idle deadline passes is called once with IDLE_EXPIRED. */
TEST_PLAIN(serve_parked_connection_expires_at_its_deadline)
{
    struct fixture f = {.fn = echo_parked, .idle_ns = 30 * CRL_MSEC_NS};
    run_scenario(1, &f, idles_out);
}

static void keeps_busy_past_deadline(struct fixture *f)
{
    int fd;
    CHECK_EQ(ask(f, &fd), 0);
    for (int i = 0; i < 5; i++) { /* each request comes before the deadline: never expires */
        CHECK_EQ(crl_sleep_ns(f->idle_ns / 2), 0);
        CHECK_EQ(ask_again(fd), 0);
    }
    CHECK_EQ(f->calls[CRL_CONN_IDLE_EXPIRED], 0);
    crl_close(fd);
}

/* Requests that come in time keep a connection open past the sum of its deadlines. */
TEST_PLAIN(serve_parked_deadline_moves_with_each_request)
{
    struct fixture f = {.fn = echo_parked, .idle_ns = 200 * CRL_MSEC_NS};
    if (test_slow_env())
        f.idle_ns = 2 * CRL_SEC_NS;
    run_scenario(1, &f, keeps_busy_past_deadline);
}

static int stop_soon(void *arg)
{
    stop_server(arg);
    return 0;
}

static void stopped_while_parked(struct fixture *f)
{
    int fds[PARKED];
    for (int i = 0; i < PARKED; i++)
        CHECK_EQ(ask(f, &fds[i]), 0);
    int64_t start = crl_now_ns();
    CHECK_EQ(stop_soon(f), 0);
    for (int i = 0; i < PARKED; i++) {
        char c;
        CHECK_EQ(crl_read(fds[i], &c, 1), 0); /* closed by the stop, long before drain_ns */
        crl_close(fds[i]);
    }
    CHECK_LT(crl_now_ns() - start, 5 * CRL_SEC_NS);
}

/* A stopping server calls each parked connection's function with STOPPING at once, instead
 * of waiting out the drain time. */
TEST_PLAIN(serve_stop_ends_parked_connections)
{
    struct fixture f = {.fn = echo_parked, .opts = {.drain_ns = 60 * CRL_SEC_NS}};
    run_scenario(1, &f, stopped_while_parked);
    CHECK_EQ(f.calls[CRL_CONN_STOPPING], PARKED);
}

/* A parked connection counts against max_conns as a live one. */
TEST_PLAIN(serve_max_conns_counts_parked_connections)
{
    struct fixture f = {.fn = echo_parked, .opts = {.max_conns = 1}};
    run_scenario(1, &f, limited);
}

/* On several cores, least-loaded balancing counts parked connections as live. */
TEST_PLAIN(serve_least_loaded_counts_parked_connections)
{
    TEST_NEED_CORES(2);
    struct fixture f = {.fn = echo_parked, .opts = {.balance = CRL_BALANCE_LEAST}};
    run_scenario(2, &f, hold_open);
}

/* ---- Wake-ups with the first bytes received (receive_on_wake) --------------------------- */

/* Echo what each wake-up brings: the bytes received for us first, taken in a few pieces
 * (crl_conn_take's partial takes), else a read of the socket. */
static int echo_received(struct crl_conn *conn, void *ctx)
{
    struct fixture *f = ctx;
    if (conn->wake == CRL_CONN_NEW)
        return CRL_CONN_WHEN_READABLE;
    CHECK(conn->received == NULL || conn->wake == CRL_CONN_READABLE);
    if (conn->wake != CRL_CONN_READABLE)
        return 0;
    char buf[8192];
    size_t n = 0;
    if (f->hold_ns) /* holding conn->received's buffer meanwhile */
        CHECK_EQ(crl_sleep_ns(f->hold_ns), 0);
    if (conn->received_len) {
        __atomic_fetch_add(&f->received_wakes, 1, __ATOMIC_RELAXED);
        CHECK(conn->received != NULL);
        const char *first = conn->received;
        char head = first[0];
        for (int i = 0; i < 3 && crl_conn_take(conn, buf + n, 1) == 1; i++)
            n++;
        CHECK_EQ(buf[0], head);
        n += crl_conn_take(conn, buf + n, sizeof buf - n);
        CHECK_EQ(conn->received_len, 0);
        CHECK(conn->received == NULL);
        CHECK_EQ(crl_conn_take(conn, buf, sizeof buf), 0);
    } else {
        ssize_t r = crl_read(conn->fd, buf, sizeof buf);
        if (r <= 0)
            return (int)r;
        n = (size_t)r;
    }
    ssize_t w = crl_write_all(conn->fd, buf, n);
    return w < 0 ? (int)w : CRL_CONN_WHEN_READABLE;
}

static void fill(char *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)('a' + (seed + i * 7) % 26);
}

/* Send len patterned bytes on fd and read the same back. */
static void echo_check(int fd, size_t len, unsigned seed)
{
    char out[6000] = {0}, in[6000];
    CHECK(len <= sizeof out);
    fill(out, len, seed);
    CHECK_EQ(crl_write_all(fd, out, len), (ssize_t)len);
    for (size_t got = 0; got < len;) {
        ssize_t r = crl_read(fd, in + got, len - got);
        CHECK_GE(r, 1);
        got += (size_t)r;
    }
    CHECK(memcmp(in, out, len) == 0);
}

/* The io_uring backend receives a woken connection's first bytes (unless this kernel has no
 * buffer rings, which it says by never doing it); epoll never does. */
static void check_received_wakes(const struct fixture *f)
{
    if (strcmp(crl_io_backend(), "io_uring") == 0)
        CHECK_GE(f->received_wakes, 1);
    else
        CHECK_EQ(f->received_wakes, 0);
}

static void echoes_every_size(struct fixture *f)
{
    static const size_t sizes[] = {1, 7, 100, 2047, 2048, 2049, 3000, 5000, 1};
    int fd = crl_tcp_connect(f->addr, CRL_NO_DEADLINE);
    CHECK_GE(fd, 0);
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        echo_check(fd, sizes[i], i);
    crl_close(fd);
    for (int i = 0; i < 200 && conns_live() > 0; i++)
        CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    CHECK_EQ(conns_live(), 0); /* the end of stream woke it, with nothing received */
    check_received_wakes(f);
}

/* Bytes received as a connection wakes come in order and whole, whatever their size: more
 * than a pool buffer holds comes in that buffer and then from the socket. */
TEST_PLAIN(serve_receive_on_wake_delivers_every_byte)
{
    struct fixture f = {.fn = echo_received, .opts = {.receive_on_wake = true}};
    run_scenario(1, &f, echoes_every_size);
}

enum { BURST = 150 }; /* more connections than the pool has buffers */

static void bursts(struct fixture *f)
{
    static int fds[BURST];
    for (int i = 0; i < BURST; i++) {
        fds[i] = crl_tcp_connect(f->addr, CRL_NO_DEADLINE);
        CHECK_GE(fds[i], 0);
    }
    CHECK_EQ(crl_sleep_ns(10 * CRL_MSEC_NS), 0); /* every one is waiting without a task */
    for (int round = 0; round < 3; round++) {
        char msg[64];
        for (int i = 0; i < BURST; i++) { /* plain writes: the core serves none meanwhile */
            fill(msg, sizeof msg, (unsigned)(i + round));
            CHECK_EQ(write(fds[i], msg, sizeof msg), (ssize_t)sizeof msg);
        }
        for (int i = 0; i < BURST; i++) {
            char want[64], got[64];
            fill(want, sizeof want, (unsigned)(i + round));
            for (size_t n = 0; n < sizeof got;) {
                ssize_t r = crl_read(fds[i], got + n, sizeof got - n);
                CHECK_GE(r, 1);
                n += (size_t)r;
            }
            CHECK(memcmp(got, want, sizeof got) == 0);
        }
    }
    for (int i = 0; i < BURST; i++)
        crl_close(fds[i]);
    for (int i = 0; i < 500 && conns_live() > 0; i++)
        CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    CHECK_EQ(conns_live(), 0);
    check_received_wakes(f);
    CHECK_LT(f->received_wakes, 3 * BURST); /* some found the pool empty */
}

/* More connections wake at once than the core's pool has buffers, and each holds its buffer
 * a while: those that find the pool empty read their bytes from the socket, and every byte
 * still comes back. */
TEST_PLAIN(serve_receive_on_wake_survives_an_empty_pool)
{
    struct fixture f = {
        .fn = echo_received, .opts = {.receive_on_wake = true}, .hold_ns = 20 * CRL_MSEC_NS};
    run_scenario(1, &f, bursts);
}

static void stopped_with_received(struct fixture *f)
{
    int fd = crl_tcp_connect(f->addr, CRL_NO_DEADLINE);
    CHECK_GE(fd, 0);
    echo_check(fd, 10, 1);
    stop_server(f);
    char c;
    CHECK_EQ(crl_read(fd, &c, 1), 0); /* the stop ends the waiting connection */
    crl_close(fd);
}

/* Without the option, a woken connection finds nothing received. */
TEST_PLAIN(serve_received_is_empty_without_the_option)
{
    struct fixture f = {.fn = echo_received};
    run_scenario(1, &f, stopped_with_received);
    CHECK_EQ(f.received_wakes, 0);
}
