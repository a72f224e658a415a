/* corral.h - the one public header of corral, a thread-per-core async runtime for Linux.
 *
 * Tasks are stackful coroutines that read like blocking C. Every task lives in a scope (a
 * nursery) that does not return until all its children have ended, so a child may point into
 * its parent's stack frame. Errors are negative errno values; time is absolute deadlines in
 * nanoseconds on CLOCK_MONOTONIC, -1 meaning none.
 *
 * Unless a function says otherwise it must be called from inside a task started by crl_run().
 * A "cancellation point" is a call that returns -ECANCELED when the caller's scope (or one
 * above it, up to the nearest shield) is cancelled, or -ETIMEDOUT when the cancellation came
 * from a deadline, instead of blocking or while blocked. crl_yield, crl_checkpoint and the
 * sleeps check on every call; channel, mutex, semaphore and event operations that can
 * complete at once do so even in a cancelled task, and check only when they would block.
 * Cancellation is never delivered anywhere else.
 */
#ifndef CORRAL_H
#define CORRAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Time ------------------------------------------------------------------------------- */

/* The time rule, for every call and field that takes a time: a deadline is an absolute time
 * in ns on CLOCK_MONOTONIC. Only CRL_NO_DEADLINE (-1) means "no deadline"; any other deadline
 * at or before now (0, INT64_MIN, any negative) has passed; INT64_MAX is the far future (never
 * reached, but not "none": it can be moved). A relative timeout (a duration argument) at or
 * below 0 has expired; a timeout beyond the end of the clock saturates to INT64_MAX. Config
 * and option fields in ns say each what 0 and negative values mean there. */
#define CRL_USEC_NS INT64_C(1000)
#define CRL_MSEC_NS INT64_C(1000000)
#define CRL_SEC_NS INT64_C(1000000000)
#define CRL_NO_DEADLINE INT64_C(-1)

/* Current CLOCK_MONOTONIC time in ns. Never blocks; callable from anywhere. */
int64_t crl_now_ns(void);

/* ---- Logging ---------------------------------------------------------------------------- */

enum crl_log_level {
    CRL_LOG_DEFAULT = 0, /* in a config: CRL_LOG_INFO */
    CRL_LOG_ERROR = 1,
    CRL_LOG_WARN = 2,
    CRL_LOG_INFO = 3,
    CRL_LOG_DEBUG = 4,
};

/* A log sink: receives one complete line, without its trailing newline. */
typedef void crl_log_fn(void *ctx, enum crl_log_level level, const char *line);

/* Log a printf-style message through the running runtime's sink (stderr outside crl_run()).
 * Messages above the configured level are dropped. Never blocks on the runtime. */
void crl_log(enum crl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- Runtime ---------------------------------------------------------------------------- */

/* A task body: returns 0 (or a positive value) on success, a negative errno on failure. */
typedef int crl_task_fn(void *arg);

enum crl_backend {
    CRL_BACKEND_DEFAULT = 0, /* CORRAL_BACKEND from the environment, else io_uring */
    CRL_BACKEND_URING = 1,
    CRL_BACKEND_EPOLL = 2,
};

/* Runtime configuration. A zeroed struct (or a NULL pointer) means every default. */
struct crl_config {
    /* Executors, on the first CPUs of the affinity mask, each pinned; 0 = CORRAL_CORES from
     * the environment, else one per CPU of the mask. */
    unsigned cores;
    size_t stack_size;            /* default usable task stack in bytes; 0 = 64 KiB (see
                                     "Task stacks" below) */
    enum crl_backend backend;     /* I/O backend; see enum crl_backend */
    crl_log_fn *log_fn;           /* NULL = one line per message on stderr */
    void *log_ctx;                /* passed to log_fn */
    enum crl_log_level log_level; /* most verbose level emitted; 0 = CRL_LOG_INFO */
    unsigned offload_threads;     /* threads of the blocking pool (started on first use); 0 = 4 */
    int64_t idle_poll_ns;  /* with several cores: how long an idle core polls for calls before
                              it sleeps (a wake-up costs ~50 us on VMs); 0 = 20 us, < 0 never */
    int64_t reply_poll_ns; /* how long an idle core polls instead while a task of it waits for
                              a crl_call reply, which comes a wake-up sooner than if the core
                              slept; 0 = 100 us, < 0 = as idle_poll_ns */
    int64_t stack_trim_ns; /* how often a core, when idle, gives back half of the task stacks
                              it kept cached and unused since the last time (a burst's stacks
                              do not stay resident for good); 0 = 10 s, < 0 never */
};

/* Start the runtime on the calling thread, run main(arg) as the root task inside the root
 * scope, and return once every task has ended. Returns main's result, or the first error of
 * any task spawned into the root scope, or -EINVAL for a bad config (cores beyond the CPUs
 * of the affinity mask, a stack_size outside 16 KiB .. 1 GiB, an unknown backend or level:
 * the reason is logged through cfg's sink; or a bad CORRAL_FAULTS, see the I/O section),
 * -EBUSY when called from inside a running runtime, -ENOMEM. With several cores, core 0
 * runs main on the calling thread and the others serve crl_call. */
int crl_run(const struct crl_config *cfg, crl_task_fn *main, void *arg);

/* ---- Tasks and scopes ------------------------------------------------------------------- */

struct crl_scope; /* opaque: lives in crl_scope_run()'s frame */

/* A scope body: runs in the calling task with the new scope; its return value is the scope's
 * unless a child failed first. A negative return cancels the scope's children. */
typedef int crl_body_fn(struct crl_scope *s, void *arg);

/* Run body(s, arg) in a new scope nested in the caller's, then wait for every task spawned
 * into s before returning: it is not possible to leave a scope with live children, so
 * children may borrow anything in the frame that calls crl_scope_run() (and above it).
 * NOT the body's own locals: the body returns before its children are joined, so data a
 * child borrows belongs in the caller's frame, reached through arg. Returns, in order of
 * precedence:
 * - the first error of a child or of the body that is not a cancellation (-ECANCELED or
 *   -ETIMEDOUT), which also cancelled the scope;
 * - when s ended cancelled (it was cancelled, or a child or the body returned a cancellation
 *   error) and a scope enclosing it is cancelled too (up to the nearest shield; none if s is
 *   shielded): the cancellation of the outermost such scope, -ECANCELED or -ETIMEDOUT. As in
 *   Trio, the outermost cancelled scope catches a cancellation: the inner ones pass it on, so
 *   the code after them, which returns the error, is skipped;
 * - a child's or the body's cancellation error that s did not cause (it came from above);
 * - -ETIMEDOUT if the scope's own deadline fired;
 * - else the body's result (a body that returned -ECANCELED because this scope alone was
 *   cancelled by crl_scope_cancel() yields 0: the scope caught its cancellation).
 * Waiting for the children is not itself interruptible, but cancellation reaches them. A
 * scope's errors after the first are logged at CRL_LOG_WARN with the task's name. */
int crl_scope_run(crl_body_fn *body, void *arg);

/* Wait until every task spawned into s so far has ended (and any they spawn into s), for a
 * body whose children borrow the body's own locals. Not interruptible (cancellation reaches
 * the children instead). Returns s's first error so far, or 0. */
int crl_scope_join(struct crl_scope *s);

/* Task stacks: each task runs on a stack of its own (cfg.stack_size, or the spawn's), with a
 * 256 KiB guard below it that costs address space only: an access there aborts with a
 * message naming the task. Compile code that runs in tasks with -fstack-clash-protection
 * (as corral itself is): without it, a frame larger than a page moves the stack pointer past
 * the guard in one step and writes wherever it lands; with it, each page is probed in turn
 * and the guard catches any overflow. Frames beyond 256 KiB need the option to be caught. */

/* Options for crl_spawn_ex(); zero fields take defaults. */
struct crl_spawn_opts {
    const char *name;  /* for diagnostics; NULL = "task". Must outlive the task. */
    size_t stack_size; /* bytes; 0 = the runtime default */
};

/* Start fn(arg) as a new task in scope s. The task runs later (it is queued, not run now).
 * Its result joins s: a negative result cancels s's other tasks and becomes s's result.
 * s must be a scope whose body or one of whose tasks is running (spawning into a scope whose
 * crl_scope_run returned aborts, naming the call). Returns 0 or -ENOMEM.
 * Not a cancellation point: spawning into a cancelled scope starts a cancelled task. */
int crl_spawn_ex(struct crl_scope *s, crl_task_fn *fn, void *arg,
                 const struct crl_spawn_opts *opts);

/* crl_spawn_ex() with a name for diagnostics (a string that outlives the task). */
int crl_spawn_named(struct crl_scope *s, crl_task_fn *fn, void *arg, const char *name);

/* Spawn fn(arg) in scope s, named after the function. */
#define crl_spawn(s, fn, arg) crl_spawn_named((s), (fn), (arg), #fn)

/* Cancel scope s: every task under it (its body, its children, their nested scopes, but not
 * below a shield) gets a cancellation error from its current or next cancellation point.
 * Idempotent. The error is that of the outermost cancelled scope a task sees: -ECANCELED
 * here, -ETIMEDOUT if that scope's deadline fired; so when both an inner deadline and an
 * outer cancel apply, the outer one wins. s itself then returns 0 (it caught its own
 * cancellation) unless something failed or an enclosing scope is cancelled too (see
 * crl_scope_run). Never blocks. Aborts, naming the call, if s is not open any more. */
void crl_scope_cancel(struct crl_scope *s);

/* Set (or move, earlier or later) the absolute deadline of scope s; CRL_NO_DEADLINE removes
 * it; a deadline at or before now cancels s at once. When it passes, s is cancelled as by
 * crl_scope_cancel() but with -ETIMEDOUT, and crl_scope_run() returns -ETIMEDOUT. A deadline
 * that already fired cannot be taken back. */
void crl_scope_set_deadline(struct crl_scope *s, int64_t deadline_ns);

/* The deadline of scope s as last set, or CRL_NO_DEADLINE. */
int64_t crl_scope_deadline(const struct crl_scope *s);

/* Shield scope s (on = true) from cancellation coming from outside it, so that cleanup code
 * in it can block; its own crl_scope_cancel() and deadline still apply. */
void crl_scope_shield(struct crl_scope *s, bool on);

/* True when scope s has been cancelled (by crl_scope_cancel, an error, or its deadline),
 * as Trio's cancel_called: a deadline that has passed, though the runtime has not noticed
 * yet, cancels s here (with -ETIMEDOUT) and makes it true. */
bool crl_scope_cancelled(const struct crl_scope *s);

/* Let other runnable tasks run; the caller is requeued behind them. A cancellation point:
 * returns 0, or the cancellation error without yielding. */
int crl_yield(void);

/* 0 if the calling task may continue, or -ECANCELED / -ETIMEDOUT if it is cancelled: an
 * explicit cancellation point for long computations. Never blocks and never switches, but
 * looks outside the task as the runtime would between tasks: a deadline that has passed is
 * seen by the first checkpoint after it (with a timer armed on the core, each call reads the
 * clock and fires the timers due; the tasks they wake run at the caller's next yield or
 * block), and a cancellation from another core (a crl_call caller's) within about 20 us of
 * the caller's work or 16 checkpoints, whichever is longer, though the loop does not run. */
int crl_checkpoint(void);

/* The calling task's name ("main" for the root task). */
const char *crl_task_name(void);

/* ---- Static forms: join, try-join, race, deadline --------------------------------------- */

/* One job of crl_join_all / crl_try_join / crl_race. result is written when the job ends. */
struct crl_job {
    crl_task_fn *fn;
    void *arg;
    const char *name; /* NULL = "job" */
    int result;       /* out: fn's return value, or -ECANCELED if it never ran to the end */
};

/* Job initializer naming the job after its function. */
#define CRL_JOB(fn, arg) ((struct crl_job){(fn), (arg), #fn, 0})

/* Run all n jobs concurrently and wait for all of them, whatever they return. Returns 0 or
 * the error of the lowest-indexed failed job; every job's result is in jobs[i].result. */
int crl_join_all(struct crl_job *jobs, size_t n);

/* Run all n jobs concurrently; the first error cancels the others (which are still waited
 * for) and is returned. Returns 0 when all succeeded. */
int crl_try_join(struct crl_job *jobs, size_t n);

/* Run all n jobs concurrently; the first to end wins, the rest are cancelled and waited for.
 * Returns the winner's index (its result in jobs[i].result), or a negative errno if the race
 * was cancelled from outside before any job ended, or -EINVAL when n is 0. */
int crl_race(struct crl_job *jobs, size_t n);

/* Run fn(arg) in the calling task inside a scope with the given absolute deadline
 * (CRL_NO_DEADLINE: none; one that has passed: fn's first cancellation point fails). Returns
 * fn's result, or -ETIMEDOUT if the deadline fired (fn's blocking calls then returned it). */
int crl_with_deadline(int64_t deadline_ns, crl_task_fn *fn, void *arg);

/* crl_with_deadline(crl_now_ns() + timeout_ns, fn, arg), saturated: a timeout at or below 0
 * (-1 included) has expired, INT64_MAX does not overflow. */
int crl_with_timeout(int64_t timeout_ns, crl_task_fn *fn, void *arg);

/* ---- Timers ----------------------------------------------------------------------------- */

/* Block the calling task until the absolute deadline (CRL_NO_DEADLINE or INT64_MAX: until
 * cancelled; a deadline that has passed: returns after letting the others run). A
 * cancellation point: returns 0 when the deadline was reached, else the cancellation error. */
int crl_sleep_until(int64_t deadline_ns);

/* crl_sleep_until(crl_now_ns() + ns), saturated: ns <= 0 has expired, INT64_MAX is "until
 * cancelled". */
int crl_sleep_ns(int64_t ns);

/* ---- Same-core synchronization (no atomics; never share across cores) -------------------- */

/* A FIFO queue of blocked tasks. Private: initialize the enclosing object with its _init. */
struct crl_waitq {
    void *head_, *tail_;
    void *core_; /* the owner core: in builds with assertions, a use from another aborts */
};

/* A bounded channel of fixed-size elements between tasks of one core. */
struct crl_chan {
    unsigned char *buf_;
    size_t elem_size_, cap_, head_, len_;
    bool closed_;
    struct crl_waitq senders_, receivers_;
};

/* Initialize ch for elements of elem_size bytes, holding up to capacity of them (>= 1).
 * Returns 0, -EINVAL, or -ENOMEM. Callable outside a task. */
int crl_chan_init(struct crl_chan *ch, size_t elem_size, size_t capacity);

/* Free ch's buffer. No task may be blocked on it. */
void crl_chan_fini(struct crl_chan *ch);

/* Copy *elem into ch, blocking while it is full. A cancellation point. Returns 0, or -EPIPE
 * once ch is closed (the element is then not sent). */
int crl_chan_send(struct crl_chan *ch, const void *elem);

/* Take the oldest element into *elem, blocking while ch is empty. A cancellation point.
 * Returns 0, or -EPIPE once ch is closed and drained. */
int crl_chan_recv(struct crl_chan *ch, void *elem);

/* Non-blocking forms: -EAGAIN where the blocking form would block. */
int crl_chan_try_send(struct crl_chan *ch, const void *elem);
int crl_chan_try_recv(struct crl_chan *ch, void *elem);

/* Close ch: blocked senders get -EPIPE; receivers drain what is buffered, then get -EPIPE. */
void crl_chan_close(struct crl_chan *ch);

/* Elements currently buffered in ch. */
size_t crl_chan_len(const struct crl_chan *ch);

/* A mutex for tasks of one core; ownership passes FIFO to the next waiter on unlock. */
struct crl_mutex {
    void *owner_;
    struct crl_waitq waiters_;
};

void crl_mutex_init(struct crl_mutex *m);

/* Acquire m, blocking while another task holds it. A cancellation point: returns 0 (held) or
 * the cancellation error (not held). Returns -EDEADLK if the caller already holds m. */
int crl_mutex_lock(struct crl_mutex *m);

/* Acquire m only if it is free: 0 or -EBUSY. */
int crl_mutex_trylock(struct crl_mutex *m);

/* Release m, handing it to the longest waiter. Returns 0, or -EPERM if the caller does not
 * hold it. */
int crl_mutex_unlock(struct crl_mutex *m);

/* A counting semaphore for tasks of one core; waiters are served FIFO. */
struct crl_sem {
    int64_t count_;
    struct crl_waitq waiters_;
};

void crl_sem_init(struct crl_sem *s, int64_t count);

/* Take one unit, blocking while none is available. A cancellation point. */
int crl_sem_acquire(struct crl_sem *s);

/* Take one unit only if available: 0 or -EAGAIN. */
int crl_sem_try_acquire(struct crl_sem *s);

/* Return one unit, waking the longest waiter if any. */
void crl_sem_release(struct crl_sem *s);

/* A level-triggered event: waiters block until it is set; it stays set until cleared. */
struct crl_event {
    bool set_;
    struct crl_waitq waiters_;
};

void crl_event_init(struct crl_event *e);

/* Block until e is set (returns at once if it is). A cancellation point. */
int crl_event_wait(struct crl_event *e);

/* Set e and wake every waiter. */
void crl_event_set(struct crl_event *e);

/* Clear e: later waiters block again. */
void crl_event_clear(struct crl_event *e);

/* True if e is set. */
bool crl_event_is_set(const struct crl_event *e);

/* ---- Task-local storage ----------------------------------------------------------------- */

/* Task-local variables: one value per task and key, NULL until set, not inherited by
 * children. (Per-core state is a different thing: one instance per executor core.) */
#define CRL_TASK_LOCALS_MAX 8

/* Create a key; dtor (may be NULL) is called with a task's non-NULL value when that task
 * ends. Returns the key (>= 0) or -ENOSPC. Callable from anywhere; keys are never freed. */
int crl_task_local_create(void (*dtor)(void *value));

/* Set the calling task's value for key: 0 or -EINVAL for a bad key. */
int crl_task_local_set(int key, void *value);

/* The calling task's value for key (NULL if unset or key is bad). */
void *crl_task_local_get(int key);

/* ---- I/O -------------------------------------------------------------------------------
 *
 * Every call here blocks the calling task (never the core), is a cancellation point, and
 * returns a result >= 0 or a negative errno. The backend is io_uring, or epoll where io_uring
 * is refused (see enum crl_backend); both complete the same calls the same way. On cancel,
 * an operation the kernel already started is cancelled and waited for before the call
 * returns, so its buffer is never written after the call returns; if it completed anyway
 * (bytes read, a connection accepted), that result is returned and the cancellation is
 * reported by the next cancellation point. File descriptors created by these calls are
 * non-blocking and close-on-exec; close them with crl_close(), which also ends the calls
 * blocked on them with -EBADF.
 *
 * Fault injection: CORRAL_FAULTS="seed=N,rate=R,errors=E1:E2:..." (R in 0..1, default 0.01;
 * E among EINTR EAGAIN ECONNRESET ENOMEM short delay, default all) makes every runtime started
 * afterwards inject faults into these calls, each decision drawn from a PRNG of the core's own
 * (the seed mixed with the core id): EINTR and EAGAIN are absorbed by the backend (the calls
 * never return them), ECONNRESET and ENOMEM are returned, short makes a read or write move
 * fewer bytes, delay holds an operation back a few loop iterations, and spawns fail with
 * -ENOMEM (never the root task). For tests; a bad value makes crl_run() return -EINVAL.
 */

/* Name of the I/O backend in use on the calling core: "io_uring" or "epoll". */
const char *crl_io_backend(void);

/* As read(2) and write(2): bytes transferred (0 at end of file), or -errno. */
ssize_t crl_read(int fd, void *buf, size_t len);
ssize_t crl_write(int fd, const void *buf, size_t len);
/* As readv(2) and writev(2). */
ssize_t crl_readv(int fd, const struct iovec *iov, int iovcnt);
ssize_t crl_writev(int fd, const struct iovec *iov, int iovcnt);
/* At an offset (files); the file position is not used or moved. -EINVAL if offset < 0. */
ssize_t crl_pread(int fd, void *buf, size_t len, int64_t offset);
ssize_t crl_pwrite(int fd, const void *buf, size_t len, int64_t offset);

/* Write all len bytes, looping over short writes. Returns len, or the error that stopped it
 * (the bytes before it were written). */
ssize_t crl_write_all(int fd, const void *buf, size_t len);

/* As recv(2) and send(2) (send adds MSG_NOSIGNAL: a closed peer gives -EPIPE, no signal).
 * crl_send with MSG_WAITALL returns only when all len bytes are sent, on either backend; if
 * it fails or is cancelled after sending some, it returns how many went. */
ssize_t crl_recv(int fd, void *buf, size_t len, int flags);
ssize_t crl_send(int fd, const void *buf, size_t len, int flags);
/* Datagrams: from/fromlen and to/tolen as for recvfrom(2) and sendto(2). */
ssize_t crl_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from,
                     socklen_t *fromlen);
ssize_t crl_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
                   socklen_t tolen);

/* Accept a connection on listening socket lfd; addr/addrlen may be NULL. Returns the new fd.
 * A connection accepted while the task was being cancelled is returned, never leaked. Out of
 * fds (EMFILE, ENFILE), it does not return or spin: it backs off (1 ms doubling to 100 ms,
 * woken early by crl_close) and tries again, so a server survives fd exhaustion. */
int crl_accept(int lfd, struct sockaddr *addr, socklen_t *addrlen);

/* A standing accept on a listening socket: on io_uring one multishot accept keeps accepting
 * into a queue (one SQE for any number of connections); on epoll connections are accepted
 * as they are asked for. Opaque; one core's tasks only. */
struct crl_listener;

/* Start a standing accept on listening socket lfd (which stays the caller's to close, after
 * the listener). Returns 0 or -ENOMEM. Not blocking. */
int crl_listener_open(struct crl_listener **out, int lfd);

/* Take the next accepted connection (non-blocking, close-on-exec), waiting for one. A
 * cancellation point; connections accepted meanwhile stay queued for the next call, never
 * lost. Out of fds it backs off like crl_accept. */
int crl_listener_accept(struct crl_listener *l);

/* Stop accepting, close the connections still queued and free l. Waits (not cancellable)
 * until the kernel has let go of the standing accept. */
void crl_listener_close(struct crl_listener *l);

/* Connect socket fd to addr. */
int crl_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);

/* Wait until fd is ready for any of events (POLLIN, POLLOUT, ...); returns the ready ones. */
int crl_poll(int fd, short events);

/* open(2) relative to the working directory (O_CLOEXEC added); returns the fd. */
int crl_open(const char *path, int flags, mode_t mode);
/* As fsync(2). */
int crl_fsync(int fd);
/* As shutdown(2): SHUT_RD, SHUT_WR or SHUT_RDWR. */
int crl_shutdown(int fd, int how);

/* Close fd. Not a cancellation point: it always closes. Tasks of this core blocked on fd
 * (crl_read, crl_recv, crl_write or crl_send on a full buffer, crl_accept,
 * crl_listener_accept on a listener of fd, crl_poll, crl_connect, ...) wake with -EBADF, on
 * either backend; this is not a cancellation (their scopes go on), and a call that had
 * already completed returns its result. The file is really closed: the backend lets go of
 * it, so the peer sees the end of the stream. Tasks of other cores must not be blocked on
 * fd (an fd belongs to one core: crl_fd_adopt). close(2) instead of crl_close wakes nobody
 * (on io_uring the blocked calls keep the file open; on epoll they may go on with a new file
 * given the same number); a new file given the number of one closed by close(2) works as
 * usual on both backends. */
int crl_close(int fd);

/* Take fd over for the calling core, after another core handed it here. An fd belongs to the
 * core that first did I/O on it; where assertions are on (the sanitizer builds), I/O on it
 * from any other core aborts, naming the fd and both cores, until it is closed with
 * crl_close or adopted. A no-op in release builds. Not blocking. */
void crl_fd_adopt(int fd);

/* Run fn(arg) on a thread of the blocking pool and return its result, blocking the calling
 * task (never the core) meanwhile: for calls that block, such as getaddrinfo, a blocking
 * library or disk I/O. A cancellation point: cancelled while the job is still queued, it is
 * removed and the call returns the cancellation error; cancelled while fn runs, the call
 * waits for fn to return and returns its result (fn may point into the caller's frame).
 * fn runs on another thread: it must not call corral functions or touch the core's state. */
int crl_offload(crl_task_fn *fn, void *arg);

/* Wait until one of the signals in set arrives and return its number. From the first call
 * on, the signals in set are blocked in the executor thread (pool threads block all
 * signals), so they are no longer handled the default way but queue for this call: a
 * signal sent before the call is not lost. A cancellation point. */
int crl_signal_wait(const sigset_t *set);

/* A no-op round trip through the I/O backend (submitted, completed, reaped): what the
 * runtime itself costs per operation. A cancellation point. */
int crl_io_nop(void);

/* ---- Sockets ---------------------------------------------------------------------------- */

/* Parse "HOST:PORT" (numeric IPv4, or IPv6 in brackets: "[::1]:8080") into addr. Returns 0
 * or -EINVAL. Callable from anywhere. */
int crl_parse_addr(const char *host_port, struct sockaddr_storage *addr, socklen_t *len);

/* Options for crl_tcp_listen(); zero fields take defaults. */
struct crl_listen_opts {
    int backlog;    /* 0 = 1024 */
    bool reuseport; /* SO_REUSEPORT, for one listener per core */
};

/* A listening TCP socket on "HOST:PORT" (SO_REUSEADDR set). Returns the fd. Not blocking. */
int crl_tcp_listen(const char *host_port, const struct crl_listen_opts *opts);

/* Connect to "HOST:PORT"; deadline_ns bounds the attempt (CRL_NO_DEADLINE: none), giving
 * -ETIMEDOUT. Returns the connected fd. */
int crl_tcp_connect(const char *host_port, int64_t deadline_ns);

/* A UDP socket bound to "HOST:PORT" (port 0: any). Returns the fd. Not blocking. */
int crl_udp_bind(const char *host_port);

/* Unix stream sockets: listen on / connect to a filesystem path. Return the fd. */
int crl_unix_listen(const char *path, int backlog);
int crl_unix_connect(const char *path);

/* TCP_NODELAY and SO_KEEPALIVE on or off. Not blocking. */
int crl_tcp_set_nodelay(int fd, bool on);
int crl_socket_set_keepalive(int fd, bool on);

/* The local address of a socket, e.g. to learn the port a "HOST:0" listener got. */
int crl_socket_local_addr(int fd, struct sockaddr_storage *addr, socklen_t *len);

/* ---- Servers ---------------------------------------------------------------------------- */

/* How crl_serve spreads connections over cores. */
enum crl_balance {
    CRL_BALANCE_REUSEPORT = 0,   /* a SO_REUSEPORT listener per core; the kernel spreads them */
    CRL_BALANCE_ROUND_ROBIN = 1, /* core 0 accepts and hands connections out in turn */
    CRL_BALANCE_LEAST = 2, /* core 0 accepts and hands each to the core with fewest live ones */
};

/* Options of crl_serve(); zero fields take defaults. */
struct crl_serve_opts {
    enum crl_balance balance;
    unsigned cores;     /* serve on cores 0 .. cores-1; 0 = every core of the runtime */
    int backlog;        /* listen backlog; 0 = 1024 */
    unsigned max_conns; /* live connections per core; 0 = 10000. A core at its limit stops
                           accepting (reuseport) or is passed over (the others) until one ends */
    int64_t drain_ns;   /* once the server is cancelled: how long live connections may finish
                           before they are cancelled; 0 = 5 s, < 0 = cancel them at once */
    /* Called once on the calling core when every listener is up, with the bound address
     * (to learn the port of "HOST:0"). May be NULL. */
    void (*on_ready)(void *ctx, const struct sockaddr *addr, socklen_t addrlen);
};

/* One accepted connection, as the connection function sees it. Lives in the frame of the
 * task that serves it. */
struct crl_conn {
    int fd;                       /* the socket; crl_serve closes it after the function */
    unsigned core;                /* the core serving it */
    struct sockaddr_storage peer; /* the client's address */
    socklen_t peer_len;
};

/* Serves one connection, as a task on conn->core; returns 0 or a negative errno (logged at
 * debug level). Borrowing ctx is safe: crl_serve does not return before every connection
 * function has. */
typedef int crl_conn_fn(struct crl_conn *conn, void *ctx);

/* Listen on "HOST:PORT" and run fn(conn, ctx) in a task of its own for every connection,
 * spread over the cores as opts->balance says, each connection staying on one core. Runs
 * until the calling task is cancelled, then stops gracefully: it stops accepting, wakes
 * connections marked idle (their reads return 0, end of stream), lets the others finish for
 * up to opts->drain_ns, cancels what is left and returns 0 once all have ended. Returns a
 * negative errno at once if it cannot listen (-EADDRINUSE, -EINVAL for a bad address or
 * option). */
int crl_serve(const char *host_port, const struct crl_serve_opts *opts, crl_conn_fn *fn, void *ctx);

/* True once the server serving conn is stopping: a connection function finishes the request
 * at hand and returns instead of waiting for another. */
bool crl_conn_draining(const struct crl_conn *conn);

/* Mark conn idle (waiting between requests: a stopping server ends its read at once with
 * end of stream) or busy (a stopping server lets it finish). Connections start busy. */
void crl_conn_set_idle(struct crl_conn *conn, bool idle);

/* ---- HTTP server ------------------------------------------------------------------------ */

/* An HTTP/1.1 server on crl_serve: keep-alive, pipelining (the responses to one batch of
 * pipelined requests go out in one write), chunked bodies both ways, Expect: 100-continue,
 * strict parsing (llhttp) with limits and timeouts. Each request runs handler(req, res, ctx)
 * in its connection's task: the handler is plain blocking code that may do I/O, open scopes
 * and call other cores, and borrows ctx (crl_http_serve does not return before every
 * connection has ended). Bad input gets its status (400, 408, 413, 414, 431, 501, 505) with
 * "Connection: close" and the connection closes: nothing after a rejected request is parsed.
 * A connection closing with input unread (a body not read, a rejected request) half-closes
 * and reads and drops what the client still sends, for up to 30 s in all and 5 s of silence
 * (nginx's lingering bounds), so that a client writing its whole body before it reads gets
 * the answer instead of a reset; it counts against max_conns meanwhile and ends at once
 * when the server stops. */

typedef struct crl_http_req crl_http_req; /* opaque; valid during the handler call */
typedef struct crl_http_res crl_http_res; /* opaque; valid during the handler call */

/* Answers one request through res; its return value is ignored. A handler that returns
 * without a response gets 500 (or the connection closes if a response was half sent). The
 * response goes out when the handler returns, batched with those of pipelined requests. */
typedef int crl_http_handler_fn(crl_http_req *req, crl_http_res *res, void *ctx);

/* Limits of the server; zero fields take the defaults. A timeout of INT64_MAX is as good as
 * none; a negative one has expired at once (the time rule at the top). */
struct crl_http_limits {
    size_t max_request_line;   /* bytes of method + target + version; 0 = 8 KiB -> 414 */
    size_t max_header_bytes;   /* all header lines; 0 = 16 KiB -> 431 */
    unsigned max_headers;      /* 0 = 100 -> 431 */
    size_t max_body;           /* 0 = 1 MiB -> 413 */
    int64_t header_timeout_ns; /* whole request head must arrive in it (slowloris), from its
                                  first byte (a new connection: from the start, then a silent
                                  close if nothing came); 0 = 10 s -> 408 + close */
    int64_t body_timeout_ns;   /* whole body (total, not between reads); 0 = 30 s -> 408 + close */
    int64_t idle_timeout_ns;   /* keep-alive idle between requests; 0 = 60 s -> silent close */
    int64_t write_timeout_ns;  /* one response's writes; 0 = 30 s -> close */
};

/* Options of crl_http_serve(); zeroed = every default. */
struct crl_http_server_opts {
    struct crl_http_limits limits;
    struct crl_serve_opts serve; /* balance, cores, max_conns (per core), drain, on_ready
                                    (which gets crl_http_serve's ctx) */
};

/* Serve HTTP on "HOST:PORT" (opts may be NULL) until the calling task is cancelled, then stop
 * gracefully as crl_serve does: idle keep-alive connections close at once, busy ones finish
 * their request (answered with "Connection: close"). Returns 0, or a negative errno at once
 * if it cannot listen. */
int crl_http_serve(const char *host_port, const struct crl_http_server_opts *opts,
                   crl_http_handler_fn *handler, void *ctx);

/* The request. Strings are NUL-terminated and valid until the handler returns. */
const char *crl_http_req_method(const crl_http_req *req); /* "GET", "POST", ... */
/* The target in origin form: as sent ("/a/b?x=1"), "*" (OPTIONS only), or for an
 * absolute-form target ("http://host/a/b?x=1", RFC 9112 3.2.2) its path and query as if sent
 * in origin form ("/a/b?x=1"; "/" for an empty path). Only http and https targets are
 * accepted (400 otherwise). */
const char *crl_http_req_target(const crl_http_req *req);
const char *crl_http_req_path(const crl_http_req *req);  /* target up to '?' (not decoded) */
const char *crl_http_req_query(const crl_http_req *req); /* after '?', or NULL */
/* The authority the request is for, "host" or "host:port" as sent (not lowercased): an
 * absolute-form target's authority (a Host header is then ignored, RFC 9112 3.2.2), else the
 * Host header's value ("" if empty). NULL for an HTTP/1.0 request without Host (1.1 requires
 * one). Always a valid RFC 3986 authority without userinfo: anything else got 400. */
const char *crl_http_req_host(const crl_http_req *req);
int crl_http_req_version(const crl_http_req *req); /* 10 or 11 (a higher 1.x minor is 11) */
/* The first value of header name (case-insensitive), trimmed of surrounding whitespace, or
 * NULL if absent. */
const char *crl_http_req_header(const crl_http_req *req, const char *name);
size_t crl_http_req_header_count(const crl_http_req *req);
/* Header i (0 .. count - 1) in the order received; out of range gives NULLs. */
void crl_http_req_header_at(const crl_http_req *req, size_t i, const char **name,
                            const char **value);
/* The Content-Length; -1 when the body is chunked; 0 when there is no body. */
int64_t crl_http_req_content_length(const crl_http_req *req);

/* Stream the body into buf: > 0 bytes, 0 at its end, -EMSGSIZE beyond max_body (the server
 * answers 413 and closes), -ETIMEDOUT (body timeout: 408), -EPROTO (bad chunked coding: 400),
 * or another negative errno if the client went away. Sends "100 Continue" first if the
 * client expects it. Blocks; a cancellation point. Unread body is drained (up to max_body)
 * after the handler, or the connection closes. */
ssize_t crl_http_req_read(crl_http_req *req, void *buf, size_t len);

/* The whole (rest of the) body, buffered by the server up to max_body: its length, with
 * *body valid until the handler returns, or an error as crl_http_req_read's. */
ssize_t crl_http_req_body(crl_http_req *req, const void **body);

/* Add a response header. Returns 0, -EINVAL for a bad name token, CR/LF/NUL in the value,
 * or a header the server writes itself (Content-Length, Transfer-Encoding, Date;
 * "Connection: close" is taken as asking the server to close after the response), or
 * -EALREADY once the head is on its way. */
int crl_http_res_header(crl_http_res *res, const char *name, const char *value);

/* The whole response: status (200..999), Content-Type (NULL: none) and body (copied or
 * written before the call returns). A HEAD request gets the head with the Content-Length.
 * Returns 0, -EINVAL, -EALREADY if a response was made already, or a write error. */
int crl_http_res_send(crl_http_res *res, int status, const char *content_type, const void *body,
                      size_t len);

/* Start a streamed response: chunked for HTTP/1.1, close-delimited for 1.0. Then
 * crl_http_res_write() each piece and crl_http_res_end(). Same returns as crl_http_res_send. */
int crl_http_res_start(crl_http_res *res, int status, const char *content_type);

/* Send one piece of a streamed response (one chunk; len 0 sends nothing). Blocks until it is
 * written (write timeout); 0, -EINVAL if no stream was started, or the write error. */
int crl_http_res_write(crl_http_res *res, const void *data, size_t len);

/* End a streamed response. 0, -EINVAL if none was started, or a write error. */
int crl_http_res_end(crl_http_res *res);

/* The response with bytes [offset, offset + len) of file fd (not closed) as its body, with
 * Content-Length len. Reads the file with crl_pread; a file shorter than promised closes the
 * connection (-EIO). Same returns as crl_http_res_send. */
int crl_http_res_send_file(crl_http_res *res, int status, const char *content_type, int fd,
                           int64_t offset, int64_t len);

/* ---- HTTP client ------------------------------------------------------------------------ */

/* A minimal HTTP/1.1 client, for a task that calls another service. A client holds one
 * connection to one server, dialled when first needed and reused while the server keeps it
 * alive; it serves one request at a time and belongs to the tasks of one core. Responses are
 * parsed strictly (llhttp) and held to size limits; bodies may be Content-Length, chunked or
 * close-delimited. Before a request goes on a kept-alive connection, a non-blocking peek
 * checks what happened while it sat idle: if the server closed or reset it (as nginx does at
 * keepalive_timeout) or sent bytes no request asked for, it is dropped and the request, of
 * any method, goes on a new connection. A kept-alive connection that ends (end of stream or
 * reset before the first response byte) once the request is on its way is redialled once
 * and the request sent again only if it is GET or HEAD or none of it had been sent: the
 * server may have acted on it. */
struct crl_http_client;

/* Options of crl_http_client_open(); zero fields take defaults. */
struct crl_http_client_opts {
    int64_t connect_timeout_ns; /* bound on each connect (within the request's deadline);
                                   0 = 5 s, < 0 = only the request's deadline */
    size_t max_head_bytes;      /* status line and header lines of a response; 0 = 16 KiB */
    unsigned max_headers;       /* header fields of a response; 0 = 64 */
    size_t max_body;            /* bytes of a response body; 0 = 1 MiB */
};

/* A header field, as NUL-terminated name and value. */
struct crl_http_header {
    const char *name;
    const char *value;
};

/* A request; everything it points to is only borrowed for the call. */
struct crl_http_request {
    const char *method; /* a token: "GET", "POST", ... */
    const char *target; /* origin form, "/path?query": visible ASCII, no spaces */
    /* Extra fields, sent in order after "Host: HOST:PORT" (which a Host field here replaces).
     * Content-Length and Transfer-Encoding are the client's to set (-EINVAL); a field
     * "Connection: close" closes the connection after the response. */
    const struct crl_http_header *headers;
    size_t header_count;
    const void *body; /* body_len bytes; Content-Length is sent when body_len > 0 or the
                         method is POST, PUT or PATCH */
    size_t body_len;
    bool chunked;        /* send the body chunked (Transfer-Encoding: chunked) instead */
    int64_t deadline_ns; /* absolute, for the whole exchange (connect and retry included);
                            CRL_NO_DEADLINE = none */
};

/* A response, owned by the caller once crl_http_client_request() filled it in; release it
 * with crl_http_response_fini(). */
struct crl_http_response {
    int status;                            /* e.g. 200; interim 1xx responses are skipped */
    int version;                           /* 11 for HTTP/1.1, 10 for HTTP/1.0 */
    const struct crl_http_header *headers; /* in the order received (trailers are dropped) */
    size_t header_count;
    const char *body; /* body_len bytes, followed by a NUL for convenience; "" when none */
    size_t body_len;
    void *headers_, *strings_, *body_; /* private: the storage */
};

/* Make a client for the server at "HOST:PORT" (numeric, as crl_parse_addr()); opts may be
 * NULL. Does not connect (the first request does). Returns 0 and *out, -EINVAL for a bad
 * address, or -ENOMEM. Not blocking. */
int crl_http_client_open(struct crl_http_client **out, const char *host_port,
                         const struct crl_http_client_opts *opts);

/* Close c's connection, if any, and free c (NULL is ignored). No request may be in progress.
 * Not blocking; call it from a task of the core that used c. */
void crl_http_client_close(struct crl_http_client *c);

/* Send req over c's connection (dialling it if there is none) and wait for the whole
 * response, which goes to *out. A cancellation point. Returns 0, or: -EINVAL for a bad
 * request (method, target, a field with CR/LF or a framing field); -EBUSY while another
 * task's request is in progress on c; -ETIMEDOUT when req->deadline_ns or the connect
 * timeout passed; -EMSGSIZE when the response's head, header count or body is over c's
 * limits; -EPROTO for a malformed response (or one of a version other than HTTP/1.0 and
 * 1.1); -ECONNRESET when the server closed the connection before answering; or a socket
 * error (-ECONNREFUSED, ...). After an error *out is empty (crl_http_response_fini() on it
 * is harmless) and the connection is closed. */
int crl_http_client_request(struct crl_http_client *c, const struct crl_http_request *req,
                            struct crl_http_response *out);

/* The value of r's first header field named name (case-insensitive), or NULL. */
const char *crl_http_response_header(const struct crl_http_response *r, const char *name);

/* Free r's storage and zero it. */
void crl_http_response_fini(struct crl_http_response *r);

/* ---- Cores ------------------------------------------------------------------------------ */

/* The calling core's index (0 .. crl_core_count() - 1); 0 outside a runtime. */
unsigned crl_core_id(void);

/* Executors in the running runtime (0 outside one). */
unsigned crl_core_count(void);

/* Start fn(arg) as a task on core `core`, as a child of scope s (which is on the calling
 * core): s waits for it, receives its error (which cancels s's other children), and its
 * cancellation reaches it on the other core. arg follows the same rule as crl_spawn (it may
 * point into the frame that runs s). Returns 0, -EINVAL for a core that does not exist, or
 * -ENOMEM. Not a cancellation point. */
int crl_spawn_on_named(struct crl_scope *s, unsigned core, crl_task_fn *fn, void *arg,
                       const char *name);

/* crl_spawn_on_named naming the task after its function. */
#define crl_spawn_on(s, core, fn, arg) crl_spawn_on_named((s), (core), (fn), (arg), #fn)

/* The running runtime, for threads that are not its executors. */
struct crl_runtime;

/* The runtime the calling task runs in; valid until its crl_run returns. */
struct crl_runtime *crl_runtime_current(void);

/* From a thread that is not an executor: run fn(arg) as a task on core `core` of rt and
 * block the thread until it returns; returns fn's result. -EINVAL for a core that does not
 * exist, -EBUSY when called from an executor (it would block its core), -ESHUTDOWN if rt is
 * stopping. rt must still be running when the call is made. */
int crl_runtime_call(struct crl_runtime *rt, unsigned core, crl_task_fn *fn, void *arg);

/* Per-core locals: one zero-initialized instance of a value per core (sharded state: a
 * cache, a counter), each touched only by its own core. Keys are process-wide. */
#define CRL_CORE_LOCALS_MAX 32

/* Create a key for values of `size` bytes; dtor (may be NULL) runs on each core's instance
 * when that core stops. Returns the key (>= 0), -ENOSPC or -EINVAL. Callable from anywhere. */
int crl_core_local_create(size_t size, void (*dtor)(void *value));

/* The calling core's instance for key (allocated zeroed on first use), or NULL for a bad
 * key or when out of memory. Never blocks. */
void *crl_core_local_get(int key);

/* Run fn(arg) as a task on core `core` and return its result, blocking the calling task. A
 * cancellation point: cancelling the caller cancels the remote task and still waits for it
 * to end (arg may point into the caller's frame). Calling one's own core runs fn directly.
 * -EINVAL for a core that does not exist. At most 512 calls from one core to another are in
 * flight; more wait for a reply. */
int crl_call(unsigned core, crl_task_fn *fn, void *arg);

/* ---- Cross-core channels ---------------------------------------------------------------- */

/* A bounded channel from the tasks of one core (the sending side) to the tasks of another
 * (the receiving side), carrying values of a fixed size by copy through a lock-free ring.
 * Any number of tasks may use each side, from that side's core only (checked where
 * assertions are on). A side that waits is woken by the other; a side that does not wait
 * costs the other nothing. Opaque. */
struct crl_xchan;

/* Make a channel for values of elem_size bytes holding at least capacity of them (rounded up
 * to a power of two). Returns 0, -EINVAL (a core that does not exist, a zero size) or
 * -ENOMEM. The two cores may be the same. */
int crl_xchan_create(struct crl_xchan **out, size_t elem_size, size_t capacity,
                     unsigned sender_core, unsigned receiver_core);

/* Free ch once no task uses it any more (e.g. after the scope that ran both sides joined).
 * Waits for a wake-up still on its way to either core. */
void crl_xchan_destroy(struct crl_xchan *ch);

/* Copy *elem into the channel, waiting while it is full. Returns 0, or -EPIPE once the
 * channel is closed. A cancellation point only when it waits. Sending side only. */
int crl_xchan_send(struct crl_xchan *ch, const void *elem);

/* Take the oldest value into *elem, waiting while the channel is empty. Returns 0, or -EPIPE
 * once the channel is closed and drained. A cancellation point only when it waits.
 * Receiving side only. */
int crl_xchan_recv(struct crl_xchan *ch, void *elem);

/* As crl_xchan_send / crl_xchan_recv, but -EAGAIN instead of waiting. */
int crl_xchan_try_send(struct crl_xchan *ch, const void *elem);
int crl_xchan_try_recv(struct crl_xchan *ch, void *elem);

/* Close ch, from either side: sends fail with -EPIPE from now on, receives drain what was
 * sent and then fail with -EPIPE; waiting tasks on both sides wake. */
void crl_xchan_close(struct crl_xchan *ch);

/* ---- Diagnostics ------------------------------------------------------------------------ */

/* Write the calling core's live scope tree (scopes, their tasks and states) to fd. */
void crl_dump_tree(int fd);

/* Per-core counters, since the core started. */
struct crl_stats {
    uint64_t tasks_spawned;
    uint64_t tasks_live;
    uint64_t io_ops;        /* I/O operations started */
    uint64_t accept_calls;  /* accept attempts made by crl_accept */
    uint64_t accept_emfile; /* of which failed for lack of fds, and backed off */
};

/* Copy the calling core's counters into *out. */
void crl_stats_get(struct crl_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* CORRAL_H */
