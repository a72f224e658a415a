/* Scheduling: spawn order, yield, names, stack sizes, FP state per task, many tasks. */
#include "../test.h"
#include "core.h"

#include <errno.h>
#include <fenv.h>
#include <string.h>

struct order {
    int seq[64];
    int n;
};

struct tagged {
    struct order *o;
    int id;
};

static int record(void *arg)
{
    struct tagged *t = arg;
    t->o->seq[t->o->n++] = t->id;
    return 0;
}

static int spawn_two_then_record(struct crl_scope *s, void *arg)
{
    struct tagged *t = arg;
    CHECK_EQ(crl_spawn(s, record, &t[1]), 0);
    CHECK_EQ(crl_spawn(s, record, &t[2]), 0);
    record(&t[0]); /* the spawner keeps running: children are queued, not started */
    return 0;
}

/* Spawned tasks run after the spawner blocks, in spawn order. */
TEST(spawned_tasks_run_later_in_order)
{
    struct order o = {0};
    struct tagged t[3] = {{&o, 0}, {&o, 1}, {&o, 2}};
    CHECK_EQ(crl_scope_run(spawn_two_then_record, t), 0);
    CHECK_EQ(o.n, 3);
    CHECK_EQ(o.seq[0], 0);
    CHECK_EQ(o.seq[1], 1);
    CHECK_EQ(o.seq[2], 2);
}

static int record_and_yield(void *arg)
{
    for (int i = 0; i < 3; i++) {
        record(arg);
        CHECK_EQ(crl_yield(), 0);
    }
    return 0;
}

static int spawn_yielders(struct crl_scope *s, void *arg)
{
    struct tagged *t = arg;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(crl_spawn(s, record_and_yield, &t[i]), 0);
    return 0;
}

/* Yielding tasks take turns round-robin. */
TEST(yield_round_robins)
{
    struct order o = {0};
    struct tagged t[3] = {{&o, 0}, {&o, 1}, {&o, 2}};
    CHECK_EQ(crl_scope_run(spawn_yielders, t), 0);
    CHECK_EQ(o.n, 9);
    for (int i = 0; i < 9; i++)
        CHECK_EQ(o.seq[i], i % 3);
}

/* A lone task may yield; it just continues. */
TEST(yield_alone_returns)
{
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(crl_yield(), 0);
}

static int name_probe(void *arg)
{
    *(const char **)arg = crl_task_name();
    return 0;
}

static int spawn_named_probes(struct crl_scope *s, void *arg)
{
    const char **names = arg;
    CHECK_EQ(crl_spawn(s, name_probe, &names[0]), 0);
    CHECK_EQ(crl_spawn_named(s, name_probe, &names[1], "custom"), 0);
    struct crl_spawn_opts opts = {0};
    CHECK_EQ(crl_spawn_ex(s, name_probe, &names[2], &opts), 0);
    return 0;
}

/* crl_spawn names a task after its function; names can be given; the root is "main". */
TEST(tasks_carry_names)
{
    const char *names[3] = {0};
    CHECK(strcmp(crl_task_name(), "main") == 0);
    CHECK_EQ(crl_scope_run(spawn_named_probes, names), 0);
    CHECK(strcmp(names[0], "name_probe") == 0);
    CHECK(strcmp(names[1], "custom") == 0);
    CHECK(strcmp(names[2], "task") == 0);
}

static int use_big_frame(void *arg)
{
    volatile char big[512 * 1024];
    for (size_t i = 0; i < sizeof big; i += 4096)
        big[i] = (char)i;
    *(int *)arg = big[4096];
    return 0;
}

static int spawn_big(struct crl_scope *s, void *arg)
{
    struct crl_spawn_opts opts = {.name = "big", .stack_size = 1024 * 1024};
    return crl_spawn_ex(s, use_big_frame, arg, &opts);
}

/* A task may ask for a larger stack than the default. */
TEST(spawn_with_larger_stack)
{
    int out = 0;
    CHECK_EQ(crl_scope_run(spawn_big, &out), 0);
    CHECK_EQ(out, (char)4096);
}

static int round_toward_zero(void *arg)
{
    CHECK_EQ(fesetround(FE_TOWARDZERO), 0);
    CHECK_EQ(crl_yield(), 0);
    *(int *)arg = fegetround();
    return 0;
}

static int default_rounding(void *arg)
{
    CHECK_EQ(crl_yield(), 0);
    *(int *)arg = fegetround();
    return 0;
}

static int spawn_fp(struct crl_scope *s, void *arg)
{
    int *modes = arg;
    CHECK_EQ(crl_spawn(s, round_toward_zero, &modes[0]), 0);
    CHECK_EQ(crl_spawn(s, default_rounding, &modes[1]), 0);
    return 0;
}

/* Each task keeps its own FP control state (rounding mode) across switches. */
TEST(fp_control_state_is_per_task)
{
    int modes[2] = {-1, -1};
    CHECK_EQ(crl_scope_run(spawn_fp, modes), 0);
    CHECK_EQ(modes[0], FE_TOWARDZERO);
    CHECK_EQ(modes[1], FE_TONEAREST);
    CHECK_EQ(fegetround(), FE_TONEAREST);
}

enum { MANY = 100000 };

static int sleep_then_count(void *arg)
{
    CHECK_EQ(crl_sleep_ns(200 * CRL_MSEC_NS), 0);
    ++*(int *)arg;
    return 0;
}

static int spawn_many_sleepers(struct crl_scope *s, void *arg)
{
    for (int i = 0; i < MANY; i++)
        CHECK_EQ(crl_spawn(s, sleep_then_count, arg), 0);
    return 0;
}

/* 100 000 tasks can sleep at once, and all wake. */
TEST_TIMEOUT(hundred_thousand_sleeping_tasks, 280) /* ~70 s under ASan on a loaded machine */
{
    if (test_slow_env())
        TEST_SKIP("too slow under valgrind or TSan");
    if (!crl__stack_guard_adds_no_mapping())
        TEST_SKIP("mprotect guards: 2 mappings a stack, 100k stacks pass vm.max_map_count");
    int woke = 0;
    CHECK_EQ(crl_scope_run(spawn_many_sleepers, &woke), 0);
    CHECK_EQ(woke, MANY);
}
