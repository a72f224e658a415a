/* fs.c - files and directories relative to a directory fd: stat (statx through io_uring
 * where the kernel has it, else fstatat in the blocking pool) and directory listings
 * (getdents64 in the blocking pool: no backend reads directories asynchronously). */
#define _GNU_SOURCE
#include "io.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* ---- stat ------------------------------------------------------------------------------- */

static struct timespec timespec_of(const struct statx_timestamp *t)
{
    return (struct timespec){.tv_sec = t->tv_sec, .tv_nsec = t->tv_nsec};
}

/* What fstatat(2) would have filled in, from statx's STATX_BASIC_STATS. */
static void stat_of_statx(struct stat *st, const struct statx *x)
{
    memset(st, 0, sizeof *st);
    st->st_dev = makedev(x->stx_dev_major, x->stx_dev_minor);
    st->st_ino = x->stx_ino;
    st->st_mode = x->stx_mode;
    st->st_nlink = x->stx_nlink;
    st->st_uid = x->stx_uid;
    st->st_gid = x->stx_gid;
    st->st_rdev = makedev(x->stx_rdev_major, x->stx_rdev_minor);
    st->st_size = (off_t)x->stx_size;
    st->st_blksize = (blksize_t)x->stx_blksize;
    st->st_blocks = (blkcnt_t)x->stx_blocks;
    st->st_atim = timespec_of(&x->stx_atime);
    st->st_mtim = timespec_of(&x->stx_mtime);
    st->st_ctim = timespec_of(&x->stx_ctime);
}

struct fstatat_call {
    int dirfd;
    const char *path;
    struct stat *st;
    int flags;
};

static int fstatat_in_pool(void *arg)
{
    struct fstatat_call *f = arg;
    return fstatat(f->dirfd, f->path, f->st, f->flags) == 0 ? 0 : -errno;
}

int crl_fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
    struct statx x;
    struct crl__op op = {.kind = CRL__OP_STATX, .fd = dirfd, .flags = flags, .a.statx = {path, &x}};
    int rc = crl__op_run(&op);
    if (rc == -ENOSYS) { /* the backend cannot: fstatat(2) on a pool thread */
        struct fstatat_call f = {dirfd, path, st, flags};
        return crl_offload(fstatat_in_pool, &f);
    }
    if (rc == 0)
        stat_of_statx(st, &x);
    return rc;
}

/* ---- Directory listings ----------------------------------------------------------------- */

enum { DIR_BUF_BYTES = 32 * 1024 };

/* The kernel's record of one entry, as getdents64(2) writes it. */
struct dirent64_rec {
    uint64_t ino;
    int64_t off;
    unsigned short reclen;
    unsigned char type;
    char name[];
};

struct crl_dir {
    int fd;
    bool eof;
    size_t len, pos; /* bytes of buf read, and where the next record starts */
    _Alignas(8) char buf[DIR_BUF_BYTES];
};

int crl_dir_open(int dirfd, const char *path, struct crl_dir **out)
{
    *out = NULL;
    struct crl_dir *d = malloc(sizeof *d);
    if (!d)
        return -ENOMEM;
    int fd = crl_openat(dirfd, path, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) {
        free(d);
        return fd;
    }
    d->fd = fd;
    d->eof = false;
    d->len = d->pos = 0;
    *out = d;
    return 0;
}

static int getdents_in_pool(void *arg)
{
    struct crl_dir *d = arg;
    ssize_t n = getdents64(d->fd, d->buf, sizeof d->buf);
    return n < 0 ? -errno : (int)n;
}

/* Read the next batch of records: 0 (d->eof set at the end), or -errno. */
static int dir_refill(struct crl_dir *d)
{
    int n = crl_offload(getdents_in_pool, d);
    if (n < 0)
        return n;
    d->len = (size_t)n;
    d->pos = 0;
    d->eof = n == 0;
    return 0;
}

static bool dot_or_dotdot(const char *name)
{
    return name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0));
}

int crl_dir_next(struct crl_dir *d, struct crl_dirent *e)
{
    for (;;) {
        while (d->pos < d->len) {
            const struct dirent64_rec *r = (const void *)(d->buf + d->pos);
            d->pos += r->reclen;
            if (dot_or_dotdot(r->name))
                continue;
            *e = (struct crl_dirent){.name = r->name, .ino = r->ino, .type = r->type};
            return 1;
        }
        if (d->eof)
            return 0;
        int rc = dir_refill(d);
        if (rc < 0)
            return rc;
    }
}

int crl_dir_close(struct crl_dir *d)
{
    if (!d)
        return 0;
    int rc = crl_close(d->fd);
    free(d);
    return rc;
}
