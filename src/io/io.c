/* io.c - the backend-independent half of I/O: choosing a backend, running an operation from
 * a task (including the cancellation protocol), and the public read/write/accept/... calls. */
#define _GNU_SOURCE
#include "io.h"
#include "../smp/smp.h"
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
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
    crl__logf(CRL_LOG_WARN, "corral: CORRAL_BACKEND=%s is not uring or epoll, ignored", env);
    return CRL_BACKEND_DEFAULT;
}

static atomic_bool fallback_logged;

static int start_backend(struct crl__core *c, enum crl_backend want);

int crl__io_start(struct crl__core *c, enum crl_backend want)
{
    pthread_mutex_init(&c->done_lock, NULL);
    c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->wake_fd < 0)
        return -errno;
    int rc = start_backend(c, want);
    if (rc == 0 && (rc = crl__faults_start(c)) != 0) { /* CORRAL_FAULTS: wraps c->io */
        c->io->fini(c);
        c->io = NULL;
    }
    if (rc) {
        close(c->wake_fd);
        c->wake_fd = -1;
    }
    return rc;
}

void crl__core_woken(struct crl__core *c)
{
    uint64_t n;
    while (read(c->wake_fd, &n, sizeof n) == sizeof n)
        ;
    crl__pool_reap(c);
    crl__smp_poll(c);
}

static int start_backend(struct crl__core *c, enum crl_backend want)
{
    if (want == CRL_BACKEND_DEFAULT)
        want = backend_from_env();
#ifdef CRL_HAVE_URING
    if (want != CRL_BACKEND_EPOLL) {
        int rc = crl__io_uring_ops.init(c);
        if (rc == 0) {
            c->io = &crl__io_uring_ops;
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
        c->io = &crl__io_epoll_ops;
    return rc;
}

void crl__io_stop(struct crl__core *c)
{
    if (c->io)
        c->io->fini(c);
    c->io = NULL;
    if (c->wake_fd >= 0) {
        close(c->wake_fd);
        pthread_mutex_destroy(&c->done_lock);
    }
    c->wake_fd = -1;
}

const char *crl_io_backend(void)
{
    struct crl__core *c = crl__core();
    return c && c->io ? c->io->name : "none";
}

/* ---- Running an operation --------------------------------------------------------------- */

void crl__op_complete(struct crl__core *c, struct crl__op *op, int res)
{
    if (res < 0 && op->sent)
        res = (int)op->sent; /* a send that must send all failed after sending some */
    op->result = res;
    op->done = true;
    c->io_pending--;
    if (op->waiting) {
        op->waiting = false;
        crl__wake_cold(op->task, 0);
    }
}

/* Cancellation reached a task parked on op: ask the backend to cancel it. The task is woken
 * with the cancellation error, then waits in crl__op_run for the op's completion. */
static void op_unpark(struct crl_task *t)
{
    struct crl__op *op = t->park_obj;
    op->waiting = false;
    t->core->io->cancel(t->core, op);
}

int crl__op_start(struct crl__op *op)
{
    struct crl_task *t = crl__self();
    struct crl__core *c = t->core;
    int rc = crl__cancel_status(t);
    if (rc)
        return rc; /* not started: nothing to undo */
    if (op->kind != CRL__OP_NOP && op->kind != CRL__OP_OPENAT)
        crl__fd_check(op->fd);
    op->task = t;
    op->done = false;
    op->waiting = false;
    op->queued = false;
    op->cancelling = false;
    op->closed = false;
    op->in_pool = false;
    op->phase = 0;
    op->fault = 0;
    op->sent = 0;
    c->io_pending++;
    c->stats.io_ops++;
    c->io->submit(c, op);
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
            crl__park(NULL, op);
        }
    }
    if (rc && (op->result == -ECANCELED || op->result == -EINTR))
        return rc;     /* it was cancelled: say why (-ECANCELED or -ETIMEDOUT) */
    return op->result; /* done, even if cancellation arrived meanwhile: nothing is lost */
}

int crl__op_run(struct crl__op *op)
{
    int rc = crl__op_start(op);
    return rc ? rc : crl__op_finish(op);
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

static int wait_fd_freed(void *arg) { return crl_event_wait(arg); }

int crl__accept_backoff(struct crl__core *c, int64_t *backoff_ns)
{
    c->stats.accept_emfile++;
    crl_event_clear(&c->fd_freed);
    crl_with_timeout(*backoff_ns, wait_fd_freed, &c->fd_freed);
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
        c->stats.accept_calls++;
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

int crl_open(const char *path, int flags, mode_t mode)
{
    struct crl__op op = {
        .kind = CRL__OP_OPENAT, .fd = AT_FDCWD, .flags = flags | O_CLOEXEC, .a.open = {path, mode}};
    return crl__op_run(&op);
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
    if (c && c->io && c->io->forget)
        c->io->forget(c, fd);
    crl__fd_check(fd); /* closing another core's fd is a use too */
    crl__fd_release(fd);
    int rc = close(fd) == 0 ? 0 : -errno;
    if (c && c->fd_freed.waiters_.head_)
        crl_event_set(&c->fd_freed); /* an accept may be waiting for an fd */
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
        t->core->offload_pending--;
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
    c->offload_pending++;
    rc = crl__pool_submit(c, &o.job);
    if (rc) {
        c->offload_pending--;
        return rc;
    }
    o.waiting = true;
    rc = crl__park(offload_unpark, &o);
    while (!o.finished) { /* fn may still be using the caller's frame */
        o.waiting = true;
        crl__park(NULL, &o);
    }
    return o.dropped ? rc : o.job.result;
}

/* ---- Signals ---------------------------------------------------------------------------- */

int crl_signal_wait(const sigset_t *set)
{
    crl__self();
    int rc = pthread_sigmask(SIG_BLOCK, set, NULL);
    if (rc)
        return -rc;
    int fd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct crl__core *c = crl__core();
    if (c->io->forget)
        c->io->forget(c, fd);
    struct signalfd_siginfo info;
    ssize_t n = crl_read(fd, &info, sizeof info);
    crl_close(fd);
    if (n < 0)
        return (int)n;
    return n == sizeof info ? (int)info.ssi_signo : -EIO;
}
