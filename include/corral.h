/** @file corral.h
 * The one public header of corral, a thread-per-core async runtime for Linux.
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
 *
 * Every function, macro, type and public field here has a Doxygen comment (docs/Doxyfile.in
 * fails the build on one that lacks it, or lacks a parameter or the return value); each
 * banner section is a Doxygen group. Fields whose names end in an underscore are private and
 * left out of the reference.
 */
#ifndef CORRAL_H
#define CORRAL_H

/* The header compiles as strict ISO C (-std=c11 -pedantic) and C++ without any feature-test
 * macro: the POSIX types it uses (ssize_t, mode_t, socklen_t, struct sockaddr_storage, struct
 * iovec) come from headers that declare them in every mode. It defines no feature macro for
 * its user. sigset_t is the exception, which <signal.h> declares only with _POSIX_C_SOURCE (or
 * a default GNU build): so crl_signal_wait takes a pointer to one as const void *. */
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
/** @name Time
 *
 * The time rule, for every call and field that takes a time: a deadline is an absolute time
 * in ns on CLOCK_MONOTONIC. Only CRL_NO_DEADLINE (-1) means "no deadline"; any other deadline
 * at or before now (0, INT64_MIN, any negative) has passed; INT64_MAX is the far future (never
 * reached, but not "none": it can be moved). A relative timeout (a duration argument) at or
 * below 0 has expired; a timeout beyond the end of the clock saturates to INT64_MAX. Config
 * and option fields in ns say each what 0 and negative values mean there.
 * @{ */
#define CRL_USEC_NS INT64_C(1000)      /**< One microsecond in ns. */
#define CRL_MSEC_NS INT64_C(1000000)   /**< One millisecond in ns. */
#define CRL_SEC_NS INT64_C(1000000000) /**< One second in ns. */
#define CRL_NO_DEADLINE INT64_C(-1)    /**< The only deadline that means "none". */

/** Current CLOCK_MONOTONIC time in ns.
 *
 * Never blocks; callable from anywhere.
 * @return the time in ns */
int64_t crl_now_ns(void);
/** @} */

/* ---- Logging ---------------------------------------------------------------------------- */
/** @name Logging
 * @{ */

/** Severity of a log message; a config's level is the most verbose one emitted. */
enum crl_log_level {
    CRL_LOG_DEFAULT = 0, /**< in a config: CRL_LOG_INFO */
    CRL_LOG_ERROR = 1,   /**< something failed */
    CRL_LOG_WARN = 2,    /**< something is wrong but goes on (e.g. a scope's later errors) */
    CRL_LOG_INFO = 3,    /**< what a running server normally says */
    CRL_LOG_DEBUG = 4,   /**< details for debugging (e.g. a connection function's error) */
};

/** A log sink: receives one complete line, without its trailing newline.
 *
 * Called on the thread that logs: an executor's, or one that runs no core (the stall
 * detector's reporter), possibly at the same time as on another thread: a sink must be
 * thread-safe. crl_dump() may be called from a sink.
 * @param ctx the config's log_ctx
 * @param level the message's level
 * @param line the message, NUL-terminated, valid during the call */
typedef void crl_log_fn(void *ctx, enum crl_log_level level, const char *line);

/** Log a printf-style message through the running runtime's sink (stderr outside crl_run()).
 *
 * Messages above the configured level are dropped. Never blocks on the runtime.
 * @param level the message's level
 * @param fmt a printf format, followed by its arguments */
void crl_log(enum crl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** @} */

/* ---- Runtime ---------------------------------------------------------------------------- */
/** @name Runtime
 * @{ */

/** A task body: returns 0 (or a positive value) on success, a negative errno on failure.
 * @param arg the argument given at the spawn
 * @return 0 (or a positive value), or a negative errno */
typedef int crl_task_fn(void *arg);

/** The I/O backend of a runtime. */
enum crl_backend {
    CRL_BACKEND_DEFAULT = 0, /**< CORRAL_BACKEND (uring, epoll, sim) from the environment,
                                  else io_uring */
    CRL_BACKEND_URING = 1,   /**< io_uring */
    CRL_BACKEND_EPOLL = 2,   /**< epoll */
    /** The deterministic simulator (docs/sim.md): a virtual clock that jumps to the next
     * timer when every task waits, an in-memory network of stream sockets, and the run-queue
     * pick (and with several cores, which core runs next) drawn from CORRAL_SEED, so that a
     * seed replays the same run. Every core is a record driven on the calling thread (cores
     * 0 means one, whatever the machine; 1024 at the most). Blocking-pool jobs run for real
     * and take no virtual time; file operations end with -ENOSYS, datagram sockets with
     * -EPROTONOSUPPORT. */
    CRL_BACKEND_SIM = 3,
};

/** Runtime configuration. A zeroed struct (or a NULL pointer) means every default. */
struct crl_config {
    /** Executors, on the first CPUs of the affinity mask, each pinned; 0 = CORRAL_CORES from
     * the environment, else one per CPU of the mask (on the sim backend, else one). */
    unsigned cores;
    size_t stack_size;            /**< default usable task stack in bytes; 0 = 64 KiB (see
                                     "Task stacks" at struct crl_spawn_opts) */
    enum crl_backend backend;     /**< I/O backend; see enum crl_backend */
    crl_log_fn *log_fn;           /**< NULL = one line per message on stderr */
    void *log_ctx;                /**< passed to log_fn */
    enum crl_log_level log_level; /**< most verbose level emitted; 0 = CRL_LOG_INFO */
    unsigned offload_threads;     /**< threads of the blocking pool (started on first use); 0 = 4 */
    int64_t idle_poll_ns;  /**< with several cores: how long an idle core polls for calls before
                              it sleeps (a wake-up costs ~50 us on VMs); 0 = 20 us, < 0 never */
    int64_t reply_poll_ns; /**< how long an idle core polls instead while a task of it waits for
                              a crl_call reply, which comes a wake-up sooner than if the core
                              slept; 0 = 100 us, < 0 = as idle_poll_ns */
    int64_t stack_trim_ns; /**< how often a core, when idle, gives back half of the task stacks
                              it kept cached and unused since the last time (a burst's stacks
                              do not stay resident for good); 0 = 10 s, < 0 never */
    /** The stall detector's threshold: a task (or the loop) that runs this long without
     * reaching a switch point is reported through the log sink, from a watchdog thread, with
     * its name and a backtrace; 0 = CORRAL_STALL_MS from the environment (0 there: off), else
     * 25 ms; < 0 = off. See crl_stats_get() for the count of stalls. The reports reach
     * log_fn on a thread of the detector's, not an executor: a sink must be thread-safe
     * (it may call crl_dump()). */
    int64_t stall_ns;
    /** Tracing: each core keeps a flight recorder of its last trace_events events (spawn,
     * run, park with its reason, wake, I/O submit and complete, cross-core send and
     * receive), and the stall detector the begin and end of its stalls; 0 = 65536. Used only
     * when tracing is on (trace_file set). */
    unsigned trace_events;
    /** Turns tracing on: the flight recorders are written to this file in the Chrome
     * trace-event JSON format (Perfetto, chrome://tracing) when a stall is reported and when
     * crl_run returns; NULL = CORRAL_TRACE from the environment (unset or empty: off). With
     * tracing on, task names must outlive the runtime (string literals do). */
    const char *trace_file;
};

/** Start the runtime on the calling thread, run main(arg) as the root task inside the root
 * scope, and return once every task has ended.
 *
 * With several cores, core 0 runs main on the calling thread and the others serve crl_call.
 * @param cfg the configuration, or NULL for every default
 * @param main the root task's function
 * @param arg its argument
 * @return main's result, or the first error of any task spawned into the root scope, or
 * -EINVAL for a bad config (cores beyond the CPUs of the affinity mask, a stack_size outside
 * 16 KiB .. 1 GiB, an unknown backend or level: the reason is logged through cfg's sink; or a
 * bad CORRAL_FAULTS, see the I/O section), -EBUSY when called from inside a running runtime,
 * -ENOMEM. */
int crl_run(const struct crl_config *cfg, crl_task_fn *main, void *arg);
/** @} */

/* ---- Tasks and scopes ------------------------------------------------------------------- */
/** @name Tasks and scopes
 * @{ */

/** A scope (a nursery). Opaque: lives in crl_scope_run()'s frame. */
struct crl_scope;

/** A scope body: runs in the calling task with the new scope; its return value is the scope's
 * unless a child failed first. A negative return cancels the scope's children.
 * @param s the new scope, to spawn into
 * @param arg the argument given to crl_scope_run()
 * @return 0 (or a positive value), or a negative errno */
typedef int crl_body_fn(struct crl_scope *s, void *arg);

/** Run body(s, arg) in a new scope nested in the caller's, then wait for every task spawned
 * into s before returning: it is not possible to leave a scope with live children, so
 * children may borrow anything in the frame that calls crl_scope_run() (and above it).
 *
 * NOT the body's own locals: the body returns before its children are joined, so data a
 * child borrows belongs in the caller's frame, reached through arg.
 * Waiting for the children is not itself interruptible, but cancellation reaches them. A
 * scope's errors after the first are logged at CRL_LOG_WARN with the task's name.
 * @param body the scope's body
 * @param arg its argument
 * @return in order of precedence:
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
 *   cancelled by crl_scope_cancel() yields 0: the scope caught its cancellation). */
int crl_scope_run(crl_body_fn *body, void *arg);

/** Wait until every task spawned into s so far has ended (and any they spawn into s), for a
 * body whose children borrow the body's own locals.
 *
 * Not interruptible (cancellation reaches the children instead).
 * @param s the scope of the calling body
 * @return s's first error so far, or 0 */
int crl_scope_join(struct crl_scope *s);

/** Options for crl_spawn_ex(); zero fields take defaults.
 *
 * @par Task stacks
 * Each task runs on a stack of its own (cfg.stack_size, or the spawn's), with a
 * 256 KiB guard below it that costs address space only: an access there aborts with a
 * message naming the task. Compile code that runs in tasks with -fstack-clash-protection
 * (as corral itself is): without it, a frame larger than a page moves the stack pointer past
 * the guard in one step and writes wherever it lands; with it, each page is probed in turn
 * and the guard catches any overflow. Frames beyond 256 KiB need the option to be caught. */
struct crl_spawn_opts {
    const char *name;  /**< for diagnostics; NULL = "task". Must outlive the task. */
    size_t stack_size; /**< bytes; 0 = the runtime default */
};

/** Start fn(arg) as a new task in scope s. The task runs later (it is queued, not run now).
 *
 * Its result joins s: a negative result cancels s's other tasks and becomes s's result.
 * s must be a scope whose body or one of whose tasks is running (spawning into a scope whose
 * crl_scope_run returned aborts, naming the call).
 * Not a cancellation point: spawning into a cancelled scope starts a cancelled task.
 * @param s the scope the task joins
 * @param fn the task's function
 * @param arg its argument, which may point into the frame that runs s
 * @param opts name and stack size, or NULL for the defaults
 * @return 0 or -ENOMEM */
int crl_spawn_ex(struct crl_scope *s, crl_task_fn *fn, void *arg,
                 const struct crl_spawn_opts *opts);

/** crl_spawn_ex() with a name for diagnostics (a string that outlives the task).
 * @param s the scope the task joins
 * @param fn the task's function
 * @param arg its argument
 * @param name the task's name
 * @return 0 or -ENOMEM */
int crl_spawn_named(struct crl_scope *s, crl_task_fn *fn, void *arg, const char *name);

/** Spawn fn(arg) in scope s, named after the function.
 * @param s the scope the task joins
 * @param fn the task's function (its name names the task)
 * @param arg its argument
 * @return 0 or -ENOMEM, as crl_spawn_named() */
#define crl_spawn(s, fn, arg) crl_spawn_named((s), (fn), (arg), #fn)

/** Start fn on a copy of the size bytes at arg, made on the new task's own stack.
 *
 * As crl_spawn_named(), but fn receives a pointer to its own copy of *arg, placed at the top
 * of its stack and aligned for any type (max_align_t), instead of arg itself: a per-child
 * struct can be filled in a loop and spawned, and the source may change or go out of scope
 * at once. The copy lives as long as the task. Not a cancellation point; never blocks.
 * Spawning into a scope that is not open aborts, as crl_spawn_named().
 * @param s the scope the task joins
 * @param fn the task's body, called with the address of the copy
 * @param arg the bytes to copy (may be NULL when size is 0)
 * @param size how many bytes: at most a quarter of the runtime's task stack size
 *             (crl_config.stack_size; 16 KiB by default)
 * @param name for diagnostics; a string that outlives the task (NULL = "task")
 * @return 0, -EINVAL when size is beyond that bound (or arg is NULL with a size), -ENOMEM */
int crl_spawn_copy_named(struct crl_scope *s, crl_task_fn *fn, const void *arg, size_t size,
                         const char *name);

/** crl_spawn_copy_named() naming the task after its function: crl_spawn_copy(s, fn, &v,
 * sizeof v). */
#define crl_spawn_copy(s, fn, arg, size) crl_spawn_copy_named((s), (fn), (arg), (size), #fn)

/** Cancel scope s: every task under it (its body, its children, their nested scopes, but not
 * below a shield) gets a cancellation error from its current or next cancellation point.
 *
 * Idempotent. The error is that of the outermost cancelled scope a task sees: -ECANCELED
 * here, -ETIMEDOUT if that scope's deadline fired; so when both an inner deadline and an
 * outer cancel apply, the outer one wins. s itself then returns 0 (it caught its own
 * cancellation) unless something failed or an enclosing scope is cancelled too (see
 * crl_scope_run). Never blocks. Aborts, naming the call, if s is not open any more.
 * @param s the scope to cancel */
void crl_scope_cancel(struct crl_scope *s);

/** A handle that cancels a scope without pointing at it, for a sibling task or any code that
 * outlives the scope's body; a value: copy it freely, zero means none.
 *
 * A token stays safe to use after its scope returned: it then reports the scope finished
 * (-ESRCH), and never cancels another scope, even one that opened later at the same
 * address. It works on the scope's own core; private fields. */
struct crl_cancel_token {
    uint64_t gen_;  /* 0: no scope */
    uint32_t core_; /* the scope's core */
    uint32_t slot_; /* its entry in that core's table */
};

/** Make a cancellation token for open scope s (the same token each time for one scope).
 *
 * Never blocks; not a cancellation point. Aborts, naming the call, if s is not open.
 * @param s the scope
 * @param out set to the token
 * @return 0, or -ENOMEM */
int crl_scope_token(struct crl_scope *s, struct crl_cancel_token *out);

/** Cancel the scope token names, as crl_scope_cancel(), if it is still open.
 *
 * Never blocks; not a cancellation point. Idempotent while the scope is open. From another
 * core, cancel through crl_call(crl_token_core(token), fn, &token) with an fn that calls
 * this.
 * @param token from crl_scope_token()
 * @return 0 when the scope is open (now cancelled); -ESRCH when its crl_scope_run has
 *         returned; -EXDEV when called from another core or outside a task of a runtime;
 *         -EINVAL for a zeroed token */
int crl_token_cancel(struct crl_cancel_token token);

/** The core of the scope token names (for crl_call), whether it is open or not.
 * @param token from crl_scope_token()
 * @return a core index */
unsigned crl_token_core(struct crl_cancel_token token);

/** Set (or move, earlier or later) the absolute deadline of scope s; CRL_NO_DEADLINE removes
 * it; a deadline at or before now cancels s at once.
 *
 * When it passes, s is cancelled as by crl_scope_cancel() but with -ETIMEDOUT, and
 * crl_scope_run() returns -ETIMEDOUT. A deadline that already fired cannot be taken back.
 * @param s the scope
 * @param deadline_ns the absolute deadline, or CRL_NO_DEADLINE */
void crl_scope_set_deadline(struct crl_scope *s, int64_t deadline_ns);

/** The deadline of scope s as last set, or CRL_NO_DEADLINE.
 * @param s the scope
 * @return the deadline in ns, or CRL_NO_DEADLINE */
int64_t crl_scope_deadline(const struct crl_scope *s);

/** Shield scope s (on = true) from cancellation coming from outside it, so that cleanup code
 * in it can block; its own crl_scope_cancel() and deadline still apply.
 * @param s the scope
 * @param on true to shield, false to stop shielding */
void crl_scope_shield(struct crl_scope *s, bool on);

/** True when scope s has been cancelled (by crl_scope_cancel, an error, or its deadline),
 * as Trio's cancel_called: a deadline that has passed, though the runtime has not noticed
 * yet, cancels s here (with -ETIMEDOUT) and makes it true.
 * @param s the scope
 * @return whether s is cancelled */
bool crl_scope_cancelled(const struct crl_scope *s);

/** Let other runnable tasks run; the caller is requeued behind them.
 *
 * A cancellation point.
 * @return 0, or the cancellation error without yielding */
int crl_yield(void);

/** 0 if the calling task may continue, or -ECANCELED / -ETIMEDOUT if it is cancelled: an
 * explicit cancellation point for long computations.
 *
 * Never blocks and never switches, but looks outside the task as the runtime would between
 * tasks: a deadline that has passed is seen by the first checkpoint after it (with a timer
 * armed on the core, each call reads the clock and fires the timers due; the tasks they wake
 * run at the caller's next yield or block), and a cancellation from another core (a crl_call
 * caller's) within about 20 us of the caller's work or 16 checkpoints, whichever is longer,
 * though the loop does not run.
 * @return 0, -ECANCELED or -ETIMEDOUT */
int crl_checkpoint(void);

/** The calling task's name ("main" for the root task).
 * @return the name */
const char *crl_task_name(void);
/** @} */

/* ---- Static forms: join, try-join, race, deadline --------------------------------------- */
/** @name Static forms: join, try-join, race, deadline
 * @{ */

/** One job of crl_join_all / crl_try_join / crl_race. result is written when the job ends. */
struct crl_job {
    crl_task_fn *fn;  /**< the job's function */
    void *arg;        /**< its argument */
    const char *name; /**< NULL = "job" */
    int result;       /**< out: fn's return value, or -ECANCELED if it never ran to the end */
};

/** Job initializer naming the job after its function.
 * @param fn the job's function
 * @param arg its argument */
#define CRL_JOB(fn, arg) ((struct crl_job){(fn), (arg), #fn, 0})

/** Run all n jobs concurrently and wait for all of them, whatever they return.
 *
 * Every job's result is in jobs[i].result.
 * @param jobs the jobs
 * @param n how many
 * @return 0 or the error of the lowest-indexed failed job */
int crl_join_all(struct crl_job *jobs, size_t n);

/** Run all n jobs concurrently; the first error cancels the others (which are still waited
 * for) and is returned.
 * @param jobs the jobs
 * @param n how many
 * @return 0 when all succeeded, else the first error */
int crl_try_join(struct crl_job *jobs, size_t n);

/** Run all n jobs concurrently; the first to end wins, the rest are cancelled and waited for.
 * @param jobs the jobs
 * @param n how many
 * @return the winner's index (its result in jobs[i].result), or a negative errno if the race
 * was cancelled from outside before any job ended, or -EINVAL when n is 0 */
int crl_race(struct crl_job *jobs, size_t n);

/** Run n jobs concurrently; the first to succeed wins, the rest are cancelled and waited for.
 *
 * Unlike crl_race(), a job that fails (returns a negative errno) does not end the race: the
 * others keep running, so this is the form for a hedged request or for trying several
 * servers at once. Blocks until every job has ended; a cancellation of the caller reaches
 * the jobs (it is not itself a cancellation point otherwise). Each job's result is in
 * jobs[i].result (-ECANCELED for a job cancelled because another won).
 * @param jobs the jobs to run; each job's result is written to its result field
 * @param n how many jobs (at least 1)
 * @return the index of the first job (in time) that returned 0 or a positive value; when
 *         every job failed, the error of the lowest-indexed one (as crl_join_all); the
 *         caller's cancellation (-ECANCELED or -ETIMEDOUT) when the race was cancelled from
 *         outside and no job had succeeded; -EINVAL when n is 0; -ENOMEM */
int crl_race_ok(struct crl_job *jobs, size_t n);

/** Run fn(arg) in the calling task inside a scope with the given absolute deadline
 * (CRL_NO_DEADLINE: none; one that has passed: fn's first cancellation point fails).
 * @param deadline_ns the absolute deadline
 * @param fn the function
 * @param arg its argument
 * @return fn's result, or -ETIMEDOUT if the deadline fired (fn's blocking calls then returned
 * it) */
int crl_with_deadline(int64_t deadline_ns, crl_task_fn *fn, void *arg);

/** crl_with_deadline(crl_now_ns() + timeout_ns, fn, arg), saturated: a timeout at or below 0
 * (-1 included) has expired, INT64_MAX does not overflow.
 * @param timeout_ns the timeout, relative to now
 * @param fn the function
 * @param arg its argument
 * @return as crl_with_deadline() */
int crl_with_timeout(int64_t timeout_ns, crl_task_fn *fn, void *arg);
/** @} */

/* ---- Timers ----------------------------------------------------------------------------- */
/** @name Timers
 * @{ */

/** Block the calling task until the absolute deadline (CRL_NO_DEADLINE or INT64_MAX: until
 * cancelled; a deadline that has passed: returns after letting the others run).
 *
 * A cancellation point.
 * @param deadline_ns the absolute deadline
 * @return 0 when the deadline was reached, else the cancellation error */
int crl_sleep_until(int64_t deadline_ns);

/** crl_sleep_until(crl_now_ns() + ns), saturated: ns <= 0 has expired, INT64_MAX is "until
 * cancelled".
 * @param ns how long to sleep
 * @return as crl_sleep_until() */
int crl_sleep_ns(int64_t ns);
/** @} */

/* ---- Same-core synchronization (no atomics; never share across cores) -------------------- */
/** @name Same-core synchronization (no atomics; never share across cores)
 * @{ */

/** A FIFO queue of blocked tasks. Private: initialize the enclosing object with its _init. */
struct crl_waitq {
    void *head_, *tail_;
    void *core_; /* the owner core: in builds with assertions, a use from another aborts */
};

/** A bounded channel of fixed-size elements between tasks of one core. */
struct crl_chan {
    unsigned char *buf_;
    size_t elem_size_, cap_, head_, len_;
    bool closed_;
    struct crl_waitq senders_, receivers_;
};

/** Initialize ch for elements of elem_size bytes, holding up to capacity of them (>= 1).
 *
 * Callable outside a task.
 * @param ch the channel
 * @param elem_size bytes of an element
 * @param capacity elements it holds
 * @return 0, -EINVAL, or -ENOMEM */
int crl_chan_init(struct crl_chan *ch, size_t elem_size, size_t capacity);

/** Free ch's buffer. No task may be blocked on it.
 * @param ch the channel */
void crl_chan_fini(struct crl_chan *ch);

/** Copy *elem into ch, blocking while it is full. A cancellation point.
 * @param ch the channel
 * @param elem the element (elem_size bytes)
 * @return 0, or -EPIPE once ch is closed (the element is then not sent) */
int crl_chan_send(struct crl_chan *ch, const void *elem);

/** Take the oldest element into *elem, blocking while ch is empty. A cancellation point.
 * @param ch the channel
 * @param elem where the element goes (elem_size bytes)
 * @return 0, or -EPIPE once ch is closed and drained */
int crl_chan_recv(struct crl_chan *ch, void *elem);

/** Non-blocking form of crl_chan_send: -EAGAIN where the blocking form would block.
 * @param ch the channel
 * @param elem the element
 * @return as crl_chan_send(), or -EAGAIN */
int crl_chan_try_send(struct crl_chan *ch, const void *elem);

/** Non-blocking form of crl_chan_recv: -EAGAIN where the blocking form would block.
 * @param ch the channel
 * @param elem where the element goes
 * @return as crl_chan_recv(), or -EAGAIN */
int crl_chan_try_recv(struct crl_chan *ch, void *elem);

/** Close ch: blocked senders get -EPIPE; receivers drain what is buffered, then get -EPIPE.
 * @param ch the channel */
void crl_chan_close(struct crl_chan *ch);

/** Elements currently buffered in ch.
 * @param ch the channel
 * @return the count */
size_t crl_chan_len(const struct crl_chan *ch);

/** A mutex for tasks of one core; ownership passes FIFO to the next waiter on unlock. */
struct crl_mutex {
    void *owner_;
    struct crl_waitq waiters_;
};

/** Initialize m, unlocked.
 * @param m the mutex */
void crl_mutex_init(struct crl_mutex *m);

/** Acquire m, blocking while another task holds it.
 *
 * A cancellation point.
 * @param m the mutex
 * @return 0 (held) or the cancellation error (not held); -EDEADLK if the caller already
 * holds m */
int crl_mutex_lock(struct crl_mutex *m);

/** Acquire m only if it is free.
 * @param m the mutex
 * @return 0 or -EBUSY */
int crl_mutex_trylock(struct crl_mutex *m);

/** Release m, handing it to the longest waiter.
 * @param m the mutex
 * @return 0, or -EPERM if the caller does not hold it */
int crl_mutex_unlock(struct crl_mutex *m);

/** A counting semaphore for tasks of one core; waiters are served FIFO. */
struct crl_sem {
    int64_t count_;
    struct crl_waitq waiters_;
};

/** Initialize s with count units.
 * @param s the semaphore
 * @param count the units available at first */
void crl_sem_init(struct crl_sem *s, int64_t count);

/** Take one unit, blocking while none is available. A cancellation point.
 * @param s the semaphore
 * @return 0, or the cancellation error */
int crl_sem_acquire(struct crl_sem *s);

/** Take one unit only if available.
 * @param s the semaphore
 * @return 0 or -EAGAIN */
int crl_sem_try_acquire(struct crl_sem *s);

/** Return one unit, waking the longest waiter if any.
 * @param s the semaphore */
void crl_sem_release(struct crl_sem *s);

/** A level-triggered event: waiters block until it is set; it stays set until cleared. */
struct crl_event {
    bool set_;
    struct crl_waitq waiters_;
};

/** Initialize e, not set.
 * @param e the event */
void crl_event_init(struct crl_event *e);

/** Block until e is set (returns at once if it is). A cancellation point.
 * @param e the event
 * @return 0, or the cancellation error */
int crl_event_wait(struct crl_event *e);

/** Set e and wake every waiter.
 * @param e the event */
void crl_event_set(struct crl_event *e);

/** Clear e: later waiters block again.
 * @param e the event */
void crl_event_clear(struct crl_event *e);

/** True if e is set.
 * @param e the event
 * @return whether e is set */
bool crl_event_is_set(const struct crl_event *e);
/** @} */

/* ---- Task-local storage ----------------------------------------------------------------- */
/** @name Task-local storage
 * @{ */

/** Task-local variables: one value per task and key, NULL until set, not inherited by
 * children. (Per-core state is a different thing: one instance per executor core.)
 * CRL_TASK_LOCALS_MAX is how many keys there can be. */
#define CRL_TASK_LOCALS_MAX 8

/** Create a key; dtor (may be NULL) is called with a task's non-NULL value when that task
 * ends.
 *
 * Callable from anywhere; keys are never freed.
 * @param dtor the destructor, or NULL
 * @return the key (>= 0) or -ENOSPC */
int crl_task_local_create(void (*dtor)(void *value));

/** Set the calling task's value for key.
 * @param key a key from crl_task_local_create()
 * @param value the value
 * @return 0 or -EINVAL for a bad key */
int crl_task_local_set(int key, void *value);

/** The calling task's value for key (NULL if unset or key is bad).
 * @param key a key from crl_task_local_create()
 * @return the value, or NULL */
void *crl_task_local_get(int key);
/** @} */

/* ---- I/O ------------------------------------------------------------------------------- */
/** @name I/O
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
 * @{ */

/** Name of the I/O backend in use on the calling core: "io_uring", "epoll" or "sim".
 * @return the name */
const char *crl_io_backend(void);

/** As read(2).
 * @param fd the file
 * @param buf where the bytes go
 * @param len at most this many
 * @return bytes transferred (0 at end of file), or -errno */
ssize_t crl_read(int fd, void *buf, size_t len);

/** As write(2).
 * @param fd the file
 * @param buf the bytes
 * @param len how many
 * @return bytes transferred, or -errno */
ssize_t crl_write(int fd, const void *buf, size_t len);

/** As readv(2).
 * @param fd the file
 * @param iov the buffers
 * @param iovcnt how many
 * @return bytes transferred (0 at end of file), or -errno */
ssize_t crl_readv(int fd, const struct iovec *iov, int iovcnt);

/** As writev(2).
 * @param fd the file
 * @param iov the buffers
 * @param iovcnt how many
 * @return bytes transferred, or -errno */
ssize_t crl_writev(int fd, const struct iovec *iov, int iovcnt);

/** As read(2) at an offset (files); the file position is not used or moved.
 * @param fd the file
 * @param buf where the bytes go
 * @param len at most this many
 * @param offset where in the file
 * @return bytes transferred (0 at end of file), -EINVAL if offset < 0, or -errno */
ssize_t crl_pread(int fd, void *buf, size_t len, int64_t offset);

/** As write(2) at an offset (files); the file position is not used or moved.
 * @param fd the file
 * @param buf the bytes
 * @param len how many
 * @param offset where in the file
 * @return bytes transferred, -EINVAL if offset < 0, or -errno */
ssize_t crl_pwrite(int fd, const void *buf, size_t len, int64_t offset);

/** Write all len bytes, looping over short writes.
 * @param fd the file
 * @param buf the bytes
 * @param len how many
 * @return len, or the error that stopped it (the bytes before it were written) */
ssize_t crl_write_all(int fd, const void *buf, size_t len);

/** As recv(2).
 * @param fd the socket
 * @param buf where the bytes go
 * @param len at most this many
 * @param flags as recv(2)'s
 * @return bytes received (0 at end of stream), or -errno */
ssize_t crl_recv(int fd, void *buf, size_t len, int flags);

/** As send(2) (send adds MSG_NOSIGNAL: a closed peer gives -EPIPE, no signal).
 *
 * crl_send with MSG_WAITALL returns only when all len bytes are sent, on either backend; if
 * it fails or is cancelled after sending some, it returns how many went.
 * @param fd the socket
 * @param buf the bytes
 * @param len how many
 * @param flags as send(2)'s, and MSG_WAITALL
 * @return bytes sent, or -errno */
ssize_t crl_send(int fd, const void *buf, size_t len, int flags);

/** Datagrams: as recvfrom(2).
 * @param fd the socket
 * @param buf where the datagram goes
 * @param len at most this many bytes
 * @param flags as recvfrom(2)'s
 * @param from the sender's address, or NULL
 * @param fromlen in: the size of *from; out: the address's length
 * @return bytes received, or -errno */
ssize_t crl_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from,
                     socklen_t *fromlen);

/** Datagrams: as sendto(2).
 * @param fd the socket
 * @param buf the datagram
 * @param len its bytes
 * @param flags as sendto(2)'s
 * @param to the destination address
 * @param tolen its length
 * @return bytes sent, or -errno */
ssize_t crl_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
                   socklen_t tolen);

/** Accept a connection on listening socket lfd; addr/addrlen may be NULL.
 *
 * A connection accepted while the task was being cancelled is returned, never leaked. Out of
 * fds (EMFILE, ENFILE), it does not return or spin: it backs off (1 ms doubling to 100 ms,
 * woken early by crl_close) and tries again, so a server survives fd exhaustion.
 * @param lfd the listening socket
 * @param addr the peer's address, or NULL
 * @param addrlen in: the size of *addr; out: the address's length; or NULL
 * @return the new fd, or -errno */
int crl_accept(int lfd, struct sockaddr *addr, socklen_t *addrlen);

/** A standing accept on a listening socket: on io_uring one multishot accept keeps accepting
 * into a queue (one SQE for any number of connections); on epoll connections are accepted
 * as they are asked for. Opaque; one core's tasks only. */
struct crl_listener;

/** Start a standing accept on listening socket lfd (which stays the caller's to close, after
 * the listener).
 *
 * Not blocking.
 * @param out the new listener
 * @param lfd the listening socket
 * @return 0 or -ENOMEM */
int crl_listener_open(struct crl_listener **out, int lfd);

/** Take the next accepted connection (non-blocking, close-on-exec), waiting for one.
 *
 * A cancellation point; connections accepted meanwhile stay queued for the next call, never
 * lost. Out of fds it backs off like crl_accept.
 * @param l the listener
 * @return the new fd, or -errno */
int crl_listener_accept(struct crl_listener *l);

/** Stop accepting, close the connections still queued and free l.
 *
 * Waits (not cancellable) until the kernel has let go of the standing accept.
 * @param l the listener */
void crl_listener_close(struct crl_listener *l);

/** Connect socket fd to addr.
 * @param fd the socket
 * @param addr the address
 * @param addrlen its length
 * @return 0, or -errno */
int crl_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);

/** Wait until fd is ready for any of events (POLLIN, POLLOUT, ...).
 * @param fd the file
 * @param events the poll(2) events to wait for
 * @return the ready ones, or -errno */
int crl_poll(int fd, short events);

/** open(2) relative to the working directory (O_CLOEXEC added).
 * @param path the file's path
 * @param flags as open(2)'s
 * @param mode as open(2)'s, for O_CREAT
 * @return the fd, or -errno */
int crl_open(const char *path, int flags, mode_t mode);

/** As fsync(2).
 * @param fd the file
 * @return 0, or -errno */
int crl_fsync(int fd);

/** As shutdown(2): SHUT_RD, SHUT_WR or SHUT_RDWR.
 * @param fd the socket
 * @param how SHUT_RD, SHUT_WR or SHUT_RDWR
 * @return 0, or -errno */
int crl_shutdown(int fd, int how);

/** Close fd. Not a cancellation point: it always closes.
 *
 * Tasks of this core blocked on fd (crl_read, crl_recv, crl_write or crl_send on a full
 * buffer, crl_accept, crl_listener_accept on a listener of fd, crl_poll, crl_connect, ...)
 * wake with -EBADF, on either backend; this is not a cancellation (their scopes go on), and a
 * call that had already completed returns its result. The file is really closed: the backend
 * lets go of it, so the peer sees the end of the stream. Tasks of other cores must not be
 * blocked on fd (an fd belongs to one core: crl_fd_adopt). close(2) instead of crl_close
 * wakes nobody (on io_uring the blocked calls keep the file open; on epoll they may go on
 * with a new file given the same number); a new file given the number of one closed by
 * close(2) works as usual on both backends.
 * @param fd the file
 * @return 0, or -errno */
int crl_close(int fd);

/** Take fd over for the calling core, after another core handed it here.
 *
 * An fd belongs to the core that first did I/O on it; where assertions are on (the sanitizer
 * builds), I/O on it from any other core aborts, naming the fd and both cores, until it is
 * closed with crl_close or adopted. A no-op in release builds. Not blocking.
 * @param fd the file */
void crl_fd_adopt(int fd);

/** Run fn(arg) on a thread of the blocking pool and return its result, blocking the calling
 * task (never the core) meanwhile: for calls that block, such as getaddrinfo, a blocking
 * library or disk I/O.
 *
 * A cancellation point: cancelled while the job is still queued, it is removed and the call
 * returns the cancellation error; cancelled while fn runs, the call waits for fn to return
 * and returns its result (fn may point into the caller's frame).
 * fn runs on another thread: it must not call corral functions or touch the core's state.
 * @param fn the function
 * @param arg its argument
 * @return fn's result, or the cancellation error */
int crl_offload(crl_task_fn *fn, void *arg);

/** Wait until one of the signals in set arrives and return its number.
 *
 * set points to a sigset_t (void only so that the header compiles as strict ISO C, where
 * <signal.h> does not declare sigset_t: a program that fills a set with sigaddset is a POSIX
 * one and has it). From the first call on, the signals in set are blocked in the executor
 * thread (pool threads block all signals), so they are no longer handled the default way but
 * queue for this call: a signal sent before the call is not lost. A cancellation point.
 * @param set the signals: a const sigset_t *
 * @return the signal's number, or -errno */
int crl_signal_wait(const void *set);

/** A no-op round trip through the I/O backend (submitted, completed, reaped): what the
 * runtime itself costs per operation. A cancellation point.
 * @return 0, or -errno */
int crl_io_nop(void);
/** @} */

/* ---- Files and directories ------------------------------------------------------------- */

/* Calls on paths relative to a directory fd (or AT_FDCWD from <fcntl.h>, the working
 * directory), as the *at(2) system calls. Each blocks the calling task, never the core: on
 * io_uring through the ring where the kernel has the operation (openat, statx), else on a
 * thread of the blocking pool (directories are always read there); the results are the same
 * on both backends. Errors are negative errno values, as the system calls' (-ENOENT, ...). */

struct stat; /* from <sys/stat.h>, which a caller of crl_fstatat includes */

/** As openat(2): open path relative to directory fd dirfd, with O_CLOEXEC added.
 *
 * A cancellation point: cancelled before the open was issued, it returns the cancellation
 * error; cancelled while in flight, an open that completed anyway returns its fd (never
 * leaked), else the cancellation error.
 * @param dirfd a directory fd, or AT_FDCWD; ignored when path is absolute
 * @param path the file's path
 * @param flags open flags (O_RDONLY, O_CREAT, O_DIRECTORY, ...)
 * @param mode the permissions of a file that O_CREAT or O_TMPFILE creates
 * @return the new fd, or -errno */
int crl_openat(int dirfd, const char *path, int flags, mode_t mode);

/** As fstatat(2): the status of path relative to directory fd dirfd.
 *
 * Runs statx(2) (STATX_BASIC_STATS) through io_uring where the kernel has it, fstatat(2) in
 * the blocking pool otherwise; *st is filled in the same either way. A cancellation point:
 * cancelled before or while it runs, it returns the cancellation error unless the stat had
 * completed, which then returns its result.
 * @param dirfd a directory fd, or AT_FDCWD; with AT_EMPTY_PATH and path "", the file of
 *              dirfd itself (any fd)
 * @param path the file's path
 * @param st filled in on success (declared by <sys/stat.h>)
 * @param flags 0, or AT_SYMLINK_NOFOLLOW (a symbolic link itself), AT_EMPTY_PATH,
 *              AT_NO_AUTOMOUNT
 * @return 0, or -errno: -ENOENT for a path that does not exist, -ENOTDIR, -EACCES, ... */
int crl_fstatat(int dirfd, const char *path, struct stat *st, int flags);

/** An open directory listing (opaque), from crl_dir_open(): one core's tasks only, one at a
 * time. */
struct crl_dir;

/** One entry of a listing, filled in by crl_dir_next(). */
struct crl_dirent {
    const char *name;   /**< NUL-terminated; valid until the next crl_dir_next or crl_dir_close */
    uint64_t ino;       /**< inode number */
    unsigned char type; /**< DT_REG, DT_DIR, DT_LNK, ... from <dirent.h>; DT_UNKNOWN (0) when
                           the file system does not say (crl_fstatat then tells) */
};

/** Open directory path (relative to dirfd) for listing.
 *
 * A cancellation point, as crl_openat().
 * @param dirfd a directory fd, or AT_FDCWD
 * @param path the directory's path ("." for dirfd itself)
 * @param out set to the listing (NULL on failure); free it with crl_dir_close()
 * @return 0, -ENOMEM, or the open's error (-ENOENT, -ENOTDIR, ...) */
int crl_dir_open(int dirfd, const char *path, struct crl_dir **out);

/** The next entry of listing d, in the file system's order; "." and ".." are skipped.
 *
 * Entries are read from the kernel in batches (getdents64(2) on a thread of the blocking
 * pool, about 32 KiB at a time). A cancellation point only when a batch must be read: then
 * a cancelled task gets the cancellation error (a batch already read is not lost: the next
 * call returns its entries), while entries already read come even to a cancelled task.
 * @param d the listing
 * @param e filled in with the entry (its name points into d)
 * @return 1 and *e, 0 at the end of the listing, or -errno */
int crl_dir_next(struct crl_dir *d, struct crl_dirent *e);

/** Close listing d and free it (NULL is ignored). Not a cancellation point; never blocks.
 * @param d the listing, from crl_dir_open()
 * @return 0, or the error of closing its fd */
int crl_dir_close(struct crl_dir *d);

/* ---- Sockets ---------------------------------------------------------------------------- */
/** @name Sockets
 * @{ */

/** Parse "HOST:PORT" (numeric IPv4, or IPv6 in brackets: "[::1]:8080") into addr.
 *
 * Callable from anywhere.
 * @param host_port the address
 * @param addr where it goes
 * @param len its length
 * @return 0 or -EINVAL */
int crl_parse_addr(const char *host_port, struct sockaddr_storage *addr, socklen_t *len);

/** Resolve "HOST:PORT" to socket addresses: numeric, or a host name looked up as getaddrinfo
 * does (/etc/hosts, then DNS, as /etc/nsswitch.conf says).
 *
 * A numeric address (as crl_parse_addr takes) is parsed on the spot: never blocking, no
 * thread involved. A name (letters, digits, '-', '.', '_'; at most 253) is looked up on the
 * blocking pool (see crl_offload) while the calling task waits: blocking, and a cancellation
 * point that returns at once, the lookup left to finish on its thread and its result freed
 * when it comes (getaddrinfo cannot be interrupted; crl_run's end waits for it). Outside a
 * task it calls getaddrinfo on the calling thread. The port is decimal, 0..65535 (no service
 * names). The addresses are IPv4 and IPv6 ones for TCP, in the resolver's order (RFC 6724's),
 * at most 16 of them.
 * @param host_port "HOST:PORT": "127.0.0.1:80", "[::1]:80", "localhost:8080"
 * @param addrs out: the addresses, addrs[0] .. addrs[count - 1]
 * @param lens out: the length of each address
 * @param max room in addrs and lens (>= 1)
 * @param deadline_ns bounds the lookup (absolute; CRL_NO_DEADLINE: none)
 * @return the count of addresses (>= 1); -EINVAL for a malformed host_port, NULL arrays or
 *         max 0; -ENOENT when the name does not exist or has no IPv4 or IPv6 address
 *         (EAI_NONAME, EAI_NODATA, EAI_ADDRFAMILY); -EAGAIN when no name server answered for
 *         now (EAI_AGAIN); -EIO when the name server failed (EAI_FAIL, or any other code);
 *         -ENOMEM; the errno of an EAI_SYSTEM failure; -ETIMEDOUT when deadline_ns passed;
 *         or the caller's cancellation. */
int crl_resolve(const char *host_port, struct sockaddr_storage *addrs, socklen_t *lens, size_t max,
                int64_t deadline_ns);

/** Format a socket address as "HOST:PORT" text, the inverse of crl_parse_addr.
 *
 * IPv4 as "127.0.0.1:8080", IPv6 in brackets as "[::1]:8080" (an IPv6 scope id is left
 * out). Never blocks; callable from anywhere.
 * @param addr the address (AF_INET or AF_INET6)
 * @param len its length: at least that of a sockaddr_in or sockaddr_in6
 * @param buf out: the text, NUL-terminated ("" on an error)
 * @param size bytes of buf; 48 are enough for any address (INET6_ADDRSTRLEN + 8)
 * @return the text's length (without the NUL); -ENOSPC when it does not fit in size bytes;
 *         -EAFNOSUPPORT for another family; -EINVAL for a NULL argument, size 0 or a len
 *         too short for the family */
int crl_format_addr(const struct sockaddr *addr, socklen_t len, char *buf, size_t size);

/** Options for crl_tcp_listen(); zero fields take defaults. */
struct crl_listen_opts {
    int backlog;    /**< 0 = 1024 */
    bool reuseport; /**< SO_REUSEPORT, for one listener per core */
};

/** A listening TCP socket on "HOST:PORT" (SO_REUSEADDR set).
 *
 * Not blocking for a numeric address; a host name is resolved (crl_resolve: blocking, a
 * cancellation point, its errors) and the socket bound to its first address.
 * @param host_port the address
 * @param opts options, or NULL
 * @return the fd, or -errno */
int crl_tcp_listen(const char *host_port, const struct crl_listen_opts *opts);

/** Connect to "HOST:PORT"; deadline_ns bounds the attempt (CRL_NO_DEADLINE: none), giving
 * -ETIMEDOUT.
 *
 * A host name is resolved first (crl_resolve, within the deadline, with its errors) and its
 * addresses are tried in the resolver's order, one at a time, until one connects (no happy
 * eyeballs); if none does, the last one's error.
 * @param host_port the address
 * @param deadline_ns the absolute deadline, or CRL_NO_DEADLINE
 * @return the connected fd, or -errno */
int crl_tcp_connect(const char *host_port, int64_t deadline_ns);

/** A UDP socket bound to "HOST:PORT" (port 0: any; a host name: its first address, as
 * crl_tcp_listen). Not blocking for a numeric address.
 * @param host_port the address
 * @return the fd, or -errno */
int crl_udp_bind(const char *host_port);

/** Unix stream sockets: listen on a filesystem path.
 * @param path the socket's path
 * @param backlog the listen backlog
 * @return the fd, or -errno */
int crl_unix_listen(const char *path, int backlog);

/** Unix stream sockets: connect to a filesystem path.
 * @param path the socket's path
 * @return the fd, or -errno */
int crl_unix_connect(const char *path);

/** TCP_NODELAY on or off. Not blocking.
 * @param fd the socket
 * @param on true for on
 * @return 0, or -errno */
int crl_tcp_set_nodelay(int fd, bool on);

/** SO_KEEPALIVE on or off. Not blocking.
 * @param fd the socket
 * @param on true for on
 * @return 0, or -errno */
int crl_socket_set_keepalive(int fd, bool on);

/** The local address of a socket, e.g. to learn the port a "HOST:0" listener got.
 * @param fd the socket
 * @param addr where it goes
 * @param len its length
 * @return 0, or -errno */
int crl_socket_local_addr(int fd, struct sockaddr_storage *addr, socklen_t *len);

/** The local address of a socket as "HOST:PORT" text: crl_socket_local_addr, then
 * crl_format_addr.
 *
 * E.g. "127.0.0.1:41234" for a listener opened on "127.0.0.1:0". Not blocking.
 * @param fd an IPv4 or IPv6 socket
 * @param buf out: the text, NUL-terminated
 * @param size bytes of buf (48 are enough)
 * @return the text's length, or -errno of getsockname (-EBADF, -ENOTSOCK), or an error of
 *         crl_format_addr (-ENOSPC, -EAFNOSUPPORT for a Unix socket) */
int crl_socket_local_name(int fd, char *buf, size_t size);
/** @} */

/* ---- Servers ---------------------------------------------------------------------------- */
/** @name Servers
 * @{ */

/** How crl_serve spreads connections over cores. */
enum crl_balance {
    CRL_BALANCE_REUSEPORT = 0,   /**< a SO_REUSEPORT listener per core; the kernel spreads them */
    CRL_BALANCE_ROUND_ROBIN = 1, /**< core 0 accepts and hands connections out in turn */
    CRL_BALANCE_LEAST = 2, /**< core 0 accepts and hands each to the core with fewest live ones */
};

/** Options of crl_serve(); zero fields take defaults. */
struct crl_serve_opts {
    enum crl_balance balance; /**< how connections are spread over cores */
    unsigned cores;           /**< serve on cores 0 .. cores-1; 0 = every core of the runtime */
    int backlog;              /**< listen backlog; 0 = 1024 */
    unsigned max_conns;       /**< live connections per core; 0 = 10000. A core at its limit
                                 stops accepting (reuseport) or is passed over (the others)
                                 until one ends */
    int64_t drain_ns; /**< once the server is cancelled: how long live connections may finish
                         before they are cancelled; 0 = 5 s, < 0 = cancel them at once */
    /** Called once on the calling core when every listener is up, with the bound address
     * (to learn the port of "HOST:0"). May be NULL. */
    void (*on_ready)(void *ctx, const struct sockaddr *addr, socklen_t addrlen);
    /** true: a connection waiting without a task (CRL_CONN_WHEN_READABLE) may have its
     * first bytes received for it when they arrive, and its function finds them in
     * conn->received. On io_uring they go into a buffer of the core's pool that the kernel
     * picks only then, so no buffer waits with a connection, and a wake-up needs no receive
     * of its own; on epoll (or when the pool is empty) they wait in the socket as without it.
     * false: received stays NULL. */
    bool receive_on_wake;
};

/** Why crl_serve calls a connection function (struct crl_conn's wake). */
enum crl_conn_wake {
    CRL_CONN_NEW = 0,          /**< the first call, for a connection just accepted */
    CRL_CONN_READABLE = 1,     /**< bytes wait to be read (or the peer's end of stream, or an error:
                                  the next read says which) */
    CRL_CONN_IDLE_EXPIRED = 2, /**< idle_deadline_ns passed with nothing to read */
    CRL_CONN_STOPPING = 3,     /**< the server is stopping (crl_conn_draining() is true) */
};

/** A connection function's return value that keeps the connection open with no task, no
 * stack and no buffer of its own until its socket is readable: crl_serve then calls the
 * function again, in a new task, with the same conn (see crl_conn_fn). */
#define CRL_CONN_WHEN_READABLE 1

/** One accepted connection, as the connection function sees it: a record of crl_serve's that
 * lives as long as the connection, across every call of the function, at the same address. */
struct crl_conn {
    int fd;                       /**< the socket; crl_serve closes it when the connection ends */
    unsigned core;                /**< the core serving it */
    struct sockaddr_storage peer; /**< the client's address */
    socklen_t peer_len;           /**< the length of peer */
    enum crl_conn_wake wake;      /**< why this call of the function */
    /** The function's own: kept between its calls, never touched by crl_serve (NULL at the
     * first). What it points to is the function's to free, before it returns anything but
     * CRL_CONN_WHEN_READABLE: every connection ends with a call that returns something else. */
    void *state;
    /** With crl_serve_opts.receive_on_wake and wake CRL_CONN_READABLE: the peer's first
     * bytes, received already (they come before anything read from the socket), or NULL
     * when the socket holds them all. Read them with crl_conn_take, or in place until the
     * function returns: what is left then is lost. */
    const void *received;
    size_t received_len; /**< how many bytes received holds */
    /** Read when the function returns CRL_CONN_WHEN_READABLE: if nothing is readable by then,
     * the function is called with wake CRL_CONN_IDLE_EXPIRED. CRL_NO_DEADLINE (its value at
     * the first call): no deadline. */
    int64_t idle_deadline_ns;
};

/** Serves one connection, as a task on conn->core, with plain blocking code. Returns 0 or a
 * negative errno (logged at debug level) to end the connection (crl_serve closes conn->fd),
 * or CRL_CONN_WHEN_READABLE to wait for the peer's next bytes without a task: its stack goes
 * back to the core's pool, and the connection is a small record (fd, state, deadline) with a
 * readiness wait in the I/O backend. The function is then called again in a new task when
 * the socket is readable, when conn->idle_deadline_ns passes first, or when the server stops
 * (conn->wake says which); a server that is stopping already calls it again at once, with
 * CRL_CONN_STOPPING. A waiting connection still counts as a live one (max_conns, balancing).
 * Borrowing ctx is safe: crl_serve does not return before every connection has ended.
 * @param conn the connection
 * @param ctx crl_serve's ctx
 * @return 0 or a negative errno to close, or CRL_CONN_WHEN_READABLE */
typedef int crl_conn_fn(struct crl_conn *conn, void *ctx);

/** Listen on "HOST:PORT" (a host name: its first address, as crl_tcp_listen) and run
 * fn(conn, ctx) in a task of its own for every connection, spread over the cores as
 * opts->balance says, each connection staying on one core.
 *
 * Runs until the calling task is cancelled, then stops gracefully: it stops accepting, calls
 * the functions of connections waiting without a task (CRL_CONN_WHEN_READABLE) with
 * CRL_CONN_STOPPING, wakes connections marked idle (their reads return 0, end of stream),
 * lets the others finish for up to opts->drain_ns, cancels what is left and returns 0 once
 * all have ended.
 * @param host_port the address to listen on
 * @param opts options, or NULL
 * @param fn the connection function
 * @param ctx its context, borrowed
 * @return 0, or a negative errno at once if it cannot listen (-EADDRINUSE, -EINVAL for a bad
 * address or option) */
int crl_serve(const char *host_port, const struct crl_serve_opts *opts, crl_conn_fn *fn, void *ctx);

/** True once the server serving conn is stopping: a connection function finishes the request
 * at hand and returns instead of waiting for another.
 * @param conn the connection
 * @return whether the server is stopping */
bool crl_conn_draining(const struct crl_conn *conn);

/** Mark conn idle (its task waits between requests: a stopping server ends its read at once
 * with end of stream) or busy (a stopping server lets it finish). Connections start busy, and
 * a connection waiting without a task (CRL_CONN_WHEN_READABLE) needs no mark.
 * @param conn the connection
 * @param idle true for idle, false for busy */
void crl_conn_set_idle(struct crl_conn *conn, bool idle);

/** Take up to len bytes of conn->received (see crl_serve_opts.receive_on_wake): copied into
 * buf, or only dropped when buf is NULL. Once none is left, their buffer goes back to the
 * core's pool. Call it from the connection's function.
 * @param conn the connection
 * @param buf where to copy them, or NULL
 * @param len at most this many
 * @return how many were taken (0 when conn->received is empty) */
size_t crl_conn_take(struct crl_conn *conn, void *buf, size_t len);
/** @} */

/* ---- HTTP server ------------------------------------------------------------------------ */
/** @name HTTP server
 *
 * An HTTP/1.1 server on crl_serve: keep-alive, pipelining (the responses to one batch of
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
 * when the server stops.
 *
 * Between requests (and before the first) a connection waits for the client in its task for
 * 20 ms, then without one (crl_serve's CRL_CONN_WHEN_READABLE): an idle keep-alive
 * connection costs a few hundred bytes, not a stack, and a busy one keeps its task.
 * @{ */

/** An HTTP request; opaque; valid during the handler call. */
typedef struct crl_http_req crl_http_req;
/** An HTTP response being made; opaque; valid during the handler call. */
typedef struct crl_http_res crl_http_res;

/** Answers one request through res; its return value is ignored. A handler that returns
 * without a response gets 500, the status of its body's failure (413, 408, 400), or, when
 * reading the body failed because the client went away (a reset), none: the connection
 * closes, as it does when a response was half sent. The response goes out when the handler
 * returns, batched with those of pipelined requests.
 * @param req the request
 * @param res its response
 * @param ctx crl_http_serve's ctx
 * @return ignored */
typedef int crl_http_handler_fn(crl_http_req *req, crl_http_res *res, void *ctx);

/** Limits of the server; zero fields take the defaults. A timeout of INT64_MAX is as good as
 * none; a negative one has expired at once (the time rule at the top). */
struct crl_http_limits {
    size_t max_request_line;   /**< bytes of method + target + version; 0 = 8 KiB -> 414 */
    size_t max_header_bytes;   /**< all header lines; 0 = 16 KiB -> 431 */
    unsigned max_headers;      /**< 0 = 100 -> 431 */
    size_t max_body;           /**< 0 = 1 MiB -> 413 */
    int64_t header_timeout_ns; /**< whole request head must arrive in it (slowloris), from its
                                  first byte (a new connection: from the start, then a silent
                                  close if nothing came); 0 = 10 s -> 408 + close */
    int64_t body_timeout_ns;  /**< whole body (total, not between reads); 0 = 30 s -> 408 + close */
    int64_t idle_timeout_ns;  /**< keep-alive idle between requests; 0 = 60 s -> silent close */
    int64_t write_timeout_ns; /**< one response's writes; 0 = 30 s -> close */
};

/** Options of crl_http_serve(); zeroed = every default. */
struct crl_http_server_opts {
    struct crl_http_limits limits; /**< the limits */
    struct crl_serve_opts serve;   /**< balance, cores, max_conns (per core), drain, on_ready
                                      (which gets crl_http_serve's ctx) */
};

/** Serve HTTP on "HOST:PORT" (opts may be NULL) until the calling task is cancelled, then stop
 * gracefully as crl_serve does: idle keep-alive connections close at once, busy ones finish
 * their request (answered with "Connection: close").
 * @param host_port the address to listen on
 * @param opts options, or NULL
 * @param handler runs for each request
 * @param ctx its context, borrowed
 * @return 0, or a negative errno at once if it cannot listen */
int crl_http_serve(const char *host_port, const struct crl_http_server_opts *opts,
                   crl_http_handler_fn *handler, void *ctx);
/** @} */

/** @name HTTP server: the request
 *
 * The request. Strings are NUL-terminated and valid until the handler returns.
 * @{ */

/** The request's method.
 * @param req the request
 * @return the method: "GET", "POST", ... */
const char *crl_http_req_method(const crl_http_req *req);

/** The target in origin form: as sent ("/a/b?x=1"), "*" (OPTIONS only), or for an
 * absolute-form target ("http://host/a/b?x=1", RFC 9112 3.2.2) its path and query as if sent
 * in origin form ("/a/b?x=1"; "/" for an empty path). Only http and https targets are
 * accepted (400 otherwise).
 * @param req the request
 * @return the target */
const char *crl_http_req_target(const crl_http_req *req);

/** The target up to '?' (not decoded).
 * @param req the request
 * @return the path */
const char *crl_http_req_path(const crl_http_req *req);

/** The target after '?'.
 * @param req the request
 * @return the query, or NULL */
const char *crl_http_req_query(const crl_http_req *req);

/** The authority the request is for, "host" or "host:port" as sent (not lowercased): an
 * absolute-form target's authority (a Host header is then ignored, RFC 9112 3.2.2), else the
 * Host header's value ("" if empty).
 *
 * Always a valid RFC 3986 authority without userinfo: anything else got 400.
 * @param req the request
 * @return the authority; NULL for an HTTP/1.0 request without Host (1.1 requires one) */
const char *crl_http_req_host(const crl_http_req *req);

/** The request's HTTP version.
 * @param req the request
 * @return 10 or 11 (a higher 1.x minor is 11) */
int crl_http_req_version(const crl_http_req *req);

/** The first value of header name (case-insensitive), trimmed of surrounding whitespace.
 * @param req the request
 * @param name the field name
 * @return the value, or NULL if absent */
const char *crl_http_req_header(const crl_http_req *req, const char *name);

/** The number of header fields of the request.
 * @param req the request
 * @return the count */
size_t crl_http_req_header_count(const crl_http_req *req);

/** Header i (0 .. count - 1) in the order received; out of range gives NULLs.
 * @param req the request
 * @param i the index
 * @param name out: the field's name
 * @param value out: its value */
void crl_http_req_header_at(const crl_http_req *req, size_t i, const char **name,
                            const char **value);

/** The Content-Length.
 * @param req the request
 * @return the length; -1 when the body is chunked; 0 when there is no body */
int64_t crl_http_req_content_length(const crl_http_req *req);

/** Stream the body into buf.
 *
 * Sends "100 Continue" first if the client expects it. Blocks; a cancellation point. Unread
 * body is drained (up to max_body) after the handler, or the connection closes.
 * @param req the request
 * @param buf where the bytes go
 * @param len at most this many
 * @return > 0 bytes, 0 at its end, -EMSGSIZE beyond max_body (the server answers 413 and
 * closes), -ETIMEDOUT (body timeout: 408), -EPROTO (bad chunked coding: 400), or another
 * negative errno if the client went away */
ssize_t crl_http_req_read(crl_http_req *req, void *buf, size_t len);

/** The whole (rest of the) body, buffered by the server up to max_body.
 * @param req the request
 * @param body out: the bytes, valid until the handler returns
 * @return its length, with *body valid until the handler returns, or an error as
 * crl_http_req_read's */
ssize_t crl_http_req_body(crl_http_req *req, const void **body);
/** @} */

/** @name HTTP server: the response
 * @{ */

/** Add a response header.
 * @param res the response
 * @param name the field's name
 * @param value its value
 * @return 0, -EINVAL for a bad name token, CR/LF/NUL in the value, or a header the server
 * writes itself (Content-Length, Transfer-Encoding, Date; "Connection: close" is taken as
 * asking the server to close after the response), or -EALREADY once the head is on its way */
int crl_http_res_header(crl_http_res *res, const char *name, const char *value);

/** The whole response: status (200..999), Content-Type (NULL: none) and body (copied or
 * written before the call returns). A HEAD request gets the head with the Content-Length.
 * @param res the response
 * @param status the status code
 * @param content_type the Content-Type, or NULL
 * @param body the body's bytes
 * @param len how many
 * @return 0, -EINVAL, -EALREADY if a response was made already, or a write error */
int crl_http_res_send(crl_http_res *res, int status, const char *content_type, const void *body,
                      size_t len);

/** Start a streamed response: chunked for HTTP/1.1, close-delimited for 1.0. Then
 * crl_http_res_write() each piece and crl_http_res_end().
 * @param res the response
 * @param status the status code
 * @param content_type the Content-Type, or NULL
 * @return same returns as crl_http_res_send */
int crl_http_res_start(crl_http_res *res, int status, const char *content_type);

/** Send one piece of a streamed response (one chunk; len 0 sends nothing). Blocks until it is
 * written (write timeout).
 * @param res the response
 * @param data the bytes
 * @param len how many
 * @return 0, -EINVAL if no stream was started, or the write error */
int crl_http_res_write(crl_http_res *res, const void *data, size_t len);

/** End a streamed response.
 * @param res the response
 * @return 0, -EINVAL if none was started, or a write error */
int crl_http_res_end(crl_http_res *res);

/** The response with bytes [offset, offset + len) of file fd (not closed) as its body, with
 * Content-Length len. Reads the file with crl_pread; a file shorter than promised closes the
 * connection (-EIO).
 * @param res the response
 * @param status the status code
 * @param content_type the Content-Type, or NULL
 * @param fd the file
 * @param offset where the body starts in it
 * @param len the body's length
 * @return same returns as crl_http_res_send */
int crl_http_res_send_file(crl_http_res *res, int status, const char *content_type, int fd,
                           int64_t offset, int64_t len);
/** @} */

/* ---- HTTP client ------------------------------------------------------------------------ */
/** @name HTTP client
 * @{ */

/** A minimal HTTP/1.1 client, for a task that calls another service.
 *
 * A client holds one connection to one server, dialled when first needed and reused while the
 * server keeps it alive; it serves one request at a time and belongs to the tasks of one
 * core. Responses are parsed strictly (llhttp) and held to size limits; bodies may be
 * Content-Length, chunked or close-delimited. Before a request goes on a kept-alive
 * connection, a non-blocking peek checks what happened while it sat idle: if the server closed
 * or reset it (as nginx does at keepalive_timeout) or sent bytes no request asked for, it is
 * dropped and the request, of any method, goes on a new connection. A kept-alive connection
 * that ends (end of stream or reset before the first response byte) once the request is on
 * its way is redialled once and the request sent again only if it is GET or HEAD or none of it
 * had been sent: the server may have acted on it. */
struct crl_http_client;

/** Options of crl_http_client_open(); zero fields take defaults. */
struct crl_http_client_opts {
    int64_t connect_timeout_ns; /**< bound on each connect (within the request's deadline);
                                   0 = 5 s, < 0 = only the request's deadline */
    size_t max_head_bytes;      /**< status line and header lines of a response; 0 = 16 KiB */
    unsigned max_headers;       /**< header fields of a response; 0 = 64 */
    size_t max_body;            /**< bytes of a response body; 0 = 1 MiB */
};

/** A header field, as NUL-terminated name and value. */
struct crl_http_header {
    const char *name;  /**< the field's name */
    const char *value; /**< its value */
};

/** A request; everything it points to is only borrowed for the call. */
struct crl_http_request {
    const char *method; /**< a token: "GET", "POST", ... */
    const char *target; /**< origin form, "/path?query": visible ASCII, no spaces */
    /** Extra fields, sent in order after "Host: HOST:PORT" (which a Host field here replaces).
     * Content-Length and Transfer-Encoding are the client's to set (-EINVAL); a field
     * "Connection: close" closes the connection after the response. */
    const struct crl_http_header *headers;
    size_t header_count; /**< the number of headers */
    const void *body;    /**< body_len bytes; Content-Length is sent when body_len > 0 or the
                            method is POST, PUT or PATCH */
    size_t body_len;     /**< the body's length */
    bool chunked;        /**< send the body chunked (Transfer-Encoding: chunked) instead */
    int64_t deadline_ns; /**< absolute, for the whole exchange (connect and retry included);
                            CRL_NO_DEADLINE = none */
};

/** A response, owned by the caller once crl_http_client_request() filled it in; release it
 * with crl_http_response_fini(). */
struct crl_http_response {
    int status;                            /**< e.g. 200; interim 1xx responses are skipped */
    int version;                           /**< 11 for HTTP/1.1, 10 for HTTP/1.0 */
    const struct crl_http_header *headers; /**< in the order received (trailers are dropped) */
    size_t header_count;                   /**< the number of headers */
    const char *body; /**< body_len bytes, followed by a NUL for convenience; "" when none */
    size_t body_len;  /**< the body's length */
    void *headers_, *strings_, *body_; /* private: the storage */
};

/** Make a client for the server at "HOST:PORT" (numeric, as crl_parse_addr(), or a host
 * name, resolved when the client dials, within the connect timeout: see crl_tcp_connect);
 * opts may be NULL.
 *
 * Does not connect (the first request does). Not blocking.
 * @param out the new client
 * @param host_port the server's address
 * @param opts options, or NULL
 * @return 0 and *out, -EINVAL for a bad address, or -ENOMEM */
int crl_http_client_open(struct crl_http_client **out, const char *host_port,
                         const struct crl_http_client_opts *opts);

/** Close c's connection, if any, and free c (NULL is ignored). No request may be in progress.
 *
 * Not blocking; call it from a task of the core that used c.
 * @param c the client, or NULL */
void crl_http_client_close(struct crl_http_client *c);

/** Send req over c's connection (dialling it if there is none) and wait for the whole
 * response, which goes to *out. A cancellation point.
 *
 * After an error *out is empty (crl_http_response_fini() on it is harmless) and the
 * connection is closed.
 * @param c the client
 * @param req the request, borrowed for the call
 * @param out the response
 * @return 0, or: -EINVAL for a bad request (method, target, a field with CR/LF or a framing
 * field); -EBUSY while another task's request is in progress on c; -ETIMEDOUT when
 * req->deadline_ns or the connect timeout passed; -EMSGSIZE when the response's head, header
 * count or body is over c's limits; -EPROTO for a malformed response (or one of a version
 * other than HTTP/1.0 and 1.1); -ECONNRESET when the server closed the connection before
 * answering; or a socket error (-ECONNREFUSED, ...) */
int crl_http_client_request(struct crl_http_client *c, const struct crl_http_request *req,
                            struct crl_http_response *out);

/** The value of r's first header field named name (case-insensitive), or NULL.
 * @param r the response
 * @param name the field's name
 * @return the value, or NULL */
const char *crl_http_response_header(const struct crl_http_response *r, const char *name);

/** Free r's storage and zero it.
 * @param r the response */
void crl_http_response_fini(struct crl_http_response *r);
/** @} */

/** @name HTTP client: requests by URL
 *
 * crl_http_fetch and crl_http_get take "http://HOST[:PORT][/PATH][?QUERY]"
 * and go over a pool of kept-alive connections of the calling core (a client per
 * connection, as above, with the peek before reuse): a request to a "HOST:PORT" with an idle
 * connection takes the one used last, else dials a new one; after the response a connection
 * the server keeps alive goes back to the pool. The pool is bounded: at most
 * max_idle_per_host idle connections to one "HOST:PORT" and max_idle in all, the oldest
 * closed to make room; one idle for idle_timeout_ns is closed (by a timer of the core, the
 * server sees it go). Each core has a pool of its own (one of the CRL_CORE_LOCALS_MAX
 * per-core keys, taken on first use); it is closed when the runtime ends.
 * @{ */

/** Bounds of the calling core's connection pool (crl_http_pool_set_opts); zero fields take
 * defaults. */
struct crl_http_pool_opts {
    unsigned max_idle_per_host;         /**< idle connections kept per "HOST:PORT"; 0 = 8 */
    unsigned max_idle;                  /**< idle connections kept in all; 0 = 64 */
    int64_t idle_timeout_ns;            /**< an idle connection is closed after it; 0 = 30 s,
                                             < 0 = none is kept (each request dials) */
    struct crl_http_client_opts client; /**< for the clients the pool opens */
};

/** Counters of the calling core's connection pool. */
struct crl_http_pool_stats {
    size_t idle;     /**< connections idle in the pool now */
    uint64_t opened; /**< clients opened for requests (each dials its connection) */
    uint64_t reused; /**< requests that took an idle connection from the pool */
};

/** Send a request to a URL over the calling core's connection pool and wait for the whole
 * response.
 *
 * The URL is "http://HOST[:PORT][/PATH][?QUERY][#FRAGMENT]": HOST a name (resolved when a
 * connection is dialled, see crl_tcp_connect), an IPv4 address or an IPv6 one in brackets;
 * PORT 80 if none; the target sent is PATH and QUERY as written ("/" for an empty path;
 * the fragment is not sent), which must be visible ASCII (percent-encode the rest). Blocking;
 * a cancellation point. Outputs and errors as crl_http_client_request's, the pool's
 * connection reused when alive (see above).
 * @param method the request method ("GET", "POST", ...; NULL = "GET")
 * @param url the URL, as above; borrowed for the call
 * @param req headers, body, chunked and deadline_ns of the request (its method and target
 *        fields are ignored), or NULL: none, no deadline
 * @param out the response, the caller's to crl_http_response_fini(); empty after an error
 * @return 0, -EPROTONOSUPPORT for an https URL, -EINVAL for a URL not of the form above
 *         (another scheme, no host, userinfo, a bad port or target), -ENOMEM, or an error of
 *         crl_http_client_request (-ETIMEDOUT, -ECONNREFUSED, -ENOENT for a host name that
 *         does not resolve, ...) */
int crl_http_fetch(const char *method, const char *url, const struct crl_http_request *req,
                   struct crl_http_response *out);

/** GET a URL: crl_http_fetch("GET", url, {.deadline_ns = deadline_ns}, out).
 *
 * Blocking; a cancellation point.
 * @param url "http://HOST[:PORT][/PATH][?QUERY]", as crl_http_fetch takes
 * @param out the response, the caller's to crl_http_response_fini()
 * @param deadline_ns absolute, for the whole exchange; CRL_NO_DEADLINE = none
 * @return as crl_http_fetch */
int crl_http_get(const char *url, struct crl_http_response *out, int64_t deadline_ns);

/** Set the bounds of the calling core's connection pool, closing the connections idle in it.
 *
 * Not blocking. Applies to this core only (call it on each core that fetches).
 * @param opts the bounds; NULL = every default
 * @return 0, -EINVAL outside a runtime, or -ENOMEM (also when every per-core key is taken) */
int crl_http_pool_set_opts(const struct crl_http_pool_opts *opts);

/** Copy the counters of the calling core's connection pool into *out (zeros outside a
 * runtime). Not blocking.
 * @param out where the counters go */
void crl_http_pool_stats(struct crl_http_pool_stats *out);
/** @} */

/* ---- Cores ------------------------------------------------------------------------------ */
/** @name Cores
 * @{ */

/** The calling core's index (0 .. crl_core_count() - 1); 0 outside a runtime.
 * @return the index */
unsigned crl_core_id(void);

/** Executors in the running runtime (0 outside one).
 * @return the count */
unsigned crl_core_count(void);

/** Start fn(arg) as a task on core `core`, as a child of scope s (which is on the calling
 * core): s waits for it, receives its error (which cancels s's other children), and its
 * cancellation reaches it on the other core.
 *
 * arg follows the same rule as crl_spawn (it may point into the frame that runs s). Not a
 * cancellation point.
 * @param s the scope the task joins
 * @param core the core it runs on
 * @param fn the task's function
 * @param arg its argument
 * @param name the task's name
 * @return 0, -EINVAL for a core that does not exist, or -ENOMEM */
int crl_spawn_on_named(struct crl_scope *s, unsigned core, crl_task_fn *fn, void *arg,
                       const char *name);

/** crl_spawn_on_named naming the task after its function.
 * @param s the scope the task joins
 * @param core the core it runs on
 * @param fn the task's function (its name names the task)
 * @param arg its argument
 * @return as crl_spawn_on_named() */
#define crl_spawn_on(s, core, fn, arg) crl_spawn_on_named((s), (core), (fn), (arg), #fn)

/** The running runtime, for threads that are not its executors. */
struct crl_runtime;

/** The runtime the calling task runs in; valid until its crl_run returns.
 * @return the runtime */
struct crl_runtime *crl_runtime_current(void);

/** From a thread that is not an executor: run fn(arg) as a task on core `core` of rt and
 * block the thread until it returns.
 *
 * rt must still be running when the call is made.
 * @param rt the runtime
 * @param core the core fn runs on
 * @param fn the function
 * @param arg its argument
 * @return fn's result; -EINVAL for a core that does not exist, -EBUSY when called from an
 * executor (it would block its core), -ESHUTDOWN if rt is stopping, -ENOTSUP if rt runs on
 * the sim backend (its thread runs only what the seed draws) */
int crl_runtime_call(struct crl_runtime *rt, unsigned core, crl_task_fn *fn, void *arg);

/** Per-core locals: one zero-initialized instance of a value per core (sharded state: a
 * cache, a counter), each touched only by its own core. Keys are process-wide.
 * CRL_CORE_LOCALS_MAX is how many keys there can be. */
#define CRL_CORE_LOCALS_MAX 32

/** Create a key for values of `size` bytes; dtor (may be NULL) runs on each core's instance
 * when that core stops.
 *
 * Callable from anywhere.
 * @param size bytes of a value
 * @param dtor the destructor, or NULL
 * @return the key (>= 0), -ENOSPC or -EINVAL */
int crl_core_local_create(size_t size, void (*dtor)(void *value));

/** The calling core's instance for key (allocated zeroed on first use), or NULL for a bad
 * key or when out of memory. Never blocks.
 * @param key a key from crl_core_local_create()
 * @return the instance, or NULL */
void *crl_core_local_get(int key);

/** Run fn(arg) as a task on core `core` and return its result, blocking the calling task.
 *
 * A cancellation point: cancelling the caller cancels the remote task and still waits for it
 * to end (arg may point into the caller's frame). Calling one's own core runs fn directly.
 * At most 512 calls from one core to another are in flight; more wait for a reply.
 * @param core the core fn runs on
 * @param fn the function
 * @param arg its argument
 * @return fn's result; -EINVAL for a core that does not exist */
int crl_call(unsigned core, crl_task_fn *fn, void *arg);
/** @} */

/* ---- Cross-core channels ---------------------------------------------------------------- */
/** @name Cross-core channels
 * @{ */

/** A bounded channel from the tasks of one core (the sending side) to the tasks of another
 * (the receiving side), carrying values of a fixed size by copy through a lock-free ring.
 * Any number of tasks may use each side, from that side's core only (checked where
 * assertions are on). A side that waits is woken by the other; a side that does not wait
 * costs the other nothing. Opaque. */
struct crl_xchan;

/** Make a channel for values of elem_size bytes holding at least capacity of them (rounded up
 * to a power of two). The two cores may be the same.
 * @param out the new channel
 * @param elem_size bytes of a value
 * @param capacity values it holds, at least
 * @param sender_core the sending side's core
 * @param receiver_core the receiving side's core
 * @return 0, -EINVAL (a core that does not exist, a zero size) or -ENOMEM */
int crl_xchan_create(struct crl_xchan **out, size_t elem_size, size_t capacity,
                     unsigned sender_core, unsigned receiver_core);

/** Free ch once no task uses it any more (e.g. after the scope that ran both sides joined).
 * Waits for a wake-up still on its way to either core.
 * @param ch the channel */
void crl_xchan_destroy(struct crl_xchan *ch);

/** Copy *elem into the channel, waiting while it is full.
 *
 * A cancellation point only when it waits. Sending side only.
 * @param ch the channel
 * @param elem the value (elem_size bytes)
 * @return 0, or -EPIPE once the channel is closed */
int crl_xchan_send(struct crl_xchan *ch, const void *elem);

/** Take the oldest value into *elem, waiting while the channel is empty.
 *
 * A cancellation point only when it waits. Receiving side only.
 * @param ch the channel
 * @param elem where the value goes (elem_size bytes)
 * @return 0, or -EPIPE once the channel is closed and drained */
int crl_xchan_recv(struct crl_xchan *ch, void *elem);

/** As crl_xchan_send, but -EAGAIN instead of waiting.
 * @param ch the channel
 * @param elem the value
 * @return as crl_xchan_send(), or -EAGAIN */
int crl_xchan_try_send(struct crl_xchan *ch, const void *elem);

/** As crl_xchan_recv, but -EAGAIN instead of waiting.
 * @param ch the channel
 * @param elem where the value goes
 * @return as crl_xchan_recv(), or -EAGAIN */
int crl_xchan_try_recv(struct crl_xchan *ch, void *elem);

/** Close ch, from either side: sends fail with -EPIPE from now on, receives drain what was
 * sent and then fail with -EPIPE; waiting tasks on both sides wake.
 * @param ch the channel */
void crl_xchan_close(struct crl_xchan *ch);
/** @} */

/* ---- Diagnostics ------------------------------------------------------------------------ */
/** @name Diagnostics
 * @{ */

/** Write the calling core's live scope tree (scopes, their tasks and states) to fd.
 * @param fd where to write */
void crl_dump_tree(int fd);

/** Write every task of every core of every running runtime to fd, from any thread.
 *
 * For each runtime and each of its cores, in core order: the scope tree, and for each task
 * its name, its state (running, runnable or parked), what a parked task waits for (an I/O
 * operation and its fd, a sleep and its deadline, a channel, mutex or event, a join, a
 * cross-core call's reply, the blocking pool), how long ago it was spawned and last ran (at
 * the granularity of a loop turn) and its backtrace, symbolized (function names need the
 * program linked with -rdynamic, or libdw and debug info; file and line need -g).
 *
 * Callable from a task, from a thread of the program's that runs no core, or from a log
 * sink. Each core writes its part at its next loop turn, which holds it up only that long;
 * the caller waits for the parts up to 200 ms in all. A core that does not answer in time
 * (a task on it runs without reaching a switch point) is shown as not answering, with the
 * stall detector's last report of it (its running task and backtrace), if any. The calling
 * task's own core is written directly, the caller shown as running; that core waits for
 * the whole dump (symbolizing takes milliseconds, more the first time), which a thread that
 * runs no core spares it. Dumps from several
 * threads run one after the other; a runtime does not finish stopping while a dump is
 * under way.
 * @param fd where to write (a blocking fd: the dump is written with write(2)) */
void crl_dump(int fd);

/** Kinds of I/O operation, the index of crl_stats' per-kind I/O counters. */
enum crl_io_kind {
    CRL_IO_READ,    /**< read, readv, pread */
    CRL_IO_WRITE,   /**< write, writev, pwrite */
    CRL_IO_RECV,    /**< recv, recvfrom, recvmsg */
    CRL_IO_SEND,    /**< send, sendto, sendmsg */
    CRL_IO_ACCEPT,  /**< accept, one-shot or standing */
    CRL_IO_CONNECT, /**< connect */
    CRL_IO_POLL,    /**< a wait for readiness */
    CRL_IO_OPEN,    /**< open, openat */
    CRL_IO_SYNC,    /**< fsync, fdatasync */
    CRL_IO_STAT,    /**< stat, fstat, statx */
    CRL_IO_OTHER,   /**< every other kind (close, shutdown, ...) */
    CRL_IO_KINDS    /**< the number of kinds */
};

/** Write every core's flight recorder (see crl_config.trace_file) to fd as Chrome trace-event
 * JSON, from a task of the runtime.
 * @param fd where to write
 * @return 0, -ENODATA when tracing is off, -ESRCH outside a runtime, or a write error */
int crl_trace_write(int fd);

/** Kinds of HTTP server timeout, the index of crl_stats::http_timeouts. */
enum crl_http_timeout_kind {
    CRL_HTTP_TIMEOUT_HEADER, /**< a request head (or a first request) did not arrive in time */
    CRL_HTTP_TIMEOUT_BODY,   /**< a request body did not arrive in time */
    CRL_HTTP_TIMEOUT_IDLE,   /**< a keep-alive connection waited too long for its next request */
    CRL_HTTP_TIMEOUT_WRITE,  /**< the peer did not take a response in time */
    CRL_HTTP_TIMEOUT_KINDS   /**< the number of kinds */
};

/** A core's counters since it started, or their sums over a runtime's cores.
 *
 * Every field counts up, except the gauges tasks_live, conns_live and runq_high. Each core
 * writes only its own counters (relaxed atomic stores), so any thread may read them at any
 * time without stopping the core; a read of several fields is not one snapshot. */
struct crl_stats {
    uint64_t tasks_spawned;              /**< tasks started */
    uint64_t tasks_live;                 /**< tasks not ended yet (a gauge) */
    uint64_t switches;                   /**< switches from one task to another */
    uint64_t runq_high;                  /**< most tasks ever runnable at once (a gauge) */
    uint64_t busy_ns;                    /**< time spent running tasks */
    uint64_t idle_ns;                    /**< time spent waiting for something to do */
    uint64_t loop_turns;                 /**< turns of the scheduler's loop */
    uint64_t sleeps;                     /**< waits of the loop that blocked its thread */
    uint64_t wakeups_sent;               /**< wake-ups sent to other cores */
    uint64_t wakeups_received;           /**< wake-ups received from other threads */
    uint64_t io_started[CRL_IO_KINDS];   /**< I/O operations started, by kind */
    uint64_t io_completed[CRL_IO_KINDS]; /**< I/O operations completed, by kind */
    uint64_t io_cancelled[CRL_IO_KINDS]; /**< of which cancelled, by kind */
    uint64_t timers_armed;               /**< timers armed (deadlines, sleeps) */
    uint64_t timers_fired;               /**< timers that reached their deadline */
    uint64_t calls_sent;                 /**< cross-core calls made from this core */
    uint64_t calls_received;             /**< cross-core calls run on this core */
    uint64_t chan_sent;                  /**< cross-core channel messages sent */
    uint64_t chan_received;              /**< cross-core channel messages received */
    uint64_t pool_queued;                /**< blocking-pool jobs queued */
    uint64_t pool_run;                   /**< blocking-pool jobs finished */
    uint64_t stalls;                     /**< stalls the watchdog reported */
    uint64_t conns_accepted;             /**< connections accepted by crl_serve */
    uint64_t conns_live;                 /**< connections crl_serve serves (a gauge) */
    uint64_t http_requests;              /**< HTTP requests handed to a handler */
    uint64_t http_responses[5];          /**< HTTP responses made, by class: [0] 1xx .. [4] 5xx */
    uint64_t http_bytes_in;              /**< bytes the HTTP server read */
    uint64_t http_bytes_out;             /**< bytes the HTTP server wrote */
    uint64_t http_parse_errors;          /**< requests rejected as malformed or too large */
    uint64_t http_timeouts[CRL_HTTP_TIMEOUT_KINDS]; /**< HTTP server timeouts, by kind */
    uint64_t io_ops;                                /**< I/O operations started */
    uint64_t accept_calls;                          /**< accept attempts made by crl_accept */
    uint64_t accept_emfile; /**< of which failed for lack of fds, and backed off */
};

/** The counters of the calling task's runtime, summed over its cores.
 *
 * Outside a runtime every field is 0.
 * @param out where they go */
void crl_stats_get(struct crl_stats *out);

/** The counters of one core of the calling task's runtime.
 *
 * @param core the core's id, below crl_core_count()
 * @param out where they go (left as it is on an error)
 * @return 0, -EINVAL for a core the runtime does not have, -ESRCH outside a runtime */
int crl_stats_core(unsigned core, struct crl_stats *out);

/** The calling task's runtime's counters in the Prometheus text exposition format 0.0.4.
 *
 * One metric family per field of struct crl_stats, named corral_FIELD_total for counters
 * and corral_FIELD for the gauges, each with a HELP and a TYPE line and one series per core
 * (label core="N"; the per-kind fields add kind="..." or class="Nxx"). Like snprintf: at
 * most cap bytes go to buf, NUL-terminated when cap > 0. Outside a runtime the text is
 * empty.
 * @param buf where the text goes (may be NULL when cap is 0)
 * @param cap its size in bytes
 * @return the length of the whole text, without the NUL: the text was cut short if it is
 *         cap or more */
size_t crl_metrics_text(char *buf, size_t cap);

/** crl_runtime_stats()'s core for the sums over every core. */
#define CRL_ALL_CORES (~0u)

/** The counters of one core of rt, or their sums, read from any thread.
 *
 * Like crl_stats_core(), through a runtime's handle instead of the caller's runtime: a
 * thread that is not an executor (a signal or monitoring thread) reads them without asking
 * any core, so a stalled core does not hold it up. rt must still be running.
 * @param rt the runtime, from crl_runtime_current()
 * @param core the core's id, or CRL_ALL_CORES for the sums over every core
 * @param out where they go (left as it is on an error)
 * @return 0, or -EINVAL for a NULL rt or a core rt does not have */
int crl_runtime_stats(struct crl_runtime *rt, unsigned core, struct crl_stats *out);

/** rt's counters in the Prometheus text format, read from any thread.
 *
 * The text of crl_metrics_text(), through a runtime's handle: any thread may call it while
 * rt is running, without asking any core.
 * @param rt the runtime, from crl_runtime_current() (NULL: the text is empty)
 * @param buf where the text goes (may be NULL when cap is 0)
 * @param cap its size in bytes
 * @return as crl_metrics_text() */
size_t crl_runtime_metrics_text(struct crl_runtime *rt, char *buf, size_t cap);
/** @} */

#ifdef __cplusplus
}
#endif
#endif /* CORRAL_H */
