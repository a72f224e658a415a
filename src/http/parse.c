/* parse.c - the llhttp glue: callbacks that record a request's head as slices of the input
 * buffer, enforce the head limits, and add the checks llhttp leaves to us (Host, duplicate
 * Content-Length, transfer codings, obs-fold, the version).
 *
 * llhttp runs strict (built with LLHTTP_STRICT_MODE, no lenient flag set). The parser pauses
 * when a head with a body is complete and when a message is complete, so the bytes after a
 * request stay unparsed until its handler has run. */
#include "http.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

static struct crl__http_conn *conn_of(llhttp_t *p) { return p->data; }

static int fail(struct crl__http_conn *c, int status)
{
    if (!c->ps.status)
        c->ps.status = status;
    return HPE_USER;
}

/* Offset of the end of a piece, from the message start. */
static uint32_t end_off(struct crl__http_conn *c, const char *at, size_t len)
{
    return (uint32_t)(at + len - (c->in + c->msg));
}

static int on_line_piece(llhttp_t *p, const char *at, size_t len)
{
    struct crl__http_conn *c = conn_of(p);
    if (end_off(c, at, len) > c->lim.max_request_line)
        return fail(c, 414);
    return 0;
}

/* llhttp skips any CR and LF before a request line; RFC 9112 2.2 lets empty lines go, but a
 * bare CR is invalid wherever it is. */
static int on_method(llhttp_t *p, const char *at, size_t len)
{
    struct crl__http_conn *c = conn_of(p);
    for (const char *s = c->in + c->msg; s < at; s++)
        if (*s == '\r' && (s + 1 == at || s[1] != '\n'))
            return fail(c, 400);
    return on_line_piece(p, at, len);
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct crl__http_conn *c = conn_of(p);
    uint32_t off = (uint32_t)(at - (c->in + c->msg));
    if (c->req.target_len == 0 && at[-2] == ' ')
        return fail(c, 400); /* see on_version */
    if (c->req.target_len == 0)
        c->req.target = off;
    c->req.target_len = off + (uint32_t)len - c->req.target; /* pieces are contiguous */
    return on_line_piece(p, at, len);
}

static int on_version_complete(llhttp_t *p)
{
    struct crl__http_conn *c = conn_of(p);
    c->ps.line_done = true;
    return 0;
}

/* One SP between the request line's parts (RFC 9112 3): llhttp lets a run of them through,
 * which a parser splitting on whitespace may read otherwise. */
static int on_version(llhttp_t *p, const char *at, size_t len)
{
    struct crl__http_conn *c = conn_of(p);
    if (crl__http_at(c, c->req.target + c->req.target_len)[1] == ' ')
        return fail(c, 400);
    c->ps.line_end = end_off(c, at, len);
    return on_line_piece(p, at, len);
}

/* Header bytes (past the request line) seen so far must stay within the limit. */
static int check_header_bytes(struct crl__http_conn *c, const char *at, size_t len)
{
    if (end_off(c, at, len) - c->ps.line_end > c->lim.max_header_bytes)
        return fail(c, 431);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct crl__http_conn *c = conn_of(p);
    if (c->ps.head_done)
        return check_header_bytes(c, at, len) ? HPE_USER : 0; /* a trailer: not kept */
    uint32_t off = (uint32_t)(at - (c->in + c->msg));
    if (c->ps.in_value || c->req.nhdrs == 0) { /* a new header starts */
        if (c->req.nhdrs == c->lim.max_headers)
            return fail(c, 431);
        if (c->req.nhdrs == c->hdrs_cap && crl__http_hdrs_grow(c))
            return fail(c, 503);
        c->hdrs[c->req.nhdrs++] = (struct crl__http_hdr){.name = off, .value = off};
        c->ps.in_value = false;
    }
    struct crl__http_hdr *h = &c->hdrs[c->req.nhdrs - 1];
    h->name_len = off + (uint32_t)len - h->name;
    return check_header_bytes(c, at, len);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct crl__http_conn *c = conn_of(p);
    if (c->ps.head_done)
        return check_header_bytes(c, at, len) ? HPE_USER : 0;
    uint32_t off = (uint32_t)(at - (c->in + c->msg));
    if (c->req.nhdrs == 0)
        return fail(c, 400); /* a value with no name before it */
    struct crl__http_hdr *h = &c->hdrs[c->req.nhdrs - 1];
    if (!c->ps.in_value) {
        h->value = off;
        c->ps.in_value = true;
    } else if (off != h->value + h->value_len) {
        c->ps.folded = true; /* llhttp delivers an obs-fold continuation as a new piece */
    }
    h->value_len = off + (uint32_t)len - h->value;
    return check_header_bytes(c, at, len);
}

/* s[0..n) equals lower (lowercase letters and '-') ignoring case. Only for header names:
 * llhttp let through token characters alone, and no other token character folds (| 0x20)
 * onto a lowercase letter or '-'. Inline: libc's strncasecmp goes through the locale. */
static inline bool token_ieq(const char *s, const char *lower, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((s[i] | 0x20) != lower[i])
            return false;
    return true;
}

static bool name_is(const struct crl__http_conn *c, const struct crl__http_hdr *h, const char *name,
                    size_t len)
{
    return h->name_len == len && token_ieq(crl__http_at(c, h->name), name, len);
}

/* The number of codings listed in a Transfer-Encoding value, -1 if one is not "chunked" (we
 * know no other). */
static int chunked_codings(const char *v, size_t len)
{
    int n = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < len && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (i == start)
            continue;
        if (i - start != 7 || strncasecmp(v + start, "chunked", 7) != 0)
            return -1;
        n++;
    }
    return n;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct crl__http_conn *c = conn_of(p);
    if (c->ps.head_done)
        return 0;
    if (c->req.nhdrs == 0 || c->hdrs[c->req.nhdrs - 1].name_len == 0)
        return fail(c, 400); /* strict llhttp still lets ": value" through */
    if (!c->ps.in_value) {   /* an empty value: no value piece came */
        struct crl__http_hdr *h = &c->hdrs[c->req.nhdrs - 1];
        h->value = h->name + h->name_len;
        h->value_len = 0;
        c->ps.in_value = true;
    }
    if (c->ps.folded)
        return fail(c, 400);
    struct crl__http_hdr *h = &c->hdrs[c->req.nhdrs - 1];
    const char *v = crl__http_at(c, h->value);
    if (name_is(c, h, "host", 4)) {
        c->ps.hosts++;
    } else if (name_is(c, h, "content-length", 14)) {
        c->ps.cls++;
    } else if (name_is(c, h, "transfer-encoding", 17)) {
        c->ps.te = true;
        int n = chunked_codings(v, h->value_len);
        if (n <= 0) /* an empty one: another parser may frame by what else there is */
            return fail(c, n < 0 ? 501 : 400);
    } else if (name_is(c, h, "expect", 6)) {
        size_t n = h->value_len;
        while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        c->req.expect_100 = n == 12 && strncasecmp(v, "100-continue", 12) == 0;
    }
    return 0;
}

/* Make the head's slices NUL-terminated strings: each is followed by a byte the parser has
 * already consumed (a space, ':' or CR), and a value's trailing whitespace goes. */
static void terminate_slices(struct crl__http_conn *c)
{
    char *base = c->in + c->msg;
    base[c->req.target + c->req.target_len] = '\0';
    for (size_t i = 0; i < c->req.nhdrs; i++) {
        struct crl__http_hdr *h = &c->hdrs[i];
        base[h->name + h->name_len] = '\0';
        while (h->value_len && (base[h->value + h->value_len - 1] == ' ' ||
                                base[h->value + h->value_len - 1] == '\t'))
            h->value_len--;
        if (h->value_len)
            base[h->value + h->value_len] = '\0';
        else
            h->value = UINT32_MAX; /* the accessors return "" */
    }
}

/* The checks llhttp does not make, in order of precedence. */
static int head_status(struct crl__http_conn *c)
{
    llhttp_t *p = &c->ps.llh;
    if (p->http_major != 1 || p->http_minor > 1)
        return 505;
    if (c->ps.cls > 1)
        return 400;
    if (p->http_minor == 1 ? c->ps.hosts != 1 : c->ps.hosts > 1)
        return 400;
    if (c->ps.te && p->http_minor == 0)
        return 400; /* RFC 9112 6.1: a 1.0 message with Transfer-Encoding is faulty */
    if (p->method == HTTP_CONNECT)
        return 501;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->lim.max_body)
        return 413;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct crl__http_conn *c = conn_of(p);
    c->ps.head_done = true;
    int status = head_status(c);
    if (status)
        return fail(c, status);
    terminate_slices(c);
    struct crl_http_req *r = &c->req;
    r->version = p->http_minor == 1 ? 11 : 10;
    r->keep_alive = r->version == 11 ? !(p->flags & F_CONNECTION_CLOSE)
                                     : (p->flags & F_CONNECTION_KEEP_ALIVE) != 0;
    bool chunked = (p->flags & F_CHUNKED) != 0;
    r->content_length = chunked                         ? -1
                        : (p->flags & F_CONTENT_LENGTH) ? (int64_t)p->content_length
                                                        : 0;
    c->is_head = p->method == HTTP_HEAD;
    c->upgrade = p->upgrade != 0;
    if (chunked || r->content_length > 0)
        return HPE_PAUSED; /* the handler reads the body */
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct crl__http_conn *c = conn_of(p);
    if (c->req.body_seen + len > c->lim.max_body)
        return fail(c, 413);
    c->req.body_seen += len;
    if (c->ps.sink) { /* the caller fed at most sink_len bytes: the body cannot overflow */
        memcpy(c->ps.sink, at, len);
        c->ps.sink += len;
        c->ps.sink_len -= len;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct crl__http_conn *c = conn_of(p);
    c->ps.msg_done = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_method = on_method,
    .on_url = on_url,
    .on_version = on_version,
    .on_version_complete = on_version_complete,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void crl__http_parse_init(struct crl__http_conn *c)
{
    llhttp_init(&c->ps.llh, HTTP_REQUEST, &settings);
    c->ps.llh.data = c;
}

void crl__http_parse_begin(struct crl__http_conn *c)
{
    /* The fields after the parser's own state, not the whole record: a compound literal
     * there zeroed all 128 bytes with `rep stos` (slow to start) and copied llhttp's back,
     * 1.5% of a pipelined request's time. */
    size_t from = offsetof(struct crl__http_parse, sink);
    memset((char *)&c->ps + from, 0, sizeof c->ps - from);
    c->req = (struct crl_http_req){.body_deadline_ns = CRL_NO_DEADLINE};
}

/* The status for an error llhttp found itself. */
static int llhttp_status(llhttp_errno_t err)
{
    switch (err) {
    case HPE_INVALID_VERSION: return 505;
    default: return 400;
    }
}

int crl__http_parse_feed(struct crl__http_conn *c, size_t n)
{
    const char *start = c->in + c->in_parsed;
    llhttp_errno_t err = llhttp_execute(&c->ps.llh, start, n);
    if (err == HPE_OK) {
        c->in_parsed += n;
        return 0;
    }
    if (err == HPE_PAUSED) {
        c->in_parsed += (size_t)(llhttp_get_error_pos(&c->ps.llh) - start);
        llhttp_resume(&c->ps.llh);
        return 1;
    }
    if (c->ps.status) /* a callback's own verdict (llhttp may report it as its own code) */
        return c->ps.status;
    if (err == HPE_PAUSED_UPGRADE)
        return 400; /* never asked for: on_headers_complete does not return 2 */
    return llhttp_status(err);
}
