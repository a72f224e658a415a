/* corral-httpd's static files (tools/static.c): URL paths decode to relative paths that
 * cannot leave the root, files open beneath the root only (with openat2 and with the
 * component walk), and the Content-Type, validator and Range rules of RFC 9110 hold. */
#define _GNU_SOURCE
#include "../test.h"
#include "static.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- A document root in a temporary directory ------------------------------------------- */

static char tmp[64]; /* tmp/root is the root, tmp/secret.txt lies outside it */
static int rootfd = -1;

static void write_file(const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void make(const char *kind, const char *rel, const char *target)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp, rel);
    if (strcmp(kind, "dir") == 0)
        CHECK_EQ(mkdir(path, 0755), 0);
    else if (strcmp(kind, "fifo") == 0)
        CHECK_EQ(mkfifo(path, 0644), 0);
    else
        CHECK_EQ(symlink(target, path), 0);
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    return remove(path);
}

static void remove_tree(void) { nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

static void make_root(void)
{
    if (rootfd >= 0)
        return;
    strcpy(tmp, "/tmp/corral-static-XXXXXX");
    CHECK(mkdtemp(tmp) != NULL);
    atexit(remove_tree);
    char secret[128];
    snprintf(secret, sizeof secret, "%s/secret.txt", tmp);
    write_file("secret.txt", "outside the root\n");
    make("dir", "root", NULL);
    write_file("root/index.html", "<p>root</p>\n");
    write_file("root/hello.txt", "hello world\n");
    make("dir", "root/sub", NULL);
    write_file("root/sub/index.html", "<p>sub</p>\n");
    make("dir", "root/empty", NULL);
    make("fifo", "root/fifo", NULL);
    make("link", "root/inlink", "hello.txt");
    make("link", "root/sub/uplink", "../hello.txt");
    make("link", "root/outlink", "../secret.txt");
    make("link", "root/abslink", secret);
    make("link", "root/dirout", "..");
    char root[128];
    snprintf(root, sizeof root, "%s/root", tmp);
    rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    CHECK(rootfd >= 0);
}

typedef int opener_fn(int rootfd, const char *rel, struct crl__static_file *f);

static opener_fn *const openers[] = {crl__static_open, crl__static_open_walk};

/* Open rel with opener and return the first bytes of the file in buf (or the error). */
static int open_and_read(opener_fn *opener, const char *rel, char *buf, size_t cap, bool *dir)
{
    struct crl__static_file f = {.fd = -1};
    int rc = opener(rootfd, rel, &f);
    if (rc)
        return rc;
    CHECK_EQ(fcntl(f.fd, F_GETFL) & O_NONBLOCK, 0);
    CHECK(S_ISREG(f.st.st_mode));
    ssize_t n = read(f.fd, buf, cap - 1);
    CHECK(n >= 0);
    CHECK_EQ(n, f.st.st_size);
    buf[n] = '\0';
    *dir = f.dir;
    close(f.fd);
    return 0;
}

/* ---- URL paths -------------------------------------------------------------------------- */

static void check_decode(const char *raw, int want, const char *want_out)
{
    char out[64];
    int rc = crl__static_decode(raw, out, sizeof out);
    if (rc != want)
        test_fail(__FILE__, __LINE__, "decode(\"%s\") = %d, want %d", raw, rc, want);
    if (want >= 0 && strcmp(out, want_out) != 0)
        test_fail(__FILE__, __LINE__, "decode(\"%s\") = \"%s\", want \"%s\"", raw, out, want_out);
}

/* Plain and %-escaped paths decode to the same relative path; a final '/' is kept. */
TEST_PLAIN(decode_keeps_plain_and_escaped_paths)
{
    check_decode("", 0, "");
    check_decode("a/b.txt", 7, "a/b.txt");
    check_decode("a%20b", 3, "a b");
    check_decode("%41%62c", 3, "Abc");
    check_decode("sub/", 4, "sub/");
    check_decode(".hidden/...", 11, ".hidden/...");
}

/* "." and ".." segments (also %-escaped), absolute paths, empty segments, %00 and %2F are
 * refused as not found. */
TEST_PLAIN(decode_refuses_escapes_from_the_root)
{
    const char *bad[] = {"..",        "../x",        "a/../b", "a/..",
                         "%2e%2e/x",  "%2E%2E",      "%2e",    ".",
                         "./a",       "/etc/passwd", "a//b",   "a%2Fb",
                         "a%2fb",     "a%00",        "%00",    "a/%2e%2e/%2e%2e/secret",
                         "sub/%2E%2e"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        check_decode(bad[i], -ENOENT, NULL);
}

/* A '%' not followed by two hex digits is malformed. */
TEST_PLAIN(decode_rejects_malformed_escapes)
{
    check_decode("%", -EINVAL, NULL);
    check_decode("a%4", -EINVAL, NULL);
    check_decode("%zz", -EINVAL, NULL);
    check_decode("a%g0", -EINVAL, NULL);
}

/* A path that does not fit gives -ENAMETOOLONG; one that just fits is decoded. */
TEST_PLAIN(decode_reports_a_path_too_long)
{
    char out[4];
    CHECK_EQ(crl__static_decode("abcd", out, sizeof out), -ENAMETOOLONG);
    CHECK_EQ(crl__static_decode("abc", out, sizeof out), 3);
    CHECK_EQ(crl__static_decode("", out, 0), -ENAMETOOLONG);
}

/* ---- Opening beneath the root ----------------------------------------------------------- */

/* A regular file opens (blocking, read-only) with its stat, by both openers. */
TEST_PLAIN(open_serves_a_regular_file)
{
    make_root();
    for (size_t i = 0; i < 2; i++) {
        char buf[64];
        bool dir = true;
        CHECK_EQ(open_and_read(openers[i], "hello.txt", buf, sizeof buf, &dir), 0);
        CHECK(strcmp(buf, "hello world\n") == 0);
        CHECK(!dir);
    }
}

/* A directory, with or without its final '/', and the root itself give their index.html. */
TEST_PLAIN(open_gives_a_directory_its_index)
{
    make_root();
    for (size_t i = 0; i < 2; i++) {
        char buf[64];
        bool dir = false;
        CHECK_EQ(open_and_read(openers[i], "sub", buf, sizeof buf, &dir), 0);
        CHECK(strcmp(buf, "<p>sub</p>\n") == 0);
        CHECK(dir);
        CHECK_EQ(open_and_read(openers[i], "sub/", buf, sizeof buf, &dir), 0);
        CHECK(strcmp(buf, "<p>sub</p>\n") == 0);
        CHECK_EQ(open_and_read(openers[i], "", buf, sizeof buf, &dir), 0);
        CHECK(strcmp(buf, "<p>root</p>\n") == 0);
        CHECK(dir);
    }
}

/* Missing files, symlinks leading out (relative, absolute, through a directory link), ".."
 * handed in directly, a file asked for as a directory, a directory without index.html and a
 * FIFO (which must not block the open) are all "not found", for both openers. */
TEST_PLAIN(open_refuses_what_is_missing_or_outside)
{
    make_root();
    const char *bad[] = {"nope",
                         "outlink",
                         "abslink",
                         "dirout/secret.txt",
                         "dirout/",
                         "../secret.txt",
                         "sub/../../secret.txt",
                         "hello.txt/",
                         "empty",
                         "empty/",
                         "fifo",
                         "sub/nope.html"};
    for (size_t i = 0; i < 2; i++) {
        for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++) {
            char buf[64];
            bool dir;
            int rc = open_and_read(openers[i], bad[j], buf, sizeof buf, &dir);
            if (rc != -ENOENT)
                test_fail(__FILE__, __LINE__, "opener %zu, \"%s\": %d, want -ENOENT", i, bad[j],
                          rc);
        }
    }
}

/* A symlink that stays inside the root is followed with openat2 and refused by the walk. */
TEST_PLAIN(open_follows_symlinks_inside_the_root_with_openat2_only)
{
    make_root();
    char buf[64];
    bool dir;
    CHECK_EQ(open_and_read(crl__static_open_walk, "inlink", buf, sizeof buf, &dir), -ENOENT);
    CHECK_EQ(open_and_read(crl__static_open_walk, "sub/uplink", buf, sizeof buf, &dir), -ENOENT);
    int rc = open_and_read(crl__static_open, "inlink", buf, sizeof buf, &dir);
    if (rc == -ENOENT)
        TEST_SKIP("no openat2: crl__static_open walks like the fallback");
    CHECK_EQ(rc, 0);
    CHECK(strcmp(buf, "hello world\n") == 0);
    CHECK_EQ(open_and_read(crl__static_open, "sub/uplink", buf, sizeof buf, &dir), 0);
    CHECK(strcmp(buf, "hello world\n") == 0);
}

/* ---- Content types ---------------------------------------------------------------------- */

/* Every common type by extension, case-insensitive; anything else is octet-stream. */
TEST_PLAIN(mime_types_follow_the_extension)
{
    const char *cases[][2] = {
        {"index.html", "text/html; charset=utf-8"},
        {"a/b/PAGE.HTM", "text/html; charset=utf-8"},
        {"site.css", "text/css; charset=utf-8"},
        {"app.js", "text/javascript; charset=utf-8"},
        {"data.json", "application/json"},
        {"notes.txt", "text/plain; charset=utf-8"},
        {"logo.png", "image/png"},
        {"photo.JPG", "image/jpeg"},
        {"photo.jpeg", "image/jpeg"},
        {"anim.gif", "image/gif"},
        {"icon.svg", "image/svg+xml"},
        {"favicon.ico", "image/x-icon"},
        {"mod.wasm", "application/wasm"},
        {"paper.pdf", "application/pdf"},
        {"archive.tar.gz", "application/octet-stream"},
        {"README", "application/octet-stream"},
        {".html", "application/octet-stream"},
        {"dir.html/file", "application/octet-stream"},
        {"trailing.", "application/octet-stream"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (strcmp(crl__static_mime(cases[i][0]), cases[i][1]) != 0)
            test_fail(__FILE__, __LINE__, "mime(%s) = %s, want %s", cases[i][0],
                      crl__static_mime(cases[i][0]), cases[i][1]);
}

/* ---- Validators ------------------------------------------------------------------------- */

/* The ETag is quoted, stable, and changes with the size and with the mtime (to the ns). */
TEST_PLAIN(etag_follows_size_and_mtime)
{
    struct stat st = {.st_size = 1234, .st_mtim = {1700000000, 5}};
    char a[64], b[64];
    size_t n = crl__static_etag(&st, a, sizeof a);
    CHECK_EQ(n, strlen(a));
    CHECK(n > 2 && a[0] == '"' && a[n - 1] == '"');
    crl__static_etag(&st, b, sizeof b);
    CHECK(strcmp(a, b) == 0);
    st.st_size++;
    crl__static_etag(&st, b, sizeof b);
    CHECK(strcmp(a, b) != 0);
    st.st_size--;
    st.st_mtim.tv_nsec++;
    crl__static_etag(&st, b, sizeof b);
    CHECK(strcmp(a, b) != 0);
}

/* Dates are written as IMF-fixdate and read in all three forms. */
TEST_PLAIN(http_dates_round_trip_in_every_form)
{
    char buf[32];
    CHECK_EQ(crl__static_http_date(784111777, buf, sizeof buf), 29);
    CHECK(strcmp(buf, "Sun, 06 Nov 1994 08:49:37 GMT") == 0);
    const char *forms[] = {"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
                           "Sun Nov  6 08:49:37 1994"};
    for (size_t i = 0; i < 3; i++) {
        time_t t = 0;
        CHECK_EQ(crl__static_parse_date(forms[i], &t), 0);
        CHECK_EQ(t, 784111777);
    }
    time_t t;
    CHECK_EQ(crl__static_parse_date("Thu, 01 Jan 1970 00:00:00 GMT", &t), 0);
    CHECK_EQ(t, 0);
    CHECK_EQ(crl__static_parse_date("Wednesday, 01-Jan-25 00:00:00 GMT", &t), 0);
    CHECK_EQ(t, 1735689600);
}

/* Malformed dates are refused, not half-read. */
TEST_PLAIN(http_dates_refuse_junk)
{
    const char *bad[] = {"",
                         "yesterday",
                         "Sun, 06 Nov 1994 08:49:37",
                         "Sun, 06 Nov 1994 08:49:37 GMT junk",
                         "Sun, 32 Nov 1994 08:49:37 GMT",
                         "Sun, 06 Foo 1994 08:49:37 GMT",
                         "Sun, 06 Nov 1994 24:49:37 GMT",
                         "Sun, 06 Nov 1994 08:61:37 GMT",
                         "Sun, 06 Nov 1994 08:49:37 UTC"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        time_t t;
        if (crl__static_parse_date(bad[i], &t) != -EINVAL)
            test_fail(__FILE__, __LINE__, "parse_date(\"%s\") accepted", bad[i]);
    }
    char buf[32];
    CHECK_EQ(crl__static_http_date(0, buf, 10), -EINVAL);
}

/* If-None-Match: "*", a tag of a list, weak or not, matches by the weak comparison. */
TEST_PLAIN(etag_match_uses_the_weak_comparison)
{
    const char *etag = "\"abc-1\"";
    CHECK(crl__static_etag_match("\"abc-1\"", etag));
    CHECK(crl__static_etag_match("W/\"abc-1\"", etag));
    CHECK(crl__static_etag_match("\"x\", \"abc-1\"", etag));
    CHECK(crl__static_etag_match("\"x\",W/\"abc-1\" ", etag));
    CHECK(crl__static_etag_match(" * ", etag));
    CHECK(crl__static_etag_match("\"abc-1\"", "W/\"abc-1\""));
    CHECK(!crl__static_etag_match("\"abc-2\"", etag));
    CHECK(!crl__static_etag_match("\"abc-1", etag));
    CHECK(!crl__static_etag_match("abc-1", etag));
    CHECK(!crl__static_etag_match("\"ABC-1\"", etag));
    CHECK(!crl__static_etag_match("", etag));
    CHECK(!crl__static_etag_match("*, \"x\"", etag));
}

/* 304 when If-None-Match matches, or, without it, when the file is no newer than
 * If-Modified-Since; If-None-Match takes precedence. */
TEST_PLAIN(not_modified_prefers_if_none_match)
{
    const char *etag = "\"e\"";
    time_t mtime = 784111777;
    const char *same = "Sun, 06 Nov 1994 08:49:37 GMT";
    const char *later = "Mon, 07 Nov 1994 08:49:37 GMT";
    const char *earlier = "Sat, 05 Nov 1994 08:49:37 GMT";
    CHECK(crl__static_not_modified("\"e\"", NULL, etag, mtime));
    CHECK(crl__static_not_modified("\"e\"", earlier, etag, mtime));
    CHECK(!crl__static_not_modified("\"f\"", later, etag, mtime));
    CHECK(crl__static_not_modified(NULL, same, etag, mtime));
    CHECK(crl__static_not_modified(NULL, later, etag, mtime));
    CHECK(!crl__static_not_modified(NULL, earlier, etag, mtime));
    CHECK(!crl__static_not_modified(NULL, "not a date", etag, mtime));
    CHECK(!crl__static_not_modified(NULL, NULL, etag, mtime));
}

/* If-Range: a strongly matching tag or the exact date lets Range apply; anything else not. */
TEST_PLAIN(if_range_needs_a_strong_match)
{
    const char *etag = "\"e\"";
    time_t mtime = 784111777;
    CHECK(crl__static_if_range(NULL, etag, mtime));
    CHECK(crl__static_if_range("\"e\"", etag, mtime));
    CHECK(!crl__static_if_range("W/\"e\"", etag, mtime));
    CHECK(!crl__static_if_range("\"f\"", etag, mtime));
    CHECK(crl__static_if_range("Sun, 06 Nov 1994 08:49:37 GMT", etag, mtime));
    CHECK(!crl__static_if_range("Sun, 06 Nov 1994 08:49:38 GMT", etag, mtime));
    CHECK(!crl__static_if_range("junk", etag, mtime));
}

/* ---- Ranges ----------------------------------------------------------------------------- */

static void check_range(const char *header, int64_t size, enum crl__range want, int64_t want_offset,
                        int64_t want_len)
{
    int64_t offset = -7, len = -7;
    enum crl__range r = crl__static_range(header, size, &offset, &len);
    if (r != want)
        test_fail(__FILE__, __LINE__, "range(\"%s\", %lld) = %d, want %d", header ? header : "NULL",
                  (long long)size, r, want);
    if (want == CRL__RANGE_PARTIAL && (offset != want_offset || len != want_len))
        test_fail(__FILE__, __LINE__, "range(\"%s\", %lld) = %lld+%lld, want %lld+%lld", header,
                  (long long)size, (long long)offset, (long long)len, (long long)want_offset,
                  (long long)want_len);
}

/* a-b, a- and -n, clamped to the file; the unit is case-insensitive. */
TEST_PLAIN(range_reads_every_form)
{
    check_range("bytes=0-9", 100, CRL__RANGE_PARTIAL, 0, 10);
    check_range("bytes=90-", 100, CRL__RANGE_PARTIAL, 90, 10);
    check_range("bytes=-5", 100, CRL__RANGE_PARTIAL, 95, 5);
    check_range("bytes=-500", 100, CRL__RANGE_PARTIAL, 0, 100);
    check_range("bytes=50-1000", 100, CRL__RANGE_PARTIAL, 50, 50);
    check_range("bytes=99-99", 100, CRL__RANGE_PARTIAL, 99, 1);
    check_range("bytes=0-0", 1, CRL__RANGE_PARTIAL, 0, 1);
    check_range("BYTES=0-1", 100, CRL__RANGE_PARTIAL, 0, 2);
    check_range("bytes= 3-4 ", 100, CRL__RANGE_PARTIAL, 3, 2);
    check_range("bytes=0-99999999999999999999999", 100, CRL__RANGE_PARTIAL, 0, 100);
}

/* A range starting at or past the end, a zero suffix, any range of an empty file: 416. */
TEST_PLAIN(range_past_the_end_is_unsatisfiable)
{
    check_range("bytes=100-", 100, CRL__RANGE_UNSATISFIABLE, 0, 0);
    check_range("bytes=100-200", 100, CRL__RANGE_UNSATISFIABLE, 0, 0);
    check_range("bytes=99999999999999999999999-", 100, CRL__RANGE_UNSATISFIABLE, 0, 0);
    check_range("bytes=-0", 100, CRL__RANGE_UNSATISFIABLE, 0, 0);
    check_range("bytes=0-", 0, CRL__RANGE_UNSATISFIABLE, 0, 0);
    check_range("bytes=-5", 0, CRL__RANGE_UNSATISFIABLE, 0, 0);
}

/* No header, malformed ones, other units and several ranges are ignored (a 200). */
TEST_PLAIN(range_ignores_malformed_and_multiple_ranges)
{
    const char *ignored[] = {
        NULL,        "",          "bytes=",  "bytes=5-1", "bytes=0-1,5-6", "bytes=0-1, 5-6",
        "items=0-1", "bytes=a-b", "bytes=1", "bytes=--1", "bytes 0-1",     "bytes=0-1x",
        "bytes=-",   "bytes=-1-2"};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        check_range(ignored[i], 100, CRL__RANGE_NONE, 0, 0);
}
