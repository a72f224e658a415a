/* owner.c - which core an fd belongs to: the stand-in for Rust's Send for sockets and files,
 * checked where assertions are on (the sanitizer builds) and compiled out of release builds.
 *
 * A table indexed by fd holds the owning core (id + 1; 0 = nobody) and the fd's inode. The
 * first I/O operation on an fd claims it for its core; an operation from another core
 * aborts, naming both, unless the inode differs (the number was closed behind corral's back
 * and reused: the new file is claimed afresh). crl_close releases the entry, crl_fd_adopt
 * moves it. fds beyond the table are not checked. */
#define _GNU_SOURCE
#include "io.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>

#ifndef NDEBUG

enum { FD_TABLE_SIZE = 1 << 16 };

struct fd_owner {
    _Atomic uint32_t core; /* id + 1 */
    _Atomic uint64_t ino;
};

static struct fd_owner *table;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_alloc(void) { table = calloc(FD_TABLE_SIZE, sizeof *table); }

static struct fd_owner *entry(int fd)
{
    pthread_once(&table_once, table_alloc);
    return table && fd >= 0 && fd < FD_TABLE_SIZE ? &table[fd] : NULL;
}

static uint64_t inode_of(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_ino ^ ((uint64_t)st.st_dev << 48) : 0;
}

static void claim(struct fd_owner *e, int fd, uint32_t me)
{
    atomic_store_explicit(&e->ino, inode_of(fd), memory_order_relaxed);
    atomic_store_explicit(&e->core, me, memory_order_relaxed);
}

void crl__fd_check(int fd)
{
    struct crl__core *c = crl__core();
    struct fd_owner *e = entry(fd);
    if (!c || !e)
        return;
    uint32_t me = c->id + 1, owner = atomic_load_explicit(&e->core, memory_order_relaxed);
    if (owner == me)
        return;
    if (owner == 0 || inode_of(fd) != atomic_load_explicit(&e->ino, memory_order_relaxed)) {
        claim(e, fd, me);
        return;
    }
    crl__panic("corral: fd %d belongs to core %u but was used from core %u", fd, owner - 1, c->id);
}

void crl__fd_release(int fd)
{
    struct fd_owner *e = entry(fd);
    if (e)
        atomic_store_explicit(&e->core, 0, memory_order_relaxed);
}

void crl_fd_adopt(int fd)
{
    struct crl__core *c = crl__core();
    struct fd_owner *e = entry(fd);
    if (c && e)
        claim(e, fd, c->id + 1);
}

#else

void crl_fd_adopt(int fd) { (void)fd; }

#endif
