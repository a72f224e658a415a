/* dirsum.c - a recursive directory checksum: a plain recursive function that fans out one
 * child task per subdirectory. The essay's point: in Rust an `async fn walk(dir)` that
 * awaits `walk(sub)` does not compile without boxing (`Box::pin`), because a future holds its
 * callees' futures and so would be of infinite size; a stackful task has a stack of its own,
 * so recursion is just recursion, and a scope per directory joins its subdirectories' tasks.
 *
 *   async fn walk(dir) -> u64 {                     static int walk(void *job)
 *       for sub in dirs { join.spawn(                   crl_spawn_copy(s, walk, &sub, sizeof sub)
 *           Box::pin(walk(sub))) }                       (the child owns its copy of the job)
 *
 * It builds a tree in a temporary directory, sums it with crl_dir_open/crl_dir_next, checks
 * the sum against the one computed while building, and removes the tree. */
#define _GNU_SOURCE
#include "corral.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* FNV-1a of a file's path (from the tree's root) and contents: the tree's sum adds them up,
 * so the order in which files are visited does not matter. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    for (const unsigned char *b = p; n--; b++)
        h = (h ^ *b) * 0x100000001b3u;
    return h;
}

static uint64_t file_hash(const char *path, const char *data, size_t len)
{
    return fnv1a(fnv1a(0xcbf29ce484222325u, path, strlen(path) + 1), data, len);
}

/* One directory to sum: copied onto its task's stack, so the loop below can reuse it. */
struct walk_job {
    int parent_fd;    /* the directory it is in, open for the whole walk of the parent */
    char path[256];   /* from the tree's root, e.g. "d1/d0" */
    const char *name; /* the last component, inside path */
    uint64_t *sum;    /* the parent's running sum: one core, so a plain += */
    unsigned *files;  /* the parent's count of files */
};

static int walk(void *arg);

static int sum_file(int dirfd, const struct walk_job *j, const char *name)
{
    char path[512], data[256];
    if (snprintf(path, sizeof path, "%s/%s", j->path, name) >= (int)sizeof path)
        return -ENAMETOOLONG;
    int fd = crl_openat(dirfd, name, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    ssize_t n = crl_read(fd, data, sizeof data);
    crl_close(fd);
    if (n < 0)
        return (int)n;
    *j->sum += file_hash(path, data, (size_t)n);
    ++*j->files;
    return 0;
}

/* e's DT_ type, asking the file system when the listing does not say; or -errno. */
static int type_of(int dirfd, const struct crl_dirent *e)
{
    if (e->type != DT_UNKNOWN)
        return e->type;
    struct stat st;
    int rc = crl_fstatat(dirfd, e->name, &st, AT_SYMLINK_NOFOLLOW);
    if (rc < 0)
        return rc;
    return S_ISREG(st.st_mode) ? DT_REG : S_ISDIR(st.st_mode) ? DT_DIR : DT_UNKNOWN;
}

/* The directory's entries: a file is summed here, a directory gets a task of its own. */
static int walk_body(struct crl_scope *s, void *arg)
{
    const struct walk_job *j = arg;
    int fd = crl_openat(j->parent_fd, j->name, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return fd;
    struct crl_dir *d;
    int rc = crl_dir_open(fd, ".", &d);
    struct crl_dirent e;
    while (rc == 0 && (rc = crl_dir_next(d, &e)) == 1) {
        int type = type_of(fd, &e);
        rc = type < 0 ? type : 0;
        if (type == DT_REG) {
            rc = sum_file(fd, j, e.name);
        } else if (e.type == DT_DIR) {
            struct walk_job sub = {.parent_fd = fd, .sum = j->sum, .files = j->files};
            if (snprintf(sub.path, sizeof sub.path, "%s/%s", j->path, e.name) >= 256)
                rc = -ENAMETOOLONG;
            else
                rc = crl_spawn_copy(s, walk, &sub, sizeof sub); /* sub.name: set by walk */
        }
    }
    crl_dir_close(d);
    int joined = crl_scope_join(s); /* the children use fd: keep it open until they end */
    crl_close(fd);
    return rc < 0 ? rc : joined;
}

static int walk(void *arg)
{
    struct walk_job *j = arg; /* this task's own copy */
    const char *slash = strrchr(j->path, '/');
    j->name = slash ? slash + 1 : j->path;
    return crl_scope_run(walk_body, j);
}

/* ---- Building the tree (plain POSIX: this part is not the example) ------------------------ */

static uint64_t build(const char *root, const char *rel, int depth, unsigned *files)
{
    uint64_t sum = 0;
    char path[512];
    for (int i = 0; i < 3; i++) {
        char data[64], name[512];
        int len = snprintf(data, sizeof data, "file %d of %s\n", i, rel);
        if (len >= (int)sizeof data || snprintf(name, sizeof name, "%s/f%d", rel, i) >= 512 ||
            snprintf(path, sizeof path, "%s/%s", root, name) >= (int)sizeof path)
            continue;
        FILE *f = fopen(path, "w");
        fwrite(data, 1, (size_t)len, f);
        fclose(f);
        sum += file_hash(name, data, (size_t)len);
        ++*files;
    }
    for (int i = 0; depth > 0 && i < 3; i++) {
        char sub[256];
        if (snprintf(sub, sizeof sub, "%s/d%d", rel, i) >= (int)sizeof sub ||
            snprintf(path, sizeof path, "%s/%s", root, sub) >= (int)sizeof path)
            continue;
        mkdir(path, 0755);
        sum += build(root, sub, depth - 1, files);
    }
    return sum;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    return remove(path);
}

struct tree {
    char dir[64];
    uint64_t sum;
    unsigned files;
};

static int sum_tree(void *arg)
{
    struct tree *t = arg;
    struct walk_job top = {.parent_fd = AT_FDCWD, .sum = &t->sum, .files = &t->files};
    snprintf(top.path, sizeof top.path, "%s", t->dir); /* "/tmp/..." itself: the root */
    top.name = top.path;
    return crl_scope_run(walk_body, &top);
}

int main(void)
{
    struct tree t = {.dir = "/tmp/corral-dirsum-XXXXXX"};
    if (!mkdtemp(t.dir))
        return 1;
    unsigned want_files = 0;
    char empty[96];
    snprintf(empty, sizeof empty, "%s/empty", t.dir); /* an empty directory too */
    mkdir(empty, 0755);
    uint64_t want = build("", t.dir, 3, &want_files); /* paths as walk sees them */
    int rc = crl_run(NULL, sum_tree, &t);
    nftw(t.dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    printf("dirsum: %u files (expected %u), sum %016llx (expected %016llx): %s\n", t.files,
           want_files, (unsigned long long)t.sum, (unsigned long long)want,
           rc == 0 && t.sum == want && t.files == want_files ? "ok" : "MISMATCH");
    return rc == 0 && t.sum == want && t.files == want_files ? 0 : 1;
}
