/* frame_oracle.c - corral's side of the differential framing test (tests/http/diff_h11.py):
 * request streams from stdin through the HTTP connection state machine over the memory
 * transport, and for each stream a report of what it accepted and where it stopped.
 *
 * Input, repeated: "<length> <piece>\n" and then <length> bytes (the stream, handed to the
 * connection in reads of at most <piece> bytes, then end of stream). Output per stream:
 *   M <method> <target-hex> <version> <body-hex> <close>   a request read to its end
 *   E <end> <status> <pending>                             how the stream ended, where end is
 *     reject     the server answered <status> itself (a bad head or body)
 *     truncated  the stream ended inside a body
 *     closed     the last response closed the connection (keep-alive off, upgrade ...)
 *     eof        the stream ended; <pending> bytes of an unfinished head were left
 * Hex fields are "-" when empty. */
#define _GNU_SOURCE
#include "mem_io.h"

#include <stdio.h>

enum { MAX_BODY = 65536 };

struct record {
    FILE *out;
    bool closed;  /* the last response closes the connection */
    int body_err; /* the last body read's error, 0 if none */
};

static void put_hex(FILE *f, const void *p, size_t n)
{
    const unsigned char *s = p;
    if (n == 0)
        fputc('-', f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", s[i]);
}

static int record_handler(crl_http_req *req, crl_http_res *res, void *ctx)
{
    struct record *r = ctx;
    static char body[MAX_BODY + 1]; /* room for the read that finds the end */
    size_t len = 0;
    ssize_t n;
    while ((n = crl_http_req_read(req, body + len, sizeof body - len)) > 0)
        len += (size_t)n;
    if (n < 0) {
        r->body_err = (int)n;
        return (int)n; /* the server answers for the body */
    }
    const char *target = crl_http_req_target(req);
    fprintf(r->out, "M %s ", crl_http_req_method(req));
    put_hex(r->out, target, strlen(target));
    fprintf(r->out, " %d ", crl_http_req_version(req));
    put_hex(r->out, body, len);
    int rc = crl_http_res_send(res, 200, NULL, NULL, 0);
    r->closed = CRL__HTTP_CONN_OF_RES(res)->must_close;
    fprintf(r->out, " %d\n", r->closed);
    return rc;
}

/* The status of the last response in out (0 if none). */
static int last_status(const char *out)
{
    const char *last = NULL;
    for (const char *p = out; (p = strstr(p, "HTTP/1.1 ")) != NULL; p++)
        last = p;
    return last ? atoi(last + 9) : 0;
}

static void run_stream(const char *data, size_t len, size_t piece, FILE *out)
{
    static struct crl__http_conn conn;
    const char *pieces[65];
    struct mem_io m = {.pieces = pieces};
    size_t n = 0;
    for (size_t off = 0; off < len; n++) {
        size_t left = len - off, take = n == 63 || left < piece ? left : piece;
        pieces[n] = data + off;
        m.lens[n] = take;
        off += take;
    }
    pieces[n] = NULL;
    struct record r = {.out = out};
    struct crl_http_limits lim = {.max_body = MAX_BODY};
    uint64_t errors = crl__http_core()->stats.errors;
    crl__http_conn_serve(&conn, &mem_transport, &m, &lim, record_handler, &r);
    if (!m.out)
        m.out = calloc(1, 1);
    if (r.body_err == -ECONNRESET)
        fprintf(out, "E truncated 0 0\n");
    else if (crl__http_core()->stats.errors != errors)
        fprintf(out, "E reject %d 0\n", last_status(m.out));
    else if (r.closed)
        fprintf(out, "E closed 0 0\n");
    else /* the fields survive the connection's end; its buffers do not */
        fprintf(out, "E eof 0 %zu\n", conn.in_len - conn.msg);
    mem_free(&m);
}

int main(void)
{
    size_t len, piece, cap = 0;
    char *buf = NULL;
    while (scanf("%zu %zu", &len, &piece) == 2 && getchar() == '\n') {
        if (len > cap && !(buf = realloc(buf, cap = len)))
            return 1;
        if (fread(buf, 1, len, stdin) != len)
            return 1;
        run_stream(buf, len, piece ? piece : 1, stdout);
    }
    free(buf);
    return 0;
}
