/* context.c - the first essay's example in corral: a Context of services shared by every
 * request handler with no reference counts and no copies of it. Each handler borrows the
 * context and its request from frames that outlive it (scopes guarantee that), loads things
 * from the "database", fans out one task per thing to service A (each on its own copy of a
 * small struct: crl_spawn_copy), and joins service B and service C with try-join (the first
 * failure cancels the other). Services A, B and C are real HTTP services started on
 * loopback and called by host name ("http://localhost:PORT") through crl_http_get.
 *
 *   moro_local::async_scope!(|scope| {                 crl_scope_run(serve, app)
 *       while let Some(request) = incoming.next()   ->  crl_chan_recv(&incoming, &req)
 *           scope.spawn(async { ... })               ->  crl_spawn(s, handle_request, req)
 *   scope.spawn(async { service_a.do_something() })  ->  crl_spawn_copy(s, call_service, &a, ...)
 *   futures::try_join!(result_b, result_c)           ->  crl_try_join(jobs, 2)
 */
#include "corral.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- The services: HTTP servers answering "/?req=R&thing=T" with R * 100 + T ---------- */

struct service {
    int64_t latency_ns;
    char url[64]; /* "http://localhost:PORT", once listening */
    int calls;    /* counted by the server, which runs on core 0 alone, as every task here */
    struct crl_event ready;
};

static int service_handler(crl_http_req *req, crl_http_res *res, void *ctx)
{
    struct service *svc = ctx;
    int r = 0, t = 0;
    const char *q = crl_http_req_query(req);
    if (!q || sscanf(q, "req=%d&thing=%d", &r, &t) != 2)
        return crl_http_res_send(res, 400, "text/plain", "bad query\n", 10);
    int rc = crl_sleep_ns(svc->latency_ns); /* its work */
    if (rc)
        return rc; /* cancelled, the server stopping: no answer (a 500) */
    svc->calls++;
    char body[32];
    int n = snprintf(body, sizeof body, "%d", r * 100 + t);
    return crl_http_res_send(res, 200, "text/plain", body, (size_t)n);
}

static void service_ready(void *ctx, const struct sockaddr *addr, socklen_t len)
{
    struct service *svc = ctx;
    char name[48]; /* "127.0.0.1:PORT" */
    if (crl_format_addr(addr, len, name, sizeof name) > 0)
        snprintf(svc->url, sizeof svc->url, "http://localhost%s", strrchr(name, ':'));
    crl_event_set(&svc->ready);
}

static int run_service(void *arg)
{
    struct crl_http_server_opts o = {
        .serve = {.cores = 1, .on_ready = service_ready, .drain_ns = -1}};
    return crl_http_serve("127.0.0.1:0", &o, service_handler, arg);
}

/* ---- The application ---------------------------------------------------------------------- */

struct context {
    int64_t db_latency_ns;
    struct service a, b, c;
};

struct request {
    int id;
    const struct context *ctx; /* borrowed: main's frame outlives every handler */
};

/* A call to a service over HTTP: its answer, or a negative errno. */
static int service_call(const struct service *svc, const struct request *req, int thing)
{
    char url[128];
    snprintf(url, sizeof url, "%s/?req=%d&thing=%d", svc->url, req->id, thing);
    struct crl_http_response r;
    int rc = crl_http_get(url, &r, crl_now_ns() + 5 * CRL_SEC_NS);
    if (rc == 0)
        rc = r.status == 200 ? atoi(r.body) : -EPROTO;
    crl_http_response_fini(&r);
    return rc;
}

static int db_load_things(const struct context *ctx, const struct request *req, int *things)
{
    int rc = crl_sleep_ns(ctx->db_latency_ns);
    if (rc)
        return rc;
    int n = 1 + req->id % 3;
    for (int i = 0; i < n; i++)
        things[i] = i;
    return n;
}

struct call {
    const struct request *req;
    const struct service *svc;
    int thing;
    int result;
};

static int call_service(void *arg)
{
    struct call *c = arg;
    c->result = service_call(c->svc, c->req, c->thing);
    if (c->result >= 0 && c->result != c->req->id * 100 + c->thing)
        c->result = -EPROTO; /* a wrong answer */
    return c->result < 0 ? c->result : 0;
}

/* One request's scope. A call to A is spawned on its own copy of a struct call (the parent
 * needs only its error, which the scope collects); b and c are joined before the body
 * returns, so they may live in its frame. */
static int handle_body(struct crl_scope *s, void *arg)
{
    const struct request *req = arg;
    const struct context *ctx = req->ctx;
    int things[3];
    int n = db_load_things(ctx, req, things);
    if (n < 0)
        return n;
    for (int i = 0; i < n; i++) {
        struct call a = {req, &ctx->a, things[i], 0};
        int rc = crl_spawn_copy(s, call_service, &a, sizeof a);
        if (rc)
            return rc;
    }
    struct call b = {req, &ctx->b, 0, 0}, c = {req, &ctx->c, 0, 0};
    struct crl_job jobs[] = {CRL_JOB(call_service, &b), CRL_JOB(call_service, &c)};
    int rc = crl_try_join(jobs, 2); /* joins b and c before they go away */
    if (rc)
        return rc;
    printf("request %d: %d thing(s), response {b: %d, c: %d}\n", req->id, n, b.result, c.result);
    return 0;
}

static int handle_request(void *arg) { return crl_scope_run(handle_body, arg); }

enum { REQUESTS = 8 };

struct app {
    struct context ctx;
    struct crl_chan incoming;
    struct request requests[REQUESTS];
};

static int produce_requests(void *arg)
{
    struct app *app = arg;
    for (int i = 0; i < REQUESTS; i++) {
        app->requests[i] = (struct request){i, &app->ctx};
        struct request *r = &app->requests[i];
        int rc = crl_chan_send(&app->incoming, &r);
        if (rc || (rc = crl_sleep_ns(CRL_MSEC_NS)))
            return rc;
    }
    crl_chan_close(&app->incoming);
    return 0;
}

static int serve(struct crl_scope *s, void *arg)
{
    struct app *app = arg;
    int rc = crl_spawn(s, produce_requests, app);
    struct request *req;
    while (rc == 0 && crl_chan_recv(&app->incoming, &req) == 0)
        rc = crl_spawn(s, handle_request, req);
    return rc;
}

/* Start the three services, serve the requests, then stop the services. */
static int app_body(struct crl_scope *s, void *arg)
{
    struct app *app = arg;
    struct service *svcs[] = {&app->ctx.a, &app->ctx.b, &app->ctx.c};
    for (int i = 0; i < 3; i++) {
        crl_event_init(&svcs[i]->ready);
        int rc = crl_spawn(s, run_service, svcs[i]);
        if (rc || (rc = crl_event_wait(&svcs[i]->ready)))
            return rc;
    }
    int rc = crl_scope_run(serve, app);
    crl_scope_cancel(s); /* the services stop */
    return rc;
}

static int app_main(void *arg)
{
    (void)arg;
    struct app app = {.ctx = {.db_latency_ns = 2 * CRL_MSEC_NS,
                              .a = {.latency_ns = 3 * CRL_MSEC_NS},
                              .b = {.latency_ns = 1 * CRL_MSEC_NS},
                              .c = {.latency_ns = 4 * CRL_MSEC_NS}}};
    int rc = crl_chan_init(&app.incoming, sizeof(struct request *), 4);
    if (rc)
        return rc;
    rc = crl_scope_run(app_body, &app);
    crl_chan_fini(&app.incoming);
    printf("calls: a=%d b=%d c=%d\n", app.ctx.a.calls, app.ctx.b.calls, app.ctx.c.calls);
    /* Requests 0..7 load 1, 2, 3, 1, 2, 3, 1, 2 things: 15 calls to A, one each to B and C. */
    if (rc == 0 && (app.ctx.a.calls != 15 || app.ctx.b.calls != 8 || app.ctx.c.calls != 8))
        rc = -EPROTO;
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
