/* io.h - the I/O layer's internals: one completion model for every backend.
 *
 * A one-shot operation is a record on the waiting task's stack (struct crl__op) that lives
 * until its completion arrives: the backend completes it with crl__op_complete(), whether it
 * ran to the end, failed or was cancelled. io_uring turns it into an SQE; epoll waits for
 * readiness and makes the syscall itself. Because the task never leaves crl__op_run() before
 * that completion, a cancelled operation can never write into a dead frame. */
#ifndef CRL_IO_IO_H
#define CRL_IO_IO_H

#include "../core/core.h"
#include "pool.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

struct statx;

enum crl__op_kind {
    CRL__OP_NOP,
    CRL__OP_READ, /* fd, buf, len, off (-1: file position / stream) */
    CRL__OP_WRITE,
    CRL__OP_READV, /* fd, iov, iovcnt, off */
    CRL__OP_WRITEV,
    CRL__OP_RECV, /* fd, buf, len, flags */
    CRL__OP_SEND,
    CRL__OP_RECVMSG, /* fd, msg, flags */
    CRL__OP_SENDMSG,
    CRL__OP_ACCEPT,   /* fd, addr, addrlen */
    CRL__OP_CONNECT,  /* fd, addr, addrlen (by value) */
    CRL__OP_POLL,     /* fd, events */
    CRL__OP_OPENAT,   /* path, flags, mode */
    CRL__OP_FSYNC,    /* fd */
    CRL__OP_SHUTDOWN, /* fd, how (in flags) */
    /* fd (a directory or AT_FDCWD), path, flags (AT_*), into buf: statx(2) of
     * STATX_BASIC_STATS. A backend that cannot (epoll; io_uring without IORING_OP_STATX)
     * completes it at once with -ENOSYS, and fs.c runs fstatat(2) in the blocking pool. */
    CRL__OP_STATX,
};

struct crl__op;
/* A watch's report: res is poll(2)'s revents (> 0), -ECANCELED after crl__watch_cancel,
 * -EBADF when crl_close closed the fd, or another -errno. */
typedef void crl__watch_fn(struct crl__core *c, struct crl__op *op, int res);

/* Room for the backend's own state of an op (struct uring_op in uring.c, struct ep_op in
 * epoll.c: each asserts that it fits): only the backend names what is in it. */
#define CRL__OP_BACKEND_SIZE 72

struct crl__op {
    uint8_t kind;
    bool done;       /* the completion arrived; result is final */
    bool waiting;    /* the task is parked on it */
    bool poll_first; /* recv hint: the peer must first answer what we sent, so wait for
                        readiness before trying (io_uring skips a receive bound to fail) */
    uint8_t fault;   /* fault injection's per-op state (faults.c), 0 when off */
    bool detached;   /* a watch (crl__watch_start): no task, its completion calls a.watch.fn */
    int fd;
    int flags; /* recv/send/accept flags, open flags, poll events, shutdown how */
    int32_t result;
    struct crl_task *task;
    union {
        struct {
            void *buf;
            size_t len;
        } rw;
        struct {
            const struct iovec *iov;
            int iovcnt;
        } v;
        struct msghdr *msg;
        struct {
            struct sockaddr *addr;
            socklen_t *addrlen;
        } accept;
        struct {
            const struct sockaddr *addr;
            socklen_t addrlen;
        } connect;
        struct {
            const char *path;
            mode_t mode;
        } open;
        struct {
            const char *path;
            struct statx *buf;
        } statx;
        struct {
            crl__watch_fn *fn;
            void *arg;
            void *data;   /* a receive watch's first bytes (crl__watch_recv_start), or NULL */
            uint32_t len; /* how many */
            uint16_t buf; /* the backend's name of the buffer that holds them */
            bool recv;    /* a receive watch */
        } watch;
    } a;
    int64_t off;
    size_t sent; /* a send with MSG_WAITALL: bytes of earlier tries */
    /* The backend's: set up by its submit, so crl__op_start need not clear it. */
    _Alignas(8) unsigned char backend_[CRL__OP_BACKEND_SIZE];
};

/* A standing accept's report (see crl__io_ops.accept_multi): res is a connection's fd, or
 * with more false the accept's end: -ECANCELED after a cancel, -EBADF when crl_close closed
 * the listening fd, another -errno (-EMFILE...) when it failed. */
typedef void crl__accept_fn(struct crl__core *c, struct crl__op *op, int res, bool more);

struct crl__faults;

/* The I/O layer's part of a core. */
struct crl__io_core {
    const struct crl__io_ops *ops; /* the backend (or fault injection's wrapper of it) */
    void *state;                   /* the backend's own */
    size_t pending;                /* operations submitted and not yet completed */
    int wake_fd;                   /* eventfd other threads write to wake this core */
    pthread_mutex_t done_lock;     /* guards done_jobs, filled by pool threads */
    struct crl__job *done_jobs;    /* finished blocking-pool jobs to complete here */
    atomic_uint waking;            /* pool threads between handing a job back and writing wake_fd */
    size_t offload_pending;        /* jobs queued or running in the pool */
    struct crl__faults *faults;    /* faults.c's state for this core, NULL when off */
    struct crl_event fd_freed;     /* set by crl_close for accepts backing off on EMFILE */
    struct crl__sim_world *sim;    /* the simulated world it belongs to (sim.c), or NULL */
};

/* Wake core c's thread from its wait in the backend (from any thread). */
void crl__io_wake(struct crl__core *c);
/* The dump's describer of io's parks: an operation ("read fd 7"), a blocking-pool job. */
crl__wait_describer crl__io_describe_wait;

/* The synchronous calls on a backend's fds, each 0 (socket: the new fd) or -errno. io_uring
 * and epoll share the kernel's (crl__kernel_sys, sys.c); a simulated backend gives calls on
 * its own fds, so that no socket a task sees reaches the kernel. */
struct crl__sys_ops {
    int (*socket)(int family, int type); /* SOCK_NONBLOCK | SOCK_CLOEXEC always added */
    int (*setsockopt)(int fd, int level, int name, const void *val, socklen_t len);
    int (*bind)(int fd, const struct sockaddr *addr, socklen_t len);
    int (*listen)(int fd, int backlog);
    int (*getsockname)(int fd, struct sockaddr *addr, socklen_t *len);
    int (*getpeername)(int fd, struct sockaddr *addr, socklen_t *len);
    int (*shutdown)(int fd, int how);
    /* recv(2) that never waits (flags with MSG_DONTWAIT): bytes, or -errno (-EAGAIN). */
    int (*recv)(int fd, void *buf, size_t len, int flags);
    int (*sock_type)(int fd); /* SO_TYPE (SOCK_STREAM...), or -1: not a socket */
    int (*close)(int fd);
};

extern const struct crl__sys_ops crl__kernel_sys;
/* The current core's backend's calls, the kernel's outside a runtime. */
const struct crl__sys_ops *crl__sys(void);

/* A backend: each file exports exactly one of these. */
struct crl__io_ops {
    const char *name;
    int (*init)(struct crl__core *c); /* 0, or -errno if this backend cannot run */
    void (*fini)(struct crl__core *c);
    void (*submit)(struct crl__core *c, struct crl__op *op); /* never blocks */
    void (*cancel)(struct crl__core *c, struct crl__op *op); /* the completion still comes */
    /* Flush submissions and complete what is ready, waiting until deadline_ns at the most
     * (0: do not wait, -1: until something completes). */
    void (*wait)(struct crl__core *c, int64_t deadline_ns);
    /* fd is about to be closed: drop what the backend keeps about it and end the ops
     * waiting on it with -EBADF (on io_uring, once the kernel's cancellations come back).
     * Also called for a new fd, whose number may have been closed behind our back. */
    void (*forget)(struct crl__core *c, int fd);
    /* Start a standing accept on op->fd (accept4 flags in op->flags) that delivers every
     * connection to on_accept until it ends (cancel ends it); op lives until its last
     * report, which is not counted in io_pending (its owner counts it). NULL when the
     * backend has none: accept one connection per op then. */
    void (*accept_multi)(struct crl__core *c, struct crl__op *op, crl__accept_fn *on_accept);
    /* Give back the pool buffer of a receive watch's bytes (op->a.watch.buf). NULL when
     * the backend's receive watches never receive (crl__watch_recv_start). */
    void (*buf_put)(struct crl__core *c, struct crl__op *op);
    const struct crl__sys_ops *sys; /* its synchronous calls */
};

/* Submit what the tasks queued and complete what is ready, without waiting: only when some
 * operation or pool job is outstanding (it costs a syscall). */
static inline void crl__io_poll(struct crl__core *c)
{
    if (c->io->pending || c->io->offload_pending)
        c->io->ops->wait(c, 0);
}

extern const struct crl__io_ops crl__io_uring_ops;
extern const struct crl__io_ops crl__io_epoll_ops;
extern const struct crl__io_ops crl__io_sim_ops;

/* CRL_BACKEND_DEFAULT resolved: CORRAL_BACKEND from the environment (uring, epoll or sim),
 * else io_uring; any other value as it is. */
enum crl_backend crl__io_backend_choice(enum crl_backend want);

/* ---- The simulated world (sim.c) ----------------------------------------------------------
 * One per simulated runtime, begun on the thread that runs it before any core starts: from
 * then on every clock read on that thread is its virtual clock. The seed is CORRAL_SEED (1
 * when unset). */
struct crl__sim_world;
/* 0, -EBUSY when this thread already runs one, or -ENOMEM. */
int crl__sim_begin(struct crl__sim_world **out);
/* End it (NULL: nothing to end): the real clocks come back, and its trace is kept. */
void crl__sim_end(struct crl__sim_world *w);
/* The scheduling state its cores share (their crl__core.sim). */
struct crl__sim_sched *crl__sim_sched(struct crl__sim_world *w);
/* The seed, trace hash and event count of the last world this thread ended; false if none. */
bool crl__sim_last_trace(uint64_t *seed, uint64_t *hash, uint64_t *events);
/* Simulated sockets open now in the calling core's world (0 outside one): a scenario's leak
 * check. */
size_t crl__sim_open_fds(void);

/* ---- Fault injection (faults.c) ---------------------------------------------------------
 *
 * CORRAL_FAULTS="seed=N,rate=R,errors=E1:E2:..." wraps the backend's ops table (c->io->ops) in
 * one that injects faults, each decision drawn from a PRNG of this core's own (the seed mixed
 * with the core id): the same sequence of operations on a core meets the same faults.
 * ECONNRESET and ENOMEM fail an op at submission, "short" shrinks a read or write before it
 * is issued, "delay" holds an op back for a few loop iterations (so completions reorder);
 * EINTR and EAGAIN are kernel results the backend must absorb (crl__faults_kernel); spawns
 * fail with -ENOMEM through c->stack_fault. */

enum crl__fault {
    CRL__FAULT_NONE,
    CRL__FAULT_EINTR,
    CRL__FAULT_EAGAIN,
    CRL__FAULT_ECONNRESET,
    CRL__FAULT_ENOMEM,
    CRL__FAULT_SHORT,
    CRL__FAULT_DELAY,
    CRL__FAULT_COUNT
};
#define CRL__FAULT_BIT(f) (1u << (f))

struct crl__faults_cfg {
    bool on;
    uint64_t seed;
    double rate;     /* chance of a fault per decision, 0..1 */
    unsigned errors; /* CRL__FAULT_BIT()s of the faults enabled */
};

/* Parse a CORRAL_FAULTS value into *cfg: 0 (an empty string: off), or -EINVAL. */
int crl__faults_parse(const char *spec, struct crl__faults_cfg *cfg);
/* Tests: use spec instead of CORRAL_FAULTS for the runtimes started from now on (NULL: read
 * CORRAL_FAULTS again, at the next start); -EINVAL for a bad spec. */
int crl__faults_override(const char *spec);
/* Tests: stop (true) or resume injecting, in every core at once. */
void crl__faults_pause(bool paused);
/* Faults injected so far, over every core and run. */
unsigned long crl__faults_injected(void);

/* One stream of decisions: deterministic given seed, core id and the calls made. */
struct crl__fault_rng {
    uint64_t state;
};
void crl__fault_rng_seed(struct crl__fault_rng *r, uint64_t seed, unsigned core_id);
uint64_t crl__fault_rng_next(struct crl__fault_rng *r);
/* Draw one decision among the faults of cfg that allowed admits (CRL__FAULT_BITs). */
enum crl__fault crl__faults_draw(struct crl__fault_rng *r, const struct crl__faults_cfg *cfg,
                                 unsigned allowed);

/* 0, or -EINVAL (logged) for a bad CORRAL_FAULTS: crl_run asks before any core starts. */
int crl__faults_check(void);
/* Wrap c->io->ops when fault injection is on (nothing otherwise); -EINVAL for a bad
 * CORRAL_FAULTS (logged). */
int crl__faults_start(struct crl__core *c);
/* When core c's wrapper next wants its wait called, for the ops it holds back (a delay
 * fault): soon after now; -1 when it holds none or injects nothing. */
int64_t crl__faults_next_ns(const struct crl__core *c);
/* A backend is about to issue op to the kernel: 0 to go ahead, or -EINTR / -EAGAIN to act
 * as if the kernel had answered that (without doing the op). Call only when c->io->faults. */
int crl__faults_kernel(struct crl__core *c, struct crl__op *op);
/* io_uring issues a NOP in place of an op crl__faults_kernel failed: the NOP's completion
 * res becomes the injected result (any other completion of op passes unchanged). */
int crl__faults_result(struct crl__op *op, int res);

/* Pick and start the backend (config > CORRAL_BACKEND > io_uring, falling back to epoll with
 * one log line when io_uring is refused). */
int crl__io_start(struct crl__core *c, enum crl_backend want);
void crl__io_stop(struct crl__core *c);

/* Called by backends when the core's wake-up eventfd fired: reset it, then complete what
 * other threads handed back (blocking-pool jobs). What other cores sent is the runtime
 * layer's to take in, after the wait. */
void crl__core_woken(struct crl__core *c);

/* The same, for a backend that read the eventfd itself (io_uring keeps a read of it in
 * flight, and its completion is the wake-up). */
void crl__core_woken_read(struct crl__core *c);

/* Called by backends when op has finished with result res. */
void crl__op_complete(struct crl__core *c, struct crl__op *op, int res);

/* Out of fds (EMFILE, ENFILE) in an accept: wait until crl_close frees one or *backoff_ns
 * passes, then double *backoff_ns (up to 100 ms). Returns 0 to try again, or the caller's
 * cancellation. Shared by crl_accept and listeners. */
#define CRL__ACCEPT_BACKOFF_START_NS CRL_MSEC_NS
int crl__accept_backoff(struct crl__core *c, int64_t *backoff_ns);

/* A send with MSG_WAITALL completes when all of it is sent or it fails (with the bytes sent
 * before the failure, if any: crl__op_complete reports those): backends pass each try's
 * result res through this, which moves a short try's buffer on and says -EAGAIN (wait and
 * try again), or gives the result to complete the op with. */
static inline int crl__send_all_step(struct crl__op *op, int res)
{
    if (res > 0 && (size_t)res < op->a.rw.len) {
        op->a.rw.buf = (char *)op->a.rw.buf + res;
        op->a.rw.len -= (size_t)res;
        op->sent += (size_t)res;
        return -EAGAIN;
    }
    return res < 0 ? res : (int)op->sent + res;
}
static inline bool crl__is_send_all(const struct crl__op *op)
{
    return op->kind == CRL__OP_SEND && (op->flags & MSG_WAITALL);
}

/* Run op from the calling task and return its result (see corral.h for cancellation). */
int crl__op_run(struct crl__op *op);
/* crl__op_run in two halves, so that a task can have two ops in flight (a send and the
 * receive of the answer): start submits op and returns 0, or the task's cancellation
 * without starting it; finish waits for a started op and returns its result. Every started
 * op must be finished before its record goes out of scope. */
int crl__op_start(struct crl__op *op);
int crl__op_finish(struct crl__op *op);

/* A watch: wait for readiness of fd (poll(2) events) with no task waiting. op (any memory
 * that outlives the watch, usually a connection's record) is in flight until fn reports,
 * exactly once, possibly from inside this call or crl__watch_cancel (epoll completes what is
 * ready at once). The I/O layer counts it as any operation (io_pending, counters, trace).
 * This is what lets an idle connection hold no task and no stack (net/serve.c). */
void crl__watch_start(struct crl__core *c, struct crl__op *op, int fd, short events,
                      crl__watch_fn *fn, void *arg);
/* A watch for fd's next bytes (POLLIN | POLLRDHUP) that the backend may receive itself: on
 * io_uring, into a buffer of the core's pool that the kernel picks only when the bytes
 * arrive, so that none is tied to the wait. When fn reports readiness, op->a.watch.data holds
 * op->a.watch.len of them (or is NULL: they wait in the socket, as after crl__watch_start),
 * until crl__watch_data_put gives the buffer back; an error it received is reported as
 * fn's res. */
void crl__watch_recv_start(struct crl__core *c, struct crl__op *op, int fd, crl__watch_fn *fn,
                           void *arg);
/* Give back the buffer of a receive watch's bytes (nothing if it has none). */
void crl__watch_data_put(struct crl__core *c, struct crl__op *op);
/* End a watch early: fn reports -ECANCELED (or its result, if that came first). Nothing
 * happens if it has already reported. */
void crl__watch_cancel(struct crl__core *c, struct crl__op *op);

/* ---- Operations with a deadline ----------------------------------------------------------
 *
 * An operation cancelled at its deadline, which then returns -ETIMEDOUT (deadlines follow
 * corral.h's time rule: CRL_NO_DEADLINE is none, and then nothing more than crl__op_run
 * happens). No scope per operation: the deadline is a timer of the core's wheel that the
 * caller keeps for a sequence of operations (a connection's). It stays armed between
 * operations and only ever fires early: a keep-alive connection's next deadline is later
 * than the one it is armed for, so it is left where it is and, when it fires, moves on to
 * the deadline of the operation then waiting (or to none). Arming and disarming per
 * operation would link and unlink it among other connections' timers, each in another
 * task's stack: cache misses that add up with hundreds of connections. */
struct crl__op_timer {
    struct crl__timer timer;
    struct crl__op *op;    /* the operation it cancels, NULL between operations */
    int64_t deadline_ns;   /* op's deadline: the timer is armed for it or earlier */
    struct crl__op *first; /* crl__op_pair_until: armed for the deadline of this op, */
    int64_t then_ns;       /* ... and op's own deadline is next once first is done */
    bool fired;            /* crl__op_pair_until: a deadline cancelled one of the two */
};

/* Before its first use (timer is not armed). */
void crl__op_timer_init(struct crl__op_timer *t);
/* Disarm t: before it goes out of scope, on the core it was used on. */
void crl__op_timer_fini(struct crl__op_timer *t);

/* Run op from the calling task, cancelled at deadline_ns: its result, -ETIMEDOUT when the
 * deadline came first (the op cancelled and reaped), or the task's own cancellation (which
 * wins over the deadline). */
int crl__op_run_until(struct crl__op_timer *t, struct crl__op *op, int64_t deadline_ns);

/* Two operations on one connection, both in flight: first (a send) and second (the receive
 * of the peer's answer); the task waits for second alone, and first usually completes in
 * the same submission, without a second wake-up. The timer serves both: armed at the earlier
 * deadline, it moves on to second's when first was done by then. When second fails, first
 * is cancelled; when second's deadline passes, first still runs until its own (a slow
 * reader of a large response keeps the write deadline it was given). Returns 0 when both ran (their
 * results, as crl__op_run_until's, in *first_res and *second_res; t->fired tells whether a deadline
 * fired), or the error first failed with at once or could not start with (second is not started
 * then). */
int crl__op_pair_until(struct crl__op_timer *t, struct crl__op *first, int64_t first_deadline_ns,
                       struct crl__op *second, int64_t second_deadline_ns, int *first_res,
                       int *second_res);

/* fd ownership (owner.c), where assertions are on: the first operation on an fd claims it
 * for its core, one from another core aborts; crl_close releases it. */
#ifndef NDEBUG
void crl__fd_check(int fd);
void crl__fd_release(int fd);
#else
static inline void crl__fd_check(int fd) { (void)fd; }
static inline void crl__fd_release(int fd) { (void)fd; }
#endif

#endif
