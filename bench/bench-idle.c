/* bench-idle: memory per idle keep-alive connection of an HTTP server (issue 20, item 2).
 *
 *   bench-idle PORT PID CONNS [PATH]
 *
 * Opens CONNS connections to 127.0.0.1:PORT, with at most 200 requests in flight while they
 * open; on each sends one "GET PATH" (default /) and reads its whole response (a
 * Content-Length body), then leaves the connection open and idle. 2 s after the last
 * response it reads the RSS of the server (process PID and its descendants, as nginx's
 * workers are its master's), then closes every connection and reads it again each 100 ms
 * for 2 s. Prints `name value unit` lines (bench/lib.sh's format):
 *   idle_rss_before       the server's RSS before the first connection (KiB)
 *   idle_rss_after        its RSS with CONNS idle connections (KiB)
 *   idle_bytes_per_conn   (after - before) / CONNS, in bytes
 *   idle_rss_closed       its RSS 2 s after the connections closed (KiB)
 *   idle_release_ms       how long after the close RSS came within 10% of the growth
 *                         above before (-1: not within 2 s)
 * With IDLE_ACTIVE=1 in the environment a connection counts as open once its request is sent,
 * and no response is awaited: the memory of connections with a slow response in flight
 * (corral-httpd --debug's GET /debug/slow, answered after 10 s).
 * The client itself is plain epoll, one thread; it raises its open-files limit first. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_IN_FLIGHT = 200, SETTLE_MS = 2000, RELEASE_MS = 2000 };

struct conn {
    int fd;
    size_t sent, got, need; /* need: head + body length once the head is in; 0 before */
    char buf[1024];         /* the response head (a body past it is only counted) */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- The server's RSS ---------------------------------------------------------------------- */

static long field_kib(pid_t pid, const char *name)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long v = 0;
    size_t len = strlen(name);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, name, len) == 0) {
            v = strtol(line + len, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    int ppid = 0;
    if (p)
        sscanf(p + 1, " %*c %d", &ppid);
    return ppid;
}

static bool descends_from(pid_t pid, pid_t root)
{
    for (int depth = 0; pid > 1 && depth < 16; depth++) {
        if (pid == root)
            return true;
        pid = parent_of(pid);
    }
    return false;
}

/* VmRSS of root and every process below it, in KiB. */
static long tree_rss_kib(pid_t root)
{
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    long sum = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        pid_t pid = (pid_t)atoi(e->d_name);
        if (descends_from(pid, root))
            sum += field_kib(pid, "VmRSS:");
    }
    closedir(d);
    return sum;
}

/* ---- The connections ----------------------------------------------------------------------- */

static char request[256];
static size_t request_len;
static bool active; /* IDLE_ACTIVE: the request sent is enough */

static int dial(int ep, int port, struct conn *c)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS)
        return -errno;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) == 0 ? 0 : -errno;
}

/* The response's whole length once its head is in (0: not yet). */
static size_t response_len(const struct conn *c)
{
    const char *end =
        memmem(c->buf, c->got < sizeof c->buf ? c->got : sizeof c->buf, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t head = (size_t)(end - c->buf) + 4, body = 0;
    for (const char *p = c->buf; p && p < end; p = memchr(p, '\n', (size_t)(end - p))) {
        p += *p == '\n';
        if (strncasecmp(p, "content-length:", 15) == 0)
            body = strtoul(p + 15, NULL, 10);
    }
    return head + body;
}

/* Step c on an event: true once its response is complete (it is then idle). */
static bool step(int ep, struct conn *c)
{
    if (c->sent < request_len) {
        ssize_t n = send(c->fd, request + c->sent, request_len - c->sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) {
            fprintf(stderr, "bench-idle: send: %s\n", strerror(errno));
            exit(1);
        }
        if (n > 0 && (c->sent += (size_t)n) == request_len) {
            if (active) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); /* in flight from here on */
                return true;
            }
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        }
    }
    for (;;) {
        char scratch[16384];
        char *into = c->got < sizeof c->buf ? c->buf + c->got : scratch;
        size_t room = c->got < sizeof c->buf ? sizeof c->buf - c->got : sizeof scratch;
        ssize_t n = recv(c->fd, into, room, 0);
        if (n < 0 && errno == EAGAIN)
            return false;
        if (n <= 0) {
            fprintf(stderr, "bench-idle: the server ended a connection (%s)\n",
                    n < 0 ? strerror(errno) : "EOF");
            exit(1);
        }
        c->got += (size_t)n;
        if (!c->need)
            c->need = response_len(c);
        if (c->need && c->got >= c->need) {
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); /* idle from here on */
            return true;
        }
    }
}

/* Open all conns, at most MAX_IN_FLIGHT at a time, each through its one response. */
static void open_all(int port, struct conn *conns, long n)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    long started = 0, done = 0;
    int64_t deadline = now_ms() + 120000;
    while (done < n) {
        for (; started < n && started - done < MAX_IN_FLIGHT; started++) {
            int rc = dial(ep, port, &conns[started]);
            if (rc) {
                fprintf(stderr, "bench-idle: connection %ld: %s\n", started, strerror(-rc));
                exit(1);
            }
        }
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, 1000);
        for (int i = 0; i < k; i++)
            done += step(ep, evs[i].data.ptr);
        if (now_ms() > deadline) {
            fprintf(stderr, "bench-idle: only %ld of %ld connections answered in 120 s\n", done, n);
            exit(1);
        }
    }
    close(ep);
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: bench-idle PORT PID CONNS [PATH]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    pid_t pid = (pid_t)atoi(argv[2]);
    long n = atol(argv[3]);
    const char *path = argc == 5 ? argv[4] : "/";
    if (port <= 0 || pid <= 0 || n <= 0)
        return 2;
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
        if (lim.rlim_cur < (rlim_t)n + 16) {
            fprintf(stderr, "bench-idle: %ld connections need more than %llu files\n", n,
                    (unsigned long long)lim.rlim_cur);
            return 1;
        }
    }
    active = getenv("IDLE_ACTIVE") && strcmp(getenv("IDLE_ACTIVE"), "1") == 0;
    request_len = (size_t)snprintf(request, sizeof request,
                                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    struct conn *conns = calloc((size_t)n, sizeof *conns);
    if (!conns)
        return 1;
    long before = tree_rss_kib(pid);
    open_all(port, conns, n);
    sleep_ms(SETTLE_MS);
    long after = tree_rss_kib(pid);
    for (long i = 0; i < n; i++)
        close(conns[i].fd);
    int64_t closed_at = now_ms(), release_ms = -1;
    long closed = after;
    while (now_ms() - closed_at < RELEASE_MS) {
        sleep_ms(100);
        closed = tree_rss_kib(pid);
        if (release_ms < 0 && closed - before <= (after - before) / 10)
            release_ms = now_ms() - closed_at;
    }
    printf("idle_rss_before %ld KiB\n", before);
    printf("idle_rss_after %ld KiB\n", after);
    printf("idle_bytes_per_conn %.0f B\n", (double)(after - before) * 1024.0 / (double)n);
    printf("idle_rss_closed %ld KiB\n", closed);
    printf("idle_release_ms %lld ms\n", (long long)release_ms);
    free(conns);
    return 0;
}
