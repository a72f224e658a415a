/* Files and directories relative to a directory fd: crl_openat, crl_fstatat, listings. Each
 * case works in a directory of its own made with mkdtemp under /tmp, removed after. */
#define _GNU_SOURCE
#include "../test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct tmpdir {
    char path[64];
    int fd;
};

static void tmpdir_make(struct tmpdir *t)
{
    snprintf(t->path, sizeof t->path, "/tmp/corral-fs-XXXXXX");
    CHECK(mkdtemp(t->path) != NULL);
    t->fd = open(t->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK_GE(t->fd, 0);
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    return remove(path);
}

static void tmpdir_remove(struct tmpdir *t)
{
    close(t->fd);
    CHECK_EQ(nftw(t->path, remove_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static void make_file(int dirfd, const char *name, const char *content)
{
    int fd = crl_openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL, 0644);
    CHECK_GE(fd, 0);
    size_t len = strlen(content);
    CHECK_EQ(crl_write_all(fd, content, len), (long long)len);
    CHECK_EQ(crl_close(fd), 0);
}

static void check_content(int fd, const char *want)
{
    char buf[64] = {0};
    CHECK_EQ(crl_pread(fd, buf, sizeof buf - 1, 0), (long long)strlen(want));
    CHECK(strcmp(buf, want) == 0);
}

/* ---- crl_openat ------------------------------------------------------------------------- */

/* A file made and opened again relative to a directory fd, close-on-exec. */
TEST(openat_relative_to_a_directory_fd)
{
    struct tmpdir t;
    tmpdir_make(&t);
    make_file(t.fd, "note", "hello");
    int fd = crl_openat(t.fd, "note", O_RDONLY, 0);
    CHECK_GE(fd, 0);
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    check_content(fd, "hello");
    CHECK_EQ(crl_close(fd), 0);
    /* It is in that directory, not in the working one. */
    char path[128];
    snprintf(path, sizeof path, "%s/note", t.path);
    CHECK_EQ(access(path, R_OK), 0);
    CHECK_EQ(crl_openat(t.fd, "missing", O_RDONLY, 0), -ENOENT);
    CHECK_EQ(crl_openat(t.fd, "note", O_WRONLY | O_CREAT | O_EXCL, 0644), -EEXIST);
    CHECK_EQ(crl_openat(-1, "note", O_RDONLY, 0), -EBADF);
    tmpdir_remove(&t);
}

/* AT_FDCWD: an absolute path, and a relative one from the working directory. */
TEST(openat_at_fdcwd)
{
    struct tmpdir t;
    tmpdir_make(&t);
    make_file(t.fd, "cwd-file", "from cwd");
    char path[128];
    snprintf(path, sizeof path, "%s/cwd-file", t.path);
    int fd = crl_openat(AT_FDCWD, path, O_RDONLY, 0);
    CHECK_GE(fd, 0);
    check_content(fd, "from cwd");
    CHECK_EQ(crl_close(fd), 0);
    char old[4096];
    CHECK(getcwd(old, sizeof old) != NULL);
    CHECK_EQ(chdir(t.path), 0);
    fd = crl_openat(AT_FDCWD, "cwd-file", O_RDONLY, 0);
    CHECK_EQ(chdir(old), 0);
    CHECK_GE(fd, 0);
    check_content(fd, "from cwd");
    CHECK_EQ(crl_close(fd), 0);
    tmpdir_remove(&t);
}

/* ---- crl_fstatat ------------------------------------------------------------------------ */

static void check_same_stat(const struct stat *a, const struct stat *b)
{
    CHECK_EQ(a->st_dev, b->st_dev);
    CHECK_EQ(a->st_ino, b->st_ino);
    CHECK_EQ(a->st_mode, b->st_mode);
    CHECK_EQ(a->st_nlink, b->st_nlink);
    CHECK_EQ(a->st_uid, b->st_uid);
    CHECK_EQ(a->st_gid, b->st_gid);
    CHECK_EQ(a->st_rdev, b->st_rdev);
    CHECK_EQ(a->st_size, b->st_size);
    CHECK_EQ(a->st_blksize, b->st_blksize);
    CHECK_EQ(a->st_blocks, b->st_blocks);
    CHECK_EQ(a->st_mtim.tv_sec, b->st_mtim.tv_sec);
    CHECK_EQ(a->st_mtim.tv_nsec, b->st_mtim.tv_nsec);
    CHECK_EQ(a->st_ctim.tv_sec, b->st_ctim.tv_sec);
    CHECK_EQ(a->st_ctim.tv_nsec, b->st_ctim.tv_nsec);
}

/* A file's status is what fstatat(2) says, field by field, on either backend. */
TEST(fstatat_of_a_file_matches_the_system_call)
{
    struct tmpdir t;
    tmpdir_make(&t);
    make_file(t.fd, "five", "12345");
    struct stat st, want;
    memset(&st, 0xa5, sizeof st);
    CHECK_EQ(crl_fstatat(t.fd, "five", &st, 0), 0);
    CHECK_EQ(fstatat(t.fd, "five", &want, 0), 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK_EQ(st.st_mode & 0777, 0644 & ~0022 & 0777 & want.st_mode);
    CHECK_EQ(st.st_size, 5);
    check_same_stat(&st, &want);
    /* A directory, by absolute path from AT_FDCWD. */
    CHECK_EQ(crl_fstatat(AT_FDCWD, t.path, &st, 0), 0);
    CHECK(S_ISDIR(st.st_mode));
    CHECK_EQ(fstatat(AT_FDCWD, t.path, &want, 0), 0);
    check_same_stat(&st, &want);
    tmpdir_remove(&t);
}

/* A missing path is -ENOENT; a path through a file is -ENOTDIR; a bad dirfd is -EBADF. */
TEST(fstatat_of_a_missing_path_is_enoent)
{
    struct tmpdir t;
    tmpdir_make(&t);
    make_file(t.fd, "file", "x");
    struct stat st;
    CHECK_EQ(crl_fstatat(t.fd, "missing", &st, 0), -ENOENT);
    CHECK_EQ(crl_fstatat(AT_FDCWD, "/nonexistent/corral/path", &st, 0), -ENOENT);
    CHECK_EQ(crl_fstatat(t.fd, "file/below", &st, 0), -ENOTDIR);
    CHECK_EQ(crl_fstatat(-1, "file", &st, 0), -EBADF);
    tmpdir_remove(&t);
}

/* AT_SYMLINK_NOFOLLOW stats the link itself; AT_EMPTY_PATH the fd's own file. */
TEST(fstatat_flags_symlink_nofollow_and_empty_path)
{
    struct tmpdir t;
    tmpdir_make(&t);
    make_file(t.fd, "target", "abc");
    CHECK_EQ(symlinkat("target", t.fd, "link"), 0);
    struct stat st;
    CHECK_EQ(crl_fstatat(t.fd, "link", &st, 0), 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK_EQ(st.st_size, 3);
    CHECK_EQ(crl_fstatat(t.fd, "link", &st, AT_SYMLINK_NOFOLLOW), 0);
    CHECK(S_ISLNK(st.st_mode));
    CHECK_EQ(st.st_size, 6); /* strlen("target") */
    int fd = crl_openat(t.fd, "target", O_RDONLY, 0);
    CHECK_GE(fd, 0);
    CHECK_EQ(crl_fstatat(fd, "", &st, AT_EMPTY_PATH), 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK_EQ(st.st_size, 3);
    CHECK_EQ(crl_close(fd), 0);
    tmpdir_remove(&t);
}

/* ---- Listings --------------------------------------------------------------------------- */

/* Exactly the entries made, each once, with their types and inode numbers; no "." or "..". */
TEST(listing_has_the_known_entries)
{
    struct tmpdir t;
    tmpdir_make(&t);
    make_file(t.fd, "a", "1");
    make_file(t.fd, "bb", "22");
    CHECK_EQ(mkdirat(t.fd, "sub", 0755), 0);
    CHECK_EQ(symlinkat("a", t.fd, "ln"), 0);
    static const char *const names[] = {"a", "bb", "sub", "ln"};
    static const unsigned char types[] = {DT_REG, DT_REG, DT_DIR, DT_LNK};
    int seen[4] = {0};
    struct crl_dir *d = NULL;
    CHECK_EQ(crl_dir_open(t.fd, ".", &d), 0);
    CHECK(d != NULL);
    struct crl_dirent e;
    int rc, n = 0;
    while ((rc = crl_dir_next(d, &e)) == 1) {
        n++;
        int k = -1;
        for (int i = 0; i < 4; i++)
            if (strcmp(e.name, names[i]) == 0)
                k = i;
        CHECK_GE(k, 0);
        seen[k]++;
        if (e.type != DT_UNKNOWN)
            CHECK_EQ(e.type, types[k]);
        struct stat st;
        CHECK_EQ(crl_fstatat(t.fd, e.name, &st, AT_SYMLINK_NOFOLLOW), 0);
        CHECK_EQ(e.ino, st.st_ino);
    }
    CHECK_EQ(rc, 0);
    CHECK_EQ(n, 4);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(seen[i], 1);
    CHECK_EQ(crl_dir_next(d, &e), 0); /* the end stays the end */
    CHECK_EQ(crl_dir_close(d), 0);
    /* By path from AT_FDCWD; an empty directory lists nothing. */
    char path[128];
    snprintf(path, sizeof path, "%s/sub", t.path);
    CHECK_EQ(crl_dir_open(AT_FDCWD, path, &d), 0);
    CHECK_EQ(crl_dir_next(d, &e), 0);
    CHECK_EQ(crl_dir_close(d), 0);
    CHECK_EQ(crl_dir_close(NULL), 0);
    tmpdir_remove(&t);
}

/* Opening what is not a directory fails with the open's error and no listing. */
TEST(listing_of_a_missing_path_or_a_file_fails)
{
    struct tmpdir t;
    tmpdir_make(&t);
    make_file(t.fd, "file", "x");
    struct crl_dir *d = (struct crl_dir *)&t;
    CHECK_EQ(crl_dir_open(t.fd, "missing", &d), -ENOENT);
    CHECK(d == NULL);
    CHECK_EQ(crl_dir_open(t.fd, "file", &d), -ENOTDIR);
    CHECK(d == NULL);
    tmpdir_remove(&t);
}

enum { MANY = 1500 };

/* A directory larger than one batch of getdents64: every entry once. */
TEST(listing_of_a_large_directory_sees_every_entry_once)
{
    struct tmpdir t;
    tmpdir_make(&t);
    char name[64];
    for (int i = 0; i < MANY; i++) {
        snprintf(name, sizeof name, "entry-with-a-name-long-enough-%04d", i);
        int fd = crl_openat(t.fd, name, O_WRONLY | O_CREAT | O_EXCL, 0644);
        CHECK_GE(fd, 0);
        CHECK_EQ(crl_close(fd), 0);
    }
    static unsigned char seen[MANY];
    memset(seen, 0, sizeof seen);
    struct crl_dir *d;
    CHECK_EQ(crl_dir_open(AT_FDCWD, t.path, &d), 0);
    struct crl_dirent e;
    int rc, n = 0;
    while ((rc = crl_dir_next(d, &e)) == 1) {
        int i = -1;
        CHECK_EQ(sscanf(e.name, "entry-with-a-name-long-enough-%d", &i), 1);
        CHECK(i >= 0 && i < MANY);
        seen[i]++;
        n++;
    }
    CHECK_EQ(rc, 0);
    CHECK_EQ(n, MANY);
    for (int i = 0; i < MANY; i++)
        CHECK_EQ(seen[i], 1);
    CHECK_EQ(crl_dir_close(d), 0);
    tmpdir_remove(&t);
}

/* ---- Cancellation ----------------------------------------------------------------------- */

struct in_cancelled {
    struct tmpdir *t;
    int open_rc, stat_rc, dir_open_rc, next_rc, next_after_rc;
};

static int calls_in_a_cancelled_scope(struct crl_scope *s, void *arg)
{
    struct in_cancelled *c = arg;
    struct crl_dir *d;
    CHECK_EQ(crl_dir_open(c->t->fd, ".", &d), 0); /* before the cancel */
    crl_scope_cancel(s);
    struct stat st;
    struct crl_dir *d2 = NULL;
    c->open_rc = crl_openat(c->t->fd, "created", O_WRONLY | O_CREAT, 0644);
    c->stat_rc = crl_fstatat(c->t->fd, "present", &st, 0);
    c->dir_open_rc = crl_dir_open(c->t->fd, ".", &d2);
    CHECK(d2 == NULL);
    struct crl_dirent e;
    c->next_rc = crl_dir_next(d, &e); /* nothing read yet: it must read a batch */
    CHECK_EQ(crl_dir_close(d), 0);
    return 0;
}

/* Every call is a cancellation point when it has to go to the kernel: in a cancelled scope
 * nothing is opened, statted or read. */
TEST(calls_in_a_cancelled_scope_return_ecanceled_and_do_nothing)
{
    struct tmpdir t;
    tmpdir_make(&t);
    make_file(t.fd, "present", "x");
    struct in_cancelled c = {.t = &t};
    CHECK_EQ(crl_scope_run(calls_in_a_cancelled_scope, &c), 0);
    CHECK_EQ(c.open_rc, -ECANCELED);
    CHECK_EQ(c.stat_rc, -ECANCELED);
    CHECK_EQ(c.dir_open_rc, -ECANCELED);
    CHECK_EQ(c.next_rc, -ECANCELED);
    CHECK_EQ(faccessat(t.fd, "created", F_OK, 0), -1); /* the open never happened */
    tmpdir_remove(&t);
}

static int first_entry_then_cancelled(struct crl_scope *s, void *arg)
{
    struct tmpdir *t = arg;
    struct crl_dir *d;
    CHECK_EQ(crl_dir_open(t->fd, ".", &d), 0);
    struct crl_dirent e;
    CHECK_EQ(crl_dir_next(d, &e), 1);
    crl_scope_cancel(s);
    /* The rest of the batch was read already: it comes even to a cancelled task. */
    int n = 1, rc;
    while ((rc = crl_dir_next(d, &e)) == 1)
        n++;
    CHECK_EQ(n, 3);
    CHECK_EQ(rc, -ECANCELED); /* the end must be read from the kernel: cancelled */
    CHECK_EQ(crl_dir_close(d), 0);
    return 0;
}

/* Entries already read are returned in a cancelled task; reading more is cancelled. */
TEST(listing_returns_entries_already_read_after_a_cancel)
{
    struct tmpdir t;
    tmpdir_make(&t);
    make_file(t.fd, "x", "");
    make_file(t.fd, "y", "");
    make_file(t.fd, "z", "");
    CHECK_EQ(crl_scope_run(first_entry_then_cancelled, &t), 0);
    tmpdir_remove(&t);
}

/* With a pool of one thread kept busy, a listing's batch waits in the pool's queue: a cancel
 * then takes it back (-ECANCELED) and the listing is intact for the next call. */
struct queued {
    struct tmpdir t;
    int pipe[2];
    int next_rc;
    int entries_after;
};

static int block_pool_thread(void *arg)
{
    struct queued *q = arg;
    struct pollfd p = {.fd = q->pipe[0], .events = POLLIN};
    return poll(&p, 1, 10000) == 1 ? 0 : -ETIMEDOUT; /* blocks the pool's only thread */
}

static int offload_blocker(void *arg) { return crl_offload(block_pool_thread, arg); }

static struct crl_dir *queued_dir;

static int next_entry(void *arg)
{
    struct queued *q = arg;
    struct crl_dirent e;
    q->next_rc = crl_dir_next(queued_dir, &e);
    return 0;
}

static int cancel_a_queued_batch(struct crl_scope *s, void *arg)
{
    struct queued *q = arg;
    CHECK_EQ(crl_spawn(s, next_entry, q), 0);
    CHECK_EQ(crl_sleep_ns(10 * CRL_MSEC_NS), 0);
    crl_scope_cancel(s);
    return 0;
}

static int queued_main(void *arg)
{
    struct queued *q = arg;
    int rc = crl_scope_run(cancel_a_queued_batch, q);
    CHECK_EQ(rc, 0);
    CHECK_EQ(write(q->pipe[1], "x", 1), 1); /* free the pool's thread */
    struct crl_dirent e;
    while ((rc = crl_dir_next(queued_dir, &e)) == 1)
        q->entries_after++;
    CHECK_EQ(rc, 0);
    CHECK_EQ(crl_dir_close(queued_dir), 0);
    return 0;
}

static int blocker_and_listing(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, offload_blocker, arg), 0);
    CHECK_EQ(crl_sleep_ns(5 * CRL_MSEC_NS), 0); /* the blocker holds the thread by now */
    return queued_main(arg);
}

static int run_queued(void *arg)
{
    struct queued *q = arg;
    CHECK_EQ(crl_dir_open(q->t.fd, ".", &queued_dir), 0); /* on epoll, in the pool too */
    return crl_scope_run(blocker_and_listing, arg);
}

TEST_PLAIN(listing_batch_cancelled_in_the_pool_queue_loses_nothing)
{
    static struct queued q;
    tmpdir_make(&q.t);
    CHECK_EQ(pipe2(q.pipe, O_CLOEXEC), 0);
    CHECK_EQ(mkdirat(q.t.fd, "one", 0755), 0);
    CHECK_EQ(mkdirat(q.t.fd, "two", 0755), 0);
    struct crl_config cfg = {.cores = 1, .offload_threads = 1};
    CHECK_EQ(crl_run(&cfg, run_queued, &q), 0);
    CHECK_EQ(q.next_rc, -ECANCELED);
    CHECK_EQ(q.entries_after, 2);
    close(q.pipe[0]);
    close(q.pipe[1]);
    tmpdir_remove(&q.t);
}

/* An open that blocks in the kernel (a FIFO with no writer) is cancelled while in flight:
 * the call returns the cancellation error, or, where the open could not be interrupted (a
 * pool thread), the fd it got once a writer came, which is then not leaked. */
struct fifo_open {
    struct tmpdir t;
    int rc;
    bool cancelled, ended;
};

static int open_fifo(void *arg)
{
    struct fifo_open *f = arg;
    f->rc = crl_openat(f->t.fd, "fifo", O_RDONLY, 0);
    f->ended = true;
    return 0;
}

/* Outside the cancelled scope: once the cancel is made, a writer comes and goes until the
 * open has ended, so that one that cannot be interrupted still ends. */
static int unblock_fifo(void *arg)
{
    struct fifo_open *f = arg;
    while (!f->ended) {
        if (f->cancelled) {
            int fd = openat(f->t.fd, "fifo", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
            if (fd >= 0)
                close(fd);
        }
        CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    }
    return 0;
}

static int cancel_fifo_open(struct crl_scope *s, void *arg)
{
    struct fifo_open *f = arg;
    CHECK_EQ(crl_spawn(s, open_fifo, f), 0);
    CHECK_EQ(crl_sleep_ns(10 * CRL_MSEC_NS), 0);
    crl_scope_cancel(s); /* io_uring opens a FIFO without waiting for a writer: ended */
    f->cancelled = true;
    return 0;
}

static int fifo_open_and_unblocker(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, unblock_fifo, arg), 0);
    return crl_scope_run(cancel_fifo_open, arg);
}

TEST(openat_blocked_in_the_kernel_is_cancelled_or_returns_its_fd)
{
    static struct fifo_open f;
    tmpdir_make(&f.t);
    CHECK_EQ(mkfifoat(f.t.fd, "fifo", 0600), 0);
    CHECK_EQ(crl_scope_run(fifo_open_and_unblocker, &f), 0);
    CHECK(f.ended);
    if (f.rc >= 0) {
        CHECK(fcntl(f.rc, F_GETFD) & FD_CLOEXEC); /* a real fd, ours to close */
        CHECK_EQ(crl_close(f.rc), 0);
    } else {
        CHECK_EQ(f.rc, -ECANCELED);
    }
    tmpdir_remove(&f.t);
}
