/* chunk.h - the framing lines of a chunked body (RFC 9112 7.1), checked ahead of llhttp.
 *
 * llhttp 8.1 rejects valid chunk extensions (BWS around ';' and '=', a token value followed
 * by another extension, quoted-pairs) and takes some invalid ones (an empty name or value,
 * DEL in a quoted string). Both the server and the client therefore run a chunked body
 * through crl__chunk_scan before llhttp: it checks each chunk line against RFC 9112 7.1.1's
 * grammar and cuts the extensions (which a recipient MUST ignore when it does not know them:
 * we know none) out of what llhttp is given, so llhttp sees "3\r\n" for "3 ; a = b\r\n". The
 * chunk data passes through without a look at its bytes; after the last chunk's line, all
 * of it (the trailer section is llhttp's). */
#ifndef CRL_HTTP_CHUNK_H
#define CRL_HTTP_CHUNK_H

#include <stddef.h>
#include <stdint.h>

enum {
    CRL__CHUNK_LINE_MAX = 4096, /* a chunk line's bytes, CRLF included: longer ones are 400 */
};

/* Where a chunked body's scan stands; all zero (CRL__CHUNK_OFF) outside one. */
struct crl__chunk {
    uint64_t left; /* the size being read, then the chunk data bytes still to come */
    uint16_t line; /* bytes of the chunk line so far */
    uint8_t state; /* enum crl__chunk_state (chunk.c) */
};

enum { CRL__CHUNK_OFF = 0 };

/* Start the scan of a chunked body (its first chunk line comes next). */
void crl__chunk_start(struct crl__chunk *k);

/* Scan in[0..n) of the body, the bytes after those of the last call: the first *pass bytes
 * go to llhttp as they are, the *skip bytes after them (part of a chunk line's extensions)
 * must not. The bytes after pass + skip are the next call's. Once the last chunk's line is
 * complete the state is CRL__CHUNK_OFF and everything passes. 0, or -1 when the chunked
 * framing is invalid (or a chunk line is longer than CRL__CHUNK_LINE_MAX). */
int crl__chunk_scan(struct crl__chunk *k, const char *in, size_t n, size_t *pass, size_t *skip);

#endif
