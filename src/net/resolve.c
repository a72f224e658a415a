/* resolve.c - "HOST:PORT" to socket addresses: numeric ones parsed on the spot, names looked
 * up with getaddrinfo on the blocking pool. A lookup is a heap record the pool owns as much
 * as the caller does: a caller cancelled mid-lookup leaves at once and whichever side lets go
 * last frees it (the pool thread, or the core when the late result comes back). */
#define _GNU_SOURCE
#include "net.h"
#include "../runtime/dump.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

crl__resolve_fn *crl__resolve_hook;
atomic_long crl__resolve_jobs_live;

enum { MAX_HOST = 253, MAX_ADDRS = 16 };

/* A host name as a resolver takes it: letters, digits, '-', '.', '_'. */
static bool is_host_name(const char *s, size_t n)
{
    if (n == 0 || n > MAX_HOST)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_';
        if (!ok)
            return false;
    }
    return true;
}

int crl__split_host_port(const char *host_port, char *host, char *port)
{
    const char *colon = host_port ? strrchr(host_port, ':') : NULL;
    if (!colon || !is_host_name(host_port, (size_t)(colon - host_port)))
        return -EINVAL; /* brackets and IPv6 literals are crl_parse_addr's, or wrong */
    const char *p = colon + 1;
    size_t digits = strspn(p, "0123456789");
    if (digits == 0 || digits > 5 || p[digits] || strtol(p, NULL, 10) > 65535)
        return -EINVAL;
    memcpy(host, host_port, (size_t)(colon - host_port));
    host[colon - host_port] = 0;
    memcpy(port, p, digits + 1);
    return 0;
}

/* getaddrinfo's EAI_* codes as the errno values corral.h documents for crl_resolve. */
static int gai_errno(int gai, int sys_errno)
{
    switch (gai) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return -ENOENT;
    case EAI_AGAIN: return -EAGAIN;
    case EAI_MEMORY: return -ENOMEM;
    case EAI_SYSTEM: return sys_errno > 0 ? -sys_errno : -EIO;
    case EAI_SERVICE:
    case EAI_FAMILY:
    case EAI_SOCKTYPE:
    case EAI_BADFLAGS: return -EINVAL;
    default: return -EIO; /* EAI_FAIL: the name server failed for good */
    }
}

/* The lookup itself, on whatever thread blocks for it: up to max addresses, in the
 * resolver's order. Returns how many, or a negative errno. */
static int getaddrinfo_lookup(const char *host, const char *port, struct sockaddr_storage *addrs,
                              socklen_t *lens, size_t max)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai)
        return gai_errno(gai, errno);
    size_t n = 0;
    for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof *addrs)
            continue;
        memset(&addrs[n], 0, sizeof addrs[n]);
        memcpy(&addrs[n], ai->ai_addr, ai->ai_addrlen);
        lens[n++] = ai->ai_addrlen;
    }
    freeaddrinfo(res);
    return n ? (int)n : -ENOENT;
}

static int lookup(const char *host, const char *port, struct sockaddr_storage *addrs,
                  socklen_t *lens, size_t max)
{
    crl__resolve_fn *fn = crl__resolve_hook ? crl__resolve_hook : getaddrinfo_lookup;
    return fn(host, port, addrs, lens, max);
}

/* ---- A lookup on the blocking pool ------------------------------------------------------- */

struct resolve_job {
    struct crl__job job;     /* first: the pool hands back a pointer to it */
    struct crl_task *waiter; /* NULL once the caller gave up on it */
    bool finished;
    char host[MAX_HOST + 1];
    char port[6];
    size_t max;
    struct sockaddr_storage addrs[MAX_ADDRS];
    socklen_t lens[MAX_ADDRS];
};

static void job_free(struct crl__job *job)
{
    free(job);
    atomic_fetch_sub(&crl__resolve_jobs_live, 1);
}

static int job_run(struct crl__job *job)
{
    struct resolve_job *j = (struct resolve_job *)job;
    return lookup(j->host, j->port, j->addrs, j->lens, j->max);
}

/* Back on the core: wake the caller, or free a result nobody waits for any more. */
static void job_done(struct crl__core *c, struct crl__job *job)
{
    (void)c;
    struct resolve_job *j = (struct resolve_job *)job;
    j->finished = true;
    if (j->waiter)
        crl__wake(j->waiter, 0);
    else
        job_free(job);
}

/* The caller was cancelled: it leaves now, and the job is freed by whoever ends it. */
static void job_unpark(struct crl_task *t)
{
    struct resolve_job *j = t->park_obj;
    j->waiter = NULL;
    if (crl__pool_abandon(&j->job))
        t->core->io->offload_pending--; /* it will never come back to the core */
}

/* What a task parked in wait_job waits for, for crl_dump. */
static bool describe_wait(void (*unpark)(struct crl_task *t), const void *obj, int64_t now_ns,
                          char *out, size_t cap)
{
    (void)now_ns;
    if (unpark != job_unpark)
        return false;
    const struct resolve_job *j = obj;
    snprintf(out, cap, "name lookup of %s:%s (blocking pool job)", j->host, j->port);
    return true;
}

__attribute__((constructor)) static void register_describer(void)
{
    crl__dump_add_describer(describe_wait);
    crl__trace_name_park(job_unpark, CRL__PARK_POOL);
}

struct wait_call {
    struct resolve_job *j;
};

/* Park until the job is back. On a cancellation j belongs to the pool (see job_unpark). */
static int wait_job(void *arg)
{
    struct wait_call *w = arg;
    while (!w->j->finished) {
        int rc = crl__park(job_unpark, w->j);
        if (rc)
            return rc;
    }
    return 0;
}

static int submit_and_wait(struct crl_task *t, struct resolve_job *j, int64_t deadline_ns)
{
    struct crl__core *c = t->core;
    j->waiter = t;
    c->io->offload_pending++;
    int rc = crl__pool_submit(c, &j->job);
    if (rc) {
        c->io->offload_pending--;
        job_free(&j->job);
        return rc;
    }
    struct wait_call w = {j};
    return deadline_ns == CRL_NO_DEADLINE ? wait_job(&w)
                                          : crl_with_deadline(deadline_ns, wait_job, &w);
}

/* A name looked up on the pool, the calling task waiting. */
static int resolve_in_pool(struct crl_task *t, const char *host, const char *port,
                           struct sockaddr_storage *addrs, socklen_t *lens, size_t max,
                           int64_t deadline_ns)
{
    int rc = crl__cancel_status(t);
    if (rc)
        return rc;
    struct resolve_job *j = calloc(1, sizeof *j);
    if (!j)
        return -ENOMEM;
    atomic_fetch_add(&crl__resolve_jobs_live, 1);
    j->job = (struct crl__job){.run = job_run, .done = job_done, .release = job_free};
    strcpy(j->host, host);
    strcpy(j->port, port);
    j->max = max < MAX_ADDRS ? max : MAX_ADDRS;
    rc = submit_and_wait(t, j, deadline_ns);
    if (rc)
        return rc; /* j is not ours any more */
    rc = j->job.result;
    for (int i = 0; i < rc; i++) {
        addrs[i] = j->addrs[i];
        lens[i] = j->lens[i];
    }
    job_free(&j->job);
    return rc;
}

/* ---- Public ------------------------------------------------------------------------------ */

int crl_resolve(const char *host_port, struct sockaddr_storage *addrs, socklen_t *lens, size_t max,
                int64_t deadline_ns)
{
    if (!addrs || !lens || max == 0)
        return -EINVAL;
    if (crl_parse_addr(host_port, &addrs[0], &lens[0]) == 0)
        return 1; /* numeric: no lookup */
    char host[MAX_HOST + 1], port[6];
    int rc = crl__split_host_port(host_port, host, port);
    if (rc)
        return rc;
    struct crl__core *c = crl__core();
    if (!c || c->cur == &c->loop) /* outside a task: block the thread */
        return lookup(host, port, addrs, lens, max);
    return resolve_in_pool(c->cur, host, port, addrs, lens, max, deadline_ns);
}
