/* parse.c - the llhttp glue: callbacks that record a request's head as slices of the input
 * buffer, enforce the head limits, and add the checks llhttp leaves to us (Host, duplicate
 * Content-Length, transfer codings, obs-fold, the version, the target's form, authorities).
 *
 * llhttp runs strict (built with LLHTTP_STRICT_MODE; one lenient flag, for the version: see
 * crl__http_parse_init). A chunked body's chunk lines are checked by crl__chunk_scan first,
 * which cuts their extensions out of what llhttp sees (llhttp 8.1 rejects valid ones: chunk.h).
 * The parser pauses
 * when a head with a body is complete and when a message is complete, so the bytes after a
 * request stay unparsed until its handler has run. */
#include "http.h"

#include <arpa/inet.h>
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

/* (Single SPs between the request line's parts: target_status, at the head's end.) */
static int on_version(llhttp_t *p, const char *at, size_t len)
{
    struct crl__http_conn *c = conn_of(p);
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

/* Byte i of the bytes being fed (-1: the last one fed before them; 0 before that). */
static char fed_byte(const struct crl__http_conn *c, ptrdiff_t i)
{
    return i >= 0 ? c->ps.feed[i] : i == -1 ? c->ps.fed_last : '\0';
}

/* Trailers are not kept, so their lines are checked for obs-fold as they pass: a value piece
 * after the first that does not continue one cut by the end of a feed, or a line break in
 * the whitespace before the first (an empty value's piece comes after its line's end). */
static int trailer_value(struct crl__http_conn *c, const char *at, size_t len)
{
    ptrdiff_t i = at - c->ps.feed - 1;
    if (c->ps.t_in_value && !(i == -1 && c->ps.t_at_end))
        return fail(c, 400);
    if (!c->ps.t_in_value && len == 0) {
        i -= fed_byte(c, i) == '\n';
        i -= fed_byte(c, i) == '\r';
    }
    while (!c->ps.t_in_value && (fed_byte(c, i) == ' ' || fed_byte(c, i) == '\t'))
        i--;
    if (!c->ps.t_in_value && (fed_byte(c, i) == '\n' || fed_byte(c, i) == '\r'))
        return fail(c, 400);
    c->ps.t_in_value = true;
    c->ps.t_at_end = at + len == c->ps.feed_end;
    return check_header_bytes(c, at, len) ? HPE_USER : 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct crl__http_conn *c = conn_of(p);
    if (c->ps.head_done) { /* a trailer: not kept */
        c->ps.t_in_value = false;
        c->ps.t_named |= len > 0;
        return check_header_bytes(c, at, len) ? HPE_USER : 0;
    }
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
        return trailer_value(c, at, len);
    if (len == 0)
        return 0; /* an empty value comes as an empty piece past the line's end */
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

static size_t trimmed_len(const char *v, size_t n)
{
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return n;
}

/* Take the transfer codings of a Transfer-Encoding line (RFC 9112 6.1, 7): chunked must be
 * the last one, and only once (else the body's length is unknown: 400); any other coding is
 * one we do not know (501, at the head's end). Empty list elements are ignored, but a line
 * with no coding at all is 400: a parser that skips the empty line frames the body by what
 * else there is (Content-Length, or nothing), one that counts it does not. */
static int te_codings(struct crl__http_conn *c, const char *v, size_t len)
{
    bool any = false;
    for (size_t i = 0; i < len; i++) {
        size_t start = i;
        while (i < len && v[i] != ',')
            i++;
        while (start < i && (v[start] == ' ' || v[start] == '\t'))
            start++;
        size_t n = trimmed_len(v + start, i - start);
        if (n == 0)
            continue;
        if (c->ps.te_chunked)
            return fail(c, 400); /* a coding after chunked */
        any = true;
        if (n == 7 && strncasecmp(v + start, "chunked", 7) == 0)
            c->ps.te_chunked = true;
        else
            c->ps.te_other = true;
    }
    return any ? 0 : fail(c, 400);
}

/* ---- Authorities (RFC 3986 3.2.2, 3.2.3) ------------------------------------------------- */

static bool is_hex(char ch)
{
    return (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f');
}

/* RFC 9110 5.6.2 token characters */
static bool is_tchar(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* unreserved / sub-delims */
static bool is_host_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("-._~!$&'()*+,;=", ch));
}

/* reg-name (which an IPv4 address is too): unreserved, sub-delims, pct-encoded. */
static bool is_reg_name(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n || !is_hex(s[i + 1]) || !is_hex(s[i + 2]))
                return false;
            i += 2;
        } else if (!is_host_char(s[i])) {
            return false;
        }
    }
    return true;
}

/* What is between "[" and "]": an IPv6 address, or IPvFuture ("v" HEX+ "." chars+). */
static bool is_ip_literal(const char *s, size_t n)
{
    if (n > 1 && (s[0] | 0x20) == 'v') {
        size_t i = 1;
        while (i < n && is_hex(s[i]))
            i++;
        if (i == 1 || i + 1 >= n || s[i] != '.')
            return false;
        for (i++; i < n; i++)
            if (!is_host_char(s[i]) && s[i] != ':')
                return false;
        return true;
    }
    char addr[INET6_ADDRSTRLEN];
    struct in6_addr a;
    if (n == 0 || n >= sizeof addr)
        return false;
    memcpy(addr, s, n);
    addr[n] = '\0';
    return inet_pton(AF_INET6, addr, &a) == 1;
}

/* s[0..n) is host [":" port] (no userinfo, which RFC 9110 4.2.4 makes an error); the host
 * must not be empty if need_host (it may be in a Host header: RFC 9112 3.2). */
static bool is_authority(const char *s, size_t n, bool need_host)
{
    size_t i = 0;
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close || !is_ip_literal(s + 1, (size_t)(close - s - 1)))
            return false;
        i = (size_t)(close - s) + 1;
    } else {
        while (i < n && s[i] != ':')
            i++;
        if (!is_reg_name(s, i) || (need_host && i == 0))
            return false;
    }
    if (i < n && s[i++] != ':')
        return false;
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* ---- Header lines ----------------------------------------------------------------------- */

/* Whether header h's line is folded (obs-fold, RFC 9112 5.2) where llhttp gives no sign of it:
 * before its value (between the colon and the first piece) or after it (an empty
 * continuation line). llhttp has looked at the byte after the line's end, so it is in the
 * buffer. */
static bool line_folded(const struct crl__http_conn *c, const struct crl__http_hdr *h)
{
    const char *base = c->in + c->msg, *end = c->in + c->in_len;
    const char *p = base + h->name + h->name_len + 1, *v = base + h->value;
    for (; p < v; p++)
        if (*p == '\r' || *p == '\n')
            return true;
    for (p = v + h->value_len; p < end && (*p == ' ' || *p == '\t'); p++)
        ;
    if (p < end && *p == '\r')
        p++;
    if (p < end && *p == '\n')
        p++;
    return p < end && (*p == ' ' || *p == '\t');
}

static int on_header_value_complete(llhttp_t *p)
{
    struct crl__http_conn *c = conn_of(p);
    if (c->ps.head_done) { /* a trailer: its name is a token, not empty (llhttp lets it be) */
        bool named = c->ps.t_named;
        c->ps.t_named = false;
        return named ? 0 : fail(c, 400);
    }
    if (c->req.nhdrs == 0 || c->hdrs[c->req.nhdrs - 1].name_len == 0)
        return fail(c, 400); /* strict llhttp still lets ": value" through */
    if (!c->ps.in_value) {   /* an empty value: no value piece came */
        struct crl__http_hdr *h = &c->hdrs[c->req.nhdrs - 1];
        h->value = h->name + h->name_len + 1; /* past the colon */
        h->value_len = 0;
        c->ps.in_value = true;
    }
    struct crl__http_hdr *h = &c->hdrs[c->req.nhdrs - 1];
    if (c->ps.folded || line_folded(c, h))
        return fail(c, 400);
    const char *v = crl__http_at(c, h->value);
    if (name_is(c, h, "host", 4)) {
        c->ps.hosts++;
        c->req.host_hdr = (uint32_t)c->req.nhdrs;
        if (!is_authority(v, trimmed_len(v, h->value_len), false))
            return fail(c, 400); /* RFC 9112 3.2: an invalid Host value */
    } else if (name_is(c, h, "content-length", 14)) {
        c->ps.cls++;
    } else if (name_is(c, h, "transfer-encoding", 17)) {
        c->ps.te = true;
        return te_codings(c, v, h->value_len);
    } else if (name_is(c, h, "expect", 6)) {
        size_t n = trimmed_len(v, h->value_len);
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

/* ---- The request target (RFC 9112 3.2) -------------------------------------------------- */

/* An absolute-form target ("http://host:port/path?query") becomes origin-form in place: the
 * authority moves to the target's start (NUL-terminated: the scheme left room) and the target
 * starts at the path ("/" put before a query or the end if the path is empty). 0 or 400. */
static int absolute_form(struct crl__http_conn *c, char *t, size_t len)
{
    size_t scheme = (size_t)((char *)memchr(t, ':', len) - t);
    if (!((scheme == 4 && strncasecmp(t, "http", 4) == 0) ||
          (scheme == 5 && strncasecmp(t, "https", 5) == 0)) ||
        len < scheme + 3 || memcmp(t + scheme, "://", 3) != 0)
        return 400; /* another scheme, or no authority */
    char *auth = t + scheme + 3, *end = t + len, *rest = auth;
    while (rest < end && *rest != '/' && *rest != '?')
        rest++;
    size_t alen = (size_t)(rest - auth);
    if (!is_authority(auth, alen, true))
        return 400;
    memmove(t, auth, alen);
    t[alen] = '\0';
    c->req.authority = c->req.target;
    if (rest == end || *rest == '?')
        *--rest = '/'; /* past the authority's NUL: the scheme's "://" made the room */
    c->req.target = (uint32_t)(rest - (c->in + c->msg));
    c->req.target_len = (uint32_t)(end - rest);
    return 0;
}

/* The request line is method SP target SP version, single spaces (llhttp allows more), and
 * the target is origin-form, absolute-form, or "*" for OPTIONS (CONNECT is refused before).
 * No fragment: it is not part of any form. */
static int target_status(struct crl__http_conn *c)
{
    char *base = c->in + c->msg, *t = base + c->req.target;
    size_t len = c->req.target_len;
    if (len == 0 || t[-1] != ' ' || t[-2] == ' ' || t[len] != ' ' || t[len + 1] != 'H')
        return 400;
    if (memchr(t, '#', len))
        return 400;
    if (t[0] == '/')
        return 0;
    if (len == 1 && t[0] == '*')
        return c->ps.llh.method == HTTP_OPTIONS ? 0 : 400;
    if (!memchr(t, ':', len))
        return 400;
    return absolute_form(c, t, len);
}

/* ---- The head --------------------------------------------------------------------------- */

/* The checks llhttp does not make, in order of precedence. */
static int head_status(struct crl__http_conn *c)
{
    llhttp_t *p = &c->ps.llh;
    if (!c->ps.line_end)
        return 400; /* no version: an HTTP/0.9-style request line */
    if (p->http_major != 1)
        return 505; /* 1.x with a higher minor is handled as 1.1 (RFC 9110 2.5) */
    if (c->ps.cls > 1)
        return 400;
    if (p->http_minor >= 1 ? c->ps.hosts != 1 : c->ps.hosts > 1)
        return 400;
    if (c->ps.te && p->http_minor == 0)
        return 400; /* RFC 9112 6.1: a 1.0 message with Transfer-Encoding is faulty */
    if (c->ps.te && (!c->ps.te_chunked || !(p->flags & F_CHUNKED)))
        return 400; /* RFC 9112 6.3: chunked is not the final coding (llhttp agrees) */
    if (c->ps.te_other)
        return 501;
    if (p->method == HTTP_CONNECT)
        return 501;
    int st = target_status(c);
    if (st)
        return st;
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
    r->version = p->http_minor >= 1 ? 11 : 10;
    r->keep_alive = r->version == 11 ? !(p->flags & F_CONNECTION_CLOSE)
                                     : (p->flags & F_CONNECTION_KEEP_ALIVE) != 0;
    bool chunked = (p->flags & F_CHUNKED) != 0;
    r->content_length = chunked                         ? -1
                        : (p->flags & F_CONTENT_LENGTH) ? (int64_t)p->content_length
                                                        : 0;
    c->is_head = p->method == HTTP_HEAD;
    c->upgrade = p->upgrade != 0;
    if (chunked)
        crl__chunk_start(&c->ps.chunk); /* its lines go through crl__chunk_scan */
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
    /* The one lenient flag: llhttp 8.1 (Debian's) refuses any version but 0.9, 1.0, 1.1 and
     * 2.0 itself, where RFC 9110 2.5 wants 1.2 handled as 1.1. With it, llhttp still checks
     * the syntax (HTTP/DIGIT.DIGIT) and head_status checks the version. */
    c->ps.llh.lenient_flags |= LENIENT_VERSION;
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

/* The message starts with a token and a space (past any empty lines before it). */
static bool method_is_token(const struct crl__http_conn *c)
{
    const char *p = c->in + c->msg, *end = c->in + c->in_len;
    while (p < end && (*p == '\r' || *p == '\n'))
        p++;
    const char *start = p;
    while (p < end && is_tchar(*p))
        p++;
    return p > start && p < end && *p == ' ';
}

/* A head, and a chunked message (past the last chunk or the trailers), end with CRLF CRLF:
 * llhttp 8.1 takes "\r\n\n" too, a bare LF that another parser may read otherwise. used: the bytes
 * of this feed the message took. */
static bool crlf_ended(const struct crl__http_conn *c, ptrdiff_t used)
{
    if (fed_byte(c, used - 1) != '\n' || fed_byte(c, used - 2) != '\r')
        return false;
    return used < 2 || fed_byte(c, used - 3) == '\n'; /* (further back: gone, unchecked) */
}

/* Feed llhttp n bytes at in_parsed (crl__http_parse_feed without chunk lines to check). */
static int feed_llhttp(struct crl__http_conn *c, size_t n)
{
    const char *start = c->in + c->in_parsed;
    c->ps.feed = start;
    c->ps.feed_end = start + n;
    llhttp_errno_t err = llhttp_execute(&c->ps.llh, start, n);
    if (err == HPE_OK) {
        c->in_parsed += n;
        c->ps.fed_last = n ? start[n - 1] : c->ps.fed_last;
        return 0;
    }
    if (err == HPE_PAUSED) {
        ptrdiff_t used = llhttp_get_error_pos(&c->ps.llh) - start;
        bool head_end = !c->ps.end_checked; /* the first pause: the head is complete */
        if ((head_end || (c->ps.msg_done && (c->ps.llh.flags & F_CHUNKED))) && !crlf_ended(c, used))
            return 400;
        c->ps.end_checked = true;
        c->in_parsed += (size_t)used;
        c->ps.fed_last = used ? start[used - 1] : c->ps.fed_last;
        llhttp_resume(&c->ps.llh);
        return 1;
    }
    if (c->ps.status) /* a callback's own verdict (llhttp may report it as its own code) */
        return c->ps.status;
    if (err == HPE_PAUSED_UPGRADE)
        return 400; /* never asked for: on_headers_complete does not return 2 */
    if (err == HPE_INVALID_METHOD && method_is_token(c))
        return 501; /* RFC 9110 9.1: a method we do not know, not a malformed one */
    return 400;     /* llhttp's own errors (a malformed version too: any HTTP/d.d passes it) */
}

/* A chunked body up to its last chunk: llhttp gets what crl__chunk_scan passes (the chunk
 * lines' extensions cut out), and the bytes it skips count as parsed. */
static int feed_chunked(struct crl__http_conn *c, size_t n)
{
    while (n) {
        size_t pass, skip;
        if (crl__chunk_scan(&c->ps.chunk, c->in + c->in_parsed, n, &pass, &skip))
            return 400;
        int rc = pass ? feed_llhttp(c, pass) : 0;
        if (rc)
            return rc;
        c->in_parsed += skip;
        n -= pass + skip;
    }
    return 0;
}

int crl__http_parse_feed(struct crl__http_conn *c, size_t n)
{
    /* One test of a byte for a message without a chunked body (or past its last chunk). */
    if (__builtin_expect(c->ps.chunk.state != CRL__CHUNK_OFF, 0))
        return feed_chunked(c, n);
    return feed_llhttp(c, n);
}
