/* fanout.c - a fan-out client with a deadline per call, as in the essay's point that a
 * timeout belongs to each call, not to the whole: N requests go out at once, each with a
 * deadline of its own (300 ms for the endpoint known to be slow, 3 s for the others); the
 * slow one times out (its connection is closed, its task ends with -ETIMEDOUT) while the
 * others succeed, and nothing waits for it beyond its own deadline. crl_join_all waits for
 * every call whatever it returns.
 *
 * The endpoints are an HTTP server started here on loopback: "/fast/N" answers after N ms,
 * "/slow" after 10 s. Exits 0 when exactly the slow call timed out.
 */
#include "corral.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CALLS = 6 };

static int endpoint(crl_http_req *req, crl_http_res *res, void *ctx)
{
    const char *path = crl_http_req_path(req);
    int64_t wait_ns = 10 * CRL_SEC_NS;
    if (!strncmp(path, "/fast/", 6))
        wait_ns = atoi(path + 6) * CRL_MSEC_NS;
    if (crl_sleep_ns(wait_ns)) /* cancelled when the server stops */
        return 0;
    return crl_http_res_send(res, 200, "text/plain", path, strlen(path));
}

struct server {
    struct crl_event ready;
    unsigned port;
};

static void on_ready(void *ctx, const struct sockaddr *addr, socklen_t len)
{
    struct server *sv = ctx;
    sv->port = ntohs(((const struct sockaddr_in *)addr)->sin_port);
    crl_event_set(&sv->ready);
}

static int run_server(void *arg)
{
    struct crl_http_server_opts o = {.serve = {.on_ready = on_ready, .drain_ns = -1}};
    return crl_http_serve("127.0.0.1:0", &o, endpoint, arg);
}

/* One call: its URL and deadline in, its outcome out. */
struct call {
    char url[96];
    int64_t timeout_ns;
    int rc, status;
    int64_t took_ns;
};

static int do_call(void *arg)
{
    struct call *c = arg;
    int64_t start = crl_now_ns();
    struct crl_http_response r;
    c->rc = crl_http_get(c->url, &r, start + c->timeout_ns);
    c->status = r.status;
    c->took_ns = crl_now_ns() - start;
    crl_http_response_fini(&r);
    return c->rc;
}

static int client_body(struct crl_scope *s, void *arg)
{
    struct server *sv = arg;
    int rc = crl_spawn(s, run_server, sv);
    if (rc || (rc = crl_event_wait(&sv->ready)))
        return rc;
    struct call calls[CALLS];
    struct crl_job jobs[CALLS];
    for (int i = 0; i < CALLS; i++) {
        /* Each call its own deadline: a tight one for the endpoint known to be slow. */
        calls[i] = (struct call){.timeout_ns = i == 2 ? 300 * CRL_MSEC_NS : 3 * CRL_SEC_NS};
        if (i == 2)
            snprintf(calls[i].url, sizeof calls[i].url, "http://localhost:%u/slow", sv->port);
        else
            snprintf(calls[i].url, sizeof calls[i].url, "http://localhost:%u/fast/%d", sv->port,
                     5 * i);
        jobs[i] = CRL_JOB(do_call, &calls[i]);
    }
    crl_join_all(jobs, CALLS); /* every call ends by its own deadline */
    int ok = 0, timed_out = 0;
    for (int i = 0; i < CALLS; i++) {
        printf("%-36s %s after %3lld ms\n", calls[i].url,
               calls[i].rc == 0            ? "200"
               : calls[i].rc == -ETIMEDOUT ? "timed out"
                                           : "failed",
               (long long)(calls[i].took_ns / CRL_MSEC_NS));
        ok += calls[i].rc == 0 && calls[i].status == 200;
        timed_out += calls[i].rc == -ETIMEDOUT;
    }
    printf("%d ok, %d timed out\n", ok, timed_out);
    crl_scope_cancel(s); /* the server stops */
    return ok == CALLS - 1 && timed_out == 1 && calls[2].rc == -ETIMEDOUT ? 0 : -EPROTO;
}

static int app_main(void *arg)
{
    struct server sv = {0};
    crl_event_init(&sv.ready);
    return crl_scope_run(client_body, &sv);
}

int main(void)
{
    int rc = crl_run(NULL, app_main, NULL);
    if (rc < 0) {
        fprintf(stderr, "fanout: %d\n", rc);
        return 1;
    }
    return 0;
}
