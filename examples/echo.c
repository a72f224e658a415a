/* echo.c - a TCP echo server spread over the cores, and in the same program a few clients
 * that send lines, check each echo, and then stop the server gracefully.
 *
 * From Schwartz's "Async Rust can be a pleasure to work with": balance the load per
 * connection, not per await point. crl_serve deals each connection to a core and it stays
 * there, so the task serving it is plain blocking code whose state is its own: nothing to
 * lock, nothing to make Send. And from structured concurrency: the server is a task in a
 * scope like any other; cancelling the scope stops it, and the scope waits until it has.
 */
#include <corral.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

enum { CLIENTS = 4, LINES = 3 };

struct echo {
    struct crl_event ready; /* set once the server listens */
    char addr[32];          /* "127.0.0.1:PORT", the port the kernel picked */
};

/* One connection, in a task on the core it was dealt to: echo until the client closes. */
static int echo_conn(struct crl_conn *conn, void *ctx)
{
    (void)ctx;
    char buf[512];
    for (;;) {
        crl_conn_set_idle(conn, true); /* a stopping server ends this read at once */
        ssize_t n = crl_read(conn->fd, buf, sizeof buf);
        crl_conn_set_idle(conn, false);
        if (n <= 0)
            return (int)n; /* 0: the client closed (or the server is stopping) */
        if ((n = crl_write_all(conn->fd, buf, (size_t)n)) < 0)
            return (int)n;
    }
}

/* crl_serve calls this once it listens: learn the port, let the clients go. */
static void on_ready(void *ctx, const struct sockaddr *addr, socklen_t len)
{
    struct echo *e = ctx;
    (void)len;
    unsigned port = ntohs(((const struct sockaddr_in *)addr)->sin_port);
    snprintf(e->addr, sizeof e->addr, "127.0.0.1:%u", port);
    crl_event_set(&e->ready);
}

static int server(void *arg) /* runs until its scope is cancelled, then drains and returns 0 */
{
    /* core 0 accepts and deals the connections out to the cores in turn */
    struct crl_serve_opts opts = {.balance = CRL_BALANCE_ROUND_ROBIN, .on_ready = on_ready};
    return crl_serve("127.0.0.1:0", &opts, echo_conn, arg);
}

/* Read exactly len bytes (a stream may deliver a line in pieces). */
static ssize_t read_full(int fd, char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = crl_read(fd, buf + got, len - got);
        if (n <= 0)
            return n < 0 ? n : -ECONNRESET;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static int client(void *arg)
{
    struct echo *e = arg;
    int fd = crl_tcp_connect(e->addr, crl_now_ns() + CRL_SEC_NS);
    if (fd < 0)
        return fd;
    int rc = 0;
    for (int i = 0; i < LINES && rc == 0; i++) {
        char line[64], back[64];
        int len = snprintf(line, sizeof line, "line %d from %s\n", i, crl_task_name());
        ssize_t n = crl_write_all(fd, line, (size_t)len);
        if (n >= 0)
            n = read_full(fd, back, (size_t)len);
        if (n >= 0 && memcmp(line, back, (size_t)len) != 0)
            n = -EPROTO; /* not our line back */
        rc = n < 0 ? (int)n : 0;
    }
    crl_close(fd);
    return rc;
}

static int clients(struct crl_scope *s, void *arg)
{
    static const char *names[CLIENTS] = {"client-0", "client-1", "client-2", "client-3"};
    for (int i = 0; i < CLIENTS; i++) {
        int rc = crl_spawn_named(s, client, arg, names[i]);
        if (rc)
            return rc;
    }
    return 0;
}

static int echo_main(struct crl_scope *s, void *arg)
{
    struct echo *e = arg;
    int rc = crl_spawn(s, server, e);
    if (rc == 0)
        rc = crl_event_wait(&e->ready); /* -ECANCELED if the server failed to listen */
    if (rc == 0)
        rc = crl_scope_run(clients, e); /* all clients done, or the first one's error */
    if (rc == 0)
        printf("%d clients x %d lines echoed by %s on %u core(s)\n", CLIENTS, LINES, e->addr,
               crl_core_count());
    crl_scope_cancel(s); /* stop the server: it stops accepting and lets connections finish */
    return rc;
}

static int app(void *arg)
{
    (void)arg;
    struct echo e;
    crl_event_init(&e.ready);
    return crl_scope_run(echo_main, &e);
}

int main(void)
{
    int rc = crl_run(NULL, app, NULL);
    if (rc < 0)
        fprintf(stderr, "echo: %s\n", strerror(-rc));
    return rc < 0;
}
