/* net.h - the net layer's internals. The layer sits on io (and smp, through corral.h's
 * cross-core calls): socket helpers (socket.c: "HOST:PORT" addresses, TCP/UDP/Unix sockets,
 * options), name resolution (resolve.c), listeners with a standing accept (listener.c) and
 * crl_serve (serve.c). Nothing below it includes this header.
 *
 * Name resolution's internals: the hook tests use to stand in for getaddrinfo (a slow
 * resolver, a counter of lookups) and the host:port syntax shared with the HTTP client,
 * which checks an address when it is opened and resolves it when it dials. */
#ifndef CRL_NET_NET_H
#define CRL_NET_NET_H

#include "../io/io.h"

#include <stdatomic.h>

/* A lookup of host and port (checked already): up to max addresses into addrs and lens, in
 * order; returns how many (>= 1) or a negative errno, as crl_resolve documents. */
typedef int crl__resolve_fn(const char *host, const char *port, struct sockaddr_storage *addrs,
                            socklen_t *lens, size_t max);

/* Tests: called instead of the getaddrinfo lookup when set (on a pool thread, or on the
 * caller's thread outside a task). Set it before the lookups it should see. */
extern crl__resolve_fn *crl__resolve_hook;

/* Lookups allocated and not yet freed (a cancelled one is freed when its result comes). */
extern atomic_long crl__resolve_jobs_live;

/* Split "NAME:PORT" (a host name of letters, digits, '-', '.', '_', at most 253 of them, and
 * a decimal port 0..65535) into host (>= 254 bytes) and port (>= 6 bytes): 0 or -EINVAL. */
int crl__split_host_port(const char *host_port, char *host, char *port);

#endif
