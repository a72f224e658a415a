/* corral-httpd.c - the demo HTTP/1.1 server on corral: hello, the essay's CPU-work route, an
 * echo and static files under --root, served thread-per-core until SIGINT or SIGTERM stops it
 * gracefully (in-flight requests finish, then exit 0). */
#define _GNU_SOURCE
#include "corral.h"
#include "static.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct httpd {
    const char *addr;
    const char *root;
    unsigned cores; /* 0 = every CPU of the affinity mask (crl_run's default) */
    enum crl_backend backend;
    enum crl_balance balance;
    bool work;               /* GET / does the /work route's work */
    int rootfd;              /* --root, opened O_PATH */
    struct crl_scope *scope; /* the scope running the server; a signal cancels it */
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
    struct crl_http_server_opts opts = {.serve = {.balance = h->balance, .on_ready = on_ready}};
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

static int app(void *arg) { return crl_scope_run(app_body, arg); }

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
          "  --work             GET / does the work of GET /work\n"
          "  --help             print this and exit\n"
          "routes: GET / (Hello, world!), GET /work, POST /echo, GET /files/PATH\n",
          out);
}

static unsigned affinity_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 1;
    int n = CPU_COUNT(&set);
    return n > 0 ? (unsigned)n : 1;
}

/* --cores N: 0 means every CPU we may run on; more than those is refused. */
static int parse_cores(const char *s, unsigned *cores)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || n > affinity_cpus())
        return -EINVAL;
    *cores = (unsigned)n;
    return 0;
}

static int parse_flag(int opt, const char *val, struct httpd *h)
{
    switch (opt) {
    case 'a': h->addr = val; return 0;
    case 'r': h->root = val; return 0;
    case 'w': h->work = true; return 0;
    case 'c': return parse_cores(val, &h->cores);
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

/* 0 to run, 1 after --help, -EINVAL for a bad command line (reported on stderr). */
static int parse_args(int argc, char **argv, struct httpd *h)
{
    static const struct option options[] = {
        {"addr", required_argument, NULL, 'a'},    {"cores", required_argument, NULL, 'c'},
        {"backend", required_argument, NULL, 'b'}, {"balance", required_argument, NULL, 'l'},
        {"root", required_argument, NULL, 'r'},    {"work", no_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    int opt, index = 0;
    while ((opt = getopt_long(argc, argv, "", options, &index)) != -1) {
        if (opt == 'h') {
            usage(stdout);
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
    struct crl_config cfg = {.cores = h.cores, .backend = h.backend};
    rc = crl_run(&cfg, app, &h);
    close(h.rootfd);
    if (rc < 0) {
        fprintf(stderr, "corral-httpd: %s: %s\n", h.addr, strerror(-rc));
        return 1;
    }
    return 0;
}
