/* serve.c - a server over every core: listeners, connection balancing, graceful stop.
 *
 * The calling task T opens the listening sockets, then runs two nested scopes: its own (it
 * waits there for its cancellation) and, in a child task, a shielded one holding one task per
 * core (crl_spawn_on). Each core's task owns a scope for that core's connections, so the
 * shield keeps T's cancellation from tearing connections down: T instead asks every core to
 * drain (stop accepting, wake idle connections), waits up to drain_ns, then cancels the
 * shielded scope, which reaches every core.
 *
 * Balancing: with REUSEPORT every core accepts on its own SO_REUSEPORT socket and serves what
 * it accepts. Otherwise core 0 accepts and hands each fd to a core picked in turn or by the
 * fewest live connections (an atomic per core: the one number cores share on purpose); a
 * small task per handoff makes the cross-core call, so the acceptor never waits on it. */
#define _GNU_SOURCE
#include "net.h"
#include "../core/count.h"
#include "../io/io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { DEFAULT_MAX_CONNS = 10000, FULL_WAIT_NS = 1000000 };
#define DEFAULT_DRAIN_NS (5 * CRL_SEC_NS)

struct server;

/* One core's part of a server. Only `live` and `ready` are read by another core (core 0's
 * acceptor); the rest is the core's own. */
struct serve_core {
    _Alignas(64) _Atomic unsigned live; /* connections handed to or accepted by this core */
    _Atomic bool ready;                 /* conns_scope is up */
    struct server *srv;
    unsigned id;
    int lfd;                        /* the listener this core accepts on, or -1 */
    struct crl_scope *conns_scope;  /* the connections' tasks */
    struct crl_scope *accept_scope; /* the acceptor, cancelled to stop accepting */
    struct crl__list conns;         /* struct conn_rec */
    struct crl_event stop;          /* set when the core drains */
    size_t nparked;                 /* connections waiting without a task */
    struct crl_event unparked;      /* draining, nparked fell to 0 */
    struct crl_event conn_ended;    /* set when a connection ends (for max_conns) */
    bool draining;
};

struct server {
    struct crl_serve_opts opts;
    crl_conn_fn *fn;
    void *ctx;
    unsigned ncores;
    unsigned home; /* T's core */
    struct serve_core *cores;
    struct crl_scope *cores_scope; /* shielded, on the home core */
    struct crl_event ended;        /* the cores' scope ended by itself (an error) */
    int error;
    unsigned rr_next;
};

/* A connection: heap memory for as long as it is open, whether a task serves it or it waits
 * without one (parked: its function returned CRL_CONN_WHEN_READABLE). */
struct conn_rec {
    struct crl_conn pub;
    struct crl__list link; /* in serve_core.conns */
    struct serve_core *sc;
    bool idle;                    /* its task waits between requests (crl_conn_set_idle) */
    bool parked;                  /* no task: watch in flight, or a spawn to retry */
    enum crl_conn_wake cancelled; /* why the watch was cancelled: a deadline or a stop */
    struct crl__timer timer;      /* parked: the idle deadline, or a failed spawn's retry */
    struct crl__op watch;         /* parked: the readiness wait (io.h) */
};

/* ---- Connections ------------------------------------------------------------------------ */

/* A connection counted on sc will not be served after all (called from any core). */
static void uncount(struct serve_core *sc)
{
    atomic_fetch_sub_explicit(&sc->live, 1, memory_order_relaxed);
}

/* A connection of this core (sc) ended: an acceptor held back by max_conns may go on. */
static void conn_finished(struct serve_core *sc)
{
    unsigned before = atomic_fetch_sub_explicit(&sc->live, 1, memory_order_relaxed);
    if (before == sc->srv->opts.max_conns && sc->conn_ended.waiters_.head_)
        crl_event_set(&sc->conn_ended);
}

static void conn_end(struct conn_rec *r, int rc)
{
    struct serve_core *sc = r->sc;
    if (rc < 0 && rc != -ECANCELED)
        crl__logf(CRL_LOG_DEBUG, "corral: connection on core %u ended: %s", sc->id, strerror(-rc));
    crl__list_del(&r->link);
    CRL__COUNT_SUB(&crl__core()->stats, conns_live, 1);
    crl_close(r->pub.fd);
    conn_finished(sc);
    free(r);
}

static int conn_task(void *arg);

/* Retry a spawn that failed for want of memory this long after. */
#define RESPAWN_NS CRL_MSEC_NS

/* A parked connection's wait is over (r->pub.wake says why): a task calls its function. */
static void unpark(struct crl__core *c, struct conn_rec *r)
{
    struct serve_core *sc = r->sc;
    if (crl_spawn_named(sc->conns_scope, conn_task, r, "connection") != 0) {
        crl__timer_arm(&c->wheel, &r->timer, crl__deadline_after(c->now_ns, RESPAWN_NS));
        return; /* still parked; the timer tries again */
    }
    r->parked = false;
    if (--sc->nparked == 0 && sc->draining)
        crl_event_set(&sc->unparked);
}

static void on_readable(struct crl__core *c, struct crl__op *op, int res)
{
    struct conn_rec *r = op->a.watch.arg;
    crl__timer_disarm(&c->wheel, &r->timer);
    r->pub.wake = res == -ECANCELED && r->cancelled ? r->cancelled : CRL_CONN_READABLE;
    r->pub.received = op->a.watch.data; /* bytes a receive watch took in already */
    r->pub.received_len = op->a.watch.len;
    unpark(c, r);
}

/* A parked connection's timer: its idle deadline (cancel the watch), or a spawn to retry. */
static void on_timer(struct crl__timer *tm)
{
    struct conn_rec *r = crl__container_of(tm, struct conn_rec, timer);
    struct crl__core *c = crl__core();
    if (r->watch.done) {
        unpark(c, r);
    } else {
        r->cancelled = CRL_CONN_IDLE_EXPIRED;
        crl__watch_cancel(c, &r->watch);
    }
}

/* The function returned CRL_CONN_WHEN_READABLE: wait without a task (0), or say why it is to
 * be called again at once. */
static enum crl_conn_wake park(struct conn_rec *r)
{
    struct serve_core *sc = r->sc;
    struct crl__core *c = crl__core();
    int64_t deadline = r->pub.idle_deadline_ns;
    if (sc->draining)
        return CRL_CONN_STOPPING;
    if (deadline != CRL_NO_DEADLINE && deadline <= crl_now_ns())
        return CRL_CONN_IDLE_EXPIRED;
    r->parked = true;
    r->cancelled = CRL_CONN_NEW;
    sc->nparked++;
    if (deadline != CRL_NO_DEADLINE)
        crl__timer_arm(&c->wheel, &r->timer, deadline);
    /* Last: the report may come from inside (epoll: bytes there already), and start a task. */
    if (sc->srv->opts.receive_on_wake)
        crl__watch_recv_start(c, &r->watch, r->pub.fd, on_readable, r);
    else
        crl__watch_start(c, &r->watch, r->pub.fd, POLLIN | POLLRDHUP, on_readable, r);
    return CRL_CONN_NEW;
}

/* End the wait of every parked connection of sc: their functions are called with
 * CRL_CONN_STOPPING (sc is draining). */
static void stop_parked(struct serve_core *sc)
{
    struct crl__core *c = crl__core();
    for (struct crl__list *l = sc->conns.next; l != &sc->conns; l = l->next) {
        struct conn_rec *r = crl__container_of(l, struct conn_rec, link);
        if (r->parked && !r->watch.done) {
            r->cancelled = CRL_CONN_STOPPING;
            crl__watch_cancel(c, &r->watch);
        } else if (r->parked) {
            r->pub.wake = CRL_CONN_STOPPING; /* a spawn to retry: its timer does it */
        }
    }
}

static int conn_task(void *arg)
{
    struct conn_rec *r = arg;
    struct server *srv = r->sc->srv;
    for (;;) {
        int rc = srv->fn(&r->pub, srv->ctx);
        crl_conn_take(&r->pub, NULL, r->pub.received_len); /* what it left is dropped */
        if (rc != CRL_CONN_WHEN_READABLE) {
            conn_end(r, rc);
            return 0; /* one connection's failure is not the server's */
        }
        enum crl_conn_wake now = park(r);
        if (now == CRL_CONN_NEW)
            return 0; /* parked: the record lives on without us */
        r->pub.wake = now;
    }
}

/* Start serving fd on this core (sc is this core's); the fd is counted in sc->live already. */
static void adopt(struct serve_core *sc, int fd)
{
    crl_fd_adopt(fd); /* it may come from the acceptor's core */
    struct conn_rec *r = malloc(sizeof *r);
    if (!sc->draining && r) {
        *r = (struct conn_rec){
            .pub = {.fd = fd, .core = sc->id, .idle_deadline_ns = CRL_NO_DEADLINE},
            .sc = sc,
            .timer = {.fire = on_timer},
        };
        r->pub.peer_len = sizeof r->pub.peer;
        if (crl__sys()->getpeername(fd, (struct sockaddr *)&r->pub.peer, &r->pub.peer_len))
            r->pub.peer_len = 0;
        if (crl_spawn_named(sc->conns_scope, conn_task, r, "connection") == 0) {
            crl__list_add_tail(&sc->conns, &r->link);
            CRL__COUNT(&crl__core()->stats, conns_live);
            return;
        }
    }
    free(r);
    crl_close(fd);
    conn_finished(sc);
}

bool crl_conn_draining(const struct crl_conn *conn)
{
    const struct conn_rec *r = crl__container_of(conn, struct conn_rec, pub);
    return r->sc->draining;
}

/* A stopping server ends an idle connection's wait for the next request by shutting the
 * read side: the pending read returns 0, as if the client had finished. */
static void wake_idle(struct conn_rec *r) { crl__sys()->shutdown(r->pub.fd, SHUT_RD); }

size_t crl_conn_take(struct crl_conn *conn, void *buf, size_t len)
{
    size_t n = len < conn->received_len ? len : conn->received_len;
    if (n && buf)
        memcpy(buf, conn->received, n);
    conn->received_len -= n;
    conn->received = conn->received_len ? (const char *)conn->received + n : NULL;
    if (!conn->received_len) {
        struct conn_rec *r = crl__container_of(conn, struct conn_rec, pub);
        crl__watch_data_put(crl__core(), &r->watch);
    }
    return n;
}

void crl_conn_set_idle(struct crl_conn *conn, bool idle)
{
    struct conn_rec *r = crl__container_of(conn, struct conn_rec, pub);
    r->idle = idle;
    if (idle && r->sc->draining)
        wake_idle(r);
}

/* ---- Accepting -------------------------------------------------------------------------- */

/* The core for the next connection (ROUND_ROBIN or LEAST), or -1 if every core is full. */
static int pick_core(struct server *srv)
{
    unsigned best = 0, best_live = UINT32_MAX, max = srv->opts.max_conns;
    for (unsigned i = 0; i < srv->ncores; i++) {
        unsigned k = (srv->rr_next + i) % srv->ncores;
        unsigned live = atomic_load_explicit(&srv->cores[k].live, memory_order_relaxed);
        if (live >= max)
            continue;
        if (srv->opts.balance == CRL_BALANCE_ROUND_ROBIN) {
            srv->rr_next = k + 1;
            return (int)k;
        }
        if (live < best_live) {
            best = k;
            best_live = live;
        }
    }
    if (best_live == UINT32_MAX)
        return -1;
    srv->rr_next = best + 1; /* ties go round */
    return (int)best;
}

/* An fd on its way to another core. */
struct handoff {
    struct serve_core *sc;
    int fd;
};

static int adopt_remote(void *arg)
{
    struct handoff *h = arg;
    adopt(h->sc, h->fd);
    return 0;
}

/* Hands one fd to another core; runs as a task on the acceptor's core. */
static int handoff_task(void *arg)
{
    struct handoff h = *(struct handoff *)arg;
    free(arg);
    if (crl_call(h.sc->id, adopt_remote, &h) < 0) { /* never reached the core */
        crl_close(h.fd);
        uncount(h.sc);
    }
    return 0;
}

static void dispatch(struct serve_core *here, int fd)
{
    CRL__COUNT(&crl__core()->stats, conns_accepted);
    struct server *srv = here->srv;
    if (srv->opts.balance == CRL_BALANCE_REUSEPORT) {
        atomic_fetch_add_explicit(&here->live, 1, memory_order_relaxed);
        adopt(here, fd);
        return;
    }
    int k;
    while ((k = pick_core(srv)) < 0) /* every core full: let the backlog hold it */
        if (crl_sleep_ns(FULL_WAIT_NS) < 0) {
            crl_close(fd);
            return;
        }
    struct serve_core *to = &srv->cores[k];
    atomic_fetch_add_explicit(&to->live, 1, memory_order_relaxed);
    if (to == here) {
        adopt(here, fd);
        return;
    }
    struct handoff *h = malloc(sizeof *h);
    if (h) {
        *h = (struct handoff){to, fd};
        if (crl_spawn_named(here->conns_scope, handoff_task, h, "handoff") == 0)
            return;
    }
    free(h);
    crl_close(fd);
    uncount(to);
}

/* Waits until this core may take another connection (REUSEPORT) or every core is up (the
 * others: they adopt into their connection scopes). */
static int wait_room(struct serve_core *sc)
{
    struct server *srv = sc->srv;
    if (srv->opts.balance != CRL_BALANCE_REUSEPORT) {
        for (unsigned k = 0; k < srv->ncores; k++)
            while (!atomic_load_explicit(&srv->cores[k].ready, memory_order_acquire)) {
                int rc = crl_sleep_ns(100 * CRL_USEC_NS); /* start-up only */
                if (rc)
                    return rc;
            }
        return 0;
    }
    while (atomic_load_explicit(&sc->live, memory_order_relaxed) >= srv->opts.max_conns) {
        crl_event_clear(&sc->conn_ended);
        int rc = crl_event_wait(&sc->conn_ended);
        if (rc)
            return rc;
    }
    return 0;
}

static int accept_body(struct crl_scope *s, void *arg)
{
    struct serve_core *sc = arg;
    sc->accept_scope = s;
    struct crl_listener *l;
    int rc = crl_listener_open(&l, sc->lfd);
    if (rc)
        return rc;
    while ((rc = wait_room(sc)) == 0) {
        int fd = crl_listener_accept(l);
        if (fd >= 0)
            dispatch(sc, fd);
        else if (fd == -ECANCELED || fd == -ETIMEDOUT)
            break;
        else if (fd != -ECONNABORTED && fd != -EINTR) /* not a one-connection failure */
            crl__logf(CRL_LOG_WARN, "corral: accept on core %u: %s", sc->id, strerror(-fd));
    }
    crl_listener_close(l);
    return 0;
}

static int acceptor_task(void *arg)
{
    struct serve_core *sc = arg;
    crl_scope_run(accept_body, sc);
    sc->accept_scope = NULL;
    crl_close(sc->lfd); /* stop the kernel queueing connections nobody will take */
    sc->lfd = -1;
    return 0;
}

/* ---- Each core -------------------------------------------------------------------------- */

/* Until no connection of sc waits without a task: their functions must be running in
 * conns_scope before it may close. Shielded: the wait is short (every watch is cancelled)
 * and must not be cut off by the cancellation that may have brought us here. */
static int wait_unparked(struct crl_scope *s, void *arg)
{
    struct serve_core *sc = arg;
    crl_scope_shield(s, true);
    while (sc->nparked) {
        crl_event_clear(&sc->unparked);
        if (sc->nparked)
            crl_event_wait(&sc->unparked);
    }
    return 0;
}

static int core_body(struct crl_scope *s, void *arg)
{
    struct server *srv = arg;
    struct serve_core *sc = &srv->cores[crl_core_id()];
    sc->conns_scope = s;
    crl__list_init(&sc->conns);
    crl_event_init(&sc->stop);
    crl_event_init(&sc->conn_ended);
    crl_event_init(&sc->unparked);
    atomic_store_explicit(&sc->ready, true, memory_order_release);
    if (sc->draining) /* the server stopped before this core started */
        return 0;
    int rc = sc->lfd >= 0 ? crl_spawn_named(s, acceptor_task, sc, "acceptor") : 0;
    if (rc == 0)
        rc = crl_event_wait(&sc->stop); /* the connections keep the scope open meanwhile */
    sc->draining = true;
    stop_parked(sc); /* done already when the server drains; not when a core failed */
    crl_scope_run(wait_unparked, sc);
    return rc == -ECANCELED || rc == -ETIMEDOUT ? 0 : rc;
}

static int core_main(void *arg) { return crl_scope_run(core_body, arg); }

/* Run on each core when the server stops. */
static int drain_core(void *arg)
{
    struct server *srv = arg;
    struct serve_core *sc = &srv->cores[crl_core_id()];
    bool started = atomic_load_explicit(&sc->ready, memory_order_relaxed);
    if (sc->draining)
        return 0;
    sc->draining = true;
    if (!started) /* core_body will see draining and not start */
        return 0;
    if (sc->accept_scope)
        crl_scope_cancel(sc->accept_scope);
    for (struct crl__list *l = sc->conns.next; l != &sc->conns; l = l->next) {
        struct conn_rec *r = crl__container_of(l, struct conn_rec, link);
        if (r->idle)
            wake_idle(r);
    }
    stop_parked(sc);
    crl_event_set(&sc->stop);
    return 0;
}

/* ---- The server ------------------------------------------------------------------------- */

static int cores_body(struct crl_scope *s, void *arg)
{
    struct server *srv = arg;
    crl_scope_shield(s, true); /* the caller's cancellation drains instead (serve_body) */
    srv->cores_scope = s;
    for (unsigned k = 0; k < srv->ncores; k++) {
        int rc = crl_spawn_on_named(s, k, core_main, srv, "server core");
        if (rc)
            return rc;
    }
    return 0;
}

static int run_cores(void *arg)
{
    struct server *srv = arg;
    srv->error = crl_scope_run(cores_body, srv);
    srv->cores_scope = NULL;
    crl_event_set(&srv->ended);
    return 0;
}

static int wait_ended(void *arg) { return crl_event_wait(&((struct server *)arg)->ended); }

static int serve_body(struct crl_scope *s, void *arg)
{
    struct server *srv = arg;
    int rc = crl_spawn_named(s, run_cores, srv, "server");
    if (rc)
        return rc;
    if (crl_event_wait(&srv->ended) == 0)
        return srv->error;     /* the cores stopped by themselves: an error */
    crl_scope_shield(s, true); /* we were cancelled: from here on, stop in order */
    for (unsigned k = 0; k < srv->ncores; k++)
        crl_call(k, drain_core, srv);
    int64_t drain = srv->opts.drain_ns;
    if (drain < 0 || crl_with_timeout(drain, wait_ended, srv) != 0) {
        if (srv->cores_scope)
            crl_scope_cancel(srv->cores_scope);
    }
    return 0;
}

/* The listening sockets: one per core (REUSEPORT, all on the port the first one got) or one
 * on core 0. The bound address goes to *bound. */
static int open_listeners(struct server *srv, const char *host_port, struct sockaddr_storage *bound,
                          socklen_t *bound_len)
{
    bool per_core = srv->opts.balance == CRL_BALANCE_REUSEPORT;
    struct crl_listen_opts lo = {.backlog = srv->opts.backlog, .reuseport = per_core};
    char addr[80];
    for (unsigned k = 0; k < srv->ncores; k++)
        srv->cores[k].lfd = -1;
    for (unsigned k = 0; k < (per_core ? srv->ncores : 1); k++) {
        int fd = crl_tcp_listen(k == 0 ? host_port : addr, &lo);
        if (fd < 0)
            return fd;
        srv->cores[k].lfd = fd;
        if (k == 0) {
            *bound_len = sizeof *bound;
            int rc = crl_socket_local_addr(fd, bound, bound_len);
            if (rc)
                return rc;
            /* "HOST:0" becomes the port it got */
            rc = crl_format_addr((struct sockaddr *)bound, *bound_len, addr, sizeof addr);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static int resolve_opts(struct crl_serve_opts *o, const struct crl_serve_opts *in)
{
    *o = in ? *in : (struct crl_serve_opts){0};
    unsigned ncores = crl_core_count();
    if ((unsigned)o->balance > CRL_BALANCE_LEAST || o->cores > ncores || o->backlog < 0)
        return -EINVAL;
    if (o->cores == 0)
        o->cores = ncores;
    if (o->max_conns == 0)
        o->max_conns = DEFAULT_MAX_CONNS;
    if (o->drain_ns == 0)
        o->drain_ns = DEFAULT_DRAIN_NS;
    return 0;
}

int crl_serve(const char *host_port, const struct crl_serve_opts *opts, crl_conn_fn *fn, void *ctx)
{
    struct server srv = {.fn = fn, .ctx = ctx, .home = crl_core_id()};
    int rc = resolve_opts(&srv.opts, opts);
    if (rc || !fn)
        return rc ? rc : -EINVAL;
    srv.ncores = srv.opts.cores;
    srv.cores = aligned_alloc(64, srv.ncores * sizeof *srv.cores);
    if (!srv.cores)
        return -ENOMEM;
    memset(srv.cores, 0, srv.ncores * sizeof *srv.cores);
    for (unsigned k = 0; k < srv.ncores; k++)
        srv.cores[k] = (struct serve_core){.srv = &srv, .id = k, .lfd = -1};
    crl_event_init(&srv.ended);
    struct sockaddr_storage bound;
    socklen_t bound_len;
    rc = open_listeners(&srv, host_port, &bound, &bound_len);
    if (rc == 0) {
        if (srv.opts.on_ready)
            srv.opts.on_ready(ctx, (struct sockaddr *)&bound, bound_len);
        rc = crl_scope_run(serve_body, &srv);
    }
    for (unsigned k = 0; k < srv.ncores; k++) /* listeners never handed to an acceptor */
        if (srv.cores[k].lfd >= 0)
            crl_close(srv.cores[k].lfd);
    free(srv.cores);
    return rc;
}
