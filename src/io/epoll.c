/* epoll.c - the epoll backend, for kernels or sandboxes that refuse io_uring. The same
 * completion model as io_uring: an operation is first tried at once (non-blocking); if it
 * would block it waits in its fd's queue, and the backend makes the syscall again when epoll
 * reports the fd ready. Each fd is registered once, edge-triggered, for both directions.
 *
 * An fd closed with close(2) instead of crl_close silently leaves epoll, and a new file may
 * get its number: ops waiting on it would never hear an event. So a sweep, every
 * SWEEP_NS while ops wait, checks each fd whose ops heard nothing since the last one
 * (EPOLL_CTL_ADD: EEXIST says the registration is there), backing off for fds that stay
 * quiet; it costs no syscall on the path of an op. Events carry the fd's registration
 * generation, so an old file's registration kept alive by a dup cannot wake the new one.
 *
 * Regular files never report "would block", so their calls go to the blocking pool; a read
 * from a buffered file first tries preadv2(RWF_NOWAIT), which succeeds without the pool when
 * the page cache has the data. open and fsync always go to the pool. */
#define _GNU_SOURCE
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

enum fd_kind { FD_UNKNOWN, FD_FILE, FD_STREAM };

/* This backend's state of an op, in its backend_ bytes (set up by ep_submit). */
struct ep_op {
    struct crl__job job;         /* file I/O runs as a blocking-pool job */
    struct crl__op *next, *prev; /* its fd's queue (see queued) */
    bool queued;                 /* waiting in its fd's queue */
    bool in_pool;                /* job queued or running */
    uint8_t phase;               /* connect: 0 not tried yet, 1 in progress */
};
_Static_assert(sizeof(struct ep_op) <= CRL__OP_BACKEND_SIZE, "ep_op must fit in an op");
_Static_assert(_Alignof(struct ep_op) <= 8, "ep_op must fit the alignment of backend_");

static struct ep_op *eop(struct crl__op *op) { return (struct ep_op *)(void *)op->backend_; }

_Static_assert(offsetof(struct ep_op, job) == 0, "op_of_job takes the job for its ep_op");

static struct crl__op *op_of_job(struct crl__job *job)
{
    return crl__container_of(job, struct crl__op, backend_);
}

struct ep_fd {
    struct crl__op *head, *tail; /* ops waiting for this fd to become ready */
    uint8_t kind;
    bool registered;
    bool direct;      /* a file opened O_DIRECT */
    bool stream_sock; /* a SOCK_STREAM socket: a short read empties its receive queue */
    bool drained;     /* its last read came up short and no input event came since */
    bool hung_up;     /* the peer's end (or an error) was reported: no edge will follow */
    bool heard;       /* an event completed an op since the last sweep: it is registered */
    uint16_t quiet;   /* sweeps in a row that found ops waiting and heard nothing */
    uint32_t gen;     /* of the registration: in its events' keys, bumped when it changes */
};

struct ep_state {
    int epfd;
    int nfds;
    struct ep_fd *fds;
    size_t nqueued;         /* ops waiting in the fds' queues */
    int hi;                 /* above every fd an op ever waited on: where a sweep stops */
    int64_t sweep_ns;       /* the next sweep, 0 when none is due */
    int64_t sweep_every_ns; /* SWEEP_NS after new waits, doubling while none come */
    bool fresh;             /* an op began to wait since the last sweep */
};

enum {
    MAX_EVENTS = 128,
    EP_EVENTS = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
    QUIET_MAX = 1024, /* a quiet fd is checked after 1, 2, 4, ... sweeps, then every 512 */
};
#define SWEEP_NS (50 * CRL_MSEC_NS)
#define SWEEP_MAX_NS (3200 * CRL_MSEC_NS)
#define WAKE_KEY UINT64_MAX

/* An event's key: the fd and the generation of its registration. */
static uint64_t key_of(int fd, uint32_t gen) { return (uint64_t)gen << 32 | (uint32_t)fd; }
static int key_fd(uint64_t key) { return (int)(uint32_t)key; }
static uint32_t key_gen(uint64_t key) { return (uint32_t)(key >> 32); }

static struct ep_state *st_of(struct crl__core *c) { return c->io->state; }

static int ep_init(struct crl__core *c)
{
    struct ep_state *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    st->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (st->epfd < 0) {
        int rc = -errno;
        free(st);
        return rc;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_KEY};
    if (epoll_ctl(st->epfd, EPOLL_CTL_ADD, c->io->wake_fd, &ev) != 0) {
        int rc = -errno;
        close(st->epfd);
        free(st);
        return rc;
    }
    st->sweep_every_ns = SWEEP_NS;
    c->io->state = st;
    return 0;
}

static void ep_fini(struct crl__core *c)
{
    struct ep_state *st = st_of(c);
    close(st->epfd);
    free(st->fds);
    free(st);
    c->io->state = NULL;
}

static struct ep_fd *fd_entry(struct ep_state *st, int fd)
{
    if (fd < 0)
        return NULL;
    if (fd >= st->nfds) {
        int n = st->nfds ? st->nfds : 64;
        while (n <= fd)
            n *= 2;
        struct ep_fd *fds = realloc(st->fds, (size_t)n * sizeof *fds);
        if (!fds)
            return NULL;
        memset(fds + st->nfds, 0, (size_t)(n - st->nfds) * sizeof *fds);
        st->fds = fds;
        st->nfds = n;
    }
    return &st->fds[fd];
}

/* Regular files and block devices never say EAGAIN; anything else is made non-blocking so
 * that a read can never block the core. */
static uint8_t fd_kind(struct ep_fd *e, int fd)
{
    if (e->kind != FD_UNKNOWN)
        return e->kind;
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return FD_STREAM; /* not open: the op itself says so (-EBADF); nothing is cached */
    if (S_ISREG(sb.st_mode) || S_ISBLK(sb.st_mode)) {
        e->kind = FD_FILE;
        int fl = fcntl(fd, F_GETFL);
        e->direct = fl >= 0 && (fl & O_DIRECT);
    } else {
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0 && !(fl & O_NONBLOCK))
            fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        e->kind = FD_STREAM;
        int type = 0;
        socklen_t len = sizeof type;
        e->stream_sock = S_ISSOCK(sb.st_mode) &&
                         getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
                         type == SOCK_STREAM;
    }
    return e->kind;
}

static int neg_errno(ssize_t r) { return r < 0 ? -errno : (int)r; }

static int try_connect(struct crl__op *op)
{
    if (eop(op)->phase == 0) {
        eop(op)->phase = 1;
        if (connect(op->fd, op->a.connect.addr, op->a.connect.addrlen) == 0)
            return 0;
        return errno == EINPROGRESS ? -EAGAIN : -errno;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return -errno;
    if (err == 0) {
        struct pollfd p = {op->fd, POLLOUT, 0};
        if (poll(&p, 1, 0) == 0)
            return -EAGAIN; /* not connected yet */
    }
    return -err;
}

static int try_poll(struct crl__op *op)
{
    struct pollfd p = {op->fd, (short)op->flags, 0};
    int n = poll(&p, 1, 0);
    if (n < 0)
        return -errno;
    return n ? p.revents : -EAGAIN;
}

/* One attempt at op's syscall: its result, or -EAGAIN if it would block. */
static int try_op(struct crl__op *op)
{
    const int dw = MSG_DONTWAIT;
    switch (op->kind) {
    case CRL__OP_NOP: return 0;
    case CRL__OP_READ:
        return neg_errno(op->off < 0 ? read(op->fd, op->a.rw.buf, op->a.rw.len)
                                     : pread(op->fd, op->a.rw.buf, op->a.rw.len, op->off));
    case CRL__OP_WRITE:
        return neg_errno(op->off < 0 ? write(op->fd, op->a.rw.buf, op->a.rw.len)
                                     : pwrite(op->fd, op->a.rw.buf, op->a.rw.len, op->off));
    case CRL__OP_READV:
        return neg_errno(op->off < 0 ? readv(op->fd, op->a.v.iov, op->a.v.iovcnt)
                                     : preadv(op->fd, op->a.v.iov, op->a.v.iovcnt, op->off));
    case CRL__OP_WRITEV:
        return neg_errno(op->off < 0 ? writev(op->fd, op->a.v.iov, op->a.v.iovcnt)
                                     : pwritev(op->fd, op->a.v.iov, op->a.v.iovcnt, op->off));
    case CRL__OP_RECV: return neg_errno(recv(op->fd, op->a.rw.buf, op->a.rw.len, op->flags | dw));
    case CRL__OP_SEND: return neg_errno(send(op->fd, op->a.rw.buf, op->a.rw.len, op->flags | dw));
    case CRL__OP_RECVMSG: return neg_errno(recvmsg(op->fd, op->a.msg, op->flags | dw));
    case CRL__OP_SENDMSG: return neg_errno(sendmsg(op->fd, op->a.msg, op->flags | dw));
    case CRL__OP_ACCEPT:
        return neg_errno(accept4(op->fd, op->a.accept.addr, op->a.accept.addrlen, op->flags));
    case CRL__OP_CONNECT: return try_connect(op);
    case CRL__OP_POLL: return try_poll(op);
    case CRL__OP_OPENAT:
        return neg_errno(openat(op->fd, op->a.open.path, op->flags, op->a.open.mode));
    case CRL__OP_FSYNC: return neg_errno(fsync(op->fd));
    case CRL__OP_SHUTDOWN: return neg_errno(shutdown(op->fd, op->flags));
    }
    return -EINVAL;
}

static void forget_entry(struct crl__core *c, struct ep_state *st, int fd, struct ep_fd *e);

/* A new fd (from accept or open) may reuse the number of one closed behind our back. */
static void fresh_fd(struct crl__core *c, struct ep_state *st, int fd)
{
    struct ep_fd *e = fd >= 0 && fd < st->nfds ? &st->fds[fd] : NULL;
    if (e && (e->kind || e->registered || e->head))
        forget_entry(c, st, fd, e);
}

static void complete(struct crl__core *c, struct crl__op *op, int res)
{
    if (res >= 0 && (op->kind == CRL__OP_ACCEPT || op->kind == CRL__OP_OPENAT))
        fresh_fd(c, st_of(c), res);
    crl__op_complete(c, op, res);
}

static void enqueue(struct ep_state *st, struct ep_fd *e, struct crl__op *op)
{
    st->nqueued++;
    st->fresh = true;
    if (op->fd >= st->hi)
        st->hi = op->fd + 1;
    struct ep_op *o = eop(op);
    o->queued = true;
    o->next = NULL;
    o->prev = e->tail;
    if (e->tail)
        eop(e->tail)->next = op;
    else
        e->head = op;
    e->tail = op;
}

static void unlink_op(struct ep_state *st, struct ep_fd *e, struct crl__op *op)
{
    struct ep_op *o = eop(op);
    st->nqueued--;
    if (o->prev)
        eop(o->prev)->next = o->next;
    else
        e->head = o->next;
    if (o->next)
        eop(o->next)->prev = o->prev;
    else
        e->tail = o->prev;
    o->queued = false;
}

/* ---- Files: the blocking pool ------------------------------------------------------------ */

static int file_job_run(struct crl__job *job)
{
    int res;
    do /* may block: pool thread; interrupted, again */
        res = try_op(op_of_job(job));
    while (res == -EINTR);
    return res;
}

static void file_job_done(struct crl__core *c, struct crl__job *job)
{
    struct crl__op *op = op_of_job(job);
    eop(op)->in_pool = false;
    complete(c, op, job->result);
}

/* A read that the page cache can serve at once, without the pool; -EAGAIN otherwise. */
static int read_nowait(struct crl__op *op)
{
    struct iovec one = {op->a.rw.buf, op->a.rw.len};
    const struct iovec *iov = op->kind == CRL__OP_READ ? &one : op->a.v.iov;
    int cnt = op->kind == CRL__OP_READ ? 1 : op->a.v.iovcnt;
    ssize_t n = preadv2(op->fd, iov, cnt, op->off < 0 ? -1 : op->off, RWF_NOWAIT);
    if (n >= 0)
        return (int)n;
    return errno == EOPNOTSUPP ? -EAGAIN : -errno;
}

/* direct: the fd is O_DIRECT, for which RWF_NOWAIT only avoids blocking on submission and
 * the call still waits for the device: such reads go straight to the pool. */
static void to_pool(struct crl__core *c, struct crl__op *op, bool direct)
{
    if (!direct && (op->kind == CRL__OP_READ || op->kind == CRL__OP_READV)) {
        int res = read_nowait(op);
        if (res != -EAGAIN) {
            complete(c, op, res);
            return;
        }
    }
    struct ep_op *o = eop(op);
    o->job.run = file_job_run;
    o->job.done = file_job_done;
    o->in_pool = true;
    c->io->offload_pending++;
    int rc = crl__pool_submit(c, &o->job);
    if (rc) {
        o->in_pool = false;
        c->io->offload_pending--;
        complete(c, op, rc);
    }
}

/* A plain recv on a stream socket that returned less than asked emptied the receive queue
 * (0, the end of input, stays readable and is no such sign). */
static bool recv_drains(const struct crl__op *op)
{
    return op->kind == CRL__OP_RECV && !(op->flags & MSG_PEEK);
}

/* A poll for input alone: on a drained fd it can only be answered by the next input edge. */
static bool waits_for_input(const struct crl__op *op)
{
    return op->kind == CRL__OP_POLL && !(op->flags & ~(POLLIN | POLLRDHUP));
}

/* An EAGAIN from fault injection: the fd may well be ready, and its edge came and went, so
 * re-arm it (a modification reports readiness again); an fd not registered yet is reported
 * once added. */
static int injected_eagain(struct crl__core *c, struct ep_fd *e, int fd)
{
    if (e->registered) {
        struct epoll_event ev = {.events = EP_EVENTS, .data.u64 = key_of(fd, e->gen)};
        epoll_ctl(st_of(c)->epfd, EPOLL_CTL_MOD, fd, &ev);
    }
    return -EAGAIN;
}

/* Try op, noting whether it left the fd's input drained; a short send that must send all
 * waits for room (-EAGAIN). */
static int try_stream_op(struct crl__core *c, struct ep_fd *e, struct crl__op *op)
{
    int res;
    do { /* a call interrupted did nothing: again */
        res = __builtin_expect(c->io->faults != NULL, 0) ? crl__faults_kernel(c, op) : 0;
        if (res == -EAGAIN)
            return injected_eagain(c, e, op->fd);
        if (res == 0)
            res = try_op(op);
    } while (res == -EINTR);
    /* Once the peer's end was reported, its edge is spent: a short read that consumed the
     * data before it must not make the next receive wait for an edge that never comes. */
    if (e->stream_sock && recv_drains(op))
        e->drained = !e->hung_up && (res == -EAGAIN || (res > 0 && (size_t)res < op->a.rw.len));
    if (crl__is_send_all(op))
        res = crl__send_all_step(op, res);
    return res;
}

static int register_fd(struct ep_state *st, int fd, struct ep_fd *e)
{
    struct epoll_event ev = {.events = EP_EVENTS, .data.u64 = key_of(fd, e->gen)};
    if (epoll_ctl(st->epfd, EPOLL_CTL_ADD, fd, &ev) != 0 &&
        (errno != EEXIST || epoll_ctl(st->epfd, EPOLL_CTL_MOD, fd, &ev) != 0))
        return -errno; /* EEXIST: registered under an older generation (MOD renews it) */
    e->registered = true;
    return 0;
}

static void ep_submit(struct crl__core *c, struct crl__op *op)
{
    struct ep_state *st = st_of(c);
    struct ep_op *o = eop(op);
    o->queued = false;
    o->in_pool = false;
    o->phase = 0;
    if (op->kind == CRL__OP_NOP || op->kind == CRL__OP_SHUTDOWN) {
        complete(c, op, try_op(op));
        return;
    }
    if (op->kind == CRL__OP_STATX) {
        complete(c, op, -ENOSYS); /* the caller stats in the blocking pool (io.h) */
        return;
    }
    if (op->kind == CRL__OP_OPENAT || op->kind == CRL__OP_FSYNC) {
        to_pool(c, op, true);
        return;
    }
    struct ep_fd *e = fd_entry(st, op->fd);
    if (!e) {
        complete(c, op, op->fd < 0 ? -EBADF : -ENOMEM);
        return;
    }
    if (fd_kind(e, op->fd) == FD_FILE) {
        to_pool(c, op, e->direct);
        return;
    }
    /* A recv after a short one on a registered socket waits for the next input edge: trying
     * it first would only hear EAGAIN (a request-response peer has not answered yet). So
     * does a wait for input alone (an idle connection's watch after its last request). */
    bool doomed = e->registered && e->drained && (recv_drains(op) || waits_for_input(op));
    int res = doomed ? -EAGAIN : try_stream_op(c, e, op);
    if (res != -EAGAIN) {
        complete(c, op, res);
        return;
    }
    if (!e->registered) {
        int rc = register_fd(st, op->fd, e);
        if (rc) {
            complete(c, op, rc);
            return;
        }
    }
    enqueue(st, e, op);
}

static void ep_cancel(struct crl__core *c, struct crl__op *op)
{
    struct ep_op *o = eop(op);
    if (o->in_pool) {
        if (crl__pool_cancel(&o->job)) { /* not started: it never will */
            o->in_pool = false;
            c->io->offload_pending--;
            complete(c, op, -ECANCELED);
        }
        return; /* running: its completion comes back through the pool */
    }
    if (!o->queued)
        return;
    unlink_op(st_of(c), &st_of(c)->fds[op->fd], op);
    complete(c, op, -ECANCELED);
}

/* The fd reported readiness: retry every op waiting on it; those that no longer would
 * block complete (edge-triggered: an op left waiting is retried on the next edge). */
static void fd_ready(struct crl__core *c, struct ep_state *st, struct ep_fd *e, uint32_t events)
{
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        e->drained = false;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        e->hung_up = true;
    struct crl__op *op = e->head;
    while (op) {
        struct crl__op *next = eop(op)->next;
        int res = try_stream_op(c, e, op);
        if (res != -EAGAIN) {
            unlink_op(st, e, op);
            complete(c, op, res);
            e->heard = true; /* not just any event: an old file's may come under this number */
        }
        op = next;
    }
}

/* An event for the fd and registration its key names (an older registration's: ignored). */
static void event(struct crl__core *c, struct ep_state *st, uint64_t key, uint32_t events)
{
    int fd = key_fd(key);
    if (fd >= 0 && fd < st->nfds && st->fds[fd].gen == key_gen(key))
        fd_ready(c, st, &st->fds[fd], events);
}

/* fd's ops heard nothing for a while: is fd still registered? If the add succeeds, the
 * registration was gone (closed behind our back, the number reused): fd is registered anew
 * and its ops try again at once; if it fails otherwise (EBADF), trying ends them. */
static void check_registered(struct crl__core *c, struct ep_state *st, int fd, struct ep_fd *e)
{
    struct epoll_event ev = {.events = EP_EVENTS, .data.u64 = key_of(fd, e->gen + 1)};
    if (epoll_ctl(st->epfd, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST)
        return;
    e->gen++;
    e->drained = false;
    e->hung_up = false;
    fd_ready(c, st, e, EPOLLIN | EPOLLOUT);
}

static void sweep(struct crl__core *c, struct ep_state *st)
{
    for (int fd = 0; fd < st->hi; fd++) {
        struct ep_fd *e = &st->fds[fd];
        if (!e->head || e->heard) {
            e->heard = false;
            e->quiet = 0;
            continue;
        }
        if (++e->quiet == QUIET_MAX)
            e->quiet = QUIET_MAX / 2;
        if ((e->quiet & (e->quiet - 1)) == 0) /* a power of two */
            check_registered(c, st, fd, e);
    }
}

/* Sweep if one is due (the first op to wait only schedules one); returns the wait's deadline,
 * brought forward to the next sweep. Sweeps come every SWEEP_NS while ops begin to wait,
 * further apart while only old ones wait (an idle core is left asleep). The coarse clock
 * (a tick behind) when not about to block; the exact one before blocking, which must not
 * wake before the sweep is due. */
static int64_t sweep_if_due(struct crl__core *c, struct ep_state *st, int64_t deadline_ns)
{
    int64_t now = deadline_ns == 0 ? crl__now_coarse_ns() : crl_now_ns();
    if (st->sweep_ns && now >= st->sweep_ns) {
        if (now < st->sweep_ns + st->sweep_every_ns) /* else long gone: start over */
            sweep(c, st);
        st->sweep_ns = 0;
        int64_t longer = st->sweep_every_ns * 2; /* only old waits: they are checked less */
        st->sweep_every_ns = st->fresh ? SWEEP_NS : longer < SWEEP_MAX_NS ? longer : SWEEP_MAX_NS;
        st->fresh = false;
    }
    if (!st->nqueued)
        return deadline_ns;
    if (st->fresh && st->sweep_ns > now + SWEEP_NS)
        st->sweep_ns = now + SWEEP_NS; /* a new wait is checked soon */
    if (!st->sweep_ns)
        st->sweep_ns = now + st->sweep_every_ns;
    return deadline_ns == 0 || (deadline_ns > 0 && deadline_ns < st->sweep_ns) ? deadline_ns
                                                                               : st->sweep_ns;
}

static bool no_pwait2; /* epoll_pwait2 missing (Linux < 5.11, qemu-user): use epoll_wait */

/* epoll_pwait2 with a nanosecond timeout, or epoll_wait with it rounded up to milliseconds. */
static int wait_events(int epfd, struct epoll_event *events, const struct timespec *ts)
{
    if (!no_pwait2) {
        int n = epoll_pwait2(epfd, events, MAX_EVENTS, ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        no_pwait2 = true;
    }
    int ms = -1;
    if (ts) {
        int64_t ns = (int64_t)ts->tv_sec * CRL_SEC_NS + ts->tv_nsec;
        ms = ns > INT32_MAX * CRL_MSEC_NS ? INT32_MAX : (int)((ns + CRL_MSEC_NS - 1) / CRL_MSEC_NS);
    }
    return epoll_wait(epfd, events, MAX_EVENTS, ms);
}

/* With hundreds of connections, the op waiting on an fd (in its task's stack) and the task
 * it wakes are rarely in cache: fetch the op two events ahead, while this event's syscall
 * runs, and its task one event ahead, once the op is in. */
static const struct crl__op *op_waiting_on(const struct ep_state *st, uint64_t key)
{
    int fd = key_fd(key);
    return fd >= 0 && fd < st->nfds ? st->fds[fd].head : NULL;
}

static void prefetch_ahead(const struct ep_state *st, const struct epoll_event *events, int i,
                           int n)
{
    if (i + 2 < n)
        __builtin_prefetch(op_waiting_on(st, events[i + 2].data.u64), 1);
    const struct crl__op *op = i + 1 < n ? op_waiting_on(st, events[i + 1].data.u64) : NULL;
    if (op)
        __builtin_prefetch(op->task, 1);
}

static void ep_wait(struct crl__core *c, int64_t deadline_ns)
{
    struct ep_state *st = st_of(c);
    struct epoll_event events[MAX_EVENTS];
    struct timespec ts = {0, 0}, *tsp = &ts;
    if (st->nqueued)
        deadline_ns = sweep_if_due(c, st, deadline_ns);
    if (deadline_ns < 0) {
        tsp = NULL;
    } else if (deadline_ns > 0) {
        int64_t left = deadline_ns - crl_now_ns();
        if (left > 0)
            ts = (struct timespec){.tv_sec = left / CRL_SEC_NS, .tv_nsec = left % CRL_SEC_NS};
    }
    int n = wait_events(st->epfd, events, tsp);
    for (int i = 0; i < n; i++) {
        prefetch_ahead(st, events, i, n);
        if (events[i].data.u64 == WAKE_KEY)
            crl__core_woken(c);
        else
            event(c, st, events[i].data.u64, events[i].events);
    }
}

static void forget_entry(struct crl__core *c, struct ep_state *st, int fd, struct ep_fd *e)
{
    if (e->registered)
        epoll_ctl(st->epfd, EPOLL_CTL_DEL, fd, NULL);
    while (e->head) {
        struct crl__op *op = e->head;
        unlink_op(st, e, op);
        crl__op_complete(c, op, -EBADF);
    }
    *e = (struct ep_fd){.gen = e->gen + 1}; /* an older registration's events stay stale */
}

static void ep_forget(struct crl__core *c, int fd)
{
    struct ep_state *st = st_of(c);
    if (fd >= 0 && fd < st->nfds)
        forget_entry(c, st, fd, &st->fds[fd]);
}

const struct crl__io_ops crl__io_epoll_ops = {
    .name = "epoll",
    .init = ep_init,
    .fini = ep_fini,
    .submit = ep_submit,
    .cancel = ep_cancel,
    .wait = ep_wait,
    .forget = ep_forget,
    .sys = &crl__kernel_sys,
};
