/* fuzz_conn.c - libFuzzer target: arbitrary bytes, cut into reads, through the HTTP
 * connection state machine in memory (no sockets, no runtime). The handler reads the body
 * and echoes it, streams, or buffers it, as the target's first letter says, so the parser,
 * the limits, the body paths and the response writer all see hostile input.
 * Build: -Dfuzz=true with clang (tests/http/meson.build); run: scripts/test.sh fuzz. */
#define _GNU_SOURCE
#include "mem_io.h"

#include <stdint.h>

static int fuzz_handler(crl_http_req *req, crl_http_res *res, void *ctx)
{
    (void)ctx;
    const char *path = crl_http_req_path(req), *q = crl_http_req_query(req), *name, *value;
    for (size_t i = 0; i < crl_http_req_header_count(req); i++) {
        crl_http_req_header_at(req, i, &name, &value);
        if (strlen(name) == 0 || !value) /* names are never empty; values never NULL */
            __builtin_trap();
    }
    crl_http_req_header(req, "x-echo");
    if (path[0] && path[1] == 'b') { /* the whole body at once */
        const void *body;
        ssize_t n = crl_http_req_body(req, &body);
        return n < 0 ? (int)n : crl_http_res_send(res, 200, "text/plain", body, (size_t)n);
    }
    char buf[700];
    ssize_t n, total = 0;
    if (path[0] && path[1] == 's') { /* streamed back, chunk by chunk */
        crl_http_res_start(res, 200, q ? q : "text/plain");
        while ((n = crl_http_req_read(req, buf, sizeof buf)) > 0)
            crl_http_res_write(res, buf, (size_t)n);
        return n < 0 ? (int)n : crl_http_res_end(res);
    }
    while ((n = crl_http_req_read(req, buf + total, sizeof buf - (size_t)total)) > 0)
        if ((total += n) == (ssize_t)sizeof buf)
            total = 0;
    if (n < 0)
        return (int)n;
    crl_http_res_header(res, "X-Path", path);
    return crl_http_res_send(res, 200, NULL, buf, (size_t)total);
}

enum { MAX_PIECES = 64 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* The first byte sets the read size and, in its top bit, the transport's kind. */
    size_t piece = (size_t)(data[0] & 0x7f) + 1;
    const char *pieces[MAX_PIECES + 1];
    struct mem_io m = {.pieces = pieces, .write_read = data[0] & 0x80};
    data++, size--;
    size_t n = 0;
    for (size_t off = 0; off < size && n < MAX_PIECES; n++) {
        size_t len = n == MAX_PIECES - 1 || size - off < piece ? size - off : piece;
        pieces[n] = (const char *)data + off;
        m.lens[n] = len;
        off += len;
    }
    pieces[n] = NULL;
    struct crl_http_limits lim = {
        .max_request_line = 200, .max_header_bytes = 400, .max_headers = 8, .max_body = 3000};
    mem_serve(&m, &lim, fuzz_handler, NULL);
    mem_free(&m);
    return 0;
}
