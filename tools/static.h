/* static.h - the static-file half of corral-httpd: turning a URL path into a file opened
 * beneath the document root (never outside it), its Content-Type, its validators (ETag,
 * Last-Modified and the conditional headers that use them) and byte ranges. Plain C with no
 * runtime calls, so that it can be unit-tested on its own; opening blocks on the disk and is
 * meant to run through crl_offload. */
#ifndef CORRAL_HTTPD_STATIC_H
#define CORRAL_HTTPD_STATIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

/* Percent-decode raw, a URL path below the route's prefix (e.g. "css/site.css"), into out
 * (cap bytes, NUL-terminated) as a relative path: segments separated by '/', none of them
 * empty (a final '/' is kept: it names a directory), ".", or "..", none holding a NUL or a
 * '/' that came from %00 or %2F. "" stays "" (the root). Returns the length, -ENOENT for a
 * path refused (an escape attempt or an impossible name), -EINVAL for a malformed %-escape,
 * -ENAMETOOLONG when it does not fit. */
int crl__static_decode(const char *raw, char *out, size_t cap);

/* A file opened to be served. */
struct crl__static_file {
    int fd;         /* a regular file, read-only, close-on-exec, blocking */
    struct stat st; /* its fstat */
    bool dir;       /* the path named a directory, and fd is that directory's index.html */
};

/* Open rel (as made by crl__static_decode) beneath the directory rootfd: with openat2 and
 * RESOLVE_BENEATH where the kernel has it (symlinks may point anywhere inside the root),
 * else crl__static_open_walk. A directory gives its index.html. Returns 0 and fills *f, or
 * -ENOENT when there is nothing to serve (missing, outside the root, not a regular file, no
 * index), or another -errno (-EMFILE, -ENOMEM, ...). Blocks on the disk. */
int crl__static_open(int rootfd, const char *rel, struct crl__static_file *f);

/* The fallback of crl__static_open: a walk one component at a time with O_NOFOLLOW, which
 * refuses every symlink (stricter than openat2). Same contract. */
int crl__static_open_walk(int rootfd, const char *rel, struct crl__static_file *f);

/* The Content-Type for a file name, chosen by its extension (case-insensitive);
 * "application/octet-stream" for anything unknown. A static string. */
const char *crl__static_mime(const char *name);

/* The strong ETag of a file, from its size and modification time, quoted, into out (cap >= 48
 * bytes). Returns its length. */
size_t crl__static_etag(const struct stat *st, char *out, size_t cap);

/* t as an HTTP date (IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT") into out (cap >= 30).
 * Returns its length (29), or -EINVAL when t cannot be written so. */
int crl__static_http_date(time_t t, char *out, size_t cap);

/* Parse an HTTP date in any of its three forms (IMF-fixdate, RFC 850, asctime) into *t.
 * Returns 0 or -EINVAL. */
int crl__static_parse_date(const char *s, time_t *t);

/* True when the If-None-Match value list ("*" or a list of entity tags) matches etag by the
 * weak comparison. A malformed list matches nothing past the fault. */
bool crl__static_etag_match(const char *list, const char *etag);

/* True when the request fails with 412 Precondition Failed (RFC 9110 13.1.1, 13.1.4): an
 * If-Match ("*" or entity tags) that does not match etag by the strong comparison, or
 * without If-Match, an If-Unmodified-Since that is a valid date earlier than mtime. Either
 * header may be NULL. */
bool crl__static_precondition_failed(const char *if_match, const char *if_unmodified_since,
                                     const char *etag, time_t mtime);

/* True when a GET or HEAD for a file with this etag and mtime is answered 304 Not Modified:
 * If-None-Match when present (If-Modified-Since is then ignored), else If-Modified-Since
 * when it is a valid date no earlier than mtime. Either header may be NULL. */
bool crl__static_not_modified(const char *if_none_match, const char *if_modified_since,
                              const char *etag, time_t mtime);

/* True when a Range header is to be honoured given If-Range (may be NULL): an entity tag
 * matching etag strongly, or a date equal to mtime. */
bool crl__static_if_range(const char *if_range, const char *etag, time_t mtime);

enum crl__range {
    CRL__RANGE_NONE,          /* no usable Range (absent, malformed, other unit, several) */
    CRL__RANGE_PARTIAL,       /* one satisfiable range: 206 */
    CRL__RANGE_UNSATISFIABLE, /* one range wholly past the end: 416 */
};

/* Parse a Range header value (may be NULL) for a file of size bytes: one "bytes=a-b",
 * "bytes=a-" or "bytes=-n". On CRL__RANGE_PARTIAL, *offset and *len (>= 1) give the bytes
 * to send, clamped to the file. */
enum crl__range crl__static_range(const char *header, int64_t size, int64_t *offset, int64_t *len);

#endif
