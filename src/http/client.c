/* client.c - a minimal HTTP/1.1 client, so a task can call another service: one kept-alive
 * connection to one server, reused while the server allows, with the response parsed by
 * llhttp (strict, HTTP_RESPONSE mode) into storage the response owns. Limits bound what a
 * server can make us hold; a kept-alive connection is checked before it is reused, and a
 * stale one is redialled once when that is safe. */
#define _GNU_SOURCE
#include "chunk.h"
#include "client.h"

#include "../core/core.h"
#include "../net/net.h"

#include "corral.h"

#include <errno.h>
#include <llhttp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define DEFAULT_CONNECT_TIMEOUT_NS (5 * CRL_SEC_NS)
#define DEFAULT_MAX_HEAD (16 * 1024)
#define DEFAULT_MAX_HEADERS 64
#define DEFAULT_MAX_BODY (1024 * 1024)
#define READ_BUF 16384
#define INLINE_BODY 16384 /* bodies up to this are copied behind the head: one send */

struct hdr_off { /* a header's name and value as offsets into the strings, which may move */
    size_t name, value;
};

/* The response being parsed. */
struct parse {
    char *str; /* header names and values, each NUL-terminated */
    size_t str_len, str_cap;
    struct hdr_off *hdr;
    size_t nhdr, hdr_cap;
    char *body;
    size_t body_len, body_cap;
    size_t head_fed;    /* bytes given to the parser while it was in a head */
    size_t trailer_len; /* bytes of trailer fields (after a chunked body), which are dropped */
    int status, version;
    int err;        /* why a callback stopped the parser (-EMSGSIZE, -ENOMEM, -EPROTO) */
    bool skip_body; /* the request was HEAD */
    bool in_field, in_value, head_done, done, keep_alive, got_byte;
    bool t_named; /* the trailer line has a name (llhttp lets ": value" through) */
};

struct crl_http_client {
    char *host_port;
    struct crl_http_client_opts opts;
    struct crl__core *core; /* the owner: the first core to use it */
    int fd;                 /* the connection, or -1 */
    bool kept;              /* fd was kept alive after a response (it may have gone stale) */
    bool busy;              /* a request is in progress */
    llhttp_t parser;
    struct crl__chunk chunk; /* a chunked body's chunk lines, checked before llhttp (chunk.h) */
    struct parse p;
    char *out; /* the request's head (and a small body) as sent */
    size_t out_len, out_cap;
    char rbuf[READ_BUF];
};

/* One request in flight: what crl_http_client_request hands to the exchange. */
struct exchange {
    struct crl_http_client *c;
    const struct crl_http_request *req;
    struct iovec parts[3]; /* sent in order; the last without MSG_MORE */
    int nparts;
    bool idempotent;  /* may be sent twice (GET, HEAD) */
    bool close_after; /* the caller asked for Connection: close */
};

/* ---- Building the request --------------------------------------------------------------- */

/* Grow a buffer of *cap bytes to hold need (doubling, to at most max >= need). */
static int reserve(char **buf, size_t *cap, size_t need, size_t max)
{
    if (need <= *cap)
        return 0;
    size_t want = *cap ? *cap : 256;
    while (want < need)
        want *= 2;
    if (want > max)
        want = max;
    char *grown = realloc(*buf, want);
    if (!grown)
        return -ENOMEM;
    *buf = grown;
    *cap = want;
    return 0;
}

/* Append n bytes to a growable buffer, keeping one byte spare behind them for a NUL. */
static int append(char **buf, size_t *len, size_t *cap, const char *s, size_t n, size_t max)
{
    int rc = reserve(buf, cap, *len + n + 1, max);
    if (rc)
        return rc;
    memcpy(*buf + *len, s, n);
    *len += n;
    return 0;
}

static int out_put(struct crl_http_client *c, const char *s, size_t n)
{
    return append(&c->out, &c->out_len, &c->out_cap, s, n, SIZE_MAX);
}

/* Append printf-style text to the request. */
static int out_fmt(struct crl_http_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int out_fmt(struct crl_http_client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    int rc = reserve(&c->out, &c->out_cap, c->out_len + (size_t)n + 1, SIZE_MAX);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(c->out + c->out_len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    c->out_len += (size_t)n;
    return 0;
}

/* RFC 9110 tchar: what a method or a field name may hold. */
static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!strchr("!#$%&'*+-.^_`|~", *s) && !(*s >= '0' && *s <= '9') &&
            !((*s | 0x20) >= 'a' && (*s | 0x20) <= 'z'))
            return false;
    return true;
}

/* A request target: visible ASCII only, so nothing can end the request line early. */
static bool is_target(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

/* A field value: no CR, LF or other control but tab, so no header can be smuggled in. */
static bool is_value(const char *s)
{
    for (; *s; s++)
        if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
            return false;
    return true;
}

/* The caller's header fields, after a Host of the client's own unless they hold one. The
 * framing fields are the client's alone. */
static int put_headers(struct crl_http_client *c, struct exchange *x)
{
    const struct crl_http_request *req = x->req;
    bool has_host = false;
    for (size_t i = 0; i < req->header_count; i++) {
        const struct crl_http_header *h = &req->headers[i];
        if (!h->name || !h->value || !is_token(h->name) || !is_value(h->value))
            return -EINVAL;
        if (!strcasecmp(h->name, "content-length") || !strcasecmp(h->name, "transfer-encoding"))
            return -EINVAL;
        has_host |= !strcasecmp(h->name, "host");
        if (!strcasecmp(h->name, "connection") && !strcasecmp(h->value, "close"))
            x->close_after = true;
    }
    int rc = has_host ? 0 : out_fmt(c, "Host: %s\r\n", c->host_port);
    for (size_t i = 0; !rc && i < req->header_count; i++)
        rc = out_fmt(c, "%s: %s\r\n", req->headers[i].name, req->headers[i].value);
    return rc;
}

/* Methods whose requests carry a body even when it is empty, so they get Content-Length: 0. */
static bool method_has_body(const char *m)
{
    return !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH");
}

/* The body's framing and the body itself: copied behind the head when small (one send),
 * else sent from the caller's buffer as a part of its own. */
static int put_body(struct crl_http_client *c, struct exchange *x)
{
    const struct crl_http_request *req = x->req;
    bool inline_body = req->body_len <= INLINE_BODY;
    const char *tail = req->chunked ? (req->body_len ? "\r\n0\r\n\r\n" : "0\r\n\r\n") : "";
    int rc = 0;
    if (req->chunked && req->body_len)
        rc = out_fmt(c, "%zx\r\n", req->body_len);
    if (!rc && inline_body && req->body_len)
        rc = out_put(c, req->body, req->body_len);
    if (!rc && inline_body)
        rc = out_fmt(c, "%s", tail);
    if (rc)
        return rc;
    x->parts[0] = (struct iovec){c->out, c->out_len};
    x->nparts = 1;
    if (!inline_body) {
        x->parts[x->nparts++] = (struct iovec){(void *)req->body, req->body_len};
        if (*tail)
            x->parts[x->nparts++] = (struct iovec){(void *)tail, strlen(tail)};
    }
    return 0;
}

/* Lay out the request: request line, Host, the caller's fields, framing, body. */
static int build_request(struct crl_http_client *c, struct exchange *x)
{
    const struct crl_http_request *req = x->req;
    if (!req->method || !req->target || !is_token(req->method) || !is_target(req->target) ||
        (req->body_len && !req->body))
        return -EINVAL;
    c->out_len = 0;
    int rc = out_fmt(c, "%s %s HTTP/1.1\r\n", req->method, req->target);
    if (!rc)
        rc = put_headers(c, x);
    if (!rc && req->chunked)
        rc = out_fmt(c, "Transfer-Encoding: chunked\r\n");
    else if (!rc && (req->body_len || method_has_body(req->method)))
        rc = out_fmt(c, "Content-Length: %zu\r\n", req->body_len);
    if (!rc)
        rc = out_fmt(c, "\r\n");
    return rc ? rc : put_body(c, x);
}

/* ---- Parsing the response --------------------------------------------------------------- */

static struct crl_http_client *of(llhttp_t *parser) { return parser->data; }

/* Stop the parser with error err (a negative errno) for the caller to return. */
static int fail(llhttp_t *parser, int err)
{
    of(parser)->p.err = err;
    return HPE_USER;
}

static int str_put(struct parse *p, const char *at, size_t n)
{
    return append(&p->str, &p->str_len, &p->str_cap, at, n, SIZE_MAX);
}

/* Trailer fields are not kept, but count against max_head_bytes so they cannot go on. */
static int trailer(llhttp_t *parser, size_t n)
{
    struct crl_http_client *c = of(parser);
    c->p.trailer_len += n;
    return c->p.trailer_len > c->opts.max_head_bytes ? fail(parser, -EMSGSIZE) : 0;
}

/* llhttp takes "HTTP/2.0" and "HTTP/0.9" status lines too; this client speaks 1.0 and 1.1. */
static int on_version_complete(llhttp_t *parser)
{
    bool ok = llhttp_get_http_major(parser) == 1 && llhttp_get_http_minor(parser) <= 1;
    return ok ? 0 : fail(parser, -EPROTO);
}

static int on_header_field(llhttp_t *parser, const char *at, size_t n)
{
    struct crl_http_client *c = of(parser);
    struct parse *p = &c->p;
    if (p->head_done) {
        p->t_named |= n > 0;
        return trailer(parser, n);
    }
    if (!p->in_field) { /* a new field */
        if (p->nhdr == c->opts.max_headers)
            return fail(parser, -EMSGSIZE);
        if (p->nhdr == p->hdr_cap) {
            size_t cap = p->hdr_cap ? 2 * p->hdr_cap : 16;
            struct hdr_off *grown = realloc(p->hdr, cap * sizeof *grown);
            if (!grown)
                return fail(parser, -ENOMEM);
            p->hdr = grown;
            p->hdr_cap = cap;
        }
        p->hdr[p->nhdr++].name = p->str_len;
        p->in_field = true;
    }
    return str_put(p, at, n) ? fail(parser, -ENOMEM) : 0;
}

static int on_header_field_complete(llhttp_t *parser)
{
    struct parse *p = &of(parser)->p;
    if (p->head_done)
        return 0;
    if (!p->in_field) /* an empty name */
        return fail(parser, -EPROTO);
    p->in_field = false;
    p->str[p->str_len++] = 0; /* str_put left room for it */
    /* llhttp lets a response's field name hold spaces; RFC 9112 does not. */
    return is_token(p->str + p->hdr[p->nhdr - 1].name) ? 0 : fail(parser, -EPROTO);
}

static int on_header_value(llhttp_t *parser, const char *at, size_t n)
{
    struct parse *p = &of(parser)->p;
    if (p->head_done)
        return trailer(parser, n);
    if (!p->in_value) {
        p->hdr[p->nhdr - 1].value = p->str_len;
        p->in_value = true;
    }
    return str_put(p, at, n) ? fail(parser, -ENOMEM) : 0;
}

static int on_header_value_complete(llhttp_t *parser)
{
    struct parse *p = &of(parser)->p;
    if (p->head_done) { /* a trailer's name is a token, not empty */
        bool named = p->t_named;
        p->t_named = false;
        return named ? 0 : fail(parser, -EPROTO);
    }
    if (!p->in_value && on_header_value(parser, "", 0)) /* an empty value gets no data call */
        return HPE_USER;
    p->in_value = false;
    p->str[p->str_len++] = 0;
    return 0;
}

/* Returns 1 (no body) for HEAD and for the statuses that never have one, whatever the
 * framing fields say. */
static int on_headers_complete(llhttp_t *parser)
{
    struct crl_http_client *c = of(parser);
    struct parse *p = &c->p;
    p->status = llhttp_get_status_code(parser);
    p->version = llhttp_get_http_major(parser) * 10 + llhttp_get_http_minor(parser);
    p->head_done = true;
    if (p->status == 101) /* we never ask to switch protocols */
        return fail(parser, -EPROTO);
    if (p->skip_body || p->status < 200 || p->status == 204 || p->status == 304)
        return 1;
    if (parser->flags & F_CHUNKED)
        return HPE_PAUSED; /* feed scans the chunk lines from here on */
    if (parser->flags & F_CONTENT_LENGTH) {
        if (parser->content_length > c->opts.max_body)
            return fail(parser, -EMSGSIZE);
        size_t want = (size_t)parser->content_length + 1;
        char *body = malloc(want);
        if (!body)
            return fail(parser, -ENOMEM);
        p->body = body;
        p->body_cap = want;
    }
    return 0;
}

static int on_body(llhttp_t *parser, const char *at, size_t n)
{
    struct crl_http_client *c = of(parser);
    struct parse *p = &c->p;
    if (n > c->opts.max_body - p->body_len)
        return fail(parser, -EMSGSIZE);
    int rc = append(&p->body, &p->body_len, &p->body_cap, at, n, c->opts.max_body + 1);
    return rc ? fail(parser, rc) : 0;
}

/* Forget the fields and body of the response so far (all of it, or an interim 1xx). */
static void parse_clear(struct parse *p)
{
    free(p->body);
    p->body = NULL;
    p->body_len = p->body_cap = 0;
    p->str_len = p->nhdr = 0;
    p->in_field = p->in_value = p->head_done = p->t_named = false;
}

/* An interim (1xx) response is dropped and parsing goes on; a final one pauses the parser,
 * which ends the exchange. */
static int on_message_complete(llhttp_t *parser)
{
    struct parse *p = &of(parser)->p;
    if (p->status < 200) {
        parse_clear(p);
        return 0;
    }
    p->keep_alive = llhttp_should_keep_alive(parser);
    p->done = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_version_complete = on_version_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Get ready to parse a response to a request that was HEAD or not. */
static void parse_start(struct crl_http_client *c, bool head)
{
    struct parse *p = &c->p;
    parse_clear(p);
    p->head_fed = p->trailer_len = 0;
    p->status = p->version = p->err = 0;
    p->skip_body = head;
    p->done = p->keep_alive = p->got_byte = false;
    c->chunk = (struct crl__chunk){0};
    llhttp_init(&c->parser, HTTP_RESPONSE, &settings);
    c->parser.data = c;
}

/* How many of the n bytes at data the parser may have next, and how many after them it must
 * not (chunk extensions, cut out as the server cuts them). A head gets no more than the room
 * left, so an endless head ends at opts.max_head_bytes. 0 or -errno. */
static int next_take(struct crl_http_client *c, const char *data, size_t n, size_t *take,
                     size_t *skip)
{
    *take = n;
    *skip = 0;
    if (!c->p.head_done) {
        size_t room = c->opts.max_head_bytes - c->p.head_fed;
        if (room == 0)
            return -EMSGSIZE;
        *take = n < room ? n : room;
    } else if (c->chunk.state != CRL__CHUNK_OFF) {
        return crl__chunk_scan(&c->chunk, data, n, take, skip) ? -EPROTO : 0;
    }
    return 0;
}

/* Feed n received bytes to the parser. It pauses at the head of a chunked response (the
 * chunk lines go through crl__chunk_scan from there) and at the final response's end. */
static int feed(struct crl_http_client *c, const char *data, size_t n)
{
    struct parse *p = &c->p;
    while (n > 0) {
        bool in_head = !p->head_done;
        size_t take, skip;
        int rc = next_take(c, data, n, &take, &skip);
        if (rc)
            return rc;
        llhttp_errno_t e = llhttp_execute(&c->parser, data, take);
        if (e == HPE_PAUSED && !p->done) { /* a chunked body starts here */
            const char *at = llhttp_get_error_pos(&c->parser);
            llhttp_resume(&c->parser);
            crl__chunk_start(&c->chunk);
            n -= (size_t)(at - data);
            data = at;
            continue;
        }
        if (e == HPE_PAUSED) { /* the final response is complete */
            if (llhttp_get_error_pos(&c->parser) != data + n)
                p->keep_alive = false; /* bytes no request asked for: do not trust the rest */
            return 0;
        }
        if (e != HPE_OK)
            return p->err ? p->err : -EPROTO;
        if (in_head)
            p->head_fed += take;
        data += take + skip;
        n -= take + skip;
    }
    return 0;
}

/* Read and parse until the response is complete. End of stream before its first byte is
 * -ECONNRESET (the server dropped the connection); in the middle of one it is -EPROTO,
 * unless the body is the kind that ends with the connection. */
static int read_response(struct crl_http_client *c)
{
    struct parse *p = &c->p;
    while (!p->done) {
        ssize_t n = crl_read(c->fd, c->rbuf, sizeof c->rbuf);
        if (n < 0)
            return (int)n;
        if (n == 0) {
            if (!p->got_byte)
                return -ECONNRESET;
            llhttp_finish(&c->parser); /* completes a close-delimited body, if that is one */
            if (!p->done)
                return p->err ? p->err : -EPROTO;
            p->keep_alive = false;
            break;
        }
        p->got_byte = true;
        int rc = feed(c, c->rbuf, (size_t)n);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- The exchange ----------------------------------------------------------------------- */

static void drop_conn(struct crl_http_client *c)
{
    if (c->fd >= 0)
        crl_close(c->fd);
    c->fd = -1;
    c->kept = false;
}

/* Whether an idle kept-alive connection may carry a request: not if the server closed or
 * reset it meanwhile (nginx at keepalive_timeout), nor if it sent bytes no request asked
 * for. A non-blocking peek tells, before a byte of the request is risked on it. */
static bool idle_conn_usable(int fd)
{
    char byte;
    int n = crl__sys()->recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == -EAGAIN || n == -EWOULDBLOCK;
}

static int dial(struct crl_http_client *c, int64_t deadline_ns)
{
    int64_t limit = c->opts.connect_timeout_ns;
    if (limit >= 0) {
        int64_t by = crl__deadline_after(crl_now_ns(), limit);
        if (deadline_ns == CRL_NO_DEADLINE || by < deadline_ns)
            deadline_ns = by;
    }
    int fd = crl_tcp_connect(c->host_port, deadline_ns);
    if (fd < 0)
        return fd;
    crl_tcp_set_nodelay(fd, true); /* a request is written whole: never wait for more */
    c->fd = fd;
    return 0;
}

/* Send the parts in order, counting the bytes that went out in *sent. */
static int send_parts(struct crl_http_client *c, const struct exchange *x, size_t *sent)
{
    for (int i = 0; i < x->nparts; i++) {
        const char *at = x->parts[i].iov_base;
        size_t left = x->parts[i].iov_len;
        int flags = i + 1 < x->nparts ? MSG_MORE : 0;
        while (left > 0) {
            ssize_t n = crl_send(c->fd, at, left, flags);
            if (n < 0)
                return (int)n;
            at += n;
            left -= (size_t)n;
            *sent += (size_t)n;
        }
    }
    return 0;
}

/* One try: dial if not connected (or the kept connection went stale while idle), send,
 * read the response. *retry says whether a failure was a kept-alive connection the server
 * closed as the request went out, with the request safe to send again: idempotent, or not
 * a byte of it sent (else the server may have read it and acted). */
static int attempt(struct exchange *x, bool *retry)
{
    struct crl_http_client *c = x->c;
    bool reused = c->kept;
    *retry = false;
    parse_start(c, !strcmp(x->req->method, "HEAD"));
    if (reused && !idle_conn_usable(c->fd)) {
        drop_conn(c);
        reused = false;
    }
    if (c->fd < 0) {
        int rc = dial(c, x->req->deadline_ns);
        if (rc < 0)
            return rc;
    }
    size_t sent = 0;
    int rc = send_parts(c, x, &sent);
    if (rc == 0)
        rc = read_response(c);
    if (reused && !c->p.got_byte && (rc == -ECONNRESET || rc == -EPIPE))
        *retry = x->idempotent || sent == 0;
    return rc;
}

static int exchange_fn(void *arg)
{
    struct exchange *x = arg;
    bool retry;
    int rc = attempt(x, &retry);
    if (rc < 0 && retry) {
        drop_conn(x->c);
        rc = attempt(x, &retry);
    }
    return rc;
}

/* ---- Public ----------------------------------------------------------------------------- */

int crl_http_client_open(struct crl_http_client **out, const char *host_port,
                         const struct crl_http_client_opts *opts)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char host[256], port[6];
    *out = NULL;
    if (crl_parse_addr(host_port, &ss, &len) != 0 &&
        crl__split_host_port(host_port, host, port) != 0) /* a name: resolved when dialling */
        return -EINVAL;
    struct crl_http_client *c = calloc(1, sizeof *c);
    if (!c || !(c->host_port = strdup(host_port))) {
        free(c);
        return -ENOMEM;
    }
    if (opts)
        c->opts = *opts;
    if (c->opts.connect_timeout_ns == 0)
        c->opts.connect_timeout_ns = DEFAULT_CONNECT_TIMEOUT_NS;
    if (c->opts.max_head_bytes == 0)
        c->opts.max_head_bytes = DEFAULT_MAX_HEAD;
    if (c->opts.max_headers == 0)
        c->opts.max_headers = DEFAULT_MAX_HEADERS;
    if (c->opts.max_body == 0)
        c->opts.max_body = DEFAULT_MAX_BODY;
    if (c->opts.max_body > SIZE_MAX / 2) /* the body's size + 1 must not wrap */
        c->opts.max_body = SIZE_MAX / 2;
    c->core = crl__cur;
    c->fd = -1;
    *out = c;
    return 0;
}

void crl_http_client_close(struct crl_http_client *c)
{
    if (!c)
        return;
    drop_conn(c);
    parse_clear(&c->p);
    free(c->p.str);
    free(c->p.hdr);
    free(c->out);
    free(c->host_port);
    free(c);
}

const char *crl__http_client_host(const struct crl_http_client *c) { return c->host_port; }

bool crl__http_client_kept(const struct crl_http_client *c) { return c->fd >= 0 && c->kept; }

void crl__http_client_adopt(struct crl_http_client *c, int fd)
{
    drop_conn(c);
    c->fd = fd;
}

/* The stand-in for Rust's Send: a client belongs to the first core that used it. */
static void check_owner(struct crl_http_client *c)
{
    if (!c->core)
        c->core = crl__cur;
    else if (c->core != crl__cur)
        crl__panic("corral: HTTP client %p belongs to core %u but was used from core %u", (void *)c,
                   c->core->id, crl__cur ? crl__cur->id : 0);
}

/* Hand the parsed response over to *out, which owns it from now on. */
static int take_response(struct crl_http_client *c, struct crl_http_response *out)
{
    struct parse *p = &c->p;
    struct crl_http_header *h = malloc((p->nhdr ? p->nhdr : 1) * sizeof *h);
    if (!h)
        return -ENOMEM;
    for (size_t i = 0; i < p->nhdr; i++)
        h[i] = (struct crl_http_header){p->str + p->hdr[i].name, p->str + p->hdr[i].value};
    if (p->body)
        p->body[p->body_len] = 0; /* the buffers always keep room for it */
    *out = (struct crl_http_response){
        .status = p->status,
        .version = p->version,
        .headers = h,
        .header_count = p->nhdr,
        .body = p->body ? p->body : "",
        .body_len = p->body_len,
        .headers_ = h,
        .strings_ = p->str,
        .body_ = p->body,
    };
    p->str = NULL; /* now the response's */
    p->str_len = p->str_cap = 0;
    p->body = NULL;
    p->body_len = p->body_cap = 0;
    return 0;
}

int crl_http_client_request(struct crl_http_client *c, const struct crl_http_request *req,
                            struct crl_http_response *out)
{
    memset(out, 0, sizeof *out);
    check_owner(c);
    if (c->busy)
        return -EBUSY;
    struct exchange x = {.c = c, .req = req};
    x.idempotent = req->method && (!strcmp(req->method, "GET") || !strcmp(req->method, "HEAD"));
    int rc = build_request(c, &x);
    if (rc < 0)
        return rc;
    c->busy = true;
    rc = req->deadline_ns == CRL_NO_DEADLINE ? exchange_fn(&x)
                                             : crl_with_deadline(req->deadline_ns, exchange_fn, &x);
    c->busy = false;
    if (rc == 0)
        rc = take_response(c, out);
    /* After a failure the connection's state is unknown (a half-read response, say). */
    if (rc < 0 || !c->p.keep_alive || x.close_after)
        drop_conn(c);
    else
        c->kept = true;
    parse_clear(&c->p);
    return rc < 0 ? rc : 0;
}

const char *crl_http_response_header(const struct crl_http_response *r, const char *name)
{
    for (size_t i = 0; i < r->header_count; i++)
        if (!strcasecmp(r->headers[i].name, name))
            return r->headers[i].value;
    return NULL;
}

void crl_http_response_fini(struct crl_http_response *r)
{
    free(r->headers_);
    free(r->strings_);
    free(r->body_);
    memset(r, 0, sizeof *r);
}
