/* own_llhttp.c - a program that links libcorral.a and has an llhttp of its own (here: two
 * functions of llhttp's names and other signatures) and a function of one of corral's
 * internal names. It must link statically, and corral's HTTP parser must still be corral's:
 * a request through corral's server and client gets its answer, and these are never called. */
#define _POSIX_C_SOURCE 200809L
#include <corral.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int llhttp_init(const char *who);
int llhttp_execute(const char *who);
int crl__self(const char *who);

static int not_corrals(const char *who)
{
    fprintf(stderr, "own_llhttp: corral called the program's %s\n", who);
    abort();
}

int llhttp_init(const char *who) { return not_corrals(who ? who : "llhttp_init"); }
int llhttp_execute(const char *who) { return not_corrals(who ? who : "llhttp_execute"); }
int crl__self(const char *who) { return not_corrals(who ? who : "crl__self"); }

struct demo {
    struct crl_event ready;
    char addr[64];
    int serve_rc;
};

static void on_ready(void *ctx, const struct sockaddr *addr, socklen_t len)
{
    struct demo *d = ctx;
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)addr;
    (void)len;
    snprintf(d->addr, sizeof d->addr, "127.0.0.1:%u", ntohs(v4->sin_port));
    crl_event_set(&d->ready);
}

static int handler(crl_http_req *req, crl_http_res *res, void *ctx)
{
    (void)ctx;
    const char *answer = strcmp(crl_http_req_path(req), "/own") == 0 ? "corral's" : "?";
    return crl_http_res_send(res, 200, "text/plain", answer, strlen(answer));
}

static int server(void *arg)
{
    struct demo *d = arg;
    struct crl_http_server_opts o = {.serve.on_ready = on_ready};
    d->serve_rc = crl_http_serve("127.0.0.1:0", &o, handler, d);
    crl_event_set(&d->ready); /* in case it failed before listening */
    return 0;
}

static int request(struct demo *d)
{
    struct crl_http_client *c;
    int rc = crl_http_client_open(&c, d->addr, NULL);
    if (rc)
        return rc;
    struct crl_http_request req = {
        .method = "GET", .target = "/own", .deadline_ns = CRL_NO_DEADLINE};
    struct crl_http_response r;
    rc = crl_http_client_request(c, &req, &r);
    if (rc == 0) {
        printf("%d %s\n", r.status, r.body);
        rc = r.status == 200 && strcmp(r.body, "corral's") == 0 ? 0 : -1;
        crl_http_response_fini(&r);
    }
    crl_http_client_close(c);
    return rc;
}

static int body(struct crl_scope *s, void *arg)
{
    struct demo *d = arg;
    int rc = crl_spawn(s, server, d);
    if (rc)
        return rc;
    crl_event_wait(&d->ready);
    rc = d->serve_rc ? d->serve_rc : request(d);
    crl_scope_cancel(s); /* stops the server */
    return rc;
}

static int app(void *arg)
{
    struct demo *d = arg;
    crl_event_init(&d->ready);
    return crl_scope_run(body, d);
}

int main(void)
{
    struct demo d = {.serve_rc = 0};
    struct crl_config cfg = {.cores = 1};
    int rc = crl_run(&cfg, app, &d);
    if (rc)
        fprintf(stderr, "own_llhttp: %s\n", strerror(rc < 0 ? -rc : rc));
    return rc != 0;
}
