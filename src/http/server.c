/* server.c - the HTTP server's socket side and its handler API: crl_http_serve runs the
 * connection state machine (conn.c) over crl_serve's connections through a transport of
 * socket operations with deadlines (io.h: one timer per connection, no scope per read); the
 * crl_http_req_* and crl_http_res_* calls work on the state machine's buffers. */
#define _GNU_SOURCE
#include "http.h"
#include "../core/count.h"
#include "../io/io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* ---- The socket transport --------------------------------------------------------------- */

struct sock {
    int fd;
    struct crl_conn *conn;      /* NULL when served without crl_serve */
    struct crl__op_timer timer; /* the deadlines of the connection's operations */
    bool replied; /* bytes went out since the last read: the peer's answer takes a trip */
};

int64_t crl__http_linger_ns = 30 * CRL_SEC_NS;
int64_t crl__http_linger_read_ns = 5 * CRL_SEC_NS;

/* Bytes crl_serve received for us as the connection woke (receive_on_wake) come first. */
static ssize_t take_received(struct sock *s, void *buf, size_t len)
{
    return s->conn && s->conn->received_len ? (ssize_t)crl_conn_take(s->conn, buf, len) : 0;
}

static ssize_t sock_read(void *ctx, void *buf, size_t len, int64_t deadline_ns)
{
    struct sock *s = ctx;
    ssize_t taken = take_received(s, buf, len);
    if (taken)
        return taken;
    struct crl__op op = {
        .kind = CRL__OP_RECV, .fd = s->fd, .poll_first = s->replied, .a.rw = {buf, len}};
    s->replied = false;
    return crl__op_run_until(&s->timer, &op, deadline_ns);
}

static ssize_t sock_writev(void *ctx, const struct iovec *iov, int iovcnt, int64_t deadline_ns)
{
    struct sock *s = ctx;
    s->replied = true;
    if (iovcnt == 1) { /* the usual case: a plain send spares io_uring copying a msghdr */
        struct crl__op op = {.kind = CRL__OP_SEND,
                             .fd = s->fd,
                             .flags = MSG_NOSIGNAL,
                             .a.rw = {iov->iov_base, iov->iov_len}};
        return crl__op_run_until(&s->timer, &op, deadline_ns);
    }
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    struct crl__op op = {
        .kind = CRL__OP_SENDMSG, .fd = s->fd, .flags = MSG_NOSIGNAL, .a.msg = &msg};
    return crl__op_run_until(&s->timer, &op, deadline_ns);
}

/* The send and the receive of what the peer sends next, both in flight (crl__op_pair_until):
 * the send usually completes in the same submission, without waking the task twice. */
static ssize_t sock_write_read(void *ctx, const void *out, size_t out_len,
                               int64_t write_deadline_ns, void *buf, size_t len,
                               int64_t read_deadline_ns, int *write_err)
{
    struct sock *s = ctx;
    struct crl__op send = {.kind = CRL__OP_SEND,
                           .fd = s->fd,
                           .flags = MSG_NOSIGNAL | MSG_WAITALL, /* no short send unnoticed */
                           .a.rw = {(void *)out, out_len}};
    struct crl__op recv = {
        .kind = CRL__OP_RECV, .fd = s->fd, .poll_first = true, .a.rw = {buf, len}};
    *write_err = 0;
    if (s->conn && s->conn->received_len) { /* the send alone, then what came already */
        ssize_t w = crl__op_run_until(&s->timer, &send, write_deadline_ns);
        if (w != (ssize_t)out_len) {
            *write_err = w < 0 ? (int)w : -EIO;
            return *write_err;
        }
        return take_received(s, buf, len);
    }
    s->replied = false;
    int w, n;
    int rc =
        crl__op_pair_until(&s->timer, &send, write_deadline_ns, &recv, read_deadline_ns, &w, &n);
    if (rc) {
        *write_err = rc;
        return rc;
    }
    if (w != (ssize_t)out_len) {
        int cancel = crl_checkpoint(); /* our own cancellation wins over a deadline */
        *write_err = cancel                     ? cancel
                     : s->timer.fired           ? -ETIMEDOUT
                     : w < 0 && w != -ECANCELED ? w
                     : n < 0                    ? n
                                                : -EIO;
    }
    return n;
}

static void sock_set_idle(void *ctx, bool idle)
{
    struct sock *s = ctx;
    if (s->conn)
        crl_conn_set_idle(s->conn, idle);
}

static bool sock_draining(void *ctx)
{
    struct sock *s = ctx;
    return s->conn && crl_conn_draining(s->conn);
}

/* Closing with input unread would make the kernel answer with a reset, which can destroy our
 * last response before the client reads it: send FIN first and read what the client still
 * sends, with nginx's bounds (lingering_time, lingering_timeout) and no byte cap, so that a
 * client that writes its whole body before it reads still gets the answer. The connection
 * counts against max_conns meanwhile; marked idle, it ends at once when the server stops. */
static void sock_linger(void *ctx)
{
    struct sock *s = ctx;
    if (crl_shutdown(s->fd, SHUT_WR) < 0)
        return;
    sock_set_idle(s, true);
    int64_t end = crl_now_ns() + crl__http_linger_ns;
    char buf[8192];
    for (;;) {
        int64_t deadline = crl_now_ns() + crl__http_linger_read_ns;
        ssize_t n = sock_read(s, buf, sizeof buf, deadline < end ? deadline : end);
        if (n <= 0)
            break;
    }
}

static const struct crl__http_io sock_io = {
    .read = sock_read,
    .writev = sock_writev,
    .write_read = sock_write_read,
    .set_idle = sock_set_idle,
    .draining = sock_draining,
    .linger = sock_linger,
};

/* Serve HTTP on connected socket fd (not closed here); conn may be NULL; park as
 * crl__http_conn_serve_parked (NULL: never). 1 when it parked. */
static int serve_fd(int fd, struct crl_conn *conn, const struct crl_http_limits *lim,
                    crl_http_handler_fn *handler, void *ctx, struct crl__http_park *park)
{
    /* The socket's state right below the connection's: each request touches both. */
    struct {
        struct sock s;
        struct crl__http_conn http; /* initialized by crl__http_conn_serve */
    } f;
    f.s = (struct sock){.fd = fd, .conn = conn};
    crl__op_timer_init(&f.s.timer);
    int rc = crl__http_conn_serve_parked(&f.http, &sock_io, &f.s, lim, handler, ctx, park);
    crl__op_timer_fini(&f.s.timer); /* it lives in this frame */
    return rc;
}

int crl__http_serve_fd(int fd, struct crl_conn *conn, const struct crl_http_limits *lim,
                       crl_http_handler_fn *handler, void *ctx)
{
    crl_tcp_set_nodelay(fd, true); /* heads and bodies leave in one write: no Nagle wait */
    return serve_fd(fd, conn, lim, handler, ctx, NULL);
}

struct http_server {
    struct crl_http_limits limits;
    crl_http_handler_fn *handler;
    void *ctx;
    void (*on_ready)(void *ctx, const struct sockaddr *addr, socklen_t addrlen);
};

/* crl_serve calls on_ready with its own ctx (ours): pass the caller's on. */
static void serve_ready(void *arg, const struct sockaddr *addr, socklen_t addrlen)
{
    struct http_server *srv = arg;
    srv->on_ready(srv->ctx, addr, addrlen);
}

/* conn->state of a connection waiting for its first request (NULL once it has had one):
 * its wait has the header timeout, not the idle one. */
static char no_request_yet;

/* crl_serve's connection function: before its first request and between requests, the
 * connection waits with no task (CRL_CONN_WHEN_READABLE), and nothing of its HTTP state is
 * kept but the socket and whether a request came: a resumed connection starts from a fresh
 * state machine, in a fresh task. */
static int serve_conn(struct crl_conn *conn, void *arg)
{
    struct http_server *srv = arg;
    bool first = conn->wake == CRL_CONN_NEW || conn->state == &no_request_yet;
    switch (conn->wake) {
    case CRL_CONN_NEW:
        crl_tcp_set_nodelay(conn->fd, true); /* heads and bodies leave in one write */
        break;
    case CRL_CONN_READABLE: break;
    case CRL_CONN_IDLE_EXPIRED: {
        enum crl_http_timeout_kind kind = first ? CRL_HTTP_TIMEOUT_HEADER : CRL_HTTP_TIMEOUT_IDLE;
        CRL__COUNT(&crl__core()->stats, http_timeouts[kind]);
        return 0; /* nothing came in time: a silent close */
    }
    case CRL_CONN_STOPPING: return 0;
    }
    struct crl__http_park park = {.resumed = conn->wake == CRL_CONN_READABLE, .first = first};
    int rc = serve_fd(conn->fd, conn, &srv->limits, srv->handler, srv->ctx, &park);
    if (rc != 1)
        return rc;
    conn->state = park.first ? &no_request_yet : NULL;
    conn->idle_deadline_ns = park.deadline_ns;
    return CRL_CONN_WHEN_READABLE;
}

int crl_http_serve(const char *host_port, const struct crl_http_server_opts *opts,
                   crl_http_handler_fn *handler, void *ctx)
{
    if (!handler)
        return -EINVAL;
    struct http_server srv = {.handler = handler, .ctx = ctx};
    struct crl_serve_opts serve = opts ? opts->serve : (struct crl_serve_opts){0};
    serve.receive_on_wake = true; /* a woken connection's first read is done (sock_read) */
    crl__http_limits_resolve(&srv.limits, opts ? &opts->limits : NULL);
    if (serve.on_ready) {
        srv.on_ready = serve.on_ready;
        serve.on_ready = serve_ready;
    }
    return crl_serve(host_port, &serve, serve_conn, &srv);
}

/* ---- The request ------------------------------------------------------------------------ */

static struct crl__http_conn *req_conn(const crl_http_req *req)
{
    return CRL__HTTP_CONN_OF_REQ((crl_http_req *)req);
}

const char *crl_http_req_method(const crl_http_req *req)
{
    return llhttp_method_name((llhttp_method_t)req_conn(req)->ps.llh.method);
}

const char *crl_http_req_target(const crl_http_req *req)
{
    return crl__http_at(req_conn(req), req->target);
}

const char *crl_http_req_query(const crl_http_req *req)
{
    const char *t = crl_http_req_target(req);
    size_t len = req->target_len;
    if (len > 32) { /* most targets are a few bytes: a loop beats a call to memchr there */
        const char *q = memchr(t, '?', len);
        return q ? q + 1 : NULL;
    }
    for (size_t i = 0; i < len; i++)
        if (t[i] == '?')
            return t + i + 1;
    return NULL;
}

const char *crl_http_req_path(const crl_http_req *req)
{
    struct crl__http_conn *c = req_conn(req);
    const char *target = crl_http_req_target(req), *q = crl_http_req_query(req);
    if (!q)
        return target;
    if (c->req.path)
        return c->req.path;
    size_t len = (size_t)(q - 1 - target);
    if (c->scratch_cap < len + 1) {
        char *p = realloc(c->scratch, len + 1);
        if (!p)
            return NULL;
        c->scratch = p;
        c->scratch_cap = len + 1;
    }
    memcpy(c->scratch, target, len);
    c->scratch[len] = '\0';
    c->req.path = c->scratch;
    return c->scratch;
}

int crl_http_req_version(const crl_http_req *req) { return req->version; }

static const char *value_of(const struct crl__http_conn *c, const struct crl__http_hdr *h)
{
    return h->value == UINT32_MAX ? "" : crl__http_at(c, h->value);
}

const char *crl_http_req_host(const crl_http_req *req)
{
    const struct crl__http_conn *c = req_conn(req);
    if (req->authority) /* RFC 9112 3.2.2: the target's authority, not Host */
        return crl__http_at(c, req->authority);
    return req->host_hdr ? value_of(c, &c->hdrs[req->host_hdr - 1]) : NULL;
}

const char *crl_http_req_header(const crl_http_req *req, const char *name)
{
    const struct crl__http_conn *c = req_conn(req);
    size_t len = strlen(name);
    for (size_t i = 0; i < req->nhdrs; i++) {
        const struct crl__http_hdr *h = &c->hdrs[i];
        if (h->name_len == len && strcasecmp(crl__http_at(c, h->name), name) == 0)
            return value_of(c, h);
    }
    return NULL;
}

size_t crl_http_req_header_count(const crl_http_req *req) { return req->nhdrs; }

void crl_http_req_header_at(const crl_http_req *req, size_t i, const char **name,
                            const char **value)
{
    const struct crl__http_conn *c = req_conn(req);
    const struct crl__http_hdr *h = i < req->nhdrs ? &c->hdrs[i] : NULL;
    if (name)
        *name = h ? crl__http_at(c, h->name) : NULL;
    if (value)
        *value = h ? value_of(c, h) : NULL;
}

int64_t crl_http_req_content_length(const crl_http_req *req) { return req->content_length; }

ssize_t crl_http_req_read(crl_http_req *req, void *buf, size_t len)
{
    return crl__http_body_read(req_conn(req), buf, len);
}

/* A Content-Length body that is all in the input buffer is handed out where it lies. */
static ssize_t body_in_place(struct crl__http_conn *c, const void **body)
{
    size_t at = c->in_parsed, len = (size_t)c->req.content_length;
    ssize_t n = crl__http_body_read(c, NULL, len); /* parses it, copying nothing */
    if (n >= 0)
        *body = c->in + at;
    return n;
}

ssize_t crl_http_req_body(crl_http_req *req, const void **body)
{
    struct crl__http_conn *c = req_conn(req);
    *body = "";
    if (req->content_length > 0 && req->body_seen == 0 && !req->body_err &&
        c->in_len - c->in_parsed >= (uint64_t)req->content_length)
        return body_in_place(c, body);
    size_t got = 0;
    for (;;) {
        if (got == c->body_cap) {
            size_t cap = c->body_cap ? c->body_cap * 2 : 4096;
            char *p = realloc(c->body, cap);
            if (!p)
                return -ENOMEM;
            c->body = p;
            c->body_cap = cap;
        }
        ssize_t n = crl__http_body_read(c, c->body + got, c->body_cap - got);
        if (n < 0)
            return n;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    *body = got ? c->body : "";
    return (ssize_t)got;
}

/* ---- The response ----------------------------------------------------------------------- */

static struct crl__http_conn *res_conn(crl_http_res *res) { return CRL__HTTP_CONN_OF_RES(res); }

/* RFC 9110 token characters. */
static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!is_tchar((unsigned char)*s))
            return false;
    return true;
}

/* Field values: visible characters, spaces and tabs, obs-text; never CR, LF or NUL. */
static bool is_field_value(const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
    }
    return true;
}

int crl_http_res_header(crl_http_res *res, const char *name, const char *value)
{
    if (res->state != CRL__RES_NONE)
        return -EALREADY;
    if (!name || !value || !is_token(name) || !is_field_value(value))
        return -EINVAL;
    if (strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0 ||
        strcasecmp(name, "date") == 0)
        return -EINVAL;
    if (strcasecmp(name, "connection") == 0) {
        if (strcasecmp(value, "close") == 0)
            res->close = true;
        return 0;
    }
    size_t nlen = strlen(name), vlen = strlen(value), need = res->hdrs_len + nlen + vlen + 4;
    if (need > res->hdrs_cap) {
        size_t cap = res->hdrs_cap ? res->hdrs_cap : 256;
        while (cap < need)
            cap *= 2;
        char *p = realloc(res->hdrs, cap);
        if (!p)
            return -ENOMEM;
        res->hdrs = p;
        res->hdrs_cap = cap;
    }
    char *p = res->hdrs + res->hdrs_len;
    memcpy(p, name, nlen);
    memcpy(p + nlen, ": ", 2);
    memcpy(p + nlen + 2, value, vlen);
    memcpy(p + nlen + 2 + vlen, "\r\n", 2);
    res->hdrs_len = need;
    return 0;
}

/* Statuses that never have a body. */
static bool bodiless(int status) { return status < 200 || status == 204 || status == 304; }

static int check_start(crl_http_res *res, int status, const char *content_type)
{
    if (res->state != CRL__RES_NONE)
        return -EALREADY;
    if (status < 200 || status > 999 || (content_type && !is_field_value(content_type)))
        return -EINVAL;
    return 0;
}

enum { COPY_MAX = 8192 }; /* bodies up to this size are copied behind the head */

int crl_http_res_send(crl_http_res *res, int status, const char *content_type, const void *body,
                      size_t len)
{
    int rc = check_start(res, status, content_type);
    if (rc)
        return rc;
    struct crl__http_conn *c = res_conn(res);
    bool none = bodiless(status);
    res->state = CRL__RES_DONE;
    rc = crl__http_head(c, status, content_type, none ? CRL__FRAME_NONE : CRL__FRAME_LENGTH, len);
    if (rc || none || res->head_only || len == 0)
        return rc;
    if (len <= COPY_MAX && c->out_len + len <= c->out_cap) {
        memcpy(c->out + c->out_len, body, len);
        c->out_len += len;
        return 0;
    }
    struct iovec v = {(void *)body, len};
    return crl__http_flush(c, &v, 1);
}

int crl_http_res_start(crl_http_res *res, int status, const char *content_type)
{
    int rc = check_start(res, status, content_type);
    if (rc)
        return rc;
    struct crl__http_conn *c = res_conn(res);
    enum crl__http_framing f = bodiless(status)       ? CRL__FRAME_NONE
                               : c->req.version == 11 ? CRL__FRAME_CHUNKED
                                                      : CRL__FRAME_CLOSE;
    res->state = CRL__RES_STREAM;
    res->chunked = f == CRL__FRAME_CHUNKED;
    if (f == CRL__FRAME_NONE)
        res->head_only = true;
    return crl__http_head(c, status, content_type, f, 0);
}

int crl_http_res_write(crl_http_res *res, const void *data, size_t len)
{
    struct crl__http_conn *c = res_conn(res);
    if (res->state != CRL__RES_STREAM)
        return -EINVAL;
    if (c->write_err || len == 0 || res->head_only)
        return c->write_err;
    if (!res->chunked) {
        struct iovec v = {(void *)data, len};
        return crl__http_flush(c, &v, 1);
    }
    char size[24];
    int n = 0;
    for (size_t v = len; v; v >>= 4)
        n++;
    for (int i = n - 1, shift = 0; i >= 0; i--, shift += 4)
        size[i] = "0123456789abcdef"[(len >> shift) & 15];
    size[n] = '\r', size[n + 1] = '\n';
    struct iovec v[3] = {{size, (size_t)n + 2}, {(void *)data, len}, {"\r\n", 2}};
    return crl__http_flush(c, v, 3);
}

int crl_http_res_end(crl_http_res *res)
{
    struct crl__http_conn *c = res_conn(res);
    if (res->state != CRL__RES_STREAM)
        return -EINVAL;
    res->state = CRL__RES_DONE;
    if (!res->chunked || res->head_only || c->write_err)
        return c->write_err;
    int rc = crl__http_out_reserve(c, 5);
    if (rc)
        return rc;
    memcpy(c->out + c->out_len, "0\r\n\r\n", 5);
    c->out_len += 5;
    return 0;
}

/* Copy len bytes of fd from offset behind the head in the output buffer, flushing as it
 * fills; the last piece waits for the connection's next flush, as a small body does. */
static int file_body(struct crl__http_conn *c, int fd, int64_t offset, int64_t len)
{
    enum { FILE_BUF = 64 * 1024 };
    if (c->out_cap < FILE_BUF && len > (int64_t)c->out_cap) /* else: smaller pieces */
        crl__http_grow(&c->out, &c->out_cap, c->out_inline, c->out_len, FILE_BUF);
    while (len > 0) {
        if (c->out_cap - c->out_len < 4096 && crl__http_flush(c, NULL, 0))
            return c->write_err;
        size_t room = c->out_cap - c->out_len;
        size_t want = (uint64_t)len < room ? (size_t)len : room;
        ssize_t n = crl_pread(fd, c->out + c->out_len, want, offset);
        if (n <= 0) {
            c->must_close = true; /* Content-Length promised more than we have */
            return n < 0 ? (int)n : -EIO;
        }
        c->out_len += (size_t)n;
        offset += n;
        len -= n;
    }
    return 0;
}

int crl_http_res_send_file(crl_http_res *res, int status, const char *content_type, int fd,
                           int64_t offset, int64_t len)
{
    int rc = check_start(res, status, content_type);
    if (rc)
        return rc;
    if (offset < 0 || len < 0)
        return -EINVAL;
    struct crl__http_conn *c = res_conn(res);
    bool none = bodiless(status);
    res->state = CRL__RES_DONE;
    rc = crl__http_head(c, status, content_type, none ? CRL__FRAME_NONE : CRL__FRAME_LENGTH,
                        (uint64_t)len);
    if (rc || none || res->head_only)
        return rc;
    return file_body(c, fd, offset, len);
}

/* ---- Reason phrases --------------------------------------------------------------------- */

/* A literal with its length, which the response head copies without a strlen. */
#define RETURN_REASON(text)                                                                        \
    return (struct crl__http_reason) { (text), sizeof(text) - 1 }

struct crl__http_reason crl__http_reason(int status)
{
    switch (status) {
    case 100: RETURN_REASON("Continue");
    case 101: RETURN_REASON("Switching Protocols");
    case 200: RETURN_REASON("OK");
    case 201: RETURN_REASON("Created");
    case 202: RETURN_REASON("Accepted");
    case 204: RETURN_REASON("No Content");
    case 206: RETURN_REASON("Partial Content");
    case 301: RETURN_REASON("Moved Permanently");
    case 302: RETURN_REASON("Found");
    case 303: RETURN_REASON("See Other");
    case 304: RETURN_REASON("Not Modified");
    case 307: RETURN_REASON("Temporary Redirect");
    case 308: RETURN_REASON("Permanent Redirect");
    case 400: RETURN_REASON("Bad Request");
    case 401: RETURN_REASON("Unauthorized");
    case 403: RETURN_REASON("Forbidden");
    case 404: RETURN_REASON("Not Found");
    case 405: RETURN_REASON("Method Not Allowed");
    case 408: RETURN_REASON("Request Timeout");
    case 409: RETURN_REASON("Conflict");
    case 411: RETURN_REASON("Length Required");
    case 412: RETURN_REASON("Precondition Failed");
    case 413: RETURN_REASON("Content Too Large");
    case 414: RETURN_REASON("URI Too Long");
    case 415: RETURN_REASON("Unsupported Media Type");
    case 416: RETURN_REASON("Range Not Satisfiable");
    case 417: RETURN_REASON("Expectation Failed");
    case 429: RETURN_REASON("Too Many Requests");
    case 431: RETURN_REASON("Request Header Fields Too Large");
    case 500: RETURN_REASON("Internal Server Error");
    case 501: RETURN_REASON("Not Implemented");
    case 502: RETURN_REASON("Bad Gateway");
    case 503: RETURN_REASON("Service Unavailable");
    case 504: RETURN_REASON("Gateway Timeout");
    case 505: RETURN_REASON("HTTP Version Not Supported");
    default: RETURN_REASON("");
    }
}

#undef RETURN_REASON
