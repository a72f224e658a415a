/* conn.c - one HTTP/1.1 connection as a state machine over a transport: read a head, run the
 * handler, finish the response, keep the connection or close it.
 *
 * Responses are buffered while another request is already in the input buffer and written
 * together once none is (pipelining: one write per batch). Any error the server answers
 * itself closes the connection, so no request is ever parsed from the bytes after a rejected
 * one. The input buffer keeps a request's head in place while its handler runs (headers are
 * slices of it); body bytes the parser has consumed are dropped behind the head. */
#include "http.h"
#include "../core/core.h"
#include "../core/count.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static __thread struct crl__http_core no_runtime_http;

struct crl__http_core *crl__http_core(void) { return crl__cur ? crl__cur->http : &no_runtime_http; }
/* Where a connection served without a runtime (the fuzzers' memory transport) counts. */
static __thread struct crl_stats no_runtime_stats;

enum {
    IN_START = 16384,     /* the input buffer may grow to at least this much for a head */
    BODY_ROOM_MIN = 4096, /* input room kept behind a head for the body */
    HEAD_SLACK = 1024,    /* CRLFs and separators beyond the line and header limits */
};

void crl__http_limits_resolve(struct crl_http_limits *out, const struct crl_http_limits *in)
{
    *out = in ? *in : (struct crl_http_limits){0};
    if (!out->max_request_line)
        out->max_request_line = 8 * 1024;
    if (!out->max_header_bytes)
        out->max_header_bytes = 16 * 1024;
    if (!out->max_headers)
        out->max_headers = 100;
    if (!out->max_body)
        out->max_body = 1024 * 1024;
    if (!out->header_timeout_ns)
        out->header_timeout_ns = 10 * CRL_SEC_NS;
    if (!out->body_timeout_ns)
        out->body_timeout_ns = 30 * CRL_SEC_NS;
    if (!out->idle_timeout_ns)
        out->idle_timeout_ns = 60 * CRL_SEC_NS;
    if (!out->write_timeout_ns)
        out->write_timeout_ns = 30 * CRL_SEC_NS;
}

/* ---- Output ----------------------------------------------------------------------------- */

int crl__http_flush(struct crl__http_conn *c, const struct iovec *extra, int n)
{
    if (c->write_err)
        return c->write_err;
    struct iovec iov[8];
    int cnt = 0;
    if (c->out_len)
        iov[cnt++] = (struct iovec){c->out, c->out_len};
    for (int i = 0; i < n && cnt < 8; i++)
        if (extra[i].iov_len)
            iov[cnt++] = extra[i];
    c->out_len = 0;
    for (struct iovec *v = iov; cnt > 0;) {
        ssize_t w = c->io->writev(c->io_ctx, v, cnt, c->write_deadline_ns);
        c->hc->stats.writes++;
        if (w <= 0) {
            if (w == -ETIMEDOUT)
                CRL__COUNT(c->stats, http_timeouts[CRL_HTTP_TIMEOUT_WRITE]);
            c->write_err = w < 0 ? (int)w : -EIO;
            c->must_close = true;
            return c->write_err;
        }
        CRL__COUNT_ADD(c->stats, http_bytes_out, w);
        size_t left = (size_t)w;
        for (; cnt > 0 && left >= v->iov_len; cnt--, v++)
            left -= v->iov_len;
        if (cnt > 0) { /* a short write ended inside *v */
            v->iov_base = (char *)v->iov_base + left;
            v->iov_len -= left;
        }
    }
    return 0;
}

int crl__http_out_make_room(struct crl__http_conn *c, size_t n)
{
    if (c->out_len) {
        int rc = crl__http_flush(c, NULL, 0);
        if (rc)
            return rc;
    }
    if (n <= c->out_cap)
        return 0;
    size_t cap = c->out_cap;
    while (cap < n)
        cap *= 2;
    return crl__http_grow(&c->out, &c->out_cap, c->out_inline, c->out_len, cap);
}

int crl__http_grow(char **buf, size_t *cap, const char *inline_buf, size_t keep, size_t n)
{
    char *p;
    if (*buf == inline_buf) {
        p = malloc(n);
        if (p)
            memcpy(p, *buf, keep);
    } else {
        p = realloc(*buf, n);
    }
    if (!p)
        return -ENOMEM;
    *buf = p;
    *cap = n;
    return 0;
}

int crl__http_hdrs_grow(struct crl__http_conn *c)
{
    size_t cap = c->lim.max_headers;
    struct crl__http_hdr *p =
        c->hdrs == c->hdrs_inline ? malloc(cap * sizeof *p) : realloc(c->hdrs, cap * sizeof *p);
    if (!p)
        return -ENOMEM;
    if (c->hdrs == c->hdrs_inline)
        memcpy(p, c->hdrs_inline, sizeof c->hdrs_inline);
    c->hdrs = p;
    c->hdrs_cap = cap;
    return 0;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* Whether the response being made is the connection's last. */
static bool response_closes(struct crl__http_conn *c)
{
    if (c->must_close || c->res.close || !c->req.keep_alive || c->upgrade)
        return true;
    if (c->io->draining && c->io->draining(c->io_ctx))
        return true;
    /* The client waits for "100 Continue" before it sends the body: we cannot skip it. */
    return !c->req.body_done && c->req.expect_100 && !c->req.continue_sent;
}

/* A response head was made: counted in its status class (600-999 in none). */
static void count_response(struct crl__http_conn *c, int status)
{
    if (status >= 100 && status < 600)
        CRL__COUNT(c->stats, http_responses[status / 100 - 1]);
}

int crl__http_head(struct crl__http_conn *c, int status, const char *content_type,
                   enum crl__http_framing framing, uint64_t len)
{
    if (c->write_err)
        return c->write_err;
    struct crl__http_reason reason = crl__http_reason(status);
    size_t tlen = content_type ? strlen(content_type) : 0;
    int rc = crl__http_out_reserve(c, 160 + reason.len + tlen + c->res.hdrs_len);
    if (rc)
        return rc;
    int64_t now = crl__now_coarse_ns();
    if (c->write_deadline_ns == CRL_NO_DEADLINE)
        c->write_deadline_ns = crl__deadline_after(now, c->lim.write_timeout_ns);
    if (framing == CRL__FRAME_CLOSE || response_closes(c))
        c->must_close = true;
    char *p = PUT_LIT(c->out + c->out_len, "HTTP/1.1 ");
    *p++ = (char)('0' + status / 100);
    *p++ = (char)('0' + status / 10 % 10);
    *p++ = (char)('0' + status % 10);
    *p++ = ' ';
    p = put(p, reason.text, reason.len);
    p = PUT_LIT(p, "\r\nDate: ");
    p = put(p, crl__http_date(&c->hc->date, now), CRL__HTTP_DATE_LEN);
    if (content_type) {
        p = PUT_LIT(p, "\r\nContent-Type: ");
        p = put(p, content_type, tlen);
    }
    if (framing == CRL__FRAME_LENGTH) {
        p = PUT_LIT(p, "\r\nContent-Length: ");
        p = put_u64(p, len);
    } else if (framing == CRL__FRAME_CHUNKED) {
        p = PUT_LIT(p, "\r\nTransfer-Encoding: chunked");
    }
    p = PUT_LIT(p, "\r\n");
    if (c->res.hdrs_len)
        p = put(p, c->res.hdrs, c->res.hdrs_len);
    if (c->must_close)
        p = PUT_LIT(p, "Connection: close\r\n");
    else if (c->req.version == 10)
        p = PUT_LIT(p, "Connection: keep-alive\r\n");
    p = PUT_LIT(p, "\r\n");
    c->out_len = (size_t)(p - c->out);
    count_response(c, status);
    return 0;
}

void crl__http_send_error(struct crl__http_conn *c, int status)
{
    c->must_close = true;
    c->linger = true;
    c->hc->stats.errors++;
    if (c->res.state != CRL__RES_NONE)
        return; /* a response is already on its way: closing is all we can do */
    c->res.hdrs_len = 0;
    c->res.state = CRL__RES_DONE;
    c->write_deadline_ns = CRL_NO_DEADLINE;
    if (crl__http_head(c, status, NULL, CRL__FRAME_LENGTH, 0) == 0)
        crl__http_flush(c, NULL, 0);
}

/* ---- Input ------------------------------------------------------------------------------ */

/* Read more input; what the output buffer holds goes out first (with the transport's
 * write_read, in the same breath as the read is started). A write error ends the
 * connection: -EPIPE then. */
static ssize_t transport_read(struct crl__http_conn *c, int64_t deadline_ns)
{
    ssize_t n;
    void *buf = c->in + c->in_len;
    size_t len = c->in_cap - c->in_len;
    if (c->out_len && !c->write_err && c->io->write_read) {
        int werr = 0;
        c->hc->stats.writes++;
        c->hc->stats.reads++;
        n = c->io->write_read(c->io_ctx, c->out, c->out_len, c->write_deadline_ns, buf, len,
                              deadline_ns, &werr);
        size_t sent = c->out_len;
        c->out_len = 0;
        if (werr) {
            if (werr == -ETIMEDOUT)
                CRL__COUNT(c->stats, http_timeouts[CRL_HTTP_TIMEOUT_WRITE]);
            c->write_err = werr;
            c->must_close = true;
            return -EPIPE;
        }
        CRL__COUNT_ADD(c->stats, http_bytes_out, sent);
    } else {
        if (crl__http_flush(c, NULL, 0))
            return -EPIPE;
        c->hc->stats.reads++;
        n = c->io->read(c->io_ctx, buf, len, deadline_ns);
    }
    if (n > 0) {
        c->in_len += (size_t)n;
        CRL__COUNT_ADD(c->stats, http_bytes_in, n);
    } else if (n == 0) {
        c->peer_eof = true;
    }
    return n;
}

/* Room to read more of a head: move the message to the front, or grow the buffer up to the
 * head limits (then the status for the limit that was hit). */
static int head_room(struct crl__http_conn *c)
{
    if (c->in_len < c->in_cap)
        return 0;
    if (c->msg > 0) {
        memmove(c->in, c->in + c->msg, c->in_len - c->msg);
        c->in_len -= c->msg;
        c->in_parsed -= c->msg;
        c->msg = 0;
        return 0;
    }
    if (c->in_cap >= c->in_max)
        return c->ps.line_done ? 431 : 414;
    size_t cap = c->in_cap * 2 < c->in_max ? c->in_cap * 2 : c->in_max;
    return crl__http_grow(&c->in, &c->in_cap, c->in_inline, c->in_len, cap) ? 503 : 0;
}

/* Bytes of an unfinished head beyond what the limits allow (a run of spaces makes no parser
 * callback, so the callbacks' own checks are not enough). */
static int head_overflow(struct crl__http_conn *c)
{
    size_t have = c->in_len - c->msg;
    if (!c->ps.line_done)
        return have > c->lim.max_request_line + 2 ? 414 : 0;
    return have - c->ps.line_end > c->lim.max_header_bytes + 4 ? 431 : 0;
}

/* The head is parsed: get the request ready for its handler. */
static int head_ready(struct crl__http_conn *c)
{
    struct crl_http_req *r = &c->req;
    c->head_end = c->in_parsed;
    r->body_done = c->ps.msg_done;
    r->continue_sent = !r->expect_100 || r->version == 10 || r->body_done;
    c->write_deadline_ns = CRL_NO_DEADLINE;
    c->res.state = CRL__RES_NONE;
    c->res.chunked = false;
    c->res.close = false;
    c->res.hdrs_len = 0;
    c->res.head_only = c->is_head;
    c->body_status = 0;
    if (r->body_done)
        return 0;
    r->body_deadline_ns = crl__deadline_after(crl__now_coarse_ns(), c->lim.body_timeout_ns);
    if (c->in_cap - c->head_end < BODY_ROOM_MIN && /* before any slice is handed out */
        crl__http_grow(&c->in, &c->in_cap, c->in_inline, c->in_len, c->head_end + BODY_ROOM_MIN))
        return 503;
    return 0;
}

/* A wait for a head timed out: the head's own (or the first request's) limit, or a
 * keep-alive connection's idle one. */
static void count_head_timeout(struct crl__http_conn *c, bool idle, bool first)
{
    enum crl_http_timeout_kind kind =
        idle && !first ? CRL_HTTP_TIMEOUT_IDLE : CRL_HTTP_TIMEOUT_HEADER;
    CRL__COUNT(c->stats, http_timeouts[kind]);
}

enum { HEAD_CLOSE = -1, HEAD_PARKED = -2 };

/* A connection that may park waits this long in its task first (0: parks at once). Parking
 * costs a task's end and start and a readiness wait: more than waiting in place, where the
 * last response's send and the next receive go in one submission. A busy connection
 * (pipelined or back-to-back requests) never pays it; an idle one gives its stack back after
 * this long (and the core's stack cache gives back the stacks' pages, crl__stack_settle). At
 * 20 ms, 800 busy connections cost 4-6% more CPU a request than at 1 s, with 0.05% of their
 * requests parking (bench/RESULTS.md). A variable so that tests and bench-instr can change it. */
int64_t crl__http_park_after_ns = CRL_SEC_NS;

/* Between requests (or before the first), with every byte received parsed: write what is
 * buffered and return to wait without a task (HEAD_PARKED), or HEAD_CLOSE if the write
 * failed. */
static int park(struct crl__http_conn *c, bool first, int64_t deadline_ns)
{
    if (crl__http_flush(c, NULL, 0))
        return HEAD_CLOSE;
    c->park->first = first;
    c->park->deadline_ns = deadline_ns;
    return HEAD_PARKED;
}

/* Read and parse the next request's head. Returns 0 when it is ready, an error status to
 * answer, HEAD_CLOSE to close quietly (end of stream, idle timeout, a stopping server) or
 * HEAD_PARKED to wait for it without a task. */
static int read_head(struct crl__http_conn *c, bool first)
{
    c->msg = c->in_parsed;
    c->res.state = CRL__RES_NONE; /* the last response is complete: an error may follow it */
    crl__http_parse_begin(c);
    c->req.body_done = true; /* no request yet: no body left unread */
    int64_t head_deadline = CRL_NO_DEADLINE;
    for (;;) {
        if (c->in_parsed < c->in_len) {
            int rc = crl__http_parse_feed(c, c->in_len - c->in_parsed);
            if (rc == 1)
                return head_ready(c);
            if (rc || (rc = head_overflow(c))) {
                CRL__COUNT(c->stats, http_parse_errors);
                return rc;
            }
        }
        int rc = head_room(c);
        if (rc) {
            if (rc != 503) /* a limit, not a lack of memory */
                CRL__COUNT(c->stats, http_parse_errors);
            return rc;
        }
        if (c->write_err)
            return HEAD_CLOSE;
        bool idle = c->in_len == c->msg;               /* no byte of this request yet */
        if (!idle && head_deadline == CRL_NO_DEADLINE) /* from its first byte on */
            head_deadline = crl__deadline_after(crl__now_coarse_ns(), c->lim.header_timeout_ns);
        int64_t deadline = head_deadline, read_deadline = head_deadline;
        bool may_park = false;
        if (idle) {
            if (c->io->draining && c->io->draining(c->io_ctx))
                return HEAD_CLOSE;
            int64_t now = crl__now_coarse_ns();
            deadline =
                crl__deadline_after(now, first ? c->lim.header_timeout_ns : c->lim.idle_timeout_ns);
            read_deadline = deadline;
            if (c->park && !c->park->resumed && c->in_len == c->in_parsed) {
                if (crl__http_park_after_ns <= 0)
                    return park(c, first, deadline);
                int64_t park_at = crl__deadline_after(now, crl__http_park_after_ns);
                may_park = deadline == CRL_NO_DEADLINE || park_at < deadline;
                if (may_park)
                    read_deadline = park_at; /* wait in place until then, then park */
            }
            if (c->io->set_idle)
                c->io->set_idle(c->io_ctx, true);
        }
        if (c->park)
            c->park->resumed = false; /* the wait's readiness is used up by this read */
        ssize_t n = transport_read(c, read_deadline);
        if (idle && c->io->set_idle)
            c->io->set_idle(c->io_ctx, false);
        if (n == -ETIMEDOUT && may_park)
            return park(c, first, deadline); /* nothing came in place: wait without a task */
        if (n == -ETIMEDOUT)
            count_head_timeout(c, idle, first);
        if (n == -ETIMEDOUT && !idle)
            return 408;
        if (n <= 0)
            return HEAD_CLOSE;
    }
}

/* A body error: remembered for the handler's later calls and for the server's answer. */
static ssize_t body_fail(struct crl__http_conn *c, int err, int status)
{
    c->req.body_err = err;
    c->body_status = status;
    c->must_close = true;
    c->linger = true;
    return err;
}

static ssize_t body_parse_fail(struct crl__http_conn *c, int status)
{
    CRL__COUNT(c->stats, http_parse_errors);
    if (status == 413)
        return body_fail(c, -EMSGSIZE, 413);
    return body_fail(c, -EPROTO, 400);
}

/* Make room behind the head for more body bytes: drop those already parsed. */
static void body_room(struct crl__http_conn *c)
{
    if (c->in_parsed == c->in_len) {
        c->in_len = c->in_parsed = c->head_end;
    } else if (c->in_len == c->in_cap) {
        size_t left = c->in_len - c->in_parsed;
        memmove(c->in + c->head_end, c->in + c->in_parsed, left);
        c->in_parsed = c->head_end;
        c->in_len = c->head_end + left;
    }
}

static int send_continue(struct crl__http_conn *c)
{
    static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    c->req.continue_sent = true;
    if (c->write_deadline_ns == CRL_NO_DEADLINE)
        c->write_deadline_ns = crl__deadline_after(crl__now_coarse_ns(), c->lim.write_timeout_ns);
    if (c->res.state != CRL__RES_NONE)
        return 0; /* the final response has begun: it replaces the interim one */
    int rc = crl__http_out_reserve(c, sizeof line - 1);
    if (rc)
        return rc;
    memcpy(c->out + c->out_len, line, sizeof line - 1);
    c->out_len += sizeof line - 1;
    count_response(c, 100);
    return 0;
}

ssize_t crl__http_body_read(struct crl__http_conn *c, void *buf, size_t len)
{
    struct crl_http_req *r = &c->req;
    if (r->body_err)
        return r->body_err;
    if (r->body_done || len == 0)
        return 0;
    for (;;) {
        if (c->in_parsed < c->in_len) {
            /* At most len input bytes: the body they hold cannot be longer. */
            size_t n = c->in_len - c->in_parsed < len ? c->in_len - c->in_parsed : len;
            uint64_t seen = r->body_seen;
            size_t parsed = c->in_parsed;
            c->ps.sink = buf;
            c->ps.sink_len = len;
            int rc = crl__http_parse_feed(c, n);
            c->ps.sink = NULL;
            if (rc == 1)
                r->body_done = true;
            else if (rc)
                return body_parse_fail(c, rc);
            if (r->body_seen > seen || r->body_done)
                return (ssize_t)(r->body_seen - seen);
            if (c->in_parsed > parsed && c->in_parsed < c->in_len)
                continue; /* those were framing (a chunk's CRLF, its size line): parse on */
        }
        body_room(c);
        if (!r->continue_sent && send_continue(c))
            return body_fail(c, c->write_err ? c->write_err : -ENOMEM, 0);
        ssize_t n = transport_read(c, r->body_deadline_ns);
        if (c->write_err)
            return body_fail(c, c->write_err, 0);
        if (n == 0)
            return body_fail(c, -ECONNRESET, 0);
        if (n == -ETIMEDOUT)
            CRL__COUNT(c->stats, http_timeouts[CRL_HTTP_TIMEOUT_BODY]);
        if (n < 0)
            return body_fail(c, (int)n, n == -ETIMEDOUT ? 408 : 0);
    }
}

/* Read and drop what the handler left of the body, so the next request can be parsed. */
static bool drain_body(struct crl__http_conn *c)
{
    for (;;) {
        ssize_t n = crl__http_body_read(c, NULL, c->in_cap);
        if (n == 0)
            return true;
        if (n < 0)
            return false;
    }
}

/* ---- The connection --------------------------------------------------------------------- */

static void run_request(struct crl__http_conn *c)
{
    CRL__COUNT(c->stats, http_requests);
    c->handler(&c->req, &c->res, c->ctx);
    if (c->res.state == CRL__RES_NONE && c->req.body_err && !c->body_status) {
        c->linger = false;    /* the body's read failed in the transport (a reset): nobody */
        c->must_close = true; /* reads an answer, so none is written (nginx's 499) */
    } else if (c->res.state == CRL__RES_NONE) {
        crl__http_send_error(c, c->body_status ? c->body_status : 500);
    } else if (c->res.state == CRL__RES_STREAM) {
        c->must_close = true; /* half sent: only closing ends it */
        crl__http_flush(c, NULL, 0);
    }
}

/* After a response: whether another request may follow on this connection. */
static bool next_request(struct crl__http_conn *c)
{
    if (c->must_close || c->write_err)
        return false;
    if (!c->req.body_done && !drain_body(c))
        return false;
    if (c->in_parsed == c->in_len)
        c->in_len = c->in_parsed = 0;
    return true;
}

static int conn_init(struct crl__http_conn *c, const struct crl_http_limits *lim)
{
    memset(c, 0, offsetof(struct crl__http_conn, hdrs_inline)); /* not the inline buffers */
    crl__http_limits_resolve(&c->lim, lim);
    size_t head_max = c->lim.max_request_line + c->lim.max_header_bytes + HEAD_SLACK;
    c->in_max = head_max > IN_START ? head_max : IN_START;
    c->in = c->in_inline;
    c->in_cap = sizeof c->in_inline;
    c->out = c->out_inline;
    c->out_cap = sizeof c->out_inline;
    c->hdrs = c->hdrs_inline;
    c->hdrs_cap = CRL__HTTP_HDRS_INLINE;
    c->write_deadline_ns = CRL_NO_DEADLINE;
    c->stats = crl__cur ? &crl__cur->stats : &no_runtime_stats;
    c->hc = crl__http_core();
    crl__http_parse_init(c);
    return 0;
}

static void conn_fini(struct crl__http_conn *c)
{
    if (c->in != c->in_inline)
        free(c->in);
    if (c->out != c->out_inline)
        free(c->out);
    if (c->hdrs != c->hdrs_inline)
        free(c->hdrs);
    free(c->scratch);
    free(c->body);
    free(c->res.hdrs);
}

/* Serve requests until the connection is to close (false) or parks (true). first: this is a
 * new connection, whose first request has its header timeout from the start. */
static bool conn_loop(struct crl__http_conn *c, bool first)
{
    for (;; first = false) {
        int st = read_head(c, first);
        if (st == HEAD_PARKED)
            return true;
        if (st < 0)
            return false;
        if (st > 0) {
            crl__http_send_error(c, st);
            return false;
        }
        run_request(c);
        if (!next_request(c))
            return false;
    }
}

int crl__http_conn_serve(struct crl__http_conn *c, const struct crl__http_io *io, void *io_ctx,
                         const struct crl_http_limits *lim, crl_http_handler_fn *handler, void *ctx)
{
    return crl__http_conn_serve_parked(c, io, io_ctx, lim, handler, ctx, NULL);
}

int crl__http_conn_serve_parked(struct crl__http_conn *c, const struct crl__http_io *io,
                                void *io_ctx, const struct crl_http_limits *lim,
                                crl_http_handler_fn *handler, void *ctx,
                                struct crl__http_park *park)
{
    if (conn_init(c, lim))
        return -ENOMEM;
    c->io = io;
    c->io_ctx = io_ctx;
    c->handler = handler;
    c->ctx = ctx;
    c->park = park;
    if (conn_loop(c, !park || park->first)) {
        conn_fini(c);
        return 1;
    }
    crl__http_flush(c, NULL, 0);
    bool unread = c->in_parsed < c->in_len || !c->req.body_done;
    if ((c->linger || unread) && !c->peer_eof && !c->write_err && io->linger)
        io->linger(io_ctx);
    int rc = c->write_err;
    conn_fini(c);
    return rc == -EPIPE || rc == -ECONNRESET ? 0 : rc;
}
