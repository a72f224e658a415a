/* corral-httpd.c - the demo HTTP/1.1 server on corral: hello, the essay's CPU-work route, an
 * echo, static files under --root and, with --metrics, the runtime's counters for Prometheus,
 * served thread-per-core until SIGINT or SIGTERM stops it gracefully (in-flight requests
 * finish, then exit 0). SIGUSR1 writes the counters and a dump of every task to stderr, from
 * a thread of its own; --debug adds a route whose handler blocks in sleep(1), for the stall
 * detector to report. */
#define _GNU_SOURCE
#include "corral.h"
#include "static.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifndef CORRAL_VERSION
#error "CORRAL_VERSION, the project's version, comes from meson.build"
#endif

struct httpd {
    const char *addr;
    const char *root;
    unsigned cores; /* 0 = every CPU of the affinity mask (crl_run's default) */
    enum crl_backend backend;
    enum crl_balance balance;
    unsigned max_conns;          /* --max-conns: per core, 0 = crl_serve's default */
    bool work;                   /* GET / does the /work route's work */
    bool metrics;                /* GET /metrics serves the counters */
    bool debug;                  /* GET /debug/sleep blocks its core for a second */
    const char *trace_file;      /* --trace: crl_config.trace_file */
    int rootfd;                  /* --root, opened O_PATH */
    struct crl_scope *scope;     /* the scope running the server; a signal cancels it */
    struct inspector *inspector; /* SIGUSR1's thread */
};

/* ---- Routes ----------------------------------------------------------------------------- */

static bool is_get_or_head(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

static int send_text(crl_http_res *res, int status, const char *text)
{
    return crl_http_res_send(res, status, "text/plain; charset=utf-8", text, strlen(text));
}

static int not_found(crl_http_res *res) { return send_text(res, 404, "Not Found\n"); }

static int not_allowed(crl_http_res *res, const char *allow)
{
    int rc = crl_http_res_header(res, "Allow", allow);
    return rc ? rc : send_text(res, 405, "Method Not Allowed\n");
}

/* Per-core xorshift64 (each executor thread is one core, and a task never changes core). */
static __thread uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    if (x == 0) /* first use on this core */
        x = ((uint64_t)crl_now_ns() ^ (crl_core_id() + 1) * UINT64_C(0x9E3779B97F4A7C15)) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

/* 10 us of CPU work that never yields: the essay's unit of work. */
static int spin_task(void *arg)
{
    int64_t until = crl_now_ns() + 10 * CRL_USEC_NS;
    while (crl_now_ns() < until)
        ;
    return 0;
}

static int work_body(struct crl_scope *s, void *arg)
{
    unsigned n = *(const unsigned *)arg;
    for (unsigned i = 0; i < n; i++) {
        int rc = crl_spawn(s, spin_task, NULL);
        if (rc)
            return rc;
    }
    return 0;
}

/* The second benchmark: 0..10 children, each 10 us of work, joined before answering. */
static int route_work(crl_http_res *res)
{
    unsigned n = (unsigned)(rng_next() % 11);
    int rc = crl_scope_run(work_body, &n);
    return rc ? rc : send_text(res, 200, "done");
}

static int route_echo(crl_http_req *req, crl_http_res *res)
{
    const void *body;
    ssize_t n = crl_http_req_body(req, &body);
    if (n < 0)
        return (int)n; /* the server has answered (413, 408, 400) */
    const char *type = crl_http_req_header(req, "Content-Type");
    return crl_http_res_send(res, 200, type ? type : "application/octet-stream", body, (size_t)n);
}

/* GET /metrics: every core's counters in the Prometheus text format (version 0.0.4). */
static int route_metrics(crl_http_res *res)
{
    size_t cap = crl_metrics_text(NULL, 0) + 256; /* room for counters that grow meanwhile */
    for (;;) {
        char *text = malloc(cap);
        if (!text)
            return send_text(res, 503, "Service Unavailable\n");
        size_t len = crl_metrics_text(text, cap);
        if (len < cap) {
            int rc = crl_http_res_send(res, 200, "text/plain; version=0.0.4", text, len);
            free(text);
            return rc;
        }
        free(text);
        cap = len + 256;
    }
}

/* GET /debug/sleep (--debug): a handler making the mistake the stall detector is for, a
 * blocking call that holds its core's thread. The detector's signal cuts the sleep short
 * (nanosleep returns EINTR, sleep(3) what is left): it reports the stall, it does not cure
 * it. The answer tells how long the sleep lasted. Not inlined, so that the report's
 * backtrace names it. */
__attribute__((noinline)) static int route_debug_sleep(crl_http_res *res)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sleep(1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long ms = (t1.tv_sec - t0.tv_sec) * 1000LL + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    char text[64];
    snprintf(text, sizeof text, "slept %lld ms\n", ms);
    return send_text(res, 200, text);
}

/* GET /debug/slow (--debug): a slow response, as a long poll is: the handler waits 10 s
 * (without holding its core) before it answers. bench/idle.sh measures the memory of
 * connections with such a response in flight. */
static int route_debug_slow(crl_http_res *res)
{
    int rc = crl_sleep_ns(10 * CRL_SEC_NS);
    return rc ? rc : send_text(res, 200, "done\n");
}

/* ---- Static files ----------------------------------------------------------------------- */

/* What the blocking pool needs to open a file, and what it gives back. */
struct file_open {
    int rootfd;
    char rel[PATH_MAX];
    struct crl__static_file f;
};

static int open_job(void *arg)
{
    struct file_open *o = arg;
    return crl__static_open(o->rootfd, o->rel, &o->f);
}

/* A directory asked for without its final '/': send the client to it, so that the relative
 * links of its index.html resolve inside it. */
static int redirect_to_dir(crl_http_req *req, crl_http_res *res)
{
    char location[PATH_MAX];
    int n = snprintf(location, sizeof location, "%s/", crl_http_req_path(req));
    if (n < 0 || (size_t)n >= sizeof location)
        return not_found(res);
    int rc = crl_http_res_header(res, "Location", location);
    return rc ? rc : send_text(res, 301, "Moved Permanently\n");
}

static int add_validators(crl_http_res *res, const char *etag, time_t mtime)
{
    char date[32];
    int rc = crl_http_res_header(res, "ETag", etag);
    if (rc == 0 && crl__static_http_date(mtime, date, sizeof date) > 0)
        rc = crl_http_res_header(res, "Last-Modified", date);
    return rc ? rc : crl_http_res_header(res, "Accept-Ranges", "bytes");
}

/* 416 for a range past the end; else 206 with the range, or 200 with the whole file. */
static int send_range(crl_http_res *res, const struct crl__static_file *f, const char *type,
                      enum crl__range range, int64_t offset, int64_t len)
{
    int64_t size = f->st.st_size;
    char value[80];
    if (range == CRL__RANGE_NONE)
        return crl_http_res_send_file(res, 200, type, f->fd, 0, size);
    if (range == CRL__RANGE_UNSATISFIABLE)
        snprintf(value, sizeof value, "bytes */%" PRId64, size);
    else
        snprintf(value, sizeof value, "bytes %" PRId64 "-%" PRId64 "/%" PRId64, offset,
                 offset + len - 1, size);
    int rc = crl_http_res_header(res, "Content-Range", value);
    if (rc)
        return rc;
    if (range == CRL__RANGE_UNSATISFIABLE)
        return send_text(res, 416, "Range Not Satisfiable\n");
    return crl_http_res_send_file(res, 206, type, f->fd, offset, len);
}

static int serve_file(crl_http_req *req, crl_http_res *res, const struct crl__static_file *f,
                      const char *rel)
{
    char etag[64];
    time_t mtime = f->st.st_mtim.tv_sec;
    crl__static_etag(&f->st, etag, sizeof etag);
    int rc = add_validators(res, etag, mtime);
    if (rc)
        return rc;
    /* RFC 9110 13.2.2: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since, If-Range */
    if (crl__static_precondition_failed(crl_http_req_header(req, "If-Match"),
                                        crl_http_req_header(req, "If-Unmodified-Since"), etag,
                                        mtime))
        return send_text(res, 412, "Precondition Failed\n");
    if (crl__static_not_modified(crl_http_req_header(req, "If-None-Match"),
                                 crl_http_req_header(req, "If-Modified-Since"), etag, mtime))
        return crl_http_res_send(res, 304, NULL, NULL, 0);
    enum crl__range range = CRL__RANGE_NONE;
    int64_t offset = 0, len = 0;
    /* Ranges are defined for GET only; HEAD and a stale If-Range get the whole file. */
    if (strcmp(crl_http_req_method(req), "GET") == 0 &&
        crl__static_if_range(crl_http_req_header(req, "If-Range"), etag, mtime))
        range = crl__static_range(crl_http_req_header(req, "Range"), f->st.st_size, &offset, &len);
    const char *type = crl__static_mime(f->dir ? "index.html" : rel);
    return send_range(res, f, type, range, offset, len);
}

/* GET /files<rest>: rest is "" or starts with '/'. */
static int route_files(const struct httpd *h, crl_http_req *req, crl_http_res *res,
                       const char *rest)
{
    if (!is_get_or_head(crl_http_req_method(req)))
        return not_allowed(res, "GET, HEAD");
    if (rest[0] == '\0')
        return redirect_to_dir(req, res);
    struct file_open o = {.rootfd = h->rootfd, .f = {.fd = -1}};
    int rc = crl__static_decode(rest + 1, o.rel, sizeof o.rel);
    if (rc == -EINVAL)
        return send_text(res, 400, "Bad Request\n");
    if (rc < 0)
        return not_found(res);
    rc = crl_offload(open_job, &o); /* opening may wait for the disk */
    if (rc == -ECANCELED || rc == -ETIMEDOUT)
        return rc;
    if (rc == -ENOENT)
        return not_found(res);
    if (rc < 0)
        return send_text(res, 503, "Service Unavailable\n"); /* out of fds or memory */
    if (o.f.dir && rest[strlen(rest) - 1] != '/')
        rc = redirect_to_dir(req, res);
    else
        rc = serve_file(req, res, &o.f, o.rel);
    crl_close(o.f.fd);
    return rc;
}

static int handle(crl_http_req *req, crl_http_res *res, void *ctx)
{
    const struct httpd *h = ctx;
    const char *path = crl_http_req_path(req);
    const char *method = crl_http_req_method(req);
    if (strcmp(path, "/") == 0 || strcmp(path, "/work") == 0) {
        if (!is_get_or_head(method))
            return not_allowed(res, "GET, HEAD");
        if (path[1] == 'w' || h->work)
            return route_work(res);
        return crl_http_res_send(res, 200, "text/plain", "Hello, world!", 13);
    }
    if (strcmp(path, "/echo") == 0)
        return strcmp(method, "POST") == 0 ? route_echo(req, res) : not_allowed(res, "POST");
    if (strncmp(path, "/files", 6) == 0 && (path[6] == '/' || path[6] == '\0'))
        return route_files(h, req, res, path + 6);
    if (h->metrics && strcmp(path, "/metrics") == 0)
        return is_get_or_head(method) ? route_metrics(res) : not_allowed(res, "GET, HEAD");
    if (h->debug && strcmp(path, "/debug/sleep") == 0)
        return is_get_or_head(method) ? route_debug_sleep(res) : not_allowed(res, "GET, HEAD");
    if (h->debug && strcmp(path, "/debug/slow") == 0)
        return is_get_or_head(method) ? route_debug_slow(res) : not_allowed(res, "GET, HEAD");
    return not_found(res);
}

/* ---- Serving and stopping --------------------------------------------------------------- */

/* The ready line (tests read the port from it). */
static void on_ready(void *ctx, const struct sockaddr *addr, socklen_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        printf("corral-httpd listening on [%s]:%u", host, port);
    } else {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        printf("corral-httpd listening on %s:%u", host, port);
    }
    printf(" (%u cores, %s)\n", crl_core_count(), crl_io_backend());
    fflush(stdout);
}

static int serve_task(void *arg)
{
    struct httpd *h = arg;
    struct crl_http_server_opts opts = {
        .serve = {.balance = h->balance, .max_conns = h->max_conns, .on_ready = on_ready}};
    int rc = crl_http_serve(h->addr, &opts, handle, h);
    crl_scope_cancel(h->scope); /* ends the signal task too */
    return rc;
}

static void stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

static int signal_task(void *arg)
{
    struct httpd *h = arg;
    sigset_t set;
    stop_signals(&set);
    int sig = crl_signal_wait(&set);
    if (sig < 0)
        return sig;
    fprintf(stderr, "corral-httpd: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    crl_scope_cancel(h->scope); /* crl_http_serve drains and returns 0 */
    return 0;
}

static int app_body(struct crl_scope *s, void *arg)
{
    struct httpd *h = arg;
    h->scope = s;
    int rc = crl_spawn(s, serve_task, h);
    return rc ? rc : crl_spawn(s, signal_task, h);
}

/* ---- SIGUSR1: the counters and the dump, off the executors ------------------------------ */

/* A thread of its own waits for SIGUSR1 (blocked in every thread, executors included), so
 * that a stalled core, even core 0, does not keep it from answering: it reads the counters
 * through the runtime's handle, and crl_dump asks each core with a bound on the wait. */
struct inspector {
    pthread_t thread;
    pthread_mutex_t lock;
    struct crl_runtime *rt; /* under lock: set while the server's root task runs */
    bool stop;              /* under lock */
};

/* The fields of struct crl_stats, in its order: name, offset, and elements (every one is a
 * uint64_t). */
#define STATS_FIELDS(X)                                                                            \
    X(tasks_spawned)                                                                               \
    X(tasks_live)                                                                                  \
    X(switches)                                                                                    \
    X(runq_high)                                                                                   \
    X(busy_ns)                                                                                     \
    X(idle_ns)                                                                                     \
    X(loop_turns)                                                                                  \
    X(sleeps)                                                                                      \
    X(wakeups_sent)                                                                                \
    X(wakeups_received)                                                                            \
    X(io_started)                                                                                  \
    X(io_completed)                                                                                \
    X(io_cancelled)                                                                                \
    X(timers_armed)                                                                                \
    X(timers_fired)                                                                                \
    X(calls_sent)                                                                                  \
    X(calls_received)                                                                              \
    X(chan_sent)                                                                                   \
    X(chan_received)                                                                               \
    X(pool_queued)                                                                                 \
    X(pool_run)                                                                                    \
    X(stalls)                                                                                      \
    X(conns_accepted)                                                                              \
    X(conns_live)                                                                                  \
    X(http_requests)                                                                               \
    X(http_responses)                                                                              \
    X(http_bytes_in)                                                                               \
    X(http_bytes_out)                                                                              \
    X(http_parse_errors)                                                                           \
    X(http_timeouts)                                                                               \
    X(io_ops)                                                                                      \
    X(accept_calls)                                                                                \
    X(accept_emfile)
#define STATS_FIELD(f) {#f, offsetof(struct crl_stats, f), sizeof(((struct crl_stats *)0)->f) / 8},
static const struct stats_field {
    const char *name;
    size_t offset, elements;
} stats_fields[] = {STATS_FIELDS(STATS_FIELD)};
#undef STATS_FIELD
#define STATS_SIZE(f) +sizeof(((struct crl_stats *)0)->f)
static_assert(0 STATS_FIELDS(STATS_SIZE) == sizeof(struct crl_stats),
              "a field added to struct crl_stats is added to STATS_FIELDS");
#undef STATS_SIZE

/* One line of counters: NAME=VALUE for each field, an array's elements by index as
 * NAME=a/b/c. */
static void print_stats(FILE *out, const char *who, const struct crl_stats *st)
{
    fprintf(out, "corral-httpd: counters, %s:", who);
    for (size_t i = 0; i < sizeof stats_fields / sizeof stats_fields[0]; i++) {
        const struct stats_field *f = &stats_fields[i];
        const uint64_t *v = (const uint64_t *)((const char *)st + f->offset);
        fprintf(out, " %s=", f->name);
        for (size_t k = 0; k < f->elements; k++)
            fprintf(out, "%s%" PRIu64, k ? "/" : "", v[k]);
    }
    fputc('\n', out);
}

/* The sums over every core, then each core's line; stderr locked so that the lines stay
 * together. */
static void write_counters(struct crl_runtime *rt)
{
    struct crl_stats st;
    flockfile(stderr);
    if (crl_runtime_stats(rt, CRL_ALL_CORES, &st) == 0)
        print_stats(stderr, "all cores", &st);
    for (unsigned k = 0; crl_runtime_stats(rt, k, &st) == 0; k++) {
        char who[32];
        snprintf(who, sizeof who, "core %u", k);
        print_stats(stderr, who, &st);
    }
    fflush(stderr);
    funlockfile(stderr);
}

static void *inspector_main(void *arg)
{
    struct inspector *in = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    for (;;) {
        if (sigwaitinfo(&set, NULL) < 0)
            continue; /* EINTR */
        pthread_mutex_lock(&in->lock);
        bool stop = in->stop, running = in->rt != NULL;
        if (!stop && running) {
            fprintf(stderr, "corral-httpd: SIGUSR1: counters and tasks\n");
            write_counters(in->rt);
        }
        pthread_mutex_unlock(&in->lock);
        if (stop)
            return NULL;
        if (running) /* outside the lock: it waits for the cores (bounded) */
            crl_dump(STDERR_FILENO);
    }
}

/* SIGUSR1 blocked first, so that every thread made afterwards (the executors) inherits it. */
static bool inspector_start(struct inspector *in)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    int rc = pthread_create(&in->thread, NULL, inspector_main, in);
    if (rc)
        fprintf(stderr, "corral-httpd: no SIGUSR1 thread: %s\n", strerror(rc));
    return rc == 0;
}

static void inspector_stop(struct inspector *in)
{
    pthread_mutex_lock(&in->lock);
    in->stop = true;
    pthread_mutex_unlock(&in->lock);
    pthread_kill(in->thread, SIGUSR1);
    pthread_join(in->thread, NULL);
}

static void inspector_attach(struct inspector *in, struct crl_runtime *rt)
{
    pthread_mutex_lock(&in->lock);
    in->rt = rt;
    pthread_mutex_unlock(&in->lock);
}

/* The root task: the runtime is the inspector's while it runs. */
static int app(void *arg)
{
    struct httpd *h = arg;
    inspector_attach(h->inspector, crl_runtime_current());
    int rc = crl_scope_run(app_body, arg);
    inspector_attach(h->inspector, NULL);
    return rc;
}

/* ---- Flags ------------------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fputs("usage: corral-httpd [options]\n"
          "  --addr HOST:PORT   listen on HOST:PORT (default 127.0.0.1:8080; IPv6: [::1]:8080)\n"
          "  --cores N          serve on N cores (default 0: $CORRAL_CORES, else every CPU)\n"
          "  --backend B        I/O backend: uring or epoll (default: $CORRAL_BACKEND, else "
          "uring)\n"
          "  --balance B        spread connections: reuseport, rr or least (default "
          "reuseport)\n"
          "  --root DIR         directory served under /files/ (default ./www)\n"
          "  --max-conns N      live connections per core, at least 1 (default 10000; the\n"
          "                     open-files limit is raised to its hard limit)\n"
          "  --work             GET / does the work of GET /work\n"
          "  --metrics          serve the runtime's counters at GET /metrics (Prometheus)\n"
          "  --trace FILE       trace every core, written to FILE as Chrome trace JSON at exit\n"
          "                     and at a stall (default: $CORRAL_TRACE, else no trace)\n"
          "  --debug            add GET /debug/sleep, whose handler blocks in sleep(1), and\n"
          "                     GET /debug/slow, which answers after 10 s (without blocking)\n"
          "  --help             print this and exit\n"
          "  --version          print the version and exit\n"
          "routes: GET / (Hello, world!), GET /work, POST /echo, GET /files/PATH,\n"
          "        GET /metrics (with --metrics), GET /debug/sleep and /debug/slow (with --debug)\n"
          "signals: SIGINT, SIGTERM stop gracefully; SIGUSR1 writes the counters and every\n"
          "         task to stderr\n",
          out);
}

/* Every connection is a descriptor: take as many as the hard limit allows (Debian's soft
 * limit, 1024, would cap the server near a thousand connections). */
static void raise_open_files_limit(void)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
}

static unsigned affinity_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 1;
    int n = CPU_COUNT(&set);
    return n > 0 ? (unsigned)n : 1;
}

/* A decimal number in [min, max] into *out, or -EINVAL. */
static int parse_unsigned(const char *s, unsigned long min, unsigned long max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || n < min || n > max)
        return -EINVAL;
    *out = (unsigned)n;
    return 0;
}

static int parse_flag(int opt, const char *val, struct httpd *h)
{
    switch (opt) {
    case 'a': h->addr = val; return 0;
    case 'r': h->root = val; return 0;
    case 'w': h->work = true; return 0;
    case 'm': h->metrics = true; return 0;
    case 'd': h->debug = true; return 0;
    case 't': h->trace_file = val; return 0;
    /* --cores N: 0 means every CPU we may run on; more than those is refused */
    case 'c': return parse_unsigned(val, 0, affinity_cpus(), &h->cores);
    case 'n': return parse_unsigned(val, 1, UINT_MAX, &h->max_conns);
    case 'b':
        if (strcmp(val, "uring") == 0 || strcmp(val, "io_uring") == 0)
            h->backend = CRL_BACKEND_URING;
        else if (strcmp(val, "epoll") == 0)
            h->backend = CRL_BACKEND_EPOLL;
        else
            return -EINVAL;
        return 0;
    case 'l':
        if (strcmp(val, "reuseport") == 0)
            h->balance = CRL_BALANCE_REUSEPORT;
        else if (strcmp(val, "rr") == 0)
            h->balance = CRL_BALANCE_ROUND_ROBIN;
        else if (strcmp(val, "least") == 0)
            h->balance = CRL_BALANCE_LEAST;
        else
            return -EINVAL;
        return 0;
    default: return -EINVAL;
    }
}

/* 0 to run, 1 after --help or --version, -EINVAL for a bad command line (reported on stderr). */
static int parse_args(int argc, char **argv, struct httpd *h)
{
    static const struct option options[] = {
        {"addr", required_argument, NULL, 'a'},
        {"cores", required_argument, NULL, 'c'},
        {"backend", required_argument, NULL, 'b'},
        {"balance", required_argument, NULL, 'l'},
        {"root", required_argument, NULL, 'r'},
        {"work", no_argument, NULL, 'w'},
        {"metrics", no_argument, NULL, 'm'},
        {"trace", required_argument, NULL, 't'},
        {"debug", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"max-conns", required_argument, NULL, 'n'},
        {NULL, 0, NULL, 0},
    };
    int opt, index = 0;
    while ((opt = getopt_long(argc, argv, "", options, &index)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return 1;
        }
        if (opt == 'V') {
            puts("corral-httpd " CORRAL_VERSION);
            return 1;
        }
        if (opt == '?' || parse_flag(opt, optarg, h) != 0) {
            if (opt != '?')
                fprintf(stderr, "corral-httpd: bad value for --%s: %s\n", options[index].name,
                        optarg);
            usage(stderr);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "corral-httpd: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return -EINVAL;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct httpd h = {.addr = "127.0.0.1:8080", .root = "./www", .rootfd = -1};
    int rc = parse_args(argc, argv, &h);
    if (rc)
        return rc > 0 ? 0 : 2;
    h.rootfd = open(h.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (h.rootfd < 0) {
        fprintf(stderr, "corral-httpd: --root %s: %s\n", h.root, strerror(errno));
        return 1;
    }
    /* Blocked before the executors start, so that every thread inherits the mask and the
     * signals wait for crl_signal_wait instead of killing the process on another core. */
    sigset_t set;
    stop_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_open_files_limit();
    struct inspector inspector = {.lock = PTHREAD_MUTEX_INITIALIZER};
    bool inspecting = inspector_start(&inspector);
    h.inspector = &inspector;
    struct crl_config cfg = {.cores = h.cores, .backend = h.backend, .trace_file = h.trace_file};
    rc = crl_run(&cfg, app, &h);
    if (inspecting)
        inspector_stop(&inspector);
    close(h.rootfd);
    if (rc < 0) {
        fprintf(stderr, "corral-httpd: %s: %s\n", h.addr, strerror(-rc));
        return 1;
    }
    return 0;
}
