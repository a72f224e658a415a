/* static.c - static files for corral-httpd: URL path decoding, opening beneath the root
 * (openat2 RESOLVE_BENEATH, or a component walk refusing symlinks), Content-Types, ETag and
 * HTTP dates, conditional requests and single byte ranges. No runtime calls here. */
#define _GNU_SOURCE
#include "static.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- URL paths -------------------------------------------------------------------------- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A path segment may not be empty, "." or "..". */
static bool segment_ok(const char *s, size_t len)
{
    if (len == 0)
        return false;
    return !(s[0] == '.' && (len == 1 || (len == 2 && s[1] == '.')));
}

int crl__static_decode(const char *raw, char *out, size_t cap)
{
    size_t n = 0, seg = 0; /* seg: where the current segment starts in out */
    for (const char *p = raw; *p; p++) {
        char c = *p;
        if (c == '/') {
            if (!segment_ok(out + seg, n - seg))
                return -ENOENT;
            seg = n + 1;
        } else if (c == '%') {
            int hi = hex_value(p[1]);
            int lo = hi < 0 ? -1 : hex_value(p[2]);
            if (lo < 0)
                return -EINVAL;
            c = (char)(hi << 4 | lo);
            if (c == '\0' || c == '/') /* a NUL or a separator hidden inside a segment */
                return -ENOENT;
            p += 2;
        }
        if (n + 1 >= cap)
            return -ENAMETOOLONG;
        out[n++] = c;
    }
    /* The last segment may be empty only after a '/' (a directory), or as the whole path. */
    if (n > seg && !segment_ok(out + seg, n - seg))
        return -ENOENT;
    if (cap == 0)
        return -ENAMETOOLONG;
    out[n] = '\0';
    return (int)n;
}

/* ---- Opening beneath the root ----------------------------------------------------------- */

/* O_NONBLOCK only while opening, so that a FIFO planted under the root cannot block us. */
#define OPEN_FLAGS (O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)

typedef int open_at_fn(int dirfd, const char *path); /* an fd or -errno */

/* Failures of a lookup are "nothing to serve", except a lack of resources. */
static int lookup_error(int rc)
{
    switch (rc) {
    case -EMFILE:
    case -ENFILE:
    case -ENOMEM:
    case -EIO: return rc;
    default: return -ENOENT;
    }
}

static int open_beneath(int dirfd, const char *path)
{
    struct open_how how = {
        .flags = OPEN_FLAGS,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    return fd < 0 ? -errno : (int)fd;
}

static int open_nofollow(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, OPEN_FLAGS | O_NOFOLLOW);
    return fd < 0 ? -errno : fd;
}

static int stat_or_close(int fd, struct stat *st)
{
    if (fstat(fd, st) == 0)
        return 0;
    int rc = -errno;
    close(fd);
    return rc;
}

/* fd was opened from the request's path: make it the file to serve (a directory gives its
 * index.html, opened with open_at), or refuse it. Consumes fd. */
static int finish_open(int fd, open_at_fn *open_at, struct crl__static_file *f)
{
    struct stat st;
    int rc = stat_or_close(fd, &st);
    if (rc)
        return rc;
    bool dir = S_ISDIR(st.st_mode);
    if (dir) {
        int index = open_at(fd, "index.html");
        close(fd);
        if (index < 0)
            return lookup_error(index);
        fd = index;
        if ((rc = stat_or_close(fd, &st)) != 0)
            return rc;
    }
    /* Back to blocking: io_uring hands -EAGAIN back for an O_NONBLOCK file not in cache. */
    if (!S_ISREG(st.st_mode) || fcntl(fd, F_SETFL, O_RDONLY) != 0) {
        close(fd);
        return -ENOENT;
    }
    *f = (struct crl__static_file){.fd = fd, .st = st, .dir = dir};
    return 0;
}

int crl__static_open_walk(int rootfd, const char *rel, struct crl__static_file *f)
{
    int fd = openat(rootfd, ".", OPEN_FLAGS | O_DIRECTORY);
    if (fd < 0)
        return lookup_error(-errno);
    for (const char *p = rel; *p;) {
        const char *end = strchrnul(p, '/');
        size_t len = (size_t)(end - p);
        char name[NAME_MAX + 1];
        if (len > NAME_MAX || !segment_ok(p, len)) {
            close(fd);
            return -ENOENT;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        /* A component followed by '/' must be a directory; no component may be a symlink. */
        int next = openat(fd, name, OPEN_FLAGS | O_NOFOLLOW | (*end ? O_DIRECTORY : 0));
        int rc = next < 0 ? -errno : 0;
        close(fd);
        if (rc)
            return lookup_error(rc);
        fd = next;
        p = *end ? end + 1 : end;
    }
    return finish_open(fd, open_nofollow, f);
}

static atomic_bool no_openat2; /* set once openat2 proved missing (ENOSYS) */

int crl__static_open(int rootfd, const char *rel, struct crl__static_file *f)
{
    if (atomic_load_explicit(&no_openat2, memory_order_relaxed))
        return crl__static_open_walk(rootfd, rel, f);
    int fd = open_beneath(rootfd, rel[0] ? rel : ".");
    if (fd == -ENOSYS) {
        atomic_store_explicit(&no_openat2, true, memory_order_relaxed);
        return crl__static_open_walk(rootfd, rel, f);
    }
    if (fd < 0)
        return lookup_error(fd);
    return finish_open(fd, open_beneath, f);
}

/* ---- Content types ---------------------------------------------------------------------- */

static const struct {
    const char *ext, *type;
} mime_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"svg", "image/svg+xml"},
    {"ico", "image/x-icon"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
};

const char *crl__static_mime(const char *name)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strrchr(base, '.');
    if (dot && dot != base) { /* ".profile" has no extension */
        for (size_t i = 0; i < sizeof mime_types / sizeof mime_types[0]; i++)
            if (strcasecmp(dot + 1, mime_types[i].ext) == 0)
                return mime_types[i].type;
    }
    return "application/octet-stream";
}

/* ---- Validators and dates --------------------------------------------------------------- */

static const char weekdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

size_t crl__static_etag(const struct stat *st, char *out, size_t cap)
{
    int n = snprintf(out, cap, "\"%" PRIx64 ".%lx-%" PRIx64 "\"", (uint64_t)st->st_mtim.tv_sec,
                     (unsigned long)st->st_mtim.tv_nsec, (uint64_t)st->st_size);
    return n < 0 ? 0 : (size_t)n;
}

int crl__static_http_date(time_t t, char *out, size_t cap)
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900 || cap < 30)
        return -EINVAL;
    return snprintf(out, cap, "%s, %02d %s %04d %02d:%02d:%02d GMT", weekdays[tm.tm_wday],
                    tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                    tm.tm_sec);
}

static int month_index(const char *name)
{
    for (int i = 0; i < 12; i++)
        if (strcmp(name, months[i]) == 0)
            return i;
    return -1;
}

/* The three forms of RFC 9110 5.6.7; each sscanf must consume the whole string (%n). */
static bool scan_date(const char *s, struct tm *tm, char mon[4])
{
    char wday[10];
    int n = -1;
    sscanf(s, "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d GMT%n", wday, &tm->tm_mday, mon,
           &tm->tm_year, &tm->tm_hour, &tm->tm_min, &tm->tm_sec, &n);
    if (n > 0 && s[n] == '\0')
        return true;
    sscanf(s, "%9[A-Za-z], %2d-%3[A-Za-z]-%2d %2d:%2d:%2d GMT%n", wday, &tm->tm_mday, mon,
           &tm->tm_year, &tm->tm_hour, &tm->tm_min, &tm->tm_sec, &n);
    if (n > 0 && s[n] == '\0') {
        tm->tm_year += tm->tm_year < 70 ? 2000 : 1900; /* RFC 850's two-digit year */
        return true;
    }
    sscanf(s, "%3[A-Za-z] %3[A-Za-z] %2d %2d:%2d:%2d %4d%n", wday, mon, &tm->tm_mday, &tm->tm_hour,
           &tm->tm_min, &tm->tm_sec, &tm->tm_year, &n);
    return n > 0 && s[n] == '\0';
}

int crl__static_parse_date(const char *s, time_t *t)
{
    struct tm tm = {0};
    char mon[4] = "";
    if (!s || !scan_date(s, &tm, mon))
        return -EINVAL;
    tm.tm_mon = month_index(mon);
    if (tm.tm_mon < 0 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_year < 1900 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_hour < 0 || tm.tm_min < 0 ||
        tm.tm_sec < 0)
        return -EINVAL;
    tm.tm_year -= 1900;
    *t = timegm(&tm);
    return 0;
}

static const char *skip_ows(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* The next entity tag of a list at *p (separators skipped): its opaque part, quotes
 * included, in *tag and *len, W/ (weak) in *weak. False at the end or at a malformed tag. */
static bool next_etag(const char **p, const char **tag, size_t *len, bool *weak)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t' || *s == ',')
        s++;
    *weak = strncmp(s, "W/", 2) == 0;
    if (*weak)
        s += 2;
    const char *end = *s == '"' ? strchr(s + 1, '"') : NULL;
    if (!end)
        return false;
    *tag = s;
    *len = (size_t)(end + 1 - s);
    *p = end + 1;
    return true;
}

/* Whether list ("*" or entity tags) matches etag: by the weak comparison, or the strong one
 * (neither tag weak). */
static bool list_match(const char *list, const char *etag, bool strong)
{
    const char *p = skip_ows(list);
    if (p[0] == '*' && *skip_ows(p + 1) == '\0')
        return true;
    const char *ours, *tag;
    size_t ours_len, len;
    bool weak, ours_weak;
    if (!next_etag(&etag, &ours, &ours_len, &ours_weak))
        return false;
    while (next_etag(&p, &tag, &len, &weak))
        if (len == ours_len && memcmp(tag, ours, len) == 0 && !(strong && (weak || ours_weak)))
            return true;
    return false;
}

bool crl__static_etag_match(const char *list, const char *etag)
{
    return list_match(list, etag, false);
}

bool crl__static_precondition_failed(const char *if_match, const char *if_unmodified_since,
                                     const char *etag, time_t mtime)
{
    if (if_match)
        return !list_match(if_match, etag, true);
    time_t t;
    return if_unmodified_since && crl__static_parse_date(if_unmodified_since, &t) == 0 && mtime > t;
}

bool crl__static_not_modified(const char *if_none_match, const char *if_modified_since,
                              const char *etag, time_t mtime)
{
    if (if_none_match)
        return crl__static_etag_match(if_none_match, etag);
    time_t since;
    return if_modified_since && crl__static_parse_date(if_modified_since, &since) == 0 &&
           mtime <= since;
}

bool crl__static_if_range(const char *if_range, const char *etag, time_t mtime)
{
    if (!if_range)
        return true;
    const char *p = skip_ows(if_range);
    if (p[0] == '"' || strncmp(p, "W/", 2) == 0)
        return p[0] == '"' && etag[0] == '"' && strcmp(p, etag) == 0; /* strong comparison */
    time_t t;
    return crl__static_parse_date(p, &t) == 0 && t == mtime;
}

/* ---- Ranges ----------------------------------------------------------------------------- */

/* 1*DIGIT at *p, saturating at INT64_MAX (a position past any file). */
static bool parse_pos(const char **p, int64_t *v)
{
    const char *s = *p;
    if (*s < '0' || *s > '9')
        return false;
    int64_t x = 0;
    for (; *s >= '0' && *s <= '9'; s++)
        x = x > (INT64_MAX - 9) / 10 ? INT64_MAX : x * 10 + (*s - '0');
    *p = s;
    *v = x;
    return true;
}

enum crl__range crl__static_range(const char *header, int64_t size, int64_t *offset, int64_t *len)
{
    if (!header || strncasecmp(header, "bytes=", 6) != 0)
        return CRL__RANGE_NONE;
    const char *p = skip_ows(header + 6);
    int64_t first = -1, last = -1;
    if (*p == '-') { /* suffix: the last n bytes */
        p++;
        if (!parse_pos(&p, &last))
            return CRL__RANGE_NONE;
    } else {
        if (!parse_pos(&p, &first) || *p != '-')
            return CRL__RANGE_NONE;
        p++;
        if (*p >= '0' && *p <= '9')
            parse_pos(&p, &last);
    }
    if (*skip_ows(p) != '\0') /* several ranges, or junk: ignore the header */
        return CRL__RANGE_NONE;
    if (first < 0) {
        if (last == 0 || size == 0)
            return CRL__RANGE_UNSATISFIABLE;
        *len = last < size ? last : size;
        *offset = size - *len;
        return CRL__RANGE_PARTIAL;
    }
    if (last >= 0 && last < first)
        return CRL__RANGE_NONE; /* invalid, so ignored */
    if (first >= size)
        return CRL__RANGE_UNSATISFIABLE;
    if (last < 0 || last >= size)
        last = size - 1;
    *offset = first;
    *len = last - first + 1;
    return CRL__RANGE_PARTIAL;
}
