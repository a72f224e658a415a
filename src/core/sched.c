/* sched.c - the per-core scheduler: run queue, direct task-to-task switches, park and wake,
 * spawn and task exit, and the loop that polls timers (and later I/O) between runs.
 *
 * A task that blocks or yields switches straight to the next runnable task; the loop's own
 * context is entered only when nothing is runnable or the switch budget is spent, so that
 * timers and I/O are polled at least every CRL__BUDGET switches (CRL__BUDGET_IO with
 * operations in flight). */
#define _GNU_SOURCE
#include "core.h"
#include "count.h"

#include "../arch/ctx.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define CRL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CRL_ASAN 1
#endif
#endif

#ifdef CRL_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(__SANITIZE_THREAD__)
#define CRL_TSAN 1
#include <sanitizer/tsan_interface.h>
#endif

/* Switches between two polls of the loop when tasks keep each other busy. A switch costs ~10 ns
 * (a Tokio poll ~10x that), so 256 bounds polling latency to a few microseconds while keeping
 * the loop's clock read and timer advance off the hot path (61 cost 2.5 ns a spawn+join). */
enum { CRL__BUDGET = 256 };
/* With I/O in flight, what the tasks queued (a response) and what has arrived (a request)
 * wait for the loop's next poll: poll 4x as often. Measured with corral-httpd's /work
 * route (bench/RESULTS.md): p99 8.6..9.1 -> 6.9..7.2 ms at 256 -> 64, same CPU per request. */
enum { CRL__BUDGET_IO = 64 };

/* ---- Run queue: FIFO (crl__runq_push in core.h) ---------------------------------------- */

static struct crl_task *crl__runq_pick(struct crl__core *c)
{
    struct crl_task *t = c->runq_head;
    if (t) {
        c->runq_head = t->run_next;
        if (!c->runq_head)
            c->runq_tail = NULL;
    }
    return t;
}

/* Simulated, every switch goes through the loop (a budget of 0), and each time the loop
 * moves one of the first SIM_WINDOW runnable tasks, drawn from the seed, to the head of the
 * queue: any order of tasks runnable together can come up, none waits for long, and a real
 * core's pick and switch stay as they are. */
enum { SIM_WINDOW = 16 };

__attribute__((noinline, cold)) static void sim_reorder(struct crl__core *c)
{
    c->budget = 0;
    unsigned n = 0;
    for (struct crl_task *t = c->runq_head; t && n < SIM_WINDOW; t = t->run_next)
        n++;
    if (n == 0)
        return;
    unsigned k = (unsigned)(crl__sim_next(&c->sim->rng) % n);
    crl__sim_record(c->sim, CRL__SIM_PICK, (uint64_t)n << 32 | k);
    if (k == 0)
        return;
    struct crl_task *prev = c->runq_head;
    for (unsigned i = 1; i < k; i++)
        prev = prev->run_next;
    struct crl_task *t = prev->run_next;
    prev->run_next = t->run_next;
    if (c->runq_tail == t)
        c->runq_tail = prev;
    t->run_next = c->runq_head;
    c->runq_head = t;
}

/* The next task to switch to, or the loop when none is runnable or the budget is spent. */
static struct crl_task *next_to_run(struct crl__core *c)
{
    if (c->budget == 0)
        return &c->loop;
    struct crl_task *t = crl__runq_pick(c);
    if (!t)
        return &c->loop;
    c->budget--;
    return t;
}

/* ---- Switching -------------------------------------------------------------------------- */

/* TSan follows the switch: each context is a TSan fiber, synchronized with the one it came
 * from (they run one after another on one thread). */
static inline void tsan_switch(struct crl_task *to)
{
#ifdef CRL_TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#else
    (void)to;
#endif
}

static inline void asan_start(struct crl_task *from, struct crl_task *to, bool from_ends)
{
#ifdef CRL_ASAN
    __sanitizer_start_switch_fiber(from_ends ? NULL : &from->asan_fake_stack,
                                   to->stack.base + CRL__STACK_GUARD,
                                   to->stack.size - CRL__STACK_GUARD);
#else
    (void)from, (void)to, (void)from_ends;
#endif
}

static inline void asan_finish(struct crl_task *self)
{
#ifdef CRL_ASAN
    __sanitizer_finish_switch_fiber(self->asan_fake_stack, NULL, NULL);
#else
    (void)self;
#endif
}

/* ---- The flight recorder's view of a switch ------------------------------------------- */

/* The parks' reasons the layers named (crl__trace_name_park): written from constructors,
 * before any thread of a runtime reads them. */
enum { MAX_NAMED_PARKS = 16 };
static struct {
    void (*unpark)(struct crl_task *t);
    enum crl__trace_park reason;
} named_parks[MAX_NAMED_PARKS];
static _Atomic unsigned n_named_parks;

void crl__trace_name_park(void (*unpark)(struct crl_task *t), enum crl__trace_park reason)
{
    unsigned n = atomic_load_explicit(&n_named_parks, memory_order_relaxed);
    if (n == MAX_NAMED_PARKS)
        crl__panic("corral: more than %d kinds of park named for the trace", MAX_NAMED_PARKS);
    named_parks[n].unpark = unpark;
    named_parks[n].reason = reason;
    atomic_store_explicit(&n_named_parks, n + 1, memory_order_release);
}

/* Why t's slice ends. A held wait (crl__park_held) tells the wait it still waits for. */
static enum crl__trace_park park_reason(const struct crl_task *t)
{
    if (t->state == CRL__DONE)
        return CRL__PARK_EXIT;
    if (t->state != CRL__PARKED)
        return CRL__PARK_YIELD;
    void (*unpark)(struct crl_task *) = t->unpark;
    if (!unpark) {
        if (t->park_obj == t->scope) /* crl_scope_run's join, the one park of NULL on a scope */
            return CRL__PARK_JOIN;
        const struct crl__held_wait *h = t->park_obj;
        unpark = h ? h->was : NULL;
    }
    unsigned n = atomic_load_explicit(&n_named_parks, memory_order_acquire);
    for (unsigned i = 0; i < n; i++)
        if (named_parks[i].unpark == unpark)
            return named_parks[i].reason;
    return CRL__PARK_OTHER;
}

/* from's slice ends (parked, or still runnable: a yield; the loop has no slice), to's
 * begins. */
static __attribute__((noinline, cold)) void
trace_switch(struct crl__core *c, const struct crl_task *from, const struct crl_task *to)
{
    int64_t now = crl__clock_mono_ns();
    if (from != &c->loop)
        crl__trace(c->trace, now, CRL__TRACE_PARK, crl__task_trace_id(from), park_reason(from));
    if (to != &c->loop)
        crl__trace(c->trace, now, CRL__TRACE_RUN, crl__task_trace_id(to), (uintptr_t)to->name);
}

/* Switch from the running context to `to`; returns when something switches back to `from`. */
static inline void switch_to(struct crl__core *c, struct crl_task *from, struct crl_task *to)
{
    if (to == from) {
        from->state = CRL__RUNNING;
        return;
    }
    if (__builtin_expect(c->trace != NULL, 0))
        trace_switch(c, from, to);
    c->cur = to;
    to->state = CRL__RUNNING;
    to->ran_ns = c->now_ns;
    CRL__COUNT(&c->stats, switches);
    asan_start(from, to, false);
    tsan_switch(to);
    crl__ctx_switch(&from->sp, to->sp);
    asan_finish(from);
}

/* Leave the running task (already queued or parked) for the next runnable context. */
static void schedule_away(struct crl__core *c, struct crl_task *self)
{
    switch_to(c, self, next_to_run(c));
}

/* ---- Park and wake ---------------------------------------------------------------------- */

int crl__park(void (*unpark)(struct crl_task *t), void *obj)
{
    struct crl_task *t = crl__self();
    if (unpark) {
        int rc = crl__cancel_status(t);
        if (rc) {
            t->park_obj = obj;
            unpark(t);
            t->park_obj = NULL;
            return rc;
        }
    }
    t->unpark = unpark;
    t->park_obj = obj;
    t->state = CRL__PARKED;
    schedule_away(t->core, t);
    return t->wake_result;
}

void crl__wake_cold(struct crl_task *t, int result)
{
    crl__wake(t, result);
    const char *sp = t->sp;
    for (size_t off = 0; off < CRL__WAKE_PREFETCH_BYTES; off += 64)
        __builtin_prefetch(sp + off, 1);
}

void crl__wake(struct crl_task *t, int result)
{
    if (t->state != CRL__PARKED)
        crl__panic("corral: wake of task '%s' that is not parked", t->name);
    t->unpark = NULL;
    t->park_obj = NULL;
    t->wake_result = result;
    t->state = CRL__RUNNABLE;
    CRL__TRACE_EV(t->core, CRL__TRACE_WAKE, crl__task_trace_id(t), UINT64_MAX);
    crl__runq_push(t->core, t);
}

void crl__cancel_wake(struct crl_task *t)
{
    if (t->state != CRL__PARKED || !t->unpark)
        return;
    t->unpark(t);
    crl__wake(t, crl__cancel_status(t));
}

void crl__yield_held(void)
{
    struct crl_task *t = crl__self();
    t->state = CRL__RUNNABLE;
    crl__runq_push(t->core, t);
    schedule_away(t->core, t);
}

int crl_yield(void)
{
    int rc = crl__cancel_status(crl__self());
    if (rc)
        return rc;
    crl__yield_held();
    return 0;
}

/* A checkpoint sees what the loop would if the task gave it a turn. With a timer armed on the
 * core (a deadline is one), every checkpoint reads the clock and fires the timers due: a
 * deadline that passed is seen by the first checkpoint after it, as in Trio (~20 ns a call;
 * none without timers). What other cores sent (a crl_call caller's cancellation) is taken in
 * every ckpt_stride calls: the stride doubles while the calls between two looks take less
 * than half of CKPT_LOOK_NS, up to CKPT_STRIDE_MAX, and drops to 1 when they took longer
 * than CKPT_LOOK_NS, so it is seen within about CKPT_LOOK_NS or CKPT_STRIDE_MAX steps of the
 * caller's work. */
#define CKPT_LOOK_NS (20 * CRL_USEC_NS)
enum { CKPT_STRIDE_MAX = 16 };

static __attribute__((noinline)) void checkpoint_look(struct crl__core *c)
{
    int64_t now = crl_now_ns();
    int64_t took = now - c->ckpt_ns;
    if (took > CKPT_LOOK_NS)
        c->ckpt_stride = 1;
    else if (took < CKPT_LOOK_NS / 2 && c->ckpt_stride < CKPT_STRIDE_MAX)
        c->ckpt_stride *= 2;
    c->ckpt_ns = now;
    c->ckpt_left = c->ckpt_stride;
    if (c->checkpoint_hook)
        c->checkpoint_hook(c);
    if (c->wheel.count) {
        c->now_ns = now;
        crl__wheel_advance(&c->wheel, now);
    }
}

static __attribute__((noinline)) void checkpoint_timers(struct crl__core *c)
{
    c->now_ns = crl_now_ns();
    crl__wheel_fire_due(&c->wheel, c->now_ns);
}

int crl_checkpoint(void)
{
    struct crl_task *t = crl__self();
    struct crl__core *c = t->core;
    if (--c->ckpt_left == 0)
        checkpoint_look(c);
    else if (c->wheel.count)
        checkpoint_timers(c);
    return crl__cancel_status(t);
}

const char *crl_task_name(void) { return crl__self()->name; }

/* ---- Spawn and exit --------------------------------------------------------------------- */

static _Noreturn void task_exit(struct crl_task *t, int result)
{
    struct crl__core *c = t->core;
    if (t->locals_used)
        crl__task_locals_destroy(t);
    t->state = CRL__DONE;
    crl__list_del(&t->scope_link);
    CRL__STAT_SUB(&c->stats, tasks_live, 1);
    crl__scope_child_done(t->home, t, result);
    /* The stack goes back to the pool now, though we still run on it: nothing can reuse it
     * before the jump below leaves it, and nothing of this context is saved. */
    if (!crl__task_free_fast(c, t))
        crl__task_free(c, t);
    struct crl_task *next = next_to_run(c);
    if (__builtin_expect(c->trace != NULL, 0))
        trace_switch(c, t, next);
    c->cur = next;
    next->state = CRL__RUNNING;
    CRL__COUNT(&c->stats, switches);
    next->ran_ns = c->now_ns;
    asan_start(t, next, true); /* frees this task's fake stack: no locals from here on */
    tsan_switch(next);
    crl__ctx_jump(next->sp);
}

static void task_entry(void *p)
{
    struct crl_task *t = p;
    asan_finish(t);
    task_exit(t, t->fn(t->arg));
}

static _Noreturn __attribute__((noinline, cold)) void
spawn_misuse(const struct crl__core *c, const struct crl_scope *s, const char *name)
{
    name = name ? name : "task";
    if (!c)
        crl__panic("corral: crl_spawn of '%s' outside a running runtime", name);
    crl__scope_check(s, "crl_spawn");
    crl__panic("corral: scope %p belongs to core %u but was used from core %u (crl_spawn of "
               "'%s')",
               (const void *)s, s->core->id, c->id, name);
}

/* Copy size bytes of src just below top, aligned for any type, making sure ASan holds none
 * of it poisoned from the frames of the stack's last task: the new top of the frames. */
static void *copy_to_stack_top(char *top, const void *src, size_t size)
{
    uintptr_t dst = ((uintptr_t)top - size) & ~(uintptr_t)(_Alignof(max_align_t) - 1);
#ifdef CRL_ASAN
    __asan_unpoison_memory_region((void *)dst, size);
#endif
    if (size)
        memcpy((void *)dst, src, size);
    return (void *)dst;
}

/* The one spawn: crl__spawn (copy false: arg is passed as it is) and crl_spawn_copy_named
 * (copy true: arg's copy_size bytes go onto the new stack's top, and the task gets a pointer
 * to them). copy is a constant at each call, so the plain spawn has no branch of the copy. */
__attribute__((always_inline)) static inline int spawn_into(struct crl_scope *s, crl_task_fn *fn,
                                                            void *arg, const char *name,
                                                            size_t stack, bool copy,
                                                            size_t copy_size)
{
    struct crl__core *c = crl__cur;
    if (!c || s->magic != CRL__SCOPE_LIVE || s->core != c)
        spawn_misuse(c, s, name);
    struct crl_task *t = stack == 0 ? crl__task_alloc_fast(c) : NULL;
    if (!t) {
        int rc = 0;
        t = crl__task_alloc(c, stack ? stack : c->cfg->stack_size, &rc);
        if (!t)
            return rc;
    }
    /* The record's stack descriptor is valid from the pool; the fields below are all that
     * must be set (run_next, wake_result, unpark and park_obj are written before they are
     * read, locals[] is guarded by locals_used): no memset, which costs more than a spawn. */
    t->core = c;
    t->fn = fn;
    t->arg = arg;
    t->name = name ? name : "task";
    t->home = s;
    t->scope = s;
    t->cancel_hint = true; /* resolved by the first cancellation point */
    t->locals_used = 0;
    t->spawned_ns = c->now_ns;
#ifdef CRL_ASAN
    t->asan_fake_stack = NULL;
#endif
    crl__list_add_tail(&s->tasks, &t->scope_link);
    s->nlive++;
    CRL__STAT_ADD(&c->stats, tasks_live, 1);
    CRL__COUNT(&c->stats, tasks_spawned);
    CRL__TRACE_EV(c, CRL__TRACE_SPAWN, crl__task_trace_id(t), (uintptr_t)t->name);
    void *frames_top = (void *)(((uintptr_t)t - t->stack.colour) & ~(uintptr_t)15);
    if (copy) {
        frames_top = copy_to_stack_top(frames_top, arg, copy_size);
        t->arg = frames_top;
    }
    t->sp = crl__ctx_make(frames_top, task_entry, t);
    t->state = CRL__RUNNABLE;
    crl__runq_push(c, t);
    return 0;
}

__attribute__((always_inline)) inline int crl__spawn(struct crl_scope *s, crl_task_fn *fn,
                                                     void *arg, const char *name, size_t stack)
{
    return spawn_into(s, fn, arg, name, stack, false, 0);
}

int crl_spawn_ex(struct crl_scope *s, crl_task_fn *fn, void *arg, const struct crl_spawn_opts *opts)
{
    return crl__spawn(s, fn, arg, opts ? opts->name : NULL, opts ? opts->stack_size : 0);
}

int crl_spawn_named(struct crl_scope *s, crl_task_fn *fn, void *arg, const char *name)
{
    return crl__spawn(s, fn, arg, name, 0);
}

int crl_spawn_copy_named(struct crl_scope *s, crl_task_fn *fn, const void *arg, size_t size,
                         const char *name)
{
    struct crl__core *c = crl__cur;
    if (c && size > c->cfg->stack_size / 4)
        return -EINVAL; /* the copy would leave the task too little of its stack */
    if (size && !arg)
        return -EINVAL;
    return spawn_into(s, fn, (void *)arg, name, 0, true, size);
}

/* ---- The loop --------------------------------------------------------------------------- */

int64_t crl_now_ns(void) { return crl__clock_mono_ns(); }

/* When the next trim is due, if it may give some stack back, else -1: a core whose cache can
 * still shrink wakes for it, one that kept at most one stack a class sleeps on. */
int64_t crl__stack_next_trim_ns(const struct crl__core *c)
{
    int64_t period = c->cfg->stack_trim_ns;
    if (period < 0 || period > INT64_MAX - c->stacks.trimmed_ns) /* never, or past the clock */
        return -1;
    for (int i = 0; i < CRL__STACK_CLASSES; i++)
        if (c->stacks.cls[i].nfree > 1)
            return c->stacks.trimmed_ns + period;
    return -1;
}

/* Once a period, an idle core gives back cached stacks that sat unused (on the loop's own
 * stack: the ones it gives back are no task's). No clock read while there is nothing to give. */
void crl__stack_trim_if_due(struct crl__core *c)
{
    int64_t due = crl__stack_next_trim_ns(c);
    if (due < 0)
        return;
    int64_t now = crl_now_ns();
    if (now < due)
        return;
    c->stacks.trimmed_ns = now;
    crl__stack_trim(c);
    crl__stack_reap(c);
}

bool crl__run_next(struct crl__core *c, bool io_in_flight)
{
    c->budget = io_in_flight ? CRL__BUDGET_IO : CRL__BUDGET;
    if (__builtin_expect(c->sim != NULL, 0))
        sim_reorder(c);
    struct crl_task *t = crl__runq_pick(c);
    if (!t)
        return false;
    switch_to(c, &c->loop, t);
    c->cur = &c->loop;
    crl__stack_reap(c);
    return true;
}

void crl__deadlock(struct crl__core *c)
{
    crl__logf(CRL_LOG_ERROR, "corral: deadlock: %llu task(s) blocked with nothing to wake them",
              (unsigned long long)c->stats.tasks_live);
    crl_dump_tree(STDERR_FILENO);
    crl__panic("corral: deadlock");
}

/* ---- Setting up a core ------------------------------------------------------------------ */

__thread struct crl__core *crl__cur __attribute__((tls_model("initial-exec")));
__thread const int64_t *crl__clock_virtual __attribute__((tls_model("initial-exec")));

/* The loop context runs on the thread's own stack; sanitizers need its bounds. */
static void loop_stack_bounds(struct crl_task *loop)
{
    pthread_attr_t attr;
    void *addr;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
        /* As a task's: stack.base + CRL__STACK_GUARD is the usable bottom. */
        loop->stack.base = (char *)addr - CRL__STACK_GUARD;
        loop->stack.size = size + CRL__STACK_GUARD;
    }
    pthread_attr_destroy(&attr);
}

int crl__core_init(struct crl__core *c, struct crl_scope *root)
{
    c->loop.name = "(loop)";
    c->loop.core = c;
    c->loop.state = CRL__RUNNING;
#if defined(__SANITIZE_THREAD__)
    c->loop.tsan_fiber = __tsan_get_current_fiber();
#endif
    c->cur = &c->loop;
    loop_stack_bounds(&c->loop);
    c->now_ns = crl_now_ns();
    crl__wheel_init(&c->wheel, c->now_ns);
    c->ckpt_stride = c->ckpt_left = 1;
    c->ckpt_ns = c->now_ns;
    /* the class of the spawn fast path */
    c->stacks.cls[0].size = crl__stack_region_size(c->cfg->stack_size);
    crl__scope_init_root(root, c);
    c->root = root;
    if (c->sim && c->id != 0)
        return 0; /* simulated cores share one thread, and core 0's alternate signal stack */
    return crl__stack_overflow_handler_install(c);
}

void crl__core_fini(struct crl__core *c)
{
    crl__stack_pool_fini(c);
    crl__stack_overflow_handler_remove(c);
    crl__tokens_fini(c);
}
