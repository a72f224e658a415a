/* uring.c - the io_uring backend: one ring per core. Operations become SQEs that are
 * submitted in one batch when the loop polls; completions are reaped in batches.
 *
 * user_data is the op's address with a tag in its low bits: 0 the op itself, 2 a poll for its
 * readiness (older kernels answer -EAGAIN on non-blocking sockets instead of waiting; then we
 * poll and issue the op again), 1 an async cancel, whose own completion is ignored, and 3
 * (with no op) the read of the core's wake-up eventfd.
 *
 * A receive watch (crl__watch_recv_start) is a receive whose buffer the kernel picks from the
 * core's ring of BUF_COUNT buffers only when the bytes arrive (IOSQE_BUFFER_SELECT): a
 * thousand idle connections waiting this way tie no buffer up. */
#define _GNU_SOURCE
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define CRL_MEMCHECK 1
#endif
#endif

enum {
    RING_ENTRIES = 1024,
    CQ_ENTRIES = 8192,
    TAG_CANCEL = 1,
    TAG_POLL = 2,
    TAG_WAKE = 3,
    TAG_MASK = 3
};

/* The receive watches' pool: enough for the wake-ups of a loop iteration or two (more find
 * it empty: -ENOBUFS, and their bytes wait in the socket), each buffer as big as the HTTP
 * server's inline input buffer. */
enum { BUF_COUNT = 64, BUF_SIZE = 2048, BUF_GROUP = 0 };

/* This backend's state of an op, in its backend_ bytes (set up by uring_submit). */
struct uring_op {
    bool queued;     /* linked in its fd's list of ops in flight */
    bool cancelling; /* a cancel was requested; the completion is still to come */
    bool closed;     /* crl_close closed its fd under it; it ends with -EBADF */
    bool standing;   /* a standing accept (uring_accept_multi): its CQEs go to on_accept */
    bool buffered;   /* a receive watch, issued as a receive into the pool (on_buffered) */
    uint8_t phase;   /* 0 the op itself is in flight, TAG_POLL a poll for its readiness */
    struct crl__op *next, *prev; /* its fd's list (see queued) */
    crl__accept_fn *on_accept;   /* standing: where its CQEs go */
};
_Static_assert(sizeof(struct uring_op) <= CRL__OP_BACKEND_SIZE, "uring_op must fit in an op");
_Static_assert(_Alignof(struct uring_op) <= 8, "uring_op must fit the alignment of backend_");

static struct uring_op *uop(struct crl__op *op) { return (struct uring_op *)(void *)op->backend_; }

/* The ring, and per fd the ops in flight on it (linked through their next/prev, marked
 * queued), so that crl_close can end them: the kernel holds their file until they complete,
 * so closing the fd alone would neither wake them nor release the file. */
struct uring_state {
    struct io_uring ring;
    struct crl__op **by_fd;
    int nfds;
    bool has_statx;                      /* the kernel takes IORING_OP_STATX (5.6+) */
    uint64_t wake_count;                 /* where arm_wakeup's read of the wake-up eventfd lands */
    struct io_uring_buf_ring *bufs_ring; /* the receive watches' pool, NULL until the first */
    unsigned char *bufs;                 /* BUF_COUNT buffers of BUF_SIZE bytes */
    bool bufs_failed;                    /* the kernel has no buffer rings (before 5.19) */
};

static struct uring_state *st_of(struct crl__core *c) { return c->io->state; }
static struct io_uring *ring_of(struct crl__core *c) { return &st_of(c)->ring; }

static struct io_uring_sqe *get_sqe(struct io_uring *ring);

/* Other threads wake this core by writing its eventfd: keep a read of it in flight. The fd
 * is blocking here (uring_init), so the kernel waits for a write, and the read's completion is
 * the wake-up with the eventfd already reset: no read syscall of ours per wake-up. The next
 * read goes in with the loop's next submission, before the core can sleep again. */
static void arm_wakeup(struct crl__core *c)
{
    struct uring_state *st = st_of(c);
    struct io_uring_sqe *sqe = get_sqe(&st->ring);
    io_uring_prep_read(sqe, c->io->wake_fd, &st->wake_count, sizeof st->wake_count, 0);
    io_uring_sqe_set_data64(sqe, TAG_WAKE);
}

static bool op_supported(struct io_uring *ring, int opcode)
{
    struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
    bool ok = probe && io_uring_opcode_supported(probe, opcode);
    io_uring_free_probe(probe);
    return ok;
}

static int uring_init(struct crl__core *c)
{
    struct uring_state *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    struct io_uring *ring = &st->ring;
    /* Newest flags first: one issuer and task work run only when we ask for completions
     * (6.1+), then cooperative task work (5.19+), then none. */
    static const unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
        struct io_uring_params p = {.flags = flag_sets[i] | IORING_SETUP_CQSIZE,
                                    .cq_entries = CQ_ENTRIES};
        rc = io_uring_queue_init_params(RING_ENTRIES, ring, &p);
        if (rc != -EINVAL)
            break;
    }
    if (rc < 0) {
        free(st);
        return rc;
    }
    /* This thread alone enters its ring: a registered ring fd spares a file lookup per
     * io_uring_enter. Optional: without it, the plain fd works. */
    io_uring_register_ring_fd(ring);
    st->has_statx = op_supported(ring, IORING_OP_STATX);
    int fl = fcntl(c->io->wake_fd, F_GETFL);
    if (fl < 0 || fcntl(c->io->wake_fd, F_SETFL, fl & ~O_NONBLOCK) < 0) { /* see arm_wakeup */
        rc = -errno;
        io_uring_queue_exit(ring);
        free(st);
        return rc;
    }
    c->io->state = st;
    arm_wakeup(c);
    return 0;
}

static void buf_add(struct uring_state *st, unsigned id)
{
    io_uring_buf_ring_add(st->bufs_ring, st->bufs + (size_t)id * BUF_SIZE, BUF_SIZE,
                          (unsigned short)id, io_uring_buf_ring_mask(BUF_COUNT), 0);
    io_uring_buf_ring_advance(st->bufs_ring, 1);
}

/* The pool, set up at the first receive watch: false if this kernel cannot have one (then
 * receive watches are plain polls). */
static bool bufs_ready(struct uring_state *st)
{
    if (st->bufs_ring || st->bufs_failed)
        return st->bufs_ring != NULL;
    size_t ring_bytes = BUF_COUNT * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *bufs = mmap(NULL, (size_t)BUF_COUNT * BUF_SIZE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct io_uring_buf_reg reg = {
        .ring_addr = (uintptr_t)br, .ring_entries = BUF_COUNT, .bgid = BUF_GROUP};
    if (br == MAP_FAILED || bufs == MAP_FAILED || io_uring_register_buf_ring(&st->ring, &reg, 0)) {
        if (br != MAP_FAILED)
            munmap(br, ring_bytes);
        if (bufs != MAP_FAILED)
            munmap(bufs, (size_t)BUF_COUNT * BUF_SIZE);
        st->bufs_failed = true; /* not tried again: plain polls from now on */
        return false;
    }
    st->bufs_ring = br;
    st->bufs = bufs;
    io_uring_buf_ring_init(br);
    for (unsigned i = 0; i < BUF_COUNT; i++)
        buf_add(st, i);
    return true;
}

static void uring_buf_put(struct crl__core *c, struct crl__op *op)
{
    buf_add(st_of(c), op->a.watch.buf);
}

static void uring_fini(struct crl__core *c)
{
    struct uring_state *st = st_of(c);
    io_uring_queue_exit(&st->ring); /* unregisters the pool too */
    if (st->bufs_ring) {
        munmap(st->bufs_ring, BUF_COUNT * sizeof(struct io_uring_buf));
        munmap(st->bufs, (size_t)BUF_COUNT * BUF_SIZE);
    }
    free(st->by_fd);
    free(st);
    c->io->state = NULL;
}

static struct io_uring_sqe *get_sqe(struct io_uring *ring)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    while (!sqe) { /* the SQ is full: hand it to the kernel now */
        io_uring_submit(ring);
        sqe = io_uring_get_sqe(ring);
    }
    return sqe;
}

static uint64_t file_offset(int64_t off) { return off < 0 ? (uint64_t)-1 : (uint64_t)off; }

static void prep_op(struct io_uring_sqe *sqe, struct crl__op *op)
{
    switch (op->kind) {
    case CRL__OP_NOP: io_uring_prep_nop(sqe); break;
    case CRL__OP_READ:
        io_uring_prep_read(sqe, op->fd, op->a.rw.buf, (unsigned)op->a.rw.len, file_offset(op->off));
        break;
    case CRL__OP_WRITE:
        io_uring_prep_write(sqe, op->fd, op->a.rw.buf, (unsigned)op->a.rw.len,
                            file_offset(op->off));
        break;
    case CRL__OP_READV:
        io_uring_prep_readv(sqe, op->fd, op->a.v.iov, (unsigned)op->a.v.iovcnt,
                            file_offset(op->off));
        break;
    case CRL__OP_WRITEV:
        io_uring_prep_writev(sqe, op->fd, op->a.v.iov, (unsigned)op->a.v.iovcnt,
                             file_offset(op->off));
        break;
    case CRL__OP_RECV:
        io_uring_prep_recv(sqe, op->fd, op->a.rw.buf, op->a.rw.len, op->flags);
        break;
    case CRL__OP_SEND:
        io_uring_prep_send(sqe, op->fd, op->a.rw.buf, op->a.rw.len, op->flags);
        break;
    case CRL__OP_RECVMSG: io_uring_prep_recvmsg(sqe, op->fd, op->a.msg, (unsigned)op->flags); break;
    case CRL__OP_SENDMSG: io_uring_prep_sendmsg(sqe, op->fd, op->a.msg, (unsigned)op->flags); break;
    case CRL__OP_ACCEPT:
        io_uring_prep_accept(sqe, op->fd, op->a.accept.addr, op->a.accept.addrlen, op->flags);
        break;
    case CRL__OP_CONNECT:
        io_uring_prep_connect(sqe, op->fd, op->a.connect.addr, op->a.connect.addrlen);
        break;
    case CRL__OP_POLL:
        if (uop(op)->buffered) {
            io_uring_prep_recv(sqe, op->fd, NULL, BUF_SIZE, 0);
            sqe->flags |= IOSQE_BUFFER_SELECT;
            sqe->buf_group = BUF_GROUP;
            sqe->ioprio |= IORING_RECVSEND_POLL_FIRST; /* 5.19+, as buffer rings: idle first */
        } else {
            io_uring_prep_poll_add(sqe, op->fd, (unsigned)op->flags);
        }
        break;
    case CRL__OP_OPENAT:
        io_uring_prep_openat(sqe, op->fd, op->a.open.path, op->flags, op->a.open.mode);
        break;
    case CRL__OP_FSYNC: io_uring_prep_fsync(sqe, op->fd, 0); break;
    case CRL__OP_SHUTDOWN: io_uring_prep_shutdown(sqe, op->fd, op->flags); break;
    case CRL__OP_STATX:
        io_uring_prep_statx(sqe, op->fd, op->a.statx.path, op->flags, STATX_BASIC_STATS,
                            op->a.statx.buf);
        break;
    }
}

static void issue(struct crl__core *c, struct crl__op *op)
{
    struct io_uring *ring = ring_of(c);
    struct io_uring_sqe *sqe = get_sqe(ring);
    bool stand_in = __builtin_expect(c->io->faults != NULL, 0) && crl__faults_kernel(c, op);
    if (stand_in)
        io_uring_prep_nop(sqe); /* its completion carries the injected result (faults.c) */
    else
        prep_op(sqe, op);
    /* Kernels that take the first two flag sets (5.19+) know the poll-first hint. */
    if (!stand_in && op->kind == CRL__OP_RECV && op->poll_first &&
        (ring->flags & (IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN)))
        sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    uop(op)->phase = 0;
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op);
}

/* Link op into its fd's list of ops in flight: false if the table cannot grow. */
static bool track(struct uring_state *st, struct crl__op *op)
{
    if (op->fd >= st->nfds) {
        int n = st->nfds ? st->nfds : 64;
        while (n <= op->fd)
            n *= 2;
        struct crl__op **by_fd = realloc(st->by_fd, (size_t)n * sizeof *by_fd);
        if (!by_fd)
            return false;
        memset(by_fd + st->nfds, 0, (size_t)(n - st->nfds) * sizeof *by_fd);
        st->by_fd = by_fd;
        st->nfds = n;
    }
    struct crl__op *head = st->by_fd[op->fd];
    struct uring_op *u = uop(op);
    u->prev = NULL;
    u->next = head;
    if (head)
        uop(head)->prev = op;
    st->by_fd[op->fd] = op;
    u->queued = true;
    return true;
}

static void untrack(struct uring_state *st, struct crl__op *op)
{
    struct uring_op *u = uop(op);
    if (u->prev)
        uop(u->prev)->next = u->next;
    else
        st->by_fd[op->fd] = u->next;
    if (u->next)
        uop(u->next)->prev = u->prev;
    u->queued = false;
}

static void uring_submit(struct crl__core *c, struct crl__op *op)
{
    if (op->kind == CRL__OP_STATX && !st_of(c)->has_statx) {
        crl__op_complete(c, op, -ENOSYS); /* the caller stats in the blocking pool (io.h) */
        return;
    }
    struct uring_op *u = uop(op);
    u->queued = false;
    u->cancelling = false;
    u->closed = false;
    u->standing = false;
    u->buffered =
        op->kind == CRL__OP_POLL && op->detached && op->a.watch.recv && bufs_ready(st_of(c));
    if (op->fd >= 0 && !track(st_of(c), op)) {
        crl__op_complete(c, op, -ENOMEM);
        return;
    }
    issue(c, op);
}

/* One multishot accept SQE: every connection comes as a CQE of its own (on_accept_multi). */
static void uring_accept_multi(struct crl__core *c, struct crl__op *op, crl__accept_fn *on_accept)
{
    struct uring_op *u = uop(op);
    *u = (struct uring_op){.standing = true, .on_accept = on_accept};
    if (op->fd >= 0 && !track(st_of(c), op)) {
        on_accept(c, op, -ENOMEM, false);
        return;
    }
    struct io_uring_sqe *sqe = get_sqe(ring_of(c));
    io_uring_prep_multishot_accept(sqe, op->fd, NULL, NULL, op->flags);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op);
}

/* The events an op that answered -EAGAIN (or a connect that is in progress) waits for. */
static unsigned readiness_events(const struct crl__op *op)
{
    switch (op->kind) {
    case CRL__OP_READ:
    case CRL__OP_READV:
    case CRL__OP_RECV:
    case CRL__OP_RECVMSG:
    case CRL__OP_ACCEPT: return POLLIN;
    case CRL__OP_WRITE:
    case CRL__OP_WRITEV:
    case CRL__OP_SEND:
    case CRL__OP_SENDMSG:
    case CRL__OP_CONNECT: return POLLOUT;
    default: return 0;
    }
}

static void poll_for(struct io_uring *ring, struct crl__op *op, unsigned events)
{
    struct io_uring_sqe *sqe = get_sqe(ring);
    io_uring_prep_poll_add(sqe, op->fd, events);
    uop(op)->phase = TAG_POLL;
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | TAG_POLL);
}

static void uring_cancel(struct crl__core *c, struct crl__op *op)
{
    struct uring_op *u = uop(op);
    if (op->done || u->cancelling)
        return;
    u->cancelling = true;
    struct io_uring_sqe *sqe = get_sqe(ring_of(c));
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op | u->phase, 0);
    io_uring_sqe_set_data64(sqe, TAG_CANCEL);
}

/* fd is being closed: cancel every op in flight on it; each completes with -EBADF. Their
 * SQEs (and the cancels) must reach the kernel while fd still names their file: submit now,
 * before the close (only when some op is in flight on fd: no syscall otherwise). */
static void uring_forget(struct crl__core *c, int fd)
{
    struct uring_state *st = st_of(c);
    if (fd < 0 || fd >= st->nfds || !st->by_fd[fd])
        return;
    for (struct crl__op *op = st->by_fd[fd]; op; op = uop(op)->next) {
        uop(op)->closed = true;
        uring_cancel(c, op);
    }
    io_uring_submit(&st->ring);
}

static int connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return -errno;
    return -err;
}

/* Memcheck cannot see what the kernel writes through the ring: tell it what a completed op
 * filled in, so that valgrind runs stay meaningful on this backend. */
static void mark_defined(const struct crl__op *op, int res)
{
#ifdef CRL_MEMCHECK
    if (!RUNNING_ON_VALGRIND || res < 0)
        return;
    size_t left = (size_t)res;
    const struct iovec *iov = NULL;
    size_t iovcnt = 0;
    switch (op->kind) {
    case CRL__OP_READ:
    case CRL__OP_RECV: VALGRIND_MAKE_MEM_DEFINED(op->a.rw.buf, left); return;
    case CRL__OP_READV:
        iov = op->a.v.iov;
        iovcnt = (size_t)op->a.v.iovcnt;
        break;
    case CRL__OP_RECVMSG:
        iov = op->a.msg->msg_iov;
        iovcnt = op->a.msg->msg_iovlen;
        VALGRIND_MAKE_MEM_DEFINED(&op->a.msg->msg_namelen, sizeof op->a.msg->msg_namelen);
        VALGRIND_MAKE_MEM_DEFINED(&op->a.msg->msg_flags, sizeof op->a.msg->msg_flags);
        if (op->a.msg->msg_name)
            VALGRIND_MAKE_MEM_DEFINED(op->a.msg->msg_name, op->a.msg->msg_namelen);
        if (op->a.msg->msg_control)
            VALGRIND_MAKE_MEM_DEFINED(op->a.msg->msg_control, op->a.msg->msg_controllen);
        break;
    case CRL__OP_STATX: VALGRIND_MAKE_MEM_DEFINED(op->a.statx.buf, sizeof *op->a.statx.buf); return;
    case CRL__OP_ACCEPT:
        if (op->a.accept.addrlen) {
            VALGRIND_MAKE_MEM_DEFINED(op->a.accept.addrlen, sizeof *op->a.accept.addrlen);
            VALGRIND_MAKE_MEM_DEFINED(op->a.accept.addr, *op->a.accept.addrlen);
        }
        return;
    default: return;
    }
    for (size_t i = 0; i < iovcnt && left; i++) {
        size_t n = iov[i].iov_len < left ? iov[i].iov_len : left;
        VALGRIND_MAKE_MEM_DEFINED(iov[i].iov_base, n);
        left -= n;
    }
#else
    (void)op, (void)res;
#endif
}

/* op's last completion: off its fd's list, and -EBADF if its fd was closed under it. */
static void finish(struct crl__core *c, struct crl__op *op, int res)
{
    if (uop(op)->queued)
        untrack(st_of(c), op);
    if (uop(op)->closed && res < 0)
        res = -EBADF;
    mark_defined(op, res);
    crl__op_complete(c, op, res);
}

static void on_accept_multi(struct crl__core *c, struct crl__op *op, int res, unsigned flags)
{
    bool more = flags & IORING_CQE_F_MORE;
    if (!more && uop(op)->queued)
        untrack(st_of(c), op);
    if (!more && uop(op)->closed && res < 0)
        res = -EBADF;
    uop(op)->on_accept(c, op, res, more);
}

/* A receive watch's completion: its bytes (in a buffer of the pool that the watch now
 * holds), or an error, reported as readiness to the watch's function. */
static void on_buffered(struct crl__core *c, struct crl__op *op, int res, unsigned flags)
{
    struct uring_state *st = st_of(c);
    if (flags & IORING_CQE_F_BUFFER) {
        unsigned id = flags >> IORING_CQE_BUFFER_SHIFT;
        if (res > 0) {
            op->a.watch.data = st->bufs + (size_t)id * BUF_SIZE;
            op->a.watch.len = (uint32_t)res;
            op->a.watch.buf = (uint16_t)id;
#ifdef CRL_MEMCHECK
            VALGRIND_MAKE_MEM_DEFINED(op->a.watch.data, (size_t)res);
#endif
        } else {
            buf_add(st, id); /* nothing in it */
        }
    }
    if ((res == -EINTR || res == -EAGAIN) && !uop(op)->cancelling) {
        uop(op)->buffered = res == -EINTR; /* -EAGAIN: this kernel does not wait, so poll */
        issue(c, op);
        return;
    }
    if (res == -EINTR || res == -EAGAIN)
        res = -ECANCELED;
    else if (res == -ENOBUFS || res > 0)
        res = POLLIN; /* -ENOBUFS: the pool was empty, the bytes wait in the socket */
    else if (res == 0)
        res = POLLIN | POLLRDHUP;
    finish(c, op, res);
}

static void on_cqe(struct crl__core *c, uint64_t data, int res, unsigned flags)
{
    unsigned tag = data & TAG_MASK;
    if (tag == 0 && uop((struct crl__op *)(uintptr_t)data)->standing) {
        on_accept_multi(c, (struct crl__op *)(uintptr_t)data, res, flags);
        return;
    }
    if (__builtin_expect(c->io->faults != NULL, 0) && tag == 0)
        res = crl__faults_result((struct crl__op *)(uintptr_t)data, res);
    if (tag == 0 && __builtin_expect(uop((struct crl__op *)(uintptr_t)data)->buffered, 0)) {
        on_buffered(c, (struct crl__op *)(uintptr_t)data, res, flags);
        return;
    }
    if (tag == 0 && res != -EAGAIN && res != -EINPROGRESS) { /* the common case: done */
        struct crl__op *op = (struct crl__op *)(uintptr_t)data;
        if (res == -EINTR && !uop(op)->cancelling) {
            issue(c, op); /* interrupted before it did anything: again (cancelled: done) */
            return;
        }
        if (crl__is_send_all(op) && (res = crl__send_all_step(op, res)) == -EAGAIN) {
            if (!uop(op)->cancelling) {
                issue(c, op); /* the rest: older kernels stop short */
                return;
            }
            res = -ECANCELED; /* reported as the bytes sent: crl__op_complete */
        }
        finish(c, op, res);
        return;
    }
    if (tag == TAG_CANCEL)
        return;
    if (tag == TAG_WAKE) {
        crl__core_woken_read(c); /* on an error too: a wake-up lost would hang a job */
        if (res != -ECANCELED)   /* cancelled: the ring is going away */
            arm_wakeup(c);
        return;
    }
    struct crl__op *op = (struct crl__op *)(uintptr_t)(data & ~(uint64_t)TAG_MASK);
    if (tag == TAG_POLL) {
        if (res < 0 || uop(op)->cancelling)
            finish(c, op, res < 0 ? res : -ECANCELED);
        else if (op->kind == CRL__OP_CONNECT)
            finish(c, op, connect_result(op->fd));
        else {
            op->poll_first = false; /* ready now: try the op again, without a second poll */
            issue(c, op);
        }
        return;
    }
    unsigned events = readiness_events(op);
    bool would_block = res == -EAGAIN || (op->kind == CRL__OP_CONNECT && res == -EINPROGRESS);
    if (would_block && events && !uop(op)->cancelling) {
        poll_for(ring_of(c), op, events);
    } else {
        if (would_block && uop(op)->cancelling)
            res = -ECANCELED; /* it did nothing, and will not be tried again */
        finish(c, op, res);
    }
}

/* With hundreds of connections, the op a completion names (in its task's stack) is rarely
 * in cache: fetch the ops a few completions ahead so their misses overlap. A prefetch never
 * faults, so an op's memory need not be live to be named here. */
enum { REAP_PREFETCH_AHEAD = 8 };

/* The CQE at index i of the completion ring (head-relative indices wrap). */
static const struct io_uring_cqe *cqe_at(const struct io_uring *ring, unsigned i)
{
    return &ring->cq.cqes[i & ring->cq.ring_mask];
}

static void prefetch_op_of(const struct io_uring *ring, unsigned head)
{
    uint64_t data = io_uring_cqe_get_data64(cqe_at(ring, head));
    if ((data & TAG_MASK) != TAG_WAKE)
        __builtin_prefetch((const void *)(uintptr_t)(data & ~(uint64_t)TAG_MASK), 1);
}

/* Closer ahead, the op (fetched by then) names the task its completion will wake: fetch the
 * task's record too. Only an op's own completion (tag 0) is read: its op is live until that
 * completion is handled, and nothing in a reap ends a task. */
static void prefetch_task_of(const struct io_uring *ring, unsigned head)
{
    uint64_t data = io_uring_cqe_get_data64(cqe_at(ring, head));
    if ((data & TAG_MASK) == 0) {
        const struct crl__op *op = (const struct crl__op *)(uintptr_t)data;
        __builtin_prefetch(op->task, 1);
        __builtin_prefetch((const char *)op->task + 64, 1);
    }
}

static unsigned reap(struct crl__core *c)
{
    struct io_uring *ring = ring_of(c);
    unsigned ready = io_uring_cq_ready(ring);
    unsigned head = *ring->cq.khead;
    for (unsigned i = 0; i < ready && i < REAP_PREFETCH_AHEAD; i++)
        prefetch_op_of(ring, head + i);
    for (unsigned i = 0; i < ready; i++) {
        if (i + REAP_PREFETCH_AHEAD < ready)
            prefetch_op_of(ring, head + i + REAP_PREFETCH_AHEAD);
        if (i + REAP_PREFETCH_AHEAD / 2 < ready)
            prefetch_task_of(ring, head + i + REAP_PREFETCH_AHEAD / 2);
        const struct io_uring_cqe *cqe = cqe_at(ring, head + i);
        on_cqe(c, io_uring_cqe_get_data64(cqe), cqe->res, cqe->flags);
    }
    io_uring_cq_advance(ring, ready);
    return ready;
}

/* valgrind 3.19 keeps the other threads from running while one waits in io_uring_enter, so
 * a pool thread could not finish the job the core waits for: under valgrind, with pool jobs
 * out, wait 1 ms at a time. */
static int64_t valgrind_bound(const struct crl__core *c, int64_t deadline_ns)
{
#ifdef CRL_MEMCHECK
    if (RUNNING_ON_VALGRIND && c->io->offload_pending) {
        int64_t soon = crl_now_ns() + CRL_MSEC_NS;
        return deadline_ns < 0 || deadline_ns > soon ? soon : deadline_ns;
    }
#else
    (void)c;
#endif
    return deadline_ns;
}

static void uring_wait(struct crl__core *c, int64_t deadline_ns)
{
    struct io_uring *ring = ring_of(c);
    deadline_ns = valgrind_bound(c, deadline_ns);
    struct io_uring_cqe *cqe;
    if (deadline_ns == 0) {
        io_uring_submit_and_get_events(ring);
    } else if (deadline_ns < 0) {
        io_uring_submit_and_wait(ring, 1);
    } else {
        int64_t left = deadline_ns - crl_now_ns();
        if (left <= 0) {
            io_uring_submit_and_get_events(ring);
        } else {
            struct __kernel_timespec ts = {.tv_sec = left / CRL_SEC_NS,
                                           .tv_nsec = left % CRL_SEC_NS};
            io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
        }
    }
    /* Completions can make more work (a re-issued op): reap until the ring is quiet. */
    while (reap(c) && io_uring_cq_ready(ring))
        ;
}

const struct crl__io_ops crl__io_uring_ops = {
    .name = "io_uring",
    .init = uring_init,
    .fini = uring_fini,
    .submit = uring_submit,
    .cancel = uring_cancel,
    .wait = uring_wait,
    .forget = uring_forget,
    .accept_multi = uring_accept_multi,
    .buf_put = uring_buf_put,
    .sys = &crl__kernel_sys,
};
