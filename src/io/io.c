/* io.c - the backend-independent half of I/O: choosing a backend, running an operation from
 * a task (including the cancellation protocol), and the public read/write/accept/... calls. */
#define _GNU_SOURCE
#include "io.h"
#include "../core/count.h"
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

/* ---- Choosing the backend --------------------------------------------------------------- */

static enum crl_backend backend_from_env(void)
{
    const char *env = getenv("CORRAL_BACKEND");
    if (!env || !*env)
        return CRL_BACKEND_DEFAULT;
    if (strcmp(env, "uring") == 0 || strcmp(env, "io_uring") == 0)
        return CRL_BACKEND_URING;
    if (strcmp(env, "epoll") == 0)
        return CRL_BACKEND_EPOLL;
    if (strcmp(env, "sim") == 0)
        return CRL_BACKEND_SIM;
    crl__logf(CRL_LOG_WARN, "corral: CORRAL_BACKEND=%s is not uring, epoll or sim, ignored", env);
    return CRL_BACKEND_DEFAULT;
}

static atomic_bool fallback_logged;

static int start_backend(struct crl__core *c, enum crl_backend want);

int crl__io_start(struct crl__core *c, enum crl_backend want)
{
    crl_event_init(&c->io->fd_freed);
    pthread_mutex_init(&c->io->done_lock, NULL);
    c->io->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->io->wake_fd < 0)
        return -errno;
    int rc = start_backend(c, want);
    if (rc == 0 && (rc = crl__faults_start(c)) != 0) { /* CORRAL_FAULTS: wraps c->io->ops */
        c->io->ops->fini(c);
        c->io->ops = NULL;
    }
    if (rc) {
        close(c->io->wake_fd);
        c->io->wake_fd = -1;
    }
    return rc;
}

void crl__core_woken_read(struct crl__core *c)
{
    CRL__COUNT(&c->stats, wakeups_received);
    crl__pool_reap(c);
}

void crl__core_woken(struct crl__core *c)
{
    uint64_t n; /* one read takes the whole count and resets it: a write after it wakes again */
    ssize_t unused = read(c->io->wake_fd, &n, sizeof n);
    (void)unused;
    crl__core_woken_read(c);
}

void crl__io_wake(struct crl__core *c)
{
    uint64_t one = 1;
    ssize_t unused = write(c->io->wake_fd, &one, sizeof one);
    (void)unused;
}

enum crl_backend crl__io_backend_choice(enum crl_backend want)
{
    return want == CRL_BACKEND_DEFAULT ? backend_from_env() : want;
}

static int start_backend(struct crl__core *c, enum crl_backend want)
{
    want = crl__io_backend_choice(want);
    if (want == CRL_BACKEND_SIM) { /* never falls back: a simulation must not touch the kernel */
        int rc = crl__io_sim_ops.init(c);
        if (rc == 0)
            c->io->ops = &crl__io_sim_ops;
        return rc;
    }
#ifdef CRL_HAVE_URING
    if (want != CRL_BACKEND_EPOLL) {
        int rc = crl__io_uring_ops.init(c);
        if (rc == 0) {
            c->io->ops = &crl__io_uring_ops;
            return 0;
        }
        if (!atomic_exchange(&fallback_logged, true))
            crl__logf(CRL_LOG_WARN, "corral: io_uring unavailable (%s), using epoll",
                      strerror(-rc));
    }
#else
    if (want == CRL_BACKEND_URING && !atomic_exchange(&fallback_logged, true))
        crl__logf(CRL_LOG_WARN, "corral: built without io_uring, using epoll");
#endif
    int rc = crl__io_epoll_ops.init(c);
    if (rc == 0)
        c->io->ops = &crl__io_epoll_ops;
    return rc;
}

void crl__io_stop(struct crl__core *c)
{
    if (c->io->wake_fd >= 0)
        crl__pool_reap(c); /* results of jobs their callers gave up on, to free */
    if (c->io->ops)
        c->io->ops->fini(c);
    c->io->ops = NULL;
    if (c->io->wake_fd >= 0) {
        crl__pool_wait_wakers(c); /* a pool thread may still be about to write it */
        close(c->io->wake_fd);
        pthread_mutex_destroy(&c->io->done_lock);
    }
    c->io->wake_fd = -1;
}

const char *crl_io_backend(void)
{
    struct crl__core *c = crl__core();
    return c && c->io->ops ? c->io->ops->name : "none";
}

/* ---- Running an operation --------------------------------------------------------------- */

/* The counters' kind of an op (enum crl_io_kind). */
static unsigned io_kind(const struct crl__op *op)
{
    static const uint8_t kinds[] = {
        [CRL__OP_NOP] = CRL_IO_OTHER,       [CRL__OP_READ] = CRL_IO_READ,
        [CRL__OP_WRITE] = CRL_IO_WRITE,     [CRL__OP_READV] = CRL_IO_READ,
        [CRL__OP_WRITEV] = CRL_IO_WRITE,    [CRL__OP_RECV] = CRL_IO_RECV,
        [CRL__OP_SEND] = CRL_IO_SEND,       [CRL__OP_RECVMSG] = CRL_IO_RECV,
        [CRL__OP_SENDMSG] = CRL_IO_SEND,    [CRL__OP_ACCEPT] = CRL_IO_ACCEPT,
        [CRL__OP_CONNECT] = CRL_IO_CONNECT, [CRL__OP_POLL] = CRL_IO_POLL,
        [CRL__OP_OPENAT] = CRL_IO_OPEN,     [CRL__OP_FSYNC] = CRL_IO_SYNC,
        [CRL__OP_SHUTDOWN] = CRL_IO_OTHER,  [CRL__OP_STATX] = CRL_IO_STAT,
    };
    return op->kind < sizeof kinds ? kinds[op->kind] : CRL_IO_OTHER;
}

void crl__op_complete(struct crl__core *c, struct crl__op *op, int res)
{
    CRL__COUNT(&c->stats, io_completed[io_kind(op)]);
    CRL__TRACE_EV(c, CRL__TRACE_IO_COMPLETE, io_kind(op), (int64_t)res);
    if (res == -ECANCELED)
        CRL__COUNT(&c->stats, io_cancelled[io_kind(op)]);
    if (res < 0 && op->sent)
        res = (int)op->sent; /* a send that must send all failed after sending some */
    op->result = res;
    op->done = true;
    c->io->pending--;
    if (op->waiting) {
        op->waiting = false;
        crl__wake_cold(op->task, 0);
    } else if (__builtin_expect(op->detached, 0)) {
        op->a.watch.fn(c, op, res); /* last: fn may reuse or free op */
    }
}

/* Cancellation reached a task parked on op: ask the backend to cancel it. The task is woken
 * with the cancellation error, then waits in crl__op_run for the op's completion. */
static void op_unpark(struct crl_task *t)
{
    struct crl__op *op = t->park_obj;
    op->waiting = false;
    t->core->io->ops->cancel(t->core, op);
}

static const char *op_kind_name(uint8_t kind)
{
    static const char *const names[] = {
        [CRL__OP_NOP] = "nop",       [CRL__OP_READ] = "read",       [CRL__OP_WRITE] = "write",
        [CRL__OP_READV] = "readv",   [CRL__OP_WRITEV] = "writev",   [CRL__OP_RECV] = "recv",
        [CRL__OP_SEND] = "send",     [CRL__OP_RECVMSG] = "recvmsg", [CRL__OP_SENDMSG] = "sendmsg",
        [CRL__OP_ACCEPT] = "accept", [CRL__OP_CONNECT] = "connect", [CRL__OP_POLL] = "poll",
        [CRL__OP_OPENAT] = "openat", [CRL__OP_FSYNC] = "fsync",     [CRL__OP_SHUTDOWN] = "shutdown",
        [CRL__OP_STATX] = "statx",
    };
    return kind < sizeof names / sizeof names[0] && names[kind] ? names[kind] : "operation";
}

static void offload_unpark(struct crl_task *t);

__attribute__((constructor)) static void name_parks(void)
{
    crl__trace_name_park(op_unpark, CRL__PARK_IO);
    crl__trace_name_park(offload_unpark, CRL__PARK_POOL);
}

bool crl__io_describe_wait(void (*unpark)(struct crl_task *t), const void *obj, int64_t now_ns,
                           char *out, size_t cap)
{
    (void)now_ns;
    if (unpark == offload_unpark) {
        snprintf(out, cap, "blocking pool job");
        return true;
    }
    if (unpark != op_unpark)
        return false;
    const struct crl__op *op = obj;
    if (op->kind == CRL__OP_OPENAT)
        snprintf(out, cap, "openat \"%s\"", op->a.open.path ? op->a.open.path : "");
    else
        snprintf(out, cap, "%s fd %d", op_kind_name(op->kind), op->fd);
    return true;
}

int crl__op_start(struct crl__op *op)
{
    struct crl_task *t = crl__self();
    struct crl__core *c = t->core;
    int rc = crl__cancel_status(t);
    if (rc)
        return rc; /* not started: nothing to undo */
    if (op->kind != CRL__OP_NOP && op->kind != CRL__OP_OPENAT && op->kind != CRL__OP_STATX)
        crl__fd_check(op->fd); /* a directory fd that paths are taken from is not I/O on it */
    op->task = t;
    op->done = false;
    op->waiting = false;
    op->fault = 0;
    op->detached = false;
    op->sent = 0;
    c->io->pending++;
    CRL__COUNT(&c->stats, io_ops);
    CRL__COUNT(&c->stats, io_started[io_kind(op)]);
    CRL__TRACE_EV(c, CRL__TRACE_IO_SUBMIT, io_kind(op), (int64_t)op->fd);
    c->io->ops->submit(c, op);
    return 0;
}

int crl__op_finish(struct crl__op *op)
{
    int rc = 0;
    if (!op->done) {
        op->waiting = true;
        rc = crl__park(op_unpark, op);
        /* Cancelled or not, op and the buffers it points to live in our caller's frame: we
         * may not return before the backend is done with them. */
        while (!op->done) {
            op->waiting = true;
            crl__park_held(op_unpark, op);
        }
    }
    if (rc && (op->result == -ECANCELED || op->result == -EINTR))
        return rc;     /* it was cancelled: say why (-ECANCELED or -ETIMEDOUT) */
    return op->result; /* done, even if cancellation arrived meanwhile: nothing is lost */
}

static void watch_start(struct crl__core *c, struct crl__op *op, int fd, short events,
                        crl__watch_fn *fn, void *arg, bool recv)
{
    crl__fd_check(fd);
    *op = (struct crl__op){.kind = CRL__OP_POLL,
                           .detached = true,
                           .fd = fd,
                           .flags = events,
                           .a.watch = {.fn = fn, .arg = arg, .recv = recv}};
    c->io->pending++;
    CRL__COUNT(&c->stats, io_ops);
    CRL__COUNT(&c->stats, io_started[CRL_IO_POLL]);
    CRL__TRACE_EV(c, CRL__TRACE_IO_SUBMIT, CRL_IO_POLL, (int64_t)fd);
    c->io->ops->submit(c, op);
}

void crl__watch_start(struct crl__core *c, struct crl__op *op, int fd, short events,
                      crl__watch_fn *fn, void *arg)
{
    watch_start(c, op, fd, events, fn, arg, false);
}

void crl__watch_recv_start(struct crl__core *c, struct crl__op *op, int fd, crl__watch_fn *fn,
                           void *arg)
{
    watch_start(c, op, fd, POLLIN | POLLRDHUP, fn, arg, c->io->ops->buf_put != NULL);
}

void crl__watch_data_put(struct crl__core *c, struct crl__op *op)
{
    if (!op->a.watch.data)
        return;
    c->io->ops->buf_put(c, op);
    op->a.watch.data = NULL;
    op->a.watch.len = 0;
}

void crl__watch_cancel(struct crl__core *c, struct crl__op *op)
{
    if (!op->done)
        c->io->ops->cancel(c, op);
}

int crl__op_run(struct crl__op *op)
{
    int rc = crl__op_start(op);
    return rc ? rc : crl__op_finish(op);
}

/* ---- Operations with a deadline (io.h) -------------------------------------------------- */

static void op_timer_fire(struct crl__timer *tm)
{
    struct crl__op_timer *t = crl__container_of(tm, struct crl__op_timer, timer);
    struct crl__core *c = crl__core();
    if (!t->op)
        return; /* armed for an operation that is over: idle until the next one */
    if (t->deadline_ns > tm->deadline_ns) {
        crl__timer_arm(&c->wheel, tm, t->deadline_ns); /* fired early: the real deadline */
        return;
    }
    struct crl__op *first = t->first;
    if (first) {
        t->first = NULL;
        if (first->done) { /* first made it in time: op's own deadline is next */
            if (t->then_ns != CRL_NO_DEADLINE) {
                t->deadline_ns = t->then_ns;
                crl__timer_arm(&c->wheel, tm, t->then_ns);
            }
            return;
        }
    }
    t->fired = true; /* a first op still in flight is cancelled once op is */
    if (!t->op->done)
        c->io->ops->cancel(c, t->op); /* its completion still comes, as for any cancel */
}

void crl__op_timer_init(struct crl__op_timer *t)
{
    *t = (struct crl__op_timer){.timer = {.fire = op_timer_fire}};
}

void crl__op_timer_fini(struct crl__op_timer *t)
{
    crl__timer_disarm(&crl__core()->wheel, &t->timer);
}

/* Wait for op, started, cancelling it at deadline_ns: -ETIMEDOUT then. */
static int finish_until(struct crl__op_timer *t, struct crl__op *op, int64_t deadline_ns)
{
    if (deadline_ns == CRL_NO_DEADLINE || op->done)
        return crl__op_finish(op);
    t->fired = false;
    t->op = op;
    t->deadline_ns = deadline_ns;
    if (!crl__timer_armed(&t->timer) || t->timer.deadline_ns > deadline_ns)
        crl__timer_arm(&crl__core()->wheel, &t->timer, deadline_ns);
    int rc = crl__op_finish(op);
    t->op = NULL; /* the timer stays armed: see io.h */
    if (t->fired && (rc == -ECANCELED || rc == -EINTR)) {
        int cancel = crl_checkpoint(); /* our own cancellation wins over the deadline */
        return cancel ? cancel : -ETIMEDOUT;
    }
    return rc;
}

int crl__op_run_until(struct crl__op_timer *t, struct crl__op *op, int64_t deadline_ns)
{
    int rc = crl__op_start(op);
    return rc ? rc : finish_until(t, op, deadline_ns);
}

int crl__op_pair_until(struct crl__op_timer *t, struct crl__op *first, int64_t first_deadline_ns,
                       struct crl__op *second, int64_t second_deadline_ns, int *first_res,
                       int *second_res)
{
    t->fired = false;
    int rc = crl__op_start(first);
    if (rc == 0 && first->done && first->result < 0)
        rc = first->result; /* failed at once: the peer waits for it, so would we */
    if (rc)
        return rc;
    bool fired = false;
    int n = crl__op_start(second); /* cannot be cancelled: nothing ran since first started */
    if (n == 0) {
        bool first_due =
            first_deadline_ns != CRL_NO_DEADLINE && !first->done &&
            (second_deadline_ns == CRL_NO_DEADLINE || first_deadline_ns < second_deadline_ns);
        t->first = first_due ? first : NULL;
        t->then_ns = second_deadline_ns;
        n = finish_until(t, second, first_due ? first_deadline_ns : second_deadline_ns);
        fired = t->fired;
        t->first = NULL;
    }
    if (!first->done && n < 0 && n != -ETIMEDOUT) {
        struct crl__core *c = crl__core();
        c->io->ops->cancel(c, first); /* second failed: the connection ends */
    }                                 /* second's deadline passed: first still has until its own */
    int w = finish_until(t, first, first_deadline_ns);
    t->fired = fired || t->fired;
    *first_res = w;
    *second_res = n;
    return 0;
}

/* ---- The calls -------------------------------------------------------------------------- */

static ssize_t rw(uint8_t kind, int fd, void *buf, size_t len, int64_t off)
{
    struct crl__op op = {.kind = kind, .fd = fd, .off = off, .a.rw = {buf, len}};
    return crl__op_run(&op);
}

ssize_t crl_read(int fd, void *buf, size_t len) { return rw(CRL__OP_READ, fd, buf, len, -1); }

ssize_t crl_write(int fd, const void *buf, size_t len)
{
    return rw(CRL__OP_WRITE, fd, (void *)buf, len, -1);
}

ssize_t crl_pread(int fd, void *buf, size_t len, int64_t offset)
{
    return offset < 0 ? -EINVAL : rw(CRL__OP_READ, fd, buf, len, offset);
}

ssize_t crl_pwrite(int fd, const void *buf, size_t len, int64_t offset)
{
    return offset < 0 ? -EINVAL : rw(CRL__OP_WRITE, fd, (void *)buf, len, offset);
}

static ssize_t rwv(uint8_t kind, int fd, const struct iovec *iov, int iovcnt)
{
    struct crl__op op = {.kind = kind, .fd = fd, .off = -1, .a.v = {iov, iovcnt}};
    return crl__op_run(&op);
}

ssize_t crl_readv(int fd, const struct iovec *iov, int iovcnt)
{
    return rwv(CRL__OP_READV, fd, iov, iovcnt);
}

ssize_t crl_writev(int fd, const struct iovec *iov, int iovcnt)
{
    return rwv(CRL__OP_WRITEV, fd, iov, iovcnt);
}

ssize_t crl_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = crl_write(fd, p + done, len - done);
        if (n < 0)
            return n;
        if (n == 0)
            return -EIO;
        done += (size_t)n;
    }
    return (ssize_t)len;
}

static ssize_t sr(uint8_t kind, int fd, void *buf, size_t len, int flags)
{
    struct crl__op op = {.kind = kind, .fd = fd, .flags = flags, .a.rw = {buf, len}};
    return crl__op_run(&op);
}

ssize_t crl_recv(int fd, void *buf, size_t len, int flags)
{
    return sr(CRL__OP_RECV, fd, buf, len, flags);
}

ssize_t crl_send(int fd, const void *buf, size_t len, int flags)
{
    return sr(CRL__OP_SEND, fd, (void *)buf, len, flags | MSG_NOSIGNAL);
}

ssize_t crl_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from,
                     socklen_t *fromlen)
{
    struct iovec iov = {buf, len};
    struct msghdr msg = {
        .msg_name = from, .msg_namelen = fromlen ? *fromlen : 0, .msg_iov = &iov, .msg_iovlen = 1};
    struct crl__op op = {.kind = CRL__OP_RECVMSG, .fd = fd, .flags = flags, .a.msg = &msg};
    int rc = crl__op_run(&op);
    if (rc >= 0 && fromlen)
        *fromlen = msg.msg_namelen;
    return rc;
}

ssize_t crl_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
                   socklen_t tolen)
{
    struct iovec iov = {(void *)buf, len};
    struct msghdr msg = {
        .msg_name = (void *)to, .msg_namelen = tolen, .msg_iov = &iov, .msg_iovlen = 1};
    struct crl__op op = {
        .kind = CRL__OP_SENDMSG, .fd = fd, .flags = flags | MSG_NOSIGNAL, .a.msg = &msg};
    return crl__op_run(&op);
}

static int wait_fd_freed(void *arg) { return crl__event_wait_for(arg, "an fd to be freed"); }

int crl__accept_backoff(struct crl__core *c, int64_t *backoff_ns)
{
    CRL__COUNT(&c->stats, accept_emfile);
    crl_event_clear(&c->io->fd_freed);
    crl_with_timeout(*backoff_ns, wait_fd_freed, &c->io->fd_freed);
    *backoff_ns = *backoff_ns * 2 > 100 * CRL_MSEC_NS ? 100 * CRL_MSEC_NS : *backoff_ns * 2;
    return crl_checkpoint(); /* the timeout above is ours; a cancellation from outside is not */
}

int crl_accept(int lfd, struct sockaddr *addr, socklen_t *addrlen)
{
    struct crl__core *c = crl__self()->core;
    int64_t backoff_ns = CRL__ACCEPT_BACKOFF_START_NS;
    for (;;) {
        socklen_t len = addrlen ? *addrlen : 0;
        struct crl__op op = {.kind = CRL__OP_ACCEPT,
                             .fd = lfd,
                             .flags = SOCK_NONBLOCK | SOCK_CLOEXEC,
                             .a.accept = {addr, addrlen ? &len : NULL}};
        CRL__COUNT(&c->stats, accept_calls);
        int rc = crl__op_run(&op);
        if (rc >= 0 && addrlen)
            *addrlen = len;
        if (rc != -EMFILE && rc != -ENFILE)
            return rc;
        rc = crl__accept_backoff(c, &backoff_ns);
        if (rc)
            return rc;
    }
}

int crl_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    struct crl__op op = {.kind = CRL__OP_CONNECT, .fd = fd, .a.connect = {addr, addrlen}};
    return crl__op_run(&op);
}

int crl_poll(int fd, short events)
{
    struct crl__op op = {.kind = CRL__OP_POLL, .fd = fd, .flags = events};
    return crl__op_run(&op);
}

int crl_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    struct crl__op op = {
        .kind = CRL__OP_OPENAT, .fd = dirfd, .flags = flags | O_CLOEXEC, .a.open = {path, mode}};
    return crl__op_run(&op);
}

int crl_open(const char *path, int flags, mode_t mode)
{
    return crl_openat(AT_FDCWD, path, flags, mode);
}

int crl_fsync(int fd)
{
    struct crl__op op = {.kind = CRL__OP_FSYNC, .fd = fd};
    return crl__op_run(&op);
}

int crl_shutdown(int fd, int how)
{
    struct crl__op op = {.kind = CRL__OP_SHUTDOWN, .fd = fd, .flags = how};
    return crl__op_run(&op);
}

int crl_close(int fd)
{
    struct crl__core *c = crl__core();
    if (c && c->io->ops && c->io->ops->forget)
        c->io->ops->forget(c, fd);
    crl__fd_check(fd); /* closing another core's fd is a use too */
    crl__fd_release(fd);
    int rc = (c && c->io->ops ? c->io->ops->sys : &crl__kernel_sys)->close(fd);
    if (c && c->io->fd_freed.waiters_.head_)
        crl_event_set(&c->io->fd_freed); /* an accept may be waiting for an fd */
    return rc;
}

int crl_io_nop(void)
{
    struct crl__op op; /* crl__op_run sets the bookkeeping; a NOP has no arguments */
    op.kind = CRL__OP_NOP;
    op.fd = -1;
    return crl__op_run(&op);
}

/* ---- Blocking offload ------------------------------------------------------------------- */

struct offload {
    struct crl__job job; /* first: the pool hands back a pointer to it */
    crl_task_fn *fn;
    void *arg;
    struct crl_task *task;
    bool waiting, finished, dropped;
};

static int offload_run(struct crl__job *job)
{
    struct offload *o = (struct offload *)job;
    return o->fn(o->arg);
}

static void offload_done(struct crl__core *c, struct crl__job *job)
{
    (void)c;
    struct offload *o = (struct offload *)job;
    o->finished = true;
    if (o->waiting) {
        o->waiting = false;
        crl__wake(o->task, 0);
    }
}

/* Cancelled while waiting: a job that has not started is taken back; a running one is not
 * interrupted (the caller goes on waiting for it). */
static void offload_unpark(struct crl_task *t)
{
    struct offload *o = t->park_obj;
    o->waiting = false;
    if (crl__pool_cancel(&o->job)) {
        o->finished = true;
        o->dropped = true;
        t->core->io->offload_pending--;
    }
}

int crl_offload(crl_task_fn *fn, void *arg)
{
    struct crl_task *t = crl__self();
    struct crl__core *c = t->core;
    int rc = crl__cancel_status(t);
    if (rc)
        return rc;
    struct offload o = {
        .job = {.run = offload_run, .done = offload_done}, .fn = fn, .arg = arg, .task = t};
    c->io->offload_pending++;
    rc = crl__pool_submit(c, &o.job);
    if (rc) {
        c->io->offload_pending--;
        return rc;
    }
    o.waiting = true;
    rc = crl__park(offload_unpark, &o);
    while (!o.finished) { /* fn may still be using the caller's frame */
        o.waiting = true;
        crl__park_held(offload_unpark, &o);
    }
    return o.dropped ? rc : o.job.result;
}

/* ---- Signals ---------------------------------------------------------------------------- */

int crl_signal_wait(const void *sigset)
{
    const sigset_t *set = sigset;
    crl__self();
    int rc = pthread_sigmask(SIG_BLOCK, set, NULL);
    if (rc)
        return -rc;
    int fd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct crl__core *c = crl__core();
    if (c->io->ops->forget)
        c->io->ops->forget(c, fd);
    struct signalfd_siginfo info;
    ssize_t n = crl_read(fd, &info, sizeof info);
    crl_close(fd);
    if (n < 0)
        return (int)n;
    return n == sizeof info ? (int)info.ssi_signo : -EIO;
}
