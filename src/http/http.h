/* http.h - the HTTP/1.1 server's internals: the connection state machine (conn.c), its llhttp
 * glue (parse.c), the response writer and socket driver (server.c) and the Date cache (date.c).
 *
 * The state machine never touches a socket: it reads and writes through a small transport
 * (struct crl__http_io), which the server backs with timed socket operations and the fuzzer
 * with memory. Headers are slices of the connection's input buffer, which does not move while
 * a handler runs. */
#ifndef CRL_HTTP_HTTP_H
#define CRL_HTTP_HTTP_H

#include "chunk.h"
#include "corral.h"

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How the connection reaches its peer. Deadlines are absolute (CRL_NO_DEADLINE: none). */
struct crl__http_io {
    /* Up to len bytes into buf: > 0, 0 at end of stream, -ETIMEDOUT, or another -errno. */
    ssize_t (*read)(void *ctx, void *buf, size_t len, int64_t deadline_ns);
    /* Some of iov (a short write is fine): bytes written, -ETIMEDOUT or another -errno. */
    ssize_t (*writev)(void *ctx, const struct iovec *iov, int iovcnt, int64_t deadline_ns);
    /* Optional (may be NULL): write out[0..out_len) completely, then read as read() does;
     * the transport may wait for input while the write is still on its way. Returns what
     * the read returns; *write_err is 0 or the write's -errno (-ETIMEDOUT at write_deadline),
     * in which case the read's result means nothing. */
    ssize_t (*write_read)(void *ctx, const void *out, size_t out_len, int64_t write_deadline_ns,
                          void *buf, size_t len, int64_t read_deadline_ns, int *write_err);
    void (*set_idle)(void *ctx, bool idle); /* waiting for the next request (may be NULL) */
    bool (*draining)(void *ctx);            /* the server is stopping (may be NULL) */
    void (*linger)(void *ctx); /* closing with input unread: half-close, drain (may be NULL) */
};

/* Counters of a core, for tests (the public ones, requests and bytes, are the core's
 * struct crl_stats). */
struct crl__http_stats {
    uint64_t reads;  /* transport reads */
    uint64_t writes; /* transport writes (one per flush of the output buffer) */
    uint64_t errors; /* error responses (4xx/5xx made by the server itself) */
};

enum { CRL__HTTP_DATE_LEN = 29 };

/* The Date header's value for the second at hand (date.c). */
struct crl__http_date_cache {
    int64_t until_ns; /* CLOCK_MONOTONIC_COARSE time at which text's second ends (0: none) */
    char text[CRL__HTTP_DATE_LEN + 1];
};

/* The HTTP layer's part of a core: one in every executor (runtime.h), reached through the
 * current-core pointer, so that cores that one thread drives in turn keep theirs apart.
 * Outside a runtime (the fuzzers, the oracle) a thread's own stands in. */
struct crl__http_core {
    struct crl__http_stats stats;
    struct crl__http_date_cache date;
};
/* The calling core's part, or the thread's stand-in outside a runtime. */
struct crl__http_core *crl__http_core(void);

/* One header of the request: offsets and lengths from the start of the message. */
struct crl__http_hdr {
    uint32_t name, name_len, value, value_len;
};

enum crl__res_state { CRL__RES_NONE, CRL__RES_STREAM, CRL__RES_DONE };

struct crl_http_req {
    int version;                 /* 10 or 11 */
    int64_t content_length;      /* -1 chunked, 0 none */
    uint32_t target, target_len; /* in origin form (absolute-form is rewritten in place) */
    uint32_t authority;          /* absolute-form: its authority (NUL-terminated), else 0 */
    uint32_t host_hdr;           /* 1 + the index of the Host header, 0 if none */
    const char *path;            /* NUL-terminated copy made on demand when there is a query */
    size_t nhdrs;
    bool keep_alive;    /* as the request asked (version and Connection) */
    bool expect_100;    /* Expect: 100-continue */
    bool continue_sent; /* "100 Continue" went out (or was not needed) */
    bool body_done;     /* the message's end has been parsed */
    int body_err;       /* sticky error of the body: -EMSGSIZE, -EPROTO, -ETIMEDOUT, ... */
    uint64_t body_seen; /* body bytes parsed so far */
    int64_t body_deadline_ns;
};

struct crl_http_res {
    enum crl__res_state state;
    bool chunked;   /* a streamed 1.1 response */
    bool head_only; /* HEAD request, or a status without a body */
    bool close;     /* the handler asked for Connection: close */
    char *hdrs;     /* the handler's extra header lines, "Name: value\r\n"... */
    size_t hdrs_len, hdrs_cap;
};

/* Where parse callbacks put what they find; reset per message from `sink` on (llhttp's own
 * state carries over: it resets itself between messages). */
struct crl__http_parse {
    llhttp_t llh;
    char *sink; /* the first field reset per message; body bytes go here (NULL: discarded) */
    size_t sink_len;
    uint32_t line_end;           /* offset just past the version (the request line's length) */
    bool line_done;              /* the request line is complete */
    bool head_done;              /* on_headers_complete ran */
    bool msg_done;               /* on_message_complete ran */
    bool in_value;               /* the last header piece was a value */
    bool folded;                 /* a value continued on another line (obs-fold) */
    bool t_in_value;             /* a trailer's value has begun */
    bool t_at_end;               /* the last trailer value piece ended with the bytes fed */
    bool t_named;                /* the trailer line has a name (not ": value") */
    char fed_last;               /* the last byte of the previous feed */
    const char *feed, *feed_end; /* the bytes being fed */
    uint8_t hosts, cls;          /* Host and Content-Length headers seen */
    bool te;                     /* Transfer-Encoding seen */
    bool te_chunked;             /* its last coding so far is chunked */
    bool te_other;               /* it lists a coding other than chunked */
    bool end_checked;            /* the head's end was checked for CRLF CRLF */
    struct crl__chunk chunk;     /* a chunked body's chunk lines (chunk.h), until the last */
    int status; /* the error status a callback chose (400, 413, 414, 431, 501, 503, 505) */
};

/* The connection's first buffers live inside it (and it lives in its task's frame): a
 * keep-alive request then touches the task's stack and nothing else of the heap, which
 * matters with hundreds of connections per core (cache and TLB misses). They are small and
 * ordered by how early a request touches them, so that a small request's working set (the
 * frames below, the fields, the first headers, the response, the request) spans two pages;
 * they move to the heap only when a request outgrows them. */
enum {
    CRL__HTTP_IN_INLINE = 2048,
    CRL__HTTP_OUT_INLINE = 2048,
    CRL__HTTP_HDRS_INLINE = 32, /* more (up to max_headers) move to the heap */
};

struct crl__http_conn {
    const struct crl__http_io *io;
    void *io_ctx;
    struct crl_stats *stats;    /* the serving core's counters (a dummy without a runtime) */
    struct crl__http_core *hc;  /* the serving core's HTTP part (crl__http_core()) */
    struct crl_http_limits lim; /* defaults filled in */
    crl_http_handler_fn *handler;
    void *ctx;

    char *in;                   /* input buffer */
    size_t in_cap;              /* its size; grows up to in_max while a head is read */
    size_t in_max;              /* request line + headers limit, plus slack */
    size_t in_len;              /* bytes in it */
    size_t in_parsed;           /* bytes handed to the parser */
    size_t msg;                 /* where the current message starts */
    size_t head_end;            /* where its body starts */
    struct crl__http_hdr *hdrs; /* hdrs_cap entries, up to lim.max_headers */
    size_t hdrs_cap;

    char *out; /* output buffer: responses waiting for a flush */
    size_t out_len, out_cap;
    int write_err; /* sticky: the peer is gone or too slow */
    int64_t write_deadline_ns;

    char *scratch; /* the request path copy */
    size_t scratch_cap;
    char *body; /* crl_http_req_body's buffer, kept for the next request */
    size_t body_cap;

    int body_status;             /* the status a body error calls for (413, 400, 408), 0 if none */
    bool peer_eof;               /* the peer finished sending */
    bool must_close;             /* this response is the connection's last */
    bool upgrade;                /* the parser saw an upgrade: stop after this message */
    bool linger;                 /* close with input unread: half-close and drain first */
    bool is_head;                /* the request is HEAD */
    struct crl__http_park *park; /* may wait for the next request without a task (or NULL) */
    struct crl__http_parse ps;
    struct crl_http_req req;
    struct crl_http_res res;
    struct crl__http_hdr hdrs_inline[CRL__HTTP_HDRS_INLINE]; /* the first of these */
    char out_inline[CRL__HTTP_OUT_INLINE];
    char in_inline[CRL__HTTP_IN_INLINE];
};

#define CRL__HTTP_CONN_OF_REQ(r) crl__container_of((r), struct crl__http_conn, req)
#define CRL__HTTP_CONN_OF_RES(r) crl__container_of((r), struct crl__http_conn, res)
#ifndef crl__container_of
#define crl__container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif

/* A connection that may wait for its next request without a task (crl_serve's
 * CRL_CONN_WHEN_READABLE): between requests, once every byte received is parsed and every
 * response written, the state machine returns instead of reading, and is served again from
 * a fresh crl__http_conn when the socket is readable. Nothing of it is kept in between. */
struct crl__http_park {
    bool resumed;        /* in: this call follows a wait (the socket is readable) */
    bool first;          /* in: no request yet on the connection; out, when it parked: still */
    int64_t deadline_ns; /* out, when it parked: the wait's deadline (idle or header timeout) */
};

/* conn.c: serve one connection until it closes, with *c (uninitialized storage of the
 * caller's, usually in its frame next to io_ctx's: see above) as its state. Returns 0 or a
 * negative errno (transport). */
int crl__http_conn_serve(struct crl__http_conn *c, const struct crl__http_io *io, void *io_ctx,
                         const struct crl_http_limits *lim, crl_http_handler_fn *handler,
                         void *ctx);
/* The same, parking between requests when park is not NULL: then 1 when it parked (the
 * connection stays open), else as crl__http_conn_serve. */
int crl__http_conn_serve_parked(struct crl__http_conn *c, const struct crl__http_io *io,
                                void *io_ctx, const struct crl_http_limits *lim,
                                crl_http_handler_fn *handler, void *ctx,
                                struct crl__http_park *park);
/* Limits with every zero field replaced by its default. */
void crl__http_limits_resolve(struct crl_http_limits *out, const struct crl_http_limits *in);
/* How a response's body is delimited. */
enum crl__http_framing {
    CRL__FRAME_NONE,    /* no body at all (1xx, 204, 304) */
    CRL__FRAME_LENGTH,  /* Content-Length */
    CRL__FRAME_CHUNKED, /* Transfer-Encoding: chunked */
    CRL__FRAME_CLOSE,   /* until the connection closes (a streamed 1.0 response) */
};
/* Put a response head into the output buffer: status line, Date, Content-Type (if not NULL),
 * the framing header, the handler's headers and Connection. 0 or a negative errno. */
int crl__http_head(struct crl__http_conn *c, int status, const char *content_type,
                   enum crl__http_framing framing, uint64_t len);
/* Write the output buffer and then extra[0..n) completely; 0 or the (sticky) write error. */
int crl__http_flush(struct crl__http_conn *c, const struct iovec *extra, int n);
/* Room for n more bytes at the end of the output buffer (flushing or growing it). 0 or a
 * negative errno. The test of the room there is inline: whether LTO inlines the call into
 * crl__http_head changed with unrelated code, by 18 instructions a request. */
int crl__http_out_make_room(struct crl__http_conn *c, size_t n);
static inline int crl__http_out_reserve(struct crl__http_conn *c, size_t n)
{
    return c->out_len + n <= c->out_cap ? 0 : crl__http_out_make_room(c, n);
}
/* Grow buffer *buf (of *cap bytes, keep of them in use; it may be the connection's inline
 * array inline_buf) to n bytes. 0 or -ENOMEM (then *buf is unchanged). */
int crl__http_grow(char **buf, size_t *cap, const char *inline_buf, size_t keep, size_t n);
/* Move the header index from the inline array to the heap, with room for max_headers. 0 or
 * -ENOMEM. */
int crl__http_hdrs_grow(struct crl__http_conn *c);
/* Parse up to len bytes of the body into buf (NULL: discard). > 0, 0 at its end, -errno. */
ssize_t crl__http_body_read(struct crl__http_conn *c, void *buf, size_t len);
/* The server's own response for status, closing after it. */
void crl__http_send_error(struct crl__http_conn *c, int status);

/* parse.c */
void crl__http_parse_init(struct crl__http_conn *c);
void crl__http_parse_begin(struct crl__http_conn *c); /* a new message starts at c->msg */
/* Feed llhttp n bytes at c->in + c->in_parsed, advancing in_parsed past what it took (and
 * past the chunk extensions it is not given, in a chunked body).
 * Returns 0 (all taken), 1 (paused: head or message done) or an error status (400...). */
int crl__http_parse_feed(struct crl__http_conn *c, size_t n);
/* A header's name or value as a NUL-terminated string. */
static inline const char *crl__http_at(const struct crl__http_conn *c, uint32_t off)
{
    return c->in + c->msg + off;
}

/* server.c: serve HTTP on connected socket fd (not closed here); conn may be NULL (a test's
 * own accept loop). Returns 0 or a negative errno. */
int crl__http_serve_fd(int fd, struct crl_conn *conn, const struct crl_http_limits *lim,
                       crl_http_handler_fn *handler, void *ctx);
/* conn.c: how long a connection that may park waits for its next request in its task before
 * it parks (<= 0: at once). */
extern int64_t crl__http_park_after_ns;
/* server.c: how long a connection closing with input unread drains it: in all, and for each
 * read (nginx's lingering_time and lingering_timeout). Variables only so that tests can
 * shorten them. */
extern int64_t crl__http_linger_ns, crl__http_linger_read_ns;
/* server.c: reason phrases */
struct crl__http_reason {
    const char *text; /* "" for a status without one here */
    size_t len;
};
struct crl__http_reason crl__http_reason(int status);

/* date.c: the current "Date" value, "Sun, 06 Nov 1994 08:49:37 GMT" (29 bytes, NUL
 * terminated), formatted into cache at most once a second; now_ns is crl__now_coarse_ns(). */
const char *crl__http_date(struct crl__http_date_cache *cache, int64_t now_ns);

#endif
