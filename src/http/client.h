/* client.h - the HTTP client's one seam for tests and the fuzzer: a connection handed in
 * instead of dialled, so the client's own read and parse path can be driven from a
 * socketpair whose other end holds a scripted (or fuzzed) answer. */
#ifndef CRL_HTTP_CLIENT_H
#define CRL_HTTP_CLIENT_H

#include "corral.h"

/* Make fd (connected, non-blocking, nothing yet read from or written to it) c's connection,
 * as if just dialled: the next request goes on it without the idle check; c closes it. Any
 * connection c had is closed. Not blocking; no request may be in progress. */
void crl__http_client_adopt(struct crl_http_client *c, int fd);

/* For the per-core pool (fetch.c): the client's "HOST:PORT", and whether it holds a
 * connection kept alive after its last response (worth keeping for the next request). */
const char *crl__http_client_host(const struct crl_http_client *c);
bool crl__http_client_kept(const struct crl_http_client *c);

#endif
