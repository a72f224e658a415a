/* fetch.c - requests by URL over a per-core pool of kept-alive connections. Each core keeps
 * its idle clients (one connection each) in a list, oldest first, bounded per host and in
 * all; a timer on the core's wheel closes those idle past the timeout, and the pool goes
 * with the core when the runtime ends. A client taken from the pool checks its connection
 * with a peek before it sends (client.c), so one the server closed meanwhile is redialled. */
#define _GNU_SOURCE
#include "client.h"

#include "../core/core.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_MAX_IDLE_PER_HOST 8
#define DEFAULT_MAX_IDLE 64
#define DEFAULT_IDLE_TIMEOUT_NS (30 * CRL_SEC_NS)

struct idle {
    struct crl__list link; /* in pool.idle, oldest first */
    struct crl_http_client *c;
    int64_t since_ns;
};

struct pool {
    bool ready;
    struct crl__core *core;
    struct crl_http_pool_opts opts; /* defaults filled in */
    struct crl__list idle;
    struct crl__timer timer; /* armed while some connection is idle */
    struct crl_http_pool_stats stats;
};

/* ---- The pool ---------------------------------------------------------------------------- */

static void fill_defaults(struct crl_http_pool_opts *o)
{
    if (o->max_idle_per_host == 0)
        o->max_idle_per_host = DEFAULT_MAX_IDLE_PER_HOST;
    if (o->max_idle == 0)
        o->max_idle = DEFAULT_MAX_IDLE;
    if (o->idle_timeout_ns == 0)
        o->idle_timeout_ns = DEFAULT_IDLE_TIMEOUT_NS;
}

static void close_idle(struct pool *p, struct idle *e)
{
    crl__list_del(&e->link);
    p->stats.idle--;
    crl_http_client_close(e->c);
    free(e);
}

static struct idle *oldest(struct pool *p)
{
    return crl__list_empty(&p->idle) ? NULL : crl__container_of(p->idle.next, struct idle, link);
}

/* Close what has been idle for the timeout, then arm the timer for the next to go. */
static void expire(struct pool *p, int64_t now_ns)
{
    struct idle *e;
    while ((e = oldest(p)) && crl__deadline_after(e->since_ns, p->opts.idle_timeout_ns) <= now_ns)
        close_idle(p, e);
    if (e)
        crl__timer_arm(&p->core->wheel, &p->timer,
                       crl__deadline_after(e->since_ns, p->opts.idle_timeout_ns));
    else
        crl__timer_disarm(&p->core->wheel, &p->timer);
}

static void timer_fire(struct crl__timer *t)
{
    expire(crl__container_of(t, struct pool, timer), crl_now_ns());
}

static void close_all(struct pool *p)
{
    struct idle *e;
    while ((e = oldest(p)))
        close_idle(p, e);
    crl__timer_disarm(&p->core->wheel, &p->timer);
}

/* The core goes: so do its idle connections. */
static void pool_dtor(void *value)
{
    struct pool *p = value;
    if (p->ready)
        close_all(p);
}

static int pool_key = -1;
static pthread_once_t pool_key_once = PTHREAD_ONCE_INIT;

static void make_key(void) { pool_key = crl_core_local_create(sizeof(struct pool), pool_dtor); }

/* The calling core's pool, made on first use; NULL when out of memory or keys. */
static struct pool *pool_get(void)
{
    pthread_once(&pool_key_once, make_key);
    struct pool *p = crl_core_local_get(pool_key);
    if (p && !p->ready) {
        p->ready = true;
        p->core = crl__core();
        fill_defaults(&p->opts);
        crl__list_init(&p->idle);
        p->timer.fire = timer_fire;
    }
    return p;
}

/* The idle client for host_port used last (the likeliest to be alive), or NULL. */
static struct crl_http_client *take(struct pool *p, const char *host_port)
{
    expire(p, crl_now_ns());
    for (struct crl__list *l = p->idle.prev; l != &p->idle; l = l->prev) {
        struct idle *e = crl__container_of(l, struct idle, link);
        if (strcmp(crl__http_client_host(e->c), host_port) == 0) {
            struct crl_http_client *c = e->c;
            crl__list_del(&e->link);
            free(e);
            p->stats.idle--;
            p->stats.reused++;
            expire(p, crl_now_ns());
            return c;
        }
    }
    return NULL;
}

static struct idle *oldest_of_host(struct pool *p, const char *host_port, size_t *count)
{
    struct idle *first = NULL;
    *count = 0;
    for (struct crl__list *l = p->idle.next; l != &p->idle; l = l->next) {
        struct idle *e = crl__container_of(l, struct idle, link);
        if (strcmp(crl__http_client_host(e->c), host_port) == 0) {
            first = first ? first : e;
            (*count)++;
        }
    }
    return first;
}

/* Keep c for the next request to its host if its connection is alive, making room within
 * the bounds by closing the oldest idle ones; else close it. */
static void put(struct pool *p, struct crl_http_client *c)
{
    bool keep = crl__http_client_kept(c) && p->opts.idle_timeout_ns > 0;
    struct idle *e = keep ? malloc(sizeof *e) : NULL;
    if (!e) {
        crl_http_client_close(c);
        return;
    }
    size_t same;
    struct idle *old = oldest_of_host(p, crl__http_client_host(c), &same);
    if (same >= p->opts.max_idle_per_host)
        close_idle(p, old);
    if (p->stats.idle >= p->opts.max_idle)
        close_idle(p, oldest(p));
    *e = (struct idle){.c = c, .since_ns = crl_now_ns()};
    crl__list_add_tail(&p->idle, &e->link);
    p->stats.idle++;
    expire(p, e->since_ns);
}

/* ---- URLs -------------------------------------------------------------------------------- */

/* Where the host of an authority [at, end) stops: at the ':' before its port, or at its
 * end; NULL for a bracketed IPv6 literal not closed or followed by something else. */
static const char *host_stop(const char *at, const char *end)
{
    if (*at == '[') {
        const char *close = memchr(at, ']', (size_t)(end - at));
        return close && (close + 1 == end || close[1] == ':') ? close + 1 : NULL;
    }
    const char *colon = memchr(at, ':', (size_t)(end - at));
    return colon ? colon : end;
}

static char ascii_lower(char ch) { return ch >= 'A' && ch <= 'Z' ? (char)(ch | 0x20) : ch; }

/* The authority of an http URL as "host:port" into host_port (a name lowercased, port 80 if
 * none), and where the path starts in *rest. The client checks the host and port. */
static int parse_authority(const char *at, char *host_port, size_t cap, const char **rest)
{
    size_t len = strcspn(at, "/?#");
    const char *end = at + len, *stop = host_stop(at, end);
    *rest = end;
    if (!stop || stop == at || memchr(at, '@', len))
        return -EINVAL; /* no host, or userinfo (not taken) */
    const char *port = stop < end ? stop + 1 : end;
    size_t host_len = (size_t)(stop - at), port_len = (size_t)(end - port);
    if (port_len == 0) { /* none, or "host:" (RFC 3986 3.2.3) */
        port = "80";
        port_len = 2;
    }
    if (host_len + port_len + 2 > cap)
        return -EINVAL;
    for (size_t i = 0; i < host_len; i++)
        host_port[i] = at[0] == '[' ? at[i] : ascii_lower(at[i]);
    host_port[host_len] = ':';
    memcpy(host_port + host_len + 1, port, port_len);
    host_port[host_len + 1 + port_len] = 0;
    return 0;
}

/* The request target of what follows the authority: the path and query, without the
 * fragment, "/" for an empty path. Allocated. */
static char *target_of(const char *rest)
{
    size_t len = strcspn(rest, "#");
    bool slash = rest[0] != '/';
    char *t = malloc(len + slash + 1);
    if (!t)
        return NULL;
    t[0] = '/';
    memcpy(t + slash, rest, len);
    t[len + slash] = 0;
    return t;
}

static int parse_url(const char *url, char *host_port, size_t cap, char **target)
{
    if (!url)
        return -EINVAL;
    if (!strncasecmp(url, "https://", 8))
        return -EPROTONOSUPPORT;
    if (strncasecmp(url, "http://", 7))
        return -EINVAL;
    const char *rest;
    int rc = parse_authority(url + 7, host_port, cap, &rest);
    if (rc)
        return rc;
    for (const char *t = rest; *t && *t != '#'; t++)
        if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
            return -EINVAL; /* as the client would refuse it, but before a client is made */
    *target = target_of(rest);
    return *target ? 0 : -ENOMEM;
}

/* ---- Public ------------------------------------------------------------------------------ */

int crl_http_fetch(const char *method, const char *url, const struct crl_http_request *req,
                   struct crl_http_response *out)
{
    memset(out, 0, sizeof *out);
    char host_port[300], *target;
    int rc = parse_url(url, host_port, sizeof host_port, &target);
    if (rc)
        return rc;
    struct pool *p = pool_get();
    struct crl_http_client *c = p ? take(p, host_port) : NULL;
    if (!p)
        rc = -ENOMEM;
    else if (!c && (rc = crl_http_client_open(&c, host_port, &p->opts.client)) == 0)
        p->stats.opened++;
    if (rc == 0) {
        struct crl_http_request r = req ? *req : (struct crl_http_request){0};
        if (!req)
            r.deadline_ns = CRL_NO_DEADLINE;
        r.method = method ? method : "GET";
        r.target = target;
        rc = crl_http_client_request(c, &r, out);
        put(p, c);
    }
    free(target);
    return rc;
}

int crl_http_get(const char *url, struct crl_http_response *out, int64_t deadline_ns)
{
    struct crl_http_request req = {.deadline_ns = deadline_ns};
    return crl_http_fetch("GET", url, &req, out);
}

int crl_http_pool_set_opts(const struct crl_http_pool_opts *opts)
{
    struct crl_http_pool_opts o = opts ? *opts : (struct crl_http_pool_opts){0};
    if (!crl__core())
        return -EINVAL;
    struct pool *p = pool_get();
    if (!p)
        return -ENOMEM;
    fill_defaults(&o);
    close_all(p);
    p->opts = o;
    return 0;
}

void crl_http_pool_stats(struct crl_http_pool_stats *out)
{
    struct pool *p = pool_get();
    *out = p ? p->stats : (struct crl_http_pool_stats){0};
}
