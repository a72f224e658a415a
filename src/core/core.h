/* core.h - internal types of corral's per-core runtime: the core, tasks, scopes, timers.
 *
 * All per-core state hangs off one struct crl__core reached through one thread-local pointer
 * (crl__cur), so that a simulator can later run several cores' executors on one thread by
 * swapping that pointer. Nothing here is locked: a core's objects are touched by its own
 * thread only. */
#ifndef CRL_CORE_CORE_H
#define CRL_CORE_CORE_H

#include "corral.h"

#include <pthread.h>
#include <time.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Intrusive doubly linked list (circular, with a head node) ---------------------------- */

struct crl__list {
    struct crl__list *next, *prev;
};

static inline void crl__list_init(struct crl__list *h) { h->next = h->prev = h; }
static inline bool crl__list_empty(const struct crl__list *h) { return h->next == h; }

static inline void crl__list_add_tail(struct crl__list *h, struct crl__list *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static inline void crl__list_del(struct crl__list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}

#define crl__container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- Timers: a hierarchical wheel per core (timer.c) --------------------------------------- */

#define CRL__WHEEL_LEVELS 7
#define CRL__WHEEL_SLOTS 64

struct crl__timer {
    struct crl__timer *next, **pprev; /* in a wheel slot or the due list; pprev NULL = idle */
    int64_t deadline_ns;
    void (*fire)(struct crl__timer *t);
    uint16_t where; /* level * 64 + slot, or CRL__WHEEL_DUE */
};

struct crl__wheel {
    uint64_t tick; /* every tick below this one has been processed */
    uint64_t occupied[CRL__WHEEL_LEVELS];
    struct crl__timer *slot[CRL__WHEEL_LEVELS][CRL__WHEEL_SLOTS];
    struct crl__timer *due; /* already expired when armed: fired at the next advance */
    struct crl__timer *far; /* beyond the wheel's window: re-filed when it turns over */
    size_t count;
    /* No armed timer is due before this (a lower bound; INT64_MIN: not known since the last
     * advance): what lets crl_checkpoint see a passed deadline without walking the wheel. */
    int64_t due_hint;
};

void crl__wheel_init(struct crl__wheel *w, int64_t now_ns);
void crl__timer_arm(struct crl__wheel *w, struct crl__timer *t, int64_t deadline_ns);
void crl__timer_disarm(struct crl__wheel *w, struct crl__timer *t);
static inline bool crl__timer_armed(const struct crl__timer *t) { return t->pprev != NULL; }
/* Fire every timer whose deadline is before now_ns. */
void crl__wheel_advance(struct crl__wheel *w, int64_t now_ns);
/* When the loop must next wake up for the wheel (-1: nothing armed). */
int64_t crl__wheel_next_ns(const struct crl__wheel *w);
/* Fire the timers due at now_ns, if any: cheap when none is (see due_hint). */
void crl__wheel_fire_due(struct crl__wheel *w, int64_t now_ns);

/* ---- Stacks (stack.c) ----------------------------------------------------------------------- */

struct crl__slab;

/* The guard below every task stack: address space no access may touch. Much wider than a
 * page, because code built without -fstack-clash-protection moves the stack pointer by a
 * whole frame before touching it: a 224 KB frame on a 64 KiB stack must land in the guard,
 * not in the stack below. With MADV_GUARD_INSTALL it costs no mapping and no memory, only
 * address space and its page-table entries. */
enum { CRL__STACK_GUARD = 256 * 1024 };

struct crl__stack {
    char *base;             /* lowest address; the guard (CRL__STACK_GUARD) starts here */
    size_t size;            /* the whole region: guard and usable stack */
    struct crl__slab *slab; /* the mapping it was carved from, or NULL: a mapping of its own */
    uint32_t colour;        /* bytes the frames start below the top: spreads stacks over L1 sets */
    unsigned vg_id;         /* valgrind stack id */
};

struct crl__stack_class {
    size_t size;
    struct crl_task *free; /* LIFO of recycled stacks, by the task record at their top */
    size_t nfree;
    size_t low;             /* fewest cached since the last trim: that many sat unused all along */
    struct crl__slab *slab; /* fresh stacks are carved from one mapping of several */
    char *carve;            /* the next stack to carve from it */
    size_t slab_left;       /* stacks still to carve from it */
};

#define CRL__STACK_CLASSES 4

struct crl__stack_pool {
    struct crl__stack_class cls[CRL__STACK_CLASSES]; /* cls[0]: the default size */
    struct crl_task *released; /* stacks to give back once the loop is off them */
    unsigned serial;           /* stacks made so far, spreads stack tops over L1 sets */
    int64_t trimmed_ns;        /* when crl__stack_trim last ran */
};

/* ---- Tasks ---------------------------------------------------------------------------------- */

enum crl__task_state { CRL__RUNNABLE, CRL__RUNNING, CRL__PARKED, CRL__DONE };

struct crl_task {
    void *sp;                  /* saved stack pointer while switched out */
    struct crl_task *run_next; /* run queue link */
    struct crl__core *core;
    crl_task_fn *fn;
    void *arg;
    const char *name;
    struct crl_scope *home;      /* scope it was spawned into and joins */
    struct crl_scope *scope;     /* innermost scope it is in: home, or the last it opened */
    struct crl__list scope_link; /* in home->tasks */
    bool cancel_hint;            /* may be cancelled: false means surely not (see scope.c) */
    enum crl__task_state state;
    int wake_result;
    void (*unpark)(
        struct crl_task *t); /* while parked: undoes the wait on cancel; NULL = not cancellable */
    void *park_obj;          /* what it waits on (for unpark and the tree dump) */
    void *asan_fake_stack;
    void *tsan_fiber;     /* TSan's state for this context (the TSan build only) */
    unsigned locals_used; /* bit k set once locals[k] was set */
    /* Read at spawn and at the end, on the cache line of locals_used, which both touch too;
     * the lines above are the ones a wake-up touches. */
    struct crl__stack stack;
    void *locals[CRL_TASK_LOCALS_MAX];
};

/* ---- Scopes ----------------------------------------------------------------------------- */

/* In a scope from its opening to its return: a scope used after that (its record lies in a
 * dead frame) is told apart, at best effort, from a live one. */
#define CRL__SCOPE_LIVE 0x5c09e11aU

struct crl_scope {
    uint32_t magic;            /* CRL__SCOPE_LIVE while open, else anything */
    struct crl_scope *parent;  /* enclosing scope: cancellation flows down from it */
    struct crl_task *owner;    /* task running the body; NULL for the root scope */
    struct crl__list tasks;    /* live tasks spawned into it */
    struct crl__list kids;     /* scopes nested directly in this one */
    struct crl__list kid_link; /* in parent->kids */
    struct crl__core *core;
    unsigned nlive;    /* live tasks spawned into it */
    int error;         /* first error, 0 if none */
    int cancel_reason; /* 0, ECANCELED or ETIMEDOUT */
    bool shield;
    bool joining;               /* owner is parked waiting for nlive == 0 */
    struct crl__timer deadline; /* armed while a deadline is set and not fired */
    int64_t deadline_ns;
};

/* ---- The core --------------------------------------------------------------------------- */

struct crl__ring;

/* A start or stop line for executor threads: like a barrier, but the number of threads
 * expected can be cut while some wait (when a thread could not be created). */
struct crl__gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned arrived, expected;
};

struct crl__runtime {
    struct crl_config cfg; /* with defaults filled in */
    unsigned ncores;
    struct crl__core **cores; /* by id, each set by its own thread before the start barrier */
    struct crl__ring *rings;  /* ncores x ncores: rings[from * ncores + to] */
    _Atomic bool stopping;    /* core 0's root scope is done: the other cores wind down */
    struct crl__gate started; /* passed once every executor thread has set up its core */
    struct crl__gate stopped; /* passed once core 0 has woken every core to stop */
};

struct crl__io_ops;
struct crl__job;
struct crl__foreign;
struct crl__xnote;
struct crl__faults;

struct crl__core {
    struct crl__runtime *rt;
    unsigned id;                  /* index in rt->cores; core 0 runs the root task */
    const struct crl__io_ops *io; /* the I/O backend (src/io) */
    void *io_state;
    size_t io_pending;          /* operations submitted and not yet completed */
    int wake_fd;                /* eventfd other threads write to wake this core */
    pthread_mutex_t done_lock;  /* guards done_jobs, filled by pool threads */
    struct crl__job *done_jobs; /* finished blocking-pool jobs to complete here */
    size_t offload_pending;     /* jobs queued or running in the pool */
    struct crl_task *cur;       /* running task, or &loop while the loop runs */
    struct crl_task loop;       /* the scheduler's own context (the thread's stack) */
    struct crl_task *runq_head, *runq_tail;
    unsigned budget; /* switches left before the loop must poll */
    struct crl__wheel wheel;
    int64_t now_ns; /* clock read once per loop iteration */
    /* crl_checkpoint's look outside the running task (sched.c): every ckpt_stride calls it
     * reads the clock, fires the due timers and runs checkpoint_hook; the stride adapts so
     * that this happens every few microseconds of the caller's work, whatever a call costs. */
    unsigned ckpt_left, ckpt_stride;
    int64_t ckpt_ns; /* the clock at the last look */
    /* Set by the cross-core layer: takes in cancellations of calls running on this core. */
    void (*checkpoint_hook)(struct crl__core *c);
    struct crl__stack_pool stacks;
    /* Fault injection's hook in task allocation (set by src/io/faults.c, NULL when off):
     * true refuses this spawn with -ENOMEM. */
    bool (*stack_fault)(struct crl__core *c);
    struct crl__faults *faults; /* src/io/faults.c's state for this core, NULL when off */
    struct crl_scope *root;
    size_t ntasks; /* live tasks, the root task included */
    struct crl_stats stats;
    struct crl__list remote_calls; /* calls from other cores running here (src/smp/call.c) */
    unsigned *credits;             /* per target core: calls this core may still send */
    size_t remote_pending;         /* this core's calls waiting for a reply */
    uint32_t cancel_seen;          /* cancel_gen when this core last looked at remote_calls */
    bool polled_enough;            /* a caller just spun idle_poll_ns for its reply */
    pthread_mutex_t foreign_lock;  /* guards foreign (src/smp/call.c) */
    struct crl__foreign *foreign;  /* calls from non-executor threads, newest first */
    bool foreign_closed;
    /* The mailbox: what other cores write or read here, on a cache line of its own so that
     * it does not bounce with the fields this core updates all the time. */
    _Alignas(64) _Atomic bool sleeping; /* about to block or blocked in the backend's wait */
    _Atomic bool foreign_pending;       /* set after a push to foreign */
    _Atomic uint32_t cancel_gen;        /* bumped by a core cancelling a call running here */
    _Atomic(struct crl__xnote *) notes; /* wake-ups posted by other cores (src/smp/xchan.c) */
    _Alignas(64) void *core_locals[CRL_CORE_LOCALS_MAX]; /* this core's instances (local.c) */
    struct crl_event credit_freed; /* a reply came back: a credit is free again */
    struct crl_event fd_freed;     /* set by crl_close for accepts backing off on EMFILE */
    void *altstack;                /* signal stack for the stack-overflow handler */
    size_t altstack_size;
    void *prev_altstack; /* the thread's signal stack before ours, restored after */
    size_t prev_altstack_size;
    int prev_altstack_flags;
};

extern __thread struct crl__core *crl__cur __attribute__((tls_model("initial-exec")));

/* Abort with a message: a broken invariant or a misuse that cannot be reported as an error. */
_Noreturn void crl__panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void crl__logf(enum crl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* crl__logf through the sink and level of cfg (a config not yet running: NULL = stderr). */
void crl__log_cfg(const struct crl_config *cfg, enum crl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline struct crl__core *crl__core(void) { return crl__cur; }

/* The deadline timeout_ns after now, saturated: a timeout at or below 0 has expired (now),
 * one beyond the end of the clock is INT64_MAX, the far future (corral.h's time rule). */
static inline int64_t crl__deadline_after(int64_t now_ns, int64_t timeout_ns)
{
    if (timeout_ns <= 0)
        return now_ns;
    return timeout_ns > INT64_MAX - now_ns ? INT64_MAX : now_ns + timeout_ns;
}

/* A deadline as a time the clock can reach: CRL_NO_DEADLINE is the far future. */
static inline int64_t crl__deadline_or_never(int64_t deadline_ns)
{
    return deadline_ns == CRL_NO_DEADLINE ? INT64_MAX : deadline_ns;
}

/* CLOCK_MONOTONIC as of the last scheduler tick (1-4 ms behind): a quarter of the cost of
 * crl_now_ns, for deadlines of timeouts counted in seconds. */
static inline int64_t crl__now_coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * CRL_SEC_NS + ts.tv_nsec;
}

static inline struct crl_task *crl__self(void)
{
    struct crl__core *c = crl__cur;
    if (!c || c->cur == &c->loop)
        crl__panic("corral: a task-only call was made outside a task");
    return c->cur;
}

/* sched.c */
static inline void crl__runq_push(struct crl__core *c, struct crl_task *t)
{
    t->run_next = NULL;
    if (c->runq_tail)
        c->runq_tail->run_next = t;
    else
        c->runq_head = t;
    c->runq_tail = t;
}

/* Park the calling task until crl__wake(). unpark (NULL = not cancellable) undoes the wait if
 * cancellation wakes it instead; if the task is already cancelled, park calls unpark and
 * returns at once. Returns the crl__wake() result or the cancellation error. */
int crl__park(void (*unpark)(struct crl_task *t), void *obj);
void crl__wake(struct crl_task *t, int result);
/* crl__wake for a task whose stack is likely out of cache (one that waited on I/O, among
 * hundreds): it runs after the rest of this batch of wake-ups, so start fetching the frames
 * it will return through (saved registers, its callers' locals) now, so that the switch back
 * does not wait on cache and TLB misses one line at a time. 2 KiB reach an HTTP
 * connection's state and its response buffer (http.h). Not for a wake-up among tasks that
 * just ran: 32 prefetches of lines in cache cost a spawn + join ~4 ns. */
enum { CRL__WAKE_PREFETCH_BYTES = 2048 };
void crl__wake_cold(struct crl_task *t, int result);
/* Wake t with the cancellation error if it is parked in a cancellable wait. */
void crl__cancel_wake(struct crl_task *t);
int crl__spawn(struct crl_scope *s, crl_task_fn *fn, void *arg, const char *name, size_t stack);
/* Run the core's loop until the root scope has no live task. */
void crl__loop(struct crl__core *c);

/* scope.c */
int crl__cancel_walk(struct crl_task *t);
/* 0, or -ECANCELED / -ETIMEDOUT if t is cancelled. One load unless t may be cancelled. */
static inline int crl__cancel_status(struct crl_task *t)
{
    return t->cancel_hint ? crl__cancel_walk(t) : 0;
}
void crl__scope_init_root(struct crl_scope *s, struct crl__core *c);
/* Abort, naming call, if s is not an open scope (or, with assertions, not this core's). */
void crl__scope_check(const struct crl_scope *s, const char *call);
void crl__scope_child_done(struct crl_scope *s, struct crl_task *t, int result);

/* stack.c - a task record lives at the top of its own stack, and the pool keeps released
 * stacks as a LIFO of those records (linked by run_next), their ->stack still valid. */
struct crl_task *crl__task_alloc(struct crl__core *c, size_t usable, int *err);
/* The region of a stack with `usable` bytes (rounded up to the minimum and to pages): the
 * guard below it included. */
size_t crl__stack_region_size(size_t usable);
void crl__task_free(struct crl__core *c, struct crl_task *t);

/* The hot paths: a recycled stack of the default size, and giving one back. */
static inline struct crl_task *crl__task_alloc_fast(struct crl__core *c)
{
    struct crl__stack_class *cls = &c->stacks.cls[0];
    struct crl_task *t = cls->free;
    if (__builtin_expect(c->stack_fault != NULL, 0))
        return NULL; /* the slow path asks the hook */
    if (t) {
        cls->free = t->run_next;
        if (--cls->nfree < cls->low)
            cls->low = cls->nfree;
    }
    return t;
}

enum { CRL__MAX_CACHED_STACKS = 4096 };

static inline bool crl__task_free_fast(struct crl__core *c, struct crl_task *t)
{
    struct crl__stack_class *cls = &c->stacks.cls[0];
    if (t->stack.size != cls->size || cls->nfree >= CRL__MAX_CACHED_STACKS)
        return false;
    t->run_next = cls->free;
    cls->free = t;
    cls->nfree++;
    return true;
}

/* Give back the stacks released (their memory now; a slab's addresses with its last stack),
 * from off those stacks. */
void crl__stack_reap(struct crl__core *c);
/* Release half of the stacks that stayed cached and unused since the last trim (the
 * coldest), then start the next period; crl__stack_reap gives them back. */
void crl__stack_trim(struct crl__core *c);
void crl__stack_pool_fini(struct crl__core *c);
int crl__stack_overflow_handler_install(struct crl__core *c);
void crl__stack_overflow_handler_remove(struct crl__core *c);
size_t crl__page_size(void);
/* True once stacks are guarded with MADV_GUARD_INSTALL (known after the first stack). */
bool crl__stack_guard_adds_no_mapping(void);

/* local.c */
void crl__task_locals_destroy(struct crl_task *t);
void crl__core_locals_destroy(struct crl__core *c);

#endif
