/* core.h - internal types of corral's per-core runtime: the core, tasks, scopes, timers.
 *
 * All per-core state is reached through one thread-local pointer (crl__cur) to core's part of
 * the core (struct crl__core below, linked to the other layers' parts), so that a simulator
 * can later run several cores' executors on one thread by swapping that pointer. Nothing
 * here is locked: a core's objects are touched by its own thread only. */
#ifndef CRL_CORE_CORE_H
#define CRL_CORE_CORE_H

#include "corral.h"
#include "clock.h"
#include "count.h"
#include "trace.h"

#include <pthread.h>
#include <time.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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
    uint64_t armed, fired; /* counters (crl_stats' timers_armed, timers_fired) */
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
    size_t low; /* fewest cached since the last trim: that many sat unused all along */
    struct crl_task *seen_free; /* free and nfree when crl__stack_settle last looked */
    size_t seen_nfree;
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

/* CRL__SETTLED: a cached stack's record whose pages went back (crl__stack_settle); a spawn
 * that takes the stack sets the state anew, which clears it at no cost of its own. */
enum crl__task_state { CRL__RUNNABLE, CRL__RUNNING, CRL__PARKED, CRL__DONE, CRL__SETTLED };

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
    /* The core's cached clock (c->now_ns, loop-turn granularity) when it was spawned and when
     * it was last switched in: for the dump, at a store each, no clock read. */
    int64_t ran_ns, spawned_ns;
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
    uint32_t token_slot;        /* its entry in the core's token table, 0 = none (scope.c) */
    struct crl__timer deadline; /* armed while a deadline is set and not fired */
    int64_t deadline_ns;
};

/* ---- The core ---------------------------------------------------------------------------
 *
 * A core's state is built of parts, one per module, each with its own init and fini: this one
 * (scheduler, timers, stacks, scopes), the I/O layer's (src/io/io.h) and the cross-core
 * layer's (src/smp/smp.h). The runtime layer (src/runtime/runtime.h) defines the struct that
 * holds them all and links them here: core never looks inside the other parts. */

/* An entry of a core's table of scopes that cancellation tokens name (scope.c). */
struct crl__token_slot {
    struct crl_scope *scope; /* NULL while free */
    uint64_t gen;            /* the token's generation while in use, 0 while free */
    uint32_t next_free;      /* while free: the next free entry, 0 = none */
};

struct crl__runtime;
struct crl__io_core;
struct crl__smp_core;
struct crl__http_core;

/* The simulated backend's hold on scheduling (io/sim.c), shared by the cores it drives on
 * one thread: the run-queue pick is drawn from rng, and each pick, clock jump and completion
 * is mixed into hash, the run's trace (the same seed gives the same events, so the same
 * hash, on any machine). */
struct crl__sim_sched {
    uint64_t rng;
    uint64_t hash;
    uint64_t events; /* mixed in so far: a failing event's position */
};

enum crl__sim_event {
    CRL__SIM_PICK = 1,
    CRL__SIM_CLOCK,
    CRL__SIM_COMPLETE,
    CRL__SIM_SUBMIT,
    CRL__SIM_CORE, /* the core given the next loop turn */
};

/* splitmix64: the simulator's every draw. */
static inline uint64_t crl__sim_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void crl__sim_record(struct crl__sim_sched *s, enum crl__sim_event kind, uint64_t v)
{
    uint64_t mixed = s->hash ^ ((uint64_t)kind << 56) ^ v;
    s->hash = crl__sim_next(&mixed);
    s->events++;
}

struct crl__core {
    unsigned id;                  /* index among the runtime's cores; core 0 runs the root task */
    const struct crl_config *cfg; /* the runtime's, with defaults filled in */
    struct crl__runtime *rt;      /* the runtime layer's (opaque here) */
    struct crl__io_core *io;      /* the I/O layer's part of this core (opaque here) */
    struct crl__smp_core *smp;    /* the cross-core layer's part (opaque here) */
    struct crl__http_core *http;  /* the HTTP layer's part (opaque here) */
    struct crl_task *cur;         /* running task, or &loop while the loop runs */
    struct crl_task loop;         /* the scheduler's own context (the thread's stack) */
    struct crl_task *runq_head, *runq_tail;
    struct crl__sim_sched *sim; /* NULL unless simulated: then the pick is seeded */
    unsigned budget;            /* switches left before the loop must poll */
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
    struct crl_scope *root;
    struct crl__token_slot *tokens; /* entry 0 unused: a token_slot of 0 means none */
    uint32_t ntokens, token_free;   /* entries made so far; first free entry (0 = none) */
    struct crl_stats stats;         /* its tasks_live: live tasks, the root task included */
    struct crl__trace_ring *trace;  /* the flight recorder, NULL when tracing is off */
    _Alignas(64) void *core_locals[CRL_CORE_LOCALS_MAX]; /* this core's instances (local.c) */
    void *altstack; /* signal stack for the stack-overflow handler */
    size_t altstack_size;
    void *prev_altstack; /* the thread's signal stack before ours, restored after */
    size_t prev_altstack_size;
    int prev_altstack_flags;
};

/* Set up core's part of c (id, cfg and the links to the other parts already set): the loop
 * context on the calling thread, timers, stacks, the root scope. */
int crl__core_init(struct crl__core *c, struct crl_scope *root);
void crl__core_fini(struct crl__core *c);

/* A bug put back on purpose, for the simulator to find (corral-sim --bug shield): shields
 * are ignored. Never set outside that test. */
extern bool crl__bug_shield_ignored;

extern __thread struct crl__core *crl__cur __attribute__((tls_model("initial-exec")));

/* Abort with a message: a broken invariant or a misuse that cannot be reported as an error. */
_Noreturn void crl__panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void crl__logf(enum crl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* crl__logf through the sink and level of cfg (a config not yet running: NULL = stderr). */
void crl__log_cfg(const struct crl_config *cfg, enum crl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline struct crl__core *crl__core(void) { return crl__cur; }

/* A task's id in the trace: its record's address, shortened (records are 64-byte aligned). */
static inline uint32_t crl__task_trace_id(const struct crl_task *t)
{
    return (uint32_t)((uintptr_t)t >> 6);
}
/* Record an event in c's flight recorder, if it has one: one predictable branch if not, the
 * recording itself out of line (inlined, it would weigh on every hot path it sits in). */
void crl__trace_record(struct crl__trace_ring *r, uint8_t kind, uint32_t a, uint64_t b)
    __attribute__((cold, noinline));
#define CRL__TRACE_EV(c, kind, a, b)                                                               \
    do {                                                                                           \
        struct crl__trace_ring *crl_ring_ = (c)->trace;                                            \
        if (__builtin_expect(crl_ring_ != NULL, 0))                                                \
            crl__trace_record(crl_ring_, (kind), (a), (uint64_t)(b));                              \
    } while (0)
/* Name the reason (enum crl__trace_park) of the parks that pass unpark, for the flight
 * recorder: each layer names its own, from a constructor (before any runtime runs), as it
 * names them for the dump. A park through an unnamed function is CRL__PARK_OTHER. */
void crl__trace_name_park(void (*unpark)(struct crl_task *t), enum crl__trace_park reason);

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
/* crl_yield whatever the task's cancellation: for a wait on another core's progress that
 * must not be cut short (crl_yield returns at once when cancelled, and a loop of it would
 * never let the core take in what it waits for). */
void crl__yield_held(void);
/* A wait that cancellation does not end, after the cancellable one it follows: the task was
 * cancelled out of a wait through `was` on obj and must still wait for what it started (an
 * operation, a job, a call whose frame it lent) to finish. Parked with unpark NULL and
 * park_obj pointing at this record, so that the dump still tells what it waits for. */
struct crl__held_wait {
    void (*was)(struct crl_task *t);
    void *obj;
};
static inline void crl__park_held(void (*was)(struct crl_task *t), void *obj)
{
    struct crl__held_wait h = {was, obj};
    crl__park(NULL, &h);
}
/* What a parked task waits for, in words, for the runtime's dump: each layer recognises its
 * own parks by the unpark function they pass (and reads obj, their park_obj), writes a short
 * phrase ("sleep until +12.0 ms", "read fd 7") into out and returns true; false for a park
 * that is not its own. Runs on the task's core's thread (or while that core is known not to
 * run); now_ns is the dump's clock. Costs nothing until asked. */
typedef bool crl__wait_describer(void (*unpark)(struct crl_task *t), const void *obj,
                                 int64_t now_ns, char *out, size_t cap);
/* core's describer: sleeps (timer.c), same-core sync waits (sync.c); a join is told by the
 * caller (a park with unpark NULL on the task's own innermost scope). */
crl__wait_describer crl__core_describe_wait, crl__timer_describe_wait, crl__sync_describe_wait;
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
/* One turn of a loop (the runtime layer's): run the next runnable task, and those it hands
 * over to, until control comes back to the loop (a budget of switches, fewer with I/O in
 * flight so that it is polled sooner). False if no task was runnable. */
bool crl__run_next(struct crl__core *c, bool io_in_flight);
/* Nothing runnable and nothing that could wake a task: report the deadlock with the scope
 * tree and abort. */
_Noreturn void crl__deadlock(struct crl__core *c);

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
/* Free the core's token table (when the core stops: every token then says -ESRCH/-EXDEV). */
void crl__tokens_fini(struct crl__core *c);

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

/* The cache's bound: a released stack beyond it goes back to the kernel at once. A cached
 * stack keeps the pages its last task touched (a request's handler: 2-5 pages), so this is
 * also the bound on what idle connections' tasks leave resident (issue 20: a server whose
 * connections wait without a task must not keep the stacks of a burst of 10 000 of them). */
enum { CRL__MAX_CACHED_STACKS = 1024 };
/* Of those, the most recently used this many keep their pages; the others give back all but
 * their top page (the task record) when the core is next idle (crl__stack_settle). */
enum { CRL__HOT_STACKS = 64 };

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
/* The cached stacks below the hot ones give back the pages their last tasks touched (a
 * burst's worth: an idle server's connections going back to wait without a task), so that
 * the cache's resident size stays near CRL__HOT_STACKS stacks whatever its length. The loop
 * calls it once the core has run no task for CRL__SETTLE_NS (loop.c): under load the stacks
 * would fault their pages back in at their next use. A look walks the hot stacks and those
 * cached since the last one. */
void crl__stack_settle(struct crl__core *c);
#define CRL__SETTLE_NS (100 * CRL_MSEC_NS)
/* Whether the cache changed since the last settle (two compares a class). */
bool crl__stack_settle_pending(const struct crl__core *c);
void crl__stack_pool_fini(struct crl__core *c);
/* When an idle core should wake to trim its stack cache (-1: nothing to give back), and the
 * trim itself once it is due. */
int64_t crl__stack_next_trim_ns(const struct crl__core *c);
void crl__stack_trim_if_due(struct crl__core *c);
int crl__stack_overflow_handler_install(struct crl__core *c);
void crl__stack_overflow_handler_remove(struct crl__core *c);
size_t crl__page_size(void);
/* True once stacks are guarded with MADV_GUARD_INSTALL (known after the first stack). */
bool crl__stack_guard_adds_no_mapping(void);

/* sync.c: crl_event_wait, the dump saying what (a string that outlives the wait). */
int crl__event_wait_for(struct crl_event *e, const char *what);

/* tree.c: the scope tree under s, one line a scope and a task; task_line (NULL: the state
 * alone, as crl_dump_tree writes it) ends each task's line (after "task 'name' state") and may
 * add lines below it, indented past depth. */
typedef void crl__task_line_fn(FILE *f, const struct crl_task *t, int depth, void *ctx);
void crl__dump_scope(FILE *f, const struct crl_scope *s, int depth, crl__task_line_fn *task_line,
                     void *ctx);
const char *crl__task_state_name(enum crl__task_state s);

/* local.c */
void crl__task_locals_destroy(struct crl_task *t);
void crl__core_locals_destroy(struct crl__core *c);

#endif
