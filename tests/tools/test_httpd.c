/* corral-httpd end to end: the test starts the server binary (CORRAL_HTTPD) as a child
 * process on 127.0.0.1 at a port the kernel picks (read back from its ready line), talks
 * HTTP/1.1 to it over plain loopback sockets, and stops it by PID with SIGTERM, expecting
 * exit status 0 every time. The backend under test reaches the child through CORRAL_BACKEND. */
#define _GNU_SOURCE
#include "../test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { WAIT_MS = 20000 }; /* generous: the server may run under ASan or TSan */

/* ---- A document root -------------------------------------------------------------------- */

static char tmp[64]; /* tmp/root is served; tmp/secret.txt lies outside it */
static char root[96];

static void write_file(const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    return remove(path);
}

static void remove_tree(void) { nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

static const char *make_root(void)
{
    if (root[0])
        return root;
    strcpy(tmp, "/tmp/corral-httpd-XXXXXX");
    CHECK(mkdtemp(tmp) != NULL);
    atexit(remove_tree);
    snprintf(root, sizeof root, "%s/root", tmp);
    write_file("secret.txt", "outside the root\n");
    CHECK_EQ(mkdir(root, 0755), 0);
    write_file("root/index.html", "<p>root</p>\n");
    write_file("root/hello.txt", "hello world\n"); /* 12 bytes */
    char path[160];
    snprintf(path, sizeof path, "%s/sub", root);
    CHECK_EQ(mkdir(path, 0755), 0);
    write_file("root/sub/index.html", "<p>sub</p>\n");
    snprintf(path, sizeof path, "%s/outlink", root);
    CHECK_EQ(symlink("../secret.txt", path), 0);
    return root;
}

/* ---- The server as a child process ------------------------------------------------------ */

struct server {
    pid_t pid;
    int out;        /* its stdout */
    char line[256]; /* its ready line */
    char addr[80];  /* "127.0.0.1:PORT" or "[::1]:PORT" */
    char host[64];  /* numeric host */
    unsigned port;
};

static const char *httpd_path(void)
{
    const char *path = getenv("CORRAL_HTTPD");
    if (!path)
        test_fail(__FILE__, __LINE__, "CORRAL_HTTPD is not set (meson test sets it)");
    return path;
}

/* Fork and exec the server with args (NULL-terminated), stdout and stderr to pipes (or
 * inherited when NULL). It dies with us, should a check fail. */
static pid_t spawn(const char *const *args, int *out, int *err)
{
    int o[2], e[2];
    CHECK_EQ(pipe2(o, O_CLOEXEC), 0);
    CHECK_EQ(pipe2(e, O_CLOEXEC), 0);
    /* A cross build runs its binaries through an emulator (meson names it). */
    char wrapper[256] = "";
    const char *argv[32];
    int argc = 0;
    if (getenv("MESON_EXE_WRAPPER"))
        snprintf(wrapper, sizeof wrapper, "%s", getenv("MESON_EXE_WRAPPER"));
    for (char *save = NULL, *w = strtok_r(wrapper, " ", &save); w && argc < 8;
         w = strtok_r(NULL, " ", &save))
        argv[argc++] = w;
    argv[argc++] = httpd_path();
    for (int i = 0; args[i] && argc < 31; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(o[1], STDOUT_FILENO);
        if (err)
            dup2(e[1], STDERR_FILENO);
        execvp(argv[0], (char **)argv);
        _exit(127);
    }
    close(o[1]);
    close(e[1]);
    *out = o[0];
    if (err)
        *err = e[0];
    else
        close(e[0]);
    return pid;
}

/* Read what fd gives until a newline (keeping it out), end of file, or the deadline. */
static size_t read_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, WAIT_MS) != 1 || read(fd, buf + n, 1) != 1 || buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = '\0';
    return n;
}

/* Start corral-httpd on 127.0.0.1:0 (unless extra names an --addr) over the test root with
 * one core and the extra flags, and wait for its ready line; its stderr to a pipe whose read
 * end goes to *err, or inherited when err is NULL. */
static void server_start_err(struct server *s, const char *const *extra, int *err)
{
    const char *args[20] = {"--root", make_root(), "--cores", "1"};
    int n = 4;
    bool has_addr = false;
    for (int i = 0; extra && extra[i]; i++) {
        has_addr |= strcmp(extra[i], "--addr") == 0;
        args[n++] = extra[i];
    }
    if (!has_addr) {
        args[n++] = "--addr";
        args[n++] = "127.0.0.1:0";
    }
    args[n] = NULL;
    s->pid = spawn(args, &s->out, err);
    read_line(s->out, s->line, sizeof s->line);
    const char *at = strstr(s->line, "corral-httpd listening on ");
    if (!at)
        test_fail(__FILE__, __LINE__, "no ready line, got \"%s\"", s->line);
    sscanf(at + strlen("corral-httpd listening on "), "%79s", s->addr);
    const char *colon = strrchr(s->addr, ':');
    CHECK(colon != NULL);
    s->port = (unsigned)atoi(colon + 1);
    bool v6 = s->addr[0] == '[';
    snprintf(s->host, sizeof s->host, "%.*s", (int)(colon - s->addr - 2 * v6), s->addr + v6);
    CHECK(s->port > 0);
}

/* Wait for pid to end within ms; returns its wait status, or -1 on a timeout. */
static int wait_exit(pid_t pid, int ms)
{
    int status;
    for (int waited = 0; waited < ms; waited += 5) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        CHECK_EQ(r, 0);
        usleep(5000);
    }
    return -1;
}

/* Stop the server with sig and check that it exits 0 within WAIT_MS. */
static void server_stop_with(struct server *s, int sig)
{
    CHECK_EQ(kill(s->pid, sig), 0);
    int status = wait_exit(s->pid, WAIT_MS);
    if (status == -1) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &status, 0);
        test_fail(__FILE__, __LINE__, "corral-httpd did not stop on signal %d", sig);
    }
    close(s->out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        test_fail(__FILE__, __LINE__, "corral-httpd ended with status 0x%x, want exit 0", status);
}

static void server_start(struct server *s, const char *const *extra)
{
    server_start_err(s, extra, NULL);
}

static void server_stop(struct server *s) { server_stop_with(s, SIGTERM); }

/* ---- HTTP over plain sockets ------------------------------------------------------------ */

static int dial(const struct server *s)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (strchr(s->host, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)s->port);
        CHECK_EQ(inet_pton(AF_INET6, s->host, &in6->sin6_addr), 1);
        len = sizeof *in6;
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)s->port);
        CHECK_EQ(inet_pton(AF_INET, s->host, &in->sin_addr), 1);
        len = sizeof *in;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct timeval tv = {WAIT_MS / 1000, 0};
    CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    CHECK_EQ(connect(fd, (struct sockaddr *)&ss, len), 0);
    return fd;
}

static void send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        CHECK(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

struct reply {
    int status;
    char head[8192]; /* status line and header lines */
    char *body;      /* malloc'd, NUL-terminated */
    size_t body_len;
};

static void reply_free(struct reply *r)
{
    free(r->body);
    r->body = NULL;
}

/* Header name's value in r (case-insensitive name), copied into a static buffer; NULL if
 * absent. */
static const char *header(const struct reply *r, const char *name)
{
    static char value[512];
    size_t len = strlen(name);
    for (const char *line = strstr(r->head, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        const char *p = line + 2;
        if (strncasecmp(p, name, len) == 0 && p[len] == ':') {
            p += len + 1;
            while (*p == ' ')
                p++;
            size_t n = strcspn(p, "\r");
            snprintf(value, sizeof value, "%.*s", (int)n, p);
            return value;
        }
    }
    return NULL;
}

/* Read one response: its head, then Content-Length bytes of body (none after HEAD). */
static void read_reply(int fd, struct reply *r, bool head_only)
{
    size_t n = 0;
    memset(r, 0, sizeof *r);
    while (n < 4 || memcmp(r->head + n - 4, "\r\n\r\n", 4) != 0) {
        CHECK(n + 1 < sizeof r->head);
        ssize_t got = recv(fd, r->head + n, 1, 0); /* byte by byte: the body stays unread */
        if (got <= 0)
            test_fail(__FILE__, __LINE__, "connection ended in a response head: \"%s\"", r->head);
        n++;
    }
    CHECK_EQ(sscanf(r->head, "HTTP/1.%*d %d", &r->status), 1);
    const char *cl = header(r, "Content-Length");
    r->body_len = head_only || !cl ? 0 : strtoul(cl, NULL, 10);
    r->body = malloc(r->body_len + 1);
    CHECK(r->body != NULL);
    for (size_t got = 0; got < r->body_len;) {
        ssize_t k = recv(fd, r->body + got, r->body_len - got, 0);
        if (k <= 0)
            test_fail(__FILE__, __LINE__, "body cut at %zu of %zu bytes", got, r->body_len);
        got += (size_t)k;
    }
    r->body[r->body_len] = '\0';
}

/* One request on a connection of its own ("Connection: close" is added), its response in
 * *r. extra: more header lines, each ending in CRLF. */
static void request(const struct server *s, const char *method, const char *target,
                    const char *extra, const void *body, size_t body_len, struct reply *r)
{
    char head[2048], length[64] = "";
    if (body)
        snprintf(length, sizeof length, "Content-Length: %zu\r\n", body_len);
    int n =
        snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: test\r\n%s%sConnection: close\r\n\r\n",
                 method, target, extra ? extra : "", length);
    CHECK(n > 0 && (size_t)n < sizeof head);
    int fd = dial(s);
    send_all(fd, head, (size_t)n);
    if (body)
        send_all(fd, body, body_len);
    read_reply(fd, r, strcmp(method, "HEAD") == 0);
    close(fd);
}

static void get(const struct server *s, const char *target, const char *extra, struct reply *r)
{
    request(s, "GET", target, extra, NULL, 0, r);
}

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || strcmp(a_, b_) != 0)                                                            \
            test_fail(__FILE__, __LINE__, "%s == \"%s\": \"%s\"", #a, b_, a_ ? a_ : "(null)");     \
    } while (0)

/* ---- Routes ----------------------------------------------------------------------------- */

/* GET / says hello in 13 bytes of text/plain; HEAD / sends the same head and no body. */
TEST_PLAIN(hello_answers_get_and_head)
{
    struct server s;
    struct reply r;
    server_start(&s, NULL);
    get(&s, "/", NULL, &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "Hello, world!");
    CHECK_STR(header(&r, "Content-Length"), "13");
    CHECK_STR(header(&r, "Content-Type"), "text/plain");
    reply_free(&r);
    request(&s, "HEAD", "/", NULL, NULL, 0, &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(header(&r, "Content-Length"), "13");
    reply_free(&r);
    server_stop(&s);
}

/* GET /work answers "done" once its children are joined, time after time. */
TEST_PLAIN(work_route_answers_done)
{
    struct server s;
    struct reply r;
    server_start(&s, NULL);
    for (int i = 0; i < 20; i++) {
        get(&s, "/work", NULL, &r);
        CHECK_EQ(r.status, 200);
        CHECK_STR(r.body, "done");
        reply_free(&r);
    }
    get(&s, "/", NULL, &r); /* without --work, / still says hello */
    CHECK_STR(r.body, "Hello, world!");
    reply_free(&r);
    server_stop(&s);
}

/* GET /debug/slow (--debug) answers after 10 s without holding its core: a hello on the same
 * core is answered meanwhile. */
TEST_PLAIN(debug_slow_answers_late_without_blocking_its_core)
{
    struct server s;
    struct reply r;
    server_start(&s, (const char *[]){"--debug", "--cores", "1", NULL});
    int fd = dial(&s);
    const char *req = "GET /debug/slow HTTP/1.1\r\nHost: t\r\n\r\n";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    send_all(fd, req, strlen(req));
    get(&s, "/", NULL, &r); /* answered while the slow one waits */
    CHECK_STR(r.body, "Hello, world!");
    reply_free(&r);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 0), 0); /* not yet */
    read_reply(fd, &r, false);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "done\n");
    CHECK_GE((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000, 9900);
    reply_free(&r);
    close(fd);
    server_stop(&s);
}

/* With --work, GET / does the work of /work. */
TEST_PLAIN(work_flag_turns_hello_into_work)
{
    struct server s;
    struct reply r;
    server_start(&s, (const char *[]){"--work", NULL});
    get(&s, "/", NULL, &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "done");
    reply_free(&r);
    server_stop(&s);
}

/* POST /echo sends back exactly the body (binary, 200 KB) with its Content-Type. */
TEST_PLAIN(echo_returns_the_request_body)
{
    struct server s;
    struct reply r;
    enum { LEN = 200 * 1000 };
    unsigned char *body = malloc(LEN);
    CHECK(body != NULL);
    for (size_t i = 0; i < LEN; i++)
        body[i] = (unsigned char)(i * 7 + i / 251);
    server_start(&s, NULL);
    request(&s, "POST", "/echo", "Content-Type: application/x-test\r\n", body, LEN, &r);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(r.body_len, LEN);
    CHECK(memcmp(r.body, body, LEN) == 0);
    CHECK_STR(header(&r, "Content-Type"), "application/x-test");
    reply_free(&r);
    request(&s, "POST", "/echo", NULL, "", 0, &r);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(r.body_len, 0);
    reply_free(&r);
    free(body);
    server_stop(&s);
}

/* A chunked request body is echoed whole. */
TEST_PLAIN(echo_reads_a_chunked_body)
{
    struct server s;
    struct reply r;
    server_start(&s, NULL);
    int fd = dial(&s);
    const char *req = "POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
                      "Connection: close\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
    send_all(fd, req, strlen(req));
    read_reply(fd, &r, false);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "hello, world");
    reply_free(&r);
    close(fd);
    server_stop(&s);
}

/* A method a route does not take gets 405 with Allow; an unknown path 404. */
TEST_PLAIN(wrong_method_gets_405_and_unknown_path_404)
{
    struct server s;
    struct reply r;
    server_start(&s, NULL);
    get(&s, "/echo", NULL, &r);
    CHECK_EQ(r.status, 405);
    CHECK_STR(header(&r, "Allow"), "POST");
    reply_free(&r);
    request(&s, "POST", "/files/hello.txt", NULL, "x", 1, &r);
    CHECK_EQ(r.status, 405);
    CHECK_STR(header(&r, "Allow"), "GET, HEAD");
    reply_free(&r);
    request(&s, "DELETE", "/", NULL, NULL, 0, &r);
    CHECK_EQ(r.status, 405);
    CHECK_STR(header(&r, "Allow"), "GET, HEAD");
    reply_free(&r);
    const char *missing[] = {"/nope", "/hello", "/filesx", "/echo/x", "/work/"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        get(&s, missing[i], NULL, &r);
        if (r.status != 404)
            test_fail(__FILE__, __LINE__, "GET %s: %d, want 404", missing[i], r.status);
        reply_free(&r);
    }
    server_stop(&s);
}

/* ---- Metrics ---------------------------------------------------------------------------- */

/* One raw request on a connection of its own: the bytes it sent and received. */
static void exchange(const struct server *s, const char *text, size_t *sent, size_t *received,
                     struct reply *r)
{
    int fd = dial(s);
    send_all(fd, text, strlen(text));
    read_reply(fd, r, false);
    close(fd);
    *sent += strlen(text);
    *received += strlen(r->head) + r->body_len;
}

/* Run tests/runtime/check_metrics.py (CORRAL_CHECK_METRICS) on text; its exit status. */
static int check_metrics(const char *text, unsigned cores, const char *expected)
{
    const char *checker = getenv("CORRAL_CHECK_METRICS");
    if (!checker)
        test_fail(__FILE__, __LINE__, "CORRAL_CHECK_METRICS is not set (meson test sets it)");
    char metrics[128], want[128], ncores[12];
    snprintf(metrics, sizeof metrics, "%s/metrics.txt", tmp);
    snprintf(want, sizeof want, "%s/expected.txt", tmp);
    snprintf(ncores, sizeof ncores, "%u", cores);
    FILE *f = fopen(metrics, "w");
    CHECK(f != NULL);
    CHECK(fputs(text, f) >= 0);
    CHECK_EQ(fclose(f), 0);
    f = fopen(want, "w");
    CHECK(f != NULL);
    CHECK(fputs(expected, f) >= 0);
    CHECK_EQ(fclose(f), 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        execl("/usr/bin/python3", "python3", checker, metrics, ncores, want, (char *)NULL);
        _exit(127);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    unlink(metrics);
    unlink(want);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static bool cross_build(void)
{
    const char *checker = getenv("CORRAL_CHECK_METRICS");
    return checker && strcmp(checker, "none") == 0; /* no host Python to run the checker */
}

/* --metrics: GET /metrics is Prometheus text (version 0.0.4) that python3-prometheus-client
 * parses, and its HTTP counters are those of the requests made before it (itself included
 * in the requests and bytes read, not yet in the responses). */
TEST_PLAIN(metrics_flag_serves_the_counters_for_prometheus)
{
    static const char *const before[] = {
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    };
    static const int statuses[] = {200, 200, 404, 200};
    const char *get_metrics = "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    struct server s;
    struct reply r;
    size_t in = 0, out = 0;
    server_start(&s, (const char *[]){"--metrics", NULL});
    for (size_t i = 0; i < sizeof before / sizeof before[0]; i++) {
        exchange(&s, before[i], &in, &out, &r);
        CHECK_EQ(r.status, statuses[i]);
        reply_free(&r);
    }
    size_t ignored = 0;
    exchange(&s, get_metrics, &in, &ignored, &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(header(&r, "Content-Type"), "text/plain; version=0.0.4");
    char expected[1024];
    snprintf(expected, sizeof expected,
             "corral_conns_accepted_total core=0 5\n"
             "corral_http_requests_total core=0 5\n"
             "corral_http_responses_total core=0,class=2xx 3\n"
             "corral_http_responses_total core=0,class=4xx 1\n"
             "corral_http_responses_total core=0,class=5xx 0\n"
             "corral_http_bytes_in_total core=0 %zu\n"
             "corral_http_bytes_out_total core=0 %zu\n"
             "corral_http_parse_errors_total core=0 0\n"
             "corral_http_timeouts_total core=0,kind=header 0\n",
             in, out);
    if (!cross_build())
        CHECK_EQ(check_metrics(r.body, 1, expected), 0);
    reply_free(&r);
    server_stop(&s);
}

/* Without --metrics there is no such route; with two cores every series comes per core. */
TEST_PLAIN(metrics_route_needs_the_flag_and_covers_every_core)
{
    struct server s;
    struct reply r;
    server_start(&s, NULL);
    get(&s, "/metrics", NULL, &r);
    CHECK_EQ(r.status, 404);
    reply_free(&r);
    server_stop(&s);
    if (test_cannot_run_cores(2))
        return;
    server_start(&s, (const char *[]){"--metrics", "--cores", "2", NULL});
    get(&s, "/metrics", NULL, &r);
    CHECK_EQ(r.status, 200);
    if (!cross_build())
        CHECK_EQ(check_metrics(r.body, 2, ""), 0);
    reply_free(&r);
    server_stop(&s);
}

/* ---- Static files ----------------------------------------------------------------------- */

/* A file comes with its type, length, ETag, Last-Modified and Accept-Ranges; HEAD sends the
 * same head without the body. */
TEST_PLAIN(files_serve_a_file_with_its_validators)
{
    struct server s;
    struct reply r;
    server_start(&s, NULL);
    get(&s, "/files/hello.txt", NULL, &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "hello world\n");
    CHECK_STR(header(&r, "Content-Type"), "text/plain; charset=utf-8");
    CHECK_STR(header(&r, "Accept-Ranges"), "bytes");
    CHECK(header(&r, "ETag") && header(&r, "ETag")[0] == '"');
    CHECK(header(&r, "Last-Modified") && strstr(header(&r, "Last-Modified"), " GMT"));
    reply_free(&r);
    request(&s, "HEAD", "/files/hello.txt", NULL, NULL, 0, &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(header(&r, "Content-Length"), "12");
    reply_free(&r);
    get(&s, "/files/hello%2etxt", NULL, &r); /* %-escapes are decoded */
    CHECK_STR(r.body, "hello world\n");
    reply_free(&r);
    server_stop(&s);
}

/* If-None-Match with the ETag, or If-Modified-Since with Last-Modified, gives 304 without a
 * body; a different tag or an older date gives the file. */
TEST_PLAIN(files_answer_304_to_fresh_validators)
{
    struct server s;
    struct reply r;
    char etag[128], modified[64], extra[256];
    server_start(&s, NULL);
    get(&s, "/files/hello.txt", NULL, &r);
    snprintf(etag, sizeof etag, "%s", header(&r, "ETag"));
    snprintf(modified, sizeof modified, "%s", header(&r, "Last-Modified"));
    reply_free(&r);

    snprintf(extra, sizeof extra, "If-None-Match: \"x\", %s\r\n", etag);
    get(&s, "/files/hello.txt", extra, &r);
    CHECK_EQ(r.status, 304);
    CHECK_EQ(r.body_len, 0);
    CHECK_STR(header(&r, "ETag"), etag);
    reply_free(&r);

    snprintf(extra, sizeof extra, "If-Modified-Since: %s\r\n", modified);
    get(&s, "/files/hello.txt", extra, &r);
    CHECK_EQ(r.status, 304);
    reply_free(&r);

    get(&s, "/files/hello.txt", "If-None-Match: \"other\"\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "hello world\n");
    reply_free(&r);

    get(&s, "/files/hello.txt", "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n", &r);
    CHECK_EQ(r.status, 200);
    reply_free(&r);
    server_stop(&s);
}

/* One range gives 206 with Content-Range (a-b, a-, -n); a range past the end 416; several
 * ranges, or a stale If-Range, the whole file. */
TEST_PLAIN(files_answer_byte_ranges)
{
    struct server s;
    struct reply r;
    server_start(&s, NULL);
    const char *cases[][3] = {
        {"bytes=0-4", "hello", "bytes 0-4/12"},
        {"bytes=6-", "world\n", "bytes 6-11/12"},
        {"bytes=-6", "world\n", "bytes 6-11/12"},
        {"bytes=10-99", "d\n", "bytes 10-11/12"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char extra[64];
        snprintf(extra, sizeof extra, "Range: %s\r\n", cases[i][0]);
        get(&s, "/files/hello.txt", extra, &r);
        CHECK_EQ(r.status, 206);
        CHECK_STR(r.body, cases[i][1]);
        CHECK_STR(header(&r, "Content-Range"), cases[i][2]);
        reply_free(&r);
    }
    get(&s, "/files/hello.txt", "Range: bytes=12-\r\n", &r);
    CHECK_EQ(r.status, 416);
    CHECK_STR(header(&r, "Content-Range"), "bytes */12");
    reply_free(&r);
    get(&s, "/files/hello.txt", "Range: bytes=0-1,4-5\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "hello world\n");
    reply_free(&r);
    get(&s, "/files/hello.txt", "Range: bytes=0-4\r\nIf-Range: \"stale\"\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "hello world\n");
    reply_free(&r);
    server_stop(&s);
}

/* Nothing outside the root is reachable: "..", its %-escapes, a symlink out, %00, %2F, an
 * absolute path; a malformed escape is a 400. */
TEST_PLAIN(files_refuse_escapes_from_the_root)
{
    struct server s;
    struct reply r;
    server_start(&s, NULL);
    const char *refused[] = {"/files/../secret.txt",     "/files/%2e%2e/secret.txt",
                             "/files/%2E%2E/secret.txt", "/files/sub/../../secret.txt",
                             "/files/outlink",           "/files//etc/passwd",
                             "/files/hello.txt%00",      "/files/sub%2Findex.html",
                             "/files/nope.txt",          "/files/hello.txt/"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        get(&s, refused[i], NULL, &r);
        if (r.status != 404)
            test_fail(__FILE__, __LINE__, "GET %s: %d, want 404", refused[i], r.status);
        CHECK(strstr(r.body, "outside") == NULL);
        reply_free(&r);
    }
    get(&s, "/files/%zz", NULL, &r);
    CHECK_EQ(r.status, 400);
    reply_free(&r);
    server_stop(&s);
}

/* A directory serves its index.html as HTML; without its final '/' it redirects there. */
TEST_PLAIN(files_serve_directory_indexes)
{
    struct server s;
    struct reply r;
    server_start(&s, NULL);
    get(&s, "/files/sub/", NULL, &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "<p>sub</p>\n");
    CHECK_STR(header(&r, "Content-Type"), "text/html; charset=utf-8");
    reply_free(&r);
    get(&s, "/files/", NULL, &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "<p>root</p>\n");
    reply_free(&r);
    get(&s, "/files/sub", NULL, &r);
    CHECK_EQ(r.status, 301);
    CHECK_STR(header(&r, "Location"), "/files/sub/");
    reply_free(&r);
    get(&s, "/files", NULL, &r);
    CHECK_EQ(r.status, 301);
    CHECK_STR(header(&r, "Location"), "/files/");
    reply_free(&r);
    server_stop(&s);
}

/* The demo site in www/ is served with the right types. */
TEST_PLAIN(demo_site_is_served)
{
    const char *www = getenv("CORRAL_WWW");
    if (!www)
        TEST_SKIP("CORRAL_WWW is not set");
    struct server s;
    struct reply r;
    server_start(&s, (const char *[]){"--root", www, NULL});
    const char *cases[][2] = {
        {"/files/", "text/html; charset=utf-8"},
        {"/files/style.css", "text/css; charset=utf-8"},
        {"/files/logo.svg", "image/svg+xml"},
        {"/files/hello.txt", "text/plain; charset=utf-8"},
        {"/files/docs/", "text/html; charset=utf-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        get(&s, cases[i][0], NULL, &r);
        if (r.status != 200)
            test_fail(__FILE__, __LINE__, "GET %s: %d", cases[i][0], r.status);
        CHECK_STR(header(&r, "Content-Type"), cases[i][1]);
        CHECK(r.body_len > 0);
        reply_free(&r);
    }
    server_stop(&s);
}

/* ---- RFC 9110 13: conditional requests on the static-file route ------------------------- */

/* The file's validators, from a plain GET. */
static void validators(const struct server *s, char *etag, size_t etag_cap, char *modified,
                       size_t modified_cap)
{
    struct reply r;
    get(s, "/files/hello.txt", NULL, &r);
    CHECK_EQ(r.status, 200);
    snprintf(etag, etag_cap, "%s", header(&r, "ETag"));
    snprintf(modified, modified_cap, "%s", header(&r, "Last-Modified"));
    reply_free(&r);
}

/* GET /files/hello.txt with one extra header line built from fmt and arg; the status. */
static int conditional_get(const struct server *s, const char *method, const char *line)
{
    struct reply r;
    request(s, method, "/files/hello.txt", line, NULL, 0, &r);
    int status = r.status;
    if (status == 200 && strcmp(method, "GET") == 0)
        CHECK_STR(r.body, "hello world\n");
    reply_free(&r);
    return status;
}

/* 13.1.1: an If-Match that does not match (strongly) gets 412 and not the method; one that
 * matches, or "*", gets the file. A weak tag never matches If-Match. */
TEST_PLAIN(rfc9110_13_1_1_if_match_false_gets_412)
{
    struct server s;
    char etag[128], modified[64], line[512];
    server_start(&s, NULL);
    validators(&s, etag, sizeof etag, modified, sizeof modified);
    CHECK_EQ(conditional_get(&s, "GET", "If-Match: \"other\"\r\n"), 412);
    CHECK_EQ(conditional_get(&s, "HEAD", "If-Match: \"other\"\r\n"), 412);
    snprintf(line, sizeof line, "If-Match: W/%s\r\n", etag);
    CHECK_EQ(conditional_get(&s, "GET", line), 412);
    snprintf(line, sizeof line, "If-Match: \"other\", %s\r\n", etag);
    CHECK_EQ(conditional_get(&s, "GET", line), 200);
    CHECK_EQ(conditional_get(&s, "GET", "If-Match: *\r\n"), 200);
    server_stop(&s);
}

/* 13.1.2: If-None-Match matching by the weak comparison gets 304 for GET and HEAD, with the
 * ETag and Date a 200 would carry (15.4.5) and no content; "*" matches too. */
TEST_PLAIN(rfc9110_13_1_2_if_none_match_uses_the_weak_comparison_and_gets_304)
{
    struct server s;
    char etag[128], modified[64], line[512];
    server_start(&s, NULL);
    validators(&s, etag, sizeof etag, modified, sizeof modified);
    snprintf(line, sizeof line, "If-None-Match: W/%s\r\n", etag);
    struct reply r;
    get(&s, "/files/hello.txt", line, &r);
    CHECK_EQ(r.status, 304);
    CHECK_EQ(r.body_len, 0);
    CHECK_STR(header(&r, "ETag"), etag);
    CHECK(header(&r, "Date") != NULL);
    CHECK(header(&r, "Content-Length") == NULL); /* 8.6: none unless it equals the 200's */
    reply_free(&r);
    CHECK_EQ(conditional_get(&s, "HEAD", line), 304);
    CHECK_EQ(conditional_get(&s, "GET", "If-None-Match: *\r\n"), 304);
    server_stop(&s);
}

/* 13.1.3: If-Modified-Since is ignored with If-None-Match present, and when it is not a valid
 * HTTP-date. */
TEST_PLAIN(rfc9110_13_1_3_if_modified_since_is_ignored_when_it_must_be)
{
    struct server s;
    char etag[128], modified[64], line[512];
    server_start(&s, NULL);
    validators(&s, etag, sizeof etag, modified, sizeof modified);
    snprintf(line, sizeof line, "If-None-Match: \"other\"\r\nIf-Modified-Since: %s\r\n", modified);
    CHECK_EQ(conditional_get(&s, "GET", line), 200);
    CHECK_EQ(conditional_get(&s, "GET", "If-Modified-Since: yesterday\r\n"), 200);
    snprintf(line, sizeof line, "If-Modified-Since: %s, %s\r\n", modified, modified);
    CHECK_EQ(conditional_get(&s, "GET", line), 200); /* more than one member */
    snprintf(line, sizeof line, "If-Modified-Since: %s\r\n", modified);
    CHECK_EQ(conditional_get(&s, "GET", line), 304);
    server_stop(&s);
}

/* 13.1.4: If-Unmodified-Since older than the file gets 412; it is ignored with If-Match
 * present and when it is not a valid date. */
TEST_PLAIN(rfc9110_13_1_4_if_unmodified_since_older_than_the_file_gets_412)
{
    struct server s;
    char etag[128], modified[64], line[512];
    server_start(&s, NULL);
    validators(&s, etag, sizeof etag, modified, sizeof modified);
    const char *old = "If-Unmodified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n";
    CHECK_EQ(conditional_get(&s, "GET", old), 412);
    snprintf(line, sizeof line, "If-Unmodified-Since: %s\r\n", modified);
    CHECK_EQ(conditional_get(&s, "GET", line), 200);
    snprintf(line, sizeof line, "If-Match: %s\r\n%s", etag, old);
    CHECK_EQ(conditional_get(&s, "GET", line), 200);
    CHECK_EQ(conditional_get(&s, "GET", "If-Unmodified-Since: never\r\n"), 200);
    server_stop(&s);
}

/* 13.1.5: If-Range without Range is ignored; a weak or different validator makes the server
 * ignore Range (the whole file, 200); a matching one gives the range. */
TEST_PLAIN(rfc9110_13_1_5_if_range_needs_a_strong_match_and_a_range)
{
    struct server s;
    char etag[128], modified[64], line[512];
    server_start(&s, NULL);
    validators(&s, etag, sizeof etag, modified, sizeof modified);
    snprintf(line, sizeof line, "If-Range: %s\r\n", etag);
    CHECK_EQ(conditional_get(&s, "GET", line), 200);
    snprintf(line, sizeof line, "If-Range: W/%s\r\nRange: bytes=0-4\r\n", etag);
    CHECK_EQ(conditional_get(&s, "GET", line), 200);
    CHECK_EQ(conditional_get(&s, "GET", "If-Range: \"other\"\r\nRange: bytes=0-4\r\n"), 200);
    snprintf(line, sizeof line, "If-Range: %s\r\nRange: bytes=0-4\r\n", etag);
    struct reply r;
    get(&s, "/files/hello.txt", line, &r);
    CHECK_EQ(r.status, 206);
    CHECK_STR(r.body, "hello");
    CHECK_STR(header(&r, "Content-Range"), "bytes 0-4/12"); /* 15.3.7 */
    CHECK_STR(header(&r, "ETag"), etag);
    reply_free(&r);
    server_stop(&s);
}

/* 13.2.1: preconditions are not evaluated when the response would not be 2xx or 412: a
 * missing file is 404 whatever If-Match says. 13.2.2: If-Match is evaluated first. */
TEST_PLAIN(rfc9110_13_2_preconditions_follow_their_order_and_only_for_2xx)
{
    struct server s;
    char etag[128], modified[64], line[512];
    server_start(&s, NULL);
    validators(&s, etag, sizeof etag, modified, sizeof modified);
    struct reply r;
    get(&s, "/files/missing.txt", "If-Match: \"x\"\r\n", &r);
    CHECK_EQ(r.status, 404);
    reply_free(&r);
    snprintf(line, sizeof line, "If-Match: \"other\"\r\nIf-None-Match: %s\r\n", etag);
    CHECK_EQ(conditional_get(&s, "GET", line), 412);
    snprintf(line, sizeof line, "If-Match: %s\r\nIf-None-Match: %s\r\n", etag, etag);
    CHECK_EQ(conditional_get(&s, "GET", line), 304);
    server_stop(&s);
}

/* ---- Start-up, flags and stopping ------------------------------------------------------- */

/* Run corral-httpd with args to its end; its exit status, stdout and stderr. */
static int run_to_end(const char *const *args, char *out, char *err, size_t cap)
{
    int ofd, efd;
    pid_t pid = spawn(args, &ofd, &efd);
    int status = wait_exit(pid, WAIT_MS);
    if (status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        test_fail(__FILE__, __LINE__, "corral-httpd %s did not exit", args[0]);
    }
    ssize_t n = read(ofd, out, cap - 1);
    out[n > 0 ? n : 0] = '\0';
    n = read(efd, err, cap - 1);
    err[n > 0 ? n : 0] = '\0';
    close(ofd);
    close(efd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* --max-conns 1 on one core: a second connection waits, unanswered, while the first lives,
 * and is served once the first ends. */
TEST_PLAIN(max_conns_holds_back_connections_past_the_limit)
{
    struct server s;
    server_start(&s, (const char *[]){"--max-conns", "1", "--cores", "1", NULL});
    static const char req[] = "GET / HTTP/1.1\r\nHost: test\r\n\r\n";
    int first = dial(&s);
    struct reply r;
    send_all(first, req, sizeof req - 1);
    read_reply(first, &r, false); /* accepted and live: the core is at its limit */
    CHECK_EQ(r.status, 200);
    reply_free(&r);
    int second = dial(&s); /* the kernel completes the handshake; corral does not accept */
    send_all(second, req, sizeof req - 1);
    struct pollfd pfd = {.fd = second, .events = POLLIN};
    CHECK_EQ(poll(&pfd, 1, 300), 0); /* no answer while the first connection lives */
    close(first);
    read_reply(second, &r, false);
    CHECK_EQ(r.status, 200);
    reply_free(&r);
    close(second);
    server_stop(&s);
}

/* A bad flag or value prints the usage on stderr and exits 2; --help prints it on stdout
 * and exits 0. */
TEST_PLAIN(bad_flags_exit_2_with_usage)
{
    const char *const bad[][3] = {
        {"--bogus", NULL},
        {"--cores", "abc", NULL},
        {"--cores", "-1", NULL},
        {"--cores", "99999", NULL},
        {"--balance", "x", NULL},
        {"--backend", "kqueue", NULL},
        {"--addr", NULL},
        {"stray", NULL},
        {"-x", NULL},
        {"--trace", NULL},
        {"--max-conns", "0", NULL},
        {"--max-conns", "-3", NULL},
        {"--max-conns", "x", NULL},
    };
    char out[4096], err[4096];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = run_to_end(bad[i], out, err, sizeof out);
        if (rc != 2 || !strstr(err, "usage: corral-httpd"))
            test_fail(__FILE__, __LINE__, "corral-httpd %s: exit %d, stderr \"%s\"", bad[i][0], rc,
                      err);
    }
    CHECK_EQ(run_to_end((const char *[]){"--help", NULL}, out, err, sizeof out), 0);
    CHECK(strstr(out, "usage: corral-httpd") != NULL);
    CHECK(strstr(out, "--balance") != NULL);
}

/* --help: the usage on stdout (nothing on stderr), naming every flag, and exit 0. */
TEST_PLAIN(help_prints_every_flag_on_stdout_and_exits_0)
{
    char out[4096], err[4096];
    CHECK_EQ(run_to_end((const char *[]){"--help", NULL}, out, err, sizeof out), 0);
    CHECK(strncmp(out, "usage: corral-httpd", 19) == 0);
    CHECK_EQ(strlen(err), 0);
    const char *flags[] = {"--addr",  "--cores", "--backend", "--balance",
                           "--root",  "--work",  "--metrics", "--trace",
                           "--debug", "--help",  "--version", "--max-conns"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (!strstr(out, flags[i]))
            test_fail(__FILE__, __LINE__, "--help does not name %s:\n%s", flags[i], out);
}

/* --version: "corral-httpd VERSION" (meson's project version) alone on stdout, and exit 0,
 * even after other flags. */
TEST_PLAIN(version_prints_the_project_version_and_exits_0)
{
    char out[4096], err[4096];
    CHECK_EQ(run_to_end((const char *[]){"--version", NULL}, out, err, sizeof out), 0);
    CHECK(strcmp(out, "corral-httpd " CORRAL_VERSION "\n") == 0);
    CHECK(strcmp(CORRAL_VERSION, "") != 0);
    CHECK_EQ(strlen(err), 0);
    CHECK_EQ(run_to_end((const char *[]){"--cores", "1", "--version", NULL}, out, err, sizeof out),
             0);
    CHECK(strcmp(out, "corral-httpd " CORRAL_VERSION "\n") == 0);
}

/* The manual (docs/corral-httpd.1, named by CORRAL_HTTPD_MAN) has an entry under OPTIONS for
 * every flag --help names. */
TEST_PLAIN(man_page_documents_the_flags_of_help)
{
    const char *man = getenv("CORRAL_HTTPD_MAN");
    if (!man)
        test_fail(__FILE__, __LINE__, "CORRAL_HTTPD_MAN is not set (meson test sets it)");
    static char page[65536];
    int fd = open(man, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    ssize_t n = read(fd, page, sizeof page - 1);
    close(fd);
    CHECK(n > 0);
    page[n] = '\0';
    char out[4096], err[4096];
    CHECK_EQ(run_to_end((const char *[]){"--help", NULL}, out, err, sizeof out), 0);
    int flags = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        char flag[32], entry[80] = "\\-\\-";
        if (sscanf(line, " --%31[a-z-]", flag) != 1)
            continue;
        flags++;
        /* an entry is a .TP tag line: ".B \-\-work", ".BI \-\-addr ...", ".BR \-\-backend ...",
         * each '-' of the flag written "\-" */
        for (const char *f = flag; *f; f++)
            strncat(entry, *f == '-' ? "\\-" : (char[]){*f, 0}, sizeof entry - strlen(entry) - 1);
        bool tagged = false;
        for (const char *at = strstr(page, entry); at && !tagged; at = strstr(at + 1, entry))
            tagged = at >= page + 4 &&
                     (strncmp(at - 3, ".B ", 3) == 0 || strncmp(at - 4, ".BI ", 4) == 0 ||
                      strncmp(at - 4, ".BR ", 4) == 0) &&
                     strstr(page, ".SH OPTIONS") < at;
        if (!tagged)
            test_fail(__FILE__, __LINE__, "%s has no entry for --%s", man, flag);
    }
    CHECK_EQ(flags, 12);
}

/* An address already in use, or a root that is not a directory, ends the server with 1.
 * (Under --balance reuseport two servers may share a port: SO_REUSEPORT allows it.) */
TEST_PLAIN(unusable_address_or_root_exits_1)
{
    struct server s;
    char out[4096], err[4096];
    server_start(&s, (const char *[]){"--balance", "rr", NULL});
    const char *busy[] = {"--addr", s.addr, "--root", make_root(), "--balance", "rr", NULL};
    CHECK_EQ(run_to_end(busy, out, err, sizeof out), 1);
    CHECK(strstr(err, "in use") != NULL);
    server_stop(&s);
    const char *noroot[] = {"--addr", "127.0.0.1:0", "--root", "/nonexistent/dir", NULL};
    CHECK_EQ(run_to_end(noroot, out, err, sizeof out), 1);
    CHECK(strstr(err, "/nonexistent/dir") != NULL);
}

/* The ready line names the address, the cores and the backend (--backend wins over the
 * environment). */
TEST_PLAIN(ready_line_names_cores_and_backend)
{
    struct server s;
    server_start(&s, (const char *[]){"--backend", "epoll", NULL});
    CHECK(strstr(s.line, "(1 cores, epoll)") != NULL);
    CHECK(strncmp(s.addr, "127.0.0.1:", 10) == 0);
    server_stop(&s);
    const char *env = getenv("CORRAL_BACKEND");
    server_start(&s, NULL);
    if (env && strcmp(env, "epoll") == 0)
        CHECK(strstr(s.line, ", epoll)") != NULL);
    else
        CHECK(strstr(s.line, ", io_uring)") || strstr(s.line, ", epoll)"));
    server_stop(&s);
}

/* Two cores under each balance serve every request. */
TEST_PLAIN(two_cores_serve_under_every_balance)
{
    cpu_set_t set;
    CHECK_EQ(sched_getaffinity(0, sizeof set, &set), 0);
    if (CPU_COUNT(&set) < 2)
        TEST_SKIP("one CPU");
    const char *balances[] = {"reuseport", "rr", "least"};
    for (size_t i = 0; i < 3; i++) {
        struct server s;
        struct reply r;
        server_start(&s, (const char *[]){"--cores", "2", "--balance", balances[i], NULL});
        CHECK(strstr(s.line, "(2 cores,") != NULL);
        for (int j = 0; j < 10; j++) {
            get(&s, j % 2 ? "/" : "/work", NULL, &r);
            CHECK_EQ(r.status, 200);
            reply_free(&r);
        }
        server_stop(&s);
    }
}

/* IPv6: --addr [::1]:0 listens there and the ready line says so. */
TEST_PLAIN(serves_on_ipv6_loopback)
{
    int probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = probe >= 0 && bind(probe, (struct sockaddr *)&a, sizeof a) == 0;
    if (probe >= 0)
        close(probe);
    if (!ok)
        TEST_SKIP("no ::1");
    struct server s;
    struct reply r;
    server_start(&s, (const char *[]){"--addr", "[::1]:0", NULL});
    CHECK(strncmp(s.addr, "[::1]:", 6) == 0);
    get(&s, "/", NULL, &r);
    CHECK_STR(r.body, "Hello, world!");
    reply_free(&r);
    server_stop(&s);
}

/* SIGINT stops the server like SIGTERM: exit 0. */
TEST_PLAIN(sigint_stops_the_server)
{
    struct server s;
    server_start(&s, NULL);
    server_stop_with(&s, SIGINT);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* SIGTERM with a request in flight (half its body sent) lets that request finish and be
 * answered, while an idle keep-alive connection is closed at once; then exit 0, well
 * before the 5 s drain deadline. */
TEST_PLAIN(sigterm_drains_in_flight_requests)
{
    struct server s;
    struct reply r;
    server_start(&s, NULL);
    int idle = dial(&s);
    const char *hello = "GET / HTTP/1.1\r\nHost: test\r\n\r\n";
    send_all(idle, hello, strlen(hello));
    read_reply(idle, &r, false);
    CHECK_STR(r.body, "Hello, world!");
    reply_free(&r);

    int busy = dial(&s);
    const char *head = "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nhello";
    send_all(busy, head, strlen(head));
    usleep(100 * 1000); /* the handler is now waiting for the rest of the body */
    int64_t start = now_ms();
    CHECK_EQ(kill(s.pid, SIGTERM), 0);
    char byte;
    CHECK_EQ(recv(idle, &byte, 1, 0), 0); /* the idle connection ends */
    send_all(busy, "world", 5);
    read_reply(busy, &r, false);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "helloworld");
    reply_free(&r);
    close(idle);
    close(busy);
    int status = wait_exit(s.pid, WAIT_MS);
    CHECK(status != -1 && WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_LT(now_ms() - start, 4000);
    close(s.out);
}

/* ---- Descriptors under churn ------------------------------------------------------------ */

/* Entries of /proc/PID/fd. */
static int fds_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    CHECK(d != NULL);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Poll until pid has want descriptors open, at most WAIT_MS; returns the last count. */
static int wait_fds(pid_t pid, int want)
{
    int n = fds_of(pid);
    for (int waited = 0; n != want && waited < WAIT_MS; waited += 10) {
        usleep(10 * 1000);
        n = fds_of(pid);
    }
    return n;
}

/* pid's descriptor count once it held still for 100 ms (at most WAIT_MS). */
static int settled_fds(pid_t pid)
{
    int n = fds_of(pid);
    for (int waited = 0, still = 0; still < 100 && waited < WAIT_MS; waited += 10) {
        usleep(10 * 1000);
        int m = fds_of(pid);
        still = m == n ? still + 10 : 0;
        n = m;
    }
    return n;
}

/* Dial, send text, and go away: with a reset (SO_LINGER 0) when rst, else with a FIN. */
static void send_and_leave(const struct server *s, const char *text, bool rst)
{
    int fd = dial(s);
    send_all(fd, text, strlen(text));
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (rst)
        CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(fd);
}

/* Dial, send text, read the response and close; its status. */
static int send_and_read(const struct server *s, const char *text)
{
    struct reply r;
    int fd = dial(s);
    send_all(fd, text, strlen(text));
    read_reply(fd, &r, false);
    reply_free(&r);
    close(fd);
    return r.status;
}

/* Connections that go away at every stage (half a head with a FIN or a reset, a reset while
 * a response is on its way or a body half sent, a rejected request, a plain keep-alive
 * exchange) leave the server with the descriptors it had before them, and serving. */
TEST_PLAIN(cut_connections_leave_no_descriptor_behind)
{
    struct server s;
    struct reply r;
    server_start(&s, NULL);
    get(&s, "/", NULL, &r); /* the server is all up (it may open some after its ready line) */
    reply_free(&r);
    int before = settled_fds(s.pid);
    const char *half = "GET /files/hello.txt HTTP/1.1\r\nHost: test\r\nUser-Ag";
    const char *file = "GET /files/hello.txt HTTP/1.1\r\nHost: test\r\n\r\n";
    const char *post = "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\nabc";
    const char *bad = "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
    const char *hello = "GET / HTTP/1.1\r\nHost: test\r\n\r\n";
    for (int i = 0; i < 40; i++) {
        send_and_leave(&s, half, false);
        send_and_leave(&s, half, true);
        send_and_leave(&s, file, true); /* its response on the way */
        send_and_leave(&s, post, true); /* its body half sent */
        CHECK_EQ(send_and_read(&s, bad), 400);
        CHECK_EQ(send_and_read(&s, hello), 200);
    }
    CHECK_EQ(wait_fds(s.pid, before), before);
    get(&s, "/", NULL, &r);
    CHECK_STR(r.body, "Hello, world!");
    reply_free(&r);
    CHECK_EQ(wait_fds(s.pid, before), before);
    server_stop(&s);
}

/* ---- Debugging: SIGUSR1, the stall detector, --trace ------------------------------------ */

/* Read err into buf (cap bytes, NUL-terminated) until it holds a whole line with want in
 * it, until its end, or until WAIT_MS passes without a byte; whether that line came. */
static bool read_until(int err, char *buf, size_t cap, size_t *len, const char *want)
{
    for (;;) {
        const char *at = want ? strstr(buf, want) : NULL;
        if (at && strchr(at, '\n'))
            return true;
        struct pollfd p = {.fd = err, .events = POLLIN};
        if (*len + 1 >= cap || poll(&p, 1, WAIT_MS) != 1)
            return false;
        ssize_t n = read(err, buf + *len, cap - 1 - *len);
        if (n <= 0)
            return false;
        *len += (size_t)n;
        buf[*len] = '\0';
    }
}

/* The value of " NAME=" in the line of text that starts with line_start; -1 when absent. */
static long long counter_in(const char *text, const char *line_start, const char *name)
{
    const char *line = strstr(text, line_start);
    if (!line)
        return -1;
    const char *end = strchr(line, '\n');
    char key[64];
    snprintf(key, sizeof key, " %s=", name);
    const char *at = strstr(line, key);
    if (!at || (end && at > end))
        return -1;
    return strtoll(at + strlen(key), NULL, 10);
}

/* Run the server with CORRAL_STALL_MS=ms (NULL: as the test's environment has it). */
static void server_start_stall(struct server *s, const char *const *extra, int *err, const char *ms)
{
    char saved[32] = "";
    const char *old = getenv("CORRAL_STALL_MS");
    bool had = old != NULL;
    if (had)
        snprintf(saved, sizeof saved, "%s", old);
    if (ms)
        setenv("CORRAL_STALL_MS", ms, 1);
    server_start_err(s, extra, err);
    if (had)
        setenv("CORRAL_STALL_MS", saved, 1);
    else
        unsetenv("CORRAL_STALL_MS");
}

/* SIGUSR1 (sent to the server's PID) writes the counters to stderr, summed and per core,
 * counting the requests made before it; the server goes on serving. */
TEST_PLAIN(sigusr1_writes_the_counters_to_stderr)
{
    struct server s;
    struct reply r;
    int err;
    static char text[65536];
    size_t len = 0;
    text[0] = '\0';
    server_start_err(&s, NULL, &err);
    for (int i = 0; i < 3; i++) {
        get(&s, "/", NULL, &r);
        CHECK_EQ(r.status, 200);
        reply_free(&r);
    }
    CHECK_EQ(kill(s.pid, SIGUSR1), 0);
    if (!read_until(err, text, sizeof text, &len, "counters, core 0:"))
        test_fail(__FILE__, __LINE__, "no counters on stderr after SIGUSR1: \"%s\"", text);
    CHECK(strstr(text, "corral-httpd: SIGUSR1: counters and tasks\n") != NULL);
    CHECK_EQ(counter_in(text, "counters, all cores:", "http_requests"), 3);
    CHECK_EQ(counter_in(text, "counters, core 0:", "http_requests"), 3);
    CHECK_EQ(counter_in(text, "counters, core 0:", "conns_accepted"), 3);
    CHECK(counter_in(text, "counters, core 0:", "tasks_spawned") >= 3); /* a task a connection */
    CHECK(strstr(text, " http_responses=0/3/0/0/0") != NULL);
    get(&s, "/", NULL, &r);
    CHECK_EQ(r.status, 200);
    reply_free(&r);
    server_stop(&s);
    close(err);
}

/* SIGUSR1 is answered off the executors: while core 0, the only one, is blocked in a
 * handler's sleep(1) (the stall detector off, so that nothing cuts it short), the counters
 * come out before the handler's response, counting its request. */
TEST_PLAIN(sigusr1_answers_while_core_0_is_blocked)
{
    if (test_under_valgrind())
        exit(77); /* timing: the server must answer well within the handler's second */
#ifdef __SANITIZE_THREAD__
    exit(77);
#endif
    struct server s;
    struct reply r;
    int err;
    static char text[65536];
    size_t len = 0;
    text[0] = '\0';
    server_start_stall(&s, (const char *[]){"--debug", NULL}, &err, "0");
    int fd = dial(&s);
    const char *req = "GET /debug/sleep HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    send_all(fd, req, strlen(req));
    usleep(200 * 1000); /* the handler is in its sleep */
    CHECK_EQ(kill(s.pid, SIGUSR1), 0);
    if (!read_until(err, text, sizeof text, &len, "counters, core 0:"))
        test_fail(__FILE__, __LINE__, "no counters on stderr after SIGUSR1: \"%s\"", text);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 0), 0); /* no response yet: the core is still in sleep(1) */
    CHECK_EQ(counter_in(text, "counters, core 0:", "http_requests"), 1);
    read_reply(fd, &r, false);
    CHECK_EQ(r.status, 200);
    long long ms = -1;
    CHECK_EQ(sscanf(r.body, "slept %lld ms", &ms), 1);
    CHECK(ms >= 900); /* the detector off: nothing cut the sleep short */
    reply_free(&r);
    close(fd);
    server_stop(&s);
    close(err);
}

/* The newcomer's case: a handler that blocks in sleep(1) is reported in the log (stderr) as
 * a stall of its task ('connection', the task crl_http_serve runs a connection's handlers
 * in), with a backtrace through the handler (route_debug_sleep) to sleep, and with the
 * handler's file and line when built with -g. The detector's signal cuts the sleep short. */
TEST_PLAIN(a_handler_blocked_in_sleep_is_reported_with_a_backtrace)
{
    struct server s;
    struct reply r;
    int err;
    static char text[65536];
    size_t len = 0;
    text[0] = '\0';
    server_start_stall(&s, (const char *[]){"--debug", NULL}, &err, "100");
    get(&s, "/debug/sleep", NULL, &r);
    CHECK_EQ(r.status, 200);
    CHECK(strncmp(r.body, "slept ", 6) == 0);
    reply_free(&r);
    server_stop(&s); /* then stderr ends: the report has been written by then */
    read_until(err, text, sizeof text, &len, NULL);
    close(err);
    const char *report = strstr(text, "stall: task 'connection' has run ");
    if (!report)
        test_fail(__FILE__, __LINE__, "no stall report of task 'connection': \"%s\"", text);
    const char *handler = strstr(report, "route_debug_sleep+");
    const char *sleep_frame = strstr(report, " sleep+");
#ifdef CRL_HAVE_LIBDW
    bool names_handler = handler && handler > sleep_frame;
#else
    bool names_handler = true; /* dladdr names no static function of the executable */
    (void)handler;
#endif
    if (!sleep_frame || !names_handler)
        test_fail(__FILE__, __LINE__, "no backtrace from sleep to the handler: \"%s\"", report);
#if defined(CRL_HAVE_LIBDW) && defined(TEST_HAVE_DEBUG)
    const char *end = strchr(handler, '\n');
    const char *file = strstr(handler, "corral-httpd.c:");
    if (!file || (end && file > end))
        test_fail(__FILE__, __LINE__, "the handler's frame has no file and line: \"%s\"", report);
#endif
}

/* --trace FILE is taken (crl_config.trace_file): the server serves and stops as usual.
 * (Once the runtime writes the trace, this is where to check FILE is valid JSON.) */
TEST_PLAIN(trace_flag_is_taken)
{
    struct server s;
    struct reply r;
    char path[128];
    make_root(); /* makes tmp */
    snprintf(path, sizeof path, "%s/trace.json", tmp);
    server_start(&s, (const char *[]){"--trace", path, NULL});
    get(&s, "/", NULL, &r);
    CHECK_EQ(r.status, 200);
    reply_free(&r);
    server_stop(&s);
    unlink(path);
}
