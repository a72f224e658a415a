/* mem_io.h - a transport in memory for the HTTP connection state machine: each read returns
 * the next scripted piece of input (then end of stream, or a timeout), writes are appended to
 * one output string and counted. No sockets and no runtime: tests and the fuzzer use it. */
#ifndef CRL_TEST_HTTP_MEM_IO_H
#define CRL_TEST_HTTP_MEM_IO_H

#include "http/http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct mem_io {
    const char *const *pieces; /* NULL-terminated; each read returns (part of) one */
    size_t lens[64];           /* lengths if set (for NUL bytes), else strlen */
    size_t next, off;
    bool timeout_at_end; /* after the last piece: -ETIMEDOUT instead of end of stream */
    bool write_read;     /* offer the transport's write_read (as the socket server does) */
    char *out;
    size_t out_len, out_cap;
    unsigned writes, reads;
};

static size_t mem_piece_len(struct mem_io *m, size_t i)
{
    return i < 64 && m->lens[i] ? m->lens[i] : strlen(m->pieces[i]);
}

static ssize_t mem_read(void *ctx, void *buf, size_t len, int64_t deadline_ns)
{
    (void)deadline_ns;
    struct mem_io *m = ctx;
    m->reads++;
    if (!m->pieces || !m->pieces[m->next])
        return m->timeout_at_end ? -ETIMEDOUT : 0;
    size_t left = mem_piece_len(m, m->next) - m->off;
    size_t n = left < len ? left : len;
    memcpy(buf, m->pieces[m->next] + m->off, n);
    m->off += n;
    if (m->off == mem_piece_len(m, m->next))
        m->next++, m->off = 0;
    return (ssize_t)n;
}

static ssize_t mem_writev(void *ctx, const struct iovec *iov, int iovcnt, int64_t deadline_ns)
{
    (void)deadline_ns;
    struct mem_io *m = ctx;
    m->writes++;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (m->out_len + iov[i].iov_len + 1 > m->out_cap) {
            size_t cap = (m->out_len + iov[i].iov_len + 1) * 2;
            char *p = realloc(m->out, cap);
            if (!p)
                return -ENOMEM;
            m->out = p, m->out_cap = cap;
        }
        memcpy(m->out + m->out_len, iov[i].iov_base, iov[i].iov_len);
        m->out_len += iov[i].iov_len;
        m->out[m->out_len] = '\0';
        total += iov[i].iov_len;
    }
    return (ssize_t)total;
}

static ssize_t mem_write_read(void *ctx, const void *out, size_t out_len, int64_t write_deadline_ns,
                              void *buf, size_t len, int64_t read_deadline_ns, int *write_err)
{
    struct iovec v = {(void *)out, out_len};
    ssize_t w = mem_writev(ctx, &v, 1, write_deadline_ns);
    *write_err = w < 0 ? (int)w : 0;
    return mem_read(ctx, buf, len, read_deadline_ns);
}

static const struct crl__http_io mem_transport = {.read = mem_read, .writev = mem_writev};
static const struct crl__http_io mem_transport_wr = {
    .read = mem_read, .writev = mem_writev, .write_read = mem_write_read};

/* Serve the scripted input with handler; the output is in m->out (NUL-terminated). */
static inline int mem_serve(struct mem_io *m, const struct crl_http_limits *lim,
                            crl_http_handler_fn *handler, void *ctx)
{
    struct crl__http_conn conn;
    int rc = crl__http_conn_serve(&conn, m->write_read ? &mem_transport_wr : &mem_transport, m, lim,
                                  handler, ctx);
    if (!m->out) {
        m->out = calloc(1, 1);
        m->out_cap = 1;
    }
    return rc;
}

static inline void mem_free(struct mem_io *m) { free(m->out); }

#endif
