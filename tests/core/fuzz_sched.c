/* fuzz_sched.c - libFuzzer target: each input is a byte program for a small VM that drives
 * the scheduler inside crl_run (one core): nested scopes and spawned tasks run slices of the
 * program, among cancels, deadlines, shields, yields, checkpoints, short sleeps, channel,
 * event and mutex operations, and early returns with or without an error. Invariants abort:
 * a scope returns only after every task spawned into it ended; no task runs after its scope
 * returned; calls that are not cancellation points never return -ECANCELED/-ETIMEDOUT; a
 * task under a cancelled scope (no shield between) gets the error from crl_checkpoint;
 * tasks_live is back to its start at the end (and LeakSanitizer checks the rest).
 * Every blocking call ends: the outermost scope and every shielded one have a deadline at
 * most END_NS ahead. Build: -Dfuzz=true with clang; run: scripts/test.sh fuzz. */
#define _GNU_SOURCE
#include "corral.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum {
    MAX_SCOPES = 128,
    MAX_TASKS = 64,
    MAX_DEPTH = 8,
    NCHANS = 3,
    NEVENTS = 2,
    END_NS = 300 * CRL_USEC_NS, /* every blocking call ends by then */
    STACK = 256 * 1024,
};

struct scope_rec {
    struct crl_scope *s;
    struct scope_rec *parent;
    int live; /* tasks spawned into it and not ended */
    bool shielded, returned;
};

struct task_rec {
    struct scope_rec *scope; /* where it was spawned */
    size_t pc, end;
    int depth;
    bool holds_mutex, ended;
};

/* One running slice of the program: a task's or a scope body's. */
struct ctx {
    size_t pc, end;
    int depth;
    struct scope_rec *scope; /* innermost */
    struct task_rec *task;
};

struct body_arg {
    struct ctx *outer;
    struct scope_rec *rec;
    size_t start, len;
};

static struct {
    const uint8_t *data;
    int64_t end_ns;
    struct scope_rec scopes[MAX_SCOPES];
    struct task_rec tasks[MAX_TASKS + 1]; /* [0]: the root task */
    int nscopes, ntasks;
    struct crl_chan chans[NCHANS];
    struct crl_event events[NEVENTS];
    struct crl_mutex mutex;
} vm;

static bool is_cancel(int rc) { return rc == -ECANCELED || rc == -ETIMEDOUT; }

static void must_at(bool cond, const char *what, int line)
{
    if (!cond) {
        fprintf(stderr, "fuzz_sched: invariant broken at line %d: %s\n", line, what);
        abort();
    }
}
#define must(cond) must_at((cond), #cond, __LINE__)

static uint8_t next_byte(struct ctx *c) { return c->pc < c->end ? vm.data[c->pc++] : 0; }

/* The len of a slice that starts at the next byte, clamped to what is left. */
static size_t slice_len(struct ctx *c)
{
    size_t len = (size_t)next_byte(c) % 32 + 1;
    return len < c->end - c->pc ? len : c->end - c->pc;
}

/* No scope around the running code has returned: it would be running after its scope. */
static void check_alive(const struct ctx *c)
{
    for (const struct scope_rec *r = c->scope; r; r = r->parent)
        must(!r->returned && r->live >= 0);
}

/* The scope chosen by byte b among the innermost and those around it. */
static struct scope_rec *pick_scope(const struct ctx *c, uint8_t b)
{
    struct scope_rec *r = c->scope;
    for (int i = b % MAX_DEPTH; i > 0 && r->parent; i--)
        r = r->parent;
    return r;
}

/* True when cancellation reaches the running code: a cancelled scope, no shield between. */
static bool cancel_reaches(const struct ctx *c)
{
    for (const struct scope_rec *r = c->scope; r; r = r->parent) {
        if (crl_scope_cancelled(r->s))
            return true;
        if (r->shielded)
            return false;
    }
    return false;
}

static int run_program(struct ctx *c);

static int scope_body(struct crl_scope *s, void *arg)
{
    struct body_arg *a = arg;
    a->rec->s = s;
    struct ctx c = {a->start, a->start + a->len, a->outer->depth + 1, a->rec, a->outer->task};
    return run_program(&c);
}

static void op_scope(struct ctx *c)
{
    size_t len = slice_len(c), start = c->pc;
    c->pc += len;
    if (c->depth >= MAX_DEPTH || vm.nscopes == MAX_SCOPES)
        return;
    struct scope_rec *rec = &vm.scopes[vm.nscopes++];
    *rec = (struct scope_rec){.parent = c->scope};
    struct body_arg a = {c, rec, start, len};
    int rc = crl_scope_run(scope_body, &a);
    must(rc == 0 || rc == -EIO || is_cancel(rc));
    must(rec->live == 0); /* every child joined */
    rec->returned = true;
}

static int task_main(void *arg)
{
    struct task_rec *t = arg;
    struct ctx c = {t->pc, t->end, t->depth, t->scope, t};
    int rc = run_program(&c);
    check_alive(&c);
    if (t->holds_mutex)
        must(crl_mutex_unlock(&vm.mutex) == 0);
    t->holds_mutex = false;
    t->ended = true;
    t->scope->live--;
    return rc;
}

static void op_spawn(struct ctx *c)
{
    struct scope_rec *into = pick_scope(c, next_byte(c));
    size_t len = slice_len(c), start = c->pc;
    c->pc += len;
    if (vm.ntasks == MAX_TASKS)
        return;
    struct task_rec *t = &vm.tasks[++vm.ntasks];
    *t = (struct task_rec){.scope = into, .pc = start, .end = start + len, .depth = c->depth};
    into->live++;
    int rc = crl_spawn_ex(into->s, task_main, t, &(struct crl_spawn_opts){"vm", STACK});
    must(rc == 0);
}

static void op_deadline(struct ctx *c)
{
    struct scope_rec *r = pick_scope(c, next_byte(c));
    uint8_t b = next_byte(c);
    int64_t now = crl_now_ns(), d;
    switch (b % 4) {
    case 0: d = now - 1; break;
    case 1: d = now + (b / 4 % 51) * CRL_USEC_NS; break;
    case 2: d = vm.end_ns; break;
    default: d = CRL_NO_DEADLINE; break;
    }
    if (d == CRL_NO_DEADLINE ? r->shielded || !r->parent : d > vm.end_ns)
        d = vm.end_ns; /* the outermost and shielded scopes keep one, none goes past the end */
    crl_scope_set_deadline(r->s, d);
}

static void op_shield(struct ctx *c)
{
    struct scope_rec *r = c->scope;
    r->shielded = next_byte(c) & 1;
    if (r->shielded) {
        int64_t d = crl_scope_deadline(r->s);
        if (d == CRL_NO_DEADLINE || d > vm.end_ns)
            crl_scope_set_deadline(r->s, vm.end_ns);
    }
    crl_scope_shield(r->s, r->shielded);
}

static void op_checkpoint(struct ctx *c)
{
    bool reached = cancel_reaches(c);
    int rc = crl_checkpoint();
    must(rc == 0 || is_cancel(rc));
    if (reached)
        must(is_cancel(rc));
}

static void op_chan(struct ctx *c, int op)
{
    uint8_t b = next_byte(c);
    struct crl_chan *ch = &vm.chans[b % NCHANS];
    int v = b, rc;
    switch (op) {
    case 0:
        rc = crl_chan_send(ch, &v);
        must(rc == 0 || rc == -EPIPE || is_cancel(rc));
        break;
    case 1:
        rc = crl_chan_recv(ch, &v);
        must(rc == 0 || rc == -EPIPE || is_cancel(rc));
        break;
    case 2:
        rc = crl_chan_try_send(ch, &v);
        must(rc == 0 || rc == -EAGAIN || rc == -EPIPE);
        break;
    case 3:
        rc = crl_chan_try_recv(ch, &v);
        must(rc == 0 || rc == -EAGAIN || rc == -EPIPE);
        break;
    default: crl_chan_close(ch); break;
    }
}

static void op_event(struct ctx *c, int op)
{
    struct crl_event *e = &vm.events[next_byte(c) % NEVENTS];
    if (op == 0) {
        crl_event_set(e);
        must(crl_event_is_set(e));
    } else if (op == 1) {
        int rc = crl_event_wait(e);
        must(rc == 0 || is_cancel(rc));
    } else {
        crl_event_clear(e);
    }
}

static void op_mutex(struct ctx *c, int op)
{
    struct task_rec *t = c->task;
    int rc;
    if (op == 0) {
        rc = crl_mutex_lock(&vm.mutex);
        must(t->holds_mutex ? rc == -EDEADLK : rc == 0 || is_cancel(rc));
    } else if (op == 1) {
        rc = crl_mutex_trylock(&vm.mutex);
        must(rc == 0 || rc == -EBUSY);
        must(!(t->holds_mutex && rc == 0));
    } else {
        rc = crl_mutex_unlock(&vm.mutex);
        must(t->holds_mutex ? rc == 0 : rc == -EPERM);
        t->holds_mutex = false;
    }
    if (op < 2 && rc == 0)
        t->holds_mutex = true;
}

static void op_control(struct ctx *c, int op)
{
    int rc = 0;
    switch (op) {
    case 0: op_scope(c); break;
    case 1: op_spawn(c); break;
    case 2: crl_scope_cancel(pick_scope(c, next_byte(c))->s); break;
    case 3: op_deadline(c); break;
    case 4: op_shield(c); break;
    case 5: rc = crl_yield(); break;
    case 6: op_checkpoint(c); break;
    case 7: rc = crl_sleep_ns((next_byte(c) % 51) * CRL_USEC_NS); break;
    default: (void)crl_scope_cancelled(c->scope->s); break; /* a plain step */
    }
    must(rc == 0 || is_cancel(rc));
}

/* Run one op; returns 1 to go on, or the slice's result (0 or -EIO) to end it. */
static int step(struct ctx *c)
{
    int op = next_byte(c) % 24;
    if (op >= 8 && op <= 12)
        op_chan(c, op - 8);
    else if (op >= 13 && op <= 15)
        op_event(c, op - 13);
    else if (op >= 16 && op <= 18)
        op_mutex(c, op - 16);
    else if (op == 19 || op == 20)
        return op == 19 ? -EIO : 0;
    else
        op_control(c, op < 8 ? op : 8);
    return 1;
}

static int run_program(struct ctx *c)
{
    int rc = 1;
    while (rc == 1 && c->pc < c->end) {
        check_alive(c);
        rc = step(c);
        check_alive(c);
    }
    return rc == 1 ? 0 : rc;
}

struct input {
    size_t size;
};

static int root_body(struct crl_scope *s, void *arg)
{
    struct input *in = arg;
    vm.scopes[0] = (struct scope_rec){.s = s};
    vm.nscopes = 1;
    crl_scope_set_deadline(s, vm.end_ns);
    struct ctx c = {0, in->size, 0, &vm.scopes[0], &vm.tasks[0]};
    int rc = run_program(&c);
    if (vm.tasks[0].holds_mutex)
        must(crl_mutex_unlock(&vm.mutex) == 0);
    vm.tasks[0].holds_mutex = false;
    return rc;
}

static int vm_main(void *arg)
{
    struct crl_stats before, after;
    crl_stats_get(&before);
    for (int i = 0; i < NCHANS; i++)
        must(crl_chan_init(&vm.chans[i], sizeof(int), (size_t)i + 1) == 0);
    for (int i = 0; i < NEVENTS; i++)
        crl_event_init(&vm.events[i]);
    crl_mutex_init(&vm.mutex);
    vm.end_ns = crl_now_ns() + END_NS;
    int rc = crl_scope_run(root_body, arg);
    must(rc == 0 || rc == -EIO || is_cancel(rc));
    must(vm.scopes[0].live == 0);
    vm.scopes[0].returned = true;
    for (int i = 1; i <= vm.ntasks; i++)
        must(vm.tasks[i].ended);
    for (int i = 0; i < NCHANS; i++)
        crl_chan_fini(&vm.chans[i]);
    crl_stats_get(&after);
    must(after.tasks_live == before.tasks_live);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vm.data = data;
    vm.ntasks = 0;
    vm.tasks[0] = (struct task_rec){0};
    struct input in = {size};
    struct crl_config cfg = {.cores = 1, .stack_size = STACK, .backend = CRL_BACKEND_EPOLL};
    must(crl_run(&cfg, vm_main, &in) == 0);
    return 0;
}
