/* context.c - the first essay's example in corral: a Context of services shared by every
 * request handler with no reference counts and no copies. Each handler borrows the context
 * and its request from frames that outlive it (scopes guarantee that), loads things from the
 * "database", fans out one task per thing to service A, and joins service B and service C
 * with try-join (the first failure cancels the other).
 *
 *   moro_local::async_scope!(|scope| {                 crl_scope_run(serve, &ctx)
 *       while let Some(request) = incoming.next()   ->  crl_chan_recv(&incoming, &req)
 *           scope.spawn(async { ... })               ->  crl_spawn(s, handle_request, req)
 *   futures::try_join!(result_b, result_c)           ->  crl_try_join(jobs, 2)
 */
#include "corral.h"

#include <errno.h>
#include <stdio.h>

struct database {
    int64_t latency_ns;
};
struct service {
    const char *name;
    int64_t latency_ns;
    int calls;
};

struct context {
    struct database db;
    struct service service_a, service_b, service_c;
};

struct request {
    int id;
    const struct context *ctx; /* borrowed: main's frame outlives every handler */
};

/* A call to a service: waits its latency (a stand-in for network I/O). */
static int service_call(struct service *svc, const struct request *req, int thing)
{
    int rc = crl_sleep_ns(svc->latency_ns);
    if (rc)
        return rc;
    svc->calls++;
    return req->id * 100 + thing;
}

static int db_load_things(const struct database *db, const struct request *req, int *things)
{
    int rc = crl_sleep_ns(db->latency_ns);
    if (rc)
        return rc;
    int n = 1 + req->id % 3;
    for (int i = 0; i < n; i++)
        things[i] = i;
    return n;
}

struct call {
    const struct request *req;
    struct service *svc;
    int thing;
    int result;
};

static int call_service(void *arg)
{
    struct call *c = arg;
    c->result = service_call(c->svc, c->req, c->thing);
    return c->result < 0 ? c->result : 0;
}

/* What one request's handler owns. It lives in handle_request's frame, the frame that calls
 * crl_scope_run, so every task of the scope may borrow from it. */
struct handler {
    const struct request *req;
    int things[3];
    struct call a_calls[3], b, c;
};

static int handle_body(struct crl_scope *s, void *arg)
{
    struct handler *h = arg;
    struct context *ctx = (struct context *)h->req->ctx;
    int n = db_load_things(&ctx->db, h->req, h->things);
    if (n < 0)
        return n;
    for (int i = 0; i < n; i++) {
        h->a_calls[i] = (struct call){h->req, &ctx->service_a, h->things[i], 0};
        int rc = crl_spawn(s, call_service, &h->a_calls[i]);
        if (rc)
            return rc;
    }
    h->b = (struct call){h->req, &ctx->service_b, 0, 0};
    h->c = (struct call){h->req, &ctx->service_c, 0, 0};
    struct crl_job jobs[] = {CRL_JOB(call_service, &h->b), CRL_JOB(call_service, &h->c)};
    int rc = crl_try_join(jobs, 2); /* joins b and c before jobs[] goes away */
    if (rc)
        return rc;
    printf("request %d: %d thing(s), response {b: %d, c: %d}\n", h->req->id, n, h->b.result,
           h->c.result);
    return 0;
}

static int handle_request(void *arg)
{
    struct handler h = {.req = arg};
    return crl_scope_run(handle_body, &h);
}

struct server {
    struct context ctx;
    struct crl_chan incoming;
    struct request requests[8];
};

static int produce_requests(void *arg)
{
    struct server *srv = arg;
    for (int i = 0; i < 8; i++) {
        srv->requests[i] = (struct request){i, &srv->ctx};
        struct request *r = &srv->requests[i];
        int rc = crl_chan_send(&srv->incoming, &r);
        if (rc)
            return rc;
        crl_sleep_ns(CRL_MSEC_NS);
    }
    crl_chan_close(&srv->incoming);
    return 0;
}

static int serve(struct crl_scope *s, void *arg)
{
    struct server *srv = arg;
    int rc = crl_spawn(s, produce_requests, srv);
    struct request *req;
    while (rc == 0 && crl_chan_recv(&srv->incoming, &req) == 0)
        rc = crl_spawn(s, handle_request, req);
    return rc;
}

static int app_main(void *arg)
{
    (void)arg;
    struct server srv = {
        .ctx = {.db = {2 * CRL_MSEC_NS},
                .service_a = {"a", 3 * CRL_MSEC_NS, 0},
                .service_b = {"b", 1 * CRL_MSEC_NS, 0},
                .service_c = {"c", 4 * CRL_MSEC_NS, 0}},
    };
    int rc = crl_chan_init(&srv.incoming, sizeof(struct request *), 4);
    if (rc)
        return rc;
    rc = crl_scope_run(serve, &srv);
    crl_chan_fini(&srv.incoming);
    printf("calls: a=%d b=%d c=%d\n", srv.ctx.service_a.calls, srv.ctx.service_b.calls,
           srv.ctx.service_c.calls);
    return rc;
}

int main(void)
{
    int rc = crl_run(NULL, app_main, NULL);
    if (rc < 0) {
        fprintf(stderr, "context: %d\n", rc);
        return 1;
    }
    return 0;
}
